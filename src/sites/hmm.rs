//! A hidden Markov model over the column sites of a lattice.
//!
//! Every site has four states: intact, *partial* (one chalcogen atom missing; on a metal site a
//! lighter dopant), *empty* and *heavier* (a heavier substitute, e.g. Se on S sites). A site's
//! observation in a frame is its deviation `z` from its same-site neighbours (see
//! [`super::series`]); each state emits a normal distribution of `z`, learned from the movie
//! (Baum–Welch), with a small uniform outlier floor.
//!
//! Transitions follow what the beam does, and nothing else:
//! * chalcogen sites: the beam sputters an atom from an intact column (`sputter`) or the second
//!   atom from a half-empty one (`convert`); each vacancy hops to one of the neighbouring
//!   chalcogen columns with probability `hop` per frame (partial → intact, empty → partial,
//!   and the arrival intact → partial or partial → empty at the neighbour);
//! * metal sites: the beam may empty a host column (`metal_sputter`); dopants stay;
//! * heavier substitutes stay.
//!
//! A hop couples two sites. The exact model over all sites is a factorial HMM with 4^N states;
//! here each site is solved on its own (forward–backward) and sees its neighbours through a
//! mean field: the probability that a vacancy arrives at a site between frames t and t+1 is
//! the expected number of vacancies that leave its neighbours in that step, over the number
//! of neighbours a site has (a vacancy picks one of them), taken from the neighbours'
//! posteriors of the previous iteration (in the first, their occupancy times the starting hop
//! rate). Iterating to a fixed point is a structured mean-field approximation of the factorial
//! model. Coupling to the neighbours' departures rather than to their occupancy lines up the
//! two ends of a hop in time: an arrival is likely exactly when a neighbour's vacancy leaves.
//! The `hop` rate is estimated from the departures, which each site sees on its own.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub const STATES: usize = 4;
pub const INTACT: usize = 0;
pub const PARTIAL: usize = 1;
pub const EMPTY: usize = 2;
pub const HEAVIER: usize = 3;

/// What a basis site of the lattice holds, which decides its allowed transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The metal of a transition-metal dichalcogenide.
    Metal,
    /// A chalcogen column (two atoms in projection).
    Chalcogen,
    /// Any other lattice: the chalcogen's rules on a column of unknown content.
    Column,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Metal, Role::Chalcogen, Role::Column];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether vacancies on this role's sites hop and are sputtered like chalcogen vacancies.
    pub fn has_vacancy_dynamics(self) -> bool {
        !matches!(self, Role::Metal)
    }
}

/// The rates of the model, per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Intact chalcogen column → one atom missing, per column and frame.
    Sputter,
    /// One atom missing → both missing, per column and frame.
    Convert,
    /// A vacancy moves to a neighbouring column, per vacancy and frame.
    Hop,
    /// Host metal column → empty, per column and frame.
    MetalSputter,
}

impl Rate {
    pub const ALL: [Rate; 4] = [Rate::Sputter, Rate::Convert, Rate::Hop, Rate::MetalSputter];

    pub fn name(self) -> &'static str {
        match self {
            Rate::Sputter => "sputter",
            Rate::Convert => "convert",
            Rate::Hop => "hop",
            Rate::MetalSputter => "metal_sputter",
        }
    }

    pub fn parse(s: &str) -> Option<Rate> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }

    /// What the rate counts, for tables.
    pub fn meaning(self) -> &'static str {
        match self {
            Rate::Sputter => "intact chalcogen column loses one atom (per column per frame)",
            Rate::Convert => "column missing one atom loses the second (per column per frame)",
            Rate::Hop => {
                "a chalcogen vacancy moves to a neighbouring column (per vacancy per frame)"
            }
            Rate::MetalSputter => "host metal column emptied (per column per frame)",
        }
    }
}

/// How the user constrains one rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateSpec {
    /// Estimated from the movie.
    #[default]
    Fitted,
    /// Held at this value.
    Fixed(f64),
    /// Never happens.
    Forbidden,
    /// A beta prior of this mean, worth `weight` frames of exposure.
    Prior { mean: f64, weight: f64 },
}

impl RateSpec {
    /// The rate from `events` expected in `exposure` opportunities, under this constraint.
    fn estimate(self, events: f64, exposure: f64, current: f64) -> f64 {
        match self {
            RateSpec::Fitted if exposure > 0.0 => (events / exposure).clamp(0.0, 1.0),
            RateSpec::Fitted => current,
            RateSpec::Fixed(v) => v,
            RateSpec::Forbidden => 0.0,
            RateSpec::Prior { mean, weight } => {
                ((events + mean * weight) / (exposure + weight)).clamp(0.0, 1.0)
            }
        }
    }
}

