//! Extended regions in the Detection panel: blobs larger than a point defect's (pores,
//! damaged areas) with their area, perimeter and growth.

use crate::detect::{Region, RegionTrack};
use crate::gui::App;
use egui::RichText;

/// The regions of the frame shown, and the growth of each region followed through frames.
pub fn section(app: &mut App, ui: &mut egui::Ui) {
    let Some(d) = app.session.detected.clone() else {
        return;
    };
    if d.regions.is_empty() {
        return;
    }
    ui.separator();
    ui.label(RichText::new("Extended regions").strong()).on_hover_text(
        "Blobs larger than 8 label disks: pores, holes, damaged or amorphous patches. Kept as regions, not as point defects.",
    );
    table(app, ui, "regions", &d.regions, &d.region_tracks);
    ui.small(format!(
        "{} regions in {} frames; regions.csv and region_growth.csv in the analyze results",
        d.region_tracks.len(),
        d.regions.iter().map(|r| r.frame).max().map_or(0, |m| m + 1)
    ));
}

/// One row per region track present in the frame shown: where, area, perimeter, growth.
pub fn table(app: &App, ui: &mut egui::Ui, id: &str, regions: &[Region], tracks: &[RegionTrack]) {
    let calibration = app.session.movie.as_ref().map(|m| m.calibration);
    let px = calibration.as_ref().and_then(|c| c.pixel_size_nm);
    let dt = calibration.as_ref().and_then(|c| c.frame_interval_s);
    let f = app.frame;
    egui::Grid::new(id)
        .num_columns(4)
        .striped(true)
        .show(ui, |ui| {
            for h in ["region", "area", "perimeter", "growth"] {
                ui.label(RichText::new(h).strong());
            }
            ui.end_row();
            for (k, t) in tracks.iter().enumerate() {
                let Some(&i) = t.members.iter().find(|&&i| regions[i].frame == f) else {
                    continue;
                };
                let r = &regions[i];
                ui.label(format!("{k} ({:.0}, {:.0})", r.x, r.y));
                match px {
                    Some(p) => {
                        ui.label(format!("{:.2} nm²", r.area_px as f64 * p * p));
                        ui.label(format!("{:.2} nm", r.perimeter_px as f64 * p));
                    }
                    None => {
                        ui.label(format!("{} px²", r.area_px));
                        ui.label(format!("{:.0} px", r.perimeter_px));
                    }
                }
                ui.label(t.growth_text(px, dt));
                ui.end_row();
            }
        });
}
