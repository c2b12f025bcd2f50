//! Ground truth for frame 0 from lattice periodicity.
//!
//! While the lattice is still periodic, defects are what breaks the periodicity. Two methods:
//!
//! * [`LabelMethod::Columns`] (default): find the lattice from the Bragg peaks of the FFT, refine
//!   it by least squares on the brightest columns, find the basis (all column sites of the unit
//!   cell) from the lattice-averaged unit cell, then measure the background-corrected integrated
//!   intensity of every column and flag columns whose intensity deviates from their local
//!   reference (the median of the same site's columns within a few cells) by more than
//!   `z_threshold` robust standard deviations. The local reference keeps contamination and slow
//!   background from deciding; single S vacancies are caught where the contrast allows (see the
//!   `conditions` benchmark).
//! * [`LabelMethod::FftResidual`]: the method of Maksov et al. (2019): remove a centred disk of
//!   the shifted FFT, invert, subtract from the frame, take |·|, min–max normalise, and mark
//!   pixels below `lo` or above `hi`. It only works when the Bragg peaks lie outside the disk.
//!
//! Both produce a pixel mask; the Columns method also returns each column's measurement.

pub mod fft;
mod fit;
mod free;
mod reference;

pub use fit::{fit_lattice, measure_frame, refit_lattice};
pub use free::{lattice_free_mask, mark_lattice_free};
pub use reference::{LOCAL_REFERENCE_CELLS, local_reference};

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::{Raster, mean_std};
use crate::synth::disk_mask;
use fft::{fft2, signed_bin};
use rustfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Mask disk radius (px) assumed where the labels give none (FFT labels, a hand-painted mask).
pub const DEFAULT_MASK_RADIUS_PX: f32 = 3.0;

/// How frame 0 is labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum LabelMethod {
    /// Lattice fit and per-column intensity outliers.
    Columns {
        /// Flag a column when |intensity − local reference| > z_threshold × robust σ of the
        /// site's deviations (see [`local_reference`]).
        z_threshold: f32,
        /// Mask disk radius as a fraction of the nearest column distance.
        disk_radius_frac: f32,
        /// Minimum height of a basis site in the averaged cell, as a fraction of the brightest.
        min_site_fraction: f32,
        /// Lower the threshold, per site and side, down to [`Z_FLOOR`] for as long as the
        /// estimated precision stays at or above this (see [`adaptive_threshold`]); `None`
        /// flags at `z_threshold` alone.
        #[serde(default)]
        target_precision: Option<f32>,
    },
    /// FFT high-pass residual thresholds (Maksov et al. 2019).
    FftResidual {
        /// Radius of the removed centred disk in cycles per pixel (0.1 = N/10 bins).
        cutoff_cycles_per_px: f32,
        /// Pixels with normalised residual below this are defects.
        lo: f32,
        /// Pixels with normalised residual above this are defects.
        hi: f32,
    },
}

impl Default for LabelMethod {
    fn default() -> Self {
        LabelMethod::Columns {
            z_threshold: 4.0,
            disk_radius_frac: 0.3,
            min_site_fraction: 0.05,
            target_precision: Some(0.9),
        }
    }
}

