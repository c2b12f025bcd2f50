//! The conditions benchmark: how well frame-by-frame lattice labelling finds each kind of defect
//! across materials, pixel sizes, doses, chalcogen contrast and contamination, scored against
//! the generator's truth, with the single-frame oracle ([`crate::synth::oracle`]) beside it so
//! that the physical limit is visible.

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::lattice::{LabelMethod, label_in};
use crate::score::score_frame;
use crate::synth::oracle::{OracleRow, oracle};
use crate::synth::{ColumnModel, DefectType, Material, SynthConfig, generate};
use serde::Serialize;

/// One set of imaging conditions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub material: Material,
    pub pixel_size_nm: f64,
    pub dose_e_per_a2: f64,
    pub column_model: ColumnModel,
    pub contamination: f64,
}

impl Condition {
    /// The chalcogen pair contrast in words: "pair 1.45", "pair natural" or "Z^1.7".
    pub fn contrast(&self) -> String {
        match self.column_model {
            ColumnModel::Multislice {
                pair_ratio: Some(r),
            } => format!("pair {r:.2}"),
            ColumnModel::Multislice { pair_ratio: None } => "pair natural".into(),
            ColumnModel::ZPower { exponent } => format!("Z^{exponent}"),
        }
    }
}

/// The grid to sweep: every combination of the listed values.
#[derive(Debug, Clone)]
pub struct Grid {
    pub materials: Vec<Material>,
    pub pixel_sizes_nm: Vec<f64>,
    pub doses_e_per_a2: Vec<f64>,
    pub column_models: Vec<ColumnModel>,
    pub contaminations: Vec<f64>,
    /// Frames per condition and their size (square), and the seed of the first condition.
    pub frames: usize,
    pub size: usize,
    pub seed: u64,
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            materials: Material::ALL.to_vec(),
            pixel_sizes_nm: vec![0.0125, 0.025],
            doses_e_per_a2: vec![5e4, 2e5, 1e6],
            column_models: vec![
                ColumnModel::default(),
                ColumnModel::ZPower { exponent: 1.7 },
            ],
            contaminations: vec![0.0, 0.2],
            frames: 2,
            size: 384,
            seed: 1,
        }
    }
}

