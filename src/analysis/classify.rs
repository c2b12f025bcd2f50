//! Unsupervised classes of defect patches: k-means (linfa) and Gaussian mixtures with diagonal
//! or full covariance, the number of classes fixed or chosen by BIC, and optional merging of
//! classes whose mean images are rotations or mirror images of each other under the lattice's
//! point symmetry.
//!
//! The mixtures are fitted by our own EM (initialised from linfa's k-means): linfa 0.8's GMM
//! offers full covariance only and fails outright when EM has not converged or a component
//! empties, where a workbench wants the best model found and an empty component re-seeded.
//! Classes are numbered by decreasing size, so class 0 is the most common.

use crate::error::{Error, Result};
use crate::raster::Raster;
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::KMeans;
use linfa_linalg::cholesky::Cholesky;
use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The clustering algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMethod {
    KMeans,
    GmmDiag,
    #[default]
    GmmFull,
}

impl ClusterMethod {
    pub fn name(self) -> &'static str {
        match self {
            ClusterMethod::KMeans => "k-means",
            ClusterMethod::GmmDiag => "GMM (diagonal covariance)",
            ClusterMethod::GmmFull => "GMM (full covariance)",
        }
    }
}

/// How many classes: fixed, or chosen by BIC over 1..=max (at its elbow, see [`elbow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassCount {
    Fixed(usize),
    Auto { max: usize },
}

impl Default for ClassCount {
    fn default() -> Self {
        ClassCount::Auto { max: 8 }
    }
}

/// The outcome of [`cluster`].
#[derive(Debug, Clone)]
pub struct Clustering {
    pub method: ClusterMethod,
    pub classes: usize,
    /// Class of each sample.
    pub labels: Vec<usize>,
    /// `n × classes` posterior probabilities (k-means: an isotropic mixture at its centroids).
    pub posteriors: Array2<f64>,
    /// BIC for each number of classes tried (empty when the number was fixed).
    pub bic: Vec<(usize, f64)>,
}

/// A correction made by hand, replayed after clustering in the order made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "edit")]
pub enum ManualEdit {
    /// Put detection `detection` into `class` (numbered as when the edit was made; the number
    /// one past the last class starts a new class).
    Relabel { detection: usize, class: usize },
    /// Put every member of class `from` into class `into`.
    Merge { from: usize, into: usize },
}

/// Replay `edits` on `clustering`, whose row `r` is the patch of detection `detection_of_row[r]`.
/// After each edit the classes are renumbered by size (empty ones dropped), as the user saw them.
pub fn apply_edits(
    clustering: &mut Clustering,
    detection_of_row: &[usize],
    edits: &[ManualEdit],
) -> Result<()> {
    for (i, e) in edits.iter().enumerate() {
        let k = clustering.classes;
        let mut post = clustering.posteriors.clone();
        match *e {
            ManualEdit::Relabel { detection, class } => {
                let row = detection_of_row
                    .iter()
                    .position(|&d| d == detection)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "manual edit {}: detection {detection} has no patch to classify",
                            i + 1
                        ))
                    })?;
                if class > k {
                    return Err(Error::invalid(format!(
                        "manual edit {}: class {class} does not exist ({k} classes)",
                        i + 1
                    )));
                }
                if class == k {
                    post.push_column(Array1::zeros(post.nrows()).view())
                        .map_err(|e| Error::invalid(format!("new class: {e}")))?;
                }
                let mut r = post.row_mut(row);
                r.fill(0.0);
                r[class] = 1.0;
            }
            ManualEdit::Merge { from, into } => {
                if from >= k || into >= k || from == into {
                    return Err(Error::invalid(format!(
                        "manual edit {}: cannot merge class {from} into {into} ({k} classes)",
                        i + 1
                    )));
                }
                let absorbed = post.column(from).to_owned();
                post.column_mut(into).scaled_add(1.0, &absorbed);
                post.column_mut(from).fill(0.0);
            }
        }
        let (labels, post) = order_by_size(&post);
        clustering.labels = labels;
        clustering.classes = post.ncols();
        clustering.posteriors = post;
    }
    Ok(())
}

