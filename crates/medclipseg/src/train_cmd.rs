//! `medclipseg train`: the reference recipe with atomic checkpoints, exact resume, per-epoch
//! metrics (CSV, JSONL, PNG curve) and progress bars; a shell over `medclipseg_pipeline`'s
//! [`Trainer`], which runs the loop and writes the run's checkpoints and metrics.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use med_datasets::{
    Augmentation, ChannelOrder, DataLoader, LoaderConfig, Percent, PreprocessConfig, ReadOptions,
    Record, SheetKind, read_records,
};
use medclipseg_model::MedClipSeg;
use medclipseg_pipeline::{
    EpochRecord, EpochStart, PipelineError, RunFolder, StepDone, TrainData, TrainObserver,
    TrainSettings, Trainer, Vocabulary, init_model, load_backbone,
};

use crate::backend::{self, Train};
use crate::settings::RunConfig;
use crate::store::{self, Provenance};
use crate::text::Prompts;

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

/// The preprocessing of a run: faithful reference pipeline unless the config says otherwise.
pub fn preprocess_config(config: &RunConfig, image_size: usize) -> PreprocessConfig {
    let mut p = PreprocessConfig {
        size: if config.dataset.size == 0 {
            image_size
        } else {
            config.dataset.size
        },
        ..PreprocessConfig::default()
    };
    if config.dataset.channel_order == "rgb" {
        p.channel_order = ChannelOrder::Rgb;
    }
    p.augmentation = if config.dataset.rotate {
        Augmentation::default()
    } else {
        Augmentation::none()
    };
    if config.dataset.flips {
        p.augmentation.hflip_prob = 0.5;
        p.augmentation.vflip_prob = 0.5;
    }
    p
}

/// Rows of one prompt sheet; skipped rows are reported on stderr. A repeated image is kept
/// unless `dataset.keep_duplicates` is false (the reference keeps it).
pub fn records(config: &RunConfig, kind: SheetKind) -> Result<Vec<Record>> {
    let options = ReadOptions {
        keep_duplicates: config.dataset.keep_duplicates,
        ..ReadOptions::default()
    };
    let sheet = read_records(&config.dataset.root, &config.dataset.name, kind, options)?;
    for p in &sheet.problems {
        tracing::warn!("{} row {}: {} (skipped)", p.file, p.row, p.problem);
    }
    Ok(sheet.records)
}

/// The validation rows. Only a missing sheet means "no validation" (said in the log, since
/// best.safetensors then follows the latest epoch); a sheet that exists but cannot be read is
/// an error.
pub fn validation_records(config: &RunConfig, kind: SheetKind) -> Result<Vec<Record>> {
    let dataset_dir = config.dataset.root.join(&config.dataset.name);
    if med_datasets::layout::sheet_path(&dataset_dir, kind).is_none() {
        tracing::warn!(
            "{} has no {kind} sheet: training without validation \
             (best.safetensors is the latest epoch)",
            dataset_dir.display()
        );
        return Ok(Vec::new());
    }
    records(config, kind)
}

/// The tokenizer vocabulary of a run: the configured one or the dataset's `vocab.txt`.
pub fn vocab_path(config: &RunConfig) -> Option<PathBuf> {
    config.model.tokenizer.clone().or_else(|| {
        let candidate = config
            .dataset
            .root
            .join(&config.dataset.name)
            .join("vocab.txt");
        candidate.is_file().then_some(candidate)
    })
}

/// Runs (or resumes) a training run and writes its outputs under `request.out`.
pub fn run(request: &TrainRequest) -> Result<TrainSummary> {
    let config = &request.config;
    config.validate()?;
    let model_config = config.model_config()?;
    config.check_backbone(&model_config)?;
    let devices = backend::devices(&request.device)?;
    let out = &request.out;
    let percent = Percent::try_from(config.dataset.percent)
        .map_err(|e| anyhow::anyhow!("dataset.percent: {e}"))?;

    let train_records = records(config, SheetKind::Train(percent))?;
    if train_records.is_empty() {
        bail!(
            "{}: no usable training rows in {}",
            config.dataset.root.join(&config.dataset.name).display(),
            SheetKind::Train(percent)
        );
    }
    let config = &with_planned_epochs(config, train_records.len());
    let val_records = validation_records(config, SheetKind::Val(percent))?;
    let train_prompts: Vec<String> = train_records.iter().map(|r| r.prompt.clone()).collect();
    let preprocess = preprocess_config(config, model_config.image_size());
    if preprocess.size != model_config.image_size() {
        bail!(
            "dataset.size {} differs from the model's image size {}",
            preprocess.size,
            model_config.image_size()
        );
    }
    let data = loaders(config, train_records, val_records, preprocess)?;
    let model = initial_model(config, &model_config, &devices[0])?;
    let run = RunFolder {
        dir: out.clone(),
        run_config: serde_json::to_value(config)?,
        resume: request.resume,
    };
    let settings = train_settings(config)?;
    let mut trainer =
        Trainer::open(model, model_config.clone(), settings, devices, run).map_err(cli_error)?;
    if request.resume {
        tracing::info!(
            "resuming {} after epoch {}",
            out.display(),
            trainer.state().epochs_done
        );
    }
    write_run_files(out, config, &model_config)?;
    let vocab = match vocab_path(config) {
        Some(path) => Some(path),
        None => built_vocab(config, &model_config.text, &train_prompts, out)?,
    };
    let prompts = Prompts::for_tower(&model_config.text, vocab.as_deref())?;
    let vocabulary = vocab.as_deref().map(Vocabulary::read).transpose()?;
    let mut progress = TrainProgress::new(request.quiet);
    let summary = trainer.fit(
        &data,
        &prompts,
        vocabulary.as_ref(),
        request.stop_after,
        &mut progress,
    )?;
    if let Some(warning) = stuck_at_zero_warning(&trainer.state().history) {
        tracing::warn!("{warning}");
    }
    Ok(summary)
}

