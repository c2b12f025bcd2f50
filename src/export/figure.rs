//! Figures as data. A [`Figure`] is a grid of panels (line/scatter plots, image galleries, heat
//! maps); [`Figure::to_svg`] writes it as SVG and [`Figure::to_png`] rasterises that same SVG
//! (resvg, with a font shipped inside the binary), so the two exports always agree and neither
//! needs a window. The GUI draws the same descriptions with its own plot widgets.

use crate::error::{Error, Result};
use crate::raster::Raster;
mod svg;
pub use svg::{Corner, PLAIN_MAGNITUDES, colormap, svg_to_png, tick_label, ticks};

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
    /// Values drawn black and white (`None`: the tile's own minimum and maximum).
    pub range: Option<(f32, f32)>,
}

impl Tile {
    /// The tile's grey levels: its range, or its own minimum and maximum.
    pub fn grey(&self) -> Vec<u8> {
        match self.range {
            Some(r) => super::grey_bytes_in(&self.image, r),
            None => super::grey_bytes(&self.image),
        }
    }
}

/// A grey scale under a gallery: the values of its black and white ends, and what they are.
#[derive(Debug, Clone, Default)]
pub struct Colorbar {
    pub label: String,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Gallery {
    pub title: String,
    pub tiles: Vec<Tile>,
    pub columns: usize,
    /// The scale of the tiles that share a range.
    pub colorbar: Option<Colorbar>,
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

#[cfg(test)]
mod tests {
    use super::svg::base64;
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
                        range: None,
                    }],
                    columns: 0,
                    colorbar: Some(Colorbar {
                        label: "weight".into(),
                        lo: -1.0,
                        hi: 1.0,
                    }),
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

    /// The legend goes where the data are not.
    #[test]
    fn legend_corner_avoids_the_data() {
        let rising = Plot {
            series: vec![Series::new(
                "rising",
                PALETTE[0],
                Style::Line,
                vec![[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [3.0, 9.0]],
            )],
            legend: true,
            ..Default::default()
        };
        // Data run from bottom left to top right: top left is free.
        assert_eq!(rising.emptiest_corner(), Corner::TopLeft);
        let falling = Plot {
            series: vec![Series::new(
                "falling",
                PALETTE[0],
                Style::Markers,
                vec![[0.0, 9.0], [0.5, 8.0], [3.0, 0.0], [2.5, 0.5], [0.2, 0.1]],
            )],
            ..rising.clone()
        };
        assert_eq!(falling.emptiest_corner(), Corner::TopRight);
        // In image coordinates (y down) the same data's top is the other half.
        let image = Plot {
            y_down: true,
            ..rising
        };
        assert_eq!(image.emptiest_corner(), Corner::BottomLeft);
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
