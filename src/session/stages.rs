//! The stages that both the CLI's chain ([`super::analyze`]) and the window's commands
//! ([`super::Session`]) run, so that they run them the same way: training (or loading) a
//! network, and detecting in every frame with its warnings.

use crate::detect::{Detection, Dropped, LocalizeConfig, Region, RegionTrack, detect_all};
use crate::error::Result;
use crate::jobs::JobCtx;
use crate::model::{
    CHECKPOINT_VERSION, CheckpointMeta, DeviceChoice, ModelConfig, Net, load_checkpoint,
    save_checkpoint, select_device,
};
use crate::movie::Movie;
use crate::raster::Raster;
use crate::train::{FrameLabels, TrainConfig, train};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A trained or loaded network, ready for inference.
pub struct Model {
    pub net: Net,
    pub device: Device,
    pub device_name: String,
    pub config: ModelConfig,
    pub mask_radius_px: f32,
    /// "trained here" or the folder it was loaded from.
    pub source: String,
    /// How training went, for a network trained here.
    pub training: Option<TrainSummary>,
}

impl Model {
    /// Save as a checkpoint folder (reusable with `--model` and by projects).
    pub fn save(&self, iterations: usize, dir: &Path) -> Result<()> {
        let meta = CheckpointMeta {
            format_version: CHECKPOINT_VERSION,
            model: self.config,
            iterations,
            mask_radius_px: self.mask_radius_px,
        };
        save_checkpoint(&self.net, &meta, dir)
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("device", &self.device_name)
            .field("source", &self.source)
            .finish()
    }
}

/// Detections in every frame, with the probability maps when they fit in memory.
#[derive(Debug, Clone, Default)]
pub struct Detected {
    pub all: Vec<Detection>,
    /// Extended defects (blobs larger than a point defect's) per frame.
    pub regions: Vec<Region>,
    /// The regions followed through frames, with their growth.
    pub region_tracks: Vec<RegionTrack>,
    /// One map per frame, probability × 255 (empty when the movie was too large to keep them).
    pub maps: Vec<Vec<u8>>,
    /// Blobs dropped by the filters, by reason.
    pub dropped: Dropped,
    pub warnings: Vec<String>,
}

/// Training summary for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub iterations: usize,
    pub seconds_per_iteration: f64,
    pub first_loss: f32,
    pub final_loss: f32,
    pub validation_iou: Vec<(usize, f32)>,
}

/// Train a network on frame 0's labels; checkpoints go to `checkpoint_dir` when given.
pub fn train_model(
    frame0: &Raster,
    labels: &FrameLabels,
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    ctx: &JobCtx,
) -> Result<Model> {
    let trained = train(frame0, labels, cfg, checkpoint_dir, ctx)?;
    let summary = TrainSummary {
        iterations: trained.losses.len(),
        seconds_per_iteration: trained.seconds / trained.losses.len().max(1) as f64,
        first_loss: trained.losses.first().copied().unwrap_or(f32::NAN),
        final_loss: trained.losses.last().copied().unwrap_or(f32::NAN),
        validation_iou: trained.validation,
    };
    Ok(Model {
        net: trained.net,
        device: trained.device,
        device_name: trained.device_name,
        config: cfg.model,
        mask_radius_px: labels.radius_px,
        source: "trained here".into(),
        training: Some(summary),
    })
}

/// A network saved as a checkpoint folder, on the device `choice` selects (a fallback from
/// the GPU is said as a warning).
pub fn load_model(dir: &Path, choice: DeviceChoice, ctx: &JobCtx) -> Result<Model> {
    let selected = select_device(choice)?;
    selected.announce(ctx);
    let (net, meta) = load_checkpoint(dir, &selected.device)?;
    Ok(Model {
        net,
        device: selected.device,
        device_name: selected.name,
        config: meta.model,
        mask_radius_px: meta.mask_radius_px,
        source: dir.display().to_string(),
        training: None,
    })
}

/// Detect in every frame: point defects, extended regions followed through the frames, what the
/// filters dropped (said as a warning), and, with `keep_maps`, every probability map (× 255).
pub fn detect(
    movie: &Movie,
    model: &Model,
    cfg: &LocalizeConfig,
    batch: usize,
    keep_maps: bool,
    ctx: &JobCtx,
) -> Result<Detected> {
    let mut maps = Vec::new();
    let max_area = cfg.max_area(model.mask_radius_px);
    let found = detect_all(
        &model.net,
        &model.config,
        &model.device,
        &movie.frames,
        batch.max(1),
        cfg,
        max_area,
        ctx,
        &mut |_, map: &Raster| {
            if keep_maps {
                maps.push(
                    map.data
                        .iter()
                        .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
                        .collect(),
                );
            }
        },
    )?;
    let mut warnings = Vec::new();
    let dropped = found.dropped;
    let lost = dropped.too_small + dropped.near_edge;
    if lost > 0 {
        warnings.push(format!(
            "{lost} blobs were dropped: {} too small, {} at the edge",
            dropped.too_small, dropped.near_edge
        ));
    }
    if !found.regions.is_empty() {
        warnings.push(format!(
            "{} blobs larger than {max_area} px kept as extended regions (pores, damaged areas)",
            found.regions.len()
        ));
    }
    let region_tracks = crate::detect::region_tracks(&found.regions);
    Ok(Detected {
        all: found.detections,
        regions: found.regions,
        region_tracks,
        maps,
        dropped,
        warnings,
    })
}

/// Frame 0's lattice as the labelling finds it (the one the window and the chain use for the
/// analysis and the site model); an error saying why where there is none.
pub fn frame_lattice(
    frame0: &Raster,
    method: &crate::lattice::LabelMethod,
    ctx: &JobCtx,
) -> Result<crate::lattice::LatticeFit> {
    let method = match method {
        crate::lattice::LabelMethod::Columns { .. } => method.clone(),
        crate::lattice::LabelMethod::FftResidual { .. } => crate::lattice::LabelMethod::default(),
    };
    crate::lattice::label_in(frame0, &method, ctx)?
        .lattice
        .ok_or_else(|| crate::error::Error::invalid("frame 0 shows no lattice"))
}
