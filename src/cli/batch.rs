//! `batch` and `merge`: many movies through `analyze`, and their results pooled.

use anyhow::Result;
use defectscope::batch::{self, Outcome};
use std::path::{Path, PathBuf};

use super::analyze::run_analyze_file;
use super::args::AnalyzeArgs;

pub(crate) fn run_batch(
    input: &Path,
    out: &Path,
    index: Option<usize>,
    opts: &mut AnalyzeArgs,
) -> Result<()> {
    let items = batch::items(input)?;
    let only = batch::task_index(index)?;
    let base = (
        opts.input.pixel_size_nm,
        opts.input.frame_interval_s,
        opts.input.truth.clone(),
    );
    let total = items.len();
    eprintln!(
        "batch: {total} movies from {}{}",
        input.display(),
        only.map_or(String::new(), |i| format!(", running movie {i} only"))
    );
    let outcomes = batch::run(&items, out, only, |item, dir| {
        eprintln!(
            "[{}/{total}] {} → {}",
            item.index + 1,
            item.movie.display(),
            dir.display()
        );
        opts.input.pixel_size_nm = item.pixel_size_nm.or(base.0);
        opts.input.frame_interval_s = item.frame_interval_s.or(base.1);
        opts.input.truth = item.truth.clone().or_else(|| base.2.clone());
        run_analyze_file(&item.movie, dir, opts)
            .map_err(|e| defectscope::error::Error::invalid(format!("{e:#}")))
    })?;
    let summary = batch::write_summary(&items, out)?;
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|(_, o)| f(o)).count();
    eprintln!(
        "batch: {} done, {} already finished, {} failed; {}",
        count(|o| matches!(o, Outcome::Done(_))),
        count(|o| matches!(o, Outcome::Skipped)),
        count(|o| matches!(o, Outcome::Failed(_))),
        summary.display()
    );
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(i, o)| match o {
            Outcome::Failed(e) => Some(format!("{}: {e}", items[*i].movie.display())),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        // A non-zero exit tells a scheduler; the others' results are kept.
        anyhow::bail!(
            "{} movie(s) failed (recorded in {}):\n  {}",
            failed.len(),
            summary.display(),
            failed.join("\n  ")
        )
    }
}

pub(crate) fn run_merge(dirs: &[PathBuf], out: &Path, png_width: f64) -> Result<()> {
    let m = batch::merge::merge(dirs, out, png_width)?;
    eprintln!("merged {} movies into {}", m.movies, out.display());
    if !m.skipped.is_empty() {
        eprintln!(
            "  left out (not finished): {}",
            m.skipped
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for f in &m.files {
        eprintln!("  {}", f.display());
    }
    Ok(())
}