const MAX_EM_ITERATIONS: usize = 300;
const EM_TOLERANCE: f64 = 1e-7;

/// Cluster the rows of `features`.
pub fn cluster(
    features: &Array2<f64>,
    method: ClusterMethod,
    count: ClassCount,
    seed: u64,
) -> Result<Clustering> {
    let n = features.nrows();
    let wanted = match count {
        ClassCount::Fixed(k) | ClassCount::Auto { max: k } => k,
    };
    if wanted == 0 {
        return Err(Error::invalid("the number of classes must be at least 1"));
    }
    if n == 0 {
        return Err(Error::invalid("no defect patches to classify"));
    }
    if let ClassCount::Fixed(k) = count
        && n < k
    {
        return Err(Error::invalid(format!(
            "{n} defect patches are too few for {k} classes"
        )));
    }
    if features.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("defect features contain NaN or ±∞"));
    }
    let kind = match method {
        ClusterMethod::GmmFull => CovKind::Full,
        _ => CovKind::Diag,
    };
    // With the class count chosen by BIC, every k is fitted (in parallel; each fit is
    // deterministic) and the chosen fit is kept, not fitted again.
    let (k, bic, fitted) = match count {
        ClassCount::Fixed(k) => (k, Vec::new(), None),
        ClassCount::Auto { max } => {
            let fits: Vec<(Gmm, f64)> = (1..=max.min(n))
                .into_par_iter()
                .map(|k| fit_gmm(features, k, kind, seed))
                .collect::<Result<_>>()?;
            let bic: Vec<(usize, f64)> = fits
                .iter()
                .enumerate()
                .map(|(i, (_, ll))| (i + 1, bic_of(*ll, i + 1, features.ncols(), n, kind)))
                .collect();
            // Only fits whose every class has MIN_CLASS_SIZE members are candidates: a class
            // of one or two defects is an outlier, not a kind of defect.
            let allowed: Vec<(usize, f64)> = bic
                .iter()
                .zip(&fits)
                .filter(|(b, (gmm, _))| {
                    b.0 == 1 || smallest_class(&gmm.posteriors(features)) >= MIN_CLASS_SIZE
                })
                .map(|(b, _)| *b)
                .collect();
            let k = elbow(&allowed);
            (k, bic, fits.into_iter().nth(k - 1).map(|f| f.0))
        }
    };
    let posteriors = match (method, fitted) {
        (ClusterMethod::KMeans, _) => kmeans_posteriors(features, k)?,
        (_, Some(gmm)) => gmm.posteriors(features),
        (_, None) => fit_gmm(features, k, kind, seed)?.0.posteriors(features),
    };
    let (labels, posteriors) = order_by_size(&posteriors);
    Ok(Clustering {
        method,
        classes: posteriors.ncols(),
        labels,
        posteriors,
        bic,
    })
}

/// Share of the whole BIC improvement (k = 1 → best k) that a smaller k may give up.
const BIC_ELBOW: f64 = 0.05;

/// Fewest members of a class the automatic class count accepts; smaller classes are warned
/// about when the count is fixed.
pub const MIN_CLASS_SIZE: usize = 3;

/// Members of the smallest class (by the largest posterior of each sample).
fn smallest_class(posteriors: &Array2<f64>) -> usize {
    let mut counts = vec![0usize; posteriors.ncols()];
    for r in posteriors.rows() {
        counts[argmax(r.iter())] += 1;
    }
    counts.into_iter().min().unwrap_or(0)
}

/// The smallest k whose BIC is within [`BIC_ELBOW`] of the best, measured against the whole
/// improvement over one class. Defect patches are not Gaussian blobs: besides the defect types
/// they vary continuously (neighbouring defects, localisation error), and the plain BIC minimum
/// keeps adding components for that, where the elbow stops at the types.
fn elbow(bic: &[(usize, f64)]) -> usize {
    let Some(best) = bic.iter().map(|b| b.1).min_by(f64::total_cmp) else {
        return 1;
    };
    let first = bic.first().map_or(best, |b| b.1);
    let slack = BIC_ELBOW * (first - best).max(0.0);
    bic.iter().find(|b| b.1 <= best + slack).map_or(1, |b| b.0)
}

