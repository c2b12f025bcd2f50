//! Gatan DigitalMicrograph DM3 and DM4 files: a tree of tagged groups and data.
//!
//! # Layout
//! Header (big-endian): version (u32: 3 or 4), root length (DM3 u32, DM4 u64), byte order of the
//! tag data (u32: 1 = little-endian, 0 = big-endian). Then the root group: sorted (u8), open (u8),
//! number of entries (DM3 u32, DM4 u64). Each entry: kind (u8: 20 group, 21 data), label length
//! (u16) and label, in DM4 the entry's size (u64); a group recurses, a data entry is `%%%%`, the
//! number of type words (DM3 u32, DM4 u64), the type words, then the value in the data byte order.
//! Type words: a simple type code; 18 string (+ length in UTF-16 units); 15 struct (+ name length,
//! field count, then per field a name length and a type); 20 array (+ element type, or a struct
//! description, then the length).
//!
//! Images are the groups of `ImageList`; the first is usually a thumbnail, so the largest is read.
//! `ImageData` holds `Data` (the pixel array), `Dimensions` (x, y[, frames]), `DataType` and
//! `Calibrations/Dimension/*` with `Scale` and `Units`.
//!
//! Every length is checked against the bytes left before anything is allocated, nesting is
//! limited, and arrays are read in place (only the image array is decoded).

use super::cursor::ByteCursor;
use super::{Acquisition, Calibration, Decoding, Movie, nm_per_unit, s_per_unit};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use std::path::Path;

/// `DataType` of RGB images (thumbnails, colour overlays).
const RGB: i64 = 23;

/// Deepest tag nesting accepted (real files use fewer than 20 levels).
const MAX_DEPTH: usize = 64;

/// A value in the tag tree. Arrays stay in the file: element type, start and count.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Text(String),
    Array {
        elem: u64,
        start: usize,
        len: usize,
    },
    /// Structs and arrays of structs: not needed for images, skipped.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
enum Tag {
    Group(Vec<(String, Tag)>),
    Data(Value),
}

impl Tag {
    fn get(&self, label: &str) -> Option<&Tag> {
        match self {
            Tag::Group(entries) => entries.iter().find(|(l, _)| l == label).map(|(_, t)| t),
            Tag::Data(_) => None,
        }
    }

    fn path(&self, labels: &[&str]) -> Option<&Tag> {
        labels.iter().try_fold(self, |t, l| t.get(l))
    }

    fn children(&self) -> &[(String, Tag)] {
        match self {
            Tag::Group(entries) => entries,
            Tag::Data(_) => &[],
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Tag::Data(Value::Number(v)) => Some(*v),
            _ => None,
        }
    }

    /// A string: type 18, or (as DigitalMicrograph writes most strings) an array of UTF-16
    /// units in `bytes`.
    fn text(&self, bytes: &[u8], little: bool) -> Option<String> {
        match self {
            Tag::Data(Value::Text(s)) => Some(s.clone()),
            Tag::Data(Value::Array {
                elem: 4,
                start,
                len,
            }) => {
                let raw = bytes.get(*start..start.checked_add(len.checked_mul(2)?)?)?;
                Some(utf16(raw, little))
            }
            _ => None,
        }
    }
}

/// Size in bytes of a simple type code, if it is one.
fn simple_size(code: u64) -> Option<usize> {
    match code {
        2 | 4 => Some(2),
        3 | 5 | 6 => Some(4),
        7 | 11 | 12 => Some(8),
        8..=10 => Some(1),
        _ => None,
    }
}

fn simple_name(code: u64) -> &'static str {
    match code {
        2 => "16-bit signed integer",
        3 => "32-bit signed integer",
        4 => "16-bit unsigned integer",
        5 => "32-bit unsigned integer",
        6 => "32-bit float",
        7 => "64-bit float",
        8 => "boolean",
        9 => "8-bit signed integer",
        10 => "8-bit unsigned integer",
        11 => "64-bit signed integer",
        12 => "64-bit unsigned integer",
        _ => "unknown",
    }
}

struct Reader<'a> {
    c: ByteCursor<'a>,
    dm4: bool,
    little: bool,
}

