//! Benchmarks: how fast each stage runs, on synthetic movies, as medians over repeats.
//!
//! `defectscope bench` runs the [`CASES`] (or those asked for) one after the other and prints
//! one [`BenchRow`] per case (per stage for the whole-chain cases). Inputs are generated with
//! [`defectscope::synth`] once and shared between cases; their generation is not timed. Network cases
//! run one untimed warm-up pass first (kernel selection, allocator); the others do not need one.
//! Peak memory is the process's resident high-water mark (`VmHWM`), reset before the case, so
//! it includes the case's input movie.

use defectscope::analysis::classify::{ClassCount, ClusterMethod, cluster};
use defectscope::analysis::tracks::{TrackConfig, link};
use defectscope::analysis::{self, AnalysisConfig, dendrogram, patches};
use defectscope::detect::{Detection, probability_maps};
use defectscope::error::{Error, Result};
use defectscope::jobs::JobCtx;
use defectscope::lattice::{LabelMethod, Labels, label};
use defectscope::model::{Architecture, DeviceChoice, ModelConfig, SelectedDevice, select_device};
use defectscope::movie::Movie;
use defectscope::raster::Raster;
use defectscope::session::{AnalyzeConfig, analyze};
use defectscope::synth::{SynthConfig, generate};
use defectscope::train::{FrameLabels, TrainConfig, train};
use ndarray::Array2;
use serde::Serialize;
use std::time::Instant;

/// One benchmark case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    /// Name on the command line and in the table.
    pub id: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Train {
        arch: Architecture,
        batch: usize,
    },
    Infer {
        arch: Architecture,
        size: usize,
    },
    Analyze {
        frames: usize,
        size: usize,
    },
    Cluster(ClusterMethod),
    Dendrogram {
        all: bool,
    },
    Link,
    /// The site model (lattice followed through the movie, HMM over its columns).
    Sites {
        frames: usize,
        size: usize,
    },
    /// A hand correction after the analysis of the true defects of a movie: only what depends
    /// on the classes is recomputed.
    Relabel {
        frames: usize,
        size: usize,
    },
    /// The window with `detections` spread over a movie of `frames` frames.
    GuiMarkers {
        detections: usize,
        frames: usize,
    },
}

/// Side of the training crops of the training cases.
pub const TRAIN_CROP: usize = 256;
/// Defects in the `…-10k` cases come from a movie of this many frames of this size
/// (about 11 000 true defects).
const TEN_K_FRAMES: usize = 100;
const TEN_K_SIZE: usize = 768;

/// Every case, in the order they run.
pub const CASES: &[Case] = &[
    Case {
        id: "train-sniffer-b8",
        kind: Kind::Train {
            arch: Architecture::Sniffer,
            batch: 8,
        },
    },
    Case {
        id: "train-sniffer-b32",
        kind: Kind::Train {
            arch: Architecture::Sniffer,
            batch: 32,
        },
    },
    Case {
        id: "train-unet-b8",
        kind: Kind::Train {
            arch: Architecture::Unet,
            batch: 8,
        },
    },
    Case {
        id: "train-unet-b32",
        kind: Kind::Train {
            arch: Architecture::Unet,
            batch: 32,
        },
    },
    Case {
        id: "infer-sniffer-512",
        kind: Kind::Infer {
            arch: Architecture::Sniffer,
            size: 512,
        },
    },
    Case {
        id: "infer-sniffer-1024",
        kind: Kind::Infer {
            arch: Architecture::Sniffer,
            size: 1024,
        },
    },
    Case {
        id: "infer-unet-512",
        kind: Kind::Infer {
            arch: Architecture::Unet,
            size: 512,
        },
    },
    Case {
        id: "infer-unet-1024",
        kind: Kind::Infer {
            arch: Architecture::Unet,
            size: 1024,
        },
    },
    Case {
        id: "gmm-10k",
        kind: Kind::Cluster(ClusterMethod::GmmFull),
    },
    Case {
        id: "kmeans-10k",
        kind: Kind::Cluster(ClusterMethod::KMeans),
    },
    Case {
        id: "dendrogram-10k",
        kind: Kind::Dendrogram { all: false },
    },
    Case {
        id: "dendrogram-10k-all",
        kind: Kind::Dendrogram { all: true },
    },
    Case {
        id: "link-10k",
        kind: Kind::Link,
    },
    Case {
        id: "sites-30x512",
        kind: Kind::Sites {
            frames: 30,
            size: 512,
        },
    },
    Case {
        id: "relabel-30x512",
        kind: Kind::Relabel {
            frames: 30,
            size: 512,
        },
    },
    Case {
        id: "gui-10k-markers",
        kind: Kind::GuiMarkers {
            detections: 10_000,
            frames: 1,
        },
    },
    Case {
        id: "gui-100k-detections",
        kind: Kind::GuiMarkers {
            detections: 100_000,
            frames: 200,
        },
    },
    Case {
        id: "analyze-30x512",
        kind: Kind::Analyze {
            frames: 30,
            size: 512,
        },
    },
    Case {
        id: "analyze-100x1024",
        kind: Kind::Analyze {
            frames: 100,
            size: 1024,
        },
    },
];

