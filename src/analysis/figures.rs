//! The analysis figures as [`Figure`] descriptions (exported as SVG/PNG; drawn by the GUI).

use super::tracks::registered;
use super::{DefectAnalysis, pca};
use crate::detect::Detection;
use crate::export::figure::{
    Background, Colorbar, Figure, Gallery, Heatmap, PALETTE, Panel, Plot, Series, Style, Tile,
    class_colour,
};
use crate::movie::register::Drift;
use crate::raster::Raster;

/// Ward dendrogram, leaves labelled with their size and coloured by majority class.
pub fn dendrogram(a: &DefectAnalysis) -> Option<Figure> {
    let d = a.dendrogram.as_ref()?;
    // Leaves sit at 5, 15, 25, … (scipy's layout): on the axis they are numbered 1, 2, 3, …
    let leaf = |x: f64| (x - 5.0) / 10.0 + 1.0;
    let mut series = vec![Series::new(
        "",
        [60, 60, 60],
        Style::Segments,
        d.links
            .iter()
            .flat_map(|l| {
                let (lx, rx) = (leaf(l.left_x), leaf(l.right_x));
                [
                    [lx, l.left_height],
                    [lx, l.height],
                    [lx, l.height],
                    [rx, l.height],
                    [rx, l.height],
                    [rx, l.right_height],
                ]
            })
            .collect(),
    )];
    for c in 0..a.classes() {
        let pts: Vec<[f64; 2]> = d
            .leaves
            .iter()
            .filter(|l| l.majority_class == Some(c))
            .map(|l| [leaf(l.x), 0.0])
            .collect();
        if !pts.is_empty() {
            series.push(Series::new(
                a.class_name(c),
                class_colour(c),
                Style::Markers,
                pts,
            ));
        }
    }
    let top = d.top_heights.first().copied().unwrap_or(1.0);
    let subtitle = if d.samples < d.total {
        format!(" (random {} of {})", d.samples, d.total)
    } else {
        String::new()
    };
    Some(Figure {
        title: format!("Ward dendrogram of defect patches{subtitle}"),
        width: 900.0,
        height: 420.0,
        columns: 1,
        panels: vec![Panel::Plot(Plot {
            title: format!(
                "top {} clusters; leaf colour = majority class",
                d.leaves.len()
            ),
            x_label: "cluster (leaf order)".into(),
            y_label: "Ward distance (feature units)".into(),
            series,
            x_range: Some((0.5, d.leaves.len() as f64 + 0.5)),
            y_range: Some((-0.03 * top, 1.05 * top)),
            legend: true,
            ..Default::default()
        })],
    })
}

/// Class mean images with counts.
pub fn class_gallery(a: &DefectAnalysis) -> Figure {
    let tiles = a
        .class_means
        .iter()
        .enumerate()
        .map(|(c, (img, _, n))| Tile {
            image: img.clone(),
            caption: format!("{}: n = {n}", a.class_name(c)),
            frame: Some(class_colour(c)),
            range: None,
        })
        .collect();
    Figure {
        title: format!(
            "Class means ({}, {})",
            a.clustering.method.name(),
            a.classes_text()
        ),
        width: 180.0 * a.classes().clamp(2, 6) as f64,
        height: 250.0 * a.classes().div_ceil(6).max(1) as f64,
        columns: 1,
        panels: vec![Panel::Gallery(Gallery {
            title: format!("{0}×{0} px patches, standardised", a.config.patch_size),
            tiles,
            columns: a.classes().min(6),
            colorbar: None,
        })],
    }
}

/// Concentration of each class vs time.
pub fn concentration(a: &DefectAnalysis) -> Figure {
    let dens = a.densities();
    let top = dens.iter().flatten().copied().fold(0.0f64, f64::max);
    let (x_label, t) = match a.frame_interval_s {
        Some(dt) => ("time (s)".to_string(), dt),
        None => ("frame".to_string(), 1.0),
    };
    let series = (0..a.classes())
        .map(|c| {
            Series::new(
                a.class_name(c),
                class_colour(c),
                Style::LineMarkers,
                dens.iter()
                    .enumerate()
                    .map(|(f, row)| [f as f64 * t, row[c]])
                    .collect(),
            )
        })
        .collect();
    Figure {
        title: "Defect concentration vs time".into(),
        width: 700.0,
        height: 420.0,
        columns: 1,
        panels: vec![Panel::Plot(Plot {
            title: String::new(),
            x_label,
            y_label: format!("density (defects per {})", a.area_unit()),
            series,
            legend: true,
            // From 0: one defect missing from a frame must not look like a crash.
            y_range: Some((0.0, 1.05 * top.max(f64::MIN_POSITIVE))),
            ..Default::default()
        })],
    }
}

