//! `medclipseg train`: the reference recipe with atomic checkpoints, exact resume, per-epoch
//! metrics (CSV, JSONL, PNG curve) and progress bars.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use med_datasets::{
    Augmentation, ChannelOrder, DataLoader, LoaderConfig, Percent, PreprocessConfig, ReadOptions,
    Record, SheetKind, read_records,
};
use medclipseg_model::train::{ModelOptimizer, StepLosses, cosine_lr, reference_adam, train_step};
use medclipseg_model::{LoadScope, MedClipSeg, checkpoint};
use serde::Serialize;

use crate::backend::{self, Train};
use crate::infer::{self, STREAM_DROPOUT, STREAM_INIT, STREAM_TRAIN_NOISE, derive_seed};
use crate::parallel;
use crate::settings::RunConfig;
use crate::store::{self, EpochRecord, Provenance, TrainState};
use crate::text::Prompts;

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

/// `summary.json` of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Validation DSC of the last epoch (one stochastic pass), when a validation split exists.
    pub dsc: Option<f64>,
    /// Best validation DSC and its epoch.
    pub best_dsc: Option<f64>,
    /// Epoch of the best validation DSC.
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
    let loss_config = config.loss_config()?;
    let val_loss_config = config.validation_loss_config()?;
    let devices = backend::devices(&request.device)?;
    // Not every backend's device is `Copy`, so it is cloned.
    #[allow(clippy::clone_on_copy)]
    let device = devices[0].clone();
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
    let planned = plan_epochs(config, train_records.len());
    if planned > config.train.epochs {
        tracing::warn!(
            "train.min_steps {}: {} training images make {} steps per epoch, so {planned} epochs \
             instead of {} (set train.min_steps=0 to keep train.epochs)",
            config.train.min_steps,
            train_records.len(),
            steps_in_epoch(config, train_records.len()),
            config.train.epochs
        );
    }
    let resolved = TrainRequest {
        config: RunConfig {
            train: crate::settings::TrainSection {
                epochs: planned,
                ..config.train.clone()
            },
            ..config.clone()
        },
        ..request.clone()
    };
    let request = &resolved;
    let config = &request.config;
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
    let threads = (config.train.loader_threads > 0).then_some(config.train.loader_threads);
    let train_loader = DataLoader::new(
        train_records,
        preprocess.clone(),
        LoaderConfig {
            num_threads: threads,
            ..LoaderConfig::train(config.train.batch_size, config.train.seed)
        },
    )?;
    let val_loader = DataLoader::new(
        val_records,
        preprocess,
        LoaderConfig {
            num_threads: threads,
            ..LoaderConfig::eval(config.train.batch_size)
        },
    )?;

    // Parameters are initialised from the backend's generator: seed it so runs reproduce.
    <Train as Backend>::seed(&device, derive_seed(config.train.seed, STREAM_INIT, 0, 0));
    let mut model: MedClipSeg<Train> = model_config.init(&device);
    if let Some(backbone) = &config.model.backbone_checkpoint {
        let sd = checkpoint::read(backbone)?;
        let weights = checkpoint::weight_map(&sd)?;
        model = model.load_weights(&weights, LoadScope::Encoders, &device);
        weights
            .finish(false)
            .with_context(|| format!("{}: backbone weights do not fit", backbone.display()))?;
    } else if model_config.freeze_encoders {
        tracing::warn!(
            "model.allow_random_towers: the frozen towers keep their random \
             initialisation (a smoke test, not a result)"
        );
    }
    // Draw every lazily initialised parameter now: clones (one per device) must share values.
    model = model.clone().load_record(model.into_record());
    let mut optimizer: ModelOptimizer<Train> = reference_adam().init();
    let mut state = TrainState {
        epochs_done: 0,
        best: None,
        history: Vec::new(),
        config: config.clone(),
        train_seconds: 0.0,
    };
    let pointer = out.join("checkpoints").join("latest.json");
    if request.resume {
        match store::load_resumable(out, model, optimizer, &device)? {
            Some(restored) => {
                model = restored.model;
                optimizer = restored.optimizer;
                state = restored.state;
                tracing::info!(
                    "resuming {} after epoch {}",
                    out.display(),
                    state.epochs_done
                );
            }
            None => bail!(
                "{}: nothing to resume (no checkpoints/latest.json)",
                out.display()
            ),
        }
    } else if pointer.exists() {
        bail!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    write_run_files(out, config, &model_config)?;
    let vocab = match vocab_path(config) {
        Some(path) => Some(path),
        None => built_vocab(config, &model_config.text, &train_prompts, out)?,
    };
    let prompts = Prompts::for_tower(&model_config.text, vocab.as_deref())?;

    let epochs = config.train.epochs;
    let last_epoch = request
        .stop_after
        .map_or(epochs, |n| (state.epochs_done + n).min(epochs));
    let latest_path = out.join("latest.safetensors");
    let best_path = out.join("best.safetensors");
    for epoch in state.epochs_done..last_epoch {
        let started = Instant::now();
        let lr = cosine_lr(
            epoch,
            epochs,
            config.train.learning_rate,
            config.train.min_lr,
        );
        let (next, means) = if devices.len() > 1 {
            let job = parallel::ParallelEpoch {
                devices: &devices,
                loader: &train_loader,
                prompts: &prompts,
                loss: &loss_config,
                epoch,
                lr,
                seed: config.train.seed,
                steps: steps_per_epoch(config, &train_loader),
            };
            let (next, next_optimizer, means) = parallel::run_epoch(model, optimizer, &job)?;
            optimizer = next_optimizer;
            (next, means)
        } else {
            run_epoch(
                model,
                &mut optimizer,
                &train_loader,
                &prompts,
                &loss_config,
                epoch,
                lr,
                request,
                &device,
            )?
        };
        model = next;
        let inference = model.valid();
        let validation = infer::validate(
            &inference,
            val_loader.iter_epoch(0),
            &prompts,
            &val_loss_config,
            derive_seed(config.train.seed, 0, epoch as u64, 0),
            &device,
        )?;
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
        tracing::info!("{}", epoch_line(&record, epochs));
        state.history.push(record);
        state.epochs_done = epoch + 1;
        state.train_seconds += started.elapsed().as_secs_f64();
        let metadata = store::checkpoint_metadata(config, vocab.as_deref(), epoch + 1)?;
        checkpoint::save(&model, &model_config, &metadata, &latest_path)?;
        let improved = match (validation, state.best) {
            (Some(v), Some((best, _))) => v.dice > best,
            (Some(_), None) => true,
            // Without a validation split the latest epoch is the best one.
            (None, _) => true,
        };
        if improved {
            state.best = validation.map(|v| (v.dice, epoch + 1));
            checkpoint::save(&model, &model_config, &metadata, &best_path)?;
        }
        store::save_resumable(out, &model, &optimizer, &state)?;
        write_metrics(out, &state.history)?;
    }
    if let Some(warning) = stuck_at_zero_warning(&state.history) {
        tracing::warn!("{warning}");
    }
    let summary = TrainSummary {
        dsc: state.history.last().and_then(|r| r.val_dice),
        best_dsc: state.best.map(|b| b.0),
        best_epoch: state.best.map(|b| b.1),
        n_images: val_loader.num_samples(),
        n_train_images: train_loader.num_samples(),
        epochs: state.epochs_done,
        final_train_loss: state.history.last().map(|r| r.train_total),
        best: best_path,
        latest: latest_path,
        train_seconds: state.train_seconds,
    };
    store::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// One pass over the training split; returns the model and the mean losses.
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    mut model: MedClipSeg<Train>,
    optimizer: &mut ModelOptimizer<Train>,
    loader: &DataLoader,
    prompts: &Prompts,
    loss: &seg_losses::SegLossConfig,
    epoch: usize,
    lr: f64,
    request: &TrainRequest,
    device: &backend::Device,
) -> Result<(MedClipSeg<Train>, StepLosses)> {
    let config = &request.config;
    let steps = steps_per_epoch(config, loader);
    let bar = progress_bar(steps as u64, request.quiet);
    bar.set_message(format!("epoch {}/{}", epoch + 1, config.train.epochs));
    let mut sums = StepLosses {
        dice: 0.0,
        bce: 0.0,
        softcon: 0.0,
        total: 0.0,
    };
    let seed = config.train.seed;
    for (step, batch) in loader.iter_epoch(epoch as u64).take(steps).enumerate() {
        let batch = batch?;
        let tensors = infer::to_tensors::<Train>(&batch, prompts, device)?;
        <Train as Backend>::seed(
            device,
            derive_seed(seed, STREAM_DROPOUT, epoch as u64, step as u64),
        );
        let noise_seed = derive_seed(seed, STREAM_TRAIN_NOISE, epoch as u64, step as u64);
        let mut noise = crate::backend::noise::<Train>(noise_seed, noise_seed, device);
        let (next, result) = train_step(model, optimizer, &tensors, loss, lr, &mut noise);
        model = next;
        let values = result.map_err(|e| {
            anyhow::anyhow!(
                "{e}: training stopped at epoch {} step {} (batch {:?}); the last good checkpoint \
                 is {} (resume with --resume after fixing the cause)",
                epoch + 1,
                step + 1,
                batch.names,
                request.out.join("latest.safetensors").display()
            )
        })?;
        sums.dice += values.dice;
        sums.bce += values.bce;
        sums.softcon += values.softcon;
        sums.total += values.total;
        bar.set_message(format!(
            "epoch {}/{} loss {:.4}",
            epoch + 1,
            config.train.epochs,
            values.total
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = steps.max(1) as f64;
    Ok((
        model,
        StepLosses {
            dice: sums.dice / n,
            bce: sums.bce / n,
            softcon: sums.softcon / n,
            total: sums.total / n,
        },
    ))
}

/// Batches per epoch: the whole split, or `train.max_steps_per_epoch`.
fn steps_per_epoch(config: &RunConfig, loader: &DataLoader) -> usize {
    steps_in_epoch(config, loader.num_samples())
}

/// [`steps_per_epoch`] for `n_train` images (the loader keeps the last, short batch).
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

/// `metrics.csv`, `metrics.jsonl` and `loss_curve.png` from the history so far.
fn write_metrics(out: &Path, history: &[EpochRecord]) -> Result<()> {
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    csv.write_record([
        "epoch",
        "lr",
        "train_loss",
        "train_dice",
        "train_bce",
        "train_softcon",
        "val_loss",
        "val_dice",
        "seconds",
    ])?;
    let mut jsonl = String::new();
    for r in history {
        csv.write_record([
            r.epoch.to_string(),
            format!("{:.6e}", r.lr),
            format!("{:.6}", r.train_total),
            format!("{:.6}", r.train_dice),
            format!("{:.6}", r.train_bce),
            format!("{:.6}", r.train_softcon),
            opt(r.val_loss),
            opt(r.val_dice),
            format!("{:.2}", r.seconds),
        ])?;
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    let csv = csv.into_inner().map_err(|e| e.into_error())?;
    store::write_atomic(&out.join("metrics.csv"), &csv)?;
    store::write_atomic(&out.join("metrics.jsonl"), jsonl.as_bytes())?;
    crate::report::loss_curve(history)?.write_png(&out.join("loss_curve.png"))?;
    Ok(())
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
