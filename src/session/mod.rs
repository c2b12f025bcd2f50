//! The workbench's data store and job runner, free of GUI types: what has been loaded and
//! computed, the settings each stage runs with, the one background job, and notifications.
//!
//! Panels read a [`Session`] and push [`Command`]s; the app applies them once per frame with
//! [`Session::apply`] and polls the running job with [`Session::poll`]. Every stage is a call
//! into the library on a job thread, exactly as the CLI makes it.

use crate::analysis::classify::ManualEdit;
use crate::analysis::corrections::{Corrections, clustering_key, default_class_name};
use crate::analysis::{self, DefectAnalysis};
use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::export::{atomic_write, ensure_dir};
use crate::jobs::{self, Event, JobHandle, Progress};
use crate::lattice::{DEFAULT_MASK_RADIUS_PX, Labels, label_in};
use crate::movie::Movie;
use crate::movie::register::{Registration, registered};
use crate::sites::{SiteAnalysis, analyze_sites};
use crate::synth::{self, TruthDefect};
use crate::train::FrameLabels;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod chain;
mod commands;
pub mod project;
mod project_io;
mod settings;
mod stages;

pub use chain::{
    Analysis, AnalyzeConfig, Written, analyze, combined_points, counts_per_frame,
    score_against_truth, score_points, write_results,
};

pub use commands::{Command, JobKind, Level, LogEntry, Notice};
use project_io::Opened;
pub use settings::{DetectionFilter, Settings};
pub use stages::{Detected, Model, TrainSummary, frame_lattice, load_model};

/// Probability maps are kept for the overlay while they fit in this many bytes (1 byte/pixel).
const MAP_BUDGET_BYTES: usize = 512 << 20;
/// Recent files remembered.
const RECENT: usize = 8;

/// What to open.
enum Source {
    Demo,
    Movie(PathBuf),
    Project(PathBuf),
}

/// What a finished job hands back.
enum Output {
    Opened(Box<Opened>),
    Labelled(Labels),
    Model(Box<Model>),
    Detected(Detected),
    Analysed(Box<DefectAnalysis>, Vec<Detection>),
    Sites(Box<SiteAnalysis>),
    Wrote(String),
}

/// The running job.
pub struct Job {
    pub kind: JobKind,
    pub started: Instant,
    handle: JobHandle<Output>,
}

impl Job {
    pub fn progress(&self) -> Progress {
        self.handle.ctx.progress()
    }

    pub fn cancel(&self) {
        self.handle.ctx.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.handle.ctx.is_cancelled()
    }
}

/// The data store.
pub struct Session {
    pub settings: Settings,
    pub movie: Option<Arc<Movie>>,
    /// Where the movie came from (a path, or the built-in demo).
    pub movie_path: Option<PathBuf>,
    pub truth: Option<Arc<Vec<TruthDefect>>>,
    /// What registering the frames removed, when they were registered.
    pub registration: Option<Arc<Registration>>,
    pub labels: Option<Labels>,
    /// The training mask of frame 0: the labels plus hand edits.
    pub mask: Vec<bool>,
    /// Changes whenever `mask` does (views cache its texture by it).
    pub mask_generation: u64,
    pub mask_edited: bool,
    pub model: Option<Arc<Model>>,
    pub losses: Vec<[f64; 2]>,
    pub validation: Vec<[f64; 2]>,
    pub detected: Option<Arc<Detected>>,
    pub analysis: Option<Arc<DefectAnalysis>>,
    /// The detections the analysis ran on (the filtered ones).
    pub analysed: Arc<Vec<Detection>>,
    /// The site model of the movie (frame 0's lattice followed through it).
    pub sites: Option<Arc<SiteAnalysis>>,
    /// Classes corrected by hand, over the analysis's clustering.
    pub corrections: Corrections,
    pub job: Option<Job>,
    pub notices: Vec<Notice>,
    /// Every notice and job message, for the log window.
    pub log: Vec<LogEntry>,
    /// Where work is saved (as a project) before opening something else would discard it;
    /// `None`: not kept.
    pub keep_dir: Option<PathBuf>,
    /// Seconds the last finished job of each kind took.
    pub last_job_seconds: Vec<(JobKind, f64)>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Session {
    /// An empty session; `wake` is called from job threads when there is news (the GUI passes
    /// its repaint request).
    pub fn new(settings: Settings, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Session {
            settings,
            movie: None,
            movie_path: None,
            truth: None,
            registration: None,
            labels: None,
            mask: Vec::new(),
            mask_generation: 0,
            mask_edited: false,
            model: None,
            losses: Vec::new(),
            validation: Vec::new(),
            detected: None,
            analysis: None,
            analysed: Arc::new(Vec::new()),
            sites: None,
            corrections: Corrections::default(),
            job: None,
            notices: Vec::new(),
            log: Vec::new(),
            keep_dir: None,
            last_job_seconds: Vec::new(),
            wake,
        }
    }

    /// Drop information notices older than `info_s` and warnings older than `warning_s`
    /// (errors stay until dismissed; the log keeps everything).
    pub fn expire_notices(&mut self, info_s: f64, warning_s: f64) {
        self.notices.retain(|n| {
            let age = n.at.elapsed().as_secs_f64();
            match n.level {
                Level::Info => age < info_s,
                Level::Warning => age < warning_s,
                Level::Error => true,
            }
        });
    }

    /// Put `text` in the log only (details a notice would bury the work under).
    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        const KEPT: usize = 2000;
        if self.log.len() >= KEPT {
            self.log.drain(..KEPT / 10);
        }
        self.log.push(LogEntry {
            level,
            text: text.into(),
            at: std::time::SystemTime::now(),
        });
    }

