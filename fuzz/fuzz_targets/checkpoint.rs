//! Feeds arbitrary bytes to the whole loader (format detection, zip, legacy stream,
//! safetensors, tensor extraction): it must return `Ok` or `Err`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torch_checkpoint::load_from_bytes(data, "fuzz-input");
});
