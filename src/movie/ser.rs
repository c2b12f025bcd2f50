//! FEI/Thermo Fisher TIA series files (`.ser`), versions 0x210 and 0x220.
//!
//! # Layout (little-endian)
//! Header: byte order `II` (0x4949), series id 0x0197, version (u16), data type id (u32: 0x4120
//! spectra, 0x4122 images), tag type id (u32: 0x4152 time, 0x4142 time and position), total and
//! valid element counts (u32), offset of the offset arrays (u32; u64 in 0x220), number of series
//! dimensions (u32), then per dimension: size (u32), calibration offset and delta (f64), element
//! (u32), description and units (u32 length + bytes). At the offset: one data offset and one tag
//! offset per element (u32; u64 in 0x220). An image element: x calibration offset, delta (f64) and
//! element (i32), the same for y, data type (i16: 1 u8, 2 u16, 3 u32, 4 i8, 5 i16, 6 i32, 7 f32,
//! 8 f64, 9/10 complex), width and height (i32), then the pixels, x fastest, bottom row first
//! (flipped on reading, as RosettaSciIO and TIA's display do). A tag: tag type (u16),
//! time in whole seconds since 1970 (u32), and with 0x4142 the x and y position (f64).
//!
//! Each valid element is a frame. Image calibrations are in metres. A series whose tags carry scan
//! positions is a 4-D scan, not a movie, and is refused.
//!
//! # The EMI companion
//! TIA writes `NAME.emi` beside `NAME_1.ser`, `NAME_2.ser`, …; it holds one `<ObjectInfo>` XML
//! block per series, in the order of the numbers. From it: `AcceleratingVoltage` (V), the
//! `Microscope` entry of the experimental description, `AcquireDate` (the instrument computer's
//! local time), `CameraNamePath` (TEM camera), `DwellTimePath` (s: the scan dwell time, or a
//! camera's exposure) and `FrameTime` (s, used when the whole-second time stamps cannot give
//! the frame interval). Only that one file beside the series is read; without it, the series
//! still loads.

use super::cursor::ByteCursor;
use super::{Acquisition, Calibration, Decoding, Movie, iso_utc};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use std::path::Path;

const IMAGES: u32 = 0x4122;
const SPECTRA: u32 = 0x4120;
const TAG_TIME: u32 = 0x4152;
const TAG_TIME_POSITION: u32 = 0x4142;

/// Whether `bytes` start like a TIA series file.
pub fn looks_like_ser(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x49, 0x49, 0x97, 0x01])
}

fn u16(c: &mut ByteCursor) -> Result<u16> {
    Ok(u16::from_le_bytes(c.array()?))
}

fn u32(c: &mut ByteCursor) -> Result<u32> {
    Ok(u32::from_le_bytes(c.array()?))
}

fn u64(c: &mut ByteCursor) -> Result<u64> {
    Ok(u64::from_le_bytes(c.array()?))
}

fn i32(c: &mut ByteCursor) -> Result<i32> {
    Ok(i32::from_le_bytes(c.array()?))
}

fn f64(c: &mut ByteCursor) -> Result<f64> {
    Ok(f64::from_le_bytes(c.array()?))
}

/// Bytes per pixel and name of a SER data type.
fn data_type(t: i16) -> Option<(usize, &'static str)> {
    Some(match t {
        1 => (1, "8-bit unsigned integer"),
        2 => (2, "16-bit unsigned integer"),
        3 => (4, "32-bit unsigned integer"),
        4 => (1, "8-bit signed integer"),
        5 => (2, "16-bit signed integer"),
        6 => (4, "32-bit signed integer"),
        7 => (4, "32-bit float"),
        8 => (8, "64-bit float"),
        _ => return None,
    })
}

fn pixel(t: i16, b: &[u8]) -> f32 {
    match t {
        1 => b[0] as f32,
        2 => u16::from_le_bytes([b[0], b[1]]) as f32,
        3 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        4 => b[0] as i8 as f32,
        5 => i16::from_le_bytes([b[0], b[1]]) as f32,
        6 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        7 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        _ => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
    }
}

