//! The desktop workbench (eframe/egui): a thin layer of panels over [`session::Session`].
//!
//! `App::logic` polls the running job, applies the commands the panels pushed during the last
//! frame, advances playback and handles shortcuts and dropped files; `App::ui` draws. Panels
//! never call the pipeline themselves. `--screenshot` drives the same app through the stages a
//! panel needs, renders it in a real window and saves what the window shows.

pub mod autosave;
mod figure_view;
mod panels;
mod view;
mod widgets;

use crate::error::{Error, Result};
use crate::session::{self, Command, Level, Session, Settings};
use figure_view::ShownFigure;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use view::{Display, MovieView};

/// The workbench's panels, one per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Movie,
    GroundTruth,
    Augment,
    Train,
    Detect,
    Classes,
    Time,
    Sites,
    Pca,
    Export,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Movie,
        Stage::GroundTruth,
        Stage::Augment,
        Stage::Train,
        Stage::Detect,
        Stage::Classes,
        Stage::Time,
        Stage::Sites,
        Stage::Pca,
        Stage::Export,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Stage::Movie => "Movie",
            Stage::GroundTruth => "Ground truth",
            Stage::Augment => "Augmentation",
            Stage::Train => "Training",
            Stage::Detect => "Detection",
            Stage::Classes => "Classes",
            Stage::Time => "Time",
            Stage::Sites => "Sites",
            Stage::Pca => "PCA",
            Stage::Export => "Export",
        }
    }

    /// The name used on the command line (`--panel`).
    pub fn slug(self) -> &'static str {
        match self {
            Stage::Movie => "movie",
            Stage::GroundTruth => "ground-truth",
            Stage::Augment => "augment",
            Stage::Train => "train",
            Stage::Detect => "detect",
            Stage::Classes => "classes",
            Stage::Time => "time",
            Stage::Sites => "sites",
            Stage::Pca => "pca",
            Stage::Export => "export",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|p| p.slug() == s)
    }

    /// How far the analysis must have got for this panel to show something.
    fn needs(self) -> Need {
        match self {
            Stage::Movie | Stage::GroundTruth | Stage::Augment | Stage::Sites => Need::Labels,
            Stage::Train => Need::Model,
            Stage::Detect => Need::Detections,
            Stage::Classes | Stage::Time | Stage::Pca | Stage::Export => Need::Analysis,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Labels,
    Model,
    Detections,
    Analysis,
}

/// What the window starts with.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// A movie file or project folder; `None` = the built-in demo movie.
    pub open: Option<PathBuf>,
    /// Render these panels to these PNG files, then quit.
    pub screenshots: Vec<(Stage, PathBuf)>,
}

/// UI state persisted between runs (besides the session's settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct UiState {
    stage: Stage,
    display: Display,
    brush_radius: f32,
    /// Registering the frames crops them to the field all frames share.
    register_crop: bool,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            stage: Stage::Movie,
            display: Display::default(),
            brush_radius: 3.0,
            register_crop: true,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Persisted {
    settings: Settings,
    ui: UiState,
}

const STORAGE_KEY: &str = "defectscope";
/// The autosave interval for a setting in minutes; 0 or less never autosaves.
fn autosave_interval(minutes: f64) -> std::time::Duration {
    if minutes > 0.0 && minutes.is_finite() {
        std::time::Duration::from_secs_f64(minutes * 60.0)
    } else {
        std::time::Duration::MAX
    }
}

/// Information notices disappear after this many seconds, warnings after [`WARNING_SECONDS`]
/// (errors stay until dismissed; the log keeps everything).
const INFO_SECONDS: f64 = 8.0;
const WARNING_SECONDS: f64 = 30.0;

/// Detections as drawn: the analysed ones (with classes) or the filtered detections.
struct Shown {
    key: (usize, usize, session::DetectionFilter),
    list: Arc<Vec<crate::detect::Detection>>,
    by_frame: Vec<Vec<usize>>,
    classified: bool,
}

