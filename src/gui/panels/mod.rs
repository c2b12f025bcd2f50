//! The panels: each draws its controls from the session and pushes commands.

use super::figure_view::{self, ShownFigure, colour, grey_image, texture};
use super::view::{Colormap, Overlays};
use super::widgets::{histogram_plot, legend, run_button};
use super::{App, Stage};
use crate::analysis::classify::{ClassCount, ClusterMethod};
use crate::analysis::figures;
use crate::analysis::patches::window;
use crate::augment::Op;
use crate::export::figure::class_colour;
use crate::lattice::{LabelMethod, Labels};
use crate::model::{Architecture, DeviceChoice};
use crate::movie::Movie;
use crate::raster::Raster;
use crate::session::{Command, JobKind, Level};
use crate::train::{PixelLoss, TrainConfig, preview_samples};
use egui::{Color32, RichText, Vec2};
use egui_plot::{Line, Plot, Points};
use std::sync::Arc;

mod augment;
mod classes;
mod detect;
mod export;
mod labels;
mod movie;
mod pca;
mod regions;
pub(super) mod sites;
mod time;
mod train;

use augment::{augment_controls, augment_view};
use classes::{class_controls, classes_view};
use detect::{detect_controls, detection_table};
use export::export_controls;
use labels::{truth_controls, truth_side};
use movie::{movie_controls, movie_view};
use pca::{pca_controls, pca_view};
use time::{time_controls, time_plots};
use train::{train_controls, train_view};

/// Each panel's own state, kept between frames.
#[derive(Default)]
pub struct Panels {
    /// The path typed into File → Open path (for systems without a file-dialog portal).
    pub typed_path: String,
    /// The log window is open.
    pub show_log: bool,
    /// The time each frame of the window takes (a debugging aid) is shown.
    pub show_frame_times: bool,
    /// Markers of this class only (clicked in the class legend above the movie).
    pub only_class: Option<usize>,
    pub augment: augment::AugmentPanel,
    pub classes: classes::ClassesPanel,
    pub pca: pca::PcaPanel,
    pub sites: sites::SitesPanel,
    pub export: export::ExportPanel,
}

const PATCH_GALLERY: usize = 48;

pub(super) fn draw(app: &mut App, ui: &mut egui::Ui) {
    top_bar(app, ui);
    if app.session.movie.is_some() {
        bottom_bar(app, ui);
    }
    egui::Panel::left("controls")
        .default_size(330.0)
        .resizable(true)
        .show(ui, |ui| {
            stage_tabs(app, ui);
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| controls(app, ui));
        });
    egui::CentralPanel::default().show(ui, |ui| {
        if app.session.movie.is_none() {
            ui.centered_and_justified(|ui| {
                if app.session.busy() {
                    ui.label("Opening…");
                } else {
                    ui.label("Open a movie (File > Open movie…, or drop a file here).");
                }
            });
            return;
        }
        central(app, ui);
    });
    notices(app, ui);
    recovery(app, ui);
}

fn top_bar(app: &mut App, ui: &mut egui::Ui) {
    egui::Panel::top("menu").show(ui, |ui| {
        egui::MenuBar::new().ui(ui, |ui| {
            // Stays open while a path is typed into it; its buttons close it.
            let config = egui::containers::menu::MenuConfig::new()
                .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
            egui::containers::menu::MenuButton::new("File")
                .config(config)
                .ui(ui, |ui| file_menu(app, ui));
        });
        status_line(app, ui);
    });
}

