//! Many movies: the list a batch runs over, one result folder per movie, resumable, one
//! movie's failure recorded while the others go on; and [`merge`], which pools the results.
//!
//! A movie's folder is finished when its marker [`DONE`] exists: the marker is written (atomically)
//! after every result file, so a run killed half-way leaves a folder without it, which the next
//! run clears and redoes. A failure leaves [`FAILED`] with the error, and is retried by the next
//! run. Nothing is coordinated between runs: `--index N` runs the N-th movie only, so a job array
//! of size M (Slurm, GNU parallel) runs the batch on M machines.

pub mod merge;

use crate::error::{Error, Result};
use crate::export::{atomic_write, csv_cell, ensure_dir};
use crate::movie::natural_cmp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Marker of a finished movie, written last.
pub const DONE: &str = "batch_done.json";
/// Marker of a failed movie, with its error.
pub const FAILED: &str = "batch_failed.json";
/// The table of all movies.
pub const SUMMARY: &str = "batch_summary.csv";

/// File extensions taken as movies in an input folder.
const MOVIE_EXTENSIONS: [&str; 12] = [
    "tif", "tiff", "npy", "dm3", "dm4", "emd", "h5", "hdf5", "ser", "ndata", "ndata1", "png",
];

/// One movie of a batch, with its own options from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Position in the list (`--index`).
    pub index: usize,
    /// The result folder's name: the file stem, made unique in list order.
    pub name: String,
    pub movie: PathBuf,
    pub pixel_size_nm: Option<f64>,
    pub frame_interval_s: Option<f64>,
    pub truth: Option<PathBuf>,
}

/// The movies of `input`: a folder (its movie files in natural order) or a manifest CSV with a
/// `path` column and optional `pixel_size_nm`, `frame_interval_s` and `truth` columns (paths
/// relative to the manifest's folder).
pub fn items(input: &Path) -> Result<Vec<Item>> {
    let rows = if input.is_dir() {
        folder_rows(input)?
    } else {
        manifest_rows(input)?
    };
    if rows.is_empty() {
        return Err(Error::invalid(format!(
            "no movies in {} (a folder of movie files, or a manifest CSV with a path column)",
            input.display()
        )));
    }
    let mut taken: Vec<String> = Vec::new();
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(index, mut item)| {
            item.index = index;
            item.name = unique_name(&item.movie, &mut taken);
            item
        })
        .collect())
}

fn folder_rows(dir: &Path) -> Result<Vec<Item>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.extension().is_some_and(|e| {
                    MOVIE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                })
        })
        .collect();
    paths.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(paths.into_iter().map(item_of).collect())
}

fn item_of(movie: PathBuf) -> Item {
    Item {
        index: 0,
        name: String::new(),
        movie,
        pixel_size_nm: None,
        frame_interval_s: None,
        truth: None,
    }
}

fn manifest_rows(path: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let path_col = col("path").ok_or_else(|| {
        Error::format(
            path,
            "a manifest needs a header with a `path` column (optional: pixel_size_nm, frame_interval_s, truth)",
        )
    })?;
    let (px, dt, truth) = (col("pixel_size_nm"), col("frame_interval_s"), col("truth"));
    let mut rows = Vec::new();
    for (k, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |c: Option<usize>| c.and_then(|c| cells.get(c)).filter(|v| !v.is_empty());
        let number = |c: Option<usize>, what: &str| -> Result<Option<f64>> {
            cell(c)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| {
                            Error::format(
                                path,
                                format!("row {}: {what} `{v}` is not a positive number", k + 2),
                            )
                        })
                })
                .transpose()
        };
        let movie = cell(Some(path_col))
            .ok_or_else(|| Error::format(path, format!("row {}: no path", k + 2)))?;
        rows.push(Item {
            pixel_size_nm: number(px, "pixel_size_nm")?,
            frame_interval_s: number(dt, "frame_interval_s")?,
            truth: cell(truth).map(|t| base.join(t)),
            ..item_of(base.join(movie))
        });
    }
    Ok(rows)
}

/// The movie's file stem with anything but letters, digits, `-`, `_` and `.` replaced, and
/// `-2`, `-3`, … where it repeats an earlier one.
fn unique_name(movie: &Path, taken: &mut Vec<String>) -> String {
    let stem: String = movie
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.is_empty() {
        "movie".into()
    } else {
        stem
    };
    let mut name = stem.clone();
    let mut k = 2;
    while taken.contains(&name) {
        name = format!("{stem}-{k}");
        k += 1;
    }
    taken.push(name.clone());
    name
}

