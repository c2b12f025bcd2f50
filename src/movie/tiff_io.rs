//! TIFF stacks: reading (grey 8/16/32/64-bit integer and float, ImageJ calibration) and writing.

use super::nm_per_unit;
use super::{Calibration, Decoding, Movie};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use std::io::Cursor;
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{Rational, TiffEncoder, colortype};
use tiff::tags::{ResolutionUnit, Tag};

/// Read every page of a grey TIFF as a frame; calibration from ImageJ metadata or the
/// resolution tags (centimetre unit) when present.
pub fn read_tiff(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let corrupt =
        |e: tiff::TiffError| Error::format(path, format!("corrupt or truncated TIFF ({e})"));
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut decoding = Decoding::new(ctx);
    if let Some(pages) = count_pages(bytes) {
        decoding.expect(pages);
    }
    let description = dec
        .find_tag(Tag::ImageDescription)
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok());
    let x_resolution = dec
        .find_tag(Tag::XResolution)
        .ok()
        .flatten()
        .and_then(rational_value);
    let unit = dec
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten();
    if let Some(d) = &description {
        imagej_layout(d).map_err(|msg| Error::format(path, msg))?;
    }
    let calibration = calibration_from_tags(description.as_deref(), x_resolution, unit);
    let mut frames = Vec::new();
    let mut last_kind;
    loop {
        let (w, h) = dec.dimensions().map_err(corrupt)?;
        let colour = dec.colortype().map_err(corrupt)?;
        if !matches!(colour, tiff::ColorType::Gray(_)) {
            return Err(Error::format(
                path,
                format!(
                    "TIFF page {} is {colour:?}; only single-channel (grey) images are supported",
                    frames.len()
                ),
            ));
        }
        // Page by page against the memory free at the start.
        decoding.frame(path, w as u64 * h as u64)?;
        let (data, k) = match dec.read_image().map_err(corrupt)? {
            DecodingResult::U8(v) => (v.into_iter().map(f32::from).collect(), "8-bit"),
            DecodingResult::U16(v) => (v.into_iter().map(f32::from).collect(), "16-bit"),
            DecodingResult::U32(v) => (v.into_iter().map(|x| x as f32).collect(), "32-bit"),
            DecodingResult::U64(v) => (v.into_iter().map(|x| x as f32).collect(), "64-bit"),
            DecodingResult::I8(v) => (v.into_iter().map(f32::from).collect(), "8-bit signed"),
            DecodingResult::I16(v) => (v.into_iter().map(f32::from).collect(), "16-bit signed"),
            DecodingResult::I32(v) => (v.into_iter().map(|x| x as f32).collect(), "32-bit signed"),
            DecodingResult::I64(v) => (v.into_iter().map(|x| x as f32).collect(), "64-bit signed"),
            DecodingResult::F16(v) => (v.into_iter().map(f32::from).collect(), "16-bit float"),
            DecodingResult::F32(v) => (v, "32-bit float"),
            DecodingResult::F64(v) => (v.into_iter().map(|x| x as f32).collect(), "64-bit float"),
        };
        last_kind = k;
        frames.push(Raster::from_vec(w as usize, h as usize, data)?);
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(corrupt)?;
    }
    Ok(Movie {
        frames,
        calibration,
        acquisition: Default::default(),
        source: path.to_path_buf(),
        format: format!("TIFF ({last_kind})"),
    })
}

/// How many pages the TIFF holds, by walking its directories without decoding an image; `None`
/// when they cannot be walked (then decoding says why).
fn count_pages(bytes: &[u8]) -> Option<usize> {
    let mut dec = Decoder::new(Cursor::new(bytes)).ok()?;
    let mut pages = 1;
    while dec.more_images() {
        dec.next_image().ok()?;
        pages += 1;
    }
    Some(pages)
}