/// A screenshot run in progress.
struct ScreenshotRun {
    plan: VecDeque<(Stage, PathBuf)>,
    settle: u32,
    requested: bool,
    image: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
    error: Arc<Mutex<Option<String>>>,
}

pub struct App {
    session: Session,
    ui: UiState,
    frame: usize,
    /// Identity of the movie shown (its `Arc` address), to notice a new one.
    movie_key: usize,
    playing: bool,
    play_clock: f64,
    view: MovieView,
    commands: Vec<Command>,
    /// Figures of the current analysis, by name, with the analysis they came from.
    figures: HashMap<String, (usize, ShownFigure)>,
    shown: Option<Shown>,
    fft: Option<(usize, egui::TextureHandle)>,
    /// Some(true) paints, Some(false) erases the training mask.
    brush: Option<bool>,
    /// Index into the shown detections.
    selected: Option<usize>,
    panels: panels::Panels,
    hover: Option<([f32; 2], f32)>,
    /// Time to build each of the last frames, ms.
    frame_ms: VecDeque<f32>,
    screenshot: Option<ScreenshotRun>,
    persist: bool,
    autosave: Option<autosave::Autosave>,
    /// An autosave a crashed run left behind, offered for recovery.
    recover: Option<PathBuf>,
}

impl App {
    /// The app without a window (tests drive it through egui_kittest). Settings are the
    /// defaults; nothing is persisted.
    pub fn new(ctx: &egui::Context, settings: Settings) -> Self {
        // Light: the figures use the colours of their white-paper exports.
        ctx.set_theme(egui::Theme::Light);
        let c = ctx.clone();
        // Jobs wake the window at most 4 times a second: a training step or a detected frame
        // every few milliseconds must not make it redraw flat out.
        let wake = move || c.request_repaint_after(std::time::Duration::from_millis(250));
        let session = Session::new(settings, Arc::new(wake));
        App {
            session,
            ui: UiState::default(),
            frame: 0,
            movie_key: 0,
            playing: false,
            play_clock: 0.0,
            view: MovieView::default(),
            commands: Vec::new(),
            figures: HashMap::new(),
            shown: None,
            fft: None,
            brush: None,
            selected: None,
            panels: panels::Panels::default(),
            hover: None,
            frame_ms: VecDeque::new(),
            screenshot: None,
            persist: false,
            autosave: None,
            recover: None,
        }
    }

    /// Autosave into a folder of this run under `root`, and offer what a crashed run left there.
    pub fn enable_autosave(&mut self, root: PathBuf) {
        self.recover = autosave::leftovers(&root)
            .into_iter()
            .next()
            .map(|(p, _)| p);
        let minutes = self.session.settings.autosave_minutes;
        // Work that opening another movie would discard is saved here first.
        self.session.keep_dir = Some(root.join("replaced"));
        self.autosave = Some(autosave::Autosave::new(root, autosave_interval(minutes)));
    }

    pub fn autosave(&mut self) -> Option<&mut autosave::Autosave> {
        self.autosave.as_mut()
    }

    /// On a clean quit: keep the session as the last session; nothing is left to recover.
    pub fn finish_autosave(&mut self) -> crate::error::Result<()> {
        match &mut self.autosave {
            Some(a) => a.finish(&self.session),
            None => Ok(()),
        }
    }

    /// The autosave offered for recovery at start, if any.
    pub fn recoverable(&self) -> Option<&Path> {
        self.recover.as_deref()
    }

