//! What panels (and tests) ask the session to do, the kinds of background job, and the
//! notices the session gives back.

use crate::export::figure::Figure;
use std::path::PathBuf;
use std::time::Instant;

/// The kinds of background job; one runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Open,
    Register,
    Label,
    Train,
    LoadModel,
    Detect,
    Analyse,
    Sites,
    Export,
    SaveProject,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Open => "opening",
            JobKind::Register => "registering frames",
            JobKind::Label => "labelling frame 0",
            JobKind::Train => "training",
            JobKind::LoadModel => "loading the model",
            JobKind::Detect => "detecting",
            JobKind::Analyse => "analysing",
            JobKind::Sites => "fitting the site model",
            JobKind::Export => "exporting",
            JobKind::SaveProject => "saving the project",
        }
    }

    /// The chain's name for this stage in timings (`None`: not a stage of the chain).
    pub fn stage(self) -> Option<&'static str> {
        match self {
            JobKind::Label => Some("label"),
            JobKind::Train => Some("train"),
            JobKind::LoadModel => Some("load model"),
            JobKind::Detect => Some("detect"),
            JobKind::Sites => Some("sites"),
            _ => None,
        }
    }
}

/// How bad a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
    /// When it was last given.
    pub at: Instant,
    /// How many times it was given since it was shown.
    pub count: usize,
}

/// Every notice and job message of the session, in order, for the log window.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub level: Level,
    pub text: String,
    pub at: std::time::SystemTime,
}

/// What a panel asks the session to do.
#[derive(Debug, Clone)]
pub enum Command {
    OpenDemo,
    OpenMovie(PathBuf),
    OpenProject(PathBuf),
    SaveProject(PathBuf),
    /// Label frame 0 with the current settings (rethresholding when only thresholds changed).
    Label,
    /// Set (true) or clear a disk of the training mask: centre x, y and radius in px.
    Paint {
        x: f32,
        y: f32,
        radius: f32,
        on: bool,
    },
    /// Throw away the hand edits of the mask.
    ResetMask,
    /// Remove the drift from the open movie's frames (see `movie::register`), optionally
    /// cropping them to the field all frames share; labels, detections and analysis start over.
    Register {
        crop: bool,
    },
    Train,
    SaveModel(PathBuf),
    LoadModel(PathBuf),
    Detect,
    Analyse,
    /// Fit the site model (a hidden Markov model over the lattice's columns).
    FitSites,
    /// Reclassify one detection by hand (its class as currently numbered; one past the last
    /// class starts a new one), then analyse again.
    Relabel {
        detection: usize,
        class: usize,
    },
    Merge {
        from: usize,
        into: usize,
    },
    UndoEdit,
    /// Every table and figure of the analysis into the export folder.
    ExportAll,
    /// One figure as `<name>.svg` and `<name>.png` (at the export resolution) into the export
    /// folder.
    ExportFigure(String, Box<Figure>),
    Cancel,
    DismissNotice(usize),
    /// Dismiss every notice (the log keeps them).
    DismissAll,
    /// Name class `class` (empty: back to "class N").
    NameClass {
        class: usize,
        name: String,
    },
}
