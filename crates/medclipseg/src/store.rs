//! Files of a run: atomic writes, resumable checkpoints, provenance.
//!
//! A resumable checkpoint is a folder `checkpoints/epoch-NNNN/` (model and optimizer as Burn
//! records, plus `state.json`), written completely before `checkpoints/latest.json` is
//! atomically switched to it; a crash mid-write leaves the previous checkpoint in charge.
//! `latest.safetensors` and `best.safetensors` are the portable model files (reference key
//! names, config and tokenizer in the metadata) that `eval` and `predict` read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use medclipseg_model::train::ModelOptimizer;
use medclipseg_model::{MedClipSeg, MedClipSegConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::settings::RunConfig;

/// Files are written through [`atomic_io`]: a temporary sibling, fsync and a rename, so readers
/// never see a half-written file and a failed write leaves the old file intact (and no temporary).
pub use atomic_io::write_atomic;

/// [`write_atomic`] of pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(write_atomic(path, text.as_bytes())?)
}

/// SHA-256 of a file, hex (provenance of checkpoints).
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Where an output came from: written next to every output of the tool.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// `medclipseg <version>`.
    pub tool: String,
    /// The command line.
    pub command: Vec<String>,
    /// Compute backend compiled in.
    pub backend: String,
    /// Seed used.
    pub seed: Option<u64>,
    /// Monte-Carlo samples per image.
    pub samples: Option<usize>,
    /// Checkpoint read, with its SHA-256.
    pub checkpoint: Option<(PathBuf, String)>,
    /// Prompt given on the command line, if any.
    pub prompt: Option<String>,
    /// The run config, if any.
    pub config: Option<serde_json::Value>,
    /// The model config.
    pub model_config: Option<serde_json::Value>,
}

impl Provenance {
    /// A record for the current process.
    pub fn new() -> Self {
        Self {
            tool: format!("medclipseg {}", env!("CARGO_PKG_VERSION")),
            command: std::env::args().collect(),
            backend: crate::backend::name().to_string(),
            seed: None,
            samples: None,
            checkpoint: None,
            prompt: None,
            config: None,
            model_config: None,
        }
    }

    /// Adds the checkpoint and its hash.
    pub fn with_checkpoint(mut self, path: &Path) -> Result<Self> {
        self.checkpoint = Some((path.to_path_buf(), sha256_file(path)?));
        Ok(self)
    }

    /// Writes `provenance.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("provenance.json"), self)
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training losses.
    pub train_total: f64,
    /// Mean Dice term.
    pub train_dice: f64,
    /// Mean BCE term.
    pub train_bce: f64,
    /// Mean SoftCon term.
    pub train_softcon: f64,
    /// Validation loss (total), when a validation split exists.
    pub val_loss: Option<f64>,
    /// Validation DSC (one stochastic pass, threshold 0.5), when a validation split exists.
    pub val_dice: Option<f64>,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Best validation DSC so far and its epoch.
    pub best: Option<(f64, usize)>,
    /// Per-epoch metrics so far.
    pub history: Vec<EpochRecord>,
    /// The run config.
    pub config: RunConfig,
    /// Training seconds so far (summed over resumes).
    pub train_seconds: f64,
}

/// The checkpoint folder pointed to by `latest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct LatestPointer {
    dir: String,
    epoch: usize,
}

/// Saves a resumable checkpoint and points `latest.json` at it; keeps the two newest.
pub fn save_resumable<B: AutodiffBackend>(
    run_dir: &Path,
    model: &MedClipSeg<B>,
    optimizer: &ModelOptimizer<B>,
    state: &TrainState,
) -> Result<()> {
    use burn::optim::Optimizer;
    let root = run_dir.join("checkpoints");
    let name = format!("epoch-{:04}", state.epochs_done);
    let dir = root.join(&name);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let model_bytes = Recorder::<B>::record(&recorder, model.clone().into_record(), ())?;
    let optim_bytes = Recorder::<B>::record(&recorder, optimizer.to_record(), ())?;
    write_atomic(&dir.join("model.bin"), &model_bytes)?;
    write_atomic(&dir.join("optimizer.bin"), &optim_bytes)?;
    write_json(&dir.join("state.json"), state)?;
    write_json(
        &root.join("latest.json"),
        &LatestPointer {
            dir: name.clone(),
            epoch: state.epochs_done,
        },
    )?;
    prune_old(&root, &name)
}

/// Removes checkpoint folders older than the previous one.
fn prune_old(root: &Path, keep_newest: &str) -> Result<()> {
    let mut dirs: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("epoch-") && n.as_str() <= keep_newest)
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(2);
    for old in &dirs[..excess] {
        std::fs::remove_dir_all(root.join(old)).ok();
    }
    Ok(())
}

/// A checkpoint restored for `--resume`.
pub struct Restored<B: AutodiffBackend> {
    /// The model with its trained weights.
    pub model: MedClipSeg<B>,
    /// The optimizer with its moments.
    pub optimizer: ModelOptimizer<B>,
    /// Progress and history.
    pub state: TrainState,
}

