//! The settings of every stage, persisted between runs and saved in projects.

use super::AnalyzeConfig;
use crate::detect::Detection;
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

/// Every setting of every stage: persisted between runs and saved in projects. The stages'
/// own settings are the chain's ([`AnalyzeConfig`], flattened: a project's `settings` object
/// holds `label`, `train`, … at its top level); the rest is the window's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(flatten)]
    pub chain: AnalyzeConfig,
    pub filter: DetectionFilter,
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
}

impl Settings {
    /// Width of exported PNGs, px: the printed width at the resolution asked for.
    pub fn png_width_px(&self) -> f64 {
        self.export_width_mm / 25.4 * self.export_dpi
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chain: AnalyzeConfig::default(),
            filter: DetectionFilter::default(),
            augment_preview_seed: 0,
            export_dir: PathBuf::from("results/gui"),
            export_width_mm: 170.0,
            export_dpi: 300.0,
            recent: Vec::new(),
            autosave_minutes: 3.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings go through JSON unchanged, and the stages' settings sit at the top level, where
    /// projects written before they were the chain's keep them.
    #[test]
    fn settings_round_trip_with_the_chain_flattened() {
        let mut s = Settings::default();
        s.chain.train.iterations = 123;
        s.chain.run_sites = false;
        s.export_dpi = 150.0;
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["train"]["iterations"], 123);
        let back: Settings = serde_json::from_value(json).expect("back");
        assert_eq!(back, s);
        let old = serde_json::json!({"inference_batch": 5, "export_dpi": 72.0});
        let read: Settings = serde_json::from_value(old).expect("old layout");
        assert_eq!(read.chain.inference_batch, 5);
        assert_eq!(read.export_dpi, 72.0);
        assert!(read.chain.run_sites);
    }
}
