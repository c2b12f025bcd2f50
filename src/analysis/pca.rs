//! Principal component analysis of patches, and Horn's parallel analysis against noise.
//!
//! Patches have hundreds to thousands of pixels, and only the leading components matter, so the
//! top `k` eigenpairs of the covariance are found by randomised subspace iteration (Halko et al.
//! 2011): a few products with the centred data, never the `d`×`d` covariance itself, then an
//! exact symmetric eigensolve of the small projected matrix (linfa-linalg). The total variance
//! (for explained-variance ratios) is the trace, computed exactly.
//!
//! Parallel analysis: a component is significant when its eigenvalue exceeds the 95th percentile
//! of the same-rank eigenvalue over draws of a null. Two nulls ([`Null`]):
//! - intact lattice neighbours (when the lattice is known): for each patch, one of the same
//!   site's intact copies a few lattice constants away, in the same frame. The null keeps what
//!   every patch of that site shows (noise with its spatial correlation, contamination,
//!   registration and snapping jitter), so only variation the defects add beyond it counts.
//! - pixel shuffles: every pixel column permuted independently across patches, which keeps
//!   each pixel's variance but destroys all correlation between pixels. Noise that is itself
//!   correlated between neighbouring pixels (a probe's blur, interpolation) then passes as
//!   structure, so this null calls too much significant; it is the fallback without a lattice.

use crate::error::{Error, Result};
use linfa_linalg::eigh::{EigSort, Eigh};
use ndarray::{Array1, Array2, Axis};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Oversampling and power iterations of the randomised eigensolver.
const OVERSAMPLE: usize = 10;
const POWER_ITERATIONS: usize = 6;

/// A fitted PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    pub mean: Array1<f64>,
    /// `k × d`, unit rows, by decreasing eigenvalue.
    pub components: Array2<f64>,
    /// Eigenvalues (variances along the components), decreasing.
    pub eigenvalues: Vec<f64>,
    /// Sum of all pixel variances.
    pub total_variance: f64,
}

