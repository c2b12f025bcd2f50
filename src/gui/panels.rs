//! The panels: each draws its controls from the session and pushes commands.

use super::figure_view::{self, ShownFigure, colour, grey_image, texture};
use super::view::{Colormap, Overlays};
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
use egui_plot::{Bar, BarChart, Line, Plot, Points, VLine};
use std::sync::Arc;

/// The augmentation preview and what it was made from.
pub struct AugmentPreview {
    key: (TrainConfig, u64, u64),
    tiles: Vec<egui::TextureHandle>,
    error: Option<String>,
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
            ui.menu_button("File", |ui| {
                if ui.button("Open movie…").clicked()
                    && let Some(p) = rfd::FileDialog::new()
                        .add_filter(
                            "movies",
                            &[
                                "tif", "tiff", "npy", "png", "dm3", "dm4", "ser", "emd", "ndata",
                                "h5",
                            ],
                        )
                        .pick_file()
                {
                    app.push(Command::OpenMovie(p));
                }
                if ui.button("Open image folder…").clicked()
                    && let Some(p) = rfd::FileDialog::new().pick_folder()
                {
                    app.push(Command::OpenMovie(p));
                }
                if ui.button("Open demo movie").clicked() {
                    app.push(Command::OpenDemo);
                }
                // Typed paths work where no file-dialog portal runs (remote sessions, bare X).
                ui.horizontal(|ui| {
                    ui.label("Path");
                    let r = ui.add(
                        egui::TextEdit::singleline(&mut app.typed_path)
                            .hint_text("movie file, image folder or project")
                            .desired_width(260.0),
                    );
                    let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    if (ui.button("Open").clicked() || enter) && !app.typed_path.trim().is_empty() {
                        let p = std::path::PathBuf::from(app.typed_path.trim());
                        app.push(super::open_command(p));
                    }
                });
                ui.menu_button("Recent", |ui| {
                    if app.session.settings.recent.is_empty() {
                        ui.label("(none)");
                    }
                    for p in app.session.settings.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            app.push(super::open_command(p));
                        }
                    }
                });
                ui.separator();
                if ui.button("Open project…").clicked()
                    && let Some(p) = rfd::FileDialog::new().pick_folder()
                {
                    app.push(Command::OpenProject(p));
                }
                if ui.button("Save project…").clicked()
                    && let Some(p) = rfd::FileDialog::new().pick_folder()
                {
                    app.push(Command::SaveProject(p));
                }
                if let Some(a) = app.autosave() {
                    let last = a.root().join(super::autosave::LAST_SESSION);
                    let when = a.last_saved.and_then(|t| t.elapsed().ok());
                    if last.join(crate::project::PROJECT_FILE).is_file()
                        && ui
                            .button("Reopen last session")
                            .on_hover_text("The session as it was when defectscope last closed")
                            .clicked()
                    {
                        app.push(Command::OpenProject(last));
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
            });
        });
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
                if let Some((mean, max)) = app.frame_times_ms() {
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
        Stage::Sites => super::sites_panel::controls(app, ui),
        Stage::Pca => pca_controls(app, ui),
        Stage::Export => export_controls(app, ui),
    }
}

pub(super) fn run_button(
    app: &mut App,
    ui: &mut egui::Ui,
    label: &str,
    kind: JobKind,
    cmd: Command,
) {
    ui.horizontal(|ui| {
        let running = app.session.running(kind);
        if ui
            .add_enabled(!app.session.busy(), egui::Button::new(label))
            .clicked()
        {
            app.push(cmd);
        }
        if running && ui.button("Cancel").clicked() {
            app.push(Command::Cancel);
        }
        if let Some((_, s)) = app
            .session
            .last_job_seconds
            .iter()
            .find(|(k, _)| *k == kind)
        {
            ui.small(format!("last: {s:.1} s"));
        }
    });
}

fn movie_controls(app: &mut App, ui: &mut egui::Ui) {
    if let Some(m) = app.session.movie.clone() {
        egui::Grid::new("movie-info").num_columns(2).show(ui, |ui| {
            ui.label("Format");
            ui.label(&m.format);
            ui.end_row();
            ui.label("Size");
            ui.label(format!(
                "{} × {} px, {} frames",
                m.width(),
                m.height(),
                m.frames.len()
            ));
            ui.end_row();
            ui.label("Pixel size");
            ui.label(
                m.calibration
                    .pixel_size_nm
                    .map_or("not calibrated".into(), |p| format!("{p:.4} nm")),
            );
            ui.end_row();
            ui.label("Frame time");
            ui.label(
                m.calibration
                    .frame_interval_s
                    .map_or("not calibrated".into(), |t| format!("{t:.3} s")),
            );
            ui.end_row();
            for (key, value) in m.acquisition.lines() {
                let mut label = key.to_string();
                label[..1].make_ascii_uppercase();
                ui.label(label);
                ui.label(value);
                ui.end_row();
            }
        });
        ui.separator();
        drift_controls(app, ui, &m);
        ui.separator();
        let index = app.frame.min(m.frames.len() - 1);
        display_controls(app, ui, index, &m.frames[index]);
    }
}

/// Registration: remove the drift from the frames, and the drift that was removed.
fn drift_controls(app: &mut App, ui: &mut egui::Ui, m: &Movie) {
    ui.label(RichText::new("Drift").strong());
    let Some(reg) = app.session.registration.clone() else {
        if m.frames.len() > 1 {
            ui.checkbox(
                &mut app.ui.register_crop,
                "Crop to the field all frames share",
            );
            let busy = app.session.job.is_some();
            if ui
                .add_enabled(!busy, egui::Button::new("Register frames"))
                .on_hover_text(
                    "Measure the drift between frames (sub-pixel cross-correlation) and move \
                     every frame onto frame 0. Labels, detections and the analysis start over; \
                     the model is kept.",
                )
                .clicked()
            {
                app.session.apply(Command::Register {
                    crop: app.ui.register_crop,
                });
            }
        } else {
            ui.label("A single frame has no drift.");
        }
        return;
    };
    let largest = reg.drift.largest_px();
    ui.label(format!(
        "Registered: up to {largest:.1} px of drift removed{}. Open the movie again to undo.",
        if reg.cropped {
            format!("; cropped to {} × {} px", m.width(), m.height())
        } else {
            String::new()
        }
    ));
    let (px, dt) = (m.calibration.pixel_size_nm, m.calibration.frame_interval_s);
    let ctx = ui.ctx().clone();
    let key = Arc::as_ptr(&reg) as usize;
    if let Some(f) = app.cached_figure(&ctx, "registration", key, || {
        Some(figures::drift("Drift removed", &reg.drift, px, dt))
    }) {
        figure_view::show(ui, "registration", f, 220.0, None);
    }
}

