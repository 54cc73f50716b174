//! A training run as a [`RunConfig`] describes it, from the prompt sheets to the trained
//! checkpoints: what `medclipseg train` runs, callable from a program
//! (`examples/train_eval.rs`). Two steps, so that a caller can write files of its own into the
//! run folder once it is known to be free: [`TrainingRun::prepare`] reads the data, plans the
//! epochs, builds the model and the tokenizer and opens the run folder; [`TrainingRun::fit`]
//! trains.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use clip_encoders::TextConfig;
use medclipseg_model::{MedClipSeg, MedClipSegConfig};

use crate::checkpoint::Vocabulary;
use crate::error::{PipelineError, Result};
use crate::predictor::write_atomic;
use crate::prompts::Prompts;
use crate::run_config::RunConfig;
use crate::run_data::RunRecords;
use crate::run_files::write_json;
use crate::seeds::NoiseSource;
use crate::train_observer::{RunNotice, TrainObserver};
use crate::trainer::{RunFolder, TrainData, TrainSummary, Trainer, init_model, load_backbone};

/// What a training run is: its config and where it goes.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The run config (validated by [`TrainingRun::prepare`]).
    pub config: RunConfig,
    /// The run folder.
    pub out: PathBuf,
    /// Continue the run `out` holds.
    pub resume: bool,
    /// Where the adapters' noise is drawn.
    pub noise: NoiseSource,
}

/// A run ready to train: data, model and tokenizer built, the run folder opened.
pub struct TrainingRun<B: AutodiffBackend> {
    /// The run config with `train.epochs` raised to the planned epochs.
    pub config: RunConfig,
    /// The model config it resolves to.
    pub model_config: MedClipSegConfig,
    trainer: Trainer<B>,
    data: TrainData,
    prompts: Prompts,
    vocabulary: Option<Vocabulary>,
}

impl<B: AutodiffBackend> TrainingRun<B> {
    /// Validates the config, reads the sheets, plans the epochs, builds the loaders, the model
    /// (seeded, with the backbone weights when given) and the tokenizer, opens the run folder
    /// (refusing one that holds a run unless resuming) and writes `config.toml` and
    /// `model_config.json` into it.
    pub fn prepare(
        request: &TrainRequest,
        devices: Vec<B::Device>,
        observer: &mut dyn TrainObserver,
    ) -> Result<Self> {
        let config = &request.config;
        config.validate()?;
        let model_config = config.model_config()?;
        config.check_backbone(&model_config)?;
        let Some(device) = devices.first().cloned() else {
            return Err(PipelineError::BadInput("no device to train on".into()));
        };
        let records = RunRecords::read(config)?;
        for problem in &records.problems {
            observer.notice(&RunNotice::RowSkipped(problem.clone()));
        }
        let n_train = records.train.len();
        let config = config.with_planned_epochs(n_train);
        if config.train.epochs > request.config.train.epochs {
            observer.notice(&RunNotice::EpochsRaised {
                min_steps: config.train.min_steps,
                n_train,
                steps_per_epoch: config.steps_per_epoch(n_train),
                planned: config.train.epochs,
                configured: request.config.train.epochs,
            });
        }
        if !records.has_validation_sheet {
            observer.notice(&RunNotice::NoValidation {
                dataset: config.dataset_dir(),
                sheet: med_datasets::SheetKind::Val(config.percent()?).to_string(),
            });
        }
        let train_prompts = records.train_prompts();
        let preprocess = config.preprocess(model_config.image_size());
        if preprocess.size != model_config.image_size() {
            return Err(PipelineError::InputSize {
                size: preprocess.size,
                image_size: model_config.image_size(),
            });
        }
        let data = TrainData::for_run(&config, records, &preprocess)?;
        let model = initial_model::<B>(&config, &model_config, &device, observer)?;
        let run = RunFolder {
            dir: request.out.clone(),
            run_config: Some(config.clone()),
            resume: request.resume,
        };
        let settings = config.train_settings(request.noise)?;
        let trainer = Trainer::open(model, model_config.clone(), settings, devices, run)?;
        if request.resume {
            observer.notice(&RunNotice::Resuming {
                dir: request.out.clone(),
                epochs_done: trainer.state().epochs_done,
            });
        }
        write_run_files(&request.out, &config, &model_config)?;
        let vocab = match config.vocab_path() {
            Some(path) => Some(path),
            None => built_vocab(
                &config,
                &model_config.text,
                &train_prompts,
                &request.out,
                observer,
            )?,
        };
        let prompts = Prompts::for_tower(&model_config.text, vocab.as_deref())?;
        let vocabulary = vocab.as_deref().map(Vocabulary::read).transpose()?;
        Ok(Self {
            config,
            model_config,
            trainer,
            data,
            prompts,
            vocabulary,
        })
    }

    /// Trains the remaining epochs (at most `stop_after` in this call): see [`Trainer::fit`].
    pub fn fit(
        &mut self,
        stop_after: Option<usize>,
        observer: &mut dyn TrainObserver,
    ) -> Result<TrainSummary> {
        self.trainer.fit(
            &self.data,
            &self.prompts,
            self.vocabulary.as_ref(),
            stop_after,
            observer,
        )
    }

    /// The trainer (its state holds the history of the run).
    pub fn trainer(&self) -> &Trainer<B> {
        &self.trainer
    }
}

/// The model before training: seeded initialisation, plus the backbone weights when given.
fn initial_model<B: AutodiffBackend>(
    config: &RunConfig,
    model_config: &MedClipSegConfig,
    device: &B::Device,
    observer: &mut dyn TrainObserver,
) -> Result<MedClipSeg<B>> {
    let model = init_model::<B>(model_config, config.train.seed, device);
    if let Some(backbone) = &config.model.backbone_checkpoint {
        return load_backbone(model, backbone, device);
    }
    if model_config.freeze_encoders {
        observer.notice(&RunNotice::RandomFrozenTowers);
    }
    Ok(model)
}

/// `config.toml` (the planned run config) and `model_config.json` of a run folder.
fn write_run_files(out: &Path, config: &RunConfig, model: &MedClipSegConfig) -> Result<()> {
    let toml = toml::to_string(config).map_err(|e| PipelineError::BadInput(e.to_string()))?;
    write_atomic(&out.join("config.toml"), toml.as_bytes())?;
    write_json(&out.join("model_config.json"), model)
}

/// With no vocabulary given and no pretrained text tower to match, a BERT tower gets a
/// vocabulary built from the training prompts, written to `<out>/vocab.txt` (and from there
/// into every checkpoint's metadata, where `eval` and `predict` find it).
fn built_vocab(
    config: &RunConfig,
    text: &TextConfig,
    train_prompts: &[String],
    out: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<Option<PathBuf>> {
    let TextConfig::Bert(bert) = text else {
        return Ok(None);
    };
    if config.model.backbone_checkpoint.is_some() {
        // A pretrained tower needs its own vocabulary: `Prompts::for_tower` says so.
        return Ok(None);
    }
    let prompts = train_prompts.iter().map(String::as_str);
    let vocab = med_datasets::prompt_vocabulary(prompts, bert.vocab_size);
    let path = out.join("vocab.txt");
    write_atomic(&path, vocab.to_text().as_bytes())?;
    observer.notice(&RunNotice::VocabularyBuilt {
        dataset: config.dataset.name.clone(),
        tokens: vocab.tokens.len(),
        prompts: train_prompts.len(),
        path: path.clone(),
        dropped_words: vocab.dropped_words,
        rows: bert.vocab_size,
    });
    Ok(Some(path))
}
