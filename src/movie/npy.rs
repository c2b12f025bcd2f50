//! NPY (NumPy array file) reading and writing, versions 1–3, C order.

use super::{Calibration, Decoding, Movie};
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use std::path::Path;

/// Parse an NPY file of shape (T,H,W) or (H,W) with dtype u1/u2/i2/i4/u4/f4/f8 (either byte order).
pub fn read_npy(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let npy = Npy::parse(path, bytes)?;
    let shape = &npy.shape;
    let (t, h, w) = match shape.as_slice() {
        [h, w] => (1, *h, *w),
        [t, h, w] => (*t, *h, *w),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "NPY array has shape {shape:?}; expected (frames, height, width) or (height, width)"
                ),
            ));
        }
    };
    let px = h * w;
    if px == 0 {
        // Refused before the frames: a huge count of empty ones would take long to make.
        super::check_frame_size(path, w, h)?;
    }
    let mut decoding = Decoding::new(ctx);
    decoding.expect(t);
    let frames = (0..t)
        .map(|k| {
            decoding.frame(path, px as u64)?;
            Raster::from_vec(w, h, npy.values(k * px..(k + 1) * px))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Movie {
        frames,
        calibration: Calibration::default(),
        acquisition: Default::default(),
        source: path.to_path_buf(),
        format: format!("NPY ({})", npy.descr),
    })
}

/// An NPY array: its shape and dtype, and its data, checked to be as long as they say.
pub(super) struct Npy<'a> {
    pub shape: Vec<usize>,
    /// The dtype as written, e.g. "<f4".
    pub descr: String,
    /// The dtype without its byte order, e.g. "f4".
    kind: String,
    little: bool,
    /// Bytes per value.
    item: usize,
    data: &'a [u8],
}

impl<'a> Npy<'a> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len() / self.item
    }

    /// The values with C-order indices in `range`, as f32.
    pub fn values(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        self.data[range.start * self.item..range.end * self.item]
            .chunks_exact(self.item)
            .map(|c| decode(&self.kind, self.little, c))
            .collect()
    }

    /// Parse the header of any NPY array.
    pub fn parse(path: &Path, bytes: &'a [u8]) -> Result<Self> {
        let bad = |msg: &str| Error::format(path, format!("corrupt NPY file: {msg}"));
        if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
            return Err(bad("missing NPY magic"));
        }
        let major = bytes[6];
        let (header_len, start) = match major {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => {
                if bytes.len() < 12 {
                    return Err(bad("truncated header"));
                }
                (
                    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                    12,
                )
            }
            v => return Err(bad(&format!("unsupported NPY version {v}"))),
        };
        let header = bytes
            .get(start..start + header_len)
            .ok_or_else(|| bad("truncated header"))?;
        let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
        let descr = dict_value(header, "descr").ok_or_else(|| bad("header has no 'descr'"))?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let fortran =
            dict_value(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
        if fortran.starts_with("True") {
            return Err(Error::format(
                path,
                "Fortran-ordered NPY arrays are not supported; save with numpy.ascontiguousarray",
            ));
        }
        let shape_txt = dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'"))?;
        let shape: Vec<usize> = shape_txt
            .trim_start_matches('(')
            .split(')')
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|_| bad("shape is not a tuple of integers"))
            })
            .collect::<Result<_>>()?;
        let (little, kind) = match descr.as_bytes().first() {
            Some(b'<') | Some(b'|') => (true, &descr[1..]),
            Some(b'>') => (false, &descr[1..]),
            Some(b'=') => (cfg!(target_endian = "little"), &descr[1..]),
            _ => (true, descr),
        };
        let item = match kind {
            "u1" | "i1" | "b1" => 1,
            "u2" | "i2" => 2,
            "u4" | "i4" | "f4" => 4,
            "f8" | "i8" | "u8" => 8,
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "NPY dtype '{descr}' is not supported (use u1, u2, i2, u4, i4, f4 or f8)"
                    ),
                ));
            }
        };
        let data = &bytes[start + header_len..];
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("shape is too large"))?;
        let need = n
            .checked_mul(item)
            .ok_or_else(|| bad("shape is too large"))?;
        if data.len() < need {
            return Err(Error::format(
                path,
                format!(
                    "truncated NPY file: shape {shape:?} of '{descr}' needs {need} data bytes, the file has {}",
                    data.len()
                ),
            ));
        }
        Ok(Npy {
            shape,
            descr: descr.to_string(),
            kind: kind.to_string(),
            little,
            item,
            data: &data[..need],
        })
    }
}

