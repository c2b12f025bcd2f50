//! Inference over frames and localisation of defects in the probability maps.
//!
//! Frames are standardised like the training crops, padded (edge-replicated) to a multiple of the
//! network's downsampling, run through the network in batches (on the CPU through
//! [`crate::model::cpu`]), and turned into probability maps.
//! Localisation: threshold → 8-connected components → drop blobs smaller than `min_area_px` or
//! larger than `max_area_px` (holes, amorphous damage) → probability-weighted centre of mass →
//! drop points within `edge_margin_px` of the border. Dropped blobs are counted, never silent.

mod regions;
pub use regions::{Region, RegionTrack, growth_csv, region_tracks, regions_csv, regions_of_mask};

use crate::error::{Error, Result};
use crate::jobs::{Event, JobCtx};
use crate::model::cpu::CpuNet;
use crate::model::{ModelConfig, Net};
use crate::raster::Raster;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// One detected defect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub frame: usize,
    /// Column, 0-based, pixel centres at integers.
    pub x: f32,
    /// Row.
    pub y: f32,
    /// Blob area in pixels.
    pub area: usize,
    /// Highest probability in the blob.
    pub score: f32,
}

#[cfg(test)]
impl Detection {
    /// A detection at (x, y) of `frame` with a typical area and score, for tests.
    pub(crate) fn at(frame: usize, x: f32, y: f32) -> Self {
        Detection {
            frame,
            x,
            y,
            area: 10,
            score: 0.9,
        }
    }
}

/// How probability maps become points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalizeConfig {
    pub threshold: f32,
    pub min_area_px: usize,
    /// Largest blob kept; 0 = automatic (8 × the area of a label disk).
    pub max_area_px: usize,
    pub edge_margin_px: f32,
}

impl Default for LocalizeConfig {
    fn default() -> Self {
        LocalizeConfig {
            threshold: 0.5,
            min_area_px: 4,
            max_area_px: 0,
            edge_margin_px: 4.0,
        }
    }
}

impl LocalizeConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(Error::invalid(format!(
                "detection threshold must be in (0, 1), got {}",
                self.threshold
            )));
        }
        if self.edge_margin_px.is_nan() || self.edge_margin_px < 0.0 {
            return Err(Error::invalid("edge margin must be ≥ 0"));
        }
        if self.max_area_px != 0 && self.max_area_px < self.min_area_px {
            return Err(Error::invalid("maximum blob area is below the minimum"));
        }
        Ok(())
    }

    /// The maximum area to use, resolving "automatic" from the label disk radius.
    pub fn max_area(&self, mask_radius_px: f32) -> usize {
        if self.max_area_px > 0 {
            self.max_area_px
        } else {
            (8.0 * std::f32::consts::PI * mask_radius_px * mask_radius_px).ceil() as usize
        }
    }
}

/// What the probability maps held: point defects, extended regions, and what was dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Localized {
    pub detections: Vec<Detection>,
    /// Blobs larger than a point defect's (pores, damaged areas): kept as regions.
    pub regions: Vec<Region>,
    pub dropped: Dropped,
}

impl Localized {
    fn add(&mut self, o: Localized) {
        self.detections.extend(o.detections);
        self.regions.extend(o.regions);
        self.dropped.add(o.dropped);
    }
}

/// Counts of blobs that were dropped, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub too_small: usize,
    pub near_edge: usize,
}

impl Dropped {
    pub fn add(&mut self, o: Dropped) {
        self.too_small += o.too_small;
        self.near_edge += o.near_edge;
    }
}

/// Probability maps of `frames` (all of equal size) in one forward pass: on the CPU through
/// [`CpuNet`], elsewhere through burn.
pub fn probability_maps(
    net: &Net,
    model: &ModelConfig,
    device: &Device,
    frames: &[Raster],
) -> Result<Vec<Raster>> {
    if *device == Device::flex() {
        cpu_maps(&CpuNet::new(net)?, model, frames)
    } else {
        burn_maps(net, model, device, frames)
    }
}

/// The network input of `frames`: prepared, edge-padded to a multiple of the downsampling,
/// concatenated; with the padded width and height.
fn network_input(model: &ModelConfig, frames: &[Raster]) -> (Vec<f32>, usize, usize) {
    let Some(first) = frames.first() else {
        return (Vec::new(), 0, 0);
    };
    let (w, h) = (first.width, first.height);
    let d = model.downsampling();
    let (pw, ph) = (w.div_ceil(d) * d, h.div_ceil(d) * d);
    let mut data = Vec::with_capacity(frames.len() * pw * ph);
    for f in frames {
        let s = model.prepare(f);
        for y in 0..ph {
            for x in 0..pw {
                data.push(s.get(x.min(w - 1), y.min(h - 1)));
            }
        }
    }
    (data, pw, ph)
}

