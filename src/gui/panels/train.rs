//! The training panel: the network, the loss, the run and its curves.

use super::*;

pub(super) fn train_controls(app: &mut App, ui: &mut egui::Ui) {
    let t = &mut app.session.settings.chain.train;
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
        loss_rows(ui, &mut t.loss);
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
        && let Err(e) = app
            .session
            .settings
            .chain
            .train
            .validate(m.width(), m.height())
    {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    run_button(app, ui, "Train", JobKind::Train, Command::Train);
    let total = app.session.settings.chain.train.iterations;
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

pub(super) fn train_view(app: &mut App, ui: &mut egui::Ui) {
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

/// The loss's grid rows: focal or cross-entropy, and its parameters.
fn loss_rows(ui: &mut egui::Ui, loss: &mut PixelLoss) {
    ui.label("Loss");
    ui.horizontal(|ui| {
        let focal = matches!(*loss, PixelLoss::Focal { .. });
        if ui.selectable_label(focal, "focal").clicked() && !focal {
            *loss = TrainConfig::default().loss;
        }
        if ui.selectable_label(!focal, "cross-entropy").clicked() && focal {
            *loss = PixelLoss::CrossEntropy { pos_weight: 1.0 };
        }
    });
    ui.end_row();
    match loss {
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
}
