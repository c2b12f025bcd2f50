//! The single-frame oracle: how well one frame can tell each kind of defect from an intact
//! column when every column's true position is known (which no detector knows). A matched filter
//! (the column's own profile) measures every true site, each site is compared with its
//! same-site neighbours (the local reference that labelling uses), and the separation of defect
//! and intact sites is reported as d′ and as the best recall at precision ≥ 0.9. It marks the
//! physical limit beside what our labelling and network find.

use super::columns::Profiles;
use super::{DefectType, SynthMovie};
use crate::error::Result;
use crate::lattice::{ColumnMeasure, LOCAL_REFERENCE_CELLS, local_reference};
use crate::raster::mean_std;
use serde::Serialize;

/// What the oracle can do for one kind of defect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OracleRow {
    pub kind: DefectType,
    /// Defect sites measured (over all frames asked).
    pub n: usize,
    /// Separation of defect and intact sites of the same sublattice in pooled standard
    /// deviations.
    pub d_prime: f64,
    /// Best recall with precision ≥ 0.9 against the intact sites, one threshold on the
    /// deviation from the local reference.
    pub recall_at_p90: f64,
}

/// The oracle over `frames` of `s`, pooled.
pub fn oracle(s: &SynthMovie, frames: impl IntoIterator<Item = usize>) -> Result<Vec<OracleRow>> {
    let cfg = &s.config;
    let profiles = Profiles::new(cfg.column_model, cfg.pixel_size_nm, cfg.source_fwhm_nm)?;
    let (host, _) = cfg.material.metals();
    let pair = cfg
        .material
        .chalcogen_column(2, 0)
        .unwrap_or(super::ColumnKind::S2);
    let a = cfg.lattice_a_px();
    let nearest = a / 3f64.sqrt();
    // Square root of the cell's area, in pixels.
    let cell = cfg.cell_area_px().sqrt() as f32;
    let r = 0.45 * nearest;
    // Per kind: deviations of defect sites; per sublattice: deviations of intact sites.
    let mut defect: Vec<(DefectType, bool, Vec<f32>)> = Vec::new();
    let mut intact: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    for f in frames {
        let frame = &s.movie.frames[f];
        let background = frame.gaussian_blur(3.0 * cell);
        let sites = s.sites_in(f, r + 2.0);
        let mut columns: Vec<ColumnMeasure> = sites
            .iter()
            .map(|&(x, y, metal)| {
                let kind = if metal { host } else { pair };
                let (mut num, mut den) = (0.0f64, 0.0f64);
                let ri = r.ceil() as isize;
                let (cx, cy) = (x.round() as isize, y.round() as isize);
                for yy in cy - ri..=cy + ri {
                    for xx in cx - ri..=cx + ri {
                        let d = (xx as f64 - x as f64).hypot(yy as f64 - y as f64);
                        if d > r {
                            continue;
                        }
                        let wgt = profiles.at(kind, d);
                        let v = frame.get_clamped(xx, yy) - background.get_clamped(xx, yy);
                        num += wgt * v as f64;
                        den += wgt * wgt;
                    }
                }
                ColumnMeasure {
                    x,
                    y,
                    site: usize::from(!metal),
                    cell: [0, 0],
                    intensity: (num / den.max(1e-30)) as f32,
                    reference: 0.0,
                    z: 0.0,
                    flagged: false,
                    lattice_free: false,
                }
            })
            .collect();
        local_reference(&mut columns, 2, LOCAL_REFERENCE_CELLS * cell);
        let truth = s.truth_of(f);
        for c in &columns {
            match truth
                .iter()
                .find(|t| t.kind != DefectType::Adatom && (t.x - c.x).hypot(t.y - c.y) < 0.5)
            {
                Some(t) => match defect.iter_mut().find(|d| d.0 == t.kind) {
                    Some(d) => d.2.push(c.z),
                    None => defect.push((t.kind, c.site == 0, vec![c.z])),
                },
                None => intact[c.site].push(c.z),
            }
        }
    }
    defect.sort_by_key(|d| d.0);
    Ok(defect
        .into_iter()
        .map(|(kind, metal, z)| {
            let negatives = &intact[usize::from(!metal)];
            OracleRow {
                kind,
                n: z.len(),
                d_prime: d_prime(&z, negatives),
                recall_at_p90: recall_at_precision(&z, negatives, 0.9),
            }
        })
        .collect())
}

/// |mean difference| over the pooled standard deviation.
fn d_prime(positives: &[f32], negatives: &[f32]) -> f64 {
    let (mp, sp) = mean_std(positives);
    let (mn, sn) = mean_std(negatives);
    ((mp - mn).abs() / (0.5 * (sp * sp + sn * sn)).sqrt().max(1e-12)) as f64
}

/// The best recall of `positives` with precision ≥ `precision`, thresholding the score on the
/// side where the positives lie.
fn recall_at_precision(positives: &[f32], negatives: &[f32], precision: f64) -> f64 {
    if positives.is_empty() {
        return 0.0;
    }
    let sign = if mean_std(positives).0 < mean_std(negatives).0 {
        -1.0
    } else {
        1.0
    };
    let mut scored: Vec<(f32, bool)> = positives
        .iter()
        .map(|&z| (sign * z, true))
        .chain(negatives.iter().map(|&z| (sign * z, false)))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut best) = (0usize, 0usize, 0.0f64);
    for (_, positive) in scored {
        if positive {
            tp += 1;
        } else {
            fp += 1;
        }
        if tp as f64 / (tp + fp) as f64 >= precision {
            best = best.max(tp as f64 / positives.len() as f64);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, generate};

    #[test]
    fn separation_measures() {
        let pos = [-5.0, -4.0, -6.0];
        let neg = [0.0, 1.0, -1.0, 0.5, -0.5];
        assert!(d_prime(&pos, &neg) > 4.0);
        assert_eq!(recall_at_precision(&pos, &neg, 0.9), 1.0);
        let mixed = [-5.0, 0.2, 0.1];
        assert!((recall_at_precision(&mixed, &neg, 0.9) - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_oracle_sees_what_the_contrast_allows() {
        let base = SynthConfig {
            frames: 2,
            width: 384,
            height: 384,
            seed: 9,
            vs1_fraction: 0.08,
            ..SynthConfig::default()
        };
        let row = |cfg: &SynthConfig, kind| {
            let s = generate(cfg).expect("gen");
            oracle(&s, 0..2)
                .expect("oracle")
                .into_iter()
                .find(|r| r.kind == kind)
                .expect("row")
        };
        let realistic = row(&base, DefectType::VS1);
        let easy = row(&base.clone().idealised(), DefectType::VS1);
        let mo = row(&base, DefectType::MoW);
        eprintln!("{realistic:?}\n{easy:?}\n{mo:?}");
        assert!(
            easy.d_prime > realistic.d_prime,
            "S2 = 2 S separates better"
        );
        assert!(
            mo.d_prime > 5.0 && mo.recall_at_p90 > 0.95,
            "Mo is plain: {mo:?}"
        );
    }
}