/// The File menu: open a movie, a folder, the demo, a typed path, a recent file or a project;
/// save the project; autosave; quit.
fn file_menu(app: &mut App, ui: &mut egui::Ui) {
    if ui.button("Open movie…").clicked() {
        ui.close();
        let movies = [
            "tif", "tiff", "npy", "png", "dm3", "dm4", "ser", "emd", "ndata", "h5",
        ];
        let picked = rfd::FileDialog::new()
            .add_filter("movies", &movies)
            .pick_file();
        if let Some(p) = chosen(app, picked) {
            app.push(Command::OpenMovie(p));
        }
    }
    if ui.button("Open image folder…").clicked() {
        ui.close();
        if let Some(p) = chosen(app, rfd::FileDialog::new().pick_folder()) {
            app.push(Command::OpenMovie(p));
        }
    }
    if ui.button("Open demo movie").clicked() {
        ui.close();
        app.push(Command::OpenDemo);
    }
    // Typed paths work where no file-dialog portal runs (remote sessions, bare X).
    ui.horizontal(|ui| {
        ui.label("Path");
        let r = ui.add(
            egui::TextEdit::singleline(&mut app.panels.typed_path)
                .hint_text("movie file, image folder or project")
                .desired_width(260.0),
        );
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.button("Open").clicked() || enter) && !app.panels.typed_path.trim().is_empty() {
            let p = std::path::PathBuf::from(app.panels.typed_path.trim());
            app.push(super::open_command(p));
            ui.close();
        }
    });
    ui.menu_button("Recent", |ui| {
        if app.session.settings.recent.is_empty() {
            ui.label("(none)");
        }
        for p in app.session.settings.recent.clone() {
            if ui.button(p.display().to_string()).clicked() {
                app.push(super::open_command(p));
                ui.close();
            }
        }
    });
    ui.separator();
    if ui.button("Open project…").clicked() {
        ui.close();
        if let Some(p) = chosen(app, rfd::FileDialog::new().pick_folder()) {
            app.push(Command::OpenProject(p));
        }
    }
    if ui.button("Save project…").clicked() {
        ui.close();
        if let Some(p) = chosen(app, rfd::FileDialog::new().pick_folder()) {
            app.push(Command::SaveProject(p));
        }
    }
    if let Some(a) = app.autosave() {
        let last = a.root().join(super::autosave::LAST_SESSION);
        let when = a.last_saved.and_then(|t| t.elapsed().ok());
        if last.join(crate::session::project::PROJECT_FILE).is_file()
            && ui
                .button("Reopen last session")
                .on_hover_text("The session as it was when defectscope last closed")
                .clicked()
        {
            app.push(Command::OpenProject(last));
            ui.close();
        }
        if let Some(ago) = when {
            ui.label(format!("Autosaved {} min ago", ago.as_secs() / 60));
        }
    }
    ui.horizontal(|ui| {
        ui.label("Autosave every");
        ui.add(
            egui::DragValue::new(&mut app.session.settings.autosave_minutes)
                .range(0.0..=60.0)
                .speed(0.1),
        )
        .on_hover_text("0 = never");
        ui.label("min");
    });
    ui.separator();
    if ui.button("Quit").clicked() {
        ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

/// What a file dialog returned; when nothing, a hint at the typed path (where no dialog can
/// appear, as in a remote session without a desktop portal, it returns at once with nothing).
fn chosen(app: &mut App, picked: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    if picked.is_none() {
        app.session.notify(
            Level::Info,
            "no file chosen; where no file dialog appears (remote session, no desktop portal), type the path under File → Path",
        );
    }
    picked
}

/// The movie shown, and the running job with its progress and a Cancel button.
fn status_line(app: &mut App, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label(RichText::new("defectscope").strong());
        if let Some(m) = &app.session.movie {
            ui.label(format!(
                "{} · {} frames of {} × {} px",
                app.session
                    .movie_path
                    .as_ref()
                    .map_or("built-in demo movie".to_string(), |p| p
                        .display()
                        .to_string()),
                m.frames.len(),
                m.width(),
                m.height()
            ));
        }
        if let Some(j) = &app.session.job {
            ui.separator();
            let p = j.progress();
            let frac = if p.total > 0 {
                p.done as f32 / p.total as f32
            } else {
                0.0
            };
            // No spinner: it animates at full frame rate, and with a software renderer
            // that takes a core from the job. The bar moves with the job's progress.
            ui.add(
                egui::ProgressBar::new(frac)
                    .desired_width(220.0)
                    .text(format!("{}: {} / {}", p.stage, p.done, p.total)),
            );
            ui.label(format!("{:.0} s", j.started.elapsed().as_secs_f64()));
            if j.is_cancelled() {
                ui.label("cancelling…");
            } else if ui.button("Cancel").clicked() {
                app.push(Command::Cancel);
            }
        }
    });
}

