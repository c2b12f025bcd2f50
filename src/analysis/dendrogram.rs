//! Ward hierarchical clustering (kodama) of the patch features, laid out like scipy's
//! `dendrogram(truncate_mode="lastp")`.
//!
//! Ward needs the condensed distance matrix, n(n−1)/2 values. Above `max_leaves` samples a random
//! subsample of that size is clustered instead (stated in the result), so memory stays at
//! `max_leaves²/2 × 8` bytes: 16 MB for the default 2000.

use crate::error::{Error, Result};
use kodama::{Method, linkage};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A dendrogram truncated to its top `leaves.len()` clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dendrogram {
    /// Samples clustered (all, or the subsample).
    pub samples: usize,
    /// Samples available before subsampling.
    pub total: usize,
    /// Shown leaves in plot order: how many samples each holds and their majority class.
    pub leaves: Vec<Leaf>,
    /// Merges among the shown leaves, as scipy's `icoord`/`dcoord`: a ∩-shaped link from
    /// (left_x, left_height) up to `height` and down to (right_x, right_height).
    pub links: Vec<Link>,
    /// Merge heights of the whole tree, highest first (for choosing a number of classes).
    pub top_heights: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    pub x: f64,
    pub size: usize,
    pub majority_class: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub left_x: f64,
    pub left_height: f64,
    pub right_x: f64,
    pub right_height: f64,
    pub height: f64,
}

/// Ward dendrogram of the rows of `features`, truncated to `show` leaves. `labels` (per row)
/// gives each shown leaf its majority class.
pub fn ward(
    features: &Array2<f64>,
    labels: Option<&[usize]>,
    max_leaves: usize,
    show: usize,
    seed: u64,
) -> Result<Dendrogram> {
    let total = features.nrows();
    if total < 2 {
        return Err(Error::invalid(format!(
            "a dendrogram needs at least 2 defects, got {total}"
        )));
    }
    if max_leaves < 2 || show < 1 {
        return Err(Error::invalid(
            "dendrogram: need at least 2 samples and 1 shown leaf",
        ));
    }
    let rows: Vec<usize> = if total > max_leaves {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut r = sample(&mut rng, total, max_leaves).into_vec();
        r.sort_unstable();
        r
    } else {
        (0..total).collect()
    };
    let x = features.select(Axis(0), &rows);
    let n = rows.len();
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let d: f64 = (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum();
            condensed.push(d.sqrt());
        }
    }
    let tree = linkage(&mut condensed, n, Method::Ward);
    let steps = tree.steps();
    // Cluster ids: 0..n are samples, n + s is the cluster made by step s. The shown leaves are
    // the clusters alive after the first n − p merges.
    let k = n - show.min(n);
    let mut parent_step = vec![usize::MAX; n + steps.len()];
    for (i, s) in steps.iter().enumerate() {
        parent_step[s.cluster1] = i;
        parent_step[s.cluster2] = i;
    }
    let is_shown: Vec<bool> = (0..n + steps.len())
        .map(|id| id < n + k && parent_step[id] >= k)
        .collect();
    // Size and class counts of each shown leaf, found by walking every sample up to it.
    let mut leaf_counts: HashMap<usize, BTreeMap<usize, usize>> = HashMap::new();
    for i in 0..n {
        let mut id = i;
        while !is_shown[id] {
            id = n + parent_step[id];
        }
        let class = labels.map_or(usize::MAX, |l| l[rows[i]]);
        *leaf_counts.entry(id).or_default().entry(class).or_insert(0) += 1;
    }
    let mut walk = Walk {
        n,
        steps,
        leaf_counts,
        with_classes: labels.is_some(),
        is_shown,
        next_x: 5.0,
        leaves: Vec::new(),
        links: Vec::new(),
    };
    walk.place(n + steps.len() - 1);
    let (leaves, links) = (walk.leaves, walk.links);
    let mut top_heights: Vec<f64> = steps
        .iter()
        .rev()
        .take(30)
        .map(|s| s.dissimilarity)
        .collect();
    top_heights.sort_by(|a, b| b.total_cmp(a));
    Ok(Dendrogram {
        samples: n,
        total,
        leaves,
        links,
        top_heights,
    })
}

