//! Training our two networks on the CPU without burn: what training runs on when the device is
//! the CPU.
//!
//! burn's flex backend spends most of a training step in its own convolution and GEMM packing
//! and leaves one of two cores idle (README, "Speed"). This module runs the same step on the
//! layout and kernels of [`super::cpu`]:
//!
//! - The forward pass interprets [`program`], the network's description that burn's
//!   `Net::forward` interprets too, keeping every value for the backward pass. Batch norm uses
//!   the batch's statistics (biased variance, as burn) and moves the running statistics by
//!   burn's momentum.
//! - The backward pass walks the program in reverse. A 3×3 convolution's weight gradient is
//!   `dY · im2colᵀ` and its input gradient `Wᵀ · dY` scattered back (col2im), band by band,
//!   images in parallel.
//! - A block that reads an upsampled value (alone, or concatenated with a skip connection) runs
//!   on the value before upsampling, as inference does ([`super::cpu::conv_up`]): forward, four
//!   2×2 convolutions, one per output phase; backward, each phase's gradients, its weight
//!   gradient summed back onto the 3×3 taps it combines.
//! - All parameters live in one flat vector, so Adam is one loop. It is burn's Adam with its
//!   default settings (β₁ 0.9, β₂ 0.999, ε 1e-5, ε scaled by the bias correction as burn does).
//!
//! The gradients equal burn's autodiff to float rounding and the running statistics equal
//! burn's (tested below). Weights go back into a burn [`Net`] for checkpoints, validation and
//! detection.

use super::arch::{Op, fused_upsampling, program};
use super::cpu::{
    Planes, TAPS_3X3, Taps, UpInput, add_shifted, band_rows, cat, conv_up, conv3x3, phase_column,
    phase_taps, pool, shape_err, tap_rows, up, value, values,
};
use super::{ConvBlock, LEAKY_SLOPE, Net};
use crate::error::{Error, Result};
use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

/// burn's `AdamConfig` defaults.
mod backward;
use backward::{
    accumulate, bias_gradient, channel_sums, col2im_add, im2col_t, phase_planes, pool_backward,
    shifted_rows_backward, up_backward,
};

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const ADAM_EPSILON: f32 = 1e-5;

/// One activation per image of the batch.
type Batch = Vec<Planes>;

/// Where a convolution's weights (`cout × 9·cin`, burn's order) and bias sit in the flat
/// parameter vector.
#[derive(Debug, Clone, Copy)]
struct ConvSlot {
    cin: usize,
    cout: usize,
    weight: usize,
    bias: usize,
}

impl ConvSlot {
    fn weight_len(&self) -> usize {
        self.cout * 9 * self.cin
    }

    fn weight<'a>(&self, theta: &'a [f32]) -> Result<ArrayView2<'a, f32>> {
        ArrayView2::from_shape(
            (self.cout, 9 * self.cin),
            &theta[self.weight..][..self.weight_len()],
        )
        .map_err(shape_err)
    }
}

