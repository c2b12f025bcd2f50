//! Networks (the small "Sniffer" encoder–decoder and a U-Net), device selection and checkpoints.
//!
//! burn stays inside `model/`, `train/` and `detect/`; data crosses the boundary as `Vec<f32>`.
//! A checkpoint is a folder with `config.json` (architecture, width, format version) and
//! `weights.bpk` (burnpack), both written atomically.

pub mod cpu;
pub mod cpu_train;

use crate::error::{Error, Result};
use crate::export::{atomic_write, ensure_dir};
use crate::raster::{Raster, nth_smallest};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, DeviceKind, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the checkpoint layout; bump when it changes incompatibly.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Network families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Maksov et al.'s encoder–decoder: 2 poolings, 7 convolutions, no skips.
    Sniffer,
    /// AtomAI-style U-Net: 3 poolings, skip connections.
    Unet,
}

/// How a frame's intensities are mapped before standardisation; part of the model's contract,
/// so training and detection always use the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputTransform {
    /// Intensities as recorded.
    Linear,
    /// Square root of the intensity above the 0.5th percentile: stabilises shot-noise variance
    /// and compresses the bright heavy-atom columns, so faint light-atom columns (S vacancies)
    /// are not drowned by the W peaks.
    #[default]
    Sqrt,
}

/// What network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    /// Filters of the first layer (Sniffer: 32 in the paper; U-Net: 16 in AtomAI).
    pub width: usize,
    #[serde(default)]
    pub input: InputTransform,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: Architecture::Sniffer,
            width: 16,
            input: InputTransform::default(),
        }
    }
}

impl ModelConfig {
    /// The network input for a frame: the input transform, then zero mean and unit variance.
    pub fn prepare(&self, frame: &Raster) -> Raster {
        match self.input {
            InputTransform::Linear => frame.standardized(),
            InputTransform::Sqrt => {
                let lo = nth_smallest(&frame.data, frame.data.len() / 200);
                Raster {
                    width: frame.width,
                    height: frame.height,
                    data: frame
                        .data
                        .iter()
                        .map(|&v| (v - lo).max(0.0).sqrt())
                        .collect(),
                }
                .standardized()
            }
        }
    }

    /// Input height and width must be multiples of this.
    pub fn downsampling(&self) -> usize {
        match self.architecture {
            Architecture::Sniffer => 4,
            Architecture::Unet => 8,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(1..=256).contains(&self.width) {
            return Err(Error::invalid(format!(
                "network width must be 1–256, got {}",
                self.width
            )));
        }
        Ok(())
    }

    /// A network with random initial weights from the backend's generator.
    pub fn init(&self, device: &Device) -> Net {
        let _drawing = drawing_weights();
        self.build(device)
    }

    /// A network whose initial weights are set by `seed`: the backend's generator is seeded and
    /// drawn from with no other thread's initialisation in between.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> Net {
        let _drawing = drawing_weights();
        device.seed(seed);
        self.build(device)
    }

    fn build(&self, device: &Device) -> Net {
        match self.architecture {
            Architecture::Sniffer => Net::Sniffer(Sniffer::new(self.width, device)),
            Architecture::Unet => Net::Unet(Unet::new(self.width, device)),
        }
    }
}

/// The backend's generator is one per device and process: seeding it and drawing the weights
/// hold this lock, so that two trainings started together each get their seed's weights.
fn drawing_weights() -> std::sync::MutexGuard<'static, ()> {
    static DRAWING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DRAWING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Slope of the leaky ReLU after each batch norm.
const LEAKY_SLOPE: f32 = 0.03;

/// 3×3 convolution, batch norm, leaky ReLU ([`LEAKY_SLOPE`]).
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBlock {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        ConvBlock {
            conv: Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        leaky_relu(
            self.bn.forward(self.conv.forward(x)),
            f64::from(LEAKY_SLOPE),
        )
    }
}

fn pool() -> MaxPool2d {
    MaxPool2dConfig::new([2, 2]).init()
}

fn upsample() -> Interpolate2d {
    Interpolate2dConfig::new()
        .with_scale_factor(Some([2.0, 2.0]))
        .with_mode(InterpolateMode::Nearest)
        .init()
}

fn head(cin: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, 1], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

/// Encoder–decoder of Maksov et al. (2019) with width `c` (c, 2c, 2c, 2c, 2c, c).
#[derive(Module, Debug)]
pub struct Sniffer {
    c1: ConvBlock,
    c2: ConvBlock,
    c3: ConvBlock,
    c4: ConvBlock,
    c5: ConvBlock,
    c6: ConvBlock,
    out: Conv2d,
    pool: MaxPool2d,
    up: Interpolate2d,
}

