//! Format detection plus every reader and the validation, as `defectscope info` runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = defectscope::movie::from_bytes(Path::new("fuzz"), data);
});