impl Pca {
    /// Fraction of the total variance along each component.
    pub fn explained_ratio(&self) -> Vec<f64> {
        self.eigenvalues
            .iter()
            .map(|l| {
                if self.total_variance > 0.0 {
                    l / self.total_variance
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// `n × k` scores of `x`.
    pub fn scores(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean).dot(&self.components.t())
    }
}

/// Fit the top `k` components of the rows of `x` (n samples × d features).
pub fn fit(x: &Array2<f64>, k: usize, seed: u64) -> Result<Pca> {
    let (n, d) = x.dim();
    if n < 2 {
        return Err(Error::invalid(format!(
            "PCA needs at least 2 samples, got {n}"
        )));
    }
    let mean = x
        .mean_axis(Axis(0))
        .ok_or_else(|| Error::invalid("PCA of an empty set"))?;
    let centred = x - &mean;
    let (eigenvalues, components) = top_eigen(&centred, k.min(d).min(n - 1).max(1), seed)?;
    let total_variance = centred.iter().map(|v| v * v).sum::<f64>() / (n - 1) as f64;
    Ok(Pca {
        mean,
        components,
        eigenvalues,
        total_variance,
    })
}

/// Top `k` eigenpairs of the covariance of already centred rows `c` (n × d).
fn top_eigen(c: &Array2<f64>, k: usize, seed: u64) -> Result<(Vec<f64>, Array2<f64>)> {
    let (n, d) = c.dim();
    let l = (k + OVERSAMPLE).min(d);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q = Array2::from_shape_fn((d, l), |_| rng.random::<f64>() - 0.5);
    orthonormalize(&mut q);
    for _ in 0..POWER_ITERATIONS {
        // Q ← orth(Cᵀ C Q)
        let cq = c.dot(&q);
        q = c.t().dot(&cq);
        orthonormalize(&mut q);
    }
    let cq = c.dot(&q);
    let small = cq.t().dot(&cq) / (n - 1).max(1) as f64;
    let (vals, vecs) = small
        .eigh()
        .map_err(|e| Error::invalid(format!("PCA eigensolver failed: {e}")))?
        .sort_eig_desc();
    let full = q.dot(&vecs); // d × l
    let components = full.slice(ndarray::s![.., ..k]).t().to_owned();
    Ok((
        vals.iter().take(k).map(|v| v.max(0.0)).collect(),
        components,
    ))
}

/// Modified Gram–Schmidt on the columns of `q`; degenerate columns become zero.
fn orthonormalize(q: &mut Array2<f64>) {
    let cols = q.ncols();
    for j in 0..cols {
        for i in 0..j {
            let dot = q.column(i).dot(&q.column(j));
            let qi = q.column(i).to_owned();
            q.column_mut(j).scaled_add(-dot, &qi);
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
        q.column_mut(j).mapv_inplace(|v| v * inv);
    }
}

/// Result of parallel analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Significance {
    /// 95th percentile of each rank's eigenvalue over the shuffles.
    pub threshold: Vec<f64>,
    /// Leading components whose eigenvalue exceeds its threshold (all before the first that
    /// does not).
    pub significant: usize,
    pub shuffles: usize,
    /// Patches the test ran on; below [`MIN_SIGNIFICANCE_SAMPLES`] it is not run.
    #[serde(default)]
    pub samples: usize,
    /// What the eigenvalues were compared with.
    #[serde(default)]
    pub null: NullKind,
}

/// The null of a parallel analysis, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullKind {
    #[default]
    PixelShuffle,
    LatticeNeighbours,
}

impl NullKind {
    /// "intact lattice neighbours, 20 draws" / "pixel shuffles, 20 draws".
    pub fn text(self, draws: usize) -> String {
        match self {
            NullKind::PixelShuffle => format!("against {draws} pixel shuffles"),
            NullKind::LatticeNeighbours => {
                format!("against intact lattice neighbours, {draws} draws")
            }
        }
    }
}

/// What a parallel analysis draws its null samples from.
pub enum Null<'a> {
    PixelShuffle,
    /// Row `i` of the tested data may be replaced by any of rows `choices[i]` of `data`.
    Neighbours {
        data: &'a Array2<f64>,
        choices: Vec<Vec<usize>>,
    },
}

impl Null<'_> {
    /// Intact neighbours when at least 80 % of the patches have one and enough are left to
    /// test; pixel shuffles otherwise.
    fn usable(self) -> Self {
        match self {
            Null::Neighbours { data, choices } => {
                let with = choices.iter().filter(|c| !c.is_empty()).count();
                if with >= MIN_SIGNIFICANCE_SAMPLES && 5 * with >= 4 * choices.len() {
                    Null::Neighbours { data, choices }
                } else {
                    Null::PixelShuffle
                }
            }
            n => n,
        }
    }

    fn kind(&self) -> NullKind {
        match self {
            Null::PixelShuffle => NullKind::PixelShuffle,
            Null::Neighbours { .. } => NullKind::LatticeNeighbours,
        }
    }

    /// One draw of the null for the centred data `centred`.
    fn draw(&self, centred: &Array2<f64>, rng: &mut ChaCha8Rng) -> Array2<f64> {
        let (n, d) = centred.dim();
        match self {
            Null::PixelShuffle => {
                let mut order: Vec<usize> = (0..n).collect();
                let mut shuffled = Array2::zeros((n, d));
                for j in 0..d {
                    order.shuffle(rng);
                    for (i, &src) in order.iter().enumerate() {
                        shuffled[[i, j]] = centred[[src, j]];
                    }
                }
                shuffled
            }
            Null::Neighbours { data, choices } => {
                let rows: Vec<usize> = choices
                    .iter()
                    .filter_map(|c| c.choose(rng).copied())
                    .collect();
                let x = data.select(Axis(0), &rows);
                let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(d));
                let mut drawn = x - &mean;
                // Each pixel at the tested patches' spread: the neighbours lend only their
                // correlations.
                let sd =
                    |m: &Array2<f64>| m.map_axis(Axis(0), |c| (c.dot(&c) / c.len() as f64).sqrt());
                let (want, have) = (sd(centred), sd(&drawn));
                for (mut col, (w, h)) in drawn.columns_mut().into_iter().zip(want.iter().zip(&have))
                {
                    col *= if *h > 0.0 { w / h } else { 0.0 };
                }
                drawn
            }
        }
    }
}

/// Fewest patches parallel analysis is run on: below, shuffled eigenvalues of a few patches in
/// a thousand pixels say nothing, and every component would come out "significant".
pub const MIN_SIGNIFICANCE_SAMPLES: usize = 30;

