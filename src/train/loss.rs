//! The training loss, a per-pixel term plus a Dice term, twice: as burn tensors (autodiff, on
//! a GPU) and on the host with its gradient (our CPU path). Tests hold the two equal.
//!
//! Target pixels hold 1 (defect), 0 (no defect) or [`IGNORE`] (no lattice: neither, see
//! `lattice::lattice_free_mask`); ignored pixels add nothing to either term and the per-pixel
//! mean is over the labelled pixels only.

use super::{PixelLoss, TrainConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use rayon::prelude::*;

/// The target value of a pixel that is neither a defect nor a negative.
pub const IGNORE: f32 = -1.0;

/// One pixel's loss term of [`loss_fn`] (before the mean), its derivative with respect to the
/// logit `x`, and the probability σ(x); `y` is the 0/1 target.
fn pixel_loss(x: f64, y: f64, loss: PixelLoss) -> (f64, f64, f64) {
    let bce = x.max(0.0) - x * y + (-x.abs()).exp().ln_1p();
    let p = 1.0 / (1.0 + (-x).exp());
    let (value, d) = match loss {
        PixelLoss::CrossEntropy { pos_weight } => {
            let w = 1.0 + (f64::from(pos_weight) - 1.0) * y;
            (w * bce, w * (p - y))
        }
        PixelLoss::Focal { gamma, alpha } => {
            let (gamma, alpha) = (f64::from(gamma), f64::from(alpha));
            // q = 1 − p_t; dq/dx = (1 − 2y)·p(1 − p).
            let q = p + y - 2.0 * p * y;
            let alpha_t = (1.0 - alpha) + (2.0 * alpha - 1.0) * y;
            let dq = (1.0 - 2.0 * y) * p * (1.0 - p);
            // q^γ from q^(γ−1): one power per pixel instead of two.
            let (qg, focus) = if q > 0.0 {
                let qg1 = q.powf(gamma - 1.0);
                let focus = if gamma > 0.0 {
                    gamma * qg1 * dq * bce
                } else {
                    0.0
                };
                (qg1 * q, focus)
            } else {
                (q.powf(gamma), 0.0)
            };
            (alpha_t * qg * bce, alpha_t * (focus + qg * (p - y)))
        }
    };
    (value, d, p)
}

/// [`loss_fn`] and its gradient with respect to each logit, computed on the host for the CPU
/// training path (sums in f64), in parallel over blocks of pixels.
pub(super) fn loss_and_gradient(
    logits: &[f32],
    target: &[f32],
    cfg: &TrainConfig,
) -> (f32, Vec<f32>) {
    const BLOCK: usize = 4096;
    let n = logits.len().min(target.len());
    let labelled = target[..n].iter().filter(|&&y| y >= 0.0).count();
    let m = labelled.max(1) as f64;
    let mut grad = vec![0.0f64; n];
    let mut prob = vec![0.0f64; n];
    // Per block, over labelled pixels: Σ loss, Σ p·y, Σ p, Σ y.
    let [pixel, inter, sum_p, sum_y] = grad
        .par_chunks_mut(BLOCK)
        .zip(prob.par_chunks_mut(BLOCK))
        .zip(logits.par_chunks(BLOCK).zip(target.par_chunks(BLOCK)))
        .map(|((g, pr), (x, y))| {
            let mut s = [0.0f64; 4];
            for (((g, pr), &x), &y) in g.iter_mut().zip(pr.iter_mut()).zip(x).zip(y) {
                if y < 0.0 {
                    continue;
                }
                let y = f64::from(y);
                let (value, d, p) = pixel_loss(f64::from(x), y, cfg.loss);
                (*g, *pr) = (d / m, p);
                s[0] += value;
                s[1] += p * y;
                s[2] += p;
                s[3] += y;
            }
            s
        })
        .reduce(|| [0.0; 4], |a, b| std::array::from_fn(|i| a[i] + b[i]));
    let mut value = pixel / m;
    let dice_weight = f64::from(cfg.dice_weight);
    if dice_weight > 0.0 {
        let s = sum_p + sum_y + 1.0;
        let dice = (2.0 * inter + 1.0) / s;
        value += dice_weight * (1.0 - dice);
        grad.par_iter_mut()
            .zip(&prob)
            .zip(&target[..n])
            .filter(|(_, y)| **y >= 0.0)
            .for_each(|((g, &p), &y)| {
                let ddice = (2.0 * f64::from(y) * s - (2.0 * inter + 1.0)) / (s * s);
                *g -= dice_weight * ddice * p * (1.0 - p);
            });
    }
    (
        value as f32,
        grad.into_par_iter().map(|g| g as f32).collect(),
    )
}

/// Mean per-pixel loss over the labelled pixels plus weighted Dice loss.
pub(super) fn loss_fn(logits: Tensor<4>, target: Tensor<4>, cfg: &TrainConfig) -> Tensor<1> {
    let labelled = target.clone().greater_equal_elem(0.0).float();
    let target = target.clamp_min(0.0);
    // Numerically stable BCE with logits: max(x,0) − x·y + log(1 + e^{−|x|}).
    let bce = logits.clone().clamp_min(0.0) - logits.clone() * target.clone()
        + logits.clone().abs().neg().exp().log1p();
    let p = sigmoid(logits);
    let count = labelled.clone().sum().clamp_min(1.0);
    let per_pixel = match cfg.loss {
        PixelLoss::CrossEntropy { pos_weight } => {
            let w = target.clone().mul_scalar(pos_weight - 1.0).add_scalar(1.0);
            bce * w
        }
        PixelLoss::Focal { gamma, alpha } => {
            // p_t = p for positives, 1 − p for negatives.
            let one_minus_pt =
                p.clone() + target.clone() - (p.clone() * target.clone()).mul_scalar(2.0);
            let alpha_t = target
                .clone()
                .mul_scalar(2.0 * alpha - 1.0)
                .add_scalar(1.0 - alpha);
            one_minus_pt.powf_scalar(gamma) * alpha_t * bce
        }
    };
    let pixel = (per_pixel * labelled.clone()).sum() / count;
    if cfg.dice_weight > 0.0 {
        // Masked after the pixel term: a masked p of 0 would meet (1 − p_t)^γ at 0, where
        // its derivative is infinite for γ < 1 (and 0 · ∞ is NaN).
        let p = p * labelled;
        let inter = (p.clone() * target.clone()).sum();
        let dice = inter.mul_scalar(2.0).add_scalar(1.0) / (p.sum() + target.sum()).add_scalar(1.0);
        pixel + dice.neg().add_scalar(1.0).mul_scalar(cfg.dice_weight)
    } else {
        pixel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn focal_loss_is_lower_for_correct_predictions() {
        let device = Device::flex();
        let cfg = TrainConfig::default();
        let target = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0], [1, 1, 2, 2]),
            &device,
        );
        let good = Tensor::<4>::from_data(
            TensorData::new(vec![5.0f32, -5.0, -5.0, -5.0], [1, 1, 2, 2]),
            &device,
        );
        let bad = Tensor::<4>::from_data(
            TensorData::new(vec![-5.0f32, 5.0, 5.0, 5.0], [1, 1, 2, 2]),
            &device,
        );
        let lg: f32 = loss_fn(good, target.clone(), &cfg).into_scalar();
        let lb: f32 = loss_fn(bad, target, &cfg).into_scalar();
        assert!(lg < 0.1 && lb > 1.0, "good {lg}, bad {lb}");
    }

    /// The CPU path's loss and logit gradients equal burn's autodiff through `loss_fn`.
    #[test]
    fn host_loss_and_gradient_equal_burns() {
        let ad = Device::flex().autodiff();
        let shape = [2, 1, 6, 5];
        let n = 60;
        // No logit is exactly 0, where burn takes one-sided derivatives of |x| and max(x, 0).
        let logits: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 23) as f32 - 11.3) * 0.45)
            .collect();
        // Every fifth pixel left out (a lattice-free area), the rest 0/1.
        let target: Vec<f32> = (0..n)
            .map(|i| match i % 7 {
                _ if i % 5 == 4 => IGNORE,
                0 | 1 => 1.0,
                _ => 0.0,
            })
            .collect();
        for (loss, dice_weight) in [
            (
                PixelLoss::Focal {
                    gamma: 2.0,
                    alpha: 0.75,
                },
                1.0,
            ),
            (
                PixelLoss::Focal {
                    gamma: 0.5,
                    alpha: 0.3,
                },
                0.0,
            ),
            (PixelLoss::CrossEntropy { pos_weight: 3.0 }, 0.7),
        ] {
            let cfg = TrainConfig {
                loss,
                dice_weight,
                ..TrainConfig::default()
            };
            let x =
                Tensor::<4>::from_data(TensorData::new(logits.clone(), shape), &ad).require_grad();
            let y = Tensor::<4>::from_data(TensorData::new(target.clone(), shape), &ad);
            let l = loss_fn(x.clone(), y, &cfg);
            let burn_value: f32 = l.clone().into_scalar();
            let burn_grad: Vec<f32> = x
                .grad(&l.backward())
                .expect("gradient")
                .into_data()
                .try_into_vec::<f32>()
                .expect("values");
            let (value, grad) = loss_and_gradient(&logits, &target, &cfg);
            assert!(
                (value - burn_value).abs() < 1e-5,
                "{loss:?}: {value} vs {burn_value}"
            );
            let scale = burn_grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            for (a, b) in grad.iter().zip(&burn_grad) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "{loss:?}: gradient {a} vs {b}"
                );
            }
        }
    }

    /// Ignored pixels change neither the loss nor any gradient but their own (which is 0).
    #[test]
    fn ignored_pixels_add_nothing() {
        let cfg = TrainConfig::default();
        let logits: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let target: Vec<f32> = (0..40).map(|i| f32::from(u8::from(i % 6 == 0))).collect();
        let (kept, kept_grad) = loss_and_gradient(&logits[..30], &target[..30], &cfg);
        let mut padded = target.clone();
        padded[30..].fill(IGNORE);
        let (value, grad) = loss_and_gradient(&logits, &padded, &cfg);
        assert!((value - kept).abs() < 1e-6, "{value} vs {kept}");
        assert!(grad[30..].iter().all(|&g| g == 0.0));
        for (a, b) in grad[..30].iter().zip(&kept_grad) {
            assert!((a - b).abs() < 1e-7);
        }
    }
}
