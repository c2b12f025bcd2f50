//! Defect analysis after detection: patches → classes (with dendrogram and symmetry merging) →
//! tracks (drift-corrected) → Markov transitions and hidden-Markov smoothing → time series,
//! diffusion, coupling between classes → PCA of each class's patches.
//!
//! [`run`] does it all from a movie and its detections; every step is also a public function
//! of its submodule. Results are plain data; [`output`] writes the tables and figures.

pub mod classify;
pub mod dendrogram;
pub mod dynamics;
pub mod figures;
pub mod lap;
pub mod output;
pub mod patches;
pub mod pca;
pub mod tracks;
pub mod truth;

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::jobs::StageTime;
use crate::jobs::{Event, JobCtx};
use crate::lattice::LatticeFit;
use crate::movie::Movie;
use crate::movie::register::{Drift, drift};
use crate::raster::Raster;
use classify::{ClassCount, ClusterMethod, Clustering, ManualEdit, Symmetry, SymmetryMerge};
use dendrogram::Dendrogram;
use dynamics::{Coupling, Diffusion, MarkovConstraints, Transitions};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tracks::{TrackConfig, Tracks};

/// Every setting of the analysis stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisConfig {
    /// Side of the square patch around each defect, px.
    pub patch_size: usize,
    pub method: ClusterMethod,
    pub classes: ClassCount,
    /// Cluster on this many principal components of the patches (0 = on the raw pixels).
    pub pca_components: usize,
    /// Before clustering, weight each patch by a centred Gaussian of σ = this × patch size, so
    /// the defect's own column counts more than the lattice around it (0 = no weighting).
    pub feature_window: f64,
    /// Gaussian blur of the patches before clustering, px (0 = none).
    pub feature_blur_px: f64,
    /// Centre each patch on the lattice column site nearest to its detection (drift-corrected)
    /// when the frame-0 lattice is known: defects sit on sites, and the patches of one kind then
    /// align exactly instead of scattering by the localisation error.
    pub snap_to_lattice: bool,
    /// Merge classes related by the lattice's point symmetry (off when `None`).
    pub symmetry: Option<Symmetry>,
    /// Most patches the Ward dendrogram clusters (a random subsample above).
    pub dendrogram_max_samples: usize,
    /// Leaves shown (scipy's `truncate_mode="lastp"`).
    pub dendrogram_leaves: usize,
    pub tracking: TrackConfig,
    /// Longest lag of the mean-squared displacement, frames.
    pub msd_max_lag: usize,
    /// Classes (a, b) whose coupling is measured; `None` = the two most common.
    pub coupling: Option<(usize, usize)>,
    /// Largest distance of g(r), px; `None` = 4 lattice constants (100 px without a lattice).
    pub coupling_r_max_px: Option<f64>,
    pub coupling_bins: usize,
    /// Random placements that g(r) and nearest distances are compared with.
    pub coupling_draws: usize,
    /// Smooth each track's classes with a hidden-Markov model.
    pub hmm: bool,
    pub markov: MarkovConstraints,
    /// Principal components kept per class, and shuffles of the parallel analysis.
    pub class_pca_components: usize,
    pub class_pca_shuffles: usize,
    pub seed: u64,
    /// Corrections made by hand (relabelled defects, merged classes), replayed in order after
    /// clustering. They refer to detections by index, so they hold for the detections they were
    /// made on.
    pub edits: Vec<ManualEdit>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            patch_size: 32,
            method: ClusterMethod::default(),
            classes: ClassCount::default(),
            pca_components: 8,
            feature_window: 0.12,
            feature_blur_px: 1.0,
            snap_to_lattice: true,
            symmetry: None,
            dendrogram_max_samples: 2000,
            dendrogram_leaves: 30,
            tracking: TrackConfig::default(),
            msd_max_lag: 10,
            coupling: None,
            coupling_r_max_px: None,
            coupling_bins: 40,
            coupling_draws: 20,
            hmm: true,
            markov: MarkovConstraints::default(),
            class_pca_components: 8,
            class_pca_shuffles: 20,
            seed: 1,
            edits: Vec::new(),
        }
    }
}

