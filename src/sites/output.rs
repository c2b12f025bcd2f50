//! The site model's tables (CSV) and its one-paragraph summary, and its score against a
//! generator's truth.

use super::hmm::{Rate, RateSpec, Role};
use super::{SiteAnalysis, defect_type};
use crate::analysis::truth::adjusted_rand_index;
use crate::detect::{growth_csv, regions_csv};
use crate::error::Result;
use crate::score::{Score, match_points, score_frame};
use crate::synth::TruthDefect;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a basis site is, in words.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Metal => "metal",
        Role::Chalcogen => "chalcogen",
        Role::Column => "column",
    }
}

/// Every site in every frame: position, measurement, posterior of each state, decided state.
pub fn states_csv(a: &SiteAnalysis) -> String {
    let mut s = String::from(
        "frame,site,cell_i,cell_j,basis_site,role,x_px,y_px,intensity,reference,z,p_intact,p_partial,p_empty,p_heavier,state\n",
    );
    let decided: HashMap<(usize, usize), &str> = a
        .defects
        .iter()
        .map(|d| ((d.frame, d.site), d.class.as_str()))
        .collect();
    for (t, row) in a.series.observations.iter().enumerate() {
        for (i, o) in row.iter().enumerate() {
            if o.is_missing() {
                continue;
            }
            let k = a.series.keys[i];
            let p = a.fit.posterior[i][t];
            let state = decided
                .get(&(t, i))
                .copied()
                .unwrap_or_else(|| a.state_name(i, 0));
            let _ = writeln!(
                s,
                "{t},{i},{},{},{},{},{:.2},{:.2},{:.5},{:.5},{:.3},{:.4},{:.4},{:.4},{:.4},{state}",
                k.cell[0],
                k.cell[1],
                k.site,
                role_name(a.role_of(i)),
                o.x,
                o.y,
                o.intensity,
                o.reference,
                o.z,
                p[0],
                p[1],
                p[2],
                p[3]
            );
        }
    }
    s
}

/// The defects: one row per site in a defect state per frame.
pub fn defects_csv(a: &SiteAnalysis) -> String {
    let mut s = String::from("frame,x_px,y_px,class,posterior,track,second_track\n");
    for d in &a.defects {
        let _ = writeln!(
            s,
            "{},{:.2},{:.2},{},{:.4},{},{}",
            d.frame, d.x, d.y, d.class, d.posterior, d.tracks[0], d.tracks[1]
        );
    }
    s
}

fn spec_name(spec: RateSpec) -> String {
    match spec {
        RateSpec::Fitted => "fitted".into(),
        RateSpec::Fixed(v) => format!("fixed at {v}"),
        RateSpec::Forbidden => "forbidden".into(),
        RateSpec::Prior { mean, weight } => format!("prior {mean} (weight {weight})"),
    }
}

/// The rates with their 95 % intervals, the diffusion constant and the complexes' rates.
pub fn rates_csv(a: &SiteAnalysis) -> String {
    let mut s = String::from("rate,per_frame,ci95_low,ci95_high,events,exposure,how,meaning\n");
    for r in &a.rates {
        let _ = writeln!(
            s,
            "{},{:.6},{:.6},{:.6},{:.2},{:.1},{},\"{}\"",
            r.rate.name(),
            r.value,
            r.interval.0,
            r.interval.1,
            r.events,
            r.exposure,
            spec_name(r.spec),
            r.rate.meaning()
        );
    }
    for c in &a.complexes {
        let _ = writeln!(
            s,
            "{} {} -> {},{:.6},{:.6},{:.6},{},{},counted,\"dopant configuration change (per dopant per frame)\"",
            c.dopant, c.from, c.to, c.rate, c.interval.0, c.interval.1, c.events, c.exposure
        );
    }
    s
}

/// Expected number of each defect state per frame, from the posteriors, and the fraction of
/// the observed sites of its role.
pub fn concentration_csv(a: &SiteAnalysis) -> String {
    let mut s = String::from("frame,state,expected_count,fraction_of_sites\n");
    for (t, row) in a.expected_counts().iter().enumerate() {
        for &(role, k, n) in row {
            let sites = a.series.observations[t]
                .iter()
                .enumerate()
                .filter(|(i, o)| !o.is_missing() && a.role_of(*i) == role)
                .count()
                .max(1);
            let name = super::state_name(role, k, a.material);
            let _ = writeln!(s, "{t},{name},{n:.3},{:.5}", n / sites as f64);
        }
    }
    s
}

