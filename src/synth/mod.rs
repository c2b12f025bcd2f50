//! Synthetic HAADF-STEM movies of a Mo-doped WS2 monolayer with known defects.
//!
//! Physics (simplified but honest): a projected 2H-WS2 monolayer is a honeycomb of metal columns
//! (one W or Mo atom) and S2 columns (two S atoms). Column intensity is ∝ Z^1.7 summed over the
//! atoms in the column (W 74, Mo 42, S 16), blurred by a Gaussian probe. Defects: Mo substituting
//! W (static), single and double S vacancies; over time the beam creates S vacancies and
//! vacancies hop to neighbouring S2 columns. The detector counts electrons (Poisson shot noise at a
//! set dose) plus Gaussian read noise; scan lines are jittered sideways, the field of view drifts
//! slowly between frames and a weak smooth background varies across the field.
//!
//! Everything is deterministic from the seed. The generator returns the movie and the truth:
//! every defect's frame, position (pixels, x = column, y = row), type and identity.

use crate::error::{Error, Result};
use crate::movie::{Calibration, Movie};
use crate::raster::Raster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::f64::consts::PI;

/// Atomic numbers and the HAADF exponent.
const Z_W: f64 = 74.0;
const Z_MO: f64 = 42.0;
const Z_S: f64 = 16.0;
const Z_EXPONENT: f64 = 1.7;
/// In-plane lattice constant of WS2 in nm (3.18 Å).
const WS2_LATTICE_NM: f64 = 3.18 / 10.0;

/// Kinds of defects the generator places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DefectType {
    /// Mo atom on a W site.
    #[serde(rename = "Mo_W")]
    MoW,
    /// One S atom missing from an S2 column.
    #[serde(rename = "V_S1")]
    VS1,
    /// Both S atoms missing from an S2 column.
    #[serde(rename = "V_S2")]
    VS2,
}

impl DefectType {
    pub const ALL: [DefectType; 3] = [DefectType::MoW, DefectType::VS1, DefectType::VS2];

    pub fn name(self) -> &'static str {
        match self {
            DefectType::MoW => "Mo_W",
            DefectType::VS1 => "V_S1",
            DefectType::VS2 => "V_S2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// One true defect in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TruthDefect {
    pub frame: usize,
    pub x: f32,
    pub y: f32,
    pub kind: DefectType,
    /// Identity that persists while the defect exists (vacancies keep it when they hop).
    pub id: u32,
}

/// The truth of a registered movie: positions moved with the frames, defects that fell outside
/// the (cropped) `width` × `height` frames dropped.
pub fn register_truth(
    truth: &[TruthDefect],
    r: &crate::movie::register::Registration,
    width: usize,
    height: usize,
) -> Vec<TruthDefect> {
    truth
        .iter()
        .filter_map(|d| {
            let (x, y) = r.map(d.frame, d.x as f64, d.y as f64);
            let (x, y) = (x as f32, y as f32);
            ((0.0..width as f32).contains(&x) && (0.0..height as f32).contains(&y))
                .then_some(TruthDefect { x, y, ..*d })
        })
        .collect()
}

/// Parameters of a synthetic movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    pub pixel_size_nm: f64,
    pub frame_interval_s: f64,
    /// Lattice constant of WS2 in nm.
    pub lattice_a_nm: f64,
    /// In-plane rotation of the lattice in degrees; `None` draws one from the seed.
    pub rotation_deg: Option<f64>,
    /// Probe full width at half maximum in nm.
    pub probe_fwhm_nm: f64,
    /// Fraction of metal sites holding Mo.
    pub mo_fraction: f64,
    /// Fraction of S2 columns missing one S in frame 0.
    pub vs1_fraction: f64,
    /// Fraction of S2 columns missing both S in frame 0.
    pub vs2_fraction: f64,
    /// Probability per frame that the beam knocks one S out of a given S2 column.
    pub creation_rate: f64,
    /// Probability per frame that a vacancy hops to a neighbouring S2 column.
    pub hop_probability: f64,
    /// Mean electron counts at the centre of a W column.
    pub dose: f64,
    /// Background counts per pixel, as a fraction of the W peak.
    pub background: f64,
    /// Standard deviation of the Gaussian read noise in counts.
    pub read_noise: f64,
    /// Standard deviation of the sideways shift of each scan line in pixels.
    pub scan_jitter_px: f64,
    /// Standard deviation of the frame-to-frame drift step in pixels.
    pub drift_px: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            frames: 30,
            width: 512,
            height: 512,
            seed: 1,
            pixel_size_nm: 0.0125,
            frame_interval_s: 1.0,
            lattice_a_nm: WS2_LATTICE_NM,
            rotation_deg: None,
            probe_fwhm_nm: 0.08,
            mo_fraction: 0.04,
            vs1_fraction: 0.03,
            vs2_fraction: 0.008,
            creation_rate: 0.0005,
            hop_probability: 0.1,
            dose: 200.0,
            background: 0.05,
            read_noise: 1.0,
            scan_jitter_px: 0.3,
            drift_px: 0.5,
        }
    }
}