fn display_controls(app: &mut App, ui: &mut egui::Ui, index: usize, frame: &Raster) {
    let d = &mut app.ui.display;
    ui.label(RichText::new("Display").strong());
    ui.horizontal(|ui| {
        ui.label("Colour map");
        ui.selectable_value(&mut d.colormap, Colormap::Grey, "grey");
        ui.selectable_value(&mut d.colormap, Colormap::Viridis, "viridis");
    });
    ui.checkbox(&mut d.auto_contrast, "Contrast from percentiles");
    if d.auto_contrast {
        ui.add(egui::Slider::new(&mut d.low_percentile, 0.0..=20.0).text("low %"));
        ui.add(egui::Slider::new(&mut d.high_percentile, 80.0..=100.0).text("high %"));
    } else {
        let (lo, hi) = frame.min_max();
        ui.add(egui::Slider::new(&mut d.min, lo..=hi).text("min"));
        ui.add(egui::Slider::new(&mut d.max, lo..=hi).text("max"));
    }
    let (lo, hi) = app.view.limits(index, frame, d);
    if d.auto_contrast {
        d.min = lo;
        d.max = hi;
    }
    histogram_plot(
        ui,
        "frame-hist",
        &frame.data,
        96,
        &[lo as f64, hi as f64],
        110.0,
        "intensity",
    );
    ui.separator();
    ui.label(RichText::new("Layers").strong());
    ui.checkbox(&mut d.show_mask, "Training mask (frame 0)");
    ui.add(egui::Slider::new(&mut d.mask_opacity, 0.0..=1.0).text("mask opacity"));
    ui.checkbox(&mut d.show_probability, "Probability map");
    ui.add(egui::Slider::new(&mut d.probability_opacity, 0.0..=1.0).text("map opacity"));
    ui.checkbox(&mut d.show_markers, "Defect markers");
    ui.add(egui::Slider::new(&mut d.marker_radius, 2.0..=20.0).text("marker radius"));
    ui.checkbox(&mut d.show_tracks, "Trajectories");
    ui.add(egui::Slider::new(&mut d.tail_frames, 1..=100).text("tail (frames)"));
    if app.session.truth.is_some() {
        ui.checkbox(&mut d.show_truth, "True positions (green +)");
    }
}

/// A histogram of `values` with vertical lines at `marks`; returns the x of a drag in the plot.
fn histogram_plot(
    ui: &mut egui::Ui,
    id: &str,
    values: &[f32],
    bins: usize,
    marks: &[f64],
    height: f32,
    x_label: &str,
) -> Option<f64> {
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if finite.is_empty() || hi <= lo {
        ui.label("(no histogram: constant values)");
        return None;
    }
    let width = (hi - lo) / bins as f32;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            Bar::new(
                (lo + (i as f32 + 0.5) * width) as f64,
                (c as f64 + 1.0).log10(),
            )
            .width(width as f64)
        })
        .collect();
    let r = Plot::new(id)
        .height(height)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label(x_label)
        .y_axis_label("log₁₀(1 + count)")
        .show(ui, |pu| {
            pu.bar_chart(BarChart::new("", bars).color(Color32::from_gray(150)));
            for &m in marks {
                pu.vline(VLine::new("", m).color(Color32::RED));
            }
            pu.pointer_coordinate()
        });
    let dragging = r.response.dragged() || r.response.clicked();
    r.inner.filter(|_| dragging).map(|p| p.x)
}

fn truth_controls(app: &mut App, ui: &mut egui::Ui) {
    let mut method = app.session.settings.label.clone();
    let mut fft = matches!(method, LabelMethod::FftResidual { .. });
    ui.horizontal(|ui| {
        ui.label("Method");
        ui.radio_value(&mut fft, false, "lattice columns");
        ui.radio_value(&mut fft, true, "FFT residual");
    });
    if fft != matches!(method, LabelMethod::FftResidual { .. }) {
        method = if fft {
            LabelMethod::fft_residual_default()
        } else {
            LabelMethod::default()
        };
    }
    match &mut method {
        LabelMethod::Columns {
            z_threshold,
            disk_radius_frac,
            min_site_fraction,
            target_precision,
        } => {
            ui.add(egui::Slider::new(z_threshold, 1.0..=10.0).text("z threshold (robust σ)"));
            let mut adaptive = target_precision.is_some();
            ui.checkbox(
                &mut adaptive,
                "lower it while the estimated precision stays ≥ 0.9",
            )
            .on_hover_text(
                "Per site and side, down to z 2.5: intact columns' deviations are taken as \
                     standard normal, so the expected chance flags are known",
            );
            if adaptive != target_precision.is_some() {
                *target_precision = adaptive.then_some(0.9);
            }
            ui.add(
                egui::Slider::new(disk_radius_frac, 0.1..=0.8).text("disk radius / column spacing"),
            );
            ui.add(egui::Slider::new(min_site_fraction, 0.0..=0.5).text("min site height"));
        }
        LabelMethod::FftResidual {
            cutoff_cycles_per_px,
            lo,
            hi,
        } => {
            ui.add(egui::Slider::new(cutoff_cycles_per_px, 0.01..=0.5).text("cut-off (cycles/px)"));
            ui.add(egui::Slider::new(lo, 0.0..=1.0).text("low threshold"));
            ui.add(egui::Slider::new(hi, 0.0..=1.0).text("high threshold"));
        }
    }
    if method != app.session.settings.label && method.validate().is_ok() {
        app.session.settings.label = method;
        app.push(Command::Label);
    }
    if let Some(l) = &app.session.labels {
        ui.label(format!(
            "{:.2} % of frame 0 marked as defect",
            100.0 * app.session.mask.iter().filter(|&&m| m).count() as f32
                / app.session.mask.len().max(1) as f32
        ));
        if !l.columns.is_empty() {
            ui.label(format!(
                "{} of {} columns flagged",
                l.columns.iter().filter(|c| c.flagged).count(),
                l.columns.len()
            ));
        }
    }
    ui.separator();
    ui.label(RichText::new("Brush (edit the mask by hand)").strong());
    ui.horizontal(|ui| {
        ui.selectable_value(&mut app.brush, None, "off (pan)");
        ui.selectable_value(&mut app.brush, Some(true), "paint");
        ui.selectable_value(&mut app.brush, Some(false), "erase");
    });
    ui.add(egui::Slider::new(&mut app.ui.brush_radius, 0.5..=20.0).text("radius (px)"));
    if app.session.mask_edited {
        ui.horizontal(|ui| {
            ui.label("The mask has hand edits.");
            if ui.button("Discard them").clicked() {
                app.push(Command::ResetMask);
            }
        });
    }
}

fn op_row(ui: &mut egui::Ui, name: &str, op: &mut Op, range: std::ops::RangeInclusive<f32>) {
    ui.label(name);
    ui.add(
        egui::DragValue::new(&mut op.p)
            .range(0.0..=1.0)
            .speed(0.01)
            .prefix("p "),
    );
    ui.add(
        egui::DragValue::new(&mut op.min)
            .range(range.clone())
            .speed(0.01),
    );
    ui.add(egui::DragValue::new(&mut op.max).range(range).speed(0.01));
    ui.end_row();
}

