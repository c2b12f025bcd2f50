//! Training a network on augmented crops of one labelled frame.
//!
//! Each iteration draws a batch of crops (in parallel, each from its own seeded RNG, so a run is
//! reproducible), computes a per-pixel focal loss plus a Dice loss, and takes an Adam step: on
//! the CPU through our own kernels (`model::cpu_train`), on a GPU through burn's autodiff.
//! Progress, losses and validation IoU go to the [`JobCtx`]; checkpoints are saved on request;
//! a NaN/Inf (or exploding) loss stops training with an error and leaves the last good checkpoint
//! in place; a GPU that fails hands the rest of the run to the CPU.

use crate::augment::{AugmentConfig, CropCentres, Sample, random_sample};
use crate::detect::probability_maps;
use crate::error::{Error, Result};
use crate::jobs::{Event, JobCtx, guarded};
use crate::model::cpu_train::{CpuTrainer, Tape};
use crate::model::{
    CHECKPOINT_VERSION, CheckpointMeta, DeviceChoice, ModelConfig, Net, save_checkpoint,
    select_device,
};
use crate::raster::Raster;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use loss::{IGNORE, loss_and_gradient, loss_fn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod loss;

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
            iterations: 800,
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

/// What frame 0's labels give training: the defect mask, the pixels to leave out (lattice-free
/// areas: neither defects nor negatives; empty = none), and the mask's disk radius.
#[derive(Debug, Clone, Copy)]
pub struct FrameLabels<'a> {
    pub mask: &'a [bool],
    pub ignore: &'a [bool],
    pub radius_px: f32,
}

impl<'a> FrameLabels<'a> {
    /// A mask with no pixel left out.
    pub fn new(mask: &'a [bool], radius_px: f32) -> Self {
        FrameLabels {
            mask,
            ignore: &[],
            radius_px,
        }
    }
}

/// The network input (`frame` prepared for `model`) and the target that crops are cut from:
/// 1 on defects, 0 elsewhere, [`loss::IGNORE`] where the labels leave pixels out.
fn training_images(
    frame: &Raster,
    labels: &FrameLabels,
    model: &ModelConfig,
) -> Result<(Raster, Raster)> {
    let n = frame.data.len();
    if labels.mask.len() != n || !(labels.ignore.is_empty() || labels.ignore.len() == n) {
        return Err(Error::invalid("training mask and frame differ in size"));
    }
    let ignored = |i: usize| labels.ignore.get(i).copied().unwrap_or(false);
    let target = Raster::from_vec(
        frame.width,
        frame.height,
        (0..n)
            .map(|i| match (labels.mask[i], ignored(i)) {
                (true, _) => 1.0,
                (false, true) => IGNORE,
                (false, false) => 0.0,
            })
            .collect(),
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
    let (image, target) = training_images(frame, &FrameLabels::new(mask, 0.0), &cfg.model)?;
    let centres = CropCentres::from_mask(&image, &target);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((0..n)
        .map(|_| random_sample(&image, &target, &centres, cfg.crop, &cfg.augment, &mut rng))
        .collect())
}

/// Train on `frame` with its labels. Checkpoints go to `checkpoint_dir` when given.
///
/// If the GPU fails midway (an error, or a panic as when the device is lost), training goes on
/// on the CPU from the weights of the last validation, with a warning.
pub fn train(
    frame: &Raster,
    labels: &FrameLabels,
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    ctx: &JobCtx,
) -> Result<Trained> {
    train_with(frame, labels, cfg, checkpoint_dir, ctx, Faults::default())
}

/// Below this frame-0 IoU at the end of training, the network has not learned its labels.
const LEARNED_IOU: f32 = 0.3;

/// A warning when the last validation says the network did not learn its labels, with what to
/// try.
fn unlearned(validation: &[(usize, f32)]) -> Option<String> {
    let &(_, iou) = validation.last()?;
    (iou < LEARNED_IOU).then(|| {
        format!(
            "the network did not learn its labels (frame-0 IoU {iou:.2} at the end): train longer, lower the learning rate, or check the labels (Ground truth)"
        )
    })
}

/// After the GPU failed at iteration `it`: a CPU learner from the weights kept in `rescue`
/// (their iteration said as a warning), or the failure when none were kept.
fn fall_back_to_cpu(
    rescue: &mut Option<(usize, CpuTrainer)>,
    on: &mut (Device, String),
    failure: Error,
    it: usize,
    cfg: &TrainConfig,
    ctx: &JobCtx,
) -> Result<Learner> {
    let Some((from, trainer)) = rescue.take() else {
        return Err(failure);
    };
    ctx.emit(Event::Warning(format!(
        "the GPU failed at iteration {it} ({failure}); training goes on on the CPU from the weights of iteration {from}"
    )));
    *on = (Device::flex(), "cpu".to_string());
    Ok(Learner::Cpu {
        trainer,
        template: cfg.model.init(&Device::flex()),
        device: Device::flex(),
    })
}

/// The error of a run whose loss went to `value` at iteration `it`, saying which checkpoint
/// was kept.
fn diverged(it: usize, value: f32, last_good: Option<usize>, checkpoints: bool) -> Error {
    Error::invalid(format!(
        "training diverged at iteration {it} (loss {value}); lower the learning rate{}",
        match (last_good, checkpoints) {
            (Some(n), true) => {
                format!("; the checkpoint of iteration {n}, whose loss was finite, was kept")
            }
            (None, true) => "; no checkpoint had been saved yet".to_string(),
            (_, false) => String::new(),
        }
    ))
}

/// The frame-0 IoU of the network now, and (on a GPU, `keep_copy`) a host copy of its weights
/// to go on from if the GPU fails later.
fn validate(
    learner: &Learner,
    keep_copy: bool,
    cfg: &TrainConfig,
    crops: &(Vec<Raster>, Vec<Raster>),
    device: &Device,
) -> Result<(Option<CpuTrainer>, f32)> {
    let net = learner.net();
    let copy = match keep_copy {
        true => Some(CpuTrainer::new(&net)?),
        false => None,
    };
    let iou = validation_iou(&net, &cfg.model, crops, device)?;
    Ok((copy, iou))
}

/// What tests make happen: burn's path on the CPU standing in for a GPU, and that "GPU"
/// failing (a panic) when asked for the loss of an iteration, or at the validation after an
/// iteration.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    burn_on_cpu: bool,
    gpu_panics_at: Option<usize>,
    validation_panics_after: Option<usize>,
}

