//! The analysis stages, one function each, in the order [`super::run`] calls them. Each takes
//! what the earlier ones found and returns its own typed result; warnings, timings and
//! progress go through a [`Log`].

use super::classify::{self, ClassCount, Clustering, SymmetryMerge};
use super::corrections::Corrections;
use super::dendrogram::{self, Dendrogram};
use super::dynamics::{self, Coupling, Diffusion, Transitions};
use super::patches::{self, Patches};
use super::tracks::{self, Tracks};
use super::{AnalysisConfig, ClassPca, features, pca, snap_to_sites};
use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::jobs::{Event, JobCtx, StageTime};
use crate::lattice::LatticeFit;
use crate::movie::Movie;
use crate::movie::register::{Drift, drift};
use crate::raster::Raster;
use ndarray::{Array2, Axis};
use std::time::Instant;

/// Steps of the progress bar: one per stage.
pub(super) const STEPS: u64 = 8;

/// Warnings (sent as they come and kept), the time of each stage, and progress.
pub(super) struct Log<'a> {
    ctx: &'a JobCtx,
    clock: Instant,
    step: u64,
    pub warnings: Vec<String>,
    pub timings: Vec<StageTime>,
}

impl<'a> Log<'a> {
    pub fn new(ctx: &'a JobCtx) -> Self {
        ctx.begin("analysing defects", STEPS);
        Log {
            ctx,
            clock: Instant::now(),
            step: 0,
            warnings: Vec::new(),
            timings: Vec::new(),
        }
    }

    pub fn warn(&mut self, w: String) {
        self.ctx.emit(Event::Warning(w.clone()));
        self.warnings.push(w);
    }

    /// Close stage `stage`: its time, one step of progress (and a cancelled job stops here).
    pub fn lap(&mut self, stage: &str) -> Result<()> {
        self.timings.push(StageTime {
            stage: stage.into(),
            seconds: self.clock.elapsed().as_secs_f64(),
        });
        self.clock = Instant::now();
        self.step += 1;
        self.ctx.step(self.step.min(STEPS))
    }
}

/// Each frame's drift (zero when not registering, or for one frame).
pub(super) fn register(movie: &Movie, cfg: &AnalysisConfig, log: &mut Log) -> Result<Drift> {
    let frames = movie.frames.len();
    let d = if cfg.tracking.register && frames > 1 {
        let d = drift(&movie.frames, log.ctx)?;
        log.ctx.begin("analysing defects", STEPS);
        d
    } else {
        Drift {
            offsets: vec![(0.0, 0.0); frames],
            peak_heights: vec![1.0; frames],
        }
    };
    log.lap("register")?;
    Ok(d)
}

/// The patch centres (snapped to lattice sites where asked) and their median move.
pub(super) struct Centres {
    pub centres: Vec<Detection>,
    pub median_snap_px: Option<f64>,
    /// Intact copies of each centre's site (with a lattice), the null of the class PCAs.
    pub references: Option<patches::References>,
}

