//! defectscope: find, classify and follow atomic defects in STEM movies.
//!
//! # Stages and data flow
//! ```text
//! movie file ──movie::load──▶ Movie (f32 frames + calibration)
//!   frame 0 ──lattice::label──▶ Labels (lattice fit, column outliers, pixel mask)
//!   frame 0 + mask ──train::train (augment:: crops)──▶ Net (model::, burn)
//!   all frames ──detect::detect_all──▶ Vec<Detection>
//!   ──session::write_results──▶ defects.csv, ground_truth_frame0.png, run.json
//! ```
//! `synth` generates TMD movies with known truth (multislice column profiles, contamination);
//! `score` compares detections with it; `conditions` sweeps imaging conditions and scores the
//! labelling beside the single-frame oracle; `bench` times every stage on such movies.
//! `gui` (feature `gui`, on by default) is the desktop workbench: panels over the same stages,
//! run as background jobs.
//!
//! # Errors
//! Every stage returns [`error::Result`]. Long stages take a [`jobs::JobCtx`] and return
//! [`error::Error::Cancelled`] when cancelled; partial problems are sent as warnings through the
//! context and collected in the result, never dropped silently.

pub mod analysis;
pub mod augment;
pub mod batch;
pub mod conditions;
pub mod detect;
pub mod error;
pub mod export;
#[cfg(feature = "gui")]
pub mod gui;
pub mod jobs;
pub mod lattice;
pub mod model;
pub mod movie;
pub mod raster;
pub mod score;
pub mod session;
pub mod sites;
pub mod synth;
pub mod train;

pub use error::{Error, Result};
