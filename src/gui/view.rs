//! The movie view: one frame with zoom and pan, contrast and colour map, a scale bar, the pixel
//! under the cursor, and overlay layers (training mask, probability map, defect markers,
//! trajectories, true positions) all drawn with one image→screen transform.

use super::figure_view::{colour, paint_colour_bar};
use crate::export::figure::{class_colour, colormap};
use crate::raster::Raster;
use egui::{Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Colormap {
    Grey,
    Viridis,
}

/// How frames and overlays are shown (persisted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Display {
    pub colormap: Colormap,
    /// Contrast from percentiles of the frame (true) or fixed limits.
    pub auto_contrast: bool,
    pub low_percentile: f32,
    pub high_percentile: f32,
    pub min: f32,
    pub max: f32,
    pub show_mask: bool,
    pub mask_opacity: f32,
    pub show_probability: bool,
    pub probability_opacity: f32,
    pub show_markers: bool,
    pub marker_radius: f32,
    pub show_tracks: bool,
    /// Frames of trajectory drawn behind each defect.
    pub tail_frames: usize,
    pub show_truth: bool,
    pub fps: f32,
}

impl Default for Display {
    fn default() -> Self {
        Display {
            colormap: Colormap::Grey,
            auto_contrast: true,
            low_percentile: 0.5,
            high_percentile: 99.5,
            min: 0.0,
            max: 1.0,
            show_mask: true,
            mask_opacity: 0.45,
            show_probability: false,
            probability_opacity: 0.6,
            show_markers: true,
            marker_radius: 6.0,
            show_tracks: true,
            tail_frames: 10,
            show_truth: false,
            fps: 5.0,
        }
    }
}

/// The contrast limits of `frame` under `d`.
pub fn limits(frame: &Raster, d: &Display) -> (f32, f32) {
    if !d.auto_contrast {
        return (d.min, d.max);
    }
    let mut v: Vec<f32> = frame
        .data
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let pick = |p: f32, v: &mut Vec<f32>| {
        let k = ((p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f32).round() as usize;
        crate::raster::nth_smallest(v, k)
    };
    let lo = pick(d.low_percentile, &mut v);
    let hi = pick(d.high_percentile, &mut v);
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

fn frame_image(frame: &Raster, lo: f32, hi: f32, cmap: Colormap) -> ColorImage {
    let span = hi - lo;
    let px = frame
        .data
        .iter()
        .map(|&v| {
            let t = if v.is_finite() {
                ((v - lo) / span).clamp(0.0, 1.0)
            } else {
                f32::NAN
            };
            match cmap {
                Colormap::Grey => {
                    let g = if t.is_nan() { 0 } else { (t * 255.0) as u8 };
                    Color32::from_gray(g)
                }
                Colormap::Viridis => colour(colormap(t as f64)),
            }
        })
        .collect();
    ColorImage::new([frame.width, frame.height], px)
}

/// What is drawn over the frame this time.
pub struct Overlays<'a> {
    /// Training mask (frame 0 only).
    pub mask: Option<&'a [bool]>,
    /// Probability map of this frame, × 255.
    pub probability: Option<&'a [u8]>,
    /// Markers: position and class.
    pub markers: Vec<([f32; 2], Option<usize>)>,
    /// Polylines (trajectory tails) with their class.
    pub tracks: Vec<(Vec<[f32; 2]>, Option<usize>)>,
    /// True defect positions (synthetic movies).
    pub truth: Vec<[f32; 2]>,
    pub selected: Option<[f32; 2]>,
}

/// What the user did in the view.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ViewResponse {
    /// Image coordinates of a click (no drag).
    pub clicked: Option<[f32; 2]>,
    /// Image coordinates being brushed (primary drag while painting).
    pub brushed: Option<[f32; 2]>,
    /// Image coordinates and value under the cursor.
    pub hover: Option<([f32; 2], f32)>,
}