fn bottom_bar(app: &mut App, ui: &mut egui::Ui) {
    let frames = app.frames();
    egui::Panel::bottom("frames").show(ui, |ui| {
        ui.horizontal(|ui| {
            if ui
                .button(if app.playing { "Pause" } else { "Play" })
                .clicked()
            {
                app.playing = !app.playing;
            }
            ui.add(
                egui::DragValue::new(&mut app.ui.display.fps)
                    .range(0.5..=60.0)
                    .speed(0.1)
                    .suffix(" fps"),
            );
            ui.label("Frame");
            ui.add(egui::Slider::new(
                &mut app.frame,
                0..=frames.saturating_sub(1),
            ));
            if let Some(m) = &app.session.movie
                && let Some(dt) = m.calibration.frame_interval_s
            {
                ui.label(format!("t = {:.2} s", app.frame as f64 * dt));
            }
            ui.separator();
            if let Some(([x, y], v)) = app.hover {
                let nm = app
                    .session
                    .movie
                    .as_ref()
                    .and_then(|m| m.calibration.pixel_size_nm)
                    .map_or(String::new(), |p| {
                        format!(" = ({:.3}, {:.3}) nm", x as f64 * p, y as f64 * p)
                    });
                ui.label(format!("x {x:.1}, y {y:.1} px{nm} · value {v:.4}"));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let n = app.session.log.len();
                ui.toggle_value(&mut app.panels.show_log, format!("Log ({n})"))
                    .on_hover_text("Every notice and job message of this session");
                if app.panels.show_frame_times
                    && let Some((mean, max)) = app.frame_times_ms()
                {
                    ui.small(format!("UI {mean:.1} ms (max {max:.1})"));
                }
            });
        });
    });
}

fn stage_tabs(app: &mut App, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        for s in Stage::ALL {
            ui.selectable_value(&mut app.ui.stage, s, s.title());
        }
    });
}

fn controls(app: &mut App, ui: &mut egui::Ui) {
    ui.heading(app.ui.stage.title());
    match app.ui.stage {
        Stage::Movie => movie_controls(app, ui),
        Stage::GroundTruth => truth_controls(app, ui),
        Stage::Augment => augment_controls(app, ui),
        Stage::Train => train_controls(app, ui),
        Stage::Detect => detect_controls(app, ui),
        Stage::Classes => class_controls(app, ui),
        Stage::Time => time_controls(app, ui),
        Stage::Sites => sites::controls(app, ui),
        Stage::Pca => pca_controls(app, ui),
        Stage::Export => export_controls(app, ui),
    }
}

fn central(app: &mut App, ui: &mut egui::Ui) {
    match app.ui.stage {
        Stage::Movie | Stage::Detect => {
            if app.ui.stage == Stage::Detect && app.session.detected.is_some() {
                let h = ui.available_height();
                egui::Panel::bottom("det-table")
                    .resizable(true)
                    .default_size(h * 0.28)
                    .show(ui, |ui| detection_table(app, ui));
            }
            movie_view(app, ui);
        }
        Stage::GroundTruth => {
            let w = ui.available_width();
            egui::Panel::right("fft")
                .resizable(true)
                .default_size(w * 0.36)
                .show(ui, |ui| truth_side(app, ui));
            movie_view(app, ui);
        }
        Stage::Augment => augment_view(app, ui),
        Stage::Train => train_view(app, ui),
        Stage::Classes => classes_view(app, ui),
        Stage::Time => {
            let w = ui.available_width();
            egui::Panel::right("time-plots")
                .resizable(true)
                .default_size(w * 0.55)
                .show(ui, |ui| time_plots(app, ui));
            movie_view(app, ui);
        }
        Stage::Sites => sites::view(app, ui),
        Stage::Pca => pca_view(app, ui),
        Stage::Export => export::export_view(app, ui),
    }
}