/// The cases named in `wanted` (ids, or prefixes of ids such as `train` or `infer-unet`);
/// all of them when `wanted` is empty. An unknown name is an error listing the ids.
pub fn select(wanted: &[String]) -> Result<Vec<Case>> {
    if wanted.is_empty() {
        return Ok(CASES.to_vec());
    }
    for w in wanted {
        if !CASES.iter().any(|c| c.id.starts_with(w.as_str())) {
            let ids: Vec<&str> = CASES.iter().map(|c| c.id).collect();
            return Err(Error::invalid(format!(
                "no benchmark case is called {w:?}; the cases are {}",
                ids.join(", ")
            )));
        }
    }
    Ok(CASES
        .iter()
        .filter(|c| wanted.iter().any(|w| c.id.starts_with(w.as_str())))
        .copied()
        .collect())
}

/// How to run the cases.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Timed repetitions per case (the whole-chain cases run once).
    pub repeats: usize,
    pub device: DeviceChoice,
    /// Frames per forward pass in the inference cases (the detection default is 2).
    pub inference_batch: usize,
    pub seed: u64,
    /// First-layer filters of the networks in the training, inference and whole-chain cases.
    pub width: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            repeats: 5,
            device: DeviceChoice::Auto,
            inference_batch: AnalyzeConfig::default().inference_batch,
            seed: 1,
            width: ModelConfig::default().width,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub case: String,
    /// What was timed, in words.
    pub what: String,
    pub device: String,
    /// `s/iteration`, `ms/frame` or `s`.
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Timed repetitions the median is over.
    pub samples: usize,
    /// Resident high-water mark during the case, MB (`None` where Linux's `/proc` is missing).
    pub peak_mb: Option<f64>,
}

/// Measures CPU time of the window's frames (the GUI is not part of the library's pipeline,
/// so the binary hands this in): `(detections, movie frames, window frames)` → milliseconds per window frame.
pub type FrameTimer = Box<dyn Fn(usize, usize, usize) -> Vec<f64>>;

/// Inputs shared between cases, made when first needed.
pub struct Bench {
    cfg: BenchConfig,
    device: SelectedDevice,
    gui: Option<FrameTimer>,
    training: Option<(Raster, Labels)>,
    inference: Vec<(usize, Vec<Raster>)>,
    ten_k: Option<TenK>,
}

/// About 10⁴ true defects of a 100-frame movie, their patches' clustering features, and their
/// classes once a dendrogram case has asked for them.
struct TenK {
    detections: Vec<Detection>,
    features: Array2<f64>,
    labels: Option<Vec<usize>>,
    max_step_px: f32,
}

impl Bench {
    /// The network of the training and inference cases: the workbench's, at the bench's width.
    fn model(&self, architecture: Architecture) -> ModelConfig {
        ModelConfig {
            architecture,
            width: self.cfg.width,
            ..ModelConfig::default()
        }
    }