fn augment_controls(app: &mut App, ui: &mut egui::Ui) {
    let a = &mut app.session.settings.train.augment;
    ui.checkbox(&mut a.flips_rotations, "Flips and 90° rotations");
    ui.horizontal(|ui| {
        ui.label("Rescale");
        ui.add(
            egui::DragValue::new(&mut a.scale_min)
                .range(0.5..=1.0)
                .speed(0.01),
        );
        ui.label("to");
        ui.add(
            egui::DragValue::new(&mut a.scale_max)
                .range(1.0..=2.0)
                .speed(0.01),
        );
    });
    egui::Grid::new("ops").num_columns(4).show(ui, |ui| {
        ui.label("operation");
        ui.label("probability");
        ui.label("min");
        ui.label("max");
        ui.end_row();
        op_row(ui, "zoom", &mut a.zoom, 1.0..=3.0);
        op_row(ui, "scan jitter (px)", &mut a.scan_jitter, 0.0..=3.0);
        op_row(ui, "gamma", &mut a.gamma, 0.2..=3.0);
        op_row(ui, "background", &mut a.background, 0.0..=1.0);
        op_row(ui, "blur σ (px)", &mut a.blur, 0.0..=3.0);
        op_row(ui, "Poisson dose", &mut a.poisson, 1.0..=10000.0);
        op_row(ui, "Gaussian noise", &mut a.gaussian, 0.0..=1.0);
        op_row(ui, "salt & pepper", &mut a.salt_pepper, 0.0..=0.1);
    });
    if let Err(e) = a.validate() {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    ui.horizontal(|ui| {
        ui.label("Preview seed");
        ui.add(egui::DragValue::new(
            &mut app.session.settings.augment_preview_seed,
        ));
        if ui.button("New draw").clicked() {
            app.session.settings.augment_preview_seed += 1;
        }
    });
    if ui.button("Reset to defaults").clicked() {
        app.session.settings.train.augment = Default::default();
    }
}

fn train_controls(app: &mut App, ui: &mut egui::Ui) {
    let t = &mut app.session.settings.train;
    egui::Grid::new("train").num_columns(2).show(ui, |ui| {
        ui.label("Network");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut t.model.architecture, Architecture::Sniffer, "Sniffer");
            ui.selectable_value(&mut t.model.architecture, Architecture::Unet, "U-Net");
        });
        ui.end_row();
        ui.label("First-layer filters");
        ui.add(egui::DragValue::new(&mut t.model.width).range(4..=128));
        ui.end_row();
        ui.label("Crop (px)");
        ui.add(egui::DragValue::new(&mut t.crop).range(16..=1024).speed(8));
        ui.end_row();
        ui.label("Batch");
        ui.add(egui::DragValue::new(&mut t.batch).range(1..=256));
        ui.end_row();
        ui.label("Iterations");
        ui.add(
            egui::DragValue::new(&mut t.iterations)
                .range(1..=100_000)
                .speed(10),
        );
        ui.end_row();
        ui.label("Learning rate");
        ui.add(
            egui::DragValue::new(&mut t.learning_rate)
                .range(1e-6..=1.0)
                .speed(1e-4)
                .max_decimals(5),
        );
        ui.end_row();
        ui.label("Loss");
        ui.horizontal(|ui| {
            let focal = matches!(t.loss, PixelLoss::Focal { .. });
            if ui.selectable_label(focal, "focal").clicked() && !focal {
                t.loss = TrainConfig::default().loss;
            }
            if ui.selectable_label(!focal, "cross-entropy").clicked() && focal {
                t.loss = PixelLoss::CrossEntropy { pos_weight: 1.0 };
            }
        });
        ui.end_row();
        match &mut t.loss {
            PixelLoss::Focal { gamma, alpha } => {
                ui.label("γ, α");
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(gamma).range(0.0..=5.0).speed(0.05));
                    ui.add(egui::DragValue::new(alpha).range(0.0..=1.0).speed(0.01));
                });
            }
            PixelLoss::CrossEntropy { pos_weight } => {
                ui.label("Positive weight");
                ui.add(
                    egui::DragValue::new(pos_weight)
                        .range(0.01..=100.0)
                        .speed(0.1),
                );
            }
        }
        ui.end_row();
        ui.label("Dice weight");
        ui.add(
            egui::DragValue::new(&mut t.dice_weight)
                .range(0.0..=10.0)
                .speed(0.05),
        );
        ui.end_row();
        ui.label("Device");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut t.device, DeviceChoice::Auto, "auto");
            ui.selectable_value(&mut t.device, DeviceChoice::Gpu, "GPU");
            ui.selectable_value(&mut t.device, DeviceChoice::Cpu, "CPU");
        });
        ui.end_row();
        ui.label("Seed");
        ui.add(egui::DragValue::new(&mut t.seed));
        ui.end_row();
    });
    if let Some(m) = &app.session.movie
        && let Err(e) = app.session.settings.train.validate(m.width(), m.height())
    {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    run_button(app, ui, "Train", JobKind::Train, Command::Train);
    let total = app.session.settings.train.iterations;
    let done = app.session.losses.len();
    if let Some(j) = &app.session.job
        && j.kind == JobKind::Train
        && done > 0
    {
        let secs = j.started.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        ui.label(format!(
            "{done} / {total} iterations · {rate:.2} it/s · ETA {:.0} s",
            (total.saturating_sub(done)) as f64 / rate.max(1e-9)
        ));
    }
    if let Some(m) = &app.session.model {
        ui.label(format!("Model: {} on {}", m.source, m.device_name));
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(
                app.session.model.is_some(),
                egui::Button::new("Save model…"),
            )
            .clicked()
            && let Some(p) = rfd::FileDialog::new().pick_folder()
        {
            app.push(Command::SaveModel(p));
        }
        if ui
            .add_enabled(!app.session.busy(), egui::Button::new("Load model…"))
            .clicked()
            && let Some(p) = rfd::FileDialog::new().pick_folder()
        {
            app.push(Command::LoadModel(p));
        }
    });
}