/// Cut the frames' maps out of the padded probabilities.
fn maps_of(probs: &[f32], frames: &[Raster], pw: usize, ph: usize) -> Vec<Raster> {
    frames
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let (w, h) = (f.width, f.height);
            let mut map = Raster::zeros(w, h);
            for y in 0..h {
                let src = k * pw * ph + y * pw;
                map.data[y * w..(y + 1) * w].copy_from_slice(&probs[src..src + w]);
            }
            map
        })
        .collect()
}

fn cpu_maps(cpu: &CpuNet, model: &ModelConfig, frames: &[Raster]) -> Result<Vec<Raster>> {
    let (data, pw, ph) = network_input(model, frames);
    let mut probs = Vec::with_capacity(data.len());
    for image in data.chunks_exact((pw * ph).max(1)) {
        let logits = cpu.forward(ph, pw, image.to_vec())?;
        probs.extend(logits.into_iter().map(|v| 1.0 / (1.0 + (-v).exp())));
    }
    Ok(maps_of(&probs, frames, pw, ph))
}

fn burn_maps(
    net: &Net,
    model: &ModelConfig,
    device: &Device,
    frames: &[Raster],
) -> Result<Vec<Raster>> {
    let (data, pw, ph) = network_input(model, frames);
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let x = Tensor::<4>::from_data(TensorData::new(data, [frames.len(), 1, ph, pw]), device);
    let probs = sigmoid(net.forward(x))
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("could not read back probabilities: {e:?}")))?;
    Ok(maps_of(&probs, frames, pw, ph))
}

/// Detect defects in every frame, streaming `batch` frames at a time through the network so that
/// only one batch of probability maps is held in memory. Each frame's map is handed to
/// `on_map(frame, map)` as it is made (the GUI keeps them for its overlay; others pass a no-op).
///
/// On a GPU, the weights are also copied to the CPU path before starting: should the GPU fail
/// midway (an error, or a panic inside the driver, as when the device is lost), the remaining
/// frames are detected on the CPU, with a warning.
#[allow(clippy::too_many_arguments)]
pub fn detect_all(
    net: &Net,
    model: &ModelConfig,
    device: &Device,
    frames: &[Raster],
    batch: usize,
    cfg: &LocalizeConfig,
    max_area: usize,
    ctx: &JobCtx,
    on_map: &mut dyn FnMut(usize, &Raster),
) -> Result<Localized> {
    let cpu = CpuNet::new(net)?;
    let mut gpu = |chunk: &[Raster]| burn_maps(net, model, device, chunk);
    let first: Option<&mut MapFn> = (*device != Device::flex()).then_some(&mut gpu);
    detect_with(
        first, &cpu, model, frames, batch, cfg, max_area, ctx, on_map,
    )
}

/// Probability maps of a batch of frames.
type MapFn<'a> = dyn FnMut(&[Raster]) -> Result<Vec<Raster>> + 'a;

/// [`detect_all`] with the maps made by `first` while it works, then by `cpu`.
#[allow(clippy::too_many_arguments)]
fn detect_with(
    mut first: Option<&mut MapFn>,
    cpu: &CpuNet,
    model: &ModelConfig,
    frames: &[Raster],
    batch: usize,
    cfg: &LocalizeConfig,
    max_area: usize,
    ctx: &JobCtx,
    on_map: &mut dyn FnMut(usize, &Raster),
) -> Result<Localized> {
    cfg.validate()?;
    let mut all = Localized::default();
    ctx.begin("detection", frames.len() as u64);
    let mut done = 0;
    for chunk in frames.chunks(batch.max(1)) {
        let mut maps = None;
        if let Some(f) = first.as_mut() {
            match crate::jobs::guarded(|| f(chunk)) {
                Ok(m) => maps = Some(m),
                Err(e) => fall_back(ctx, done, &e.to_string()),
            }
            if maps.is_none() {
                first = None;
            }
        }
        let maps = match maps {
            Some(m) => m,
            None => cpu_maps(cpu, model, chunk)?,
        };
        for map in &maps {
            on_map(done, map);
            all.add(localize(map, done, cfg, max_area));
            done += 1;
        }
        ctx.step(done as u64)?;
    }
    Ok(all)
}

fn fall_back(ctx: &JobCtx, frame: usize, why: &str) {
    ctx.emit(Event::Warning(format!(
        "the GPU failed at frame {frame} ({why}); the remaining frames are detected on the CPU"
    )));
}