/// Runtime state of the view: zoom, pan and cached textures.
#[derive(Default)]
pub struct MovieView {
    /// Image point at the centre of the view.
    centre: Option<Pos2>,
    /// Screen points per image pixel; `None` = fit the frame.
    zoom: Option<f32>,
    frames: HashMap<usize, (u64, TextureHandle)>,
    /// Contrast limits of the last frame asked for: (frame, display key) → limits. Percentiles
    /// cost a copy and a selection of the whole frame, so once per frame and setting.
    limits: Option<(LimitsKey, (f32, f32))>,
    mask: Option<(u64, TextureHandle)>,
    probability: Option<(usize, u64, TextureHandle)>,
    /// Where the last frame was drawn: the view's centre on screen, the image point there and
    /// the zoom.
    drawn: Option<(Pos2, Pos2, f32)>,
}

/// Bytes of frame textures kept for stepping back and forth (64 frames of 1024², 16 of 2048²).
const TEXTURE_CACHE_BYTES: usize = 256 << 20;

/// A frame and the display settings its contrast limits depend on.
type LimitsKey = (usize, [u32; 3]);

fn key(lo: f32, hi: f32, cmap: Colormap) -> u64 {
    (lo.to_bits() as u64) << 32 ^ hi.to_bits() as u64 ^ (cmap as u64) << 63
}

impl MovieView {
    /// Back to the whole frame, with nothing cached (a new movie).
    pub fn reset(&mut self) {
        self.centre = None;
        self.zoom = None;
        self.frames.clear();
        self.limits = None;
        self.mask = None;
        self.probability = None;
        self.drawn = None;
    }

    /// Where image point (x, y) was on screen in the last frame drawn.
    pub fn screen_of(&self, [x, y]: [f32; 2]) -> Option<Pos2> {
        self.drawn
            .map(|(at, centre, zoom)| at + (Pos2::new(x, y) - centre) * zoom)
    }

    /// [`limits`] of frame `index`, computed once per frame and display setting.
    pub fn limits(&mut self, index: usize, frame: &Raster, d: &Display) -> (f32, f32) {
        // In auto mode min/max are outputs (the panel copies the limits into them), not inputs.
        let key = if d.auto_contrast {
            (
                index,
                [1, d.low_percentile.to_bits(), d.high_percentile.to_bits()],
            )
        } else {
            (index, [0, d.min.to_bits(), d.max.to_bits()])
        };
        match self.limits {
            Some((k, l)) if k == key => l,
            _ => {
                let l = limits(frame, d);
                self.limits = Some((key, l));
                l
            }
        }
    }

    fn frame_texture(
        &mut self,
        ctx: &egui::Context,
        index: usize,
        frame: &Raster,
        d: &Display,
    ) -> TextureHandle {
        let (lo, hi) = self.limits(index, frame, d);
        let k = key(lo, hi, d.colormap);
        if let Some((kk, t)) = self.frames.get(&index)
            && *kk == k
        {
            return t.clone();
        }
        // RGBA, 4 bytes a pixel; at least two, so that stepping between two frames never
        // uploads again.
        let capacity = (TEXTURE_CACHE_BYTES / (frame.data.len() * 4).max(1)).max(2);
        if self.frames.len() >= capacity {
            self.frames.clear();
        }
        let t = ctx.load_texture(
            format!("frame-{index}"),
            frame_image(frame, lo, hi, d.colormap),
            TextureOptions::NEAREST,
        );
        self.frames.insert(index, (k, t.clone()));
        t
    }

    /// The probability map's texture (made when the frame or the map changed).
    fn probability_texture(
        &mut self,
        ctx: &egui::Context,
        index: usize,
        frame: &Raster,
        p: &[u8],
    ) -> Option<TextureHandle> {
        let k = p.as_ptr() as u64;
        let stale = self
            .probability
            .as_ref()
            .is_none_or(|(i, kk, _)| *i != index || *kk != k);
        if stale {
            let img = ColorImage::new(
                [frame.width, frame.height],
                p.iter()
                    .map(|&v| {
                        let c = colormap(v as f64 / 255.0);
                        Color32::from_rgba_unmultiplied(c[0], c[1], c[2], v)
                    })
                    .collect(),
            );
            let t = ctx.load_texture("probability", img, TextureOptions::NEAREST);
            self.probability = Some((index, k, t));
        }
        self.probability.as_ref().map(|(_, _, t)| t.clone())
    }

