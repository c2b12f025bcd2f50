//! Movies: frames as f32 rasters plus calibration, read from TIFF stacks, image folders, NPY,
//! Gatan DigitalMicrograph (DM3/DM4), FEI/Thermo Fisher TIA (SER), Velox and NCEM EMD, and Nion
//! Swift (.ndata, .h5) files.
//!
//! The format is chosen by content (magic bytes), not by extension. Every reader checks sizes
//! against the file length before allocating, so a lying header gives an error, not a huge
//! allocation. Loaded movies are validated: equal frame sizes, at least 2×2 pixels, finite values.

mod cursor;
mod dm;
mod hdf5;
mod nion;
mod npy;
pub mod register;
mod ser;
mod tiff_io;

pub use dm::read_dm;
pub use hdf5::read_hdf5;
pub use nion::read_ndata;
pub use npy::{read_npy, write_npy_f32};
pub use ser::read_ser;
pub use tiff_io::{read_tiff, write_hyperstack_f32, write_tiff_f32, write_tiff_u8};

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::raster::Raster;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Physical calibration of a movie; `None` where the file does not say and the user did not set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Size of one pixel in nanometres.
    pub pixel_size_nm: Option<f64>,
    /// Time between frames in seconds.
    pub frame_interval_s: Option<f64>,
}

/// What the file says about how the movie was recorded, where it says it. Shown by `info`, the
/// GUI's Movie panel and written to `run.json`; none of it changes the analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// Microscope or camera, as named in the file.
    pub instrument: Option<String>,
    /// Detector or signal, e.g. "HAADF".
    pub detector: Option<String>,
    /// Beam (acceleration) energy in keV.
    pub beam_energy_kev: Option<f64>,
    /// Scan dwell time per pixel in microseconds.
    pub dwell_time_us: Option<f64>,
    /// Camera exposure per frame in seconds.
    pub exposure_s: Option<f64>,
    /// Start of the acquisition, ISO 8601 (UTC where the file stores Unix time).
    pub started: Option<String>,
    /// Time stamp of each frame in seconds after the first, where the file stores them.
    pub frame_times_s: Vec<f64>,
    /// Which dataset of the file was read, when it holds several (e.g. one per detector).
    pub dataset: Option<String>,
}

impl Acquisition {
    /// Label–value pairs of what is known, in a fixed order, for display.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k, v));
            }
        };
        put("dataset", self.dataset.clone());
        put("instrument", self.instrument.clone());
        put("detector", self.detector.clone());
        // Six significant digits: values stored as f32 print as 32.4, not 32.400001525878906.
        let short = |v: f64, unit: &str| {
            let decimals = (5 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
            let text = format!("{v:.decimals$}");
            let text = if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.')
            } else {
                &text
            };
            format!("{text} {unit}")
        };
        put("beam energy", self.beam_energy_kev.map(|v| short(v, "keV")));
        put("dwell time", self.dwell_time_us.map(|v| short(v, "µs")));
        put("exposure", self.exposure_s.map(|v| short(v, "s")));
        put("started", self.started.clone());
        if let (Some(first), Some(last)) = (self.frame_times_s.first(), self.frame_times_s.last()) {
            put(
                "time stamps",
                Some(format!(
                    "{} frames, {:.3} s to {:.3} s",
                    self.frame_times_s.len(),
                    first,
                    last
                )),
            );
        }
        out
    }
}

/// Unix time (seconds since 1970, UTC) as ISO 8601, e.g. "2017-03-06T10:36:41Z".
pub(crate) fn iso_utc(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A loaded movie: frames of equal size with their calibration.
#[derive(Debug, Clone)]
pub struct Movie {
    pub frames: Vec<Raster>,
    pub calibration: Calibration,
    pub acquisition: Acquisition,
    pub source: PathBuf,
    /// The detected format, e.g. "TIFF (32-bit float)".
    pub format: String,
}

impl Movie {
    pub fn width(&self) -> usize {
        self.frames.first().map_or(0, |f| f.width)
    }

    pub fn height(&self) -> usize {
        self.frames.first().map_or(0, |f| f.height)
    }

    /// Check the invariants every stage relies on.
    pub fn validate(&self) -> Result<()> {
        let path = &self.source;
        let first = self
            .frames
            .first()
            .ok_or_else(|| Error::format(path, "the movie has no frames"))?;
        check_frame_size(path, first.width, first.height)?;
        for (i, f) in self.frames.iter().enumerate() {
            if f.width != first.width || f.height != first.height {
                return Err(Error::format(
                    path,
                    format!(
                        "frame {i} is {}x{} but frame 0 is {}x{}",
                        f.width, f.height, first.width, first.height
                    ),
                ));
            }
            let bad = f.data.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::format(
                    path,
                    format!("frame {i} has {bad} NaN or infinite pixel values"),
                ));
            }
        }
        if let Some(p) = self.calibration.pixel_size_nm
            && !(p.is_finite() && p > 0.0)
        {
            return Err(Error::invalid(format!(
                "pixel size must be a positive number of nm, got {p}"
            )));
        }
        if let Some(t) = self.calibration.frame_interval_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::invalid(format!(
                "frame interval must be a positive number of seconds, got {t}"
            )));
        }
        Ok(())
    }
}

