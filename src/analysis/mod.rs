//! Defect analysis after detection: patches → classes (with dendrogram and symmetry merging) →
//! tracks (drift-corrected) → Markov transitions and hidden-Markov smoothing → time series,
//! diffusion, coupling between classes → PCA of each class's patches.
//!
//! [`run`] does it all from a movie and its detections; every step is also a public function
//! of its submodule. Results are plain data; [`output`] writes the tables and figures.

pub mod classify;
pub mod corrections;
pub mod dendrogram;
pub mod dynamics;
pub mod figures;
pub mod interop;
pub mod lap;
pub mod output;
pub mod patches;
pub mod pca;
mod stages;
pub mod tracks;
pub mod truth;

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::jobs::StageTime;
use crate::lattice::LatticeFit;
use crate::movie::Movie;
use crate::movie::register::Drift;
use crate::raster::Raster;
use classify::{ClassCount, ClusterMethod, Clustering, Symmetry, SymmetryMerge};
use corrections::{Corrections, clustering_key};
use dendrogram::Dendrogram;
use dynamics::{Diffusion, MarkovConstraints, Transitions};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
pub use stages::Labelled;
use stages::{LabelInputs, Log};
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
    /// The centre of each detection's patch (its lattice site when snapped).
    pub centres: Vec<Detection>,
    /// Median distance detections were moved to their lattice site, px (`None`: not snapped).
    pub median_snap_px: Option<f64>,
    /// Intact copies of the centres' sites, the null of the class PCAs (`None`: no lattice).
    pub references: Option<patches::References>,
    /// Length of the frame-0 lattice's first vector, px.
    pub lattice_constant_px: Option<f64>,
    /// Explained variance ratio of the features' principal components.
    pub feature_explained: Vec<f64>,
    /// The classifier's clustering, before hand corrections.
    pub classifier: Clustering,
    /// Identifies the classifier's clustering (see [`corrections::clustering_key`]).
    pub clustering_key: u64,
    pub merges: Vec<SymmetryMerge>,
    pub dendrogram: Option<Dendrogram>,
    pub drift: Drift,
    pub tracks: Tracks,
    /// Area over which densities are counted (the frame less a patch border), nm² or px².
    pub counted_area: f64,
    /// Everything that depends on the classes (recomputed by a correction).
    pub labelled: Labelled,
    pub timings: Vec<StageTime>,
    pub warnings: Vec<String>,
}

/// The label-dependent results read as the analysis's own (`a.class`, `a.counts`, …).
impl std::ops::Deref for DefectAnalysis {
    type Target = Labelled;

    fn deref(&self) -> &Labelled {
        &self.labelled
    }
}

impl DefectAnalysis {
    pub fn classes(&self) -> usize {
        self.clustering.classes
    }

    /// "1 class", "3 classes".
    pub fn classes_text(&self) -> String {
        match self.classes() {
            1 => "1 class".to_string(),
            n => format!("{n} classes"),
        }
    }

    /// The name of class `c` (given by hand, else "class c").
    pub fn class_name(&self, c: usize) -> String {
        self.class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| corrections::default_class_name(c))
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
    /// the bootstrap cannot tell it from 0, or why there is no D.
    pub fn diffusion_text(&self, d: &Diffusion) -> String {
        let (v, s, unit) = self.diffusion_in_units(d);
        if d.resolved {
            format!("D = {v:.3e} ± {s:.1e} {unit}")
        } else {
            format!("not resolved: {}", self.unresolved_text(d))
        }
    }

    /// D in a few words, for legends: "D = 1.0e-7 nm²/s", "D < 2.9e-7 nm²/s", "2 tracks".
    pub fn diffusion_short(&self, d: &Diffusion) -> String {
        let (v, _, unit) = self.diffusion_in_units(d);
        if d.resolved {
            format!("D = {v:.1e} {unit}")
        } else {
            self.unresolved_text(d)
        }
    }

