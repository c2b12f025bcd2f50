//! Defects as states of the lattice's column sites through time.
//!
//! A single S vacancy at realistic contrast is near what one frame can show, but it stays on
//! its site for several frames, the lattice says where every column is in every frame, and the
//! beam does few and known things. This module follows frame 0's lattice through the movie
//! ([`series`]), fits a hidden Markov model over every site with physically allowed transitions
//! ([`hmm`]), and reads off defects (sites whose posterior of a defect state passes a
//! threshold), vacancy tracks (a vacancy that hops keeps its identity), dopant–vacancy complexes
//! and the rates with their confidence intervals.
//!
//! The network is not used here: the model covers the defects a lattice site can hold; what it
//! cannot express (pores, adatoms, unknown defects off the sites) is left to the network's
//! detections (see [`off_lattice`]).

pub mod figures;
pub mod hmm;
pub mod output;
pub mod series;
mod tracks;

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::lattice::LatticeFit;
use crate::raster::Raster;
use crate::synth::{DefectType, Material};
use hmm::{
    EMPTY, Emission, HEAVIER, INTACT, PARTIAL, Params, Rate, RateSpec, Role, STATES, SiteData,
};
use serde::{Deserialize, Serialize};
pub use series::{SiteKey, SiteSeries, site_series};
pub use tracks::ComplexRate;

/// How the site model runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteModelConfig {
    /// Constraint on each rate (indexed as [`Rate::ALL`]).
    pub rates: [RateSpec; 4],
    /// A site is a defect in a frame when its posterior probability of a defect state is at
    /// least this.
    pub defect_posterior: f32,
    pub max_iterations: usize,
    /// Stop when the log-likelihood changes by less than this (relative).
    pub tolerance: f64,
    /// The specimen, for the names of the states (the model itself does not depend on it).
    pub material: Material,
}

impl Default for SiteModelConfig {
    fn default() -> Self {
        SiteModelConfig {
            rates: [RateSpec::Fitted; 4],
            defect_posterior: DEFAULT_DEFECT_POSTERIOR,
            max_iterations: 40,
            tolerance: 1e-6,
            material: Material::WS2,
        }
    }
}

/// The default posterior threshold for a defect (see the README for its calibration).
pub const DEFAULT_DEFECT_POSTERIOR: f32 = 0.5;

impl SiteModelConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.defect_posterior > 0.0 && self.defect_posterior < 1.0) {
            return Err(Error::invalid(format!(
                "site model: the defect posterior threshold must be in (0, 1), got {}",
                self.defect_posterior
            )));
        }
        if self.max_iterations == 0 {
            return Err(Error::invalid("site model: needs at least one iteration"));
        }
        for (spec, rate) in self.rates.iter().zip(Rate::ALL) {
            let bad = match *spec {
                RateSpec::Fixed(v) => !(0.0..=1.0).contains(&v),
                RateSpec::Prior { mean, weight } => {
                    !((0.0..=1.0).contains(&mean) && weight.is_finite() && weight > 0.0)
                }
                _ => false,
            };
            if bad {
                return Err(Error::invalid(format!(
                    "site model: {} must be a probability per frame (prior weight > 0), got {spec:?}",
                    rate.name()
                )));
            }
        }
        Ok(())
    }

    /// Apply `--forbid hop,convert`, `--fix hop=0.1` and `--prior hop=0.1:50` style settings.
    pub fn constrain(&mut self, forbid: &[String], fix: &[String], prior: &[String]) -> Result<()> {
        let rate = |s: &str| {
            Rate::parse(s.trim()).ok_or_else(|| {
                let names: Vec<&str> = Rate::ALL.iter().map(|r| r.name()).collect();
                Error::invalid(format!("unknown rate '{s}': one of {}", names.join(", ")))
            })
        };
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| Error::invalid(format!("'{s}' is not a number")))
        };
        for f in forbid.iter().flat_map(|s| s.split(',')) {
            self.rates[rate(f)? as usize] = RateSpec::Forbidden;
        }
        for f in fix {
            let (name, value) = f
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("--fix wants RATE=VALUE, got '{f}'")))?;
            self.rates[rate(name)? as usize] = RateSpec::Fixed(number(value)?);
        }
        for p in prior {
            let (name, rest) = p
                .split_once('=')
                .and_then(|(n, r)| Some((n, r.split_once(':')?)))
                .ok_or_else(|| {
                    Error::invalid(format!("--prior wants RATE=MEAN:WEIGHT, got '{p}'"))
                })?;
            self.rates[rate(name)? as usize] = RateSpec::Prior {
                mean: number(rest.0)?,
                weight: number(rest.1)?,
            };
        }
        self.validate()
    }
}

