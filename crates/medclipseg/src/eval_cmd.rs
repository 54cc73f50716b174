//! `medclipseg eval`: the reference test protocol (Monte-Carlo mean > 0.5, masks resized to the
//! ground truth by nearest neighbour, per-image DSC and NSD at `test.nsd_tolerance` px, each
//! rounded to 4 decimals, dataset mean), plus calibration numbers, uncertainty pictures and raw
//! float maps.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use med_datasets::{Problem, PromptStyle};
use medclipseg_pipeline::run_config::preset_or_file;
use medclipseg_pipeline::{
    EvalObserver, EvalOverrides, EvalPlan, Evaluator, ImageOutcome, LoadedModel, RunConfig,
    resolve_checkpoint,
};
use seg_metrics::Protocol;

use crate::backend::{self, Inner};
use crate::store::{self, Provenance};
use crate::text::Prompts;
use crate::train_cmd::progress_bar;

pub use medclipseg_pipeline::{EvalSummary, StyleResult};

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

/// Runs the evaluation and writes its files under `request.out`.
pub fn run(request: &EvalRequest) -> Result<EvalSummary> {
    run_with_calibration(request, None).map(|(summary, _)| summary)
}

/// [`run`], and with `--calibration FILE` the empirical risk of the test images at the
/// calibrated threshold beside the target α, added to `summary.json` as `calibration`.
/// Returns the summary and the JSON written.
pub fn run_with_calibration(
    request: &EvalRequest,
    calibration: Option<&Path>,
) -> Result<(EvalSummary, serde_json::Value)> {
    let device = backend::device(&request.device)?;
    let checkpoint = resolve_checkpoint(&request.checkpoint)?;
    let model_config = match &request.model_config {
        Some(spec) => Some(preset_or_file(spec)?),
        None => None,
    };
    let calibration = calibration
        .map(|path| medclipseg_pipeline::calibrator::read_calibration_for(path, &checkpoint))
        .transpose()?;
    let loaded = LoadedModel::<Inner>::load_with_config(&checkpoint, model_config, &device)?;
    std::fs::create_dir_all(&request.out)
        .with_context(|| format!("{}: cannot create", request.out.display()))?;
    let vocab = store::resolve_vocab(
        request.tokenizer.clone(),
        loaded.vocabulary.as_ref(),
        &request.out,
    )?;
    let prompts = Prompts::for_tower(&loaded.config.text, vocab.as_deref())?;
    let preprocess = loaded.inference_preprocess();
    let run_config = loaded.run_config.clone().unwrap_or_else(RunConfig::paper);
    let settings = run_config.eval_settings(eval_overrides(request))?;
    let samples = settings.samples;
    let model_config_json = serde_json::to_value(&loaded.config)?;
    let evaluator = Evaluator::new(loaded.model, prompts, preprocess, settings, device)?;
    let plan = EvalPlan {
        data_root: request.data_root.clone(),
        datasets: request.datasets.clone(),
        styles: request.styles.clone(),
        out: request.out.clone(),
    };
    let mut observer = EvalProgress::new(request.quiet);
    observer.risk = calibration.map(RiskTally::new);
    let summary = evaluator.evaluate(&plan, &mut observer)?;
    let mut json = serde_json::to_value(&summary)?;
    if let Some(tally) = &observer.risk {
        json["calibration"] = tally.report();
    }
    store::write_json(&request.out.join("summary.json"), &json)?;
    let mut provenance = Provenance::new().with_checkpoint(&checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(samples);
    provenance.model_config = Some(model_config_json);
    provenance.write(&request.out)?;
    Ok((summary, json))
}

/// The test risk at a calibrated threshold, per dataset and prompt style.
struct RiskTally {
    file: seg_metrics::conformal::CalibrationFile,
    /// `(dataset, style, sum of per-image losses, images)`.
    results: Vec<(String, String, f64, usize)>,
}

impl RiskTally {
    fn new(file: seg_metrics::conformal::CalibrationFile) -> Self {
        Self {
            file,
            results: Vec::new(),
        }
    }

    /// The image's loss at the calibrated threshold, on its probability resized to the ground
    /// truth (bilinear, as `predict` resizes to the image).
    fn add(&mut self, image: &ImageOutcome) {
        use seg_metrics::BinaryMask;
        let (rows, cols) = (image.truth.rows(), image.truth.cols());
        let prob = medclipseg_pipeline::resize_map(image.mean_prob, image.size, rows, cols);
        let loss = seg_metrics::conformal::image_loss(
            &prob,
            image.truth.data(),
            self.file.threshold,
            self.file.risk,
        )
        .unwrap_or(f64::NAN);
        let (dataset, style) = (image.dataset.to_string(), image.style.to_string());
        match self.results.last_mut() {
            Some(last) if last.0 == dataset && last.1 == style => {
                last.2 += loss;
                last.3 += 1;
            }
            _ => self.results.push((dataset, style, loss, 1)),
        }
    }

    /// `calibration` of summary.json: `risk` is the first dataset and style's mean loss.
    fn report(&self) -> serde_json::Value {
        let mean = |r: &(String, String, f64, usize)| r.2 / r.3.max(1) as f64;
        serde_json::json!({
            "risk": self.results.first().map(mean),
            "alpha": self.file.alpha,
            "kind": self.file.risk,
            "threshold": seg_metrics::conformal::threshold_value(self.file.threshold),
            "calibration_n": self.file.n,
            "statement": self.file.statement,
            "results": self.results.iter().map(|r| serde_json::json!({
                "dataset": r.0, "style": r.1, "risk": mean(r), "n_images": r.3,
            })).collect::<Vec<_>>(),
        })
    }
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

/// A progress bar per dataset and style, skipped sheet rows as warnings, one log line per
/// dataset and style.
struct EvalProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
    risk: Option<RiskTally>,
}

impl EvalProgress {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: None,
            risk: None,
        }
    }
}

impl EvalObserver for EvalProgress {
    fn sheet_problem(&mut self, dataset: &str, p: &Problem) {
        tracing::warn!(
            "{dataset}: {} row {}: {} (skipped)",
            p.file,
            p.row,
            p.problem
        );
    }

    fn style_started(&mut self, dataset: &str, style: PromptStyle, images: usize) {
        let bar = progress_bar(images as u64, self.quiet);
        bar.set_message(format!("{dataset} {style}"));
        self.bar = Some(bar);
    }

    fn image_scored(&mut self, image: &ImageOutcome) {
        if let Some(tally) = &mut self.risk {
            tally.add(image);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn style_finished(&mut self, result: &StyleResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            "{} [{}]: DSC {:.4} NSD {:.4} over {} images (ECE {:.4}, Brier {:.4}, uncertainty AUROC {:.4})",
            result.dataset,
            result.style,
            result.dsc,
            result.nsd,
            result.n_images,
            result.ece,
            result.brier,
            result.uncertainty_auroc
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn protocol_names_round_trip() {
        use clap::ValueEnum;
        for arg in crate::cli::ProtocolArg::value_variants() {
            let name = arg.to_possible_value().expect("not hidden");
            assert_eq!(seg_metrics::Protocol::from(*arg).name(), name.get_name());
        }
    }
}