fn decode(kind: &str, little: bool, c: &[u8]) -> f32 {
    macro_rules! num {
        ($t:ty, $n:expr) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            if little {
                <$t>::from_le_bytes(a)
            } else {
                <$t>::from_be_bytes(a)
            }
        }};
    }
    match kind {
        "u1" | "b1" => c[0] as f32,
        "i1" => c[0] as i8 as f32,
        "u2" => num!(u16, 2) as f32,
        "i2" => num!(i16, 2) as f32,
        "u4" => num!(u32, 4) as f32,
        "i4" => num!(i32, 4) as f32,
        "f4" => num!(f32, 4),
        "i8" => num!(i64, 8) as f32,
        "u8" => num!(u64, 8) as f32,
        _ => num!(f64, 8) as f32,
    }
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[pos + key.len() + 2..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// Encode frames of equal size as a little-endian f32 NPY array (T,H,W).
pub fn write_npy_f32(frames: &[Raster]) -> Vec<u8> {
    let (h, w) = frames.first().map_or((0, 0), |f| (f.height, f.width));
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {h}, {w}), }}",
        frames.len()
    );
    // Pad so that the data starts on a multiple of 64 bytes, ending the header with '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + frames.len() * h * w * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for f in frames {
        for v in &f.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_npy(path: &Path, bytes: &[u8]) -> Result<Movie> {
        super::read_npy(path, bytes, &JobCtx::detached())
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trip_f32() {
        let frames = vec![
            Raster::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).expect("raster"),
            Raster::from_vec(3, 2, vec![0.0; 6]).expect("raster"),
        ];
        let bytes = write_npy_f32(&frames);
        let m = read_npy(Path::new("a.npy"), &bytes).expect("read");
        assert_eq!(m.frames, frames);
    }

    #[test]
    fn reads_2d_u16_big_endian_and_u8() {
        let m = read_npy(Path::new("b.npy"), &npy(">u2", "(1, 2)", &[1, 0, 0, 7])).expect("u2");
        assert_eq!(m.frames[0].data, vec![256.0, 7.0]);
        let m = read_npy(Path::new("c.npy"), &npy("|u1", "(2, 1, 1)", &[3, 4])).expect("u1");
        assert_eq!(m.frames.len(), 2);
        assert_eq!(m.frames[1].data, vec![4.0]);
        let m = read_npy(
            Path::new("d.npy"),
            &npy("<i4", "(1, 1)", &(-5i32).to_le_bytes()),
        )
        .expect("i4");
        assert_eq!(m.frames[0].data, vec![-5.0]);
        let m = read_npy(
            Path::new("e.npy"),
            &npy("<f8", "(1, 1)", &2.5f64.to_le_bytes()),
        )
        .expect("f8");
        assert_eq!(m.frames[0].data, vec![2.5]);
    }

    #[test]
    fn truncated_and_lying_headers_are_errors() {
        let err = read_npy(Path::new("t.npy"), &npy("<f4", "(2, 2)", &[0; 15])).expect_err("short");
        assert!(err.to_string().contains("truncated"));
        let huge = npy("<f4", "(100000, 100000, 100000)", &[0; 4]);
        assert!(read_npy(Path::new("h.npy"), &huge).is_err());
        let overflow = npy("<f4", "(18446744073709551615, 4, 4)", &[0; 4]);
        assert!(read_npy(Path::new("o.npy"), &overflow).is_err());
        assert!(read_npy(Path::new("x.npy"), b"\x93NUMPY\x01\x00\xff").is_err());
        let four_d = npy("<f4", "(1, 1, 1, 1)", &[0; 4]);
        assert!(
            read_npy(Path::new("4.npy"), &four_d)
                .expect_err("4d")
                .to_string()
                .contains("shape")
        );
        let complex = npy("<c8", "(1, 1)", &[0; 8]);
        assert!(
            read_npy(Path::new("c.npy"), &complex)
                .expect_err("c8")
                .to_string()
                .contains("dtype")
        );
    }
}