/// The normal emission of each state, in units of the column noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Emission {
    pub mean: [f64; STATES],
    pub var: [f64; STATES],
}

/// Probability that an observation is an outlier (a glitch the states do not describe), spread
/// evenly over this many noise units.
const OUTLIER: f64 = 1e-3;
const OUTLIER_SPAN: f64 = 100.0;
/// The smallest emission variance (noise units²).
const VAR_FLOOR: f64 = 0.3;
/// A state needs this much posterior mass to move its emission.
const MIN_STATE_MASS: f64 = 3.0;

impl Emission {
    fn likelihoods(&self, z: f32) -> [f64; STATES] {
        if !z.is_finite() {
            return [1.0; STATES];
        }
        let z = z as f64;
        std::array::from_fn(|k| {
            let d = z - self.mean[k];
            let n = (-0.5 * d * d / self.var[k]).exp()
                / (2.0 * std::f64::consts::PI * self.var[k]).sqrt();
            (1.0 - OUTLIER) * n + OUTLIER / OUTLIER_SPAN
        })
    }
}

/// Everything the model learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Emission per role (indexed as [`Role::ALL`]).
    pub emissions: [Emission; 3],
    /// State probabilities in frame 0 per role.
    pub initial: [[f64; STATES]; 3],
    /// Rates per frame (indexed as [`Rate::ALL`]).
    pub rates: [f64; 4],
    /// `sputter` and `convert` on steps at the edge of the measured lattice (next to columns
    /// out of view or in a hole), where vacancies hopping in from unseen columns and a hole's
    /// growing rim add onsets the beam's own rate does not describe: counted over every step.
    #[serde(default)]
    pub edge_rates: [f64; 2],
}

impl Params {
    pub fn rate(&self, r: Rate) -> f64 {
        self.rates[r as usize]
    }
}

/// One site's data for the model.
pub struct SiteData<'a> {
    pub role: Role,
    pub z: &'a [f32],
    pub neighbours: &'a [usize],
}

/// Transition matrix of a site between two frames, given the probability `arrival` that a
/// vacancy hops onto it.
fn transition(role: Role, rates: &[f64; 4], arrival: f64) -> Matrix {
    let [sputter, convert, hop, metal_sputter] = *rates;
    let mut m = [[0.0; STATES]; STATES];
    if role.has_vacancy_dynamics() {
        let gain = |base: f64| 1.0 - (1.0 - base) * (1.0 - arrival);
        let loses_one = gain(sputter);
        m[INTACT] = [1.0 - loses_one, loses_one, 0.0, 0.0];
        let to_empty = gain(convert);
        let to_intact = hop.min(1.0 - to_empty);
        m[PARTIAL] = [to_intact, 1.0 - to_empty - to_intact, to_empty, 0.0];
        let back = (2.0 * hop).min(1.0);
        m[EMPTY] = [0.0, back, 1.0 - back, 0.0];
    } else {
        m[INTACT] = [1.0 - metal_sputter, 0.0, metal_sputter, 0.0];
        m[PARTIAL][PARTIAL] = 1.0;
        m[EMPTY][EMPTY] = 1.0;
    }
    m[HEAVIER][HEAVIER] = 1.0;
    m
}

/// Expected counts of one E-step, summed over sites.
#[derive(Debug, Clone, Default)]
struct Stats {
    mass: [[f64; STATES]; 3],
    sum_z: [[f64; STATES]; 3],
    sum_z2: [[f64; STATES]; 3],
    initial: [[f64; STATES]; 3],
    /// Posterior mass at frames that have a successor, per role and state.
    occupancy: [[f64; STATES]; 3],
    transitions: [[[f64; STATES]; STATES]; 3],
    /// Parts of intact → partial and partial → empty owed to the beam rather than to arrivals,
    /// and the intact and partial mass they were counted over: [interior, edge] steps.
    sputtered: [f64; 2],
    converted: [f64; 2],
    sputter_exposure: [f64; 2],
    convert_exposure: [f64; 2],
    log_likelihood: f64,
}

