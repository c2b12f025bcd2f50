//! From posteriors to what a microscopist reads: the state of every site in every frame,
//! vacancy tracks through hops, dopant–vacancy complexes and their transition rates.

use super::hmm::{EMPTY, HEAVIER, INTACT, PARTIAL, Role, STATES};
use super::{SiteAnalysis, SiteDefect};
use crate::analysis::dynamics::wilson_of;
use crate::lattice::LatticeFit;
use serde::Serialize;

/// Configurations of a dopant's neighbourhood: no vacancy on its neighbouring chalcogen
/// columns, one atom missing, both atoms of a column missing.
pub const COMPLEX_NAMES: [&str; 3] = ["alone", "+V_S1", "+V_S2"];
/// Not a dopant in this frame.
const NO_COMPLEX: u8 = u8::MAX;

/// The state of every site in every frame (`[site][frame]`): a defect state where the
/// posterior of the defect states reaches `threshold` (the likeliest of them), else intact.
pub fn decide(a: &SiteAnalysis, threshold: f32) -> Vec<Vec<u8>> {
    a.fit
        .posterior
        .iter()
        .map(|p| {
            p.iter()
                .map(|g| {
                    if 1.0 - g[INTACT] >= threshold {
                        (1..STATES)
                            .max_by(|&x, &y| g[x].total_cmp(&g[y]))
                            .unwrap_or(INTACT) as u8
                    } else {
                        INTACT as u8
                    }
                })
                .collect()
        })
        .collect()
}

fn vacancies_in(role: Role, state: u8) -> usize {
    if !role.has_vacancy_dynamics() {
        return 0;
    }
    match state as usize {
        PARTIAL => 1,
        EMPTY => 2,
        _ => 0,
    }
}

/// Vacancy identities (`[site][frame]`: up to two, 0 where there is none): a vacancy keeps its identity
/// while it stays, and when a site gains a vacancy that a neighbouring site loses, the vacancy
/// moved. The two ends of a hop may be decided a frame apart (both sites hold it for a frame,
/// or neither does): a departure waits one frame for its arrival, and an arrival may continue
/// a neighbour's vacancy that leaves in the next frame. Unmatched departures end their track;
/// unmatched arrivals start one.
pub fn link_vacancies(a: &SiteAnalysis, states: &[Vec<u8>]) -> Vec<Vec<[u32; 2]>> {
    let frames = a.series.frames();
    let n = a.series.keys.len();
    let count = |s: usize, t: usize| vacancies_in(a.role_of(s), states[s][t]);
    let mut ids: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut rows: Vec<Vec<[u32; 2]>> = Vec::with_capacity(frames);
    let mut next = 1u32;
    // Departures not yet matched: (site, id, frame it left).
    let mut pending: Vec<(usize, u32, usize)> = Vec::new();
    // Ids already continued at a neighbour before they leave.
    let mut continued: std::collections::HashSet<u32> = std::collections::HashSet::new();
    for t in 0..frames {
        pending.retain(|p| p.2 + 1 >= t);
        for (s, held) in ids.iter_mut().enumerate() {
            while held.len() > count(s, t) {
                if let Some(id) = held.pop()
                    && !continued.remove(&id)
                {
                    pending.push((s, id, t));
                }
            }
        }
        for s in 0..n {
            while ids[s].len() < count(s, t) {
                let nb = &a.series.neighbours[s];
                let id = if let Some(p) = pending.iter().position(|p| nb.contains(&p.0)) {
                    pending.swap_remove(p).1
                } else if let Some(&o) = nb.iter().find(|&&o| {
                    t + 1 < frames
                        && count(o, t + 1) < ids[o].len()
                        && !ids[o].iter().all(|id| continued.contains(id))
                }) {
                    let id = ids[o][ids[o].len() - 1];
                    continued.insert(id);
                    id
                } else {
                    next += 1;
                    next - 1
                };
                ids[s].push(id);
            }
        }
        rows.push(
            ids.iter()
                .map(|h| {
                    [
                        h.first().copied().unwrap_or(0),
                        h.get(1).copied().unwrap_or(0),
                    ]
                })
                .collect(),
        );
    }
    (0..n)
        .map(|s| rows.iter().map(|r| r[s]).collect())
        .collect()
}