fn detect_controls(app: &mut App, ui: &mut egui::Ui) {
    let s = &mut app.session.settings;
    ui.label(RichText::new("Detection (applied when run)").strong());
    ui.add(egui::Slider::new(&mut s.localize.threshold, 0.05..=0.95).text("probability threshold"));
    ui.add(egui::Slider::new(&mut s.localize.min_area_px, 1..=100).text("min blob (px)"));
    ui.add(egui::Slider::new(&mut s.localize.edge_margin_px, 0.0..=32.0).text("edge margin (px)"));
    ui.add(egui::Slider::new(&mut s.inference_batch, 1..=16).text("frames per pass"));
    run_button(
        app,
        ui,
        "Detect in all frames",
        JobKind::Detect,
        Command::Detect,
    );
    ui.separator();
    ui.label(RichText::new("Filter (live)").strong());
    let f = &mut app.session.settings.filter;
    ui.add(egui::Slider::new(&mut f.min_score, 0.0..=1.0).text("min peak probability"));
    ui.add(egui::Slider::new(&mut f.min_area_px, 0..=200).text("min area (px)"));
    ui.add(egui::Slider::new(&mut f.max_area_px, 0..=2000).text("max area (px, 0 = none)"));
    if let Some(d) = app.session.detected.clone() {
        let kept = d
            .all
            .iter()
            .filter(|x| app.session.settings.filter.keeps(x))
            .count();
        ui.label(format!(
            "{kept} of {} detections pass the filter",
            d.all.len()
        ));
        if app.session.analysis.is_some() {
            ui.small(
                "Markers show the analysed detections; run Classes again to apply a new filter.",
            );
        }
    }
    super::regions_panel::section(app, ui);
    ui.separator();
    let d = &mut app.ui.display;
    ui.checkbox(&mut d.show_probability, "Probability map");
    ui.add(egui::Slider::new(&mut d.probability_opacity, 0.0..=1.0).text("opacity"));
    ui.checkbox(&mut d.show_markers, "Markers");
    ui.add(egui::Slider::new(&mut d.marker_radius, 2.0..=20.0).text("marker radius"));
    if app.session.truth.is_some() {
        ui.checkbox(&mut d.show_truth, "True positions (green +)");
    }
    selected_details(app, ui);
}

fn selected_details(app: &mut App, ui: &mut egui::Ui) {
    let Some(i) = app.selected else { return };
    let Some(shown) = app.shown() else { return };
    let Some(d) = shown.list.get(i).copied() else {
        return;
    };
    let classified = shown.classified;
    ui.separator();
    ui.label(RichText::new(format!("Defect {i}")).strong());
    let class = classified.then(|| app.session.class_of(i)).flatten();
    let track = app
        .session
        .analysis
        .as_ref()
        .filter(|_| classified)
        .and_then(|a| {
            a.tracks
                .track_of
                .get(i)
                .map(|&t| (t, a.tracks.tracks[t].len()))
        });
    egui::Grid::new("sel").num_columns(2).show(ui, |ui| {
        ui.label("frame, x, y");
        ui.label(format!("{}, {:.1}, {:.1} px", d.frame, d.x, d.y));
        ui.end_row();
        ui.label("peak probability");
        ui.label(format!("{:.3}", d.score));
        ui.end_row();
        ui.label("area");
        ui.label(format!("{} px", d.area));
        ui.end_row();
        ui.label("class");
        match class {
            Some(c) => ui.colored_label(colour(class_colour(c)), format!("class {c}")),
            None => ui.label("—"),
        };
        ui.end_row();
        ui.label("track");
        ui.label(track.map_or("—".into(), |(t, n)| format!("{t} ({n} frames)")));
        ui.end_row();
    });
    if let Some(m) = &app.session.movie {
        let p = window(
            &m.frames[d.frame],
            d.x,
            d.y,
            app.session.settings.analysis.patch_size,
        );
        let tex = texture(ui.ctx(), "selected-patch", grey_image(&p));
        ui.image((tex.id(), Vec2::splat(128.0)));
    }
}

fn class_controls(app: &mut App, ui: &mut egui::Ui) {
    let a = &mut app.session.settings.analysis;
    egui::Grid::new("cls").num_columns(2).show(ui, |ui| {
        ui.label("Method");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut a.method, ClusterMethod::KMeans, "k-means");
            ui.selectable_value(&mut a.method, ClusterMethod::GmmDiag, "GMM diag");
            ui.selectable_value(&mut a.method, ClusterMethod::GmmFull, "GMM full");
        });
        ui.end_row();
        ui.label("Classes");
        ui.horizontal(|ui| {
            let auto = matches!(a.classes, ClassCount::Auto { .. });
            if ui.selectable_label(auto, "auto (BIC)").clicked() {
                a.classes = ClassCount::Auto { max: 8 };
            }
            if ui.selectable_label(!auto, "fixed").clicked() && auto {
                a.classes = ClassCount::Fixed(4);
            }
            match &mut a.classes {
                ClassCount::Auto { max } => {
                    ui.add(egui::DragValue::new(max).range(2..=20).prefix("max "))
                }
                ClassCount::Fixed(k) => ui.add(egui::DragValue::new(k).range(1..=30)),
            };
        });
        ui.end_row();
        ui.label("Patch (px)");
        ui.add(
            egui::DragValue::new(&mut a.patch_size)
                .range(8..=128)
                .speed(2),
        );
        ui.end_row();
        ui.label("Principal components");
        ui.add(egui::DragValue::new(&mut a.pca_components).range(0..=64));
        ui.end_row();
        ui.label("Smooth along tracks");
        ui.checkbox(&mut a.hmm, "hidden-Markov");
        ui.end_row();
    });
    if let Err(e) = a.validate() {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    run_button(
        app,
        ui,
        "Classify and track",
        JobKind::Analyse,
        Command::Analyse,
    );
    let Some(an) = app.session.analysis.clone() else {
        return;
    };
    ui.label(format!(
        "{} classes ({}) among {} defects",
        an.classes(),
        an.clustering.method.name(),
        an.patched.len()
    ));
    for w in &an.warnings {
        ui.small(format!("Warning: {w}"));
    }
    ui.separator();
    ui.label(RichText::new("Manual corrections").strong());
    let k = an.classes();
    ui.horizontal(|ui| {
        ui.label("Put the selected defect into");
        egui::ComboBox::from_id_salt("relabel")
            .selected_text(class_label(app.relabel_to, k))
            .show_ui(ui, |ui| {
                for c in 0..=k {
                    ui.selectable_value(&mut app.relabel_to, c, class_label(c, k));
                }
            });
        let ok = app.selected.is_some() && !app.session.busy();
        if ui.add_enabled(ok, egui::Button::new("Relabel")).clicked()
            && let Some(i) = app.selected
        {
            app.push(Command::Relabel {
                detection: i,
                class: app.relabel_to,
            });
        }
    });
    ui.horizontal(|ui| {
        ui.label("Merge class");
        ui.add(egui::DragValue::new(&mut app.merge.0).range(0..=k.saturating_sub(1)));
        ui.label("into");
        ui.add(egui::DragValue::new(&mut app.merge.1).range(0..=k.saturating_sub(1)));
        let ok = app.merge.0 != app.merge.1 && !app.session.busy();
        if ui.add_enabled(ok, egui::Button::new("Merge")).clicked() {
            app.push(Command::Merge {
                from: app.merge.0,
                into: app.merge.1,
            });
        }
    });
    let n = app.session.settings.analysis.edits.len();
    ui.horizontal(|ui| {
        ui.label(format!("{n} corrections"));
        if ui
            .add_enabled(n > 0 && !app.session.busy(), egui::Button::new("Undo last"))
            .clicked()
        {
            app.push(Command::UndoEdit);
        }
    });
    ui.small("Click a class in the gallery to browse its members; click a member to select it.");
    selected_details(app, ui);
}