    /// The training mask's texture (made when `mask_version` changed); `None` for a mask that
    /// does not fit the frame.
    fn mask_texture(
        &mut self,
        ctx: &egui::Context,
        frame: &Raster,
        m: &[bool],
        mask_version: u64,
    ) -> Option<TextureHandle> {
        if m.len() != frame.width * frame.height {
            return None;
        }
        if self.mask.as_ref().is_none_or(|(v, _)| *v != mask_version) {
            let img = ColorImage::new(
                [frame.width, frame.height],
                mask_outline(m, frame.width, frame.height),
            );
            let t = ctx.load_texture("mask", img, TextureOptions::NEAREST);
            self.mask = Some((mask_version, t));
        }
        self.mask.as_ref().map(|(_, t)| t.clone())
    }

    /// Draw frame `index` with `overlays`, filling the available space. `brush` turns primary
    /// drags into painting instead of panning. `mask_version` changes whenever the mask does.
    #[allow(clippy::too_many_arguments)]
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        index: usize,
        frame: &Raster,
        pixel_size_nm: Option<f64>,
        d: &Display,
        overlays: &Overlays,
        mask_version: u64,
        brush: bool,
    ) -> ViewResponse {
        let ctx = ui.ctx().clone();
        let tex = self.frame_texture(&ctx, index, frame, d);
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        let (w, h) = (frame.width as f32, frame.height as f32);
        let fit = (rect.width() / w).min(rect.height() / h);
        let zoom = self.zoom.unwrap_or(fit);
        let mut centre = self.centre.unwrap_or(Pos2::new(w / 2.0, h / 2.0));
        let mut out = ViewResponse::default();

        // Zoom around the cursor; pan by dragging.
        if let Some(p) = response.hover_pos() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                let img = centre + (p - rect.center()) / zoom;
                let nz = (zoom * (scroll * 0.002).exp()).clamp(0.05, 64.0);
                centre = img - (p - rect.center()) / nz;
                self.zoom = Some(nz);
            }
        }
        let zoom = self.zoom.unwrap_or(fit);
        let painting = brush && response.dragged_by(egui::PointerButton::Primary);
        if response.dragged() && !painting {
            centre -= response.drag_delta() / zoom;
        }
        let image_from_screen = |p: Pos2| centre + (p - rect.center()) / zoom;
        if painting && let Some(p) = response.interact_pointer_pos() {
            let q = image_from_screen(p);
            out.brushed = Some([q.x, q.y]);
        }
        if response.clicked()
            && let Some(p) = response.interact_pointer_pos()
        {
            let q = image_from_screen(p);
            if brush {
                out.brushed = Some([q.x, q.y]);
            } else {
                out.clicked = Some([q.x, q.y]);
            }
        }
        if response.double_clicked() {
            self.zoom = None;
            self.centre = None;
        } else {
            self.centre = Some(centre);
        }
        self.drawn = Some((rect.center(), centre, zoom));
        let screen_from_image = |x: f32, y: f32| rect.center() + (Pos2::new(x, y) - centre) * zoom;
        let image_rect = Rect::from_min_max(
            screen_from_image(-0.5, -0.5),
            screen_from_image(w - 0.5, h - 0.5),
        );
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::from_gray(20));
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(tex.id(), image_rect, uv, Color32::WHITE);

        if let Some(p) = overlays.probability
            && let Some(t) = self.probability_texture(&ctx, index, frame, p)
        {
            let tint = Color32::from_white_alpha((d.probability_opacity * 255.0) as u8);
            painter.image(t.id(), image_rect, uv, tint);
        }
        if let Some(m) = overlays.mask
            && let Some(t) = self.mask_texture(&ctx, frame, m, mask_version)
        {
            let tint = Color32::from_white_alpha((d.mask_opacity * 255.0) as u8);
            painter.image(t.id(), image_rect, uv, tint);
        }
        let class_col =
            |c: Option<usize>| c.map_or(Color32::from_gray(200), |c| colour(class_colour(c)));
        for (line, c) in &overlays.tracks {
            let pts: Vec<Pos2> = line.iter().map(|p| screen_from_image(p[0], p[1])).collect();
            painter.add(egui::Shape::line(pts, Stroke::new(1.5, class_col(*c))));
        }
        let r = d.marker_radius;
        // One mesh for all markers: 10⁴ anti-aliased circle strokes take ~40 ms to tessellate,
        // this ~1 ms.
        let mut rings = egui::Mesh::default();
        let shown: Vec<(Pos2, Color32)> = overlays
            .markers
            .iter()
            .map(|(p, c)| (screen_from_image(p[0], p[1]), class_col(*c)))
            .filter(|(s, _)| rect.expand(r).contains(*s))
            .collect();
        rings.reserve_vertices(shown.len() * 2 * RING_SEGMENTS);
        rings.reserve_triangles(shown.len() * 2 * RING_SEGMENTS);
        let directions: Vec<Vec2> = (0..RING_SEGMENTS)
            .map(|k| Vec2::angled(k as f32 / RING_SEGMENTS as f32 * std::f32::consts::TAU))
            .collect();
        for (s, c) in shown {
            ring(&mut rings, &directions, s, r, 2.0, c);
        }
        painter.add(egui::Shape::mesh(rings));
        for p in &overlays.truth {
            let s = screen_from_image(p[0], p[1]);
            let k = r * 0.6;
            let st = Stroke::new(1.5, Color32::from_rgb(80, 255, 80));
            painter.line_segment([s - Vec2::new(k, 0.0), s + Vec2::new(k, 0.0)], st);
            painter.line_segment([s - Vec2::new(0.0, k), s + Vec2::new(0.0, k)], st);
        }
        if let Some(p) = overlays.selected {
            let s = screen_from_image(p[0], p[1]);
            painter.circle_stroke(s, r + 4.0, Stroke::new(2.5, Color32::YELLOW));
        }

        if let Some(p) = response.hover_pos() {
            let q = image_from_screen(p);
            let (x, y) = (q.x.round(), q.y.round());
            if x >= 0.0 && y >= 0.0 && x < w && y < h {
                out.hover = Some(([q.x, q.y], frame.get(x as usize, y as usize)));
            }
        }
        scale_bar(&painter, rect, zoom, pixel_size_nm);
        let (lo, hi) = self.limits(index, frame, d);
        colour_bar(&painter, rect, lo, hi, d.colormap);
        out
    }
}

