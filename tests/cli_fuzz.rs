//! The command line under random arguments: every headless command with options drawn from
//! values that break things (negative, zero, huge, NaN, infinite, empty, not a number) and inputs
//! that are missing, junk or real. Whatever the arguments, the process must end by itself with
//! exit code 0 (success), 1 (a clear error) or 2 (a usage error from the parser), print an error
//! when it fails, and never panic.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::Command;

/// Values for numeric options.
const NUMBERS: &[&str] = &[
    "-1",
    "0",
    "1",
    "2",
    "3",
    "16",
    "64",
    "0.5",
    "-0.5",
    "1e3",
    "1e30",
    "nan",
    "inf",
    "-inf",
    "",
    "x",
    "9999999999",
    "18446744073709551616",
];

/// Command lines drawn (about 40 ms each here; most end in the parser or a validation).
const DRAWS: usize = 400;

/// Small values only, for the options that set how long training runs.
const SMALL: &[&str] = &["-1", "0", "1", "2", "", "x"];

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// Each option of `options` with probability 1/3, with a value where it takes one.
fn options(rng: &mut ChaCha8Rng, options: &[(&str, &[&str])], args: &mut Vec<String>) {
    for (name, values) in options {
        if rng.random_bool(1.0 / 3.0) {
            args.push(name.to_string());
            if !values.is_empty() {
                args.push(pick(rng, values).to_string());
            }
        }
    }
}

fn analysis_options(rng: &mut ChaCha8Rng, args: &mut Vec<String>) {
    options(
        rng,
        &[
            ("--classes", &["auto", "0", "1", "2", "9999999999", "x"]),
            ("--cluster", &["kmeans", "gmm-diag", "gmm-full", "x"]),
            ("--patch", NUMBERS),
            ("--pca-components", NUMBERS),
            ("--symmetry", NUMBERS),
            ("--max-step", NUMBERS),
            ("--max-gap", NUMBERS),
            ("--no-drift-correction", &[]),
            ("--coupling", &["0,1", "1,0", "5,5", "0", "x,y"]),
            ("--forbid", &["0-1", "1-0", "9-9", "x"]),
            ("--no-hmm", &[]),
            ("--pixel-size-nm", NUMBERS),
            ("--frame-interval-s", NUMBERS),
        ],
        args,
    );
}

