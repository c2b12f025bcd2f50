//! Scoring the analysis against a synthetic movie's truth: class agreement (adjusted Rand index,
//! best one-to-one accuracy), recovered frame-to-frame links, and the true transition rates.

use super::DefectAnalysis;
use super::lap::hungarian;
use crate::detect::Detection;
use crate::score::match_points;
use crate::synth::{DefectType, TruthDefect};
use serde::{Deserialize, Serialize};

/// How the analysis compares with the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisScore {
    /// Detections matched to a true defect (within the radius) that have a class.
    pub matched_classified: usize,
    pub adjusted_rand_index: f64,
    /// Accuracy under the best one-to-one map of classes to true types.
    pub best_accuracy: f64,
    /// Counts of true type (rows, `DefectType::ALL` order) × class (columns).
    pub confusion: Vec<Vec<usize>>,
    /// The class each true type maps to (None where no class does).
    pub class_of_type: Vec<(String, Option<usize>)>,
    /// True consecutive-frame links whose both ends were detected, and how many of those are
    /// consecutive detections of one track.
    pub links_detected: usize,
    pub links_recovered: usize,
    /// All true consecutive-frame links.
    pub links_total: usize,
    /// Transition probabilities along the true identities, type × type (types in
    /// `DefectType::ALL` order), with counts.
    pub true_transitions: Vec<Vec<f64>>,
    pub true_transition_counts: Vec<Vec<usize>>,
    /// Largest |measured − true| over transition-matrix entries whose row has ≥ `min_row`
    /// counts in both, after mapping classes to types.
    pub transition_max_error: Option<f64>,
    /// Realised diffusion of each true type along the generator's identities, from the
    /// frame-to-frame steps that keep the type: mean squared step / 4, px²/frame (what the hops
    /// that really happened give, as opposed to the nominal hop rate).
    pub true_d_px2_per_frame: Vec<(String, f64)>,
}

fn type_index(k: DefectType) -> usize {
    DefectType::ALL.iter().position(|&t| t == k).unwrap_or(0)
}

/// Adjusted Rand index of two labelings (Hubert & Arabie 1985).
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len();
    if n < 2 {
        return 1.0;
    }
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![vec![0u64; kb]; ka];
    for (&x, &y) in a.iter().zip(b) {
        table[x][y] += 1;
    }
    let c2 = |v: u64| (v * v.saturating_sub(1)) as f64 / 2.0;
    let sum_ij: f64 = table.iter().flatten().map(|&v| c2(v)).sum();
    let sum_a: f64 = table.iter().map(|r| c2(r.iter().sum())).sum();
    let sum_b: f64 = (0..kb).map(|j| c2(table.iter().map(|r| r[j]).sum())).sum();
    let expected = sum_a * sum_b / c2(n as u64);
    let max = 0.5 * (sum_a + sum_b);
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (sum_ij - expected) / (max - expected)
}

/// Best one-to-one map from labels `a` to labels `b` (Hungarian on the contingency table):
/// (accuracy, map a → b).
pub fn best_map(a: &[usize], b: &[usize]) -> (f64, Vec<Option<usize>>) {
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let n = ka.max(kb).max(1);
    let mut table = vec![0.0; n * n];
    for (&x, &y) in a.iter().zip(b) {
        table[x * n + y] += 1.0;
    }
    let top = table.iter().copied().fold(0.0, f64::max);
    let cost: Vec<f64> = table.iter().map(|v| top - v).collect();
    let assign = hungarian(&cost, n);
    let hits: f64 = (0..n).map(|i| table[i * n + assign[i]]).sum();
    let map = (0..ka)
        .map(|i| (assign[i] < kb && table[i * n + assign[i]] > 0.0).then_some(assign[i]))
        .collect();
    (hits / a.len().max(1) as f64, map)
}

