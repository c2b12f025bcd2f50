//! The ndata reader on arbitrary bytes: an error is fine, a panic, hang or huge allocation is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = defectscope::movie::read_ndata(
        Path::new("fuzz"),
        data,
        &defectscope::jobs::JobCtx::detached(),
    );
});
