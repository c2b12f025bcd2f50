//! The augmentation panel: the operations and a preview of training crops.

use super::*;

/// The augmentation preview and what it was made from.
struct AugmentPreview {
    key: (TrainConfig, u64, u64),
    tiles: Vec<egui::TextureHandle>,
    error: Option<String>,
}

/// The Augment panel's state: the preview shown.
#[derive(Default)]
pub struct AugmentPanel {
    preview: Option<AugmentPreview>,
}

pub(super) fn op_row(
    ui: &mut egui::Ui,
    name: &str,
    op: &mut Op,
    range: std::ops::RangeInclusive<f32>,
) {
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

pub(super) fn augment_controls(app: &mut App, ui: &mut egui::Ui) {
    let a = &mut app.session.settings.chain.train.augment;
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
        app.session.settings.chain.train.augment = Default::default();
    }
}

pub(super) fn augment_view(app: &mut App, ui: &mut egui::Ui) {
    let Some(m) = app.session.movie.clone() else {
        return;
    };
    if app.session.mask.is_empty() {
        ui.label("Label frame 0 first (Ground truth).");
        return;
    }
    let key = (
        app.session.settings.chain.train.clone(),
        app.session.settings.augment_preview_seed,
        app.session.mask_generation,
    );
    if app
        .panels
        .augment
        .preview
        .as_ref()
        .is_none_or(|p| p.key != key)
    {
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
        app.panels.augment.preview = Some(AugmentPreview { key, tiles, error });
    }
    let Some(p) = &app.panels.augment.preview else {
        return;
    };
    if let Some(e) = &p.error {
        ui.colored_label(Color32::LIGHT_RED, e);
        return;
    }
    ui.label(format!(
        "{} training crops of {} px as training draws them (red: mask outline)",
        p.tiles.len(),
        app.session.settings.chain.train.crop
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