impl Stats {
    fn add(mut self, o: Stats) -> Stats {
        for r in 0..3 {
            for k in 0..STATES {
                self.mass[r][k] += o.mass[r][k];
                self.sum_z[r][k] += o.sum_z[r][k];
                self.sum_z2[r][k] += o.sum_z2[r][k];
                self.initial[r][k] += o.initial[r][k];
                self.occupancy[r][k] += o.occupancy[r][k];
                for l in 0..STATES {
                    self.transitions[r][k][l] += o.transitions[r][k][l];
                }
            }
        }
        for k in 0..2 {
            self.sputtered[k] += o.sputtered[k];
            self.converted[k] += o.converted[k];
            self.sputter_exposure[k] += o.sputter_exposure[k];
            self.convert_exposure[k] += o.convert_exposure[k];
        }
        self.log_likelihood += o.log_likelihood;
        self
    }
}

/// Type of one step's transition matrix.
type Matrix = [[f64; STATES]; STATES];

/// The scaled forward pass: α per frame (normalised) and each frame's scale.
fn forward(
    initial: &[f64; STATES],
    like: &[[f64; STATES]],
    mats: &[Matrix],
) -> (Vec<[f64; STATES]>, Vec<f64>) {
    let mut alpha: Vec<[f64; STATES]> = Vec::with_capacity(like.len());
    let mut scale = Vec::with_capacity(like.len());
    for (t, l) in like.iter().enumerate() {
        let a: [f64; STATES] = std::array::from_fn(|j| {
            let prior = match t {
                0 => initial[j],
                _ => (0..STATES)
                    .map(|k| alpha[t - 1][k] * mats[t - 1][k][j])
                    .sum(),
            };
            prior * l[j]
        });
        let s: f64 = a.iter().sum::<f64>().max(1e-300);
        alpha.push(a.map(|v| v / s));
        scale.push(s);
    }
    (alpha, scale)
}

/// The backward pass, scaled by the forward pass's scales.
fn backward(like: &[[f64; STATES]], mats: &[Matrix], scale: &[f64]) -> Vec<[f64; STATES]> {
    let mut beta = vec![[1.0; STATES]; like.len()];
    for t in (0..like.len().saturating_sub(1)).rev() {
        beta[t] = std::array::from_fn(|k| {
            (0..STATES)
                .map(|l| mats[t][k][l] * like[t + 1][l] * beta[t + 1][l])
                .sum::<f64>()
                / scale[t + 1]
        });
    }
    beta
}

/// Forward–backward on one site: its posteriors `[frame][state]` and its expected counts.
/// `interior[t]`: every neighbour of the site is measured at steps t and t + 1, so an onset
/// there can be told from an arrival; only such steps count towards `sputter` and `convert`.
fn forward_backward(
    params: &Params,
    site: &SiteData,
    arrivals: &[f64],
    interior: &[bool],
) -> (Vec<[f32; STATES]>, Vec<f32>, Stats) {
    let t_len = site.z.len();
    let role = site.role.index();
    let em = &params.emissions[role];
    let like: Vec<[f64; STATES]> = site.z.iter().map(|&z| em.likelihoods(z)).collect();
    let edge = {
        let mut r = params.rates;
        r[..2].copy_from_slice(&params.edge_rates);
        r
    };
    // The rates of each step: the interior's, or the edge's.
    let step_rates: Vec<&[f64; 4]> = (0..t_len.saturating_sub(1))
        .map(|t| match interior.get(t) {
            Some(true) => &params.rates,
            _ => &edge,
        })
        .collect();
    let mats: Vec<Matrix> = step_rates
        .iter()
        .zip(arrivals)
        .map(|(rates, &arrival)| transition(site.role, rates, arrival))
        .collect();
    let (alpha, scale) = forward(&params.initial[role], &like, &mats);
    let beta = backward(&like, &mats, &scale);
    let mut st = Stats {
        log_likelihood: scale.iter().map(|s| s.ln()).sum(),
        ..Stats::default()
    };
    let mut posterior = Vec::with_capacity(t_len);
    let mut departures = vec![0.0f32; t_len.saturating_sub(1)];
    for t in 0..t_len {
        let g: [f64; STATES] = std::array::from_fn(|k| alpha[t][k] * beta[t][k]);
        let s: f64 = g.iter().sum::<f64>().max(1e-300);
        let g = g.map(|v| v / s);
        let z = site.z[t] as f64;
        for (k, &gk) in g.iter().enumerate() {
            if z.is_finite() {
                st.mass[role][k] += gk;
                st.sum_z[role][k] += gk * z;
                st.sum_z2[role][k] += gk * z * z;
            }
            if t == 0 {
                st.initial[role][k] += gk;
            }
        }
        // Rates are counted on steps seen at both ends: before a column enters the field of
        // view (drift) its transitions are the prior's guesses, not evidence.
        if t + 1 < t_len && z.is_finite() && site.z[t + 1].is_finite() {
            for (occ, &gk) in st.occupancy[role].iter_mut().zip(&g) {
                *occ += gk;
            }
            let xi: [[f64; STATES]; STATES] = std::array::from_fn(|k| {
                std::array::from_fn(|l| {
                    alpha[t][k] * mats[t][k][l] * like[t + 1][l] * beta[t + 1][l]
                })
            });
            let norm = xi.iter().flatten().sum::<f64>().max(1e-300);
            for (row, xrow) in st.transitions[role].iter_mut().zip(&xi) {
                for (acc, &x) in row.iter_mut().zip(xrow) {
                    *acc += x / norm;
                }
            }
            if site.role.has_vacancy_dynamics() {
                departures[t] = ((xi[PARTIAL][INTACT] + xi[EMPTY][PARTIAL]) / norm) as f32;
                let inside = interior.get(t).copied().unwrap_or(false);
                let [sputter, convert, ..] = *step_rates[t];
                let share = |base: f64| {
                    let total = base + arrivals[t] * (1.0 - base);
                    if total > 0.0 { base / total } else { 0.0 }
                };
                let k = usize::from(!inside);
                st.sputtered[k] += xi[INTACT][PARTIAL] / norm * share(sputter);
                st.converted[k] += xi[PARTIAL][EMPTY] / norm * share(convert);
                st.sputter_exposure[k] += g[INTACT];
                st.convert_exposure[k] += g[PARTIAL];
            }
        }
        posterior.push(g.map(|v| v as f32));
    }
    (posterior, departures, st)
}