/// Labels from posteriors, classes renumbered by decreasing size (empty classes dropped).
fn order_by_size(posteriors: &Array2<f64>) -> (Vec<usize>, Array2<f64>) {
    let k = posteriors.ncols();
    let raw: Vec<usize> = posteriors
        .rows()
        .into_iter()
        .map(|r| argmax(r.iter()))
        .collect();
    let mut counts = vec![0usize; k];
    for &l in &raw {
        counts[l] += 1;
    }
    let mut order: Vec<usize> = (0..k).filter(|&c| counts[c] > 0).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let mut new_of = vec![0; k];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new;
    }
    let labels = raw.iter().map(|&l| new_of[l]).collect();
    let mut post = Array2::zeros((posteriors.nrows(), order.len()));
    for (new, &old) in order.iter().enumerate() {
        post.column_mut(new).assign(&posteriors.column(old));
    }
    // Renormalise (dropped empty classes may have held a little probability).
    for mut row in post.rows_mut() {
        let s = row.sum();
        if s > 0.0 {
            row /= s;
        }
    }
    (labels, post)
}

pub(crate) fn argmax<'a>(values: impl Iterator<Item = &'a f64>) -> usize {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

fn kmeans_labels(x: &Array2<f64>, k: usize) -> Result<(Array1<usize>, Array2<f64>)> {
    let data = DatasetBase::from(x.clone());
    let model = KMeans::params(k)
        .n_runs(4)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&data)
        .map_err(|e| Error::invalid(format!("k-means failed: {e}")))?;
    Ok((model.predict(x), model.centroids().clone()))
}

/// k-means as an isotropic mixture: weights from the counts, one pooled variance.
fn kmeans_posteriors(x: &Array2<f64>, k: usize) -> Result<Array2<f64>> {
    let (labels, centroids) = kmeans_labels(x, k)?;
    let (n, d) = x.dim();
    let mut counts = vec![0.0; k];
    let mut ss = 0.0;
    for (row, &l) in x.rows().into_iter().zip(&labels) {
        counts[l] += 1.0;
        ss += (&row - &centroids.row(l)).mapv(|v| v * v).sum();
    }
    let var = (ss / (n * d) as f64).max(1e-12);
    let mut post = Array2::zeros((n, k));
    for (i, row) in x.rows().into_iter().enumerate() {
        for c in 0..k {
            let d2 = (&row - &centroids.row(c)).mapv(|v| v * v).sum();
            post[[i, c]] = ((counts[c] + 1e-9) / n as f64).ln() - d2 / (2.0 * var);
        }
    }
    normalize_log_rows(&mut post);
    Ok(post)
}

