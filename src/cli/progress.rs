//! Progress of a job on the terminal.

use anyhow::Result;
use defectscope::jobs::{Event, JobHandle};
use std::io::Write;
use std::time::{Duration, Instant};

/// Print progress to stderr while the job runs; return its result.
pub(crate) fn follow<T>(handle: JobHandle<T>) -> Result<T> {
    let mut last_loss = None;
    let mut stderr = std::io::stderr();
    let start = Instant::now();
    loop {
        for ev in handle.events.try_iter() {
            match ev {
                Event::TrainStep { loss, .. } => last_loss = Some(loss),
                Event::Validation { iteration, iou } => {
                    let _ = writeln!(
                        stderr,
                        "\r  iteration {iteration}: frame-0 IoU {iou:.3}{:30}",
                        ""
                    );
                }
                Event::Warning(w) => {
                    let _ = writeln!(stderr, "\rwarning: {w}");
                }
                Event::Info(i) => {
                    let _ = writeln!(stderr, "\r  {i}");
                }
            }
        }
        let p = handle.ctx.progress();
        let pct = if p.total > 0 {
            100.0 * p.done as f64 / p.total as f64
        } else {
            0.0
        };
        let loss = match (p.stage.as_str(), last_loss) {
            ("training", Some(l)) => format!("  loss {l:.4}"),
            _ => String::new(),
        };
        // Nothing to show before the job's first stage has begun.
        if !p.stage.is_empty() {
            let _ = write!(
                stderr,
                "\r{:>18} {:>5}/{:<5} {pct:5.1}%{loss}  [{:.0} s]   ",
                p.stage,
                p.done,
                p.total,
                start.elapsed().as_secs_f64()
            );
            let _ = stderr.flush();
        }
        if handle.is_finished() {
            let _ = writeln!(stderr);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(handle.join()?)
}
