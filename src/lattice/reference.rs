//! The local reference: each column compared with the same site's columns around it.

use super::ColumnMeasure;
use crate::raster::{median, median_mad_sigma};
use std::collections::HashMap;

/// Radius of the neighbourhood, in unit cells, whose same-site columns make a column's local
/// reference: wide enough for ~18 neighbours, narrow enough that contamination and slow
/// background (which vary over several nanometres) are nearly constant within it.
pub const LOCAL_REFERENCE_CELLS: f32 = 2.5;

/// Compare each column with its same-site neighbours within `radius` px: `reference` is their
/// median intensity, `z` the deviation `intensity − reference` in robust standard deviations
/// of that deviation over the site. Contamination or a background that brightens or darkens a
/// region moves a column and its neighbours together and so leaves `z` alone. (A relative
/// deviation would be ill-defined: background-corrected intensities have no natural zero.)
pub fn local_reference(columns: &mut [ColumnMeasure], sites: usize, radius: f32) {
    let bin = radius.max(1.0);
    let key = |c: &ColumnMeasure| ((c.x / bin).floor() as i64, (c.y / bin).floor() as i64);
    let mut grid: HashMap<(usize, i64, i64), Vec<usize>> = HashMap::new();
    // Lattice-free columns are nobody's reference.
    for (i, c) in columns.iter().enumerate().filter(|(_, c)| !c.lattice_free) {
        let (bx, by) = key(c);
        grid.entry((c.site, bx, by)).or_default().push(i);
    }
    let references: Vec<f32> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (bx, by) = key(c);
            let mut near = Vec::new();
            for dy in -1..=1 {
                for dx in -1..=1 {
                    for &j in grid.get(&(c.site, bx + dx, by + dy)).into_iter().flatten() {
                        let o = &columns[j];
                        if j != i && (o.x - c.x).hypot(o.y - c.y) <= radius {
                            near.push(o.intensity);
                        }
                    }
                }
            }
            if near.len() >= 3 {
                median(&near)
            } else {
                f32::NAN
            }
        })
        .collect();
    // Columns with too few neighbours (a tiny frame) fall back on the site's median.
    for site in 0..sites {
        let all: Vec<f32> = columns
            .iter()
            .filter(|c| c.site == site && !c.lattice_free)
            .map(|c| c.intensity)
            .collect();
        let site_median = median(&all);
        for (c, r) in columns.iter_mut().zip(&references) {
            if c.site == site {
                c.reference = if r.is_finite() { *r } else { site_median };
            }
        }
        let devs: Vec<f32> = columns
            .iter()
            .filter(|c| c.site == site && !c.lattice_free)
            .map(|c| c.intensity - c.reference)
            .collect();
        let (center, sigma) = median_mad_sigma(&devs);
        let sigma = sigma.max(1e-6 * site_median.abs().max(1.0));
        for c in columns.iter_mut().filter(|c| c.site == site) {
            c.z = (c.intensity - c.reference - center) / sigma;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LabelMethod, label};
    use crate::synth::{SynthConfig, generate};

    /// Contamination moves the local level by ±20 %: columns compared with their same-site
    /// neighbours label the contaminated frame as they label the clean one.
    #[test]
    fn a_contaminated_frame_labels_as_a_clean_one() {
        use crate::score::score_frame;
        use crate::synth::DefectType;
        let (w, h) = (384, 384);
        let mut flagged_counts = Vec::new();
        for contamination in [0.0, 0.2] {
            let cfg = SynthConfig {
                frames: 1,
                width: w,
                height: h,
                seed: 5,
                rotation_deg: Some(9.0),
                vs1_fraction: 0.0,
                vs2_fraction: 0.02,
                metal_vacancy_fraction: 0.01,
                contamination,
                ..SynthConfig::default()
            };
            let s = generate(&cfg).expect("gen");
            let labels = label(&s.movie.frames[0], &LabelMethod::default()).expect("label");
            let flagged = labels.flagged_points();
            let score = score_frame(&flagged, &s.truth_of(0), 3.0, w, h, 8.0);
            eprintln!("contamination {contamination}: {}", score.summary());
            for kind in [DefectType::MoW, DefectType::VS2, DefectType::VM] {
                assert!(
                    score.recall_of(kind) >= 0.95,
                    "contamination {contamination}: {kind:?} recall {}",
                    score.recall_of(kind)
                );
            }
            assert!(
                score.precision() >= 0.9,
                "contamination {contamination}: precision {}",
                score.precision()
            );
            flagged_counts.push(flagged.len());
        }
        let (a, b) = (flagged_counts[0] as f32, flagged_counts[1] as f32);
        assert!(
            (a - b).abs() <= 0.1 * a.max(b),
            "flagged {a} clean vs {b} contaminated"
        );
    }
}

#[cfg(test)]
mod stability {
    use super::super::{LabelMethod, label};
    use crate::synth::{SynthConfig, generate};

    /// A static specimen seen in frames that differ by sub-pixel drift, scan jitter and fresh
    /// noise is labelled the same in every frame: the dopants and vacancies in all of them; the
    /// chance flags (about one in five here) differ from frame to frame, so that time tells them
    /// apart.
    #[test]
    fn a_static_specimen_shifted_and_renoised_labels_the_same() {
        let cfg = SynthConfig {
            frames: 4,
            width: 384,
            height: 384,
            seed: 12,
            vs1_fraction: 0.0,
            vs2_fraction: 0.02,
            metal_vacancy_fraction: 0.01,
            creation_rate: 0.0,
            hop_probability: 0.0,
            drift_px: 0.4,
            ..SynthConfig::default()
        };
        let s = generate(&cfg).expect("gen");
        let mut flagged: Vec<Vec<(f32, f32)>> = Vec::new();
        for (f, frame) in s.movie.frames.iter().enumerate() {
            let labels = label(frame, &LabelMethod::default()).expect("label");
            let (dx, dy) = s.drift[f];
            // Back in the specimen's frame.
            flagged.push(
                labels
                    .flagged_points()
                    .iter()
                    .map(|&(x, y)| (x - dx as f32, y - dy as f32))
                    .collect(),
            );
            // Every true defect away from the edge is flagged in this frame.
            for t in s.truth_of(f) {
                if t.x < 12.0 || t.y < 12.0 || t.x > 371.0 || t.y > 371.0 {
                    continue;
                }
                assert!(
                    labels
                        .flagged_points()
                        .iter()
                        .any(|&(x, y)| (x - t.x).hypot(y - t.y) < 3.0),
                    "frame {f}: {:?} at ({:.1}, {:.1}) not flagged",
                    t.kind,
                    t.x,
                    t.y
                );
            }
        }
        // Chance flags do not persist: the flags of frame 0 found again in every later frame
        // (within 1.5 px) all lie on true defects, and they are most of frame 0's flags.
        let persistent: Vec<&(f32, f32)> = flagged[0]
            .iter()
            .filter(|a| {
                flagged[1..]
                    .iter()
                    .all(|later| later.iter().any(|b| (a.0 - b.0).hypot(a.1 - b.1) < 1.5))
            })
            .collect();
        let truth0 = s.truth_of(0);
        for p in &persistent {
            assert!(
                truth0.iter().any(|t| (t.x - p.0).hypot(t.y - p.1) < 3.0),
                "a flag at ({:.1}, {:.1}) persists in every frame but is no defect",
                p.0,
                p.1
            );
        }
        assert!(
            persistent.len() * 3 >= flagged[0].len() * 2,
            "{} of {} flags persist",
            persistent.len(),
            flagged[0].len()
        );
    }
}