/// In place: each row of log-probabilities → probabilities (log-sum-exp); returns Σ log-norms.
fn normalize_log_rows(m: &mut Array2<f64>) -> f64 {
    let mut total = 0.0;
    for mut row in m.rows_mut() {
        let mx = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let s: f64 = row.iter().map(|v| (v - mx).exp()).sum();
        let norm = mx + s.ln();
        total += norm;
        row.mapv_inplace(|v| (v - norm).exp());
    }
    total
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CovKind {
    Diag,
    Full,
}

/// A Gaussian mixture. Covariances are kept as their Cholesky factors (Full) or variances (Diag).
#[derive(Debug, Clone)]
struct Gmm {
    weights: Vec<f64>,
    means: Array2<f64>,
    /// Diag: `k × d` variances. Full: `k` lower-triangular factors stacked, `k·d × d`.
    cov: Array2<f64>,
    kind: CovKind,
}

impl Gmm {
    /// `n × k` of ln(w_k) + ln N(x | μ_k, Σ_k). The Mahalanobis distances of all samples to a
    /// component come from one matrix product: z = (x − μ)·L⁻ᵀ with Σ = L·Lᵀ (Full), or
    /// z = (x − μ)/σ (Diag), and the distance is |z|².
    fn log_weighted(&self, x: &Array2<f64>) -> Array2<f64> {
        let (n, d) = x.dim();
        let k = self.weights.len();
        let c = (2.0 * std::f64::consts::PI).ln() * d as f64;
        let mut out = Array2::zeros((n, k));
        for j in 0..k {
            let diff = x - &self.means.row(j);
            let (z, logdet) = match self.kind {
                CovKind::Diag => {
                    let var = self.cov.row(j);
                    let logdet: f64 = var.iter().map(|v| v.ln()).sum();
                    (diff / &var.mapv(f64::sqrt), logdet)
                }
                CovKind::Full => {
                    let l = self.cov.slice(ndarray::s![j * d..(j + 1) * d, ..]);
                    let logdet: f64 = 2.0 * (0..d).map(|a| l[[a, a]].ln()).sum::<f64>();
                    (diff.dot(&lower_inverse(&l).t()), logdet)
                }
            };
            let lw = self.weights[j].max(1e-300).ln();
            let m = (&z * &z).sum_axis(Axis(1));
            out.column_mut(j)
                .assign(&m.mapv(|m| lw - 0.5 * (m + c + logdet)));
        }
        out
    }

    fn posteriors(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut lp = self.log_weighted(x);
        normalize_log_rows(&mut lp);
        lp
    }

    /// M-step from responsibilities.
    fn from_responsibilities(x: &Array2<f64>, resp: &Array2<f64>, kind: CovKind) -> Result<Gmm> {
        let (n, d) = x.dim();
        let k = resp.ncols();
        let nk = resp.sum_axis(Axis(0));
        // Regularise by a small fraction of the mean feature variance, as scikit-learn does.
        let spread = x.var_axis(Axis(0), 0.0).mean().unwrap_or(1.0).max(1e-12);
        let reg = 1e-6 * spread;
        let mut means = Array2::zeros((k, d));
        let mut cov = match kind {
            CovKind::Diag => Array2::zeros((k, d)),
            CovKind::Full => Array2::zeros((k * d, d)),
        };
        for j in 0..k {
            let w = resp.column(j);
            let total = nk[j].max(1e-12);
            let mu = w.dot(x) / total;
            let diff = x - &mu;
            match kind {
                CovKind::Diag => {
                    let var = w.dot(&diff.mapv(|v| v * v)) / total;
                    cov.row_mut(j).assign(&var.mapv(|v| v + reg));
                }
                CovKind::Full => {
                    let weighted = &diff * &w.view().insert_axis(Axis(1));
                    let mut s = weighted.t().dot(&diff) / total;
                    s.diag_mut().mapv_inplace(|v| v + reg);
                    let l = s.cholesky().map_err(|e| {
                        Error::invalid(format!("GMM: a class covariance is singular ({e})"))
                    })?;
                    cov.slice_mut(ndarray::s![j * d..(j + 1) * d, ..])
                        .assign(&l);
                }
            }
            means.row_mut(j).assign(&mu);
        }
        let weights = nk.iter().map(|v| v / n as f64).collect();
        Ok(Gmm {
            weights,
            means,
            cov,
            kind,
        })
    }
}

/// The inverse of a lower-triangular matrix with a positive diagonal (forward substitution on the
/// identity's columns); lower-triangular too.
fn lower_inverse(l: &ndarray::ArrayView2<f64>) -> Array2<f64> {
    let d = l.nrows();
    let mut inv = Array2::zeros((d, d));
    for col in 0..d {
        for a in col..d {
            let mut s = if a == col { 1.0 } else { 0.0 };
            for b in col..a {
                s -= l[[a, b]] * inv[[b, col]];
            }
            inv[[a, col]] = s / l[[a, a]];
        }
    }
    inv
}

/// EM from a k-means start; returns the model and its total log-likelihood.
fn fit_gmm(x: &Array2<f64>, k: usize, kind: CovKind, _seed: u64) -> Result<(Gmm, f64)> {
    let n = x.nrows();
    let (labels, _) = kmeans_labels(x, k)?;
    let mut resp = Array2::zeros((n, k));
    for (i, &l) in labels.iter().enumerate() {
        resp[[i, l]] = 1.0;
    }
    let mut gmm = Gmm::from_responsibilities(x, &resp, kind)?;
    let mut previous = f64::NEG_INFINITY;
    let mut ll = previous;
    for _ in 0..MAX_EM_ITERATIONS {
        let mut lp = gmm.log_weighted(x);
        ll = normalize_log_rows(&mut lp);
        resp = lp;
        // Re-seed an emptied component at the worst-explained sample.
        let nk = resp.sum_axis(Axis(0));
        if let Some(empty) = nk.iter().position(|&v| v < 1e-6) {
            let lw = gmm.log_weighted(x);
            let worst = (0..n)
                .min_by(|&a, &b| {
                    let fa = lw.row(a).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                    let fb = lw.row(b).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                    fa.total_cmp(&fb)
                })
                .unwrap_or(0);
            resp.row_mut(worst).fill(0.0);
            resp[[worst, empty]] = 1.0;
        }
        gmm = Gmm::from_responsibilities(x, &resp, kind)?;
        if (ll - previous).abs() <= EM_TOLERANCE * ll.abs().max(1.0) {
            break;
        }
        previous = ll;
    }
    Ok((gmm, ll))
}

/// Bayesian information criterion (lower is better).
fn bic_of(log_likelihood: f64, k: usize, d: usize, n: usize, kind: CovKind) -> f64 {
    let cov_params = match kind {
        CovKind::Diag => k * d,
        CovKind::Full => k * d * (d + 1) / 2,
    };
    let params = (k - 1) + k * d + cov_params;
    -2.0 * log_likelihood + params as f64 * (n as f64).ln()
}

/// Mean image and per-pixel variance of each class.
pub fn class_means(
    patches: &Array2<f64>,
    labels: &[usize],
    classes: usize,
    size: usize,
) -> Vec<(Raster, f64, usize)> {
    (0..classes)
        .map(|c| {
            let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            let sel = patches.select(Axis(0), &rows);
            let mean = sel
                .mean_axis(Axis(0))
                .unwrap_or_else(|| Array1::zeros(size * size));
            let var = if rows.len() > 1 {
                sel.var_axis(Axis(0), 1.0).mean().unwrap_or(0.0)
            } else {
                0.0
            };
            (
                super::patches::raster_from_row(mean.iter().copied(), size),
                var,
                rows.len(),
            )
        })
        .collect()
}

/// One merge of two classes related by a symmetry operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymmetryMerge {
    /// Class numbers before the merge (`absorbed` joins `kept`).
    pub kept: usize,
    pub absorbed: usize,
    /// The operation, e.g. "rotation 120°" or "mirror at 30°".
    pub operation: String,
    /// RMS difference after the operation, in units of the noise of the means.
    pub distance: f64,
}

