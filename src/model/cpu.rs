//! Inference of our two networks on the CPU without burn: what detection runs on when the
//! device is the CPU.
//!
//! - Batch norm is folded into the convolution before it (inference uses the running
//!   statistics, so `bn(conv(x))` is one convolution with scaled weights and a shifted bias).
//! - Activations are planes (`channels × height × width`). A 3×3 convolution builds, for a band
//!   of output rows, the `9·cin × pixels` im2col matrix (each of its rows a shifted copy of input
//!   rows, so plain memory copies) and multiplies the `cout × 9·cin` weights by it (ndarray's
//!   GEMM, the `matrixmultiply` kernels, whose packing of that matrix then reads contiguous
//!   runs); bias and leaky ReLU are applied in place. Bands run in parallel.
//! - Pooling, upsampling and concatenation are plain loops over the same layout.
//!
//! The numbers equal burn's forward pass to float rounding (tested below). On the 2-core
//! development machine burn's flex backend took 3.0× longer for a 512² frame through the Sniffer
//! (429 against 142 ms) and 1.2× longer through the U-Net (README, "Speed").

use super::arch::{Op, fused_upsampling, program};
use super::{ConvBlock, LEAKY_SLOPE, Net};
use crate::error::{Error, Result};
use burn::nn::conv::Conv2d;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Activations of one image: `c` planes of `h × w`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

/// A 3×3 convolution (stride 1, zero padding 1) with batch norm folded in.
#[derive(Debug, Clone)]
pub struct FusedConv {
    cin: usize,
    /// `cout × 9·cin`, columns ordered (ci, ky, kx) as burn stores them and as im2col rows are.
    weight: Array2<f32>,
    bias: Vec<f32>,
    /// Leaky ReLU slope applied after, or none (the output head).
    slope: Option<f32>,
    /// Where this convolution reads an image upsampled by 2, alone or followed by a skip
    /// connection's planes ([`FusedConv::forward_up`]).
    up: Option<UpInput>,
}

/// The weights of a convolution whose first `planes` input planes are an image upsampled by 2.
#[derive(Debug, Clone)]
pub(super) struct UpInput {
    pub(super) planes: usize,
    /// For each output phase (row parity, column parity), the `cout × 4·planes` weights of the
    /// 2×2 convolution of the image before upsampling that gives the same result, its taps
    /// [`phase_taps`].
    pub(super) phases: [Array2<f32>; 4],
    /// `cout × 9·(cin − planes)`: the weights of the other planes.
    pub(super) skip: Array2<f32>,
}

/// The taps of a convolution kernel: rows of `WIDTH` taps, row r reading input row y + `dys[r]`,
/// its taps columns x + `dx0` … x + `dx0` + WIDTH − 1, each within one of x; taps are numbered
/// row by row, as a 3×3 kernel's (ky, kx). (The width is a constant so that copying a row of
/// taps compiles to plain moves.)
#[derive(Debug, Clone, Copy)]
pub(super) struct Taps<const WIDTH: usize> {
    pub(super) dys: &'static [isize],
    pub(super) dx0: isize,
}

impl<const WIDTH: usize> Taps<WIDTH> {
    pub(super) fn len(&self) -> usize {
        self.dys.len() * WIDTH
    }

    /// The (row, column) shift of tap `t`.
    pub(super) fn shift(&self, t: usize) -> (isize, isize) {
        (self.dys[t / WIDTH], self.dx0 + (t % WIDTH) as isize)
    }
}

/// A 3×3 convolution's taps, in burn's (ky, kx) order.
pub(super) const TAPS_3X3: Taps<3> = Taps {
    dys: &[-1, 0, 1],
    dx0: -1,
};

/// The four taps of output phase `phase` (row parity · 2 + column parity) in
/// [`UpInput::phases`]: tap a·2 + b reads row y + a + py − 1, column x + b + px − 1.
pub(super) fn phase_taps(phase: usize) -> Taps<2> {
    const DYS: [[isize; 2]; 2] = [[-1, 0], [0, 1]];
    Taps {
        dys: &DYS[phase / 2],
        dx0: (phase % 2) as isize - 1,
    }
}

