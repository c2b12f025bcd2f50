//! Trajectories: one-to-one frame-to-frame linking by linear assignment, then gap closing, as
//! TrackMate's LAP tracker does (Jaqaman et al. 2008), on drift-corrected positions.
//!
//! Costs are squared distances; a detection may stay unlinked at 1.05 × the squared maximum
//! step. Gap closing joins a track that ends in frame f to one that starts in frame f + 2 …
//! f + 1 + `max_gap` within the same maximum distance. Tracks may start in any frame.

use super::lap::sparse_links;
use crate::detect::Detection;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Linking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackConfig {
    /// Largest displacement between linked detections, px; `None` = 1.2 lattice constants when
    /// the lattice is known (a vacancy hop is one lattice constant), else 10 px.
    pub max_step_px: Option<f32>,
    /// Frames a defect may go undetected and still keep its track.
    pub max_gap: usize,
    /// Register frames by cross-correlation and link in drift-corrected coordinates.
    pub register: bool,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            max_step_px: None,
            max_gap: 2,
            register: true,
        }
    }
}

/// Tracks over all detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracks {
    /// Detection indices of each track, in frame order.
    pub tracks: Vec<Vec<usize>>,
    /// Track of each detection.
    pub track_of: Vec<usize>,
    /// The maximum step used, px.
    pub max_step_px: f32,
    /// Links made by gap closing.
    pub gap_links: usize,
}

impl Tracks {
    /// The detection that follows `d` in its track, if any.
    pub fn next(&self, d: usize) -> Option<usize> {
        let t = &self.tracks[self.track_of[d]];
        let pos = t.iter().position(|&x| x == d)?;
        t.get(pos + 1).copied()
    }
}

/// Link `detections` of `frames` frames; `offsets[f]` is frame f's drift (subtracted first).
pub fn link(
    detections: &[Detection],
    offsets: &[(f64, f64)],
    max_step_px: f32,
    max_gap: usize,
) -> Result<Tracks> {
    if !(max_step_px.is_finite() && max_step_px > 0.0) {
        return Err(Error::invalid(format!(
            "the maximum step must be positive, got {max_step_px}"
        )));
    }
    let frames = offsets.len();
    if let Some(d) = detections.iter().find(|d| d.frame >= frames) {
        return Err(Error::invalid(format!(
            "a detection is in frame {} but the drift covers {frames} frames",
            d.frame
        )));
    }
    let pos: Vec<(f64, f64)> = detections.iter().map(|d| registered(d, offsets)).collect();
    let mut by_frame: Vec<Vec<usize>> = vec![Vec::new(); frames];
    for (i, d) in detections.iter().enumerate() {
        by_frame[d.frame].push(i);
    }
    let r = max_step_px as f64;
    let unlinked = 1.05 * r * r;
    let mut next = vec![usize::MAX; detections.len()];
    let mut prev = vec![usize::MAX; detections.len()];
    for f in 1..frames {
        let (a, b) = (&by_frame[f - 1], &by_frame[f]);
        for (s, t) in sparse_links(a.len(), b.len(), &candidates(a, b, &pos, r), unlinked) {
            next[a[s]] = b[t];
            prev[b[t]] = a[s];
        }
    }
    // Gap closing between segment ends and later segment starts.
    let ends: Vec<usize> = (0..detections.len())
        .filter(|&i| next[i] == usize::MAX)
        .collect();
    let starts: Vec<usize> = (0..detections.len())
        .filter(|&i| prev[i] == usize::MAX)
        .collect();
    let mut cand = Vec::new();
    let mut starts_sorted: Vec<usize> = (0..starts.len()).collect();
    starts_sorted.sort_by(|&p, &q| pos[starts[p]].0.total_cmp(&pos[starts[q]].0));
    let xs: Vec<f64> = starts_sorted.iter().map(|&j| pos[starts[j]].0).collect();
    for (ei, &e) in ends.iter().enumerate() {
        let lo = xs.partition_point(|&x| x < pos[e].0 - r);
        for &sj in &starts_sorted[lo..] {
            let s = starts[sj];
            if pos[s].0 > pos[e].0 + r {
                break;
            }
            let gap = detections[s].frame as isize - detections[e].frame as isize;
            if gap < 2 || gap > max_gap as isize + 1 {
                continue;
            }
            let d2 = dist2(pos[e], pos[s]);
            if d2 <= r * r {
                cand.push((ei, sj, d2));
            }
        }
    }
    let gap_pairs = sparse_links(ends.len(), starts.len(), &cand, unlinked);
    for &(ei, sj) in &gap_pairs {
        next[ends[ei]] = starts[sj];
        prev[starts[sj]] = ends[ei];
    }
    let mut tracks = Vec::new();
    let mut track_of = vec![0; detections.len()];
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by_key(|&i| detections[i].frame);
    for &i in &order {
        if prev[i] != usize::MAX {
            continue;
        }
        let mut t = vec![i];
        let mut cur = i;
        while next[cur] != usize::MAX {
            cur = next[cur];
            t.push(cur);
        }
        for &d in &t {
            track_of[d] = tracks.len();
        }
        tracks.push(t);
    }
    Ok(Tracks {
        tracks,
        track_of,
        max_step_px,
        gap_links: gap_pairs.len(),
    })
}