/// Symmetry group for merging: `order`-fold rotations and mirrors, oriented by the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Symmetry {
    /// 3 (a WS2 monolayer seen along c: D3h projects to 3m, 6 operations) or 6 (6mm, 12).
    pub order: usize,
    /// Merge when the RMS difference is below this many standard errors of the means.
    pub tolerance: f64,
}

impl Default for Symmetry {
    fn default() -> Self {
        Symmetry {
            order: 3,
            tolerance: 3.0,
        }
    }
}

/// A named symmetry operation on patches.
type Operation = (String, Box<dyn Fn(&Raster) -> Raster>);

/// The non-identity operations.
fn operations(sym: Symmetry, lattice_angle: f64) -> Vec<Operation> {
    let mut ops: Vec<Operation> = Vec::new();
    let n = sym.order.max(1);
    for r in 1..n {
        let ang = 2.0 * std::f64::consts::PI * r as f64 / n as f64;
        ops.push((
            format!("rotation {:.0}°", ang.to_degrees()),
            Box::new(move |img: &Raster| transform(img, ang.cos(), ang.sin(), false)),
        ));
    }
    // Mirror axes: for 3m perpendicular to the lattice vectors, for 6mm along and between them.
    let offset = if n == 3 { 30f64.to_radians() } else { 0.0 };
    for m in 0..n {
        let axis = lattice_angle + offset + std::f64::consts::PI * m as f64 / n as f64;
        let (c, s) = ((2.0 * axis).cos(), (2.0 * axis).sin());
        ops.push((
            format!("mirror at {:.0}°", axis.to_degrees().rem_euclid(180.0)),
            Box::new(move |img: &Raster| transform(img, c, s, true)),
        ));
    }
    ops
}

