//! Bad input through the command line: one clear error naming the problem and the path,
//! a non-zero exit, no panic, and nothing written into --out.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_defectscope"))
        .args(args)
        .env("DEFECTSCOPE_NO_GPU", "1")
        .output()
        .expect("run binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Analyze `input` into a fresh out folder; expect failure with `needle` and the path in the message.
fn expect_clean_failure(dir: &Path, input: &Path, extra: &[&str], needle: &str) {
    let out = dir.join(format!(
        "out-{}",
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut args = vec![
        "analyze",
        input.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let (ok, stderr) = run(&args);
    assert!(!ok, "must fail for {}", input.display());
    assert!(
        !stderr.contains("panicked"),
        "panic for {}: {stderr}",
        input.display()
    );
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(
        stderr.matches("(os error").count() <= 1,
        "the OS error said more than once: {stderr}"
    );
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        stderr.contains(&name),
        "message must name the path: {stderr}"
    );
    let leftovers = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        leftovers,
        0,
        "nothing may be written into --out for {}",
        input.display()
    );
}

#[test]
fn every_bad_input_gives_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    expect_clean_failure(d, &d.join("missing.tif"), &[], "could not open movie");

    let unknown = d.join("notes.txt");
    std::fs::write(&unknown, b"these are not pixels").expect("write");
    expect_clean_failure(d, &unknown, &[], "unknown file format");

    let frames = vec![defectscope::raster::Raster::zeros(64, 64); 2];
    let tiff = defectscope::movie::write_tiff_f32(&frames, &Default::default()).expect("tiff");
    let truncated = d.join("truncated.tif");
    std::fs::write(&truncated, &tiff[..tiff.len() / 2]).expect("write");
    expect_clean_failure(d, &truncated, &[], "TIFF");

    let short_npy = d.join("short.npy");
    std::fs::write(&short_npy, npy("<f4", "(2, 64, 64)", &[0; 100])).expect("write");
    expect_clean_failure(d, &short_npy, &[], "truncated NPY");

    let empty = d.join("empty.npy");
    std::fs::write(&empty, npy("<f4", "(1, 0, 0)", &[])).expect("write");
    expect_clean_failure(d, &empty, &[], "at least 2x2");

    let single = d.join("single.npy");
    std::fs::write(&single, npy("<f4", "(1, 1)", &1.0f32.to_le_bytes())).expect("write");
    expect_clean_failure(d, &single, &[], "at least 2x2");

    let mut data = Vec::new();
    for i in 0..64 * 64 {
        let v = if i == 77 {
            f32::NAN
        } else if i == 78 {
            f32::INFINITY
        } else {
            1.0
        };
        data.extend_from_slice(&v.to_le_bytes());
    }
    let nan = d.join("nan.npy");
    std::fs::write(&nan, npy("<f4", "(64, 64)", &data)).expect("write");
    expect_clean_failure(d, &nan, &[], "2 NaN or infinite");

    // A real lattice image, but smaller than the training crop.
    let s = defectscope::synth::generate(&defectscope::synth::SynthConfig {
        frames: 1,
        width: 96,
        height: 96,
        ..Default::default()
    })
    .expect("generate");
    let small = d.join("small.npy");
    std::fs::write(&small, defectscope::movie::write_npy_f32(&s.movie.frames)).expect("write");
    expect_clean_failure(d, &small, &[], "too small for training crops");

    // A model folder whose weights do not fit its config.
    let model = d.join("model");
    std::fs::create_dir_all(&model).expect("mkdir");
    std::fs::write(
        model.join("config.json"),
        br#"{"format_version":1,"model":{"architecture":"unet","width":8},"iterations":1,"mask_radius_px":4.0}"#,
    )
    .expect("write");
    std::fs::write(model.join("weights.bpk"), b"not a burnpack").expect("write");
    let good = d.join("good.npy");
    std::fs::write(&good, defectscope::movie::write_npy_f32(&s.movie.frames)).expect("write");
    let (ok, stderr) = run(&[
        "analyze",
        good.to_str().expect("utf8"),
        "--out",
        d.join("o").to_str().expect("utf8"),
        "--model",
        model.to_str().expect("utf8"),
    ]);
    assert!(!ok && !stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("weights.bpk is corrupt") && stderr.contains("model"),
        "{stderr}"
    );
    assert!(
        !d.join("o").exists()
            || std::fs::read_dir(d.join("o"))
                .map(|r| r.count())
                .unwrap_or(0)
                == 0
    );

    // Out-of-range parameters.
    let (ok, stderr) = run(&[
        "analyze",
        good.to_str().expect("utf8"),
        "--out",
        d.join("p").to_str().expect("utf8"),
        "--threshold",
        "1.5",
    ]);
    assert!(
        !ok && stderr.contains("threshold") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn synth_writes_movie_truth_and_masks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let (ok, stderr) = run(&[
        "synth",
        "--out",
        out.to_str().expect("utf8"),
        "--frames",
        "3",
        "--size",
        "64",
        "--seed",
        "2",
    ]);
    assert!(ok, "{stderr}");
    for f in [
        "movie.tif",
        "movie.npy",
        "truth.csv",
        "truth_masks.tif",
        "synth.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let tif = defectscope::movie::load(&out.join("movie.tif")).expect("tif");
    let npy = defectscope::movie::load(&out.join("movie.npy")).expect("npy");
    assert_eq!(tif.frames, npy.frames);
    assert_eq!(tif.frames.len(), 3);
    assert!(
        tif.calibration
            .pixel_size_nm
            .is_some_and(|p| (p - 0.0125).abs() < 1e-6)
    );
    let masks = defectscope::movie::load(&out.join("truth_masks.tif")).expect("masks");
    assert_eq!(masks.frames.len(), 3);
    let truth = defectscope::synth::parse_truth_csv(
        &std::fs::read_to_string(out.join("truth.csv")).expect("csv"),
    )
    .expect("parse");
    // Every true defect inside the frame lies on a marked mask pixel.
    for t in truth {
        let (x, y) = (t.x.round() as usize, t.y.round() as usize);
        assert!(masks.frames[t.frame].get(x, y) > 0.0);
    }
}

#[test]
fn info_describes_a_movie_and_refuses_unknown_files() {
    let dir = tempfile::tempdir().expect("dir");
    // 2 frames of 3 × 2 float32 values 0..11.
    let data: Vec<u8> = (0..12).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let p = dir.path().join("m.npy");
    std::fs::write(&p, npy("<f4", "(2, 2, 3)", &data)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_defectscope"))
        .args(["info", p.to_str().expect("utf8"), "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["frames"], 2);
    assert_eq!(v["width"], 3);
    assert_eq!(v["height"], 2);
    assert_eq!(v["max"], 11.0);
    assert!(v["pixel_size_nm"].is_null());
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"not a movie at all").expect("write");
    let (ok, err) = run(&["info", junk.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("DM3/DM4") && err.contains("junk.bin"), "{err}");
}

#[test]
fn bench_prints_json_rows_and_refuses_unknown_cases() {
    let (ok, err) = run(&["bench", "fastest"]);
    assert!(!ok);
    assert!(
        err.contains("\"fastest\"") && err.contains("train-sniffer-b8"),
        "{err}"
    );
    let (ok, err) = run(&["bench", "link", "--repeats", "0"]);
    assert!(!ok && err.contains("at least 1"), "{err}");
    // The window case is cheap and needs no network: a row with the frames' times.
    let out = Command::new(env!("CARGO_BIN_EXE_defectscope"))
        .args([
            "bench",
            "gui",
            "--repeats",
            "1",
            "--json",
            "--device",
            "cpu",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = v["rows"].as_array().expect("rows");
    if cfg!(feature = "gui") {
        let cases: Vec<&str> = rows.iter().filter_map(|r| r["case"].as_str()).collect();
        assert_eq!(cases, ["gui-10k-markers", "gui-100k-detections"]);
        for row in rows {
            assert_eq!(row["unit"], "ms/frame");
            assert!(row["samples"].as_u64().expect("n") >= 10);
            assert!(row["median"].as_f64().expect("median") > 0.0);
        }
    } else {
        assert!(rows.is_empty());
    }
}
