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