impl Grid {
    pub fn conditions(&self) -> Vec<Condition> {
        let mut out = Vec::new();
        for &material in &self.materials {
            for &pixel_size_nm in &self.pixel_sizes_nm {
                for &dose_e_per_a2 in &self.doses_e_per_a2 {
                    for &column_model in &self.column_models {
                        for &contamination in &self.contaminations {
                            out.push(Condition {
                                material,
                                pixel_size_nm,
                                dose_e_per_a2,
                                column_model,
                                contamination,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// Labelling and oracle for one kind of defect under one condition.
#[derive(Debug, Clone, Serialize)]
pub struct KindResult {
    pub kind: DefectType,
    /// True defects of this kind scored (all frames).
    pub truth: usize,
    pub label_recall: f64,
    pub oracle: Option<OracleRow>,
}

/// One condition's results.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionResult {
    pub condition: Condition,
    pub label_precision: f64,
    pub label_f1: f64,
    pub kinds: Vec<KindResult>,
}

/// Run every condition of `grid`: generate, label each frame with the default lattice labelling,
/// score against the truth, and run the oracle on the same frames.
pub fn sweep(grid: &Grid, ctx: &JobCtx) -> Result<Vec<ConditionResult>> {
    if grid.frames == 0 || grid.size < 64 {
        return Err(Error::invalid(format!(
            "conditions: need ≥ 1 frame of ≥ 64 px, got {} of {}",
            grid.frames, grid.size
        )));
    }
    let conditions = grid.conditions();
    ctx.begin("conditions", conditions.len() as u64);
    conditions
        .into_iter()
        .enumerate()
        .map(|(i, condition)| {
            let r = run_condition(grid, condition, grid.seed + i as u64, ctx)?;
            ctx.step(i as u64 + 1)?;
            Ok(r)
        })
        .collect()
}

fn run_condition(
    grid: &Grid,
    condition: Condition,
    seed: u64,
    ctx: &JobCtx,
) -> Result<ConditionResult> {
    let cfg = SynthConfig {
        frames: grid.frames,
        width: grid.size,
        height: grid.size,
        seed,
        material: condition.material,
        pixel_size_nm: condition.pixel_size_nm,
        dose_e_per_a2: condition.dose_e_per_a2,
        column_model: condition.column_model,
        contamination: condition.contamination,
        ..SynthConfig::default()
    };
    let s = generate(&cfg)?;
    // Matching radius: 0.3 of the metal–chalcogen distance, as the truth masks.
    let radius = cfg.mask_radius_px();
    let margin = 2.0 * radius + 4.0;
    let mut total = crate::score::Score::default();
    for f in 0..grid.frames {
        let labels = label_in(&s.movie.frames[f], &LabelMethod::default(), ctx)?;
        total.add(&score_frame(
            &labels.flagged_points(),
            &s.truth_of(f),
            radius,
            grid.size,
            grid.size,
            margin,
        ));
    }
    let oracle_rows = oracle(&s, 0..grid.frames)?;
    let kinds = DefectType::ALL
        .into_iter()
        .filter_map(|kind| {
            let &(_, truth) = total.per_type.get(kind.name())?;
            (truth > 0).then(|| KindResult {
                kind,
                truth,
                label_recall: total.recall_of(kind),
                oracle: oracle_rows.iter().find(|r| r.kind == kind).cloned(),
            })
        })
        .collect();
    Ok(ConditionResult {
        condition,
        label_precision: total.precision(),
        label_f1: total.f1(),
        kinds,
    })
}

/// The results as a Markdown table: one row per condition and kind.
pub fn markdown(results: &[ConditionResult]) -> String {
    let mut s = String::from(
        "| material | pm/px | e/Å² | contrast | contam. | kind | n | labels recall | labels precision | oracle d′ | oracle recall @ P 0.9 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let c = &r.condition;
        for k in &r.kinds {
            let (d, rec) = k.oracle.as_ref().map_or(("–".into(), "–".into()), |o| {
                (
                    format!("{:.1}", o.d_prime),
                    format!("{:.2}", o.recall_at_p90),
                )
            });
            s.push_str(&format!(
                "| {} | {:.1} | {:.0e} | {} | ±{:.0} % | {} | {} | {:.2} | {:.2} | {} | {} |\n",
                c.material.name(),
                c.pixel_size_nm * 1000.0,
                c.dose_e_per_a2,
                c.contrast(),
                c.contamination * 100.0,
                k.kind.name(),
                k.truth,
                k.label_recall,
                r.label_precision,
                d,
                rec
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_sweep_scores_every_condition() {
        let grid = Grid {
            materials: vec![Material::WS2],
            pixel_sizes_nm: vec![0.0125],
            doses_e_per_a2: vec![2e5],
            column_models: vec![
                ColumnModel::default(),
                ColumnModel::ZPower { exponent: 1.7 },
            ],
            contaminations: vec![0.2],
            frames: 1,
            size: 256,
            seed: 4,
        };
        let results = sweep(&grid, &JobCtx::detached()).expect("sweep");
        assert_eq!(results.len(), 2);
        let table = markdown(&results);
        assert!(
            table.contains("| WS2 | 12.5 | 2e5 | pair 1.45 | ±20 % | Mo_W |"),
            "{table}"
        );
        for r in &results {
            let mo = r
                .kinds
                .iter()
                .find(|k| k.kind == DefectType::MoW)
                .expect("Mo row");
            assert!(mo.label_recall >= 0.9, "{table}");
            assert!(
                mo.oracle.as_ref().is_some_and(|o| o.recall_at_p90 >= 0.9),
                "{table}"
            );
        }
        let bad = Grid { frames: 0, ..grid };
        assert!(sweep(&bad, &JobCtx::detached()).is_err());
    }
}
