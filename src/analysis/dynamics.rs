//! What happens in time: class counts and densities per frame, mean-squared displacement and
//! diffusion coefficients, coupling between classes (nearest-neighbour distances and the cross
//! pair-correlation g(r) against randomly placed defects), and the Markov chain of class
//! transitions along tracks with a hidden-Markov (Viterbi) smoothing of each track's classes.

use super::tracks::{Tracks, registered};
use crate::detect::Detection;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Counts of each class per frame.
pub fn class_counts(
    frames: usize,
    classes: usize,
    detections: &[Detection],
    class_of: &[Option<usize>],
) -> Vec<Vec<usize>> {
    let mut counts = vec![vec![0; classes]; frames];
    for (d, c) in detections.iter().zip(class_of) {
        if let Some(c) = *c
            && d.frame < frames
            && c < classes
        {
            counts[d.frame][c] += 1;
        }
    }
    counts
}

/// Mean-squared displacement of one class and the diffusion coefficient fitted to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diffusion {
    pub class: usize,
    /// (lag in frames, MSD in px², number of displacement pairs).
    pub msd: Vec<(usize, f64, usize)>,
    /// D in px²/frame from MSD = 4Dτ + offset, weighted by pair counts, over the fitted lags.
    pub d_px2_per_frame: f64,
    /// Standard deviation of D over bootstrap resamples of the tracks.
    pub d_std_px2_per_frame: f64,
    /// The bootstrap's 95th percentile of D: an upper bound where D is not resolved.
    #[serde(default)]
    pub d_upper95_px2_per_frame: f64,
    /// Whether D is told apart from 0: at least [`MIN_DIFFUSION_TRACKS`] tracks, and the
    /// bootstrap's 2.5th percentile above 0. Where it is not, report "not resolved: D < upper
    /// bound" (or too few tracks), not a value.
    #[serde(default)]
    pub resolved: bool,
    /// MSD offset at τ = 0 (4 × the localisation variance per axis), px².
    pub offset_px2: f64,
    pub fitted_lags: usize,
    /// Tracks the MSD was computed over.
    pub segments: usize,
}

/// Fewest tracks a D is reported from: the bootstrap over tracks cannot show the spread of one
/// or two (one track gave "D = 1.0e-7 ± 0.0").
pub const MIN_DIFFUSION_TRACKS: usize = 3;

/// Tracks of ≥ 2 detections with the majority class of their classified detections. A defect
/// is followed whole even where single frames are classified otherwise (e.g. a vacancy hopping
/// next to a dopant looks different for a frame); cutting tracks at every class change instead
/// drops exactly those hops and underestimated D by a third on synthetic movies.
pub fn tracks_by_class(tracks: &Tracks, class_of: &[Option<usize>]) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for t in tracks.tracks.iter().filter(|t| t.len() >= 2) {
        let mut counts = std::collections::BTreeMap::new();
        for c in t.iter().filter_map(|&d| class_of[d]) {
            *counts.entry(c).or_insert(0usize) += 1;
        }
        if let Some((&c, _)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
            out.push((c, t.clone()));
        }
    }
    out
}

/// MSD per lag of the given segments: (sum of squared displacements, pairs) for lags 1..=max.
fn msd_sums(
    segments: &[&Vec<usize>],
    detections: &[Detection],
    offsets: &[(f64, f64)],
    max_lag: usize,
) -> Vec<(f64, usize)> {
    let mut sums = vec![(0.0, 0usize); max_lag + 1];
    let pos = |d: usize| registered(&detections[d], offsets);
    for seg in segments {
        for (i, &a) in seg.iter().enumerate() {
            let pa = pos(a);
            for &b in &seg[i + 1..] {
                let lag = detections[b].frame - detections[a].frame;
                if lag > max_lag {
                    break;
                }
                let pb = pos(b);
                sums[lag].0 += (pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2);
                sums[lag].1 += 1;
            }
        }
    }
    sums
}

