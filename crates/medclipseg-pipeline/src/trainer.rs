//! The training loop: the reference recipe (Adam, cosine-annealed learning rate per epoch,
//! one stochastic validation pass per epoch), with atomic checkpoints after every epoch and
//! exact resume, on one device or data-parallel over several (feature `data-parallel`).
//!
//! The loop never prints: progress goes to a [`TrainObserver`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use med_datasets::{Batch, DataLoader};
use medclipseg_model::train::{ModelOptimizer, StepLosses, cosine_lr, reference_adam, train_step};
use medclipseg_model::{LoadScope, MedClipSeg, MedClipSegConfig};
use serde::Serialize;

use crate::checkpoint::{Vocabulary, save_checkpoint};
use crate::error::{PipelineError, Result};
use crate::prompts::Prompts;
use crate::run_config::RunConfig;
use crate::run_files::{
    EpochRecord, TrainState, latest_pointer, load_resumable, save_resumable, write_json,
    write_metrics,
};
use crate::seeds::{STREAM_INIT, STREAM_VALIDATION, derive_seed, training_step_noise};
use crate::train_observer::{EpochStart, LossSums, StepDone, TrainObserver};
pub use crate::train_settings::TrainSettings;
use crate::validation::{Validation, to_tensors, validate};

/// The data of a run: shuffled training batches and (possibly empty) validation batches.
pub struct TrainData {
    /// Training split (a loader built with `LoaderConfig::train`).
    pub train: DataLoader,
    /// Validation split (`LoaderConfig::eval`); empty means no validation, and then
    /// `best.safetensors` follows the latest epoch.
    pub validation: DataLoader,
}

/// Where a run keeps its files and what its checkpoints carry besides the weights.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// The run folder (`latest.safetensors`, `best.safetensors`, `checkpoints/`, metrics).
    pub dir: PathBuf,
    /// The caller's run config, stored in every checkpoint and in `state.json`.
    pub run_config: Option<RunConfig>,
    /// Continue the run the folder holds (an error when it holds none); without it, a folder
    /// that already holds a run is refused.
    pub resume: bool,
}

impl RunFolder {
    /// A fresh run in `dir` with no run config of the caller's (`null` in the checkpoints).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            run_config: None,
            resume: false,
        }
    }
}

/// `summary.json` of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Validation DSC of the last epoch (one stochastic pass), when a validation split exists.
    pub dsc: Option<f64>,
    /// Best validation DSC.
    pub best_dsc: Option<f64>,
    /// 1-based epoch of the best validation DSC.
    pub best_epoch: Option<usize>,
    /// Validation images.
    pub n_images: usize,
    /// Training images.
    pub n_train_images: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Final mean training loss.
    pub final_train_loss: Option<f64>,
    /// The best-validation checkpoint.
    pub best: PathBuf,
    /// The last-epoch checkpoint.
    pub latest: PathBuf,
    /// Seconds spent training (summed over resumes).
    pub train_seconds: f64,
}

/// A model initialised from the backend's generator seeded from `seed` (stream
/// [`STREAM_INIT`]), so that runs reproduce.
pub fn init_model<B: Backend>(
    config: &MedClipSegConfig,
    seed: u64,
    device: &B::Device,
) -> MedClipSeg<B> {
    B::seed(device, derive_seed(seed, STREAM_INIT, 0, 0));
    config.init(device)
}

/// Loads pretrained tower weights (a UniMedCLIP / CLIP state dict, as `medclipseg-model`'s
/// checkpoint reader takes it) into the model's encoders; the adapters and decoder keep theirs.
pub fn load_backbone<B: Backend>(
    model: MedClipSeg<B>,
    path: &Path,
    device: &B::Device,
) -> Result<MedClipSeg<B>> {
    use medclipseg_model::checkpoint::{self as model_checkpoint, CheckpointError};
    let failed = |cause: CheckpointError| PipelineError::Checkpoint {
        path: path.to_path_buf(),
        cause: Box::new(cause),
    };
    let sd = model_checkpoint::read(path).map_err(failed)?;
    let weights = model_checkpoint::weight_map(&sd).map_err(failed)?;
    let model = model.load_weights(&weights, LoadScope::Encoders, device);
    weights
        .finish(false)
        .map_err(|e| failed(CheckpointError::Mismatch(e)))?;
    Ok(model)
}