fn arguments(rng: &mut ChaCha8Rng, dir: &Path, k: usize) -> Vec<String> {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let out = path(&format!("out{k}"));
    let movie = pick(
        rng,
        &["movie.npy", "movie.tif", "junk.bin", "missing.tif", ""],
    );
    let movie = if movie.is_empty() {
        String::new()
    } else {
        path(movie)
    };
    let mut args: Vec<String> = Vec::new();
    match rng.random_range(0..6) {
        0 => {
            args.extend(["synth".into(), "--out".into(), out, "--frames".into()]);
            args.push(pick(rng, &["-1", "0", "1", "2", "x", "9999999999"]).into());
            options(
                rng,
                &[
                    // Only the frame count can be huge (and then the movie too large):
                    // every movie that can be made is small.
                    ("--size", &["-5", "0", "8", "16", "48", "x"]),
                    ("--width", &["0", "16", "40", "x"]),
                    ("--height", &["0", "16", "40", "x"]),
                    ("--seed", NUMBERS),
                    ("--dose", NUMBERS),
                    ("--material", &["WS2", "mos2", "WSe2", "x", ""]),
                    ("--contrast", &["1.45", "natural", "z", "0.5", "x", "NaN"]),
                    ("--pixel-size-nm", NUMBERS),
                    ("--contamination", NUMBERS),
                    ("--adatoms", NUMBERS),
                    ("--pores", &["0", "1", "3", "1000", "x", "-1"]),
                    ("--sputter", NUMBERS),
                    ("--hop", NUMBERS),
                ],
                &mut args,
            );
        }
        1 => {
            args.extend(["analyze".into(), movie, "--out".into(), out]);
            // Always bounded: a run that trains takes at most 2 iterations.
            for (name, values) in [
                ("--iterations", SMALL),
                ("--crop", &["-8", "0", "8", "16", "30", "32", "1000"][..]),
                ("--batch", SMALL),
            ] {
                args.extend([name.to_string(), pick(rng, values).to_string()]);
            }
            args.extend(["--device".into(), "cpu".into()]);
            options(
                rng,
                &[
                    ("--learning-rate", NUMBERS),
                    ("--arch", &["sniffer", "unet", "x"]),
                    ("--net-width", &["-1", "0", "1", "2", "300", "x"]),
                    ("--label", &["columns", "fft", "x"]),
                    ("--z", NUMBERS),
                    ("--fft-cutoff", NUMBERS),
                    ("--threshold", NUMBERS),
                    ("--seed", NUMBERS),
                    ("--no-analysis", &[]),
                    ("--register", &[]),
                    ("--register-crop", &[]),
                    ("--config", &["junk.bin", "missing.json"]),
                ],
                &mut args,
            );
            analysis_options(rng, &mut args);
        }
        2 => {
            let defects = pick(rng, &["defects.csv", "junk.bin", "missing.csv"]);
            args.extend([
                "study".into(),
                movie,
                "--defects".into(),
                path(defects),
                "--out".into(),
                out,
            ]);
            analysis_options(rng, &mut args);
        }
        4 => {
            args.extend(["sites".into(), movie, "--out".into(), out]);
            options(
                rng,
                &[
                    ("--forbid", &["hop", "hop,convert", "teleport", ""]),
                    ("--fix", &["hop=0.1", "sputter=2", "hop", "x=1", "hop=NaN"]),
                    ("--prior", &["hop=0.1:50", "hop=0.1", "hop=0.1:-3", "hop=:"]),
                    ("--posterior", NUMBERS),
                    ("--material", &["WS2", "mos2", "x"]),
                    ("--pixel-size-nm", NUMBERS),
                ],
                &mut args,
            );
        }
        3 => {
            args.extend(["info".into(), movie]);
            options(
                rng,
                &[("--json", &[]), ("--npy", &["frames.npy", ""])],
                &mut args,
            );
        }
        _ => {
            // Only case names that match no case: a real case would run for minutes.
            args.extend(["bench".into(), pick(rng, &["nope", "zz", "-"]).into()]);
            options(
                rng,
                &[
                    ("--repeats", NUMBERS),
                    ("--inference-batch", NUMBERS),
                    ("--device", &["cpu", "gpu", "x"]),
                    ("--json", &[]),
                ],
                &mut args,
            );
        }
    }
    if rng.random_bool(0.1) {
        // An option that does not exist, somewhere.
        let at = rng.random_range(1..=args.len());
        args.insert(at, "--frobnicate".into());
    }
    args
}

#[test]
fn random_arguments_never_crash_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let bin = env!("CARGO_BIN_EXE_defectscope");
    // Inputs: a real 2-frame movie (TIFF and NPY) with its true defects as detections, and junk.
    let made = Command::new(bin)
        .args(["synth", "--frames", "2", "--size", "64", "--out"])
        .arg(dir.path())
        .output()
        .expect("synth");
    assert!(made.status.success());
    let truth = std::fs::read_to_string(dir.path().join("truth.csv")).expect("truth");
    let defects: String = truth
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                "frame,x,y\n".to_string()
            } else {
                let f: Vec<&str> = l.split(',').take(3).collect();
                format!("{}\n", f.join(","))
            }
        })
        .collect();
    std::fs::write(dir.path().join("defects.csv"), defects).expect("defects");
    std::fs::write(dir.path().join("junk.bin"), b"\x00\x01not a movie\xff").expect("junk");

    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut outcomes = [0usize; 3];
    let mut slowest = (0.0, Vec::new());
    for k in 0..DRAWS {
        let args = arguments(&mut rng, dir.path(), k);
        let clock = std::time::Instant::now();
        let out = Command::new(bin)
            .args(&args)
            .current_dir(dir.path())
            .env("DEFECTSCOPE_NO_GPU", "1")
            .output()
            .expect("run");
        let seconds = clock.elapsed().as_secs_f64();
        if seconds > slowest.0 {
            slowest = (seconds, args.clone());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=2)),
            "{args:?} ended with {:?}:\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
        if code != Some(0) {
            assert!(stderr.contains("error"), "{args:?} failed silently");
        }
        outcomes[code.unwrap_or(0) as usize] += 1;
    }
    eprintln!(
        "{DRAWS} random command lines: {} succeeded, {} clear errors, {} usage errors",
        outcomes[0], outcomes[1], outcomes[2]
    );
    // Reported, not asserted (machine-dependent).
    eprintln!("slowest: {:.1} s for {:?}", slowest.0, slowest.1);
    // The draw must reach past the parser in both directions, or it tests little.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