    /// Recover (`true`) or throw away the autosave a crashed run left.
    pub fn resolve_recovery(&mut self, recover: bool) {
        let Some(left) = self.recover.take() else {
            return;
        };
        if !recover {
            if let Err(e) = std::fs::remove_dir_all(&left) {
                self.session.notify(
                    session::Level::Warning,
                    format!("could not remove {}: {e}", left.display()),
                );
            }
            return;
        }
        // Adopt it as this run's autosave folder, so that it is not offered again.
        let dir = match &self.autosave {
            Some(a) if !a.dir().exists() && std::fs::rename(&left, a.dir()).is_ok() => {
                a.dir().to_path_buf()
            }
            _ => left,
        };
        self.push(Command::OpenProject(dir));
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    pub fn stage(&self) -> Stage {
        self.ui.stage
    }

    pub fn set_stage(&mut self, s: Stage) {
        self.ui.stage = s;
    }

    pub fn current_frame(&self) -> usize {
        self.frame
    }

    pub fn selected(&self) -> Option<usize> {
        self.selected
    }

    /// Where image point (x, y) of the frame shown is on screen (as the last frame drew it).
    pub fn image_to_screen(&self, p: [f32; 2]) -> Option<egui::Pos2> {
        self.view.screen_of(p)
    }

    /// Queue a command as a panel would.
    pub fn push(&mut self, c: Command) {
        self.commands.push(c);
    }

    /// Poll the job and apply queued commands (what `logic` does each frame, without input).
    pub fn tick(&mut self) {
        self.session.expire_notices(INFO_SECONDS, WARNING_SECONDS);
        self.session.poll();
        for c in std::mem::take(&mut self.commands) {
            self.session.apply(c);
        }
        if let Some(a) = &mut self.autosave {
            a.interval = autosave_interval(self.session.settings.autosave_minutes);
            let failed_before = a.last_error.is_some();
            a.tick(&self.session);
            if let (false, Some(e)) = (failed_before, &a.last_error) {
                let msg = format!("autosave failed: {e}");
                self.session.notify(session::Level::Warning, msg);
            }
        }
        // A new movie: back to its first frame, whole, with nothing cached from the last one.
        let movie = self
            .session
            .movie
            .as_ref()
            .map_or(0, |m| Arc::as_ptr(m) as usize);
        if movie != self.movie_key {
            self.movie_key = movie;
            self.frame = 0;
            self.view.reset();
        }
    }

    /// Wait for the running job to finish and apply its result.
    pub fn wait(&mut self) {
        self.session.wait();
        self.tick();
    }

    /// One whole frame without a window: input, commands, drawing (what `logic` then `ui` do;
    /// egui_kittest drives this).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.handle_input(&ctx);
        self.tick();
        self.draw(ui);
    }

    fn draw(&mut self, ui: &mut egui::Ui) {
        let t = Instant::now();
        panels::draw(self, ui);
        self.frame_ms.push_back(t.elapsed().as_secs_f32() * 1e3);
        if self.frame_ms.len() > 120 {
            self.frame_ms.pop_front();
        }
    }

    /// Mean and largest time to build a frame over the last 120 frames, ms.
    pub fn frame_times_ms(&self) -> Option<(f32, f32)> {
        (!self.frame_ms.is_empty()).then(|| {
            let mean = self.frame_ms.iter().sum::<f32>() / self.frame_ms.len() as f32;
            (mean, self.frame_ms.iter().copied().fold(0.0, f32::max))
        })
    }

    fn frames(&self) -> usize {
        self.session.movie.as_ref().map_or(0, |m| m.frames.len())
    }

    /// The detections drawn and listed, refreshed when their source changes.
    fn shown(&mut self) -> Option<&Shown> {
        let det = self.session.detected.as_ref()?;
        let a = self
            .session
            .analysis
            .as_ref()
            .map_or(0, |a| Arc::as_ptr(a) as usize);
        let key = (Arc::as_ptr(det) as usize, a, self.session.settings.filter);
        if self.shown.as_ref().is_none_or(|s| s.key != key) {
            let (list, classified) = if a != 0 {
                (self.session.analysed.clone(), true)
            } else {
                (Arc::new(self.session.filtered()), false)
            };
            let mut by_frame = vec![Vec::new(); self.frames().max(1)];
            for (i, d) in list.iter().enumerate() {
                if let Some(f) = by_frame.get_mut(d.frame) {
                    f.push(i);
                }
            }
            self.selected = None;
            self.shown = Some(Shown {
                key,
                list,
                by_frame,
                classified,
            });
        }
        self.shown.as_ref()
    }

