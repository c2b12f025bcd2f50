//! Projects: a folder holding everything a workbench session made, saved so that an interrupted
//! save (a crash, `kill -9`, a full disk) never leaves a project that does not open.
//!
//! # Layout
//! `project.json` names the movie (or the built-in demo), holds every setting and the hand edits
//! of the classes, and says which of the other files exist. The other files carry the save's
//! *generation* in their names: `model-G/` (a checkpoint folder), `mask-G.png` (the hand-edited
//! training mask), `detections-G.csv` and `analysed-G.csv`.
//!
//! # Saving
//! A save writes the new generation's files first (each atomically: temporary file, `fsync`,
//! rename), then replaces `project.json` atomically, and only then deletes other generations'
//! files. Wherever it stops, `project.json` names a complete set: the old one until the rename,
//! the new one after. Leftovers of an interrupted save are removed by the next save.
//!
//! # Versions
//! Format 1 (before generations) used fixed names (`model/`, `mask.png`, `detections.csv`,
//! `analysed.csv`) and still opens; a project from a newer version is refused with a message
//! saying so. File names are never read from `project.json`, so a project cannot point outside
//! its folder; the movie path is resolved relative to the folder when it is relative.

use super::Settings;
use crate::analysis::corrections::Corrections;
use crate::detect::{Detection, detections_csv, parse_detections_csv};
use crate::error::{Error, Result};
use crate::export::{atomic_write, ensure_dir, grey_png};
use crate::raster::Raster;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const PROJECT_FILE: &str = "project.json";
/// The format this version writes; it reads this and every older one.
pub const PROJECT_VERSION: u32 = 2;

/// `project.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectFile {
    pub format_version: u32,
    /// The save this file belongs to; 0 for format 1.
    #[serde(default)]
    pub generation: u64,
    /// The movie file; `None` with `demo` = the built-in demo movie.
    pub movie: Option<PathBuf>,
    pub demo: bool,
    /// Every stage's settings.
    pub settings: Settings,
    pub mask_edited: bool,
    /// Where the model came from, when the project holds one.
    pub model: Option<String>,
    pub detections: bool,
    pub analysed: bool,
    /// The frames were registered after reading: `Some(cropped)`.
    #[serde(default)]
    pub registered: Option<bool>,
    /// Classes corrected by hand, over the analysis's clustering.
    #[serde(default)]
    pub corrections: Corrections,
    /// Corrections of a project saved when they were kept among the analysis settings
    /// (`settings.analysis.edits`); read, never written.
    #[serde(skip)]
    pub earlier_edits: Vec<crate::analysis::classify::ManualEdit>,
}

/// Writes a model's checkpoint folder into the given directory.
pub type ModelWriter<'a> = &'a dyn Fn(&Path) -> Result<()>;

/// What a save writes besides `project.json`.
#[derive(Default)]
pub struct Contents<'a> {
    /// The hand-edited training mask (0 or 255).
    pub mask: Option<&'a Raster>,
    pub model: Option<ModelWriter<'a>>,
    pub detections: Option<&'a [Detection]>,
    pub analysed: Option<&'a [Detection]>,
}

/// Where a project's files are, for its generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub model: PathBuf,
    pub mask: PathBuf,
    pub detections: PathBuf,
    pub analysed: PathBuf,
}

/// The names of generation `g`'s files; generation 0 is format 1's fixed names.
fn names(g: u64) -> [String; 4] {
    if g == 0 {
        ["model", "mask.png", "detections.csv", "analysed.csv"].map(String::from)
    } else {
        [
            format!("model-{g}"),
            format!("mask-{g}.png"),
            format!("detections-{g}.csv"),
            format!("analysed-{g}.csv"),
        ]
    }
}

/// The generation a file name belongs to, if it is one of ours.
fn generation_of(name: &str) -> Option<u64> {
    let stem = name
        .strip_suffix(".csv")
        .or_else(|| name.strip_suffix(".png"))
        .unwrap_or(name);
    let (kind, g) = stem.rsplit_once('-').unwrap_or((stem, "0"));
    if !matches!(kind, "model" | "mask" | "detections" | "analysed") {
        return None;
    }
    let g: u64 = g.parse().ok()?;
    (names(g).iter().any(|n| n == name)).then_some(g)
}