impl SynthConfig {
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("pixel size", self.pixel_size_nm),
            ("frame interval", self.frame_interval_s),
            ("lattice constant", self.lattice_a_nm),
            ("probe FWHM", self.probe_fwhm_nm),
            ("dose", self.dose),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(format!(
                    "synth: {name} must be positive, got {v}"
                )));
            }
        }
        let probabilities = [
            ("Mo fraction", self.mo_fraction),
            ("V_S1 fraction", self.vs1_fraction),
            ("V_S2 fraction", self.vs2_fraction),
            ("creation rate", self.creation_rate),
            ("hop probability", self.hop_probability),
        ];
        for (name, v) in probabilities {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(format!(
                    "synth: {name} must be in [0, 1], got {v}"
                )));
            }
        }
        if self.vs1_fraction + self.vs2_fraction > 1.0 {
            return Err(Error::invalid("synth: V_S1 + V_S2 fractions exceed 1"));
        }
        let nonneg = [
            ("background", self.background),
            ("read noise", self.read_noise),
            ("scan jitter", self.scan_jitter_px),
            ("drift", self.drift_px),
        ];
        for (name, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(format!(
                    "synth: {name} must be ≥ 0, got {v}"
                )));
            }
        }
        if self.frames == 0 || self.width < 16 || self.height < 16 {
            return Err(Error::invalid(format!(
                "synth: need ≥ 1 frame of ≥ 16x16 px, got {} frames of {}x{}",
                self.frames, self.width, self.height
            )));
        }
        if self
            .width
            .saturating_mul(self.height)
            .saturating_mul(self.frames)
            > 1 << 31
        {
            return Err(Error::invalid("synth: movie larger than 2^31 pixels"));
        }
        Ok(())
    }

    /// Probe standard deviation in pixels.
    pub fn probe_sigma_px(&self) -> f64 {
        self.probe_fwhm_nm / self.pixel_size_nm / (8.0 * 2f64.ln()).sqrt()
    }

    /// Lattice constant in pixels.
    pub fn lattice_a_px(&self) -> f64 {
        self.lattice_a_nm / self.pixel_size_nm
    }

    /// Radius of the disks drawn in truth masks: 0.3 × the metal–S2 column distance.
    pub fn mask_radius_px(&self) -> f32 {
        (0.3 * self.lattice_a_px() / 3f64.sqrt()) as f32
    }
}

/// A generated movie with its truth.
#[derive(Debug, Clone)]
pub struct SynthMovie {
    pub movie: Movie,
    pub truth: Vec<TruthDefect>,
    pub config: SynthConfig,
    /// The lattice rotation actually used, in degrees.
    pub rotation_deg: f64,
    /// Field-of-view offset of each frame in pixels (the drift).
    pub drift: Vec<(f64, f64)>,
}

impl SynthMovie {
    /// Truth defects of one frame.
    pub fn truth_of(&self, frame: usize) -> Vec<TruthDefect> {
        self.truth
            .iter()
            .filter(|d| d.frame == frame)
            .copied()
            .collect()
    }

    /// Binary mask (disks of [`SynthConfig::mask_radius_px`]) around the true defects of a frame.
    pub fn truth_mask(&self, frame: usize) -> Vec<bool> {
        let pts: Vec<(f32, f32)> = self.truth_of(frame).iter().map(|d| (d.x, d.y)).collect();
        disk_mask(
            self.movie.width(),
            self.movie.height(),
            &pts,
            self.config.mask_radius_px(),
        )
    }