impl AnalysisConfig {
    pub fn validate(&self) -> Result<()> {
        if self.patch_size < 4 {
            return Err(Error::invalid(format!(
                "patch size must be at least 4 px, got {}",
                self.patch_size
            )));
        }
        match self.classes {
            ClassCount::Fixed(0) | ClassCount::Auto { max: 0 } => {
                return Err(Error::invalid("the number of classes must be at least 1"));
            }
            _ => {}
        }
        if self.pca_components == 0 && self.patch_size > 12 {
            return Err(Error::invalid(format!(
                "clustering raw {0}×{0} px patches is impractical: keep some principal components",
                self.patch_size
            )));
        }
        if let Some(s) = self.tracking.max_step_px
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::invalid(format!(
                "the maximum step must be > 0, got {s}"
            )));
        }
        if self.msd_max_lag < 2 {
            return Err(Error::invalid("the MSD needs lags up to at least 2 frames"));
        }
        if !(self.feature_window.is_finite() && self.feature_window >= 0.0) {
            return Err(Error::invalid("the feature window must be ≥ 0"));
        }
        if !(self.feature_blur_px.is_finite() && self.feature_blur_px >= 0.0) {
            return Err(Error::invalid("the feature blur must be ≥ 0 px"));
        }
        if let Some(sym) = self.symmetry
            && !(sym.order == 3 || sym.order == 6)
        {
            return Err(Error::invalid(format!(
                "symmetry order must be 3 or 6, got {}",
                sym.order
            )));
        }
        if self.coupling_bins == 0 || self.coupling_draws == 0 {
            return Err(Error::invalid(
                "coupling needs at least one bin and one random draw",
            ));
        }
        if self.dendrogram_max_samples < 2 || self.dendrogram_leaves == 0 {
            return Err(Error::invalid(
                "the dendrogram needs ≥ 2 samples and ≥ 1 leaf",
            ));
        }
        Ok(())
    }
}

/// PCA of one class's patches.
#[derive(Debug, Clone)]
pub struct ClassPca {
    pub class: usize,
    pub members: usize,
    pub mean: Raster,
    pub eigen_images: Vec<Raster>,
    pub eigenvalues: Vec<f64>,
    pub explained: Vec<f64>,
    pub significance: pca::Significance,
    /// Scores of each member on the kept components (`members × k`).
    pub scores: Array2<f64>,
    /// Detection index of each member.
    pub detections: Vec<usize>,
}

/// Everything the analysis found.
#[derive(Debug, Clone)]
pub struct DefectAnalysis {
    pub config: AnalysisConfig,
    pub frames: usize,
    pub frame_size: (usize, usize),
    pub pixel_size_nm: Option<f64>,
    pub frame_interval_s: Option<f64>,
    /// Detections that got a patch (index into the detections).
    pub patched: Vec<usize>,
    pub skipped_edge: usize,
    pub skipped_nonfinite: usize,
    /// Median distance detections were moved to their lattice site, px (`None`: not snapped).
    pub median_snap_px: Option<f64>,
    /// Explained variance ratio of the features' principal components.
    pub feature_explained: Vec<f64>,
    pub clustering: Clustering,
    pub merges: Vec<SymmetryMerge>,
    /// Mean image, mean per-pixel variance and count of each class (classifier labels).
    pub class_means: Vec<(Raster, f64, usize)>,
    pub dendrogram: Option<Dendrogram>,
    /// The classifier's class of each detection (`None`: no patch).
    pub raw_class: Vec<Option<usize>>,
    /// After hidden-Markov smoothing along tracks (equal to `raw_class` when smoothing is off).
    pub class: Vec<Option<usize>>,
    /// Detections whose class the smoothing changed.
    pub hmm_changed: usize,
    pub drift: Drift,
    pub tracks: Tracks,
    pub transitions_raw: Transitions,
    pub transitions: Transitions,
    /// The transition matrix the smoothing used.
    pub hmm_matrix: Vec<Vec<f64>>,
    /// Counts of each class per frame (smoothed classes).
    pub counts: Vec<Vec<usize>>,
    /// Area over which densities are counted (the frame less a patch border), nm² or px².
    pub counted_area: f64,
    pub diffusion: Vec<Diffusion>,
    pub coupling: Option<Coupling>,
    pub class_pca: Vec<ClassPca>,
    pub timings: Vec<StageTime>,
    pub warnings: Vec<String>,
}