/// A training run in progress: the model, its optimizer and the run's state.
pub struct Trainer<B: AutodiffBackend> {
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    model_config: MedClipSegConfig,
    settings: TrainSettings,
    devices: Vec<B::Device>,
    run: RunFolder,
    state: TrainState,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Starts a run in `run.dir` (created), or resumes the one it holds when `run.resume`.
    /// The model lives on `devices[0]`; several devices train data-parallel. A fresh run
    /// refuses a folder that already holds one.
    pub fn open(
        model: MedClipSeg<B>,
        model_config: MedClipSegConfig,
        settings: TrainSettings,
        devices: Vec<B::Device>,
        run: RunFolder,
    ) -> Result<Self> {
        let Some(device) = devices.first().cloned() else {
            return Err(PipelineError::BadInput("no device to train on".into()));
        };
        if devices.len() > 1 && !cfg!(feature = "data-parallel") {
            return Err(PipelineError::DataParallelDisabled {
                devices: devices.len(),
            });
        }
        // Draw every lazily initialised parameter now: clones (one per device) share values.
        let model = model.clone().load_record(model.into_record());
        let optimizer: ModelOptimizer<B> = reference_adam().init();
        let fresh = TrainState {
            epochs_done: 0,
            best: None,
            history: Vec::new(),
            config: run.run_config.clone(),
            train_seconds: 0.0,
        };
        let (model, optimizer, state) = if run.resume {
            let restored =
                load_resumable(&run.dir, model, optimizer, &device)?.ok_or_else(|| {
                    PipelineError::NothingToResume {
                        dir: run.dir.clone(),
                    }
                })?;
            (restored.model, restored.optimizer, restored.state)
        } else if latest_pointer(&run.dir).exists() {
            return Err(PipelineError::RunExists {
                dir: run.dir.clone(),
            });
        } else {
            (model, optimizer, fresh)
        };
        std::fs::create_dir_all(&run.dir).map_err(|source| PipelineError::Write {
            path: run.dir.clone(),
            source,
        })?;
        Ok(Self {
            model,
            optimizer,
            model_config,
            settings,
            devices,
            run,
            state,
        })
    }

    /// The model as trained so far.
    pub fn model(&self) -> &MedClipSeg<B> {
        &self.model
    }

    /// Progress and per-epoch history.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// `latest.safetensors` of the run: the model of the last finished epoch.
    pub fn latest_path(&self) -> PathBuf {
        self.run.dir.join("latest.safetensors")
    }

    /// `best.safetensors` of the run: the model of the best validation DSC.
    pub fn best_path(&self) -> PathBuf {
        self.run.dir.join("best.safetensors")
    }

    /// Trains the remaining epochs (at most `stop_after` of them in this call), writing the
    /// checkpoints, `metrics.*` and `loss_curve.png` after each and `summary.json` at the end.
    /// `vocabulary` (the BERT tower's) travels in every checkpoint.
    pub fn fit(
        &mut self,
        data: &TrainData,
        prompts: &Prompts,
        vocabulary: Option<&Vocabulary>,
        stop_after: Option<usize>,
        observer: &mut dyn TrainObserver,
    ) -> Result<TrainSummary> {
        let epochs = self.settings.epochs;
        let last_epoch = stop_after.map_or(epochs, |n| (self.state.epochs_done + n).min(epochs));
        for _ in self.state.epochs_done..last_epoch {
            self.train_epoch(data, prompts, vocabulary, observer)?;
        }
        let summary = self.summary(data);
        write_json(&self.run.dir.join("summary.json"), &summary)?;
        Ok(summary)
    }