/// Weighted least squares of MSD = slope·τ + offset over lags with pairs, with slope ≥ 0 and
/// offset ≥ 0 (a defect cannot move less than not at all, and the offset is 4 × a variance);
/// returns (D, offset). A static defect's MSD scatters about a constant and an unconstrained
/// slope comes out negative half the time; the constrained one is 0 there.
fn fit_line(sums: &[(f64, usize)], lags: usize) -> Option<(f64, f64)> {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut used = 0;
    for (lag, &(s, n)) in sums.iter().enumerate().skip(1).take(lags) {
        if n == 0 {
            continue;
        }
        let (w, x, y) = (n as f64, lag as f64, s / n as f64);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
        used += 1;
    }
    if used < 2 {
        return None;
    }
    let det = sw * sxx - sx * sx;
    if det.abs() < 1e-12 {
        return None;
    }
    let slope = (sw * sxy - sx * sy) / det;
    let offset = (sy - slope * sx) / sw;
    // The bounded optimum lies on a bound when the free one is outside; MSD ≥ 0, so at most
    // one bound is active.
    let (slope, offset) = if slope < 0.0 {
        (0.0, sy / sw)
    } else if offset < 0.0 {
        (sxy / sxx, 0.0)
    } else {
        (slope, offset)
    };
    Some((slope / 4.0, offset))
}

/// Diffusion of every class, from the tracks whose majority class it is.
pub fn diffusion(
    tracks: &Tracks,
    class_of: &[Option<usize>],
    detections: &[Detection],
    offsets: &[(f64, f64)],
    classes: usize,
    max_lag: usize,
    seed: u64,
) -> Vec<Diffusion> {
    let segments = tracks_by_class(tracks, class_of);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for c in 0..classes {
        let segs: Vec<&Vec<usize>> = segments.iter().filter(|s| s.0 == c).map(|s| &s.1).collect();
        if segs.is_empty() {
            continue;
        }
        let sums = msd_sums(&segs, detections, offsets, max_lag);
        // Fit the first quarter of the available lags (at least 2): later lags have few pairs.
        let available = sums.iter().skip(1).take_while(|s| s.1 > 0).count();
        let lags = (available / 4).max(2).min(available);
        let Some((d, offset)) = fit_line(&sums, lags) else {
            continue;
        };
        let mut boot = Vec::new();
        for _ in 0..200 {
            let resample: Vec<&Vec<usize>> = (0..segs.len())
                .map(|_| segs[rng.random_range(0..segs.len())])
                .collect();
            if let Some((db, _)) =
                fit_line(&msd_sums(&resample, detections, offsets, max_lag), lags)
            {
                boot.push(db);
            }
        }
        let (_, s) = crate::raster::mean_std(&boot.iter().map(|&v| v as f32).collect::<Vec<_>>());
        boot.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            boot.get(((boot.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(d)
        };
        out.push(Diffusion {
            class: c,
            msd: sums
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, s)| s.1 > 0)
                .map(|(lag, s)| (lag, s.0 / s.1 as f64, s.1))
                .collect(),
            d_px2_per_frame: d,
            d_std_px2_per_frame: s as f64,
            d_upper95_px2_per_frame: quantile(0.95).max(d),
            resolved: segs.len() >= MIN_DIFFUSION_TRACKS && quantile(0.025) > 0.0,
            offset_px2: offset,
            fitted_lags: lags,
            segments: segs.len(),
        });
    }
    out
}

/// Coupling of class `a` to class `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupling {
    pub class_a: usize,
    pub class_b: usize,
    /// Per frame: mean distance (px) from each `a` to its nearest `b`, observed and expected for
    /// `b` placed uniformly at random (`None` where a frame lacks either class).
    pub nearest: Vec<(Option<f64>, Option<f64>)>,
    /// Cross pair-correlation: bin centres (px), g(r) = observed / random pair counts, and the
    /// 2.5–97.5 % envelope of the random placements (same ratio).
    pub r_px: Vec<f64>,
    pub g: Vec<f64>,
    pub envelope: Vec<(f64, f64)>,
    pub random_draws: usize,
}

