//! Background jobs: progress, cancellation, events, and panics turned into errors.
//!
//! A stage receives a [`JobCtx`] and calls [`JobCtx::step`] in its loops; `step` returns
//! [`Error::Cancelled`] once the user cancelled. Progress lives in atomics that a GUI or the CLI
//! reads whenever it likes; events (loss values, warnings) go through a bounded channel so a slow
//! reader never makes the job use unbounded memory (events are dropped when the channel is full,
//! and counted). [`spawn`] runs a job on a named thread and catches panics.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Wall time of one stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
}

/// Something a job reports besides its progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A training iteration finished.
    TrainStep { iteration: usize, loss: f32 },
    /// A validation pass finished.
    Validation { iteration: usize, iou: f32 },
    /// A partial problem the user should know about; the job continues.
    Warning(String),
    /// Free-form information (e.g. which device was chosen).
    Info(String),
}

/// Progress of the current stage of a job, readable from any thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
}

struct Shared {
    cancelled: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
    stage: Mutex<String>,
    dropped_events: AtomicU64,
    wake: Box<dyn Fn() + Send + Sync>,
}

/// The context handed to a stage: cancel token, progress counters, event sender, wake-up.
#[derive(Clone)]
pub struct JobCtx {
    shared: Arc<Shared>,
    events: Option<SyncSender<Event>>,
}

impl std::fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtx")
            .field("progress", &self.progress())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The owner's side of a job: read progress and events, cancel, wait for the result.
#[derive(Debug)]
pub struct JobHandle<T> {
    pub ctx: JobCtx,
    pub events: Receiver<Event>,
    thread: JoinHandle<Result<T>>,
}

impl JobCtx {
    /// A context whose events go nowhere; for tests and plain library calls.
    pub fn detached() -> Self {
        Self::new(None, Box::new(|| {}))
    }

    /// A context with a bounded event channel of `capacity` and a wake-up callback (the GUI
    /// passes its repaint request).
    pub fn with_events(
        capacity: usize,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> (Self, Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        (Self::new(Some(tx), wake), rx)
    }

    fn new(events: Option<SyncSender<Event>>, wake: Box<dyn Fn() + Send + Sync>) -> Self {
        JobCtx {
            shared: Arc::new(Shared {
                cancelled: AtomicBool::new(false),
                done: AtomicU64::new(0),
                total: AtomicU64::new(0),
                stage: Mutex::new(String::new()),
                dropped_events: AtomicU64::new(0),
                wake,
            }),
            events,
        }
    }

    /// Ask the job to stop; it returns [`Error::Cancelled`] at its next [`JobCtx::step`].
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        (self.shared.wake)();
    }

    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Fail with [`Error::Cancelled`] if cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Start a new stage of `total` steps.
    pub fn begin(&self, stage: &str, total: u64) {
        if let Ok(mut s) = self.shared.stage.lock() {
            s.clear();
            s.push_str(stage);
        }
        self.shared.done.store(0, Ordering::SeqCst);
        self.shared.total.store(total, Ordering::SeqCst);
        (self.shared.wake)();
    }

    /// Record that `done` steps of the current stage are finished, then check for cancellation.
    /// Progress never goes backwards within a stage.
    pub fn step(&self, done: u64) -> Result<()> {
        self.shared.done.fetch_max(done, Ordering::SeqCst);
        (self.shared.wake)();
        self.check()
    }

    pub fn progress(&self) -> Progress {
        Progress {
            stage: self
                .shared
                .stage
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            done: self.shared.done.load(Ordering::SeqCst),
            total: self.shared.total.load(Ordering::SeqCst),
        }
    }

    /// Send an event; dropped (and counted) if the reader is behind or gone.
    pub fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            match tx.try_send(event) {
                Ok(()) => (self.shared.wake)(),
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.shared.dropped_events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Number of events dropped because the channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }
}

/// Run `work` on a thread named `name`; a panic inside becomes [`Error::Panicked`].
pub fn spawn<T, F>(name: &str, wake: Box<dyn Fn() + Send + Sync>, work: F) -> Result<JobHandle<T>>
where
    T: Send + 'static,
    F: FnOnce(&JobCtx) -> Result<T> + Send + 'static,
{
    let (ctx, events) = JobCtx::with_events(1024, wake);
    let job_ctx = ctx.clone();
    let job_name = name.to_string();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&job_ctx)));
            let result = outcome.unwrap_or_else(|payload| {
                Err(Error::Panicked {
                    job: job_name,
                    msg: panic_message(payload.as_ref()),
                })
            });
            (job_ctx.shared.wake)();
            result
        })
        .map_err(|e| Error::invalid(format!("could not start job thread {name}: {e}")))?;
    Ok(JobHandle {
        ctx,
        events,
        thread,
    })
}

/// The text a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// `f`, with a panic turned into an error (wgpu panics when its device is lost).
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(Error::Device(format!(
            "the computation failed: {}",
            panic_message(&*p)
        )))
    })
}

impl<T> JobHandle<T> {
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wait for the job; return its result and the events it sent that were not read yet.
    pub fn join_with_events(self) -> (Result<T>, Vec<Event>) {
        let events = self.events;
        let result = Self::join_thread(self.thread);
        (result, events.try_iter().collect())
    }

    /// Wait for the job and return its result.
    pub fn join(self) -> Result<T> {
        Self::join_thread(self.thread)
    }

    fn join_thread(thread: JoinHandle<Result<T>>) -> Result<T> {
        thread.join().unwrap_or_else(|payload| {
            Err(Error::Panicked {
                job: "job thread".into(),
                msg: panic_message(payload.as_ref()),
            })
        })
    }
}

/// The warnings among the events received so far (for tests of fallbacks).
#[cfg(test)]
pub(crate) fn warnings(events: &Receiver<Event>) -> Vec<String> {
    events
        .try_iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_monotonic_within_a_stage() {
        let ctx = JobCtx::detached();
        ctx.begin("x", 10);
        ctx.step(5).ok();
        ctx.step(3).ok();
        assert_eq!(ctx.progress().done, 5);
        assert_eq!(ctx.progress().total, 10);
        ctx.begin("y", 4);
        assert_eq!(ctx.progress().done, 0);
        assert_eq!(ctx.progress().stage, "y");
    }

    #[test]
    fn cancel_stops_a_looping_job() {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let handle = spawn("loop", Box::new(|| {}), move |ctx| -> Result<()> {
            ctx.begin("spin", u64::MAX);
            let mut i = 0;
            loop {
                i += 1;
                if i == 1 {
                    started_tx.send(()).ok();
                }
                ctx.step(i)?;
                std::thread::yield_now();
            }
        })
        .expect("spawn");
        started_rx.recv().expect("job started");
        handle.ctx.cancel();
        assert!(matches!(handle.join(), Err(Error::Cancelled)));
    }

    #[test]
    fn panic_becomes_error() {
        let handle = spawn("boom", Box::new(|| {}), |_ctx| -> Result<()> {
            panic!("kaput {}", 42)
        })
        .expect("spawn");
        match handle.join() {
            Err(Error::Panicked { job, msg }) => {
                assert_eq!(job, "boom");
                assert!(msg.contains("kaput 42"));
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
    }

    #[test]
    fn full_event_channel_drops_and_counts() {
        let (ctx, rx) = JobCtx::with_events(2, Box::new(|| {}));
        for i in 0..5 {
            ctx.emit(Event::TrainStep {
                iteration: i,
                loss: 1.0,
            });
        }
        assert_eq!(ctx.dropped_events(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }
}
