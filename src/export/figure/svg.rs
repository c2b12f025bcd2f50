//! The SVG of a [`Figure`]: plots with their axes and legends, galleries with their colour
//! bars, heat maps; and its rasterisation to PNG.

use super::*;
use std::fmt::Write;

const FONT: &str = "font-family=\"sans-serif\"";

impl Figure {
    /// The figure as a standalone SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut s = String::new();
        let (w, h) = (self.width, self.height);
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
        );
        let title_h = if self.title.is_empty() { 0.0 } else { 28.0 };
        if title_h > 0.0 {
            text(&mut s, w / 2.0, 19.0, 15.0, "middle", &self.title, None);
        }
        let cols = self.columns.max(1);
        let rows = self.panels.len().div_ceil(cols).max(1);
        let (pw, ph) = (w / cols as f64, (h - title_h) / rows as f64);
        for (i, p) in self.panels.iter().enumerate() {
            let area = Area {
                x: (i % cols) as f64 * pw,
                y: title_h + (i / cols) as f64 * ph,
                w: pw,
                h: ph,
            };
            match p {
                Panel::Plot(p) => plot_svg(&mut s, p, area)?,
                Panel::Gallery(g) => gallery_svg(&mut s, g, area)?,
                Panel::Heatmap(m) => heatmap_svg(&mut s, m, area),
            }
        }
        s.push_str("</svg>\n");
        Ok(s)
    }

    /// The figure rasterised at `scale` × its CSS size (2 ≈ 192 dpi), PNG-encoded.
    pub fn to_png(&self, scale: f64) -> Result<Vec<u8>> {
        svg_to_png(&self.to_svg()?, scale)
    }
}

/// Rasterise SVG text with the bundled font.
pub fn svg_to_png(svg: &str, scale: f64) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    {
        let db = opt.fontdb_mut();
        db.load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first().map(|(name, _)| name.clone()));
        if let Some(family) = family {
            db.set_sans_serif_family(family);
        }
    }
    let tree = usvg::Tree::from_str(svg, &opt)
        .map_err(|e| Error::invalid(format!("figure: invalid SVG: {e}")))?;
    let size = tree.size();
    let (w, h) = (
        (size.width() as f64 * scale).ceil() as u32,
        (size.height() as f64 * scale).ceil() as u32,
    );
    let mut pixmap = tiny_skia::Pixmap::new(w.max(1), h.max(1))
        .ok_or_else(|| Error::invalid(format!("figure: cannot allocate {w}x{h} px")))?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale as f32, scale as f32),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| Error::invalid(format!("figure: PNG encoding failed: {e}")))
}

#[derive(Debug, Clone, Copy)]
struct Area {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn rgb(c: Rgb) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

fn text(s: &mut String, x: f64, y: f64, size: f64, anchor: &str, t: &str, rotate: Option<f64>) {
    let rot = rotate.map_or(String::new(), |a| {
        format!(" transform=\"rotate({a} {x:.1} {y:.1})\"")
    });
    let _ = writeln!(
        s,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" {FONT} text-anchor=\"{anchor}\"{rot}>{}</text>",
        crate::export::xml_escape(t)
    );
}

/// "Nice" tick positions covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&st| st >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|&v| v <= hi + 1e-9 * step)
        .take(50)
        .collect()
}

/// Magnitudes written out in full on axes; others in scientific notation.
pub const PLAIN_MAGNITUDES: std::ops::Range<f64> = 1e-3..1e5;

pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !PLAIN_MAGNITUDES.contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v.fract()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// Grey PNG of `grey` levels (`width`×`height`) as a data URL.
fn image_data_url(width: usize, height: usize, grey: Vec<u8>) -> Result<String> {
    let rgb = grey.into_iter().flat_map(|g| [g, g, g]).collect();
    Ok(format!(
        "data:image/png;base64,{}",
        base64(&crate::export::png_rgb(width, height, rgb)?)
    ))
}

