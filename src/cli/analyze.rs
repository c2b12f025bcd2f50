//! `analyze`, `study` and `demo`: the chain run as a job, its results written and summarised.

use anyhow::{Context, Result};
use defectscope::analysis::{self, AnalysisConfig, output};
use defectscope::detect::{Detection, parse_detections_csv};
use defectscope::export::{atomic_write, ensure_dir};
use defectscope::jobs::JobCtx;
use defectscope::jobs::{self};
use defectscope::lattice::LabelMethod;
use defectscope::lattice::LatticeFit;
use defectscope::movie::Movie;
use defectscope::movie::register::register_movie;
use defectscope::session::frame_lattice;
use defectscope::session::{Analysis, AnalyzeConfig, analyze, score_against_truth, write_results};
use defectscope::synth::{TruthDefect, register_truth};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::args::{AnalysisArgs, AnalyzeArgs, InputArgs, LabelChoice};
use super::commands::{load_movie, read_truth, run_synth};
use super::progress::follow;

pub(crate) fn build_config(opts: &AnalyzeArgs) -> Result<AnalyzeConfig> {
    let mut cfg = match &opts.config {
        Some(p) => {
            let text = std::fs::read(p)
                .with_context(|| format!("could not read config {}", p.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("not an analysis config: {}", p.display()))?
        }
        None => AnalyzeConfig::default(),
    };
    let t = &mut cfg.train;
    t.device = opts.device;
    if let Some(v) = opts.iterations {
        t.iterations = v;
    }
    if let Some(v) = opts.crop {
        t.crop = v;
    }
    if let Some(v) = opts.batch {
        t.batch = v;
    }
    if let Some(v) = opts.learning_rate {
        t.learning_rate = v;
    }
    if let Some(v) = opts.arch {
        t.model.architecture = v;
    }
    if let Some(v) = opts.net_width {
        t.model.width = v;
    }
    if let Some(v) = opts.seed {
        t.seed = v;
    }
    match opts.label {
        LabelChoice::Columns => {
            if !matches!(cfg.label, LabelMethod::Columns { .. }) {
                cfg.label = LabelMethod::default();
            }
            if let (Some(z), LabelMethod::Columns { z_threshold, .. }) = (opts.z, &mut cfg.label) {
                *z_threshold = z;
            }
        }
        LabelChoice::Fft => {
            if !matches!(cfg.label, LabelMethod::FftResidual { .. }) {
                cfg.label = LabelMethod::fft_residual_default();
            }
            if let (
                Some(c),
                LabelMethod::FftResidual {
                    cutoff_cycles_per_px,
                    ..
                },
            ) = (opts.fft_cutoff, &mut cfg.label)
            {
                *cutoff_cycles_per_px = c;
            }
        }
    }
    if let Some(v) = opts.threshold {
        cfg.localize.threshold = v;
    }
    opts.analysis.apply(&mut cfg.analysis);
    cfg.analysis.validate()?;
    Ok(cfg)
}

pub(crate) fn run_analyze_file(path: &Path, out: &Path, opts: &AnalyzeArgs) -> Result<()> {
    let movie = load_movie(path, &opts.input)?;
    let truth = read_truth(opts.input.truth.as_deref())?;
    let (movie, truth) = register_if_asked(movie, truth, opts, out)?;
    run_analysis(movie, opts, out, truth.as_deref())
}

/// With --register or --register-crop: remove the drift from the frames before the analysis,
/// move the truth positions with them, and write what was removed into `out`.
pub(crate) fn register_if_asked(
    mut movie: Movie,
    truth: Option<Vec<TruthDefect>>,
    opts: &AnalyzeArgs,
    out: &Path,
) -> Result<(Movie, Option<Vec<TruthDefect>>)> {
    if !(opts.register || opts.register_crop) {
        return Ok((movie, truth));
    }
    let crop = opts.register_crop;
    let handle = jobs::spawn("register", Box::new(|| {}), move |ctx| {
        let reg = register_movie(&mut movie, crop, ctx)?;
        Ok((movie, reg))
    })?;
    let (movie, reg) = follow(handle)?;
    let (w, h) = (movie.width(), movie.height());
    let written = output::write_registration(
        out,
        &reg,
        movie.calibration.pixel_size_nm,
        movie.calibration.frame_interval_s,
    )?;
    let largest = reg.drift.largest_px();
    eprintln!(
        "registered {} frames: drift up to {largest:.1} px removed{}; {}",
        movie.frames.len(),
        if crop {
            format!(", cropped to {w} × {h} px")
        } else {
            String::new()
        },
        written[0].display()
    );
    let truth = truth.map(|t| register_truth(&t, &reg, w, h));
    Ok((movie, truth))
}

pub(crate) fn run_study(
    path: &Path,
    defects: &Path,
    out: &Path,
    input: &InputArgs,
    args: &AnalysisArgs,
) -> Result<()> {
    let movie = load_movie(path, input)?;
    let text = std::fs::read_to_string(defects)
        .with_context(|| format!("could not read defects {}", defects.display()))?;
    let detections = parse_detections_csv(&text)
        .with_context(|| format!("not a defects table: {}", defects.display()))?;
    let mut cfg = AnalysisConfig::default();
    args.apply(&mut cfg);
    cfg.validate()?;
    // The lattice the labelling finds, as `analyze` and the window use.
    let lattice = match frame_lattice(
        &movie.frames[0],
        &LabelMethod::default(),
        &JobCtx::detached(),
    ) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("warning: no lattice found in frame 0 ({e})");
            None
        }
    };
    let truth = read_truth(input.truth.as_deref())?;
    ensure_dir(out)?;
    study(
        Arc::new(movie),
        Arc::new(detections),
        lattice,
        &cfg,
        out,
        truth.as_deref(),
    )
}