/// Nearest distances and g(r) of `a` → `b` within the region [lo, hi) of each frame.
#[allow(clippy::too_many_arguments)]
pub fn coupling(
    detections: &[Detection],
    class_of: &[Option<usize>],
    frames: usize,
    a: usize,
    b: usize,
    region: ((f64, f64), (f64, f64)),
    r_max: f64,
    bins: usize,
    draws: usize,
    seed: u64,
) -> Result<Coupling> {
    if bins == 0 || r_max.is_nan() || r_max <= 0.0 || draws == 0 {
        return Err(Error::invalid(
            "coupling: need bins, a positive r_max and draws",
        ));
    }
    let ((x0, y0), (x1, y1)) = region;
    if !(x1 > x0 && y1 > y0) {
        return Err(Error::invalid(
            "coupling: the usable region of the frame is empty",
        ));
    }
    let mut pts_a = vec![Vec::new(); frames];
    let mut pts_b = vec![Vec::new(); frames];
    for (d, c) in detections.iter().zip(class_of) {
        if d.frame >= frames {
            continue;
        }
        let p = (d.x as f64, d.y as f64);
        if *c == Some(a) {
            pts_a[d.frame].push(p);
        }
        if *c == Some(b) {
            pts_b[d.frame].push(p);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dr = r_max / bins as f64;
    let same = a == b;
    let histogram = |pa: &[(f64, f64)], pb: &[(f64, f64)], h: &mut [f64]| {
        for (i, p) in pa.iter().enumerate() {
            for (j, q) in pb.iter().enumerate() {
                if same && i == j {
                    continue;
                }
                let d = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
                if d < r_max {
                    h[(d / dr) as usize] += 1.0;
                }
            }
        }
    };
    let mean_nearest = |pa: &[(f64, f64)], pb: &[(f64, f64)]| -> Option<f64> {
        if pa.is_empty() || pb.is_empty() || (same && pb.len() < 2) {
            return None;
        }
        let mut total = 0.0;
        for (i, p) in pa.iter().enumerate() {
            let m = pb
                .iter()
                .enumerate()
                .filter(|(j, _)| !(same && *j == i))
                .map(|(_, q)| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt())
                .fold(f64::INFINITY, f64::min);
            total += m;
        }
        Some(total / pa.len() as f64)
    };
    let mut observed = vec![0.0; bins];
    let mut random = vec![vec![0.0; bins]; draws];
    let mut nearest = Vec::with_capacity(frames);
    for f in 0..frames {
        let (pa, pb) = (&pts_a[f], &pts_b[f]);
        histogram(pa, pb, &mut observed);
        let mut expected = Vec::new();
        for h in random.iter_mut() {
            let rb: Vec<(f64, f64)> = (0..pb.len())
                .map(|_| (rng.random_range(x0..x1), rng.random_range(y0..y1)))
                .collect();
            // For a self-coupling the "a" points are random too.
            let ra: Vec<(f64, f64)> = if same { rb.clone() } else { pa.clone() };
            histogram(&ra, &rb, h);
            if let Some(m) = mean_nearest(&ra, &rb) {
                expected.push(m);
            }
        }
        let exp =
            (!expected.is_empty()).then(|| expected.iter().sum::<f64>() / expected.len() as f64);
        nearest.push((mean_nearest(pa, pb), exp));
    }
    let mut g = Vec::with_capacity(bins);
    let mut envelope = Vec::with_capacity(bins);
    for k in 0..bins {
        let mut vals: Vec<f64> = random.iter().map(|h| h[k]).collect();
        let mean = vals.iter().sum::<f64>() / draws as f64;
        if mean > 0.0 {
            g.push(observed[k] / mean);
            vals.sort_by(f64::total_cmp);
            let q =
                |p: f64| vals[((p * (draws - 1) as f64).round() as usize).min(draws - 1)] / mean;
            envelope.push((q(0.025), q(0.975)));
        } else {
            g.push(f64::NAN);
            envelope.push((f64::NAN, f64::NAN));
        }
    }
    Ok(Coupling {
        class_a: a,
        class_b: b,
        nearest,
        r_px: (0..bins).map(|k| (k as f64 + 0.5) * dr).collect(),
        g,
        envelope,
        random_draws: draws,
    })
}

/// Transitions between classes along tracks (consecutive frames only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transitions {
    pub counts: Vec<Vec<usize>>,
    /// Row-normalised probabilities (NaN rows where a class was never followed).
    pub probability: Vec<Vec<f64>>,
    /// 95 % Wilson score interval of each probability.
    pub interval: Vec<Vec<(f64, f64)>>,
}

pub fn transitions(
    tracks: &Tracks,
    detections: &[Detection],
    class_of: &[Option<usize>],
    classes: usize,
) -> Transitions {
    let mut counts = vec![vec![0usize; classes]; classes];
    for t in &tracks.tracks {
        for w in t.windows(2) {
            let (a, b) = (w[0], w[1]);
            if detections[b].frame != detections[a].frame + 1 {
                continue;
            }
            if let (Some(ca), Some(cb)) = (class_of[a], class_of[b])
                && ca < classes
                && cb < classes
            {
                counts[ca][cb] += 1;
            }
        }
    }
    let mut probability = vec![vec![f64::NAN; classes]; classes];
    let mut interval = vec![vec![(f64::NAN, f64::NAN); classes]; classes];
    for i in 0..classes {
        let n: usize = counts[i].iter().sum();
        if n == 0 {
            continue;
        }
        for j in 0..classes {
            let p = counts[i][j] as f64 / n as f64;
            probability[i][j] = p;
            interval[i][j] = wilson(counts[i][j], n);
        }
    }
    Transitions {
        counts,
        probability,
        interval,
    }
}

/// 95 % Wilson score interval for k successes in n trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    wilson_of(k as f64, n as f64)
}