impl ProjectFile {
    pub fn paths(&self, dir: &Path) -> Paths {
        let [model, mask, detections, analysed] = names(self.generation).map(|n| dir.join(n));
        Paths {
            model,
            mask,
            detections,
            analysed,
        }
    }

    /// The movie's path: relative paths are relative to the project folder.
    pub fn movie_path(&self, dir: &Path) -> Option<PathBuf> {
        self.movie.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            }
        })
    }
}

/// Read and check `project.json`.
pub fn read(dir: &Path) -> Result<ProjectFile> {
    let path = dir.join(PROJECT_FILE);
    let text =
        std::fs::read(&path).map_err(|e| Error::io("could not read the project", &path, e))?;
    let not_project = |e: serde_json::Error| {
        Error::invalid(format!(
            "not a defectscope project ({e}): {}",
            path.display()
        ))
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(not_project)?;
    // The version first, so that a newer project gets the right message, not a parse error.
    match value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v > PROJECT_VERSION as u64 => {
            return Err(Error::invalid(format!(
                "this project was saved by a newer defectscope (project format {v}; this \
                 version reads formats 1 to {PROJECT_VERSION}): {}",
                path.display()
            )));
        }
        Some(0) => {
            return Err(Error::invalid(format!(
                "project format 0 does not exist: {}",
                path.display()
            )));
        }
        _ => {}
    }
    let earlier_edits = value
        .pointer("/settings/analysis/edits")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    let mut file: ProjectFile = serde_json::from_value(value).map_err(not_project)?;
    file.earlier_edits = earlier_edits;
    if file.format_version == 1 && file.generation != 0 {
        return Err(Error::invalid(format!(
            "a format-1 project with a generation: {}",
            path.display()
        )));
    }
    Ok(file)
}

/// The detections a project holds, or an error naming the file.
pub fn read_detections(path: &Path) -> Result<Vec<Detection>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("could not read detections", path, e))?;
    parse_detections_csv(&text).map_err(|e| Error::invalid(format!("{e}: {}", path.display())))
}