fn class_label(c: usize, k: usize) -> String {
    if c == k {
        "new class".into()
    } else {
        format!("class {c}")
    }
}

fn time_controls(app: &mut App, ui: &mut egui::Ui) {
    let d = &mut app.ui.display;
    ui.checkbox(&mut d.show_tracks, "Trajectories on the frame");
    ui.add(egui::Slider::new(&mut d.tail_frames, 1..=100).text("tail (frames)"));
    let Some(a) = app.session.analysis.clone() else {
        ui.label("Run Classes first.");
        return;
    };
    ui.separator();
    ui.label(RichText::new("Diffusion").strong());
    for df in &a.diffusion {
        ui.colored_label(
            colour(class_colour(df.class)),
            format!("class {}: {}", df.class, a.diffusion_text(df)),
        );
    }
    ui.label(format!(
        "{} tracks, {} gap links, max step {:.1} px",
        a.tracks.tracks.len(),
        a.tracks.gap_links,
        a.tracks.max_step_px
    ));
    ui.separator();
    ui.label(RichText::new("Coupling").strong());
    let k = a.classes();
    let (mut ca, mut cb) = a
        .coupling
        .as_ref()
        .map_or((0, 1), |c| (c.class_a, c.class_b));
    ui.horizontal(|ui| {
        ui.label("between class");
        ui.add(egui::DragValue::new(&mut ca).range(0..=k.saturating_sub(1)));
        ui.label("and");
        ui.add(egui::DragValue::new(&mut cb).range(0..=k.saturating_sub(1)));
    });
    if a.coupling
        .as_ref()
        .is_some_and(|c| (c.class_a, c.class_b) != (ca, cb))
        && ui
            .add_enabled(!app.session.busy(), egui::Button::new("Recompute"))
            .clicked()
    {
        app.session.settings.analysis.coupling = Some((ca, cb));
        app.push(Command::Analyse);
    }
}

fn pca_controls(app: &mut App, ui: &mut egui::Ui) {
    let Some(a) = app.session.analysis.clone() else {
        ui.label("Run Classes first.");
        return;
    };
    if a.class_pca.is_empty() {
        ui.label("No class has enough members for a PCA.");
        return;
    }
    ui.label("Class");
    ui.horizontal_wrapped(|ui| {
        for p in &a.class_pca {
            ui.selectable_value(
                &mut app.pca_class,
                p.class,
                format!("class {} ({})", p.class, p.members),
            );
        }
    });
    if let Some(p) = a.class_pca.iter().find(|p| p.class == app.pca_class) {
        ui.label(format!(
            "{} of {} components significant (parallel analysis, {} shuffles)",
            p.significance.significant,
            p.eigenvalues.len(),
            p.significance.shuffles
        ));
    }
    ui.small("Hover a point of the scores to see its patch.");
}

fn export_controls(app: &mut App, ui: &mut egui::Ui) {
    let s = &mut app.session.settings;
    ui.horizontal(|ui| {
        ui.label("Folder");
        let mut text = s.export_dir.display().to_string();
        if ui.text_edit_singleline(&mut text).changed() {
            s.export_dir = text.into();
        }
        if ui.button("Choose…").clicked()
            && let Some(p) = rfd::FileDialog::new().pick_folder()
        {
            s.export_dir = p;
        }
    });
    ui.add(egui::Slider::new(&mut s.export_width_mm, 40.0..=300.0).text("PNG width (mm)"));
    ui.add(egui::Slider::new(&mut s.export_dpi, 72.0..=1200.0).text("PNG resolution (dpi)"));
    ui.small(format!(
        "A single figure's PNG is {:.0} px wide; SVGs stay vector. 85 mm = one journal column, 170 mm = two.",
        s.export_width_mm / 25.4 * s.export_dpi
    ));
    ui.separator();
    run_button(
        app,
        ui,
        "Export all tables and figures",
        JobKind::Export,
        Command::ExportAll,
    );
    ui.separator();
    ui.label(RichText::new("Single figures").strong());
    let frame = app.frame;
    let mut wanted: Option<(String, crate::export::figure::Figure)> = None;
    if let Some(m) = app.session.movie.clone()
        && ui.button(format!("Annotated frame {frame}")).clicked()
    {
        let shown = app.shown().map(|s| (s.list.clone(), s.classified));
        let (list, classified) = shown.unwrap_or_default();
        let k = app.session.analysis.as_ref().map_or(0, |a| a.classes());
        let session = &app.session;
        let fig = figures::annotated_frame(
            &m.frames[frame],
            frame,
            &list,
            &|i| {
                if classified {
                    session.class_of(i)
                } else {
                    None
                }
            },
            k,
        );
        wanted = Some((format!("frame_{frame:04}"), fig));
    }
    if let Some(a) = app.session.analysis.clone() {
        // Listed without building: a figure is made only when its button is clicked.
        type Build = fn(&crate::analysis::DefectAnalysis) -> Option<crate::export::figure::Figure>;
        let items: [(&str, bool, Build); 7] = [
            ("dendrogram", a.dendrogram.is_some(), figures::dendrogram),
            ("class_gallery", true, |a| Some(figures::class_gallery(a))),
            ("concentration", true, |a| Some(figures::concentration(a))),
            ("msd", true, |a| Some(figures::msd(a))),
            ("transition_matrix", true, |a| {
                Some(figures::transition_matrix(a))
            }),
            ("coupling", a.coupling.is_some(), figures::coupling),
            ("drift", true, |a| {
                Some(figures::drift(
                    "Drift between frames",
                    &a.drift,
                    a.pixel_size_nm,
                    a.frame_interval_s,
                ))
            }),
        ];
        for (name, available, build) in items {
            if available
                && ui.button(name).clicked()
                && let Some(fig) = build(&a)
            {
                wanted = Some((name.to_string(), fig));
            }
        }
        if let Some(m) = app.session.movie.clone()
            && ui.button("trajectories").clicked()
        {
            let fig = figures::trajectories(&a, &m.frames[0], &app.session.analysed);
            wanted = Some(("trajectories".to_string(), fig));
        }
    }
    if let Some((name, fig)) = wanted {
        app.push(Command::ExportFigure(name, Box::new(fig)));
    }
    ui.separator();
    ui.horizontal(|ui| {
        if ui.button("Save project…").clicked()
            && let Some(p) = rfd::FileDialog::new().pick_folder()
        {
            app.push(Command::SaveProject(p));
        }
        if ui.button("Open project…").clicked()
            && let Some(p) = rfd::FileDialog::new().pick_folder()
        {
            app.push(Command::OpenProject(p));
        }
    });
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
        Stage::Sites => super::sites_panel::view(app, ui),
        Stage::Pca => pca_view(app, ui),
        Stage::Export => movie_view(app, ui),
    }
}