pub(super) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `grey` levels of a `width`×`height` image drawn at (x, y), `w`×`h`.
fn image_svg(
    s: &mut String,
    (width, height, grey): (usize, usize, Vec<u8>),
    at: Area,
) -> Result<()> {
    let Area { x, y, w, h } = at;
    let _ = writeln!(
        s,
        "<image x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"{}\"/>",
        image_data_url(width, height, grey)?
    );
    Ok(())
}

fn data_range(p: &Plot) -> ((f64, f64), (f64, f64)) {
    let mut xr = (f64::INFINITY, f64::NEG_INFINITY);
    let mut yr = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &p.series {
        for (i, pt) in s.points.iter().enumerate() {
            if !(pt[0].is_finite() && pt[1].is_finite()) {
                continue;
            }
            let e = s.y_errors.get(i).copied().unwrap_or(0.0).abs();
            xr = (xr.0.min(pt[0]), xr.1.max(pt[0]));
            yr = (yr.0.min(pt[1] - e), yr.1.max(pt[1] + e));
        }
    }
    if let Some(b) = &p.background {
        xr = (xr.0.min(b.extent.0), xr.1.max(b.extent.2));
        yr = (yr.0.min(b.extent.1), yr.1.max(b.extent.3));
    }
    let fix = |r: (f64, f64)| {
        if !r.0.is_finite() {
            (0.0, 1.0)
        } else if r.1 - r.0 < 1e-12 {
            (r.0 - 0.5, r.1 + 0.5)
        } else {
            r
        }
    };
    (p.x_range.unwrap_or(fix(xr)), p.y_range.unwrap_or(fix(yr)))
}

/// A plot's data area on the page and the data range it shows.
struct PlotFrame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    x: (f64, f64),
    y: (f64, f64),
    y_down: bool,
}

impl PlotFrame {
    fn mx(&self, v: f64) -> f64 {
        self.x0 + (v - self.x.0) / (self.x.1 - self.x.0) * self.w
    }

    fn my(&self, v: f64) -> f64 {
        let t = (v - self.y.0) / (self.y.1 - self.y.0);
        if self.y_down {
            self.y0 + t * self.h
        } else {
            self.y0 + self.h - t * self.h
        }
    }
}

fn plot_svg(s: &mut String, p: &Plot, a: Area) -> Result<()> {
    let (ml, mr, mb) = (62.0, 14.0, 44.0);
    // The legend sits in rows between the title and the frame, never over the data.
    let legend = if p.legend {
        legend_rows(p, a.w - ml - mr)
    } else {
        Vec::new()
    };
    let mt = 26.0 + LEGEND_ROW * legend.len() as f64;
    let (x, y) = data_range(p);
    let f = PlotFrame {
        x0: a.x + ml,
        y0: a.y + mt,
        w: (a.w - ml - mr).max(10.0),
        h: (a.h - mt - mb).max(10.0),
        x,
        y,
        y_down: p.y_down,
    };
    text(
        s,
        a.x + a.w / 2.0,
        a.y + 17.0,
        13.0,
        "middle",
        &p.title,
        None,
    );
    let clip = format!("clip{}", s.len());
    let _ = writeln!(
        s,
        "<clipPath id=\"{clip}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/></clipPath>",
        f.x0, f.y0, f.w, f.h
    );
    if let Some(b) = &p.background {
        let (bx0, bx1) = (f.mx(b.extent.0), f.mx(b.extent.2));
        let (by0, by1) = (f.my(b.extent.1), f.my(b.extent.3));
        let grey = crate::export::grey_bytes(&b.image);
        let at = Area {
            x: bx0.min(bx1),
            y: by0.min(by1),
            w: (bx1 - bx0).abs(),
            h: (by1 - by0).abs(),
        };
        image_svg(s, (b.image.width, b.image.height, grey), at)?;
    }
    axes_svg(s, p, &f, a);
    let _ = writeln!(s, "<g clip-path=\"url(#{clip})\">");
    for se in &p.series {
        series_svg(s, se, &f);
    }
    s.push_str("</g>\n");
    legend_svg(s, &legend, f.x0, a.y + 26.0);
    Ok(())
}