/// The column of [`UpInput::phases`]`[phase]` that column `j` (ci, ky, kx) of a 3×3
/// convolution's weights adds into: in output phase p, kernel row k reads the lower (0) or
/// higher (1) of two rows of the image before upsampling; the same for columns.
pub(super) fn phase_column(j: usize, phase: usize) -> usize {
    let low = |p: usize, k: usize| (p + k).div_ceil(2) - p;
    let (ci, ky, kx) = (j / 9, j % 9 / 3, j % 3);
    ci * 4 + low(phase / 2, ky) * 2 + low(phase % 2, kx)
}

impl UpInput {
    /// From the `cout × 9·cin` weights of a convolution whose first `planes` inputs are
    /// upsampled.
    pub(super) fn new(weight: ArrayView2<f32>, planes: usize) -> Self {
        let cout = weight.nrows();
        let phases = std::array::from_fn(|phase| {
            let mut m = Array2::<f32>::zeros((cout, 4 * planes));
            for ((o, j), &v) in weight.indexed_iter().filter(|((_, j), _)| *j < 9 * planes) {
                m[[o, phase_column(j, phase)]] += v;
            }
            m
        });
        UpInput {
            planes,
            phases,
            skip: weight.slice(ndarray::s![.., 9 * planes..]).to_owned(),
        }
    }
}

/// Output pixels per band: enough work per matrix product, few enough that a band's im2col
/// matrix stays small.
const BAND_PIXELS: usize = 256;

pub(super) fn values(t: burn::tensor::Tensor<1>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("could not read the weights: {e:?}")))
}

pub(super) fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Device(format!("CPU inference: {e}"))
}

impl FusedConv {
    /// From burn's conv (`[cout, cin, 3, 3]` weights) and the batch norm after it, if any.
    fn new(conv: &Conv2d, bn: Option<&burn::nn::BatchNorm>, slope: Option<f32>) -> Result<Self> {
        let w = conv.weight.val();
        let [cout, cin, kh, kw] = w.dims();
        if [kh, kw] != [3, 3] || conv.stride != [1, 1] || conv.dilation != [1, 1] {
            return Err(Error::Device(
                "only 3×3 convolutions of stride 1 run on the fast CPU path".into(),
            ));
        }
        let w = values(w.flatten(0, 3))?;
        let mut bias = match &conv.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; cout],
        };
        let mut scale = vec![1.0f32; cout];
        if let Some(bn) = bn {
            let (gamma, beta) = (values(bn.gamma.val())?, values(bn.beta.val())?);
            let (mean, var) = (
                values(bn.running_mean.value())?,
                values(bn.running_var.value())?,
            );
            for o in 0..cout {
                scale[o] = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
                bias[o] = (bias[o] - mean[o]) * scale[o] + beta[o];
            }
        }
        let k = 9 * cin;
        let weight = Array2::from_shape_fn((cout, k), |(o, j)| w[o * k + j] * scale[o]);
        Ok(FusedConv {
            cin,
            weight,
            bias,
            slope,
            up: None,
        })
    }

    fn block(b: &ConvBlock) -> Result<Self> {
        Self::new(&b.conv, Some(&b.bn), Some(LEAKY_SLOPE))
    }

    fn forward(&self, x: &Planes) -> Result<Planes> {
        if x.c != self.cin {
            return Err(Error::Device(format!(
                "a layer of {} input channels was given {}",
                self.cin, x.c
            )));
        }
        conv3x3(x, self.weight.view(), &self.bias, self.slope)
    }

    /// This convolution of `x` upsampled by 2, followed by the planes of `skip` if it has more
    /// inputs ([`conv_up`]); [`CpuNet::new`] has prepared its [`UpInput`].
    fn forward_up(&self, x: &Planes, skip: Option<&Planes>) -> Result<Planes> {
        let Some(up) = &self.up else {
            return Err(Error::Device("CPU network: upsampling not prepared".into()));
        };
        conv_up(x, skip, up, &self.bias, self.slope)
    }
}

