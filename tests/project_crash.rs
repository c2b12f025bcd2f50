//! A process killed (SIGKILL) in the middle of saving a project, again and again: the project in
//! the folder always opens, and whole: its settings, detections and model all belong to one save.
//!
//! The test runs itself as the saving process: with `SAVER_ENV` set, it saves projects in a loop,
//! announcing each save on stdout before starting it; the parent kills it after reading the n-th
//! announcement, so the kill lands somewhere inside that save.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use burn::tensor::Device;
use defectscope::detect::Detection;
use defectscope::model::{
    CHECKPOINT_VERSION, CheckpointMeta, ModelConfig, load_checkpoint, save_checkpoint,
};
use defectscope::raster::Raster;
use defectscope::session::Settings;
use defectscope::session::project::{self, Contents, ProjectFile};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const SAVER_ENV: &str = "DEFECTSCOPE_TEST_SAVER_DIR";
const TEST_NAME: &str = "a_project_killed_mid_save_still_opens_whole";
const ROUNDS: usize = 24;

/// Save number `n`: `n` in the settings, `1000 × n` detections, a model saved after `n`
/// iterations, and a mask.
fn save_number(dir: &Path, n: usize) {
    let file = ProjectFile {
        format_version: project::PROJECT_VERSION,
        generation: 0,
        movie: Some("movie.tif".into()),
        demo: false,
        settings: Settings {
            augment_preview_seed: n as u64,
            ..Settings::default()
        },
        mask_edited: true,
        model: Some("trained here".into()),
        detections: true,
        analysed: true,
        registered: None,
        corrections: Default::default(),
        earlier_edits: Vec::new(),
    };
    let detections: Vec<Detection> = (0..1000 * n)
        .map(|i| Detection {
            frame: i % 7,
            x: i as f32 * 0.25,
            y: 3.0,
            area: 5,
            score: 0.5,
        })
        .collect();
    let mask = Raster::from_vec(64, 64, (0..64 * 64).map(|i| (i % 2 * 255) as f32).collect())
        .expect("mask");
    let device = Device::flex();
    let config = ModelConfig::default();
    let net = config.init(&device);
    let meta = CheckpointMeta {
        format_version: CHECKPOINT_VERSION,
        model: config,
        iterations: n,
        mask_radius_px: 3.0,
    };
    let model = |p: &Path| save_checkpoint(&net, &meta, p);
    let contents = Contents {
        mask: Some(&mask),
        model: Some(&model),
        detections: Some(&detections),
        analysed: Some(&detections[..n]),
    };
    project::save(dir, file, &contents).expect("save");
}

/// The saving process: announce, save, repeat (until killed).
fn saver(dir: &Path) {
    let mut out = std::io::stdout();
    for n in 2.. {
        writeln!(out, "saving {n}").expect("stdout");
        out.flush().expect("flush");
        save_number(dir, n);
    }
}

#[test]
fn a_project_killed_mid_save_still_opens_whole() {
    if let Some(dir) = std::env::var_os(SAVER_ENV) {
        saver(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    save_number(dir.path(), 1);
    let mut seen_generations = Vec::new();
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(SAVER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the saver");
        // Kill it inside its first, second or third save.
        let wanted = 1 + round % 3;
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut announced = 0;
        for line in lines {
            if line.expect("line").starts_with("saving") {
                announced += 1;
                if announced == wanted {
                    break;
                }
            }
        }
        child.kill().expect("kill");
        child.wait().expect("wait");

        let file = project::read(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let n = file.settings.augment_preview_seed as usize;
        let paths = file.paths(dir.path());
        let detections = project::read_detections(&paths.detections).expect("detections");
        assert_eq!(
            detections.len(),
            1000 * n,
            "round {round}: detections of another save"
        );
        let analysed = project::read_detections(&paths.analysed).expect("analysed");
        assert_eq!(analysed.len(), n, "round {round}");
        let (_, meta) = load_checkpoint(&paths.model, &Device::flex()).expect("model");
        assert_eq!(
            meta.iterations, n,
            "round {round}: the model of another save"
        );
        assert!(paths.mask.is_file(), "round {round}");
        seen_generations.push(file.generation);
        // Files of a newer generation than project.json names: the kill interrupted a save.
        let newer = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| {
                let digits: String = name.chars().filter(char::is_ascii_digit).collect();
                digits.parse::<u64>().is_ok_and(|g| g > file.generation)
            })
            .count();
        if newer > 0 {
            interrupted += 1;
        }
    }
    eprintln!(
        "{interrupted} of {ROUNDS} kills left a save half-written; the project opened whole each time"
    );
    // The saves went on between rounds (each round's kill interrupted a later save).
    assert!(seen_generations.windows(2).all(|w| w[0] <= w[1]));
}
