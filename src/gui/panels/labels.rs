//! The frame-0 labelling panel (Ground truth): the method, thresholds, the lattice and the mask.

use super::*;

pub(super) fn truth_controls(app: &mut App, ui: &mut egui::Ui) {
    let mut method = app.session.settings.chain.label.clone();
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
    if method != app.session.settings.chain.label && method.validate().is_ok() {
        app.session.settings.chain.label = method;
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

pub(super) fn truth_side(app: &mut App, ui: &mut egui::Ui) {
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
    let (reciprocal, half) = spectrum_view(app);
    if let Some((_, t)) = &app.fft {
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), egui::Sense::hover());
        let uv = egui::Rect::from_min_max(
            egui::pos2(0.5 - half, 0.5 - half),
            egui::pos2(0.5 + half, 0.5 + half),
        );
        let painter = ui.painter_at(rect);
        painter.image(t.id(), rect, uv, Color32::WHITE);
        // Screen points per cycle/px.
        let scale = side / (2.0 * half);
        if let LabelMethod::FftResidual {
            cutoff_cycles_per_px,
            ..
        } = app.session.settings.chain.label
        {
            painter.circle_stroke(
                rect.center(),
                cutoff_cycles_per_px * scale,
                egui::Stroke::new(1.5, Color32::from_rgb(255, 80, 60)),
            );
            ui.small(format!(
                "Red circle: the low frequencies removed (cut-off). Shown: ±{half:.3} cycles/px."
            ));
        } else if let Some((b1, b2)) = reciprocal {
            // Bragg positions of the fitted lattice: the reciprocal vectors.
            {
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
                ui.small(format!(
                    "Blue rings: first-order Bragg peaks of the fitted lattice. Shown: ±{half:.3} cycles/px."
                ));
            }
        }
    }
    ui.separator();
    let mut method = app.session.settings.chain.label.clone();
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
            let names = site_names(l);
            let used: Vec<String> = l
                .site_thresholds
                .iter()
                .zip(&names)
                .map(|((lo, hi), name)| format!("{name}: below −{lo:.1}, above {hi:.1}"))
                .collect();
            ui.small(format!("thresholds used: {}", used.join("; ")));
            if let Some(fit) = &l.lattice {
                let sites: Vec<String> = names
                    .iter()
                    .zip(&fit.site_heights)
                    .map(|(name, h)| format!("{name} (height {h:.2})"))
                    .collect();
                ui.small(format!("lattice sites: {}", sites.join(", ")));
            }
        }
        _ => {}
    }
    if method != app.session.settings.chain.label && method.validate().is_ok() {
        app.session.settings.chain.label = method;
        app.push(Command::Label);
    }
}

/// The fitted lattice's reciprocal vectors (cycles/px) and half the width of the spectrum to
/// show: out to past the second-order Bragg peaks when the lattice is known, to a few times the
/// cut-off for the FFT method.
type Reciprocal = Option<([f32; 2], [f32; 2])>;

fn spectrum_view(app: &App) -> (Reciprocal, f32) {
    let reciprocal = app
        .session
        .labels
        .as_ref()
        .and_then(|l| l.lattice.as_ref())
        .and_then(|fit| {
            let (a1, a2) = (fit.a1, fit.a2);
            let det = a1[0] * a2[1] - a1[1] * a2[0];
            (det.abs() > 1e-6).then(|| ([a2[1] / det, -a2[0] / det], [-a1[1] / det, a1[0] / det]))
        });
    let half: f32 = match (&app.session.settings.chain.label, reciprocal) {
        (
            LabelMethod::FftResidual {
                cutoff_cycles_per_px,
                ..
            },
            _,
        ) => (4.0 * cutoff_cycles_per_px).clamp(0.05, 0.5),
        (_, Some((b1, b2))) => {
            let q = [b1, b2, [b1[0] - b2[0], b1[1] - b2[1]]]
                .iter()
                .map(|v| v[0].hypot(v[1]))
                .fold(0.0f32, f32::max);
            (2.3 * q).clamp(0.02, 0.5)
        }
        _ => 0.25,
    };
    (reciprocal, half)
}

/// Each basis site's name: "site i" and what it is (metal or chalcogen of a TMD, as the site
/// model reads the lattice; "column" otherwise).
fn site_names(l: &Labels) -> Vec<String> {
    let roles = l
        .lattice
        .as_ref()
        .map_or_else(Vec::new, crate::sites::roles_of);
    (0..l.site_thresholds.len())
        .map(|i| match roles.get(i) {
            Some(r) => format!("site {i} {}", crate::sites::output::role_name(*r)),
            None => format!("site {i}"),
        })
        .collect()
}