/// A ring of radius `r` (centre line) and `width` as 16 quads, appended to `mesh`.
/// Segments of a marker ring.
const RING_SEGMENTS: usize = 16;

/// A ring of `width` around `centre` as triangles, through the unit `directions` (one per
/// segment, computed once per frame).
fn ring(
    mesh: &mut egui::Mesh,
    directions: &[Vec2],
    centre: Pos2,
    r: f32,
    width: f32,
    colour: Color32,
) {
    let base = mesh.vertices.len() as u32;
    let (inner, outer) = (r - width / 2.0, r + width / 2.0);
    for &dir in directions {
        mesh.colored_vertex(centre + dir * inner, colour);
        mesh.colored_vertex(centre + dir * outer, colour);
    }
    let n = directions.len() as u32;
    for k in 0..n {
        let (i0, o0) = (base + 2 * k, base + 2 * k + 1);
        let next = (k + 1) % n;
        let (i1, o1) = (base + 2 * next, base + 2 * next + 1);
        mesh.add_triangle(i0, o0, o1);
        mesh.add_triangle(i0, o1, i1);
    }
}

/// A bar of a round length (in nm when calibrated, px otherwise) at the bottom left.
fn scale_bar(painter: &egui::Painter, rect: Rect, zoom: f32, pixel_size_nm: Option<f64>) {
    let (unit, per_px) = match pixel_size_nm {
        Some(p) => ("nm", p),
        None => ("px", 1.0),
    };
    // About a fifth of the view, rounded to 1, 2 or 5 × 10^k.
    let target = (rect.width() / 5.0 / zoom) as f64 * per_px;
    if !(target.is_finite() && target > 0.0) {
        return;
    }
    let mag = 10f64.powf(target.log10().floor());
    let len = [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&l| l <= target)
        .unwrap_or(mag);
    let bar = (len / per_px) as f32 * zoom;
    let base = rect.left_bottom() + Vec2::new(16.0, -16.0);
    painter.rect_filled(
        Rect::from_min_max(
            base + Vec2::new(-6.0, -26.0),
            base + Vec2::new(bar + 6.0, 6.0),
        ),
        3.0,
        Color32::from_black_alpha(150),
    );
    painter.line_segment(
        [base, base + Vec2::new(bar, 0.0)],
        Stroke::new(4.0, Color32::WHITE),
    );
    painter.text(
        base + Vec2::new(bar / 2.0, -6.0),
        egui::Align2::CENTER_BOTTOM,
        format!("{len} {unit}"),
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );
}