/// Depth-first layout of the top of the tree: leaves at x = 5, 15, 25, … as scipy does.
struct Walk<'a> {
    n: usize,
    steps: &'a [kodama::Step<f64>],
    /// Class counts of each shown leaf (class usize::MAX when there are no labels).
    leaf_counts: HashMap<usize, BTreeMap<usize, usize>>,
    with_classes: bool,
    is_shown: Vec<bool>,
    next_x: f64,
    leaves: Vec<Leaf>,
    links: Vec<Link>,
}

impl Walk<'_> {
    /// Lay out cluster `id`; returns its (x, height).
    fn place(&mut self, id: usize) -> (f64, f64) {
        if self.is_shown[id] {
            let x = self.next_x;
            self.next_x += 10.0;
            let counts = self.leaf_counts.get(&id);
            let size = counts.map_or(0, |c| c.values().sum());
            let majority_class = counts
                .and_then(|c| c.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))))
                .map(|(&c, _)| c)
                .filter(|_| self.with_classes);
            self.leaves.push(Leaf {
                x,
                size,
                majority_class,
            });
            return (x, 0.0);
        }
        let s = &self.steps[id - self.n];
        let (c1, c2, height) = (s.cluster1, s.cluster2, s.dissimilarity);
        let (lx, lh) = self.place(c1);
        let (rx, rh) = self.place(c2);
        self.links.push(Link {
            left_x: lx,
            left_height: lh,
            right_x: rx,
            right_height: rh,
            height,
        });
        ((lx + rx) / 2.0, height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_groups() -> Array2<f64> {
        let mut rows = Vec::new();
        for (g, &(cx, cy)) in [(0.0, 0.0), (10.0, 0.0), (0.0, 30.0)].iter().enumerate() {
            for i in 0..(10 + 5 * g) {
                rows.extend_from_slice(&[cx + (i % 3) as f64 * 0.1, cy + (i % 5) as f64 * 0.1]);
            }
        }
        Array2::from_shape_vec((rows.len() / 2, 2), rows).expect("shape")
    }

    #[test]
    fn three_leaves_hold_the_three_groups() {
        let x = three_groups();
        let labels: Vec<usize> = (0..x.nrows())
            .map(|i| {
                if i < 10 {
                    0
                } else if i < 25 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let d = ward(&x, Some(&labels), 1000, 3, 0).expect("ward");
        assert_eq!(d.samples, 45);
        let mut sizes: Vec<usize> = d.leaves.iter().map(|l| l.size).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![10, 15, 20]);
        assert_eq!(d.links.len(), 2);
        // The far group (0, 30) joins last, at the top.
        let top = d.links.iter().map(|l| l.height).fold(0.0, f64::max);
        assert_eq!(top, d.top_heights[0]);
        let mut classes: Vec<Option<usize>> = d.leaves.iter().map(|l| l.majority_class).collect();
        classes.sort();
        assert_eq!(classes, vec![Some(0), Some(1), Some(2)]);
        // Each link spans two distinct x positions and rises above its children.
        for l in &d.links {
            assert!(l.left_x != l.right_x);
            assert!(l.height >= l.left_height && l.height >= l.right_height);
        }
    }

    #[test]
    fn subsamples_above_the_limit_and_refuses_one_point() {
        let x = three_groups();
        let d = ward(&x, None, 20, 5, 1).expect("ward");
        assert_eq!((d.samples, d.total), (20, 45));
        assert_eq!(d.leaves.iter().map(|l| l.size).sum::<usize>(), 20);
        assert!(ward(&x.slice(ndarray::s![..1, ..]).to_owned(), None, 20, 5, 1).is_err());
    }
}
