//! Scoring detections against known truth: one-to-one matching within a radius, per-type recall.

use crate::synth::{DefectType, TruthDefect};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts and rates of one comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// Recall per true type: (found, total).
    pub per_type: BTreeMap<String, (usize, usize)>,
}

impl Score {
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }

    pub fn recall_of(&self, kind: DefectType) -> f64 {
        self.per_type
            .get(kind.name())
            .map_or(0.0, |&(found, total)| ratio(found, total))
    }

    /// Add another score's counts to this one.
    pub fn add(&mut self, other: &Score) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
        for (k, &(f, t)) in &other.per_type {
            let e = self.per_type.entry(k.clone()).or_insert((0, 0));
            e.0 += f;
            e.1 += t;
        }
    }

    /// One line: F1, precision, recall and recall per type.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "F1 {:.3}  precision {:.3}  recall {:.3}",
            self.f1(),
            self.precision(),
            self.recall()
        );
        for (k, &(f, t)) in &self.per_type {
            s.push_str(&format!("  {k} {f}/{t} ({:.3})", ratio(f, t)));
        }
        s
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Pairs `(truth index, found index)` matched one-to-one within `radius`, closest first.
pub fn match_points(
    found: &[(f32, f32)],
    truth: &[(f32, f32)],
    radius: f32,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, f) in found.iter().enumerate() {
            let d = ((t.0 - f.0).powi(2) + (t.1 - f.1).powi(2)).sqrt();
            if d <= radius {
                pairs.push((d, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut t_used = vec![false; truth.len()];
    let mut f_used = vec![false; found.len()];
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if !t_used[i] && !f_used[j] {
            t_used[i] = true;
            f_used[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// Match `found` points to `truth` one-to-one within `radius` px, closest pairs first.
/// Truth within `margin` px of the frame edge is ignored, and so are detections there
/// (detection drops those points too). With defects further apart than 2 × radius this equals
/// the optimal assignment.
pub fn score_frame(
    found: &[(f32, f32)],
    truth: &[TruthDefect],
    radius: f32,
    width: usize,
    height: usize,
    margin: f32,
) -> Score {
    let inside = |x: f32, y: f32| {
        x >= margin
            && y >= margin
            && x <= width as f32 - 1.0 - margin
            && y <= height as f32 - 1.0 - margin
    };
    let truth: Vec<&TruthDefect> = truth.iter().filter(|t| inside(t.x, t.y)).collect();
    let found: Vec<(f32, f32)> = found
        .iter()
        .copied()
        .filter(|&(x, y)| inside(x, y))
        .collect();
    let tpos: Vec<(f32, f32)> = truth.iter().map(|t| (t.x, t.y)).collect();
    let mut t_used = vec![false; truth.len()];
    for (i, _) in match_points(&found, &tpos, radius) {
        t_used[i] = true;
    }
    let mut per_type = BTreeMap::new();
    for k in DefectType::ALL {
        per_type.insert(k.name().to_string(), (0, 0));
    }
    for (t, &used) in truth.iter().zip(&t_used) {
        let e = per_type.entry(t.kind.name().to_string()).or_insert((0, 0));
        e.1 += 1;
        if used {
            e.0 += 1;
        }
    }
    let tp = t_used.iter().filter(|&&u| u).count();
    Score {
        true_positives: tp,
        false_positives: found.len() - tp,
        false_negatives: truth.len() - tp,
        per_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(x: f32, y: f32, kind: DefectType) -> TruthDefect {
        TruthDefect {
            frame: 0,
            x,
            y,
            kind,
            id: 0,
        }
    }

    #[test]
    fn one_to_one_matching() {
        let truth = [
            t(10.0, 10.0, DefectType::VS1),
            t(30.0, 30.0, DefectType::MoW),
        ];
        // Two detections near the first truth: only one may match.
        let found = [(10.5, 10.0), (11.0, 11.0), (50.0, 50.0)];
        let s = score_frame(&found, &truth, 3.0, 100, 100, 0.0);
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (1, 2, 1)
        );
        assert_eq!(s.per_type["V_S1"], (1, 1));
        assert_eq!(s.per_type["Mo_W"], (0, 1));
        assert!((s.f1() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn edge_margin_excludes_both_sides() {
        let truth = [t(1.0, 50.0, DefectType::VS1)];
        let s = score_frame(&[(60.0, 1.0)], &truth, 3.0, 100, 100, 4.0);
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (0, 0, 0)
        );
    }
}
