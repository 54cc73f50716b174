//! Feeds arbitrary bytes to the NIfTI-1 / NIfTI-2 readers (header size sniffing, gzip, 4-D
//! splitting) as a file without a name hint: `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("med-volumes-fuzz-nifti-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = med_volumes::read_nifti_volumes(&path, Some(med_volumes::VolumeIndex::All));
    }
});
