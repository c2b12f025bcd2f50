//! The site model (a hidden Markov model over the lattice's columns) against generated movies
//! whose truth is known, at the realistic default conditions (multislice contrast with S2/S
//! 1.45, ±20 % contamination, 2·10⁵ e/Å², 12.5 pm/px).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use defectscope::jobs::JobCtx;
use defectscope::lattice::fit_lattice;
use defectscope::movie::Calibration;
use defectscope::sites::hmm::Rate;
use defectscope::sites::{SiteAnalysis, SiteModelConfig, analyze_sites, output};
use defectscope::synth::{DefectType, SynthConfig, SynthMovie, generate};

fn movie(cfg: SynthConfig) -> SynthMovie {
    generate(&cfg).expect("generate")
}

fn run(s: &SynthMovie, cfg: &SiteModelConfig) -> SiteAnalysis {
    let fit = fit_lattice(&s.movie.frames[0], 0.05).expect("lattice");
    let calibration = Calibration {
        pixel_size_nm: Some(s.config.pixel_size_nm),
        frame_interval_s: Some(s.config.frame_interval_s),
    };
    analyze_sites(&s.movie.frames, &fit, calibration, cfg, &JobCtx::detached()).expect("sites")
}

fn rate(a: &SiteAnalysis, r: Rate) -> (f64, (f64, f64)) {
    let e = a.rates.iter().find(|e| e.rate == r).expect("rate");
    (e.value, e.interval)
}

/// Single S vacancies at d′ ≈ 3 per frame are found through time at the bar, with the
/// other defects, their classes, their hops and the hop rate.
#[test]
fn faint_vacancies_are_found_through_time() {
    let s = movie(SynthConfig {
        frames: 24,
        width: 448,
        height: 448,
        seed: 3,
        ..SynthConfig::default()
    });
    let a = run(&s, &SiteModelConfig::default());
    let frames = s.movie.frames.len();
    let sc = output::score(&a, &s.truth, 1..frames, 3.0, 4.0, (448, 448));
    eprintln!("{}", output::summary(&a));
    eprintln!(
        "{}; ARI {:.3}; hops {}/{}",
        sc.score.summary(),
        sc.ari,
        sc.hops_linked,
        sc.hops_found
    );
    assert!(sc.score.recall_of(DefectType::VS1) >= 0.85, "V_S1 recall");
    assert!(sc.score.precision() >= 0.9, "precision");
    for kind in [DefectType::VS2, DefectType::MoW, DefectType::VM] {
        assert!(sc.score.recall_of(kind) >= 0.95, "{kind:?} recall");
    }
    assert!(sc.score.f1() >= 0.95, "F1 {}", sc.score.f1());
    assert!(sc.ari >= 0.9, "ARI {}", sc.ari);
    assert!(
        sc.hops_found >= 10,
        "too few hops to judge: {}",
        sc.hops_found
    );
    assert!(
        sc.hops_linked as f64 >= 0.85 * sc.hops_found as f64,
        "hops on one track: {}/{}",
        sc.hops_linked,
        sc.hops_found
    );
    let (hop, (lo, hi)) = rate(&a, Rate::Hop);
    assert!(
        (hop - s.config.hop_probability).abs() <= 0.35 * s.config.hop_probability,
        "hop rate {hop} ({lo}–{hi}) against {}",
        s.config.hop_probability
    );
    let d = a.diffusion.expect("calibrated movie has a D");
    assert!(d.d_nm2_per_s > 0.0 && d.interval.0 <= d.d_nm2_per_s && d.d_nm2_per_s <= d.interval.1);
    // Few creations at the default rate: the interval must hold the generator's (it did not
    // while vacancies hopping in at the edge of the measured lattice counted as sputtering).
    let (sputter, (lo, hi)) = rate(&a, Rate::Sputter);
    assert!(
        lo <= s.config.creation_rate && s.config.creation_rate <= hi,
        "sputter {sputter} ({lo}–{hi}) against {}",
        s.config.creation_rate
    );
}

/// Where the beam sputters often enough to count, the fitted rate is the generator's.
#[test]
fn the_sputtering_rate_is_the_generators() {
    let s = movie(SynthConfig {
        frames: 24,
        width: 448,
        height: 448,
        seed: 5,
        creation_rate: 0.004,
        ..SynthConfig::default()
    });
    let a = run(&s, &SiteModelConfig::default());
    let (sputter, (lo, hi)) = rate(&a, Rate::Sputter);
    eprintln!("sputter {sputter} ({lo}–{hi})");
    assert!(
        (sputter - 0.004).abs() <= 0.3 * 0.004 && lo <= 0.004 && 0.004 <= hi,
        "sputter {sputter} ({lo}–{hi}) against 0.004"
    );
}