fn movie_view(app: &mut App, ui: &mut egui::Ui) {
    let Some(m) = app.session.movie.clone() else {
        return;
    };
    let f = app.frame.min(m.frames.len() - 1);
    let d = app.ui.display.clone();
    let stage = app.ui.stage;
    let brush = stage == Stage::GroundTruth && app.brush.is_some();
    let shown = app.shown().map(|s| {
        (
            s.list.clone(),
            s.classified,
            s.by_frame.get(f).cloned().unwrap_or_default(),
        )
    });
    let mut ov = Overlays {
        mask: None,
        probability: None,
        markers: Vec::new(),
        tracks: Vec::new(),
        truth: Vec::new(),
        selected: None,
    };
    if d.show_mask && f == 0 && !app.session.mask.is_empty() {
        ov.mask = Some(&app.session.mask);
    }
    let det = app.session.detected.clone();
    if d.show_probability
        && let Some(det) = &det
    {
        ov.probability = det.maps.get(f).map(Vec::as_slice);
    }
    let analysis = app.session.analysis.clone();
    let selected = app.selected;
    if let Some((list, classified, here)) = shown {
        let class = |i: usize| {
            if classified {
                analysis
                    .as_ref()
                    .and_then(|a| a.class.get(i).copied().flatten())
            } else {
                None
            }
        };
        if d.show_markers {
            ov.markers = here
                .iter()
                .map(|&i| ([list[i].x, list[i].y], class(i)))
                .collect();
        }
        if d.show_tracks
            && let Some(a) = analysis.as_ref().filter(|_| classified)
        {
            for &i in &here {
                let t = &a.tracks.tracks[a.tracks.track_of[i]];
                let tail: Vec<[f32; 2]> = t
                    .iter()
                    .filter(|&&k| list[k].frame <= f && list[k].frame + d.tail_frames >= f)
                    .map(|&k| [list[k].x, list[k].y])
                    .collect();
                if tail.len() > 1 {
                    ov.tracks.push((tail, class(i)));
                }
            }
        }
        ov.selected = selected
            .and_then(|i| list.get(i))
            .filter(|x| x.frame == f)
            .map(|x| [x.x, x.y]);
    }
    if d.show_truth
        && let Some(t) = &app.session.truth
    {
        ov.truth = t
            .iter()
            .filter(|x| x.frame == f)
            .map(|x| [x.x, x.y])
            .collect();
    }
    let r = app.view.show(
        ui,
        f,
        &m.frames[f],
        m.calibration.pixel_size_nm,
        &d,
        &ov,
        app.session.mask_generation,
        brush,
    );
    app.hover = r.hover;
    if let (Some([x, y]), Some(on)) = (r.brushed, app.brush)
        && brush
    {
        app.push(Command::Paint {
            x,
            y,
            radius: app.ui.brush_radius,
            on,
        });
    }
    if let Some([x, y]) = r.clicked
        && let Some(shown) = app.shown.as_ref()
    {
        let radius = d.marker_radius.max(4.0);
        let best = shown
            .by_frame
            .get(f)
            .into_iter()
            .flatten()
            .map(|&i| (i, (shown.list[i].x - x).hypot(shown.list[i].y - y)))
            .filter(|(_, dist)| *dist <= radius)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        app.selected = best.map(|(i, _)| i);
    }
}

fn truth_side(app: &mut App, ui: &mut egui::Ui) {
    let Some(m) = app.session.movie.clone() else {
        return;
    };
    let key = std::sync::Arc::as_ptr(&m) as usize;
    if app.fft.as_ref().is_none_or(|(k, _)| *k != key) {
        let p = crate::lattice::fft::log_power_spectrum(&m.frames[0]);
        app.fft = Some((key, texture(ui.ctx(), "fft", grey_image(&p))));
    }
    ui.label(RichText::new("Power spectrum of frame 0").strong());
    let side = ui.available_width().min(ui.available_height() * 0.55);
    if let Some((_, t)) = &app.fft {
        // The central half of the spectrum (up to ±0.25 cycles/px), where the Bragg peaks are.
        const SHOWN: f32 = 0.5;
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), egui::Sense::hover());
        let uv = egui::Rect::from_min_max(
            egui::pos2(0.5 - SHOWN / 2.0, 0.5 - SHOWN / 2.0),
            egui::pos2(0.5 + SHOWN / 2.0, 0.5 + SHOWN / 2.0),
        );
        let painter = ui.painter_at(rect);
        painter.image(t.id(), rect, uv, Color32::WHITE);
        // Screen points per cycle/px.
        let scale = side / SHOWN;
        if let LabelMethod::FftResidual {
            cutoff_cycles_per_px,
            ..
        } = app.session.settings.label
        {
            painter.circle_stroke(
                rect.center(),
                cutoff_cycles_per_px * scale,
                egui::Stroke::new(1.5, Color32::from_rgb(255, 80, 60)),
            );
            ui.small("Red circle: the low frequencies removed (cut-off). Shown: ±0.25 cycles/px.");
        } else if let Some(l) = &app.session.labels
            && let Some(fit) = &l.lattice
        {
            // Bragg positions of the fitted lattice: the reciprocal vectors.
            let (a1, a2) = (fit.a1, fit.a2);
            let det = a1[0] * a2[1] - a1[1] * a2[0];
            if det.abs() > 1e-6 {
                let b1 = [a2[1] / det, -a2[0] / det];
                let b2 = [-a1[1] / det, a1[0] / det];
                for (i, j) in [
                    (1.0, 0.0),
                    (0.0, 1.0),
                    (1.0, -1.0),
                    (-1.0, 0.0),
                    (0.0, -1.0),
                    (-1.0, 1.0),
                ] {
                    let q = [i * b1[0] + j * b2[0], i * b1[1] + j * b2[1]];
                    painter.circle_stroke(
                        rect.center() + Vec2::new(q[0], q[1]) * scale,
                        7.0,
                        egui::Stroke::new(1.5, Color32::from_rgb(80, 220, 255)),
                    );
                }
                ui.small("Blue rings: first-order Bragg peaks of the fitted lattice. Shown: ±0.25 cycles/px.");
            }
        }
    }
    ui.separator();
    let mut method = app.session.settings.label.clone();
    match (&mut method, &app.session.labels) {
        (
            LabelMethod::FftResidual { lo, hi, .. },
            Some(Labels {
                residual: Some(res),
                ..
            }),
        ) => {
            ui.label("Normalised residual: drag to move the nearer threshold");
            if let Some(x) = histogram_plot(
                ui,
                "residual-hist",
                &res.data,
                100,
                &[*lo as f64, *hi as f64],
                140.0,
                "residual",
            ) {
                let x = x.clamp(0.0, 1.0) as f32;
                if (x - *lo).abs() < (x - *hi).abs() {
                    *lo = x.min(*hi - 0.01);
                } else {
                    *hi = x.max(*lo + 0.01);
                }
            }
        }
        (LabelMethod::Columns { z_threshold, .. }, Some(l)) if !l.columns.is_empty() => {
            ui.label("Column deviation z: drag to move the threshold");
            let z: Vec<f32> = l.columns.iter().map(|c| c.z).collect();
            let t = *z_threshold as f64;
            if let Some(x) = histogram_plot(ui, "z-hist", &z, 100, &[-t, t], 140.0, "z (robust σ)")
            {
                *z_threshold = (x.abs() as f32).clamp(0.5, 50.0);
            }
            // The red lines are the chosen threshold; the adaptive one may flag below it.
            let used: Vec<String> = l
                .site_thresholds
                .iter()
                .enumerate()
                .map(|(i, (lo, hi))| format!("site {i}: below −{lo:.1}, above {hi:.1}"))
                .collect();
            ui.small(format!("thresholds used: {}", used.join("; ")));
        }
        _ => {}
    }
    if method != app.session.settings.label && method.validate().is_ok() {
        app.session.settings.label = method;
        app.push(Command::Label);
    }
}

