//! Lattice-free areas inside a frame: a hole through the film, vacuum at its edge, an
//! amorphous patch. Their columns are not defects of the lattice and must not pull down the
//! local references of the columns around them.

use super::fit::Window;
use super::{ColumnMeasure, LatticeFit};
use crate::raster::{Raster, median};
use std::collections::{HashMap, HashSet};

/// A brightest-site column is missing when its raw intensity has lost more than this fraction
/// of the way from an intact column down to the empty point of the cell. A single Mo in W
/// loses about 0.56; a missing column about 1 (more where the film is gone).
const MISSING_LOSS: f32 = 0.8;
/// Missing brightest-site columns next to each other, from this many on, are a lattice-free
/// area rather than point defects.
const MIN_AREA_COLUMNS: usize = 3;

/// The point of the unit cell farthest from every column site (fractional coordinates): where
/// the frame shows what no column adds (the hollow of a TMD).
fn emptiest_point(fit: &LatticeFit) -> [f32; 2] {
    let n = 24;
    let mut best = ([0.0, 0.0], f32::NEG_INFINITY);
    for a in 0..n {
        for b in 0..n {
            let (u, v) = (a as f32 / n as f32, b as f32 / n as f32);
            let mut nearest = f32::INFINITY;
            for s in &fit.basis {
                for du in -1..=1 {
                    for dv in -1..=1 {
                        let (p, q) = (u - s[0] + du as f32, v - s[1] + dv as f32);
                        let x = p * fit.a1[0] + q * fit.a2[0];
                        let y = p * fit.a1[1] + q * fit.a2[1];
                        nearest = nearest.min(x.hypot(y));
                    }
                }
            }
            if nearest > best.1 {
                best = ([u, v], nearest);
            }
        }
    }
    best.0
}

/// Mark the columns of lattice-free areas (`lattice_free`): clusters of at least
/// [`MIN_AREA_COLUMNS`] adjacent missing brightest-site columns, and the other sites' columns
/// that have two or more of those as neighbours. The test is against the frame's own levels
/// (an intact column's and the empty point's), not against the local reference, so a hole
/// larger than the reference's neighbourhood is found whole. Returns how many were marked.
pub fn mark_lattice_free(frame: &Raster, fit: &LatticeFit, columns: &mut [ColumnMeasure]) -> usize {
    let window = Window::new(0.3 * fit.nearest_column_px);
    let e = emptiest_point(fit);
    let mut floor = Vec::new();
    let mut bright = Vec::new();
    let mut raw: HashMap<[i32; 2], (usize, f32)> = HashMap::new();
    for (k, c) in columns.iter().enumerate().filter(|(_, c)| c.site == 0) {
        let v = window.sum(frame, None, c.x, c.y);
        bright.push(v);
        raw.insert(c.cell, (k, v));
        let [hx, hy] = fit.cart(c.cell[0] as f32 + e[0], c.cell[1] as f32 + e[1]);
        if hx >= 0.0 && hy >= 0.0 && hx < frame.width as f32 && hy < frame.height as f32 {
            floor.push(window.sum(frame, None, hx, hy));
        }
    }
    if bright.len() < MIN_AREA_COLUMNS || floor.is_empty() {
        return 0;
    }
    let (top, bottom) = (median(&bright), median(&floor));
    if top <= bottom {
        return 0;
    }
    let limit = top - MISSING_LOSS * (top - bottom);
    let missing: HashMap<[i32; 2], usize> = raw
        .iter()
        .filter(|(_, (_, v))| *v < limit)
        .map(|(cell, (k, _))| (*cell, *k))
        .collect();
    // Same-site neighbours: the shortest lattice vectors.
    let steps = fit.offsets_within(0, 0, 1.05 * fit.shortest_vector_px());
    let mut seen: HashSet<[i32; 2]> = HashSet::new();
    let mut free_cells: Vec<[i32; 2]> = Vec::new();
    for &start in missing.keys() {
        if seen.contains(&start) {
            continue;
        }
        let mut component = vec![start];
        seen.insert(start);
        let mut k = 0;
        while k < component.len() {
            let c = component[k];
            for s in &steps {
                let n = [c[0] + s[0], c[1] + s[1]];
                if missing.contains_key(&n) && seen.insert(n) {
                    component.push(n);
                }
            }
            k += 1;
        }
        if component.len() >= MIN_AREA_COLUMNS {
            free_cells.extend(component);
        }
    }
    let mut marked = 0;
    for cell in &free_cells {
        columns[missing[cell]].lattice_free = true;
        marked += 1;
    }
    if free_cells.is_empty() {
        return 0;
    }
    let free: HashSet<[i32; 2]> = free_cells.into_iter().collect();
    // Other sites: free when two or more of their brightest-site neighbours are.
    for site in 1..fit.basis.len() {
        let near = fit.offsets_within(site, 0, 1.15 * fit.nearest_column_px);
        for c in columns.iter_mut().filter(|c| c.site == site) {
            let n = near
                .iter()
                .filter(|d| free.contains(&[c.cell[0] + d[0], c.cell[1] + d[1]]))
                .count();
            if n >= 2 {
                c.lattice_free = true;
                marked += 1;
            }
        }
    }
    marked
}