    /// A figure of the current analysis, built and uploaded once.
    fn figure(
        &mut self,
        ctx: &egui::Context,
        name: &str,
        build: impl FnOnce(&crate::analysis::DefectAnalysis) -> Option<crate::export::figure::Figure>,
    ) -> Option<&ShownFigure> {
        let a = self.session.analysis.clone()?;
        self.cached_figure(ctx, name, Arc::as_ptr(&a) as usize, || build(&a))
    }

    /// A figure built once per `key` (the address of the data it shows).
    fn cached_figure(
        &mut self,
        ctx: &egui::Context,
        name: &str,
        key: usize,
        build: impl FnOnce() -> Option<crate::export::figure::Figure>,
    ) -> Option<&ShownFigure> {
        if self.figures.get(name).is_none_or(|(k, _)| *k != key) {
            let fig = build()?;
            self.figures
                .insert(name.to_string(), (key, ShownFigure::new(ctx, fig)));
        }
        self.figures.get(name).map(|(_, f)| f)
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let frames = self.frames();
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input(|i| {
            if !typing && frames > 0 {
                if i.key_pressed(egui::Key::ArrowRight) {
                    self.frame = (self.frame + 1).min(frames - 1);
                }
                if i.key_pressed(egui::Key::ArrowLeft) {
                    self.frame = self.frame.saturating_sub(1);
                }
                if i.key_pressed(egui::Key::Home) {
                    self.frame = 0;
                }
                if i.key_pressed(egui::Key::End) {
                    self.frame = frames - 1;
                }
                if i.key_pressed(egui::Key::Space) {
                    self.playing = !self.playing;
                }
            }
            if i.key_pressed(egui::Key::Escape)
                && let Some(j) = &self.session.job
            {
                j.cancel();
            }
            for f in &i.raw.dropped_files {
                let p = f.path().to_path_buf();
                if !p.as_os_str().is_empty() {
                    self.commands.push(open_command(p));
                }
            }
        });
        if self.playing && frames > 1 {
            let now = ctx.input(|i| i.time);
            let step = 1.0 / self.ui.display.fps.max(0.1) as f64;
            if now - self.play_clock >= step {
                self.play_clock = now;
                self.frame = (self.frame + 1) % frames;
            }
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(step));
        }
    }

    fn drive_screenshot(&mut self, ctx: &egui::Context) {
        if let Some(mut run) = self.screenshot.take() {
            self.screenshot_step(&mut run, ctx);
            self.screenshot = Some(run);
        }
    }

    fn screenshot_step(&mut self, run: &mut ScreenshotRun, ctx: &egui::Context) {
        // Between jobs, keep frames coming; during one, its wake-ups do (a software renderer
        // drawing flat out would take the CPU from the job).
        if !self.session.busy() {
            ctx.request_repaint();
        }
        if let Some(n) = self
            .session
            .notices
            .iter()
            .find(|n| n.level == Level::Error)
        {
            if let Ok(mut e) = run.error.lock() {
                *e = Some(n.text.clone());
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let Some((stage, path)) = run.plan.front().cloned() else {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        };
        if self.session.busy() {
            return;
        }
        let s = &self.session;
        // The Movie panel is shown with the demo's frames registered, to show the drift removed.
        if stage == Stage::Movie
            && s.registration.is_none()
            && s.movie.as_ref().is_some_and(|m| m.frames.len() > 1)
        {
            self.commands.push(Command::Register { crop: true });
            return;
        }
        let have = if s.movie.is_none() || s.labels.is_none() {
            None
        } else if s.model.is_none() {
            Some(Need::Labels)
        } else if s.detected.is_none() {
            Some(Need::Model)
        } else if s.analysis.is_none() {
            Some(Need::Detections)
        } else {
            Some(Need::Analysis)
        };
        let need = stage.needs();
        if have.is_none_or(|h| h < need) {
            let next = match have {
                None if s.movie.is_some() => Command::Label,
                None => return,
                Some(Need::Labels) => Command::Train,
                Some(Need::Model) => Command::Detect,
                _ => Command::Analyse,
            };
            self.commands.push(next);
            return;
        }
        let s = &self.session;
        if stage == Stage::Sites
            && s.sites.is_none()
            && s.labels.as_ref().is_some_and(|l| l.lattice.is_some())
            && s.movie.as_ref().is_some_and(|m| m.frames.len() > 1)
        {
            self.commands.push(Command::FitSites);
            return;
        }
        if self.ui.stage != stage {
            run.settle = 0;
            run.requested = false;
            self.ui.stage = stage;
            let frames = self.frames();
            self.frame = match stage {
                Stage::Movie | Stage::GroundTruth | Stage::Augment | Stage::Train => 0,
                _ => frames / 2,
            };
            if stage == Stage::Classes {
                self.panels.classes.browse_first();
            }
            if stage == Stage::Sites {
                // A single S vacancy of the frame shown, for its timeline.
                self.panels
                    .sites
                    .select_example(self.session.sites.as_deref(), frames / 2);
            }
            if stage == Stage::Export {
                self.panels.export.preview_example(ctx, &self.session);
            }
            if stage == Stage::Detect {
                self.selected = self
                    .shown()
                    .and_then(|s| s.by_frame.get(frames / 2)?.first().copied());
            }
            return;
        }
        // Let layout and textures settle for a few frames, then take the picture.
        run.settle += 1;
        if run.settle < 8 {
            return;
        }
        if !run.requested {
            run.requested = true;
            let slot = run.image.clone();
            ctx.request_screenshot(move |img| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(img);
                }
            });
            return;
        }
        let taken = run.image.lock().ok().and_then(|mut s| s.take());
        if let Some(img) = taken {
            if let Err(e) = save_rgba_png(&path, &img) {
                if let Ok(mut slot) = run.error.lock() {
                    *slot = Some(e.to_string());
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                return;
            }
            eprintln!("screenshot: {} → {}", stage.slug(), path.display());
            run.plan.pop_front();
        }
    }
}

