//! Reading, describing and generating movies: `info`, `synth`, `conditions`, and the shared
//! loading of a movie with its calibration overrides and truth.

use anyhow::{Context, Result};
use defectscope::export::{atomic_write, ensure_dir};
use defectscope::movie::{self, Movie, write_npy_f32, write_tiff_f32, write_tiff_u8};
use defectscope::raster::Raster;
use defectscope::synth::{SynthConfig, SynthMovie, TruthDefect, generate, parse_truth_csv};
use std::path::Path;
use std::time::Instant;

use super::args::InputArgs;
use super::synth_args;

pub(crate) fn run_info(file: &Path, json: bool, npy: Option<&Path>) -> Result<()> {
    let m = movie::load(file)?;
    if let Some(out) = npy {
        atomic_write(out, &write_npy_f32(&m.frames))?;
    }
    let (lo, hi) = m
        .frames
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), f| {
            let (x, y) = f.min_max();
            (a.min(x), b.max(y))
        });
    let info = serde_json::json!({
        "file": file.display().to_string(),
        "format": m.format,
        "frames": m.frames.len(),
        "width": m.width(),
        "height": m.height(),
        "min": lo,
        "max": hi,
        "pixel_size_nm": m.calibration.pixel_size_nm,
        "frame_interval_s": m.calibration.frame_interval_s,
        "acquisition": m.acquisition,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        let or_none = |v: Option<f64>, unit: &str| {
            v.map_or("not in the file".to_string(), |v| format!("{v} {unit}"))
        };
        println!("{}", file.display());
        println!("  format       {}", m.format);
        println!(
            "  frames       {} of {} × {} px",
            m.frames.len(),
            m.width(),
            m.height()
        );
        println!("  values       {lo} to {hi}");
        println!(
            "  pixel size   {}",
            or_none(m.calibration.pixel_size_nm, "nm")
        );
        println!(
            "  frame time   {}",
            or_none(m.calibration.frame_interval_s, "s")
        );
        for (k, v) in m.acquisition.lines() {
            println!("  {k:<12} {v}");
        }
    }
    Ok(())
}

pub(crate) fn run_synth(cfg: &SynthConfig, out: &Path) -> Result<SynthMovie> {
    let t = Instant::now();
    let s = generate(cfg)?;
    write_synth(&s, out)?;
    let counts = |k| {
        s.truth
            .iter()
            .filter(|d| d.kind == k && d.frame == 0)
            .count()
    };
    let kinds: Vec<String> = defectscope::synth::DefectType::ALL
        .iter()
        .filter(|&&k| counts(k) > 0)
        .map(|&k| format!("{} {}", counts(k), k.name()))
        .collect();
    let frame0 = if kinds.is_empty() {
        "no defects".to_string()
    } else {
        kinds.join(", ")
    };
    eprintln!(
        "synth: {} frames of {}x{} px of {} in {:.1} s → {}\n  frame 0 truth: {}; {} defects in all frames",
        cfg.frames,
        cfg.width,
        cfg.height,
        cfg.material.name(),
        t.elapsed().as_secs_f64(),
        out.display(),
        frame0,
        s.truth.len()
    );
    Ok(s)
}

pub(crate) fn run_conditions(args: &synth_args::ConditionsArgs) -> Result<()> {
    let grid = args.grid()?;
    let n = grid.conditions().len();
    eprintln!(
        "conditions: {n} conditions, {} frame(s) of {}² px each",
        grid.frames, grid.size
    );
    let t = Instant::now();
    let results = defectscope::conditions::sweep(&grid, &defectscope::jobs::JobCtx::detached())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", defectscope::conditions::markdown(&results));
    }
    eprintln!("conditions: done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) fn write_synth(s: &SynthMovie, out: &Path) -> Result<()> {
    ensure_dir(out)?;
    let cal = &s.movie.calibration;
    atomic_write(
        &out.join("movie.tif"),
        &write_tiff_f32(&s.movie.frames, cal)?,
    )?;
    atomic_write(&out.join("movie.npy"), &write_npy_f32(&s.movie.frames))?;
    atomic_write(&out.join("truth.csv"), s.truth_csv().as_bytes())?;
    if !s.pores.is_empty() {
        atomic_write(&out.join("pores.csv"), s.pores_csv().as_bytes())?;
    }
    let masks: Vec<Raster> = (0..s.movie.frames.len())
        .map(|f| {
            let m = s.truth_mask(f);
            Raster {
                width: s.movie.width(),
                height: s.movie.height(),
                data: m.iter().map(|&b| if b { 255.0 } else { 0.0 }).collect(),
            }
        })
        .collect();
    atomic_write(&out.join("truth_masks.tif"), &write_tiff_u8(&masks, cal)?)?;
    let meta = serde_json::json!({
        "config": s.config,
        "rotation_deg": s.rotation_deg,
        "drift_px": s.drift,
        "mask_radius_px": s.config.mask_radius_px(),
    });
    atomic_write(&out.join("synth.json"), &serde_json::to_vec_pretty(&meta)?)?;
    Ok(())
}

/// Load a movie, apply calibration overrides, report what was read.
pub(crate) fn load_movie(path: &Path, input: &InputArgs) -> Result<Movie> {
    let t = Instant::now();
    let mut movie = movie::load(path)?;
    if input.pixel_size_nm.is_some() {
        movie.calibration.pixel_size_nm = input.pixel_size_nm;
    }
    if input.frame_interval_s.is_some() {
        movie.calibration.frame_interval_s = input.frame_interval_s;
    }
    movie.validate()?;
    eprintln!(
        "loaded {} ({}): {} frames of {}x{} px in {:.1} s",
        path.display(),
        movie.format,
        movie.frames.len(),
        movie.width(),
        movie.height(),
        t.elapsed().as_secs_f64()
    );
    Ok(movie)
}

pub(crate) fn read_truth(path: Option<&Path>) -> Result<Option<Vec<TruthDefect>>> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("could not read truth {}", p.display()))?;
            Ok(Some(parse_truth_csv(&text)?))
        }
        None => Ok(None),
    }
}
