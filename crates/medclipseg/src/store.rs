//! Files of the command: atomic writes, provenance, checkpoints read with what came along.
//! The training run's own files (resumable checkpoints, metrics) are written by
//! `medclipseg_pipeline::Trainer`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use medclipseg_model::MedClipSegConfig;
use medclipseg_pipeline::{EvalRun, RunConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Files are written through [`atomic_io`]: a temporary sibling, fsync and a rename, so readers
/// never see a half-written file and a failed write leaves the old file intact (and no temporary).
pub use atomic_io::write_atomic;

/// [`write_atomic`] of pretty JSON.
pub use medclipseg_pipeline::run_files::write_json;

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
    /// A calibrated threshold used (`--calibration`): risk, α, threshold and the statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<serde_json::Value>,
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
            calibration: None,
        }
    }

    /// Adds the checkpoint and its hash.
    pub fn with_checkpoint(mut self, path: &Path) -> Result<Self> {
        self.checkpoint = Some((path.to_path_buf(), sha256_file(path)?));
        Ok(self)
    }

    /// The record of a training run: its seed and configs.
    pub fn for_training(config: &RunConfig, model: &MedClipSegConfig) -> Result<Self> {
        let mut provenance = Self::new();
        provenance.seed = Some(config.train.seed);
        provenance.config = Some(serde_json::to_value(config)?);
        provenance.model_config = Some(serde_json::to_value(model)?);
        Ok(provenance)
    }

    /// Writes `provenance.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        Ok(write_json(&dir.join("provenance.json"), self)?)
    }
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

/// `summary.json` (the evaluation's `json`) and `provenance.json` of an evaluation in `out`.
pub fn write_eval_record<B: burn::prelude::Backend>(
    out: &Path,
    json: &serde_json::Value,
    run: &EvalRun<B>,
    seed: u64,
) -> Result<()> {
    write_json(&out.join("summary.json"), json)?;
    let mut provenance = Provenance::new().with_checkpoint(&run.checkpoint)?;
    provenance.seed = Some(seed);
    provenance.samples = Some(run.samples);
    provenance.model_config = Some(serde_json::to_value(&run.model_config)?);
    provenance.write(out)
}
