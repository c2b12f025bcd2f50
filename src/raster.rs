//! A plain 2-D f32 raster and the few pixel operations every stage shares.
//!
//! Coordinates: `x` is the column, `y` the row, both 0-based, pixel centres at integer positions.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// A row-major single-channel image.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Raster {
    pub fn zeros(width: usize, height: usize) -> Self {
        Raster {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// Wrap `data`; fails if its length is not `width * height`.
    pub fn from_vec(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != width * height {
            return Err(Error::invalid(format!(
                "raster of {width}x{height} needs {} values, got {}",
                width * height,
                data.len()
            )));
        }
        Ok(Raster {
            width,
            height,
            data,
        })
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, v: f32) {
        self.data[y * self.width + x] = v;
    }

    /// Value at integer position clamped to the border.
    #[inline]
    pub fn get_clamped(&self, x: isize, y: isize) -> f32 {
        let xc = x.clamp(0, self.width as isize - 1) as usize;
        let yc = y.clamp(0, self.height as isize - 1) as usize;
        self.get(xc, yc)
    }

    /// Bilinear sample at a sub-pixel position, clamped to the border.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let x0 = x.floor();
        let y0 = y.floor();
        let fx = x - x0;
        let fy = y - y0;
        let (xi, yi) = (x0 as isize, y0 as isize);
        let a = self.get_clamped(xi, yi);
        let b = self.get_clamped(xi + 1, yi);
        let c = self.get_clamped(xi, yi + 1);
        let d = self.get_clamped(xi + 1, yi + 1);
        (a * (1.0 - fx) + b * fx) * (1.0 - fy) + (c * (1.0 - fx) + d * fx) * fy
    }

    /// Nearest-neighbour sample, clamped to the border.
    pub fn sample_nearest(&self, x: f32, y: f32) -> f32 {
        self.get_clamped(x.round() as isize, y.round() as isize)
    }

    /// Copy of the window starting at (`x0`, `y0`) of size `w`×`h` (must lie inside).
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Raster {
        let mut out = Raster::zeros(w, h);
        for y in 0..h {
            let src = (y0 + y) * self.width + x0;
            out.data[y * w..(y + 1) * w].copy_from_slice(&self.data[src..src + w]);
        }
        out
    }

    /// Mean and standard deviation of all pixels.
    pub fn mean_std(&self) -> (f32, f32) {
        mean_std(&self.data)
    }

    /// Minimum and maximum.
    pub fn min_max(&self) -> (f32, f32) {
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// Rescale to zero mean and unit standard deviation (a constant image becomes all zeros).
    pub fn standardized(&self) -> Raster {
        let (m, s) = self.mean_std();
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        Raster {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|v| (v - m) * inv).collect(),
        }
    }

    /// Separable Gaussian blur with standard deviation `sigma` px, the image mirrored at its
    /// borders (so edges are not biased by repeating the border row).
    pub fn gaussian_blur(&self, sigma: f32) -> Raster {
        if sigma <= 0.0 {
            return self.clone();
        }
        let radius = (3.0 * sigma).ceil() as isize;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let norm: f32 = kernel.iter().sum();
        let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
        // Each pass adds shifted copies of whole rows, weighted (vectorisable loops); rows are
        // independent in both passes, so they run in parallel.
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return self.clone();
        }
        let mut tmp = vec![0.0f32; w * h];
        self.data
            .par_chunks_exact(w)
            .zip(tmp.par_chunks_exact_mut(w))
            .for_each_init(
                || vec![0.0f32; w + 2 * radius as usize],
                |padded, (src, dst)| {
                    for (i, p) in padded.iter_mut().enumerate() {
                        *p = src[reflect(i as isize - radius, w)];
                    }
                    for (k, wk) in kernel.iter().enumerate() {
                        for (d, s) in dst.iter_mut().zip(&padded[k..]) {
                            *d += wk * s;
                        }
                    }
                },
            );
        let mut out = vec![0.0f32; w * h];
        out.par_chunks_exact_mut(w)
            .enumerate()
            .for_each(|(y, dst)| {
                for (k, wk) in kernel.iter().enumerate() {
                    let sy = reflect(y as isize + k as isize - radius, h);
                    for (d, s) in dst.iter_mut().zip(&tmp[sy * w..][..w]) {
                        *d += wk * s;
                    }
                }
            });
        Raster {
            width: w,
            height: h,
            data: out,
        }
    }
}

/// Mirror index `i` into `0..n` (…, 1, 0 | 0, 1, …, n-1 | n-1, …).
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    let p = 2 * n as isize;
    let m = i.rem_euclid(p);
    (if m < n as isize { m } else { p - 1 - m }) as usize
}

/// Mean and (population) standard deviation of a slice; (0, 0) when empty.
pub fn mean_std(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean as f32, var.sqrt() as f32)
}

/// Median of a slice (copied); NaN when empty.
pub fn median(values: &[f32]) -> f32 {
    nth_smallest(values, values.len() / 2)
}

/// The `k`-th smallest value (0-based, clamped to the last) of a slice (copied); NaN when empty.
pub fn nth_smallest(values: &[f32], k: usize) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let mut v = values.to_vec();
    let k = k.min(v.len() - 1);
    let (_, m, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    *m
}

/// Median and robust standard deviation (1.4826 × median absolute deviation).
pub fn median_mad_sigma(values: &[f32]) -> (f32, f32) {
    let med = median(values);
    let dev: Vec<f32> = values.iter().map(|v| (v - med).abs()).collect();
    (med, 1.4826 * median(&dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_mean_and_spreads_a_point() {
        let mut r = Raster::zeros(21, 21);
        r.set(10, 10, 1.0);
        let b = r.gaussian_blur(2.0);
        let total: f32 = b.data.iter().sum();
        assert!((total - 1.0).abs() < 1e-3);
        assert!(b.get(10, 10) < 0.1 && b.get(12, 10) > 0.0);
    }

    #[test]
    fn blur_of_a_ramp_is_unbiased_at_the_edges() {
        let r = Raster::from_vec(8, 1, (0..8).map(|i| i as f32).collect()).expect("sizes match");
        let b = r.gaussian_blur(20.0);
        // Mirrored borders: a wide blur tends to the mean everywhere.
        for v in &b.data {
            assert!((v - 3.5).abs() < 0.2, "{v}");
        }
        assert_eq!(reflect(-1, 5), 0);
        assert_eq!(reflect(5, 5), 4);
        assert_eq!(reflect(-12, 5), 1);
    }

    #[test]
    fn bilinear_interpolates_between_pixels() {
        let r = Raster::from_vec(2, 1, vec![0.0, 2.0]).expect("sizes match");
        assert!((r.sample(0.5, 0.0) - 1.0).abs() < 1e-6);
        assert!((r.sample(-3.0, 0.0) - 0.0).abs() < 1e-6);
    }

    #[test]
    fn robust_sigma_ignores_outliers() {
        let mut v: Vec<f32> = (0..1000).map(|i| (i % 10) as f32).collect();
        v.push(1e6);
        let (m, s) = median_mad_sigma(&v);
        assert!((m - 4.5).abs() <= 0.5);
        assert!(s < 10.0);
    }

    #[test]
    fn from_vec_rejects_wrong_length() {
        assert!(Raster::from_vec(3, 3, vec![0.0; 8]).is_err());
    }
}
