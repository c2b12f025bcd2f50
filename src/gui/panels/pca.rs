//! The PCA panel: components of a class's patches and their significance.

use super::*;

/// The PCA panel's state: the class shown.
#[derive(Default)]
pub struct PcaPanel {
    class: usize,
}

pub(super) fn pca_controls(app: &mut App, ui: &mut egui::Ui) {
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
                &mut app.panels.pca.class,
                p.class,
                format!("{} ({})", a.class_name(p.class), p.members),
            );
        }
    });
    if let Some(p) = a.class_pca.iter().find(|p| p.class == app.panels.pca.class) {
        ui.label(p.significance.text(p.eigenvalues.len()));
    }
    ui.small("Hover a point of the scores to see its patch.");
}

pub(super) fn pca_view(app: &mut App, ui: &mut egui::Ui) {
    let (Some(a), Some(m)) = (app.session.analysis.clone(), app.session.movie.clone()) else {
        ui.label("Run Classes first.");
        return;
    };
    let Some(p) = a
        .class_pca
        .iter()
        .find(|p| p.class == app.panels.pca.class)
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
