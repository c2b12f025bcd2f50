use super::*;
use crate::model::{Architecture, load_checkpoint};

/// Bright disks on a noisy 64² background and their mask.
fn disks() -> (Raster, Vec<bool>) {
    let (w, h) = (64, 64);
    let mut frame = Raster::zeros(w, h);
    let mut mask = vec![false; w * h];
    for (i, v) in frame.data.iter_mut().enumerate() {
        *v = ((i * 7919) % 13) as f32 * 0.05;
    }
    for &(cx, cy) in &[(16.0f32, 16.0f32), (40.0, 20.0), (24.0, 44.0), (50.0, 50.0)] {
        for y in 0..h {
            for x in 0..w {
                if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < 16.0 {
                    frame.set(x, y, 2.0);
                    mask[y * w + x] = true;
                }
            }
        }
    }
    (frame, mask)
}

/// Trains `arch` (width 3) a few iterations on burn's autodiff on `device` and on our CPU
/// path from the very same weights, asserting that their losses agree at every iteration
/// (after the first, they come from weights both have updated). Returns burn's network.
fn train_on_burn_and_ours(arch: Architecture, device: &Device) -> (ModelConfig, Net) {
    let (w, h) = (48, 48);
    let frame = Raster::from_vec(
        w,
        h,
        (0..w * h)
            .map(|i| ((i % w) as f32 * 0.7).sin() + ((i / w) as f32 * 0.5).cos())
            .collect(),
    )
    .expect("frame");
    let mask: Vec<bool> = (0..w * h)
        .map(|i| (i % w) % 11 < 3 && (i / w) % 9 < 3)
        .collect();
    let cfg = TrainConfig {
        model: ModelConfig {
            architecture: arch,
            width: 3,
            ..ModelConfig::default()
        },
        crop: 16,
        batch: 3,
        iterations: 4,
        augment: AugmentConfig::none(),
        ..TrainConfig::default()
    };
    let (image, target) =
        training_images(&frame, &FrameLabels::new(&mask, 4.0), &cfg.model).expect("images");
    let mut theirs = Learner::new(&cfg, device, true).expect("burn learner");
    assert!(matches!(theirs, Learner::Burn { .. }));
    // Ours starts from the very same weights, as the GPU fallback does (not from the
    // seed again: other tests draw from the backend's generator at the same time).
    let mut ours = Learner::Cpu {
        trainer: CpuTrainer::new(&theirs.net()).expect("host copy"),
        template: cfg.model.init(&Device::flex()),
        device: Device::flex(),
    };
    for it in 0..cfg.iterations {
        let (x, y) = batch(&image, &target, &CropCentres::default(), &cfg, it);
        let (a, pa) = ours.loss(&x, &y, &cfg).expect("loss");
        let (b, pb) = theirs.loss(&x, &y, &cfg).expect("loss");
        assert!(
            (a - b).abs() <= 1e-3 * b.abs(),
            "{arch:?} iteration {it}: {a} vs {b}"
        );
        let lr = learning_rate(&cfg, it);
        ours = ours.step(pa, lr).expect("step");
        theirs = theirs.step(pb, lr).expect("step");
    }
    (cfg.model, theirs.net())
}

/// Our CPU path and burn's autodiff (on its CPU backend) take the same steps.
#[test]
fn cpu_path_trains_as_burn_does() {
    for arch in [Architecture::Sniffer, Architecture::Unet] {
        train_on_burn_and_ours(arch, &Device::flex());
    }
}

