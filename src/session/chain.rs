//! The detection chain run whole: label frame 0 → train (or load) a network → detect in every
//! frame → the site model → write results. The CLI's `analyze`, `bench` and the tests call
//! [`analyze`]; the window runs the same stages one command at a time ([`super::Session`]).

use super::stages::{TrainSummary, detect, load_model, train_model};
use crate::analysis::AnalysisConfig;
use crate::detect::{
    Detection, Dropped, LocalizeConfig, Region, detections_csv, growth_csv, region_tracks,
    regions_csv,
};
use crate::error::{Error, Result};
use crate::export::{atomic_write, ensure_dir, mask_overlay_png};
use crate::jobs::{Event, JobCtx, StageTime};
use crate::lattice::{LabelMethod, Labels, label_in};
use crate::movie::Movie;
use crate::score::{Score, score_frame};
use crate::sites::{SiteAnalysis, SiteModelConfig, analyze_sites, off_lattice};
use crate::synth::TruthDefect;
use crate::train::{FrameLabels, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The settings of every stage of the chain: the CLI's `analyze` runs them all; the window
/// holds them in its [`super::Settings`] and runs each stage on request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyzeConfig {
    pub label: LabelMethod,
    pub train: TrainConfig,
    pub localize: LocalizeConfig,
    /// Frames per forward pass during detection.
    pub inference_batch: usize,
    /// Classes, tracks, time series, PCA (run after detection unless switched off).
    pub analysis: AnalysisConfig,
    /// The site model over the lattice's columns (movies of ≥ 2 frames labelled from their
    /// lattice).
    pub sites: SiteModelConfig,
    /// Whether the chain runs the site model after detection.
    pub run_sites: bool,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        AnalyzeConfig {
            label: LabelMethod::default(),
            train: TrainConfig::default(),
            localize: LocalizeConfig::default(),
            inference_batch: 2,
            analysis: AnalysisConfig::default(),
            sites: SiteModelConfig::default(),
            run_sites: true,
        }
    }
}

/// The outcome of [`analyze`].
#[derive(Debug)]
pub struct Analysis {
    pub labels: Option<Labels>,
    pub detections: Vec<Detection>,
    pub counts_per_frame: Vec<usize>,
    pub dropped: Dropped,
    /// Extended defects (blobs larger than a point defect's), per frame.
    pub regions: Vec<Region>,
    pub timings: Vec<StageTime>,
    pub device: String,
    /// "trained" or the checkpoint folder the model came from.
    pub model_source: String,
    pub training: Option<TrainSummary>,
    pub warnings: Vec<String>,
    /// The site model's defects, tracks and rates, where it ran.
    pub sites: Option<SiteAnalysis>,
}

impl Analysis {
    pub fn seconds(&self, stage: &str) -> f64 {
        self.timings
            .iter()
            .filter(|t| t.stage == stage)
            .map(|t| t.seconds)
            .sum()
    }
}

