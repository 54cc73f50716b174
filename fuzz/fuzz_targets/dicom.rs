//! Feeds arbitrary bytes to the DICOM reader (content sniffing, preamble / meta group / bare
//! data set, functional groups, pixel decoding and conversion) as a file: it must return `Ok`
//! or `Err`, never panic. The reader takes paths, so each input is written to one temp file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("med-volumes-fuzz-dicom-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = med_volumes::read_dicom(&path, None);
    }
});
