//! `medclipseg train`: the reference recipe with atomic checkpoints, exact resume, per-epoch
//! metrics (CSV, JSONL, PNG curve) and progress bars; a shell over `medclipseg_pipeline`'s
//! [`Trainer`], which runs the loop and writes the run's checkpoints and metrics.

use std::path::{Path, PathBuf};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use medclipseg_pipeline::{
    EpochRecord, EpochStart, PipelineError, RunConfig, RunNotice, StepDone, TrainObserver,
    TrainingRun,
};

use crate::backend::{self, Train};
use crate::store::Provenance;

pub use medclipseg_pipeline::TrainSummary;

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
    write_provenance(&request.out, &run.config, &run.model_config)?;
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

/// Progress bars per epoch and one log line per finished epoch.
struct TrainProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    fn new(quiet: bool) -> Self {
        Self { quiet, bar: None }
    }
}

impl TrainObserver for TrainProgress {
    fn epoch_started(&mut self, e: EpochStart) {
        let bar = progress_bar(e.steps as u64, self.quiet);
        bar.set_message(format!("epoch {}/{}", e.epoch + 1, e.epochs));
        self.bar = Some(bar);
    }

    fn step_finished(&mut self, s: StepDone) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "epoch {}/{} loss {:.4}",
                s.epoch + 1,
                s.epochs,
                s.losses.total
            ));
            bar.inc(1);
        }
    }

    fn steps_finished(&mut self, _epoch: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn batch_skipped(&mut self, images: usize, devices: usize) {
        tracing::warn!("skipping a final batch of {images} images (< {devices} devices)");
    }

    fn notice(&mut self, notice: &RunNotice) {
        match notice {
            RunNotice::RowSkipped(p) => {
                tracing::warn!("{} row {}: {} (skipped)", p.file, p.row, p.problem);
            }
            RunNotice::EpochsRaised {
                min_steps,
                n_train,
                steps_per_epoch,
                planned,
                configured,
            } => tracing::warn!(
                "train.min_steps {min_steps}: {n_train} training images make {steps_per_epoch} \
                 steps per epoch, so {planned} epochs instead of {configured} (set \
                 train.min_steps=0 to keep train.epochs)"
            ),
            RunNotice::NoValidation { dataset, sheet } => tracing::warn!(
                "{} has no {sheet} sheet: training without validation \
                 (best.safetensors is the latest epoch)",
                dataset.display()
            ),
            RunNotice::Resuming { dir, epochs_done } => {
                tracing::info!("resuming {} after epoch {epochs_done}", dir.display());
            }
            RunNotice::RandomFrozenTowers => tracing::warn!(
                "model.allow_random_towers: the frozen towers keep their random \
                 initialisation (a smoke test, not a result)"
            ),
            RunNotice::VocabularyBuilt {
                dataset,
                tokens,
                prompts,
                path,
                dropped_words,
                rows,
            } => tracing::warn!(
                "no model.tokenizer and no {dataset}/vocab.txt: built a vocabulary of {tokens} \
                 tokens from the {prompts} training prompts into {} (stored in the \
                 checkpoints){}",
                path.display(),
                if *dropped_words > 0 {
                    format!(
                        "; the {dropped_words} rarest words did not fit the tower's {rows} rows \
                         and are spelled out"
                    )
                } else {
                    String::new()
                }
            ),
        }
    }

    fn epoch_finished(&mut self, record: &EpochRecord, epochs: usize) {
        tracing::info!("{}", epoch_line(record, epochs));
    }
}

/// Validation DSC below this prints as 0.00: the model predicts (nearly) empty masks.
const ZERO_DSC: f64 = 0.005;

/// A warning when every epoch so far had a validation DSC that prints as 0.00.
fn stuck_at_zero_warning(history: &[EpochRecord]) -> Option<String> {
    let dscs: Vec<f64> = history.iter().filter_map(|r| r.val_dice).collect();
    let stuck = !dscs.is_empty() && dscs.iter().all(|&d| d < ZERO_DSC);
    stuck.then(|| {
        format!(
            "validation DSC stayed at 0.00 for all {} epochs: the model predicts empty \
             masks. Train longer (train.epochs, or train.min_steps for small datasets), or check \
             that the masks and prompts match the images",
            dscs.len()
        )
    })
}

/// A progress bar with ETA on a terminal; hidden otherwise (logs get one line per epoch).
pub fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let val = match (r.val_loss, r.val_dice) {
        (Some(l), Some(d)) => format!("val loss {l:.4} val DSC {d:.4}"),
        _ => "no validation split".into(),
    };
    format!(
        "epoch {}/{epochs}: lr {:.2e} loss {:.4} (dice {:.4} bce {:.4} softcon {:.4}) {val} [{:.1}s]",
        r.epoch, r.lr, r.train_total, r.train_dice, r.train_bce, r.train_softcon, r.seconds
    )
}

/// `provenance.json`: the tool, command line, backend and configs of the run.
fn write_provenance(
    out: &Path,
    config: &RunConfig,
    model: &medclipseg_model::MedClipSegConfig,
) -> Result<()> {
    let mut provenance = Provenance::new();
    provenance.seed = Some(config.train.seed);
    provenance.config = Some(serde_json::to_value(config)?);
    provenance.model_config = Some(serde_json::to_value(model)?);
    provenance.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(val_dice: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch: 1,
            lr: 1e-3,
            train_total: 1.0,
            train_dice: 0.5,
            train_bce: 0.5,
            train_softcon: 0.0,
            val_loss: val_dice.map(|_| 1.0),
            val_dice,
            seconds: 1.0,
        }
    }

    #[test]
    fn a_validation_dsc_that_never_leaves_zero_is_warned_about() {
        let stuck = [epoch(Some(0.0)), epoch(Some(0.004))];
        let warning = stuck_at_zero_warning(&stuck).expect("a warning");
        assert!(warning.contains("all 2 epochs"), "{warning}");
        assert!(warning.contains("empty"), "{warning}");
        assert!(stuck_at_zero_warning(&[epoch(Some(0.0)), epoch(Some(0.01))]).is_none());
        // No validation split: nothing to judge.
        assert!(stuck_at_zero_warning(&[epoch(None)]).is_none());
        assert!(stuck_at_zero_warning(&[]).is_none());
    }
}
