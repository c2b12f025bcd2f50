//! Command line: no command (or `open`) starts the workbench window; `synth`, `analyze`, `study`
//! and `demo` run headless. Thin: parses arguments and calls the library.

mod sites_args;
mod synth_args;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use defectscope::analysis::classify::{ClassCount, ClusterMethod, Symmetry};
use defectscope::analysis::{self, AnalysisConfig, output};
use defectscope::bench::{self, Bench, BenchConfig};
use defectscope::detect::{Detection, parse_detections_csv};
use defectscope::export::{atomic_write, ensure_dir};
use defectscope::jobs::{self, Event, JobHandle};
use defectscope::lattice::LabelMethod;
use defectscope::lattice::{LatticeFit, fit_lattice};
use defectscope::model::{Architecture, DeviceChoice};
use defectscope::movie::register::register_movie;
use defectscope::movie::{self, Movie, write_npy_f32, write_tiff_f32, write_tiff_u8};
use defectscope::raster::Raster;
use defectscope::session::{Analysis, AnalyzeConfig, analyze, score_against_truth, write_results};
use defectscope::synth::{
    SynthConfig, SynthMovie, TruthDefect, generate, parse_truth_csv, register_truth,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synth_args::SynthArgs;

#[derive(Parser)]
#[command(
    name = "defectscope",
    version,
    about = "Find atomic defects in STEM movies"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Open the window, render the panel named by --panel into this PNG, and quit (with
    /// `--panel all`, a folder that receives one PNG per panel).
    #[arg(long, global = true)]
    screenshot: Option<PathBuf>,
    /// The panel to render: movie, ground-truth, augment, train, detect, classes, time, sites,
    /// pca, export, or all.
    #[arg(long, default_value = "movie", requires = "screenshot")]
    panel: String,
}

#[derive(Subcommand)]
enum Command {
    /// Open the workbench window on a movie file or project folder (without one: the demo movie).
    Open { path: Option<PathBuf> },
    /// Generate a WS2-like movie with known defects (movie.tif, movie.npy, truth.csv, truth_masks.tif).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 30)]
        frames: usize,
        /// Square frame size in pixels (overridden by --width/--height).
        #[arg(long, default_value_t = 512)]
        size: usize,
        #[arg(long)]
        width: Option<usize>,
        #[arg(long)]
        height: Option<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        physics: SynthArgs,
    },
    /// Label frame 0, train a network (or load one), detect defects in every frame.
    Analyze {
        /// Movie: TIFF stack, NPY array, PNG, or a folder of frames.
        movie: PathBuf,
        /// Output folder (created if missing).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        opts: AnalyzeArgs,
    },
    /// Classes, tracks, time series and PCA of defects already detected (a defects.csv).
    Study {
        /// The movie the defects were found in.
        movie: PathBuf,
        /// The detections: a defects.csv (frame,x,y[,area,score]).
        #[arg(long)]
        defects: PathBuf,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// Follow frame 0's lattice through the movie and fit a hidden Markov model over its
    /// column sites: defects per site and frame, vacancy tracks, rates with 95 % intervals.
    Sites {
        movie: PathBuf,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        model: sites_args::SitesArgs,
    },
    /// Print what a movie file holds: format, frames, frame size, value range, calibration.
    Info {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the frames as a float32 NPY array (T,H,W), e.g. to compare with other readers.
        #[arg(long)]
        npy: Option<PathBuf>,
    },
    /// Sweep imaging conditions (material, pixel size, dose, chalcogen contrast, contamination)
    /// on generated movies: the frame-by-frame lattice labelling's recall per defect type and
    /// precision against the truth, beside the single-frame oracle.
    Conditions {
        #[command(flatten)]
        grid: synth_args::ConditionsArgs,
    },
    /// Time every stage on synthetic movies and print a table of medians over repeats.
    Bench {
        /// Cases to run, by id or prefix (e.g. `train`, `infer-sniffer`, `analyze-30x512`);
        /// all when none is given. `--list` shows them.
        cases: Vec<String>,
        /// Timed repetitions per case (the whole-chain `analyze-…` cases run once).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Frames per forward pass in the inference cases.
        #[arg(long, default_value_t = 2)]
        inference_batch: usize,
        /// Filters of the networks' first layer in the training, inference and `analyze-…`
        /// cases.
        #[arg(long, default_value_t = defectscope::model::ModelConfig::default().width)]
        net_width: usize,
        /// Print the rows as JSON (with the machine) instead of a table.
        #[arg(long)]
        json: bool,
        /// List the cases and exit.
        #[arg(long)]
        list: bool,
    },
    /// Generate the built-in demo movie and analyze it, scoring against its known truth.
    Demo {
        #[arg(long, default_value = "results/demo")]
        out: PathBuf,
        #[command(flatten)]
        opts: AnalyzeArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LabelChoice {
    /// Lattice fit + per-column intensity outliers (default).
    Columns,
    /// FFT high-pass residual thresholds (Maksov et al. 2019).
    Fft,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Reuse a trained model folder instead of training.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[arg(long)]
    iterations: Option<usize>,
    #[arg(long)]
    crop: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long, value_parser = parse_arch)]
    arch: Option<Architecture>,
    /// Filters of the network's first layer.
    #[arg(long)]
    net_width: Option<usize>,
    #[arg(long, value_enum, default_value_t = LabelChoice::Columns)]
    label: LabelChoice,
    /// Columns labelling: flag columns deviating by more than this many robust σ.
    #[arg(long)]
    z: Option<f32>,
    /// FFT labelling: cut-off radius in cycles per pixel.
    #[arg(long)]
    fft_cutoff: Option<f32>,
    /// Detection probability threshold.
    #[arg(long)]
    threshold: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    input: InputArgs,
    /// Read the whole analysis config from a JSON file (as written in run.json's "config").
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop after detection: no classes, tracks or time series.
    #[arg(long)]
    no_analysis: bool,
    /// Register the frames first: measure their drift (sub-pixel cross-correlation) and move
    /// each onto frame 0, filling pixels no frame saw with the frame's mean. Writes
    /// registration.csv and figures/registration.svg.
    #[arg(long)]
    register: bool,
    /// Like --register, and crop every frame to the field of view all frames share.
    #[arg(long)]
    register_crop: bool,
    #[command(flatten)]
    analysis: AnalysisArgs,
}

/// Calibration overrides and the truth to score against.
#[derive(clap::Args)]
struct InputArgs {
    #[arg(long)]
    pixel_size_nm: Option<f64>,
    #[arg(long)]
    frame_interval_s: Option<f64>,
    /// A truth.csv (frame,x,y,type,id) to score detections, classes, links and transitions against.
    #[arg(long)]
    truth: Option<PathBuf>,
}

/// Settings of the analysis after detection.
#[derive(clap::Args)]
struct AnalysisArgs {
    /// Number of defect classes, or `auto` (BIC).
    #[arg(long, value_parser = parse_classes)]
    classes: Option<ClassCount>,
    /// Clustering method.
    #[arg(long, value_enum)]
    cluster: Option<ClusterChoice>,
    /// Patch side around each defect, px.
    #[arg(long)]
    patch: Option<usize>,
    /// Principal components the classes are found in (0 = raw pixels, small patches only).
    #[arg(long)]
    pca_components: Option<usize>,
    /// Merge classes that are rotations/mirrors of each other under 3- or 6-fold symmetry.
    #[arg(long)]
    symmetry: Option<usize>,
    /// Largest displacement between linked detections, px (default 1.2 lattice constants).
    #[arg(long)]
    max_step: Option<f32>,
    /// Frames a defect may be missed and keep its track.
    #[arg(long)]
    max_gap: Option<usize>,
    /// Link detections without correcting for the drift between frames.
    #[arg(long)]
    no_drift_correction: bool,
    /// Two classes whose coupling to measure, e.g. `0,1`.
    #[arg(long, value_parser = parse_pair)]
    coupling: Option<(usize, usize)>,
    /// A transition the hidden-Markov smoothing may never make, e.g. `0-2` (repeatable).
    #[arg(long, value_parser = parse_transition)]
    forbid: Vec<(usize, usize)>,
    /// Keep the classifier's labels (no hidden-Markov smoothing along tracks).
    #[arg(long)]
    no_hmm: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClusterChoice {
    Kmeans,
    GmmDiag,
    GmmFull,
}

fn parse_classes(s: &str) -> std::result::Result<ClassCount, String> {
    if s == "auto" {
        return Ok(ClassCount::default());
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(ClassCount::Fixed(n)),
        _ => Err(format!("'{s}' is not a number of classes ≥ 1 or 'auto'")),
    }
}

fn parse_two(s: &str, sep: char) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("expected two class numbers like 0{sep}1, got '{s}'");
    let (a, b) = s.split_once(sep).ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

fn parse_pair(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_two(s, ',')
}

fn parse_transition(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_two(s, '-')
}

impl AnalysisArgs {
    fn apply(&self, a: &mut AnalysisConfig) {
        if let Some(v) = self.classes {
            a.classes = v;
        }
        if let Some(c) = self.cluster {
            a.method = match c {
                ClusterChoice::Kmeans => ClusterMethod::KMeans,
                ClusterChoice::GmmDiag => ClusterMethod::GmmDiag,
                ClusterChoice::GmmFull => ClusterMethod::GmmFull,
            };
        }
        if let Some(v) = self.patch {
            a.patch_size = v;
        }
        if let Some(v) = self.pca_components {
            a.pca_components = v;
        }
        if let Some(order) = self.symmetry {
            a.symmetry = Some(Symmetry {
                order,
                ..Symmetry::default()
            });
        }
        if self.max_step.is_some() {
            a.tracking.max_step_px = self.max_step;
        }
        if let Some(v) = self.max_gap {
            a.tracking.max_gap = v;
        }
        if self.no_drift_correction {
            a.tracking.register = false;
        }
        if self.coupling.is_some() {
            a.coupling = self.coupling;
        }
        a.markov.forbidden.extend(&self.forbid);
        if self.no_hmm {
            a.hmm = false;
        }
    }
}

fn parse_arch(s: &str) -> std::result::Result<Architecture, String> {
    match s {
        "sniffer" => Ok(Architecture::Sniffer),
        "unet" => Ok(Architecture::Unet),
        _ => Err(format!("unknown network '{s}' (use sniffer or unet)")),
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_gui(None, cli.screenshot.as_deref(), &cli.panel),
        Some(Command::Open { path }) => run_gui(path, cli.screenshot.as_deref(), &cli.panel),
        Some(c) if cli.screenshot.is_some() => Err(anyhow::anyhow!(
            "--screenshot renders the window; use it without the {} command",
            command_name(&c)
        )),
        Some(c) => run_headless(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Open { .. } => "open",
        Command::Synth { .. } => "synth",
        Command::Analyze { .. } => "analyze",
        Command::Study { .. } => "study",
        Command::Info { .. } => "info",
        Command::Sites { .. } => "sites",
        Command::Demo { .. } => "demo",
        Command::Bench { .. } => "bench",
        Command::Conditions { .. } => "conditions",
    }
}

#[cfg(feature = "gui")]
fn run_gui(open: Option<PathBuf>, screenshot: Option<&Path>, panel: &str) -> Result<()> {
    use defectscope::gui::{Stage, StartOptions, run};
    let screenshots = match screenshot {
        None => Vec::new(),
        Some(path) if panel == "all" => Stage::ALL
            .iter()
            .map(|s| (*s, path.join(format!("{}.png", s.slug()))))
            .collect(),
        Some(path) => {
            let stage = Stage::parse(panel).with_context(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.slug()).collect();
                format!(
                    "unknown panel '{panel}' (one of {}, or all)",
                    names.join(", ")
                )
            })?;
            vec![(stage, path.to_path_buf())]
        }
    };
    run(StartOptions { open, screenshots })?;
    Ok(())
}

#[cfg(not(feature = "gui"))]
fn run_gui(_open: Option<PathBuf>, _screenshot: Option<&Path>, _panel: &str) -> Result<()> {
    anyhow::bail!(
        "this build has no window (built without the `gui` feature); run `defectscope --help` for the headless commands"
    )
}

fn run_headless(command: Command) -> Result<()> {
    match command {
        Command::Open { path } => run_gui(path, None, "movie"),
        Command::Synth {
            out,
            frames,
            size,
            width,
            height,
            seed,
            physics,
        } => {
            let cfg = physics.apply(SynthConfig {
                frames,
                width: width.unwrap_or(size),
                height: height.unwrap_or(size),
                seed,
                ..SynthConfig::default()
            })?;
            run_synth(&cfg, &out).map(|_| ())
        }
        Command::Analyze { movie, out, opts } => run_analyze_file(&movie, &out, &opts),
        Command::Study {
            movie,
            defects,
            out,
            input,
            analysis,
        } => run_study(&movie, &defects, &out, &input, &analysis),
        Command::Info { file, json, npy } => run_info(&file, json, npy.as_deref()),
        Command::Sites {
            movie,
            out,
            input,
            model,
        } => {
            let cfg = model.config()?;
            let movie = load_movie(&movie, &input)?;
            let truth = read_truth(input.truth.as_deref())?;
            let margin = defectscope::detect::LocalizeConfig::default().edge_margin_px;
            let handle = jobs::spawn("sites", Box::new(|| {}), move |ctx| {
                sites_args::run_sites(&movie, &cfg, &out, truth.as_deref(), margin, ctx)
            })?;
            follow(handle)
        }
        Command::Demo { out, opts } => run_demo(&out, &opts),
        Command::Conditions { grid } => run_conditions(&grid),
        Command::Bench {
            cases,
            repeats,
            device,
            inference_batch,
            net_width,
            json,
            list,
        } => {
            let cfg = BenchConfig {
                repeats,
                device,
                inference_batch,
                width: net_width,
                ..BenchConfig::default()
            };
            run_bench(&cases, cfg, json, list)
        }
    }
}

fn run_bench(wanted: &[String], cfg: BenchConfig, json: bool, list: bool) -> Result<()> {
    let cases = bench::select(wanted)?;
    if list {
        for c in &cases {
            println!("{}", c.id);
        }
        return Ok(());
    }
    #[cfg(feature = "gui")]
    let timer: Option<bench::FrameTimer> = Some(Box::new(defectscope::gui::marker_frame_times));
    #[cfg(not(feature = "gui"))]
    let timer: Option<bench::FrameTimer> = None;
    let mut b = Bench::new(cfg.clone(), timer)?;
    let machine = bench::machine();
    eprintln!("machine: {machine}");
    eprintln!("device:  {}", b.device().name);
    if let Some(w) = &b.device().warning {
        eprintln!("warning: {w}");
    }
    let mut rows = Vec::new();
    for case in &cases {
        eprintln!("running {} …", case.id);
        let made = b.run(case)?;
        if made.is_empty() {
            eprintln!("  skipped: this build has no window (feature `gui`)");
        }
        eprint!(
            "{}",
            bench::table(&made)
                .lines()
                .skip(1)
                .fold(String::new(), |a, l| a + l + "\n")
        );
        rows.extend(made);
    }
    if json {
        let doc = serde_json::json!({
            "machine": machine,
            "device": b.device().name,
            "repeats": cfg.repeats,
            "inference_batch": cfg.inference_batch,
            "build": if cfg!(debug_assertions) { "dev profile" } else { "release" },
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", bench::table(&rows));
    }
    Ok(())
}

fn run_info(file: &Path, json: bool, npy: Option<&Path>) -> Result<()> {
    let m = movie::load(file)?;
    if let Some(out) = npy {
        atomic_write(out, &write_npy_f32(&m.frames))?;
    }
    let (lo, hi) = m
        .frames
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), f| {
            let (x, y) = f.min_max();
            (a.min(x), b.max(y))
        });
    let info = serde_json::json!({
        "file": file.display().to_string(),
        "format": m.format,
        "frames": m.frames.len(),
        "width": m.width(),
        "height": m.height(),
        "min": lo,
        "max": hi,
        "pixel_size_nm": m.calibration.pixel_size_nm,
        "frame_interval_s": m.calibration.frame_interval_s,
        "acquisition": m.acquisition,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        let or_none = |v: Option<f64>, unit: &str| {
            v.map_or("not in the file".to_string(), |v| format!("{v} {unit}"))
        };
        println!("{}", file.display());
        println!("  format       {}", m.format);
        println!(
            "  frames       {} of {} × {} px",
            m.frames.len(),
            m.width(),
            m.height()
        );
        println!("  values       {lo} to {hi}");
        println!(
            "  pixel size   {}",
            or_none(m.calibration.pixel_size_nm, "nm")
        );
        println!(
            "  frame time   {}",
            or_none(m.calibration.frame_interval_s, "s")
        );
        for (k, v) in m.acquisition.lines() {
            println!("  {k:<12} {v}");
        }
    }
    Ok(())
}

fn run_synth(cfg: &SynthConfig, out: &Path) -> Result<SynthMovie> {
    let t = Instant::now();
    let s = generate(cfg)?;
    write_synth(&s, out)?;
    let counts = |k| {
        s.truth
            .iter()
            .filter(|d| d.kind == k && d.frame == 0)
            .count()
    };
    let kinds: Vec<String> = defectscope::synth::DefectType::ALL
        .iter()
        .filter(|&&k| counts(k) > 0)
        .map(|&k| format!("{} {}", counts(k), k.name()))
        .collect();
    let frame0 = if kinds.is_empty() {
        "no defects".to_string()
    } else {
        kinds.join(", ")
    };
    eprintln!(
        "synth: {} frames of {}x{} px of {} in {:.1} s → {}\n  frame 0 truth: {}; {} defects in all frames",
        cfg.frames,
        cfg.width,
        cfg.height,
        cfg.material.name(),
        t.elapsed().as_secs_f64(),
        out.display(),
        frame0,
        s.truth.len()
    );
    Ok(s)
}

fn run_conditions(args: &synth_args::ConditionsArgs) -> Result<()> {
    let grid = args.grid()?;
    let n = grid.conditions().len();
    eprintln!(
        "conditions: {n} conditions, {} frame(s) of {}² px each",
        grid.frames, grid.size
    );
    let t = Instant::now();
    let results = defectscope::conditions::sweep(&grid, &defectscope::jobs::JobCtx::detached())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", defectscope::conditions::markdown(&results));
    }
    eprintln!("conditions: done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn write_synth(s: &SynthMovie, out: &Path) -> Result<()> {
    ensure_dir(out)?;
    let cal = &s.movie.calibration;
    atomic_write(
        &out.join("movie.tif"),
        &write_tiff_f32(&s.movie.frames, cal)?,
    )?;
    atomic_write(&out.join("movie.npy"), &write_npy_f32(&s.movie.frames))?;
    atomic_write(&out.join("truth.csv"), s.truth_csv().as_bytes())?;
    if !s.pores.is_empty() {
        atomic_write(&out.join("pores.csv"), s.pores_csv().as_bytes())?;
    }
    let masks: Vec<Raster> = (0..s.movie.frames.len())
        .map(|f| {
            let m = s.truth_mask(f);
            Raster {
                width: s.movie.width(),
                height: s.movie.height(),
                data: m.iter().map(|&b| if b { 255.0 } else { 0.0 }).collect(),
            }
        })
        .collect();
    atomic_write(&out.join("truth_masks.tif"), &write_tiff_u8(&masks, cal)?)?;
    let meta = serde_json::json!({
        "config": s.config,
        "rotation_deg": s.rotation_deg,
        "drift_px": s.drift,
        "mask_radius_px": s.config.mask_radius_px(),
    });
    atomic_write(&out.join("synth.json"), &serde_json::to_vec_pretty(&meta)?)?;
    Ok(())
}

fn build_config(opts: &AnalyzeArgs) -> Result<AnalyzeConfig> {
    let mut cfg = match &opts.config {
        Some(p) => {
            let text = std::fs::read(p)
                .with_context(|| format!("could not read config {}", p.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("not an analysis config: {}", p.display()))?
        }
        None => AnalyzeConfig::new(),
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

/// Load a movie, apply calibration overrides, report what was read.
fn load_movie(path: &Path, input: &InputArgs) -> Result<Movie> {
    let t = Instant::now();
    let mut movie = movie::load(path)?;
    if input.pixel_size_nm.is_some() {
        movie.calibration.pixel_size_nm = input.pixel_size_nm;
    }
    if input.frame_interval_s.is_some() {
        movie.calibration.frame_interval_s = input.frame_interval_s;
    }
    movie.validate()?;
    eprintln!(
        "loaded {} ({}): {} frames of {}x{} px in {:.1} s",
        path.display(),
        movie.format,
        movie.frames.len(),
        movie.width(),
        movie.height(),
        t.elapsed().as_secs_f64()
    );
    Ok(movie)
}

fn read_truth(path: Option<&Path>) -> Result<Option<Vec<TruthDefect>>> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("could not read truth {}", p.display()))?;
            Ok(Some(parse_truth_csv(&text)?))
        }
        None => Ok(None),
    }
}

fn run_analyze_file(path: &Path, out: &Path, opts: &AnalyzeArgs) -> Result<()> {
    let movie = load_movie(path, &opts.input)?;
    let truth = read_truth(opts.input.truth.as_deref())?;
    let (movie, truth) = register_if_asked(movie, truth, opts, out)?;
    run_analysis(movie, opts, out, truth.as_deref())
}

/// With --register or --register-crop: remove the drift from the frames before the analysis,
/// move the truth positions with them, and write what was removed into `out`.
fn register_if_asked(
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

fn run_study(
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
    let lattice = match fit_lattice(&movie.frames[0], 0.05) {
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
fn study(
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
    output::write(out, &a, &detections, &movie.frames[0])?;
    let sizes: Vec<String> = a.class_means.iter().map(|m| m.2.to_string()).collect();
    eprintln!(
        "analysis in {:.1} s: {} of {} defects classified into {} classes ({}; sizes {}), {} near the edge",
        t.elapsed().as_secs_f64(),
        a.patched.len(),
        detections.len(),
        a.classes(),
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

fn run_demo(out: &Path, opts: &AnalyzeArgs) -> Result<()> {
    let cfg = defectscope::synth::demo_config();
    let movie_dir = out.join("movie");
    let s = run_synth(&cfg, &movie_dir)?;
    let mut movie = s.movie.clone();
    movie.source = movie_dir.join("movie.tif");
    let (movie, truth) = register_if_asked(movie, Some(s.truth), opts, out)?;
    run_analysis(movie, opts, out, truth.as_deref())
}

/// The built-in demo movie: small enough for the whole run to take about 3 minutes on 2 CPU cores.
fn run_analysis(
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
        site_scores(&analysis, sites, truth, &movie, cfg.localize.edge_margin_px);
    }
    eprintln!("  results: {}", written.defects_csv.display());
    if let Some(p) = written.overlay_png {
        eprintln!("           {}", p.display());
    }
    eprintln!("           {}", written.run_json.display());
    if analysis.model_source == "trained" {
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

/// Print progress to stderr while the job runs; return its result.
fn follow<T>(handle: JobHandle<T>) -> Result<T> {
    let mut last_loss = None;
    let mut stderr = std::io::stderr();
    let start = Instant::now();
    loop {
        for ev in handle.events.try_iter() {
            match ev {
                Event::TrainStep { loss, .. } => last_loss = Some(loss),
                Event::Validation { iteration, iou } => {
                    let _ = writeln!(
                        stderr,
                        "\r  iteration {iteration}: frame-0 IoU {iou:.3}{:30}",
                        ""
                    );
                }
                Event::Warning(w) => {
                    let _ = writeln!(stderr, "\rwarning: {w}");
                }
                Event::Info(i) => {
                    let _ = writeln!(stderr, "\r  {i}");
                }
            }
        }
        let p = handle.ctx.progress();
        let pct = if p.total > 0 {
            100.0 * p.done as f64 / p.total as f64
        } else {
            0.0
        };
        let loss = match (p.stage.as_str(), last_loss) {
            ("training", Some(l)) => format!("  loss {l:.4}"),
            _ => String::new(),
        };
        // Nothing to show before the job's first stage has begun.
        if !p.stage.is_empty() {
            let _ = write!(
                stderr,
                "\r{:>18} {:>5}/{:<5} {pct:5.1}%{loss}  [{:.0} s]   ",
                p.stage,
                p.done,
                p.total,
                start.elapsed().as_secs_f64()
            );
            let _ = stderr.flush();
        }
        if handle.is_finished() {
            let _ = writeln!(stderr);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(handle.join()?)
}

/// The site model's score against the truth, alone and with the network's off-lattice
/// detections.
fn site_scores(
    a: &Analysis,
    sites: &defectscope::sites::SiteAnalysis,
    truth: &[TruthDefect],
    movie: &Movie,
    margin: f32,
) {
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
}

fn summarize(a: &Analysis, movie: &Movie, score: Option<&defectscope::score::Score>, total_s: f64) {
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
