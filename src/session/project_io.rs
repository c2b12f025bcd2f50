//! The session saved to a folder (a project) and opened again, what is open replaced by
//! another movie (keeping the work first), and everything found written out.

use super::project;
use super::{
    Analysis, Detected, JobKind, Level, Model, Output, Session, Settings, Source, counts_per_frame,
    load_model, write_results,
};
use crate::analysis::corrections::{Corrections, clustering_key};
use crate::analysis::{self, DefectAnalysis};
use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::jobs;
use crate::jobs::StageTime;
use crate::lattice::{Labels, label_in};
use crate::movie::register::{Registration, register_movie};
use crate::movie::{self, Movie};
use crate::raster::Raster;
use crate::synth::{self, TruthDefect};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A movie with whatever a project brought along.
pub(super) struct Opened {
    pub movie: Movie,
    pub path: Option<PathBuf>,
    pub truth: Option<Vec<TruthDefect>>,
    pub project: Option<ProjectParts>,
    /// Set when the frames were registered after reading.
    pub registration: Option<Registration>,
    /// Registering the open movie keeps its model (the network does not depend on the frames).
    pub keep_model: bool,
    /// Where the session open before was saved, when it held work.
    pub kept: Option<PathBuf>,
}

impl Opened {
    /// A movie on its own (no project, not registered).
    pub fn movie(movie: Movie, path: Option<PathBuf>, truth: Option<Vec<TruthDefect>>) -> Self {
        Opened {
            movie,
            path,
            truth,
            project: None,
            registration: None,
            keep_model: false,
            kept: None,
        }
    }
}

pub(super) struct ProjectParts {
    settings: Settings,
    labels: Option<Labels>,
    mask: Option<Vec<bool>>,
    model: Option<Model>,
    detected: Option<Detected>,
    analysis: Option<(DefectAnalysis, Vec<Detection>)>,
    corrections: Corrections,
}

impl Session {
    /// Changes whenever something a project saves changes (autosave compares it).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let addr = |a: Option<usize>| a.unwrap_or(0);
        addr(self.movie.as_ref().map(|m| Arc::as_ptr(m) as usize)).hash(&mut h);
        addr(self.model.as_ref().map(|m| Arc::as_ptr(m) as usize)).hash(&mut h);
        addr(self.detected.as_ref().map(|d| Arc::as_ptr(d) as usize)).hash(&mut h);
        addr(self.analysis.as_ref().map(|a| Arc::as_ptr(a) as usize)).hash(&mut h);
        addr(self.registration.as_ref().map(|r| Arc::as_ptr(r) as usize)).hash(&mut h);
        self.mask_generation.hash(&mut h);
        self.mask_edited.hash(&mut h);
        self.movie_path.hash(&mut h);
        serde_json::to_string(&self.settings)
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    }

    /// A function that saves the session as it is now into a project folder (for the save job
    /// and for autosaves); `None` without a movie.
    pub fn project_saver(&self) -> Option<impl FnOnce(&Path) -> Result<u64> + Send + 'static> {
        let movie = self.movie.clone()?;
        // Absolute, so that the project opens from anywhere (relative paths in a project are
        // relative to its folder).
        let movie_path = self
            .movie_path
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        let settings = self.settings.clone();
        let file = project::ProjectFile {
            format_version: project::PROJECT_VERSION,
            generation: 0,
            movie: movie_path,
            demo: self.movie_path.is_none() && self.truth.is_some(),
            settings,
            mask_edited: self.mask_edited,
            model: self.model.as_ref().map(|m| m.source.clone()),
            detections: self.detected.is_some(),
            analysed: self.analysis.is_some(),
            registered: self.registration.as_ref().map(|r| r.cropped),
            corrections: self.corrections.clone(),
            earlier_edits: Vec::new(),
        };
        let mask = self.mask_edited.then(|| self.mask.clone());
        let model = self.model.clone();
        let iterations = self.losses.len();
        let all = self.detected.as_ref().map(|d| d.all.clone());
        let analysed = self.analysis.as_ref().map(|_| self.analysed.clone());
        let (w, h) = (movie.width(), movie.height());
        Some(move |dir: &Path| -> Result<u64> {
            let mask = match &mask {
                Some(m) => Some(Raster::from_vec(
                    w,
                    h,
                    m.iter().map(|&on| if on { 255.0 } else { 0.0 }).collect(),
                )?),
                None => None,
            };
            let save_model = |p: &Path| match &model {
                Some(m) => m.save(iterations, p),
                None => Ok(()),
            };
            let contents = project::Contents {
                mask: mask.as_ref(),
                model: model
                    .is_some()
                    .then_some(&save_model as &dyn Fn(&Path) -> Result<()>),
                detections: all.as_deref(),
                analysed: analysed.as_deref().map(|a| a.as_slice()),
            };
            project::save(dir, file, &contents)
        })
    }

    pub(super) fn restore(&mut self, p: ProjectParts) {
        let recent = std::mem::take(&mut self.settings.recent);
        self.settings = p.settings;
        self.settings.recent = recent;
        if let Some(l) = p.labels {
            self.set_mask(l.mask.clone());
            self.labels = Some(l);
        }
        if let Some(m) = p.mask
            && m.len() == self.mask.len()
        {
            self.set_mask(m);
            self.mask_edited = true;
        }
        self.model = p.model.map(Arc::new);
        self.detected = p.detected.map(Arc::new);
        if let Some((a, dets)) = p.analysis {
            self.analysis = Some(Arc::new(a));
            self.analysed = Arc::new(dets);
            self.corrections = p.corrections;
        }
    }
}