/// The config with `train.epochs` raised to the planned epochs (said in the log when raised).
fn with_planned_epochs(config: &RunConfig, n_train: usize) -> RunConfig {
    let planned = plan_epochs(config, n_train);
    if planned > config.train.epochs {
        tracing::warn!(
            "train.min_steps {}: {} training images make {} steps per epoch, so {planned} epochs \
             instead of {} (set train.min_steps=0 to keep train.epochs)",
            config.train.min_steps,
            n_train,
            steps_in_epoch(config, n_train),
            config.train.epochs
        );
    }
    RunConfig {
        train: crate::settings::TrainSection {
            epochs: planned,
            ..config.train.clone()
        },
        ..config.clone()
    }
}

/// The training loader (shuffled with `train.seed`) and the validation loader.
fn loaders(
    config: &RunConfig,
    train: Vec<Record>,
    validation: Vec<Record>,
    preprocess: PreprocessConfig,
) -> Result<TrainData> {
    let threads = (config.train.loader_threads > 0).then_some(config.train.loader_threads);
    let train = DataLoader::new(
        train,
        preprocess.clone(),
        LoaderConfig {
            num_threads: threads,
            ..LoaderConfig::train(config.train.batch_size, config.train.seed)
        },
    )?;
    let validation = DataLoader::new(
        validation,
        preprocess,
        LoaderConfig {
            num_threads: threads,
            ..LoaderConfig::eval(config.train.batch_size)
        },
    )?;
    Ok(TrainData { train, validation })
}

/// The model before training: seeded initialisation, plus the backbone weights when given.
fn initial_model(
    config: &RunConfig,
    model_config: &medclipseg_model::MedClipSegConfig,
    device: &backend::Device,
) -> Result<MedClipSeg<Train>> {
    let model = init_model::<Train>(model_config, config.train.seed, device);
    if let Some(backbone) = &config.model.backbone_checkpoint {
        return Ok(load_backbone(model, backbone, device)?);
    }
    if model_config.freeze_encoders {
        tracing::warn!(
            "model.allow_random_towers: the frozen towers keep their random \
             initialisation (a smoke test, not a result)"
        );
    }
    Ok(model)
}

/// The library's recipe from the run config (noise source from the command line).
fn train_settings(config: &RunConfig) -> Result<TrainSettings> {
    Ok(TrainSettings {
        epochs: config.train.epochs,
        learning_rate: config.train.learning_rate,
        min_lr: config.train.min_lr,
        seed: config.train.seed,
        max_steps_per_epoch: config.train.max_steps_per_epoch,
        loss: config.loss_config()?,
        validation_loss: config.validation_loss_config()?,
        noise: backend::pipeline_noise_source(),
    })
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

    fn epoch_finished(&mut self, record: &EpochRecord, epochs: usize) {
        tracing::info!("{}", epoch_line(record, epochs));
    }
}

/// Batches per epoch for `n_train` images: the whole split (the loader keeps the last, short
/// batch), or `train.max_steps_per_epoch`.
fn steps_in_epoch(config: &RunConfig, n_train: usize) -> usize {
    let batches = n_train.div_ceil(config.train.batch_size.max(1));
    config
        .train
        .max_steps_per_epoch
        .map_or(batches, |m| m.min(batches))
}

/// The epochs to run: `train.epochs`, raised until the run makes `train.min_steps` steps.
pub fn plan_epochs(config: &RunConfig, n_train: usize) -> usize {
    let steps = steps_in_epoch(config, n_train).max(1);
    config
        .train
        .epochs
        .max(config.train.min_steps.div_ceil(steps))
}

