//! `batch` over three small movies (one corrupt), resumed after a run killed half-way, one
//! movie of a job array, then `merge`; and the TrackMate, napari and ImageJ exports read back.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn bin(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_defectscope"));
    c.args(args)
        .env("DEFECTSCOPE_NO_GPU", "1")
        .env_remove("SLURM_ARRAY_TASK_ID");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run defectscope")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Small training on the CPU, so that each movie trains its own model in a second or two.
const QUICK: [&str; 8] = [
    "--iterations",
    "20",
    "--crop",
    "64",
    "--batch",
    "2",
    "--device",
    "cpu",
];

fn summary_rows(out: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(out.join("batch_summary.csv"))
        .expect("summary")
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn batch_resumes_records_failures_and_merges() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("dir");
    for seed in ["1", "2"] {
        let s = dir.path().join(format!("s{seed}"));
        let made = bin(
            &[
                "synth",
                "--frames",
                "4",
                "--size",
                "256",
                "--seed",
                seed,
                "--out",
                s.to_str().expect("path"),
            ],
            &[],
        );
        assert!(made.status.success(), "{}", text(&made));
        std::fs::copy(s.join("movie.tif"), input.join(format!("m{seed}.tif"))).expect("copy");
    }
    std::fs::write(input.join("broken.tif"), b"II*\0not a tiff at all").expect("write");
    let out = dir.path().join("out");
    let run = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "batch",
            input.to_str().expect("p"),
            "--out",
            out.to_str().expect("p"),
        ];
        args.extend_from_slice(&QUICK);
        args.extend_from_slice(extra);
        bin(&args, envs)
    };

    // The corrupt movie fails, is recorded, and the two others are analysed; the exit code
    // says a movie failed.
    let first = run(&[], &[]);
    assert!(!first.status.success(), "a failure is reported");
    assert!(text(&first).contains("broken.tif"), "{}", text(&first));
    let rows = summary_rows(&out);
    assert_eq!(rows.len(), 3);
    let status: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(status, ["failed", "done", "done"]);
    assert!(
        rows[0].last().expect("error").contains("TIFF"),
        "{:?}",
        rows[0]
    );
    let m1_done = std::fs::read(out.join("m1").join("batch_done.json")).expect("marker");

    // m2 killed half-way: results without the marker. The next run redoes m2 only.
    std::fs::remove_file(out.join("m2").join("batch_done.json")).expect("rm");
    std::fs::write(out.join("m2").join("half-written.csv"), b"frame,x").expect("write");
    let second = run(&[], &[]);
    assert!(
        text(&second).contains("1 done, 1 already finished, 1 failed"),
        "{}",
        text(&second)
    );
    assert_eq!(
        std::fs::read(out.join("m1").join("batch_done.json")).expect("marker"),
        m1_done,
        "m1 was not redone"
    );
    assert!(!out.join("m2").join("half-written.csv").exists());
    assert!(out.join("m2").join("batch_done.json").exists());

    // A job array's task runs its own movie only (Slurm's variable, or --index).
    std::fs::remove_dir_all(out.join("m1")).expect("rm");
    let task = run(&[("SLURM_ARRAY_TASK_ID", "1")], &[]);
    assert!(task.status.success(), "{}", text(&task));
    assert!(
        text(&task).contains("running movie 1 only"),
        "{}",
        text(&task)
    );
    assert!(out.join("m1").join("batch_done.json").exists());
    let wrong = run(&[], &["--index", "7"]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("3 movies"), "{}", text(&wrong));

    merge_pools_the_finished(&out, &dir.path().join("merged"));
    trackmate_napari_imagej(&out.join("m1"));
}