/// [`wilson`] for expected (non-integer) counts, as a hidden Markov model gives them.
pub fn wilson_of(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964;
    let p = (k / n).clamp(0.0, 1.0);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Physical constraints on class transitions for the hidden-Markov smoothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarkovConstraints {
    /// Transitions `(from, to)` that cannot happen.
    pub forbidden: Vec<(usize, usize)>,
    /// Transitions `(from, to, factor)` made more (>1) or less (<1) likely.
    pub weights: Vec<(usize, usize, f64)>,
}

impl MarkovConstraints {
    pub fn validate(&self, classes: usize) -> Result<()> {
        for &(a, b) in &self.forbidden {
            if a >= classes || b >= classes {
                return Err(Error::invalid(format!(
                    "forbidden transition {a}→{b} names a class beyond the {classes} found"
                )));
            }
            if a == b {
                return Err(Error::invalid(format!(
                    "staying in class {a} cannot be forbidden"
                )));
            }
        }
        for &(a, b, w) in &self.weights {
            if a >= classes || b >= classes || !(w.is_finite() && w >= 0.0) {
                return Err(Error::invalid(format!(
                    "transition weight {a}→{b} × {w}: classes must exist and the factor be ≥ 0"
                )));
            }
        }
        Ok(())
    }
}

/// The hidden-Markov model's transition matrix: observed counts + 1 (Laplace), constraints
/// applied, rows renormalised.
pub fn hmm_matrix(t: &Transitions, constraints: &MarkovConstraints) -> Vec<Vec<f64>> {
    let k = t.counts.len();
    let mut m: Vec<Vec<f64>> = t
        .counts
        .iter()
        .map(|row| row.iter().map(|&c| c as f64 + 1.0).collect())
        .collect();
    for &(a, b) in &constraints.forbidden {
        m[a][b] = 0.0;
    }
    for &(a, b, w) in &constraints.weights {
        m[a][b] *= w;
    }
    for (i, row) in m.iter_mut().enumerate() {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        } else {
            row.iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = if i == j { 1.0 } else { 0.0 });
        }
    }
    debug_assert_eq!(m.len(), k);
    m
}