/// A numeric tag value (rational, float or integer) as f64.
fn rational_value(v: tiff::decoder::ifd::Value) -> Option<f64> {
    use tiff::decoder::ifd::Value;
    match v {
        Value::Rational(n, d) if d != 0 => Some(n as f64 / d as f64),
        Value::Float(f) => Some(f as f64),
        Value::Double(f) => Some(f),
        Value::Short(n) => Some(n as f64),
        Value::Unsigned(n) => Some(n as f64),
        Value::List(mut l) if !l.is_empty() => rational_value(l.swap_remove(0)),
        _ => None,
    }
}

/// Refuse ImageJ hyperstacks that are not one image series: several channels, or z slices and
/// time frames at once (their pages would be taken for frames).
fn imagej_layout(description: &str) -> std::result::Result<(), String> {
    if !description.starts_with("ImageJ=") {
        return Ok(());
    }
    let field = |key: &str| {
        description.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse::<usize>().ok())?
        })
    };
    let channels = field("channels").unwrap_or(1);
    if channels > 1 {
        return Err(format!(
            "an ImageJ hyperstack with {channels} channels; save one channel as its own stack \
             (Image > Color > Split Channels)"
        ));
    }
    let (slices, frames) = (field("slices").unwrap_or(1), field("frames").unwrap_or(1));
    if slices > 1 && frames > 1 {
        return Err(format!(
            "an ImageJ hyperstack of {slices} z slices × {frames} frames; save one slice's time \
             series (Image > Stacks > Reslice or Duplicate)"
        ));
    }
    Ok(())
}

fn calibration_from_tags(
    description: Option<&str>,
    x_resolution: Option<f64>,
    unit: Option<u16>,
) -> Calibration {
    let mut cal = Calibration::default();
    let px_per_unit = x_resolution.filter(|r| r.is_finite() && *r > 0.0);
    if let Some(desc) = description.filter(|d| d.starts_with("ImageJ=")) {
        for line in desc.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key.trim() {
                "unit" => {
                    if let (Some(nm), Some(r)) = (nm_per_unit(value), px_per_unit) {
                        cal.pixel_size_nm = Some(nm / r);
                    }
                }
                "finterval" => {
                    cal.frame_interval_s = value.trim().parse::<f64>().ok().filter(|t| *t > 0.0);
                }
                _ => {}
            }
        }
    } else if let (Some(r), Some(3)) = (px_per_unit, unit) {
        cal.pixel_size_nm = Some(1e7 / r);
    }
    cal
}

/// Rational approximation of a positive number for a TIFF tag.
fn rational(v: f64) -> Rational {
    let d = 1_000_000u32;
    Rational {
        n: (v * d as f64).round().clamp(1.0, u32::MAX as f64) as u32,
        d,
    }
}

fn imagej_description(frames: usize, cal: &Calibration) -> String {
    format!(
        "ImageJ=1.11a\nimages={frames}\nframes={frames}\n{}",
        calibration_lines(cal)
    )
}

/// ImageJ's description lines for the pixel unit and the frame interval.
fn calibration_lines(cal: &Calibration) -> String {
    let mut d = String::new();
    if cal.pixel_size_nm.is_some() {
        d.push_str("unit=nm\n");
    }
    if let Some(t) = cal.frame_interval_s {
        d.push_str(&format!("finterval={t}\n"));
    }
    d
}

/// Encode frames as a multi-page 32-bit float TIFF with ImageJ calibration.
pub fn write_tiff_f32(frames: &[Raster], cal: &Calibration) -> Result<Vec<u8>> {
    let desc = imagej_description(frames.len(), cal);
    write_pages::<colortype::Gray32Float, f32>(frames, cal, &desc, |v| v)
}

