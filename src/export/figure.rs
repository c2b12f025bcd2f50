//! Figures as data. A [`Figure`] is a grid of panels (line/scatter plots, image galleries, heat
//! maps); [`Figure::to_svg`] writes it as SVG and [`Figure::to_png`] rasterises that same SVG
//! (resvg, with a font shipped inside the binary), so the two exports always agree and neither
//! needs a window. The GUI draws the same descriptions with its own plot widgets.

use crate::error::{Error, Result};
use crate::raster::Raster;
use std::fmt::Write;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Distinct colours for classes (Okabe–Ito, colour-blind safe), cycled.
pub const PALETTE: [Rgb; 8] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [204, 121, 167],
    [86, 180, 233],
    [213, 94, 0],
    [240, 228, 66],
    [0, 0, 0],
];

pub fn class_colour(class: usize) -> Rgb {
    PALETTE[class % PALETTE.len()]
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    /// Size in CSS pixels (1/96 inch).
    pub width: f64,
    pub height: f64,
    pub columns: usize,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone)]
pub enum Panel {
    Plot(Plot),
    Gallery(Gallery),
    Heatmap(Heatmap),
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    Line,
    Markers,
    LineMarkers,
    /// Consecutive pairs of points are separate line segments.
    Segments,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: Rgb,
    pub style: Style,
    pub points: Vec<[f64; 2]>,
    /// Symmetric y error bars, one per point (empty for none).
    pub y_errors: Vec<f64>,
    /// Dashed line (e.g. a reference or threshold).
    pub dashed: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, colour: Rgb, style: Style, points: Vec<[f64; 2]>) -> Self {
        Series {
            name: name.into(),
            colour,
            style,
            points,
            y_errors: Vec::new(),
            dashed: false,
        }
    }
}

/// An image drawn under a plot's series, covering `extent` = (x0, y0, x1, y1) in data units.
#[derive(Debug, Clone)]
pub struct Background {
    pub image: Raster,
    pub extent: (f64, f64, f64, f64),
}

#[derive(Debug, Clone, Default)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub background: Option<Background>,
    /// y grows downwards (image coordinates).
    pub y_down: bool,
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub legend: bool,
}

#[derive(Debug, Clone)]
pub struct Tile {
    pub image: Raster,
    pub caption: String,
    /// Outline colour (e.g. the class colour).
    pub frame: Option<Rgb>,
}

#[derive(Debug, Clone, Default)]
pub struct Gallery {
    pub title: String,
    pub tiles: Vec<Tile>,
    pub columns: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// Values in [0, 1] set the colour (NaN = grey).
    pub values: Vec<Vec<f64>>,
    /// Text in each cell.
    pub text: Vec<Vec<String>>,
}

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

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
        esc(t)
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

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v.fract()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// Grey PNG of an image, stretched min–max, as a data URL.
fn image_data_url(img: &Raster) -> Result<String> {
    Ok(format!(
        "data:image/png;base64,{}",
        base64(&super::grey_png(img)?)
    ))
}