/// CPU time of the window's frames, ms each: the Detection panel of a 1600 × 1000 window on a
/// movie of `movie_frames` 512² frames carrying `markers` detections spread evenly over them
/// (frame 0 is shown), `frames` window frames after two untimed ones. A window frame is the egui
/// pass (input, panels, overlay) plus tessellation; drawing on the GPU is not included. For
/// `defectscope bench`.
pub fn marker_frame_times(markers: usize, movie_frames: usize, frames: usize) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let (w, h) = (512usize, 512usize);
    let movie_frames = movie_frames.max(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let frame = crate::raster::Raster {
        width: w,
        height: h,
        data: (0..w * h).map(|_| rng.random::<f32>()).collect(),
    };
    let all = (0..markers)
        .map(|i| crate::detect::Detection {
            frame: i * movie_frames / markers.max(1),
            x: rng.random_range(0.0..(w - 1) as f32),
            y: rng.random_range(0.0..(h - 1) as f32),
            area: rng.random_range(20..60),
            score: rng.random_range(0.5..1.0),
        })
        .collect();
    let ctx = egui::Context::default();
    let mut app = App::new(&ctx, Settings::default());
    app.session.movie = Some(Arc::new(crate::movie::Movie {
        frames: vec![frame; movie_frames],
        calibration: Default::default(),
        acquisition: Default::default(),
        source: "bench".into(),
        format: "bench".into(),
    }));
    app.session.detected = Some(Arc::new(session::Detected {
        all,
        ..Default::default()
    }));
    app.set_stage(Stage::Detect);
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1600.0, 1000.0),
        )),
        ..Default::default()
    };
    (0..frames + 2)
        .map(|_| {
            let t = Instant::now();
            let mut out = ctx.run_ui(input(), |ui| app.frame_ui(ui));
            out.textures_delta.clear();
            let shapes = std::mem::take(&mut out.shapes);
            let meshes = ctx.tessellate(shapes, out.pixels_per_point);
            std::hint::black_box(meshes);
            t.elapsed().as_secs_f64() * 1e3
        })
        .skip(2)
        .collect()
}

