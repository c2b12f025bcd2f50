//! 2-D FFT helpers over row-major complex buffers.

use rayon::prelude::*;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// In-place 2-D FFT of a `w`×`h` row-major buffer (unnormalised in both directions). Rows are
/// transformed in parallel bands; columns as rows of the transposed buffer, so that no pass
/// strides through memory.
pub fn fft2(data: &mut [Complex32], w: usize, h: usize, inverse: bool) {
    if w == 0 || h == 0 {
        return;
    }
    let mut planner = FftPlanner::<f32>::new();
    let mut plan = |n: usize| {
        if inverse {
            planner.plan_fft_inverse(n)
        } else {
            planner.plan_fft_forward(n)
        }
    };
    let (rows, cols) = (plan(w), plan(h));
    // Bands of rows: a plan's `process` transforms every row of the slice it is given.
    data.par_chunks_mut(w * ROWS_PER_BAND)
        .for_each(|b| rows.process(b));
    let mut t = vec![Complex32::new(0.0, 0.0); w * h];
    transpose(data, w, h, &mut t);
    t.par_chunks_mut(h * ROWS_PER_BAND)
        .for_each(|b| cols.process(b));
    transpose(&t, h, w, data);
}

/// Rows handed to one thread at a time by [`fft2`].
const ROWS_PER_BAND: usize = 32;

/// Write the `h`×`w` transpose of the `w`×`h` row-major `data` into `out`, tile by tile so that
/// both sides stay in cache.
fn transpose(data: &[Complex32], w: usize, h: usize, out: &mut [Complex32]) {
    const TILE: usize = 32;
    for y0 in (0..h).step_by(TILE) {
        for x0 in (0..w).step_by(TILE) {
            for y in y0..(y0 + TILE).min(h) {
                for x in x0..(x0 + TILE).min(w) {
                    out[x * h + y] = data[y * w + x];
                }
            }
        }
    }
}

/// log(1 + |F|²) of `frame` (mean removed), with zero frequency at the centre pixel
/// (`w / 2`, `h / 2`): for showing the Bragg peaks and the labelling's cut-off.
pub fn log_power_spectrum(frame: &crate::raster::Raster) -> crate::raster::Raster {
    let (w, h) = (frame.width, frame.height);
    let (mean, _) = frame.mean_std();
    let mut spec: Vec<Complex32> = frame
        .data
        .iter()
        .map(|&v| Complex32::new(v - mean, 0.0))
        .collect();
    fft2(&mut spec, w, h, false);
    let mut out = crate::raster::Raster::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let (cx, cy) = ((x + w / 2) % w, (y + h / 2) % h);
            out.data[cy * w + cx] = spec[y * w + x].norm_sqr().ln_1p();
        }
    }
    out
}

/// Signed frequency index of bin `k` of an `n`-point FFT (e.g. n-1 → -1).
pub fn signed_bin(k: usize, n: usize) -> isize {
    if k < n.div_ceil(2) {
        k as isize
    } else {
        k as isize - n as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_spectrum_peaks_at_the_wave_frequency_around_the_centre() {
        let (w, h) = (64, 32);
        // 8 periods along x, 4 along y.
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                (std::f32::consts::TAU * (8.0 * x / w as f32 + 4.0 * y / h as f32)).cos()
            })
            .collect();
        let f = crate::raster::Raster::from_vec(w, h, data).expect("raster");
        let p = log_power_spectrum(&f);
        let (_, max) = p.min_max();
        let peaks: Vec<(usize, usize)> = (0..w * h)
            .filter(|&i| p.data[i] > 0.9 * max)
            .map(|i| (i % w, i / w))
            .collect();
        assert_eq!(peaks, vec![(w / 2 - 8, h / 2 - 4), (w / 2 + 8, h / 2 + 4)]);
    }

    #[test]
    fn forward_then_inverse_is_identity_times_n() {
        let (w, h) = (6, 4);
        let orig: Vec<Complex32> = (0..w * h).map(|i| Complex32::new(i as f32, 0.0)).collect();
        let mut d = orig.clone();
        fft2(&mut d, w, h, false);
        fft2(&mut d, w, h, true);
        for (a, b) in d.iter().zip(&orig) {
            assert!((a.re / (w * h) as f32 - b.re).abs() < 1e-3);
        }
    }

    #[test]
    fn equals_the_direct_sum_on_frames_of_many_bands() {
        // 45 × 70: odd sizes, and more rows and columns than one band or transpose tile holds.
        let (w, h) = (45, 70);
        let orig: Vec<Complex32> = (0..w * h)
            .map(|i| Complex32::new((i as f32 * 0.37).sin(), (i as f32 * 0.11).cos()))
            .collect();
        for inverse in [false, true] {
            let mut d = orig.clone();
            fft2(&mut d, w, h, inverse);
            let sign = if inverse { 1.0 } else { -1.0 };
            for (u, v) in [(0, 0), (1, 0), (0, 1), (7, 33), (44, 69), (20, 3)] {
                let mut direct = rustfft::num_complex::Complex64::new(0.0, 0.0);
                for y in 0..h {
                    for x in 0..w {
                        let ph = sign
                            * 2.0
                            * std::f64::consts::PI
                            * ((u * x) as f64 / w as f64 + (v * y) as f64 / h as f64);
                        let o = orig[y * w + x];
                        direct += rustfft::num_complex::Complex64::new(o.re as f64, o.im as f64)
                            * rustfft::num_complex::Complex64::from_polar(1.0, ph);
                    }
                }
                let got = d[v * w + u];
                assert!(
                    (got.re as f64 - direct.re).abs() < 1e-2
                        && (got.im as f64 - direct.im).abs() < 1e-2,
                    "inverse {inverse}, bin ({u}, {v}): {got} against {direct}"
                );
            }
        }
    }

    #[test]
    fn cosine_peaks_at_its_frequency() {
        let (w, h) = (32, 16);
        let mut d: Vec<Complex32> = (0..w * h)
            .map(|i| {
                let x = (i % w) as f32;
                Complex32::new((2.0 * std::f32::consts::PI * 3.0 * x / w as f32).cos(), 0.0)
            })
            .collect();
        fft2(&mut d, w, h, false);
        let best = (0..w * h)
            .max_by(|&a, &b| d[a].norm().total_cmp(&d[b].norm()))
            .expect("non-empty");
        assert_eq!(best / w, 0);
        assert_eq!(signed_bin(best % w, w).abs(), 3);
    }
}
