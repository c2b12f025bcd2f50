//! Extended defects: blobs of the probability map larger than a point defect's (pores, damaged
//! or amorphous patches) kept as regions with an area, a perimeter and a centroid per frame,
//! followed through the movie, with their growth rate.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One extended defect in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub frame: usize,
    /// Probability-weighted centroid, px.
    pub x: f32,
    pub y: f32,
    pub area_px: usize,
    /// Boundary length, px (exposed pixel edges × π/4).
    pub perimeter_px: f32,
    /// Highest probability in the region.
    pub score: f32,
}

impl Region {
    /// Radius of the disk of the same area, px.
    pub fn radius_px(&self) -> f32 {
        (self.area_px as f32 / std::f32::consts::PI).sqrt()
    }
}

/// The connected areas of a 0/1 pixel mask of one frame as regions (score 1), measured as the
/// network's blobs are: the lattice side's lattice-free areas.
pub fn regions_of_mask(mask: &[bool], width: usize, height: usize, frame: usize) -> Vec<Region> {
    let data = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let Ok(map) = crate::raster::Raster::from_vec(width, height, data) else {
        return Vec::new();
    };
    let cfg = super::LocalizeConfig {
        min_area_px: 1,
        ..Default::default()
    };
    super::localize(&map, frame, &cfg, 0).regions
}

/// One region followed through frames, and how fast it grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionTrack {
    /// Indices into the regions, one per frame, in time order.
    pub members: Vec<usize>,
    /// Least-squares slope of area against frame, px²/frame, and its standard error (`None`
    /// with fewer than three frames: no error can be said).
    pub growth_px2_per_frame: Option<(f64, f64)>,
}

impl RegionTrack {
    /// The growth rate for a reader: nm²/s when the movie is calibrated, px²/frame otherwise,
    /// with its standard error; or why there is none.
    pub fn growth_text(&self, pixel_size_nm: Option<f64>, frame_interval_s: Option<f64>) -> String {
        match (
            self.growth_px2_per_frame,
            pixel_size_nm.zip(frame_interval_s),
        ) {
            (Some((g, e)), Some((p, dt))) => {
                format!("{:.4} ± {:.4} nm²/s", g * p * p / dt, e * p * p / dt)
            }
            (Some((g, e)), None) => format!("{g:.1} ± {e:.1} px²/frame"),
            (None, _) => "growth needs ≥ 3 frames".into(),
        }
    }
}

/// Link regions frame to frame: a region continues the nearest region of the previous frame
/// whose centroid lies within the larger of their equivalent radii (a pore that grows or
/// drifts stays one region; two pores far apart stay two). Regions are taken in time order.
pub fn region_tracks(regions: &[Region]) -> Vec<RegionTrack> {
    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by_key(|&i| regions[i].frame);
    let mut tracks: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let r = &regions[i];
        let best = tracks
            .iter()
            .enumerate()
            .filter_map(|(k, t)| {
                let last = &regions[*t.last()?];
                let d = (last.x - r.x).hypot(last.y - r.y);
                (last.frame + 1 == r.frame && d <= last.radius_px().max(r.radius_px()))
                    .then_some((k, d))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((k, _)) => tracks[k].push(i),
            None => tracks.push(vec![i]),
        }
    }
    tracks
        .into_iter()
        .map(|members| {
            let growth = growth(&members, regions);
            RegionTrack {
                members,
                growth_px2_per_frame: growth,
            }
        })
        .collect()
}

/// Slope of area against frame and its standard error, from three frames on.
fn growth(members: &[usize], regions: &[Region]) -> Option<(f64, f64)> {
    let n = members.len();
    if n < 3 {
        return None;
    }
    let pts: Vec<(f64, f64)> = members
        .iter()
        .map(|&i| (regions[i].frame as f64, regions[i].area_px as f64))
        .collect();
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n as f64,
        pts.iter().map(|p| p.1).sum::<f64>() / n as f64,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let residual: f64 = pts
        .iter()
        .map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2))
        .sum();
    let se = (residual / (n as f64 - 2.0) / sxx).sqrt();
    Some((slope, se))
}