/// What a finished movie's marker records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub movie: PathBuf,
    pub seconds: f64,
    pub frames: usize,
    pub detections: usize,
    /// Classes found (`None` where the analysis after detection did not run).
    pub classes: Option<usize>,
    /// The network's detections against the truth, where one was given.
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// The site model's F1, alone and with the network off the lattice.
    #[serde(default)]
    pub site_f1: Option<f64>,
    #[serde(default)]
    pub combined_f1: Option<f64>,
}

/// Where a movie stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Done(Record),
    Failed(String),
    Pending,
}

/// The state of a movie's result folder.
pub fn state(dir: &Path) -> State {
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    if let Some(r) = read(DONE).and_then(|b| serde_json::from_slice::<Record>(&b).ok()) {
        return State::Done(r);
    }
    match read(FAILED).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) {
        Some(v) => State::Failed(v["error"].as_str().unwrap_or("unknown error").to_string()),
        None => State::Pending,
    }
}

/// What one run did with a movie.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished by an earlier run.
    Skipped,
    Done(Record),
    Failed(String),
}

/// Run `analyze(item, dir)` for the movies of `items` not yet finished (only the one at `only`
/// when given), each into `out/<name>`; a movie whose folder lacks [`DONE`] is cleared first.
/// `analyze` writes the results; the record is read back from its `run.json`.
pub fn run(
    items: &[Item],
    out: &Path,
    only: Option<usize>,
    mut analyze: impl FnMut(&Item, &Path) -> Result<()>,
) -> Result<Vec<(usize, Outcome)>> {
    if let Some(i) = only
        && i >= items.len()
    {
        return Err(Error::invalid(format!(
            "--index {i}: the batch has {} movies (0 to {})",
            items.len(),
            items.len() - 1
        )));
    }
    ensure_dir(out)?;
    let mut outcomes = Vec::new();
    for item in items.iter().filter(|it| only.is_none_or(|i| i == it.index)) {
        let dir = out.join(&item.name);
        if matches!(state(&dir), State::Done(_)) {
            outcomes.push((item.index, Outcome::Skipped));
            continue;
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("clearing", &dir, e))?;
        }
        ensure_dir(&dir)?;
        let t = std::time::Instant::now();
        let outcome = match analyze(item, &dir).and_then(|()| record(item, &dir, t.elapsed())) {
            Ok(r) => {
                atomic_write(&dir.join(DONE), &json_bytes(&r)?)?;
                Outcome::Done(r)
            }
            Err(e) => {
                let failed = serde_json::json!({"movie": item.movie, "error": e.to_string()});
                atomic_write(&dir.join(FAILED), &json_bytes(&failed)?)?;
                Outcome::Failed(e.to_string())
            }
        };
        outcomes.push((item.index, outcome));
    }
    Ok(outcomes)
}

fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::invalid(format!("JSON: {e}")))
}

/// The record of a finished movie, from the `run.json` and `analysis.json` it wrote.
fn record(item: &Item, dir: &Path, took: std::time::Duration) -> Result<Record> {
    let run = read_json(&dir.join("run.json"))?;
    let analysis = read_json(&dir.join("analysis.json")).ok();
    let score = |k: &str| run["score"][k].as_f64();
    let sites = read_json(&dir.join(crate::sites::output::SCORE_JSON)).ok();
    let site = |k: &str| sites.as_ref().and_then(|s| s[k]["f1"].as_f64());
    Ok(Record {
        movie: item.movie.clone(),
        seconds: took.as_secs_f64(),
        frames: run["input"]["frames"].as_u64().unwrap_or(0) as usize,
        detections: run["total_detections"].as_u64().unwrap_or(0) as usize,
        classes: analysis
            .and_then(|a| a["classes"].as_u64())
            .map(|c| c as usize),
        f1: score("f1"),
        precision: score("precision"),
        recall: score("recall"),
        site_f1: site("site_model"),
        combined_f1: site("site_model_plus_network"),
    })
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(path, format!("not JSON: {e}")))
}

/// Write `out/batch_summary.csv`: one row per movie of `items` with its state, counts, score
/// and time, or its error. Returns its path.
pub fn write_summary(items: &[Item], out: &Path) -> Result<PathBuf> {
    let mut s = String::from(
        "index,name,movie,status,frames,detections,classes,f1,precision,recall,site_f1,site_network_f1,seconds,error\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for it in items {
        let movie = csv_cell(&it.movie.display().to_string());
        let row = match state(&out.join(&it.name)) {
            State::Done(r) => format!(
                "done,{},{},{},{},{},{},{},{},{:.1},",
                r.frames,
                r.detections,
                r.classes.map_or(String::new(), |c| c.to_string()),
                opt(r.f1),
                opt(r.precision),
                opt(r.recall),
                opt(r.site_f1),
                opt(r.combined_f1),
                r.seconds
            ),
            State::Failed(e) => format!("failed,,,,,,,,,,{}", csv_cell(&e)),
            State::Pending => "pending,,,,,,,,,,".to_string(),
        };
        s.push_str(&format!("{},{},{movie},{row}\n", it.index, it.name));
    }
    let path = out.join(SUMMARY);
    atomic_write(&path, s.as_bytes())?;
    Ok(path)
}

