//! Checkpoints under the reference's key names.
//!
//! Reading goes through `torch-checkpoint` (safetensors, or PyTorch `.pt`/`.pth` parsed as data,
//! with `state_dict`/`model` wrappers and `module.` prefixes removed). open_clip backbone files
//! name the towers `visual.*` and `text.*`; they are renamed to MedCLIPSeg's `vision_model.*` and
//! `text_model.*`. Writing produces safetensors with the same key names, so a checkpoint of
//! ours loads in the reference code too; string metadata (config, tokenizer) rides along.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use clip_encoders::{HostTensor, WeightMap};
use torch_checkpoint::{RawTensor, StateDict};

use crate::config::MedClipSegConfig;
use crate::model::{LoadScope, MedClipSeg};

/// Metadata key holding the model config (JSON) in our checkpoints.
pub const META_MODEL_CONFIG: &str = "medclipseg.model_config";

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
    let source = sd.source().display().to_string();
    let mut map = WeightMap::new(source.clone());
    let has_medclipseg_names = sd.keys().any(|k| k.starts_with("vision_model."));
    for (key, tensor) in sd.iter() {
        if !tensor.dtype().is_float() {
            // Integer buffers (e.g. BERT position ids) carry no weights.
            continue;
        }
        let name = if has_medclipseg_names {
            key.to_string()
        } else {
            rename_open_clip(key)
        };
        map.insert(
            name,
            HostTensor::new(tensor.shape().to_vec(), tensor.to_f32_vec()),
        );
    }
    Ok(map)
}

/// open_clip `visual.*` / `text.*` -> MedCLIPSeg `vision_model.*` / `text_model.*`.
fn rename_open_clip(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("visual.") {
        format!("vision_model.{rest}")
    } else if let Some(rest) = key.strip_prefix("text.") {
        format!("text_model.{rest}")
    } else {
        key.to_string()
    }
}

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
    let config: MedClipSegConfig =
        serde_json::from_str(text).map_err(|e| CheckpointError::Config {
            path: path.clone(),
            message: format!("invalid stored model config: {e}"),
        })?;
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