/// Encode an ImageJ hyperstack of two channels (`frames` and `labels`, one page each per
/// frame, channel first) as 32-bit float, with ImageJ calibration.
pub fn write_hyperstack_f32(
    frames: &[Raster],
    labels: &[Raster],
    cal: &Calibration,
) -> Result<Vec<u8>> {
    if frames.len() != labels.len() {
        return Err(Error::invalid(format!(
            "hyperstack: {} frames but {} label images",
            frames.len(),
            labels.len()
        )));
    }
    let t = frames.len();
    let desc = format!(
        "ImageJ=1.11a\nimages={}\nchannels=2\nframes={t}\nhyperstack=true\nmode=composite\n{}",
        2 * t,
        calibration_lines(cal)
    );
    let pages: Vec<Raster> = frames
        .iter()
        .zip(labels)
        .flat_map(|(f, l)| [f.clone(), l.clone()])
        .collect();
    write_pages::<colortype::Gray32Float, f32>(&pages, cal, &desc, |v| v)
}

/// Encode frames as a multi-page 8-bit TIFF (values are clamped and rounded), e.g. masks.
pub fn write_tiff_u8(frames: &[Raster], cal: &Calibration) -> Result<Vec<u8>> {
    let desc = imagej_description(frames.len(), cal);
    write_pages::<colortype::Gray8, u8>(frames, cal, &desc, |v| v.round().clamp(0.0, 255.0) as u8)
}