/// A site in a defect state in one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteDefect {
    pub frame: usize,
    /// Index into [`SiteSeries::keys`].
    pub site: usize,
    pub x: f32,
    pub y: f32,
    pub state: usize,
    /// The state's name ("V_S1", "Mo_W", ...), with its complex where it has one
    /// ("Mo_W+V_S1").
    pub class: String,
    /// Posterior probability that the site holds a defect (any defect state).
    pub posterior: f32,
    /// Vacancy tracks (a vacancy that hops keeps its track): one for a single vacancy, two
    /// for an empty column; 0 where there is none.
    pub tracks: [u32; 2],
}

/// A fitted rate with its 95 % interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateEstimate {
    pub rate: Rate,
    pub value: f64,
    pub interval: (f64, f64),
    /// Expected events and the exposure (site- or vacancy-frames) they were counted in.
    pub events: f64,
    pub exposure: f64,
    pub spec: RateSpec,
}

/// The diffusion constant of single vacancies from the hop rate, D = Γ a² / 4 on a lattice of
/// same-site spacing a.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Diffusion {
    pub d_nm2_per_s: f64,
    pub interval: (f64, f64),
}

/// Everything the site model found.
#[derive(Debug, Clone)]
pub struct SiteAnalysis {
    pub series: SiteSeries,
    /// The role of each basis site.
    pub roles: Vec<Role>,
    pub material: Material,
    pub fit: hmm::Fit,
    pub rates: Vec<RateEstimate>,
    pub defects: Vec<SiteDefect>,
    pub complexes: Vec<ComplexRate>,
    /// `None` without a pixel size and frame interval, or on a lattice without vacancy sites.
    pub diffusion: Option<Diffusion>,
    /// The movie's frame interval, for time axes.
    pub frame_interval_s: Option<f64>,
    pub pixel_size_nm: Option<f64>,
    /// The lattice-free areas ([`SiteSeries::free_regions`]) followed through the movie.
    pub free_region_tracks: Vec<crate::detect::RegionTrack>,
    /// The posterior threshold the defects were decided at.
    pub defect_posterior: f32,
}

impl SiteAnalysis {
    /// The role of site `i` (an index into the series' keys).
    pub fn role_of(&self, i: usize) -> Role {
        self.roles[self.series.keys[i].site]
    }

    /// The name of state `k` on site `i`.
    pub fn state_name(&self, i: usize, k: usize) -> &'static str {
        state_name(self.role_of(i), k, self.material)
    }

    /// Expected number of defects of each (role, state) per frame, from the posteriors.
    pub fn expected_counts(&self) -> Vec<Vec<(Role, usize, f64)>> {
        (0..self.series.frames())
            .map(|t| {
                let mut out: Vec<(Role, usize, f64)> = Vec::new();
                for (i, p) in self.fit.posterior.iter().enumerate() {
                    if self.series.observations[t][i].is_missing() {
                        continue;
                    }
                    let role = self.role_of(i);
                    for k in [PARTIAL, EMPTY, HEAVIER] {
                        match out.iter_mut().find(|e| e.0 == role && e.1 == k) {
                            Some(e) => e.2 += p[t][k] as f64,
                            None => out.push((role, k, p[t][k] as f64)),
                        }
                    }
                }
                out
            })
            .collect()
    }
}

