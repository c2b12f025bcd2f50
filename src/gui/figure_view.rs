//! Draws a [`Figure`] (the same description the SVG/PNG export writes) with egui and egui_plot.

use crate::export::figure::{
    Colorbar, Corner, Figure, Gallery, Heatmap, PLAIN_MAGNITUDES, Panel, Plot, Rgb, Style,
    colormap, tick_label,
};
use crate::raster::Raster;
use egui::{Color32, ColorImage, TextureHandle, TextureOptions, Vec2};
use egui_plot::{
    AxisHints, GridInput, Legend, Line, LineStyle, PlotImage, PlotPoint, Points, VLine,
    uniform_grid_spacer,
};

pub fn colour(c: Rgb) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

/// A raster as a grey image, min–max scaled (NaN black), as the PNG exports draw it.
pub fn grey_image(r: &Raster) -> ColorImage {
    ColorImage::from_gray([r.width, r.height], &crate::export::grey_bytes(r))
}

pub fn texture(ctx: &egui::Context, name: &str, img: ColorImage) -> TextureHandle {
    ctx.load_texture(name, img, TextureOptions::NEAREST)
}

/// A figure with its images uploaded.
pub struct ShownFigure {
    pub figure: Figure,
    /// Per panel: the background or tile textures.
    textures: Vec<Vec<TextureHandle>>,
}

impl ShownFigure {
    pub fn new(ctx: &egui::Context, figure: Figure) -> Self {
        let textures = figure
            .panels
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Panel::Plot(pl) => pl
                    .background
                    .iter()
                    .map(|b| texture(ctx, &format!("fig-bg-{i}"), grey_image(&b.image)))
                    .collect(),
                Panel::Gallery(g) => g
                    .tiles
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let img = ColorImage::from_gray([t.image.width, t.image.height], &t.grey());
                        texture(ctx, &format!("fig-tile-{i}-{k}"), img)
                    })
                    .collect(),
                Panel::Heatmap(_) => Vec::new(),
            })
            .collect();
        ShownFigure { figure, textures }
    }
}

/// What the user did in a figure.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FigureResponse {
    /// A gallery tile was clicked: (panel, tile).
    pub clicked_tile: Option<(usize, usize)>,
}

/// Draw `shown` in a region `height` points tall. `cursor_x` draws a vertical line in every plot
/// (the current frame on time axes).
pub fn show(
    ui: &mut egui::Ui,
    id: &str,
    shown: &ShownFigure,
    height: f32,
    cursor_x: Option<f64>,
) -> FigureResponse {
    let f = &shown.figure;
    let mut resp = FigureResponse::default();
    ui.label(egui::RichText::new(&f.title).strong());
    let cols = f.columns.max(1);
    let rows = f.panels.len().div_ceil(cols).max(1);
    let spacing = ui.spacing().item_spacing;
    let w = (ui.available_width() - spacing.x * (cols - 1) as f32) / cols as f32;
    let h = (height - spacing.y * (rows - 1) as f32) / rows as f32;
    for (r, chunk) in f.panels.chunks(cols).enumerate() {
        ui.horizontal(|ui| {
            for (c, panel) in chunk.iter().enumerate() {
                let i = r * cols + c;
                let tex = &shown.textures[i];
                ui.allocate_ui(Vec2::new(w, h), |ui| {
                    ui.set_min_size(Vec2::new(w, h));
                    ui.vertical(|ui| match panel {
                        Panel::Plot(p) => plot(ui, &format!("{id}-{i}"), p, tex, cursor_x),
                        Panel::Gallery(g) => {
                            if let Some(t) = gallery(ui, &format!("{id}-{i}"), g, tex) {
                                resp.clicked_tile = Some((i, t));
                            }
                        }
                        Panel::Heatmap(hm) => heatmap(ui, hm),
                    });
                });
            }
        });
    }
    resp
}

