//! Imaging a specimen: columns drawn with their profiles under the contamination layer, scan
//! lines jittered and flickering, electrons counted with shot and read noise.

use super::SynthConfig;
use super::columns::{ColumnKind, Profiles};
use super::specimen;
use crate::error::{Error, Result};
use crate::raster::Raster;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

/// What stays the same from frame to frame: the microscope and the detector.
pub(super) struct Imaging<'a> {
    cfg: &'a SynthConfig,
    profiles: &'a Profiles,
    /// Electrons per pixel per frame.
    e_px: f64,
    /// Mean level of the clean lattice (counts per pixel): the contamination adds up to twice
    /// `contamination` of it.
    mean_level: f64,
    jitter: Normal<f64>,
    read: Normal<f64>,
}

impl<'a> Imaging<'a> {
    pub fn new(cfg: &'a SynthConfig, profiles: &'a Profiles) -> Result<Self> {
        let e_px = cfg.electrons_per_px();
        let (host, _) = cfg.material.metals();
        // One metal and one chalcogen pair per cell.
        let cell_px = cfg.cell_area_px();
        let pair = cfg
            .material
            .chalcogen_column(2, 0)
            .unwrap_or(ColumnKind::S2);
        let mean_level = e_px * (profiles.integral(host) + profiles.integral(pair)) / cell_px;
        Ok(Imaging {
            cfg,
            profiles,
            e_px,
            mean_level,
            jitter: Normal::new(0.0, cfg.scan_jitter_px.max(1e-12))
                .map_err(|e| Error::invalid(format!("synth: jitter: {e}")))?,
            read: Normal::new(0.0, cfg.read_noise.max(1e-12))
                .map_err(|e| Error::invalid(format!("synth: read noise: {e}")))?,
        })
    }

    /// One frame of `columns` (specimen frame, px) seen shifted by `shift`, under the
    /// contamination thickness `layer` (one value in [0, 1] per pixel), if any.
    pub fn frame(
        &self,
        columns: &[(f64, f64, ColumnKind)],
        (dx, dy): (f64, f64),
        layer: Option<&[f64]>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Raster> {
        let cfg = self.cfg;
        let (w, h) = (cfg.width, cfg.height);
        let thickness = |x: f64, y: f64| {
            layer.map_or(0.0, |t| {
                let xi = x.round().clamp(0.0, (w - 1) as f64) as usize;
                let yi = y.round().clamp(0.0, (h - 1) as f64) as usize;
                t[yi * w + xi]
            })
        };
        let (host, _) = cfg.material.metals();
        let base = self.e_px * cfg.background * self.profiles.peak(host);
        let mut clean: Vec<f64> = (0..w * h)
            .map(|i| {
                let t = layer.map_or(0.0, |t| t[i]);
                base + 2.0 * cfg.contamination * self.mean_level * t
            })
            .collect();
        let row_shift: Vec<f64> = (0..h)
            .map(|_| {
                if cfg.scan_jitter_px > 0.0 {
                    self.jitter.sample(rng)
                } else {
                    0.0
                }
            })
            .collect();
        // The amorphous layer spreads the probe: columns under it lose up to half the
        // contamination fraction of their peak.
        let scaled: Vec<(f64, f64, ColumnKind, f64)> = columns
            .iter()
            .map(|&(x, y, kind)| {
                let (x, y) = (x + dx, y + dy);
                let attenuation = 1.0 - 0.5 * cfg.contamination * thickness(x, y);
                (x, y, kind, self.e_px * attenuation)
            })
            .collect();
        render_columns(&mut clean, w, h, &scaled, self.profiles, &row_shift);
        let gains = if cfg.line_flicker > 0.0 {
            specimen::line_gains(h, cfg.line_flicker, rng)
        } else {
            vec![1.0; h]
        };
        // Detector: Poisson counts plus read noise.
        let mut data = Vec::with_capacity(w * h);
        for (i, &lam) in clean.iter().enumerate() {
            let lam = lam * gains[i / w];
            let counts = if lam > 0.0 {
                Poisson::new(lam).map(|p| p.sample(rng)).unwrap_or(lam)
            } else {
                0.0
            };
            let noise = if cfg.read_noise > 0.0 {
                self.read.sample(rng)
            } else {
                0.0
            };
            data.push((counts + noise) as f32);
        }
        Raster::from_vec(w, h, data)
    }
}

/// Field-of-view offset of each of `frames` frames: a random walk of steps of standard
/// deviation `step_px`, starting at (0, 0).
pub(super) fn random_walk(
    frames: usize,
    step_px: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<(f64, f64)>> {
    let step = Normal::new(0.0, step_px.max(1e-12))
        .map_err(|e| Error::invalid(format!("synth: drift: {e}")))?;
    let mut drift = vec![(0.0, 0.0)];
    for _ in 1..frames {
        let &(dx, dy) = drift.last().unwrap_or(&(0.0, 0.0));
        let (sx, sy) = if step_px > 0.0 {
            (step.sample(rng), step.sample(rng))
        } else {
            (0.0, 0.0)
        };
        drift.push((dx + sx, dy + sy));
    }
    Ok(drift)
}

/// Add the columns `(x, y, kind, electrons per pixel)` to `img` with their radial profiles.
/// Each scan line `y` sees the columns displaced sideways by `row_shift[y]`.
pub(super) fn render_columns(
    img: &mut [f64],
    w: usize,
    h: usize,
    columns: &[(f64, f64, ColumnKind, f64)],
    profiles: &Profiles,
    row_shift: &[f64],
) {
    let r = profiles.reach_px.ceil() + 1.0;
    for &(cx, cy, kind, scale) in columns {
        let y0 = (cy - r).floor().max(0.0) as usize;
        let y1 = ((cy + r).ceil().max(0.0) as usize).min(h);
        for y in y0..y1 {
            let ddy = y as f64 - cy;
            let sx = cx + row_shift[y];
            let x0 = (sx - r).floor().max(0.0) as usize;
            let x1 = ((sx + r).ceil().max(0.0) as usize).min(w);
            for x in x0..x1 {
                let ddx = x as f64 - sx;
                img[y * w + x] += scale * profiles.at(kind, (ddx * ddx + ddy * ddy).sqrt());
            }
        }
    }
}