/// The frame, ticks with their labels, and the axis labels.
fn axes_svg(s: &mut String, p: &Plot, f: &PlotFrame, a: Area) {
    let (x0, y0, w, h) = (f.x0, f.y0, f.w, f.h);
    let _ = writeln!(
        s,
        "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"black\"/>"
    );
    for t in ticks(f.x.0, f.x.1, 6) {
        let x = f.mx(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
            y0 + h,
            y0 + h + 4.0
        );
        text(s, x, y0 + h + 16.0, 11.0, "middle", &tick_label(t), None);
    }
    for t in ticks(f.y.0, f.y.1, 5) {
        let y = f.my(t);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{x0:.1}\" y2=\"{y:.1}\" stroke=\"black\"/>",
            x0 - 4.0
        );
        text(s, x0 - 6.0, y + 4.0, 11.0, "end", &tick_label(t), None);
    }
    text(
        s,
        x0 + w / 2.0,
        y0 + h + 34.0,
        12.0,
        "middle",
        &p.x_label,
        None,
    );
    let (lx, ly) = (a.x + 14.0, y0 + h / 2.0);
    text(s, lx, ly, 12.0, "middle", &p.y_label, Some(-90.0));
}

/// One series: its lines (broken at non-finite values) or segments, markers and error bars.
fn series_svg(s: &mut String, se: &Series, f: &PlotFrame) {
    let col = rgb(se.colour);
    let dash = if se.dashed {
        " stroke-dasharray=\"5,4\""
    } else {
        ""
    };
    let pts: Vec<(f64, f64)> = se.points.iter().map(|q| (f.mx(q[0]), f.my(q[1]))).collect();
    match se.style {
        Style::Line | Style::LineMarkers => {
            for run in pts.split(|q| !(q.0.is_finite() && q.1.is_finite())) {
                if run.len() < 2 {
                    continue;
                }
                let d: Vec<String> = run
                    .iter()
                    .map(|q| format!("{:.1},{:.1}", q.0, q.1))
                    .collect();
                let _ = writeln!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"1.6\"{dash}/>",
                    d.join(" ")
                );
            }
        }
        Style::Segments => {
            for pair in pts.chunks_exact(2) {
                let _ = writeln!(
                    s,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{col}\" stroke-width=\"1.3\"{dash}/>",
                    pair[0].0, pair[0].1, pair[1].0, pair[1].1
                );
            }
        }
        Style::Markers => {}
    }
    if matches!(se.style, Style::Markers | Style::LineMarkers) {
        for q in pts.iter().filter(|q| q.0.is_finite() && q.1.is_finite()) {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.6\" fill=\"{col}\"/>",
                q.0, q.1
            );
        }
    }
    for (q, &e) in se.points.iter().zip(&se.y_errors) {
        if e.is_finite() && e > 0.0 && q[0].is_finite() && q[1].is_finite() {
            let x = f.mx(q[0]);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{col}\"/>",
                f.my(q[1] - e),
                f.my(q[1] + e)
            );
        }
    }
}

/// A corner of a plot's data area, as the reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Plot {
    /// The corner whose quarter of the data area holds the least of the drawn data (points,
    /// and lines sampled between them), for a legend drawn inside the plot; top right on ties.
    pub fn emptiest_corner(&self) -> Corner {
        let ((x0, x1), (y0, y1)) = data_range(self);
        let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        // Counts in [top left, top right, bottom left, bottom right].
        let mut count = [0usize; 4];
        let mut add = |x: f64, y: f64| {
            if !(x.is_finite() && y.is_finite()) || x < x0 || x > x1 || y < y0 || y > y1 {
                return;
            }
            let top = (y > my) != self.y_down;
            count[usize::from(!top) * 2 + usize::from(x > mx)] += 1;
        };
        for se in &self.series {
            for (i, q) in se.points.iter().enumerate() {
                add(q[0], q[1]);
                let joined = match se.style {
                    Style::Line | Style::LineMarkers => i > 0,
                    Style::Segments => i % 2 == 1,
                    Style::Markers => false,
                };
                if joined {
                    let p = se.points[i - 1];
                    for k in 1..8 {
                        let t = k as f64 / 8.0;
                        add(p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]));
                    }
                }
            }
        }
        let order = [
            (1, Corner::TopRight),
            (0, Corner::TopLeft),
            (3, Corner::BottomRight),
            (2, Corner::BottomLeft),
        ];
        order
            .into_iter()
            .min_by_key(|&(i, _)| count[i])
            .map_or(Corner::TopRight, |(_, c)| c)
    }
}

