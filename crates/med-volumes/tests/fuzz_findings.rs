//! Inputs the `dicom` fuzz target found (fuzz/found/dicom, fuzz/README.md), replayed through
//! `read_dicom` and `open_input`: each must give a clear error naming the file (or a correct
//! read), and return at all. The readers run in a thread with a generous deadline only so that a
//! regression fails this test instead of hanging the suite; it is not a timing.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use med_volumes::{Input, InputOptions, VolumeError, open_input, read_dicom};

/// Far above what any of these inputs needs (milliseconds); a hang guard, not a benchmark.
const HANG_GUARD: Duration = Duration::from_secs(20);

fn finding(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/found/dicom")
        .join(name)
}

/// Runs `read` on a copy of `input` in a thread; panics when it has not returned in time.
fn replay<T: Send + 'static>(
    input: &Path,
    read: impl FnOnce(&Path) -> T + Send + 'static,
) -> (PathBuf, T) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(input.file_name().unwrap());
    std::fs::copy(input, &path).unwrap();
    let (send, receive) = mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let _ = send.send(read(&thread_path));
    });
    let result = receive
        .recv_timeout(HANG_GUARD)
        .unwrap_or_else(|_| panic!("{} did not return within {HANG_GUARD:?}", input.display()));
    // The folder goes when the thread is done with it.
    std::mem::forget(dir);
    (path, result)
}

#[test]
fn a_length_hidden_in_a_deflated_data_set_is_refused_at_once() {
    // Deflated explicit VR little endian; once inflated, an element with an unknown VR whose
    // 4-byte length dicom-rs used to reserve and zero-fill (15 s under the fuzzer).
    let input = finding("timeout-0d69ae74378254a8ad5197d60aa31fa0a461aee4");
    let (path, result) = replay(&input, |p| read_dicom(p, None));
    let err = result.unwrap_err();
    assert!(matches!(err, VolumeError::Dicom { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("declares") && text.contains("remain (truncated or corrupt)"),
        "{text}"
    );
    let (_, result) = replay(&input, |p| {
        open_input(p, &InputOptions::default()).map(|_| ())
    });
    assert!(result.is_err());
}

#[test]
fn the_jpeg2000_seed_reads_as_the_corpus_file_it_is() {
    // testdata/dicom/files/JPEG2000.dcm unchanged: openjp2 0.6.1 trips a debug-assertion
    // precondition on it under the fuzzer (fuzz/README.md); an ordinary build reads it.
    let input = finding("crash-cc57878b86829dd9f6d0fd6f3990b38d83b7acde");
    let (_, result) = replay(&input, |p| open_input(p, &InputOptions::default()));
    let Input::Dicom(dicom) = result.unwrap() else {
        panic!("not read as DICOM");
    };
    assert_eq!(dicom.transfer_syntax, "1.2.840.10008.1.2.4.91");
    assert_eq!(dicom.volume.dims(), [256, 1024, 1]);
}

#[test]
fn a_jpeg2000_codestream_larger_than_the_frame_is_refused_before_decoding() {
    // MR_small_jp2klossless.dcm with bytes changed: the codestream's SIZ no longer matches the
    // 64x64 frame, and dicom-rs's JPEG 2000 adapter panicked writing past its buffer.
    let input = finding("crash-33b4e7e9fc4302f247b7486fb2603ea23eb11fa9");
    let (path, result) = replay(&input, |p| read_dicom(p, None));
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, VolumeError::Codec { .. }) && text.contains(&path.display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("JPEG 2000 codestream declares") && text.contains("64x64"),
        "{text}"
    );
}
