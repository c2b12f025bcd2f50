//! Nion Swift data items: `.ndata` files (a ZIP archive of `data.npy` and `metadata.json`) and,
//! through `hdf5.rs`, Nion's HDF5 files (dataset `data`, the same JSON in its `properties`).
//!
//! The JSON says how to read the array: `is_sequence` (the first axis is time),
//! `collection_dimension_count` and `datum_dimension_count` (2 for images), and one
//! `dimensional_calibrations` entry per axis (`offset`, `scale`, `units`). Instrument settings
//! are under `metadata` (`instrument.high_tension` in V, `hardware_source.pixel_time_us`, …).
//!
//! Nion Swift writes the archive uncompressed ("stored"); deflated members are read too.

use super::npy::Npy;
use super::{Acquisition, Calibration, Decoding, Movie, nm_per_unit, s_per_unit};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;

/// A ZIP archive whose members include `data.npy` and `metadata.json`.
pub fn looks_like_ndata(bytes: &[u8]) -> bool {
    bytes.starts_with(&LOCAL.to_le_bytes())
        && ["data.npy", "metadata.json"]
            .iter()
            .all(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
}

pub fn read_ndata(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let npy = zip_member(path, bytes, "data.npy")?;
    let json = zip_member(path, bytes, "metadata.json")?;
    let props: Value = serde_json::from_slice(&json)
        .map_err(|e| Error::format(path, format!("metadata.json is not JSON: {e}")))?;
    let npy = Npy::parse(path, &npy)?;
    let mut decoding = Decoding::new(ctx);
    decoding.take(path, npy.len() as u64)?;
    movie(
        path,
        &npy.shape,
        &npy.values(0..npy.len()),
        &props,
        format!("Nion Swift ndata ({})", npy.descr),
        &mut decoding,
    )
}

fn u16_at(b: &[u8], o: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], o: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as usize)
}

/// The bytes of one archive member, found through the central directory.
fn zip_member(path: &Path, b: &[u8], name: &str) -> Result<Vec<u8>> {
    let bad = |msg: &str| Error::format(path, format!("corrupt ndata (ZIP) file: {msg}"));
    // The end record is within the last 22 + 65535 (comment) bytes.
    let from = b.len().saturating_sub(22 + 65_535);
    let end = (from..b.len().saturating_sub(21))
        .rev()
        .find(|&o| u32_at(b, o) == Some(END as usize))
        .ok_or_else(|| bad("no end-of-archive record"))?;
    let entries = u16_at(b, end + 10).ok_or_else(|| bad("end record"))?;
    let mut at = u32_at(b, end + 16).ok_or_else(|| bad("end record"))?;
    if at == u32::MAX as usize {
        return Err(bad("ZIP64 archives are not supported"));
    }
    for _ in 0..entries {
        if u32_at(b, at) != Some(CENTRAL as usize) {
            return Err(bad("central directory entry expected"));
        }
        let field = |o| u32_at(b, at + o).ok_or_else(|| bad("truncated directory"));
        let short = |o| u16_at(b, at + o).ok_or_else(|| bad("truncated directory"));
        let (method, packed, size) = (short(10)?, field(20)?, field(24)?);
        let (n, extra, comment, local) = (short(28)?, short(30)?, short(32)?, field(42)?);
        let entry = b.get(at + 46..at + 46 + n).ok_or_else(|| bad("name"))?;
        at += 46 + n + extra + comment;
        if entry != name.as_bytes() {
            continue;
        }
        if u32_at(b, local) != Some(LOCAL as usize) {
            return Err(bad("local header expected"));
        }
        let skip = u16_at(b, local + 26).zip(u16_at(b, local + 28));
        let start = local + 30 + skip.map(|(n, e)| n + e).ok_or_else(|| bad("header"))?;
        let raw = b
            .get(start..start.saturating_add(packed))
            .ok_or_else(|| bad(&format!("{name} runs past the end of the file")))?;
        return match method {
            0 => Ok(raw.to_vec()),
            8 => {
                // Deflate expands by at most ~1032×; the directory's size is checked after.
                let cap = packed.saturating_mul(1032).min(size);
                let mut out = Vec::with_capacity(cap);
                flate2::read::DeflateDecoder::new(raw)
                    .take(size as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| bad(&format!("{name}: {e}")))?;
                if out.len() != size {
                    return Err(bad(&format!("{name} inflates to the wrong size")));
                }
                Ok(out)
            }
            m => Err(bad(&format!("{name} uses compression method {m}"))),
        };
    }
    Err(bad(&format!("no {name} in the archive")))
}

