//! Checkpoints under the reference's key names.
//!
//! Reading goes through `torch-checkpoint` (safetensors, or PyTorch `.pt`/`.pth` parsed as data,
//! with `state_dict`/`model` wrappers and `module.` prefixes removed). Backbone files in the
//! published layouts (open_clip `visual.*`/`text.*`, OpenAI CLIP with its text tower at the top
//! level, open_clip timm `visual.trunk.*` for BiomedCLIP, HF transformers `CLIPModel`) are renamed
//! to MedCLIPSeg's `vision_model.*` and `text_model.*` by [`clip_encoders::layouts`]. Writing produces safetensors with the same key names, so a checkpoint of
//! ours loads in the reference code too; string metadata (config, tokenizer) rides along.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use clip_encoders::{HostTensor, TowerPrefixes, WeightMap};
use torch_checkpoint::{RawTensor, StateDict};

use crate::config::MedClipSegConfig;
use crate::model::{LoadScope, MedClipSeg};
use crate::switches::MODEL_CONFIG_LAYOUT;

/// Metadata key holding the model config (JSON) in our checkpoints.
pub const META_MODEL_CONFIG: &str = "medclipseg.model_config";
/// Metadata key: the layout of [`META_MODEL_CONFIG`] ([`crate::MODEL_CONFIG_LAYOUT`]). Absent in
/// checkpoints written up to main 7c039c3, which are layout 1.
pub const META_MODEL_CONFIG_VERSION: &str = "medclipseg.model_config.version";

/// Problems with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Read(#[from] torch_checkpoint::Error),
    /// A tensor could not be converted to f32.
    #[error("{path}: tensor {key}: {message}")]
    Tensor {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The tensors do not fit the model.
    #[error(transparent)]
    Mismatch(#[from] clip_encoders::LoadError),
    /// The model config stored in the file is missing or invalid.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads a checkpoint of any supported format.
pub fn read(path: &Path) -> Result<StateDict, CheckpointError> {
    Ok(torch_checkpoint::load(path)?)
}

/// Converts a state dict to f32 tensors under MedCLIPSeg's names.
pub fn weight_map(sd: &StateDict) -> Result<WeightMap, CheckpointError> {
    let mut map = WeightMap::new(sd.source().display().to_string());
    for (key, tensor) in sd.iter() {
        if !tensor.dtype().is_float() {
            // Integer buffers (e.g. BERT position ids) carry no weights.
            continue;
        }
        map.insert(
            key.to_string(),
            HostTensor::new(tensor.shape().to_vec(), tensor.to_f32_vec()),
        );
    }
    let (map, _layout) = clip_encoders::to_tower_names(map, MEDCLIPSEG_TOWERS)?;
    Ok(map)
}

/// `sd` with the `clip_model.*` aliases of an official CLIP/PubMedCLIP MedCLIPSeg checkpoint
/// folded onto the towers' names, dtypes kept: an alias equal (bit for bit) to its twin is
/// dropped, one without a twin takes the twin's name, one that differs is refused naming both.
/// What `import` writes when it is given no model config to load into.
pub fn fold_aliases(mut sd: StateDict) -> Result<StateDict, CheckpointError> {
    let aliases: Vec<(String, String)> = sd
        .keys()
        .filter_map(|k| {
            Some((
                k.to_string(),
                clip_encoders::layouts::alias_twin(k, MEDCLIPSEG_TOWERS)?,
            ))
        })
        .collect();
    for (alias, twin) in aliases {
        let Some(tensor) = sd.take(&alias) else {
            continue;
        };
        match sd.get(&twin) {
            Some(kept) if *kept != tensor => {
                return Err(clip_encoders::LoadError::AliasMismatch {
                    source_name: sd.source().display().to_string(),
                    alias,
                    twin,
                    difference: format!(
                        "they differ ({:?} {:?} vs {:?} {:?})",
                        tensor.dtype(),
                        tensor.shape(),
                        kept.dtype(),
                        kept.shape()
                    ),
                }
                .into());
            }
            Some(_) => {}
            None => {
                sd.insert(twin, tensor);
            }
        }
    }
    Ok(sd)
}

/// The prefixes MedCLIPSeg gives its towers.
const MEDCLIPSEG_TOWERS: TowerPrefixes<'static> = TowerPrefixes {
    vision: "vision_model",
    text: "text_model",
};

/// Builds `config`'s model and fills it from `path` (strict: every tensor must be used).
pub fn load_model<B: Backend>(
    config: &MedClipSegConfig,
    path: &Path,
    scope: LoadScope,
    device: &B::Device,
) -> Result<MedClipSeg<B>, CheckpointError> {
    let sd = read(path)?;
    let weights = weight_map(&sd)?;
    let model = config
        .init::<B>(device)
        .load_weights(&weights, scope, device);
    weights.finish(scope == LoadScope::Full)?;
    Ok(model)
}

/// The model config stored in one of our checkpoints.
pub fn stored_config(sd: &StateDict) -> Result<MedClipSegConfig, CheckpointError> {
    let path = sd.source().display().to_string();
    let text = sd.metadata().get(META_MODEL_CONFIG).ok_or_else(|| CheckpointError::Config {
        path: path.clone(),
        message: format!(
            "no `{META_MODEL_CONFIG}` metadata: pass the model config explicitly (--model-config)"
        ),
    })?;
    let invalid = |e: String| CheckpointError::Config {
        path: path.clone(),
        message: format!("invalid stored model config: {e}"),
    };
    let layout = match sd.metadata().get(META_MODEL_CONFIG_VERSION) {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| invalid(format!("version {v:?} is not a number")))?,
    };
    if layout > MODEL_CONFIG_LAYOUT {
        return Err(invalid(format!(
            "layout {layout} was written by a newer medclipseg (this one reads up to \
             {MODEL_CONFIG_LAYOUT})"
        )));
    }
    let config = serde_json::from_str(text)
        .and_then(MedClipSegConfig::from_value)
        .map_err(|e| invalid(e.to_string()))?;
    config.validate().map_err(|e| CheckpointError::Config {
        path,
        message: format!("invalid stored model config: {e}"),
    })?;
    Ok(config)
}