/// Drift of each frame relative to frame 0, x and y, in nm when calibrated, against time.
pub fn drift(
    title: &str,
    d: &Drift,
    pixel_size_nm: Option<f64>,
    frame_interval_s: Option<f64>,
) -> Figure {
    let (scale, unit) = pixel_size_nm.map_or((1.0, "px"), |p| (p, "nm"));
    let (dt, x_label) = frame_interval_s.map_or((1.0, "frame"), |t| (t, "time (s)"));
    let axis = |name: &str, colour: usize, pick: fn(&(f64, f64)) -> f64| {
        Series::new(
            name.to_string(),
            PALETTE[colour % PALETTE.len()],
            Style::LineMarkers,
            d.offsets
                .iter()
                .enumerate()
                .map(|(f, o)| [f as f64 * dt, pick(o) * scale])
                .collect(),
        )
    };
    Figure {
        title: title.into(),
        width: 700.0,
        height: 420.0,
        columns: 1,
        panels: vec![Panel::Plot(Plot {
            title: String::new(),
            x_label: x_label.into(),
            y_label: format!("drift ({unit})"),
            series: vec![axis("x", 0, |o| o.0), axis("y", 1, |o| o.1)],
            legend: true,
            ..Default::default()
        })],
    }
}

/// Trajectories (tracks of ≥ 2 detections) over the first frame, coloured by their first class.
pub fn trajectories(a: &DefectAnalysis, frame0: &Raster, detections: &[Detection]) -> Figure {
    let mut series = Vec::new();
    for t in &a.tracks.tracks {
        if t.len() < 2 {
            continue;
        }
        let c = t.iter().find_map(|&d| a.class[d]);
        // Drift-corrected positions, drawn in frame-0 coordinates.
        let pts = t
            .iter()
            .map(|&d| {
                let (x, y) = registered(&detections[d], &a.drift.offsets);
                [x, y]
            })
            .collect();
        series.push(Series::new(
            "",
            c.map_or([128, 128, 128], class_colour),
            Style::LineMarkers,
            pts,
        ));
    }
    for c in 0..a.classes() {
        // Legend entries.
        series.push(Series::new(
            a.class_name(c),
            class_colour(c),
            Style::Line,
            vec![],
        ));
    }
    frame_figure(
        format!(
            "Trajectories ({} tracks of ≥ 2 frames)",
            a.tracks.tracks.iter().filter(|t| t.len() > 1).count()
        ),
        "on frame 0, drift removed",
        frame0,
        series,
    )
}

/// A frame as an image in pixel coordinates (y down) with `series` drawn over it.
fn frame_figure(title: String, subtitle: &str, image: &Raster, series: Vec<Series>) -> Figure {
    let (w, h) = (image.width as f64, image.height as f64);
    let side = 640.0;
    Figure {
        title,
        width: side,
        height: side * h / w + 80.0,
        columns: 1,
        panels: vec![Panel::Plot(Plot {
            title: subtitle.into(),
            x_label: "x (px)".into(),
            y_label: "y (px)".into(),
            series,
            background: Some(Background {
                image: image.clone(),
                extent: (-0.5, -0.5, w - 0.5, h - 0.5),
            }),
            y_down: true,
            x_range: Some((-0.5, w - 0.5)),
            y_range: Some((-0.5, h - 0.5)),
            legend: true,
        })],
    }
}

/// One frame with its detections marked, coloured by class (grey: no class). `class_of[i]` is
/// the class of `detections[i]`; only the detections of frame `frame` are drawn.
pub fn annotated_frame(
    image: &Raster,
    frame: usize,
    detections: &[Detection],
    class_of: &dyn Fn(usize) -> Option<usize>,
    names: &[String],
) -> Figure {
    let classes = names.len();
    let mut by_class = vec![Vec::new(); classes + 1];
    for (i, d) in detections.iter().enumerate() {
        if d.frame == frame {
            let slot = class_of(i).filter(|&c| c < classes).unwrap_or(classes);
            by_class[slot].push([d.x as f64, d.y as f64]);
        }
    }
    let n: usize = by_class.iter().map(Vec::len).sum();
    let series = by_class
        .into_iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(c, p)| {
            if c == classes {
                Series::new("unclassified", [128, 128, 128], Style::Markers, p)
            } else {
                Series::new(names[c].clone(), class_colour(c), Style::Markers, p)
            }
        })
        .collect();
    frame_figure(format!("Frame {frame}: {n} defects"), "", image, series)
}

