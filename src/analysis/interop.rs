//! Results in the formats of the tools microscopists already use: tracks as TrackMate XML
//! (Fiji), detections as a napari points table, and the frames with the defects' labels as an
//! ImageJ hyperstack.

use super::DefectAnalysis;
use crate::detect::Detection;
use crate::error::Result;
use crate::export::{csv_quoted, xml_escape};
use crate::movie::Calibration;
use crate::raster::Raster;
use std::fmt::Write;

/// `tracks.xml`: every classified detection a TrackMate spot (position in nm and s when
/// calibrated, else px and frames; its class as the feature CLASS), every track a TrackMate
/// track of edges between consecutive spots, and the image's size and calibration in Settings.
pub fn trackmate_xml(
    a: &DefectAnalysis,
    detections: &[Detection],
    source: &std::path::Path,
) -> String {
    let px = a.pixel_size_nm.unwrap_or(1.0);
    let dt = a.frame_interval_s.unwrap_or(1.0);
    let (space, time) = (
        if a.pixel_size_nm.is_some() {
            "nm"
        } else {
            "pixel"
        },
        if a.frame_interval_s.is_some() {
            "s"
        } else {
            "frame"
        },
    );
    let radius = |d: &Detection| (d.area.max(1) as f64 / std::f64::consts::PI).sqrt() * px;
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TrackMate version=\"7.13.2\">\n",
    );
    let _ = writeln!(s, "  <Model spatialunits=\"{space}\" timeunits=\"{time}\">");
    s.push_str(FEATURES);
    let _ = writeln!(s, "    <AllSpots nspots=\"{}\">", detections.len());
    for f in 0..a.frames {
        let _ = writeln!(s, "      <SpotsInFrame frame=\"{f}\">");
        for (i, d) in detections.iter().enumerate().filter(|(_, d)| d.frame == f) {
            let class = a.class.get(i).copied().flatten().map_or(-1, |c| c as i64);
            let _ = writeln!(
                s,
                "        <Spot ID=\"{i}\" name=\"ID{i}\" POSITION_X=\"{}\" POSITION_Y=\"{}\" POSITION_Z=\"0.0\" POSITION_T=\"{}\" FRAME=\"{f}\" RADIUS=\"{}\" QUALITY=\"{}\" VISIBILITY=\"1\" CLASS=\"{class}\" />",
                f64::from(d.x) * px,
                f64::from(d.y) * px,
                f as f64 * dt,
                radius(d),
                d.score
            );
        }
        s.push_str("      </SpotsInFrame>\n");
    }
    s.push_str("    </AllSpots>\n    <AllTracks>\n");
    let tracks: Vec<(usize, &Vec<usize>)> = a
        .tracks
        .tracks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.len() >= 2)
        .collect();
    for &(id, t) in &tracks {
        let (first, last) = (detections[t[0]].frame, detections[t[t.len() - 1]].frame);
        let _ = writeln!(
            s,
            "      <Track name=\"Track_{id}\" TRACK_ID=\"{id}\" TRACK_INDEX=\"{id}\" NUMBER_SPOTS=\"{}\" NUMBER_GAPS=\"{}\" TRACK_START=\"{}\" TRACK_STOP=\"{}\" TRACK_DURATION=\"{}\">",
            t.len(),
            t.windows(2)
                .filter(|w| detections[w[1]].frame > detections[w[0]].frame + 1)
                .count(),
            first as f64 * dt,
            last as f64 * dt,
            (last - first) as f64 * dt
        );
        for w in t.windows(2) {
            let (p, q) = (&detections[w[0]], &detections[w[1]]);
            let step = (f64::from(q.x - p.x).hypot(f64::from(q.y - p.y))) * px;
            let _ = writeln!(
                s,
                "        <Edge SPOT_SOURCE_ID=\"{}\" SPOT_TARGET_ID=\"{}\" LINK_COST=\"{step}\" DISPLACEMENT=\"{step}\" />",
                w[0], w[1]
            );
        }
        s.push_str("      </Track>\n");
    }
    s.push_str("    </AllTracks>\n    <FilteredTracks>\n");
    for &(id, _) in &tracks {
        let _ = writeln!(s, "      <TrackID TRACK_ID=\"{id}\" />");
    }
    s.push_str("    </FilteredTracks>\n  </Model>\n  <Settings>\n");
    let (w, h) = a.frame_size;
    let name = source
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let folder = source
        .parent()
        .map_or(String::new(), |p| p.display().to_string());
    let _ = writeln!(
        s,
        "    <ImageData filename=\"{}\" folder=\"{}\" width=\"{w}\" height=\"{h}\" nslices=\"1\" nframes=\"{}\" pixelwidth=\"{px}\" pixelheight=\"{px}\" voxeldepth=\"1.0\" timeinterval=\"{dt}\" />",
        xml_escape(&name),
        xml_escape(&folder),
        a.frames
    );
    let _ = writeln!(
        s,
        "    <BasicSettings xstart=\"0\" xend=\"{}\" ystart=\"0\" yend=\"{}\" zstart=\"0\" zend=\"0\" tstart=\"0\" tend=\"{}\" />",
        w.saturating_sub(1),
        h.saturating_sub(1),
        a.frames.saturating_sub(1)
    );
    s.push_str("  </Settings>\n</TrackMate>\n");
    s
}

