//! HDF5-based movie files: Thermo Fisher Velox EMD, Berkeley/NCEM EMD and Nion Swift HDF5.
//!
//! The HDF5 container is decoded by the pure-Rust `hdf5-reader` crate (no libhdf5 to install or
//! link, a few seconds to build, bounds-checked against corrupt files). This module only knows
//! the three layouts on top of it:
//!
//! * **Velox EMD**: a root dataset `Version` holding JSON with `"format": "Velox"`; images in
//!   `Data/Image/<id>/Data`, stored as (rows, columns, frames), with a `Metadata` dataset of
//!   UTF-8 JSON bytes, one column per frame (pixel size, scan and detector settings).
//! * **NCEM EMD** (emdatasets.com, version 0.2): groups with the attribute `emd_group_type = 1`
//!   hold `data` plus `dim1`…`dimN`, the coordinates of the stored axes in order, each with
//!   `name` and `units` attributes (units written `[n_m]`). The frame axis is the one whose units
//!   are a time or whose name says time/frame, else the first if no axis has units; rows and columns are the axes
//!   named `y` and `x` where so named, else the other two in stored order.
//! * **Nion Swift HDF5**: a root dataset `data` with the item's JSON in its `properties`
//!   attribute, read like the `.ndata` files (see `nion.rs`).

use super::nion;
use super::{Acquisition, Calibration, Decoding, Movie, iso_utc, nm_per_unit, s_per_unit};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use hdf5_reader::group::Group;
use hdf5_reader::{Dataset, Datatype, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem};
use serde_json::Value;
use std::path::Path;

/// The HDF5 signature, at the start of the file or after a user block of 512·2ⁿ bytes.
const MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Decoded pixel data may exceed the file (compression), but not by more than this factor, or
/// above [`MIN_DECODE_BYTES`]: a lying header cannot make us allocate without bound.
const MAX_EXPANSION: usize = 64;
const MIN_DECODE_BYTES: usize = 256 << 20;

pub fn looks_like_hdf5(bytes: &[u8]) -> bool {
    [0usize, 512, 1024, 2048]
        .iter()
        .any(|&o| bytes.get(o..o + 8) == Some(MAGIC.as_slice()))
}

/// Read a Velox EMD, NCEM EMD or Nion HDF5 movie.
pub fn read_hdf5(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let limit = bytes
        .len()
        .saturating_mul(MAX_EXPANSION)
        .max(MIN_DECODE_BYTES);
    let options = OpenOptions {
        max_read_bytes: limit,
        ..OpenOptions::default()
    };
    let file = Hdf5File::from_bytes_with_options(bytes, options).map_err(|e| corrupt(path, e))?;
    let root = file.root_group().map_err(|e| corrupt(path, e))?;
    let (groups, datasets) = root.member_names().map_err(|e| corrupt(path, e))?;
    let has = |names: &[String], n: &str| names.iter().any(|g| g == n);
    if has(&datasets, "Version") && has(&groups, "Data") {
        read_velox(path, &file, &mut Decoding::new(ctx))
    } else if has(&datasets, "data")
        && file
            .dataset("/data")
            .is_ok_and(|d| d.attribute("properties").is_ok())
    {
        read_nion_h5(path, &file, &mut Decoding::new(ctx))
    } else if root.attribute("version_major").is_ok() || find_emd_groups(&root, "", 0).is_ok() {
        read_ncem(path, &root, ctx)
    } else {
        Err(Error::format(
            path,
            "an HDF5 file, but neither a Velox EMD (no Version and Data), an NCEM EMD (no group \
             with emd_group_type = 1) nor a Nion Swift file (no data with properties)",
        ))
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("corrupt or unsupported HDF5 file: {e}"))
}