fn write_pages<C, T>(
    frames: &[Raster],
    cal: &Calibration,
    desc: &str,
    conv: impl Fn(f32) -> T,
) -> Result<Vec<u8>>
where
    C: colortype::ColorType<Inner = T>,
    [T]: tiff::encoder::TiffValue,
{
    let fail = |e: tiff::TiffError| Error::invalid(format!("TIFF encoding failed: {e}"));
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf).map_err(fail)?;
        for (i, f) in frames.iter().enumerate() {
            let mut img = enc
                .new_image::<C>(f.width as u32, f.height as u32)
                .map_err(fail)?;
            if i == 0 {
                img.encoder()
                    .write_tag(Tag::ImageDescription, desc)
                    .map_err(fail)?;
            }
            if let Some(p) = cal.pixel_size_nm {
                img.resolution(ResolutionUnit::None, rational(1.0 / p));
            }
            let data: Vec<T> = f.data.iter().map(|&v| conv(v)).collect();
            img.write_data(&data).map_err(fail)?;
        }
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_tiff(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_tiff(path, bytes, &JobCtx::detached())
    }

    #[test]
    fn float_stack_round_trip_with_calibration() {
        let frames = vec![
            Raster::from_vec(3, 2, vec![0.5, 1.0, -2.0, 3.0, 4.0, 5.0]).expect("raster"),
            Raster::from_vec(3, 2, vec![9.0; 6]).expect("raster"),
        ];
        let cal = Calibration {
            pixel_size_nm: Some(0.0125),
            frame_interval_s: Some(0.25),
        };
        let bytes = write_tiff_f32(&frames, &cal).expect("encode");
        let m = read_tiff(Path::new("m.tif"), &bytes).expect("decode");
        assert_eq!(m.frames, frames);
        let p = m.calibration.pixel_size_nm.expect("pixel size read back");
        assert!((p - 0.0125).abs() < 1e-6, "{p}");
        assert_eq!(m.calibration.frame_interval_s, Some(0.25));
    }

    /// The labelled hyperstack: pages alternate frame and labels, and its description is the
    /// two-channel layout ImageJ opens as a hyperstack (which our reader, taking one series,
    /// refuses by name).
    #[test]
    fn two_channel_hyperstack_layout() {
        let frames = vec![
            Raster::zeros(4, 3),
            Raster::from_vec(4, 3, vec![2.0; 12]).expect("r"),
        ];
        let labels = vec![
            Raster::from_vec(4, 3, vec![1.0; 12]).expect("r"),
            Raster::zeros(4, 3),
        ];
        let cal = Calibration {
            pixel_size_nm: Some(0.02),
            frame_interval_s: Some(0.5),
        };
        let bytes = write_hyperstack_f32(&frames, &labels, &cal).expect("encode");
        let mut dec = tiff::decoder::Decoder::new(Cursor::new(&bytes)).expect("decoder");
        let desc = dec
            .get_tag_ascii_string(Tag::ImageDescription)
            .expect("description");
        for line in [
            "images=4",
            "channels=2",
            "frames=2",
            "hyperstack=true",
            "unit=nm",
            "finterval=0.5",
        ] {
            assert!(desc.lines().any(|l| l == line), "{line} in {desc}");
        }
        let mut pages = Vec::new();
        loop {
            if let tiff::decoder::DecodingResult::F32(v) = dec.read_image().expect("page") {
                pages.push(v[0]);
            }
            if !dec.more_images() {
                break;
            }
            dec.next_image().expect("next");
        }
        assert_eq!(pages, [0.0, 1.0, 2.0, 0.0]);
        let e = read_tiff(Path::new("h.tif"), &bytes).expect_err("two channels");
        assert!(e.to_string().contains("2 channels"), "{e}");
        assert!(write_hyperstack_f32(&frames, &labels[..1], &cal).is_err());
    }

    #[test]
    fn imagej_hyperstacks_of_one_series_only() {
        assert!(imagej_layout("ImageJ=1.54f\nimages=30\nframes=30\nunit=nm\n").is_ok());
        assert!(imagej_layout("ImageJ=1.54f\nimages=30\nslices=30\n").is_ok());
        assert!(imagej_layout("not imagej\nchannels=3\n").is_ok());
        let e = imagej_layout("ImageJ=1.54f\nimages=60\nchannels=2\nframes=30\nhyperstack=true\n")
            .expect_err("channels");
        assert!(e.contains("2 channels"), "{e}");
        let e = imagej_layout("ImageJ=1.54f\nimages=60\nslices=2\nframes=30\n").expect_err("4-D");
        assert!(e.contains("2 z slices × 30 frames"), "{e}");
    }

    #[test]
    fn u8_and_u16_pages_read_as_float() {
        let frames = vec![Raster::from_vec(2, 2, vec![0.0, 1.0, 254.6, 300.0]).expect("raster")];
        let bytes = write_tiff_u8(&frames, &Calibration::default()).expect("encode");
        let m = read_tiff(Path::new("u8.tif"), &bytes).expect("decode");
        assert_eq!(m.frames[0].data, vec![0.0, 1.0, 255.0, 255.0]);
        assert_eq!(m.calibration, Calibration::default());

        let mut buf = Cursor::new(Vec::new());
        TiffEncoder::new(&mut buf)
            .expect("encoder")
            .write_image::<colortype::Gray16>(2, 1, &[1000u16, 65535])
            .expect("write");
        let m = read_tiff(Path::new("u16.tif"), buf.get_ref()).expect("decode");
        assert_eq!(m.frames[0].data, vec![1000.0, 65535.0]);
    }

    #[test]
    fn truncated_tiff_is_an_error() {
        let frames = vec![Raster::zeros(64, 64)];
        let bytes = write_tiff_f32(&frames, &Calibration::default()).expect("encode");
        for cut in [8, 100, bytes.len() / 2, bytes.len() - 10] {
            let err = read_tiff(Path::new("cut.tif"), &bytes[..cut]);
            assert!(err.is_err(), "cut at {cut} must fail");
        }
    }

    #[test]
    fn rgb_tiff_is_refused_with_reason() {
        let mut buf = Cursor::new(Vec::new());
        TiffEncoder::new(&mut buf)
            .expect("encoder")
            .write_image::<colortype::RGB8>(1, 1, &[1u8, 2, 3])
            .expect("write");
        let err = read_tiff(Path::new("rgb.tif"), buf.get_ref()).expect_err("rgb");
        assert!(err.to_string().contains("grey"));
    }

    #[test]
    fn centimetre_resolution_without_imagej() {
        let cal = calibration_from_tags(None, Some(1e8), Some(3));
        assert!((cal.pixel_size_nm.expect("cm unit") - 0.1).abs() < 1e-12);
        assert_eq!(
            calibration_from_tags(None, Some(72.0), Some(2)).pixel_size_nm,
            None
        );
    }
}