/// Turn one probability map into detections.
pub fn localize(prob: &Raster, frame: usize, cfg: &LocalizeConfig, max_area: usize) -> Localized {
    let (w, h) = (prob.width, prob.height);
    let mut label = vec![0u32; w * h];
    let mut out = Localized::default();
    let mut stack = Vec::new();
    let mut next = 0u32;
    for start in 0..w * h {
        if label[start] != 0 || prob.data[start] <= cfg.threshold {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let (mut sw, mut sx, mut sy, mut area, mut best) = (0.0f64, 0.0f64, 0.0f64, 0usize, 0.0f32);
        let mut edges = 0usize;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let p = prob.data[i];
            sw += p as f64;
            sx += p as f64 * x as f64;
            sy += p as f64 * y as f64;
            area += 1;
            best = best.max(p);
            edges += exposed_edges(prob, x, y, cfg.threshold);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if label[j] == 0 && prob.data[j] > cfg.threshold {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        if area < cfg.min_area_px {
            out.dropped.too_small += 1;
            continue;
        }
        let (cx, cy) = ((sx / sw) as f32, (sy / sw) as f32);
        if area > max_area {
            out.regions.push(Region {
                frame,
                x: cx,
                y: cy,
                area_px: area,
                // Exposed pixel edges overcount a slanted boundary; π/4 is their mean ratio
                // to the length over all directions.
                perimeter_px: edges as f32 * std::f32::consts::FRAC_PI_4,
                score: best,
            });
            continue;
        }
        let m = cfg.edge_margin_px;
        if cx < m || cy < m || cx > (w - 1) as f32 - m || cy > (h - 1) as f32 - m {
            out.dropped.near_edge += 1;
            continue;
        }
        out.detections.push(Detection {
            frame,
            x: cx,
            y: cy,
            area,
            score: best,
        });
    }
    out
}

/// Sides of pixel (x, y) that border a pixel at or below `threshold` (or the frame's edge).
fn exposed_edges(prob: &Raster, x: usize, y: usize, threshold: f32) -> usize {
    let (w, h) = (prob.width as isize, prob.height as isize);
    [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)]
        .iter()
        .filter(|(dx, dy)| {
            let (nx, ny) = (x as isize + dx, y as isize + dy);
            nx < 0 || ny < 0 || nx >= w || ny >= h || prob.data[(ny * w + nx) as usize] <= threshold
        })
        .count()
}

/// `defects.csv`: `frame,x,y,area,score`.
pub fn detections_csv(dets: &[Detection]) -> String {
    let mut s = String::from("frame,x,y,area,score\n");
    for d in dets {
        s.push_str(&format!(
            "{},{:.3},{:.3},{},{:.4}\n",
            d.frame, d.x, d.y, d.area, d.score
        ));
    }
    s
}

/// Parse a `defects.csv` written by [`detections_csv`] (`frame,x,y` required; `area`, `score`
/// optional).
pub fn parse_detections_csv(text: &str) -> Result<Vec<Detection>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if !header.trim_start().starts_with("frame,x,y") {
        return Err(Error::invalid(format!(
            "defects table must start with 'frame,x,y', found '{}'",
            header.chars().take(40).collect::<String>()
        )));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || {
            Error::invalid(format!(
                "defects table line {}: cannot parse '{line}'",
                i + 2
            ))
        };
        if f.len() < 3 {
            return Err(bad());
        }
        let d = Detection {
            frame: f[0].parse().map_err(|_| bad())?,
            x: f[1].parse().map_err(|_| bad())?,
            y: f[2].parse().map_err(|_| bad())?,
            area: f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
            score: f.get(4).and_then(|v| v.parse().ok()).unwrap_or(1.0),
        };
        if !(d.x.is_finite() && d.y.is_finite()) {
            return Err(bad());
        }
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, ModelConfig};

    /// Five patterned frames and a small untrained Sniffer.
    fn setup() -> (Vec<Raster>, Net, ModelConfig) {
        let frames: Vec<Raster> = (0..5)
            .map(|k| {
                let mut r = Raster::zeros(32, 24);
                for (i, v) in r.data.iter_mut().enumerate() {
                    *v = ((i * 7919 + k * 31) % 17) as f32 / 17.0;
                }
                r
            })
            .collect();
        let model = ModelConfig {
            architecture: Architecture::Sniffer,
            width: 4,
            ..ModelConfig::default()
        };
        let device = Device::flex();
        let net = model.init_seeded(&device, 5);
        (frames, net, model)
    }

    #[test]
    fn a_failing_gpu_hands_the_remaining_frames_to_the_cpu() {
        let (frames, net, model) = setup();
        let cpu = CpuNet::new(&net).expect("weights");
        let cfg = LocalizeConfig {
            threshold: 0.5,
            ..LocalizeConfig::default()
        };
        let run = |first: Option<&mut MapFn>| {
            let (ctx, events) = JobCtx::with_events(16, Box::new(|| {}));
            let mut maps = Vec::new();
            let out = detect_with(
                first,
                &cpu,
                &model,
                &frames,
                2,
                &cfg,
                usize::MAX,
                &ctx,
                &mut |f, m| maps.push((f, m.clone())),
            )
            .expect("detection goes on");
            let warnings = crate::jobs::warnings(&events);
            (out, maps, warnings)
        };
        let (reference, reference_maps, none) = run(None);
        assert!(none.is_empty());
        assert_eq!(reference_maps.len(), frames.len());
        // A "GPU" that works for one batch (its maps are marked), then errs or panics.
        for panics in [false, true] {
            let mut calls = 0;
            let mut gpu = |chunk: &[Raster]| -> Result<Vec<Raster>> {
                calls += 1;
                match calls {
                    1 => Ok(chunk
                        .iter()
                        .map(|f| Raster::zeros(f.width, f.height))
                        .collect()),
                    _ if panics => panic!("device lost"),
                    _ => Err(Error::Device("device lost".into())),
                }
            };
            let (out, maps, warnings) = run(Some(&mut gpu));
            assert_eq!(calls, 2, "the failed GPU is not asked again");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("frame 2") && warnings[0].contains("device lost"),
                "{warnings:?}"
            );
            let frames_seen: Vec<usize> = maps.iter().map(|(f, _)| *f).collect();
            assert_eq!(frames_seen, [0, 1, 2, 3, 4]);
            assert!(
                maps[..2]
                    .iter()
                    .all(|(_, m)| m.data.iter().all(|&v| v == 0.0))
            );
            assert_eq!(&maps[2..], &reference_maps[2..]);
            let later = |d: &[Detection]| d.iter().filter(|d| d.frame >= 2).count();
            assert_eq!(later(&out.detections), later(&reference.detections));
        }
    }

    #[test]
    fn defects_csv_round_trips_and_rejects_garbage() {
        let d = vec![Detection {
            frame: 2,
            x: 10.5,
            y: 3.25,
            area: 7,
            score: 0.875,
        }];
        let back = parse_detections_csv(&detections_csv(&d)).expect("parse");
        assert_eq!(back, d);
        assert!(parse_detections_csv("a,b\n1,2").is_err());
        assert!(parse_detections_csv("frame,x,y\n1,zz,3\n").is_err());
        assert!(parse_detections_csv("frame,x,y\n1,NaN,3\n").is_err());
    }

    fn blob(map: &mut Raster, cx: f32, cy: f32, r: f32, p: f32) {
        for y in 0..map.height {
            for x in 0..map.width {
                if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r {
                    map.set(x, y, p);
                }
            }
        }
    }

    #[test]
    fn blobs_become_centres_and_filters_are_counted() {
        let mut m = Raster::zeros(100, 80);
        blob(&mut m, 30.0, 40.0, 3.0, 0.9);
        blob(&mut m, 70.0, 20.5, 3.0, 0.8);
        blob(&mut m, 50.0, 60.0, 12.0, 0.9); // a region
        m.set(10, 10, 0.99); // too small
        blob(&mut m, 1.0, 40.0, 3.0, 0.9); // at the edge
        let cfg = LocalizeConfig::default();
        let Localized {
            detections: d,
            regions,
            dropped,
        } = localize(&m, 3, &cfg, 200);
        assert_eq!(d.len(), 2);
        assert!((d[0].x - 70.0).abs() < 0.01 && (d[0].y - 20.5).abs() < 0.6);
        assert!((d[1].x - 30.0).abs() < 0.01 && (d[1].y - 40.0).abs() < 0.01);
        assert_eq!(d[1].frame, 3);
        assert_eq!(
            dropped,
            Dropped {
                too_small: 1,
                near_edge: 1
            }
        );
        // The large blob is a region: its area and perimeter are a disk's of radius 12.
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        let (area, perimeter) = (
            std::f32::consts::PI * 144.0,
            2.0 * std::f32::consts::PI * 12.0,
        );
        assert!(
            (r.area_px as f32 - area).abs() < 0.05 * area,
            "area {}",
            r.area_px
        );
        assert!(
            (r.perimeter_px - perimeter).abs() < 0.1 * perimeter,
            "perimeter {}",
            r.perimeter_px
        );
        assert!((r.x - 50.0).abs() < 0.1 && (r.y - 60.0).abs() < 0.1 && r.frame == 3);
        let csv = detections_csv(&d);
        assert!(csv.starts_with("frame,x,y,area,score\n3,70.000,"));
    }

    #[test]
    fn bad_thresholds_are_refused() {
        assert!(
            LocalizeConfig {
                threshold: 1.5,
                ..LocalizeConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LocalizeConfig {
                min_area_px: 10,
                max_area_px: 5,
                ..LocalizeConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