/// Name of state `k` on a site of `role` in `material`.
pub fn state_name(role: Role, k: usize, material: Material) -> &'static str {
    use crate::synth::ColumnKind;
    let host_is_w = material.metals().0 == ColumnKind::W;
    match (role, k) {
        (Role::Metal, INTACT) => {
            if host_is_w {
                "W"
            } else {
                "Mo"
            }
        }
        (Role::Metal, PARTIAL) => {
            if host_is_w {
                "Mo_W"
            } else {
                "lighter metal"
            }
        }
        (Role::Metal, EMPTY) => "V_M",
        (Role::Metal, _) => {
            if host_is_w {
                "heavier metal"
            } else {
                "W_Mo"
            }
        }
        (Role::Chalcogen, INTACT) => {
            if material.is_sulfide() {
                "S2"
            } else {
                "Se2"
            }
        }
        (Role::Chalcogen, PARTIAL) => "V_S1",
        (Role::Chalcogen, EMPTY) => "V_S2",
        (Role::Chalcogen, _) => "Se_S",
        (Role::Column, INTACT) => "intact",
        (Role::Column, PARTIAL) => "dimmer",
        (Role::Column, EMPTY) => "empty",
        (Role::Column, _) => "brighter",
    }
}

/// The generator's defect type that a state name stands for, if any.
pub fn defect_type(name: &str) -> Option<DefectType> {
    DefectType::parse(name.split('+').next().unwrap_or(name))
}

/// The roles of the basis sites: a transition-metal dichalcogenide when the cell holds two
/// sites and the second is clearly fainter than the first (metal, then chalcogen column);
/// otherwise every site is a generic column.
pub fn roles_of(fit: &LatticeFit) -> Vec<Role> {
    if fit.basis.len() == 2 && fit.site_heights.get(1).is_some_and(|&h| h < 0.8) {
        vec![Role::Metal, Role::Chalcogen]
    } else {
        vec![Role::Column; fit.basis.len()]
    }
}

/// Fit the site model to a movie whose frame 0 has the lattice `fit0`.
pub fn analyze_sites(
    frames: &[Raster],
    fit0: &LatticeFit,
    calibration: crate::movie::Calibration,
    cfg: &SiteModelConfig,
    ctx: &JobCtx,
) -> Result<SiteAnalysis> {
    cfg.validate()?;
    let series = site_series(frames, fit0, ctx)?;
    let roles = roles_of(fit0);
    let z: Vec<Vec<f32>> = (0..series.keys.len())
        .map(|i| series.observations.iter().map(|row| row[i].z).collect())
        .collect();
    let data: Vec<SiteData> = series
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| SiteData {
            role: roles[k.site],
            z: &z[i],
            neighbours: &series.neighbours[i],
        })
        .collect();
    let start = start_params(&data);
    let fit = hmm::fit(
        &data,
        start,
        &cfg.rates,
        cfg.max_iterations,
        cfg.tolerance,
        ctx,
    )?;
    let rates = Rate::ALL
        .iter()
        .map(|&r| {
            let (events, exposure) = fit.evidence[r as usize];
            let spec = cfg.rates[r as usize];
            let value = fit.params.rate(r);
            let interval = match spec {
                RateSpec::Fixed(_) | RateSpec::Forbidden => (value, value),
                _ => crate::analysis::dynamics::wilson_of(events, exposure),
            };
            RateEstimate {
                rate: r,
                value,
                interval,
                events,
                exposure,
                spec,
            }
        })
        .collect::<Vec<_>>();
    let mut analysis = SiteAnalysis {
        series,
        roles,
        material: cfg.material,
        fit,
        rates,
        defects: Vec::new(),
        complexes: Vec::new(),
        diffusion: None,
        frame_interval_s: calibration.frame_interval_s,
        pixel_size_nm: calibration.pixel_size_nm,
        free_region_tracks: Vec::new(),
        defect_posterior: cfg.defect_posterior,
    };
    analysis.free_region_tracks = crate::detect::region_tracks(&analysis.series.free_regions);
    let states = tracks::decide(&analysis, cfg.defect_posterior);
    let config = tracks::complex_config(&analysis, fit0, &states);
    let track_ids = tracks::link_vacancies(&analysis, &states);
    analysis.defects = tracks::defects(&analysis, &states, &config, &track_ids);
    analysis.complexes = tracks::complex_rates(&analysis, &states, &config);
    analysis.diffusion = diffusion(&analysis, fit0, calibration);
    Ok(analysis)
}