    /// Selects the device now, so that every row names the same one.
    pub fn new(cfg: BenchConfig, gui: Option<FrameTimer>) -> Result<Self> {
        if cfg.repeats == 0 || cfg.inference_batch == 0 {
            return Err(Error::invalid(
                "benchmark repeats and inference batch must be at least 1",
            ));
        }
        let device = select_device(cfg.device)?;
        Ok(Bench {
            cfg,
            device,
            gui,
            training: None,
            inference: Vec::new(),
            ten_k: None,
        })
    }

    /// The device the network cases run on, and why it is not a GPU where one was wanted.
    pub fn device(&self) -> &SelectedDevice {
        &self.device
    }

    /// Run one case; its rows (several for the whole-chain cases), or none where the case cannot
    /// run in this build (the window case without the `gui` feature).
    pub fn run(&mut self, case: &Case) -> Result<Vec<BenchRow>> {
        match case.kind {
            Kind::Train { arch, batch } => self.train(case, arch, batch).map(|r| vec![r]),
            Kind::Infer { arch, size } => self.infer(case, arch, size).map(|r| vec![r]),
            Kind::Analyze { frames, size } => self.analyze(case, frames, size),
            Kind::Cluster(method) => self.cluster(case, method).map(|r| vec![r]),
            Kind::Dendrogram { all } => self.dendrogram(case, all).map(|r| vec![r]),
            Kind::Link => self.link(case).map(|r| vec![r]),
            Kind::Sites { frames, size } => self.sites(case, frames, size).map(|r| vec![r]),
            Kind::Relabel { frames, size } => self.relabel(case, frames, size).map(|r| vec![r]),
            Kind::GuiMarkers { detections, frames } => Ok(self
                .gui_markers(case, detections, frames)
                .into_iter()
                .collect()),
        }
    }

    fn synth(&self, frames: usize, size: usize) -> Result<Movie> {
        Ok(generate(&SynthConfig {
            frames,
            width: size,
            height: size,
            seed: self.cfg.seed,
            ..SynthConfig::default()
        })?
        .movie)
    }

    fn row(&self, case: &Case, what: String, unit: &str, samples: &[f64]) -> BenchRow {
        let (median, min, max) = stats(samples);
        BenchRow {
            case: case.id.to_string(),
            what,
            device: self.device.name.clone(),
            unit: unit.to_string(),
            median,
            min,
            max,
            samples: samples.len(),
            peak_mb: peak_memory_mb(),
        }
    }

    fn train(&mut self, case: &Case, arch: Architecture, batch: usize) -> Result<BenchRow> {
        if self.training.is_none() {
            // A 512² frame and its automatic labels: what training runs on in the workbench.
            let movie = self.synth(1, 2 * TRAIN_CROP)?;
            let frame = movie.frames[0].clone();
            let labels = label(&frame, &LabelMethod::default())?;
            self.training = Some((frame, labels));
        }
        let Some((frame, labels)) = &self.training else {
            return Err(Error::invalid("the training frame was not made"));
        };
        let cfg = TrainConfig {
            model: self.model(arch),
            crop: TRAIN_CROP,
            batch,
            iterations: 1 + self.cfg.repeats,
            validate_every: 0,
            checkpoint_every: 0,
            device: self.cfg.device,
            seed: self.cfg.seed,
            ..TrainConfig::default()
        };
        reset_peak_memory();
        let ignore = labels.ignore_mask();
        let frame_labels = FrameLabels {
            mask: &labels.mask,
            ignore: &ignore,
            radius_px: labels.mask_radius_px(),
        };
        let trained = train(frame, &frame_labels, &cfg, None, &JobCtx::detached())?;
        Ok(self.row(
            case,
            format!(
                "training iteration, {} (width {}), batch {batch}, {TRAIN_CROP}² crops: augmentation, forward, focal + Dice loss, backward, Adam",
                arch_name(arch),
                self.cfg.width
            ),
            "s/iteration",
            &trained.iteration_seconds[1..],
        ))
    }

