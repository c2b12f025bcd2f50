//! Training a network on augmented crops of one labelled frame.
//!
//! Each iteration draws a batch of crops (in parallel, each from its own seeded RNG, so a run is
//! reproducible), computes a per-pixel focal loss plus a Dice loss, and takes an Adam step.
//! Progress, losses and validation IoU go to the [`JobCtx`]; checkpoints are saved on request;
//! a NaN/Inf loss stops training with an error and leaves the last good checkpoint in place.

use crate::augment::{AugmentConfig, Sample, random_sample};
use crate::detect::probability_maps;
use crate::error::{Error, Result};
use crate::jobs::{Event, JobCtx};
use crate::model::{
    CHECKPOINT_VERSION, CheckpointMeta, DeviceChoice, ModelConfig, Net, save_checkpoint,
    select_device,
};
use crate::raster::Raster;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Per-pixel classification loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PixelLoss {
    /// Binary cross-entropy, positives weighted by `pos_weight`.
    CrossEntropy { pos_weight: f32 },
    /// Focal loss (Lin et al. 2017) per pixel with focusing `gamma` and class balance `alpha`.
    Focal { gamma: f32, alpha: f32 },
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: ModelConfig,
    /// Side of the square training crops in pixels (multiple of the network's downsampling).
    pub crop: usize,
    pub batch: usize,
    pub iterations: usize,
    pub learning_rate: f64,
    pub loss: PixelLoss,
    /// Weight of the Dice loss added to the pixel loss (0 = none).
    pub dice_weight: f32,
    pub augment: AugmentConfig,
    pub seed: u64,
    /// Validate every this many iterations (0 = only at the end).
    pub validate_every: usize,
    /// Save a checkpoint every this many iterations (0 = only at the end).
    pub checkpoint_every: usize,
    pub device: DeviceChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelConfig::default(),
            crop: 128,
            batch: 8,
            iterations: 400,
            learning_rate: 2e-3,
            loss: PixelLoss::Focal {
                gamma: 2.0,
                alpha: 0.75,
            },
            dice_weight: 1.0,
            augment: AugmentConfig::default(),
            seed: 0,
            validate_every: 50,
            checkpoint_every: 100,
            device: DeviceChoice::Auto,
        }
    }
}