/// Height of a legend row, points.
const LEGEND_ROW: f64 = 16.0;

/// Width of a legend entry: its line sample, its name (≈ 6.2 points a character at 11 pt)
/// and a gap.
fn legend_entry_width(name: &str) -> f64 {
    26.0 + 6.2 * name.chars().count() as f64 + 14.0
}

/// The named series in rows of at most `width` points: (colour, name, x offset) per entry.
fn legend_rows(p: &Plot, width: f64) -> Vec<Vec<(Rgb, &str, f64)>> {
    let mut rows: Vec<Vec<(Rgb, &str, f64)>> = Vec::new();
    let mut x = 0.0;
    for se in p.series.iter().filter(|x| !x.name.is_empty()) {
        let w = legend_entry_width(&se.name);
        if rows.is_empty() || (x > 0.0 && x + w > width) {
            rows.push(Vec::new());
            x = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push((se.colour, se.name.as_str(), x));
        }
        x += w;
    }
    rows
}

/// The legend rows from (x0, y0) down.
fn legend_svg(s: &mut String, rows: &[Vec<(Rgb, &str, f64)>], x0: f64, y0: f64) {
    for (r, row) in rows.iter().enumerate() {
        let y = y0 + LEGEND_ROW * (r as f64 + 0.75);
        for &(colour, name, dx) in row {
            let x = x0 + dx;
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"/>",
                y - 4.0,
                x + 18.0,
                y - 4.0,
                rgb(colour)
            );
            text(s, x + 24.0, y, 11.0, "start", name, None);
        }
    }
}

fn gallery_svg(s: &mut String, g: &Gallery, a: Area) -> Result<()> {
    text(
        s,
        a.x + a.w / 2.0,
        a.y + 17.0,
        13.0,
        "middle",
        &g.title,
        None,
    );
    let n = g.tiles.len();
    if n == 0 {
        text(
            s,
            a.x + a.w / 2.0,
            a.y + a.h / 2.0,
            12.0,
            "middle",
            "(empty)",
            None,
        );
        return Ok(());
    }
    let cols = if g.columns > 0 {
        g.columns
    } else {
        (n as f64).sqrt().ceil() as usize
    };
    let rows = n.div_ceil(cols);
    let bar = if g.colorbar.is_some() { 40.0 } else { 0.0 };
    let (cw, ch) = ((a.w - 10.0) / cols as f64, (a.h - 30.0 - bar) / rows as f64);
    let side = (cw - 8.0).min(ch - 22.0).max(4.0);
    for (i, t) in g.tiles.iter().enumerate() {
        let cx = a.x + 5.0 + (i % cols) as f64 * cw + (cw - side) / 2.0;
        let cy = a.y + 26.0 + (i / cols) as f64 * ch;
        let tile = Area {
            x: cx,
            y: cy,
            w: side,
            h: side,
        };
        image_svg(s, (t.image.width, t.image.height, t.grey()), tile)?;
        if let Some(c) = t.frame {
            let _ = writeln!(
                s,
                "<rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{side:.1}\" height=\"{side:.1}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3\"/>",
                rgb(c)
            );
        }
        text(
            s,
            cx + side / 2.0,
            cy + side + 14.0,
            11.0,
            "middle",
            &t.caption,
            None,
        );
    }
    if let Some(c) = &g.colorbar {
        let y = a.y + 26.0 + rows as f64 * ch + 6.0;
        colorbar_svg(
            s,
            c,
            Area {
                x: a.x + a.w / 2.0 - 90.0,
                y,
                w: 180.0,
                h: 10.0,
            },
        )?;
    }
    Ok(())
}