/// Score `a` (made from `detections`) against `truth`, matching within `radius` px.
pub fn score(
    a: &DefectAnalysis,
    detections: &[Detection],
    truth: &[TruthDefect],
    radius: f32,
    min_row: usize,
) -> AnalysisScore {
    let frames = a.frames;
    // truth index → detection index, frame by frame.
    let mut det_of_truth = vec![None; truth.len()];
    for f in 0..frames {
        let ti: Vec<usize> = (0..truth.len()).filter(|&i| truth[i].frame == f).collect();
        let di: Vec<usize> = (0..detections.len())
            .filter(|&i| detections[i].frame == f)
            .collect();
        let tp: Vec<(f32, f32)> = ti.iter().map(|&i| (truth[i].x, truth[i].y)).collect();
        let dp: Vec<(f32, f32)> = di
            .iter()
            .map(|&i| (detections[i].x, detections[i].y))
            .collect();
        for (t, d) in match_points(&dp, &tp, radius) {
            det_of_truth[ti[t]] = Some(di[d]);
        }
    }
    let mut classes = Vec::new();
    let mut types = Vec::new();
    for (t, d) in truth.iter().zip(&det_of_truth) {
        if let Some(c) = d.and_then(|d| a.class[d]) {
            classes.push(c);
            types.push(type_index(t.kind));
        }
    }
    let ari = adjusted_rand_index(&classes, &types);
    let mut confusion = vec![vec![0; a.classes()]; DefectType::ALL.len()];
    for (&t, &c) in types.iter().zip(&classes) {
        confusion[t][c] += 1;
    }
    let (acc, map) = best_map(&types, &classes);
    let class_of_type: Vec<(String, Option<usize>)> = DefectType::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name().to_string(), map.get(i).copied().flatten()))
        .collect();

    // Links along true identities between consecutive frames.
    let mut by_key = std::collections::HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        by_key.insert((t.id, t.frame), i);
    }
    let nt = DefectType::ALL.len();
    let mut counts = vec![vec![0usize; nt]; nt];
    let mut steps = vec![(0.0f64, 0usize); nt];
    let (mut total, mut detected, mut recovered) = (0, 0, 0);
    for (i, t) in truth.iter().enumerate() {
        let Some(&j) = by_key.get(&(t.id, t.frame + 1)) else {
            continue;
        };
        total += 1;
        counts[type_index(t.kind)][type_index(truth[j].kind)] += 1;
        if truth[j].kind == t.kind {
            let k = type_index(t.kind);
            let (dx, dy) = ((truth[j].x - t.x) as f64, (truth[j].y - t.y) as f64);
            steps[k].0 += dx * dx + dy * dy;
            steps[k].1 += 1;
        }
        if let (Some(da), Some(db)) = (det_of_truth[i], det_of_truth[j]) {
            detected += 1;
            if a.tracks.next(da) == Some(db) {
                recovered += 1;
            }
        }
    }
    let rate = |row: &Vec<usize>| {
        let n: usize = row.iter().sum();
        row.iter()
            .map(|&c| if n > 0 { c as f64 / n as f64 } else { f64::NAN })
            .collect::<Vec<f64>>()
    };
    let true_transitions: Vec<Vec<f64>> = counts.iter().map(rate).collect();
    let mut max_err: Option<f64> = None;
    for (ti, row) in counts.iter().enumerate() {
        let Some(ci) = class_of_type[ti].1 else {
            continue;
        };
        let measured_n: usize = a.transitions.counts[ci].iter().sum();
        if row.iter().sum::<usize>() < min_row || measured_n < min_row {
            continue;
        }
        for (tj, _) in row.iter().enumerate() {
            let Some(cj) = class_of_type[tj].1 else {
                continue;
            };
            let e = (a.transitions.probability[ci][cj] - true_transitions[ti][tj]).abs();
            max_err = Some(max_err.map_or(e, |m: f64| m.max(e)));
        }
    }
    AnalysisScore {
        matched_classified: classes.len(),
        adjusted_rand_index: ari,
        best_accuracy: acc,
        confusion,
        class_of_type,
        links_detected: detected,
        links_recovered: recovered,
        links_total: total,
        true_transitions,
        true_transition_counts: counts,
        transition_max_error: max_err,
        true_d_px2_per_frame: DefectType::ALL
            .iter()
            .zip(&steps)
            .map(|(k, &(ss, n))| (k.name().to_string(), ss / 4.0 / n.max(1) as f64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_and_best_map_on_known_labelings() {
        let a = [0, 0, 0, 1, 1, 1, 2, 2];
        let relabelled = [2, 2, 2, 0, 0, 0, 1, 1];
        assert!((adjusted_rand_index(&a, &relabelled) - 1.0).abs() < 1e-12);
        let (acc, map) = best_map(&a, &relabelled);
        assert_eq!(acc, 1.0);
        assert_eq!(map, vec![Some(2), Some(0), Some(1)]);
        // scikit-learn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714…
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.571_428_571).abs() < 1e-6);
        let (acc, _) = best_map(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((acc - 0.75).abs() < 1e-12);
    }
}