/// A convolution block: its convolution, batch-norm scale and shift, and running statistics.
#[derive(Debug, Clone)]
struct BlockSlot {
    conv: ConvSlot,
    gamma: usize,
    beta: usize,
    epsilon: f32,
    momentum: f32,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

/// What the backward pass needs of a block beyond its input and output: the normalised
/// convolution output and 1/σ per channel.
#[derive(Debug)]
struct BlockCache {
    xhat: Batch,
    inv_std: Vec<f32>,
}

/// A forward pass kept for the backward pass.
#[derive(Debug)]
pub struct Tape {
    values: Vec<Option<Batch>>,
    caches: Vec<Option<BlockCache>>,
}

impl Tape {
    /// The logits, image after image (`h × w` each).
    pub fn logits(&self) -> Result<Vec<f32>> {
        let out = value(&self.values, self.values.len() - 1)?;
        Ok(out.iter().flat_map(|p| p.data.iter().copied()).collect())
    }
}

/// A network being trained on the CPU.
#[derive(Debug, Clone)]
pub struct CpuTrainer {
    program: Vec<Op>,
    /// Per step, the values a block that reads an upsampled value reads instead, and nothing
    /// for the upsampling and concatenation it makes unneeded ([`fused_upsampling`]).
    fused: Vec<Option<Vec<usize>>>,
    blocks: Vec<BlockSlot>,
    /// Per block, the planes of its upsampled input where it has one.
    up_planes: Vec<Option<usize>>,
    head: ConvSlot,
    /// All trainable parameters.
    theta: Vec<f32>,
    /// Adam's first and second moments and step count.
    moment_1: Vec<f32>,
    moment_2: Vec<f32>,
    steps: i32,
}

fn append(theta: &mut Vec<f32>, v: Vec<f32>) -> usize {
    let at = theta.len();
    theta.extend(v);
    at
}

fn read_conv(conv: &Conv2d, theta: &mut Vec<f32>) -> Result<ConvSlot> {
    let w = conv.weight.val();
    let [cout, cin, kh, kw] = w.dims();
    if [kh, kw] != [3, 3] || conv.stride != [1, 1] || conv.dilation != [1, 1] {
        return Err(Error::Device(
            "only 3×3 convolutions of stride 1 train on the CPU path".into(),
        ));
    }
    let Some(bias) = &conv.bias else {
        return Err(Error::Device(
            "the CPU training path needs convolutions with a bias".into(),
        ));
    };
    let weight = append(theta, values(w.flatten(0, 3))?);
    let bias = append(theta, values(bias.val())?);
    Ok(ConvSlot {
        cin,
        cout,
        weight,
        bias,
    })
}

fn read_block(b: &ConvBlock, theta: &mut Vec<f32>) -> Result<BlockSlot> {
    let conv = read_conv(&b.conv, theta)?;
    Ok(BlockSlot {
        conv,
        gamma: append(theta, values(b.bn.gamma.val())?),
        beta: append(theta, values(b.bn.beta.val())?),
        epsilon: b.bn.epsilon as f32,
        momentum: b.bn.momentum as f32,
        running_mean: values(b.bn.running_mean.value())?,
        running_var: values(b.bn.running_var.value())?,
    })
}

fn param<const D: usize>(data: &[f32], shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(data.to_vec(), shape),
        device,
    ))
}

fn write_conv(conv: &mut Conv2d, slot: &ConvSlot, theta: &[f32], device: &Device) {
    let ConvSlot {
        cin,
        cout,
        weight,
        bias,
    } = *slot;
    conv.weight = param(
        &theta[weight..][..slot.weight_len()],
        [cout, cin, 3, 3],
        device,
    );
    conv.bias = Some(param(&theta[bias..][..cout], [cout], device));
}

/// Adds one image's weight and bias gradients of convolution `slot` into `grad`.
fn add_conv_gradients(grad: &mut [f32], slot: &ConvSlot, dw: &Array2<f32>, db: &[f32]) {
    for (g, v) in grad[slot.weight..][..slot.weight_len()]
        .iter_mut()
        .zip(dw.iter())
    {
        *g += v;
    }
    for (g, v) in grad[slot.bias..][..slot.cout].iter_mut().zip(db) {
        *g += v;
    }
}

/// One image's share of the gradients of a convolution with `taps`: weights
/// (`cout × taps·cin`) and, when asked, the input.
fn conv_backward_image<const W: usize>(
    x: &Planes,
    dy: &Planes,
    (weight, taps): (ArrayView2<f32>, Taps<W>),
    need_dx: bool,
) -> Result<(Array2<f32>, Option<Planes>)> {
    let (h, w, cin, cout) = (x.h, x.w, x.c, dy.c);
    let (hw, k) = (h * w, taps.len() * cin);
    let mut dw = Array2::<f32>::zeros((cout, k));
    let mut dx = need_dx.then(|| Planes {
        h,
        w,
        c: cin,
        data: vec![0.0; cin * hw],
    });
    if (cout == 1 || cin == 1) && taps.len() == 9 {
        let weight: Vec<f32> = weight.iter().copied().collect();
        shifted_rows_backward(x, dy, &weight, dw.as_slice_mut(), dx.as_mut());
        return Ok((dw, dx));
    }
    let rows = band_rows(h, w);
    for y0 in (0..h).step_by(rows) {
        let y1 = (y0 + rows).min(h);
        let n = (y1 - y0) * w;
        let dyb = ArrayView2::from_shape((cout, n).strides((hw, 1)), &dy.data[y0 * w..])
            .map_err(shape_err)?;
        let colt = im2col_t(x, y0, y1, taps);
        let colt = ArrayView2::from_shape((n, k), &colt).map_err(shape_err)?;
        general_mat_mul(1.0, &dyb, &colt, 1.0, &mut dw);
        if let Some(dx) = dx.as_mut() {
            let mut dcol = vec![0.0f32; k * n];
            let mut view = ArrayViewMut2::from_shape((k, n), &mut dcol).map_err(shape_err)?;
            general_mat_mul(1.0, &weight.t(), &dyb, 0.0, &mut view);
            col2im_add(&dcol, dx, y0, y1, taps);
        }
    }
    Ok((dw, dx))
}

