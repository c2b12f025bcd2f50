//! Networks (the small "Sniffer" encoder–decoder and a U-Net), device selection and checkpoints.
//!
//! burn stays inside `model/`, `train/` and `detect/`; data crosses the boundary as `Vec<f32>`.
//! A checkpoint is a folder with `config.json` (architecture, width, format version) and
//! `weights.bpk` (burnpack), both written atomically.

mod arch;
pub mod cpu;
pub mod cpu_train;

use crate::error::{Error, Result};
use crate::export::{atomic_write, ensure_dir};
use crate::raster::{Raster, nth_smallest};
use arch::Op;
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
pub const CHECKPOINT_VERSION: u32 = 2;

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
        Net::new(self.architecture, self.width, device)
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

/// Either of our networks, built from its description in [`arch`]: its convolution blocks in
/// [`arch::program`]'s order and the output head, run by interpreting the program.
#[derive(Module, Debug)]
pub struct Net {
    blocks: Vec<ConvBlock>,
    out: Conv2d,
    pool: MaxPool2d,
    up: Interpolate2d,
    #[module(skip)]
    architecture: Architecture,
}

impl Net {
    fn new(architecture: Architecture, width: usize, device: &Device) -> Self {
        let (blocks, head_in) = arch::channels(architecture, width);
        Net {
            blocks: blocks
                .into_iter()
                .map(|(cin, cout)| ConvBlock::new(cin, cout, device))
                .collect(),
            out: head(head_in, device),
            pool: pool(),
            up: upsample(),
            architecture,
        }
    }

    /// The convolution blocks in the order of [`arch::program`] and the output head.
    fn parts(&self) -> (Vec<&ConvBlock>, &Conv2d) {
        (self.blocks.iter().collect(), &self.out)
    }

    /// [`Net::parts`], to write into.
    fn parts_mut(&mut self) -> (Vec<&mut ConvBlock>, &mut Conv2d) {
        (self.blocks.iter_mut().collect(), &mut self.out)
    }

    fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// # Shapes
    /// - input `[batch, 1, H, W]`, H and W multiples of [`ModelConfig::downsampling`]
    /// - output `[batch, 1, H, W]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let program = arch::program(self.architecture);
        let mut values: Vec<Tensor<4>> = Vec::with_capacity(program.len());
        for op in &program {
            let v = match *op {
                Op::Input => x.clone(),
                Op::Block(b, s) => self.blocks[b].forward(values[s].clone()),
                Op::Pool(s) => self.pool.forward(values[s].clone()),
                Op::Up(s) => self.up.forward(values[s].clone()),
                Op::Cat(a, b) => Tensor::cat(vec![values[a].clone(), values[b].clone()], 1),
                Op::Head(s) => self.out.forward(values[s].clone()),
            };
            values.push(v);
        }
        // The program's last step is its head.
        values.swap_remove(program.len() - 1)
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
    /// Said to the user when the choice fell back (one line).
    pub warning: Option<String>,
    /// Why, for the log.
    pub details: Option<String>,
}

impl SelectedDevice {
    /// Say a fallback as a warning and why in the log.
    pub fn announce(&self, ctx: &crate::jobs::JobCtx) {
        if let Some(w) = &self.warning {
            ctx.emit(crate::jobs::Event::Warning(w.clone()));
        }
        if let Some(d) = &self.details {
            ctx.emit(crate::jobs::Event::Info(d.clone()));
        }
    }
}