/// Frames must be at least 2×2 pixels.
pub(crate) fn check_frame_size(path: &Path, width: usize, height: usize) -> Result<()> {
    if width < 2 || height < 2 {
        return Err(Error::format(
            path,
            format!("frames are {width}x{height} pixels; at least 2x2 are needed"),
        ));
    }
    Ok(())
}

/// The formats we read, for error messages.
pub const SUPPORTED: &str = "multi-page TIFF (8/16/32-bit integer, 32/64-bit float), \
NPY arrays (T,H,W) or (H,W), Gatan DM3/DM4 images and stacks, FEI/Thermo Fisher TIA SER image \
series, Velox EMD and NCEM EMD (HDF5), Nion Swift .ndata and .h5, PNG, or a folder of \
single-page TIFF/PNG frames";

/// Load a movie from a file or a folder of frames and validate it.
pub fn load(path: &Path) -> Result<Movie> {
    load_in(path, &JobCtx::detached())
}

/// Bytes read between progress reports and cancel checks where a file cannot be mapped.
const READ_PIECE: usize = 16 << 20;

/// [`load`], reporting progress to `ctx` and stopping when it is cancelled. A file is mapped into
/// memory and decoded frame by frame (stage "decoding the movie", counted in frames), so it
/// needs memory for its decoded frames only; where it cannot be mapped it is read whole first,
/// in pieces of 16 MB (stage "reading the movie", counted in MB).
pub fn load_in(path: &Path, ctx: &JobCtx) -> Result<Movie> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("could not open movie", path, e))?;
    if meta.is_dir() {
        ctx.begin("reading the frames", 1);
        let movie = read_folder(path)?;
        movie.validate()?;
        return Ok(movie);
    }
    let read_err = |e| Error::io("could not read movie", path, e);
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    if let Some(map) = map(&file) {
        ctx.begin("decoding the movie", 0);
        return decode(path, &map, ctx);
    }
    // Read whole: the file must fit too.
    fits(path, meta.len(), available_memory())?;
    let mb = |n: usize| (n >> 20) as u64;
    ctx.begin("reading the movie", mb(meta.len() as usize).max(1));
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    loop {
        let got = std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut file, READ_PIECE as u64),
            &mut bytes,
        )
        .map_err(read_err)?;
        ctx.step(mb(bytes.len()))?;
        if got == 0 {
            break;
        }
    }
    ctx.begin("decoding the movie", 0);
    decode(path, &bytes, ctx)
}

/// The file mapped read-only into memory: the system reads its pages as the decoder reaches
/// them and may drop them again, so they do not count against the memory a movie needs. `None`
/// for an empty file or where the file system does not allow it (then the file is read).
#[allow(unsafe_code)]
fn map(file: &std::fs::File) -> Option<memmap2::Mmap> {
    if file.metadata().ok()?.len() == 0 {
        return None;
    }
    // SAFETY: the map is only read, and only while this load runs. Its one hazard is another
    // program shortening the file during the load, which the system reports as SIGBUS; we
    // accept that, as other tools that map files do (README, "Your data is safe").
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    // Frames are decoded front to back: ask for read-ahead. Only a hint, so failure is fine.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

/// Read and validate a movie file's bytes, the format chosen by content; `path` names the file in
/// messages (and places an SER file's EMI companion).
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Movie> {
    decode(path, bytes, &JobCtx::detached())
}

fn decode(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    let movie = read_bytes(path, bytes, ctx)?;
    movie.validate()?;
    Ok(movie)
}

fn read_bytes(path: &Path, bytes: &[u8], ctx: &JobCtx) -> Result<Movie> {
    if bytes.is_empty() {
        return Err(Error::format(path, "the file is empty"));
    }
    if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+")
    {
        read_tiff(path, bytes, ctx)
    } else if bytes.starts_with(b"\x93NUMPY") {
        read_npy(path, bytes, ctx)
    } else if dm::looks_like_dm(bytes) {
        read_dm(path, bytes, ctx)
    } else if ser::looks_like_ser(bytes) {
        read_ser(path, bytes, ctx)
    } else if hdf5::looks_like_hdf5(bytes) {
        read_hdf5(path, bytes, ctx)
    } else if nion::looks_like_ndata(bytes) {
        read_ndata(path, bytes, ctx)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Movie {
            frames: vec![read_png(path, bytes)?],
            calibration: Calibration::default(),
            acquisition: Default::default(),
            source: path.to_path_buf(),
            format: "PNG".into(),
        })
    } else {
        Err(Error::format(
            path,
            format!("unknown file format; supported are {SUPPORTED}"),
        ))
    }
}