impl CpuTrainer {
    /// Copy the weights and running statistics out of `net`.
    pub fn new(net: &Net) -> Result<Self> {
        let (blocks, out) = net.parts();
        let mut theta = Vec::new();
        let blocks = blocks
            .into_iter()
            .map(|b| read_block(b, &mut theta))
            .collect::<Result<Vec<_>>>()?;
        let head = read_conv(out, &mut theta)?;
        let program = program(net.architecture());
        let couts: Vec<usize> = blocks.iter().map(|b| b.conv.cout).collect();
        let (fused, up_planes) = fused_upsampling(&program, &couts);
        Ok(CpuTrainer {
            program,
            fused,
            blocks,
            up_planes,
            head,
            moment_1: vec![0.0; theta.len()],
            moment_2: vec![0.0; theta.len()],
            theta,
            steps: 0,
        })
    }

    /// The current weights and running statistics written into `net`, a network of the same
    /// architecture and width (e.g. the one this trainer was made from), on `device`.
    pub fn write_into(&self, mut net: Net, device: &Device) -> Net {
        let (blocks, out) = net.parts_mut();
        for (b, slot) in blocks.into_iter().zip(&self.blocks) {
            write_conv(&mut b.conv, &slot.conv, &self.theta, device);
            let c = slot.conv.cout;
            b.bn.gamma = param(&self.theta[slot.gamma..][..c], [c], device);
            b.bn.beta = param(&self.theta[slot.beta..][..c], [c], device);
            let state = |v: &[f32]| {
                RunningState::new(Tensor::from_data(TensorData::new(v.to_vec(), [c]), device))
            };
            b.bn.running_mean = state(&slot.running_mean);
            b.bn.running_var = state(&slot.running_var);
        }
        write_conv(out, &self.head, &self.theta, device);
        net
    }

    /// Convolution of every image of the batch, without activation.
    fn conv(&self, slot: &ConvSlot, input: &Batch) -> Result<Batch> {
        let weight = slot.weight(&self.theta)?;
        let bias = &self.theta[slot.bias..][..slot.cout];
        input
            .par_iter()
            .map(|x| conv3x3(x, weight, bias, None))
            .collect()
    }

    /// Convolution of block `b` over every image of `x` upsampled by 2, followed by the planes
    /// of `skip` where the block has more inputs ([`conv_up`]), without activation.
    fn conv_up(&self, b: usize, x: &Batch, skip: Option<&Batch>) -> Result<Batch> {
        let (slot, up) = self.up_input(b)?;
        let bias = &self.theta[slot.bias..][..slot.cout];
        x.par_iter()
            .enumerate()
            .map(|(n, x)| conv_up(x, skip.map(|s| &s[n]), &up, bias, None))
            .collect()
    }

    /// Block `b`'s convolution and its weights split for an upsampled input.
    fn up_input(&self, b: usize) -> Result<(ConvSlot, UpInput)> {
        let slot = self.blocks[b].conv;
        let planes = self.up_planes[b]
            .ok_or_else(|| Error::Device("CPU training: block without upsampled input".into()))?;
        Ok((slot, UpInput::new(slot.weight(&self.theta)?, planes)))
    }