fn augment_view(app: &mut App, ui: &mut egui::Ui) {
    let Some(m) = app.session.movie.clone() else {
        return;
    };
    if app.session.mask.is_empty() {
        ui.label("Label frame 0 first (Ground truth).");
        return;
    }
    let key = (
        app.session.settings.train.clone(),
        app.session.settings.augment_preview_seed,
        app.session.mask_generation,
    );
    if app.augment.as_ref().is_none_or(|p| p.key != key) {
        let n = 12;
        let (tiles, error) =
            match preview_samples(&m.frames[0], &app.session.mask, &key.0, n, key.1) {
                Ok(samples) => (
                    samples
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let mut img = grey_image(&s.image);
                            // Mask outline in red: mask pixels with a non-mask 4-neighbour.
                            let (w, h) = (s.mask.width, s.mask.height);
                            for y in 0..h {
                                for x in 0..w {
                                    let on = |x: usize, y: usize| s.mask.get(x, y) > 0.5;
                                    let edge = on(x, y)
                                        && (x == 0
                                            || y == 0
                                            || x + 1 == w
                                            || y + 1 == h
                                            || !on(x - 1, y)
                                            || !on(x + 1, y)
                                            || !on(x, y - 1)
                                            || !on(x, y + 1));
                                    if edge {
                                        img.pixels[y * w + x] = Color32::from_rgb(255, 60, 40);
                                    }
                                }
                            }
                            texture(ui.ctx(), &format!("aug-{i}"), img)
                        })
                        .collect(),
                    None,
                ),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
        app.augment = Some(AugmentPreview { key, tiles, error });
    }
    let Some(p) = &app.augment else { return };
    if let Some(e) = &p.error {
        ui.colored_label(Color32::LIGHT_RED, e);
        return;
    }
    ui.label(format!(
        "{} training crops of {} px as training draws them (red: mask outline)",
        p.tiles.len(),
        app.session.settings.train.crop
    ));
    let cols = 4;
    let side = ((ui.available_width() / cols as f32) - 8.0)
        .min((ui.available_height() - 30.0) / 3.0 - 8.0)
        .max(32.0);
    egui::Grid::new("aug").spacing([6.0, 6.0]).show(ui, |ui| {
        for (i, t) in p.tiles.iter().enumerate() {
            ui.image((t.id(), Vec2::splat(side)));
            if (i + 1) % cols == 0 {
                ui.end_row();
            }
        }
    });
}

fn train_view(app: &mut App, ui: &mut egui::Ui) {
    let h = ui.available_height() / 2.0 - 20.0;
    ui.label(RichText::new("Training loss").strong());
    let losses = app.session.losses.clone();
    Plot::new("loss")
        .height(h)
        .x_axis_label("iteration")
        .y_axis_label("loss (focal + Dice)")
        .include_y(0.0)
        .show(ui, |pu| {
            pu.line(Line::new("loss", losses).color(Color32::from_rgb(0, 114, 178)));
        });
    ui.label(RichText::new("Validation").strong());
    let val = app.session.validation.clone();
    Plot::new("iou")
        .height(h)
        .x_axis_label("iteration")
        .y_axis_label("IoU of the defect mask")
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |pu| {
            pu.line(Line::new("validation IoU", val.clone()).color(Color32::from_rgb(213, 94, 0)));
            pu.points(
                Points::new("", val)
                    .color(Color32::from_rgb(213, 94, 0))
                    .radius(3.0),
            );
        });
}

fn detection_table(app: &mut App, ui: &mut egui::Ui) {
    let f = app.frame;
    let Some(shown) = app.shown() else { return };
    let rows: Vec<usize> = shown.by_frame.get(f).cloned().unwrap_or_default();
    let list = shown.list.clone();
    let classified = shown.classified;
    ui.label(format!(
        "{} defects in frame {f} ({} in all frames)",
        rows.len(),
        list.len()
    ));
    let mut clicked = None;
    let row_h = 18.0;
    egui::ScrollArea::vertical().show_rows(ui, row_h, rows.len(), |ui, range| {
        egui::Grid::new("det-rows")
            .num_columns(6)
            .striped(true)
            .show(ui, |ui| {
                for &i in &rows[range] {
                    let d = list[i];
                    let sel = app.selected == Some(i);
                    if ui.selectable_label(sel, format!("#{i}")).clicked() {
                        clicked = Some(i);
                    }
                    ui.label(format!("x {:.1}", d.x));
                    ui.label(format!("y {:.1}", d.y));
                    ui.label(format!("p {:.2}", d.score));
                    ui.label(format!("{} px", d.area));
                    let c = classified.then(|| app.session.class_of(i)).flatten();
                    match c {
                        Some(c) => ui.colored_label(colour(class_colour(c)), format!("class {c}")),
                        None => ui.label(""),
                    };
                    ui.end_row();
                }
            });
    });
    if clicked.is_some() {
        app.selected = clicked;
    }
}

fn classes_view(app: &mut App, ui: &mut egui::Ui) {
    if app.session.analysis.is_none() {
        ui.label("Detect defects, then run “Classify and track”.");
        return;
    }
    let ctx = ui.ctx().clone();
    let h = ui.available_height();
    let w = ui.available_width();
    egui::Panel::right("members")
        .resizable(true)
        .default_size(w * 0.3)
        .show(ui, |ui| class_members(app, ui));
    if let Some(f) = app.figure(&ctx, "dendrogram", figures::dendrogram) {
        figure_view::show(ui, "dendrogram", f, h * 0.45, None);
    }
    ui.separator();
    let clicked = app
        .figure(&ctx, "gallery", |a| Some(figures::class_gallery(a)))
        .map(|f| figure_view::show(ui, "gallery", f, h * 0.45, None));
    if let Some(r) = clicked
        && let Some((_, t)) = r.clicked_tile
    {
        app.browse_class = Some(t);
    }
}

