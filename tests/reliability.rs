//! Faults in jobs: cancelling every long job kind, and training that diverges.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use defectscope::analysis::{self, AnalysisConfig};
use defectscope::detect::{Detection, LocalizeConfig, detect_all, probability_maps};
use defectscope::error::{Error, Result};
use defectscope::jobs::{self, JobCtx};
use defectscope::lattice::{LabelMethod, label};
use defectscope::model::{DeviceChoice, ModelConfig, load_checkpoint};
use defectscope::movie::register::register;
use defectscope::synth::{SynthConfig, generate};
use defectscope::train::{FrameLabels, TrainConfig, train};
use std::time::{Duration, Instant};

/// Start `work` as a job, cancel it once it has made progress, and return how long it took to
/// stop. It must stop with `Cancelled`.
fn cancel_after_progress<T: Send + 'static>(
    name: &str,
    work: impl FnOnce(&JobCtx) -> Result<T> + Send + 'static,
) -> Duration {
    let handle = jobs::spawn(name, Box::new(|| {}), work).expect("spawn");
    while handle.ctx.progress().done == 0 && !handle.is_finished() {
        std::thread::yield_now();
    }
    assert!(
        !handle.is_finished(),
        "{name}: finished before it could be cancelled"
    );
    let t = Instant::now();
    handle.ctx.cancel();
    let (result, _) = handle.join_with_events();
    let took = t.elapsed();
    assert!(
        matches!(result, Err(Error::Cancelled)),
        "{name}: {:?}",
        result.err()
    );
    took
}

#[test]
fn every_long_job_stops_when_cancelled() {
    let s = generate(&SynthConfig {
        frames: 40,
        width: 256,
        height: 256,
        seed: 4,
        ..SynthConfig::default()
    })
    .expect("synth");
    let movie = std::sync::Arc::new(s.movie);
    let labels = label(&movie.frames[0], &LabelMethod::default()).expect("labels");
    let mut took = Vec::new();

    let (frame, mask) = (movie.frames[0].clone(), labels.mask.clone());
    took.push((
        "training",
        cancel_after_progress("train", move |ctx| {
            let cfg = TrainConfig {
                iterations: 100_000,
                crop: 64,
                batch: 2,
                device: DeviceChoice::Cpu,
                ..TrainConfig::default()
            };
            train(&frame, &FrameLabels::new(&mask, 3.0), &cfg, None, ctx)
        }),
    ));

    let m = movie.clone();
    took.push((
        "detection",
        cancel_after_progress("detect", move |ctx| {
            let config = ModelConfig::default();
            let device = burn::tensor::Device::flex();
            let net = config.init(&device);
            // The same frames again and again: longer than the cancel takes.
            let frames: Vec<_> = m.frames.iter().cycle().take(400).cloned().collect();
            detect_all(
                &net,
                &config,
                &device,
                &frames,
                1,
                &LocalizeConfig::default(),
                10_000,
                ctx,
                &mut |_, _| {},
            )
        }),
    ));

    // Loading: a TIFF of 1200 frames (the 40 again and again, 315 MB), decoded frame by frame.
    let dir = tempfile::tempdir().expect("dir");
    let tiff = dir.path().join("long.tif");
    let frames: Vec<_> = movie.frames.iter().cycle().take(1200).cloned().collect();
    let bytes = defectscope::movie::write_tiff_f32(&frames, &movie.calibration).expect("tiff");
    drop(frames);
    std::fs::write(&tiff, bytes).expect("write");
    took.push((
        "loading",
        cancel_after_progress("load", move |ctx| defectscope::movie::load_in(&tiff, ctx)),
    ));

    let m = movie.clone();
    took.push((
        "registration",
        cancel_after_progress("register", move |ctx| {
            let frames: Vec<_> = m.frames.iter().cycle().take(400).cloned().collect();
            register(&frames, true, ctx)
        }),
    ));

    let m = movie.clone();
    let detections: Vec<Detection> = s
        .truth
        .iter()
        .map(|d| Detection {
            frame: d.frame,
            x: d.x,
            y: d.y,
            area: 20,
            score: 0.9,
        })
        .collect();
    let lattice = labels.lattice.clone();
    took.push((
        "analysis",
        cancel_after_progress("analysis", move |ctx| {
            analysis::run(
                &m,
                &detections,
                lattice.as_ref(),
                &AnalysisConfig::default(),
                ctx,
            )
        }),
    ));
    // Reported, not asserted (timings depend on the machine): see the README.
    for (kind, t) in took {
        eprintln!(
            "{kind}: stopped {:.0} ms after cancel",
            t.as_secs_f64() * 1e3
        );
    }
}

#[test]
fn training_that_diverges_stops_with_a_message_and_keeps_the_last_good_checkpoint() {
    let s = generate(&SynthConfig {
        frames: 1,
        width: 128,
        height: 128,
        seed: 8,
        ..SynthConfig::default()
    })
    .expect("synth");
    let labels = label(&s.movie.frames[0], &LabelMethod::default()).expect("labels");
    let dir = tempfile::tempdir().expect("dir");
    let frame = &s.movie.frames[0];
    let good = TrainConfig {
        iterations: 4,
        crop: 64,
        batch: 2,
        checkpoint_every: 1,
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    train(
        frame,
        &FrameLabels::new(&labels.mask, 3.0),
        &good,
        Some(dir.path()),
        &JobCtx::detached(),
    )
    .expect("a sound run");
    // Then a run whose learning rate is absurd: its weights blow up at the first step.
    let wild = TrainConfig {
        learning_rate: 1e17,
        iterations: 50,
        ..good
    };
    let ctx = JobCtx::detached();
    let Err(err) = train(
        frame,
        &FrameLabels::new(&labels.mask, 3.0),
        &wild,
        Some(dir.path()),
        &ctx,
    ) else {
        panic!("training must not succeed");
    };
    let msg = err.to_string();
    assert!(msg.contains("diverged at iteration"), "{msg}");
    assert!(msg.contains("lower the learning rate"), "{msg}");
    // The sound run's checkpoint is still there, whole: it loads and gives finite maps.
    let device = burn::tensor::Device::flex();
    let (net, meta) = load_checkpoint(dir.path(), &device).expect("checkpoint");
    assert_eq!(meta.iterations, 4);
    let maps = probability_maps(&net, &meta.model, &device, &s.movie.frames[..1]).expect("maps");
    assert!(maps[0].data.iter().all(|v| v.is_finite()));
}