fn base64(bytes: &[u8]) -> String {
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

fn image_svg(s: &mut String, img: &Raster, x: f64, y: f64, w: f64, h: f64) -> Result<()> {
    let _ = writeln!(
        s,
        "<image x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"{}\"/>",
        image_data_url(img)?
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
    let (ml, mr, mt, mb) = (62.0, 14.0, 26.0, 44.0);
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
        image_svg(
            s,
            &b.image,
            bx0.min(bx1),
            by0.min(by1),
            (bx1 - bx0).abs(),
            (by1 - by0).abs(),
        )?;
    }
    axes_svg(s, p, &f, a);
    let _ = writeln!(s, "<g clip-path=\"url(#{clip})\">");
    for se in &p.series {
        series_svg(s, se, &f);
    }
    s.push_str("</g>\n");
    if p.legend {
        legend_svg(s, p, &f);
    }
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

/// The named series' colours and names, top right.
fn legend_svg(s: &mut String, p: &Plot, f: &PlotFrame) {
    let named: Vec<&Series> = p.series.iter().filter(|x| !x.name.is_empty()).collect();
    if named.is_empty() {
        return;
    }
    let longest = named
        .iter()
        .map(|x| x.name.chars().count())
        .max()
        .unwrap_or(0);
    let lw = 8.0 + 7.0 * longest as f64 + 24.0;
    let (lx0, ly0) = (f.x0 + f.w - lw - 6.0, f.y0 + 6.0);
    let _ = writeln!(
        s,
        "<rect x=\"{lx0:.1}\" y=\"{ly0:.1}\" width=\"{lw:.1}\" height=\"{:.1}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#888\"/>",
        6.0 + 15.0 * named.len() as f64
    );
    for (i, se) in named.iter().enumerate() {
        let y = ly0 + 13.0 + 15.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"/>",
            lx0 + 5.0,
            y - 4.0,
            lx0 + 21.0,
            y - 4.0,
            rgb(se.colour)
        );
        text(s, lx0 + 26.0, y, 11.0, "start", &se.name, None);
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
    let (cw, ch) = ((a.w - 10.0) / cols as f64, (a.h - 30.0) / rows as f64);
    let side = (cw - 8.0).min(ch - 22.0).max(4.0);
    for (i, t) in g.tiles.iter().enumerate() {
        let cx = a.x + 5.0 + (i % cols) as f64 * cw + (cw - side) / 2.0;
        let cy = a.y + 26.0 + (i / cols) as f64 * ch;
        image_svg(s, &t.image, cx, cy, side, side)?;
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
                esc(label)
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
    for (j, l) in m.col_labels.iter().enumerate() {
        text(
            s,
            x0 + (j as f64 + 0.5) * side,
            y0 + rows as f64 * side + 15.0,
            11.0,
            "middle",
            l,
            None,
        );
    }
    text(
        s,
        x0 + cols as f64 * side / 2.0,
        y0 + rows as f64 * side + 32.0,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Figure {
        let mut img = Raster::zeros(8, 8);
        img.set(3, 3, 1.0);
        Figure {
            title: "Test & <figure>".into(),
            width: 600.0,
            height: 400.0,
            columns: 2,
            panels: vec![
                Panel::Plot(Plot {
                    title: "line".into(),
                    x_label: "frame".into(),
                    y_label: "count".into(),
                    series: vec![Series::new(
                        "a",
                        PALETTE[0],
                        Style::LineMarkers,
                        vec![
                            [0.0, 1.0],
                            [1.0, 3.0],
                            [2.0, f64::NAN],
                            [3.0, 2.0],
                            [4.0, 1.0],
                        ],
                    )],
                    legend: true,
                    ..Default::default()
                }),
                Panel::Gallery(Gallery {
                    title: "tiles".into(),
                    tiles: vec![Tile {
                        image: img,
                        caption: "class 0 (n=3)".into(),
                        frame: Some(PALETTE[1]),
                    }],
                    columns: 0,
                }),
                Panel::Heatmap(Heatmap {
                    title: "matrix".into(),
                    values: vec![vec![0.9, 0.1], vec![f64::NAN, 1.0]],
                    text: vec![
                        vec!["0.90".into(), "0.10".into()],
                        vec!["–".into(), "1.00".into()],
                    ],
                    row_labels: vec!["0".into(), "1".into()],
                    col_labels: vec!["0".into(), "1".into()],
                    ..Default::default()
                }),
            ],
        }
    }

    #[test]
    fn svg_is_well_formed_and_escaped() {
        let svg = sample().to_svg().expect("svg");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Test &amp; &lt;figure&gt;"));
        assert!(svg.contains("data:image/png;base64,"));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "the NaN splits the line"
        );
        // resvg parses it: the PNG has the requested size × scale.
        let png = sample().to_png(1.5).expect("png");
        let img = image::load_from_memory(&png).expect("decode");
        assert_eq!((img.width(), img.height()), (900, 600));
        // Text was rendered: the title row is not blank.
        let rgb = img.to_rgb8();
        let dark = (0..900)
            .filter(|&x| (20..40).any(|y| rgb.get_pixel(x, y)[0] < 100))
            .count();
        assert!(dark > 20, "title text rendered ({dark} dark columns)");
        // The gallery tile (an almost black image) was rendered, not left white.
        let tile_dark = (450..900)
            .flat_map(|x| (40..300).map(move |y| (x, y)))
            .filter(|&(x, y)| rgb.get_pixel(x, y)[1] < 30)
            .count();
        assert!(
            tile_dark > 5000,
            "gallery image rendered ({tile_dark} dark pixels)"
        );
    }

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.013, 0.087, 4);
        assert!(t.iter().all(|v| (0.013..=0.087).contains(v)) && t.len() >= 3);
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