/// Transition matrix as a heat map: probability and count in each cell.
pub fn transition_matrix(a: &DefectAnalysis) -> Figure {
    let k = a.classes();
    let panel = |title: &str, t: &super::Transitions| {
        Panel::Heatmap(Heatmap {
            title: title.into(),
            x_label: "class in frame t+1".into(),
            y_label: "class in frame t".into(),
            row_labels: (0..k).map(|c| c.to_string()).collect(),
            col_labels: (0..k).map(|c| c.to_string()).collect(),
            values: t.probability.clone(),
            text: (0..k)
                .map(|i| {
                    (0..k)
                        .map(|j| {
                            let p = t.probability[i][j];
                            if p.is_finite() {
                                format!("{p:.3} ({})", t.counts[i][j])
                            } else {
                                "–".into()
                            }
                        })
                        .collect()
                })
                .collect(),
        })
    };
    let side = (110.0 * k as f64 + 140.0).max(360.0);
    Figure {
        title: "Class transitions along tracks (probability, count)".into(),
        width: 2.0 * side,
        height: side,
        columns: 2,
        panels: vec![
            panel("classifier labels", &a.transitions_raw),
            panel(
                &format!("after HMM smoothing ({} labels changed)", a.hmm_changed),
                &a.transitions,
            ),
        ],
    }
}

/// MSD curves per class with the fitted lines.
pub fn msd(a: &DefectAnalysis) -> Figure {
    let (t, x_label) = match a.frame_interval_s {
        Some(dt) => (dt, "lag (s)"),
        None => (1.0, "lag (frames)"),
    };
    let px2 = a.pixel_size_nm.map_or(1.0, |p| p * p);
    let y_label = if a.pixel_size_nm.is_some() {
        "MSD (nm²)"
    } else {
        "MSD (px²)"
    };
    let mut series = Vec::new();
    for d in &a.diffusion {
        let mut s = Series::new(
            format!("{}: {}", a.class_name(d.class), a.diffusion_short(d)),
            class_colour(d.class),
            Style::Markers,
            d.msd
                .iter()
                .map(|&(lag, m, _)| [lag as f64 * t, m * px2])
                .collect(),
        );
        s.y_errors = d
            .msd
            .iter()
            .map(|&(_, m, n)| m * px2 / (n as f64).sqrt())
            .collect();
        series.push(s);
        let last = d.msd.last().map_or(1, |m| m.0) as f64;
        let mut fit = Series::new(
            "",
            class_colour(d.class),
            Style::Line,
            vec![
                [0.0, d.offset_px2 * px2],
                [
                    last * t,
                    (d.offset_px2 + 4.0 * d.d_px2_per_frame * last) * px2,
                ],
            ],
        );
        fit.dashed = true;
        series.push(fit);
    }
    Figure {
        title: "Mean-squared displacement per class".into(),
        width: 760.0,
        height: 440.0,
        columns: 1,
        panels: vec![Panel::Plot(Plot {
            title: "dashed: MSD = 4Dτ + offset, fitted on the first lags".into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series,
            legend: true,
            ..Default::default()
        })],
    }
}