/// Choose the compute device. GPU devices are probed with a tiny computation; a failure (no
/// adapter, driver error) falls back to the CPU under `Auto` and is an error under `Gpu`.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice> {
    let cpu = || SelectedDevice {
        device: Device::flex(),
        name: "cpu".into(),
        warning: None,
        details: None,
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
                    warning: Some("no usable GPU found; running on the CPU".into()),
                    details: Some(format!("GPU probe: {why}")),
                    ..cpu()
                }),
            };
        }
    };
    Ok(SelectedDevice {
        device,
        name: format!("gpu (wgpu, {name})"),
        warning: None,
        details: None,
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
    if !(1..=CHECKPOINT_VERSION).contains(&meta.format_version) {
        return Err(model_err(format!(
            "checkpoint format {} is not supported (this version reads 1–{CHECKPOINT_VERSION})",
            meta.format_version
        )));
    }
    meta.model.validate()?;
    let w_path = dir.join("weights.bpk");
    let bytes = std::fs::read(&w_path)
        .map_err(|e| Error::io("could not read model weights", &w_path, e))?;
    let mut bytes = burn::tensor::Bytes::from_bytes_vec(bytes);
    if meta.format_version == 1 {
        bytes = format_1_renamed(bytes, meta.model.architecture)
            .map_err(|e| model_err(format!("weights.bpk is corrupt ({e})")))?;
    }
    let record = burn::store::ModuleRecord::from_bytes(bytes)
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

/// The weights of a format-1 checkpoint (one module per architecture, with named blocks) under
/// the names of the network built from its description ([`arch`]): block k's tensors from
/// `blocks.k`, the head's from `out`.
fn format_1_renamed(
    bytes: burn::tensor::Bytes,
    architecture: Architecture,
) -> std::result::Result<burn::tensor::Bytes, burn_pack::Error> {
    let old = arch::format_1_block_names(architecture);
    let head = format!("{architecture:?}.out.");
    let tensors = burn_pack::Reader::from_bytes(bytes)?
        .into_tensors()?
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, id, data) = t.into_parts()?;
            let renamed = match name.strip_prefix(&head) {
                Some(rest) => format!("out.{rest}"),
                None => old
                    .iter()
                    .enumerate()
                    .find_map(|(k, o)| {
                        let rest = name.strip_prefix(o.as_str())?.strip_prefix('.')?;
                        Some(format!("blocks.{k}.{rest}"))
                    })
                    .unwrap_or(name),
            };
            Ok(burn_pack::Tensor::new(renamed, dtype, shape, id, data))
        })
        .collect::<std::result::Result<Vec<_>, burn_pack::Error>>()?;
    burn_pack::Writer::new(tensors).into_bytes()
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
    fn format_1_checkpoints_still_load() {
        // Saved by the version with one module per architecture (a Sniffer and a U-Net of
        // width 2, three training iterations each).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint_v1");
        let device = Device::flex();
        for (name, arch) in [
            ("sniffer", Architecture::Sniffer),
            ("unet", Architecture::Unet),
        ] {
            let (net, meta) = load_checkpoint(&root.join(name), &device).expect(name);
            assert_eq!(meta.format_version, 1);
            assert_eq!(net.architecture(), arch);
            // Trained weights, not a fresh network's: its batch norms have moved.
            let (blocks, _) = net.parts();
            let var: Vec<f32> = blocks[0]
                .bn
                .running_var
                .value()
                .into_data()
                .try_into_vec::<f32>()
                .expect("values");
            assert!(
                var.iter().any(|&v| (v - 1.0).abs() > 1e-6),
                "{name}: {var:?}"
            );
            // Saved again, it is a format-2 checkpoint that loads to the same weights.
            let dir = tempfile::tempdir().expect("dir");
            let m2 = CheckpointMeta {
                format_version: CHECKPOINT_VERSION,
                ..meta
            };
            save_checkpoint(&net, &m2, dir.path()).expect("save");
            let (again, _) = load_checkpoint(dir.path(), &device).expect("reload");
            let x = Tensor::<4>::ones([1, 1, 16, 16], &device);
            let (a, b): (Vec<f32>, Vec<f32>) = (
                net.forward(x.clone())
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("a"),
                again
                    .forward(x)
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("b"),
            );
            assert_eq!(a, b, "{name}");
        }
    }

    #[test]
    fn cpu_choice_is_the_flex_backend() {
        let d = select_device(DeviceChoice::Cpu).expect("cpu");
        assert!(d.name.contains("cpu") && d.warning.is_none());
    }
}
