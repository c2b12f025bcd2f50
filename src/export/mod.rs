//! Writing results: atomic file writes, CSV tables, PNG overlays.
//!
//! Every file is written to a temporary sibling and renamed into place, so a crash or an error
//! never leaves a half-written file behind: either the old file or the complete new one exists.

use crate::error::{Error, Result};
use crate::raster::{Raster, nth_smallest};

pub mod figure;
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("not a file path: {}", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("could not write", path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("could not move into place", path, e)
    })
}

/// Text for XML (and SVG) content and attribute values.
pub fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A CSV cell in quotes, quotes inside doubled (for user text such as class names).
pub fn csv_quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// A CSV cell, quoted when it holds a comma, quote or line break (line breaks become spaces).
pub fn csv_cell(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        csv_quoted(&v.replace(['\n', '\r'], " "))
    } else {
        v.to_string()
    }
}

/// Create a folder (and its parents) if missing.
pub fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("could not create folder", path, e))
}

/// Encode an 8-bit RGB image as PNG bytes.
pub fn png_rgb(width: usize, height: usize, rgb: Vec<u8>) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(width as u32, height as u32, rgb)
        .ok_or_else(|| Error::invalid("RGB buffer does not match the image size"))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::invalid(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}

/// An image as grey levels, one byte per pixel, stretched min–max (non-finite pixels black).
pub fn grey_bytes(img: &Raster) -> Vec<u8> {
    let (lo, hi) = img.min_max();
    grey_bytes_in(img, (lo, hi))
}

/// Grey bytes of an image with `lo` black and `hi` white (clamped; non-finite pixels black).
pub fn grey_bytes_in(img: &Raster, (lo, hi): (f32, f32)) -> Vec<u8> {
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    img.data
        .iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - lo) * scale).clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

/// Grey PNG of an image, stretched min–max (non-finite pixels black).
pub fn grey_png(img: &Raster) -> Result<Vec<u8>> {
    let rgb = grey_bytes(img)
        .into_iter()
        .flat_map(|g| [g, g, g])
        .collect();
    png_rgb(img.width, img.height, rgb)
}

/// Frame in grey (1st–99th percentile stretch) with `mask` pixels tinted red.
pub fn mask_overlay_png(frame: &Raster, mask: &[bool]) -> Result<Vec<u8>> {
    let n = frame.data.len();
    let lo = nth_smallest(&frame.data, n / 100);
    let hi = nth_smallest(&frame.data, n.saturating_sub(1 + n / 100));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let mut rgb = Vec::with_capacity(frame.data.len() * 3);
    for (v, &m) in frame.data.iter().zip(mask) {
        let g = ((v - lo) * scale).clamp(0.0, 255.0);
        if m {
            rgb.extend_from_slice(&[(0.5 * g + 127.0) as u8, (0.5 * g) as u8, (0.5 * g) as u8]);
        } else {
            rgb.extend_from_slice(&[g as u8; 3]);
        }
    }
    png_rgb(frame.width, frame.height, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"first").expect("write");
        atomic_write(&p, b"second").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn atomic_write_into_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("nope").join("a.txt");
        let err = atomic_write(&p, b"x").expect_err("must fail");
        assert!(err.to_string().contains("a.txt"));
    }
}
