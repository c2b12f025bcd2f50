//! 2-D FFT helpers over row-major complex buffers.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// In-place 2-D FFT of a `w`×`h` row-major buffer (unnormalised in both directions).
pub fn fft2(data: &mut [Complex32], w: usize, h: usize, inverse: bool) {
    let mut planner = FftPlanner::<f32>::new();
    let row = if inverse {
        planner.plan_fft_inverse(w)
    } else {
        planner.plan_fft_forward(w)
    };
    for r in data.chunks_exact_mut(w) {
        row.process(r);
    }
    let col = if inverse {
        planner.plan_fft_inverse(h)
    } else {
        planner.plan_fft_forward(h)
    };
    let mut buf = vec![Complex32::new(0.0, 0.0); h];
    for x in 0..w {
        for y in 0..h {
            buf[y] = data[y * w + x];
        }
        col.process(&mut buf);
        for y in 0..h {
            data[y * w + x] = buf[y];
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