fn train_with(
    frame: &Raster,
    labels: &FrameLabels,
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    ctx: &JobCtx,
    faults: Faults,
) -> Result<Trained> {
    cfg.validate(frame.width, frame.height)?;
    if !labels.mask.iter().any(|&m| m) {
        return Err(Error::invalid(
            "the frame-0 labels mark no defects, so there is nothing to learn; adjust the labelling thresholds",
        ));
    }
    let selected = select_device(cfg.device)?;
    selected.announce(ctx);
    ctx.emit(Event::Info(format!("training on {}", selected.name)));
    let (image, target) = training_images(frame, labels, &cfg.model)?;
    let validation_crops = validation_set(frame, &target, cfg.crop);
    let mut learner = Learner::new(cfg, &selected.device, faults.burn_on_cpu)?;
    let mut batches = Batches::new(image, target, cfg);
    // The device training runs on, and its name: the CPU's once the GPU has failed.
    let mut on = (selected.device.clone(), selected.name.clone());
    // On a GPU: the weights on the host (refreshed at each validation) and their iteration,
    // to go on from on the CPU if the GPU fails.
    let mut rescue = match learner {
        Learner::Cpu { .. } => None,
        Learner::Burn { .. } => Some((0, CpuTrainer::new(&learner.net())?)),
    };
    let fall_back =
        |rescue: &mut Option<(usize, CpuTrainer)>,
         on: &mut (Device, String),
         failure: Error,
         it: usize| fall_back_to_cpu(rescue, on, failure, it, cfg, ctx);
    let mut losses = Vec::with_capacity(cfg.iterations);
    let mut iteration_seconds = Vec::with_capacity(cfg.iterations);
    let mut validation = Vec::new();
    let meta = |iterations| CheckpointMeta {
        format_version: CHECKPOINT_VERSION,
        model: cfg.model,
        iterations,
        mask_radius_px: labels.radius_px,
    };
    let start = Instant::now();
    let mut last_good = None;
    ctx.begin("training", cfg.iterations as u64);
    for it in 0..cfg.iterations {
        let iteration_start = Instant::now();
        let (x, y) = batches.get(it, matches!(learner, Learner::Burn { .. }));
        let attempt = guarded(|| {
            if faults.gpu_panics_at == Some(it) {
                std::panic::panic_any(format!("injected GPU failure at iteration {it}"));
            }
            learner.loss(&x, &y, cfg)
        });
        let (value, pending) = match attempt {
            Ok(done) => done,
            Err(failure) => {
                learner = fall_back(&mut rescue, &mut on, failure, it)?;
                learner.loss(&x, &y, cfg)?
            }
        };
        // Diverged: not finite, or exploded far above where it started (the CPU path keeps its
        // sums in f64, so huge weights give a huge loss before they give an infinite one).
        let first = losses.first().copied().unwrap_or(value);
        if !value.is_finite() || value > EXPLODED * first.max(1e-2) {
            return Err(diverged(it, value, last_good, checkpoint_dir.is_some()));
        }
        // Periodic checkpoints hold weights that have just given a finite loss.
        if let Some(dir) = checkpoint_dir
            && cfg.checkpoint_every > 0
            && it > 0
            && it % cfg.checkpoint_every == 0
        {
            save_checkpoint(&learner.net(), &meta(it), dir)?;
            last_good = Some(it);
        }
        let rate = learning_rate(cfg, it);
        learner = match guarded(move || learner.step(pending, rate)) {
            Ok(stepped) => stepped,
            Err(failure) => fall_back(&mut rescue, &mut on, failure, it)?,
        };
        losses.push(value);
        iteration_seconds.push(iteration_start.elapsed().as_secs_f64());
        ctx.emit(Event::TrainStep {
            iteration: it,
            loss: value,
        });
        let done = it + 1;
        let last = done == cfg.iterations;
        if (cfg.validate_every > 0 && done % cfg.validate_every == 0) || last {
            // The weights come to the host here (for a GPU failing later), and the GPU may
            // fail here too: then the run goes on on the CPU from the last validation's
            // weights, and this validation, of weights no longer trained, is left out.
            let validated = guarded(|| {
                if faults.validation_panics_after == Some(done) {
                    std::panic::panic_any(format!("injected GPU failure validating {done}"));
                }
                validate(&learner, rescue.is_some(), cfg, &validation_crops, &on.0)
            });
            match validated {
                Ok((copy, iou)) => {
                    if let Some(copy) = copy {
                        rescue = Some((done, copy));
                    }
                    validation.push((done, iou));
                    ctx.emit(Event::Validation {
                        iteration: done,
                        iou,
                    });
                }
                Err(failure) => learner = fall_back(&mut rescue, &mut on, failure, done)?,
            }
        }
        if let Some(dir) = checkpoint_dir
            && last
        {
            save_checkpoint(&learner.net(), &meta(done), dir)?;
        }
        ctx.step(done as u64)?;
    }
    if let Some(w) = unlearned(&validation) {
        ctx.emit(Event::Warning(w));
    }
    Ok(Trained {
        net: learner.net(),
        device: on.0,
        device_name: on.1,
        losses,
        iteration_seconds,
        validation,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A loss this many times its first value means training has diverged. The focal + Dice loss
/// starts near 1 and falls; it never comes near this while training works.
const EXPLODED: f32 = 1e4;

/// Cosine decay from the configured rate to a tenth of it over the run.
fn learning_rate(cfg: &TrainConfig, iteration: usize) -> f64 {
    let t = iteration as f64 / cfg.iterations.max(1) as f64;
    cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// What takes the training steps: burn's autodiff on a GPU, our own path
/// ([`CpuTrainer`], several times faster than burn's flex backend) on the CPU. Both start from
/// the same seeded initial weights and compute the same loss, gradients and Adam step.
enum Learner {
    Burn {
        /// On the autodiff device.
        net: Net,
        optim: ModuleOptimizer,
        device: Device,
    },
    Cpu {
        trainer: CpuTrainer,
        /// A network of the right shape to write the weights into.
        template: Net,
        device: Device,
    },
}

/// A computed loss waiting for its backward pass.
enum Pending {
    Burn(Tensor<1>),
    Cpu(Tape, Vec<f32>),
}

impl Learner {
    /// Our CPU path on the CPU, burn elsewhere (or everywhere with `burn_everywhere`, which
    /// tests use to compare the two).
    fn new(cfg: &TrainConfig, device: &Device, burn_everywhere: bool) -> Result<Self> {
        // Seed the backend's generator so that the initial weights, and so the run, are
        // reproducible.
        if *device == Device::flex() && !burn_everywhere {
            let template = cfg.model.init_seeded(device, cfg.seed);
            return Ok(Learner::Cpu {
                trainer: CpuTrainer::new(&template)?,
                template,
                device: device.clone(),
            });
        }
        let device = device.clone().autodiff();
        Ok(Learner::Burn {
            net: cfg.model.init_seeded(&device, cfg.seed),
            optim: AdamConfig::new().init(),
            device,
        })
    }

    /// Forward pass and loss of a batch (images and 0/1 targets, `batch × crop × crop`).
    fn loss(&mut self, x: &[f32], y: &[f32], cfg: &TrainConfig) -> Result<(f32, Pending)> {
        match self {
            Learner::Burn { net, device, .. } => {
                let shape = [cfg.batch, 1, cfg.crop, cfg.crop];
                let x = Tensor::from_data(TensorData::new(x.to_vec(), shape), &*device);
                let y = Tensor::from_data(TensorData::new(y.to_vec(), shape), &*device);
                let loss = loss_fn(net.forward(x), y, cfg);
                Ok((loss.clone().into_scalar(), Pending::Burn(loss)))
            }
            Learner::Cpu { trainer, .. } => {
                let tape = trainer.forward(x, cfg.batch, cfg.crop, cfg.crop)?;
                let (value, dlogits) = loss_and_gradient(&tape.logits()?, y, cfg);
                Ok((value, Pending::Cpu(tape, dlogits)))
            }
        }
    }

    /// Backward pass and Adam step.
    fn step(self, pending: Pending, learning_rate: f64) -> Result<Self> {
        Ok(match (self, pending) {
            (
                Learner::Burn {
                    net,
                    mut optim,
                    device,
                },
                Pending::Burn(loss),
            ) => {
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                Learner::Burn {
                    net: optim.step(learning_rate, net, grads),
                    optim,
                    device,
                }
            }
            (
                Learner::Cpu {
                    mut trainer,
                    template,
                    device,
                },
                Pending::Cpu(tape, dlogits),
            ) => {
                let grad = trainer.backward(tape, &dlogits)?;
                trainer.adam_step(&grad, learning_rate);
                Learner::Cpu {
                    trainer,
                    template,
                    device,
                }
            }
            _ => return Err(Error::Device("training step of the wrong kind".into())),
        })
    }

    /// The network as it is now, in inference mode, on the selected device.
    fn net(&self) -> Net {
        match self {
            Learner::Burn { net, .. } => net.valid(),
            Learner::Cpu {
                trainer,
                template,
                device,
            } => trainer.write_into(template.clone(), device),
        }
    }
}

/// The batches of a run, iteration by iteration. While the network runs on a GPU, the next
/// iteration's batch is made on the CPU's threads during the current iteration, so that the GPU
/// does not wait for the augmentation. (On the CPU path that would only take cores from the
/// training itself.) Each batch depends only on its iteration, so this changes no result.
struct Batches {
    image: Arc<Raster>,
    target: Arc<Raster>,
    centres: Arc<CropCentres>,
    cfg: TrainConfig,
    /// The batch being made ahead, and its iteration.
    ahead: Option<(usize, std::thread::JoinHandle<Batch>)>,
}

/// Images and 0/1 targets, `batch × crop × crop` each.
type Batch = (Vec<f32>, Vec<f32>);

impl Batches {
    fn new(image: Raster, target: Raster, cfg: &TrainConfig) -> Self {
        Batches {
            centres: Arc::new(CropCentres::from_mask(&image, &target)),
            image: Arc::new(image),
            target: Arc::new(target),
            cfg: cfg.clone(),
            ahead: None,
        }
    }

    /// The batch of iteration `it`; with `make_next_ahead`, the next one is begun in the
    /// background.
    fn get(&mut self, it: usize, make_next_ahead: bool) -> Batch {
        let made = match self.ahead.take() {
            Some((i, handle)) if i == it => handle.join().ok(),
            _ => None,
        };
        let current =
            made.unwrap_or_else(|| batch(&self.image, &self.target, &self.centres, &self.cfg, it));
        if make_next_ahead && it + 1 < self.cfg.iterations {
            let (image, target, centres, cfg) = (
                Arc::clone(&self.image),
                Arc::clone(&self.target),
                Arc::clone(&self.centres),
                self.cfg.clone(),
            );
            let handle = std::thread::spawn(move || batch(&image, &target, &centres, &cfg, it + 1));
            self.ahead = Some((it + 1, handle));
        }
        current
    }
}

/// One batch of augmented crops.
fn batch(
    image: &Raster,
    target: &Raster,
    centres: &CropCentres,
    cfg: &TrainConfig,
    iteration: usize,
) -> Batch {
    let samples: Vec<_> = (0..cfg.batch)
        .into_par_iter()
        .map(|k| {
            let seed = cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((iteration * cfg.batch + k) as u64);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            random_sample(image, target, centres, cfg.crop, &cfg.augment, &mut rng)
        })
        .collect();
    let n = cfg.crop * cfg.crop;
    let mut xs = Vec::with_capacity(cfg.batch * n);
    let mut ys = Vec::with_capacity(cfg.batch * n);
    for s in samples {
        xs.extend_from_slice(&s.image.data);
        ys.extend_from_slice(&s.mask.data);
    }
    (xs, ys)
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
            if *m < 0.0 {
                continue;
            }
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
mod tests;