/// With no vocabulary given and no pretrained text tower to match, a BERT tower gets a
/// vocabulary built from the training prompts, written to `<out>/vocab.txt` (and from there
/// into every checkpoint's metadata, where `eval` and `predict` find it).
fn built_vocab(
    config: &RunConfig,
    text: &clip_encoders::TextConfig,
    train_prompts: &[String],
    out: &Path,
) -> Result<Option<PathBuf>> {
    let clip_encoders::TextConfig::Bert(bert) = text else {
        return Ok(None);
    };
    if config.model.backbone_checkpoint.is_some() {
        // A pretrained tower needs its own vocabulary: `Prompts::for_tower` says so.
        return Ok(None);
    }
    let prompts = train_prompts.iter().map(String::as_str);
    let vocab = med_datasets::prompt_vocabulary(prompts, bert.vocab_size);
    let path = out.join("vocab.txt");
    store::write_atomic(&path, vocab.to_text().as_bytes())?;
    tracing::warn!(
        "no model.tokenizer and no {}/vocab.txt: built a vocabulary of {} tokens from the {} \
         training prompts into {} (stored in the checkpoints){}",
        config.dataset.name,
        vocab.tokens.len(),
        train_prompts.len(),
        path.display(),
        if vocab.dropped_words > 0 {
            format!(
                "; the {} rarest words did not fit the tower's {} rows and are spelled out",
                vocab.dropped_words, bert.vocab_size
            )
        } else {
            String::new()
        }
    );
    Ok(Some(path))
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

fn write_run_files(
    out: &Path,
    config: &RunConfig,
    model: &medclipseg_model::MedClipSegConfig,
) -> Result<()> {
    store::write_atomic(
        &out.join("config.toml"),
        toml::to_string(config)?.as_bytes(),
    )?;
    store::write_atomic(
        &out.join("model_config.json"),
        serde_json::to_string_pretty(model)?.as_bytes(),
    )?;
    let mut provenance = Provenance::new();
    provenance.seed = Some(config.train.seed);
    provenance.config = Some(serde_json::to_value(config)?);
    provenance.model_config = Some(serde_json::to_value(model)?);
    provenance.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset whose training sheet (CSV) lists `a.png` twice, with no validation sheet.
    fn dataset_with_a_repeat(root: &Path) {
        let ds = root.join("Dup");
        for name in ["a.png", "b.png"] {
            for folder in ["img", "label"] {
                let path = ds.join("Train_Folder").join(folder).join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, b"only its existence is checked").unwrap();
            }
        }
        let prompts = ds.join("Prompts_Folder");
        std::fs::create_dir_all(&prompts).unwrap();
        std::fs::write(
            prompts.join("Train_text.csv"),
            "Image,Description,Ground Truth\na.png,one,a.png\nb.png,two,b.png\na.png,three,a.png\n",
        )
        .unwrap();
    }

    #[test]
    fn repeated_training_rows_are_kept_like_the_reference_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        dataset_with_a_repeat(tmp.path());
        let mut config = RunConfig::paper_for("Dup").unwrap();
        config.dataset.root = tmp.path().to_path_buf();
        let kind = SheetKind::Train(Percent::P100);
        assert_eq!(records(&config, kind).unwrap().len(), 3);
        config.dataset.keep_duplicates = false;
        assert_eq!(records(&config, kind).unwrap().len(), 2);
    }

    #[test]
    fn only_a_missing_val_sheet_means_no_validation() {
        let tmp = tempfile::tempdir().unwrap();
        dataset_with_a_repeat(tmp.path());
        let mut config = RunConfig::paper_for("Dup").unwrap();
        config.dataset.root = tmp.path().to_path_buf();
        let kind = SheetKind::Val(Percent::P100);
        assert!(validation_records(&config, kind).unwrap().is_empty());
        let sheet = tmp.path().join("Dup/Prompts_Folder/Val_text.csv");
        std::fs::write(&sheet, "Picture,Words\nx,y\n").unwrap();
        let err = format!("{:#}", validation_records(&config, kind).unwrap_err());
        assert!(err.contains("Val_text.csv"), "{err}");
    }

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
    fn min_steps_raises_the_epochs_of_small_datasets_only() {
        let mut config = RunConfig::demo();
        config.train.batch_size = 16;
        config.train.epochs = 12;
        config.train.min_steps = 300;
        // 11 slices: one step per epoch.
        assert_eq!(plan_epochs(&config, 11), 300);
        // 19 slices: two steps per epoch (the last batch is short, not dropped).
        assert_eq!(plan_epochs(&config, 19), 150);
        // The synthetic demo data (600 images, 38 steps) already makes 456 steps.
        assert_eq!(plan_epochs(&config, 600), 12);
        config.train.max_steps_per_epoch = Some(1);
        assert_eq!(plan_epochs(&config, 600), 300);
        config.train.min_steps = 0;
        assert_eq!(plan_epochs(&config, 11), 12);
    }

    #[test]
    fn the_paper_keeps_the_official_epochs() {
        let config = RunConfig::paper();
        assert_eq!(config.train.min_steps, 0);
        assert_eq!(plan_epochs(&config, 5), config.train.epochs);
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