/// The complex configuration of every dopant site in every frame (`[site][frame]`: an index
/// into [`COMPLEX_NAMES`], or none for sites that are not dopants then): the most vacancies on
/// one of its neighbouring chalcogen columns.
pub fn complex_config(a: &SiteAnalysis, fit: &LatticeFit, states: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let frames = a.series.frames();
    let mut out = vec![vec![NO_COMPLEX; frames]; a.series.keys.len()];
    let metal = a.roles.iter().position(|&r| r == Role::Metal);
    let chalcogen = a.roles.iter().position(|&r| r == Role::Chalcogen);
    let (Some(m), Some(c)) = (metal, chalcogen) else {
        return out;
    };
    for (site, near) in a.series.adjacent(fit, m, c, 1.15) {
        for t in 0..frames {
            if matches!(states[site][t] as usize, PARTIAL | HEAVIER) {
                out[site][t] = near
                    .iter()
                    .map(|&s| vacancies_in(Role::Chalcogen, states[s][t]))
                    .max()
                    .unwrap_or(0) as u8;
            }
        }
    }
    out
}

/// The defects: every observed site in a defect state, named with its complex.
pub fn defects(
    a: &SiteAnalysis,
    states: &[Vec<u8>],
    config: &[Vec<u8>],
    track_ids: &[Vec<[u32; 2]>],
) -> Vec<SiteDefect> {
    let mut out = Vec::new();
    for t in 0..a.series.frames() {
        for (s, obs) in a.series.observations[t].iter().enumerate() {
            let state = states[s][t] as usize;
            if state == INTACT || obs.is_missing() {
                continue;
            }
            let mut class = a.state_name(s, state).to_string();
            if let Some(&c) = COMPLEX_NAMES.get(config[s][t] as usize)
                && c != COMPLEX_NAMES[0]
            {
                class.push_str(c);
            }
            out.push(SiteDefect {
                frame: t,
                site: s,
                x: obs.x,
                y: obs.y,
                state,
                class,
                posterior: 1.0 - a.fit.posterior[s][t][INTACT],
                tracks: track_ids[s][t],
            });
        }
    }
    out
}

/// One transition between dopant configurations, counted on the decided states.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplexRate {
    pub dopant: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub events: usize,
    /// Dopant-frames spent in `from` with a next frame.
    pub exposure: usize,
    pub rate: f64,
    pub interval: (f64, f64),
}

/// Transition rates between the configurations of dopants (Mo alone ↔ Mo + V_S1 ↔ Mo + V_S2),
/// per dopant and frame, with Wilson intervals.
pub fn complex_rates(a: &SiteAnalysis, states: &[Vec<u8>], config: &[Vec<u8>]) -> Vec<ComplexRate> {
    let k = COMPLEX_NAMES.len();
    let mut counts = vec![vec![0usize; k]; k];
    let mut dopant = None;
    for (s, row) in config.iter().enumerate() {
        for t in 0..row.len().saturating_sub(1) {
            let (c0, c1) = (row[t] as usize, row[t + 1] as usize);
            if c0 < k && c1 < k && states[s][t] == states[s][t + 1] {
                counts[c0][c1] += 1;
                dopant.get_or_insert(a.state_name(s, states[s][t] as usize));
            }
        }
    }
    let Some(dopant) = dopant else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for from in 0..k {
        let exposure: usize = counts[from].iter().sum();
        for to in 0..k {
            if to == from || exposure == 0 {
                continue;
            }
            let events = counts[from][to];
            out.push(ComplexRate {
                dopant,
                from: COMPLEX_NAMES[from],
                to: COMPLEX_NAMES[to],
                events,
                exposure,
                rate: events as f64 / exposure as f64,
                interval: wilson_of(events as f64, exposure as f64),
            });
        }
    }
    out
}