/// Run the defect analysis as a job, write its outputs into `out`, print a summary.
pub(crate) fn study(
    movie: Arc<Movie>,
    detections: Arc<Vec<Detection>>,
    lattice: Option<LatticeFit>,
    cfg: &AnalysisConfig,
    out: &Path,
    truth: Option<&[TruthDefect]>,
) -> Result<()> {
    let t = Instant::now();
    let (job_movie, job_dets, job_cfg) = (movie.clone(), detections.clone(), cfg.clone());
    let handle = jobs::spawn("analysis", Box::new(|| {}), move |ctx| {
        analysis::run(&job_movie, &job_dets, lattice.as_ref(), &job_cfg, ctx)
    })?;
    let a = follow(handle)?;
    output::write(out, &a, &detections, &movie, None)?;
    let sizes: Vec<String> = a.class_means.iter().map(|m| m.2.to_string()).collect();
    eprintln!(
        "analysis in {:.1} s: {} of {} defects classified into {} ({}; sizes {}), {} near the edge",
        t.elapsed().as_secs_f64(),
        a.patched.len(),
        detections.len(),
        a.classes_text(),
        a.clustering.method.name(),
        sizes.join("/"),
        a.skipped_edge
    );
    eprintln!(
        "  tracks: {} ({} over ≥ 2 frames, {} gap closures, max step {:.1} px); HMM changed {} labels ({:.1} %)",
        a.tracks.tracks.len(),
        a.tracks.tracks.iter().filter(|t| t.len() > 1).count(),
        a.tracks.gap_links,
        a.tracks.max_step_px,
        a.hmm_changed,
        100.0 * a.hmm_changed as f64 / a.patched.len().max(1) as f64
    );
    for d in &a.diffusion {
        eprintln!(
            "  class {}: {} ({} segments)",
            d.class,
            a.diffusion_text(d),
            d.segments
        );
    }
    let stages: Vec<String> = a
        .timings
        .iter()
        .map(|t| format!("{} {:.2} s", t.stage, t.seconds))
        .collect();
    eprintln!("  stages: {}", stages.join(", "));
    if let Some(truth) = truth {
        let s = analysis::truth::score(&a, &detections, truth, 3.0, 20);
        eprintln!(
            "  vs truth: ARI {:.3}, best accuracy {:.3} ({} matched defects; types → classes {:?}); links recovered {}/{} detected ({} true); transition max error {}",
            s.adjusted_rand_index,
            s.best_accuracy,
            s.matched_classified,
            s.class_of_type,
            s.links_recovered,
            s.links_detected,
            s.links_total,
            s.transition_max_error
                .map_or("n/a".to_string(), |e| format!("{e:.3}"))
        );
        atomic_write(
            &out.join("analysis_score.json"),
            &serde_json::to_vec_pretty(&s)?,
        )?;
    }
    eprintln!("  tables and figures: {}", out.display());
    Ok(())
}

pub(crate) fn run_demo(out: &Path, opts: &AnalyzeArgs) -> Result<()> {
    let cfg = defectscope::synth::demo_config();
    let movie_dir = out.join("movie");
    let s = run_synth(&cfg, &movie_dir)?;
    let mut movie = s.movie.clone();
    movie.source = movie_dir.join("movie.tif");
    let (movie, truth) = register_if_asked(movie, Some(s.truth), opts, out)?;
    run_analysis(movie, opts, out, truth.as_deref())
}