/// D of single vacancies from the hop rate, where the movie is calibrated and the lattice has
/// chalcogen-like sites.
fn diffusion(
    a: &SiteAnalysis,
    fit: &LatticeFit,
    calibration: crate::movie::Calibration,
) -> Option<Diffusion> {
    let (px, dt) = (calibration.pixel_size_nm?, calibration.frame_interval_s?);
    if !a.roles.iter().any(|r| r.has_vacancy_dynamics()) {
        return None;
    }
    let spacing_px = fit.shortest_vector_px() as f64;
    let hop = a.rates.iter().find(|r| r.rate == Rate::Hop)?;
    let scale = (spacing_px * px).powi(2) / 4.0 / dt;
    Some(Diffusion {
        d_nm2_per_s: hop.value * scale,
        interval: (hop.interval.0 * scale, hop.interval.1 * scale),
    })
}

/// Starting emissions: intact columns at 0 with unit noise (the observations are already in
/// noise units); the empty and partial states from the clear outliers below −4 (two groups if
/// they split, else one group and the physics: one chalcogen atom is 0.3–0.5 of its column,
/// Mo is 0.44 of W, so a lighter metal lies at about half a vacancy); heavier columns above.
fn start_params(data: &[SiteData]) -> Params {
    let mut emissions = [Emission {
        mean: [0.0, -3.0, -8.0, 6.0],
        var: [1.0; STATES],
    }; 3];
    for role in Role::ALL {
        let pooled: Vec<f64> = data
            .iter()
            .filter(|d| d.role == role)
            .flat_map(|d| d.z.iter().copied())
            .filter(|z| z.is_finite())
            .map(f64::from)
            .collect();
        let low: Vec<f64> = pooled.iter().copied().filter(|&z| z < -4.0).collect();
        let high: Vec<f64> = pooled.iter().copied().filter(|&z| z > 4.0).collect();
        let em = &mut emissions[role as usize];
        let part_of_empty = if role == Role::Metal { 0.5 } else { 0.4 };
        if low.len() >= 5 {
            let (lo, hi) = two_means(&low);
            if lo < 1.5 * hi {
                em.mean[EMPTY] = lo;
                em.mean[PARTIAL] = hi;
            } else if role == Role::Metal {
                // One group on metal sites: dopants, far more common than vacancies.
                let c = 0.5 * (lo + hi);
                em.mean[PARTIAL] = c;
                em.mean[EMPTY] = c / part_of_empty;
            } else {
                let c = 0.5 * (lo + hi);
                em.mean[EMPTY] = c;
                em.mean[PARTIAL] = (c * part_of_empty).min(-2.0);
            }
        }
        if high.len() >= 5 {
            em.mean[HEAVIER] =
                crate::raster::median(&high.iter().map(|&v| v as f32).collect::<Vec<_>>()) as f64;
        }
    }
    Params {
        emissions,
        initial: [[0.96, 0.02, 0.01, 0.01]; 3],
        rates: [0.001, 0.001, 0.05, 0.0001],
        edge_rates: [0.001, 0.001],
    }
}

/// Two-means of 1-D values started at their extremes: the two centres, lower first.
fn two_means(v: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    for _ in 0..50 {
        let (mut sa, mut na, mut sb, mut nb) = (0.0, 0, 0.0, 0);
        for &x in v {
            if (x - a).abs() <= (x - b).abs() {
                sa += x;
                na += 1;
            } else {
                sb += x;
                nb += 1;
            }
        }
        let (na2, nb2) = (
            if na > 0 { sa / na as f64 } else { a },
            if nb > 0 { sb / nb as f64 } else { b },
        );
        if na2 == a && nb2 == b {
            break;
        }
        (a, b) = (na2, nb2);
    }
    (a.min(b), a.max(b))
}

/// The network's detections in frame `frame` that lie off the lattice's sites (farther than
/// `radius` px from every measured column): what the site model cannot express.
pub fn off_lattice(
    analysis: &SiteAnalysis,
    frame: usize,
    points: &[(f32, f32)],
    radius: f32,
) -> Vec<(f32, f32)> {
    let row = &analysis.series.observations[frame];
    points
        .iter()
        .copied()
        .filter(|&(x, y)| {
            !row.iter()
                .any(|o| !o.is_missing() && (o.x - x).hypot(o.y - y) <= radius)
        })
        .collect()
}
