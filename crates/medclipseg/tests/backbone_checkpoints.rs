//! The official CLIP trainer's `CustomCLIP.state_dict()`, saved as it is (towers twice: under
//! `vision_model.*`/`text_model.*` and again under `clip_model.*`), through the commands: `forward`
//! reproduces the official numbers, `import` writes the canonical layout. The state dict is the
//! golden `testdata/golden/clip` model with the aliases of `clip_keys.json` added back.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clip_encoders::{ClipTextConfig, TextConfig, VisionConfig};
use common::{ok, s};
use medclipseg_model::MedClipSegConfig;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/clip")
}

/// The golden's sizes (`clip_manifest.json`).
fn tiny_clip() -> MedClipSegConfig {
    MedClipSegConfig::new(
        VisionConfig::new(64, 16, 64, 3, 1, 256, 32).with_value_features(Some(true)),
        TextConfig::Clip(ClipTextConfig::new(256, 16, 64, 3, 1, 32)),
    )
    .with_adapter_dim(32)
    .with_adapter_layers(vec![1, 2])
}

/// f32 tensors of a safetensors file: name -> (shape, little-endian bytes).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The official state dict: every canonical tensor plus each alias holding its twin's bytes.
fn write_official_state_dict(path: &Path) {
    let mut all = tensors(&golden_dir().join("clip_model.safetensors"));
    let keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("clip_keys.json")).unwrap(),
    )
    .unwrap();
    for (alias, twin) in keys["aliases"].as_object().unwrap() {
        let value = all[twin.as_str().unwrap()].clone();
        all.insert(alias.clone(), value);
    }
    assert_eq!(all.len(), keys["keys"].as_array().unwrap().len());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .map(|(name, (shape, data))| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn the_official_clip_state_dict_runs_and_imports_as_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let official = tmp.path().join("official_clip.safetensors");
    write_official_state_dict(&official);
    let config = tmp.path().join("tiny_clip.json");
    std::fs::write(&config, serde_json::to_string(&tiny_clip()).unwrap()).unwrap();

    let out = tmp.path().join("forward.safetensors");
    ok(&[
        "forward",
        "--model-config",
        s(&config),
        "--checkpoint",
        s(&official),
        "--inputs",
        s(&golden_dir().join("clip_golden.safetensors")),
        "--out",
        s(&out),
    ]);
    let ours = tensors(&out);
    let gold = tensors(&golden_dir().join("clip_golden.safetensors"));
    for key in ["seg_logits", "txt_vec", "img_tokens"] {
        let (shape, data) = &ours[key];
        let mut actual = floats(data);
        if key == "img_tokens" {
            // Ours keeps the class token first; the official trainer returns the patches.
            let dim = shape[2];
            actual = actual
                .chunks_exact(shape[1] * dim)
                .flat_map(|entry| entry[dim..].to_vec())
                .collect();
        }
        let expected = floats(&gold[key].1);
        assert_eq!(actual.len(), expected.len(), "{key}");
        for (x, y) in actual.iter().zip(&expected) {
            assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{key}: {x} vs {y}");
        }
    }

    let imported = tmp.path().join("imported.safetensors");
    ok(&[
        "import",
        s(&official),
        s(&imported),
        "--model-config",
        s(&config),
    ]);
    // Without a model config too (no load, dtypes kept): one name per tensor.
    let copied = tmp.path().join("copied.safetensors");
    ok(&["import", s(&official), s(&copied)]);
    let golden_model = tensors(&golden_dir().join("clip_model.safetensors"));
    for written in [&imported, &copied] {
        let canonical = tensors(written);
        assert!(canonical.keys().all(|k| !k.starts_with("clip_model.")));
        assert_eq!(
            canonical["text_model.token_embedding.weight"],
            golden_model["clip_model.token_embedding.weight"]
        );
    }
    assert_eq!(tensors(&copied).len(), golden_model.len());
}
