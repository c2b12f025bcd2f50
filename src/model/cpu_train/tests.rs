use super::*;
use crate::model::{Architecture, ModelConfig};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};

fn net(arch: Architecture, width: usize, device: &Device) -> Net {
    ModelConfig {
        architecture: arch,
        width,
        ..ModelConfig::default()
    }
    .init_seeded(device, 11)
}

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919 % 211) as f32 / 105.0 - 1.0) * 1.3)
        .collect()
}

/// burn's gradients, in the order of our flat parameter vector.
fn burn_gradients(net: &Net, grads: &GradientsParams) -> Vec<f32> {
    let get1 =
        |p: &Param<Tensor<1>>| values(grads.get::<1>(p.id).expect("gradient")).expect("values");
    let conv = |c: &Conv2d| {
        let w = grads.get::<4>(c.weight.id).expect("gradient");
        let mut v = values(w.flatten(0, 3)).expect("values");
        v.extend(get1(c.bias.as_ref().expect("bias")));
        v
    };
    let (blocks, out) = net.parts();
    let mut all = Vec::new();
    for b in blocks {
        all.extend(conv(&b.conv));
        all.extend(get1(&b.bn.gamma));
        all.extend(get1(&b.bn.beta));
    }
    all.extend(conv(out));
    all
}

fn assert_close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(theirs)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        scale > 0.0 && worst <= 2e-4 * scale,
        "{what}: largest difference {worst} (values up to {scale})"
    );
}

/// For the loss Σ r·logits (r fixed), our gradients, running statistics and two Adam
/// steps equal burn's autodiff and optimiser.
#[test]
fn pooling_gradient_goes_to_the_first_largest_input() {
    // One plane of 3 × 5: the windows cover rows 0–1 and columns 0–3; row 2 and column 4
    // are dropped by the pooling and get no gradient.
    let input = Planes {
        h: 3,
        w: 5,
        c: 1,
        data: vec![
            1.0, 1.0, 0.0, 2.0, 9.0, //
            1.0, 1.0, 3.0, 3.0, 9.0, //
            9.0, 9.0, 9.0, 9.0, 9.0,
        ],
    };
    let d = Planes {
        h: 1,
        w: 2,
        c: 1,
        data: vec![5.0, 7.0],
    };
    let dx = pool_backward(&input, &d);
    assert_eq!(
        dx.data,
        vec![
            5.0, 0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 7.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 0.0, 0.0,
        ]
    );
    let summed = up_backward(&Planes {
        h: 2,
        w: 4,
        c: 1,
        data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    });
    assert_eq!(summed.data, vec![14.0, 22.0]);
}

#[test]
fn gradients_and_adam_equal_burns() {
    const LR: f64 = 1e-2;
    for (arch, width) in [(Architecture::Sniffer, 3), (Architecture::Unet, 2)] {
        let (n, h, w) = (2, 16, 24);
        let x = data(n * h * w, 1);
        let r = data(n * h * w, 5);
        let ad = Device::flex().autodiff();
        let mut theirs = net(arch, width, &ad);
        let mut ours = CpuTrainer::new(&theirs.valid()).expect("trainer");
        let mut optim = AdamConfig::new().init();
        for step in 0..2 {
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 1, h, w]), &ad);
            let rt = Tensor::<4>::from_data(TensorData::new(r.clone(), [n, 1, h, w]), &ad);
            let logits = theirs.forward(xt);
            let burn_logits: Vec<f32> = logits
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .expect("logits");
            let grads = GradientsParams::from_grads((logits * rt).sum().backward(), &theirs);
            let burn_grad = burn_gradients(&theirs, &grads);
            theirs = optim.step(LR, theirs, grads);

            let tape = ours.forward(&x, n, h, w).expect("forward");
            assert_close(&tape.logits().expect("logits"), &burn_logits, "logits");
            let grad = ours.backward(tape, &r).expect("backward");
            assert_close(
                &grad,
                &burn_grad,
                &format!("{arch:?} gradients, step {step}"),
            );
            ours.adam_step(&grad, LR);
        }
        // After two Adam steps. The biases of the convolutions before a batch norm are
        // left out: their gradient is zero up to rounding (the norm subtracts the mean),
        // and Adam scales that rounding noise up to the step size, differently in each
        // implementation; the running means inherit it. Adam moves a parameter by at most
        // about the learning rate per step, so the second forward pass may see biases up to
        // 2·lr apart, and the running mean takes the momentum's share of that.
        let after = CpuTrainer::new(&theirs.valid()).expect("burn's weights");
        let mut keep = vec![true; ours.theta.len()];
        for b in &ours.blocks {
            keep[b.conv.bias..][..b.conv.cout].fill(false);
        }
        let pick = |t: &CpuTrainer| -> Vec<f32> {
            t.theta
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(v, _)| *v)
                .collect()
        };
        assert_close(&pick(&ours), &pick(&after), &format!("{arch:?} after Adam"));
        for (a, b) in ours.blocks.iter().zip(&after.blocks) {
            assert_close(&a.running_var, &b.running_var, "running variance");
            let noise = a.momentum * 2.0 * LR as f32;
            for (x, y) in a.running_mean.iter().zip(&b.running_mean) {
                assert!((x - y).abs() <= noise, "running mean {x} vs {y}");
            }
        }
        // Writing into a burn network and reading back loses nothing.
        let back =
            CpuTrainer::new(&ours.write_into(net(arch, width, &Device::flex()), &Device::flex()))
                .expect("written weights");
        assert_eq!(back.theta, ours.theta);
        for (a, b) in back.blocks.iter().zip(&ours.blocks) {
            assert_eq!(
                (&a.running_mean, &a.running_var),
                (&b.running_mean, &b.running_var)
            );
        }
    }
}

#[test]
fn pooling_and_upsampling_gradients_route_to_their_inputs() {
    let x = Planes {
        h: 2,
        w: 2,
        c: 1,
        data: vec![1.0, 5.0, 3.0, 2.0],
    };
    let d = Planes {
        h: 1,
        w: 1,
        c: 1,
        data: vec![7.0],
    };
    assert_eq!(pool_backward(&x, &d).data, vec![0.0, 7.0, 0.0, 0.0]);
    let u = up_backward(&x);
    assert_eq!((u.h, u.w, u.data.clone()), (1, 1, vec![11.0]));
}
