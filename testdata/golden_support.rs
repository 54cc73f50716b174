//! Test support shared by the parity tests of several crates (included with `#[path]`):
//! reads the golden files of `testdata/golden/tiny` (copied from the reference run, see its
//! manifest) and compares tensors with the manifest's tolerances.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use clip_encoders::{HostTensor, WeightMap};

/// `testdata/golden/tiny` of this repository, or `MEDCLIPSEG_GOLDEN_DIR` (a test binary built on
/// one machine and run on another, e.g. a GPU machine without a Rust toolchain).
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("MEDCLIPSEG_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/tiny"),
    }
}

/// `MEDCLIPSEG_GOLDEN_REPORT_ONLY=1`: print every comparison and fail none (to measure how far
/// a mode known to be imprecise, such as TF32 matmuls, lands from the golden).
fn report_only() -> bool {
    std::env::var("MEDCLIPSEG_GOLDEN_REPORT_ONLY").is_ok_and(|v| v == "1")
}

/// The golden files of a backbone variant (`testdata/golden/<variant>`: clip, pubmedclip,
/// biomedclip), beside the tiny UniMedCLIP ones (also below `MEDCLIPSEG_GOLDEN_DIR/..`).
pub fn variant_dir(variant: &str) -> PathBuf {
    golden_dir().join("..").join(variant)
}

/// Every tensor of a golden safetensors file, as f32 (integer tensors converted).
pub fn read(file: &str) -> BTreeMap<String, HostTensor> {
    read_path(&golden_dir().join(file))
}

/// [`read`] for a file anywhere.
pub fn read_path(path: &std::path::Path) -> BTreeMap<String, HostTensor> {
    let path = path.to_path_buf();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("golden safetensors");
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                safetensors::Dtype::U8 => data.iter().map(|&b| b as f32).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, HostTensor::new(view.shape().to_vec(), values))
        })
        .collect()
}

/// The golden model's state dict as a [`WeightMap`].
pub fn model_weights() -> WeightMap {
    let mut map = WeightMap::new("tiny_model.safetensors");
    for (key, tensor) in read("tiny_model.safetensors") {
        map.insert(key, tensor);
    }
    map
}

/// Asserts `|a - b| <= abs + rel·|b|` element-wise, reporting the worst element.
pub fn assert_close(name: &str, actual: &[f32], expected: &HostTensor, abs: f32, rel: f32) {
    assert_eq!(
        actual.len(),
        expected.data.len(),
        "{name}: {} values, expected {} (shape {:?})",
        actual.len(),
        expected.data.len(),
        expected.shape
    );
    let mut worst = (0usize, 0f32);
    let (mut max_diff, mut scale) = (0f32, 0f32);
    for (i, (&a, &e)) in actual.iter().zip(&expected.data).enumerate() {
        let excess = (a - e).abs() - (abs + rel * e.abs());
        if excess > worst.1 || !a.is_finite() {
            worst = (i, excess.max(f32::MIN_POSITIVE));
        }
        max_diff = max_diff.max((a - e).abs());
        scale = scale.max(e.abs());
    }
    // Seen with `--nocapture`: the error of each compared tensor, in absolute terms and
    // relative to the tensor's largest value.
    println!(
        "golden {name}: max |actual - expected| {max_diff:.3e} ({:.3e} of max |expected| {scale:.3e})",
        max_diff / scale.max(f32::MIN_POSITIVE)
    );
    if report_only() {
        return;
    }
    assert!(
        worst.1 <= 0.0,
        "{name}: element {} is {} but expected {} (abs {abs}, rel {rel})",
        worst.0,
        actual[worst.0],
        expected.data[worst.0]
    );
}