impl LabelMethod {
    /// The FFT method with the published parameters.
    pub fn fft_residual_default() -> Self {
        LabelMethod::FftResidual {
            cutoff_cycles_per_px: 0.1,
            lo: 0.3,
            hi: 0.75,
        }
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            LabelMethod::Columns {
                z_threshold,
                disk_radius_frac,
                min_site_fraction,
                target_precision,
            } => {
                if let Some(p) = target_precision
                    && !(0.5..1.0).contains(&p)
                {
                    return Err(Error::invalid(format!(
                        "target precision must be in [0.5, 1), got {p}"
                    )));
                }
                if !(z_threshold > 0.0 && z_threshold.is_finite()) {
                    return Err(Error::invalid(format!(
                        "z threshold must be > 0, got {z_threshold}"
                    )));
                }
                if !(disk_radius_frac > 0.0 && disk_radius_frac <= 1.0) {
                    return Err(Error::invalid(format!(
                        "mask disk radius fraction must be in (0, 1], got {disk_radius_frac}"
                    )));
                }
                if !(0.0..1.0).contains(&min_site_fraction) {
                    return Err(Error::invalid(format!(
                        "minimum site fraction must be in [0, 1), got {min_site_fraction}"
                    )));
                }
            }
            LabelMethod::FftResidual {
                cutoff_cycles_per_px,
                lo,
                hi,
            } => {
                if !(cutoff_cycles_per_px > 0.0 && cutoff_cycles_per_px < 0.71) {
                    return Err(Error::invalid(format!(
                        "FFT cut-off must be in (0, 0.71) cycles/px, got {cutoff_cycles_per_px}"
                    )));
                }
                if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo >= hi {
                    return Err(Error::invalid(format!(
                        "thresholds must satisfy 0 ≤ lo < hi ≤ 1, got lo {lo}, hi {hi}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A fitted 2-D Bravais lattice with a basis of column sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatticeFit {
    /// Real-space basis vectors in pixels.
    pub a1: [f32; 2],
    pub a2: [f32; 2],
    /// Position of the brightest basis site nearest the frame origin, in pixels.
    pub origin: [f32; 2],
    /// Column sites of the unit cell in fractional coordinates (first = brightest).
    pub basis: Vec<[f32; 2]>,
    /// Mean intensity of each basis site in the averaged cell (same order as `basis`).
    pub site_heights: Vec<f32>,
    /// Shortest distance between two columns, in pixels.
    pub nearest_column_px: f32,
}

impl LatticeFit {
    /// The column site nearest to (x, y) (frame-0 pixels) and its distance.
    pub fn nearest_site(&self, x: f32, y: f32) -> ([f32; 2], f32) {
        // Fractional coordinates: solve origin + u a1 + v a2 = p.
        let det = self.a1[0] * self.a2[1] - self.a1[1] * self.a2[0];
        let (px, py) = (x - self.origin[0], y - self.origin[1]);
        let u = (px * self.a2[1] - py * self.a2[0]) / det;
        let v = (py * self.a1[0] - px * self.a1[1]) / det;
        let mut best = ([x, y], f32::INFINITY);
        for b in &self.basis {
            // The nearest image of this site may be one cell off the rounded one.
            for du in -1..=1 {
                for dv in -1..=1 {
                    let su = (u - b[0]).round() + du as f32 + b[0];
                    let sv = (v - b[1]).round() + dv as f32 + b[1];
                    let c = self.cart(su, sv);
                    let d = (c[0] - x).hypot(c[1] - y);
                    if d < best.1 {
                        best = (c, d);
                    }
                }
            }
        }
        best
    }

    /// Cell offsets (di, dj) that put basis site `other` within `reach` px of basis site
    /// `site` (a column is not its own neighbour).
    pub fn offsets_within(&self, site: usize, other: usize, reach: f32) -> Vec<[i32; 2]> {
        let (a, b) = (self.basis[site], self.basis[other]);
        let mut out = Vec::new();
        for di in -2..=2 {
            for dj in -2..=2 {
                if site == other && (di, dj) == (0, 0) {
                    continue;
                }
                let (u, v) = (b[0] - a[0] + di as f32, b[1] - a[1] + dj as f32);
                let x = u * self.a1[0] + v * self.a2[0];
                let y = u * self.a1[1] + v * self.a2[1];
                if x.hypot(y) <= reach {
                    out.push([di, dj]);
                }
            }
        }
        out
    }

    /// Length of the shortest lattice vector, px: the spacing of one site's columns.
    pub fn shortest_vector_px(&self) -> f32 {
        (-1..=1)
            .flat_map(|i| (-1..=1).map(move |j| (i as f32, j as f32)))
            .filter(|&p| p != (0.0, 0.0))
            .map(|(i, j)| (i * self.a1[0] + j * self.a2[0]).hypot(i * self.a1[1] + j * self.a2[1]))
            .fold(f32::INFINITY, f32::min)
    }

    /// Pixel position of fractional lattice coordinates (u, v).
    pub fn cart(&self, u: f32, v: f32) -> [f32; 2] {
        [
            self.origin[0] + u * self.a1[0] + v * self.a2[0],
            self.origin[1] + u * self.a1[1] + v * self.a2[1],
        ]
    }
}

/// One column's measurement (Columns method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeasure {
    pub x: f32,
    pub y: f32,
    /// Index into [`LatticeFit::basis`].
    pub site: usize,
    /// Lattice indices (i, j) of the column's cell: with `site`, the column's name, which stays
    /// the same in every frame of a movie (see [`refit_lattice`]).
    #[serde(default)]
    pub cell: [i32; 2],
    /// Background-corrected intensity, weighted by a Gaussian of about the column's width.
    pub intensity: f32,
    /// The local reference: median intensity of the same site's columns within a few cells.
    #[serde(default)]
    pub reference: f32,
    /// Deviation from the local reference, in robust standard deviations of the site's
    /// deviations.
    pub z: f32,
    pub flagged: bool,
    /// The column lies in a lattice-free area (a hole, vacuum, an amorphous patch; see
    /// [`mark_lattice_free`]): not a defect, and left out of its neighbours' references.
    #[serde(default)]
    pub lattice_free: bool,
}

/// The labelling of one frame.
#[derive(Debug, Clone)]
pub struct Labels {
    pub width: usize,
    pub height: usize,
    pub mask: Vec<bool>,
    pub method: LabelMethod,
    pub lattice: Option<LatticeFit>,
    pub columns: Vec<ColumnMeasure>,
    /// Normalised residual (FFT method) for display.
    pub residual: Option<Raster>,
    /// Suggested thresholds mean ∓ 3σ of the normalised residual (FFT method).
    pub suggested_thresholds: Option<(f32, f32)>,
    /// The thresholds used on each site (Columns method): a column is flagged below −`.0` or
    /// above `.1`, in robust σ.
    pub site_thresholds: Vec<(f32, f32)>,
}

impl Labels {
    /// Fraction of pixels marked as defect.
    pub fn defect_fraction(&self) -> f32 {
        self.mask.iter().filter(|&&m| m).count() as f32 / self.mask.len().max(1) as f32
    }

    /// Flag columns beyond the threshold (fixed, or adapted per site and side for
    /// `target_precision`) and draw their disks into the mask.
    fn flag_columns(
        &mut self,
        z_threshold: f32,
        disk_radius_frac: f32,
        target_precision: Option<f32>,
    ) {
        let sites = self.lattice.as_ref().map_or(0, |f| f.basis.len());
        let mut thresholds = Vec::with_capacity(sites);
        for site in 0..sites {
            let z: Vec<f32> = self
                .columns
                .iter()
                .filter(|c| c.site == site && !c.lattice_free)
                .map(|c| c.z)
                .collect();
            let (low, high) = match target_precision {
                Some(p) => (
                    adaptive_threshold(&z, -1.0, z_threshold, p),
                    adaptive_threshold(&z, 1.0, z_threshold, p),
                ),
                None => (z_threshold, z_threshold),
            };
            for c in self.columns.iter_mut().filter(|c| c.site == site) {
                c.flagged = !c.lattice_free && (c.z < -low || c.z > high);
            }
            thresholds.push((low, high));
        }
        self.site_thresholds = thresholds;
        let radius = self
            .lattice
            .as_ref()
            .map_or(0.0, |f| disk_radius_frac * f.nearest_column_px);
        self.mask = disk_mask(self.width, self.height, &self.flagged_points(), radius);
    }

    /// Apply new thresholds without measuring the frame again, when `method` differs from the
    /// one these labels were made with only in its thresholds (z and disk size; lo and hi).
    /// Returns false (and changes nothing) when a new labelling is needed.
    pub fn rethreshold(&mut self, method: &LabelMethod) -> Result<bool> {
        method.validate()?;
        match (method, &self.method) {
            (
                LabelMethod::Columns {
                    z_threshold,
                    disk_radius_frac,
                    min_site_fraction,
                    target_precision,
                },
                LabelMethod::Columns {
                    min_site_fraction: old,
                    ..
                },
            ) if min_site_fraction == old => {
                self.flag_columns(*z_threshold, *disk_radius_frac, *target_precision);
            }
            (
                LabelMethod::FftResidual {
                    cutoff_cycles_per_px,
                    lo,
                    hi,
                },
                LabelMethod::FftResidual {
                    cutoff_cycles_per_px: old,
                    ..
                },
            ) if cutoff_cycles_per_px == old => match &self.residual {
                Some(r) => self.mask = residual_mask(r, *lo, *hi),
                None => return Ok(false),
            },
            _ => return Ok(false),
        }
        self.method = method.clone();
        Ok(true)
    }

    /// Radius (px) of the defect disks in the mask, which the network learns to draw: the
    /// columns method's disks; [`DEFAULT_MASK_RADIUS_PX`] for FFT labels, whose blobs have no
    /// natural size.
    pub fn mask_radius_px(&self) -> f32 {
        match (&self.method, &self.lattice) {
            (
                LabelMethod::Columns {
                    disk_radius_frac, ..
                },
                Some(f),
            ) => disk_radius_frac * f.nearest_column_px,
            _ => DEFAULT_MASK_RADIUS_PX,
        }
    }

    /// The pixels of lattice-free areas (holes, vacuum, amorphous patches), which training
    /// leaves out: neither defects nor negatives. Empty when there is none (or no lattice).
    pub fn ignore_mask(&self) -> Vec<bool> {
        match &self.lattice {
            Some(fit) if self.columns.iter().any(|c| c.lattice_free) => {
                lattice_free_mask(fit, &self.columns, self.width, self.height)
            }
            _ => Vec::new(),
        }
    }

    /// Positions of flagged columns (Columns method).
    pub fn flagged_points(&self) -> Vec<(f32, f32)> {
        self.columns
            .iter()
            .filter(|c| c.flagged)
            .map(|c| (c.x, c.y))
            .collect()
    }
}

/// Label a frame with the chosen method.
pub fn label(frame: &Raster, method: &LabelMethod) -> Result<Labels> {
    label_in(frame, method, &JobCtx::detached())
}

/// [`label`], stopping between its stages (each well under a second on a 2048² frame) when
/// `ctx` is cancelled.
pub fn label_in(frame: &Raster, method: &LabelMethod, ctx: &JobCtx) -> Result<Labels> {
    method.validate()?;
    match *method {
        LabelMethod::Columns {
            z_threshold,
            disk_radius_frac,
            min_site_fraction,
            target_precision,
        } => {
            let mut labels = label_columns(frame, method, min_site_fraction, ctx)?;
            labels.flag_columns(z_threshold, disk_radius_frac, target_precision);
            Ok(labels)
        }
        LabelMethod::FftResidual {
            cutoff_cycles_per_px,
            lo,
            hi,
        } => label_fft_residual(frame, method, cutoff_cycles_per_px, lo, hi, ctx),
    }
}

fn label_fft_residual(
    frame: &Raster,
    method: &LabelMethod,
    cutoff: f32,
    lo: f32,
    hi: f32,
    ctx: &JobCtx,
) -> Result<Labels> {
    let (w, h) = (frame.width, frame.height);
    let mut spec: Vec<Complex32> = frame.data.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut spec, w, h, false);
    ctx.check()?;
    for y in 0..h {
        let fy = signed_bin(y, h) as f32 / h as f32;
        for x in 0..w {
            let fx = signed_bin(x, w) as f32 / w as f32;
            if fx * fx + fy * fy < cutoff * cutoff {
                spec[y * w + x] = Complex32::new(0.0, 0.0);
            }
        }
    }
    fft2(&mut spec, w, h, true);
    ctx.check()?;
    let n = (w * h) as f32;
    let residual: Vec<f32> = frame
        .data
        .iter()
        .zip(&spec)
        .map(|(&v, c)| (v - c.re / n).abs())
        .collect();
    let mut res = Raster::from_vec(w, h, residual)?;
    let (mn, mx) = res.min_max();
    let span = if mx > mn { mx - mn } else { 1.0 };
    for v in res.data.iter_mut() {
        *v = (*v - mn) / span;
    }
    let mask = residual_mask(&res, lo, hi);
    let (m, s) = mean_std(&res.data);
    Ok(Labels {
        width: w,
        height: h,
        mask,
        method: method.clone(),
        lattice: None,
        columns: Vec::new(),
        residual: Some(res),
        suggested_thresholds: Some(((m - 3.0 * s).max(0.0), (m + 3.0 * s).min(1.0))),
        site_thresholds: Vec::new(),
    })
}

/// Fit the lattice and measure every column against its local reference; nothing flagged yet.
fn label_columns(
    frame: &Raster,
    method: &LabelMethod,
    min_site_fraction: f32,
    ctx: &JobCtx,
) -> Result<Labels> {
    let fit = fit_lattice(frame, min_site_fraction)?;
    ctx.check()?;
    let columns = measure_frame(frame, &fit);
    Ok(Labels {
        width: frame.width,
        height: frame.height,
        mask: Vec::new(),
        method: method.clone(),
        lattice: Some(fit),
        columns,
        residual: None,
        suggested_thresholds: None,
        site_thresholds: Vec::new(),
    })
}

/// The lowest adaptive threshold: below it, noise flags columns faster than defects do.
pub const Z_FLOOR: f32 = 2.5;

/// The threshold on one side (`sign` −1: deviations below −t; +1: above t) of a site's
/// deviations `z`: the lowest t in [[`Z_FLOOR`], `z_max`] at which the estimated precision is
/// at least `target`, else `z_max`. The columns that pass t by chance are estimated as the
/// larger of n·Φ̄(t) (intact columns' deviations are standardised by a robust σ, so nearly
/// standard normal) and the number past t on the other side (the same noise mirrored, which
/// holds where contamination gives the noise heavier tails than a normal's; where the other
/// side holds defects too, the estimate only errs towards fewer flags). The rest of those past
/// t are defects. More faint defects are labelled where the frame can show them, at a stated
/// precision, instead of at one conservative threshold everywhere.
pub fn adaptive_threshold(z: &[f32], sign: f32, z_max: f32, target: f32) -> f32 {
    let n = z.len() as f64;
    let beyond = |s: f32| {
        let mut v: Vec<f32> = z.iter().map(|&x| s * x).filter(|&x| x > Z_FLOOR).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let (side, mirrored) = (beyond(sign), beyond(-sign));
    let mut best = z_max;
    // Candidate thresholds: just below each deviation.
    for (k, &v) in side.iter().enumerate() {
        let t = v - 1e-4;
        if t >= z_max {
            continue;
        }
        let flagged = (side.len() - k) as f64;
        let mirrored_past = (mirrored.len() - mirrored.partition_point(|&m| m <= t)) as f64;
        let expected_false = (n * normal_tail(t as f64)).max(mirrored_past);
        if 1.0 - expected_false / flagged >= target as f64 {
            best = best.min(t);
        }
    }
    best.max(Z_FLOOR)
}

/// Φ̄(x) = P(N(0,1) > x), by the complementary error function (Abramowitz & Stegun 7.1.26,
/// absolute error < 1.5·10⁻⁷).
fn normal_tail(x: f64) -> f64 {
    let u = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * u.abs());
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-u * u).exp();
    let erfc = if u >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// Pixels of a normalised residual outside [lo, hi].
fn residual_mask(residual: &Raster, lo: f32, hi: f32) -> Vec<bool> {
    residual.data.iter().map(|&v| v < lo || v > hi).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, generate};

    #[test]
    fn lattice_fit_recovers_the_generator_lattice() {
        let cfg = SynthConfig {
            frames: 1,
            width: 256,
            height: 200,
            rotation_deg: Some(17.0),
            ..SynthConfig::default()
        };
        let s = generate(&cfg).expect("gen");
        let fit = fit_lattice(&s.movie.frames[0], 0.05).expect("fit");

        let a = cfg.lattice_a_px() as f32;
        for v in [fit.a1, fit.a2] {
            let len = (v[0] * v[0] + v[1] * v[1]).sqrt();
            assert!((len - a).abs() < 0.01 * a, "basis length {len} vs {a}");
        }
        assert_eq!(fit.basis.len(), 2, "W and S2 sites: {:?}", fit.basis);
        let d = cfg.lattice_a_px() as f32 / 3f32.sqrt();
        assert!((fit.nearest_column_px - d).abs() < 0.02 * d);
    }

    #[test]
    fn the_adaptive_threshold_lowers_only_where_defects_outnumber_chance() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let normal = Normal::new(0.0f32, 1.0).expect("normal");
        let intact: Vec<f32> = (0..2000).map(|_| normal.sample(&mut rng)).collect();
        // Noise alone: nothing justifies going below the fixed threshold.
        assert_eq!(adaptive_threshold(&intact, -1.0, 4.0, 0.9), 4.0);
        // 60 faint defects 3.5 σ low: the threshold comes down, but not to the floor, where
        // the 2000 intact columns would add a dozen chance flags.
        let defects: Vec<f32> = (0..60)
            .map(|_| -3.5 + 0.3 * normal.sample(&mut rng))
            .collect();
        let all: Vec<f32> = intact.iter().chain(&defects).copied().collect();
        let t = adaptive_threshold(&all, -1.0, 4.0, 0.9);
        assert!(t > Z_FLOOR && t < 3.5, "threshold {t}");
        let true_flags = defects.iter().filter(|&&z| z < -t).count() as f32;
        let chance = intact.iter().filter(|&&z| z < -t).count() as f32;
        assert!(true_flags > 40.0, "{true_flags} of 60 found");
        assert!(
            true_flags / (true_flags + chance) >= 0.85,
            "{chance} chance flags"
        );
        // The other side saw nothing new.
        assert_eq!(adaptive_threshold(&all, 1.0, 4.0, 0.9), 4.0);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let f = Raster::zeros(32, 32);
        let bad = LabelMethod::FftResidual {
            cutoff_cycles_per_px: 0.1,
            lo: 0.8,
            hi: 0.3,
        };
        assert!(label(&f, &bad).is_err());
        let bad = LabelMethod::Columns {
            z_threshold: -1.0,
            disk_radius_frac: 0.3,
            min_site_fraction: 0.05,
            target_precision: None,
        };
        assert!(label(&f, &bad).is_err());
    }

    /// One 160² frame of the synthetic WS2 movie.
    fn small_frame() -> Raster {
        let cfg = SynthConfig {
            frames: 1,
            width: 160,
            height: 160,
            ..SynthConfig::default()
        };
        generate(&cfg).expect("gen").movie.frames.swap_remove(0)
    }

    #[test]
    fn labelling_stops_when_cancelled() {
        let frame = &small_frame();
        let cancelled = JobCtx::detached();
        cancelled.cancel();
        for method in [LabelMethod::default(), LabelMethod::fft_residual_default()] {
            assert!(label(frame, &method).is_ok(), "{method:?}");
            let r = label_in(frame, &method, &cancelled);
            assert!(matches!(r, Err(Error::Cancelled)), "{method:?}");
        }
    }

    #[test]
    fn rethresholding_equals_labelling_afresh() {
        let frame = &small_frame();
        let cases = [
            (
                LabelMethod::default(),
                LabelMethod::Columns {
                    z_threshold: 2.5,
                    disk_radius_frac: 0.4,
                    min_site_fraction: 0.05,
                    target_precision: None,
                },
            ),
            (
                LabelMethod::fft_residual_default(),
                LabelMethod::FftResidual {
                    cutoff_cycles_per_px: 0.1,
                    lo: 0.2,
                    hi: 0.6,
                },
            ),
        ];
        for (first, second) in cases {
            let mut l = label(frame, &first).expect("label");
            let before = l.mask.clone();
            assert!(l.rethreshold(&second).expect("valid"));
            let fresh = label(frame, &second).expect("label");
            assert_eq!(l.mask, fresh.mask, "{second:?}");
            assert_ne!(l.mask, before, "{second:?} changed nothing");
            assert_eq!(l.method, second);
        }
        // A different measurement needs a new labelling.
        let mut l = label(frame, &LabelMethod::default()).expect("label");
        // The thresholds used are reported per site, and they are what flagged the columns.
        let sites = l.lattice.as_ref().map_or(0, |f| f.basis.len());
        assert_eq!(l.site_thresholds.len(), sites);
        for c in &l.columns {
            let (lo, hi) = l.site_thresholds[c.site];
            assert!((2.5..=4.0).contains(&lo) && (2.5..=4.0).contains(&hi));
            assert_eq!(c.flagged, c.z < -lo || c.z > hi);
        }
        assert!(
            !l.rethreshold(&LabelMethod::fft_residual_default())
                .expect("valid")
        );
        assert_eq!(l.method, LabelMethod::default());
    }

    #[test]
    fn frames_without_a_lattice_are_refused_with_a_way_out() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal, Poisson};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let poisson = Poisson::new(50.0f32).expect("poisson");
        let normal = Normal::new(0.0f32, 1.0).expect("normal");
        for (w, h) in [(128, 128), (256, 256), (512, 384)] {
            let vacuum: Vec<f32> = (0..w * h).map(|_| poisson.sample(&mut rng)).collect();
            let speckle: Vec<f32> = (0..w * h).map(|_| normal.sample(&mut rng)).collect();
            let amorphous = Raster::from_vec(w, h, speckle)
                .expect("raster")
                .gaussian_blur(2.5);
            for frame in [Raster::from_vec(w, h, vacuum).expect("raster"), amorphous] {
                let e = label(&frame, &LabelMethod::default()).expect_err("no lattice");
                let m = e.to_string();
                assert!(
                    m.contains("no crystal lattice") && m.contains("FFT-residual"),
                    "{w}x{h}: {m}"
                );
            }
        }
        // The same check passes a lattice five cells across (a synthetic WS2 frame of 128²).
        let lattice = generate(&SynthConfig {
            frames: 1,
            width: 128,
            height: 128,
            seed: 8,
            ..SynthConfig::default()
        })
        .expect("gen");
        assert!(label(&lattice.movie.frames[0], &LabelMethod::default()).is_ok());
    }