    fn infer(&mut self, case: &Case, arch: Architecture, size: usize) -> Result<BenchRow> {
        let batch = self.cfg.inference_batch;
        if !self.inference.iter().any(|(s, _)| *s == size) {
            let movie = self.synth(batch, size)?;
            self.inference.push((size, movie.frames));
        }
        let frames = self
            .inference
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, f)| f.as_slice())
            .unwrap_or_default();
        let model = self.model(arch);
        let net = model.init_seeded(&self.device.device, self.cfg.seed);
        reset_peak_memory();
        probability_maps(&net, &model, &self.device.device, frames)?;
        let mut samples = Vec::with_capacity(self.cfg.repeats);
        for _ in 0..self.cfg.repeats {
            let t = Instant::now();
            probability_maps(&net, &model, &self.device.device, frames)?;
            samples.push(t.elapsed().as_secs_f64() * 1e3 / frames.len() as f64);
        }
        Ok(self.row(
            case,
            format!(
                "inference, {} (width {}), {size}² frames, {batch} per pass: input transform, forward, sigmoid, read back",
                arch_name(arch),
                self.cfg.width
            ),
            "ms/frame",
            &samples,
        ))
    }

    /// The whole chain as `defectscope analyze` runs it with default settings: label frame 0,
    /// train, detect every frame, then classes, tracks, time series and PCA. One run, one row
    /// per stage plus the total.
    fn analyze(&mut self, case: &Case, frames: usize, size: usize) -> Result<Vec<BenchRow>> {
        let movie = self.synth(frames, size)?;
        let mut cfg = AnalyzeConfig::default();
        cfg.train.device = self.cfg.device;
        cfg.train.model.width = self.cfg.width;
        let ctx = JobCtx::detached();
        reset_peak_memory();
        let t = Instant::now();
        let found = analyze(&movie, &cfg, None, None, &ctx)?;
        let lattice = found.labels.as_ref().and_then(|l| l.lattice.as_ref());
        let studied = analysis::run(&movie, &found.detections, lattice, &cfg.analysis, &ctx)?;
        let total = t.elapsed().as_secs_f64();
        let what = |stage: &str| {
            format!(
                "analyze {frames}×{size}², default settings ({} detections): {stage}",
                found.detections.len()
            )
        };
        let mut rows: Vec<BenchRow> = found
            .timings
            .iter()
            .chain(&studied.timings)
            .map(|s| BenchRow {
                case: format!("{}/{}", case.id, s.stage),
                peak_mb: None,
                ..self.row(case, what(&s.stage), "s", &[s.seconds])
            })
            .collect();
        rows.push(BenchRow {
            case: format!("{}/total", case.id),
            ..self.row(case, what("total"), "s", &[total])
        });
        Ok(rows)
    }

    fn ten_k(&mut self) -> Result<&mut TenK> {
        if self.ten_k.is_none() {
            let synth_cfg = SynthConfig {
                frames: TEN_K_FRAMES,
                width: TEN_K_SIZE,
                height: TEN_K_SIZE,
                seed: self.cfg.seed,
                ..SynthConfig::default()
            };
            let s = generate(&synth_cfg)?;
            let detections: Vec<Detection> = s
                .truth
                .iter()
                .map(|t| Detection {
                    frame: t.frame,
                    x: t.x,
                    y: t.y,
                    area: 30,
                    score: 1.0,
                })
                .collect();
            let cfg = AnalysisConfig::default();
            let p = patches::extract(&s.movie.frames, &detections, cfg.patch_size)?;
            let (features, _) = analysis::features(&p.data, &cfg)?;
            let a_px = synth_cfg.lattice_a_px();
            self.ten_k = Some(TenK {
                detections,
                features,
                labels: None,
                max_step_px: (1.2 * a_px) as f32,
            });
        }
        self.ten_k
            .as_mut()
            .ok_or_else(|| Error::invalid("the 10⁴-defect input was not made"))
    }

    fn repeat(&self, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        reset_peak_memory();
        (0..self.cfg.repeats)
            .map(|_| {
                let t = Instant::now();
                f()?;
                Ok(t.elapsed().as_secs_f64())
            })
            .collect()
    }

    fn cluster(&mut self, case: &Case, method: ClusterMethod) -> Result<BenchRow> {
        let seed = self.cfg.seed;
        let features = self.ten_k()?.features.clone();
        let count = ClassCount::default();
        let samples = self.repeat(|| cluster(&features, method, count, seed).map(|_| ()))?;
        Ok(self.row(
            case,
            format!(
                "{} on {} patches ({} features), classes by BIC up to {}",
                method.name(),
                features.nrows(),
                features.ncols(),
                match count {
                    ClassCount::Auto { max } | ClassCount::Fixed(max) => max,
                }
            ),
            "s",
            &samples,
        ))
    }

    fn dendrogram(&mut self, case: &Case, all: bool) -> Result<BenchRow> {
        let cfg = AnalysisConfig::default();
        let ten_k = self.ten_k()?;
        // The leaves' majority classes, as the analysis gives them (not timed).
        let labels = match &ten_k.labels {
            Some(l) => l.clone(),
            None => cluster(&ten_k.features, cfg.method, cfg.classes, cfg.seed)?.labels,
        };
        ten_k.labels = Some(labels.clone());
        let features = ten_k.features.clone();
        let max = if all {
            features.nrows()
        } else {
            cfg.dendrogram_max_samples
        };
        let samples = self.repeat(|| {
            dendrogram::ward(
                &features,
                Some(&labels),
                max,
                cfg.dendrogram_leaves,
                cfg.seed,
            )
            .map(|_| ())
        })?;
        Ok(self.row(
            case,
            format!(
                "Ward dendrogram of {} of {} patches",
                max.min(features.nrows()),
                features.nrows()
            ),
            "s",
            &samples,
        ))
    }

    fn link(&mut self, case: &Case) -> Result<BenchRow> {
        let ten_k = self.ten_k()?;
        let (detections, step) = (ten_k.detections.clone(), ten_k.max_step_px);
        let offsets = vec![(0.0, 0.0); TEN_K_FRAMES];
        let gap = TrackConfig::default().max_gap;
        let samples = self.repeat(|| link(&detections, &offsets, step, gap).map(|_| ()))?;
        Ok(self.row(
            case,
            format!(
                "linking {} detections over {TEN_K_FRAMES} frames (gaps up to {gap})",
                detections.len()
            ),
            "s",
            &samples,
        ))
    }

    fn sites(&mut self, case: &Case, frames: usize, size: usize) -> Result<BenchRow> {
        let movie = self.synth(frames, size)?;
        let fit = defectscope::session::frame_lattice(
            &movie.frames[0],
            &LabelMethod::default(),
            &JobCtx::detached(),
        )?;
        let cfg = defectscope::sites::SiteModelConfig::default();
        let mut sites = 0;
        let samples = self.repeat(|| {
            let a = defectscope::sites::analyze_sites(
                &movie.frames,
                &fit,
                movie.calibration,
                &cfg,
                &JobCtx::detached(),
            )?;
            sites = a.series.keys.len();
            Ok(())
        })?;
        Ok(self.row(
            case,
            format!(
                "site model: {sites} sites over {frames} frames of {size}² (follow, measure, fit)"
            ),
            "s",
            &samples,
        ))
    }

    fn relabel(&mut self, case: &Case, frames: usize, size: usize) -> Result<BenchRow> {
        let s = generate(&SynthConfig {
            frames,
            width: size,
            height: size,
            seed: self.cfg.seed,
            ..SynthConfig::default()
        })?;
        let dets: Vec<Detection> = s
            .truth
            .iter()
            .map(|t| Detection {
                frame: t.frame,
                x: t.x,
                y: t.y,
                area: 30,
                score: 1.0,
            })
            .collect();
        let ctx = JobCtx::detached();
        let lattice =
            defectscope::session::frame_lattice(&s.movie.frames[0], &LabelMethod::default(), &ctx)?;
        let cfg = AnalysisConfig::default();
        let t = Instant::now();
        let a = analysis::run(&s.movie, &dets, Some(&lattice), &cfg, &ctx)?;
        let whole = t.elapsed().as_secs_f64();
        let mut c = defectscope::analysis::corrections::Corrections::default();
        let d = a.patched.first().copied().unwrap_or(0);
        let to = (a.class[d].unwrap_or(0) + 1) % a.classes().max(1);
        c.push(
            defectscope::analysis::classify::ManualEdit::Relabel {
                detection: d,
                class: to,
            },
            &a,
        );
        let samples = self.repeat(|| a.corrected(&s.movie, &dets, &c, &ctx).map(|_| ()))?;
        Ok(self.row(
            case,
            format!(
                "one relabel on {} defects of {frames} × {size}² (the whole analysis: {whole:.2} s)",
                dets.len()
            ),
            "s",
            &samples,
        ))
    }

    fn gui_markers(&self, case: &Case, detections: usize, frames: usize) -> Option<BenchRow> {
        let timer = self.gui.as_ref()?;
        reset_peak_memory();
        let samples = timer(detections, frames, self.cfg.repeats.max(10));
        Some(BenchRow {
            device: "cpu (egui pass + tessellation)".into(),
            ..self.row(
                case,
                if frames == 1 {
                    format!("window frame, Detection panel with {detections} markers on the frame shown")
                } else {
                    format!(
                        "window frame, Detection panel, {detections} detections over {frames} frames ({} on the frame shown)",
                        detections / frames
                    )
                },
                "ms/frame",
                &samples,
            )
        })
    }
}

