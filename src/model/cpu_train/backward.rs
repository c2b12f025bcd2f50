//! The backward kernels of the CPU training path: pooling, upsampling, the convolutions'
//! input and weight gradients (col2im / im2colᵀ), and the blocked sums they use.

use super::*;

/// Σ f(a[i], b[i]): in f32 over blocks of 1024 values (eight partial sums, so that it
/// vectorises), the blocks added in f64.
fn blocked_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut total = 0.0f64;
    for (xs, ys) in a.chunks(1024).zip(b.chunks(1024)) {
        let mut acc = [0.0f32; 8];
        let (cx, cy) = (xs.chunks_exact(8), ys.chunks_exact(8));
        let tail: f32 = (cx.remainder().iter().zip(cy.remainder()))
            .map(|(&x, &y)| f(x, y))
            .sum();
        for (x, y) in cx.zip(cy) {
            for i in 0..8 {
                acc[i] += f(x[i], y[i]);
            }
        }
        total += f64::from(acc.iter().sum::<f32>() + tail);
    }
    total
}

/// Sums, over the batch and the pixels, of `f(channel, a, b)` per channel, `a` and `b` two
/// activations of the same shape ([`blocked_sum`]).
pub(super) fn channel_sums(
    a: &Batch,
    b: &Batch,
    f: impl Fn(usize, f32, f32) -> f32 + Sync,
) -> Vec<f64> {
    let c = a.first().map_or(0, |p| p.c);
    (0..c)
        .into_par_iter()
        .map(|ch| {
            a.iter()
                .zip(b)
                .map(|(pa, pb)| {
                    let n = pa.h * pa.w;
                    blocked_sum(&pa.data[ch * n..][..n], &pb.data[ch * n..][..n], |x, y| {
                        f(ch, x, y)
                    })
                })
                .sum()
        })
        .collect()
}

/// Adds `g` into the gradient of a value, or makes it the gradient.
pub(super) fn accumulate(slot: &mut Option<Batch>, g: Batch) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => acc.par_iter_mut().zip(g).for_each(|(a, g)| {
            for (a, g) in a.data.iter_mut().zip(g.data) {
                *a += g;
            }
        }),
    }
}

/// Gradient of 2×2 max pooling: each output's gradient goes to the largest of its four inputs
/// (the first of equals, in the order top left, top right, bottom left, bottom right).
pub(super) fn pool_backward(input: &Planes, d: &Planes) -> Planes {
    let (h, w) = (input.h, input.w);
    let mut dx = vec![0.0f32; input.data.len()];
    // Output row r (plane r / d.h, row r % d.h) covers input rows 2·(r % d.h) and the next.
    for (r, grads) in d.data.chunks_exact(d.w).enumerate() {
        let top = (r / d.h * h + 2 * (r % d.h)) * w;
        let (above, below) = input.data[top..][..2 * w].split_at(w);
        let (d_above, d_below) = dx[top..][..2 * w].split_at_mut(w);
        for ((((&g, a), b), da), db) in grads
            .iter()
            .zip(above.chunks_exact(2))
            .zip(below.chunks_exact(2))
            .zip(d_above.chunks_exact_mut(2))
            .zip(d_below.chunks_exact_mut(2))
        {
            let (mut best, mut at) = (a[0], 0);
            for (i, v) in [(1, a[1]), (2, b[0]), (3, b[1])] {
                if v > best {
                    (best, at) = (v, i);
                }
            }
            match at {
                0 => da[0] = g,
                1 => da[1] = g,
                2 => db[0] = g,
                _ => db[1] = g,
            }
        }
    }
    Planes {
        h,
        w,
        c: input.c,
        data: dx,
    }
}

/// Gradient of nearest-neighbour upsampling by 2: each input collects its four outputs.
pub(super) fn up_backward(d: &Planes) -> Planes {
    let (h, w) = (d.h / 2, d.w / 2);
    let mut dx = vec![0.0f32; h * w * d.c];
    // Input row r collects output rows 2r and 2r + 1 of its plane.
    for (dst, pair) in dx.chunks_exact_mut(w).zip(d.data.chunks_exact(2 * d.w)) {
        let (first, second) = pair.split_at(d.w);
        for ((v, a), b) in dst
            .iter_mut()
            .zip(first.chunks_exact(2))
            .zip(second.chunks_exact(2))
        {
            *v = (a[0] + a[1]) + (b[0] + b[1]);
        }
    }
    Planes {
        h,
        w,
        c: d.c,
        data: dx,
    }
}

/// The pixels of output phase `phase` (row parity py · 2 + column parity px) of `d`: rows
/// 2y + py, columns 2x + px.
pub(super) fn phase_planes(d: &Planes, phase: usize) -> Planes {
    let (py, px) = (phase / 2, phase % 2);
    let (h, w) = (d.h / 2, d.w / 2);
    let mut data = Vec::with_capacity(d.c * h * w);
    for row in d.data.chunks_exact(d.w).skip(py).step_by(2) {
        data.extend(row[px..].iter().step_by(2).take(w));
    }
    Planes { h, w, c: d.c, data }
}