/// Loads the checkpoint `latest.json` points to, or `None` when the run has none.
pub fn load_resumable<B: AutodiffBackend>(
    run_dir: &Path,
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    device: &B::Device,
) -> Result<Option<Restored<B>>> {
    use burn::optim::Optimizer;
    let pointer_path = run_dir.join("checkpoints").join("latest.json");
    if !pointer_path.exists() {
        return Ok(None);
    }
    let pointer: LatestPointer = serde_json::from_slice(&std::fs::read(&pointer_path)?)
        .with_context(|| format!("{}: not a checkpoint pointer", pointer_path.display()))?;
    let dir = run_dir.join("checkpoints").join(&pointer.dir);
    let read = |file: &str| -> Result<Vec<u8>> {
        let path = dir.join(file);
        std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))
    };
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let model_record = Recorder::<B>::load(&recorder, read("model.bin")?, device)
        .with_context(|| format!("{}: corrupt model record", dir.join("model.bin").display()))?;
    let optim_record = Recorder::<B>::load(&recorder, read("optimizer.bin")?, device)
        .with_context(|| {
            format!(
                "{}: corrupt optimizer record",
                dir.join("optimizer.bin").display()
            )
        })?;
    let state: TrainState = serde_json::from_slice(&read("state.json")?)
        .with_context(|| format!("{}: invalid state", dir.join("state.json").display()))?;
    Ok(Some(Restored {
        model: model.load_record(model_record),
        optimizer: optimizer.load_record(optim_record),
        state,
    }))
}

/// Metadata stored in our portable checkpoints.
pub fn checkpoint_metadata(
    config: &RunConfig,
    vocab: Option<&Path>,
    epoch: usize,
) -> Result<BTreeMap<String, String>> {
    let mut meta = BTreeMap::new();
    meta.insert(
        "medclipseg.tool".into(),
        format!("medclipseg {}", env!("CARGO_PKG_VERSION")),
    );
    meta.insert(
        medclipseg_pipeline::checkpoint::META_RUN_CONFIG.into(),
        serde_json::to_string(config)?,
    );
    meta.insert("medclipseg.epoch".into(), epoch.to_string());
    if let Some(vocab) = vocab {
        let text = std::fs::read_to_string(vocab)
            .with_context(|| format!("{}: cannot read the vocabulary", vocab.display()))?;
        meta.insert(VOCAB_META.into(), text);
        let name = vocab
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("vocab.txt");
        meta.insert(
            medclipseg_pipeline::checkpoint::META_VOCAB_FILE.into(),
            name.to_string(),
        );
    }
    Ok(meta)
}

/// Metadata key holding the tokenizer vocabulary text.
pub use medclipseg_pipeline::checkpoint::META_VOCAB as VOCAB_META;

/// A model read from one of our portable checkpoints, with what came along.
pub struct LoadedCheckpoint<B: burn::prelude::Backend> {
    /// The model.
    pub model: MedClipSeg<B>,
    /// Its config.
    pub config: MedClipSegConfig,
    /// The run config it was trained with, when stored.
    pub run_config: Option<RunConfig>,
    /// The vocabulary written next to the checkpoint's output, when stored.
    pub vocab_text: Option<(String, String)>,
}

/// Reads a model checkpoint: ours (config stored inside) or a reference state dict with
/// `model_config` given. The error names the file.
pub fn load_checkpoint<B: burn::prelude::Backend>(
    path: &Path,
    model_config: Option<MedClipSegConfig>,
    device: &B::Device,
) -> Result<LoadedCheckpoint<B>> {
    let loaded = medclipseg_pipeline::LoadedModel::load_with_config(path, model_config, device)?;
    let run_config = loaded
        .run_config
        .and_then(|value| serde_json::from_value(value).ok());
    Ok(LoadedCheckpoint {
        model: loaded.model,
        config: loaded.config,
        run_config,
        vocab_text: loaded.vocabulary.map(|v| (v.file_name, v.text)),
    })
}

/// Writes tensors as safetensors (atomically), creating the folder first.
pub fn save_safetensors(path: &Path, sd: &torch_checkpoint::StateDict) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    }
    torch_checkpoint::save_safetensors(path, sd)?;
    Ok(())
}

/// Writes a binary mask as a 0/255 8-bit PNG (atomically).
pub fn write_mask_png(path: &Path, mask: &seg_metrics::Mask2d) -> Result<()> {
    Ok(medclipseg_pipeline::write_mask_png(path, mask)?)
}

/// The BERT vocabulary to use: the one given, else the one stored in the checkpoint (written
/// into `out` so the run's outputs carry it).
pub fn resolve_vocab(
    given: Option<PathBuf>,
    stored: &Option<(String, String)>,
    out: &Path,
) -> Result<Option<PathBuf>> {
    if given.is_some() {
        return Ok(given);
    }
    match stored {
        Some((name, text)) => {
            let path = out.join(name);
            write_atomic(&path, text.as_bytes())?;
            Ok(Some(path))
        }
        None => Ok(None),
    }
}