fn open_command(p: PathBuf) -> Command {
    if p.join("project.json").is_file() {
        Command::OpenProject(p)
    } else {
        Command::OpenMovie(p)
    }
}

fn save_rgba_png(path: &Path, img: &egui::ColorImage) -> Result<()> {
    let rgb: Vec<u8> = img
        .pixels
        .iter()
        .flat_map(|c| [c.r(), c.g(), c.b()])
        .collect();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::export::ensure_dir(dir)?;
    }
    let png = crate::export::png_rgb(img.width(), img.height(), rgb)?;
    crate::export::atomic_write(path, &png)
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.handle_input(ctx);
        self.tick();
        self.drive_screenshot(ctx);
        if self.session.busy() {
            // Progress bars move with the job's wake-ups; this keeps the elapsed time ticking.
            ctx.request_repaint_after(std::time::Duration::from_secs(1));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    fn on_exit(&mut self) {
        if let Err(e) = self.finish_autosave() {
            eprintln!("warning: the session could not be saved on quitting: {e}");
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            let p = Persisted {
                settings: self.session.settings.clone(),
                ui: self.ui.clone(),
            };
            // As JSON inside eframe's RON store: the settings flatten the chain's, which
            // RON cannot read back.
            if let Ok(json) = serde_json::to_string(&p) {
                storage.set_string(STORAGE_KEY, json);
            }
        }
    }
}

/// Open the workbench window. Returns when it is closed; with screenshots, fails if one could
/// not be made.
pub fn run(opts: StartOptions) -> Result<()> {
    let screenshot = !opts.screenshots.is_empty();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("defectscope")
            .with_inner_size([1600.0, 1000.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        // Screenshots show the defaults, not whatever the last session left.
        persist_window: !screenshot,
        ..Default::default()
    };
    let error = Arc::new(Mutex::new(None));
    let err = error.clone();
    let outcome = eframe::run_native(
        "defectscope",
        native,
        Box::new(move |cc| {
            let persisted: Persisted = if screenshot {
                Persisted::default()
            } else {
                cc.storage
                    .and_then(|s| s.get_string(STORAGE_KEY))
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or_default()
            };
            let mut app = App::new(&cc.egui_ctx, persisted.settings);
            app.ui = persisted.ui;
            app.persist = !screenshot;
            if !screenshot && let Some(root) = autosave::default_root() {
                app.enable_autosave(root);
            }
            app.push(match opts.open {
                Some(p) => open_command(p),
                None => Command::OpenDemo,
            });
            if screenshot {
                app.screenshot = Some(ScreenshotRun {
                    plan: opts.screenshots.into_iter().collect(),
                    settle: 0,
                    requested: false,
                    image: Arc::new(Mutex::new(None)),
                    error: err,
                });
            }
            Ok(Box::new(app))
        }),
    );
    outcome.map_err(|e| {
        Error::invalid(format!(
            "could not open the window ({e}); without a display, the headless commands do the same work (defectscope --help)"
        ))
    })?;
    let failed = error.lock().ok().and_then(|mut e| e.take());
    match failed {
        Some(e) => Err(Error::invalid(format!("screenshot failed: {e}"))),
        None => Ok(()),
    }
}