fn plot(ui: &mut egui::Ui, id: &str, p: &Plot, tex: &[TextureHandle], cursor_x: Option<f64>) {
    if !p.title.is_empty() {
        ui.label(&p.title);
    }
    // Image coordinates: y grows downwards; plot −y and label the axis with +y.
    let sy = if p.y_down { -1.0 } else { 1.0 };
    // egui_plot's default grid steps by powers of 10 and labels the x axis only every 60
    // points, so a narrow plot of 0–9 showed one tick ("0") or none: steps of 1, 2 or 5
    // instead, labelled where they fit.
    let mut plot = egui_plot::Plot::new(id)
        .custom_x_axes(vec![
            AxisHints::new_x()
                .label(p.x_label.clone())
                .label_spacing(28.0..=48.0),
        ])
        .y_axis_label(p.y_label.clone())
        .x_grid_spacer(uniform_grid_spacer(nice_steps))
        .y_grid_spacer(uniform_grid_spacer(nice_steps))
        .allow_scroll(false);
    plot = if p.y_down {
        plot.data_aspect(1.0)
            .y_axis_formatter(|m, _| mark_label(-m.value, m.step_size))
    } else {
        plot.y_axis_formatter(|m, _| mark_label(m.value, m.step_size))
    };
    plot = plot.x_axis_formatter(|m, _| mark_label(m.value, m.step_size));
    if p.legend {
        let corner = match p.emptiest_corner() {
            Corner::TopLeft => egui_plot::Corner::LeftTop,
            Corner::TopRight => egui_plot::Corner::RightTop,
            Corner::BottomLeft => egui_plot::Corner::LeftBottom,
            Corner::BottomRight => egui_plot::Corner::RightBottom,
        };
        plot = plot.legend(Legend::default().position(corner));
    }
    if let Some((a, b)) = p.x_range {
        plot = plot.include_x(a).include_x(b);
    }
    if let Some((a, b)) = p.y_range {
        plot = plot.include_y(sy * a).include_y(sy * b);
    }
    plot.show(ui, |pu| {
        if let (Some(bg), Some(t)) = (&p.background, tex.first()) {
            let (x0, y0, x1, y1) = bg.extent;
            pu.image(PlotImage::new(
                "",
                t.id(),
                PlotPoint::new((x0 + x1) / 2.0, sy * (y0 + y1) / 2.0),
                Vec2::new((x1 - x0) as f32, (y1 - y0) as f32),
            ));
        }
        for s in &p.series {
            let pts: Vec<[f64; 2]> = s.points.iter().map(|q| [q[0], sy * q[1]]).collect();
            let col = colour(s.colour);
            let style = if s.dashed {
                LineStyle::dashed_loose()
            } else {
                LineStyle::Solid
            };
            // A non-finite value (a lag without data, say) is a gap: egui_plot cannot place it.
            let finite = |q: &[f64; 2]| q[0].is_finite() && q[1].is_finite();
            let drawn: Vec<[f64; 2]> = pts.iter().copied().filter(finite).collect();
            // A series drawn as several lines is named in the legend once.
            let legend = |k: usize| {
                if k == 0 {
                    s.name.clone()
                } else {
                    String::new()
                }
            };
            match s.style {
                Style::Line | Style::LineMarkers => {
                    let runs = pts.split(|q| !finite(q)).filter(|r| !r.is_empty());
                    for (k, run) in runs.enumerate() {
                        pu.line(Line::new(legend(k), run.to_vec()).color(col).style(style));
                    }
                    if s.style == Style::LineMarkers {
                        pu.points(Points::new("", drawn).color(col).radius(2.5));
                    }
                }
                Style::Markers => {
                    pu.points(Points::new(s.name.clone(), drawn).color(col).radius(3.0))
                }
                Style::Segments => {
                    let segments = pts.chunks_exact(2).filter(|seg| seg.iter().all(finite));
                    for (k, seg) in segments.enumerate() {
                        pu.line(Line::new(legend(k), seg.to_vec()).color(col).style(style));
                    }
                }
            }
            for (q, e) in pts.iter().zip(&s.y_errors) {
                if finite(q) && e.is_finite() && *e > 0.0 {
                    pu.line(
                        Line::new("", vec![[q[0], q[1] - e], [q[0], q[1] + e]])
                            .color(col)
                            .width(1.0),
                    );
                }
            }
        }
        if let Some(x) = cursor_x {
            pu.vline(VLine::new("current frame", x).color(Color32::RED));
        }
    });
}

/// Grid steps of 1, 2 or 5 × 10ⁿ: the smallest at least egui_plot's finest step, then two
/// coarser ones that it divides.
pub fn nice_steps(input: GridInput) -> [f64; 3] {
    let base = input.base_step_size.abs().max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(base.log10().floor());
    let (m, s) = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| (m, m * mag))
        .find(|&(_, s)| s >= base * (1.0 - 1e-9))
        .unwrap_or((10.0, 10.0 * mag));
    match m as u32 {
        2 => [s, 5.0 * s, 10.0 * s],
        5 => [s, 2.0 * s, 10.0 * s],
        _ => [s, 5.0 * s, 10.0 * s],
    }
}

