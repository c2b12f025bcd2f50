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