fn read_png(path: &Path, bytes: &[u8]) -> Result<Raster> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| Error::format(path, format!("corrupt PNG ({e})")))?;
    // Keep the stored values: 8-bit stays 0–255, deeper images are read as 16-bit.
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = if img.color().bytes_per_pixel() / img.color().channel_count() == 1 {
        img.into_luma8()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect()
    } else {
        img.into_luma16()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect()
    };
    Raster::from_vec(w, h, data)
}

/// Folder of single-page frames, in natural order of their names (frame2 before frame10).
fn read_folder(dir: &Path) -> Result<Movie> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("could not list folder", dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("could not list folder", dir, e))?;
        let p = entry.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if p.is_file() && matches!(ext.as_str(), "tif" | "tiff" | "png") {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(Error::format(
            dir,
            "the folder holds no .tif, .tiff or .png frames",
        ));
    }
    files.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    let mut frames = Vec::with_capacity(files.len());
    let mut calibration = Calibration::default();
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).map_err(|e| Error::io("could not read frame", f, e))?;
        let m = read_bytes(f, &bytes, &JobCtx::detached())?;
        if m.frames.len() != 1 {
            return Err(Error::format(
                f,
                format!(
                    "a frame file in a folder must hold one image, this one holds {}",
                    m.frames.len()
                ),
            ));
        }
        if i == 0 {
            calibration = m.calibration;
        }
        frames.extend(m.frames);
    }
    Ok(Movie {
        frames,
        calibration,
        acquisition: Default::default(),
        source: dir.to_path_buf(),
        format: format!("folder of {} frames", files.len()),
    })
}

/// Nanometres per length unit, for the unit names microscope files and ImageJ write.
pub(crate) fn nm_per_unit(unit: &str) -> Option<f64> {
    match unit.trim().to_lowercase().as_str() {
        "nm" | "nanometer" | "nanometre" => Some(1.0),
        "pm" | "picometer" | "picometre" => Some(1e-3),
        "a" | "å" | "angstrom" | "\\u00c5" => Some(0.1),
        "um" | "µm" | "μm" | "micron" | "microns" | "\\u00b5m" => Some(1e3),
        "mm" => Some(1e6),
        "m" => Some(1e9),
        _ => None,
    }
}

/// Bytes of memory free for new allocations (Linux: `MemAvailable`); `None` where unknown.
pub(crate) fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Frames being decoded. A reader announces each frame before it allocates it, which accounts
/// the frame's memory against what was free when decoding began (a movie too large is a clear
/// error instead of the system killing us), reports progress ("decoding the movie", frame by
/// frame) and stops when the job is cancelled.
pub(crate) struct Decoding<'a> {
    ctx: &'a JobCtx,
    free: Option<u64>,
    used: u64,
    frames: u64,
}

impl<'a> Decoding<'a> {
    pub fn new(ctx: &'a JobCtx) -> Self {
        Decoding {
            ctx,
            free: available_memory(),
            used: 0,
            frames: 0,
        }
    }

    /// The reader knows how many frames will come: progress counts towards it.
    pub fn expect(&self, frames: usize) {
        self.ctx.begin("decoding the movie", frames as u64);
    }

    /// One more frame of `pixels` 32-bit pixels is about to be decoded: an error when it would
    /// not fit, or when the job was cancelled.
    pub fn frame(&mut self, path: &Path, pixels: u64) -> Result<()> {
        self.take(path, pixels)?;
        self.frames += 1;
        self.ctx.step(self.frames)
    }

    /// Account for a buffer of `pixels` 32-bit pixels that a reader decodes in one piece.
    pub fn take(&mut self, path: &Path, pixels: u64) -> Result<()> {
        self.used = self.used.saturating_add(pixels.saturating_mul(4));
        fits(path, self.used, self.free)?;
        self.ctx.check()
    }
}

fn fits(path: &Path, need: u64, available: Option<u64>) -> Result<()> {
    match shortfall(need, available) {
        Some(why) => Err(Error::format(path, format!("this movie needs {why}"))),
        None => Ok(()),
    }
}

/// Where `need` bytes of 32-bit floats exceed the `available` memory: "6.4 GB of memory as …
/// only 2.0 GB are free; crop or bin …", to follow "… needs ".
pub(crate) fn shortfall(need: u64, available: Option<u64>) -> Option<String> {
    let free = available.filter(|&free| need > free)?;
    let gb = |b: u64| b as f64 / 1e9;
    Some(format!(
        "{:.1} GB of memory as 32-bit floats and only {:.1} GB are free; crop or bin the movie, \
         or split it into shorter movies",
        gb(need),
        gb(free)
    ))
}

