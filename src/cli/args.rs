//! The command line: every command and its options (clap).

use super::sites_args;
use super::synth_args::{self, SynthArgs};
use clap::{Parser, Subcommand, ValueEnum};
use defectscope::analysis::AnalysisConfig;
use defectscope::analysis::classify::{ClassCount, ClusterMethod, Symmetry};
use defectscope::model::{Architecture, DeviceChoice};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "defectscope",
    version,
    about = "Find atomic defects in STEM movies"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Open the window, render the panel named by --panel into this PNG, and quit (with
    /// `--panel all`, a folder that receives one PNG per panel).
    #[arg(long, global = true)]
    pub(crate) screenshot: Option<PathBuf>,
    /// The panel to render: movie, ground-truth, augment, train, detect, classes, time, sites,
    /// pca, export, or all.
    #[arg(long, default_value = "movie", requires = "screenshot")]
    pub(crate) panel: String,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Analyze every movie of a folder (or of a manifest CSV: path[,pixel_size_nm,
    /// frame_interval_s,truth]) into one result folder each. Resumable: finished movies are
    /// skipped, half-written ones redone; a failure is recorded and the others go on.
    Batch {
        /// A folder of movies, or a manifest CSV.
        input: PathBuf,
        /// Output folder: one sub-folder per movie, and batch_summary.csv.
        #[arg(long, default_value = "results/batch")]
        out: PathBuf,
        /// Run only the movie at this position (0-based; default: SLURM_ARRAY_TASK_ID if set).
        #[arg(long)]
        index: Option<usize>,
        #[command(flatten)]
        opts: AnalyzeArgs,
    },
    /// Pool the results of many movies (result folders, or batch folders) into lab-level
    /// tables and a figure.
    Merge {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, default_value = "results/merged")]
        out: PathBuf,
        /// Width of the merged figure's PNG, px.
        #[arg(long, default_value_t = 2008.0)]
        png_width: f64,
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
pub(crate) enum LabelChoice {
    /// Lattice fit + per-column intensity outliers (default).
    Columns,
    /// FFT high-pass residual thresholds (Maksov et al. 2019).
    Fft,
}

#[derive(clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// Reuse a trained model folder instead of training.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub(crate) device: DeviceChoice,
    #[arg(long)]
    pub(crate) iterations: Option<usize>,
    #[arg(long)]
    pub(crate) crop: Option<usize>,
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    #[arg(long)]
    pub(crate) learning_rate: Option<f64>,
    #[arg(long, value_parser = parse_arch)]
    pub(crate) arch: Option<Architecture>,
    /// Filters of the network's first layer.
    #[arg(long)]
    pub(crate) net_width: Option<usize>,
    #[arg(long, value_enum, default_value_t = LabelChoice::Columns)]
    pub(crate) label: LabelChoice,
    /// Columns labelling: flag columns deviating by more than this many robust σ.
    #[arg(long)]
    pub(crate) z: Option<f32>,
    /// FFT labelling: cut-off radius in cycles per pixel.
    #[arg(long)]
    pub(crate) fft_cutoff: Option<f32>,
    /// Detection probability threshold.
    #[arg(long)]
    pub(crate) threshold: Option<f32>,
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Read the whole analysis config from a JSON file (as written in run.json's "config").
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Stop after detection: no classes, tracks or time series.
    #[arg(long)]
    pub(crate) no_analysis: bool,
    /// Register the frames first: measure their drift (sub-pixel cross-correlation) and move
    /// each onto frame 0, filling pixels no frame saw with the frame's mean. Writes
    /// registration.csv and figures/registration.svg.
    #[arg(long)]
    pub(crate) register: bool,
    /// Like --register, and crop every frame to the field of view all frames share.
    #[arg(long)]
    pub(crate) register_crop: bool,
    #[command(flatten)]
    pub(crate) analysis: AnalysisArgs,
}

/// Calibration overrides and the truth to score against.
#[derive(clap::Args)]
pub(crate) struct InputArgs {
    #[arg(long)]
    pub(crate) pixel_size_nm: Option<f64>,
    #[arg(long)]
    pub(crate) frame_interval_s: Option<f64>,
    /// A truth.csv (frame,x,y,type,id) to score detections, classes, links and transitions against.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
}

/// Settings of the analysis after detection.
#[derive(clap::Args)]
pub(crate) struct AnalysisArgs {
    /// Number of defect classes, or `auto` (BIC).
    #[arg(long, value_parser = parse_classes)]
    pub(crate) classes: Option<ClassCount>,
    /// Clustering method.
    #[arg(long, value_enum)]
    pub(crate) cluster: Option<ClusterChoice>,
    /// Patch side around each defect, px.
    #[arg(long)]
    pub(crate) patch: Option<usize>,
    /// Principal components the classes are found in (0 = raw pixels, small patches only).
    #[arg(long)]
    pub(crate) pca_components: Option<usize>,
    /// Merge classes that are rotations/mirrors of each other under 3- or 6-fold symmetry.
    #[arg(long)]
    pub(crate) symmetry: Option<usize>,
    /// Largest displacement between linked detections, px (default 1.2 lattice constants).
    #[arg(long)]
    pub(crate) max_step: Option<f32>,
    /// Frames a defect may be missed and keep its track.
    #[arg(long)]
    pub(crate) max_gap: Option<usize>,
    /// Link detections without correcting for the drift between frames.
    #[arg(long)]
    pub(crate) no_drift_correction: bool,
    /// Two classes whose coupling to measure, e.g. `0,1`.
    #[arg(long, value_parser = parse_pair)]
    pub(crate) coupling: Option<(usize, usize)>,
    /// A transition the hidden-Markov smoothing may never make, e.g. `0-2` (repeatable).
    #[arg(long, value_parser = parse_transition)]
    pub(crate) forbid: Vec<(usize, usize)>,
    /// Keep the classifier's labels (no hidden-Markov smoothing along tracks).
    #[arg(long)]
    pub(crate) no_hmm: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ClusterChoice {
    Kmeans,
    GmmDiag,
    GmmFull,
}

pub(crate) fn parse_classes(s: &str) -> std::result::Result<ClassCount, String> {
    if s == "auto" {
        return Ok(ClassCount::default());
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(ClassCount::Fixed(n)),
        _ => Err(format!("'{s}' is not a number of classes ≥ 1 or 'auto'")),
    }
}

pub(crate) fn parse_two(s: &str, sep: char) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("expected two class numbers like 0{sep}1, got '{s}'");
    let (a, b) = s.split_once(sep).ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

pub(crate) fn parse_pair(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_two(s, ',')
}

pub(crate) fn parse_transition(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_two(s, '-')
}

impl AnalysisArgs {
    pub(crate) fn apply(&self, a: &mut AnalysisConfig) {
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

pub(crate) fn parse_arch(s: &str) -> std::result::Result<Architecture, String> {
    match s {
        "sniffer" => Ok(Architecture::Sniffer),
        "unet" => Ok(Architecture::Unet),
        _ => Err(format!("unknown network '{s}' (use sniffer or unet)")),
    }
}