impl Significance {
    pub fn tested(&self) -> bool {
        self.samples >= MIN_SIGNIFICANCE_SAMPLES
    }

    /// What the test found, for a reader: "2 of 8 components significant (…)" or why it was
    /// not run.
    pub fn text(&self, components: usize) -> String {
        if self.tested() {
            format!(
                "{} of {components} components significant (parallel analysis {})",
                self.significant,
                self.null.text(self.shuffles)
            )
        } else {
            format!(
                "significance not tested: {} patches (at least {MIN_SIGNIFICANCE_SAMPLES} needed)",
                self.samples
            )
        }
    }
}

/// Horn's parallel analysis for the first `pca.eigenvalues.len()` components of `x`, against
/// `null` (drawn `draws` times).
pub fn parallel_analysis(
    x: &Array2<f64>,
    pca: &Pca,
    null: Null,
    draws: usize,
    seed: u64,
) -> Result<Significance> {
    let k = pca.eigenvalues.len();
    let n = x.nrows();
    let null = null.usable();
    if n < MIN_SIGNIFICANCE_SAMPLES {
        return Ok(Significance {
            threshold: vec![f64::NAN; k],
            significant: 0,
            shuffles: 0,
            samples: n,
            null: null.kind(),
        });
    }
    let centred = x - &pca.mean;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(draws); k];
    for r in 0..draws {
        let drawn = null.draw(&centred, &mut rng);
        let (vals, _) = top_eigen(&drawn, k, seed.wrapping_add(r as u64 + 1))?;
        for (s, v) in samples.iter_mut().zip(vals) {
            s.push(v);
        }
    }
    let threshold: Vec<f64> = samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            let idx = ((0.95 * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1)) - 1;
            s.get(idx).copied().unwrap_or(f64::INFINITY)
        })
        .collect();
    let significant = pca
        .eigenvalues
        .iter()
        .zip(&threshold)
        .take_while(|(l, t)| l > t)
        .count();
    Ok(Significance {
        threshold,
        significant,
        shuffles: draws,
        samples: n,
        null: null.kind(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    /// On fewer patches than the minimum nothing is called significant, and the reader is told
    /// why.
    #[test]
    fn too_few_patches_are_not_tested() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = Normal::new(0.0, 1.0).expect("normal");
        let x = Array2::from_shape_fn((6, 64), |_| g.sample(&mut rng));
        let p = fit(&x, 4, 1).expect("fit");
        let s = parallel_analysis(&x, &p, Null::PixelShuffle, 20, 1).expect("test");
        assert!(!s.tested());
        assert_eq!(s.significant, 0);
        assert!(s.text(4).contains("not tested: 6 patches"), "{}", s.text(4));
    }

    /// Data with two real directions of known variance plus isotropic noise.
    fn planted(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Normal::new(0.0, 1.0).expect("normal");
        let mut u = Array1::from_shape_fn(d, |i| ((i as f64) * 0.3).sin());
        u /= u.dot(&u).sqrt();
        let mut v = Array1::from_shape_fn(d, |i| if i < d / 2 { 1.0 } else { -1.0 });
        v -= &(&u * u.dot(&v));
        v /= v.dot(&v).sqrt();
        let x = Array2::from_shape_fn((n, d), |_| 0.3 * g.sample(&mut rng));
        let mut x = x;
        for mut row in x.rows_mut() {
            let a = 4.0 * g.sample(&mut rng);
            let b = 2.0 * g.sample(&mut rng);
            row.scaled_add(a, &u);
            row.scaled_add(b, &v);
        }
        (x, u, v)
    }

    #[test]
    fn finds_planted_directions_and_variances() {
        let (x, u, v) = planted(600, 64, 1);
        let p = fit(&x, 5, 2).expect("pca");
        assert!(p.components.row(0).dot(&u).abs() > 0.99);
        assert!(p.components.row(1).dot(&v).abs() > 0.99);
        assert!((p.eigenvalues[0] - 16.0).abs() < 2.5, "{:?}", p.eigenvalues);
        assert!((p.eigenvalues[1] - 4.0).abs() < 0.8, "{:?}", p.eigenvalues);
        let r = p.explained_ratio();
        let expected = 16.0 / (16.0 + 4.0 + 64.0 * 0.09);
        assert!((r[0] - expected).abs() < 0.05, "{r:?}");
    }

    #[test]
    fn parallel_analysis_keeps_real_components_only() {
        let (x, _, _) = planted(400, 49, 3);
        let p = fit(&x, 6, 4).expect("pca");
        let s = parallel_analysis(&x, &p, Null::PixelShuffle, 10, 5).expect("pa");
        assert_eq!(s.significant, 2, "{:?} vs {:?}", p.eigenvalues, s.threshold);
    }

    #[test]
    fn pure_noise_has_no_significant_component() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let g = Normal::new(0.0, 1.0).expect("normal");
        let x = Array2::from_shape_fn((300, 36), |_| g.sample(&mut rng));
        let p = fit(&x, 4, 1).expect("pca");
        let s = parallel_analysis(&x, &p, Null::PixelShuffle, 20, 2).expect("pa");
        assert!(
            s.significant <= 1,
            "{:?} vs {:?}",
            p.eigenvalues,
            s.threshold
        );
    }

    /// Patches of 8×8 px whose noise is correlated along image rows (a scan line's gain, as
    /// line flicker makes), `scale` times as strong as unit white noise, plus `planted` × a
    /// fixed dipole.
    fn line_noise(n: usize, scale: f64, planted: f64, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Normal::new(0.0, 1.0).expect("normal");
        let mut x = Array2::zeros((n, 64));
        for mut row in x.rows_mut() {
            let lines: Vec<f64> = (0..8).map(|_| 0.6 * g.sample(&mut rng)).collect();
            let a = planted * g.sample(&mut rng);
            for (p, v) in row.iter_mut().enumerate() {
                let dipole = match p {
                    27 => 1.0,
                    28 => -1.0,
                    _ => 0.0,
                };
                *v = scale * (lines[p / 8] + g.sample(&mut rng)) + a * dipole;
            }
        }
        x
    }

    /// Noise correlated between pixels passes pixel shuffles as structure; against intact
    /// neighbours with the same correlations (at another noise level) such noise is not, and
    /// the planted component alone is significant where there is one.
    #[test]
    fn neighbours_null_keeps_correlated_noise_out() {
        let neighbours = line_noise(600, 2.0, 0.0, 2);
        let against = |x: &Array2<f64>, null: bool| {
            let p = fit(x, 6, 3).expect("pca");
            let null = match null {
                true => Null::Neighbours {
                    data: &neighbours,
                    choices: (0..200)
                        .map(|i| vec![3 * i, 3 * i + 1, 3 * i + 2])
                        .collect(),
                },
                false => Null::PixelShuffle,
            };
            parallel_analysis(x, &p, null, 20, 4).expect("pa")
        };
        let noise = line_noise(200, 1.0, 0.0, 1);
        let shuffled = against(&noise, false);
        assert!(shuffled.significant >= 3, "{shuffled:?}");
        let s = against(&noise, true);
        assert_eq!(s.null, NullKind::LatticeNeighbours);
        // A 95 % test: the first component of pure noise may pass by chance (here it does, by
        // 0.1 %), never several.
        assert!(s.significant <= 1, "{s:?}");
        assert!(
            s.text(6).contains("intact lattice neighbours"),
            "{}",
            s.text(6)
        );
        let planted = against(&line_noise(200, 1.0, 6.0, 1), true);
        assert_eq!(planted.significant, 1, "{planted:?}");
    }

    /// Where too few patches have neighbours, the test falls back to pixel shuffles and says so.
    #[test]
    fn few_neighbours_fall_back_to_shuffles() {
        let x = line_noise(100, 1.0, 0.0, 5);
        let neighbours = line_noise(10, 1.0, 0.0, 6);
        let p = fit(&x, 4, 1).expect("pca");
        let choices = (0..100)
            .map(|i| if i < 10 { vec![i] } else { Vec::new() })
            .collect();
        let null = Null::Neighbours {
            data: &neighbours,
            choices,
        };
        let s = parallel_analysis(&x, &p, null, 10, 2).expect("pa");
        assert_eq!(s.null, NullKind::PixelShuffle);
    }

    #[test]
    fn too_few_samples_is_an_error() {
        assert!(fit(&Array2::zeros((1, 4)), 2, 0).is_err());
    }
}
