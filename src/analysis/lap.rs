//! Linear assignment: minimum-cost one-to-one matching (Hungarian method, shortest augmenting
//! paths with potentials, O(n³)), and the sparse linking problem built on it that trackers need:
//! sources and targets with a maximum link cost, each free to stay unlinked at a fixed cost.

/// Minimum-cost perfect assignment of a square `n`×`n` cost matrix (row-major, finite values).
/// Returns `assignment[row] = column`.
pub fn hungarian(cost: &[f64], n: usize) -> Vec<usize> {
    debug_assert_eq!(cost.len(), n * n);
    // 1-based arrays; p[j] = row matched to column j, way[j] = previous column on the path.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0; n];
    for j in 1..=n {
        if p[j] > 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

/// Optimal one-to-one links between `n_sources` and `n_targets` given the allowed candidate
/// links `(source, target, cost)`; every source and target may also stay unlinked at
/// `unlinked_cost` (TrackMate's alternative cost). Candidates are split into connected
/// components first, so the work grows with the size of the largest cluster of nearby points,
/// not with the number of points. Returns the chosen `(source, target)` pairs.
pub fn sparse_links(
    n_sources: usize,
    n_targets: usize,
    candidates: &[(usize, usize, f64)],
    unlinked_cost: f64,
) -> Vec<(usize, usize)> {
    // Union-find over sources (0..ns) and targets (ns..ns+nt).
    let mut parent: Vec<usize> = (0..n_sources + n_targets).collect();
    fn find(parent: &mut [usize], mut a: usize) -> usize {
        while parent[a] != a {
            parent[a] = parent[parent[a]];
            a = parent[a];
        }
        a
    }
    for &(s, t, _) in candidates {
        let (a, b) = (find(&mut parent, s), find(&mut parent, n_sources + t));
        if a != b {
            parent[a] = b;
        }
    }
    let mut groups: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for (k, &(s, _, _)) in candidates.iter().enumerate() {
        let root = find(&mut parent, s);
        groups.entry(root).or_default().push(k);
    }
    let mut links = Vec::new();
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    for root in roots {
        let edges = &groups[&root];
        let mut srcs: Vec<usize> = edges.iter().map(|&k| candidates[k].0).collect();
        let mut tgts: Vec<usize> = edges.iter().map(|&k| candidates[k].1).collect();
        srcs.sort_unstable();
        srcs.dedup();
        tgts.sort_unstable();
        tgts.dedup();
        let (ns, nt) = (srcs.len(), tgts.len());
        // Block matrix [[C, A_s], [A_t, Cᵀ]]: C real links, A diagonal "stay unlinked" costs;
        // the lower-right block lets unused alternatives pair up at no extra freedom.
        let n = ns + nt;
        let blocked = 1e3 * unlinked_cost.max(1.0) * n as f64;
        let mut cost = vec![blocked; n * n];
        for &k in edges {
            let (s, t, c) = candidates[k];
            let (i, j) = (idx(&srcs, s), idx(&tgts, t));
            cost[i * n + j] = cost[i * n + j].min(c);
            cost[(ns + j) * n + nt + i] = cost[(ns + j) * n + nt + i].min(c);
        }
        for i in 0..ns {
            cost[i * n + nt + i] = unlinked_cost;
        }
        for j in 0..nt {
            cost[(ns + j) * n + j] = unlinked_cost;
        }
        let a = hungarian(&cost, n);
        for i in 0..ns {
            let j = a[i];
            if j < nt && cost[i * n + j] < blocked {
                links.push((srcs[i], tgts[j]));
            }
        }
    }
    links.sort_unstable();
    links
}

fn idx(sorted: &[usize], v: usize) -> usize {
    sorted.binary_search(&v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_beats_greedy() {
        // Greedy takes (0,0)=1 and is then forced into (1,1)=10: total 11. Optimal is 2 + 3.
        let cost = [1.0, 2.0, 3.0, 10.0];
        assert_eq!(hungarian(&cost, 2), vec![1, 0]);
    }

    #[test]
    fn hungarian_matches_brute_force() {
        let n = 5;
        let cost: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 + 11) % 17) as f64 + 0.1 * k as f64)
            .collect();
        let a = hungarian(&cost, n);
        let total = |p: &[usize]| (0..n).map(|i| cost[i * n + p[i]]).sum::<f64>();
        let mut best = f64::INFINITY;
        let mut perm: Vec<usize> = (0..n).collect();
        permute(&mut perm, 0, &mut |p| best = best.min(total(p)));
        assert!((total(&a) - best).abs() < 1e-9);
    }

    fn permute(p: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
        if k == p.len() {
            f(p);
            return;
        }
        for i in k..p.len() {
            p.swap(k, i);
            permute(p, k + 1, f);
            p.swap(k, i);
        }
    }

    #[test]
    fn sparse_links_leave_expensive_pairs_unlinked() {
        // Source 0 near target 0; source 1's only candidate costs more than staying unlinked twice.
        let cand = [(0, 0, 1.0), (1, 0, 3.0), (1, 1, 50.0)];
        let links = sparse_links(2, 2, &cand, 10.0);
        assert_eq!(links, vec![(0, 0)]);
    }

    #[test]
    fn sparse_links_resolve_competition_optimally() {
        // Two sources compete for target 0; the optimum gives source 1 target 0.
        let cand = [(0, 0, 1.0), (0, 1, 2.0), (1, 0, 1.5)];
        let links = sparse_links(2, 2, &cand, 100.0);
        assert_eq!(links, vec![(0, 1), (1, 0)]);
    }
}