/// A tick's text: as many decimals as its step needs (2.5 on a step of 0.5, where egui_plot's
/// own rounded it to "2"), scientific beyond 10⁵ or below 10⁻³.
pub fn mark_label(value: f64, step: f64) -> String {
    if !value.is_finite() {
        return String::new();
    }
    if value == 0.0 || !PLAIN_MAGNITUDES.contains(&value.abs()) {
        return tick_label(value);
    }
    let decimals = (-step.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{value:.decimals$}")
}

/// Returns the clicked tile.
fn gallery(ui: &mut egui::Ui, id: &str, g: &Gallery, tex: &[TextureHandle]) -> Option<usize> {
    if !g.title.is_empty() {
        ui.label(&g.title);
    }
    let cols = g.columns.max(1);
    let side = ((ui.available_width() / cols as f32) - 8.0).clamp(24.0, 160.0);
    let mut clicked = None;
    egui::ScrollArea::vertical().id_salt(id).show(ui, |ui| {
        egui::Grid::new(id).spacing([4.0, 4.0]).show(ui, |ui| {
            for (k, (t, h)) in g.tiles.iter().zip(tex).enumerate() {
                ui.vertical(|ui| {
                    let img =
                        egui::Image::new((h.id(), Vec2::splat(side))).sense(egui::Sense::click());
                    let r = ui.add(img);
                    if let Some(c) = t.frame {
                        ui.painter().rect_stroke(
                            r.rect,
                            0.0,
                            egui::Stroke::new(2.0, colour(c)),
                            egui::StrokeKind::Outside,
                        );
                    }
                    if r.clicked() {
                        clicked = Some(k);
                    }
                    ui.small(&t.caption);
                });
                if (k + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
        if let Some(c) = &g.colorbar {
            colorbar(ui, c);
        }
    });
    clicked
}

/// A grey scale from `c.lo` (black) to `c.hi` (white) with its values and label.
fn colorbar(ui: &mut egui::Ui, c: &Colorbar) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(180.0, 28.0), egui::Sense::hover());
    let bar = egui::Rect::from_min_size(rect.min, Vec2::new(rect.width(), 10.0));
    let greys: Vec<Color32> = (0..32u32)
        .map(|k| Color32::from_gray((255 * k / 31) as u8))
        .collect();
    let labels = [tick_label(c.lo), c.label.clone(), tick_label(c.hi)];
    let text = (egui::FontId::proportional(11.0), ui.visuals().text_color());
    paint_colour_bar(ui.painter(), bar, &greys, labels, false, text);
}

/// A colour bar: `colours` from left to right across `bar`, and the low end's value, what it
/// shows and the high end's value, above the bar or below it.
pub fn paint_colour_bar(
    painter: &egui::Painter,
    bar: egui::Rect,
    colours: &[Color32],
    labels: [String; 3],
    above: bool,
    (font, text): (egui::FontId, Color32),
) {
    let n = colours.len().max(1) as f32;
    for (k, &c) in colours.iter().enumerate() {
        let x = bar.min.x + bar.width() * k as f32 / n;
        painter.rect_filled(
            egui::Rect::from_min_size(
                egui::pos2(x, bar.min.y),
                Vec2::new(bar.width() / n + 0.5, bar.height()),
            ),
            0.0,
            c,
        );
    }
    let (y, v) = if above {
        (bar.min.y - 3.0, egui::Align::BOTTOM)
    } else {
        (bar.max.y + 1.0, egui::Align::TOP)
    };
    let [lo, what, hi] = labels;
    for (x, h, t) in [
        (bar.min.x, egui::Align::LEFT, lo),
        (bar.center().x, egui::Align::Center, what),
        (bar.max.x, egui::Align::RIGHT, hi),
    ] {
        painter.text(
            egui::pos2(x, y),
            egui::Align2([h, v]),
            t,
            font.clone(),
            text,
        );
    }
}

fn heatmap(ui: &mut egui::Ui, hm: &Heatmap) {
    if !hm.title.is_empty() {
        ui.label(&hm.title);
    }
    let rows = hm.values.len();
    let cols = hm.values.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        ui.label("(empty)");
        return;
    }
    let label_w = 70.0;
    let avail = ui.available_size();
    let cell = ((avail.x - label_w) / cols as f32)
        .min((avail.y - 60.0) / rows as f32)
        .clamp(12.0, 90.0);
    // Top: the x label, then the column labels; bottom: the y label.
    let (top, bottom) = (36.0, 20.0);
    let (rect, _) = ui.allocate_exact_size(
        Vec2::new(
            label_w + cell * cols as f32,
            top + bottom + cell * rows as f32,
        ),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let font = egui::FontId::proportional(12.0);
    let text_col = ui.visuals().text_color();
    let origin = rect.min + Vec2::new(label_w, top);
    painter.text(
        rect.min + Vec2::new(label_w + cell * cols as f32 / 2.0, 0.0),
        egui::Align2::CENTER_TOP,
        &hm.x_label,
        font.clone(),
        text_col,
    );
    for (j, l) in hm.col_labels.iter().enumerate() {
        painter.text(
            origin + Vec2::new((j as f32 + 0.5) * cell, -2.0),
            egui::Align2::CENTER_BOTTOM,
            l,
            font.clone(),
            text_col,
        );
    }
    for (i, row) in hm.values.iter().enumerate() {
        if let Some(l) = hm.row_labels.get(i) {
            painter.text(
                origin + Vec2::new(-4.0, (i as f32 + 0.5) * cell),
                egui::Align2::RIGHT_CENTER,
                l,
                font.clone(),
                text_col,
            );
        }
        for (j, &v) in row.iter().enumerate() {
            let r = egui::Rect::from_min_size(
                origin + Vec2::new(j as f32 * cell, i as f32 * cell),
                Vec2::splat(cell - 1.0),
            );
            let c = colormap(v);
            painter.rect_filled(r, 0.0, colour(c));
            if let Some(t) = hm.text.get(i).and_then(|r| r.get(j)) {
                let luminance = 0.3 * c[0] as f32 + 0.6 * c[1] as f32 + 0.1 * c[2] as f32;
                let tc = if luminance > 140.0 {
                    Color32::BLACK
                } else {
                    Color32::WHITE
                };
                // Shrink the text to fit its cell.
                let size = (1.7 * cell / t.chars().count().max(1) as f32).clamp(7.0, 13.0);
                painter.text(
                    r.center(),
                    egui::Align2::CENTER_CENTER,
                    t,
                    egui::FontId::proportional(size),
                    tc,
                );
            }
        }
    }
    painter.text(
        rect.left_bottom() + Vec2::new(0.0, -4.0),
        egui::Align2::LEFT_BOTTOM,
        &hm.y_label,
        font,
        text_col,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::figure::Series;

    /// Grid steps are 1, 2 or 5 × 10ⁿ, at least the finest step asked for, and nested.
    #[test]
    fn grid_steps_are_nice_and_nested() {
        for base in [0.003, 0.29, 1.0, 1.7, 4.2, 7.0, 33.0, 2.5e6] {
            let steps = nice_steps(GridInput {
                bounds: (0.0, 10.0),
                base_step_size: base,
            });
            assert!(steps[0] >= base * 0.999_999, "{base}: {steps:?}");
            assert!(steps[0] < 2.51 * base, "{base}: {steps:?}");
            let mantissa = steps[0] / 10f64.powf(steps[0].log10().floor());
            assert!(
                [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .any(|m| (mantissa - m).abs() < 1e-6),
                "{base}: {steps:?}"
            );
            for w in steps.windows(2) {
                let ratio = w[1] / w[0];
                assert!(
                    (ratio - ratio.round()).abs() < 1e-9 && ratio >= 2.0,
                    "{steps:?}"
                );
            }
        }
    }

    /// Tick labels keep the decimals their step needs.
    #[test]
    fn tick_labels_show_their_step() {
        assert_eq!(mark_label(2.5, 0.5), "2.5");
        assert_eq!(mark_label(2.0, 1.0), "2");
        assert_eq!(mark_label(0.05, 0.05), "0.05");
        assert_eq!(mark_label(150.0, 50.0), "150");
        assert_eq!(mark_label(0.0, 0.1), "0");
        assert_eq!(mark_label(3.0e6, 1.0e6), "3.0e6");
        assert_eq!(mark_label(2.0e-5, 1.0e-5), "2.0e-5");
    }

    /// NaN marks a gap in our figures (a lag without data, a frame without a class); the
    /// window draws around it instead of letting egui_plot panic on it.
    #[test]
    fn plots_with_gaps_draw() {
        let nan = f64::NAN;
        let points = vec![[0.0, 1.0], [1.0, nan], [2.0, 3.0], [nan, 4.0], [4.0, 5.0]];
        let series = [
            Style::Line,
            Style::LineMarkers,
            Style::Markers,
            Style::Segments,
        ]
        .into_iter()
        .map(|style| Series {
            y_errors: vec![0.5, 0.5, nan, 0.5, 0.5],
            ..Series::new(format!("{style:?}"), [200, 30, 30], style, points.clone())
        })
        .collect();
        let figure = Figure {
            title: "gaps".into(),
            width: 400.0,
            height: 300.0,
            columns: 1,
            panels: vec![Panel::Plot(Plot {
                series,
                legend: true,
                ..Plot::default()
            })],
        };
        let ctx = egui::Context::default();
        let mut output = ctx.run_ui(egui::RawInput::default(), |ui| {
            let shown = ShownFigure::new(ui.ctx(), figure.clone());
            show(ui, "gaps", &shown, 300.0, Some(2.0));
        });
        output.textures_delta.clear();
    }
}