/// A grey scale from `c.lo` (black) to `c.hi` (white) in `at`, with its values and label.
fn colorbar_svg(s: &mut String, c: &Colorbar, at: Area) -> Result<()> {
    let ramp = (0..=255u8).collect();
    image_svg(s, (256, 1, ramp), at)?;
    let _ = writeln!(
        s,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888\"/>",
        at.x, at.y, at.w, at.h
    );
    let y = at.y + at.h + 13.0;
    text(s, at.x, y, 11.0, "middle", &tick_label(c.lo), None);
    text(s, at.x + at.w, y, 11.0, "middle", &tick_label(c.hi), None);
    text(s, at.x + at.w / 2.0, y, 11.0, "middle", &c.label, None);
    Ok(())
}

/// Viridis-like colour for v in [0, 1] (5-stop interpolation); grey for NaN.
pub fn colormap(v: f64) -> Rgb {
    if !v.is_finite() {
        return [200, 200, 200];
    }
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = v.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f).round() as u8;
    }
    out
}

fn heatmap_svg(s: &mut String, m: &Heatmap, a: Area) {
    text(
        s,
        a.x + a.w / 2.0,
        a.y + 17.0,
        13.0,
        "middle",
        &m.title,
        None,
    );
    let (rows, cols) = (m.values.len(), m.values.first().map_or(0, Vec::len));
    if rows == 0 || cols == 0 {
        return;
    }
    let (ml, mt, mb) = (70.0, 30.0, 40.0);
    let side = ((a.w - ml - 10.0) / cols as f64).min((a.h - mt - mb) / rows as f64);
    let (x0, y0) = (a.x + ml, a.y + mt);
    for (i, row) in m.values.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let (x, y) = (x0 + j as f64 * side, y0 + i as f64 * side);
            let c = colormap(v);
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{side:.1}\" height=\"{side:.1}\" fill=\"{}\" stroke=\"white\"/>",
                rgb(c)
            );
            let lum = 0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64;
            let tc = if lum > 140.0 { "black" } else { "white" };
            let label = m
                .text
                .get(i)
                .and_then(|r| r.get(j))
                .map_or("", String::as_str);
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{:.0}\" {FONT} text-anchor=\"middle\" fill=\"{tc}\">{}</text>",
                x + side / 2.0,
                y + side / 2.0 + 4.0,
                (side / 5.0).clamp(8.0, 13.0),
                crate::export::xml_escape(label)
            );
        }
    }
    for (i, l) in m.row_labels.iter().enumerate() {
        text(
            s,
            x0 - 6.0,
            y0 + (i as f64 + 0.5) * side + 4.0,
            11.0,
            "end",
            l,
            None,
        );
    }
    // Labels wider than their column (≈ 0.56 em a character at 10 pt) alternate between two
    // lines, so neighbours do not run into each other.
    let crowded = m
        .col_labels
        .iter()
        .any(|l| 0.56 * 10.0 * l.chars().count() as f64 > side);
    for (j, l) in m.col_labels.iter().enumerate() {
        let down = if crowded && j % 2 == 1 { 11.0 } else { 0.0 };
        text(
            s,
            x0 + (j as f64 + 0.5) * side,
            y0 + rows as f64 * side + 13.0 + down,
            10.0,
            "middle",
            l,
            None,
        );
    }
    text(
        s,
        x0 + cols as f64 * side / 2.0,
        y0 + rows as f64 * side + 36.0,
        12.0,
        "middle",
        &m.x_label,
        None,
    );
    text(
        s,
        a.x + 12.0,
        y0 + rows as f64 * side / 2.0,
        12.0,
        "middle",
        &m.y_label,
        Some(-90.0),
    );
}
