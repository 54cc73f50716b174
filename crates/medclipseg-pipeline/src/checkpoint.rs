//! Our portable checkpoints: safetensors with the model config, the run config and the BERT
//! vocabulary in the metadata, so that one file is all `predict` needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_datasets::PreprocessConfig;
use medclipseg_model::checkpoint::{self as model_checkpoint, CheckpointError};
use medclipseg_model::{LoadScope, MedClipSeg, MedClipSegConfig};

use crate::error::{PipelineError, Result};
use crate::run_config::RunConfig;

/// Metadata key: the run config ([`RunConfig`] as JSON) the model was trained with.
pub const META_RUN_CONFIG: &str = "medclipseg.run_config";
/// Metadata key: the layout version of [`META_RUN_CONFIG`]. Absent in checkpoints written
/// before it existed (up to main 92ff748), which are layout 1.
pub const META_RUN_CONFIG_VERSION: &str = "medclipseg.run_config.version";
/// The run-config layout this build writes. 2: `test.max_batch` may be `null` (the
/// backend's default); layout 1 always had a number there, which layout 2 reads as is.
/// The model switches (`model.*`) are written only when set, where main 7c039c3 and earlier
/// wrote every one, `null` when unset: the same keys and values, read alike by both (a missing
/// key was already `null`), so the layout stays 2.
pub const RUN_CONFIG_VERSION: u32 = 2;
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
    /// The run config it was trained with, when stored.
    pub run_config: Option<RunConfig>,
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
        let failed = |cause: CheckpointError| PipelineError::Checkpoint {
            path: path.to_path_buf(),
            cause: Box::new(cause),
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
        let run_config = stored_run_config(meta, path)?;
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

    /// The preprocessing used at inference: the run config's (see
    /// [`RunConfig::inference_preprocess`]), or the reference's (BGR, ImageNet statistics) at
    /// the model's size when no run config is stored.
    pub fn inference_preprocess(&self) -> PreprocessConfig {
        self.run_config
            .clone()
            .unwrap_or_else(RunConfig::paper)
            .inference_preprocess(self.config.image_size())
    }
}

/// The run config of a checkpoint's metadata, when it has one, read at its layout version.
fn stored_run_config(meta: &BTreeMap<String, String>, path: &Path) -> Result<Option<RunConfig>> {
    let Some(text) = meta.get(META_RUN_CONFIG) else {
        return Ok(None);
    };
    let bad = |reason: String| PipelineError::RunConfig {
        path: path.to_path_buf(),
        reason,
    };
    let version = match meta.get(META_RUN_CONFIG_VERSION) {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| bad(format!("run-config version {v:?} is not a number")))?,
    };
    if version > RUN_CONFIG_VERSION {
        return Err(bad(format!(
            "run-config version {version} was written by a newer medclipseg (this one reads up \
             to {RUN_CONFIG_VERSION})"
        )));
    }
    // `null`: a run of the library with no config of the caller's.
    let value: Option<RunConfig> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