/// Adds the im2col-shaped gradient of output rows `y0..y1` (rows (ci, tap)) back onto the
/// input planes.
pub(super) fn col2im_add<const W: usize>(
    dcol: &[f32],
    dx: &mut Planes,
    y0: usize,
    y1: usize,
    taps: Taps<W>,
) {
    let (h, w) = (dx.h, dx.w);
    let n = (y1 - y0) * w;
    for (r, row) in dcol.chunks_exact(n).enumerate() {
        let (ci, (dy, shift)) = (r / taps.len(), taps.shift(r % taps.len()));
        for y in y0..y1 {
            let Some(sy) = y.checked_add_signed(dy).filter(|&s| s < h) else {
                continue;
            };
            let src = &row[(y - y0) * w..][..w];
            let dst = &mut dx.data[(ci * h + sy) * w..][..w];
            // Output x read input x + shift.
            let (dst, src) = match shift {
                -1 => (&mut dst[..w - 1], &src[1..]),
                0 => (dst, src),
                _ => (&mut dst[1..], &src[..w - 1]),
            };
            for (d, s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// The im2col matrix of output rows `y0..y1` transposed: `pixels × taps·c`, row p holding the
/// neighbourhoods of pixel p in every input plane (zero outside the image).
pub(super) fn im2col_t<const W: usize>(
    x: &Planes,
    y0: usize,
    y1: usize,
    taps: Taps<W>,
) -> Vec<f32> {
    let (h, w, c) = (x.h, x.w, x.c);
    let k = taps.len() * c;
    let width = W as isize;
    // Pixels lo..hi have their whole row of taps inside the image.
    let lo = (-taps.dx0).max(0) as usize;
    let hi = (w as isize - taps.dx0 - width + 1).clamp(lo as isize, w as isize) as usize;
    let mut out = vec![0.0f32; (y1 - y0) * w * k];
    for (y, band) in (y0..y1).zip(out.chunks_exact_mut(w * k)) {
        for ci in 0..c {
            for (r, &dy) in taps.dys.iter().enumerate() {
                let Some(sy) = y.checked_add_signed(dy).filter(|&s| s < h) else {
                    continue;
                };
                let src = &x.data[(ci * h + sy) * w..][..w];
                let at = ci * taps.len() + r * W;
                let start = (lo as isize + taps.dx0) as usize;
                // Windows first: zip stops on them without taking a pixel.
                let mut pixels = band.chunks_exact_mut(k).skip(lo);
                for (window, px) in src[start..]
                    .array_windows::<W>()
                    .take(hi - lo)
                    .zip(pixels.by_ref())
                {
                    px[at..at + W].copy_from_slice(window);
                }
                // The first and last pixels of the row, whose taps partly fall outside.
                let edges = (0..lo).chain(hi..w);
                for (xx, px) in edges.map(|xx| (xx, xx * k)) {
                    for j in 0..W {
                        let sx = xx as isize + taps.dx0 + j as isize;
                        if (0..w as isize).contains(&sx) {
                            band[px + at + j] = src[sx as usize];
                        }
                    }
                }
            }
        }
    }
    out
}

/// Σ a·b with eight partial sums, so that it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Gradients of a convolution with one input or one output plane (see `cpu::shifted_rows`),
/// row by row from shifted rows: weights (added into `dw`, `cout × 9·cin`) and, when asked,
/// the input.
pub(super) fn shifted_rows_backward(
    x: &Planes,
    dy: &Planes,
    weight: &[f32],
    dw: Option<&mut [f32]>,
    mut dx: Option<&mut Planes>,
) {
    let (w, k) = (x.w, 9 * x.c);
    let mut sums = vec![0.0f64; dy.c * k];
    // Row r of the output gradient is row r % h of plane r / h.
    for (r, d) in dy.data.chunks_exact(w).enumerate() {
        let (o, y) = (r / dy.h, r % dy.h);
        let (sums, weight) = (&mut sums[o * k..][..k], &weight[o * k..][..k]);
        for (at, row) in tap_rows(x, y) {
            let src = &x.data[row..][..w];
            // Tap kx reads src[x + kx − 1] for output x.
            sums[at] += f64::from(dot(&d[1..], &src[..w - 1]));
            sums[at + 1] += f64::from(dot(d, src));
            sums[at + 2] += f64::from(dot(&d[..w - 1], &src[1..]));
            if let Some(dx) = dx.as_mut() {
                let t = &weight[at..][..3];
                add_shifted(&mut dx.data[row..][..w], d, [t[2], t[1], t[0]]);
            }
        }
    }
    if let Some(dw) = dw {
        for (g, s) in dw.iter_mut().zip(sums) {
            *g += s as f32;
        }
    }
}

/// The gradient of a convolution's bias: the sum of its output gradient over each plane.
pub(super) fn bias_gradient(dy: &Planes) -> Vec<f32> {
    dy.data
        .chunks_exact(dy.h * dy.w)
        .map(|p| blocked_sum(p, p, |v, _| v) as f32)
        .collect()
}