fn arch_name(a: Architecture) -> &'static str {
    match a {
        Architecture::Sniffer => "Sniffer",
        Architecture::Unet => "U-Net",
    }
}

/// Median, smallest and largest of `samples` (NaN for none).
fn stats(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    };
    (median, s[0], s[n - 1])
}

/// Start measuring the resident high-water mark afresh (Linux; elsewhere a no-op).
fn reset_peak_memory() {
    // Writing 5 to clear_refs resets VmHWM to the current resident size (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The resident high-water mark since the last reset, MB.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The processor and how many threads it offers, e.g. "AMD EPYC 7B13, 2 threads".
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {threads} threads")
}

/// The rows as an aligned text table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:<12} {:>21} {:>3} {:>8}  {:<20} what\n",
        "case", "median", "unit", "min–max", "n", "peak MB", "device"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<28} {:>10} {:<12} {:>21} {:>3} {:>8}  {:<20} {}\n",
            r.case,
            number(r.median),
            r.unit,
            format!("{}–{}", number(r.min), number(r.max)),
            r.samples,
            r.peak_mb.map_or("–".into(), |m| format!("{m:.0}")),
            r.device,
            r.what
        ));
    }
    out
}

/// Three significant digits, at least.
fn number(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_selection() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(stats(&[]).0.is_nan());
        let train = select(&["train-unet".into()]).expect("known prefix");
        let ids: Vec<&str> = train.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["train-unet-b8", "train-unet-b32"]);
        assert_eq!(select(&[]).expect("all").len(), CASES.len());
        let err = select(&["fast".into()]).expect_err("unknown");
        assert!(err.to_string().contains("link-10k"), "{err}");
    }

    #[test]
    fn the_cheap_cases_make_rows_on_the_cpu() {
        let mut bench = Bench::new(
            BenchConfig {
                repeats: 2,
                device: DeviceChoice::Cpu,
                ..BenchConfig::default()
            },
            None,
        )
        .expect("bench");
        let case = select(&["infer-sniffer-512".into()]).expect("case")[0];
        let rows = bench.run(&case).expect("inference");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.samples, r.unit.as_str()), (2, "ms/frame"));
        assert!(r.min > 0.0 && r.min <= r.median && r.median <= r.max);
        assert!(r.device.contains("cpu"));
        // Without a window there is no window case, and that is not an error.
        let gui = select(&["gui".into()]).expect("case")[0];
        assert!(bench.run(&gui).expect("no rows").is_empty());
        assert!(table(&rows).contains("infer-sniffer-512"));
    }
}
