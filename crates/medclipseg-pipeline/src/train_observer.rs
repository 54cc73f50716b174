//! What training reports while it runs: the [`TrainObserver`] callbacks, the events they carry,
//! and the [`RunNotice`]s of a training run. Single-device and data-parallel epochs
//! report the same events. Shared by the trainer, the data-parallel path and the training run,
//! so that none of them imports another for these types.

use std::path::PathBuf;

use medclipseg_model::train::StepLosses;

use crate::run_files::EpochRecord;

/// Progress and log callbacks of [`Trainer::fit`]; every method does nothing by default.
pub trait TrainObserver {
    /// An epoch starts: `steps` optimisation steps follow.
    fn epoch_started(&mut self, _epoch: EpochStart) {}
    /// A step finished with these losses (data-parallel: the mean over the replicas' shards).
    fn step_finished(&mut self, _step: StepDone) {}
    /// The optimisation steps of an epoch are over (validation and checkpoints follow).
    fn steps_finished(&mut self, _epoch: usize) {}
    /// Data-parallel training skipped a final batch too short to give every device an image.
    fn batch_skipped(&mut self, _images: usize, _devices: usize) {}
    /// An epoch is complete and its checkpoints and metrics are written.
    fn epoch_finished(&mut self, _record: &EpochRecord, _epochs: usize) {}
    /// Something the caller may want to say (a skipped row, raised epochs, a built
    /// vocabulary): see [`RunNotice`].
    fn notice(&mut self, _notice: &RunNotice) {}
}

/// A [`TrainObserver`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl TrainObserver for Silent {}

/// The start of an epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochStart {
    /// 0-based epoch.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Steps in this epoch.
    pub steps: usize,
}

/// A finished training step.
#[derive(Debug, Clone, Copy)]
pub struct StepDone {
    /// 0-based epoch.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// 0-based step within the epoch.
    pub step: usize,
    /// The step's losses.
    pub losses: StepLosses,
}

/// Something a run tells its caller before or between epochs (the library never prints).
#[derive(Debug, Clone, PartialEq)]
pub enum RunNotice {
    /// A sheet row was skipped (a missing image, say).
    RowSkipped(med_datasets::Problem),
    /// `train.min_steps` raised the epochs of a small dataset.
    EpochsRaised {
        /// `train.min_steps`.
        min_steps: usize,
        /// Training images.
        n_train: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// The epochs planned.
        planned: usize,
        /// `train.epochs` as configured.
        configured: usize,
    },
    /// The dataset has no validation sheet: `best.safetensors` follows the latest epoch.
    NoValidation {
        /// The dataset folder.
        dataset: PathBuf,
        /// The sheet that is missing (`Val_text` at its percentage).
        sheet: String,
    },
    /// A run folder is resumed after `epochs_done` epochs.
    Resuming {
        /// The run folder.
        dir: PathBuf,
        /// Epochs already done.
        epochs_done: usize,
    },
    /// Frozen towers keep their random initialisation (`model.allow_random_towers`).
    RandomFrozenTowers,
    /// A BERT vocabulary was built from the training prompts.
    VocabularyBuilt {
        /// `dataset.name`.
        dataset: String,
        /// Tokens in it.
        tokens: usize,
        /// Training prompts it was built from.
        prompts: usize,
        /// Where it was written.
        path: PathBuf,
        /// Rarest words that did not fit the tower's table (spelled out instead).
        dropped_words: usize,
        /// The tower's table size.
        rows: usize,
    },
}

/// Running sums of the loss terms over an epoch's steps.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LossSums {
    dice: f64,
    bce: f64,
    softcon: f64,
    total: f64,
}

impl LossSums {
    /// Adds one step's losses.
    pub(crate) fn add(&mut self, l: &StepLosses) {
        self.dice += l.dice;
        self.bce += l.bce;
        self.softcon += l.softcon;
        self.total += l.total;
    }

    /// The means over `steps` steps (the sums themselves for 0 steps).
    pub(crate) fn mean(&self, steps: usize) -> StepLosses {
        let n = steps.max(1) as f64;
        StepLosses {
            dice: self.dice / n,
            bce: self.bce / n,
            softcon: self.softcon / n,
            total: self.total / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_means_divide_by_the_steps() {
        let mut sums = LossSums::default();
        for total in [1.0, 3.0] {
            sums.add(&StepLosses {
                dice: total / 2.0,
                bce: total / 4.0,
                softcon: 0.0,
                total,
            });
        }
        let mean = sums.mean(2);
        assert_eq!((mean.total, mean.dice, mean.bce), (2.0, 1.0, 0.5));
        assert_eq!(LossSums::default().mean(0).total, 0.0);
    }
}