impl Sniffer {
    fn new(c: usize, device: &Device) -> Self {
        Sniffer {
            c1: ConvBlock::new(1, c, device),
            c2: ConvBlock::new(c, 2 * c, device),
            c3: ConvBlock::new(2 * c, 2 * c, device),
            c4: ConvBlock::new(2 * c, 2 * c, device),
            c5: ConvBlock::new(2 * c, 2 * c, device),
            c6: ConvBlock::new(2 * c, c, device),
            out: head(c, device),
            pool: pool(),
            up: upsample(),
        }
    }

    /// # Shapes
    /// - input `[batch, 1, H, W]`, H and W multiples of 4
    /// - output `[batch, 1, H, W]` logits
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.forward(self.c1.forward(x));
        let x = self.pool.forward(self.c3.forward(self.c2.forward(x)));
        let x = self.c5.forward(self.c4.forward(x));
        let x = self.c6.forward(self.up.forward(x));
        self.out.forward(self.up.forward(x))
    }
}

/// U-Net with filters (f, 2f, 4f, 8f) and skip connections.
#[derive(Module, Debug)]
pub struct Unet {
    e1: [ConvBlock; 2],
    e2: [ConvBlock; 2],
    e3: [ConvBlock; 2],
    mid: [ConvBlock; 2],
    d3: [ConvBlock; 2],
    d2: [ConvBlock; 2],
    d1: [ConvBlock; 2],
    out: Conv2d,
    pool: MaxPool2d,
    up: Interpolate2d,
}

impl Unet {
    fn new(f: usize, device: &Device) -> Self {
        let pair =
            |a: usize, b: usize| [ConvBlock::new(a, b, device), ConvBlock::new(b, b, device)];
        Unet {
            e1: pair(1, f),
            e2: pair(f, 2 * f),
            e3: pair(2 * f, 4 * f),
            mid: pair(4 * f, 8 * f),
            d3: pair(8 * f + 4 * f, 4 * f),
            d2: pair(4 * f + 2 * f, 2 * f),
            d1: pair(2 * f + f, f),
            out: head(f, device),
            pool: pool(),
            up: upsample(),
        }
    }

    /// # Shapes
    /// - input `[batch, 1, H, W]`, H and W multiples of 8
    /// - output `[batch, 1, H, W]` logits
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let two = |b: &[ConvBlock; 2], x: Tensor<4>| b[1].forward(b[0].forward(x));
        let s1 = two(&self.e1, x);
        let s2 = two(&self.e2, self.pool.forward(s1.clone()));
        let s3 = two(&self.e3, self.pool.forward(s2.clone()));
        let m = two(&self.mid, self.pool.forward(s3.clone()));
        let x = two(&self.d3, Tensor::cat(vec![self.up.forward(m), s3], 1));
        let x = two(&self.d2, Tensor::cat(vec![self.up.forward(x), s2], 1));
        let x = two(&self.d1, Tensor::cat(vec![self.up.forward(x), s1], 1));
        self.out.forward(x)
    }
}

/// Any of our networks. Not boxed: burn's `Module` is not implemented for `Box`, and the size
/// difference (a few kB of layer handles) does not matter for a value moved once per step.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Net {
    Sniffer(Sniffer),
    Unet(Unet),
}

impl Net {
    /// The convolution blocks in the order of [`cpu::program`] (Sniffer: c1–c6; U-Net: e1, e2,
    /// e3, mid, d3, d2, d1, two each) and the output head.
    fn parts(&self) -> (Vec<&ConvBlock>, &Conv2d) {
        match self {
            Net::Sniffer(Sniffer {
                c1,
                c2,
                c3,
                c4,
                c5,
                c6,
                out,
                ..
            }) => (vec![c1, c2, c3, c4, c5, c6], out),
            Net::Unet(u) => (
                [&u.e1, &u.e2, &u.e3, &u.mid, &u.d3, &u.d2, &u.d1]
                    .into_iter()
                    .flatten()
                    .collect(),
                &u.out,
            ),
        }
    }

    /// [`Net::parts`], to write into.
    fn parts_mut(&mut self) -> (Vec<&mut ConvBlock>, &mut Conv2d) {
        match self {
            Net::Sniffer(Sniffer {
                c1,
                c2,
                c3,
                c4,
                c5,
                c6,
                out,
                ..
            }) => (vec![c1, c2, c3, c4, c5, c6], out),
            Net::Unet(u) => (
                [
                    &mut u.e1, &mut u.e2, &mut u.e3, &mut u.mid, &mut u.d3, &mut u.d2, &mut u.d1,
                ]
                .into_iter()
                .flatten()
                .collect(),
                &mut u.out,
            ),
        }
    }

