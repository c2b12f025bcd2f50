//! Widgets more than one panel uses.

use super::App;
use crate::session::{Command, JobKind};
use egui::Color32;
use egui_plot::{Bar, BarChart, Plot, VLine};

pub(super) fn run_button(
    app: &mut App,
    ui: &mut egui::Ui,
    label: &str,
    kind: JobKind,
    cmd: Command,
) {
    let blocked = app.session.blocker(kind);
    ui.horizontal(|ui| {
        let running = app.session.running(kind);
        let button = ui.add_enabled(
            !app.session.busy() && blocked.is_none(),
            egui::Button::new(label),
        );
        if let Some(why) = blocked {
            button.on_disabled_hover_text(why);
        } else if button.clicked() {
            app.push(cmd);
        }
        if running && ui.button("Cancel").clicked() {
            app.push(Command::Cancel);
        }
        if let Some((_, s)) = app
            .session
            .last_job_seconds
            .iter()
            .find(|(k, _)| *k == kind)
        {
            ui.small(format!("last: {s:.1} s"));
        }
    });
    if let Some(why) = blocked {
        ui.small(why);
    }
}

/// A histogram of `values` with vertical lines at `marks`; returns the x of a drag in the plot.
pub(super) fn histogram_plot(
    ui: &mut egui::Ui,
    id: &str,
    values: &[f32],
    bins: usize,
    marks: &[f64],
    height: f32,
    x_label: &str,
) -> Option<f64> {
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if finite.is_empty() || hi <= lo {
        ui.label("(no histogram: constant values)");
        return None;
    }
    let width = (hi - lo) / bins as f32;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            Bar::new(
                (lo + (i as f32 + 0.5) * width) as f64,
                (c as f64 + 1.0).log10(),
            )
            .width(width as f64)
        })
        .collect();
    let r = Plot::new(id)
        .height(height)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label(x_label)
        .y_axis_label("log₁₀(1 + count)")
        .show(ui, |pu| {
            pu.bar_chart(BarChart::new("", bars).color(Color32::from_gray(150)));
            for &m in marks {
                pu.vline(VLine::new("", m).color(Color32::RED));
            }
            pu.pointer_coordinate()
        });
    let dragging = r.response.dragged() || r.response.clicked();
    r.inner.filter(|_| dragging).map(|p| p.x)
}

/// A row of coloured dots with labels (class colour index, label); returns the entry clicked.
pub(super) fn legend(ui: &mut egui::Ui, title: &str, entries: &[(usize, String)]) -> Option<usize> {
    let mut clicked = None;
    ui.horizontal_wrapped(|ui| {
        ui.label(title);
        for (i, (c, label)) in entries.iter().enumerate() {
            let colour = super::figure_view::colour(crate::export::figure::class_colour(*c));
            let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().circle_filled(dot.center(), 4.5, colour);
            if ui.selectable_label(false, label).clicked() {
                clicked = Some(i);
            }
        }
    });
    clicked
}