/// The fitted model and its posteriors.
#[derive(Debug, Clone)]
pub struct Fit {
    pub params: Params,
    /// `posterior[site][frame][state]`.
    pub posterior: Vec<Vec<[f32; STATES]>>,
    /// Expected events and exposure behind each rate (indexed as [`Rate::ALL`]).
    pub evidence: [(f64, f64); 4],
    pub log_likelihood: f64,
    pub iterations: usize,
}

/// Expected vacancies on a site in a frame: one for partial, two for empty.
fn vacancies(g: &[f32; STATES]) -> f64 {
    g[PARTIAL] as f64 + 2.0 * g[EMPTY] as f64
}

/// Baum–Welch with the mean-field coupling of hops, from `start`, until the log-likelihood
/// changes by less than `tolerance` (relative) or after `max_iterations`.
pub fn fit(
    sites: &[SiteData],
    start: Params,
    specs: &[RateSpec; 4],
    max_iterations: usize,
    tolerance: f64,
    ctx: &crate::jobs::JobCtx,
) -> crate::error::Result<Fit> {
    let frames = sites.first().map_or(0, |s| s.z.len());
    let most_neighbours = sites.iter().map(|s| s.neighbours.len()).max().unwrap_or(1);
    let full = most_neighbours.max(1) as f64;
    // A site at the edge of the measured lattice (fewer neighbours, or one not seen at both
    // ends of a step) gets vacancies hopping in from columns the model does not see: its
    // onsets would pass as sputtering, so they are not counted towards that rate.
    let seen = |n: usize, t: usize| {
        sites[n].z.get(t).is_some_and(|z| z.is_finite())
            && sites[n].z.get(t + 1).is_some_and(|z| z.is_finite())
    };
    let interior: Vec<Vec<bool>> = sites
        .iter()
        .map(|s| {
            (0..frames.saturating_sub(1))
                .map(|t| {
                    s.neighbours.len() == most_neighbours
                        && s.neighbours.iter().all(|&n| seen(n, t))
                })
                .collect()
        })
        .collect();
    let mut params = start;
    let mut posterior: Vec<Vec<[f32; STATES]>> = vec![Vec::new(); sites.len()];
    let mut departures: Vec<Vec<f32>> = vec![Vec::new(); sites.len()];
    let mut previous = f64::NEG_INFINITY;
    let mut evidence = [(0.0, 0.0); 4];
    let mut iterations = 0;
    ctx.begin("fitting the site model", max_iterations as u64);
    for it in 0..max_iterations {
        ctx.step(it as u64)?;
        let hop = params.rate(Rate::Hop);
        let results: Vec<(Vec<[f32; STATES]>, Vec<f32>, Stats)> = sites
            .par_iter()
            .zip(&interior)
            .map(|(s, inner)| {
                let arrivals: Vec<f64> = (0..frames.saturating_sub(1))
                    .map(|t| {
                        if !s.role.has_vacancy_dynamics() {
                            return 0.0;
                        }
                        let moved: f64 = if it == 0 {
                            // No departures known yet: the neighbours' occupancy times the
                            // starting hop rate.
                            hop * s
                                .neighbours
                                .iter()
                                .filter_map(|&n| posterior[n].get(t))
                                .map(vacancies)
                                .sum::<f64>()
                        } else {
                            s.neighbours
                                .iter()
                                .filter_map(|&n| departures[n].get(t))
                                .map(|&d| d as f64)
                                .sum()
                        };
                        (moved / full).min(1.0)
                    })
                    .collect();
                forward_backward(&params, s, &arrivals, inner)
            })
            .collect();
        let mut stats = Stats::default();
        for (i, (p, d, st)) in results.into_iter().enumerate() {
            posterior[i] = p;
            departures[i] = d;
            stats = stats.add(st);
        }
        evidence = update(&mut params, &stats, specs);
        iterations = it + 1;
        let ll = stats.log_likelihood;
        if (ll - previous).abs() <= tolerance * ll.abs().max(1.0) {
            previous = ll;
            break;
        }
        previous = ll;
    }
    Ok(Fit {
        params,
        posterior,
        evidence,
        log_likelihood: previous,
        iterations,
    })
}