/// The GPU path, burn-wgpu, on whatever adapter wgpu finds: a GPU, or in CI lavapipe (Mesa's
/// Vulkan on the CPU, which `.ci/run` installs). The Sniffer trains on it as on our CPU path;
/// that network, and a U-Net as initialised there, give on it the probability maps that the
/// CPU path gives with their weights, read off the GPU or saved from it as a checkpoint.
/// (The U-Net is not trained here: on lavapipe, compiling its backward kernels takes two
/// minutes, and its layers are the Sniffer's plus the concatenation.) With no adapter at
/// all, this can only check that asking for a GPU is refused with a clear error.
#[test]
fn wgpu_trains_and_detects_as_the_cpu_path() {
    let device = match crate::model::any_wgpu_device() {
        Ok((device, adapter)) => {
            eprintln!("the wgpu path runs on {adapter}");
            device
        }
        Err(why) => {
            let err = select_device(DeviceChoice::Gpu).expect_err("no adapter, no GPU");
            assert!(err.to_string().contains("no usable GPU"), "{err}");
            eprintln!("no wgpu adapter ({why}): the wgpu path itself was not run");
            return;
        }
    };
    let frames: Vec<Raster> = (0..3)
        .map(|k| {
            Raster::from_vec(
                40,
                36,
                (0..40 * 36)
                    .map(|i| {
                        ((i % 40) as f32 * 0.9 + k as f32).sin() * ((i / 40) as f32 * 0.4).cos()
                    })
                    .collect(),
            )
            .expect("frame")
        })
        .collect();
    let unet = ModelConfig {
        architecture: Architecture::Unet,
        width: 3,
        ..ModelConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (model, net) in [
        train_on_burn_and_ours(Architecture::Sniffer, &device),
        (unet, unet.init_seeded(&device, 5)),
    ] {
        let gpu = probability_maps(&net, &model, &device, &frames).expect("on wgpu");
        assert_eq!(gpu.len(), frames.len());
        // The CPU path with the weights copied off the GPU, and with those of a checkpoint
        // saved from the GPU and opened on the CPU.
        let saved = dir.path().join(format!("{:?}", model.architecture));
        let meta = CheckpointMeta {
            format_version: CHECKPOINT_VERSION,
            model,
            iterations: 4,
            mask_radius_px: 4.0,
        };
        save_checkpoint(&net, &meta, &saved).expect("saved from the GPU");
        let (reopened, _) = load_checkpoint(&saved, &Device::flex()).expect("reopened");
        for on_cpu in [&net, &reopened] {
            let cpu = probability_maps(on_cpu, &model, &Device::flex(), &frames).expect("on cpu");
            for (g, c) in gpu.iter().zip(&cpu) {
                for (a, b) in g.data.iter().zip(&c.data) {
                    assert!((a - b).abs() < 1e-3, "{:?}: {a} vs {b}", model.architecture);
                }
            }
        }
    }
}

/// A "GPU" (burn's path) that panics midway: training goes on on the CPU from the last
/// validation's weights, with one warning, and ends with every iteration's loss.
#[test]
fn a_gpu_that_fails_midway_hands_training_to_the_cpu() {
    let (frame, mask) = disks();
    let cfg = TrainConfig {
        model: ModelConfig {
            architecture: Architecture::Sniffer,
            width: 4,
            ..ModelConfig::default()
        },
        crop: 32,
        batch: 2,
        iterations: 10,
        validate_every: 4,
        augment: AugmentConfig::none(),
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    // Training on burn's path (the "GPU") with `faults` goes on on the CPU: all 10 losses,
    // finite, and one warning naming the failed iteration and the validation's (4).
    let falls_back = |faults: Faults, failed: usize| {
        let (ctx, events) = JobCtx::with_events(4096, Box::new(|| {}));
        let t = train_with(
            &frame,
            &FrameLabels::new(&mask, 4.0),
            &cfg,
            None,
            &ctx,
            faults,
        )
        .expect("goes on");
        assert_eq!(t.losses.len(), 10);
        assert!(t.losses.iter().all(|l| l.is_finite()));
        assert_eq!(t.device_name, "cpu");
        // One warning of the fallback (a network this short may also be said not to have
        // learned).
        let warnings: Vec<String> = crate::jobs::warnings(&events)
            .into_iter()
            .filter(|w| w.contains("GPU"))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&format!("iteration {failed}"))
                && warnings[0].contains("weights of iteration 4"),
            "{}",
            warnings[0]
        );
        t
    };
    falls_back(
        Faults {
            burn_on_cpu: true,
            gpu_panics_at: Some(6),
            ..Faults::default()
        },
        6,
    );
    // Without a GPU to fall back from, the same failure is an error.
    let cpu_only = Faults {
        gpu_panics_at: Some(3),
        ..Faults::default()
    };
    let err = train_with(
        &frame,
        &FrameLabels::new(&mask, 4.0),
        &cfg,
        None,
        &JobCtx::detached(),
        cpu_only,
    )
    .expect_err("no fallback from the CPU");
    assert!(err.to_string().contains("injected"), "{err}");
    // A GPU that fails while validating (or copying its weights out) after iteration 8:
    // the run goes on from the weights of iteration 4, without a validation at 8.
    let t = falls_back(
        Faults {
            burn_on_cpu: true,
            validation_panics_after: Some(8),
            ..Faults::default()
        },
        8,
    );
    let validated: Vec<usize> = t.validation.iter().map(|v| v.0).collect();
    assert_eq!(validated, [4, 10]);
}

