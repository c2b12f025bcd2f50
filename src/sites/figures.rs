//! The site model's figures, as data (drawn by the window and exported as SVG/PNG).

use super::SiteAnalysis;
use super::hmm::{INTACT, STATES};
use crate::export::figure::{Figure, PALETTE, Panel, Plot, Series, Style};

/// One site through time: its deviation from its neighbours per frame with the fitted state
/// means (dashed), and the posterior of each defect state with the decided state.
pub fn timeline(a: &SiteAnalysis, site: usize) -> Figure {
    let role = a.role_of(site);
    let em = &a.fit.params.emissions[role as usize];
    let frames = a.series.frames();
    let (dt, x_label) = match a.frame_interval_s {
        Some(dt) => (dt, "time (s)"),
        None => (1.0, "frame"),
    };
    let x = |t: usize| t as f64 * dt;
    let z: Vec<[f64; 2]> = (0..frames)
        .filter_map(|t| {
            let o = &a.series.observations[t][site];
            (!o.is_missing()).then(|| [x(t), o.z as f64])
        })
        .collect();
    let mut deviation = vec![Series::new("measured", [40, 40, 40], Style::LineMarkers, z)];
    for k in 0..STATES {
        let mut s = Series::new(
            format!("{} mean", a.state_name(site, k)),
            PALETTE[k % PALETTE.len()],
            Style::Line,
            vec![
                [x(0), em.mean[k]],
                [x(frames.saturating_sub(1)), em.mean[k]],
            ],
        );
        s.dashed = true;
        deviation.push(s);
    }
    let posterior = &a.fit.posterior[site];
    let mut states: Vec<Series> = (0..STATES)
        .filter(|&k| k != INTACT)
        .map(|k| {
            Series::new(
                format!("P({})", a.state_name(site, k)),
                PALETTE[k % PALETTE.len()],
                Style::LineMarkers,
                (0..frames)
                    .map(|t| [x(t), posterior[t][k] as f64])
                    .collect(),
            )
        })
        .collect();
    let mut threshold = Series::new(
        "defect threshold",
        [150, 150, 150],
        Style::Line,
        vec![
            [x(0), a.defect_posterior as f64],
            [x(frames.saturating_sub(1)), a.defect_posterior as f64],
        ],
    );
    threshold.dashed = true;
    states.push(threshold);
    let key = a.series.keys[site];
    Figure {
        title: format!(
            "Site {site} (cell {}, {}; basis site {})",
            key.cell[0], key.cell[1], key.site
        ),
        width: 700.0,
        height: 520.0,
        columns: 1,
        panels: vec![
            Panel::Plot(Plot {
                title: "Deviation from the same-site neighbours".into(),
                x_label: x_label.into(),
                y_label: "z (noise units)".into(),
                series: deviation,
                legend: true,
                ..Default::default()
            }),
            Panel::Plot(Plot {
                title: "Posterior of the defect states".into(),
                x_label: x_label.into(),
                y_label: "probability".into(),
                series: states,
                y_range: Some((0.0, 1.0)),
                legend: true,
                ..Default::default()
            }),
        ],
    }
}
