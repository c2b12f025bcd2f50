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

use super::{ConvBlock, Net, Sniffer};
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
    cout: usize,
    /// `cout × 9·cin`, columns ordered (ci, ky, kx) as burn stores them and as im2col rows are.
    weight: Array2<f32>,
    bias: Vec<f32>,
    /// Leaky ReLU slope applied after, or none (the output head).
    slope: Option<f32>,
}

/// Output pixels per band: enough work per matrix product, few enough that a band's im2col
/// matrix stays small.
const BAND_PIXELS: usize = 256;

fn values(t: burn::tensor::Tensor<1>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("could not read the weights: {e:?}")))
}

fn shape_err(e: ndarray::ShapeError) -> Error {
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
            cout,
            weight,
            bias,
            slope,
        })
    }

    fn block(b: &ConvBlock) -> Result<Self> {
        Self::new(&b.conv, Some(&b.bn), Some(0.03))
    }

    fn forward(&self, x: &Planes) -> Result<Planes> {
        if x.c != self.cin {
            return Err(Error::Device(format!(
                "a layer of {} input channels was given {}",
                self.cin, x.c
            )));
        }
        let (h, w, cout) = (x.h, x.w, self.cout);
        let rows = BAND_PIXELS.div_ceil(w).clamp(1, h.div_ceil(4).max(1));
        let bands: Vec<Vec<f32>> = (0..h.div_ceil(rows))
            .into_par_iter()
            .map(|band| self.band(x, band * rows, (band * rows + rows).min(h)))
            .collect::<Result<_>>()?;
        let mut data = vec![0.0f32; h * w * cout];
        for (band, out) in bands.iter().enumerate() {
            let n = out.len() / cout;
            let at = band * rows * w;
            for (o, src) in out.chunks_exact(n).enumerate() {
                data[o * h * w + at..][..n].copy_from_slice(src);
            }
        }
        Ok(Planes {
            h,
            w,
            c: cout,
            data,
        })
    }

    /// Output rows `y0..y1`, `cout × pixels`: im2col of the band (`9·cin × pixels`, each row a
    /// shifted copy of input rows), one matrix product, bias and activation.
    fn band(&self, x: &Planes, y0: usize, y1: usize) -> Result<Vec<f32>> {
        let (h, w, cout) = (x.h, x.w, self.cout);
        let n = (y1 - y0) * w;
        let mut col = vec![0.0f32; 9 * self.cin * n];
        for (r, row) in col.chunks_exact_mut(n).enumerate() {
            let (ci, ky, kx) = (r / 9, r % 9 / 3, r % 3);
            let plane = &x.data[ci * h * w..][..h * w];
            for y in y0..y1 {
                let Some(sy) = (y + ky).checked_sub(1).filter(|&s| s < h) else {
                    continue;
                };
                let src = &plane[sy * w..][..w];
                let dst = &mut row[(y - y0) * w..][..w];
                match kx {
                    0 => dst[1..].copy_from_slice(&src[..w - 1]),
                    1 => dst.copy_from_slice(src),
                    _ => dst[..w - 1].copy_from_slice(&src[1..]),
                }
            }
        }
        let mut out = vec![0.0f32; cout * n];
        for (o, row) in out.chunks_exact_mut(n).enumerate() {
            row.fill(self.bias[o]);
        }
        let b = ArrayView2::from_shape((9 * self.cin, n), &col).map_err(shape_err)?;
        let mut c = ArrayViewMut2::from_shape((cout, n), &mut out).map_err(shape_err)?;
        general_mat_mul(1.0, &self.weight, &b, 1.0, &mut c);
        if let Some(s) = self.slope {
            for v in out.iter_mut() {
                if *v < 0.0 {
                    *v *= s;
                }
            }
        }
        Ok(out)
    }
}

/// 2×2 max pooling (stride 2; an odd last row or column is dropped, as burn does).
fn pool(x: &Planes) -> Planes {
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
fn up(x: &Planes) -> Planes {
    let (h, w, c) = (2 * x.h, 2 * x.w, x.c);
    let mut data = vec![0.0f32; h * w * c];
    data.par_chunks_mut(w).enumerate().for_each(|(row, out)| {
        let (ch, y) = (row / h, row % h);
        let src = &x.data[(ch * x.h + y / 2) * x.w..][..x.w];
        for (xx, v) in out.iter_mut().enumerate() {
            *v = src[xx / 2];
        }
    });
    Planes { h, w, c, data }
}

/// The planes of `a` then those of `b` (burn's `cat` along the channel axis).
fn cat(a: &Planes, b: &Planes) -> Planes {
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

/// A network ready for CPU inference.
#[derive(Debug, Clone)]
pub enum CpuNet {
    Sniffer {
        blocks: Vec<FusedConv>,
        out: FusedConv,
    },
    Unet {
        /// e1, e2, e3, mid, d3, d2, d1, two each.
        pairs: Vec<[FusedConv; 2]>,
        out: FusedConv,
    },
}

impl CpuNet {
    /// Copy the weights out of `net` (in inference mode), folding batch norm in.
    pub fn new(net: &Net) -> Result<Self> {
        Ok(match net {
            Net::Sniffer(Sniffer {
                c1,
                c2,
                c3,
                c4,
                c5,
                c6,
                out,
                ..
            }) => CpuNet::Sniffer {
                blocks: [c1, c2, c3, c4, c5, c6]
                    .into_iter()
                    .map(FusedConv::block)
                    .collect::<Result<_>>()?,
                out: FusedConv::new(out, None, None)?,
            },
            Net::Unet(u) => CpuNet::Unet {
                pairs: [&u.e1, &u.e2, &u.e3, &u.mid, &u.d3, &u.d2, &u.d1]
                    .into_iter()
                    .map(|p| Ok([FusedConv::block(&p[0])?, FusedConv::block(&p[1])?]))
                    .collect::<Result<_>>()?,
                out: FusedConv::new(&u.out, None, None)?,
            },
        })
    }

    /// Logits of one `h × w` image (sizes multiples of the network's downsampling).
    pub fn forward(&self, h: usize, w: usize, image: Vec<f32>) -> Result<Vec<f32>> {
        let x = Planes {
            h,
            w,
            c: 1,
            data: image,
        };
        let y = match self {
            CpuNet::Sniffer { blocks, out } => {
                let b = |i: usize, x: &Planes| blocks[i].forward(x);
                let x = pool(&b(0, &x)?);
                let x = pool(&b(2, &b(1, &x)?)?);
                let x = b(4, &b(3, &x)?)?;
                let x = b(5, &up(&x))?;
                out.forward(&up(&x))?
            }
            CpuNet::Unet { pairs, out } => {
                let two = |i: usize, x: &Planes| pairs[i][1].forward(&pairs[i][0].forward(x)?);
                let s1 = two(0, &x)?;
                let s2 = two(1, &pool(&s1))?;
                let s3 = two(2, &pool(&s2))?;
                let m = two(3, &pool(&s3))?;
                let x = two(4, &cat(&up(&m), &s3))?;
                let x = two(5, &cat(&up(&x), &s2))?;
                let x = two(6, &cat(&up(&x), &s1))?;
                out.forward(&x)?
            }
        };
        Ok(y.data)
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
        device.seed(3);
        let net = ModelConfig {
            architecture: arch,
            width: 4,
            ..ModelConfig::default()
        }
        .init(&device);
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
            let ours = CpuNet::new(&net)
                .expect("weights")
                .forward(h, w, image)
                .expect("forward");
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