/// A numeric dataset's values as f32 in stored (C) order, with its shape.
fn values(path: &Path, ds: &Dataset, decoding: &mut Decoding) -> Result<(Vec<usize>, Vec<f32>)> {
    let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
    // The typed array and its f32 copy are both alive for a moment.
    decoding.take(path, elements(ds.shape()).saturating_mul(2))?;
    macro_rules! read {
        ($t:ty) => {
            ds.read_array::<$t>()
                .map_err(|e| corrupt(path, e))?
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<f32>>()
        };
    }
    let v = match ds.dtype() {
        Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
            (1, false) => read!(u8),
            (1, true) => read!(i8),
            (2, false) => read!(u16),
            (2, true) => read!(i16),
            (4, false) => read!(u32),
            (4, true) => read!(i32),
            (8, false) => read!(u64),
            (8, true) => read!(i64),
            (s, _) => return Err(unsupported(path, ds, &format!("{s}-byte integers"))),
        },
        Datatype::FloatingPoint { size: 4, .. } => read!(f32),
        Datatype::FloatingPoint { size: 8, .. } => read!(f64),
        Datatype::Compound { .. } => {
            return Err(unsupported(
                path,
                ds,
                "complex values (an FFT or DPC result, not an image)",
            ));
        }
        other => return Err(unsupported(path, ds, &format!("{other:?}"))),
    };
    if v.len() as u64 != elements(ds.shape()) {
        return Err(corrupt(path, "dataset size does not match its shape"));
    }
    Ok((shape, v))
}

/// Integer or floating-point values (not complex, strings or compounds).
fn is_real(d: &Dataset) -> bool {
    matches!(
        d.dtype(),
        Datatype::FixedPoint { .. } | Datatype::FloatingPoint { .. }
    )
}

/// Elements of a dataset of this shape (saturating: shapes come from the file).
fn elements(shape: &[u64]) -> u64 {
    shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
}

fn unsupported(path: &Path, ds: &Dataset, what: &str) -> Error {
    Error::format(
        path,
        format!(
            "dataset {} holds {what}; real-valued images are read",
            ds.name()
        ),
    )
}