    #[test]
    fn blank_frame_has_no_lattice() {
        let f = Raster::zeros(64, 64);
        assert!(label(&f, &LabelMethod::default()).is_err());
    }

    #[test]
    fn fft_residual_marks_a_hole_in_a_fine_lattice() {
        // Period 4 px: well under N/10, the regime where the published method works.
        let (w, h) = (128, 128);
        let mut f = Raster::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let v = (2.0 * std::f32::consts::PI * x as f32 / 4.0).cos()
                    + (2.0 * std::f32::consts::PI * y as f32 / 4.0).cos();
                f.set(x, y, v + 2.0);
            }
        }
        // A dark hole and a bright cluster: the residual deviates both ways from the lattice.
        for y in 30..38 {
            for x in 30..38 {
                f.set(x, y, 0.5);
            }
        }
        for y in 90..98 {
            for x in 90..98 {
                f.set(x, y, 3.5);
            }
        }
        let l = label(&f, &LabelMethod::fft_residual_default()).expect("label");
        assert!(l.mask[34 * w + 34], "the hole must be marked");
        assert!(l.mask[94 * w + 94], "the bright cluster must be marked");
        assert!(!l.mask[10 * w + 10], "far lattice must not be marked");
        assert!(l.defect_fraction() < 0.1);
    }
}