impl DefectAnalysis {
    pub fn classes(&self) -> usize {
        self.clustering.classes
    }

    /// Densities per frame and class, per nm² when calibrated (per px² otherwise).
    pub fn densities(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| row.iter().map(|&c| c as f64 / self.counted_area).collect())
            .collect()
    }

    /// Area unit of [`Self::densities`].
    pub fn area_unit(&self) -> &'static str {
        if self.pixel_size_nm.is_some() {
            "nm²"
        } else {
            "px²"
        }
    }

    /// D as a reader should see it: "D = v ± s unit", or "not resolved: D < bound unit" where
    /// the bootstrap cannot tell it from 0.
    pub fn diffusion_text(&self, d: &Diffusion) -> String {
        let (v, s, unit) = self.diffusion_in_units(d);
        if d.resolved {
            format!("D = {v:.3e} ± {s:.1e} {unit}")
        } else {
            let bound = d.d_upper95_px2_per_frame * self.diffusion_scale();
            format!("not resolved: D < {bound:.1e} {unit}")
        }
    }

    /// px²/frame → the unit of [`Self::diffusion_in_units`].
    fn diffusion_scale(&self) -> f64 {
        match (self.pixel_size_nm, self.frame_interval_s) {
            (Some(px), Some(dt)) => px * px / dt,
            _ => 1.0,
        }
    }

    /// Diffusion coefficient converted to nm²/s when calibrated: (value, std, unit).
    pub fn diffusion_in_units(&self, d: &Diffusion) -> (f64, f64, &'static str) {
        match (self.pixel_size_nm, self.frame_interval_s) {
            (Some(_), Some(_)) => {
                let k = self.diffusion_scale();
                (d.d_px2_per_frame * k, d.d_std_px2_per_frame * k, "nm²/s")
            }
            _ => (d.d_px2_per_frame, d.d_std_px2_per_frame, "px²/frame"),
        }
    }
}

/// What classes are found in: the patches (`n × size²`) blurred and weighted as `cfg` says,
/// projected on their first `cfg.pca_components` principal components when that is not 0; with
/// the fraction of variance each component explains.
pub fn features(data: &Array2<f64>, cfg: &AnalysisConfig) -> Result<(Array2<f64>, Vec<f64>)> {
    let weighted = features_of(data, cfg);
    Ok(if cfg.pca_components > 0 {
        let p = pca::fit(&weighted, cfg.pca_components, cfg.seed)?;
        (p.scores(&weighted), p.explained_ratio())
    } else {
        (weighted, Vec::new())
    })
}

/// Each patch blurred by `feature_blur_px` (localisation error
/// then moves little) and weighted by a centred Gaussian of σ = `feature_window` × size (the
/// defect's own column counts more than its neighbours).
fn features_of(data: &Array2<f64>, cfg: &AnalysisConfig) -> Array2<f64> {
    let size = cfg.patch_size;
    let mut out = data.clone();
    if cfg.feature_blur_px > 0.0 {
        for mut row in out.rows_mut() {
            let img = patches::raster_from_row(row.iter().copied(), size)
                .gaussian_blur(cfg.feature_blur_px as f32);
            for (v, b) in row.iter_mut().zip(&img.data) {
                *v = *b as f64;
            }
        }
    }
    if cfg.feature_window > 0.0 {
        let c = (size as f64 - 1.0) / 2.0;
        let s2 = 2.0 * (cfg.feature_window * size as f64).powi(2);
        let w = ndarray::Array1::from_shape_fn(size * size, |i| {
            let (x, y) = ((i % size) as f64 - c, (i / size) as f64 - c);
            (-(x * x + y * y) / s2).exp()
        });
        out *= &w;
    }
    out
}

