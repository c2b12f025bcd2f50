//! What a real movie has besides the crystal: the material, amorphous contamination that
//! evolves in time, and the scan's per-line gain flicker.

use super::columns::ColumnKind;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// A transition-metal dichalcogenide monolayer (2H, seen along c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Material {
    #[default]
    WS2,
    MoS2,
    WSe2,
}

impl Material {
    pub const ALL: [Material; 3] = [Material::WS2, Material::MoS2, Material::WSe2];

    pub fn name(self) -> &'static str {
        match self {
            Material::WS2 => "WS2",
            Material::MoS2 => "MoS2",
            Material::WSe2 => "WSe2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// In-plane lattice constant in nm.
    pub fn lattice_a_nm(self) -> f64 {
        let angstrom = match self {
            Material::WS2 => 3.18,
            Material::MoS2 => 3.16,
            Material::WSe2 => 3.28,
        };
        angstrom / 10.0
    }

    /// The host metal column and the substituting metal (the dopant).
    pub fn metals(self) -> (ColumnKind, ColumnKind) {
        match self {
            Material::WS2 | Material::WSe2 => (ColumnKind::W, ColumnKind::Mo),
            Material::MoS2 => (ColumnKind::Mo, ColumnKind::W),
        }
    }

    /// Whether the host chalcogen is S (Se can then substitute it).
    pub fn is_sulfide(self) -> bool {
        !matches!(self, Material::WSe2)
    }

    /// The chalcogen column holding `present` host atoms (1 or 2) of which `se` are Se
    /// substitutes (sulfides only).
    pub fn chalcogen_column(self, present: usize, se: usize) -> Option<ColumnKind> {
        let kind = if self.is_sulfide() {
            match (present, se.min(present)) {
                (2, 0) => ColumnKind::S2,
                (2, 1) => ColumnKind::SSe,
                (2, _) => ColumnKind::Se2,
                (1, 0) => ColumnKind::S,
                (1, _) => ColumnKind::Se,
                _ => return None,
            }
        } else {
            match present {
                2 => ColumnKind::Se2,
                1 => ColumnKind::Se,
                _ => return None,
            }
        };
        Some(kind)
    }
}

/// A slowly evolving layer of amorphous contamination: a thickness field in [0, 1] made of
/// blobs 1–3 nm across that drift, grow and shrink from frame to frame.
pub struct Contamination {
    blobs: Vec<Blob>,
}

struct Blob {
    x: f64,
    y: f64,
    sigma: f64,
    weight: f64,
    /// Per-frame drift (px) and relative growth.
    vx: f64,
    vy: f64,
    growth: f64,
}

impl Contamination {
    /// Blobs covering a `w` × `h` frame of pixels of `pixel_size_nm`.
    pub fn new(w: usize, h: usize, pixel_size_nm: f64, rng: &mut ChaCha8Rng) -> Self {
        let nm = 1.0 / pixel_size_nm;
        let area_nm2 = w as f64 * h as f64 / (nm * nm);
        // About one blob per 3 nm², at least a few.
        let n = ((area_nm2 / 3.0).ceil() as usize).clamp(4, 4000);
        let blobs = (0..n)
            .map(|_| Blob {
                x: rng.random_range(-0.1..1.1) * w as f64,
                y: rng.random_range(-0.1..1.1) * h as f64,
                sigma: rng.random_range(0.4..1.2) * nm,
                weight: rng.random_range(0.3..1.0),
                vx: rng.random_range(-0.05..0.05) * nm,
                vy: rng.random_range(-0.05..0.05) * nm,
                growth: rng.random_range(-0.05..0.05),
            })
            .collect();
        Contamination { blobs }
    }

    /// Advance one frame.
    pub fn evolve(&mut self) {
        for b in &mut self.blobs {
            b.x += b.vx;
            b.y += b.vy;
            b.weight = (b.weight * (1.0 + b.growth)).clamp(0.05, 1.5);
        }
    }

    /// The thickness field of the current frame, normalised to [0, 1].
    pub fn field(&self, w: usize, h: usize) -> Vec<f64> {
        let mut t = vec![0.0f64; w * h];
        for b in &self.blobs {
            let r = 3.0 * b.sigma;
            let inv = 1.0 / (2.0 * b.sigma * b.sigma);
            let y0 = (b.y - r).floor().max(0.0) as usize;
            let y1 = ((b.y + r).ceil().max(0.0) as usize).min(h);
            let x0 = (b.x - r).floor().max(0.0) as usize;
            let x1 = ((b.x + r).ceil().max(0.0) as usize).min(w);
            for y in y0..y1 {
                let dy = y as f64 - b.y;
                for x in x0..x1 {
                    let dx = x as f64 - b.x;
                    t[y * w + x] += b.weight * (-(dx * dx + dy * dy) * inv).exp();
                }
            }
        }
        let (lo, hi) = t
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        t.iter_mut().for_each(|v| *v = (*v - lo) / span);
        t
    }
}

/// Gain of each scan line: 1 + a slow wander plus independent line-to-line flicker of standard
/// deviation `sigma` (a Box–Muller normal per line).
pub fn line_gains(h: usize, sigma: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let phase = rng.random_range(0.0..2.0 * PI);
    (0..h)
        .map(|y| {
            let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos();
            let wander = 0.5 * sigma * (2.0 * PI * y as f64 / h as f64 * 3.0 + phase).sin();
            (1.0 + wander + sigma * normal).max(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn contamination_spans_the_unit_range_and_moves() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut c = Contamination::new(128, 96, 0.0125, &mut rng);
        let a = c.field(128, 96);
        let (lo, hi) = a
            .iter()
            .fold((1.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(lo.abs() < 1e-12 && (hi - 1.0).abs() < 1e-12);
        c.evolve();
        let b = c.field(128, 96);
        let changed = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| (*x - *y).abs() > 0.01)
            .count();
        assert!(changed > a.len() / 10, "the layer evolves");
    }

    #[test]
    fn materials_build_their_columns() {
        assert_eq!(Material::WS2.chalcogen_column(2, 0), Some(ColumnKind::S2));
        assert_eq!(Material::WS2.chalcogen_column(2, 1), Some(ColumnKind::SSe));
        assert_eq!(Material::WS2.chalcogen_column(1, 1), Some(ColumnKind::Se));
        assert_eq!(Material::WSe2.chalcogen_column(2, 0), Some(ColumnKind::Se2));
        assert_eq!(Material::MoS2.chalcogen_column(0, 0), None);
        assert_eq!(Material::MoS2.metals(), (ColumnKind::Mo, ColumnKind::W));
        assert_eq!(Material::parse("mos2"), Some(Material::MoS2));
    }

    #[test]
    fn line_gains_flicker_around_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = line_gains(4000, 0.02, &mut rng);
        let m = g.iter().sum::<f64>() / g.len() as f64;
        let s = (g.iter().map(|v| (v - m).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        assert!(
            (m - 1.0).abs() < 0.005 && (0.015..0.03).contains(&s),
            "{m} {s}"
        );
    }
}
