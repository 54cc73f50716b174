//! `medclipseg train`: the reference recipe with atomic checkpoints, exact resume, per-epoch
//! metrics (CSV, JSONL, PNG curve) and progress bars; a shell over `medclipseg_pipeline`'s
//! [`Trainer`], which runs the loop and writes the run's checkpoints and metrics.

use std::path::PathBuf;

use anyhow::Result;
use medclipseg_pipeline::{PipelineError, RunConfig, TrainSummary, TrainingRun};

use crate::backend::{self, Train};
use crate::observers::{TrainProgress, stuck_at_zero_warning};
use crate::store::Provenance;

/// What `train` needs besides the config.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The resolved config.
    pub config: RunConfig,
    /// Output folder.
    pub out: PathBuf,
    /// Continue from the run's latest checkpoint.
    pub resume: bool,
    /// `--device`.
    pub device: String,
    /// Stop after this many epochs in this invocation (tests interrupt runs with it).
    pub stop_after: Option<usize>,
    /// Hide progress bars.
    pub quiet: bool,
}

/// Runs (or resumes) a training run and writes its outputs under `request.out`.
pub fn run(request: &TrainRequest) -> Result<TrainSummary> {
    let devices = backend::devices(&request.device)?;
    let library_request = medclipseg_pipeline::TrainRequest {
        config: request.config.clone(),
        out: request.out.clone(),
        resume: request.resume,
        noise: backend::pipeline_noise_source(),
    };
    let mut progress = TrainProgress::new(request.quiet);
    let mut run = TrainingRun::<Train>::prepare(&library_request, devices, &mut progress)
        .map_err(cli_error)?;
    Provenance::for_training(&run.config, &run.model_config)?.write(&request.out)?;
    let summary = run.fit(request.stop_after, &mut progress)?;
    if let Some(warning) = stuck_at_zero_warning(&run.trainer().state().history) {
        tracing::warn!("{warning}");
    }
    Ok(summary)
}

/// A library error in the command line's words where they differ.
fn cli_error(error: PipelineError) -> anyhow::Error {
    match error {
        PipelineError::RunExists { dir } => anyhow::anyhow!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            dir.display()
        ),
        other => other.into(),
    }
}
