//! Fixtures for tests of this crate and the crates above it (feature `testing`): a checkpoint
//! of the micro model with random weights, as `save_checkpoint` writes a trained one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use medclipseg_model::MedClipSegConfig;

use crate::{Result, RunConfig, Vocabulary, save_checkpoint};

/// Writes `path`: the micro model with random weights, its config, `run_config` and a BERT
/// vocabulary built from `prompts` (so that they tokenize without unknown words).
pub fn write_micro_checkpoint<B: Backend>(
    path: &Path,
    prompts: &[&str],
    run_config: Option<&RunConfig>,
    device: &B::Device,
) -> Result<()> {
    let config = MedClipSegConfig::micro();
    let model = config.init::<B>(device);
    let vocabulary = Vocabulary {
        file_name: "vocab.txt".into(),
        text: med_datasets::prompt_vocabulary(prompts.iter().copied(), 512).to_text(),
        origin: "test".into(),
    };
    save_checkpoint(
        path,
        &model,
        &config,
        run_config,
        Some(&vocabulary),
        &BTreeMap::new(),
    )
}

/// `dir/micro.safetensors` by [`write_micro_checkpoint`] on the default device, without a run
/// config: the checkpoint most tests need.
pub fn micro_checkpoint_in<B: Backend>(dir: &Path, prompts: &[&str]) -> Result<PathBuf> {
    let path = dir.join("micro.safetensors");
    write_micro_checkpoint::<B>(&path, prompts, None, &Default::default())?;
    Ok(path)
}
