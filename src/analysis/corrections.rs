//! Corrections made by hand (relabelled defects, merged classes): a layer over the
//! classifier's clustering, recorded with the clustering they were made under, so that they are
//! replayed only on that clustering and a correction recomputes only what depends on labels.

use super::classify::{Clustering, ManualEdit, apply_edits};
use super::{AnalysisConfig, DefectAnalysis};
use crate::detect::Detection;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// The hand corrections of one clustering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Corrections {
    /// [`clustering_key`] of the clustering the edits were made on (`None`: no edit yet).
    pub made_under: Option<u64>,
    /// The edits in the order made; class numbers are as the user saw them then.
    pub edits: Vec<ManualEdit>,
    /// Names given to classes, each held by one member (a detection), so that a name follows
    /// its defects when classes are renumbered by an edit.
    pub names: Vec<ClassName>,
}

/// The name of the class that holds detection `detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassName {
    pub detection: usize,
    pub name: String,
}

impl Corrections {
    /// Record `edit`, made on `analysis`'s classes.
    pub fn push(&mut self, edit: ManualEdit, analysis: &DefectAnalysis) {
        self.adopt(analysis);
        self.edits.push(edit);
    }

    /// Name class `class` of `analysis` (an empty name takes the name away); false when the
    /// class has no member to hold the name.
    pub fn name(&mut self, class: usize, name: &str, analysis: &DefectAnalysis) -> bool {
        let Some(detection) = analysis.raw_class.iter().position(|&c| c == Some(class)) else {
            return false;
        };
        self.adopt(analysis);
        // A class has one name: the ones its members held before go.
        self.names
            .retain(|n| analysis.raw_class.get(n.detection).copied().flatten() != Some(class));
        let name = name.trim();
        if !name.is_empty() {
            self.names.push(ClassName {
                detection,
                name: name.to_string(),
            });
        }
        true
    }

    /// Start over when `analysis` is another clustering than the one these were made on.
    fn adopt(&mut self, analysis: &DefectAnalysis) {
        if self.made_under != Some(analysis.clustering_key) {
            self.edits.clear();
            self.names.clear();
        }
        self.made_under = Some(analysis.clustering_key);
    }

    /// Whether these corrections belong to a clustering with this key (or there are none).
    pub fn fit(&self, key: u64) -> bool {
        (self.edits.is_empty() && self.names.is_empty()) || self.made_under == Some(key)
    }

    /// The name of each of `classes` classes, given the class of each detection: the last name
    /// one of its members holds, else "class c".
    pub(super) fn class_names(
        &self,
        key: u64,
        classes: usize,
        class_of: &[Option<usize>],
    ) -> Vec<String> {
        let mut names: Vec<String> = (0..classes).map(default_class_name).collect();
        if self.fit(key) {
            for n in &self.names {
                if let Some(c) = class_of.get(n.detection).copied().flatten()
                    && c < classes
                {
                    names[c] = n.name.clone();
                }
            }
        }
        names
    }

    /// The classifier's `clustering` with the corrections replayed, where they belong to it
    /// (`key`); unchanged otherwise.
    pub(super) fn apply(
        &self,
        clustering: &Clustering,
        detection_of_row: &[usize],
        key: u64,
    ) -> Result<Clustering> {
        let mut corrected = clustering.clone();
        if self.fit(key) {
            apply_edits(&mut corrected, detection_of_row, &self.edits)?;
        }
        Ok(corrected)
    }

    /// The detections relabelled by hand, whose class the smoothing along tracks must keep.
    pub(super) fn relabelled(&self) -> impl Iterator<Item = usize> + '_ {
        self.edits.iter().filter_map(|e| match *e {
            ManualEdit::Relabel { detection, .. } => Some(detection),
            ManualEdit::Merge { .. } => None,
        })
    }
}

/// The name of class `c` until one is given.
pub fn default_class_name(c: usize) -> String {
    format!("class {c}")
}

/// Identifies a clustering: the settings it depends on and the detections it ran on. Edits
/// name detections by index and classes by number, so they hold only where this is the same.
pub fn clustering_key(cfg: &AnalysisConfig, detections: &[Detection]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let settings = serde_json::json!([
        cfg.patch_size,
        cfg.method,
        cfg.classes,
        cfg.pca_components,
        cfg.feature_window,
        cfg.feature_blur_px,
        cfg.snap_to_lattice,
        cfg.symmetry,
        cfg.tracking.register,
        cfg.seed,
    ]);
    settings.to_string().hash(&mut h);
    detections.len().hash(&mut h);
    for d in detections {
        (d.frame, d.x.to_bits(), d.y.to_bits()).hash(&mut h);
    }
    h.finish()
}