impl<'a> Reader<'a> {
    fn bad(&self, msg: impl Into<String>) -> Error {
        self.c.bad(msg)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.c.take(n)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| a << 8 | b as u64))
    }

    /// A header length word: u32 in DM3, u64 in DM4.
    fn word(&mut self) -> Result<u64> {
        self.be(if self.dm4 { 8 } else { 4 })
    }

    /// A count that must fit in what is left, at `min_bytes` per item.
    fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.word()?;
        let left = self.c.left() as u64;
        if n > left / min_bytes.max(1) as u64 {
            return Err(self.bad(format!(
                "a count of {n} does not fit in the {left} bytes left"
            )));
        }
        Ok(n as usize)
    }

    fn simple(&mut self, code: u64) -> Result<f64> {
        let size = simple_size(code).ok_or_else(|| self.bad(format!("unknown type {code}")))?;
        let b = self.take(size)?;
        Ok(decode(code, b, self.little))
    }

    fn group(&mut self, depth: usize) -> Result<Tag> {
        if depth > MAX_DEPTH {
            return Err(self.bad("tags nested too deeply"));
        }
        self.take(2)?; // sorted, open
        let n = self.count(3)?;
        let mut entries = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let kind = self.take(1)?[0];
            let label_len = self.be(2)? as usize;
            let label = String::from_utf8_lossy(self.take(label_len)?).into_owned();
            if self.dm4 {
                self.be(8)?; // entry size; the contents say the same
            }
            let tag = match kind {
                20 => self.group(depth + 1)?,
                21 => Tag::Data(self.data()?),
                0 => break,
                k => return Err(self.bad(format!("unknown entry kind {k}"))),
            };
            entries.push((label, tag));
        }
        Ok(Tag::Group(entries))
    }

    fn data(&mut self) -> Result<Value> {
        if self.take(4)? != b"%%%%" {
            return Err(self.bad("a data entry does not start with %%%%"));
        }
        let words = self.count(if self.dm4 { 8 } else { 4 })?;
        let mut info = Vec::with_capacity(words);
        for _ in 0..words {
            info.push(self.word()?);
        }
        let Some(&code) = info.first() else {
            return Err(self.bad("a data entry without a type"));
        };
        match code {
            18 => {
                let units = *info
                    .get(1)
                    .ok_or_else(|| self.bad("string without length"))?
                    as usize;
                let raw = self.take(
                    units
                        .checked_mul(2)
                        .ok_or_else(|| self.bad("string too long"))?,
                )?;
                Ok(Value::Text(utf16(raw, self.little)))
            }
            15 => {
                // name length, field count, then (name length, type) per field.
                let fields = *info
                    .get(2)
                    .ok_or_else(|| self.bad("struct without fields"))?
                    as usize;
                let mut size = 0usize;
                for f in 0..fields {
                    let t = *info
                        .get(4 + 2 * f)
                        .ok_or_else(|| self.bad("struct field without type"))?;
                    size +=
                        simple_size(t).ok_or_else(|| self.bad(format!("struct field type {t}")))?;
                }
                self.take(size)?;
                Ok(Value::Other)
            }
            20 => {
                let elem = *info
                    .get(1)
                    .ok_or_else(|| self.bad("array without element type"))?;
                let len = *info.last().unwrap_or(&0);
                let elem_size = if elem == 15 {
                    let fields = *info.get(3).ok_or_else(|| self.bad("struct array"))? as usize;
                    let mut size = 0usize;
                    for f in 0..fields {
                        let t = *info
                            .get(5 + 2 * f)
                            .ok_or_else(|| self.bad("struct array field without type"))?;
                        size += simple_size(t)
                            .ok_or_else(|| self.bad(format!("struct array field type {t}")))?;
                    }
                    size
                } else {
                    simple_size(elem).ok_or_else(|| self.bad(format!("array of type {elem}")))?
                };
                let bytes = (len as usize)
                    .checked_mul(elem_size)
                    .filter(|_| len <= usize::MAX as u64)
                    .ok_or_else(|| self.bad("array too large"))?;
                let start = self.c.pos;
                self.take(bytes)?;
                Ok(if elem == 15 {
                    Value::Other
                } else {
                    Value::Array {
                        elem,
                        start,
                        len: len as usize,
                    }
                })
            }
            c => Ok(Value::Number(self.simple(c)?)),
        }
    }
}

