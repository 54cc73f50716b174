//! `medclipseg eval`: the reference test protocol (Monte-Carlo mean > 0.5, masks resized to the
//! ground truth by nearest neighbour, per-image DSC and NSD at `test.nsd_tolerance` px, each
//! rounded to 4 decimals, dataset mean), plus calibration numbers, uncertainty pictures and raw
//! float maps.

use std::path::{Path, PathBuf};

use anyhow::Result;
use med_datasets::PromptStyle;
use medclipseg_pipeline::run_config::preset_or_file;
use medclipseg_pipeline::{
    EvalOverrides, EvalPlan, EvalRun, EvalRunRequest, EvalSummary, resolve_checkpoint,
};
use seg_metrics::Protocol;

use crate::backend::{self, Inner};
use crate::observers::{EvalProgress, RiskTally};
use crate::store;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// A checkpoint of ours, or a reference state dict with `model_config`.
    pub checkpoint: PathBuf,
    /// Model config for checkpoints that do not carry one (preset name or file).
    pub model_config: Option<String>,
    /// BERT vocabulary, when the checkpoint does not carry one.
    pub tokenizer: Option<PathBuf>,
    /// Data root.
    pub data_root: PathBuf,
    /// Datasets (folders under the root).
    pub datasets: Vec<String>,
    /// Test prompt styles.
    pub styles: Vec<PromptStyle>,
    /// Monte-Carlo samples (`None`: the run config's, else 30).
    pub samples: Option<usize>,
    /// NSD protocol (the reference's is [`Protocol::MedClipSeg`]).
    pub protocol: Protocol,
    /// NSD tolerance in pixels (`None`: the run config's `test.nsd_tolerance`).
    pub tolerance: Option<f64>,
    /// Images per network call group.
    pub batch_size: usize,
    /// Seed of the Monte-Carlo noise.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// `--device`.
    pub device: String,
    /// Panels (image | GT | prediction | uncertainty) written per dataset and style.
    pub panels: usize,
    /// Hide progress bars.
    pub quiet: bool,
}

/// Runs the evaluation and writes its files under `request.out`. With `--calibration FILE`
/// the empirical risk of the test images at the calibrated threshold is added beside the
/// target α to `summary.json` as `calibration`. Returns the summary and the JSON written.
pub fn run_with_calibration(
    request: &EvalRequest,
    calibration: Option<&Path>,
) -> Result<(EvalSummary, serde_json::Value)> {
    let device = backend::device(&request.device)?;
    let model_config = match &request.model_config {
        Some(spec) => Some(preset_or_file(spec)?),
        None => None,
    };
    let calibration = calibration
        .map(|path| {
            medclipseg_pipeline::calibrator::read_calibration_for(
                path,
                &resolve_checkpoint(&request.checkpoint)?,
            )
        })
        .transpose()?;
    let run = EvalRun::<Inner>::prepare(
        &EvalRunRequest {
            checkpoint: request.checkpoint.clone(),
            model_config,
            tokenizer: request.tokenizer.clone(),
            overrides: eval_overrides(request),
            out: request.out.clone(),
        },
        &device,
    )?;
    let plan = EvalPlan {
        data_root: request.data_root.clone(),
        datasets: request.datasets.clone(),
        styles: request.styles.clone(),
        out: request.out.clone(),
    };
    let mut observer = EvalProgress::new(request.quiet);
    observer.risk = calibration.map(RiskTally::new);
    let summary = run.evaluator.evaluate(&plan, &mut observer)?;
    let mut json = serde_json::to_value(&summary)?;
    if let Some(tally) = &observer.risk {
        json["calibration"] = tally.report();
    }
    store::write_eval_record(&request.out, &json, &run, request.seed)?;
    Ok((summary, json))
}

/// The request's evaluation overrides of the run config's `test` section.
fn eval_overrides(request: &EvalRequest) -> EvalOverrides {
    EvalOverrides {
        samples: request.samples,
        tolerance: request.tolerance,
        protocol: request.protocol,
        batch_size: request.batch_size,
        seed: request.seed,
        panels: request.panels,
        noise: backend::pipeline_noise_source(),
        default_max_batch: backend::DEFAULT_MC_BATCH,
    }
}