/// The `--index` of this task: the flag, else Slurm's `SLURM_ARRAY_TASK_ID`.
pub fn task_index(flag: Option<usize>) -> Result<Option<usize>> {
    match (flag, std::env::var("SLURM_ARRAY_TASK_ID")) {
        (Some(i), _) => Ok(Some(i)),
        (None, Ok(v)) => {
            v.trim().parse().map(Some).map_err(|_| {
                Error::invalid(format!("SLURM_ARRAY_TASK_ID `{v}` is not a movie index"))
            })
        }
        (None, Err(_)) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_file_safe() {
        let mut taken = Vec::new();
        let a = unique_name(Path::new("/a/run 1.tif"), &mut taken);
        let b = unique_name(Path::new("/b/run 1.dm4"), &mut taken);
        let c = unique_name(Path::new("/c/run 1.npy"), &mut taken);
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("run_1", "run_1-2", "run_1-3")
        );
    }

    #[test]
    fn a_manifest_gives_paths_and_options() {
        let dir = tempfile::tempdir().expect("dir");
        let m = dir.path().join("list.csv");
        std::fs::write(
            &m,
            "path,pixel_size_nm,truth\n# a comment\nm1.tif,0.0125,t1.csv\nsub/m2.npy,,\n",
        )
        .expect("write");
        let it = items(&m).expect("items");
        assert_eq!(it.len(), 2);
        assert_eq!(it[0].movie, dir.path().join("m1.tif"));
        assert_eq!(it[0].pixel_size_nm, Some(0.0125));
        assert_eq!(it[0].truth, Some(dir.path().join("t1.csv")));
        assert_eq!((it[1].index, it[1].name.as_str()), (1, "m2"));
        assert_eq!(it[1].pixel_size_nm, None);
        std::fs::write(&m, "file\nm1.tif\n").expect("write");
        assert!(items(&m).unwrap_err().to_string().contains("`path` column"));
        std::fs::write(&m, "path,pixel_size_nm\nm1.tif,-3\n").expect("write");
        assert!(items(&m).unwrap_err().to_string().contains("row 2"));
    }

    /// A failure is recorded and the others go on; a folder without its marker (a run killed
    /// half-way) is cleared and redone; finished movies are skipped.
    #[test]
    fn runs_resume_and_record_failures() {
        let dir = tempfile::tempdir().expect("dir");
        let input = dir.path().join("in");
        std::fs::create_dir(&input).expect("dir");
        for n in ["a.tif", "b.tif", "c.tif", "notes.txt"] {
            std::fs::write(input.join(n), b"x").expect("write");
        }
        let it = items(&input).expect("items");
        assert_eq!(it.len(), 3, "{it:?}");
        let out = dir.path().join("out");
        let fake = |item: &Item, d: &Path| -> Result<()> {
            if item.name == "b" {
                return Err(Error::invalid("corrupt movie"));
            }
            let run = serde_json::json!({"input": {"frames": 4}, "total_detections": 7});
            std::fs::write(d.join("run.json"), run.to_string())
                .map_err(|e| Error::io("writing", d, e))
        };
        let first = run(&it, &out, None, fake).expect("run");
        assert!(matches!(first[1].1, Outcome::Failed(_)));
        assert!(matches!(&first[0].1, Outcome::Done(r) if r.detections == 7 && r.frames == 4));
        // c killed half-way: results without the marker.
        std::fs::remove_file(out.join("c").join(DONE)).expect("rm");
        std::fs::write(out.join("c").join("partial.csv"), b"half").expect("write");
        let mut ran = Vec::new();
        let second = run(&it, &out, None, |item, d| {
            ran.push(item.name.clone());
            fake(item, d)
        })
        .expect("run");
        assert_eq!(ran, ["b", "c"]);
        assert_eq!(second[0].1, Outcome::Skipped);
        assert!(!out.join("c").join("partial.csv").exists());
        assert!(matches!(state(&out.join("c")), State::Done(_)));
        let summary =
            std::fs::read_to_string(write_summary(&it, &out).expect("summary")).expect("read");
        assert!(
            summary.contains(",b,")
                && summary.contains("failed")
                && summary.contains("corrupt movie")
        );
        assert_eq!(summary.matches(",done,").count(), 2);
        // --index runs one movie only, and a wrong one is a clear error.
        std::fs::remove_dir_all(out.join("a")).expect("rm");
        let only = run(&it, &out, Some(0), fake).expect("run");
        assert_eq!(only.len(), 1);
        assert!(run(&it, &out, Some(3), fake).is_err());
    }
}