/// Seconds per time unit; `None` for units that are not times.
pub(crate) fn s_per_unit(unit: &str) -> Option<f64> {
    match unit.trim() {
        "s" | "sec" => Some(1.0),
        "ms" => Some(1e-3),
        "µs" | "us" | "μs" => Some(1e-6),
        "min" => Some(60.0),
        _ => None,
    }
}

/// Compare strings so that embedded numbers sort by value.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let mut na = String::new();
                while let Some(c) = a.peek().copied().filter(char::is_ascii_digit) {
                    na.push(c);
                    a.next();
                }
                let mut nb = String::new();
                while let Some(c) = b.peek().copied().filter(char::is_ascii_digit) {
                    nb.push(c);
                    b.next();
                }
                let (ta, tb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a.next();
                b.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_counts_frames_and_can_be_cancelled() {
        let dir = tempfile::tempdir().expect("dir");
        let frames: Vec<Raster> = (0..3)
            .map(|i| Raster::from_vec(64, 48, vec![i as f32; 64 * 48]).expect("raster"))
            .collect();
        let tiff = dir.path().join("m.tif");
        let npy = dir.path().join("m.npy");
        let bytes = write_tiff_f32(&frames, &Calibration::default()).expect("tiff");
        std::fs::write(&tiff, bytes).expect("write");
        std::fs::write(&npy, write_npy_f32(&frames)).expect("write");
        for path in [&tiff, &npy] {
            let ctx = JobCtx::detached();
            let movie = load_in(path, &ctx).expect("load");
            assert_eq!(movie.frames, frames);
            let p = ctx.progress();
            assert_eq!(
                (p.stage.as_str(), p.done, p.total),
                ("decoding the movie", 3, 3)
            );
            let cancelled = JobCtx::detached();
            cancelled.cancel();
            assert!(matches!(load_in(path, &cancelled), Err(Error::Cancelled)));
        }
    }

    #[test]
    fn a_movie_larger_than_free_memory_is_a_clear_error() {
        let p = Path::new("big.tif");
        assert!(fits(p, 3_000_000_000, Some(4_000_000_000)).is_ok());
        assert!(fits(p, 3_000_000_000, None).is_ok());
        let e = fits(p, 6_400_000_000, Some(2_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("6.4 GB") && e.contains("only 2.0 GB are free"),
            "{e}"
        );
        assert!(e.contains("big.tif"), "{e}");
    }

    #[test]
    fn unix_time_as_iso_8601() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_488_794_201), "2017-03-06T09:56:41Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn acquisition_lines_round_to_six_digits() {
        let a = Acquisition {
            dwell_time_us: Some(32.400001525878906),
            exposure_s: Some(0.0625),
            beam_energy_kev: Some(300.0),
            ..Acquisition::default()
        };
        let lines = a.lines();
        assert_eq!(
            lines,
            vec![
                ("beam energy", "300 keV".to_string()),
                ("dwell time", "32.4 µs".to_string()),
                ("exposure", "0.0625 s".to_string()),
            ]
        );
        assert!(Acquisition::default().lines().is_empty());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["f10.tif", "f2.tif", "f1.tif", "f002b.tif"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["f1.tif", "f2.tif", "f002b.tif", "f10.tif"]);
    }

    #[test]
    fn unknown_format_lists_supported() {
        let err = read_bytes(Path::new("x.bin"), b"hello world", &JobCtx::detached())
            .expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains("unknown file format") && msg.contains("NPY") && msg.contains("x.bin")
        );
    }

    #[test]
    fn validation_rejects_nan_and_tiny_frames() {
        let mut m = Movie {
            frames: vec![Raster::zeros(4, 4)],
            calibration: Calibration::default(),
            acquisition: Default::default(),
            source: "m.npy".into(),
            format: "test".into(),
        };
        assert!(m.validate().is_ok());
        m.frames[0].data[3] = f32::NAN;
        assert!(m.validate().expect_err("nan").to_string().contains("NaN"));
        m.frames = vec![Raster::zeros(1, 1)];
        assert!(m.validate().expect_err("tiny").to_string().contains("2x2"));
        m.frames = vec![];
        assert!(m.validate().is_err());
    }

    #[test]
    fn png_frames_in_a_folder_load_in_natural_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, name) in [(1u8, "f1.png"), (10, "f10.png"), (2, "f2.png")] {
            let img = image::GrayImage::from_pixel(3, 2, image::Luma([i]));
            img.save(dir.path().join(name)).expect("save png");
        }
        let m = load(dir.path()).expect("load folder");
        let firsts: Vec<f32> = m.frames.iter().map(|f| f.data[0]).collect();
        assert_eq!(firsts, vec![1.0, 2.0, 10.0]);
        assert_eq!((m.width(), m.height()), (3, 2));
    }
}
