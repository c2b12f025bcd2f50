use super::*;
use crate::raster::Raster;

fn session() -> Session {
    Session::new(Settings::default(), Arc::new(|| {}))
}

#[test]
fn painting_sets_and_clears_a_disk() {
    let mut s = session();
    s.movie = Some(Arc::new(Movie {
        frames: vec![Raster::zeros(20, 10)],
        calibration: Default::default(),
        acquisition: Default::default(),
        source: PathBuf::from("test"),
        format: "test".into(),
    }));
    s.apply(Command::Paint {
        x: 5.0,
        y: 5.0,
        radius: 2.0,
        on: true,
    });
    assert_eq!(s.mask.iter().filter(|&&m| m).count(), 13);
    assert!(s.mask_edited);
    s.apply(Command::Paint {
        x: 5.0,
        y: 5.0,
        radius: 1.0,
        on: false,
    });
    assert_eq!(s.mask.iter().filter(|&&m| m).count(), 8);
    // Off the frame: nothing happens, nothing panics.
    s.apply(Command::Paint {
        x: -50.0,
        y: 500.0,
        radius: 3.0,
        on: true,
    });
    assert_eq!(s.mask.iter().filter(|&&m| m).count(), 8);
}

#[test]
fn stages_out_of_order_are_notices_not_jobs() {
    let mut s = session();
    for c in [
        Command::Label,
        Command::Train,
        Command::Detect,
        Command::Analyse,
    ] {
        s.apply(c);
        assert!(!s.busy());
    }
    assert_eq!(s.notices.len(), 1, "one notice, not four: {:?}", s.notices);
}

#[test]
fn invalid_settings_are_a_hint_and_no_job() {
    let mut s = session();
    s.movie = Some(Arc::new(Movie {
        frames: vec![Raster::zeros(32, 32); 2],
        calibration: Default::default(),
        acquisition: Default::default(),
        source: PathBuf::from("test"),
        format: "test".into(),
    }));
    s.mask = vec![false; 32 * 32];
    // Crops larger than the frame, a threshold outside (0, 1), zero classes.
    s.settings.chain.train.crop = 64;
    s.apply(Command::Train);
    assert!(!s.busy());
    s.detected = Some(Arc::new(Detected::default()));
    s.settings.chain.analysis.classes = crate::analysis::classify::ClassCount::Fixed(0);
    s.apply(Command::Analyse);
    assert!(!s.busy());
    let texts: Vec<&str> = s.notices.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts.iter().all(|t| t.starts_with("not started:")),
        "{texts:?}"
    );
    assert!(texts[0].contains("crop"), "{texts:?}");
}

#[test]
fn a_bad_movie_is_one_error_notice() {
    let mut s = session();
    let dir = tempfile::tempdir().expect("dir");
    let p = dir.path().join("broken.tif");
    std::fs::write(&p, b"II*\0garbage").expect("write");
    s.apply(Command::OpenMovie(p));
    s.wait();
    assert!(s.movie.is_none());
    assert_eq!(s.notices.len(), 1);
    assert_eq!(s.notices[0].level, Level::Error);
    assert!(s.notices[0].text.contains("broken.tif"), "{:?}", s.notices);
}

#[test]
fn filter_keeps_by_score_and_area() {
    let f = DetectionFilter {
        min_score: 0.6,
        min_area_px: 5,
        max_area_px: 20,
    };
    let d = |score, area| Detection {
        frame: 0,
        x: 1.0,
        y: 1.0,
        area,
        score,
    };
    assert!(f.keeps(&d(0.7, 10)));
    assert!(!f.keeps(&d(0.5, 10)));
    assert!(!f.keeps(&d(0.7, 4)));
    assert!(!f.keeps(&d(0.7, 21)));
}

/// A repeated message is one notice with a count; every message stays in the log; info and
/// warnings fade, errors stay until dismissed.
#[test]
fn notices_group_repeats_fade_and_are_logged() {
    let mut s = session();
    for _ in 0..3 {
        s.notify(Level::Warning, "class 7: 1 members are too few for a PCA");
    }
    s.notify(Level::Info, "model ready");
    s.notify(Level::Error, "could not read the movie");
    assert_eq!(s.notices.len(), 3, "{:?}", s.notices);
    let repeated = s
        .notices
        .iter()
        .find(|n| n.text.starts_with("class 7"))
        .expect("grouped");
    assert_eq!(repeated.count, 3);
    assert_eq!(s.log.len(), 5);
    s.expire_notices(0.0, 0.0);
    assert_eq!(s.notices.len(), 1);
    assert_eq!(s.notices[0].level, Level::Error);
    s.apply(Command::DismissAll);
    assert!(s.notices.is_empty());
    assert_eq!(s.log.len(), 5, "the log keeps what was dismissed");
}

/// Opening another movie over a session with work saves that work first, as a project that
/// says what it held, and says where.
#[test]
fn work_is_kept_before_opening_something_else() {
    let keep = tempfile::tempdir().expect("dir");
    let mut s = session();
    s.keep_dir = Some(keep.path().to_path_buf());
    s.apply(Command::OpenDemo);
    while s.busy() {
        s.wait();
    }
    assert!(!s.has_work());
    s.apply(Command::Paint {
        x: 20.0,
        y: 20.0,
        radius: 3.0,
        on: true,
    });
    assert!(s.has_work());
    s.apply(Command::OpenDemo);
    while s.busy() {
        s.wait();
    }
    let kept: Vec<PathBuf> = std::fs::read_dir(keep.path())
        .expect("kept")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let file = project::read(&kept[0]).expect("a project");
    assert!(file.mask_edited);
    assert!(
        s.notices
            .iter()
            .any(|n| n.text.contains(&kept[0].display().to_string())),
        "{:?}",
        s.notices
    );
    assert!(!s.mask_edited, "the new movie starts clean");
}