/// Save a project into `dir` (created if needed); returns the generation written. `file`'s
/// version and generation are set here.
pub fn save(dir: &Path, mut file: ProjectFile, contents: &Contents) -> Result<u64> {
    ensure_dir(dir)?;
    // A generation above every one present, finished or not.
    let mut g = read(dir).map_or(0, |f| f.generation);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Some(found) = e.file_name().to_str().and_then(generation_of) {
                g = g.max(found);
            }
        }
    }
    let g = g + 1;
    file.format_version = PROJECT_VERSION;
    file.generation = g;
    file.mask_edited = contents.mask.is_some();
    file.detections = contents.detections.is_some();
    file.analysed = contents.analysed.is_some();
    let paths = file.paths(dir);
    if let Some(write_model) = contents.model {
        write_model(&paths.model)?;
    } else {
        file.model = None;
    }
    if let Some(mask) = contents.mask {
        atomic_write(&paths.mask, &grey_png(mask)?)?;
    }
    if let Some(d) = contents.detections {
        atomic_write(&paths.detections, detections_csv(d).as_bytes())?;
    }
    if let Some(d) = contents.analysed {
        atomic_write(&paths.analysed, detections_csv(d).as_bytes())?;
    }
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::invalid(format!("project file: {e}")))?;
    atomic_write(&dir.join(PROJECT_FILE), &json)?;
    // The new generation is in place: the others can go.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(found) = name.to_str().and_then(generation_of) else {
                continue;
            };
            if found != g {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ProjectFile {
        ProjectFile {
            format_version: PROJECT_VERSION,
            generation: 0,
            movie: Some(PathBuf::from("movie.tif")),
            demo: false,
            settings: Settings::default(),
            mask_edited: false,
            model: Some("trained here".into()),
            detections: false,
            analysed: false,
            registered: None,
            corrections: Default::default(),
            earlier_edits: Vec::new(),
        }
    }

    fn det(frame: usize) -> Detection {
        Detection {
            frame,
            x: 1.5,
            y: 2.5,
            area: 4,
            score: 0.9,
        }
    }

    #[test]
    fn saves_replace_the_previous_generation_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let model = |p: &Path| -> Result<()> {
            ensure_dir(p)?;
            atomic_write(&p.join("weights.bpk"), b"w")
        };
        let dets = [det(0), det(1)];
        let mask = Raster::from_vec(2, 2, vec![0.0, 255.0, 0.0, 0.0]).unwrap();
        for round in 1..=3u64 {
            let c = Contents {
                mask: Some(&mask),
                model: Some(&model),
                detections: Some(&dets[..round as usize % 2 + 1]),
                analysed: None,
            };
            assert_eq!(save(dir.path(), file(), &c).unwrap(), round);
            let f = read(dir.path()).unwrap();
            assert_eq!(f.generation, round);
            let p = f.paths(dir.path());
            assert!(p.model.join("weights.bpk").is_file());
            assert!(p.mask.is_file());
            assert_eq!(
                read_detections(&p.detections).unwrap().len(),
                round as usize % 2 + 1
            );
            assert!(!f.analysed && !p.analysed.exists());
            // Only this generation's files are left.
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                vec![
                    format!("detections-{round}.csv"),
                    format!("mask-{round}.png"),
                    format!("model-{round}"),
                    "project.json".to_string()
                ]
            );
        }
    }

    #[test]
    fn an_interrupted_save_leaves_the_previous_project() {
        let dir = tempfile::tempdir().unwrap();
        let dets = [det(0)];
        let c = Contents {
            detections: Some(&dets),
            ..Contents::default()
        };
        save(dir.path(), file(), &c).unwrap();
        // A save that fails while writing its model (a crash there): nothing else changes.
        let failing = |_: &Path| -> Result<()> { Err(Error::invalid("disk full")) };
        let more = [det(0), det(1), det(2)];
        let bad = Contents {
            model: Some(&failing),
            detections: Some(&more),
            ..Contents::default()
        };
        assert!(save(dir.path(), file(), &bad).is_err());
        let f = read(dir.path()).unwrap();
        assert_eq!(f.generation, 1);
        assert_eq!(
            read_detections(&f.paths(dir.path()).detections)
                .unwrap()
                .len(),
            1
        );
        // Leftovers of a save that stopped after writing some files: the next save skips their
        // generation and removes them.
        std::fs::write(dir.path().join("detections-7.csv"), "junk").unwrap();
        assert_eq!(save(dir.path(), file(), &c).unwrap(), 8);
        assert!(!dir.path().join("detections-7.csv").exists());
        assert!(!dir.path().join("detections-1.csv").exists());
    }

    #[test]
    fn corrections_kept_among_the_settings_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(file()).unwrap();
        v.as_object_mut().unwrap().remove("corrections");
        v["settings"]["analysis"]["edits"] = serde_json::json!([
            {"edit": "relabel", "detection": 4, "class": 1},
            {"edit": "merge", "from": 2, "into": 0}
        ]);
        std::fs::write(dir.path().join(PROJECT_FILE), v.to_string()).unwrap();
        let f = read(dir.path()).unwrap();
        use crate::analysis::classify::ManualEdit;
        assert_eq!(
            f.earlier_edits,
            vec![
                ManualEdit::Relabel {
                    detection: 4,
                    class: 1
                },
                ManualEdit::Merge { from: 2, into: 0 }
            ]
        );
        assert!(f.corrections.edits.is_empty());
    }

    #[test]
    fn format_1_opens_newer_formats_are_refused_and_names_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = serde_json::to_value(file()).unwrap();
        v1["format_version"] = 1.into();
        v1.as_object_mut().unwrap().remove("generation");
        v1.as_object_mut().unwrap().remove("registered");
        std::fs::write(dir.path().join(PROJECT_FILE), v1.to_string()).unwrap();
        let f = read(dir.path()).unwrap();
        assert_eq!(
            f.paths(dir.path()).detections,
            dir.path().join("detections.csv")
        );
        assert_eq!(f.movie_path(dir.path()), Some(dir.path().join("movie.tif")));

        v1["format_version"] = 9.into();
        std::fs::write(dir.path().join(PROJECT_FILE), v1.to_string()).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("newer defectscope") && e.contains("format 9"),
            "{e}"
        );

        std::fs::write(dir.path().join(PROJECT_FILE), "{ not json").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a defectscope project"), "{e}");

        // Our names only: nothing else in the folder is taken for a generation.
        assert_eq!(generation_of("model-3"), Some(3));
        assert_eq!(generation_of("analysed.csv"), Some(0));
        assert_eq!(generation_of("model-3.csv"), None);
        assert_eq!(generation_of("notes-2.csv"), None);
        assert_eq!(generation_of("movie.tif"), None);
    }
}