/// Run the whole detection chain on `movie`. With `model_dir` the network is loaded instead of
/// trained; with `checkpoint_dir` training saves checkpoints there.
pub fn analyze(
    movie: &Movie,
    cfg: &AnalyzeConfig,
    model_dir: Option<&Path>,
    checkpoint_dir: Option<&Path>,
    ctx: &JobCtx,
) -> Result<Analysis> {
    movie.validate()?;
    cfg.localize.validate()?;
    cfg.label.validate()?;
    if model_dir.is_none() {
        cfg.train.validate(movie.width(), movie.height())?;
    }
    let mut warnings = Vec::new();
    let mut warn = |w: String, ctx: &JobCtx| {
        ctx.emit(Event::Warning(w.clone()));
        warnings.push(w);
    };
    let mut timings = Vec::new();
    let frame0 = &movie.frames[0];

    ctx.begin("labelling frame 0", 1);
    let t = Instant::now();
    let labels = match label_in(frame0, &cfg.label, ctx) {
        Ok(l) => Some(l),
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) if model_dir.is_some() => {
            warn(
                format!("frame 0 could not be labelled ({e}); using the given model only"),
                ctx,
            );
            None
        }
        Err(e) => return Err(e),
    };
    timings.push(StageTime {
        stage: "label".into(),
        seconds: t.elapsed().as_secs_f64(),
    });
    ctx.step(1)?;

    let t = Instant::now();
    let model = match model_dir {
        Some(dir) => load_model(dir, cfg.train.device, ctx)?,
        None => {
            let labels = labels
                .as_ref()
                .ok_or_else(|| Error::invalid("frame 0 has no labels to train on"))?;
            let ignore = labels.ignore_mask();
            let frame_labels = FrameLabels {
                mask: &labels.mask,
                ignore: &ignore,
                radius_px: labels.mask_radius_px(),
            };
            train_model(frame0, &frame_labels, &cfg.train, checkpoint_dir, ctx)?
        }
    };
    let training = model.training.clone();
    timings.push(StageTime {
        stage: if training.is_some() {
            "train"
        } else {
            "load model"
        }
        .into(),
        seconds: t.elapsed().as_secs_f64(),
    });

    let t = Instant::now();
    let found = detect(
        movie,
        &model,
        &cfg.localize,
        cfg.inference_batch,
        false,
        ctx,
    )?;
    timings.push(StageTime {
        stage: "detect".into(),
        seconds: t.elapsed().as_secs_f64(),
    });
    for w in &found.warnings {
        warn(w.clone(), ctx);
    }
    let (detections, dropped, regions) = (found.all, found.dropped, found.regions);
    let lattice = labels.as_ref().and_then(|l| l.lattice.as_ref());
    let sites = match (cfg.run_sites, lattice) {
        (true, Some(fit)) if movie.frames.len() >= 2 => {
            let t = Instant::now();
            let fitted = match analyze_sites(&movie.frames, fit, movie.calibration, &cfg.sites, ctx)
            {
                Ok(a) => Some(a),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => {
                    warn(format!("the site model could not run: {e}"), ctx);
                    None
                }
            };
            timings.push(StageTime {
                stage: "sites".into(),
                seconds: t.elapsed().as_secs_f64(),
            });
            fitted
        }
        _ => None,
    };
    Ok(Analysis {
        labels,
        counts_per_frame: counts_per_frame(&detections, movie.frames.len()),
        detections,
        dropped,
        regions,
        timings,
        device: model.device_name,
        model_source: model.source,
        training,
        warnings,
        sites,
    })
}

/// How many of `detections` lie in each of `frames` frames.
pub fn counts_per_frame(detections: &[Detection], frames: usize) -> Vec<usize> {
    let mut counts = vec![0; frames];
    for d in detections {
        if let Some(c) = counts.get_mut(d.frame) {
            *c += 1;
        }
    }
    counts
}

/// Score detections against truth: all frames from `first_frame` on, one-to-one within `radius`.
pub fn score_against_truth(
    analysis: &Analysis,
    truth: &[TruthDefect],
    movie: &Movie,
    first_frame: usize,
    radius: f32,
    margin: f32,
) -> Score {
    score_points(truth, movie, first_frame, radius, margin, |f| {
        analysis
            .detections
            .iter()
            .filter(|d| d.frame == f)
            .map(|d| (d.x, d.y))
            .collect()
    })
}

/// Score the points `found(frame)` against truth, as [`score_against_truth`] does.
pub fn score_points(
    truth: &[TruthDefect],
    movie: &Movie,
    first_frame: usize,
    radius: f32,
    margin: f32,
    found: impl Fn(usize) -> Vec<(f32, f32)>,
) -> Score {
    let mut total = Score::default();
    for f in first_frame..movie.frames.len() {
        let t: Vec<TruthDefect> = truth.iter().filter(|t| t.frame == f).copied().collect();
        total.add(&score_frame(
            &found(f),
            &t,
            radius,
            movie.width(),
            movie.height(),
            margin,
        ));
    }
    total
}

/// The site model's defects in `frame`, with the network's detections off the lattice's
/// columns (farther than half the nearest column distance from every column): what the site
/// model cannot express (pores, adatoms, unknown defects) is left to the network.
pub fn combined_points(analysis: &Analysis, frame: usize) -> Option<Vec<(f32, f32)>> {
    let sites = analysis.sites.as_ref()?;
    let spacing = sites.series.fits.get(frame)?.as_ref()?.nearest_column_px;
    let network: Vec<(f32, f32)> = analysis
        .detections
        .iter()
        .filter(|d| d.frame == frame)
        .map(|d| (d.x, d.y))
        .collect();
    let mut points: Vec<(f32, f32)> = sites
        .defects
        .iter()
        .filter(|d| d.frame == frame)
        .map(|d| (d.x, d.y))
        .collect();
    points.extend(off_lattice(sites, frame, &network, 0.5 * spacing));
    Some(points)
}

