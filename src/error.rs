//! One error type for the whole pipeline.
//!
//! Each stage returns [`Result`]. The CLI prints an error once (with its chain) and exits non-zero;
//! the GUI will show it as one notification. [`Error::Cancelled`] is a neutral outcome, not a fault.
//! Paths come last in messages so that long paths do not hide the problem.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in a defectscope stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed. The OS error is part of the message, not a separate
    /// source, so that printing the error with its chain says it once.
    #[error("{action}: {cause}: {}", path.display())]
    Io {
        action: &'static str,
        cause: std::io::Error,
        path: PathBuf,
    },
    /// A file exists but is not something we can read (unknown, corrupt or truncated).
    #[error("{msg}: {}", path.display())]
    Format { msg: String, path: PathBuf },
    /// Input data or parameters that cannot be processed.
    #[error("{0}")]
    Invalid(String),
    /// A saved model that does not fit the requested use.
    #[error("model: {msg}: {}", path.display())]
    Model { msg: String, path: PathBuf },
    /// The compute device failed.
    #[error("device: {0}")]
    Device(String),
    /// The user cancelled the job.
    #[error("cancelled")]
    Cancelled,
    /// A job panicked; the panic was caught and turned into this error.
    #[error("internal error in {job}: {msg}")]
    Panicked { job: String, msg: String },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the action that failed and the path it concerned.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            cause: source,
            path: path.to_path_buf(),
        }
    }

    /// A format error (unknown, corrupt or truncated file).
    pub fn format(path: &Path, msg: impl Into<String>) -> Self {
        Error::Format {
            msg: msg.into(),
            path: path.to_path_buf(),
        }
    }

    /// Invalid input or parameters.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
