//! Site time series: every column of the lattice, named by its cell and basis site, followed
//! through the movie and measured against its same-site neighbours in every frame.

use crate::detect::{Region, regions_of_mask};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::lattice::{LatticeFit, lattice_free_mask, measure_frame, refit_lattice};
use crate::movie::register::drift;
use crate::raster::{Raster, median_mad_sigma};
use rayon::prelude::*;
use std::collections::HashMap;

/// A column's name: its cell's lattice indices and its index in the basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey {
    pub cell: [i32; 2],
    pub site: usize,
}

/// One column in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Measured centroid in the frame's own pixels.
    pub x: f32,
    pub y: f32,
    /// Background-corrected, Gaussian-weighted intensity and its local reference.
    pub intensity: f32,
    pub reference: f32,
    /// `intensity − reference` in robust standard deviations of that deviation over the
    /// frame's columns of the same site: the unit of the column's noise (shot noise,
    /// contamination left over), so the model's emissions need no per-frame scale. NaN where
    /// the column lies outside the frame or the frame's lattice could not be followed.
    pub z: f32,
}

impl Observation {
    const MISSING: Observation = Observation {
        x: f32::NAN,
        y: f32::NAN,
        intensity: f32::NAN,
        reference: f32::NAN,
        z: f32::NAN,
    };

    pub fn is_missing(&self) -> bool {
        !self.z.is_finite()
    }
}

/// Every column site of the movie's lattice and its measurement in every frame.
#[derive(Debug, Clone)]
pub struct SiteSeries {
    /// The lattice of each frame; `None` where it could not be followed (that frame's
    /// observations are missing).
    pub fits: Vec<Option<LatticeFit>>,
    pub keys: Vec<SiteKey>,
    /// `observations[frame][site]`.
    pub observations: Vec<Vec<Observation>>,
    /// For each site, the same-site columns one shortest lattice vector away.
    pub neighbours: Vec<Vec<usize>>,
    /// Columns found in lattice-free areas (holes, vacuum) in each frame; their observations
    /// are missing.
    pub lattice_free: Vec<usize>,
    /// The lattice-free areas of every frame as regions (area, perimeter, centroid), to be
    /// followed through the movie like the network's extended regions.
    pub free_regions: Vec<Region>,
}

impl SiteSeries {
    pub fn frames(&self) -> usize {
        self.observations.len()
    }

    /// The index of the site named `key`.
    pub fn index_of(&self, key: SiteKey) -> Option<usize> {
        self.keys.binary_search(&key).ok()
    }

    /// The sites of basis site `other` within `reach` (in units of the nearest column
    /// distance) of each site of basis site `site`, by index.
    pub fn adjacent(
        &self,
        fit: &LatticeFit,
        site: usize,
        other: usize,
        reach: f32,
    ) -> Vec<(usize, Vec<usize>)> {
        let offsets = fit.offsets_within(site, other, reach * fit.nearest_column_px);
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.site == site)
            .map(|(i, k)| {
                let near = offsets
                    .iter()
                    .filter_map(|d| {
                        self.index_of(SiteKey {
                            cell: [k.cell[0] + d[0], k.cell[1] + d[1]],
                            site: other,
                        })
                    })
                    .collect();
                (i, near)
            })
            .collect()
    }
}

