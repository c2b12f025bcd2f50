//! Square windows of the raw frames around each detection.
//!
//! Each frame is standardised (zero mean, unit variance over the frame) so that patches from
//! frames of different brightness compare; the window is sampled bilinearly so that the
//! detection's sub-pixel centre sits exactly at the patch centre, which keeps class means sharp.
//! Windows that would leave the frame, or that hold non-finite values, are skipped and counted.
//!
//! Reference sites: the same lattice site as a defect, two to three lattice constants away, in
//! the same frame and clear of every detection. Their patches share the defect's noise, its
//! local contamination and the lattice's registration jitter, without the defect: they are the
//! null a class's variation is tested against (see [`super::pca::Null`]).

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::raster::{Raster, mean_std};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Intact lattice sites equivalent to each patch centre.
#[derive(Debug, Clone, Default)]
pub struct References {
    pub centres: Vec<Detection>,
    /// Index into the patch centres of each reference.
    pub of: Vec<usize>,
}

/// Most reference sites kept per patch centre.
pub const REFERENCES_PER_SITE: usize = 4;

/// Up to [`REFERENCES_PER_SITE`] reference sites for each of `centres`: the centre moved by a
/// lattice vector `m a1 + n a2` of length 2–3 `|a1|`, whose `size`-px window lies inside the
/// `width`×`height` frame and holds no centre of the same frame (within 3 px of its edge).
pub fn reference_sites(
    centres: &[Detection],
    a1: [f32; 2],
    a2: [f32; 2],
    (width, height): (usize, usize),
    size: usize,
    seed: u64,
) -> References {
    let a = a1[0].hypot(a1[1]);
    let mut shifts = Vec::new();
    for m in -3i32..=3 {
        for n in -3i32..=3 {
            let v = [
                m as f32 * a1[0] + n as f32 * a2[0],
                m as f32 * a1[1] + n as f32 * a2[1],
            ];
            let len = v[0].hypot(v[1]);
            if len >= 1.99 * a && len <= 3.01 * a {
                shifts.push(v);
            }
        }
    }
    let half = (size as f32 - 1.0) / 2.0;
    let clear = half + 3.0;
    let mut by_frame: Vec<Vec<[f32; 2]>> = Vec::new();
    for d in centres {
        if by_frame.len() <= d.frame {
            by_frame.resize(d.frame + 1, Vec::new());
        }
        by_frame[d.frame].push([d.x, d.y]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0ef5_17e5);
    let mut out = References::default();
    for (k, d) in centres.iter().enumerate() {
        let others = &by_frame[d.frame];
        let mut ok: Vec<[f32; 2]> = shifts
            .iter()
            .map(|v| [d.x + v[0], d.y + v[1]])
            .filter(|p| {
                p[0] - half >= 0.0
                    && p[1] - half >= 0.0
                    && p[0] + half <= (width - 1) as f32
                    && p[1] + half <= (height - 1) as f32
                    && others
                        .iter()
                        .all(|o| (o[0] - p[0]).abs() > clear || (o[1] - p[1]).abs() > clear)
            })
            .collect();
        ok.shuffle(&mut rng);
        for p in ok.into_iter().take(REFERENCES_PER_SITE) {
            out.centres.push(Detection {
                x: p[0],
                y: p[1],
                ..*d
            });
            out.of.push(k);
        }
    }
    out
}

/// Patches of all usable detections, one flattened row each (row-major, `size`×`size`).
#[derive(Debug, Clone)]
pub struct Patches {
    pub size: usize,
    /// `n × size²`.
    pub data: Array2<f64>,
    /// Index into the detections of each row.
    pub detection: Vec<usize>,
    /// Detections whose window crosses the frame edge.
    pub skipped_edge: usize,
    /// Detections whose window holds NaN or ±∞.
    pub skipped_nonfinite: usize,
}

impl Patches {
    pub fn len(&self) -> usize {
        self.detection.len()
    }

    pub fn is_empty(&self) -> bool {
        self.detection.is_empty()
    }

    /// Row `i` as an image.
    pub fn image(&self, i: usize) -> Raster {
        raster_from_row(self.data.row(i).iter().copied(), self.size)
    }
}

/// A flattened square image back to a raster.
pub fn raster_from_row(values: impl Iterator<Item = f64>, size: usize) -> Raster {
    Raster {
        width: size,
        height: size,
        data: values.map(|v| v as f32).collect(),
    }
}

/// The `size`×`size` window of `frame` centred on (x, y), bilinearly sampled.
pub fn window(frame: &Raster, x: f32, y: f32, size: usize) -> Raster {
    let half = (size as f32 - 1.0) / 2.0;
    let mut out = Raster::zeros(size, size);
    for j in 0..size {
        for i in 0..size {
            out.set(i, j, frame.sample(x - half + i as f32, y - half + j as f32));
        }
    }
    out
}

/// Cut a `size`×`size` window around every detection.
pub fn extract(frames: &[Raster], detections: &[Detection], size: usize) -> Result<Patches> {
    if size < 4 {
        return Err(Error::invalid(format!(
            "patch size must be at least 4 px, got {size}"
        )));
    }
    if let Some(f) = frames.first()
        && (size > f.width || size > f.height)
    {
        return Err(Error::invalid(format!(
            "patch size {size} px is larger than the {}x{} px frames",
            f.width, f.height
        )));
    }
    // Frame statistics over finite pixels only, so one bad pixel spoils only its own patches.
    let stats: Vec<(f32, f32)> = frames
        .iter()
        .map(|f| {
            let finite: Vec<f32> = f.data.iter().copied().filter(|v| v.is_finite()).collect();
            mean_std(&finite)
        })
        .collect();
    let half = (size as f32 - 1.0) / 2.0;
    let mut rows: Vec<f64> = Vec::with_capacity(detections.len() * size * size);
    let mut detection = Vec::new();
    let (mut skipped_edge, mut skipped_nonfinite) = (0, 0);
    for (k, d) in detections.iter().enumerate() {
        let frame = frames.get(d.frame).ok_or_else(|| {
            Error::invalid(format!(
                "detection {k} is in frame {} but the movie has {} frames",
                d.frame,
                frames.len()
            ))
        })?;
        let (x0, y0) = (d.x - half, d.y - half);
        let inside = x0 >= 0.0
            && y0 >= 0.0
            && x0 + size as f32 - 1.0 <= (frame.width - 1) as f32
            && y0 + size as f32 - 1.0 <= (frame.height - 1) as f32;
        if !inside || !d.x.is_finite() || !d.y.is_finite() {
            skipped_edge += 1;
            continue;
        }
        let (mean, std) = stats[d.frame];
        let inv = if std > 0.0 { 1.0 / std } else { 0.0 };
        let start = rows.len();
        rows.extend(
            window(frame, d.x, d.y, size)
                .data
                .iter()
                .map(|&v| ((v - mean) * inv) as f64),
        );
        if rows[start..].iter().any(|v| !v.is_finite()) {
            rows.truncate(start);
            skipped_nonfinite += 1;
            continue;
        }
        detection.push(k);
    }
    let data = Array2::from_shape_vec((detection.len(), size * size), rows)
        .map_err(|e| Error::invalid(format!("patches: {e}")))?;
    Ok(Patches {
        size,
        data,
        detection,
        skipped_edge,
        skipped_nonfinite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_the_detection_and_counts_edge_and_nan_cases() {
        // A single bright pixel at (20, 15) in a 40×30 frame.
        let mut f = Raster::zeros(40, 30);
        f.set(20, 15, 100.0);
        let mut bad = f.clone();
        bad.set(5, 5, f32::NAN);
        let frames = vec![f, bad];
        let dets = [
            Detection::at(0, 20.0, 15.0),
            Detection::at(0, 1.0, 15.0),
            Detection::at(1, 6.0, 6.0),
            Detection::at(1, 30.0, 20.0),
        ];
        let p = extract(&frames, &dets, 5).expect("extract");
        assert_eq!(p.detection, vec![0, 3]);
        assert_eq!((p.skipped_edge, p.skipped_nonfinite), (1, 1));
        let img = p.image(0);
        let (_, hi) = img.min_max();
        assert_eq!(
            img.get(2, 2),
            hi,
            "the bright pixel sits at the patch centre"
        );
    }

    /// Reference sites are the centre moved by lattice vectors 2–3 constants long, inside the
    /// frame, clear of the frame's other centres, at most four per centre, in the same frame.
    #[test]
    fn reference_sites_are_clear_lattice_translations() {
        let (a1, a2) = ([20.0f32, 0.0], [10.0f32, 17.320_508]);
        let centres = vec![
            Detection::at(0, 100.0, 100.0),
            Detection::at(0, 140.0, 100.0),
            Detection::at(1, 20.0, 20.0),
        ];
        let r = reference_sites(&centres, a1, a2, (200, 200), 16, 7);
        assert!(!r.centres.is_empty());
        for k in 0..centres.len() {
            assert!(r.of.iter().filter(|&&o| o == k).count() <= REFERENCES_PER_SITE);
        }
        // The centre near the corner has fewer candidates inside the frame, but some.
        assert!(r.of.contains(&2));
        for (d, &k) in r.centres.iter().zip(&r.of) {
            let c = centres[k];
            assert_eq!(d.frame, c.frame);
            let (dx, dy) = (d.x - c.x, d.y - c.y);
            // Integer coordinates in the basis (a1, a2).
            let n = dy / a2[1];
            let m = (dx - n * a2[0]) / a1[0];
            assert!((n - n.round()).abs() < 1e-3 && (m - m.round()).abs() < 1e-3);
            let len = dx.hypot(dy);
            assert!((39.0..=61.0).contains(&len), "{len}");
            assert!(d.x >= 7.5 && d.y >= 7.5 && d.x <= 191.5 && d.y <= 191.5);
            for o in centres.iter().filter(|o| o.frame == d.frame) {
                assert!((o.x - d.x).abs() > 10.5 || (o.y - d.y).abs() > 10.5);
            }
        }
    }

    #[test]
    fn bad_sizes_and_frames_are_errors() {
        let frames = vec![Raster::zeros(10, 10)];
        assert!(extract(&frames, &[], 2).is_err());
        assert!(extract(&frames, &[], 11).is_err());
        assert!(extract(&frames, &[Detection::at(3, 5.0, 5.0)], 4).is_err());
    }
}
