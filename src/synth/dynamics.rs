//! The specimen's state and how the beam changes it from frame to frame.

use super::SynthConfig;
use super::columns::ColumnKind;
use super::{DefectType, TruthDefect};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Column positions of the specimen (specimen frame, px) and who neighbours whom.
pub(super) struct Lattice {
    pub metal: Vec<(f64, f64)>,
    pub chalcogen: Vec<(f64, f64)>,
    /// The six nearest chalcogen neighbours of each chalcogen column.
    pub neighbours: Vec<Vec<usize>>,
}

impl Lattice {
    /// Every column within `margin` px of a `cfg.width` × `cfg.height` frame, the lattice turned
    /// by `rotation` radians about the frame's centre.
    pub fn new(cfg: &SynthConfig, rotation: f64, margin: f64) -> Lattice {
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
        let inside =
            |x: f64, y: f64| x > -margin && y > -margin && x < w + margin && y < h + margin;
        let mut metal = Vec::new();
        let mut chalcogen = Vec::new();
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        for i in -n..=n {
            for j in -n..=n {
                let x = cx + i as f64 * a1.0 + j as f64 * a2.0;
                let y = cy + i as f64 * a1.1 + j as f64 * a2.1;
                if inside(x, y) {
                    metal.push((x, y));
                }
                let (sx, sy) = (x + s_off.0, y + s_off.1);
                if inside(sx, sy) {
                    index.insert((i, j), chalcogen.len());
                    chalcogen.push((sx, sy));
                }
            }
        }
        let mut neighbours = vec![Vec::new(); chalcogen.len()];
        for (&(i, j), &k) in &index {
            for (di, dj) in [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)] {
                if let Some(&m) = index.get(&(i + di, j + dj)) {
                    neighbours[k].push(m);
                }
            }
            neighbours[k].sort_unstable();
        }
        Lattice {
            metal,
            chalcogen,
            neighbours,
        }
    }
}

/// What stands on a metal site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum MetalSite {
    Host,
    Dopant(u32),
    Vacant(u32),
}

/// Everything that changes: the defects with their identities.
pub(super) struct State {
    pub metal: Vec<MetalSite>,
    /// Vacancy ids on each chalcogen column (0, 1 or 2 entries).
    pub vacancies: Vec<Vec<u32>>,
    /// Se atoms on each chalcogen column (sulfides) and the substitution's id.
    pub selenium: Vec<(u8, u32)>,
    /// Carbon adatoms: position (specimen frame, px) and id.
    pub adatoms: Vec<(f64, f64, u32)>,
    /// Pores: centre (specimen frame, px), radius (px) and id. No column stands inside one.
    pub pores: Vec<(f64, f64, f64, u32)>,
    next_id: u32,
}

impl State {
    /// Frame 0's defects, drawn at the configured fractions.
    pub fn initial(cfg: &SynthConfig, lat: &Lattice, rng: &mut ChaCha8Rng) -> State {
        let mut next_id = 0u32;
        let mut take = || {
            next_id += 1;
            next_id - 1
        };
        let metal = lat
            .metal
            .iter()
            .map(|_| {
                let u: f64 = rng.random();
                if u < cfg.dopant_fraction {
                    MetalSite::Dopant(take())
                } else if u < cfg.dopant_fraction + cfg.metal_vacancy_fraction {
                    MetalSite::Vacant(take())
                } else {
                    MetalSite::Host
                }
            })
            .collect();
        let mut vacancies = vec![Vec::new(); lat.chalcogen.len()];
        let mut selenium = vec![(0u8, 0u32); lat.chalcogen.len()];
        for (v, se) in vacancies.iter_mut().zip(selenium.iter_mut()) {
            let u: f64 = rng.random();
            let missing = if u < cfg.vs2_fraction {
                2
            } else if u < cfg.vs2_fraction + cfg.vs1_fraction {
                1
            } else {
                0
            };
            for _ in 0..missing {
                v.push(take());
            }
            if missing == 0 && cfg.material.is_sulfide() && cfg.se_fraction > 0.0 {
                let n = (0..2).filter(|_| rng.random_bool(cfg.se_fraction)).count() as u8;
                if n > 0 {
                    *se = (n, take());
                }
            }
        }
        let area_px = (cfg.width * cfg.height) as f64;
        let area_nm2 = area_px * cfg.pixel_size_nm * cfg.pixel_size_nm;
        let n_adatoms = (cfg.adatoms_per_nm2 * area_nm2).round() as usize;
        let adatoms = (0..n_adatoms)
            .map(|_| {
                (
                    rng.random_range(0.0..cfg.width as f64),
                    rng.random_range(0.0..cfg.height as f64),
                    take(),
                )
            })
            .collect();
        // Pores well inside the frame, where their growth stays in view for a while.
        let r0 = cfg.pore_radius_nm / cfg.pixel_size_nm;
        let pores = (0..cfg.pores)
            .map(|_| {
                let (w, h) = (cfg.width as f64, cfg.height as f64);
                let x = rng.random_range(0.25 * w..0.75 * w);
                let y = rng.random_range(0.25 * h..0.75 * h);
                (x, y, r0, take())
            })
            .collect();
        State {
            metal,
            vacancies,
            selenium,
            adatoms,
            pores,
            next_id,
        }
    }

