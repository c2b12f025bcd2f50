//! Autosave: the session is saved as a project (see `crate::session::project`) every few minutes while it
//! has unsaved changes, in a background thread, into a folder of this run's own under the
//! autosave root; on a clean quit it is saved once more into `last-session/` and the run's folder
//! is removed. A run's folder that is still there when its process is gone is what a crash or
//! `kill -9` left behind: the next start offers to recover it.
//!
//! The root is `$DEFECTSCOPE_AUTOSAVE_DIR`, else `$XDG_STATE_HOME/defectscope/autosave`, else
//! `~/.local/state/defectscope/autosave`. Autosaves never write next to the user's files.

use crate::error::Result;
use crate::session::Session;
use crate::session::project;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Where a run's folder records its process.
const OWNER: &str = "owner.pid";
/// The folder of the last cleanly closed session.
pub const LAST_SESSION: &str = "last-session";

pub struct Autosave {
    root: PathBuf,
    /// This run's folder.
    dir: PathBuf,
    pub interval: Duration,
    last_try: Instant,
    /// The session's fingerprint at the last good save.
    saved: Option<u64>,
    running: Option<(u64, JoinHandle<Result<u64>>)>,
    /// When the last autosave finished, and the error of the last one that failed.
    pub last_saved: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// The autosave root for this user.
pub fn default_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DEFECTSCOPE_AUTOSAVE_DIR") {
        return Some(PathBuf::from(d));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("defectscope").join("autosave"))
}

/// Whether process `pid` is running (Linux: /proc; elsewhere it is assumed to be).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Autosaves left by runs that did not close cleanly (their process is gone), newest first,
/// with the time of their last save.
pub fn leftovers(root: &Path) -> Vec<(PathBuf, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, SystemTime)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != LAST_SESSION))
        .filter_map(|p| {
            let pid: u32 = std::fs::read_to_string(p.join(OWNER))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let saved = std::fs::metadata(p.join(project::PROJECT_FILE))
                .ok()?
                .modified()
                .ok()?;
            (!alive(pid)).then_some((p, saved))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    found
}

impl Autosave {
    /// Autosave into a new folder of this run under `root`.
    pub fn new(root: PathBuf, interval: Duration) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = root.join(format!("run-{}-{nanos}", std::process::id()));
        Autosave {
            root,
            dir,
            interval,
            last_try: Instant::now(),
            saved: None,
            running: None,
            last_saved: None,
            last_error: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Collect a finished background save.
    fn collect(&mut self) {
        if self.running.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            self.join();
        }
    }

    /// Wait for the background save, if any, and record how it went.
    fn join(&mut self) {
        let Some((fingerprint, handle)) = self.running.take() else {
            return;
        };
        match handle.join() {
            Ok(Ok(_)) => {
                self.saved = Some(fingerprint);
                self.last_saved = Some(SystemTime::now());
                self.last_error = None;
            }
            Ok(Err(e)) => self.last_error = Some(e.to_string()),
            Err(_) => self.last_error = Some("the autosave thread panicked".into()),
        }
    }

    /// Called every frame: start a background save when one is due and there are changes.
    pub fn tick(&mut self, session: &Session) {
        self.collect();
        if self.running.is_some() || self.last_try.elapsed() < self.interval {
            return;
        }
        self.last_try = Instant::now();
        let fingerprint = session.fingerprint();
        if self.saved == Some(fingerprint) {
            return;
        }
        let Some(save) = session.project_saver() else {
            return;
        };
        let dir = self.dir.clone();
        let handle = std::thread::spawn(move || {
            crate::export::ensure_dir(&dir)?;
            crate::export::atomic_write(
                &dir.join(OWNER),
                std::process::id().to_string().as_bytes(),
            )?;
            save(&dir)
        });
        self.running = Some((fingerprint, handle));
    }

    /// Wait for a background save to finish (tests, and before quitting).
    pub fn wait(&mut self) {
        self.join();
    }

    /// On a clean quit: save the session into `last-session/` and remove this run's folder.
    pub fn finish(&mut self, session: &Session) -> Result<()> {
        self.wait();
        if let Some(save) = session.project_saver() {
            save(&self.root.join(LAST_SESSION))?;
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .map_err(|e| crate::error::Error::io("could not remove", &self.dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_folders_of_runs_that_are_gone() {
        let root = tempfile::tempdir().unwrap();
        let make = |name: &str, pid: u32| {
            let d = root.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(OWNER), pid.to_string()).unwrap();
            std::fs::write(d.join(project::PROJECT_FILE), "{}").unwrap();
        };
        // This process is alive; pid 0x7fff_fff0 is not a running process.
        make("run-mine", std::process::id());
        make("run-gone", 0x7fff_fff0);
        make(LAST_SESSION, 0x7fff_fff0);
        let found = leftovers(root.path());
        assert_eq!(found.len(), 1);
        assert!(found[0].0.ends_with("run-gone"));
    }
}