fn class_members(app: &mut App, ui: &mut egui::Ui) {
    let Some(c) = app.browse_class else {
        ui.label("Click a class in the gallery to see its members.");
        return;
    };
    let (Some(a), Some(m)) = (app.session.analysis.clone(), app.session.movie.clone()) else {
        return;
    };
    let members: Vec<usize> = (0..a.class.len())
        .filter(|&i| a.class[i] == Some(c))
        .collect();
    ui.colored_label(
        colour(class_colour(c)),
        RichText::new(format!("Class {c}: {} members", members.len())).strong(),
    );
    ui.small(format!("the first {PATCH_GALLERY}; click one to select it"));
    let name = format!("members-{c}");
    let ctx = ui.ctx().clone();
    let dets = app.session.analysed.clone();
    let size = a.config.patch_size;
    let key = std::sync::Arc::as_ptr(&a) as usize;
    if app.figures.get(&name).is_none_or(|(k, _)| *k != key) {
        let tiles = members
            .iter()
            .take(PATCH_GALLERY)
            .map(|&i| {
                let d = dets[i];
                crate::export::figure::Tile {
                    image: window(&m.frames[d.frame], d.x, d.y, size),
                    caption: format!("#{i} f{}", d.frame),
                    frame: Some(class_colour(c)),
                }
            })
            .collect();
        let fig = crate::export::figure::Figure {
            title: String::new(),
            width: 400.0,
            height: 400.0,
            columns: 1,
            panels: vec![crate::export::figure::Panel::Gallery(
                crate::export::figure::Gallery {
                    title: String::new(),
                    tiles,
                    columns: 4,
                },
            )],
        };
        app.figures
            .insert(name.clone(), (key, ShownFigure::new(&ctx, fig)));
    }
    if let Some((_, f)) = app.figures.get(&name) {
        let r = figure_view::show(ui, &name, f, ui.available_height(), None);
        if let Some((_, t)) = r.clicked_tile
            && let Some(&i) = members.get(t)
        {
            app.selected = Some(i);
            app.frame = dets[i].frame;
        }
    }
}

fn time_plots(app: &mut App, ui: &mut egui::Ui) {
    if app.session.analysis.is_none() {
        ui.label("Run Classes first.");
        return;
    }
    let ctx = ui.ctx().clone();
    let h = (ui.available_height() - 40.0) / 2.0;
    // The concentration plot's time axis: seconds when calibrated, frames otherwise.
    let dt = app
        .session
        .analysis
        .as_ref()
        .and_then(|a| a.frame_interval_s)
        .unwrap_or(1.0);
    let f = app.frame as f64 * dt;
    egui::ScrollArea::vertical().show(ui, |ui| {
        if let Some(fig) = app.figure(&ctx, "concentration", |a| Some(figures::concentration(a))) {
            figure_view::show(ui, "concentration", fig, h, Some(f));
        }
        ui.columns(2, |cols| {
            if let Some(fig) = app.figure(&ctx, "msd", |a| Some(figures::msd(a))) {
                figure_view::show(&mut cols[0], "msd", fig, h, None);
            }
            if let Some(fig) = app.figure(&ctx, "coupling", figures::coupling) {
                figure_view::show(&mut cols[1], "coupling", fig, h, None);
            }
        });
        if let Some(fig) = app.figure(&ctx, "transitions", |a| Some(figures::transition_matrix(a)))
        {
            figure_view::show(ui, "transitions", fig, h, None);
        }
    });
}

fn pca_view(app: &mut App, ui: &mut egui::Ui) {
    let (Some(a), Some(m)) = (app.session.analysis.clone(), app.session.movie.clone()) else {
        ui.label("Run Classes first.");
        return;
    };
    let Some(p) = a
        .class_pca
        .iter()
        .find(|p| p.class == app.pca_class)
        .or(a.class_pca.first())
    else {
        ui.label("No class has enough members for a PCA.");
        return;
    };
    let ctx = ui.ctx().clone();
    let h = ui.available_height();
    let name = format!("pca-{}", p.class);
    let w = ui.available_width();
    let dets = app.session.analysed.clone();
    egui::Panel::right("scores")
        .resizable(true)
        .default_size(w * 0.4)
        .show(ui, |ui| {
            ui.label(RichText::new("Scores on PC1 and PC2").strong());
            let pts: Vec<[f64; 2]> = p
                .scores
                .rows()
                .into_iter()
                .map(|r| [r[0], r.get(1).copied().unwrap_or(0.0)])
                .collect();
            let col = colour(class_colour(p.class));
            let resp = Plot::new("scores")
                .height(h * 0.6)
                .x_axis_label("PC1 score")
                .y_axis_label("PC2 score")
                .show(ui, |pu| {
                    pu.points(Points::new("members", pts.clone()).color(col).radius(2.5));
                    pu.pointer_coordinate().map(|q| {
                        let b = pu.plot_bounds();
                        let (sx, sy) = (b.width().max(1e-12), b.height().max(1e-12));
                        pts.iter()
                            .enumerate()
                            .map(|(i, s)| (i, ((s[0] - q.x) / sx).hypot((s[1] - q.y) / sy)))
                            .min_by(|a, b| a.1.total_cmp(&b.1))
                            .filter(|(_, d)| *d < 0.03)
                            .map(|(i, _)| i)
                    })
                });
            if let Some(Some(row)) = resp.inner
                && let Some(&di) = p.detections.get(row)
            {
                let d = dets[di];
                let img = window(&m.frames[d.frame], d.x, d.y, a.config.patch_size);
                let t = texture(&ctx, "pca-hover", grey_image(&img));
                ui.label(format!(
                    "defect #{di}, frame {}, ({:.1}, {:.1}) px",
                    d.frame, d.x, d.y
                ));
                ui.image((t.id(), Vec2::splat(128.0)));
                if resp.response.clicked() {
                    app.selected = Some(di);
                    app.frame = d.frame;
                }
            }
        });
    let class = p.class;
    if let Some(f) = app.figure(&ctx, &name, |a| {
        a.class_pca
            .iter()
            .find(|q| q.class == class)
            .map(figures::pca_panel)
    }) {
        figure_view::show(ui, &name, f, h - 30.0, None);
    }
}

/// What a crashed run left: recover it or throw it away.
fn recovery(app: &mut App, ui: &mut egui::Ui) {
    let Some(left) = app.recoverable().map(std::path::Path::to_path_buf) else {
        return;
    };
    let when = std::fs::metadata(left.join(crate::project::PROJECT_FILE))
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

fn notices(app: &mut App, ui: &mut egui::Ui) {
    if app.session.notices.is_empty() {
        return;
    }
    let mut dismiss = None;
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
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!("{title} {}", n.text)).color(Color32::WHITE),
                            )
                            .wrap(),
                        );
                    });
                });
            }
        });
    if let Some(i) = dismiss {
        app.push(Command::DismissNotice(i));
    }
}