/// A specimen that does not change gives no hops and no sputtering: the rates' upper bounds
/// stay small and D is bounded near zero, never negative.
#[test]
fn a_static_specimen_has_no_dynamics() {
    let s = movie(SynthConfig {
        frames: 12,
        width: 384,
        height: 384,
        seed: 4,
        hop_probability: 0.0,
        creation_rate: 0.0,
        ..SynthConfig::default()
    });
    let a = run(&s, &SiteModelConfig::default());
    let (hop, (lo, hi)) = rate(&a, Rate::Hop);
    assert!(
        hop < 0.03 && hi < 0.06 && lo >= 0.0,
        "hop {hop} ({lo}–{hi})"
    );
    let (sputter, (_, hi)) = rate(&a, Rate::Sputter);
    assert!(sputter < 0.002 && hi < 0.004, "sputter {sputter} (≤ {hi})");
    let d = a.diffusion.expect("D");
    assert!(d.interval.0 >= 0.0 && d.d_nm2_per_s >= 0.0);
}

/// A forbidden rate is zero and a fixed one stays where the user put it; bad settings are
/// refused with a message.
#[test]
fn user_constraints_hold() {
    let s = movie(SynthConfig {
        frames: 6,
        width: 320,
        height: 320,
        seed: 6,
        ..SynthConfig::default()
    });
    let mut cfg = SiteModelConfig::default();
    cfg.constrain(&["hop".into()], &["sputter=0.002".into()], &[])
        .expect("constraints");
    let a = run(&s, &cfg);
    assert_eq!(rate(&a, Rate::Hop), (0.0, (0.0, 0.0)));
    assert_eq!(rate(&a, Rate::Sputter).0, 0.002);
    assert_eq!(a.diffusion.expect("D").d_nm2_per_s, 0.0);
    let mut bad = SiteModelConfig::default();
    assert!(bad.constrain(&["teleport".into()], &[], &[]).is_err());
    assert!(bad.constrain(&[], &["hop=2".into()], &[]).is_err());
    assert!(bad.constrain(&[], &[], &["hop=0.1".into()]).is_err());
}

/// A hole through the film is a lattice-free area, not a cluster of defects: its columns are
/// left out, the references around it hold, and the defects around it are still found.
#[test]
fn a_pore_is_left_out_and_the_defects_around_it_are_found() {
    let s = movie(SynthConfig {
        frames: 8,
        width: 384,
        height: 384,
        seed: 5,
        pores: 1,
        ..SynthConfig::default()
    });
    let a = run(&s, &SiteModelConfig::default());
    // The hole holds about (r/a)² · 2π/√3 · 2 columns; all frames mark some.
    assert!(
        a.series.lattice_free.iter().all(|&n| n >= 10),
        "{:?}",
        a.series.lattice_free
    );
    let sc = output::score(&a, &s.truth, 1..8, 3.0, 4.0, (384, 384));
    eprintln!("{}", sc.score.summary());
    assert!(sc.score.recall() >= 0.9, "recall {}", sc.score.recall());
    assert!(
        sc.score.precision() >= 0.7,
        "precision {}",
        sc.score.precision()
    );
    // No defect is reported inside the hole.
    for d in &a.defects {
        let p = s.pores.iter().find(|p| p.frame == d.frame).expect("pore");
        assert!(
            (d.x - p.x).hypot(d.y - p.y) > 0.8 * p.radius_px,
            "defect inside the hole at frame {}",
            d.frame
        );
    }
    // The hole is one lattice-free region followed through the movie, sitting on the pore,
    // with an area near the pore's and a growth rate that is positive.
    let tracks: Vec<_> = a
        .free_region_tracks
        .iter()
        .filter(|t| t.members.len() == 8)
        .collect();
    assert_eq!(tracks.len(), 1, "{:?}", a.free_region_tracks);
    for &i in &tracks[0].members {
        let r = &a.series.free_regions[i];
        let p = s.pores.iter().find(|p| p.frame == r.frame).expect("pore");
        let truth = std::f32::consts::PI * p.radius_px * p.radius_px;
        assert!((r.x - p.x).hypot(r.y - p.y) < 0.3 * p.radius_px);
        let ratio = r.area_px as f32 / truth;
        assert!((0.6..1.5).contains(&ratio), "area / pore area {ratio}");
    }
    let (g, se) = tracks[0].growth_px2_per_frame.expect("growth");
    assert!(g > 2.0 * se, "growth {g} ± {se}");
}