/// Writes `model` as one of our checkpoints (atomically): its config, plus `run_config` and
/// `vocabulary` when given, travel in the metadata, so [`LoadedModel::load`] needs nothing else.
pub fn save_checkpoint<B: Backend>(
    path: impl AsRef<Path>,
    model: &MedClipSeg<B>,
    config: &MedClipSegConfig,
    run_config: Option<&RunConfig>,
    vocabulary: Option<&Vocabulary>,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut meta = extra.clone();
    if let Some(run_config) = run_config {
        let json = serde_json::to_string(run_config).map_err(|source| PipelineError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        meta.insert(META_RUN_CONFIG.into(), json);
        meta.insert(
            META_RUN_CONFIG_VERSION.into(),
            RUN_CONFIG_VERSION.to_string(),
        );
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
    model_checkpoint::save(model, config, &meta, path).map_err(|cause| PipelineError::Checkpoint {
        path: path.to_path_buf(),
        cause: Box::new(cause),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use med_datasets::ChannelOrder;

    /// Written by main 92ff748's code (the `micro` model, `RunConfig::demo()` with
    /// `dataset.size = 32` and `dataset.channel_order = "rgb"`), before the run config had a
    /// version: it must keep loading.
    const LEGACY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/legacy/run_config_v1.safetensors"
    );

    #[test]
    fn a_checkpoint_of_main_92ff748_still_loads_with_its_run_config() {
        let loaded = LoadedModel::<Flex>::load(LEGACY, &Default::default()).unwrap();
        let run = loaded.run_config.clone().expect("a stored run config");
        let mut expected = RunConfig::demo();
        expected.model.preset = "micro".into();
        expected.dataset.channel_order = "rgb".into();
        expected.dataset.size = 32;
        expected.test.max_batch = Some(8);
        assert_eq!(run, expected);
        let p = loaded.inference_preprocess();
        assert_eq!((p.size, p.channel_order), (32, ChannelOrder::Rgb));
        assert!(p.augmentation == med_datasets::Augmentation::none());
        assert_eq!(
            loaded.vocabulary.unwrap().text.lines().last(),
            Some("tumor")
        );
    }

    /// Written by main 7c039c3, the last build with model-config layout 1 (no version key) and
    /// run configs that wrote every switch (`null` when unset); non-default switches.
    /// `testdata/legacy/README.md` says how it, its input and its raw maps were made.
    fn main_7c039c3(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/legacy")
            .join(format!("main_7c039c3_{file}"))
    }

    /// The model config main 7c039c3 was asked for: `micro` with the switches of the README.
    fn main_7c039c3_model() -> MedClipSegConfig {
        use medclipseg_model::{Interaction, ProbAttentionSwitches, PvlAdapterSwitches};
        let attention = ProbAttentionSwitches::new()
            .with_beta(2.0)
            .with_gate_init(-0.02)
            .with_gating(false);
        MedClipSegConfig::micro()
            .with_adapter_layers(vec![0, 1])
            .with_adapter(
                PvlAdapterSwitches::new()
                    .with_attention(attention)
                    .with_interaction(Interaction::Parallel)
                    .with_adapt_text(false),
            )
    }

    #[test]
    fn a_checkpoint_of_main_7c039c3_keeps_its_switches_and_its_predictions() {
        let device = Default::default();
        let loaded = LoadedModel::<Flex>::load(main_7c039c3("micro.safetensors"), &device).unwrap();
        let expected = main_7c039c3_model().to_string();
        assert_eq!(loaded.config.to_string(), expected);
        // The run config's switches: the ones set, the `null`s dropped; they rebuild the model.
        let run = loaded.run_config.clone().expect("a stored run config");
        let set: Vec<&str> = run.model.switches.iter().map(|(name, _)| name).collect();
        assert_eq!(
            set,
            [
                "adapt_text",
                "beta",
                "freeze_encoders",
                "gate_init",
                "gating",
                "interaction",
                "layers"
            ]
        );
        assert_eq!(run.model_config().unwrap().to_string(), expected);

        let predictor = crate::Predictor::new(loaded, &device)
            .unwrap()
            .with_samples(4)
            .with_seed(7)
            .with_noise(crate::NoiseSource::Host);
        let image = crate::read_image(main_7c039c3("input.png")).unwrap();
        let prompt = "a bright round lesion in the upper left";
        let prediction = predictor.predict_image_keyed(&image, prompt, 0).unwrap();
        let raw = torch_checkpoint::load(main_7c039c3("predict_raw.safetensors")).unwrap();
        let then = raw.get("mean_prob").expect("mean_prob").to_f32_vec();
        assert_eq!(prediction.probability.len(), then.len());
        let worst = prediction
            .probability
            .iter()
            .zip(&then)
            .map(|(now, then)| (now - then).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "mean probability moved by {worst}");
    }

    #[test]
    fn run_configs_are_stored_typed_and_versioned() {
        let device = Default::default();
        let model_config = MedClipSegConfig::micro();
        let model = crate::init_model::<Flex>(&model_config, 1, &device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut run = RunConfig::demo();
        run.dataset.size = 48;
        let extra = BTreeMap::new();
        save_checkpoint(&path, &model, &model_config, Some(&run), None, &extra).unwrap();
        let loaded = LoadedModel::<Flex>::load(&path, &device).unwrap();
        assert_eq!(loaded.run_config.as_ref(), Some(&run));
        assert_eq!(loaded.inference_preprocess().size, 48);
        // A newer layout than this build reads is an error naming the file, not a silent None.
        let mut meta = extra.clone();
        meta.insert(META_RUN_CONFIG.into(), serde_json::to_string(&run).unwrap());
        meta.insert(META_RUN_CONFIG_VERSION.into(), "99".into());
        let err = stored_run_config(&meta, &path).unwrap_err().to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("newer"),
            "{err}"
        );
        meta.insert(META_RUN_CONFIG_VERSION.into(), "2".into());
        meta.insert(META_RUN_CONFIG.into(), "{\"train\": {\"batch\": 1}}".into());
        let err = stored_run_config(&meta, &path).unwrap_err().to_string();
        assert!(err.contains("batch"), "{err}");
    }

    #[test]
    fn preprocessing_without_a_run_config_is_the_reference() {
        let device = Default::default();
        let model_config = MedClipSegConfig::micro();
        let model = crate::init_model::<Flex>(&model_config, 1, &device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        save_checkpoint(&path, &model, &model_config, None, None, &BTreeMap::new()).unwrap();
        let loaded = LoadedModel::<Flex>::load(&path, &device).unwrap();
        assert!(loaded.run_config.is_none());
        let p = loaded.inference_preprocess();
        assert_eq!((p.size, p.channel_order), (32, ChannelOrder::Bgr));
    }
}