/// Position of `d` in frame-0 coordinates: its frame's drift `offsets[d.frame]` removed.
pub fn registered(d: &Detection, offsets: &[(f64, f64)]) -> (f64, f64) {
    let (ox, oy) = offsets[d.frame];
    (d.x as f64 - ox, d.y as f64 - oy)
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

/// Candidate links (index into `a`, index into `b`, squared distance) within `r`.
fn candidates(a: &[usize], b: &[usize], pos: &[(f64, f64)], r: f64) -> Vec<(usize, usize, f64)> {
    let mut order: Vec<usize> = (0..b.len()).collect();
    order.sort_by(|&p, &q| pos[b[p]].0.total_cmp(&pos[b[q]].0));
    let xs: Vec<f64> = order.iter().map(|&j| pos[b[j]].0).collect();
    let mut out = Vec::new();
    for (i, &da) in a.iter().enumerate() {
        let p = pos[da];
        let lo = xs.partition_point(|&x| x < p.0 - r);
        for &j in &order[lo..] {
            let q = pos[b[j]];
            if q.0 > p.0 + r {
                break;
            }
            let d2 = dist2(p, q);
            if d2 <= r * r {
                out.push((i, j, d2));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_neighbours_are_linked_optimally_and_gaps_closed() {
        // Two defects 10 px apart; in frame 1 the first hops 6 px towards the second, which a
        // greedy nearest-first linker would steal. Frame 2 misses the second; frame 3 has it.
        let dets = vec![
            Detection::at(0, 10.0, 10.0),
            Detection::at(0, 20.0, 10.0),
            Detection::at(1, 16.0, 10.0),
            Detection::at(1, 21.0, 10.5),
            Detection::at(2, 16.5, 10.0),
            Detection::at(3, 16.0, 10.0),
            Detection::at(3, 20.5, 10.0),
            Detection::at(3, 80.0, 80.0),
        ];
        let offsets = vec![(0.0, 0.0); 4];
        let t = link(&dets, &offsets, 8.0, 2).expect("link");
        assert_eq!(t.next(0), Some(2));
        assert_eq!(t.next(1), Some(3));
        assert_eq!(t.next(3), Some(6), "gap closed over frame 2");
        assert_eq!(t.gap_links, 1);
        assert_eq!(t.tracks.len(), 3, "{:?}", t.tracks);
        assert_eq!(t.tracks[t.track_of[7]], vec![7]);
    }

    #[test]
    fn drift_is_removed_before_linking() {
        // The field moves 30 px per frame; the defect does not move on the specimen.
        let dets = vec![
            Detection::at(0, 10.0, 10.0),
            Detection::at(1, 40.0, 10.0),
            Detection::at(2, 70.0, 10.0),
        ];
        let offsets = vec![(0.0, 0.0), (30.0, 0.0), (60.0, 0.0)];
        let t = link(&dets, &offsets, 5.0, 1).expect("link");
        assert_eq!(t.tracks, vec![vec![0, 1, 2]]);
        let unregistered = link(&dets, &[(0.0, 0.0); 3], 5.0, 1).expect("link");
        assert_eq!(unregistered.tracks.len(), 3);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(link(&[], &[(0.0, 0.0)], 0.0, 1).is_err());
        assert!(link(&[Detection::at(4, 1.0, 1.0)], &[(0.0, 0.0)], 3.0, 1).is_err());
        assert!(link(&[], &[], 3.0, 1).expect("empty").tracks.is_empty());
    }
}