    /// `truth.csv`: `frame,x,y,type,id`.
    pub fn truth_csv(&self) -> String {
        let mut s = String::from("frame,x,y,type,id\n");
        for d in &self.truth {
            s.push_str(&format!(
                "{},{:.3},{:.3},{},{}\n",
                d.frame,
                d.x,
                d.y,
                d.kind.name(),
                d.id
            ));
        }
        s
    }
}

/// Pixels within `radius` of any of `points`.
pub fn disk_mask(width: usize, height: usize, points: &[(f32, f32)], radius: f32) -> Vec<bool> {
    let mut mask = vec![false; width * height];
    let r = radius.max(0.5);
    for &(px, py) in points {
        let y0 = (py - r).floor().max(0.0) as usize;
        let y1 = ((py + r).ceil() as usize).min(height.saturating_sub(1));
        let x0 = (px - r).floor().max(0.0) as usize;
        let x1 = ((px + r).ceil() as usize).min(width.saturating_sub(1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (x as f32 - px, y as f32 - py);
                if dx * dx + dy * dy <= r * r {
                    mask[y * width + x] = true;
                }
            }
        }
    }
    mask
}

/// Parse a `truth.csv` written by [`SynthMovie::truth_csv`].
pub fn parse_truth_csv(text: &str) -> Result<Vec<TruthDefect>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = || Error::invalid(format!("truth.csv line {}: cannot parse '{line}'", i + 1));
        if f.len() < 4 {
            return Err(bad());
        }
        out.push(TruthDefect {
            frame: f[0].trim().parse().map_err(|_| bad())?,
            x: f[1].trim().parse().map_err(|_| bad())?,
            y: f[2].trim().parse().map_err(|_| bad())?,
            kind: DefectType::parse(f[3].trim()).ok_or_else(bad)?,
            id: f.get(4).and_then(|s| s.trim().parse().ok()).unwrap_or(0),
        });
    }
    Ok(out)
}

struct Lattice {
    /// Metal site positions (specimen frame, px) and whether it holds Mo (with the defect id).
    metal: Vec<(f64, f64, Option<u32>)>,
    /// S2 column positions.
    sulfur: Vec<(f64, f64)>,
    /// The six nearest S2 neighbours of each S2 column.
    neighbours: Vec<Vec<usize>>,
}

fn build_lattice(cfg: &SynthConfig, rotation: f64, margin: f64) -> Lattice {
    let a = cfg.lattice_a_px();
    let (c, s) = (rotation.cos(), rotation.sin());
    let a1 = (a * c, a * s);
    let a2 = (
        a * (0.5 * c - 0.75f64.sqrt() * s),
        a * (0.5 * s + 0.75f64.sqrt() * c),
    );
    let s_off = ((a1.0 + a2.0) / 3.0, (a1.1 + a2.1) / 3.0);
    let (w, h) = (cfg.width as f64, cfg.height as f64);
    let n = ((w.max(h) + 2.0 * margin) / a * 2.0).ceil() as i64 + 2;
    let (cx, cy) = (w / 2.0, h / 2.0);
    let inside = |x: f64, y: f64| x > -margin && y > -margin && x < w + margin && y < h + margin;
    let mut metal = Vec::new();
    let mut sulfur = Vec::new();
    let mut s_index: HashMap<(i64, i64), usize> = HashMap::new();
    for i in -n..=n {
        for j in -n..=n {
            let x = cx + i as f64 * a1.0 + j as f64 * a2.0;
            let y = cy + i as f64 * a1.1 + j as f64 * a2.1;
            if inside(x, y) {
                metal.push((x, y, None));
            }
            let (sx, sy) = (x + s_off.0, y + s_off.1);
            if inside(sx, sy) {
                s_index.insert((i, j), sulfur.len());
                sulfur.push((sx, sy));
            }
        }
    }
    let mut neighbours = vec![Vec::new(); sulfur.len()];
    for (&(i, j), &k) in &s_index {
        for (di, dj) in [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)] {
            if let Some(&m) = s_index.get(&(i + di, j + dj)) {
                neighbours[k].push(m);
            }
        }
        neighbours[k].sort_unstable();
    }
    Lattice {
        metal,
        sulfur,
        neighbours,
    }
}

