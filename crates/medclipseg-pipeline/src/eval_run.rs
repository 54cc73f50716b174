//! A checkpoint made ready for the reference test protocol: what `medclipseg eval` (and the demo)
//! run before [`Evaluator::evaluate`]. A run folder resolves to its checkpoint, the model config
//! and vocabulary come from the checkpoint (or from the request, for reference state dicts), and
//! the test settings are the stored run config's `test` section under the request's overrides.

use std::path::PathBuf;

use burn::prelude::*;
use medclipseg_model::MedClipSegConfig;

use crate::checkpoint::LoadedModel;
use crate::error::{PipelineError, Result};
use crate::evaluator::Evaluator;
use crate::predictor::write_atomic;
use crate::prompts::Prompts;
use crate::run_config::{EvalOverrides, RunConfig};
use crate::run_files::resolve_checkpoint;

/// What to evaluate with.
#[derive(Debug, Clone)]
pub struct EvalRunRequest {
    /// A checkpoint of ours, a run folder, or a reference state dict with `model_config`.
    pub checkpoint: PathBuf,
    /// Model config for checkpoints that do not carry one.
    pub model_config: Option<MedClipSegConfig>,
    /// BERT vocabulary, when the checkpoint does not carry one (or to replace it).
    pub tokenizer: Option<PathBuf>,
    /// Changes to the stored run config's `test` section (the paper's for reference weights).
    pub overrides: EvalOverrides,
    /// Output folder: created, and given the stored vocabulary so the outputs carry it.
    pub out: PathBuf,
}

/// An [`Evaluator`] with what the caller records next to its results.
pub struct EvalRun<B: Backend> {
    /// The evaluator.
    pub evaluator: Evaluator<B>,
    /// The checkpoint file read (a run folder resolved).
    pub checkpoint: PathBuf,
    /// The model's config.
    pub model_config: MedClipSegConfig,
    /// Monte-Carlo samples per image.
    pub samples: usize,
}

impl<B: Backend> EvalRun<B> {
    /// Loads the checkpoint onto `device` and builds the evaluator.
    pub fn prepare(request: &EvalRunRequest, device: &B::Device) -> Result<Self> {
        let checkpoint = resolve_checkpoint(&request.checkpoint)?;
        let loaded =
            LoadedModel::<B>::load_with_config(&checkpoint, request.model_config.clone(), device)?;
        std::fs::create_dir_all(&request.out).map_err(|source| PipelineError::Write {
            path: request.out.clone(),
            source,
        })?;
        let vocabulary = match (&request.tokenizer, &loaded.vocabulary) {
            (Some(given), _) => Some(given.clone()),
            (None, Some(stored)) => {
                let path = request.out.join(&stored.file_name);
                write_atomic(&path, stored.text.as_bytes())?;
                Some(path)
            }
            (None, None) => None,
        };
        let prompts = Prompts::for_tower(&loaded.config.text, vocabulary.as_deref())?;
        let preprocess = loaded.inference_preprocess();
        let run_config = loaded.run_config.clone().unwrap_or_else(RunConfig::paper);
        let settings = run_config.eval_settings(request.overrides.clone())?;
        let samples = settings.samples;
        let model_config = loaded.config.clone();
        let evaluator =
            Evaluator::new(loaded.model, prompts, preprocess, settings, device.clone())?;
        Ok(Self {
            evaluator,
            checkpoint,
            model_config,
            samples,
        })
    }
}