    /// Why D is not given: too few tracks, an upper bound, or no motion at all.
    fn unresolved_text(&self, d: &Diffusion) -> String {
        let (_, _, unit) = self.diffusion_in_units(d);
        let bound = d.d_upper95_px2_per_frame * self.diffusion_scale();
        if d.segments < dynamics::MIN_DIFFUSION_TRACKS {
            format!(
                "{} track(s), at least {} needed",
                d.segments,
                dynamics::MIN_DIFFUSION_TRACKS
            )
        } else if bound > 0.0 {
            format!("D < {bound:.1e} {unit}")
        } else {
            // Every resample fitted no slope: the defects did not move beyond their
            // localisation error.
            "no motion beyond the localisation error".to_string()
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
    run_corrected(
        movie,
        detections,
        lattice,
        cfg,
        &Corrections::default(),
        ctx,
    )
}

/// [`run`], with hand `corrections` replayed on the clustering where they were made on it.
pub fn run_corrected(
    movie: &Movie,
    detections: &[Detection],
    lattice: Option<&LatticeFit>,
    cfg: &AnalysisConfig,
    corrections: &Corrections,
    ctx: &JobCtx,
) -> Result<DefectAnalysis> {
    cfg.validate()?;
    movie.validate()?;
    let mut log = Log::new(ctx);
    let drift = stages::register(movie, cfg, &mut log)?;
    let (centres, patches) = stages::patches_of(movie, detections, lattice, &drift, cfg, &mut log)?;
    let found = stages::classify(&patches, lattice, cfg, &mut log)?;
    let dendrogram = stages::dendrogram_of(&found, cfg, &mut log)?;
    let lattice_constant_px = lattice.map(|l| f64::from(l.a1[0].hypot(l.a1[1])));
    let tracks = stages::track(detections, &drift, lattice_constant_px, cfg, &mut log)?;
    let clustering_key = clustering_key(cfg, detections);
    let reference_patches = reference_patches(movie, centres.references.as_ref(), cfg)?;
    let input = LabelInputs {
        movie,
        detections,
        patches: &patches,
        classifier: &found.clustering,
        clustering_key,
        tracks: &tracks,
        drift: &drift,
        lattice_constant_px,
        previous_pca: &[],
        references: reference_patches
            .as_ref()
            .zip(centres.references.as_ref())
            .map(|(p, r)| (p, r.of.as_slice())),
    };
    let labelled = stages::labelled(&input, corrections, cfg, &mut log)?;
    let (w, h) = (movie.width(), movie.height());
    let mut a = DefectAnalysis {
        config: cfg.clone(),
        frames: movie.frames.len(),
        frame_size: (w, h),
        pixel_size_nm: movie.calibration.pixel_size_nm,
        frame_interval_s: movie.calibration.frame_interval_s,
        patched: patches.detection.clone(),
        skipped_edge: patches.skipped_edge,
        skipped_nonfinite: patches.skipped_nonfinite,
        centres: centres.centres,
        median_snap_px: centres.median_snap_px,
        references: centres.references,
        lattice_constant_px,
        feature_explained: found.feature_explained,
        classifier: found.clustering,
        clustering_key,
        merges: found.merges,
        dendrogram,
        drift,
        tracks,
        counted_area: counted_area(movie, cfg.patch_size),
        labelled,
        timings: Vec::new(),
        warnings: Vec::new(),
    };
    (a.timings, a.warnings) = (log.timings, log.warnings);
    Ok(a)
}

/// The patches of the reference sites, when there are any.
fn reference_patches(
    movie: &Movie,
    references: Option<&patches::References>,
    cfg: &AnalysisConfig,
) -> Result<Option<patches::Patches>> {
    references
        .filter(|r| !r.centres.is_empty())
        .map(|r| patches::extract(&movie.frames, &r.centres, cfg.patch_size))
        .transpose()
}

/// Area over which densities are counted: the frame less a patch border, nm² (px² uncalibrated).
fn counted_area(movie: &Movie, patch_size: usize) -> f64 {
    let half = patch_size as f64 / 2.0;
    let px_area = (movie.width() as f64 - 2.0 * half).max(1.0)
        * (movie.height() as f64 - 2.0 * half).max(1.0);
    match movie.calibration.pixel_size_nm {
        Some(p) => px_area * p * p,
        None => px_area,
    }
}

impl DefectAnalysis {
    /// This analysis with `corrections` in place of the ones it was made with: only what
    /// depends on the classes is recomputed (the classifier, tracks and drift stay).
    pub fn corrected(
        &self,
        movie: &Movie,
        detections: &[Detection],
        corrections: &Corrections,
        ctx: &JobCtx,
    ) -> Result<DefectAnalysis> {
        let mut log = Log::new(ctx);
        let patches = patches::extract(&movie.frames, &self.centres, self.config.patch_size)?;
        let reference_patches = reference_patches(movie, self.references.as_ref(), &self.config)?;
        let input = LabelInputs {
            movie,
            detections,
            patches: &patches,
            classifier: &self.classifier,
            clustering_key: self.clustering_key,
            tracks: &self.tracks,
            drift: &self.drift,
            lattice_constant_px: self.lattice_constant_px,
            previous_pca: &self.class_pca,
            references: reference_patches
                .as_ref()
                .zip(self.references.as_ref())
                .map(|(p, r)| (p, r.of.as_slice())),
        };
        let labelled = stages::labelled(&input, corrections, &self.config, &mut log)?;
        Ok(DefectAnalysis {
            labelled,
            timings: log.timings,
            warnings: log.warnings,
            ..self.clone()
        })
    }
}