/// The model's tensors (reference names) plus string metadata, as a state dict.
pub fn to_state_dict<B: Backend>(
    model: &MedClipSeg<B>,
    config: &MedClipSegConfig,
    metadata: &BTreeMap<String, String>,
) -> Result<StateDict, CheckpointError> {
    let mut sd = StateDict::new("(in memory)");
    for (key, tensor) in model.state_dict() {
        let raw = RawTensor::from_f32(tensor.shape.clone(), &tensor.data).map_err(|e| {
            CheckpointError::Tensor {
                path: "(in memory)".into(),
                key: key.clone(),
                message: e.to_string(),
            }
        })?;
        sd.insert(key, raw);
    }
    let meta = sd.metadata_mut();
    meta.extend(metadata.clone());
    meta.insert(
        META_MODEL_CONFIG.to_string(),
        serde_json::to_string(config).unwrap_or_default(),
    );
    meta.insert(
        META_MODEL_CONFIG_VERSION.to_string(),
        MODEL_CONFIG_LAYOUT.to_string(),
    );
    Ok(sd)
}

/// Writes the model as safetensors (atomically: a temporary file renamed into place).
pub fn save<B: Backend>(
    model: &MedClipSeg<B>,
    config: &MedClipSegConfig,
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let sd = to_state_dict(model, config, metadata)?;
    torch_checkpoint::save_safetensors(path, &sd)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use clip_encoders::{BertConfig, TextConfig, VisionConfig};

    /// A BiomedCLIP-shaped model at micro size: timm ViT and BERT, two layers each.
    fn tiny_biomedclip() -> MedClipSegConfig {
        let vision = VisionConfig::new(32, 8, 32, 2, 2, 64, 32)
            .with_activation(clip_encoders::Activation::Gelu)
            .with_patch_bias(Some(true))
            .with_pre_norm(Some(false))
            .with_layer_norm_eps(Some(1e-6));
        let text = BertConfig::new(64, 32, 2, 2, 64, 16, 32);
        MedClipSegConfig::new(vision, TextConfig::Bert(text))
            .with_adapter_dim(16)
            .with_adapter_layers(vec![1])
    }

    /// BiomedCLIP's open_clip name for one of our tower keys.
    fn biomedclip_name(native: &str) -> Option<(String, bool)> {
        if let Some(rest) = native.strip_prefix("text_model.") {
            return Some((format!("text.{rest}"), false));
        }
        let rest = native.strip_prefix("vision_model.")?;
        let renamed = match rest {
            "conv1.weight" => "trunk.patch_embed.proj.weight".to_string(),
            "conv1.bias" => "trunk.patch_embed.proj.bias".to_string(),
            "class_embedding" => "trunk.cls_token".to_string(),
            "positional_embedding" => "trunk.pos_embed".to_string(),
            "ln_post.weight" => "trunk.norm.weight".to_string(),
            "ln_post.bias" => "trunk.norm.bias".to_string(),
            "proj" => return Some(("visual.head.proj.weight".into(), true)),
            block => {
                let block = block.strip_prefix("transformer.resblocks.")?;
                let (index, leaf) = block.split_once('.')?;
                let leaf = leaf
                    .replace("ln_1", "norm1")
                    .replace("ln_2", "norm2")
                    .replace("in_proj_", "qkv.")
                    .replace("out_proj", "proj")
                    .replace("c_fc", "fc1")
                    .replace("c_proj", "fc2");
                format!("trunk.blocks.{index}.{leaf}")
            }
        };
        Some((format!("visual.{renamed}"), false))
    }

    #[test]
    fn a_biomedclip_backbone_file_fills_both_towers() {
        let config = tiny_biomedclip();
        let device = Default::default();
        let model = config.init::<Flex>(&device);
        let mut sd = StateDict::new("biomedclip.bin");
        let mut expected = BTreeMap::new();
        for (i, (key, t)) in model.state_dict().into_iter().enumerate() {
            let Some((name, transpose)) = biomedclip_name(&key) else {
                continue;
            };
            // Distinct values everywhere (fresh LayerNorms are all ones and zeros).
            let values: Vec<f32> = (0..t.data.len())
                .map(|j| (i * 31 + j) as f32 * 1e-3)
                .collect();
            let (shape, stored) = match (transpose, &t.shape[..]) {
                (true, &[rows, cols]) => {
                    let mut out = vec![0.0; values.len()];
                    for r in 0..rows {
                        for c in 0..cols {
                            out[c * rows + r] = values[r * cols + c];
                        }
                    }
                    (vec![cols, rows], out)
                }
                _ if name.ends_with("cls_token") || name.ends_with("pos_embed") => {
                    let mut shape = vec![1; 3 - t.shape.len()];
                    shape.extend(&t.shape);
                    (shape, values.clone())
                }
                _ => (t.shape.clone(), values.clone()),
            };
            sd.insert(name, RawTensor::from_f32(shape, &stored).unwrap());
            expected.insert(key, values);
        }
        sd.insert("logit_scale", RawTensor::from_f32(vec![], &[4.6]).unwrap());
        assert!(
            sd.keys()
                .any(|k| k == "visual.trunk.blocks.1.attn.qkv.weight")
        );
        assert!(
            sd.keys()
                .any(|k| k == "text.transformer.encoder.layer.1.output.dense.weight")
        );

        let weights = weight_map(&sd).unwrap();
        let loaded =
            config
                .init::<Flex>(&device)
                .load_weights(&weights, LoadScope::Encoders, &device);
        weights.finish(true).unwrap();
        for (key, t) in loaded.state_dict() {
            if let Some(values) = expected.get(&key) {
                assert_eq!(&t.data, values, "{key}");
            }
        }
        assert_eq!(
            expected.len(),
            loaded
                .state_dict()
                .iter()
                .filter(|(k, _)| k.contains("_model."))
                .count()
        );
    }

    #[test]
    fn import_folds_the_clip_model_aliases_keeping_the_stored_dtypes() {
        let mut sd = StateDict::new("custom_clip.pt");
        let value = |x: f32| RawTensor::from_f32(vec![2], &[x, 1.0]).unwrap();
        sd.insert("vision_model.ln_post.bias", value(0.5));
        sd.insert("clip_model.visual.ln_post.bias", value(0.5));
        sd.insert("clip_model.token_embedding.weight", value(3.0));
        sd.insert("mask_head.0.bias", value(7.0));
        let folded = fold_aliases(sd).unwrap();
        let mut keys: Vec<&str> = folded.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "mask_head.0.bias",
                "text_model.token_embedding.weight",
                "vision_model.ln_post.bias"
            ]
        );
        assert_eq!(
            folded.get("text_model.token_embedding.weight"),
            Some(&value(3.0))
        );

        let mut differing = StateDict::new("custom_clip.pt");
        differing.insert("text_model.ln_final.weight", value(0.5));
        differing.insert("clip_model.ln_final.weight", value(0.25));
        let err = fold_aliases(differing).unwrap_err().to_string();
        assert!(err.contains("custom_clip.pt"), "{err}");
        assert!(err.contains("clip_model.ln_final.weight"), "{err}");
        assert!(err.contains("text_model.ln_final.weight"), "{err}");
    }

    #[test]
    fn the_model_config_is_stored_with_its_layout_and_a_newer_one_is_refused() {
        let config = MedClipSegConfig::micro();
        let model = config.init::<Flex>(&Default::default());
        let mut sd = to_state_dict(&model, &config, &BTreeMap::new()).unwrap();
        assert_eq!(
            sd.metadata()
                .get(META_MODEL_CONFIG_VERSION)
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(stored_config(&sd).unwrap().to_string(), config.to_string());
        sd.metadata_mut()
            .insert(META_MODEL_CONFIG_VERSION.into(), "3".into());
        let err = stored_config(&sd).unwrap_err().to_string();
        assert!(err.contains("layout 3") && err.contains("newer"), "{err}");
    }

    #[test]
    fn the_biomedclip_preset_has_the_timm_tower() {
        let config = MedClipSegConfig::preset("biomedclip-vit-b16").unwrap();
        assert!(config.vision.has_patch_bias());
        assert!(!config.vision.has_pre_norm());
        assert_eq!(config.vision.norm_eps(), 1e-6);
        assert_eq!(config.vision.activation, clip_encoders::Activation::Gelu);
    }
}