pub(super) fn open_project(dir: &Path, ctx: &jobs::JobCtx) -> Result<Opened> {
    let file = project::read(dir)?;
    let settings = file.settings.clone();
    let paths = file.paths(dir);
    ctx.begin("reading the movie", 1);
    let movie_path = file.movie_path(dir);
    let (movie, truth) = match (&movie_path, file.demo) {
        (Some(p), _) => (movie::load_in(p, ctx)?, None),
        (None, true) => {
            let s = synth::generate(&synth::demo_config())?;
            (s.movie, Some(s.truth))
        }
        (None, false) => return Err(Error::invalid("the project names no movie")),
    };
    movie.validate()?;
    let (mut movie, mut truth) = (movie, truth);
    let registration = match file.registered {
        Some(crop) => {
            let reg = register_movie(&mut movie, crop, ctx)?;
            truth = truth.map(|t| synth::register_truth(&t, &reg, movie.width(), movie.height()));
            Some(reg)
        }
        None => None,
    };
    let (w, h) = (movie.width(), movie.height());
    ctx.begin("labelling frame 0", 1);
    let labels = match label_in(&movie.frames[0], &settings.chain.label, ctx) {
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        labelled => labelled.ok(),
    };
    let mask = if file.mask_edited {
        let img = movie::load(&paths.mask)?;
        let f = &img.frames[0];
        if (f.width, f.height) != (w, h) {
            return Err(Error::invalid(
                "the project's mask.png does not fit its movie",
            ));
        }
        Some(f.data.iter().map(|&v| v > 0.5 * f.min_max().1).collect())
    } else {
        None
    };
    let model = match file.model {
        Some(source) => {
            ctx.begin("loading the model", 1);
            let mut m = load_model(&paths.model, settings.chain.train.device, ctx)?;
            m.source = source;
            Some(m)
        }
        None => None,
    };
    let detected = if file.detections {
        let all = project::read_detections(&paths.detections)?;
        if let Some(d) = all.iter().find(|d| d.frame >= movie.frames.len()) {
            return Err(Error::invalid(format!(
                "the project's detections refer to frame {} of a {}-frame movie",
                d.frame,
                movie.frames.len()
            )));
        }
        Some(Detected {
            all,
            // Regions are not kept in projects: Detect again to see them.
            ..Default::default()
        })
    } else {
        None
    };
    let mut corrections = file.corrections.clone();
    let analysis = if file.analysed {
        let dets = project::read_detections(&paths.analysed)?;
        // Corrections of a project saved when they were analysis settings: made on these
        // detections under these settings.
        if corrections.edits.is_empty() && !file.earlier_edits.is_empty() {
            corrections.made_under = Some(clustering_key(&settings.chain.analysis, &dets));
            corrections.edits = file.earlier_edits.clone();
        }
        let lattice = labels.as_ref().and_then(|l| l.lattice.as_ref());
        let a = analysis::run_corrected(
            &movie,
            &dets,
            lattice,
            &settings.chain.analysis,
            &corrections,
            ctx,
        )?;
        Some((a, dets))
    } else {
        None
    };
    Ok(Opened {
        movie,
        path: movie_path,
        truth,
        project: Some(ProjectParts {
            settings,
            labels,
            mask,
            model,
            detected,
            analysis,
            corrections,
        }),
        registration,
        keep_model: false,
        kept: None,
    })
}

