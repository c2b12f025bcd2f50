//! The project loader on an arbitrary project.json: an error is fine, a panic is not, and the
//! files it names always lie inside the project folder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if std::fs::write(dir.path().join(defectscope::project::PROJECT_FILE), data).is_err() {
        return;
    }
    if let Ok(file) = defectscope::project::read(dir.path()) {
        let p = file.paths(dir.path());
        for path in [&p.model, &p.mask, &p.detections, &p.analysed] {
            assert!(path.starts_with(dir.path()), "{}", path.display());
        }
    }
});