    fn set_mask(&mut self, mask: Vec<bool>) {
        self.mask = mask;
        self.mask_generation += 1;
    }

    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    pub fn running(&self, kind: JobKind) -> bool {
        self.job.as_ref().is_some_and(|j| j.kind == kind)
    }

    /// Show `text` as a notice (a repeat of one shown is counted on it, not shown again) and
    /// log it.
    pub fn notify(&mut self, level: Level, text: impl Into<String>) {
        let text = text.into();
        self.log(level, text.clone());
        if let Some(i) = self.notices.iter().position(|n| n.text == text) {
            let mut n = self.notices.remove(i);
            n.count += 1;
            n.at = Instant::now();
            n.level = n.level.max(level);
            self.notices.push(n);
            return;
        }
        self.notices.push(Notice {
            level,
            text,
            at: Instant::now(),
            count: 1,
        });
    }

    /// Detections passing the live filter.
    pub fn filtered(&self) -> Vec<Detection> {
        self.detected.as_ref().map_or_else(Vec::new, |d| {
            d.all
                .iter()
                .filter(|x| self.settings.filter.keeps(x))
                .copied()
                .collect()
        })
    }

    /// The name of class `c` of the analysis ("class c" before one).
    pub fn class_name(&self, c: usize) -> String {
        self.analysis
            .as_ref()
            .map_or_else(|| default_class_name(c), |a| a.class_name(c))
    }

    /// The class of each analysed detection, by index into [`Self::analysed`].
    pub fn class_of(&self, i: usize) -> Option<usize> {
        self.analysis
            .as_ref()
            .and_then(|a| a.class.get(i).copied().flatten())
    }

    fn remember(&mut self, path: &Path) {
        self.settings.recent.retain(|p| p != path);
        self.settings.recent.insert(0, path.to_path_buf());
        self.settings.recent.truncate(RECENT);
    }

    fn start<F>(&mut self, kind: JobKind, work: F)
    where
        F: FnOnce(&jobs::JobCtx) -> Result<Output> + Send + 'static,
    {
        if let Some(j) = &self.job {
            let msg = format!("{} is still running; wait or cancel it", j.kind.name());
            self.notify(Level::Warning, msg);
            return;
        }
        let wake = self.wake.clone();
        match jobs::spawn(kind.name(), Box::new(move || wake()), work) {
            Ok(handle) => {
                self.job = Some(Job {
                    kind,
                    started: Instant::now(),
                    handle,
                })
            }
            Err(e) => self.notify(Level::Error, e.to_string()),
        }
    }

