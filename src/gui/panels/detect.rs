//! The detection panel: thresholds, the detections table and the selected detection.

use super::*;

pub(super) fn detect_controls(app: &mut App, ui: &mut egui::Ui) {
    let s = &mut app.session.settings.chain;
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
    super::regions::section(app, ui);
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

pub(super) fn selected_details(app: &mut App, ui: &mut egui::Ui) {
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
            Some(c) => ui.colored_label(colour(class_colour(c)), app.session.class_name(c)),
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
            app.session.settings.chain.analysis.patch_size,
        );
        let tex = texture(ui.ctx(), "selected-patch", grey_image(&p));
        ui.image((tex.id(), Vec2::splat(128.0)));
    }
}

pub(super) fn detection_table(app: &mut App, ui: &mut egui::Ui) {
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
    let px = app
        .session
        .movie
        .as_ref()
        .and_then(|m| m.calibration.pixel_size_nm);
    // The header is the first row of the rows shown, so it stays in view as the list scrolls.
    egui::ScrollArea::vertical().show_rows(ui, row_h, rows.len() + 1, |ui, range| {
        let range = range.start..range.end.saturating_sub(1).min(rows.len());
        egui::Grid::new("det-rows")
            .num_columns(7)
            .striped(true)
            .show(ui, |ui| {
                let nm = if px.is_some() { "x, y (nm)" } else { "" };
                for h in [
                    "defect",
                    "x (px)",
                    "y (px)",
                    nm,
                    "peak p",
                    "area (px²)",
                    "class",
                ] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                for &i in &rows[range] {
                    let d = list[i];
                    let sel = app.selected == Some(i);
                    if ui.selectable_label(sel, format!("#{i}")).clicked() {
                        clicked = Some(i);
                    }
                    ui.label(format!("{:.1}", d.x));
                    ui.label(format!("{:.1}", d.y));
                    ui.label(px.map_or(String::new(), |p| {
                        format!("{:.3}, {:.3}", f64::from(d.x) * p, f64::from(d.y) * p)
                    }));
                    ui.label(format!("{:.2}", d.score));
                    ui.label(format!("{}", d.area));
                    let c = classified.then(|| app.session.class_of(i)).flatten();
                    match c {
                        Some(c) => {
                            ui.colored_label(colour(class_colour(c)), app.session.class_name(c))
                        }
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