/// A movie from a Nion array (C order) and its properties JSON.
pub(super) fn movie(
    path: &Path,
    shape: &[usize],
    values: &[f32],
    props: &Value,
    format: String,
    decoding: &mut Decoding,
) -> Result<Movie> {
    let sequence = props["is_sequence"].as_bool().unwrap_or(false);
    let datum = props["datum_dimension_count"]
        .as_u64()
        .unwrap_or(shape.len().min(2) as u64);
    let collection = props["collection_dimension_count"].as_u64().unwrap_or(0);
    let frames_axis = match (shape.len(), sequence, collection, datum) {
        (2, false, 0, 2) => None,
        (3, true, 0, 2) | (3, false, 1, 2) => Some(0),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "a Nion item of shape {shape:?} (sequence: {sequence}, {collection} collection \
                     and {datum} datum dimensions); images and sequences of images are read"
                ),
            ));
        }
    };
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let frames = if let Some(count) = values.len().checked_div(h * w) {
        decoding.expect(count);
        values
            .chunks_exact(h * w)
            .map(|c| {
                decoding.frame(path, c.len() as u64)?;
                Raster::from_vec(w, h, c.to_vec())
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let cal = |axis: usize| -> Option<(f64, String)> {
        let c = props["dimensional_calibrations"].get(axis)?;
        Some((c["scale"].as_f64()?, c["units"].as_str()?.to_string()))
    };
    let positive = |v: &f64| v.is_finite() && *v > 0.0;
    let pixel_size_nm = cal(shape.len() - 1)
        .and_then(|(s, u)| Some(s * nm_per_unit(&u)?))
        .filter(positive);
    let frame_interval_s = frames_axis
        .and_then(cal)
        .and_then(|(s, u)| Some(s * s_per_unit(&u)?))
        .filter(positive);
    let md = &props["metadata"];
    let first_number = |paths: &[&[&str]]| {
        paths.iter().find_map(|p| {
            p.iter()
                .try_fold(md, |v, k| v.get(*k))
                .and_then(Value::as_f64)
        })
    };
    let first_text = |paths: &[&[&str]]| {
        paths.iter().find_map(|p| {
            p.iter()
                .try_fold(md, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
    };
    let acquisition = Acquisition {
        instrument: first_text(&[
            &["instrument", "name"],
            &["hardware_source", "autostem", "name"],
        ]),
        detector: first_text(&[
            &["hardware_source", "channel_name"],
            &["hardware_source", "hardware_source_name"],
        ])
        .or_else(|| {
            props["title"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        }),
        beam_energy_kev: first_number(&[
            &["instrument", "high_tension"],
            &["hardware_source", "autostem", "high_tension"],
        ])
        .map(|v| v / 1000.0)
        .filter(positive),
        dwell_time_us: first_number(&[
            &["hardware_source", "pixel_time_us"],
            &["scan", "scan_device_parameters", "pixel_time_us"],
            &["scan_detector", "pixel_time_us"],
        ])
        .filter(positive),
        exposure_s: first_number(&[&["hardware_source", "exposure"]]).filter(positive),
        started: props["created"]
            .as_str()
            .map(|s| format!("{}Z", s.trim_end_matches('Z'))),
        frame_times_s: Vec::new(),
        dataset: None,
    };
    Ok(Movie {
        frames,
        calibration: Calibration {
            pixel_size_nm,
            frame_interval_s,
        },
        acquisition,
        source: path.to_path_buf(),
        format,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn read_ndata(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_ndata(path, bytes, &JobCtx::detached())
    }

    /// A stored (uncompressed) ZIP archive of the given members, laid out as Nion Swift writes
    /// it: local headers with data, then the central directory and the end record.
    pub(crate) fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut dir = Vec::new();
        for (name, data) in members {
            let offset = out.len() as u32;
            let crc = crc32(data);
            let header = |sig: u32, central: bool| {
                let mut h = Vec::new();
                h.extend_from_slice(&sig.to_le_bytes());
                if central {
                    h.extend_from_slice(&20u16.to_le_bytes()); // made by
                }
                h.extend_from_slice(&20u16.to_le_bytes()); // version needed
                h.extend_from_slice(&0u16.to_le_bytes()); // flags
                h.extend_from_slice(&0u16.to_le_bytes()); // stored
                h.extend_from_slice(&0u32.to_le_bytes()); // time, date
                h.extend_from_slice(&crc.to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(name.len() as u16).to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes()); // extra
                if central {
                    h.extend_from_slice(&[0u8; 6]); // comment, disk, internal attributes
                    h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                    h.extend_from_slice(&offset.to_le_bytes());
                }
                h.extend_from_slice(name.as_bytes());
                h
            };
            out.extend(header(LOCAL, false));
            out.extend_from_slice(data);
            dir.extend(header(CENTRAL, true));
        }
        let dir_at = out.len() as u32;
        out.extend_from_slice(&dir);
        out.extend_from_slice(&END.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        for _ in 0..2 {
            out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
        out.extend_from_slice(&dir_at.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    fn npy_u16_be(shape: &[usize], values: &[u16]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let mut header = format!(
            "{{'descr': '>u2', 'fortran_order': False, 'shape': ({},), }}",
            dims.join(", ")
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        for v in values {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }

    pub(crate) fn sequence_json() -> String {
        serde_json::json!({
            "is_sequence": true, "collection_dimension_count": 0, "datum_dimension_count": 2,
            "dimensional_calibrations": [
                {"offset": 0.0, "scale": 0.5, "units": "s"},
                {"offset": 0.0, "scale": 2.0, "units": "Å"},
                {"offset": 0.0, "scale": 2.0, "units": "Å"}],
            "created": "2024-05-06T07:08:09.123456",
            "metadata": {"instrument": {"high_tension": 60000.0},
                         "hardware_source": {"channel_name": "MAADF", "pixel_time_us": 2.0}}
        })
        .to_string()
    }

    #[test]
    fn reads_a_sequence_with_calibration_and_metadata() {
        let values: Vec<u16> = (0..2 * 3 * 4).map(|v| v * 100).collect();
        let file = zip(&[
            ("data.npy", &npy_u16_be(&[2, 3, 4], &values)),
            ("metadata.json", sequence_json().as_bytes()),
        ]);
        assert!(looks_like_ndata(&file));
        let m = read_ndata(Path::new("t.ndata"), &file).unwrap();
        assert_eq!(m.frames.len(), 2);
        assert_eq!((m.width(), m.height()), (4, 3));
        assert_eq!(m.frames[1].get(3, 2), 2300.0);
        assert_eq!(m.calibration.pixel_size_nm, Some(0.2));
        assert_eq!(m.calibration.frame_interval_s, Some(0.5));
        assert_eq!(m.acquisition.beam_energy_kev, Some(60.0));
        assert_eq!(m.acquisition.detector.as_deref(), Some("MAADF"));
        assert_eq!(m.acquisition.dwell_time_us, Some(2.0));
        assert_eq!(
            m.acquisition.started.as_deref(),
            Some("2024-05-06T07:08:09.123456Z")
        );
    }

    #[test]
    fn spectra_missing_members_and_damage_are_errors() {
        let npy = npy_u16_be(&[2, 3, 4], &[1; 24]);
        let spectra = serde_json::json!({"is_sequence": false, "collection_dimension_count": 2,
            "datum_dimension_count": 1})
        .to_string();
        let file = zip(&[("data.npy", &npy), ("metadata.json", spectra.as_bytes())]);
        let e = read_ndata(Path::new("s.ndata"), &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("images and sequences"), "{e}");
        let file = zip(&[("data.npy", &npy)]);
        let e = read_ndata(Path::new("s.ndata"), &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no metadata.json"), "{e}");
        let good = zip(&[
            ("data.npy", &npy),
            ("metadata.json", sequence_json().as_bytes()),
        ]);
        for cut in [good.len() - 1, good.len() / 2, 40, 0] {
            assert!(read_ndata(Path::new("s.ndata"), &good[..cut]).is_err());
        }
        let mut rng = 12345u64;
        for _ in 0..2000 {
            let mut bad = good.clone();
            for _ in 0..4 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (rng >> 33) as usize % bad.len();
                bad[i] = (rng >> 17) as u8;
            }
            let _ = read_ndata(Path::new("s.ndata"), &bad);
        }
    }
}