    /// Trains the next epoch, validates, and writes its checkpoints and metrics.
    pub fn train_epoch(
        &mut self,
        data: &TrainData,
        prompts: &Prompts,
        vocabulary: Option<&Vocabulary>,
        observer: &mut dyn TrainObserver,
    ) -> Result<EpochRecord> {
        let started = Instant::now();
        let epoch = self.state.epochs_done;
        let s = &self.settings;
        let lr = cosine_lr(epoch, s.epochs, s.learning_rate, s.min_lr);
        let means = self.run_epoch(&data.train, prompts, epoch, lr, observer)?;
        let validation = self.validate(data, prompts, epoch)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train_total: means.total,
            train_dice: means.dice,
            train_bce: means.bce,
            train_softcon: means.softcon,
            val_loss: validation.map(|v| v.loss),
            val_dice: validation.map(|v| v.dice),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.state.history.push(record.clone());
        self.state.epochs_done = epoch + 1;
        self.state.train_seconds += started.elapsed().as_secs_f64();
        self.save_epoch(validation, vocabulary)?;
        observer.epoch_finished(&record, self.settings.epochs);
        Ok(record)
    }

    /// One pass over the training split on one device or data-parallel; the mean losses.
    fn run_epoch(
        &mut self,
        loader: &DataLoader,
        prompts: &Prompts,
        epoch: usize,
        lr: f64,
        observer: &mut dyn TrainObserver,
    ) -> Result<StepLosses> {
        let steps = self.settings.steps_per_epoch(loader.num_batches());
        #[cfg(feature = "data-parallel")]
        if self.devices.len() > 1 {
            return self.run_parallel_epoch(loader, prompts, epoch, lr, steps, observer);
        }
        observer.epoch_started(EpochStart {
            epoch,
            epochs: self.settings.epochs,
            steps,
        });
        let mut sums = LossSums::default();
        for (step, batch) in loader.iter_epoch(epoch as u64).take(steps).enumerate() {
            let losses = self.step(&batch?, prompts, epoch, step, lr)?;
            sums.add(&losses);
            observer.step_finished(StepDone {
                epoch,
                epochs: self.settings.epochs,
                step,
                losses,
            });
        }
        observer.steps_finished(epoch);
        Ok(sums.mean(steps))
    }

    /// One optimisation step on `devices[0]`.
    fn step(
        &mut self,
        batch: &Batch,
        prompts: &Prompts,
        epoch: usize,
        step: usize,
        lr: f64,
    ) -> Result<StepLosses> {
        let device = &self.devices[0];
        let seed = self.settings.seed;
        let tensors = to_tensors::<B>(batch, prompts, device)?;
        let mut noise =
            training_step_noise::<B>(seed, epoch, step as u64, self.settings.noise, device);
        let model = self.model.clone();
        let (next, result) = train_step(
            model,
            &mut self.optimizer,
            &tensors,
            &self.settings.loss,
            lr,
            &mut noise,
        );
        self.model = next;
        result.map_err(|source| PipelineError::TrainingStopped {
            epoch: epoch + 1,
            step: step + 1,
            batch: batch.names.clone(),
            latest: self.latest_path(),
            source,
        })
    }

    /// One data-parallel epoch ([`crate::parallel`]); [`Trainer::open`] refuses several
    /// devices without the `data-parallel` feature, so nothing else calls for it.
    #[cfg(feature = "data-parallel")]
    fn run_parallel_epoch(
        &mut self,
        loader: &DataLoader,
        prompts: &Prompts,
        epoch: usize,
        lr: f64,
        steps: usize,
        observer: &mut dyn TrainObserver,
    ) -> Result<StepLosses> {
        let job = crate::parallel::ParallelEpoch {
            devices: &self.devices,
            loader,
            prompts,
            loss: &self.settings.loss,
            noise: self.settings.noise,
            epoch,
            epochs: self.settings.epochs,
            lr,
            seed: self.settings.seed,
            steps,
        };
        let optimizer = self.optimizer.clone();
        let out = crate::parallel::run_epoch(self.model.clone(), optimizer, &job, observer)?;
        self.model = out.model;
        self.optimizer = out.optimizer;
        Ok(out.losses)
    }