/// Centres and patches of the detections, with warnings for those left out; an error when too
/// few remain to classify.
pub(super) fn patches_of(
    movie: &Movie,
    detections: &[Detection],
    lattice: Option<&LatticeFit>,
    drift: &Drift,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<(Centres, Patches)> {
    let (centres, median_snap_px) = match lattice {
        Some(l) if cfg.snap_to_lattice => snap_to_sites(detections, l, &drift.offsets),
        _ => (detections.to_vec(), None),
    };
    let patches = patches::extract(&movie.frames, &centres, cfg.patch_size)?;
    if patches.skipped_edge > 0 {
        log.warn(format!(
            "{} of {} defects lie within half a patch ({} px) of the frame edge and were not classified",
            patches.skipped_edge,
            detections.len(),
            cfg.patch_size / 2
        ));
    }
    if patches.skipped_nonfinite > 0 {
        log.warn(format!(
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
    log.lap("patches")?;
    let references = lattice.map(|l| {
        let size = (movie.width(), movie.height());
        patches::reference_sites(&centres, l.a1, l.a2, size, cfg.patch_size, cfg.seed)
    });
    let found = Centres {
        centres,
        median_snap_px,
        references,
    };
    Ok((found, patches))
}

/// The classifier's result, before any hand correction.
pub(super) struct Classified {
    pub features: Array2<f64>,
    pub feature_explained: Vec<f64>,
    pub clustering: Clustering,
    pub merges: Vec<SymmetryMerge>,
}

/// Cluster the patches' features and merge classes related by the lattice's symmetry.
pub(super) fn classify(
    patches: &Patches,
    lattice: Option<&LatticeFit>,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<Classified> {
    let (features, feature_explained) = features(&patches.data, cfg)?;
    let mut clustering = classify::cluster(&features, cfg.method, cfg.classes, cfg.seed)?;
    let lattice_angle = lattice.map(|l| (l.a1[1] as f64).atan2(l.a1[0] as f64));
    let merges = match cfg.symmetry {
        Some(sym) => {
            if lattice_angle.is_none() {
                log.warn("no lattice fit: symmetry mirrors are oriented along the x axis".into());
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
    log.lap("classify")?;
    Ok(Classified {
        features,
        feature_explained,
        clustering,
        merges,
    })
}

/// Ward's dendrogram of the features, coloured by the classifier's classes (`None`, with a
/// warning, where it cannot be made).
pub(super) fn dendrogram_of(
    found: &Classified,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<Option<Dendrogram>> {
    let d = match dendrogram::ward(
        &found.features,
        Some(&found.clustering.labels),
        cfg.dendrogram_max_samples,
        cfg.dendrogram_leaves,
        cfg.seed,
    ) {
        Ok(d) => {
            if d.samples < d.total {
                log.warn(format!(
                    "the dendrogram clusters a random subsample of {} of {} defects",
                    d.samples, d.total
                ));
            }
            Some(d)
        }
        Err(e) => {
            log.warn(format!("no dendrogram: {e}"));
            None
        }
    };
    log.lap("dendrogram")?;
    Ok(d)
}

/// Link detections into tracks in drift-corrected coordinates, at most 1.2 lattice constants a
/// step unless set.
pub(super) fn track(
    detections: &[Detection],
    drift: &Drift,
    lattice_constant_px: Option<f64>,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<Tracks> {
    let max_step = match (cfg.tracking.max_step_px, lattice_constant_px) {
        (Some(s), _) => s,
        (None, Some(a)) => (1.2 * a) as f32,
        (None, None) => {
            log.warn(
                "no lattice fit: linking defects at most 10 px apart (set the maximum step)".into(),
            );
            10.0
        }
    };
    let t = tracks::link(detections, &drift.offsets, max_step, cfg.tracking.max_gap)?;
    log.lap("track")?;
    Ok(t)
}

/// Everything that depends on the classes: computed from the classifier's clustering with the
/// hand corrections, so that a correction recomputes only this.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The clustering with the hand corrections replayed.
    pub clustering: Clustering,
    /// Mean image, mean per-pixel variance and count of each class.
    pub class_means: Vec<(Raster, f64, usize)>,
    /// The class of each detection (`None`: no patch).
    pub raw_class: Vec<Option<usize>>,
    /// After hidden-Markov smoothing along tracks (equal to `raw_class` when smoothing is off).
    pub class: Vec<Option<usize>>,
    /// Detections whose class the smoothing changed.
    pub hmm_changed: usize,
    pub transitions_raw: Transitions,
    pub transitions: Transitions,
    /// The transition matrix the smoothing used.
    pub hmm_matrix: Vec<Vec<f64>>,
    /// Counts of each class per frame (smoothed classes).
    pub counts: Vec<Vec<usize>>,
    /// The name of each class: given by hand, else "class c".
    pub class_names: Vec<String>,
    pub diffusion: Vec<Diffusion>,
    pub coupling: Option<Coupling>,
    pub class_pca: Vec<ClassPca>,
}

/// What the label-dependent stages read.
pub(super) struct LabelInputs<'a> {
    pub movie: &'a Movie,
    pub detections: &'a [Detection],
    pub patches: &'a Patches,
    pub classifier: &'a Clustering,
    pub clustering_key: u64,
    pub tracks: &'a Tracks,
    pub drift: &'a Drift,
    pub lattice_constant_px: Option<f64>,
    /// Class PCAs made before (by an earlier correction): a class with the same members keeps
    /// its PCA instead of computing it again.
    pub previous_pca: &'a [ClassPca],
    /// Patches of the centres' intact reference sites, and the centre each one belongs to.
    pub references: Option<(&'a Patches, &'a [usize])>,
}

/// Classes (with corrections), their smoothing along tracks, transitions, counts, diffusion,
/// coupling and each class's PCA.
pub(super) fn labelled(
    input: &LabelInputs,
    corrections: &Corrections,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<Labelled> {
    let patches = input.patches;
    let clustering =
        corrections.apply(input.classifier, &patches.detection, input.clustering_key)?;
    let classes = clustering.classes;
    let class_means =
        classify::class_means(&patches.data, &clustering.labels, classes, cfg.patch_size);
    let small: Vec<String> = class_means
        .iter()
        .enumerate()
        .filter(|(_, (_, _, n))| *n < classify::MIN_CLASS_SIZE)
        .map(|(c, (_, _, n))| format!("class {c} ({n})"))
        .collect();
    if !small.is_empty() {
        log.warn(format!(
            "{} with fewer than {} members: not kinds of defect but outliers; merge them or ask for fewer classes",
            small.join(", "),
            classify::MIN_CLASS_SIZE
        ));
    }
    let (raw_class, class, hmm_matrix, transitions_raw) =
        smoothed(input, &clustering, corrections, cfg)?;
    let hmm_changed = class.iter().zip(&raw_class).filter(|(a, b)| a != b).count();
    let class_names = corrections.class_names(input.clustering_key, classes, &raw_class);
    let transitions = dynamics::transitions(input.tracks, input.detections, &class, classes);
    log.lap("markov")?;
    let frames = input.movie.frames.len();
    let counts = dynamics::class_counts(frames, classes, input.detections, &class);
    let diffusion = dynamics::diffusion(
        input.tracks,
        &class,
        input.detections,
        &input.drift.offsets,
        classes,
        cfg.msd_max_lag,
        cfg.seed,
    );
    let coupling = coupling(input, &class, classes, cfg)?;
    log.lap("time")?;
    let class_pca = class_pcas(input, &class, classes, cfg, log)?;
    log.lap("pca")?;
    Ok(Labelled {
        clustering,
        class_means,
        raw_class,
        class,
        hmm_changed,
        transitions_raw,
        transitions,
        hmm_matrix,
        counts,
        class_names,
        diffusion,
        coupling,
        class_pca,
    })
}

type Smoothed = (
    Vec<Option<usize>>,
    Vec<Option<usize>>,
    Vec<Vec<f64>>,
    Transitions,
);

/// Each detection's class from the clustering, and along tracks after hidden-Markov smoothing
/// (a class set by hand stands); with the matrix used and the raw transitions.
fn smoothed(
    input: &LabelInputs,
    clustering: &Clustering,
    corrections: &Corrections,
    cfg: &AnalysisConfig,
) -> Result<Smoothed> {
    let n = input.detections.len();
    let classes = clustering.classes;
    let mut raw_class = vec![None; n];
    let mut posterior_of = vec![None; n];
    for (row, &d) in input.patches.detection.iter().enumerate() {
        raw_class[d] = Some(clustering.labels[row]);
        posterior_of[d] = Some(row);
    }
    cfg.markov.validate(classes)?;
    let transitions_raw =
        dynamics::transitions(input.tracks, input.detections, &raw_class, classes);
    let hmm_matrix = dynamics::hmm_matrix(&transitions_raw, &cfg.markov);
    let mut class = raw_class.clone();
    if cfg.hmm {
        let rows = clustering.labels.len() as f64;
        let prior: Vec<f64> = (0..classes)
            .map(|c| clustering.labels.iter().filter(|&&l| l == c).count() as f64 / rows)
            .collect();
        for t in &input.tracks.tracks {
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
    if corrections.fit(input.clustering_key) {
        for d in corrections.relabelled() {
            if raw_class.get(d).is_some_and(|c| c.is_some()) {
                class[d] = raw_class[d];
            }
        }
    }
    Ok((raw_class, class, hmm_matrix, transitions_raw))
}

/// The pair correlation and nearest distances between two classes (the two most common unless
/// set); `None` with one class.
fn coupling(
    input: &LabelInputs,
    class: &[Option<usize>],
    classes: usize,
    cfg: &AnalysisConfig,
) -> Result<Option<Coupling>> {
    let pair = cfg.coupling.unwrap_or((0, 1.min(classes - 1)));
    if pair.0 >= classes || pair.1 >= classes {
        return Err(Error::invalid(format!(
            "coupling between classes {} and {}: only {classes} classes were found",
            pair.0, pair.1
        )));
    }
    if classes < 2 && cfg.coupling.is_none() {
        return Ok(None);
    }
    let (w, h) = (input.movie.width(), input.movie.height());
    let half = cfg.patch_size as f64 / 2.0;
    let region = ((half, half), (w as f64 - half, h as f64 - half));
    let r_max = cfg
        .coupling_r_max_px
        .unwrap_or_else(|| input.lattice_constant_px.map_or(100.0, |a| 4.0 * a));
    Ok(Some(dynamics::coupling(
        input.detections,
        class,
        input.movie.frames.len(),
        pair.0,
        pair.1,
        region,
        r_max,
        cfg.coupling_bins,
        cfg.coupling_draws,
        cfg.seed,
    )?))
}

/// PCA of each class's patches with its parallel analysis; classes of fewer than 3 members are
/// said to be too small.
fn class_pcas(
    input: &LabelInputs,
    class: &[Option<usize>],
    classes: usize,
    cfg: &AnalysisConfig,
    log: &mut Log,
) -> Result<Vec<ClassPca>> {
    let (patches, previous) = (input.patches, input.previous_pca);
    // Reference rows of each centre.
    let mut reference_rows: Vec<Vec<usize>> = vec![Vec::new(); input.detections.len()];
    if let Some((refs, of)) = input.references {
        for (row, &r) in refs.detection.iter().enumerate() {
            if let Some(rows) = reference_rows.get_mut(of[r]) {
                rows.push(row);
            }
        }
    }
    let mut out = Vec::new();
    for c in 0..classes {
        let rows: Vec<usize> = (0..patches.len())
            .filter(|&r| class[patches.detection[r]] == Some(c))
            .collect();
        let members: Vec<usize> = rows.iter().map(|&r| patches.detection[r]).collect();
        if let Some(p) = previous.iter().find(|p| p.detections == members) {
            out.push(ClassPca {
                class: c,
                ..p.clone()
            });
            continue;
        }
        if rows.len() < 3 {
            log.warn(format!(
                "class {c}: {} members are too few for a PCA",
                rows.len()
            ));
            continue;
        }
        let x = patches.data.select(Axis(0), &rows);
        let p = pca::fit(&x, cfg.class_pca_components, cfg.seed)?;
        let null = match input.references {
            Some((refs, _)) => pca::Null::Neighbours {
                data: &refs.data,
                choices: members.iter().map(|&m| reference_rows[m].clone()).collect(),
            },
            None => pca::Null::PixelShuffle,
        };
        let significance = pca::parallel_analysis(&x, &p, null, cfg.class_pca_shuffles, cfg.seed)?;
        let size = cfg.patch_size;
        out.push(ClassPca {
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
            detections: members,
        });
    }
    Ok(out)
}