/// Apply a rotation [[c, −s], [s, c]] or a reflection [[c, s], [s, −c]] about the patch centre.
fn transform(img: &Raster, c: f64, s: f64, mirror: bool) -> Raster {
    let (w, h) = (img.width, img.height);
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut out = Raster::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            // Output pixel p takes the input at M⁻¹ p (both maps are orthogonal).
            let (sx, sy) = if mirror {
                (c * dx + s * dy, s * dx - c * dy)
            } else {
                (c * dx + s * dy, -s * dx + c * dy)
            };
            out.set(x, y, img.sample((sx + cx) as f32, (sy + cy) as f32));
        }
    }
    out
}

/// RMS difference of two images inside the inscribed disk (less one pixel).
fn disk_rms(a: &Raster, b: &Raster) -> f64 {
    let r = (a.width.min(a.height) as f64 / 2.0 - 1.0).max(1.0);
    let (cx, cy) = ((a.width as f64 - 1.0) / 2.0, (a.height as f64 - 1.0) / 2.0);
    let (mut s, mut n) = (0.0, 0usize);
    for y in 0..a.height {
        for x in 0..a.width {
            if (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) <= r * r {
                s += ((a.get(x, y) - b.get(x, y)) as f64).powi(2);
                n += 1;
            }
        }
    }
    (s / n.max(1) as f64).sqrt()
}