/// Write the tables into `dir`; returns the files.
pub fn write_all(a: &SiteAnalysis, dir: &Path) -> Result<Vec<PathBuf>> {
    crate::export::ensure_dir(dir)?;
    let files = [
        ("site_states.csv", states_csv(a)),
        ("site_defects.csv", defects_csv(a)),
        ("site_rates.csv", rates_csv(a)),
        ("site_concentration.csv", concentration_csv(a)),
        (
            "site_free_regions.csv",
            regions_csv(
                &a.series.free_regions,
                &a.free_region_tracks,
                a.pixel_size_nm,
            ),
        ),
        (
            "site_free_region_growth.csv",
            growth_csv(
                &a.series.free_regions,
                &a.free_region_tracks,
                a.pixel_size_nm,
                a.frame_interval_s,
            ),
        ),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        crate::export::atomic_write(&p, text.as_bytes())?;
        out.push(p);
    }
    Ok(out)
}

/// The lattice-free areas followed through the movie, each with its area at its first and last
/// frame and its growth rate.
fn free_regions_summary(a: &SiteAnalysis, s: &mut String) {
    let regions = &a.series.free_regions;
    let unit = |px2: f64| match a.pixel_size_nm {
        Some(p) => format!("{:.2} nm²", px2 * p * p),
        None => format!("{px2:.0} px²"),
    };
    // The largest areas (at their last frame) first; the rest are counted.
    const SHOWN: usize = 5;
    let mut order: Vec<(usize, usize, usize)> = a
        .free_region_tracks
        .iter()
        .enumerate()
        .filter_map(|(k, t)| Some((k, *t.members.first()?, *t.members.last()?)))
        .collect();
    order.sort_by_key(|&(_, _, last)| std::cmp::Reverse(regions[last].area_px));
    if order.len() > SHOWN {
        let _ = writeln!(
            s,
            "  {} lattice-free areas; the {SHOWN} largest:",
            order.len()
        );
    }
    for &(k, first, last) in order.iter().take(SHOWN) {
        let t = &a.free_region_tracks[k];
        let (r0, r1) = (&regions[first], &regions[last]);
        let growth = t.growth_text(a.pixel_size_nm, a.frame_interval_s);
        let _ = writeln!(
            s,
            "  lattice-free area {k} at ({:.0}, {:.0}): {} (frame {}) → {} (frame {}), {growth}",
            r1.x,
            r1.y,
            unit(r0.area_px as f64),
            r0.frame,
            unit(r1.area_px as f64),
            r1.frame
        );
    }
}

