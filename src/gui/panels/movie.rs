//! The Movie panel: frames, display, drift, and the image view every stage shares.

use super::*;

pub(super) fn movie_controls(app: &mut App, ui: &mut egui::Ui) {
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
pub(super) fn drift_controls(app: &mut App, ui: &mut egui::Ui, m: &Movie) {
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

pub(super) fn display_controls(app: &mut App, ui: &mut egui::Ui, index: usize, frame: &Raster) {
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

pub(super) fn movie_view(app: &mut App, ui: &mut egui::Ui) {
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
    if let (Some((_, true, here)), Some(a)) = (&shown, app.session.analysis.clone()) {
        class_legend(app, ui, &a, here);
    }
    let only = app.panels.only_class;
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
                .filter(|(_, c)| only.is_none() || *c == only)
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

/// Each class's colour, name and count in the frame shown; a click shows that class only, a
/// second click all of them again.
fn class_legend(
    app: &mut App,
    ui: &mut egui::Ui,
    a: &crate::analysis::DefectAnalysis,
    here: &[usize],
) {
    let entries: Vec<(usize, String)> = (0..a.classes())
        .map(|c| {
            let n = here
                .iter()
                .filter(|&&i| a.class.get(i).copied().flatten() == Some(c))
                .count();
            let shown = match app.panels.only_class {
                Some(o) if o == c => " (only)",
                _ => "",
            };
            (c, format!("{} {n}{shown}", a.class_name(c)))
        })
        .collect();
    if let Some(c) = legend(
        ui,
        "Classes in this frame (click: this class only):",
        &entries,
    ) {
        app.panels.only_class = match app.panels.only_class {
            Some(o) if o == c => None,
            _ => Some(c),
        };
    }
}