/// Files written by [`write_results`].
#[derive(Debug, Clone)]
pub struct Written {
    pub defects_csv: PathBuf,
    pub overlay_png: Option<PathBuf>,
    pub run_json: PathBuf,
}

/// Write `defects.csv`, `ground_truth_frame0.png` and `run.json` into `out` (each atomically).
pub fn write_results(
    out: &Path,
    movie: &Movie,
    cfg: &AnalyzeConfig,
    analysis: &Analysis,
    score: Option<&Score>,
) -> Result<Written> {
    ensure_dir(out)?;
    let defects_csv = out.join("defects.csv");
    atomic_write(
        &defects_csv,
        detections_csv(&analysis.detections).as_bytes(),
    )?;
    let overlay_png = match &analysis.labels {
        Some(l) => {
            let p = out.join("ground_truth_frame0.png");
            atomic_write(&p, &mask_overlay_png(&movie.frames[0], &l.mask)?)?;
            Some(p)
        }
        None => None,
    };
    let grown = region_tracks(&analysis.regions);
    let (px, dt) = (
        movie.calibration.pixel_size_nm,
        movie.calibration.frame_interval_s,
    );
    atomic_write(
        &out.join("regions.csv"),
        regions_csv(&analysis.regions, &grown, px).as_bytes(),
    )?;
    atomic_write(
        &out.join("region_growth.csv"),
        growth_csv(&analysis.regions, &grown, px, dt).as_bytes(),
    )?;
    let frames = movie.frames.len().max(1) as f64;
    let report = serde_json::json!({
        "defectscope_version": env!("CARGO_PKG_VERSION"),
        "input": {
            "path": movie.source,
            "format": movie.format,
            "frames": movie.frames.len(),
            "width": movie.width(),
            "height": movie.height(),
            "calibration": movie.calibration,
            "acquisition": movie.acquisition,
        },
        "config": cfg,
        "device": analysis.device,
        "model": analysis.model_source,
        "labels": analysis.labels.as_ref().map(|l| serde_json::json!({
            "method": l.method,
            "defect_pixel_fraction": l.defect_fraction(),
            "flagged_columns": l.columns.iter().filter(|c| c.flagged).count(),
            "measured_columns": l.columns.len(),
            "lattice": l.lattice,
            "suggested_thresholds": l.suggested_thresholds,
        })),
        "training": analysis.training,
        "counts_per_frame": analysis.counts_per_frame,
        "total_detections": analysis.detections.len(),
        "dropped_blobs": analysis.dropped,
        "regions": analysis.regions.len(),
        "region_tracks": grown,
        "timings_s": analysis.timings,
        "inference_s_per_frame": analysis.seconds("detect") / frames,
        "warnings": analysis.warnings,
        "site_model": analysis.sites.as_ref().map(|a| serde_json::json!({
            "sites": a.series.keys.len(),
            "iterations": a.fit.iterations,
            "log_likelihood": a.fit.log_likelihood,
            "rates": a.rates,
            "diffusion": a.diffusion,
            "complexes": a.complexes,
            "defects": a.defects.len(),
            "lattice_free_regions": a.series.free_regions.len(),
            "lattice_free_region_tracks": a.free_region_tracks,
        })),
        "score": score.map(|s| serde_json::json!({
            "f1": s.f1(),
            "precision": s.precision(),
            "recall": s.recall(),
            "per_type_found_total": s.per_type,
        })),
    });
    if let Some(sites) = &analysis.sites {
        crate::sites::output::write_all(sites, out)?;
    }

    let run_json = out.join("run.json");
    let text = serde_json::to_vec_pretty(&report).map_err(|e| Error::invalid(e.to_string()))?;
    atomic_write(&run_json, &text)?;
    Ok(Written {
        defects_csv,
        overlay_png,
        run_json,
    })
}