/// The pixels of the lattice-free areas: the cells (Voronoi cells of the brightest site's
/// lattice) of the lattice-free brightest-site columns, so that n such columns cover n unit
/// cells' area, whatever the frame's sampling.
pub fn lattice_free_mask(
    fit: &LatticeFit,
    columns: &[ColumnMeasure],
    width: usize,
    height: usize,
) -> Vec<bool> {
    let mut mask = vec![false; width * height];
    let (a1, a2) = (fit.a1, fit.a2);
    let steps: Vec<[f32; 2]> = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -1.0)]
        .iter()
        .flat_map(|&(i, j): &(f32, f32)| {
            let d = [i * a1[0] + j * a2[0], i * a1[1] + j * a2[1]];
            [d, [-d[0], -d[1]]]
        })
        .collect();
    let reach = a1[0].hypot(a1[1]).max(a2[0].hypot(a2[1])).ceil() as isize;
    let site = fit.basis[0];
    for c in columns.iter().filter(|c| c.site == 0 && c.lattice_free) {
        let [cx, cy] = fit.cart(c.cell[0] as f32 + site[0], c.cell[1] as f32 + site[1]);
        let (x0, y0) = (cx.round() as isize, cy.round() as isize);
        for y in (y0 - reach).max(0)..(y0 + reach + 1).min(height as isize) {
            for x in (x0 - reach).max(0)..(x0 + reach + 1).min(width as isize) {
                let (px, py) = (x as f32 - cx, y as f32 - cy);
                // Nearer this column than any other of its lattice: 2 p·d ≤ |d|².
                if steps
                    .iter()
                    .all(|d| 2.0 * (px * d[0] + py * d[1]) <= d[0] * d[0] + d[1] * d[1])
                {
                    mask[y as usize * width + x as usize] = true;
                }
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each lattice-free column covers one unit cell's area, and its neighbours stay outside.
    #[test]
    fn the_mask_covers_one_cell_per_lattice_free_column() {
        let a = 20.0f32;
        let fit = LatticeFit {
            a1: [a, 0.0],
            a2: [-0.5 * a, 0.5 * 3f32.sqrt() * a],
            origin: [100.0, 100.0],
            basis: vec![[0.0, 0.0]],
            site_heights: vec![1.0],
            nearest_column_px: a,
        };
        let column = |i: i32, j: i32, free: bool| {
            let [x, y] = fit.cart(i as f32, j as f32);
            ColumnMeasure {
                x,
                y,
                site: 0,
                cell: [i, j],
                intensity: 1.0,
                reference: 1.0,
                z: 0.0,
                flagged: false,
                lattice_free: free,
            }
        };
        let columns = [column(0, 0, true), column(1, 0, true), column(0, 1, false)];
        let mask = lattice_free_mask(&fit, &columns, 200, 200);
        let area = mask.iter().filter(|&&m| m).count() as f32;
        let cell = a * a * 0.5 * 3f32.sqrt();
        assert!(
            (area / (2.0 * cell) - 1.0).abs() < 0.05,
            "{area} vs {}",
            2.0 * cell
        );
        let inside = |x: f32, y: f32| mask[y.round() as usize * 200 + x.round() as usize];
        assert!(inside(columns[0].x, columns[0].y) && inside(columns[1].x, columns[1].y));
        assert!(!inside(columns[2].x, columns[2].y));
    }
}