    /// A block in training mode after its convolution `z`: batch norm on the batch's
    /// statistics (which also move the running statistics), leaky ReLU.
    fn block_forward(&mut self, b: usize, mut z: Batch) -> Result<(Batch, BlockCache)> {
        let count = z.iter().map(|p| p.h * p.w).sum::<usize>().max(1) as f64;
        let mean: Vec<f64> = channel_sums(&z, &z, |_, v, _| v)
            .into_iter()
            .map(|s| s / count)
            .collect();
        let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let var: Vec<f64> = channel_sums(&z, &z, |ch, v, _| (v - centre[ch]).powi(2))
            .into_iter()
            .map(|s| s / count)
            .collect();
        let slot = &mut self.blocks[b];
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| (1.0 / (v + f64::from(slot.epsilon)).sqrt()) as f32)
            .collect();
        let m = slot.momentum;
        for ch in 0..mean.len() {
            slot.running_mean[ch] = (1.0 - m) * slot.running_mean[ch] + m * mean[ch] as f32;
            slot.running_var[ch] = (1.0 - m) * slot.running_var[ch] + m * var[ch] as f32;
        }
        let gamma = &self.theta[slot.gamma..][..mean.len()];
        let beta = &self.theta[slot.beta..][..mean.len()];
        let out: Batch = z
            .par_iter_mut()
            .map(|p| {
                let n = p.h * p.w;
                let mut out = Planes {
                    data: vec![0.0; p.data.len()],
                    ..*p
                };
                for ch in 0..p.c {
                    let (mu, s) = (mean[ch] as f32, inv_std[ch]);
                    for (xh, o) in p.data[ch * n..][..n]
                        .iter_mut()
                        .zip(&mut out.data[ch * n..][..n])
                    {
                        *xh = (*xh - mu) * s;
                        let y = gamma[ch] * *xh + beta[ch];
                        *o = if y < 0.0 { y * LEAKY_SLOPE } else { y };
                    }
                }
                out
            })
            .collect();
        Ok((out, BlockCache { xhat: z, inv_std }))
    }

    /// Forward pass of an `n × h × w` batch in training mode. Moves the batch norms' running
    /// statistics, as burn's forward pass does.
    pub fn forward(&mut self, images: &[f32], n: usize, h: usize, w: usize) -> Result<Tape> {
        if images.len() != n * h * w || n == 0 || h == 0 || w == 0 {
            return Err(Error::invalid("CPU training: batch of the wrong size"));
        }
        let mut values: Vec<Option<Batch>> = Vec::with_capacity(self.program.len());
        let mut caches = Vec::with_capacity(self.program.len());
        for (i, op) in self.program.clone().into_iter().enumerate() {
            let mut cache = None;
            let v = match op {
                Op::Input => images
                    .chunks_exact(h * w)
                    .map(|d| Planes {
                        h,
                        w,
                        c: 1,
                        data: d.to_vec(),
                    })
                    .collect(),
                Op::Block(b, s) => {
                    let z = match self.fused[i].as_deref() {
                        Some(&[t]) => self.conv_up(b, value(&values, t)?, None)?,
                        Some(&[t, k]) => {
                            self.conv_up(b, value(&values, t)?, Some(value(&values, k)?))?
                        }
                        _ => self.conv(&self.blocks[b].conv, value(&values, s)?)?,
                    };
                    let (out, c) = self.block_forward(b, z)?;
                    cache = Some(c);
                    out
                }
                _ if self.fused[i].is_some() => {
                    values.push(None);
                    caches.push(None);
                    continue;
                }
                Op::Pool(s) => value(&values, s)?.par_iter().map(pool).collect(),
                Op::Up(s) => value(&values, s)?.par_iter().map(up).collect(),
                Op::Cat(a, b) => value(&values, a)?
                    .iter()
                    .zip(value(&values, b)?)
                    .map(|(a, b)| cat(a, b))
                    .collect(),
                Op::Head(s) => self.conv(&self.head, value(&values, s)?)?,
            };
            values.push(Some(v));
            caches.push(cache);
        }
        Ok(Tape { values, caches })
    }

    /// Gradients of the convolution `slot` (added into `grad`) and, when asked, of its input.
    fn conv_backward(
        &self,
        slot: &ConvSlot,
        input: &Batch,
        dy: &Batch,
        need_dx: bool,
        grad: &mut [f32],
    ) -> Result<Option<Batch>> {
        let weight = slot.weight(&self.theta)?;
        let parts = input
            .par_iter()
            .zip(dy)
            .map(|(x, d)| {
                let (dw, dx) = conv_backward_image(x, d, (weight, TAPS_3X3), need_dx)?;
                Ok((dw, bias_gradient(d), dx))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut dx = Vec::with_capacity(parts.len());
        for (dw, db, d) in parts {
            add_conv_gradients(grad, slot, &dw, &db);
            dx.extend(d);
        }
        Ok(need_dx.then_some(dx))
    }

    /// Gradient of a block's convolution output from that of its output: through the leaky
    /// ReLU and the batch norm (with its batch statistics), whose own gradients go into `grad`.
    fn bn_backward(
        &self,
        b: &BlockSlot,
        out: &Batch,
        cache: &BlockCache,
        mut d: Batch,
        grad: &mut [f32],
    ) -> Batch {
        d.par_iter_mut().zip(out).for_each(|(d, o)| {
            for (d, &o) in d.data.iter_mut().zip(&o.data) {
                if o < 0.0 {
                    *d *= LEAKY_SLOPE;
                }
            }
        });
        let dbeta = channel_sums(&d, &d, |_, v, _| v);
        let dgamma = channel_sums(&d, &cache.xhat, |_, v, x| v * x);
        let count = d.iter().map(|p| p.h * p.w).sum::<usize>().max(1) as f64;
        let c = dbeta.len();
        let gamma = &self.theta[b.gamma..][..c];
        d.par_iter_mut().zip(&cache.xhat).for_each(|(d, xh)| {
            let n = d.h * d.w;
            for ch in 0..c {
                let k = gamma[ch] * cache.inv_std[ch];
                let (mb, mg) = ((dbeta[ch] / count) as f32, (dgamma[ch] / count) as f32);
                for (d, &x) in d.data[ch * n..][..n]
                    .iter_mut()
                    .zip(&xh.data[ch * n..][..n])
                {
                    *d = k * (*d - mb - x * mg);
                }
            }
        });
        for ch in 0..c {
            grad[b.gamma + ch] += dgamma[ch] as f32;
            grad[b.beta + ch] += dbeta[ch] as f32;
        }
        d
    }

    /// Gradients of block `b`'s convolution over `x` upsampled, followed by `skip` where it has
    /// one ([`CpuTrainer::conv_up`]), from that of its output `dz`: weights and bias (added
    /// into `grad`), `x` and `skip`. Each output phase of the upsampled part is a 2×2
    /// convolution of `x`; its weight gradient goes back to the 3×3 taps it sums.
    fn conv_up_backward(
        &self,
        b: usize,
        (x, skip): (&Batch, Option<&Batch>),
        dz: &Batch,
        grad: &mut [f32],
    ) -> Result<(Batch, Option<Batch>)> {
        let (slot, up) = self.up_input(b)?;
        let parts = x
            .par_iter()
            .zip(dz)
            .enumerate()
            .map(|(n, (x, dz))| {
                let mut dw = Array2::<f32>::zeros((slot.cout, 9 * slot.cin));
                let dskip = match skip {
                    Some(s) => {
                        let (dws, ds) =
                            conv_backward_image(&s[n], dz, (up.skip.view(), TAPS_3X3), true)?;
                        dw.slice_mut(ndarray::s![.., 9 * up.planes..])
                            .zip_mut_with(&dws, |g, v| *g += v);
                        ds
                    }
                    None => None,
                };
                let mut dx = vec![0.0f32; x.data.len()];
                for phase in 0..4 {
                    let dzp = phase_planes(dz, phase);
                    let weight = up.phases[phase].view();
                    let (dwp, dxp) =
                        conv_backward_image(x, &dzp, (weight, phase_taps(phase)), true)?;
                    for ((o, j), g) in dw
                        .indexed_iter_mut()
                        .filter(|((_, j), _)| *j < 9 * up.planes)
                    {
                        *g += dwp[[o, phase_column(j, phase)]];
                    }
                    if let Some(dxp) = dxp {
                        for (d, v) in dx.iter_mut().zip(dxp.data) {
                            *d += v;
                        }
                    }
                }
                Ok((dw, bias_gradient(dz), Planes { data: dx, ..*x }, dskip))
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut dxs, mut dskips) = (Vec::with_capacity(parts.len()), Vec::new());
        for (dw, db, dx, dskip) in parts {
            add_conv_gradients(grad, &slot, &dw, &db);
            dxs.push(dx);
            dskips.extend(dskip);
        }
        Ok((dxs, skip.map(|_| dskips)))
    }

    /// Gradient of the loss with respect to every parameter, from the gradient of the loss with
    /// respect to the logits (image after image, as [`Tape::logits`]).
    pub fn backward(&self, tape: Tape, dlogits: &[f32]) -> Result<Vec<f32>> {
        let Tape { values, caches } = tape;
        let last = values.len() - 1;
        let out = value(&values, last)?;
        if dlogits.len() != out.iter().map(|p| p.data.len()).sum::<usize>() {
            return Err(Error::invalid(
                "CPU training: logit gradient of the wrong size",
            ));
        }
        let mut grads: Vec<Option<Batch>> = (0..values.len()).map(|_| None).collect();
        let mut at = 0;
        grads[last] = Some(
            out.iter()
                .map(|p| {
                    let data = dlogits[at..][..p.data.len()].to_vec();
                    at += p.data.len();
                    Planes { data, ..*p }
                })
                .collect(),
        );
        let mut grad = vec![0.0f32; self.theta.len()];
        for i in (1..values.len()).rev() {
            let Some(d) = grads[i].take() else {
                continue;
            };
            match self.program[i] {
                Op::Input => {}
                Op::Block(b, s) => {
                    let cache = caches[i]
                        .as_ref()
                        .ok_or_else(|| Error::Device("CPU training: block cache missing".into()))?;
                    let dz =
                        self.bn_backward(&self.blocks[b], value(&values, i)?, cache, d, &mut grad);
                    match self.fused[i].as_deref() {
                        Some(&[t, ref skip @ ..]) => {
                            let skip_value = match skip {
                                [k] => Some(value(&values, *k)?),
                                _ => None,
                            };
                            let (dx, dskip) = self.conv_up_backward(
                                b,
                                (value(&values, t)?, skip_value),
                                &dz,
                                &mut grad,
                            )?;
                            accumulate(&mut grads[t], dx);
                            if let (Some(&k), Some(dskip)) = (skip.first(), dskip) {
                                accumulate(&mut grads[k], dskip);
                            }
                        }
                        _ => {
                            let input = value(&values, s)?;
                            let conv = &self.blocks[b].conv;
                            if let Some(dx) =
                                self.conv_backward(conv, input, &dz, s != 0, &mut grad)?
                            {
                                accumulate(&mut grads[s], dx);
                            }
                        }
                    }
                }
                Op::Head(s) => {
                    if let Some(dx) =
                        self.conv_backward(&self.head, value(&values, s)?, &d, s != 0, &mut grad)?
                    {
                        accumulate(&mut grads[s], dx);
                    }
                }
                Op::Pool(s) => {
                    let dx = value(&values, s)?
                        .par_iter()
                        .zip(&d)
                        .map(|(x, d)| pool_backward(x, d))
                        .collect();
                    accumulate(&mut grads[s], dx);
                }
                Op::Up(s) => accumulate(&mut grads[s], d.par_iter().map(up_backward).collect()),
                Op::Cat(a, b) => {
                    let ca = value(&values, a)?.first().map_or(0, |p| p.c);
                    let (da, db): (Batch, Batch) = d
                        .into_iter()
                        .map(|p| {
                            let split = ca * p.h * p.w;
                            let second = Planes {
                                c: p.c - ca,
                                data: p.data[split..].to_vec(),
                                ..p
                            };
                            let mut first = p;
                            first.data.truncate(split);
                            first.c = ca;
                            (first, second)
                        })
                        .unzip();
                    accumulate(&mut grads[a], da);
                    accumulate(&mut grads[b], db);
                }
            }
        }
        Ok(grad)
    }

    /// One Adam step of size `learning_rate` along `grad` (from [`CpuTrainer::backward`]).
    pub fn adam_step(&mut self, grad: &[f32], learning_rate: f64) {
        self.steps += 1;
        let bc2 = (1.0 - BETA_2.powi(self.steps)).sqrt();
        let factor = bc2 / (1.0 - BETA_1.powi(self.steps));
        let lr = learning_rate as f32;
        for (((p, g), m), v) in self
            .theta
            .iter_mut()
            .zip(grad)
            .zip(&mut self.moment_1)
            .zip(&mut self.moment_2)
        {
            *m = BETA_1 * *m + (1.0 - BETA_1) * g;
            *v = BETA_2 * *v + (1.0 - BETA_2) * g * g;
            *p -= lr * *m * factor / (v.sqrt() + ADAM_EPSILON * bc2);
        }
    }
}

#[cfg(test)]
mod tests;