/// The built-in demo movie: 10 frames of 256 × 256 px, seed 1 (small enough to train on in a few
/// minutes on a laptop CPU).
pub fn demo_config() -> SynthConfig {
    SynthConfig {
        frames: 10,
        width: 256,
        height: 256,
        seed: 1,
        ..SynthConfig::default()
    }
}

/// Generate a movie and its truth from `cfg`.
pub fn generate(cfg: &SynthConfig) -> Result<SynthMovie> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let rotation_deg = cfg
        .rotation_deg
        .unwrap_or_else(|| rng.random_range(0.0..60.0));
    let sigma = cfg.probe_sigma_px();
    let drift_step = Normal::new(0.0, cfg.drift_px.max(1e-12))
        .map_err(|e| Error::invalid(format!("synth: drift: {e}")))?;
    let mut drift = vec![(0.0, 0.0)];
    for _ in 1..cfg.frames {
        let &(dx, dy) = drift.last().unwrap_or(&(0.0, 0.0));
        let (sx, sy) = if cfg.drift_px > 0.0 {
            (drift_step.sample(&mut rng), drift_step.sample(&mut rng))
        } else {
            (0.0, 0.0)
        };
        drift.push((dx + sx, dy + sy));
    }
    let max_drift = drift
        .iter()
        .map(|(x, y)| x.abs().max(y.abs()))
        .fold(0.0, f64::max);
    let margin = 5.0 * sigma + max_drift + 2.0;
    let mut lat = build_lattice(cfg, rotation_deg.to_radians(), margin);

    let mut next_id: u32 = 0;
    for site in lat.metal.iter_mut() {
        if rng.random_bool(cfg.mo_fraction) {
            site.2 = Some(next_id);
            next_id += 1;
        }
    }
    // Vacancy ids on each S2 column (0, 1 or 2 entries).
    let mut vacancies: Vec<Vec<u32>> = vec![Vec::new(); lat.sulfur.len()];
    for v in vacancies.iter_mut() {
        let u: f64 = rng.random();
        let missing = if u < cfg.vs2_fraction {
            2
        } else if u < cfg.vs2_fraction + cfg.vs1_fraction {
            1
        } else {
            0
        };
        for _ in 0..missing {
            v.push(next_id);
            next_id += 1;
        }
    }

    let i_w = Z_W.powf(Z_EXPONENT);
    let i_mo = Z_MO.powf(Z_EXPONENT);
    let i_s = Z_S.powf(Z_EXPONENT);
    let (w, h) = (cfg.width, cfg.height);
    let phase: (f64, f64) = (
        rng.random_range(0.0..2.0 * PI),
        rng.random_range(0.0..2.0 * PI),
    );
    let jitter = Normal::new(0.0, cfg.scan_jitter_px.max(1e-12))
        .map_err(|e| Error::invalid(format!("synth: jitter: {e}")))?;
    let read = Normal::new(0.0, cfg.read_noise.max(1e-12))
        .map_err(|e| Error::invalid(format!("synth: read noise: {e}")))?;

    let mut frames = Vec::with_capacity(cfg.frames);
    let mut truth = Vec::new();
    for (f, &(dx, dy)) in drift.iter().enumerate() {
        if f > 0 {
            evolve(cfg, &lat, &mut vacancies, &mut next_id, &mut rng);
        }
        // Clean image in counts.
        let mut clean = vec![0.0f64; w * h];
        for y in 0..h {
            for x in 0..w {
                let bx = (2.0 * PI * x as f64 / (1.7 * w as f64) + phase.0).sin();
                let by = (2.0 * PI * y as f64 / (1.3 * h as f64) + phase.1).cos();
                clean[y * w + x] = cfg.dose * cfg.background * (1.0 + 0.3 * bx * by);
            }
        }
        let row_shift: Vec<f64> = (0..h)
            .map(|_| {
                if cfg.scan_jitter_px > 0.0 {
                    jitter.sample(&mut rng)
                } else {
                    0.0
                }
            })
            .collect();
        let mut columns: Vec<(f64, f64, f64)> =
            Vec::with_capacity(lat.metal.len() + lat.sulfur.len());
        for &(x, y, mo) in &lat.metal {
            columns.push((x + dx, y + dy, if mo.is_some() { i_mo } else { i_w }));
        }
        for (k, &(x, y)) in lat.sulfur.iter().enumerate() {
            let present = 2 - vacancies[k].len();
            if present > 0 {
                columns.push((x + dx, y + dy, present as f64 * i_s));
            }
        }
        render_columns(
            &mut clean,
            w,
            h,
            &columns,
            sigma,
            cfg.dose / i_w,
            &row_shift,
        );

        // Detector: Poisson counts plus read noise.
        let mut data = Vec::with_capacity(w * h);
        for &lam in &clean {
            let counts = if lam > 0.0 {
                Poisson::new(lam).map(|p| p.sample(&mut rng)).unwrap_or(lam)
            } else {
                0.0
            };
            let noise = if cfg.read_noise > 0.0 {
                read.sample(&mut rng)
            } else {
                0.0
            };
            data.push((counts + noise) as f32);
        }
        frames.push(Raster::from_vec(w, h, data)?);

        let in_frame =
            |x: f64, y: f64| x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64;
        for &(x, y, mo) in &lat.metal {
            if let Some(id) = mo
                && in_frame(x + dx, y + dy)
            {
                truth.push(TruthDefect {
                    frame: f,
                    x: (x + dx) as f32,
                    y: (y + dy) as f32,
                    kind: DefectType::MoW,
                    id,
                });
            }
        }
        for (k, &(x, y)) in lat.sulfur.iter().enumerate() {
            let v = &vacancies[k];
            if v.is_empty() || !in_frame(x + dx, y + dy) {
                continue;
            }
            truth.push(TruthDefect {
                frame: f,
                x: (x + dx) as f32,
                y: (y + dy) as f32,
                kind: if v.len() == 1 {
                    DefectType::VS1
                } else {
                    DefectType::VS2
                },
                id: v.iter().copied().min().unwrap_or(0),
            });
        }
    }
    Ok(SynthMovie {
        movie: Movie {
            frames,
            calibration: Calibration {
                pixel_size_nm: Some(cfg.pixel_size_nm),
                frame_interval_s: Some(cfg.frame_interval_s),
            },
            acquisition: Default::default(),
            source: "synthetic".into(),
            format: "synthetic WS2".into(),
        },
        truth,
        config: cfg.clone(),
        rotation_deg,
        drift,
    })
}