/// What a crashed run left: recover it or throw it away.
fn recovery(app: &mut App, ui: &mut egui::Ui) {
    let Some(left) = app.recoverable().map(std::path::Path::to_path_buf) else {
        return;
    };
    let when = std::fs::metadata(left.join(crate::session::project::PROJECT_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(String::new(), |d| format!(" {} min ago", d.as_secs() / 60));
    let mut choice = None;
    egui::Window::new("Recover the last session?")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, Vec2::ZERO)
        .show(ui.ctx(), |ui| {
            ui.label(format!(
                "defectscope did not close properly last time. Its session was autosaved{when}."
            ));
            ui.label(RichText::new(left.display().to_string()).small());
            ui.horizontal(|ui| {
                if ui.button("Recover").clicked() {
                    choice = Some(true);
                }
                if ui.button("Discard").clicked() {
                    choice = Some(false);
                }
            });
        });
    if let Some(c) = choice {
        app.resolve_recovery(c);
    }
}

/// The log window: every notice and job message, newest first.
fn log_window(app: &mut App, ui: &mut egui::Ui) {
    let mut open = app.panels.show_log;
    egui::Window::new("Log")
        .open(&mut open)
        .default_size([560.0, 360.0])
        .show(ui.ctx(), |ui| {
            ui.checkbox(
                &mut app.panels.show_frame_times,
                "show the window's frame times",
            );
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                for e in app.session.log.iter().rev() {
                    let secs =
                        e.at.duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                    let (h, m, sec) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
                    let level = match e.level {
                        Level::Info => "info",
                        Level::Warning => "warning",
                        Level::Error => "error",
                    };
                    ui.add(
                        egui::Label::new(format!(
                            "{h:02}:{m:02}:{sec:02} UTC  {level}: {}",
                            e.text
                        ))
                        .wrap(),
                    );
                }
            });
        });
    app.panels.show_log = open;
}

fn notices(app: &mut App, ui: &mut egui::Ui) {
    log_window(app, ui);
    if app.session.notices.is_empty() {
        return;
    }
    let mut dismiss = None;
    let mut dismiss_all = false;
    egui::Area::new(egui::Id::unique("notices"))
        // Over the bottom of the controls column, which is mostly empty, not over the data.
        .anchor(egui::Align2::LEFT_BOTTOM, Vec2::new(8.0, -44.0))
        .show(ui.ctx(), |ui| {
            ui.set_width(320.0);
            for (i, n) in app.session.notices.iter().enumerate().rev().take(5) {
                let (fill, title) = match n.level {
                    Level::Info => (Color32::from_rgb(30, 60, 90), "Info:"),
                    Level::Warning => (Color32::from_rgb(110, 80, 10), "Warning:"),
                    Level::Error => (Color32::from_rgb(120, 25, 25), "Error:"),
                };
                egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                    ui.set_width(300.0);
                    ui.horizontal_top(|ui| {
                        if ui.small_button("×").clicked() {
                            dismiss = Some(i);
                        }
                        let repeats = if n.count > 1 {
                            format!(" (×{})", n.count)
                        } else {
                            String::new()
                        };
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!("{title} {}{repeats}", n.text))
                                    .color(Color32::WHITE),
                            )
                            .wrap(),
                        );
                    });
                });
            }
            let (shown, hidden) = (
                app.session.notices.len(),
                app.session.notices.len().saturating_sub(5),
            );
            if shown > 1 {
                ui.horizontal(|ui| {
                    if ui.small_button("Dismiss all").clicked() {
                        dismiss_all = true;
                    }
                    if hidden > 0 {
                        ui.small(format!("{hidden} older in the log"));
                    }
                });
            }
        });
    if let Some(i) = dismiss {
        app.push(Command::DismissNotice(i));
    }
    if dismiss_all {
        app.push(Command::DismissAll);
    }
}
