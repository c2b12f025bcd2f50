//! The export panel: figures, tables and the project.

use super::*;

pub(super) fn export_controls(app: &mut App, ui: &mut egui::Ui) {
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
    let absolute = std::path::absolute(&s.export_dir).unwrap_or_else(|_| s.export_dir.clone());
    ui.small(format!("Writes into {}", absolute.display()));
    ui.add(egui::Slider::new(&mut s.export_width_mm, 40.0..=300.0).text("PNG width (mm)"));
    ui.add(egui::Slider::new(&mut s.export_dpi, 72.0..=1200.0).text("PNG resolution (dpi)"));
    ui.small(format!(
        "Every figure's PNG is {:.0} px wide; SVGs stay vector. 85 mm = one journal column, 170 mm = two.",
        s.png_width_px()
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
    single_figures(app, ui);
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

/// A button per figure: each writes that figure (SVG and PNG) into the export folder.
fn single_figures(app: &mut App, ui: &mut egui::Ui) {
    let frame = app.frame;
    let mut wanted: Option<(String, crate::export::figure::Figure)> = None;
    if let Some(m) = app.session.movie.clone()
        && ui.button(format!("Annotated frame {frame}")).clicked()
    {
        let shown = app.shown().map(|s| (s.list.clone(), s.classified));
        let (list, classified) = shown.unwrap_or_default();
        let names = app
            .session
            .analysis
            .as_ref()
            .map_or_else(Vec::new, |a| a.class_names.clone());
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
            &names,
        );
        wanted = Some((format!("frame_{frame:04}"), fig));
    }
    if let Some(a) = app.session.analysis.clone() {
        // Listed without building: a figure is made only when its button is clicked.
        type Build = fn(&crate::analysis::DefectAnalysis) -> Option<crate::export::figure::Figure>;
        let items: [(&str, &str, bool, Build); 7] = [
            (
                "Dendrogram",
                "dendrogram",
                a.dendrogram.is_some(),
                figures::dendrogram,
            ),
            ("Class gallery", "class_gallery", true, |a| {
                Some(figures::class_gallery(a))
            }),
            ("Concentration vs time", "concentration", true, |a| {
                Some(figures::concentration(a))
            }),
            ("Mean squared displacement", "msd", true, |a| {
                Some(figures::msd(a))
            }),
            ("Transition matrix", "transition_matrix", true, |a| {
                Some(figures::transition_matrix(a))
            }),
            (
                "Coupling between classes",
                "coupling",
                a.coupling.is_some(),
                figures::coupling,
            ),
            ("Drift", "drift", true, |a| {
                Some(figures::drift(
                    "Drift between frames",
                    &a.drift,
                    a.pixel_size_nm,
                    a.frame_interval_s,
                ))
            }),
        ];
        for (label, name, available, build) in items {
            if available
                && ui
                    .button(label)
                    .on_hover_text(format!("{name}.svg and {name}.png"))
                    .clicked()
                && let Some(fig) = build(&a)
            {
                wanted = Some((name.to_string(), fig));
            }
        }
        if let Some(m) = app.session.movie.clone()
            && ui
                .button("Trajectories on frame 0")
                .on_hover_text("trajectories.svg and trajectories.png")
                .clicked()
        {
            let fig = figures::trajectories(&a, &m.frames[0], &app.session.analysed);
            wanted = Some(("trajectories".to_string(), fig));
        }
    }
    if let Some((name, fig)) = wanted {
        app.push(Command::ExportFigure(name, Box::new(fig)));
    }
}