/// `regions.csv`: every region in every frame with its track; areas also in nm² when the pixel
/// size is known.
pub fn regions_csv(
    regions: &[Region],
    tracks: &[RegionTrack],
    pixel_size_nm: Option<f64>,
) -> String {
    let mut track_of = vec![0usize; regions.len()];
    for (k, t) in tracks.iter().enumerate() {
        for &i in &t.members {
            track_of[i] = k;
        }
    }
    let mut s =
        String::from("frame,x_px,y_px,area_px,perimeter_px,area_nm2,perimeter_nm,score,region\n");
    for (r, k) in regions.iter().zip(&track_of) {
        let (a, p) = match pixel_size_nm {
            Some(px) => (
                format!("{:.4}", r.area_px as f64 * px * px),
                format!("{:.4}", r.perimeter_px as f64 * px),
            ),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "{},{:.2},{:.2},{},{:.1},{a},{p},{:.3},{k}",
            r.frame, r.x, r.y, r.area_px, r.perimeter_px, r.score
        );
    }
    s
}

/// `region_growth.csv`: per region, its frames, first and last area and growth rate (px² per
/// frame, and nm²/s when calibrated) with its standard error.
pub fn growth_csv(
    regions: &[Region],
    tracks: &[RegionTrack],
    pixel_size_nm: Option<f64>,
    frame_interval_s: Option<f64>,
) -> String {
    let mut s = String::from(
        "region,first_frame,last_frame,frames,first_area_px,last_area_px,growth_px2_per_frame,growth_se,growth_nm2_per_s,growth_se_nm2_per_s\n",
    );
    let scale = pixel_size_nm
        .zip(frame_interval_s)
        .map(|(px, dt)| px * px / dt);
    for (k, t) in tracks.iter().enumerate() {
        let (Some(&a), Some(&b)) = (t.members.first(), t.members.last()) else {
            continue;
        };
        let (g, e, gs, es) = match (t.growth_px2_per_frame, scale) {
            (Some((g, e)), Some(k)) => (
                format!("{g:.3}"),
                format!("{e:.3}"),
                format!("{:.5}", g * k),
                format!("{:.5}", e * k),
            ),
            (Some((g, e)), None) => (
                format!("{g:.3}"),
                format!("{e:.3}"),
                String::new(),
                String::new(),
            ),
            // Fewer than three frames: no rate can be told.
            (None, _) => Default::default(),
        };
        let _ = writeln!(
            s,
            "{k},{},{},{},{},{},{g},{e},{gs},{es}",
            regions[a].frame,
            regions[b].frame,
            t.members.len(),
            regions[a].area_px,
            regions[b].area_px
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(frame: usize, x: f32, area: usize) -> Region {
        Region {
            frame,
            x,
            y: 50.0,
            area_px: area,
            perimeter_px: 0.0,
            score: 0.9,
        }
    }

    #[test]
    fn a_growing_pore_is_one_region_with_its_growth() {
        // A pore growing by 40 px² per frame, drifting a pixel per frame, and a second one far
        // away that appears later.
        let mut rs: Vec<Region> = (0..8)
            .map(|f| region(f, 100.0 + f as f32, 300 + 40 * f))
            .collect();
        rs.extend((5..8).map(|f| region(f, 300.0, 200)));
        let t = region_tracks(&rs);
        assert_eq!(t.len(), 2);
        let (g, se) = t[0].growth_px2_per_frame.expect("eight frames");
        assert!((g - 40.0).abs() < 1e-9 && se < 1e-6, "{g} ± {se}");
        let (g2, _) = t[1].growth_px2_per_frame.expect("three frames");
        assert!(g2.abs() < 1e-9);
        let csv = growth_csv(&rs, &t, Some(0.01), Some(2.0));
        assert!(
            csv.lines()
                .nth(1)
                .is_some_and(|l| l.contains(",40.000,") && l.contains("0.00200"))
        );
        // Two frames say nothing about a rate.
        let t = region_tracks(&rs[..2]);
        assert_eq!(t[0].growth_px2_per_frame, None);
    }
}