/// Frames from an N-d array (C order) given which axes are time, rows and columns; `t` is
/// `None` for a single image.
fn frames_from(
    path: &Path,
    decoding: &mut Decoding,
    shape: &[usize],
    v: &[f32],
    t: Option<usize>,
    y: usize,
    x: usize,
) -> Result<Vec<Raster>> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let (n, st) = t.map_or((1, 0), |t| (shape[t], strides[t]));
    let (h, w) = (shape[y], shape[x]);
    decoding.expect(n);
    (0..n)
        .map(|k| {
            decoding.frame(path, (h * w) as u64)?;
            let data = (0..h)
                .flat_map(|r| (0..w).map(move |c| (r, c)))
                .map(|(r, c)| v[k * st + r * strides[y] + c * strides[x]])
                .collect();
            Raster::from_vec(w, h, data)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Velox

fn read_velox(path: &Path, file: &Hdf5File, decoding: &mut Decoding) -> Result<Movie> {
    let version: Value = file
        .dataset("/Version")
        .and_then(|d| d.read_strings())
        .ok()
        .and_then(|s| serde_json::from_str(s.first()?.trim_end_matches('\0')).ok())
        .unwrap_or(Value::Null);
    let flavour = version["format"].as_str().unwrap_or("");
    if !matches!(flavour, "Velox" | "DevelopersKit") {
        return Err(Error::format(
            path,
            format!("an EMD file of format \"{flavour}\"; Velox EMD files are read"),
        ));
    }
    let images = file.group("/Data/Image").map_err(|_| {
        Error::format(
            path,
            "this Velox EMD file holds no images (Data/Image); spectra are not read",
        )
    })?;
    let groups = images.groups().map_err(|e| corrupt(path, e))?;
    // Real-valued image stacks, largest (frames, then pixels) first.
    let mut candidates: Vec<(Group, Dataset)> = groups
        .into_iter()
        .filter_map(|g| {
            let d = g.dataset("Data").ok()?;
            (is_real(&d) && d.ndim() == 3).then_some((g, d))
        })
        .collect();
    candidates.sort_by_key(|(_, d)| {
        let s = d.shape();
        std::cmp::Reverse((s[2], s[0].saturating_mul(s[1])))
    });
    let count = candidates.len();
    let Some((group, data)) = candidates.into_iter().next() else {
        return Err(Error::format(
            path,
            "this Velox EMD file holds no real-valued image (complex FFT/DPC results are not read)",
        ));
    };
    let (shape, v) = values(path, &data, decoding)?;
    let frames = frames_from(path, decoding, &shape, &v, Some(2), 0, 1)?;
    let meta = velox_metadata(&group);
    let text = |v: &Value| match v {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    let br = &meta["BinaryResult"];
    let pixel_size_nm = text(&br["PixelSize"]["width"])
        .zip(br["PixelUnitX"].as_str().and_then(nm_per_unit))
        .map(|(s, f)| s * f)
        .filter(|v| v.is_finite() && *v > 0.0);
    let detector = br["DetectorIndex"]
        .as_str()
        .map(|i| &meta["Detectors"][format!("Detector-{i}")]);
    let exposure_s = detector.and_then(|d| text(&d["ExposureTime"]));
    let frame_interval_s = text(&meta["Scan"]["FrameTime"])
        .or(exposure_s)
        .filter(|v| v.is_finite() && *v > 0.0 && frames.len() > 1);
    let instrument = ["InstrumentModel", "InstrumentClass"]
        .iter()
        .find_map(|k| meta["Instrument"][k].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let detector_name = detector
        .and_then(|d| d["DetectorName"].as_str())
        .map(str::to_string);
    let started = text(&meta["Acquisition"]["AcquisitionStartDatetime"]["DateTime"])
        .filter(|t| *t > 0.0)
        .map(|t| iso_utc(t as i64));
    let dataset = format!(
        "Data/Image/{}{}",
        group.name(),
        if count > 1 {
            format!(" (the largest of {count} images)")
        } else {
            String::new()
        }
    );
    Ok(Movie {
        frames,
        calibration: Calibration {
            pixel_size_nm,
            frame_interval_s,
        },
        acquisition: Acquisition {
            instrument,
            detector: detector_name,
            beam_energy_kev: text(&meta["Optics"]["AccelerationVoltage"])
                .map(|v| v / 1000.0)
                .filter(|v| *v > 0.0),
            dwell_time_us: text(&meta["Scan"]["DwellTime"])
                .map(|v| v * 1e6)
                .filter(|v| *v > 0.0),
            exposure_s: exposure_s.filter(|v| *v > 0.0),
            started,
            frame_times_s: Vec::new(),
            dataset: Some(dataset),
        },
        source: path.to_path_buf(),
        format: format!(
            "Velox EMD v{} ({})",
            version["version"].as_str().unwrap_or("?"),
            type_name(data.dtype())
        ),
    })
}

/// The JSON metadata of an image's first frame: the first column of its `Metadata` bytes (one
/// column per frame; only that column is read, not the whole array).
fn velox_metadata(group: &Group) -> Value {
    let Ok(ds) = group.dataset("Metadata") else {
        return Value::Null;
    };
    let selection = match ds.shape() {
        [rows, _] => SliceInfo {
            selections: vec![
                SliceInfoElem::Slice {
                    start: 0,
                    end: *rows,
                    step: 1,
                },
                SliceInfoElem::Index(0),
            ],
        },
        [_] => SliceInfo::all(1),
        _ => return Value::Null,
    };
    let Ok(column) = ds.read_slice::<u8>(&selection) else {
        return Value::Null;
    };
    let text: Vec<u8> = column.iter().copied().take_while(|&b| b != 0).collect();
    serde_json::from_slice(&text).unwrap_or(Value::Null)
}

fn type_name(t: &Datatype) -> String {
    match t {
        Datatype::FixedPoint { size, signed, .. } => {
            format!(
                "{}{}",
                if *signed { "int" } else { "uint" },
                8 * *size as u32
            )
        }
        Datatype::FloatingPoint { size, .. } => format!("float{}", 8 * *size as u32),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// NCEM

/// Groups with `emd_group_type = 1` and their paths, depth-first; an error when there are none.
fn find_emd_groups(g: &Group, at: &str, depth: usize) -> Result<Vec<(String, Group)>, String> {
    let mut out = Vec::new();
    let is_data = g
        .attribute("emd_group_type")
        .ok()
        .and_then(|a| a.read_as_f64().ok())
        == Some(1.0);
    if is_data {
        out.push((at.to_string(), g.clone()));
    }
    if depth < 8
        && let Ok(subs) = g.groups()
    {
        for s in subs {
            let path = format!("{at}/{}", s.name());
            out.extend(find_emd_groups(&s, &path, depth + 1).unwrap_or_default());
        }
    }
    if out.is_empty() {
        Err("no EMD data group".into())
    } else {
        Ok(out)
    }
}

/// An NCEM dim vector: its name, unit ("[n_m]" → "nm") and step.
struct Dim {
    name: String,
    unit: String,
    step: Option<f64>,
}

fn ncem_dim(g: &Group, i: usize) -> Dim {
    let ds = g.dataset(&format!("dim{}", i + 1)).ok();
    let attr = |k: &str| {
        ds.as_ref()
            .and_then(|d| d.attribute(k).ok())
            .and_then(|a| a.read_string().ok())
            .unwrap_or_default()
    };
    let unit: String = attr("units")
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '_'))
        .collect();
    let first_two = |d: &Dataset| -> Option<Vec<f64>> {
        let take = |it: &mut dyn Iterator<Item = f64>| it.take(2).collect::<Vec<f64>>();
        if let Ok(a) = d.read_array::<f64>() {
            Some(take(&mut a.iter().copied()))
        } else if let Ok(a) = d.read_array::<f32>() {
            Some(take(&mut a.iter().map(|&v| v as f64)))
        } else {
            let a = d.read_array::<i64>().ok()?;
            Some(take(&mut a.iter().map(|&v| v as f64)))
        }
    };
    let step = ds
        .as_ref()
        .and_then(first_two)
        .and_then(|v| Some(v.get(1)? - v.first()?))
        .filter(|s| s.is_finite() && *s > 0.0);
    let name = attr("name").to_lowercase();
    Dim { name, unit, step }
}

/// The frame axis of a 3-D NCEM dataset: the axis in a time unit or named time/frame; else the
/// first, when no axis has a unit at all. A stack along anything else (depth, detector angle, a
/// vector component) is not a movie.
fn ncem_time_axis(dims: &[Dim]) -> Option<usize> {
    dims.iter()
        .position(|d| {
            s_per_unit(&d.unit).is_some() || d.name.contains("time") || d.name.contains("frame")
        })
        .or_else(|| dims.iter().all(|d| d.unit.is_empty()).then_some(0))
}

fn read_ncem(path: &Path, root: &Group, ctx: &JobCtx) -> Result<Movie> {
    let groups = find_emd_groups(root, "", 0).map_err(|_| {
        Error::format(
            path,
            "an EMD file without any data group (emd_group_type = 1)",
        )
    })?;
    // Real-valued 2-D or 3-D data, the largest first.
    let mut candidates: Vec<(String, Group, Dataset)> = groups
        .into_iter()
        .filter_map(|(at, g)| {
            // `data` by the specification; Prismatic names it `realslice` or `datacube`.
            let d = g.dataset("data").ok().or_else(|| {
                let names = g.member_names().ok()?.1;
                let name = names.iter().find(|n| !n.starts_with("dim"))?;
                g.dataset(name).ok()
            })?;
            (is_real(&d) && matches!(d.ndim(), 2 | 3) && d.shape().iter().all(|&s| s > 1))
                .then_some((at, g, d))
        })
        .collect();
    candidates.sort_by_key(|(_, _, d)| std::cmp::Reverse(elements(d.shape())));
    let count = candidates.len();
    let mut first_error = None;
    for (at, group, data) in candidates {
        let label = format!("{}/{}", at.trim_start_matches('/'), data.name());
        let label = if count > 1 {
            format!("{label} (one of {count} datasets)")
        } else {
            label
        };
        match read_ncem_dataset(path, root, &group, &data, label, ctx) {
            Ok(m) => return Ok(m),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        Error::format(
            path,
            "this EMD file holds no real-valued 2-D image or 3-D image stack",
        )
    }))
}

fn read_ncem_dataset(
    path: &Path,
    root: &Group,
    group: &Group,
    data: &Dataset,
    label: String,
    ctx: &JobCtx,
) -> Result<Movie> {
    let dims: Vec<Dim> = (0..data.ndim()).map(|i| ncem_dim(group, i)).collect();
    let t = if dims.len() == 3 {
        Some(ncem_time_axis(&dims).ok_or_else(|| {
            let axes: Vec<String> = dims
                .iter()
                .map(|d| format!("{} [{}]", d.name, d.unit))
                .collect();
            Error::format(
                path,
                format!(
                    "{}: no axis of this 3-D dataset is time (axes: {}); a series of images over \
                     time is read",
                    data.name(),
                    axes.join(", ")
                ),
            )
        })?)
    } else {
        None
    };
    let rest: Vec<usize> = (0..dims.len()).filter(|&i| Some(i) != t).collect();
    let named = |axis: &str| {
        rest.iter()
            .copied()
            .find(|&i| dims[i].name == axis || dims[i].name.ends_with(&format!("_{axis}")))
    };
    let (y, x) = match (named("y"), named("x")) {
        (Some(y), Some(x)) if y != x => (y, x),
        _ => (rest[0], rest[1]),
    };
    let mut decoding = Decoding::new(ctx);
    let (shape, v) = values(path, data, &mut decoding)?;
    let frames = frames_from(path, &mut decoding, &shape, &v, t, y, x)?;
    let pixel_size_nm = dims[x]
        .step
        .zip(nm_per_unit(&dims[x].unit))
        .map(|(s, f)| s * f);
    let frame_interval_s = t
        .and_then(|t| dims[t].step.zip(s_per_unit(&dims[t].unit)))
        .map(|(s, f)| s * f);
    let microscope = |k: &str| {
        root.group("microscope")
            .ok()?
            .attribute(k)
            .ok()?
            .read_string()
            .ok()
            .filter(|s| !s.trim().is_empty())
    };
    Ok(Movie {
        frames,
        calibration: Calibration {
            pixel_size_nm,
            frame_interval_s,
        },
        acquisition: Acquisition {
            instrument: microscope("name"),
            beam_energy_kev: microscope("voltage").as_deref().and_then(kilovolts),
            dataset: Some(label),
            ..Acquisition::default()
        },
        source: path.to_path_buf(),
        format: format!("NCEM EMD ({})", type_name(data.dtype())),
    })
}

/// "300kV", "300 kV", "80000 V" or a bare number of volts, in kV.
fn kilovolts(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(s.len());
    let v: f64 = s[..split].trim().parse().ok()?;
    let kv = match s[split..].trim().to_lowercase().as_str() {
        "kv" => v,
        "mv" => v * 1000.0,
        "v" | "" => v / 1000.0,
        _ => return None,
    };
    (kv.is_finite() && kv > 0.0).then_some(kv)
}

// ---------------------------------------------------------------------------------------------
// Nion

fn read_nion_h5(path: &Path, file: &Hdf5File, decoding: &mut Decoding) -> Result<Movie> {
    let data = file.dataset("/data").map_err(|e| corrupt(path, e))?;
    let json = data
        .attribute("properties")
        .and_then(|a| a.read_string())
        .map_err(|e| corrupt(path, e))?;
    let props: Value = serde_json::from_str(&json)
        .map_err(|e| Error::format(path, format!("Nion properties are not JSON: {e}")))?;
    let (shape, v) = values(path, &data, decoding)?;
    nion::movie(
        path,
        &shape,
        &v,
        &props,
        format!("Nion Swift HDF5 ({})", type_name(data.dtype())),
        decoding,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_hdf5(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_hdf5(path, bytes, &JobCtx::detached())
    }
    use hdf5_writer::{
        AttributeBuilder, ByteOrder, DatasetBuilder, FILTER_DEFLATE, FilterDescription,
        Hdf5Builder, WriteOptions,
    };

    fn encode(b: Hdf5Builder) -> Vec<u8> {
        b.into_plan()
            .unwrap()
            .encode(WriteOptions::default())
            .unwrap()
    }

    fn encode_big_endian(b: Hdf5Builder) -> Vec<u8> {
        let options = WriteOptions {
            byte_order: ByteOrder::BigEndian,
            ..WriteOptions::default()
        };
        b.into_plan().unwrap().encode(options).unwrap()
    }

    /// A big-endian dataset.
    fn be<T: hdf5_writer::H5WriteElement>(
        name: String,
        shape: Vec<u64>,
        v: &[T],
    ) -> DatasetBuilder {
        DatasetBuilder::typed_with_order::<T>(name, shape, ByteOrder::BigEndian)
            .data(v)
            .unwrap()
    }

    /// Pixel (x, y) of frame k in the test movies: distinct everywhere.
    fn value(k: usize, y: usize, x: usize) -> u16 {
        (1000 * k + 10 * y + x) as u16
    }

    /// A Velox EMD file: a 3-frame 5 × 4 (w × h) uint16 stack, chunked per frame and deflated, stored (rows, columns, frames); and a single float32 image from another
    /// detector, which must not be chosen.
    fn velox() -> Vec<u8> {
        let (h, w, n) = (4, 5, 3);
        let mut stack = Vec::new();
        for y in 0..h {
            for x in 0..w {
                for k in 0..n {
                    stack.push(value(k, y, x));
                }
            }
        }
        let meta = |detector: &str, index: u32| {
            serde_json::json!({
                "BinaryResult": {"PixelSize": {"width": "2.5e-11", "height": "2.5e-11"},
                                 "PixelUnitX": "m", "DetectorIndex": index.to_string()},
                "Detectors": {format!("Detector-{index}"): {"DetectorName": detector}},
                "Scan": {"FrameTime": "0.75", "DwellTime": "2.5e-06"},
                "Optics": {"AccelerationVoltage": "300000"},
                "Instrument": {"InstrumentModel": "Spectra 300"},
                "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1488794201"}}
            })
            .to_string()
        };
        // One column of JSON bytes per frame, zero-padded to 600 rows.
        let columns = |json: String, frames: usize| {
            let rows = 600;
            let mut m = vec![0u8; rows * frames];
            for (r, b) in json.bytes().enumerate() {
                for f in 0..frames {
                    m[r * frames + f] = b;
                }
            }
            DatasetBuilder::typed_data("", vec![rows as u64, frames as u64], &m).unwrap()
        };
        let rename = |d: DatasetBuilder, name: &str| {
            DatasetBuilder::new(name, d.datatype().clone(), d.shape().to_vec())
                .raw_data(d.raw_data_bytes().unwrap().to_vec())
        };
        let version = r#"{"version": "11", "format": "Velox"}"#;
        encode(
            Hdf5Builder::new()
                .dataset(DatasetBuilder::fixed_string_data("Version", vec![1], &[version]).unwrap())
                .dataset(
                    DatasetBuilder::typed::<u16>(
                        "Data/Image/aa11/Data",
                        vec![h as u64, w as u64, n as u64],
                    )
                    .chunked(vec![h as u64, w as u64, 1])
                    .filter(FilterDescription {
                        id: FILTER_DEFLATE,
                        name: None,
                        client_data: vec![4],
                    })
                    .data(&stack)
                    .unwrap(),
                )
                .dataset(rename(
                    columns(meta("HAADF", 3), n),
                    "Data/Image/aa11/Metadata",
                ))
                .dataset(
                    DatasetBuilder::typed_data("Data/Image/bb22/Data", vec![6, 7, 1], &[1f32; 42])
                        .unwrap(),
                )
                .dataset(rename(
                    columns(meta("BF", 1), 1),
                    "Data/Image/bb22/Metadata",
                )),
        )
    }

    #[test]
    fn reads_a_velox_stack_with_its_metadata() {
        let bytes = velox();
        assert!(looks_like_hdf5(&bytes));
        let m = read_hdf5(Path::new("v.emd"), &bytes).unwrap();
        assert_eq!(m.frames.len(), 3);
        assert_eq!((m.width(), m.height()), (5, 4));
        for (k, f) in m.frames.iter().enumerate() {
            for (y, x) in [(0, 0), (3, 4), (2, 1)] {
                assert_eq!(f.get(x, y), value(k, y, x) as f32, "frame {k} ({x},{y})");
            }
        }
        assert!((m.calibration.pixel_size_nm.unwrap() - 0.025).abs() < 1e-12);
        assert_eq!(m.calibration.frame_interval_s, Some(0.75));
        let a = &m.acquisition;
        assert_eq!(a.detector.as_deref(), Some("HAADF"));
        assert_eq!(a.instrument.as_deref(), Some("Spectra 300"));
        assert_eq!(a.beam_energy_kev, Some(300.0));
        assert!((a.dwell_time_us.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(a.started.as_deref(), Some("2017-03-06T09:56:41Z"));
        assert!(a.dataset.as_deref().unwrap().contains("aa11"));
        assert!(m.format.starts_with("Velox EMD v11"), "{}", m.format);
    }

    /// An NCEM EMD movie of 3 frames of 5 × 4, in either the specification's order (time, y,
    /// x), little-endian, or HyperSpy's transposed order (x, y, time) with named axes,
    /// big-endian.
    fn ncem(transposed: bool) -> Vec<u8> {
        let (h, w, n) = (4usize, 5usize, 3usize);
        let (shape, order): (Vec<u64>, [usize; 3]) = if transposed {
            (vec![w as u64, h as u64, n as u64], [2, 1, 0])
        } else {
            (vec![n as u64, h as u64, w as u64], [0, 1, 2])
        };
        let mut data = Vec::new();
        for i in 0..shape[0] as usize {
            for j in 0..shape[1] as usize {
                for l in 0..shape[2] as usize {
                    let idx = [i, j, l];
                    let (k, y, x) = (idx[order[0]], idx[order[1]], idx[order[2]]);
                    data.push(value(k, y, x) as i16);
                }
            }
        }
        let g = "signals/movie";
        let dim = |i: usize, name: &str, unit: &str, step: f64, len: usize| {
            let v: Vec<f64> = (0..len).map(|j| j as f64 * step).collect();
            let name_ = format!("{g}/dim{i}");
            let d = if transposed {
                be(name_, vec![len as u64], &v)
            } else {
                DatasetBuilder::typed_data(name_, vec![len as u64], &v).unwrap()
            };
            d.attribute(AttributeBuilder::fixed_string("name", name))
                .attribute(AttributeBuilder::fixed_string("units", unit))
        };
        let dims = if transposed {
            [
                ("x", "[n_m]", 0.1, w),
                ("y", "[n_m]", 0.1, h),
                ("Time", "[s]", 0.25, n),
            ]
        } else {
            [
                ("", "[s]", 0.25, n),
                ("", "[n_m]", 0.1, h),
                ("", "[n_m]", 0.1, w),
            ]
        };
        let mut b = Hdf5Builder::new()
            .attribute(AttributeBuilder::fixed_string("version_major", "0"))
            .group_attribute(g, AttributeBuilder::scalar("emd_group_type", 1i32).unwrap())
            .group_attribute(
                "microscope",
                AttributeBuilder::fixed_string("voltage", "300kV"),
            )
            .dataset(if transposed {
                be(format!("{g}/data"), shape, &data)
            } else {
                DatasetBuilder::typed_data(format!("{g}/data"), shape, &data).unwrap()
            });
        for (i, (name, unit, step, len)) in dims.into_iter().enumerate() {
            b = b.dataset(dim(i + 1, name, unit, step, len));
        }
        if transposed {
            encode_big_endian(b)
        } else {
            encode(b)
        }
    }

    #[test]
    fn reads_ncem_movies_in_the_specified_and_the_transposed_order() {
        for transposed in [false, true] {
            let m = read_hdf5(Path::new("n.emd"), &ncem(transposed)).unwrap();
            assert_eq!(m.frames.len(), 3, "transposed {transposed}");
            assert_eq!((m.width(), m.height()), (5, 4), "transposed {transposed}");
            for (k, f) in m.frames.iter().enumerate() {
                for (y, x) in [(0, 0), (3, 4), (2, 1)] {
                    assert_eq!(f.get(x, y), value(k, y, x) as f32);
                }
            }
            assert!((m.calibration.pixel_size_nm.unwrap() - 0.1).abs() < 1e-12);
            assert_eq!(m.calibration.frame_interval_s, Some(0.25));
            assert_eq!(m.acquisition.beam_energy_kev, Some(300.0));
            assert_eq!(m.acquisition.dataset.as_deref(), Some("signals/movie/data"));
        }
    }

    #[test]
    fn reads_a_nion_hdf5_sequence() {
        let values: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect();
        let bytes = encode(
            Hdf5Builder::new().dataset(
                DatasetBuilder::typed_data("data", vec![2, 3, 4], &values)
                    .unwrap()
                    .attribute(AttributeBuilder::fixed_string(
                        "properties",
                        nion::tests::sequence_json(),
                    )),
            ),
        );
        let m = read_hdf5(Path::new("n.h5"), &bytes).unwrap();
        assert_eq!(m.frames.len(), 2);
        assert_eq!(m.frames[1].get(3, 2), 11.5);
        assert_eq!(m.calibration.pixel_size_nm, Some(0.2));
        assert_eq!(m.calibration.frame_interval_s, Some(0.5));
        assert_eq!(m.acquisition.detector.as_deref(), Some("MAADF"));
    }

    #[test]
    fn other_hdf5_files_and_non_movies_are_refused_with_a_reason() {
        let plain = encode(
            Hdf5Builder::new()
                .dataset(DatasetBuilder::typed_data("x", vec![2], &[1u8, 2]).unwrap()),
        );
        let e = read_hdf5(Path::new("p.h5"), &plain)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a Velox EMD"), "{e}");
        // An NCEM stack along an angle is not a movie.
        let angles = encode(
            Hdf5Builder::new()
                .group_attribute(
                    "g",
                    AttributeBuilder::scalar("emd_group_type", 1i32).unwrap(),
                )
                .dataset(DatasetBuilder::typed_data("g/data", vec![2, 3, 4], &[0f32; 24]).unwrap())
                .dataset(
                    DatasetBuilder::typed_data("g/dim3", vec![2], &[0f64, 1.0])
                        .unwrap()
                        .attribute(AttributeBuilder::fixed_string("units", "[m_r_a_d]")),
                ),
        );
        let e = read_hdf5(Path::new("a.emd"), &angles)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no axis of this 3-D dataset is time"), "{e}");
    }

    #[test]
    fn damaged_files_give_errors_not_panics() {
        for good in [velox(), ncem(false), ncem(true)] {
            // Any cut may be read or refused, but never panic; without its headers a file is
            // refused. (A cut through bytes no reader needs, such as padding, may still read.)
            for cut in (0..good.len()).step_by(97) {
                let r = read_hdf5(Path::new("t.emd"), &good[..cut]);
                assert!(cut > 200 || r.is_err(), "cut {cut}");
            }
            let mut rng = 99u64;
            for _ in 0..1500 {
                let mut bad = good.clone();
                for _ in 0..3 {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let i = (rng >> 33) as usize % bad.len();
                    bad[i] = (rng >> 17) as u8;
                }
                let _ = read_hdf5(Path::new("t.emd"), &bad);
            }
        }
    }

    #[test]
    fn kilovolts_reads_the_ways_voltage_is_written() {
        assert_eq!(kilovolts("300kV"), Some(300.0));
        assert_eq!(kilovolts(" 80 kV "), Some(80.0));
        assert_eq!(kilovolts("60000"), Some(60.0));
        assert_eq!(kilovolts("200000 V"), Some(200.0));
        assert_eq!(kilovolts(""), None);
        assert_eq!(kilovolts("high"), None);
    }

    #[test]
    fn frames_follow_the_named_axes() {
        // A (2, 3, 4) array read with time on axis 2, rows on 0, columns on 1 (Velox layout).
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let ctx = JobCtx::detached();
        let mut decoding = Decoding::new(&ctx);
        let f = frames_from(
            Path::new("f.h5"),
            &mut decoding,
            &[2, 3, 4],
            &v,
            Some(2),
            0,
            1,
        )
        .unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!((f[0].width, f[0].height), (3, 2));
        // pixel (row 1, column 2) of frame 3 is element [1][2][3] = 12 + 8 + 3
        assert_eq!(f[3].get(2, 1), 23.0);
    }
}