/// Follow `fit0` (frame 0's lattice) through `frames` and measure every column in every frame.
/// Each frame's lattice starts from the last one followed, moved by the drift measured between
/// the frames by cross-correlation, and is refined on the frame's own columns (see
/// [`refit_lattice`]).
pub fn site_series(frames: &[Raster], fit0: &LatticeFit, ctx: &JobCtx) -> Result<SiteSeries> {
    if frames.is_empty() {
        return Err(Error::invalid("site series: the movie has no frames"));
    }
    let offsets = if frames.len() > 1 {
        drift(frames, ctx)?.offsets
    } else {
        vec![(0.0, 0.0)]
    };
    let mut fits = vec![Some(fit0.clone())];
    let mut last = (fit0.clone(), offsets[0]);
    for (t, frame) in frames.iter().enumerate().skip(1) {
        ctx.check()?;
        let shift = (
            (offsets[t].0 - last.1.0) as f32,
            (offsets[t].1 - last.1.1) as f32,
        );
        match refit_lattice(frame, &last.0, shift) {
            Ok(fit) => {
                last = (fit.clone(), offsets[t]);
                fits.push(Some(fit));
            }
            Err(_) => fits.push(None),
        }
    }
    ctx.begin("measuring columns", frames.len() as u64);
    let measured: Vec<Vec<crate::lattice::ColumnMeasure>> = frames
        .par_iter()
        .zip(&fits)
        .map(|(frame, fit)| {
            fit.as_ref()
                .map_or_else(Vec::new, |f| measure_frame(frame, f))
        })
        .collect();
    ctx.check()?;
    let mut keys: Vec<SiteKey> = measured
        .iter()
        .flatten()
        .map(|c| SiteKey {
            cell: c.cell,
            site: c.site,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let index: HashMap<SiteKey, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    let observations = measured
        .iter()
        .map(|cols| {
            let mut row = vec![Observation::MISSING; keys.len()];
            // A lattice-free column (a hole) says nothing about its site's state: missing.
            for c in cols.iter().filter(|c| !c.lattice_free) {
                let i = index[&SiteKey {
                    cell: c.cell,
                    site: c.site,
                }];
                row[i] = Observation {
                    x: c.x,
                    y: c.y,
                    intensity: c.intensity,
                    reference: c.reference,
                    z: c.z,
                };
            }
            row
        })
        .collect();
    let lattice_free = measured
        .iter()
        .map(|cols| cols.iter().filter(|c| c.lattice_free).count())
        .collect();
    let free_regions = measured
        .iter()
        .zip(&fits)
        .zip(frames)
        .enumerate()
        .filter(|(_, ((cols, _), _))| cols.iter().any(|c| c.lattice_free))
        .flat_map(|(t, ((cols, fit), frame))| {
            fit.as_ref().map_or_else(Vec::new, |f| {
                let mask = lattice_free_mask(f, cols, frame.width, frame.height);
                regions_of_mask(&mask, frame.width, frame.height, t)
            })
        })
        .collect();
    let mut series = SiteSeries {
        fits,
        keys,
        observations,
        neighbours: Vec::new(),
        lattice_free,
        free_regions,
    };
    series.neighbours = same_site_neighbours(&series, fit0);
    remove_crosstalk(&mut series, fit0);
    Ok(series)
}

/// A column's measured intensity holds the tails of its neighbours of the other sites: an S2
/// column next to a Mo dopant or a metal vacancy loses part of a W column's tail and looks,
/// by about 2.5 σ at 2·10⁵ e/Å², like a single S vacancy. For each pair of basis sites, the
/// deviation from the local reference of a column is regressed (least squares through the
/// origin, over every column and frame) on the summed deviations of its adjacent columns of
/// the other site, that part is removed, and `z` is recomputed in robust σ per frame and site.
fn remove_crosstalk(series: &mut SiteSeries, fit: &LatticeFit) {
    let sites = fit.basis.len();
    let frames = series.frames();
    let deviation = |o: &Observation| o.intensity - o.reference;
    let mut correction = vec![vec![0.0f32; series.keys.len()]; frames];
    for s in 0..sites {
        for o in (0..sites).filter(|&o| o != s) {
            let adjacent = series.adjacent(fit, s, o, 1.15);
            let mut pairs = Vec::new();
            for (t, row) in series.observations.iter().enumerate() {
                for (i, near) in &adjacent {
                    let own = &row[*i];
                    if own.is_missing()
                        || near.is_empty()
                        || near.iter().any(|&n| row[n].is_missing())
                    {
                        continue;
                    }
                    let m: f32 = near.iter().map(|&n| deviation(&row[n])).sum();
                    pairs.push((t, *i, deviation(own), m));
                }
            }
            let (sxy, sxx) = pairs
                .iter()
                .fold((0.0f64, 0.0f64), |(a, b), &(_, _, y, x)| {
                    (a + (x * y) as f64, b + (x * x) as f64)
                });
            if sxx <= 0.0 {
                continue;
            }
            let beta = (sxy / sxx) as f32;
            for (t, i, _, m) in pairs {
                correction[t][i] += beta * m;
            }
        }
    }
    for (row, corr) in series.observations.iter_mut().zip(&correction) {
        for s in 0..sites {
            let idx: Vec<usize> = series
                .keys
                .iter()
                .enumerate()
                .filter(|(i, k)| k.site == s && !row[*i].is_missing())
                .map(|(i, _)| i)
                .collect();
            let devs: Vec<f32> = idx.iter().map(|&i| deviation(&row[i]) - corr[i]).collect();
            let (centre, sigma) = median_mad_sigma(&devs);
            if sigma.is_nan() || sigma <= 0.0 {
                continue;
            }
            for (&i, d) in idx.iter().zip(&devs) {
                row[i].z = (d - centre) / sigma;
            }
        }
    }
}

/// For each site, the same-site sites one shortest lattice vector away (six on a hexagonal
/// lattice).
fn same_site_neighbours(series: &SiteSeries, fit: &LatticeFit) -> Vec<Vec<usize>> {
    let reach = 1.05 * fit.shortest_vector_px() / fit.nearest_column_px;
    let mut out = vec![Vec::new(); series.keys.len()];
    for site in 0..fit.basis.len() {
        for (i, near) in series.adjacent(fit, site, site, reach) {
            out[i] = near;
        }
    }
    out
}
