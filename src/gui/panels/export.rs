//! The export panel: figures, tables and the project, with a preview of a figure's PNG as the
//! export writes it.

use super::*;
use crate::error::Error;
use crate::export::figure::Figure;

/// The export panel's state: the figure previewed.
#[derive(Default)]
pub struct ExportPanel {
    preview: Option<Preview>,
}

/// A figure's PNG, rendered as the export writes it.
struct Preview {
    name: String,
    texture: egui::TextureHandle,
    size: [usize; 2],
}

/// What a figure's row asked for.
#[derive(Clone, Copy, PartialEq)]
enum Wanted {
    Preview,
    Write,
}

/// One row per figure: the figure's name exports it, Preview shows its PNG first.
fn figure_row(ui: &mut egui::Ui, label: &str, file: &str) -> Option<Wanted> {
    let mut wanted = None;
    ui.horizontal(|ui| {
        if ui
            .button(label)
            .on_hover_text(format!("Write {file}.svg and {file}.png"))
            .clicked()
        {
            wanted = Some(Wanted::Write);
        }
        if ui
            .small_button("Preview")
            .on_hover_text(format!("Show {file}.png as it will be written"))
            .clicked()
        {
            wanted = Some(Wanted::Preview);
        }
    });
    wanted
}

/// The previewed figure, scaled to fit, or the movie without one.
pub(super) fn export_view(app: &mut App, ui: &mut egui::Ui) {
    let Some(p) = &app.panels.export.preview else {
        movie_view(app, ui);
        return;
    };
    let mut close = false;
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Preview of {}.png", p.name)).strong());
        ui.label(format!("{} × {} px, as written", p.size[0], p.size[1]));
        close = ui.button("Close preview").clicked();
    });
    let avail = ui.available_size();
    let (w, h) = (p.size[0] as f32, p.size[1] as f32);
    let k = (avail.x / w).min(avail.y / h).min(1.0);
    ui.image((p.texture.id(), egui::Vec2::new(w * k, h * k)));
    if close {
        app.panels.export.preview = None;
    }
}

impl ExportPanel {
    /// Render `fig` as the export's PNG, `width_px` wide, and keep it for the preview.
    fn preview(
        &mut self,
        ctx: &egui::Context,
        width_px: f64,
        name: String,
        fig: &Figure,
    ) -> crate::error::Result<()> {
        let png = fig.to_png(width_px / fig.width.max(1.0))?;
        let decoded = image::load_from_memory(&png)
            .map_err(|e| Error::invalid(format!("preview of {name}: {e}")))?;
        let size = [decoded.width() as usize, decoded.height() as usize];
        // Shown within the GPU's largest texture (the caption keeps the written size).
        let side = ctx.input(|i| i.max_texture_side).max(64) as u32;
        let rgba = if decoded.width() > side || decoded.height() > side {
            decoded.thumbnail(side, side).to_rgba8()
        } else {
            decoded.to_rgba8()
        };
        let shown = [rgba.width() as usize, rgba.height() as usize];
        let image = egui::ColorImage::from_rgba_unmultiplied(shown, rgba.as_raw());
        let texture = ctx.load_texture("export-preview", image, egui::TextureOptions::LINEAR);
        self.preview = Some(Preview {
            name,
            texture,
            size,
        });
        Ok(())
    }

    /// Preview the concentration figure (screenshots show the panel with it).
    pub fn preview_example(&mut self, ctx: &egui::Context, session: &crate::session::Session) {
        if let Some(a) = &session.analysis {
            let width = session.settings.png_width_px();
            let fig = figures::concentration(a);
            // A screenshot without the preview still shows the panel.
            let _ = self.preview(ctx, width, "concentration".into(), &fig);
        }
    }
}

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
    ui.small("A figure's name writes it (SVG and PNG); Preview shows the PNG first.");
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

/// A row per figure: Preview shows its PNG, Export writes it (SVG and PNG) into the export
/// folder.
fn single_figures(app: &mut App, ui: &mut egui::Ui) {
    let frame = app.frame;
    let mut wanted: Option<(String, Figure, Wanted)> = None;
    if let Some(m) = app.session.movie.clone()
        && let Some(w) = figure_row(
            ui,
            &format!("Annotated frame {frame}"),
            &format!("frame_{frame:04}"),
        )
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
        wanted = Some((format!("frame_{frame:04}"), fig, w));
    }
    if let Some(a) = app.session.analysis.clone() {
        // Listed without building: a figure is made only when its button is clicked.
        type Build = fn(&crate::analysis::DefectAnalysis) -> Option<Figure>;
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
                && let Some(w) = figure_row(ui, label, name)
                && let Some(fig) = build(&a)
            {
                wanted = Some((name.to_string(), fig, w));
            }
        }
        if let Some(m) = app.session.movie.clone()
            && let Some(w) = figure_row(ui, "Trajectories on frame 0", "trajectories")
        {
            let fig = figures::trajectories(&a, &m.frames[0], &app.session.analysed);
            wanted = Some(("trajectories".to_string(), fig, w));
        }
    }
    match wanted {
        Some((name, fig, Wanted::Write)) => app.push(Command::ExportFigure(name, Box::new(fig))),
        Some((name, fig, Wanted::Preview)) => {
            let width = app.session.settings.png_width_px();
            if let Err(e) = app.panels.export.preview(ui.ctx(), width, name, &fig) {
                app.session.notify(Level::Warning, e.to_string());
            }
        }
        None => {}
    }
}