fn utf16(raw: &[u8], little: bool) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| {
            if little {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        })
        .collect();
    String::from_utf16_lossy(&units)
}

fn decode(code: u64, b: &[u8], little: bool) -> f64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    if !little {
        a[..b.len()].reverse();
    }
    match code {
        2 => i16::from_le_bytes([a[0], a[1]]) as f64,
        3 => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        4 => u16::from_le_bytes([a[0], a[1]]) as f64,
        5 => u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        6 => f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        7 => f64::from_le_bytes(a),
        9 => a[0] as i8 as f64,
        8 | 10 => a[0] as f64,
        11 => i64::from_le_bytes(a) as f64,
        12 => u64::from_le_bytes(a) as f64,
        _ => f64::NAN,
    }
}

/// DigitalMicrograph's `DataType` codes, for messages.
fn data_type_name(t: i64) -> String {
    match t {
        1 => "16-bit signed".into(),
        2 => "32-bit float".into(),
        3 => "complex (2 × 32-bit)".into(),
        5 => "packed complex".into(),
        6 => "8-bit unsigned".into(),
        7 => "32-bit signed".into(),
        8 => "RGB".into(),
        9 => "8-bit signed".into(),
        10 => "16-bit unsigned".into(),
        11 => "32-bit unsigned".into(),
        12 => "64-bit float".into(),
        13 => "complex (2 × 64-bit)".into(),
        14 => "binary".into(),
        23 => "RGBA".into(),
        t => format!("type {t}"),
    }
}

/// Time unit → seconds.
/// Whether `bytes` start like a DM3 or DM4 file: version 3 or 4, then a byte-order flag of 0 or 1
/// after the root length.
pub fn looks_like_dm(bytes: &[u8]) -> bool {
    let flag_at = match bytes.get(..4) {
        Some([0, 0, 0, 3]) => 8,
        Some([0, 0, 0, 4]) => 12,
        _ => return false,
    };
    matches!(bytes.get(flag_at..flag_at + 4), Some([0, 0, 0, 0 | 1]))
}

/// An image of the list: its group, its ImageData, element type, data offset, length and
/// DataType.
type Picked<'a> = (&'a Tag, &'a Tag, u64, usize, usize, i64);

/// The largest single-channel image of the list; an error naming what the file holds when
/// there is none.
fn pick_image<'a>(images: &'a Tag, path: &Path) -> Result<Picked<'a>> {
    // The largest single-channel image. The first entry is usually an RGB thumbnail of the
    // window, which may be larger than the image itself.
    let candidates: Vec<(&Tag, &Tag, u64, usize, usize, i64)> = images
        .children()
        .iter()
        .filter_map(|(_, img)| {
            let data = img.get("ImageData")?;
            let data_type = data.get("DataType").and_then(Tag::number).unwrap_or(0.0) as i64;
            match data.get("Data")? {
                Tag::Data(Value::Array { elem, start, len }) => {
                    Some((img, data, *elem, *start, *len, data_type))
                }
                _ => None,
            }
        })
        .collect();
    let Some(&picked) = candidates.iter().filter(|c| c.5 != RGB).max_by_key(|c| c.4) else {
        let found: Vec<String> = images
            .children()
            .iter()
            .filter_map(|(_, img)| img.path(&["ImageData", "DataType"])?.number())
            .map(|t| data_type_name(t as i64))
            .collect();
        return Err(Error::format(
            path,
            format!(
                "the DM file holds no single-channel real-valued image (images found: {})",
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            ),
        ));
    };
    Ok(picked)
}

