//! Feeds arbitrary bytes to the pickle reader: it must return `Ok` or `Err`, never panic,
//! hang, or allocate far beyond the input size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torch_checkpoint::pickle::parse(data);
});