/// Data element `i` at `off`: the image (top row first), its x pixel size as stored (m) and
/// its pixel type's name.
fn read_image(
    c: &mut ByteCursor,
    i: usize,
    off: u64,
    path: &Path,
    decoding: &mut Decoding,
) -> Result<(Raster, f64, &'static str)> {
    c.at(off)?;
    let (_x0, dx, _ex) = (f64(c)?, f64(c)?, i32(c)?);
    let (_y0, _dy, _ey) = (f64(c)?, f64(c)?, i32(c)?);
    let t = i16::from_le_bytes(c.array()?);
    let (w, h) = (i32(c)?, i32(c)?);
    let (size, n) = data_type(t).ok_or_else(|| {
        if matches!(t, 9 | 10) {
            Error::format(path, "complex-valued SER images are not supported")
        } else {
            c.bad(format!("pixel data type {t}"))
        }
    })?;
    if w <= 0 || h <= 0 {
        return Err(c.bad(format!("image {i} of {w}×{h} pixels")));
    }
    let (w, h) = (w as usize, h as usize);
    decoding.frame(path, w as u64 * h as u64)?;
    let raw = c.take(
        w.checked_mul(h)
            .and_then(|p| p.checked_mul(size))
            .ok_or_else(|| c.bad("image too large"))?,
    )?;
    // TIA stores the bottom row first; frames here start with the top row.
    let values = raw
        .chunks_exact(w * size)
        .rev()
        .flat_map(|row| row.chunks_exact(size).map(|b| pixel(t, b)))
        .collect();
    Ok((Raster::from_vec(w, h, values)?, dx, n))
}

/// Parse a TIA series file.
pub fn read_ser(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let mut c = ByteCursor::new(bytes, path, "SER");
    if !looks_like_ser(bytes) {
        return Err(c.bad("not a SER file (no II 0x0197 signature)"));
    }
    c.take(4)?;
    let version = u16(&mut c)?;
    let wide = match version {
        0x210 => false,
        0x220 => true,
        v => return Err(c.bad(format!("version {v:#x} (0x210 and 0x220 are read)"))),
    };
    let kind = u32(&mut c)?;
    let tag_kind = u32(&mut c)?;
    let total = u32(&mut c)?;
    let valid = u32(&mut c)? as usize;
    if valid as u64 > total as u64 {
        return Err(c.bad(format!("{valid} valid of {total} elements")));
    }
    let offsets_at = if wide {
        u64(&mut c)?
    } else {
        u32(&mut c)? as u64
    };
    if kind == SPECTRA {
        return Err(Error::format(
            path,
            "this SER file holds spectra, not images",
        ));
    }
    if kind != IMAGES {
        return Err(c.bad(format!("data type id {kind:#x}")));
    }
    if tag_kind == TAG_TIME_POSITION {
        return Err(Error::format(
            path,
            format!("this SER file is a scan of {valid} positions (4-D data), not a movie"),
        ));
    }
    if tag_kind != TAG_TIME {
        return Err(c.bad(format!("tag type id {tag_kind:#x}")));
    }
    if valid == 0 {
        return Err(Error::format(path, "the SER file holds no images"));
    }
    let word = if wide { 8 } else { 4 };
    // Offsets for `valid` data elements and as many tags must fit in the file.
    if (valid as u64).saturating_mul(2 * word as u64) > bytes.len() as u64 {
        return Err(c.bad(format!("{valid} elements do not fit in the file")));
    }
    c.at(offsets_at)?;
    let read_offsets = |c: &mut ByteCursor, n: usize| -> Result<Vec<u64>> {
        (0..n)
            .map(|_| if wide { u64(c) } else { u32(c).map(u64::from) })
            .collect()
    };
    let data_offsets = read_offsets(&mut c, valid)?;
    // The tag offsets follow all `total` data offsets; `total` ≥ `valid`.
    let tags_at = offsets_at + total as u64 * word as u64;
    c.at(tags_at)?;
    let tag_offsets = read_offsets(&mut c, valid)?;

    let mut frames = Vec::with_capacity(valid);
    let mut decoding = Decoding::new(ctx);
    decoding.expect(valid);
    let mut pixel_size_nm = None;
    let mut name = "";
    for (i, &off) in data_offsets.iter().enumerate() {
        let (frame, dx, n) = read_image(&mut c, i, off, path, &mut decoding)?;
        frames.push(frame);
        if i == 0 {
            name = n;
            // Image calibrations are in metres; diffraction patterns carry 1/m instead, which
            // shows up as absurd "pixel sizes" (> 1 mm): those are left uncalibrated.
            pixel_size_nm = Some(dx * 1e9).filter(|v| v.is_finite() && *v > 0.0 && *v < 1e6);
        }
    }
    // Whole-second time stamps: the mean interval when they span at least a second.
    let mut times = Vec::with_capacity(valid);
    for &off in &tag_offsets {
        c.at(off)?;
        let _kind = u16(&mut c)?;
        times.push(u32(&mut c)? as f64);
    }
    let emi = emi_info(path);
    let frame_interval_s = match (times.first(), times.last()) {
        (Some(a), Some(b)) if valid > 1 && b > a => Some((b - a) / (valid - 1) as f64),
        _ => emi
            .as_ref()
            .and_then(|e| e.frame_time_s)
            .filter(|_| valid > 1),
    };
    let mut acquisition = emi.map(|e| e.acquisition).unwrap_or_default();
    if let Some(&first) = times.first() {
        // Whole seconds: kept only when they tell the frames apart.
        if times.iter().any(|&t| t != first) {
            acquisition.frame_times_s = times.iter().map(|t| t - first).collect();
        }
        acquisition
            .started
            .get_or_insert_with(|| iso_utc(first as i64));
    }
    Ok(Movie {
        frames,
        calibration: Calibration {
            pixel_size_nm,
            frame_interval_s,
        },
        acquisition,
        source: path.to_path_buf(),
        format: format!("TIA SER ({name})"),
    })
}