impl TrainConfig {
    /// Check the parameters and that a frame of `width`×`height` can be cropped.
    pub fn validate(&self, width: usize, height: usize) -> Result<()> {
        self.model.validate()?;
        self.augment.validate()?;
        let d = self.model.downsampling();
        if self.crop == 0 || !self.crop.is_multiple_of(d) {
            return Err(Error::invalid(format!(
                "crop size must be a positive multiple of {d} for this network, got {}",
                self.crop
            )));
        }
        if self.crop > width || self.crop > height {
            return Err(Error::invalid(format!(
                "frame of {width}x{height} px is too small for training crops of {} px; use a smaller --crop",
                self.crop
            )));
        }
        if self.batch == 0 || self.iterations == 0 {
            return Err(Error::invalid(
                "batch size and iterations must be at least 1",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::invalid(format!(
                "learning rate must be > 0, got {}",
                self.learning_rate
            )));
        }
        match self.loss {
            PixelLoss::CrossEntropy { pos_weight } if pos_weight.is_nan() || pos_weight <= 0.0 => {
                return Err(Error::invalid("cross-entropy positive weight must be > 0"));
            }
            PixelLoss::Focal { gamma, alpha }
                if !(gamma >= 0.0 && (0.0..=1.0).contains(&alpha)) =>
            {
                return Err(Error::invalid(
                    "focal loss needs gamma ≥ 0 and 0 ≤ alpha ≤ 1",
                ));
            }
            _ => {}
        }
        if self.dice_weight.is_nan() || self.dice_weight < 0.0 {
            return Err(Error::invalid("Dice weight must be ≥ 0"));
        }
        Ok(())
    }
}

/// What a training run produced.
#[derive(Debug)]
pub struct Trained {
    /// The network in inference mode, on `device`.
    pub net: Net,
    pub device: Device,
    pub device_name: String,
    pub losses: Vec<f32>,
    /// Wall time of each iteration, s: crops, forward, loss read back, backward, optimiser step
    /// (and a periodic checkpoint where one was saved; validation is not included).
    pub iteration_seconds: Vec<f64>,
    pub validation: Vec<(usize, f32)>,
    pub seconds: f64,
}

/// The network input (`frame` prepared for `model`) and the 0/1 target that crops are cut from.
fn training_images(frame: &Raster, mask: &[bool], model: &ModelConfig) -> Result<(Raster, Raster)> {
    if mask.len() != frame.data.len() {
        return Err(Error::invalid("training mask and frame differ in size"));
    }
    let target = Raster::from_vec(
        frame.width,
        frame.height,
        mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect(),
    )?;
    Ok((model.prepare(frame), target))
}

/// `n` augmented training crops drawn with `seed` as training draws them, to preview the
/// augmentation settings.
pub fn preview_samples(
    frame: &Raster,
    mask: &[bool],
    cfg: &TrainConfig,
    n: usize,
    seed: u64,
) -> Result<Vec<Sample>> {
    cfg.validate(frame.width, frame.height)?;
    let (image, target) = training_images(frame, mask, &cfg.model)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((0..n)
        .map(|_| random_sample(&image, &target, cfg.crop, &cfg.augment, &mut rng))
        .collect())
}

/// Train on `frame` with its 0/1 `mask`. Checkpoints go to `checkpoint_dir` when given.
pub fn train(
    frame: &Raster,
    mask: &[bool],
    mask_radius_px: f32,
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    ctx: &JobCtx,
) -> Result<Trained> {
    cfg.validate(frame.width, frame.height)?;
    if !mask.iter().any(|&m| m) {
        return Err(Error::invalid(
            "the frame-0 labels mark no defects, so there is nothing to learn; adjust the labelling thresholds",
        ));
    }
    let selected = select_device(cfg.device)?;
    if let Some(w) = &selected.warning {
        ctx.emit(Event::Warning(w.clone()));
    }
    ctx.emit(Event::Info(format!("training on {}", selected.name)));
    let device = selected.device.clone().autodiff();
    let (image, target) = training_images(frame, mask, &cfg.model)?;
    let validation_crops = validation_set(frame, &target, cfg.crop);
    // Seed the backend's generator so that the initial weights, and so the run, are reproducible.
    device.seed(cfg.seed);
    let mut net = cfg.model.init(&device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::with_capacity(cfg.iterations);
    let mut iteration_seconds = Vec::with_capacity(cfg.iterations);
    let mut validation = Vec::new();
    let meta = |iterations| CheckpointMeta {
        format_version: CHECKPOINT_VERSION,
        model: cfg.model,
        iterations,
        mask_radius_px,
    };
    let start = Instant::now();
    let mut last_good = None;
    ctx.begin("training", cfg.iterations as u64);
    for it in 0..cfg.iterations {
        let iteration_start = Instant::now();
        let (x, y) = batch(&image, &target, cfg, it, &device);
        let logits = net.forward(x);
        let loss = loss_fn(logits, y, cfg);
        let value: f32 = loss.clone().into_scalar();
        if !value.is_finite() {
            return Err(Error::invalid(format!(
                "training diverged at iteration {it} (loss {value}); lower the learning rate{}",
                match (last_good, checkpoint_dir) {
                    (Some(n), Some(_)) => format!(
                        "; the checkpoint of iteration {n}, whose loss was finite, was kept"
                    ),
                    (None, Some(_)) => "; no checkpoint had been saved yet".to_string(),
                    (_, None) => String::new(),
                }
            )));
        }
        // Periodic checkpoints hold weights that have just given a finite loss.
        if let Some(dir) = checkpoint_dir
            && cfg.checkpoint_every > 0
            && it > 0
            && it % cfg.checkpoint_every == 0
        {
            save_checkpoint(&net.valid(), &meta(it), dir)?;
            last_good = Some(it);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(learning_rate(cfg, it), net, grads);
        losses.push(value);
        iteration_seconds.push(iteration_start.elapsed().as_secs_f64());
        ctx.emit(Event::TrainStep {
            iteration: it,
            loss: value,
        });
        let done = it + 1;
        let last = done == cfg.iterations;
        if (cfg.validate_every > 0 && done % cfg.validate_every == 0) || last {
            let iou = validation_iou(
                &net.valid(),
                &cfg.model,
                &validation_crops,
                &selected.device,
            )?;
            validation.push((done, iou));
            ctx.emit(Event::Validation {
                iteration: done,
                iou,
            });
        }
        if let Some(dir) = checkpoint_dir
            && last
        {
            save_checkpoint(&net.valid(), &meta(done), dir)?;
        }
        ctx.step(done as u64)?;
    }
    Ok(Trained {
        net: net.valid(),
        device: selected.device,
        device_name: selected.name,
        losses,
        iteration_seconds,
        validation,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Cosine decay from the configured rate to a tenth of it over the run.
fn learning_rate(cfg: &TrainConfig, iteration: usize) -> f64 {
    let t = iteration as f64 / cfg.iterations.max(1) as f64;
    cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// One batch of augmented crops as tensors `[batch, 1, crop, crop]`.
fn batch(
    image: &Raster,
    target: &Raster,
    cfg: &TrainConfig,
    iteration: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let samples: Vec<_> = (0..cfg.batch)
        .into_par_iter()
        .map(|k| {
            let seed = cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((iteration * cfg.batch + k) as u64);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            random_sample(image, target, cfg.crop, &cfg.augment, &mut rng)
        })
        .collect();
    let n = cfg.crop * cfg.crop;
    let mut xs = Vec::with_capacity(cfg.batch * n);
    let mut ys = Vec::with_capacity(cfg.batch * n);
    for s in samples {
        xs.extend_from_slice(&s.image.data);
        ys.extend_from_slice(&s.mask.data);
    }
    let shape = [cfg.batch, 1, cfg.crop, cfg.crop];
    (
        Tensor::from_data(TensorData::new(xs, shape), device),
        Tensor::from_data(TensorData::new(ys, shape), device),
    )
}

/// Mean per-pixel loss plus weighted Dice loss.
fn loss_fn(logits: Tensor<4>, target: Tensor<4>, cfg: &TrainConfig) -> Tensor<1> {
    // Numerically stable BCE with logits: max(x,0) − x·y + log(1 + e^{−|x|}).
    let bce = logits.clone().clamp_min(0.0) - logits.clone() * target.clone()
        + logits.clone().abs().neg().exp().log1p();
    let p = sigmoid(logits);
    let pixel = match cfg.loss {
        PixelLoss::CrossEntropy { pos_weight } => {
            let w = target.clone().mul_scalar(pos_weight - 1.0).add_scalar(1.0);
            (bce * w).mean()
        }
        PixelLoss::Focal { gamma, alpha } => {
            // p_t = p for positives, 1 − p for negatives.
            let one_minus_pt =
                p.clone() + target.clone() - (p.clone() * target.clone()).mul_scalar(2.0);
            let alpha_t = target
                .clone()
                .mul_scalar(2.0 * alpha - 1.0)
                .add_scalar(1.0 - alpha);
            (one_minus_pt.powf_scalar(gamma) * alpha_t * bce).mean()
        }
    };
    if cfg.dice_weight > 0.0 {
        let inter = (p.clone() * target.clone()).sum();
        let dice = inter.mul_scalar(2.0).add_scalar(1.0) / (p.sum() + target.sum()).add_scalar(1.0);
        pixel + dice.neg().add_scalar(1.0).mul_scalar(cfg.dice_weight)
    } else {
        pixel
    }
}

/// Fixed, un-augmented crops of the labelled frame at its corners: raw images and 0/1 masks.
fn validation_set(frame: &Raster, target: &Raster, crop: usize) -> (Vec<Raster>, Vec<Raster>) {
    let (xr, yb) = (frame.width - crop, frame.height - crop);
    let mut corners = vec![(0, 0), (xr, 0), (0, yb), (xr, yb)];
    corners.sort_unstable();
    corners.dedup();
    corners
        .into_iter()
        .map(|(x, y)| (frame.crop(x, y, crop, crop), target.crop(x, y, crop, crop)))
        .unzip()
}

/// Intersection over union of the thresholded prediction (p > 0.5) with the labels, with the
/// crops prepared and inferred exactly as detection does (in one batch).
fn validation_iou(
    net: &Net,
    model: &ModelConfig,
    (images, masks): &(Vec<Raster>, Vec<Raster>),
    device: &Device,
) -> Result<f32> {
    let probs = probability_maps(net, model, device, images)?;
    let (mut inter, mut union) = (0usize, 0usize);
    for (p, m) in probs.iter().zip(masks) {
        for (p, m) in p.data.iter().zip(&m.data) {
            let (a, b) = (*p > 0.5, *m > 0.5);
            inter += (a && b) as usize;
            union += (a || b) as usize;
        }
    }
    Ok(if union == 0 {
        1.0
    } else {
        inter as f32 / union as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;

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
            &vec![false; 64 * 64],
            3.0,
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
        let t = train(&frame, &mask, 4.0, &cfg, None, &JobCtx::detached()).expect("train");
        let first: f32 = t.losses[..5].iter().sum();
        let last: f32 = t.losses[35..].iter().sum();
        assert!(last < first, "loss must fall: {first} → {last}");

        let ctx = JobCtx::detached();
        ctx.cancel();
        let err = train(&frame, &mask, 4.0, &cfg, None, &ctx).expect_err("cancelled");
        assert!(matches!(err, Error::Cancelled));
    }
}