/// Batches made ahead (as while a GPU trains) are those of their own iterations, also when
/// an iteration is skipped or making ahead stops (a GPU that failed).
#[test]
fn batches_made_ahead_are_those_of_their_iterations() {
    let (frame, mask) = disks();
    let cfg = TrainConfig {
        crop: 32,
        batch: 2,
        iterations: 8,
        ..TrainConfig::default()
    };
    let (image, target) =
        training_images(&frame, &FrameLabels::new(&mask, 4.0), &cfg.model).expect("images");
    let centres = CropCentres::from_mask(&image, &target);
    let own = |it| batch(&image, &target, &centres, &cfg, it);
    assert_ne!(own(0), own(1), "the check needs batches that differ");
    let mut batches = Batches::new(image.clone(), target.clone(), &cfg);
    for (it, ahead) in [
        (0, true),
        (1, true),
        (2, true),
        (4, true),
        (5, false),
        (6, true),
    ] {
        assert!(batches.get(it, ahead) == own(it), "iteration {it}");
    }
}

#[test]
fn frame_smaller_than_crop_is_refused() {
    let cfg = TrainConfig::default();
    let err = cfg.validate(100, 300).expect_err("too small");
    assert!(err.to_string().contains("too small"));
    let odd = TrainConfig {
        crop: 30,
        ..TrainConfig::default()
    };
    assert!(odd.validate(300, 300).is_err());
}

#[test]
fn empty_labels_are_refused_before_training() {
    let frame = Raster::zeros(64, 64);
    let cfg = TrainConfig {
        crop: 32,
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    let err = train(
        &frame,
        &FrameLabels::new(&vec![false; 64 * 64], 3.0),
        &cfg,
        None,
        &JobCtx::detached(),
    )
    .expect_err("empty");
    assert!(err.to_string().contains("no defects"));
}

#[test]
fn a_few_iterations_lower_the_loss_and_cancel_works() {
    // Bright disks on a noisy background: the network must learn to find them.
    let (frame, mask) = disks();
    let cfg = TrainConfig {
        model: ModelConfig {
            architecture: Architecture::Sniffer,
            width: 4,
            ..ModelConfig::default()
        },
        crop: 32,
        batch: 4,
        iterations: 40,
        learning_rate: 1e-2,
        augment: AugmentConfig::none(),
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    let t = train(
        &frame,
        &FrameLabels::new(&mask, 4.0),
        &cfg,
        None,
        &JobCtx::detached(),
    )
    .expect("train");
    let first: f32 = t.losses[..5].iter().sum();
    let last: f32 = t.losses[35..].iter().sum();
    assert!(last < first, "loss must fall: {first} → {last}");

    let ctx = JobCtx::detached();
    ctx.cancel();
    let err =
        train(&frame, &FrameLabels::new(&mask, 4.0), &cfg, None, &ctx).expect_err("cancelled");
    assert!(matches!(err, Error::Cancelled));
}

#[test]
fn a_network_that_did_not_learn_is_said_to() {
    assert!(unlearned(&[(50, 0.7), (100, 0.03)]).is_some_and(|w| w.contains("IoU 0.03")));
    assert!(unlearned(&[(50, 0.1), (100, 0.65)]).is_none());
    assert!(unlearned(&[]).is_none());
}