/// What the EMI file beside a series says about it.
struct EmiInfo {
    acquisition: Acquisition,
    frame_time_s: Option<f64>,
}

/// The EMI companion of `NAME_N.ser` is `NAME.emi`, series N its N-th `<ObjectInfo>` block.
fn emi_info(ser: &Path) -> Option<EmiInfo> {
    let stem = ser.file_stem()?.to_str()?;
    let (base, n) = stem.rsplit_once('_')?;
    let index = n.parse::<usize>().ok()?.checked_sub(1)?;
    let emi = ["emi", "EMI"]
        .iter()
        .map(|ext| ser.with_file_name(format!("{base}.{ext}")))
        .find(|p| p.is_file())?;
    // EMI files are small (headers and XML); a huge one is not an EMI.
    if std::fs::metadata(&emi).ok()?.len() > 64 << 20 {
        return None;
    }
    let text = String::from_utf8_lossy(&std::fs::read(&emi).ok()?).into_owned();
    parse_emi(&text, index)
}

/// The text between the first `<name>` and the `</name>` after it.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + end].trim())
}

fn parse_emi(text: &str, index: usize) -> Option<EmiInfo> {
    let blocks: Vec<&str> = text
        .split("<ObjectInfo>")
        .skip(1)
        .filter_map(|b| b.split("</ObjectInfo>").next())
        .collect();
    let block = blocks.get(index).or(blocks.first())?;
    // The experimental description: <Data><Label>…</Label><Value>…</Value>…</Data>.
    let described = |label: &str| {
        block.split("<Data>").skip(1).find_map(|d| {
            (element(d, "Label")? == label)
                .then(|| element(d, "Value"))
                .flatten()
                .map(str::to_string)
        })
    };
    let number = |name: &str| {
        element(block, name)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let camera = element(block, "CameraNamePath")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let dwell_or_exposure = number("DwellTimePath");
    Some(EmiInfo {
        acquisition: Acquisition {
            instrument: described("Microscope").filter(|s| !s.is_empty()),
            beam_energy_kev: number("AcceleratingVoltage").map(|v| v / 1000.0),
            dwell_time_us: dwell_or_exposure
                .filter(|_| camera.is_none())
                .map(|s| s * 1e6),
            exposure_s: dwell_or_exposure.filter(|_| camera.is_some()),
            detector: camera,
            started: element(block, "AcquireDate")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            ..Acquisition::default()
        },
        frame_time_s: number("FrameTime"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_ser(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_ser(path, bytes, &JobCtx::detached())
    }

    #[test]
    fn emi_metadata_of_the_numbered_series() {
        let block = |kv: u32, extra: &str| {
            format!(
                "<ObjectInfo><ExperimentalConditions><MicroscopeConditions><AcceleratingVoltage>\
                 {kv}</AcceleratingVoltage></MicroscopeConditions></ExperimentalConditions>\
                 <ExperimentalDescription><Root><Data><Label>Microscope</Label><Value>Titan \
                 80-300</Value><Unit></Unit></Data><Data><Label>High tension</Label><Value>{}\
                 </Value><Unit>kV</Unit></Data></Root></ExperimentalDescription><AcquireDate>\
                 Sun Feb 21 17:53:06 2016</AcquireDate><AcquireInfo>{extra}</AcquireInfo>\
                 </ObjectInfo>",
                kv / 1000
            )
        };
        let text = format!(
            "binary\0{}\0more{}",
            block(
                300_000,
                "<DwellTimePath>0.000048</DwellTimePath><FrameTime>0.5</FrameTime>"
            ),
            block(
                80_000,
                "<DwellTimePath>0.1</DwellTimePath><CameraNamePath>BM-Ceta</CameraNamePath>"
            )
        );
        let stem = parse_emi(&text, 0).unwrap();
        assert_eq!(stem.acquisition.beam_energy_kev, Some(300.0));
        assert_eq!(stem.acquisition.instrument.as_deref(), Some("Titan 80-300"));
        assert!((stem.acquisition.dwell_time_us.unwrap() - 48.0).abs() < 1e-9);
        assert_eq!(stem.acquisition.exposure_s, None);
        assert_eq!(stem.frame_time_s, Some(0.5));
        assert_eq!(
            stem.acquisition.started.as_deref(),
            Some("Sun Feb 21 17:53:06 2016")
        );
        let tem = parse_emi(&text, 1).unwrap();
        assert_eq!(tem.acquisition.beam_energy_kev, Some(80.0));
        assert_eq!(tem.acquisition.detector.as_deref(), Some("BM-Ceta"));
        assert_eq!(tem.acquisition.exposure_s, Some(0.1));
        assert_eq!(tem.acquisition.dwell_time_us, None);
        assert!(parse_emi("no xml here", 0).is_none());
        assert!(parse_emi("<ObjectInfo><AcceleratingVoltage>", 0).is_some());
    }

    #[test]
    fn the_emi_beside_a_series_is_found_by_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("scan.emi"),
            "<ObjectInfo><AcceleratingVoltage>200000</AcceleratingVoltage></ObjectInfo>",
        )
        .unwrap();
        let found = emi_info(&dir.path().join("scan_1.ser")).unwrap();
        assert_eq!(found.acquisition.beam_energy_kev, Some(200.0));
        assert!(emi_info(&dir.path().join("other_1.ser")).is_none());
        assert!(emi_info(&dir.path().join("scan.ser")).is_none());
    }

    /// A SER file of `frames` images of 3 × 2 16-bit signed values, 0.2 nm pixels, 2 s apart.
    fn ser(version: u16, frames: usize, tag: u32) -> Vec<u8> {
        let wide = version == 0x220;
        let mut b = Vec::new();
        b.extend_from_slice(&[0x49, 0x49, 0x97, 0x01]);
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&IMAGES.to_le_bytes());
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&(frames as u32).to_le_bytes()); // total
        b.extend_from_slice(&(frames as u32).to_le_bytes()); // valid
        let offsets_at_pos = b.len();
        b.extend_from_slice(&vec![0u8; if wide { 8 } else { 4 }]);
        b.extend_from_slice(&1u32.to_le_bytes()); // one series dimension
        b.extend_from_slice(&(frames as u32).to_le_bytes());
        b.extend_from_slice(&0f64.to_le_bytes());
        b.extend_from_slice(&1f64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for s in ["Number", ""] {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        let mut data_offsets = Vec::new();
        for f in 0..frames {
            data_offsets.push(b.len() as u64);
            for (o, d, e) in [(0.0f64, 0.2e-9f64, 0i32), (0.0, 0.2e-9, 0)] {
                b.extend_from_slice(&o.to_le_bytes());
                b.extend_from_slice(&d.to_le_bytes());
                b.extend_from_slice(&e.to_le_bytes());
            }
            b.extend_from_slice(&5i16.to_le_bytes());
            b.extend_from_slice(&3i32.to_le_bytes());
            b.extend_from_slice(&2i32.to_le_bytes());
            for v in 0..6 {
                b.extend_from_slice(&((v as i16 - 3) * (f as i16 + 1)).to_le_bytes());
            }
        }
        let mut tag_offsets = Vec::new();
        for f in 0..frames {
            tag_offsets.push(b.len() as u64);
            b.extend_from_slice(&(tag as u16).to_le_bytes());
            b.extend_from_slice(&(1_600_000_000u32 + 2 * f as u32).to_le_bytes());
        }
        let at = b.len() as u64;
        for o in data_offsets.iter().chain(&tag_offsets) {
            if wide {
                b.extend_from_slice(&o.to_le_bytes());
            } else {
                b.extend_from_slice(&(*o as u32).to_le_bytes());
            }
        }
        if wide {
            b[offsets_at_pos..offsets_at_pos + 8].copy_from_slice(&at.to_le_bytes());
        } else {
            b[offsets_at_pos..offsets_at_pos + 4].copy_from_slice(&(at as u32).to_le_bytes());
        }
        b
    }

    #[test]
    fn both_versions_read_frames_values_and_calibration() {
        for version in [0x210u16, 0x220] {
            let m = read_ser(Path::new("t.ser"), &ser(version, 3, TAG_TIME)).expect("read");
            assert_eq!(m.frames.len(), 3);
            assert_eq!((m.frames[0].width, m.frames[0].height), (3, 2));
            // Stored bottom row first: [-9 -6 -3] is the bottom row.
            assert_eq!(m.frames[2].data, vec![0.0, 3.0, 6.0, -9.0, -6.0, -3.0]);
            let px = m.calibration.pixel_size_nm.expect("pixel size");
            assert!((px - 0.2).abs() < 1e-9);
            assert_eq!(m.calibration.frame_interval_s, Some(2.0));
            assert!(m.format.contains("16-bit signed"));
        }
    }

    #[test]
    fn scans_spectra_and_broken_files_are_clear_errors() {
        let e = read_ser(Path::new("s.ser"), &ser(0x210, 2, TAG_TIME_POSITION)).expect_err("scan");
        assert!(e.to_string().contains("not a movie"), "{e}");
        let good = ser(0x220, 2, TAG_TIME);
        for cut in [3, 10, 30, good.len() / 2, good.len() - 1] {
            assert!(
                read_ser(Path::new("c.ser"), &good[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut lying = good.clone();
        lying[18..22].copy_from_slice(&u32::MAX.to_le_bytes()); // valid count
        assert!(read_ser(Path::new("l.ser"), &lying).is_err());
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..3000 {
            let mut b = good.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            let _ = read_ser(Path::new("m.ser"), &b);
        }
    }
}