/// The built-in demo movie: small enough for the whole run to take about 3 minutes on 2 CPU cores.
pub(crate) fn run_analysis(
    movie: Movie,
    opts: &AnalyzeArgs,
    out: &Path,
    truth: Option<&[TruthDefect]>,
) -> Result<()> {
    let cfg = build_config(opts)?;
    let model = opts.model.clone();
    let checkpoint_dir = model.is_none().then(|| out.join("model"));
    let movie = Arc::new(movie);
    let job_movie = movie.clone();
    let job_cfg = cfg.clone();
    let t = Instant::now();
    let handle = jobs::spawn("analyze", Box::new(|| {}), move |ctx| {
        analyze(
            &job_movie,
            &job_cfg,
            model.as_deref(),
            checkpoint_dir.as_deref(),
            ctx,
        )
    })?;
    let analysis = follow(handle)?;
    let score = truth.map(|t| {
        score_against_truth(
            &analysis,
            t,
            &movie,
            1.min(movie.frames.len() - 1),
            3.0,
            cfg.localize.edge_margin_px,
        )
    });
    let written = write_results(out, &movie, &cfg, &analysis, score.as_ref())?;
    summarize(&analysis, &movie, score.as_ref(), t.elapsed().as_secs_f64());
    if let (Some(sites), Some(truth)) = (&analysis.sites, truth) {
        let (site, combined) =
            site_scores(&analysis, sites, truth, &movie, cfg.localize.edge_margin_px);
        let json = serde_json::json!({
            "frames_scored": format!("1..{}", movie.frames.len()),
            "radius_px": 3.0,
            "site_model": {"f1": site.f1(), "precision": site.precision(), "recall": site.recall(), "counts": site},
            "site_model_plus_network": {"f1": combined.f1(), "precision": combined.precision(), "recall": combined.recall(), "counts": combined},
        });
        atomic_write(
            &out.join(defectscope::sites::output::SCORE_JSON),
            &serde_json::to_vec_pretty(&json)?,
        )?;
    }
    eprintln!("  results: {}", written.defects_csv.display());
    if let Some(p) = written.overlay_png {
        eprintln!("           {}", p.display());
    }
    eprintln!("           {}", written.run_json.display());
    if analysis.training.is_some() {
        eprintln!(
            "  model:   {} (reuse with --model)",
            out.join("model").display()
        );
    }
    if opts.no_analysis {
        return Ok(());
    }
    let lattice = analysis.labels.as_ref().and_then(|l| l.lattice.clone());
    study(
        movie,
        Arc::new(analysis.detections),
        lattice,
        &cfg.analysis,
        out,
        truth,
    )
}

/// The site model's score against the truth, alone and with the network's off-lattice
/// detections (printed, and returned).
pub(crate) fn site_scores(
    a: &Analysis,
    sites: &defectscope::sites::SiteAnalysis,
    truth: &[TruthDefect],
    movie: &Movie,
    margin: f32,
) -> (defectscope::score::Score, defectscope::score::Score) {
    use defectscope::session::{combined_points, score_points};
    let first = 1.min(movie.frames.len() - 1);
    let s = defectscope::sites::output::score(
        sites,
        truth,
        first..movie.frames.len(),
        3.0,
        margin,
        (movie.width(), movie.height()),
    );
    eprintln!("  site model vs truth: {}", s.score.summary());
    eprintln!(
        "    classes ARI {:.3}; true vacancy hops with both ends found {}, on one track {}",
        s.ari, s.hops_found, s.hops_linked
    );
    let combined = score_points(truth, movie, first, 3.0, margin, |f| {
        combined_points(a, f).unwrap_or_default()
    });
    eprintln!(
        "  site model + network off the lattice: {}",
        combined.summary()
    );
    (s.score, combined)
}

pub(crate) fn summarize(
    a: &Analysis,
    movie: &Movie,
    score: Option<&defectscope::score::Score>,
    total_s: f64,
) {
    eprintln!(
        "done in {total_s:.1} s on {} (model: {})",
        a.device, a.model_source
    );
    if let Some(l) = &a.labels {
        eprintln!(
            "  frame 0 labels: {} of {} columns flagged, {:.2} % of pixels",
            l.columns.iter().filter(|c| c.flagged).count(),
            l.columns.len(),
            100.0 * l.defect_fraction()
        );
    }
    if let Some(t) = &a.training {
        eprintln!(
            "  training: {} iterations, {:.3} s/iteration, loss {:.4} → {:.4}, frame-0 IoU {:.3}",
            t.iterations,
            t.seconds_per_iteration,
            t.first_loss,
            t.final_loss,
            t.validation_iou.last().map_or(f32::NAN, |v| v.1)
        );
    }
    let n = movie.frames.len().max(1) as f64;
    eprintln!(
        "  detection: {} defects in {} frames ({:.1} per frame, min {}, max {}), {:.3} s/frame",
        a.detections.len(),
        movie.frames.len(),
        a.detections.len() as f64 / n,
        a.counts_per_frame.iter().min().unwrap_or(&0),
        a.counts_per_frame.iter().max().unwrap_or(&0),
        a.seconds("detect") / n
    );
    let stages: Vec<String> = a
        .timings
        .iter()
        .map(|t| format!("{} {:.1} s", t.stage, t.seconds))
        .collect();
    eprintln!("  stages: {}", stages.join(", "));
    if let Some(s) = score {
        eprintln!("  vs truth (frames ≥ 1, radius 3 px): {}", s.summary());
    }
    if let Some(s) = &a.sites {
        eprint!("  {}", defectscope::sites::output::summary(s));
    }
}