/// One time step of the defect dynamics: hops, then beam-created vacancies.
fn evolve(
    cfg: &SynthConfig,
    lat: &Lattice,
    vacancies: &mut [Vec<u32>],
    next_id: &mut u32,
    rng: &mut ChaCha8Rng,
) {
    // Each vacancy present at the start of the step may hop once.
    let mut movers: Vec<(usize, u32)> = Vec::new();
    for (k, v) in vacancies.iter().enumerate() {
        for &id in v {
            movers.push((k, id));
        }
    }
    for (k, id) in movers {
        if !rng.random_bool(cfg.hop_probability) {
            continue;
        }
        let nb = &lat.neighbours[k];
        if nb.is_empty() {
            continue;
        }
        let target = nb[rng.random_range(0..nb.len())];
        if vacancies[target].len() < 2
            && let Some(pos) = vacancies[k].iter().position(|&v| v == id)
        {
            vacancies[k].swap_remove(pos);
            vacancies[target].push(id);
        }
    }
    for v in vacancies.iter_mut() {
        if v.len() < 2 && rng.random_bool(cfg.creation_rate) {
            v.push(*next_id);
            *next_id += 1;
        }
    }
}

/// Add Gaussian columns `(x, y, intensity)` to `img` (counts = intensity × `scale` at the peak).
/// Each scan line `y` sees the columns displaced sideways by `row_shift[y]`.
fn render_columns(
    img: &mut [f64],
    w: usize,
    h: usize,
    columns: &[(f64, f64, f64)],
    sigma: f64,
    scale: f64,
    row_shift: &[f64],
) {
    let r = (4.0 * sigma).ceil() + 1.0;
    let inv = 1.0 / (2.0 * sigma * sigma);
    for &(cx, cy, intensity) in columns {
        let amp = intensity * scale;
        let y0 = (cy - r).floor().max(0.0) as usize;
        let y1 = ((cy + r).ceil().max(0.0) as usize).min(h);
        for y in y0..y1 {
            let ddy = y as f64 - cy;
            let sx = cx + row_shift[y];
            let x0 = (sx - r).floor().max(0.0) as usize;
            let x1 = ((sx + r).ceil().max(0.0) as usize).min(w);
            for x in x0..x1 {
                let ddx = x as f64 - sx;
                img[y * w + x] += amp * (-(ddx * ddx + ddy * ddy) * inv).exp();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig {
            frames: 4,
            width: 128,
            height: 96,
            seed: 7,
            ..SynthConfig::default()
        }
    }

    #[test]
    fn deterministic_from_seed() {
        let a = generate(&small()).expect("gen");
        let b = generate(&small()).expect("gen");
        assert_eq!(a.movie.frames, b.movie.frames);
        assert_eq!(a.truth, b.truth);
        let c = generate(&SynthConfig { seed: 8, ..small() }).expect("gen");
        assert_ne!(a.movie.frames[0], c.movie.frames[0]);
    }

    #[test]
    fn mo_sites_are_darker_than_w_sites() {
        let cfg = SynthConfig {
            frames: 1,
            width: 256,
            height: 256,
            mo_fraction: 0.1,
            scan_jitter_px: 0.0,
            ..SynthConfig::default()
        };
        let s = generate(&cfg).expect("gen");
        let f = &s.movie.frames[0].gaussian_blur(1.5);
        let mo: Vec<f32> = s
            .truth_of(0)
            .iter()
            .filter(|d| {
                d.kind == DefectType::MoW && d.x > 3.0 && d.y > 3.0 && d.x < 252.0 && d.y < 252.0
            })
            .map(|d| f.get(d.x.round() as usize, d.y.round() as usize))
            .collect();
        assert!(!mo.is_empty());
        let (_, hi) = f.min_max();
        // A Mo column peak is ≈ (42/74)^1.7 ≈ 0.38 of a W peak.
        for v in mo {
            assert!(v < 0.6 * hi, "Mo column {v} vs brightest {hi}");
        }
    }

    #[test]
    fn vacancies_hop_and_keep_identity() {
        let cfg = SynthConfig {
            frames: 10,
            width: 256,
            height: 256,
            vs1_fraction: 0.1,
            hop_probability: 1.0,
            creation_rate: 0.0,
            drift_px: 0.0,
            ..small()
        };
        let s = generate(&cfg).expect("gen");
        let a = cfg.lattice_a_px() as f32;
        let mut moved = 0;
        for d in s.truth_of(0).iter().filter(|d| d.kind == DefectType::VS1) {
            if let Some(n) = s.truth_of(1).iter().find(|n| n.id == d.id) {
                let dist = ((n.x - d.x).powi(2) + (n.y - d.y).powi(2)).sqrt();
                assert!(
                    dist < 1e-3 || (dist - a).abs() < 0.01 * a,
                    "hop of {dist} px"
                );
                if dist > 1.0 {
                    moved += 1;
                }
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn truth_csv_round_trips() {
        let s = generate(&small()).expect("gen");
        let parsed = parse_truth_csv(&s.truth_csv()).expect("parse");
        assert_eq!(parsed.len(), s.truth.len());
        for (a, b) in parsed.iter().zip(&s.truth) {
            assert_eq!((a.frame, a.kind, a.id), (b.frame, b.kind, b.id));
            assert!((a.x - b.x).abs() < 1e-3 && (a.y - b.y).abs() < 1e-3);
        }
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert!(
            generate(&SynthConfig {
                dose: 0.0,
                ..small()
            })
            .is_err()
        );
        assert!(
            generate(&SynthConfig {
                mo_fraction: 2.0,
                ..small()
            })
            .is_err()
        );
        assert!(
            generate(&SynthConfig {
                width: 3,
                ..small()
            })
            .is_err()
        );
        assert!(
            generate(&SynthConfig {
                frames: 0,
                ..small()
            })
            .is_err()
        );
    }
}
