//! What the commands show while the library works: progress bars (hidden with `-q` or off a
//! terminal) and `tracing` lines, as the library's observers ([`TrainObserver`],
//! [`EvalObserver`]). Shared by `train`, `eval`, `demo` and the commands with a progress bar, so
//! that no command calls another.

use std::collections::BTreeSet;

use burn::prelude::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use med_datasets::{Problem, PromptStyle};
use medclipseg_pipeline::{
    EpochRecord, EpochStart, EvalObserver, ImageOutcome, Predictor, RunNotice, StepDone,
    StyleResult, TrainObserver,
};

/// Warns, once per prompt, when a prompt is longer than the text tower's context and is cut.
#[derive(Debug, Default)]
pub struct CutPrompts {
    warned: BTreeSet<String>,
}

impl CutPrompts {
    /// Warns when `prompt` (given for `what`: an image, a volume) is cut; each prompt once.
    pub fn check<B: Backend>(
        &mut self,
        predictor: &Predictor<B>,
        prompt: &str,
        what: &str,
    ) -> anyhow::Result<()> {
        if self.warned.contains(prompt) {
            return Ok(());
        }
        let length = predictor.prompt_length(prompt)?;
        if length.is_cut() {
            tracing::warn!(
                "{what}: the prompt has {} tokens, more than the text tower's context: only the \
                 first {} were kept",
                length.tokens,
                length.kept
            );
            self.warned.insert(prompt.to_string());
        }
        Ok(())
    }
}

/// Progress bars per epoch and one log line per finished epoch.
pub struct TrainProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    pub fn new(quiet: bool) -> Self {
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
pub fn stuck_at_zero_warning(history: &[EpochRecord]) -> Option<String> {
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

/// The test risk at a calibrated threshold, per dataset and prompt style.
pub struct RiskTally {
    file: seg_metrics::conformal::CalibrationFile,
    /// `(dataset, style, sum of per-image losses, images)`.
    results: Vec<(String, String, f64, usize)>,
}

impl RiskTally {
    pub fn new(file: seg_metrics::conformal::CalibrationFile) -> Self {
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
    pub fn report(&self) -> serde_json::Value {
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

/// A progress bar per dataset and style, skipped sheet rows as warnings, one log line per
/// dataset and style.
pub struct EvalProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// The test risk at a calibrated threshold, when one was given.
    pub risk: Option<RiskTally>,
}

impl EvalProgress {
    pub fn new(quiet: bool) -> Self {
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