    fn architecture(&self) -> Architecture {
        match self {
            Net::Sniffer(_) => Architecture::Sniffer,
            Net::Unet(_) => Architecture::Unet,
        }
    }

    /// # Shapes
    /// - input `[batch, 1, H, W]`, H and W multiples of [`ModelConfig::downsampling`]
    /// - output `[batch, 1, H, W]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Net::Sniffer(m) => m.forward(x),
            Net::Unet(m) => m.forward(x),
        }
    }
}

/// Where to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// A GPU if one works, else the CPU (with a warning).
    #[default]
    Auto,
    /// The CPU: our own kernels for training (`model::cpu_train`) and detection (`model::cpu`).
    Cpu,
    /// A GPU through wgpu; an error if none works.
    Gpu,
}

/// A usable device, a description of it and, if we fell back, why.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    pub device: Device,
    pub name: String,
    pub warning: Option<String>,
}

/// Choose the compute device. GPU devices are probed with a tiny computation; a failure (no
/// adapter, driver error) falls back to the CPU under `Auto` and is an error under `Gpu`.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice> {
    let cpu = || SelectedDevice {
        device: Device::flex(),
        name: "cpu".into(),
        warning: None,
    };
    if choice == DeviceChoice::Cpu
        || std::env::var_os("DEFECTSCOPE_NO_GPU").is_some() && choice == DeviceChoice::Auto
    {
        return Ok(cpu());
    }
    let (device, name) = match first_working_gpu(GPU_KINDS.to_vec()) {
        Ok(found) => found,
        Err(why) => {
            return match choice {
                DeviceChoice::Gpu => Err(Error::Device(format!("no usable GPU ({why})"))),
                _ => Ok(SelectedDevice {
                    warning: Some(format!("no usable GPU, training on the CPU ({why})")),
                    ..cpu()
                }),
            };
        }
    };
    Ok(SelectedDevice {
        device,
        name: format!("gpu (wgpu, {name})"),
        warning: None,
    })
}

/// The kinds of wgpu adapter [`select_device`] tries, in order, with their names.
const GPU_KINDS: [(DeviceKind, &str); 2] = [
    (DeviceKind::DiscreteGpu(0), "discrete GPU 0"),
    (DeviceKind::IntegratedGpu(0), "integrated GPU 0"),
];

/// The first of `kinds` on which a tiny computation works, named "kind: adapter"; else why
/// each failed.
fn first_working_gpu(
    kinds: Vec<(DeviceKind, &str)>,
) -> std::result::Result<(Device, String), String> {
    let mut reasons = Vec::new();
    for (kind, name) in kinds {
        match probe_gpu(kind) {
            Ok((device, adapter)) => return Ok((device, format!("{name}: {adapter}"))),
            Err(e) => reasons.push(format!("{name}: {e}")),
        }
    }
    Err(reasons.join("; "))
}

/// For tests of the GPU path: any wgpu adapter, including one that runs on the CPU (lavapipe,
/// Mesa's software Vulkan, which `.ci/run` installs), which [`select_device`] leaves out because
/// our own CPU path is faster.
#[cfg(test)]
pub(crate) fn any_wgpu_device() -> std::result::Result<(Device, String), String> {
    let mut kinds = GPU_KINDS.to_vec();
    kinds.push((DeviceKind::Cpu, "CPU adapter"));
    first_working_gpu(kinds)
}

/// The device of `kind` if a tiny computation on it works, with the adapter's name.
fn probe_gpu(kind: DeviceKind) -> std::result::Result<(Device, String), String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(move || {
        let device = Device::wgpu(kind);
        let t = Tensor::<1>::from_floats([1.0f32, 2.0], &device);
        let s: f32 = t.sum().into_scalar();
        let adapter = device
            .identity()
            .map_or_else(|| "unnamed adapter".to_string(), |i| i.name);
        (device, s, adapter)
    });
    std::panic::set_hook(previous);
    match outcome {
        Ok((device, s, adapter)) if (s - 3.0).abs() < 1e-6 => Ok((device, adapter)),
        Ok((_, s, _)) => Err(format!("probe computed {s} instead of 3")),
        Err(p) => Err(format!(
            "wgpu found no such adapter or could not start it [{}]",
            crate::jobs::panic_message(&*p)
        )),
    }
}

/// `config.json` of a checkpoint folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format_version: u32,
    pub model: ModelConfig,
    /// Training iterations done when saved.
    pub iterations: usize,
    /// Mask disk radius (px) the network was trained to draw; detection uses it for sizes.
    pub mask_radius_px: f32,
}