/// Viterbi path of one track: `posteriors[i]` are the classifier's class probabilities of its
/// i-th detection (`None`: no patch, uninformative), `prior` the class frequencies. Emissions are
/// posterior / prior (∝ likelihood).
pub fn viterbi(posteriors: &[Option<Vec<f64>>], prior: &[f64], matrix: &[Vec<f64>]) -> Vec<usize> {
    let k = prior.len();
    let n = posteriors.len();
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let ln = |v: f64| if v > 0.0 { v.ln() } else { f64::NEG_INFINITY };
    let emission = |i: usize, c: usize| match &posteriors[i] {
        Some(p) => ln(p[c].max(1e-300)) - ln(prior[c].max(1e-300)),
        None => 0.0,
    };
    let mut score: Vec<f64> = (0..k).map(|c| ln(prior[c]) + emission(0, c)).collect();
    let mut back = vec![vec![0usize; k]; n];
    for (i, back_i) in back.iter_mut().enumerate().skip(1) {
        let mut next = vec![f64::NEG_INFINITY; k];
        for c in 0..k {
            let (mut best, mut arg) = (f64::NEG_INFINITY, c);
            for p in 0..k {
                let s = score[p] + ln(matrix[p][c]);
                if s > best {
                    best = s;
                    arg = p;
                }
            }
            next[c] = best + emission(i, c);
            back_i[c] = arg;
        }
        score = next;
    }
    let mut path = vec![0; n];
    path[n - 1] = super::classify::argmax(score.iter());
    for i in (1..n).rev() {
        path[i - 1] = back[i][path[i]];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-D lattice random walk with known hop rate: D = p·a²/4 in 2-D terms per axis pair.
    #[test]
    fn diffusion_of_a_simulated_random_walk() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (p, a) = (0.2, 10.0f32);
        let mut dets = Vec::new();
        let mut tracks = Vec::new();
        let frames = 60;
        for w in 0..80 {
            let (mut x, mut y) = (1000.0 * w as f32, 0.0f32);
            let mut t = Vec::new();
            for f in 0..frames {
                if f > 0 && rng.random_bool(p) {
                    match rng.random_range(0..4) {
                        0 => x += a,
                        1 => x -= a,
                        2 => y += a,
                        _ => y -= a,
                    }
                }
                t.push(dets.len());
                dets.push(Detection::at(f, x, y));
            }
            tracks.push(t);
        }
        let track_of = tracks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.iter().map(move |_| i))
            .collect();
        let tr = Tracks {
            tracks,
            track_of,
            max_step_px: 20.0,
            gap_links: 0,
        };
        let class_of = vec![Some(0); dets.len()];
        let offsets = vec![(0.0, 0.0); frames];
        let d = diffusion(&tr, &class_of, &dets, &offsets, 1, 20, 1);
        let truth = p * (a * a) as f64 / 4.0;
        assert_eq!(d.len(), 1);
        let got = d[0].d_px2_per_frame;
        assert!((got - truth).abs() < 0.15 * truth, "D {got} vs {truth}");
        assert!(d[0].d_std_px2_per_frame > 0.0 && d[0].d_std_px2_per_frame < 0.3 * truth);
        assert!(d[0].resolved && d[0].d_upper95_px2_per_frame >= got);
    }

    /// One or two moving tracks do not make a D: not resolved, however clear their MSD.
    #[test]
    fn too_few_tracks_are_not_resolved() {
        let mut dets = Vec::new();
        let mut tracks = Vec::new();
        for w in 0..2 {
            let t: Vec<usize> = (0..20)
                .map(|f| {
                    dets.push(Detection::at(f, 100.0 * w as f32 + 3.0 * f as f32, 0.0));
                    dets.len() - 1
                })
                .collect();
            tracks.push(t);
        }
        let track_of = tracks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.iter().map(move |_| i))
            .collect();
        let tr = Tracks {
            tracks,
            track_of,
            max_step_px: 20.0,
            gap_links: 0,
        };
        let class_of = vec![Some(0); dets.len()];
        let d = diffusion(&tr, &class_of, &dets, &vec![(0.0, 0.0); 20], 1, 10, 1);
        assert!(d[0].d_px2_per_frame > 0.0);
        assert_eq!(d[0].segments, 2);
        assert!(!d[0].resolved);
    }

    /// Defects that do not move, seen with a localisation error: D is never negative, and the
    /// bootstrap says it is not resolved, with an upper bound far below a moving defect's.
    #[test]
    fn static_defects_have_no_negative_diffusion() {
        use rand_distr::{Distribution, Normal};
        let noise = Normal::new(0.0f32, 0.7).expect("normal");
        for seed in 0..6 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (frames, n) = (30, 40);
            let mut dets = Vec::new();
            let mut tracks = Vec::new();
            for w in 0..n {
                let t: Vec<usize> = (0..frames)
                    .map(|f| {
                        dets.push(Detection::at(
                            f,
                            100.0 * w as f32 + noise.sample(&mut rng),
                            noise.sample(&mut rng),
                        ));
                        dets.len() - 1
                    })
                    .collect();
                tracks.push(t);
            }
            let track_of = tracks
                .iter()
                .enumerate()
                .flat_map(|(i, t)| t.iter().map(move |_| i))
                .collect();
            let tr = Tracks {
                tracks,
                track_of,
                max_step_px: 5.0,
                gap_links: 0,
            };
            let class_of = vec![Some(0); dets.len()];
            let d = diffusion(
                &tr,
                &class_of,
                &dets,
                &vec![(0.0, 0.0); frames],
                1,
                20,
                seed,
            );
            let d = &d[0];
            assert!(
                d.d_px2_per_frame >= 0.0,
                "seed {seed}: D {}",
                d.d_px2_per_frame
            );
            assert!(d.offset_px2 >= 0.0);
            // A walker of the other test moves 5 px²/frame; these stay far below.
            assert!(
                d.d_upper95_px2_per_frame < 0.05,
                "seed {seed}: bound {}",
                d.d_upper95_px2_per_frame
            );
            assert!(
                !d.resolved || d.d_px2_per_frame < 0.02,
                "seed {seed}: {d:?}"
            );
        }
    }

    #[test]
    fn transitions_count_consecutive_frames_only() {
        let dets: Vec<Detection> = [0, 1, 2, 4, 5]
            .iter()
            .map(|&f| Detection::at(f, 0.0, 0.0))
            .collect();
        let tr = Tracks {
            tracks: vec![vec![0, 1, 2, 3, 4]],
            track_of: vec![0; 5],
            max_step_px: 5.0,
            gap_links: 1,
        };
        let class_of = vec![Some(0), Some(0), Some(1), Some(1), Some(0)];
        let t = transitions(&tr, &dets, &class_of, 2);
        // 0→0, 0→1 (frames 0–2), gap 2→4 skipped, 1→0 (4→5).
        assert_eq!(t.counts, vec![vec![1, 1], vec![1, 0]]);
        assert_eq!(t.probability[0][1], 0.5);
        let (lo, hi) = t.interval[0][1];
        assert!(lo < 0.5 && hi > 0.5 && lo >= 0.0 && hi <= 1.0);
    }

    #[test]
    fn viterbi_removes_a_single_frame_flicker_unless_evidence_is_strong() {
        let prior = [0.5, 0.5];
        let sticky = vec![vec![0.95, 0.05], vec![0.05, 0.95]];
        let weak = |c: usize| {
            Some(if c == 0 {
                vec![0.9, 0.1]
            } else {
                vec![0.1, 0.9]
            })
        };
        let obs = vec![weak(0), weak(0), weak(1), weak(0), weak(0)];
        assert_eq!(viterbi(&obs, &prior, &sticky), vec![0; 5]);
        let strong = vec![
            weak(0),
            weak(0),
            Some(vec![1e-6, 1.0 - 1e-6]),
            weak(0),
            weak(0),
        ];
        assert_eq!(viterbi(&strong, &prior, &sticky), vec![0, 0, 1, 0, 0]);
        // With 0→1 forbidden the path may start in 1 and fall back to 0, never rise to 1.
        let t = Transitions {
            counts: vec![vec![50, 2], vec![2, 50]],
            probability: vec![],
            interval: vec![],
        };
        let c = MarkovConstraints {
            forbidden: vec![(0, 1)],
            weights: vec![],
        };
        let m = hmm_matrix(&t, &c);
        assert_eq!(m[0][1], 0.0);
        let path = viterbi(&strong, &prior, &m);
        assert!(path.windows(2).all(|w| w != [0, 1]), "{path:?}");
        assert!(c.validate(2).is_ok());
        assert!(c.validate(1).is_err());
    }

    #[test]
    fn coupling_sees_pairs_closer_than_random() {
        // Every "a" has a "b" 5 px away; random placement in 200×200 puts b much farther.
        let mut dets = Vec::new();
        let mut class_of = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for f in 0..5 {
            for _ in 0..10 {
                let (x, y) = (
                    rng.random_range(20.0..180.0f32),
                    rng.random_range(20.0..180.0f32),
                );
                dets.push(Detection::at(f, x, y));
                class_of.push(Some(0));
                dets.push(Detection::at(f, x + 5.0, y));
                class_of.push(Some(1));
            }
        }
        let c = coupling(
            &dets,
            &class_of,
            5,
            0,
            1,
            ((0.0, 0.0), (200.0, 200.0)),
            50.0,
            10,
            30,
            1,
        )
        .expect("coupling");
        for (obs, exp) in &c.nearest {
            let (o, e) = (obs.expect("obs"), exp.expect("exp"));
            assert!(o <= 5.0 + 1e-6 && e > 15.0, "{o} vs {e}");
        }
        // The 5-px bin (0–5 or 5–10) towers over random; far bins stay near 1.
        assert!(c.g[0].max(c.g[1]) > 5.0, "{:?}", c.g);
        assert!(c.envelope[1].1 < c.g[0].max(c.g[1]));
        assert!(
            coupling(
                &dets,
                &class_of,
                5,
                0,
                1,
                ((0.0, 0.0), (0.0, 0.0)),
                50.0,
                10,
                30,
                1
            )
            .is_err()
        );
    }

    #[test]
    fn wilson_of_expected_counts_holds_the_rate() {
        let (lo, hi) = wilson_of(10.0, 100.0);
        assert!(lo < 0.1 && hi > 0.1 && lo > 0.04 && hi < 0.18, "{lo} {hi}");
        let (lo, hi) = wilson_of(0.0, 50.0);
        assert!(lo == 0.0 && hi > 0.0 && hi < 0.1, "{lo} {hi}");
    }
}