/// The spot, edge and track features written, declared as TrackMate expects.
const FEATURES: &str = r#"    <FeatureDeclarations>
      <SpotFeatures>
        <Feature feature="QUALITY" name="Quality" shortname="Quality" dimension="QUALITY" isint="false" />
        <Feature feature="POSITION_X" name="X" shortname="X" dimension="POSITION" isint="false" />
        <Feature feature="POSITION_Y" name="Y" shortname="Y" dimension="POSITION" isint="false" />
        <Feature feature="POSITION_Z" name="Z" shortname="Z" dimension="POSITION" isint="false" />
        <Feature feature="POSITION_T" name="T" shortname="T" dimension="TIME" isint="false" />
        <Feature feature="FRAME" name="Frame" shortname="Frame" dimension="NONE" isint="true" />
        <Feature feature="RADIUS" name="Radius" shortname="R" dimension="LENGTH" isint="false" />
        <Feature feature="VISIBILITY" name="Visibility" shortname="Visibility" dimension="NONE" isint="true" />
        <Feature feature="CLASS" name="Defect class" shortname="Class" dimension="NONE" isint="true" />
      </SpotFeatures>
      <EdgeFeatures>
        <Feature feature="SPOT_SOURCE_ID" name="Source spot ID" shortname="Source ID" dimension="NONE" isint="true" />
        <Feature feature="SPOT_TARGET_ID" name="Target spot ID" shortname="Target ID" dimension="NONE" isint="true" />
        <Feature feature="LINK_COST" name="Edge cost" shortname="Cost" dimension="COST" isint="false" />
        <Feature feature="DISPLACEMENT" name="Displacement" shortname="Disp." dimension="LENGTH" isint="false" />
      </EdgeFeatures>
      <TrackFeatures>
        <Feature feature="TRACK_INDEX" name="Track index" shortname="Index" dimension="NONE" isint="true" />
        <Feature feature="TRACK_ID" name="Track ID" shortname="ID" dimension="NONE" isint="true" />
        <Feature feature="NUMBER_SPOTS" name="Number of spots in track" shortname="N spots" dimension="NONE" isint="true" />
        <Feature feature="NUMBER_GAPS" name="Number of gaps" shortname="N gaps" dimension="NONE" isint="true" />
        <Feature feature="TRACK_START" name="Track start" shortname="Track start" dimension="TIME" isint="false" />
        <Feature feature="TRACK_STOP" name="Track stop" shortname="Track stop" dimension="TIME" isint="false" />
        <Feature feature="TRACK_DURATION" name="Track duration" shortname="Duration" dimension="TIME" isint="false" />
      </TrackFeatures>
    </FeatureDeclarations>
"#;

/// `points_napari.csv`: napari's points table (`index`, `axis-0` = frame, `axis-1` = y,
/// `axis-2` = x in px) with the class, its name, the score and the track as features.
pub fn napari_points_csv(a: &DefectAnalysis, detections: &[Detection]) -> String {
    let mut s = String::from("index,axis-0,axis-1,axis-2,class,class_name,score,track\n");
    for (i, d) in detections.iter().enumerate() {
        let class = a.class.get(i).copied().flatten();
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{},{},{}",
            d.frame,
            d.y,
            d.x,
            class.map_or(-1, |c| c as i64),
            class.map_or(String::new(), |c| csv_quoted(&a.class_name(c))),
            d.score,
            a.tracks
                .track_of
                .get(i)
                .map_or(String::new(), |t| t.to_string())
        );
    }
    s
}

/// `movie_labels.tif`: an ImageJ hyperstack of two channels, the frames and their defects'
/// labels (a disc of each detection's area, valued class + 1; unclassified detections take
/// the number of classes + 1; 0 elsewhere), with the movie's calibration.
pub fn labelled_hyperstack(
    a: &DefectAnalysis,
    detections: &[Detection],
    frames: &[Raster],
    cal: &Calibration,
) -> Result<Vec<u8>> {
    let unclassified = (a.classes() + 1) as f32;
    let labels: Vec<Raster> = frames
        .iter()
        .enumerate()
        .map(|(f, frame)| {
            let mut l = Raster::zeros(frame.width, frame.height);
            for (i, d) in detections.iter().enumerate().filter(|(_, d)| d.frame == f) {
                let value = a
                    .class
                    .get(i)
                    .copied()
                    .flatten()
                    .map_or(unclassified, |c| (c + 1) as f32);
                let r = (d.area.max(1) as f32 / std::f32::consts::PI).sqrt();
                let (x0, x1) = (
                    (d.x - r).floor().max(0.0) as usize,
                    (d.x + r).ceil() as usize,
                );
                let (y0, y1) = (
                    (d.y - r).floor().max(0.0) as usize,
                    (d.y + r).ceil() as usize,
                );
                for y in y0..=y1.min(frame.height.saturating_sub(1)) {
                    for x in x0..=x1.min(frame.width.saturating_sub(1)) {
                        if (x as f32 - d.x).hypot(y as f32 - d.y) <= r {
                            l.set(x, y, value);
                        }
                    }
                }
            }
            l
        })
        .collect();
    crate::movie::write_hyperstack_f32(frames, &labels, cal)
}