/// Coupling: nearest distance over time and cross g(r) against random placement.
pub fn coupling(a: &DefectAnalysis) -> Option<Figure> {
    let c = a.coupling.as_ref()?;
    let (scale, unit) = match a.pixel_size_nm {
        Some(p) => (p, "nm"),
        None => (1.0, "px"),
    };
    let (t, x_label) = match a.frame_interval_s {
        Some(dt) => (dt, "time (s)"),
        None => (1.0, "frame"),
    };
    let obs = c
        .nearest
        .iter()
        .enumerate()
        .map(|(f, n)| [f as f64 * t, n.0.map_or(f64::NAN, |v| v * scale)])
        .collect();
    let mut exp = Series::new(
        "random placement",
        [120, 120, 120],
        Style::Line,
        c.nearest
            .iter()
            .enumerate()
            .map(|(f, n)| [f as f64 * t, n.1.map_or(f64::NAN, |v| v * scale)])
            .collect(),
    );
    exp.dashed = true;
    let r: Vec<f64> = c.r_px.iter().map(|v| v * scale).collect();
    let band = |sel: fn(&(f64, f64)) -> f64| {
        let mut s = Series::new(
            "",
            [150, 150, 150],
            Style::Line,
            r.iter()
                .zip(&c.envelope)
                .map(|(&x, e)| [x, sel(e)])
                .collect(),
        );
        s.dashed = true;
        s
    };
    let mut lo = band(|e| e.0);
    lo.name = format!("random 95 % envelope ({} draws)", c.random_draws);
    Some(Figure {
        title: format!("Coupling of class {} to class {}", c.class_a, c.class_b),
        width: 1100.0,
        height: 420.0,
        columns: 2,
        panels: vec![
            Panel::Plot(Plot {
                title: format!(
                    "mean distance from each class-{} defect to the nearest class-{}",
                    c.class_a, c.class_b
                ),
                x_label: x_label.into(),
                y_label: format!("distance ({unit})"),
                series: vec![
                    Series::new("observed", class_colour(c.class_a), Style::LineMarkers, obs),
                    exp,
                ],
                legend: true,
                ..Default::default()
            }),
            Panel::Plot(Plot {
                title: "cross pair-correlation g(r), all frames".into(),
                x_label: format!("r ({unit})"),
                y_label: "g(r)".into(),
                series: vec![
                    Series::new(
                        "observed",
                        PALETTE[5],
                        Style::LineMarkers,
                        r.iter().zip(&c.g).map(|(&x, &g)| [x, g]).collect(),
                    ),
                    lo,
                    band(|e| e.1),
                ],
                legend: true,
                ..Default::default()
            }),
        ],
    })
}

/// PCA panel of one class: mean, eigen-images, scree with the significance threshold.
pub fn pca_panel(p: &super::ClassPca) -> Figure {
    let mut tiles = vec![Tile {
        image: p.mean.clone(),
        caption: format!("mean (n = {})", p.members),
        frame: Some(class_colour(p.class)),
        range: None,
    }];
    // One symmetric scale for all eigen-images: grey is 0, and the tiles compare.
    let m = p
        .eigen_images
        .iter()
        .flat_map(|e| e.data.iter())
        .fold(0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m })
        .max(f32::MIN_POSITIVE);
    for (i, img) in p.eigen_images.iter().enumerate() {
        let sig = if i < p.significance.significant {
            " *"
        } else {
            ""
        };
        tiles.push(Tile {
            image: img.clone(),
            caption: format!(
                "PC{} {:.1} %{sig}",
                i + 1,
                100.0 * p.explained.get(i).unwrap_or(&0.0)
            ),
            frame: None,
            range: Some((-m, m)),
        });
    }
    let ranks = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, &y)| [i as f64 + 1.0, y])
            .collect()
    };
    let mut thr = Series::new(
        match p.significance.null {
            pca::NullKind::PixelShuffle => {
                format!("95 % of pixel shuffles ({} draws)", p.significance.shuffles)
            }
            pca::NullKind::LatticeNeighbours => {
                format!(
                    "95 % of intact neighbours ({} draws)",
                    p.significance.shuffles
                )
            }
        },
        [120, 120, 120],
        Style::LineMarkers,
        ranks(&p.significance.threshold),
    );
    thr.dashed = true;
    Figure {
        title: if p.significance.tested() {
            format!(
                "PCA of class {}: {} significant component(s) (* above the noise)",
                p.class, p.significance.significant
            )
        } else {
            format!(
                "PCA of class {}: {}",
                p.class,
                p.significance.text(p.eigenvalues.len())
            )
        },
        width: 1100.0,
        height: 440.0,
        columns: 2,
        panels: vec![
            Panel::Gallery(Gallery {
                title: "mean patch (own scale) and eigen-images".into(),
                tiles,
                columns: 3,
                colorbar: Some(Colorbar {
                    label: "eigen-image weight".into(),
                    lo: f64::from(-m),
                    hi: f64::from(m),
                }),
            }),
            Panel::Plot(Plot {
                title: "scree".into(),
                x_label: "component".into(),
                y_label: "eigenvalue (variance)".into(),
                series: vec![
                    Series::new(
                        "data",
                        class_colour(p.class),
                        Style::LineMarkers,
                        ranks(&p.eigenvalues),
                    ),
                    thr,
                ],
                legend: true,
                ..Default::default()
            }),
        ],
    }
}