impl Session {
    /// Whether the session holds work that opening something else would throw away.
    pub fn has_work(&self) -> bool {
        self.model.as_ref().is_some_and(|m| m.training.is_some())
            || self.detected.is_some()
            || self.analysis.is_some()
            || self.sites.is_some()
            || self.mask_edited
    }

    /// Open a movie, the demo or a project in place of what is open. Work that would be lost
    /// is first saved as a project under [`Self::keep_dir`] (said in a notice).
    pub(super) fn open(&mut self, source: Source) {
        if self.busy() {
            self.notify(
                Level::Warning,
                "wait for the running job, or cancel it, before opening",
            );
            return;
        }
        self.notices.clear();
        let keep = match (&self.keep_dir, self.has_work()) {
            (Some(root), true) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let dir = root.join(format!("before-open-{stamp}"));
                self.project_saver().map(|save| (save, dir))
            }
            _ => None,
        };
        self.start(JobKind::Open, move |ctx| {
            let kept = match keep {
                Some((save, dir)) => {
                    ctx.begin("keeping the current session", 1);
                    save(&dir)?;
                    Some(dir)
                }
                None => None,
            };
            let mut opened = match source {
                Source::Demo => {
                    ctx.begin("generating the demo movie", 1);
                    let s = synth::generate(&synth::demo_config())?;
                    Opened::movie(s.movie, None, Some(s.truth))
                }
                Source::Movie(path) => {
                    let movie = movie::load_in(&path, ctx)?;
                    Opened::movie(movie, Some(path), None)
                }
                Source::Project(dir) => open_project(&dir, ctx)?,
            };
            opened.kept = kept;
            Ok(Output::Opened(Box::new(opened)))
        });
    }

    /// What the window has found, as the CLI's chain reports it (for [`write_results`]), with
    /// the detections the filter keeps; `None` before detection.
    pub fn results(&self) -> Option<Analysis> {
        let movie = self.movie.as_ref()?;
        let detected = self.detected.as_ref()?;
        let model = self.model.as_ref()?;
        let detections = self.filtered();
        let timings = self
            .last_job_seconds
            .iter()
            .filter_map(|(k, seconds)| {
                Some(StageTime {
                    stage: k.stage()?.into(),
                    seconds: *seconds,
                })
            })
            .collect();
        Some(Analysis {
            labels: self.labels.clone(),
            counts_per_frame: counts_per_frame(&detections, movie.frames.len()),
            detections,
            dropped: detected.dropped,
            regions: detected.regions.clone(),
            timings,
            device: model.device_name.clone(),
            model_source: model.source.clone(),
            training: model.training.clone(),
            warnings: detected.warnings.clone(),
            sites: self.sites.as_deref().cloned(),
        })
    }

    /// Write what the CLI's `analyze` writes (detections, regions, the site model's tables,
    /// run.json) and, once analysed, the analysis's tables and figures.
    pub(super) fn export_all(&mut self) {
        let Some(movie) = self.movie.clone() else {
            self.notify(Level::Warning, "nothing to export yet: open a movie first");
            return;
        };
        let results = self.results();
        let analysis = self.analysis.clone();
        if results.is_none() && analysis.is_none() {
            self.notify(
                Level::Warning,
                "nothing to export yet: detect defects first",
            );
            return;
        }
        let cfg = self.settings.chain.clone();
        let dets = self.analysed.clone();
        let dir = self.settings.export_dir.clone();
        let png_px = self.settings.png_width_px();
        self.start(JobKind::Export, move |ctx| {
            ctx.begin("writing tables and figures", 1);
            let mut files = 0;
            if let Some(r) = &results {
                write_results(&dir, &movie, &cfg, r, None)?;
                files += 3;
            }
            if let Some(a) = &analysis {
                files += analysis::output::write(&dir, a, &dets, &movie, Some(png_px))?.len();
            }
            Ok(Output::Wrote(format!(
                "{files} files written to {}",
                dir.display()
            )))
        });
    }
}
