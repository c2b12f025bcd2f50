//! The settings of every stage, persisted between runs and saved in projects.

use crate::analysis::AnalysisConfig;
use crate::detect::{Detection, LocalizeConfig};
use crate::lattice::LabelMethod;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which detections the later stages use: live filters on score and blob size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectionFilter {
    pub min_score: f32,
    pub min_area_px: usize,
    /// 0 = no upper limit.
    pub max_area_px: usize,
}

impl Default for DetectionFilter {
    fn default() -> Self {
        DetectionFilter {
            min_score: 0.5,
            min_area_px: 0,
            max_area_px: 0,
        }
    }
}

impl DetectionFilter {
    pub fn keeps(&self, d: &Detection) -> bool {
        d.score >= self.min_score
            && d.area >= self.min_area_px
            && (self.max_area_px == 0 || d.area <= self.max_area_px)
    }
}

/// Every setting of every stage: persisted between runs and saved in projects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub label: LabelMethod,
    pub train: TrainConfig,
    pub localize: LocalizeConfig,
    pub filter: DetectionFilter,
    pub inference_batch: usize,
    pub analysis: AnalysisConfig,
    pub augment_preview_seed: u64,
    /// Where figures and tables are exported.
    pub export_dir: PathBuf,
    /// PNG exports: printed width of a figure in millimetres, and the resolution, so a figure
    /// is `export_width_mm / 25.4 × export_dpi` pixels wide. SVG exports keep their own size.
    pub export_width_mm: f64,
    pub export_dpi: f64,
    pub recent: Vec<PathBuf>,
    /// Minutes between autosaves while there are unsaved changes (0 = never).
    pub autosave_minutes: f64,
    /// The site model over the lattice's columns.
    pub sites: crate::sites::SiteModelConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            label: LabelMethod::default(),
            train: TrainConfig::default(),
            localize: LocalizeConfig::default(),
            filter: DetectionFilter::default(),
            inference_batch: 2,
            analysis: AnalysisConfig::default(),
            augment_preview_seed: 0,
            export_dir: PathBuf::from("results/gui"),
            export_width_mm: 170.0,
            export_dpi: 300.0,
            recent: Vec::new(),
            autosave_minutes: 3.0,
            sites: crate::sites::SiteModelConfig::default(),
        }
    }
}