/// A few lines for the terminal: sites, fit, defects per class, rates.
pub fn summary(a: &SiteAnalysis) -> String {
    let mut s = format!(
        "site model: {} sites over {} frames, {} iterations, log-likelihood {:.1}\n",
        a.series.keys.len(),
        a.series.frames(),
        a.fit.iterations,
        a.fit.log_likelihood
    );
    let mut per_class: Vec<(String, usize)> = Vec::new();
    for d in &a.defects {
        match per_class.iter_mut().find(|c| c.0 == d.class) {
            Some(c) => c.1 += 1,
            None => per_class.push((d.class.clone(), 1)),
        }
    }
    per_class.sort();
    let frames = a.series.frames().max(1) as f64;
    let classes: Vec<String> = per_class
        .iter()
        .map(|(c, n)| format!("{c} {:.1}", *n as f64 / frames))
        .collect();
    let _ = writeln!(s, "  defects per frame: {}", classes.join(", "));
    let free = &a.series.lattice_free;
    if free.iter().any(|&n| n > 0) {
        let _ = writeln!(
            s,
            "  lattice-free columns (holes, vacuum; left out): {:.1} per frame, at most {}",
            free.iter().sum::<usize>() as f64 / free.len().max(1) as f64,
            free.iter().max().unwrap_or(&0)
        );
        free_regions_summary(a, &mut s);
    }
    for (r, role) in Role::ALL.iter().enumerate() {
        if !a.roles.contains(role) {
            continue;
        }
        let em = &a.fit.params.emissions[r];
        let states: Vec<String> = (0..super::hmm::STATES)
            .map(|k| {
                format!(
                    "{} {:.2} ± {:.2}",
                    super::state_name(*role, k, a.material),
                    em.mean[k],
                    em.var[k].sqrt()
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "  {} emissions (z): {}",
            role_name(*role),
            states.join(", ")
        );
    }
    if a.series.frames() < 2 {
        let _ = writeln!(
            s,
            "  rates: not measured (one frame: no transitions to count)"
        );
    }
    for r in a.rates.iter().filter(|_| a.series.frames() >= 2) {
        if r.rate == Rate::MetalSputter && !a.roles.contains(&Role::Metal) {
            continue;
        }
        let _ = writeln!(
            s,
            "  {:<13} {:.5}/frame (95 % {:.5}–{:.5}, {:.1} events in {:.0}; {})",
            r.rate.name(),
            r.value,
            r.interval.0,
            r.interval.1,
            r.events,
            r.exposure,
            spec_name(r.spec)
        );
    }
    if a.series.frames() >= 2 && a.rates.iter().any(|r| r.rate == Rate::Sputter) {
        let [edge_sputter, edge_convert] = a.fit.params.edge_rates;
        let _ = writeln!(
            s,
            "  at the edge of the measured lattice (vacancies hopping in from unseen columns, a hole's rim): sputter {edge_sputter:.5}, convert {edge_convert:.5}/frame counted over all columns, used there only; the rates above count interior columns"
        );
    }
    if let Some(d) = a.diffusion {
        let _ = writeln!(
            s,
            "  D(V_S1) from hops: {:.3e} nm²/s (95 % {:.3e}–{:.3e})",
            d.d_nm2_per_s, d.interval.0, d.interval.1
        );
    }
    for c in a.complexes.iter().filter(|c| c.events > 0) {
        let _ = writeln!(
            s,
            "  {} {} → {}: {:.4}/frame (95 % {:.4}–{:.4}; {} in {} dopant-frames)",
            c.dopant, c.from, c.to, c.rate, c.interval.0, c.interval.1, c.events, c.exposure
        );
    }
    s
}

/// Where `analyze --truth` writes the site model's scores (alone, and with the network off the
/// lattice).
pub const SCORE_JSON: &str = "site_score.json";

/// The site model scored against a generator's truth.
#[derive(Debug, Clone)]
pub struct SiteScore {
    pub score: Score,
    /// Adjusted Rand index of the classes of matched defects against their true types.
    pub ari: f64,
    /// True hops of vacancies (consecutive frames of one true vacancy on different columns)
    /// both of whose ends were found, and how many of those share a track. (The truth names
    /// an empty column by the smaller of its two vacancies' ids, so a hop that empties or
    /// fills a column is followed through that id.)
    pub hops_found: usize,
    pub hops_linked: usize,
}

/// Our tracks at a true vacancy in one frame, and its true position.
type Found = ([u32; 2], (f32, f32));

/// Score frames `frames` within `radius` px, ignoring `margin` px at the edges.
pub fn score(
    a: &SiteAnalysis,
    truth: &[TruthDefect],
    frames: std::ops::Range<usize>,
    radius: f32,
    margin: f32,
    (width, height): (usize, usize),
) -> SiteScore {
    let mut total = Score::default();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    // (true id, frame) → (our tracks, true position) for vacancies.
    let mut vacancy_track: HashMap<(u32, usize), Found> = HashMap::new();
    for t in frames {
        let found: Vec<&super::SiteDefect> = a.defects.iter().filter(|d| d.frame == t).collect();
        let pts: Vec<(f32, f32)> = found.iter().map(|d| (d.x, d.y)).collect();
        let tr: Vec<TruthDefect> = truth.iter().filter(|d| d.frame == t).copied().collect();
        total.add(&score_frame(&pts, &tr, radius, width, height, margin));
        let tpos: Vec<(f32, f32)> = tr.iter().map(|d| (d.x, d.y)).collect();
        for (ti, fi) in match_points(&pts, &tpos, radius) {
            let (d, f) = (&tr[ti], found[fi]);
            ours.push(class_index(&f.class));
            theirs.push(d.kind as usize);
            if matches!(
                d.kind,
                crate::synth::DefectType::VS1 | crate::synth::DefectType::VS2
            ) && f.tracks[0] > 0
            {
                vacancy_track.insert((d.id, t), (f.tracks, (d.x, d.y)));
            }
        }
    }
    let (mut hops_found, mut hops_linked) = (0, 0);
    let shared = |a: [u32; 2], b: [u32; 2]| a.iter().any(|&x| x > 0 && b.contains(&x));
    for (&(id, t), &(tracks, pos)) in &vacancy_track {
        if let Some(&(next, npos)) = vacancy_track.get(&(id, t + 1))
            && (pos.0 - npos.0).hypot(pos.1 - npos.1) > radius
        {
            hops_found += 1;
            hops_linked += usize::from(shared(tracks, next));
        }
    }
    SiteScore {
        score: total,
        ari: adjusted_rand_index(&ours, &theirs),
        hops_found,
        hops_linked,
    }
}

/// A class's number for the Rand index: its defect type where it names one (a complex counts
/// as its dopant), else a number past them.
fn class_index(class: &str) -> usize {
    match defect_type(class) {
        Some(t) => t as usize,
        None => 100,
    }
}
