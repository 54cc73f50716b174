//! Our portable checkpoints: safetensors with the model config, the run config and the BERT
//! vocabulary in the metadata, so that one file is all `predict` needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_datasets::{ChannelOrder, PreprocessConfig};
use medclipseg_model::checkpoint::{self as model_checkpoint, CheckpointError};
use medclipseg_model::{LoadScope, MedClipSeg, MedClipSegConfig};

use crate::error::{PipelineError, Result};

/// Metadata key: the run config (JSON) the model was trained with.
pub const META_RUN_CONFIG: &str = "medclipseg.run_config";
/// Metadata key: the tokenizer vocabulary text.
pub const META_VOCAB: &str = "medclipseg.tokenizer.vocab";
/// Metadata key: the vocabulary's file name.
pub const META_VOCAB_FILE: &str = "medclipseg.tokenizer.file";

/// A BERT vocabulary (`vocab.txt` text) held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// File name it had (`vocab.txt`), used when it is written out again.
    pub file_name: String,
    /// One token a line.
    pub text: String,
    /// Where it came from, for error messages.
    pub origin: String,
}

impl Vocabulary {
    /// Reads a `vocab.txt` (or `tokenizer.json`) file; its name is kept for writing it out
    /// again.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("vocab.txt")
            .to_string();
        Ok(Self {
            file_name,
            text,
            origin: path.display().to_string(),
        })
    }
}

/// A model read from a checkpoint, with what came along in its metadata.
pub struct LoadedModel<B: Backend> {
    /// The model.
    pub model: MedClipSeg<B>,
    /// Its config.
    pub config: MedClipSegConfig,
    /// The run config it was trained with (the app's `RunConfig` as JSON), when stored.
    pub run_config: Option<serde_json::Value>,
    /// The BERT vocabulary, when stored.
    pub vocabulary: Option<Vocabulary>,
    /// The file read.
    pub path: PathBuf,
}

impl<B: Backend> LoadedModel<B> {
    /// Reads one of our checkpoints (the model config is stored inside).
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        Self::load_with_config(path, None, device)
    }

    /// Reads a checkpoint; `model_config` is needed for a reference state dict, which stores none.
    pub fn load_with_config(
        path: impl AsRef<Path>,
        model_config: Option<MedClipSegConfig>,
        device: &B::Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let failed = |source: CheckpointError| PipelineError::Checkpoint {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let sd = model_checkpoint::read(path).map_err(failed)?;
        let config = match model_config {
            Some(c) => c,
            None => model_checkpoint::stored_config(&sd).map_err(failed)?,
        };
        let weights = model_checkpoint::weight_map(&sd).map_err(failed)?;
        let model = config
            .init::<B>(device)
            .load_weights(&weights, LoadScope::Full, device);
        weights
            .finish(true)
            .map_err(|e| failed(CheckpointError::Mismatch(e)))?;
        let meta = sd.metadata();
        let run_config = meta
            .get(META_RUN_CONFIG)
            .and_then(|t| serde_json::from_str(t).ok());
        let vocabulary = meta.get(META_VOCAB).map(|text| Vocabulary {
            file_name: meta
                .get(META_VOCAB_FILE)
                .cloned()
                .unwrap_or_else(|| "vocab.txt".into()),
            text: text.clone(),
            origin: format!("{} (stored vocabulary)", path.display()),
        });
        Ok(Self {
            model,
            config,
            run_config,
            vocabulary,
            path: path.to_path_buf(),
        })
    }

    /// The preprocessing used at inference: the run config's `dataset.size` (0 = the model's
    /// image size) and `dataset.channel_order`; the reference's (BGR, ImageNet statistics)
    /// when no run config is stored.
    pub fn inference_preprocess(&self) -> PreprocessConfig {
        inference_preprocess(self.run_config.as_ref(), self.config.image_size())
    }
}

/// [`LoadedModel::inference_preprocess`] from a run config's JSON.
pub fn inference_preprocess(
    run_config: Option<&serde_json::Value>,
    image_size: usize,
) -> PreprocessConfig {
    let dataset = run_config.and_then(|c| c.get("dataset"));
    let size = dataset
        .and_then(|d| d.get("size"))
        .and_then(serde_json::Value::as_u64)
        .map_or(0, |s| s as usize);
    let rgb = dataset
        .and_then(|d| d.get("channel_order"))
        .and_then(serde_json::Value::as_str)
        == Some("rgb");
    PreprocessConfig {
        size: if size == 0 { image_size } else { size },
        channel_order: if rgb {
            ChannelOrder::Rgb
        } else {
            ChannelOrder::Bgr
        },
        augmentation: med_datasets::Augmentation::none(),
        ..PreprocessConfig::default()
    }
}

/// Writes `model` as one of our checkpoints (atomically): its config, plus `run_config` and
/// `vocabulary` when given, travel in the metadata, so [`LoadedModel::load`] needs nothing else.
pub fn save_checkpoint<B: Backend>(
    path: impl AsRef<Path>,
    model: &MedClipSeg<B>,
    config: &MedClipSegConfig,
    run_config: Option<&serde_json::Value>,
    vocabulary: Option<&Vocabulary>,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut meta = extra.clone();
    if let Some(run_config) = run_config {
        meta.insert(META_RUN_CONFIG.into(), run_config.to_string());
    }
    if let Some(vocabulary) = vocabulary {
        meta.insert(META_VOCAB.into(), vocabulary.text.clone());
        meta.insert(META_VOCAB_FILE.into(), vocabulary.file_name.clone());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PipelineError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    model_checkpoint::save(model, config, &meta, path).map_err(|source| PipelineError::Checkpoint {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessing_follows_the_stored_run_config() {
        let paper = inference_preprocess(None, 224);
        assert_eq!((paper.size, paper.channel_order), (224, ChannelOrder::Bgr));
        let run = serde_json::json!({"dataset": {"size": 0, "channel_order": "rgb"}});
        let p = inference_preprocess(Some(&run), 32);
        assert_eq!((p.size, p.channel_order), (32, ChannelOrder::Rgb));
        let run = serde_json::json!({"dataset": {"size": 48, "channel_order": "bgr"}});
        assert_eq!(inference_preprocess(Some(&run), 32).size, 48);
    }
}