/// Merge classes whose means match under a symmetry operation, closest pair first, until no pair
/// is within tolerance. Updates `labels` and `posteriors` in place; classes stay numbered by size.
pub fn merge_symmetric(
    patches: &Array2<f64>,
    size: usize,
    clustering: &mut Clustering,
    sym: Symmetry,
    lattice_angle: f64,
) -> Vec<SymmetryMerge> {
    let ops = operations(sym, lattice_angle);
    let mut merges = Vec::new();
    loop {
        let means = class_means(patches, &clustering.labels, clustering.classes, size);
        let mut best: Option<SymmetryMerge> = None;
        for a in 0..means.len() {
            for b in a + 1..means.len() {
                let (ma, va, na) = &means[a];
                let (mb, vb, nb) = &means[b];
                if *na < 2 || *nb < 2 {
                    continue;
                }
                let se = (va / *na as f64 + vb / *nb as f64).sqrt().max(1e-12);
                for (name, op) in &ops {
                    let dist = disk_rms(ma, &op(mb)) / se;
                    if dist < sym.tolerance && best.as_ref().is_none_or(|m| dist < m.distance) {
                        best = Some(SymmetryMerge {
                            kept: a,
                            absorbed: b,
                            operation: name.clone(),
                            distance: dist,
                        });
                    }
                }
            }
        }
        let Some(m) = best else { break };
        let mut post = clustering.posteriors.clone();
        let absorbed = post.column(m.absorbed).to_owned();
        post.column_mut(m.kept).scaled_add(1.0, &absorbed);
        post.column_mut(m.absorbed).fill(0.0);
        let (labels, post) = order_by_size(&post);
        clustering.labels = labels;
        clustering.classes = post.ncols();
        clustering.posteriors = post;
        merges.push(m);
    }
    merges
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn lower_inverse_inverts() {
        let l = ndarray::array![[2.0, 0.0, 0.0], [0.5, 1.5, 0.0], [-1.0, 0.25, 0.8]];
        let inv = lower_inverse(&l.view());
        let eye = l.dot(&inv);
        for ((a, b), v) in eye.indexed_iter() {
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-12, "({a},{b}) = {v}");
        }
        assert_eq!(inv[[0, 1]], 0.0);
    }

    /// Three elongated Gaussian blobs in 2-D, sizes 300/200/100.
    fn blobs() -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = Normal::new(0.0, 1.0).expect("normal");
        let centres = [(0.0, 0.0), (8.0, 1.0), (3.0, 9.0)];
        let sizes = [300, 200, 100];
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for (c, (&(cx, cy), &n)) in centres.iter().zip(&sizes).enumerate() {
            for _ in 0..n {
                let (a, b) = (g.sample(&mut rng), g.sample(&mut rng));
                rows.extend_from_slice(&[cx + 1.5 * a + 0.5 * b, cy + 0.5 * b]);
                truth.push(c);
            }
        }
        (
            Array2::from_shape_vec((truth.len(), 2), rows).expect("shape"),
            truth,
        )
    }

    fn agreement(a: &[usize], b: &[usize]) -> f64 {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    }

    #[test]
    fn every_method_recovers_three_blobs_numbered_by_size() {
        let (x, truth) = blobs();
        for method in [
            ClusterMethod::KMeans,
            ClusterMethod::GmmDiag,
            ClusterMethod::GmmFull,
        ] {
            let c = cluster(&x, method, ClassCount::Fixed(3), 1).expect("cluster");
            assert_eq!(c.classes, 3);
            // Sizes 300 > 200 > 100 make the numbering equal the truth's.
            let acc = agreement(&c.labels, &truth);
            assert!(acc > 0.97, "{method:?}: {acc}");
            for row in c.posteriors.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn manual_edits_relabel_merge_and_start_classes() {
        let (x, _) = blobs();
        let mut c = cluster(&x, ClusterMethod::GmmFull, ClassCount::Fixed(3), 1).expect("c");
        // Rows hold detections 10, 11, 12, ...
        let det: Vec<usize> = (0..x.nrows()).map(|r| r + 10).collect();
        let row0_class = c.labels[0];
        let other = (row0_class + 1) % 3;
        apply_edits(
            &mut c,
            &det,
            &[ManualEdit::Relabel {
                detection: 10,
                class: other,
            }],
        )
        .expect("relabel");
        assert_eq!(c.labels[0], other);
        // A new class of its own.
        apply_edits(
            &mut c,
            &det,
            &[ManualEdit::Relabel {
                detection: 11,
                class: 3,
            }],
        )
        .expect("new class");
        assert_eq!(c.classes, 4);
        assert_eq!(c.labels[1], 3, "the one-member class is the smallest");
        // Merging the two largest leaves three classes, the merged one first.
        apply_edits(&mut c, &det, &[ManualEdit::Merge { from: 1, into: 0 }]).expect("merge");
        assert_eq!(c.classes, 3);
        assert!(c.labels.iter().filter(|&&l| l == 0).count() >= 490);
        for row in c.posteriors.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-9);
        }
        // Mistakes are errors, not panics.
        for bad in [
            ManualEdit::Relabel {
                detection: 5,
                class: 0,
            },
            ManualEdit::Relabel {
                detection: 10,
                class: 9,
            },
            ManualEdit::Merge { from: 0, into: 0 },
            ManualEdit::Merge { from: 7, into: 0 },
        ] {
            assert!(apply_edits(&mut c, &det, &[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bic_picks_three_classes() {
        let (x, _) = blobs();
        let c = cluster(&x, ClusterMethod::GmmFull, ClassCount::Auto { max: 6 }, 1).expect("c");
        assert_eq!(c.classes, 3, "BIC {:?}", c.bic);
        assert_eq!(c.bic.len(), 6);
    }

    /// Two stray patches far from the three kinds do not get a class of their own when the
    /// number of classes is chosen.
    #[test]
    fn chosen_classes_have_at_least_three_members() {
        let (x, _) = blobs();
        let mut rows: Vec<f64> = x.iter().copied().collect();
        rows.extend_from_slice(&[40.0, -30.0, 41.0, -31.0]);
        let with_strays = Array2::from_shape_vec((x.nrows() + 2, 2), rows).expect("shape");
        for method in [
            ClusterMethod::GmmFull,
            ClusterMethod::GmmDiag,
            ClusterMethod::KMeans,
        ] {
            let c = cluster(&with_strays, method, ClassCount::Auto { max: 6 }, 1).expect("fit");
            let mut counts = vec![0; c.classes];
            for &l in &c.labels {
                counts[l] += 1;
            }
            assert!(
                counts.iter().all(|&n| n >= MIN_CLASS_SIZE),
                "{method:?}: {counts:?}"
            );
        }
    }

    #[test]
    fn elbow_stops_where_bic_flattens() {
        let bic = [
            (1, 0.0),
            (2, -800.0),
            (3, -1000.0),
            (4, -1010.0),
            (5, -1030.0),
        ];
        assert_eq!(elbow(&bic), 3);
        assert_eq!(elbow(&[(1, 5.0), (2, 9.0)]), 1);
    }

    #[test]
    fn bad_requests_are_clear_errors() {
        let (x, _) = blobs();
        let few = x.slice(ndarray::s![..2, ..]).to_owned();
        let e = cluster(&few, ClusterMethod::GmmFull, ClassCount::Fixed(3), 1).expect_err("few");
        assert!(e.to_string().contains("too few"), "{e}");
        assert!(cluster(&x, ClusterMethod::KMeans, ClassCount::Fixed(0), 1).is_err());
        let mut nan = x.clone();
        nan[[0, 0]] = f64::NAN;
        assert!(cluster(&nan, ClusterMethod::GmmDiag, ClassCount::Fixed(2), 1).is_err());
        // One sample, one class: fine (a class with one member is legal).
        let one = x.slice(ndarray::s![..1, ..]).to_owned();
        let c = cluster(&one, ClusterMethod::GmmFull, ClassCount::Fixed(1), 1).expect("one");
        assert_eq!(c.labels, vec![0]);
    }

    /// An asymmetric "defect": a bright spot off-centre at angle θ; rotating by 120° maps the
    /// class at θ onto the class at θ + 120°, which 3-fold merging must join, but not the class
    /// with a different intensity.
    #[test]
    fn symmetric_classes_merge_and_distinct_ones_do_not() {
        let size = 17;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = Normal::new(0.0, 0.2).expect("normal");
        let spot = |theta: f64, amp: f64| {
            let (cx, cy) = (8.0 + 4.0 * theta.cos(), 8.0 + 4.0 * theta.sin());
            move |x: usize, y: usize| {
                amp * (-((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)) / 4.0).exp()
            }
        };
        let kinds = [
            spot(0.3, 3.0),
            spot(0.3 + 2.0 * std::f64::consts::PI / 3.0, 3.0),
            spot(0.3, 1.5),
        ];
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (c, f) in kinds.iter().enumerate() {
            for _ in 0..(60 - 10 * c) {
                for y in 0..size {
                    for x in 0..size {
                        rows.push(f(x, y) + g.sample(&mut rng));
                    }
                }
                labels.push(c);
            }
        }
        let x = Array2::from_shape_vec((labels.len(), size * size), rows).expect("shape");
        let mut posteriors = Array2::zeros((labels.len(), 3));
        for (i, &l) in labels.iter().enumerate() {
            posteriors[[i, l]] = 1.0;
        }
        let mut c = Clustering {
            method: ClusterMethod::KMeans,
            classes: 3,
            labels,
            posteriors,
            bic: vec![],
        };
        let merges = merge_symmetric(&x, size, &mut c, Symmetry::default(), 0.0);
        assert_eq!(merges.len(), 1, "{merges:?}");
        assert_eq!((merges[0].kept, merges[0].absorbed), (0, 1));
        assert!(merges[0].operation.starts_with("rotation"), "{merges:?}");
        assert_eq!(c.classes, 2);
        assert_eq!(c.labels.iter().filter(|&&l| l == 0).count(), 110);
    }
}
