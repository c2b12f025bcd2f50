//! Square windows of the raw frames around each detection.
//!
//! Each frame is standardised (zero mean, unit variance over the frame) so that patches from
//! frames of different brightness compare; the window is sampled bilinearly so that the
//! detection's sub-pixel centre sits exactly at the patch centre, which keeps class means sharp.
//! Windows that would leave the frame, or that hold non-finite values, are skipped and counted.

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::raster::{Raster, mean_std};
use ndarray::Array2;

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

    #[test]
    fn bad_sizes_and_frames_are_errors() {
        let frames = vec![Raster::zeros(10, 10)];
        assert!(extract(&frames, &[], 2).is_err());
        assert!(extract(&frames, &[], 11).is_err());
        assert!(extract(&frames, &[Detection::at(3, 5.0, 5.0)], 4).is_err());
    }
}