    /// The validation pass of `epoch` (one stochastic sample per image); `None` without a
    /// validation split.
    fn validate(
        &self,
        data: &TrainData,
        prompts: &Prompts,
        epoch: usize,
    ) -> Result<Option<Validation>> {
        let inference = self.model.valid();
        validate(
            &inference,
            data.validation.iter_epoch(0),
            prompts,
            &self.settings.validation_loss,
            derive_seed(self.settings.seed, STREAM_VALIDATION, epoch as u64, 0),
            self.settings.noise,
            &self.devices[0],
        )
    }

    /// `latest.safetensors`, `best.safetensors` when the validation DSC improved (every epoch
    /// without validation), the resumable checkpoint, then the metrics.
    fn save_epoch(
        &mut self,
        validation: Option<Validation>,
        vocabulary: Option<&Vocabulary>,
    ) -> Result<()> {
        let epoch = self.state.epochs_done;
        let extra = BTreeMap::from([
            (
                "medclipseg.tool".to_string(),
                format!("medclipseg {}", env!("CARGO_PKG_VERSION")),
            ),
            ("medclipseg.epoch".to_string(), epoch.to_string()),
        ]);
        let save = |path: &Path| {
            save_checkpoint(
                path,
                &self.model,
                &self.model_config,
                self.run.run_config.as_ref(),
                vocabulary,
                &extra,
            )
        };
        save(&self.latest_path())?;
        if improved(validation, self.state.best) {
            self.state.best = validation.map(|v| (v.dice, epoch));
            save(&self.best_path())?;
        }
        save_resumable(&self.run.dir, &self.model, &self.optimizer, &self.state)?;
        write_metrics(&self.run.dir, &self.state.history)
    }

    /// The summary of the run so far.
    fn summary(&self, data: &TrainData) -> TrainSummary {
        let state = &self.state;
        TrainSummary {
            dsc: state.history.last().and_then(|r| r.val_dice),
            best_dsc: state.best.map(|b| b.0),
            best_epoch: state.best.map(|b| b.1),
            n_images: data.validation.num_samples(),
            n_train_images: data.train.num_samples(),
            epochs: state.epochs_done,
            final_train_loss: state.history.last().map(|r| r.train_total),
            best: self.best_path(),
            latest: self.latest_path(),
            train_seconds: state.train_seconds,
        }
    }
}

/// Whether this epoch's validation beats the best so far (always true without validation:
/// the latest epoch is then the best one).
fn improved(validation: Option<Validation>, best: Option<(f64, usize)>) -> bool {
    match (validation, best) {
        (Some(v), Some((best, _))) => v.dice > best,
        (Some(_), None) => true,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validation(dice: f64) -> Option<Validation> {
        Some(Validation { loss: 1.0, dice })
    }

    #[test]
    fn best_follows_validation_dsc_or_the_latest_epoch_without_validation() {
        assert!(improved(validation(0.5), None));
        assert!(improved(validation(0.6), Some((0.5, 1))));
        assert!(!improved(validation(0.5), Some((0.5, 1))));
        assert!(!improved(validation(0.4), Some((0.5, 1))));
        assert!(improved(None, Some((0.5, 1))));
        assert!(improved(None, None));
    }

    #[test]
    fn steps_per_epoch_are_capped_by_max_steps() {
        let mut s = TrainSettings::reference(3);
        assert_eq!(s.steps_per_epoch(7), 7);
        s.max_steps_per_epoch = Some(2);
        assert_eq!(s.steps_per_epoch(7), 2);
        assert_eq!(s.steps_per_epoch(1), 1);
    }
}
