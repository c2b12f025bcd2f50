//! The CSV tables a user hands in: truth (`--truth`) and detections (`study`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = defectscope::synth::parse_truth_csv(text);
        let _ = defectscope::detect::parse_detections_csv(text);
    }
});
