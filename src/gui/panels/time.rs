//! The time panel: tracks, concentration, diffusion and transitions.

use super::*;

pub(super) fn time_controls(app: &mut App, ui: &mut egui::Ui) {
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
            format!("{}: {}", a.class_name(df.class), a.diffusion_text(df)),
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
        app.session.settings.chain.analysis.coupling = Some((ca, cb));
        app.push(Command::Analyse);
    }
}

pub(super) fn time_plots(app: &mut App, ui: &mut egui::Ui) {
    match app.session.analysis.as_ref().map(|a| a.frames) {
        None => {
            ui.label("Run Classes first.");
            return;
        }
        Some(frames) if frames < 2 => {
            ui.label(
                "Concentration, tracks, diffusion and transitions follow defects through time: they need a movie of at least 2 frames.",
            );
            return;
        }
        Some(_) => {}
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
        // Full width each (the coupling figure has two plots of its own); the area scrolls.
        if let Some(fig) = app.figure(&ctx, "msd", |a| Some(figures::msd(a))) {
            figure_view::show(ui, "msd", fig, h, None);
        }
        if let Some(fig) = app.figure(&ctx, "coupling", figures::coupling) {
            figure_view::show(ui, "coupling", fig, h, None);
        }
        if let Some(fig) = app.figure(&ctx, "transitions", |a| Some(figures::transition_matrix(a)))
        {
            figure_view::show(ui, "transitions", fig, h, None);
        }
    });
}
