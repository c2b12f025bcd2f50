//! The project loader on an arbitrary project.json: an error is fine, a panic is not, and the
//! files it names always lie inside the project folder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // One folder per fuzzing process, rewritten for every input.
    let dir = std::env::temp_dir().join(format!("defectscope-fuzz-project-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join(defectscope::project::PROJECT_FILE), data).is_err()
    {
        return;
    }
    if let Ok(file) = defectscope::project::read(&dir) {
        let p = file.paths(&dir);
        for path in [&p.model, &p.mask, &p.detections, &p.analysed] {
            assert!(path.starts_with(&dir), "{}", path.display());
        }
    }
});