    /// One time step: vacancies hop, the beam knocks chalcogen atoms out, adatoms wander.
    /// Se substitutes and metal defects stay.
    pub fn evolve(&mut self, cfg: &SynthConfig, lat: &Lattice, rng: &mut ChaCha8Rng) {
        // Each vacancy present at the start of the step may hop once, onto a column that has
        // an atom to give and no Se.
        let movers: Vec<(usize, u32)> = self
            .vacancies
            .iter()
            .enumerate()
            .flat_map(|(k, v)| v.iter().map(move |&id| (k, id)))
            .collect();
        for (k, id) in movers {
            if !rng.random_bool(cfg.hop_probability) {
                continue;
            }
            let nb = &lat.neighbours[k];
            if nb.is_empty() {
                continue;
            }
            let target = nb[rng.random_range(0..nb.len())];
            if self.vacancies[target].len() < 2
                && self.selenium[target].0 == 0
                && let Some(pos) = self.vacancies[k].iter().position(|&v| v == id)
            {
                self.vacancies[k].swap_remove(pos);
                self.vacancies[target].push(id);
            }
        }
        for (v, se) in self.vacancies.iter_mut().zip(&self.selenium) {
            if v.len() < 2 && se.0 == 0 && rng.random_bool(cfg.creation_rate) {
                v.push(self.next_id);
                self.next_id += 1;
            }
        }
        let grow = cfg.pore_growth_nm_per_frame / cfg.pixel_size_nm;
        for p in &mut self.pores {
            p.2 += grow;
        }
        // Adatoms: a random step of about a tenth of a nanometre per frame.
        let step = 0.1 / cfg.pixel_size_nm;
        for a in &mut self.adatoms {
            a.0 = (a.0 + rng.random_range(-step..step)).clamp(0.0, cfg.width as f64 - 1.0);
            a.1 = (a.1 + rng.random_range(-step..step)).clamp(0.0, cfg.height as f64 - 1.0);
        }
    }

    /// Whether (x, y) (specimen frame, px) lies inside a pore.
    pub fn in_pore(&self, x: f64, y: f64) -> bool {
        self.pores.iter().any(|p| (x - p.0).hypot(y - p.1) <= p.2)
    }

    /// The columns to draw: position (specimen frame, px) and kind.
    pub fn columns(&self, cfg: &SynthConfig, lat: &Lattice) -> Vec<(f64, f64, ColumnKind)> {
        let (host, dopant) = cfg.material.metals();
        let mut out = Vec::with_capacity(lat.metal.len() + lat.chalcogen.len());
        for (&(x, y), site) in lat.metal.iter().zip(&self.metal) {
            if self.in_pore(x, y) {
                continue;
            }
            match site {
                MetalSite::Host => out.push((x, y, host)),
                MetalSite::Dopant(_) => out.push((x, y, dopant)),
                MetalSite::Vacant(_) => {}
            }
        }
        for (k, &(x, y)) in lat.chalcogen.iter().enumerate() {
            if self.in_pore(x, y) {
                continue;
            }
            let present = 2 - self.vacancies[k].len();
            if let Some(kind) = cfg
                .material
                .chalcogen_column(present, self.selenium[k].0 as usize)
            {
                out.push((x, y, kind));
            }
        }
        out.extend(self.adatoms.iter().map(|&(x, y, _)| (x, y, ColumnKind::C)));
        out
    }

    /// The defects of this state, seen in `frame` shifted by `(dx, dy)`, those inside `w` × `h`.
    pub fn truth(
        &self,
        cfg: &SynthConfig,
        lat: &Lattice,
        frame: usize,
        (dx, dy): (f64, f64),
    ) -> Vec<TruthDefect> {
        let (w, h) = (cfg.width, cfg.height);
        let mut out = Vec::new();
        let mut put = |x: f64, y: f64, kind: DefectType, id: u32| {
            let (x, y) = (x + dx, y + dy);
            if x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64 {
                out.push(TruthDefect {
                    frame,
                    x: x as f32,
                    y: y as f32,
                    kind,
                    id,
                });
            }
        };
        let dopant_kind = if cfg.material.metals().1 == ColumnKind::Mo {
            DefectType::MoW
        } else {
            DefectType::WMo
        };
        for (&(x, y), site) in lat.metal.iter().zip(&self.metal) {
            if self.in_pore(x, y) {
                continue;
            }
            match *site {
                MetalSite::Dopant(id) => put(x, y, dopant_kind, id),
                MetalSite::Vacant(id) => put(x, y, DefectType::VM, id),
                MetalSite::Host => {}
            }
        }
        for (k, &(x, y)) in lat.chalcogen.iter().enumerate() {
            if self.in_pore(x, y) {
                continue;
            }
            let v = &self.vacancies[k];
            let (se, se_id) = self.selenium[k];
            match (v.len(), se) {
                (1, _) => put(x, y, DefectType::VS1, v[0]),
                (2, _) => put(x, y, DefectType::VS2, v.iter().copied().min().unwrap_or(0)),
                (_, 1) => put(x, y, DefectType::SeS, se_id),
                (_, 2) => put(x, y, DefectType::Se2S2, se_id),
                _ => {}
            }
        }
        for &(x, y, id) in &self.adatoms {
            put(x, y, DefectType::Adatom, id);
        }
        out
    }
}