/// Detections moved to the nearest lattice column site (frame-0 lattice shifted by each
/// frame's drift) when one lies within half the column spacing; with the median move in px.
fn snap_to_sites(
    detections: &[Detection],
    lattice: &LatticeFit,
    offsets: &[(f64, f64)],
) -> (Vec<Detection>, Option<f64>) {
    let limit = 0.5 * lattice.nearest_column_px;
    let mut moves = Vec::new();
    let snapped = detections
        .iter()
        .map(|d| {
            let (ox, oy) = offsets.get(d.frame).copied().unwrap_or((0.0, 0.0));
            let (site, dist) = lattice.nearest_site(d.x - ox as f32, d.y - oy as f32);
            if dist <= limit {
                moves.push(dist);
                Detection {
                    x: site[0] + ox as f32,
                    y: site[1] + oy as f32,
                    ..*d
                }
            } else {
                *d
            }
        })
        .collect();
    let median = (!moves.is_empty()).then(|| crate::raster::median(&moves) as f64);
    (snapped, median)
}

/// Run every analysis stage on `detections` of `movie`. `lattice` (from frame-0 labelling)
/// orients the symmetry operations and sets the default linking distance.
pub fn run(
    movie: &Movie,
    detections: &[Detection],
    lattice: Option<&LatticeFit>,
    cfg: &AnalysisConfig,
    ctx: &JobCtx,
) -> Result<DefectAnalysis> {
    cfg.validate()?;
    movie.validate()?;
    let mut warnings = Vec::new();
    let mut warn = |w: String| {
        ctx.emit(Event::Warning(w.clone()));
        warnings.push(w);
    };
    let mut timings = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |stage: &str, timings: &mut Vec<StageTime>| {
        timings.push(StageTime {
            stage: stage.into(),
            seconds: clock.elapsed().as_secs_f64(),
        });
        clock = Instant::now();
    };
    const STEPS: u64 = 8;
    ctx.begin("analysing defects", STEPS);
    let frames = movie.frames.len();
    let drift = if cfg.tracking.register && frames > 1 {
        let d = drift(&movie.frames, ctx)?;
        ctx.begin("analysing defects", STEPS);
        d
    } else {
        Drift {
            offsets: vec![(0.0, 0.0); frames],
            peak_heights: vec![1.0; frames],
        }
    };
    lap("register", &mut timings);
    let (centres, snap) = match lattice {
        Some(l) if cfg.snap_to_lattice => snap_to_sites(detections, l, &drift.offsets),
        _ => (detections.to_vec(), None),
    };
    let patches = patches::extract(&movie.frames, &centres, cfg.patch_size)?;
    if patches.skipped_edge > 0 {
        warn(format!(
            "{} of {} defects lie within half a patch ({} px) of the frame edge and were not classified",
            patches.skipped_edge,
            detections.len(),
            cfg.patch_size / 2
        ));
    }
    if patches.skipped_nonfinite > 0 {
        warn(format!(
            "{} defects have NaN or infinite pixels in their patch and were not classified",
            patches.skipped_nonfinite
        ));
    }
    let wanted = match cfg.classes {
        ClassCount::Fixed(k) => k,
        ClassCount::Auto { .. } => 1,
    };
    if patches.len() < wanted.max(2) {
        return Err(Error::invalid(format!(
            "{} classifiable defects are too few to classify into {} classes",
            patches.len(),
            wanted.max(2)
        )));
    }
    lap("patches", &mut timings);
    ctx.step(1)?;

    let (features, feature_explained) = features(&patches.data, cfg)?;
    let mut clustering = classify::cluster(&features, cfg.method, cfg.classes, cfg.seed)?;
    let lattice_angle = lattice.map(|l| (l.a1[1] as f64).atan2(l.a1[0] as f64));
    let merges = match cfg.symmetry {
        Some(sym) => {
            if lattice_angle.is_none() {
                warn("no lattice fit: symmetry mirrors are oriented along the x axis".into());
            }
            classify::merge_symmetric(
                &patches.data,
                cfg.patch_size,
                &mut clustering,
                sym,
                lattice_angle.unwrap_or(0.0),
            )
        }
        None => Vec::new(),
    };
    classify::apply_edits(&mut clustering, &patches.detection, &cfg.edits)?;
    let classes = clustering.classes;
    let class_means =
        classify::class_means(&patches.data, &clustering.labels, classes, cfg.patch_size);
    for (c, (_, _, n)) in class_means.iter().enumerate() {
        if *n == 1 {
            warn(format!("class {c} has a single member"));
        }
    }
    lap("classify", &mut timings);
    ctx.step(2)?;

    let dendrogram = match dendrogram::ward(
        &features,
        Some(&clustering.labels),
        cfg.dendrogram_max_samples,
        cfg.dendrogram_leaves,
        cfg.seed,
    ) {
        Ok(d) => {
            if d.samples < d.total {
                warn(format!(
                    "the dendrogram clusters a random subsample of {} of {} defects",
                    d.samples, d.total
                ));
            }
            Some(d)
        }
        Err(e) => {
            warn(format!("no dendrogram: {e}"));
            None
        }
    };
    lap("dendrogram", &mut timings);
    ctx.step(3)?;

    let mut raw_class = vec![None; detections.len()];
    let mut posterior_of = vec![None; detections.len()];
    for (row, &d) in patches.detection.iter().enumerate() {
        raw_class[d] = Some(clustering.labels[row]);
        posterior_of[d] = Some(row);
    }
    ctx.step(4)?;
    let lattice_a = lattice.map(|l| (l.a1[0].hypot(l.a1[1])) as f64);
    let max_step = match (cfg.tracking.max_step_px, lattice_a) {
        (Some(s), _) => s,
        (None, Some(a)) => (1.2 * a) as f32,
        (None, None) => {
            warn(
                "no lattice fit: linking defects at most 10 px apart (set the maximum step)".into(),
            );
            10.0
        }
    };
    let tracks = tracks::link(detections, &drift.offsets, max_step, cfg.tracking.max_gap)?;
    lap("track", &mut timings);
    ctx.step(5)?;

    cfg.markov.validate(classes)?;
    let transitions_raw = dynamics::transitions(&tracks, detections, &raw_class, classes);
    let hmm_matrix = dynamics::hmm_matrix(&transitions_raw, &cfg.markov);
    let mut class = raw_class.clone();
    if cfg.hmm {
        let n = clustering.labels.len() as f64;
        let prior: Vec<f64> = (0..classes)
            .map(|c| clustering.labels.iter().filter(|&&l| l == c).count() as f64 / n)
            .collect();
        for t in &tracks.tracks {
            let obs: Vec<Option<Vec<f64>>> = t
                .iter()
                .map(|&d| posterior_of[d].map(|r| clustering.posteriors.row(r).to_vec()))
                .collect();
            let path = dynamics::viterbi(&obs, &prior, &hmm_matrix);
            for (&d, c) in t.iter().zip(path) {
                // Only classified detections get a class; an edge detection stays unclassified.
                if raw_class[d].is_some() {
                    class[d] = Some(c);
                }
            }
        }
    }
    // A class set by hand stands, whatever the smoothing prefers.
    for e in &cfg.edits {
        if let ManualEdit::Relabel { detection, .. } = *e
            && raw_class.get(detection).is_some_and(|c| c.is_some())
        {
            class[detection] = raw_class[detection];
        }
    }
    let hmm_changed = class.iter().zip(&raw_class).filter(|(a, b)| a != b).count();
    let transitions = dynamics::transitions(&tracks, detections, &class, classes);
    lap("markov", &mut timings);
    ctx.step(6)?;

    let (w, h) = (movie.width(), movie.height());
    let half = cfg.patch_size as f64 / 2.0;
    let region = ((half, half), (w as f64 - half, h as f64 - half));
    let px_area = (w as f64 - 2.0 * half).max(1.0) * (h as f64 - 2.0 * half).max(1.0);
    let counted_area = match movie.calibration.pixel_size_nm {
        Some(p) => px_area * p * p,
        None => px_area,
    };
    let counts = dynamics::class_counts(frames, classes, detections, &class);
    let diffusion = dynamics::diffusion(
        &tracks,
        &class,
        detections,
        &drift.offsets,
        classes,
        cfg.msd_max_lag,
        cfg.seed,
    );
    let pair = cfg.coupling.unwrap_or((0, 1.min(classes - 1)));
    let coupling = if pair.0 >= classes || pair.1 >= classes {
        return Err(Error::invalid(format!(
            "coupling between classes {} and {}: only {classes} classes were found",
            pair.0, pair.1
        )));
    } else if classes < 2 && cfg.coupling.is_none() {
        None
    } else {
        let r_max = cfg
            .coupling_r_max_px
            .unwrap_or_else(|| lattice_a.map_or(100.0, |a| 4.0 * a));
        Some(dynamics::coupling(
            detections,
            &class,
            frames,
            pair.0,
            pair.1,
            region,
            r_max,
            cfg.coupling_bins,
            cfg.coupling_draws,
            cfg.seed,
        )?)
    };
    lap("time", &mut timings);
    ctx.step(7)?;

    let mut class_pca = Vec::new();
    for c in 0..classes {
        let rows: Vec<usize> = (0..patches.len())
            .filter(|&r| class[patches.detection[r]] == Some(c))
            .collect();
        if rows.len() < 3 {
            warn(format!(
                "class {c}: {} members are too few for a PCA",
                rows.len()
            ));
            continue;
        }
        let x = patches.data.select(Axis(0), &rows);
        let p = pca::fit(&x, cfg.class_pca_components, cfg.seed)?;
        let significance = pca::parallel_analysis(&x, &p, cfg.class_pca_shuffles, cfg.seed)?;
        let size = cfg.patch_size;
        class_pca.push(ClassPca {
            class: c,
            members: rows.len(),
            mean: patches::raster_from_row(p.mean.iter().copied(), size),
            eigen_images: p
                .components
                .rows()
                .into_iter()
                .map(|r| patches::raster_from_row(r.iter().copied(), size))
                .collect(),
            eigenvalues: p.eigenvalues.clone(),
            explained: p.explained_ratio(),
            scores: p.scores(&x),
            significance,
            detections: rows.iter().map(|&r| patches.detection[r]).collect(),
        });
    }
    lap("pca", &mut timings);
    ctx.step(8)?;

    Ok(DefectAnalysis {
        config: cfg.clone(),
        frames,
        frame_size: (w, h),
        pixel_size_nm: movie.calibration.pixel_size_nm,
        frame_interval_s: movie.calibration.frame_interval_s,
        patched: patches.detection.clone(),
        skipped_edge: patches.skipped_edge,
        skipped_nonfinite: patches.skipped_nonfinite,
        median_snap_px: snap,
        feature_explained,
        clustering,
        merges,
        class_means,
        dendrogram,
        raw_class,
        class,
        hmm_changed,
        drift,
        tracks,
        transitions_raw,
        transitions,
        hmm_matrix,
        counts,
        counted_area,
        diffusion,
        coupling,
        class_pca,
        timings,
        warnings,
    })
}