/// The pixel size and frame interval from Calibrations/Dimension (one group per axis x, y[, t]
/// with Scale and Units); an error when the third axis is not time.
fn calibration(data: &Tag, bytes: &[u8], little: bool, path: &Path) -> Result<Calibration> {
    // Calibrations/Dimension: one group per axis (x, y[, t]) with Scale and Units.
    let axes: Vec<(f64, String)> = data
        .path(&["Calibrations", "Dimension"])
        .map(|d| {
            d.children()
                .iter()
                .map(|(_, a)| {
                    (
                        a.get("Scale").and_then(Tag::number).unwrap_or(f64::NAN),
                        a.get("Units")
                            .and_then(|u| u.text(bytes, little))
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let pixel_size_nm = axes
        .first()
        .and_then(|(s, u)| Some(s * nm_per_unit(u)?))
        .filter(|v| v.is_finite() && *v > 0.0);
    if let Some((_, unit)) = axes.get(2).filter(|(_, u)| !u.trim().is_empty())
        && s_per_unit(unit).is_none()
    {
        return Err(Error::format(
            path,
            format!(
                "the third axis of this DM stack is in {unit}, not time: a spectrum image or \
                 series, not a movie"
            ),
        ));
    }
    let frame_interval_s = axes
        .get(2)
        .and_then(|(s, u)| Some(s * s_per_unit(u)?))
        .filter(|v| v.is_finite() && *v > 0.0);
    Ok(Calibration {
        pixel_size_nm,
        frame_interval_s,
    })
}

/// Parse a DM3 or DM4 file.
pub fn read_dm(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let mut r = Reader {
        c: ByteCursor::new(bytes, path, "DM3"),
        dm4: false,
        little: true,
    };
    let version = r.be(4)?;
    r.dm4 = match version {
        3 => false,
        4 => {
            r.c.format = "DM4";
            true
        }
        v => return Err(r.bad(format!("version {v} (expected 3 or 4)"))),
    };
    r.word()?; // root length
    r.little = match r.be(4)? {
        0 => false,
        1 => true,
        o => return Err(r.bad(format!("byte order flag {o}"))),
    };
    let root = r.group(0)?;
    let images = root
        .get("ImageList")
        .ok_or_else(|| Error::format(path, "the DM file holds no ImageList"))?;
    let (image, data, elem, start, len, data_type) = pick_image(images, path)?;
    if matches!(data_type, 3 | 13) {
        return Err(Error::format(
            path,
            "complex-valued DM images are not supported",
        ));
    }
    if data_type == RGB {
        return Err(Error::format(
            path,
            "RGB DM images are not supported (STEM images are single-channel)",
        ));
    }
    let dims: Vec<usize> = data
        .get("Dimensions")
        .map(|d| {
            d.children()
                .iter()
                .filter_map(|(_, t)| t.number())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    let (w, h, t) = match dims.as_slice() {
        [w, h] => (*w, *h, 1),
        [w, h, t] => (*w, *h, *t),
        d => {
            return Err(Error::format(
                path,
                format!(
                    "DM image with {} dimensions; 2-D images and 3-D stacks are read",
                    d.len()
                ),
            ));
        }
    };
    if w.checked_mul(h).and_then(|p| p.checked_mul(t)) != Some(len) {
        return Err(Error::format(
            path,
            format!("DM image of {w}×{h}×{t} pixels has {len} values"),
        ));
    }
    let size = simple_size(elem).unwrap_or(1);
    let px = w * h;
    let mut decoding = Decoding::new(ctx);
    decoding.expect(t);
    let frames = (0..t)
        .map(|k| {
            decoding.frame(path, px as u64)?;
            let values = (0..px)
                .map(|i| {
                    let o = start + (k * px + i) * size;
                    decode(elem, &bytes[o..o + size], r.little) as f32
                })
                .collect();
            Raster::from_vec(w, h, values)
        })
        .collect::<Result<Vec<_>>>()?;
    let calibration = calibration(data, bytes, r.little, path)?;
    Ok(Movie {
        frames,
        calibration,
        acquisition: acquisition(image, bytes, r.little),
        source: path.to_path_buf(),
        format: format!("DM{} ({})", if r.dm4 { 4 } else { 3 }, simple_name(elem)),
    })
}

/// What the image's tags say about the acquisition: `ImageTags` groups `Microscope Info`
/// (Voltage in V, Name), `DataBar` (Signal or Device Name, Exposure Time (s), Acquisition Date
/// and Time as DigitalMicrograph wrote them, in the computer's locale) and `DigiScan` (Sample
/// Time in µs).
fn acquisition(image: &Tag, bytes: &[u8], little: bool) -> Acquisition {
    let tags = image.get("ImageTags");
    let at = |p: &[&str]| tags.and_then(|t| t.path(p));
    let number = |p: &[&str]| {
        at(p)
            .and_then(Tag::number)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let text = |p: &[&str]| {
        at(p)
            .and_then(|t| t.text(bytes, little))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let started = match (
        text(&["DataBar", "Acquisition Date"]),
        text(&["DataBar", "Acquisition Time"]),
    ) {
        (Some(d), Some(t)) => Some(format!("{d} {t}")),
        (d, t) => d.or(t),
    };
    Acquisition {
        instrument: text(&["Microscope Info", "Name"])
            .or_else(|| text(&["Microscope Info", "Microscope"])),
        detector: text(&["DataBar", "Signal Name"]).or_else(|| text(&["DataBar", "Device Name"])),
        beam_energy_kev: number(&["Microscope Info", "Voltage"]).map(|v| v / 1000.0),
        dwell_time_us: number(&["DigiScan", "Sample Time"]),
        exposure_s: number(&["DataBar", "Exposure Time (s)"]),
        started,
        ..Acquisition::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn read_dm(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_dm(path, bytes, &JobCtx::detached())
    }

    /// Builds DM3/DM4 files byte by byte, to the layout in the module documentation.
    pub(crate) struct Writer {
        pub dm4: bool,
        pub little: bool,
    }

    pub(crate) enum W {
        Group(Vec<(&'static str, W)>),
        /// Simple type code and value.
        Num(u64, f64),
        Text(&'static str),
        /// Element type and values.
        Array(u64, Vec<f64>),
    }

    impl Writer {
        fn word(&self, out: &mut Vec<u8>, v: u64) {
            if self.dm4 {
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.extend_from_slice(&(v as u32).to_be_bytes());
            }
        }

        fn value(&self, out: &mut Vec<u8>, code: u64, v: f64) {
            let mut b: Vec<u8> = match code {
                2 => (v as i16).to_le_bytes().to_vec(),
                3 => (v as i32).to_le_bytes().to_vec(),
                4 => (v as u16).to_le_bytes().to_vec(),
                5 => (v as u32).to_le_bytes().to_vec(),
                6 => (v as f32).to_le_bytes().to_vec(),
                7 => v.to_le_bytes().to_vec(),
                9 => vec![v as i8 as u8],
                8 | 10 => vec![v as u8],
                11 => (v as i64).to_le_bytes().to_vec(),
                12 => (v as u64).to_le_bytes().to_vec(),
                _ => panic!("type {code}"),
            };
            if !self.little {
                b.reverse();
            }
            out.extend(b);
        }

        fn entry(&self, out: &mut Vec<u8>, label: &str, w: &W) {
            let mut body = Vec::new();
            let kind = match w {
                W::Group(_) => {
                    self.group(&mut body, w);
                    20u8
                }
                _ => {
                    self.data(&mut body, w);
                    21u8
                }
            };
            out.push(kind);
            out.extend_from_slice(&(label.len() as u16).to_be_bytes());
            out.extend_from_slice(label.as_bytes());
            if self.dm4 {
                out.extend_from_slice(&(body.len() as u64).to_be_bytes());
            }
            out.extend(body);
        }

        fn group(&self, out: &mut Vec<u8>, w: &W) {
            let W::Group(entries) = w else {
                panic!("not a group")
            };
            out.extend_from_slice(&[0, 0]);
            self.word(out, entries.len() as u64);
            for (label, e) in entries {
                self.entry(out, label, e);
            }
        }

        fn data(&self, out: &mut Vec<u8>, w: &W) {
            out.extend_from_slice(b"%%%%");
            let (info, payload): (Vec<u64>, Vec<u8>) = match w {
                W::Num(code, v) => {
                    let mut p = Vec::new();
                    self.value(&mut p, *code, *v);
                    (vec![*code], p)
                }
                W::Text(s) => {
                    let units: Vec<u16> = s.encode_utf16().collect();
                    let p = units
                        .iter()
                        .flat_map(|u| {
                            if self.little {
                                u.to_le_bytes()
                            } else {
                                u.to_be_bytes()
                            }
                        })
                        .collect();
                    (vec![18, units.len() as u64], p)
                }
                W::Array(code, values) => {
                    let mut p = Vec::new();
                    for v in values {
                        self.value(&mut p, *code, *v);
                    }
                    (vec![20, *code, values.len() as u64], p)
                }
                W::Group(_) => panic!("group as data"),
            };
            self.word(out, info.len() as u64);
            for i in info {
                self.word(out, i);
            }
            out.extend(payload);
        }

        pub fn file(&self, root: &W) -> Vec<u8> {
            let mut body = Vec::new();
            self.group(&mut body, root);
            let mut out = Vec::new();
            out.extend_from_slice(&(if self.dm4 { 4u32 } else { 3u32 }).to_be_bytes());
            self.word(&mut out, body.len() as u64);
            out.extend_from_slice(&(self.little as u32).to_be_bytes());
            out.extend(body);
            out
        }
    }

    fn image(code: u64, data_type: f64, dims: &[f64], values: Vec<f64>, axes: Vec<W>) -> W {
        W::Group(vec![(
            "ImageData",
            W::Group(vec![
                (
                    "Calibrations",
                    W::Group(vec![(
                        "Dimension",
                        W::Group(axes.into_iter().map(|a| ("", a)).collect()),
                    )]),
                ),
                ("Data", W::Array(code, values)),
                ("DataType", W::Num(3, data_type)),
                (
                    "Dimensions",
                    W::Group(dims.iter().map(|&d| ("", W::Num(5, d))).collect()),
                ),
            ]),
        )])
    }

    fn axis(scale: f64, units: &'static str) -> W {
        W::Group(vec![
            ("Origin", W::Num(6, 0.0)),
            ("Scale", W::Num(6, scale)),
            ("Units", W::Text(units)),
        ])
    }

    /// A thumbnail (u8, 4×4) and a 3-frame 5×4 stack of `code` values, 0.5 Å pixels, 0.25 s frames.
    pub(crate) fn stack_file(dm4: bool, little: bool, code: u64) -> (Vec<u8>, Vec<f64>) {
        let values: Vec<f64> = (0..60).map(|i| (i as f64 - 20.0) * 3.0).collect();
        let values: Vec<f64> = match code {
            4 | 5 | 10 | 12 => values.iter().map(|v| v.abs()).collect(),
            _ => values,
        };
        let mut stack = image(
            code,
            1.0,
            &[5.0, 4.0, 3.0],
            values.clone(),
            vec![axis(0.5, "Å"), axis(0.5, "Å"), axis(0.25, "s")],
        );
        // Acquisition tags; DigitalMicrograph writes most strings as arrays of UTF-16 units.
        let utf16 = |s: &str| W::Array(4, s.encode_utf16().map(f64::from).collect());
        if let W::Group(entries) = &mut stack {
            entries.push((
                "ImageTags",
                W::Group(vec![
                    (
                        "Microscope Info",
                        W::Group(vec![
                            ("Voltage", W::Num(7, 200_000.0)),
                            ("Name", utf16("ARM")),
                        ]),
                    ),
                    (
                        "DataBar",
                        W::Group(vec![
                            ("Device Name", utf16("DigiScan")),
                            ("Acquisition Date", W::Text("8/8/2016")),
                        ]),
                    ),
                    ("DigiScan", W::Group(vec![("Sample Time", W::Num(6, 3.5))])),
                ]),
            ));
        }
        let root = W::Group(vec![
            ("ApplicationBounds", W::Array(3, vec![0.0, 0.0, 10.0, 10.0])),
            (
                "ImageList",
                W::Group(vec![
                    ("", image(10, 6.0, &[4.0, 4.0], vec![7.0; 16], vec![])),
                    ("", stack),
                ]),
            ),
        ]);
        (Writer { dm4, little }.file(&root), values)
    }

    #[test]
    fn dm3_and_dm4_stacks_in_both_byte_orders_and_many_types() {
        for dm4 in [false, true] {
            for little in [true, false] {
                for code in [2u64, 3, 4, 5, 6, 7, 9, 10, 11, 12] {
                    let (bytes, values) = stack_file(dm4, little, code);
                    let m = read_dm(Path::new("t.dm"), &bytes)
                        .unwrap_or_else(|e| panic!("dm4 {dm4} little {little} type {code}: {e}"));
                    assert_eq!(m.frames.len(), 3);
                    assert_eq!((m.frames[0].width, m.frames[0].height), (5, 4));
                    let got: Vec<f64> = m
                        .frames
                        .iter()
                        .flat_map(|f| f.data.iter().map(|&v| v as f64))
                        .collect();
                    let want: Vec<f64> = values
                        .iter()
                        .map(|&v| if code == 9 { v as i8 as f64 } else { v })
                        .collect();
                    assert_eq!(got, want, "dm4 {dm4} little {little} type {code}");
                    let px = m.calibration.pixel_size_nm.expect("pixel size");
                    assert!((px - 0.05).abs() < 1e-9, "{px}");
                    assert_eq!(m.calibration.frame_interval_s, Some(0.25));
                    assert!(m.format.starts_with(if dm4 { "DM4" } else { "DM3" }));
                    let a = &m.acquisition;
                    assert_eq!(a.beam_energy_kev, Some(200.0));
                    assert_eq!(a.instrument.as_deref(), Some("ARM"));
                    assert_eq!(a.detector.as_deref(), Some("DigiScan"));
                    assert_eq!(a.dwell_time_us, Some(3.5));
                    assert_eq!(a.started.as_deref(), Some("8/8/2016"));
                }
            }
        }
    }

    #[test]
    fn a_spectrum_image_is_not_taken_for_a_movie_and_rgb_alone_is_refused() {
        let si = W::Group(vec![(
            "ImageList",
            W::Group(vec![(
                "",
                image(
                    6,
                    2.0,
                    &[2.0, 2.0, 3.0],
                    vec![1.0; 12],
                    vec![axis(1.0, "nm"), axis(1.0, "nm"), axis(0.5, "eV")],
                ),
            )]),
        )]);
        let b = Writer {
            dm4: true,
            little: true,
        }
        .file(&si);
        let e = read_dm(Path::new("si.dm4"), &b).expect_err("spectrum image");
        assert!(e.to_string().contains("eV, not time"), "{e}");
        let rgb = W::Group(vec![(
            "ImageList",
            W::Group(vec![(
                "",
                image(5, 23.0, &[2.0, 2.0], vec![1.0; 4], vec![]),
            )]),
        )]);
        let b = Writer {
            dm4: false,
            little: true,
        }
        .file(&rgb);
        let e = read_dm(Path::new("rgb.dm3"), &b).expect_err("rgb");
        assert!(e.to_string().contains("RGBA"), "{e}");
    }

    #[test]
    fn mutated_files_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for dm4 in [false, true] {
            let (good, _) = stack_file(dm4, true, 2);
            for _ in 0..3000 {
                let mut b = good.clone();
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                if rng.random_bool(0.2) {
                    b.truncate(rng.random_range(0..b.len()));
                }
                // Ok or a clear error; a panic fails the test.
                let _ = read_dm(Path::new("m.dm"), &b);
            }
        }
    }

    #[test]
    fn truncated_and_lying_files_are_errors() {
        let (bytes, _) = stack_file(true, true, 2);
        for cut in [0, 3, 10, 17, 40, bytes.len() / 2, bytes.len() - 1] {
            let e = read_dm(Path::new("cut.dm4"), &bytes[..cut]);
            assert!(e.is_err(), "cut at {cut}");
        }
        // An array claiming 2^40 elements: refused without allocating.
        let root = W::Group(vec![("ImageList", W::Group(vec![]))]);
        let mut b = Writer {
            dm4: false,
            little: true,
        }
        .file(&root);
        b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_dm(Path::new("x.dm3"), &b).is_err(), "no image");
        let mut lying = stack_file(false, true, 2).0;
        // The group count of the root, right after the 12-byte header and 2 flag bytes.
        lying[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = read_dm(Path::new("x.dm3"), &lying).expect_err("lying count");
        assert!(e.to_string().contains("does not fit"), "{e}");
        // Wrong version.
        let mut v5 = stack_file(false, true, 2).0;
        v5[3] = 5;
        assert!(read_dm(Path::new("x.dm3"), &v5).is_err());
    }
}