    /// Settings checked before a job starts: an invalid value is a warning naming it, and the
    /// job does not run.
    fn valid(&mut self, check: Result<()>) -> bool {
        match check {
            Ok(()) => true,
            Err(e) => {
                self.notify(Level::Warning, format!("not started: {e}"));
                false
            }
        }
    }

    /// Carry out one command.
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::OpenDemo => self.open(Source::Demo),
            Command::OpenMovie(path) => self.open(Source::Movie(path)),
            Command::OpenProject(dir) => self.open(Source::Project(dir)),
            Command::SaveProject(dir) => self.save_project(dir),
            Command::Register { crop } => self.register(crop),
            Command::Label => self.label(),
            Command::Paint { x, y, radius, on } => self.paint(x, y, radius, on),
            Command::ResetMask => {
                if let Some(l) = &self.labels {
                    self.set_mask(l.mask.clone());
                    self.mask_edited = false;
                }
            }
            Command::Train => self.train(),
            Command::SaveModel(dir) => match &self.model {
                Some(m) => match m.save(self.losses.len(), &dir) {
                    Ok(()) => self.notify(Level::Info, format!("model saved to {}", dir.display())),
                    Err(e) => self.notify(Level::Error, e.to_string()),
                },
                None => self.notify(Level::Warning, "no model to save yet: train or load one"),
            },
            Command::LoadModel(dir) => {
                let choice = self.settings.chain.train.device;
                self.start(JobKind::LoadModel, move |ctx| {
                    ctx.begin("loading the model", 1);
                    Ok(Output::Model(Box::new(load_model(&dir, choice, ctx)?)))
                })
            }
            Command::Detect => self.detect(),
            Command::Analyse => self.analyse(),
            Command::FitSites => self.fit_sites(),
            Command::Relabel { detection, class } => {
                self.correct(Some(ManualEdit::Relabel { detection, class }));
            }
            Command::Merge { from, into } => self.correct(Some(ManualEdit::Merge { from, into })),
            Command::UndoEdit => {
                if self.corrections.edits.pop().is_some() {
                    self.correct(None);
                }
            }
            Command::ExportAll => self.export_all(),
            Command::ExportFigure(name, fig) => {
                let dir = self.settings.export_dir.clone();
                let scale = self.settings.png_width_px() / fig.width.max(1.0);
                self.start(JobKind::Export, move |ctx| {
                    ctx.begin("writing the figure", 1);
                    ensure_dir(&dir)?;
                    let svg = fig.to_svg()?;
                    atomic_write(&dir.join(format!("{name}.svg")), svg.as_bytes())?;
                    let png = crate::export::figure::svg_to_png(&svg, scale)?;
                    atomic_write(&dir.join(format!("{name}.png")), &png)?;
                    Ok(Output::Wrote(format!(
                        "{name}.svg and {name}.png written to {}",
                        dir.display()
                    )))
                });
            }
            Command::Cancel => {
                if let Some(j) = &self.job {
                    j.cancel();
                }
            }
            Command::DismissNotice(i) => {
                if i < self.notices.len() {
                    self.notices.remove(i);
                }
            }
            Command::DismissAll => self.notices.clear(),
            Command::NameClass { class, name } => self.name_class(class, &name),
        }
    }

    fn label(&mut self) {
        let (true, Some(movie)) = (self.ready(JobKind::Label), self.movie.clone()) else {
            return;
        };
        let method = self.settings.chain.label.clone();
        if let Some(l) = &mut self.labels {
            match l.rethreshold(&method) {
                Ok(true) => {
                    let mask = l.mask.clone();
                    if !self.mask_edited {
                        self.set_mask(mask);
                    }
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    self.notify(Level::Error, e.to_string());
                    return;
                }
            }
        }
        self.start(JobKind::Label, move |ctx| {
            ctx.begin("labelling frame 0", 1);
            let l = label_in(&movie.frames[0], &method, ctx)?;
            ctx.step(1)?;
            Ok(Output::Labelled(l))
        });
    }

    fn paint(&mut self, x: f32, y: f32, radius: f32, on: bool) {
        let Some(movie) = &self.movie else { return };
        let (w, h) = (movie.width(), movie.height());
        if self.mask.len() != w * h {
            self.set_mask(vec![false; w * h]);
        }
        let r = radius.max(0.5);
        let (x0, x1) = ((x - r).floor().max(0.0), (x + r).ceil().min(w as f32 - 1.0));
        let (y0, y1) = ((y - r).floor().max(0.0), (y + r).ceil().min(h as f32 - 1.0));
        if x0 > x1 || y0 > y1 {
            return;
        }
        for py in y0 as usize..=y1 as usize {
            for px in x0 as usize..=x1 as usize {
                if (px as f32 - x).powi(2) + (py as f32 - y).powi(2) <= r * r {
                    self.mask[py * w + px] = on;
                }
            }
        }
        self.mask_generation += 1;
        self.mask_edited = true;
    }

    fn train(&mut self) {
        let (true, Some(movie)) = (self.ready(JobKind::Train), self.movie.clone()) else {
            return;
        };
        let mask = self.mask.clone();
        let radius = self
            .labels
            .as_ref()
            .map_or(DEFAULT_MASK_RADIUS_PX, Labels::mask_radius_px);
        let ignore = self
            .labels
            .as_ref()
            .map_or_else(Vec::new, Labels::ignore_mask);
        let cfg = self.settings.chain.train.clone();
        if !self.valid(cfg.validate(movie.width(), movie.height())) {
            return;
        }
        self.losses.clear();
        self.validation.clear();
        self.start(JobKind::Train, move |ctx| {
            let labels = FrameLabels {
                mask: &mask,
                ignore: &ignore,
                radius_px: radius,
            };
            let model = stages::train_model(&movie.frames[0], &labels, &cfg, None, ctx)?;
            Ok(Output::Model(Box::new(model)))
        });
    }

    fn detect(&mut self) {
        let (true, Some(movie), Some(model)) = (
            self.ready(JobKind::Detect),
            self.movie.clone(),
            self.model.clone(),
        ) else {
            return;
        };
        let cfg = self.settings.chain.localize.clone();
        if !self.valid(cfg.validate()) {
            return;
        }
        let batch = self.settings.chain.inference_batch.max(1);
        self.start(JobKind::Detect, move |ctx| {
            let keep_maps = movie.frames.len() * movie.width() * movie.height() <= MAP_BUDGET_BYTES;
            let mut d = stages::detect(&movie, &model, &cfg, batch, keep_maps, ctx)?;
            if !keep_maps {
                d.warnings.insert(
                    0,
                    format!(
                        "the movie is too large to keep every probability map ({} MB); the overlay is off",
                        (movie.frames.len() * movie.width() * movie.height()) >> 20
                    ),
                );
            }
            Ok(Output::Detected(d))
        });
    }

    fn analyse(&mut self) {
        let (true, Some(movie)) = (self.ready(JobKind::Analyse), self.movie.clone()) else {
            return;
        };
        if !self.valid(self.settings.chain.analysis.validate()) {
            return;
        }
        let detections = self.filtered();
        let cfg = self.settings.chain.analysis.clone();
        // Corrections name detections by their place in the analysed list and classes by
        // number; on other detections or another clustering they would hit the wrong ones.
        if !self.corrections.fit(clustering_key(&cfg, &detections)) {
            let n = self.corrections.edits.len();
            self.corrections = Corrections::default();
            self.notify(
                Level::Warning,
                format!(
                    "{n} manual corrections were made on other detections or another clustering and were dropped"
                ),
            );
        }
        let lattice = self.labels.as_ref().and_then(|l| l.lattice.clone());
        let corrections = self.corrections.clone();
        self.start(JobKind::Analyse, move |ctx| {
            let a = analysis::run_corrected(
                &movie,
                &detections,
                lattice.as_ref(),
                &cfg,
                &corrections,
                ctx,
            )?;
            Ok(Output::Analysed(Box::new(a), detections))
        });
    }

    fn name_class(&mut self, class: usize, name: &str) {
        let Some(a) = self.analysis.clone() else {
            self.notify(Level::Warning, "analyse the defects first");
            return;
        };
        if self.corrections.name(class, name, &a) {
            self.correct(None);
        } else {
            self.notify(
                Level::Warning,
                format!("class {class} has no member to name"),
            );
        }
    }

    /// Record `edit` (none: an edit was undone) and recompute what depends on the classes.
    fn correct(&mut self, edit: Option<ManualEdit>) {
        let (Some(movie), Some(a)) = (self.movie.clone(), self.analysis.clone()) else {
            self.notify(Level::Warning, "analyse the defects first");
            return;
        };
        if let Some(e) = edit {
            self.corrections.push(e, &a);
        }
        let corrections = self.corrections.clone();
        let detections = self.analysed.clone();
        self.start(JobKind::Analyse, move |ctx| {
            let fixed = a.corrected(&movie, &detections, &corrections, ctx)?;
            Ok(Output::Analysed(Box::new(fixed), detections.to_vec()))
        });
    }

    /// Why a `kind` job cannot run now, if it cannot (the panels disable its button with it).
    pub fn blocker(&self, kind: JobKind) -> Option<&'static str> {
        let Some(movie) = &self.movie else {
            return matches!(
                kind,
                JobKind::Register
                    | JobKind::Label
                    | JobKind::Train
                    | JobKind::Detect
                    | JobKind::Analyse
                    | JobKind::Sites
            )
            .then_some("open a movie first");
        };
        match kind {
            JobKind::Train if self.mask.is_empty() => {
                Some("label frame 0 first: training learns from its mask")
            }
            JobKind::Detect if self.model.is_none() => Some("train or load a model first"),
            JobKind::Analyse if self.detected.is_none() => Some("detect defects first"),
            JobKind::Sites if movie.frames.len() < 2 => Some(
                "the site model follows defects through time: it needs a movie of at least 2 frames",
            ),
            JobKind::Sites => match &self.labels {
                None => Some("label frame 0 first"),
                Some(l) if l.lattice.is_none() => Some(
                    "the site model needs frame 0 labelled from its lattice (Ground truth: Columns)",
                ),
                Some(_) => None,
            },
            _ => None,
        }
    }

    /// Say why a `kind` job cannot run now (see [`Self::blocker`]); true when it can.
    fn ready(&mut self, kind: JobKind) -> bool {
        match self.blocker(kind) {
            Some(why) => {
                self.notify(Level::Warning, why);
                false
            }
            None => true,
        }
    }

    fn fit_sites(&mut self) {
        if !self.ready(JobKind::Sites) {
            return;
        }
        let (Some(movie), Some(fit)) = (
            self.movie.clone(),
            self.labels.as_ref().and_then(|l| l.lattice.clone()),
        ) else {
            return;
        };
        let cfg = self.settings.chain.sites.clone();
        if !self.valid(cfg.validate()) {
            return;
        }
        self.start(JobKind::Sites, move |ctx| {
            let a = analyze_sites(&movie.frames, &fit, movie.calibration, &cfg, ctx)?;
            Ok(Output::Sites(Box::new(a)))
        });
    }

    fn register(&mut self, crop: bool) {
        let (true, Some(movie)) = (self.ready(JobKind::Register), self.movie.clone()) else {
            return;
        };
        if self.registration.is_some() {
            self.notify(
                Level::Warning,
                "the frames are registered already; open the movie again to start over",
            );
            return;
        }
        if movie.frames.len() < 2 {
            self.notify(Level::Warning, "a single frame has no drift to remove");
            return;
        }
        let (path, truth) = (self.movie_path.clone(), self.truth.clone());
        self.start(JobKind::Register, move |ctx| {
            let (movie, reg) = registered(&movie, crop, ctx)?;
            let truth =
                truth.map(|t| synth::register_truth(&t, &reg, movie.width(), movie.height()));
            Ok(Output::Opened(Box::new(Opened {
                registration: Some(reg),
                keep_model: true,
                ..Opened::movie(movie, path, truth)
            })))
        });
    }

    fn save_project(&mut self, dir: PathBuf) {
        let Some(job) = self.project_saver() else {
            self.notify(Level::Warning, "nothing to save: open a movie first");
            return;
        };
        self.start(JobKind::SaveProject, move |ctx| {
            ctx.begin("saving the project", 1);
            job(&dir)?;
            Ok(Output::Wrote(format!("project saved to {}", dir.display())))
        });
    }

    /// Drain the running job's events; take its result when it has finished. Returns true when
    /// something changed.
    pub fn poll(&mut self) -> bool {
        self.collect(false)
    }

    /// Block until the running job has finished and take its result (tests and scripts; the
    /// GUI polls).
    pub fn wait(&mut self) {
        self.collect(true);
    }

    fn collect(&mut self, block: bool) -> bool {
        let Some(job) = &self.job else { return false };
        let mut changed = false;
        let events: Vec<Event> = job.handle.events.try_iter().collect();
        for e in events {
            changed = true;
            self.on_event(e);
        }
        if !block && !self.job.as_ref().is_some_and(|j| j.handle.is_finished()) {
            return changed;
        }
        let Some(job) = self.job.take() else {
            return changed;
        };
        let kind = job.kind;
        let seconds = job.started.elapsed().as_secs_f64();
        let (result, late) = job.handle.join_with_events();
        for e in late {
            self.on_event(e);
        }
        match result {
            Ok(out) => {
                self.last_job_seconds.retain(|(k, _)| *k != kind);
                self.last_job_seconds.push((kind, seconds));
                self.finish(out);
            }
            Err(Error::Cancelled) => {
                self.notify(Level::Info, format!("{} cancelled", kind.name()));
            }
            Err(e) => self.notify(Level::Error, format!("{} failed: {e}", kind.name())),
        }
        true
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::TrainStep { iteration, loss } => {
                self.losses.push([iteration as f64, loss as f64])
            }
            Event::Validation { iteration, iou } => {
                self.validation.push([iteration as f64, iou as f64])
            }
            Event::Warning(w) => self.notify(Level::Warning, w),
            Event::Info(i) => self.log(Level::Info, i),
        }
    }

    fn finish(&mut self, out: Output) {
        match out {
            Output::Opened(o) => {
                let Opened {
                    movie,
                    path,
                    truth,
                    project,
                    registration,
                    keep_model,
                    kept,
                } = *o;
                if let Some(dir) = kept {
                    self.notify(
                        Level::Info,
                        format!(
                            "the previous session was saved to {} before opening (File → Open project… brings it back)",
                            dir.display()
                        ),
                    );
                }
                if let Some(p) = &path {
                    self.remember(p);
                }
                self.movie = Some(Arc::new(movie));
                self.movie_path = path;
                self.truth = truth.map(Arc::new);
                self.registration = registration.map(Arc::new);
                self.labels = None;
                self.set_mask(Vec::new());
                self.mask_edited = false;
                if !keep_model {
                    self.model = None;
                }
                self.losses.clear();
                self.validation.clear();
                self.detected = None;
                self.analysis = None;
                self.analysed = Arc::new(Vec::new());
                self.corrections = Corrections::default();
                self.sites = None;
                match project {
                    Some(p) => self.restore(p),
                    None => self.label(),
                }
            }
            Output::Labelled(l) => {
                if !self.mask_edited || self.mask.len() != l.mask.len() {
                    self.set_mask(l.mask.clone());
                    self.mask_edited = false;
                }
                if !l.mask.iter().any(|&m| m) {
                    self.notify(
                        Level::Warning,
                        "the labels mark no defects in frame 0: lower the threshold or paint the mask",
                    );
                }
                // Another lattice: the site model's names of the columns no longer hold.
                if self.labels.as_ref().map(|o| &o.lattice) != Some(&l.lattice) {
                    self.sites = None;
                }
                self.labels = Some(l);
            }
            Output::Model(m) => {
                self.notify(Level::Info, format!("model ready on {}", m.device_name));
                self.model = Some(Arc::from(m));
            }
            Output::Detected(d) => {
                for w in &d.warnings {
                    self.notify(Level::Warning, w.clone());
                }
                self.detected = Some(Arc::new(d));
                self.analysis = None;
            }
            Output::Analysed(a, dets) => {
                self.analysis = Some(Arc::from(a));
                self.analysed = Arc::new(dets);
            }
            Output::Sites(a) => {
                self.notify(
                    Level::Info,
                    format!(
                        "site model: {} defects over {} frames",
                        a.defects.len(),
                        a.series.frames()
                    ),
                );
                self.sites = Some(Arc::from(a));
            }
            Output::Wrote(msg) => self.notify(Level::Info, msg),
        }
    }
}

#[cfg(test)]
mod tests;