/// The frame's colour scale at the bottom right: the colours from the low to the high contrast
/// limit, with both values (in the movie's own intensity unit).
fn colour_bar(painter: &egui::Painter, rect: Rect, lo: f32, hi: f32, cmap: Colormap) {
    let (w, h) = (140.0, 10.0);
    let base = rect.right_bottom() + Vec2::new(-16.0 - w, -22.0);
    painter.rect_filled(
        Rect::from_min_max(
            base + Vec2::new(-8.0, -22.0),
            base + Vec2::new(w + 8.0, h + 6.0),
        ),
        3.0,
        Color32::from_black_alpha(150),
    );
    let steps = 32;
    let strip = frame_image(
        &Raster {
            width: steps,
            height: 1,
            data: (0..steps)
                .map(|i| lo + (hi - lo) * i as f32 / (steps - 1) as f32)
                .collect(),
        },
        lo,
        hi,
        cmap,
    );
    let label = |v: f32| crate::export::figure::tick_label(f64::from(v));
    paint_colour_bar(
        painter,
        Rect::from_min_size(base, Vec2::new(w, h)),
        &strip.pixels,
        [label(lo), "intensity".into(), label(hi)],
        true,
        (egui::FontId::proportional(12.0), Color32::WHITE),
    );
}

/// The training mask drawn as outlines over a faint fill, so that the columns under it stay
/// visible and it does not look like detection markers.
fn mask_outline(m: &[bool], w: usize, h: usize) -> Vec<Color32> {
    let on = |x: isize, y: isize| {
        x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && m[y as usize * w + x as usize]
    };
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            if !m[i] {
                Color32::TRANSPARENT
            } else if [(-1, 0), (1, 0), (0, -1), (0, 1)]
                .iter()
                .all(|(dx, dy)| on(x + dx, y + dy))
            {
                Color32::from_rgba_unmultiplied(255, 60, 40, 40)
            } else {
                Color32::from_rgb(255, 60, 40)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_is_drawn_as_an_outline() {
        let (w, h) = (9, 9);
        let m: Vec<bool> = (0..w * h)
            .map(|i| (2..7).contains(&(i % w)) && (2..7).contains(&(i / w)))
            .collect();
        let px = mask_outline(&m, w, h);
        let solid = px.iter().filter(|c| c.a() == 255).count();
        let faint = px.iter().filter(|c| c.a() > 0 && c.a() < 255).count();
        assert_eq!((solid, faint), (16, 9));
    }

    #[test]
    fn contrast_limits_follow_percentiles_and_ignore_nan() {
        let mut data: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        data.push(f32::NAN);
        data.push(f32::INFINITY);
        let f = Raster {
            width: data.len(),
            height: 1,
            data,
        };
        let mut d = Display {
            low_percentile: 10.0,
            high_percentile: 90.0,
            ..Display::default()
        };
        assert_eq!(limits(&f, &d), (10.0, 90.0));
        d.auto_contrast = false;
        d.min = -1.0;
        d.max = 3.0;
        assert_eq!(limits(&f, &d), (-1.0, 3.0));
        // A constant frame still gets a usable range.
        d.auto_contrast = true;
        let flat = Raster::zeros(4, 4);
        let (lo, hi) = limits(&flat, &d);
        assert!(hi > lo);
    }
}