/// `merge` pools the two finished movies and leaves the failed one out, saying so.
fn merge_pools_the_finished(out: &Path, merged: &Path) {
    let m = bin(
        &[
            "merge",
            out.to_str().expect("p"),
            "--out",
            merged.to_str().expect("p"),
        ],
        &[],
    );
    assert!(m.status.success(), "{}", text(&m));
    assert!(text(&m).contains("merged 2 movies"), "{}", text(&m));
    assert!(text(&m).contains("broken"), "{}", text(&m));
    let movies = std::fs::read_to_string(merged.join("merged_movies.csv")).expect("movies");
    assert_eq!(movies.lines().count(), 3);
    let rates = std::fs::read_to_string(merged.join("merged_site_rates.csv")).expect("rates");
    let pooled: Vec<&str> = rates
        .lines()
        .filter(|l| l.contains("pooled over 2 movies"))
        .collect();
    assert!(pooled.iter().any(|l| l.starts_with("sputter,")), "{rates}");
    // The pooled rate is total events over total exposure.
    let cells = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    let per: Vec<Vec<String>> = rates
        .lines()
        .filter(|l| l.starts_with("hop,m"))
        .map(cells)
        .collect();
    if let Some(p) = rates
        .lines()
        .find(|l| l.starts_with("hop,pooled"))
        .map(cells)
    {
        let sum = |k: usize| {
            per.iter()
                .map(|r| r[k].parse::<f64>().expect("n"))
                .sum::<f64>()
        };
        let expect = sum(5) / sum(6);
        let got: f64 = p[2].parse().expect("rate");
        assert!(
            (got - expect).abs() <= 1e-6 + 1e-3 * expect,
            "{got} vs {expect}"
        );
    }
    assert!(merged.join("merged.png").exists());
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    n.children()
        .find(|c| c.has_tag_name(name))
        .unwrap_or_else(|| panic!("{name} in {}", n.tag_name().name()))
}

/// tracks.xml has TrackMate's structure; the napari table and the hyperstack match it.
fn trackmate_napari_imagej(dir: &Path) {
    let xml = std::fs::read_to_string(dir.join("tracks.xml")).expect("tracks.xml");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "TrackMate");
    let model = child(root, "Model");
    assert_eq!(model.attribute("spatialunits"), Some("nm"));
    assert_eq!(model.attribute("timeunits"), Some("s"));
    let spots: Vec<roxmltree::Node> = child(model, "AllSpots")
        .descendants()
        .filter(|n| n.has_tag_name("Spot"))
        .collect();
    assert_eq!(
        child(model, "AllSpots")
            .attribute("nspots")
            .and_then(|v| v.parse().ok()),
        Some(spots.len())
    );
    let ids: std::collections::HashSet<&str> =
        spots.iter().filter_map(|s| s.attribute("ID")).collect();
    for s in &spots {
        for a in [
            "POSITION_X",
            "POSITION_Y",
            "POSITION_T",
            "FRAME",
            "RADIUS",
            "QUALITY",
        ] {
            let v: f64 = s.attribute(a).expect(a).parse().expect("number");
            assert!(v.is_finite() && v >= 0.0, "{a} = {v}");
        }
    }
    let tracks: Vec<roxmltree::Node> = child(model, "AllTracks")
        .children()
        .filter(|n| n.has_tag_name("Track"))
        .collect();
    assert!(!tracks.is_empty(), "the movie has tracks");
    for t in &tracks {
        let edges: Vec<roxmltree::Node> = t.children().filter(|n| n.has_tag_name("Edge")).collect();
        let n: usize = t.attribute("NUMBER_SPOTS").expect("n").parse().expect("n");
        assert_eq!(edges.len() + 1, n);
        for e in edges {
            assert!(ids.contains(e.attribute("SPOT_SOURCE_ID").expect("source")));
            assert!(ids.contains(e.attribute("SPOT_TARGET_ID").expect("target")));
        }
    }
    let filtered = child(model, "FilteredTracks")
        .children()
        .filter(|n| n.has_tag_name("TrackID"))
        .count();
    assert_eq!(filtered, tracks.len());
    let image = child(child(root, "Settings"), "ImageData");
    assert_eq!(image.attribute("width"), Some("256"));
    assert_eq!(image.attribute("nframes"), Some("4"));
    let px: f64 = image
        .attribute("pixelwidth")
        .expect("px")
        .parse()
        .expect("px");
    assert!((px - 0.0125).abs() < 1e-9, "{px}");

    let points = std::fs::read_to_string(dir.join("points_napari.csv")).expect("napari");
    let mut lines = points.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("index,axis-0,axis-1,axis-2,")
    );
    assert_eq!(lines.count(), spots.len());

    let stack = std::fs::read(dir.join("movie_labels.tif")).expect("hyperstack");
    let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(stack)).expect("tiff");
    let desc = dec
        .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
        .expect("description");
    assert!(
        desc.contains("channels=2") && desc.contains("frames=4"),
        "{desc}"
    );
}