/// Save weights and config into `dir` (created if missing).
pub fn save_checkpoint(net: &Net, meta: &CheckpointMeta, dir: &Path) -> Result<()> {
    ensure_dir(dir)?;
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Model {
            msg: format!("could not serialise weights ({e:?})"),
            path: dir.to_path_buf(),
        })?;
    atomic_write(&dir.join("weights.bpk"), &bytes)?;
    let json = serde_json::to_vec_pretty(meta).map_err(|e| Error::invalid(e.to_string()))?;
    atomic_write(&dir.join("config.json"), &json)
}

/// Load a checkpoint folder onto `device`.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<(Net, CheckpointMeta)> {
    let model_err = |msg: String| Error::Model {
        msg,
        path: dir.to_path_buf(),
    };
    let cfg_path = dir.join("config.json");
    let text = std::fs::read(&cfg_path)
        .map_err(|e| Error::io("could not read model config", &cfg_path, e))?;
    let meta: CheckpointMeta = serde_json::from_slice(&text).map_err(|e| {
        model_err(format!(
            "config.json is not a defectscope model config ({e})"
        ))
    })?;
    if meta.format_version != CHECKPOINT_VERSION {
        return Err(model_err(format!(
            "checkpoint format {} is not supported (this version reads {CHECKPOINT_VERSION})",
            meta.format_version
        )));
    }
    meta.model.validate()?;
    let w_path = dir.join("weights.bpk");
    let bytes = std::fs::read(&w_path)
        .map_err(|e| Error::io("could not read model weights", &w_path, e))?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| model_err(format!("weights.bpk is corrupt ({e:?})")))?;
    let net = meta
        .model
        .init(device)
        .try_load_record(record)
        .map_err(|e| {
            model_err(format!(
                "weights.bpk does not fit a {:?} of width {} ({e:?})",
                meta.model.architecture, meta.model.width
            ))
        })?;
    Ok((net, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(model: ModelConfig) -> CheckpointMeta {
        CheckpointMeta {
            format_version: CHECKPOINT_VERSION,
            model,
            iterations: 0,
            mask_radius_px: 4.0,
        }
    }

    #[test]
    fn both_networks_keep_the_input_size() {
        let device = Device::flex();
        for arch in [Architecture::Sniffer, Architecture::Unet] {
            let cfg = ModelConfig {
                architecture: arch,
                width: 4,
                ..ModelConfig::default()
            };
            let net = cfg.init(&device);
            let x = Tensor::<4>::zeros([2, 1, 16, 24], &device);
            assert_eq!(net.forward(x).dims(), [2, 1, 16, 24]);
        }
    }

    #[test]
    fn sniffer_of_width_32_has_the_published_size() {
        // Maksov et al. report ~149 k parameters for their 32-filter network.
        let net = ModelConfig {
            architecture: Architecture::Sniffer,
            width: 32,
            ..ModelConfig::default()
        }
        .init(&Device::flex());
        let n = net.num_params();
        assert!((140_000..160_000).contains(&n), "{n} parameters");
    }

    #[test]
    fn checkpoint_round_trip_and_incompatible_weights() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = Device::flex();
        let cfg = ModelConfig {
            architecture: Architecture::Sniffer,
            width: 4,
            ..ModelConfig::default()
        };
        let net = cfg.init(&device);
        save_checkpoint(&net, &meta(cfg), dir.path()).expect("save");
        let x = Tensor::<4>::ones([1, 1, 8, 8], &device);
        let (loaded, m) = load_checkpoint(dir.path(), &device).expect("load");
        assert_eq!(m.model, cfg);
        let a: Vec<f32> = net
            .valid()
            .forward(x.clone())
            .into_data()
            .try_into_vec::<f32>()
            .expect("data");
        let b: Vec<f32> = loaded
            .valid()
            .forward(x)
            .into_data()
            .try_into_vec::<f32>()
            .expect("data");
        assert_eq!(a, b);

        // A config that does not match the weights is a clear error.
        let wider = ModelConfig { width: 8, ..cfg };
        let json = serde_json::to_vec(&meta(wider)).expect("json");
        std::fs::write(dir.path().join("config.json"), json).expect("write");
        let err = load_checkpoint(dir.path(), &device).expect_err("mismatch");
        assert!(err.to_string().contains("does not fit"), "{err}");

        std::fs::write(dir.path().join("config.json"), b"{}").expect("write");
        assert!(load_checkpoint(dir.path(), &device).is_err());
        let missing = dir.path().join("nothing");
        assert!(load_checkpoint(&missing, &device).is_err());
    }

    #[test]
    fn cpu_choice_is_the_flex_backend() {
        let d = select_device(DeviceChoice::Cpu).expect("cpu");
        assert!(d.name.contains("cpu") && d.warning.is_none());
    }
}