/// A 3×3 convolution (`up`'s weights, then the bias and, if given, a leaky ReLU) of `x`
/// upsampled by 2 (nearest neighbour), followed by the planes of `skip` where the convolution
/// has more inputs, without making the upsampled image or the concatenation: each output phase
/// of the upsampled part is a 2×2 convolution of `x`, 4 taps per input plane instead of 9 on
/// four times the pixels. Bands of rows run in parallel.
pub(super) fn conv_up(
    x: &Planes,
    skip: Option<&Planes>,
    up: &UpInput,
    bias: &[f32],
    slope: Option<f32>,
) -> Result<Planes> {
    let skip_planes = skip.map_or(0, |s| s.c);
    if x.c != up.planes || skip_planes != up.skip.ncols() / 9 {
        return Err(Error::Device(format!(
            "a layer of {} upsampled and {} other input planes was given {} and {skip_planes}",
            up.planes,
            up.skip.ncols() / 9,
            x.c
        )));
    }
    // With a skip part, bias and activation come after the two parts are added.
    let zeros = vec![0.0; bias.len()];
    let (up_bias, up_slope) = match skip {
        Some(_) => (&zeros[..], None),
        None => (bias, slope),
    };
    let (h, w, cout) = (x.h, x.w, bias.len());
    let w2 = 2 * w;
    let rows = band_rows(h, w);
    let bands: Vec<Vec<f32>> = (0..h.div_ceil(rows))
        .into_par_iter()
        .map(|band| {
            let (y0, y1) = (band * rows, (band * rows + rows).min(h));
            let n = (y1 - y0) * w;
            // Output rows 2·y0 … 2·y1 of every plane.
            let mut out = vec![0.0f32; cout * 4 * n];
            for (phase, weight) in up.phases.iter().enumerate() {
                let (py, px) = (phase / 2, phase % 2);
                let taps = phase_taps(phase);
                let part = conv_band(x, (weight.view(), taps), up_bias, up_slope, y0, y1)?;
                for (src, dst) in part.chunks_exact(n).zip(out.chunks_exact_mut(4 * n)) {
                    for (yy, row) in src.chunks_exact(w).enumerate() {
                        let target = &mut dst[(2 * yy + py) * w2..][..w2];
                        for (d, &v) in target[px..].iter_mut().step_by(2).zip(row) {
                            *d = v;
                        }
                    }
                }
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let mut out = Planes {
        h: 2 * h,
        w: w2,
        c: cout,
        data: stack_bands(&bands, cout, 2 * h * w2, 2 * rows * w2),
    };
    if let Some(skip) = skip {
        if (skip.h, skip.w) != (out.h, out.w) {
            return Err(Error::Device(
                "CPU network: a skip connection of another size".into(),
            ));
        }
        let part = conv3x3(skip, up.skip.view(), bias, None)?;
        out.data
            .par_chunks_mut(w2)
            .zip(part.data.par_chunks(w2))
            .for_each(|(o, p)| {
                for (o, &p) in o.iter_mut().zip(p) {
                    *o += p;
                    if let Some(s) = slope
                        && *o < 0.0
                    {
                        *o *= s;
                    }
                }
            });
    }
    Ok(out)
}

/// The planes of a convolution whose bands of rows were computed apart: band b holds, for each
/// of the `cout` planes in turn, its rows from `b·band_len` on (the last band may be shorter).
fn stack_bands(bands: &[Vec<f32>], cout: usize, plane: usize, band_len: usize) -> Vec<f32> {
    let mut data = vec![0.0f32; plane * cout];
    for (band, out) in bands.iter().enumerate() {
        let n = out.len() / cout;
        for (o, src) in out.chunks_exact(n).enumerate() {
            data[o * plane + band * band_len..][..n].copy_from_slice(src);
        }
    }
    data
}

/// Rows of output per band for an image of `h × w`.
pub(super) fn band_rows(h: usize, w: usize) -> usize {
    BAND_PIXELS.div_ceil(w).clamp(1, h.div_ceil(4).max(1))
}

/// A 3×3 convolution (stride 1, zero padding 1) of one image: `weight` is `cout × 9·cin`, then
/// the bias and, if given, a leaky ReLU of that slope. Bands of rows run in parallel.
pub(super) fn conv3x3(
    x: &Planes,
    weight: ArrayView2<f32>,
    bias: &[f32],
    slope: Option<f32>,
) -> Result<Planes> {
    let (h, w, cout) = (x.h, x.w, weight.nrows());
    if cout == 1 || x.c == 1 {
        return shifted_rows(x, weight, bias, slope);
    }
    let rows = band_rows(h, w);
    let bands: Vec<Vec<f32>> = (0..h.div_ceil(rows))
        .into_par_iter()
        .map(|band| {
            conv_band(
                x,
                (weight, TAPS_3X3),
                bias,
                slope,
                band * rows,
                (band * rows + rows).min(h),
            )
        })
        .collect::<Result<_>>()?;
    Ok(Planes {
        h,
        w,
        c: cout,
        data: stack_bands(&bands, cout, h * w, rows * w),
    })
}

/// A 3×3 convolution with one input or one output plane (the networks' first layers and
/// heads) as weighted sums of shifted input rows, one output row at a time: with a single
/// row or column in the matrix product of [`conv3x3`], building and packing its im2col matrix
/// would cost more than the arithmetic.
fn shifted_rows(
    x: &Planes,
    weight: ArrayView2<f32>,
    bias: &[f32],
    slope: Option<f32>,
) -> Result<Planes> {
    let (h, w, cout) = (x.h, x.w, weight.nrows());
    let weight: Vec<f32> = weight.iter().copied().collect();
    let k = 9 * x.c;
    let mut data = vec![0.0f32; cout * h * w];
    // Row r of the output is row r % h of plane r / h.
    data.par_chunks_mut(w).enumerate().for_each(|(r, out)| {
        let (o, y) = (r / h, r % h);
        out.fill(bias[o]);
        for (at, row) in tap_rows(x, y) {
            let t = &weight[o * k + at..][..3];
            add_shifted(out, &x.data[row..][..w], [t[0], t[1], t[2]]);
        }
        if let Some(s) = slope {
            for v in out.iter_mut().filter(|v| **v < 0.0) {
                *v *= s;
            }
        }
    });
    Ok(Planes {
        h,
        w,
        c: cout,
        data,
    })
}

/// `out[x] += k₀·src[x − 1] + k₁·src[x] + k₂·src[x + 1]`, zero outside `src`: one pass over
/// `out`.
pub(super) fn add_shifted(out: &mut [f32], src: &[f32], k: [f32; 3]) {
    let w = out.len().min(src.len());
    match w {
        0 => return,
        1 => {
            out[0] += k[1] * src[0];
            return;
        }
        _ => {}
    }
    out[0] += k[1] * src[0] + k[2] * src[1];
    out[w - 1] += k[0] * src[w - 2] + k[1] * src[w - 1];
    let (left, mid, right) = (&src[..w - 2], &src[1..w - 1], &src[2..w]);
    for (((o, a), b), c) in out[1..w - 1].iter_mut().zip(left).zip(mid).zip(right) {
        *o += k[0] * a + k[1] * b + k[2] * c;
    }
}

/// The input row that kernel row `ky` (0–2) reads for output row `y` of a 3×3 convolution with
/// zero padding 1, or none where that row lies outside the `h` rows of the image.
pub(super) fn source_row(y: usize, ky: usize, h: usize) -> Option<usize> {
    (y + ky).checked_sub(1).filter(|&s| s < h)
}

/// For output row `y`: each input plane `ci` and kernel row `ky` whose source row lies in the
/// image, in that order, as (`ci·9 + ky·3`, the offset of the source row in `x.data`).
pub(super) fn tap_rows(x: &Planes, y: usize) -> impl Iterator<Item = (usize, usize)> {
    let (h, w) = (x.h, x.w);
    (0..x.c).flat_map(move |ci| {
        (0..3).filter_map(move |ky| {
            source_row(y, ky, h).map(|sy| (ci * 9 + ky * 3, (ci * h + sy) * w))
        })
    })
}

/// The im2col matrix of output rows `y0..y1` for `taps` (each shifted by −1, 0 or 1 in both
/// directions): `taps·c × pixels`, row (ci, tap) holding input plane ci read at
/// (y + dy, x + dx), zero outside the image.
pub(super) fn im2col<const W: usize>(x: &Planes, y0: usize, y1: usize, taps: Taps<W>) -> Vec<f32> {
    let (h, w) = (x.h, x.w);
    let n = (y1 - y0) * w;
    let mut col = vec![0.0f32; taps.len() * x.c * n];
    for (r, row) in col.chunks_exact_mut(n).enumerate() {
        let (ci, (dy, dx)) = (r / taps.len(), taps.shift(r % taps.len()));
        let plane = &x.data[ci * h * w..][..h * w];
        for y in y0..y1 {
            let Some(sy) = y.checked_add_signed(dy).filter(|&s| s < h) else {
                continue;
            };
            let src = &plane[sy * w..][..w];
            let dst = &mut row[(y - y0) * w..][..w];
            match dx {
                -1 => dst[1..].copy_from_slice(&src[..w - 1]),
                0 => dst.copy_from_slice(src),
                _ => dst[..w - 1].copy_from_slice(&src[1..]),
            }
        }
    }
    col
}

/// Output rows `y0..y1`, `cout × pixels`, of the convolution with `taps` and `weight`
/// (`cout × taps·cin`): im2col of the band, one matrix product, bias and activation.
fn conv_band<const W: usize>(
    x: &Planes,
    (weight, taps): (ArrayView2<f32>, Taps<W>),
    bias: &[f32],
    slope: Option<f32>,
    y0: usize,
    y1: usize,
) -> Result<Vec<f32>> {
    let cout = weight.nrows();
    let n = (y1 - y0) * x.w;
    let col = im2col(x, y0, y1, taps);
    let mut out = vec![0.0f32; cout * n];
    for (o, row) in out.chunks_exact_mut(n).enumerate() {
        row.fill(bias[o]);
    }
    let b = ArrayView2::from_shape((taps.len() * x.c, n), &col).map_err(shape_err)?;
    let mut c = ArrayViewMut2::from_shape((cout, n), &mut out).map_err(shape_err)?;
    general_mat_mul(1.0, &weight, &b, 1.0, &mut c);
    if let Some(s) = slope {
        for v in out.iter_mut() {
            if *v < 0.0 {
                *v *= s;
            }
        }
    }
    Ok(out)
}

/// 2×2 max pooling (stride 2; an odd last row or column is dropped, as burn does).
pub(super) fn pool(x: &Planes) -> Planes {
    let (h, w, c) = (x.h / 2, x.w / 2, x.c);
    let mut data = vec![0.0f32; h * w * c];
    data.par_chunks_mut(w).enumerate().for_each(|(row, out)| {
        let (ch, y) = (row / h, row % h);
        let top = &x.data[(ch * x.h + 2 * y) * x.w..][..x.w];
        let bottom = &x.data[(ch * x.h + 2 * y + 1) * x.w..][..x.w];
        for (xx, v) in out.iter_mut().enumerate() {
            *v = top[2 * xx]
                .max(top[2 * xx + 1])
                .max(bottom[2 * xx])
                .max(bottom[2 * xx + 1]);
        }
    });
    Planes { h, w, c, data }
}

/// Nearest-neighbour upsampling by 2.
pub(super) fn up(x: &Planes) -> Planes {
    let (h, w, c) = (2 * x.h, 2 * x.w, x.c);
    let mut data = vec![0.0f32; h * w * c];
    data.par_chunks_mut(w).enumerate().for_each(|(row, out)| {
        let (ch, y) = (row / h, row % h);
        let src = &x.data[(ch * x.h + y / 2) * x.w..][..x.w];
        for (pair, &v) in out.chunks_exact_mut(2).zip(src) {
            pair.fill(v);
        }
    });
    Planes { h, w, c, data }
}

/// The planes of `a` then those of `b` (burn's `cat` along the channel axis).
pub(super) fn cat(a: &Planes, b: &Planes) -> Planes {
    let mut data = Vec::with_capacity(a.data.len() + b.data.len());
    data.extend_from_slice(&a.data);
    data.extend_from_slice(&b.data);
    Planes {
        h: a.h,
        w: a.w,
        c: a.c + b.c,
        data,
    }
}

/// Value `i` of a forward pass, which a correct program has computed and not yet dropped.
pub(super) fn value<T>(values: &[Option<T>], i: usize) -> Result<&T> {
    values
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::Device(format!("CPU network: value {i} is missing")))
}

/// A network ready for CPU inference.
#[derive(Debug, Clone)]
pub struct CpuNet {
    program: Vec<Op>,
    blocks: Vec<FusedConv>,
    out: FusedConv,
    /// Per step, where it differs from the step's inputs: the values read by a convolution
    /// block whose input is an upsampled value, alone or concatenated with a skip connection
    /// (the value before upsampling, then the skip; [`FusedConv::forward_up`]), and nothing
    /// for the upsampling and concatenation it makes unneeded.
    fused: Vec<Option<Vec<usize>>>,
}

impl CpuNet {
    /// Copy the weights out of `net` (in inference mode), folding batch norm in.
    pub fn new(net: &Net) -> Result<Self> {
        let (blocks, out) = net.parts();
        let program = program(net.architecture());
        let mut blocks: Vec<FusedConv> = blocks
            .into_iter()
            .map(FusedConv::block)
            .collect::<Result<_>>()?;
        let couts: Vec<usize> = blocks.iter().map(|b| b.weight.nrows()).collect();
        let (fused, up_planes) = fused_upsampling(&program, &couts);
        for (block, planes) in blocks.iter_mut().zip(up_planes) {
            if let Some(planes) = planes {
                block.up = Some(UpInput::new(block.weight.view(), planes));
            }
        }
        Ok(CpuNet {
            program,
            blocks,
            out: FusedConv::new(out, None, None)?,
            fused,
        })
    }

    /// The values step `i` reads.
    fn reads(&self, i: usize) -> Vec<usize> {
        self.fused[i]
            .clone()
            .unwrap_or_else(|| self.program[i].inputs())
    }

    /// Logits of one `h × w` image (sizes multiples of the network's downsampling).
    pub fn forward(&self, h: usize, w: usize, image: Vec<f32>) -> Result<Vec<f32>> {
        let mut input = Some(Planes {
            h,
            w,
            c: 1,
            data: image,
        });
        // Each value is dropped after the last step that reads it.
        let mut last_use = vec![0; self.program.len()];
        for i in 0..self.program.len() {
            for s in self.reads(i) {
                last_use[s] = i;
            }
        }
        let mut values: Vec<Option<Planes>> = vec![None; self.program.len()];
        for (i, &op) in self.program.iter().enumerate() {
            let v = match op {
                Op::Input => input
                    .take()
                    .ok_or_else(|| Error::Device("two inputs".into()))?,
                Op::Block(b, s) => match self.fused[i].as_deref() {
                    Some(&[t]) => self.blocks[b].forward_up(value(&values, t)?, None)?,
                    Some(&[t, k]) => {
                        self.blocks[b].forward_up(value(&values, t)?, Some(value(&values, k)?))?
                    }
                    _ => self.blocks[b].forward(value(&values, s)?)?,
                },
                _ if self.fused[i].is_some() => continue,
                Op::Pool(s) => pool(value(&values, s)?),
                Op::Up(s) => up(value(&values, s)?),
                Op::Cat(a, b) => cat(value(&values, a)?, value(&values, b)?),
                Op::Head(s) => self.out.forward(value(&values, s)?)?,
            };
            values[i] = Some(v);
            for s in self.reads(i) {
                if last_use[s] == i {
                    values[s] = None;
                }
            }
        }
        Ok(values
            .pop()
            .flatten()
            .ok_or_else(|| Error::Device("CPU network: no output".into()))?
            .data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, ModelConfig};
    use burn::module::Module;
    use burn::tensor::{Device, Tensor, TensorData};

    /// A network whose batch norms hold running statistics far from 0 and 1, as after training.
    fn trained_like(arch: Architecture) -> Net {
        let device = Device::flex();
        let net = ModelConfig {
            architecture: arch,
            width: 4,
            ..ModelConfig::default()
        }
        .init_seeded(&device, 3);
        // One forward pass in training mode moves the running statistics (momentum 0.1).
        let ad = device.clone().autodiff();
        let trainable = net.fork(&ad);
        let x = Tensor::<4>::random(
            [2, 1, 24, 32],
            burn::tensor::Distribution::Normal(1.5, 2.0),
            &ad,
        );
        let _ = trainable.forward(x);
        trainable.valid()
    }

    #[test]
    fn equals_burns_forward_pass() {
        for arch in [Architecture::Sniffer, Architecture::Unet] {
            let net = trained_like(arch);
            let (h, w) = (24, 32);
            let image: Vec<f32> = (0..h * w)
                .map(|i| ((i * 7919 % 101) as f32 / 50.0 - 1.0) * 1.7)
                .collect();
            let x = Tensor::<4>::from_data(
                TensorData::new(image.clone(), [1, 1, h, w]),
                &Device::flex(),
            );
            let burn: Vec<f32> = net
                .forward(x)
                .into_data()
                .try_into_vec::<f32>()
                .expect("burn output");
            let cpu = CpuNet::new(&net).expect("weights");
            // Blocks that read an upsampled value run on its phases: the Sniffer's last, the
            // U-Net's first of each decoder level (after a concatenation).
            let fused = cpu
                .fused
                .iter()
                .filter(|f| f.as_ref().is_some_and(|f| !f.is_empty()))
                .count();
            assert_eq!(fused, if arch == Architecture::Sniffer { 1 } else { 3 });
            let ours = cpu.forward(h, w, image).expect("forward");
            assert_eq!(ours.len(), burn.len());
            let scale = burn.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ours
                .iter()
                .zip(&burn)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                scale > 0.0 && worst <= 1e-4 * scale.max(1.0),
                "{arch:?}: largest difference {worst} (outputs up to {scale})"
            );
        }
    }

    #[test]
    fn convolution_of_the_upsampled_image_equals_its_phases() {
        let device = Device::flex();
        let (planes, cout, h, w) = (3, 4, 5, 7);
        let filled = |c: usize, h: usize, w: usize, seed: usize| Planes {
            h,
            w,
            c,
            data: (0..c * h * w)
                .map(|i| (((i + seed) * 37 % 29) as f32 / 14.0 - 1.0) * 1.3)
                .collect(),
        };
        let x = filled(planes, h, w, 0);
        // Alone, and followed by a skip connection of two planes (as in the U-Net's decoder).
        for skip in [None, Some(filled(2, 2 * h, 2 * w, 5))] {
            let cin = planes + skip.as_ref().map_or(0, |s| s.c);
            let conv = burn::nn::conv::Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Same)
                .init(&device);
            let input = match &skip {
                Some(s) => cat(&up(&x), s),
                None => up(&x),
            };
            for slope in [None, Some(LEAKY_SLOPE)] {
                let mut fused = FusedConv::new(&conv, None, slope).expect("weights");
                let direct = fused.forward(&input).expect("direct");
                fused.up = Some(UpInput::new(fused.weight.view(), planes));
                let phases = fused.forward_up(&x, skip.as_ref()).expect("phases");
                assert_eq!((phases.h, phases.w, phases.c), (2 * h, 2 * w, cout));
                let worst = direct
                    .data
                    .iter()
                    .zip(&phases.data)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-5, "largest difference {worst}");
            }
        }
    }

    #[test]
    fn pooling_upsampling_and_concatenation_keep_the_planes() {
        let x = Planes {
            h: 2,
            w: 2,
            c: 2,
            data: vec![1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0],
        };
        assert_eq!(pool(&x).data, vec![4.0, -1.0]);
        let u = up(&pool(&x));
        assert_eq!((u.h, u.w, u.c), (2, 2, 2));
        assert_eq!(u.data, [[4.0; 4], [-1.0; 4]].concat());
        let c = cat(&x, &u);
        assert_eq!(c.c, 4);
        assert_eq!(&c.data[..6], &[1.0, 2.0, 3.0, 4.0, -1.0, -2.0]);
    }
}
