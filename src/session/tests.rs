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