/// The M-step: new emissions, initial probabilities and rates; returns the evidence (expected
/// events, exposure) behind each rate.
fn update(params: &mut Params, st: &Stats, specs: &[RateSpec; 4]) -> [(f64, f64); 4] {
    for r in 0..3 {
        let em = &mut params.emissions[r];
        for k in 0..STATES {
            let m = st.mass[r][k];
            if m >= MIN_STATE_MASS {
                em.mean[k] = st.sum_z[r][k] / m;
                em.var[k] = (st.sum_z2[r][k] / m - em.mean[k] * em.mean[k]).max(VAR_FLOOR);
            }
        }
        // Physics orders the states: one chalcogen atom is at most ~half its column's
        // intensity, a lighter dopant at most ~0.8 of a vacancy's loss. Held apart, the empty
        // state cannot merge with the partial one in a movie with few empty columns.
        let most = if r == Role::Metal.index() { 0.8 } else { 0.6 };
        if em.mean[PARTIAL] < 0.0 {
            em.mean[EMPTY] = em.mean[EMPTY].min(em.mean[PARTIAL] / most);
        }
        let total: f64 = st.initial[r].iter().sum();
        if total > 0.0 {
            for k in 0..STATES {
                params.initial[r][k] = (st.initial[r][k] / total).max(1e-6);
            }
        }
    }
    let mut events = [(0.0, 0.0); 4];
    for role in [Role::Chalcogen, Role::Column] {
        let (tr, occ) = (&st.transitions[role.index()], &st.occupancy[role.index()]);
        events[Rate::Hop as usize].0 += tr[PARTIAL][INTACT] + tr[EMPTY][PARTIAL];
        events[Rate::Hop as usize].1 += occ[PARTIAL] + 2.0 * occ[EMPTY];
    }
    events[Rate::Sputter as usize] = (st.sputtered[0], st.sputter_exposure[0]);
    events[Rate::Convert as usize] = (st.converted[0], st.convert_exposure[0]);
    // At the edge, onsets are counted over all steps (interior and edge) together: an edge
    // rate of its own ran away on small movies (0.038 on a 10 × 256² movie, where noise dips
    // at the edge then became vacancies), while the pooled count holds it to what the whole
    // movie shows.
    let counts = [
        (Rate::Sputter, st.sputtered, st.sputter_exposure),
        (Rate::Convert, st.converted, st.convert_exposure),
    ];
    for (edge, (rate, events, exposure)) in params.edge_rates.iter_mut().zip(counts) {
        *edge =
            specs[rate as usize].estimate(events[0] + events[1], exposure[0] + exposure[1], *edge);
    }
    let m = Role::Metal.index();
    events[Rate::MetalSputter as usize] =
        (st.transitions[m][INTACT][EMPTY], st.occupancy[m][INTACT]);
    for (i, spec) in specs.iter().enumerate() {
        params.rates[i] = spec.estimate(events[i].0, events[i].1, params.rates[i]);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_rows_are_distributions() {
        for role in Role::ALL {
            for arrival in [0.0, 0.3, 1.0] {
                let m = transition(role, &[0.01, 0.02, 0.6, 0.001], arrival);
                for row in m {
                    assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)), "{row:?}");
                    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{row:?}");
                }
            }
        }
    }
}
