//! The files of a training run: resumable checkpoints, the per-epoch metrics and their curve.
//!
//! A resumable checkpoint is a folder `checkpoints/epoch-NNNN/` (model and optimizer as Burn
//! records, plus `state.json`), written completely before `checkpoints/latest.json` is
//! atomically switched to it; a crash mid-write leaves the previous checkpoint in charge.
//! `latest.safetensors` and `best.safetensors` are the portable model files (reference key
//! names, config and vocabulary in the metadata) that evaluation and prediction read.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::ModelOptimizer;
use seg_viz::{LinePlot, Series};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::predictor::write_atomic as write_file;

/// Metrics of one epoch (one row of `metrics.csv`, one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss (weighted total).
    pub train_total: f64,
    /// Mean Dice term.
    pub train_dice: f64,
    /// Mean BCE term.
    pub train_bce: f64,
    /// Mean SoftCon term.
    pub train_softcon: f64,
    /// Validation loss (total), when a validation split exists.
    pub val_loss: Option<f64>,
    /// Validation DSC (one stochastic pass, threshold 0.5), when a validation split exists.
    pub val_dice: Option<f64>,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Progress of a run: what `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Best validation DSC so far and its 1-based epoch (a `[dsc, epoch]` pair in the file).
    pub best: Option<(f64, usize)>,
    /// Per-epoch metrics so far.
    pub history: Vec<EpochRecord>,
    /// The run config the caller gave (`null` when none).
    pub config: Option<crate::run_config::RunConfig>,
    /// Training seconds so far (summed over resumes).
    pub train_seconds: f64,
}

/// The checkpoint folder pointed to by `latest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct LatestPointer {
    dir: String,
    epoch: usize,
}

/// `<run>/checkpoints/latest.json`: present once a run has saved an epoch.
pub fn latest_pointer(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("latest.json")
}

/// Writes `value` as pretty JSON with a final newline, atomically (the one JSON writer:
/// [`seg_viz::write_json`], whose errors name the file).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(seg_viz::write_json(path, value)?)
}

/// Saves a resumable checkpoint and points `latest.json` at it; keeps the two newest.
pub fn save_resumable<B: AutodiffBackend>(
    run_dir: &Path,
    model: &MedClipSeg<B>,
    optimizer: &ModelOptimizer<B>,
    state: &TrainState,
) -> Result<()> {
    let root = run_dir.join("checkpoints");
    let name = format!("epoch-{:04}", state.epochs_done);
    let dir = root.join(&name);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let record_error = |file: &str, e: burn::record::RecorderError| PipelineError::Record {
        path: dir.join(file),
        reason: e.to_string(),
    };
    let model_bytes = Recorder::<B>::record(&recorder, model.clone().into_record(), ())
        .map_err(|e| record_error("model.bin", e))?;
    let optim_bytes = Recorder::<B>::record(&recorder, optimizer.to_record(), ())
        .map_err(|e| record_error("optimizer.bin", e))?;
    write_file(&dir.join("model.bin"), &model_bytes)?;
    write_file(&dir.join("optimizer.bin"), &optim_bytes)?;
    write_json(&dir.join("state.json"), state)?;
    let pointer = LatestPointer {
        dir: name.clone(),
        epoch: state.epochs_done,
    };
    write_json(&root.join("latest.json"), &pointer)?;
    prune_old(&root, &name)
}

/// Removes checkpoint folders older than the previous one.
fn prune_old(root: &Path, keep_newest: &str) -> Result<()> {
    let entries = std::fs::read_dir(root).map_err(|source| PipelineError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("epoch-") && n.as_str() <= keep_newest)
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(2);
    for old in &dirs[..excess] {
        std::fs::remove_dir_all(root.join(old)).ok();
    }
    Ok(())
}

/// A checkpoint restored to resume a run.
pub struct Restored<B: AutodiffBackend> {
    /// The model with its trained weights.
    pub model: MedClipSeg<B>,
    /// The optimizer with its moments.
    pub optimizer: ModelOptimizer<B>,
    /// Progress and history.
    pub state: TrainState,
}

/// Loads the checkpoint `latest.json` points to into `model` and `optimizer`, or `None` when
/// the run has none.
pub fn load_resumable<B: AutodiffBackend>(
    run_dir: &Path,
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    device: &B::Device,
) -> Result<Option<Restored<B>>> {
    let pointer_path = latest_pointer(run_dir);
    if !pointer_path.exists() {
        return Ok(None);
    }
    let pointer: LatestPointer = read_json(&pointer_path)?;
    let dir = run_dir.join("checkpoints").join(&pointer.dir);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let load_error =
        |file: &str, what: &str, e: burn::record::RecorderError| PipelineError::Record {
            path: dir.join(file),
            reason: format!("corrupt {what} record: {e}"),
        };
    let model_record = Recorder::<B>::load(&recorder, read_bytes(&dir.join("model.bin"))?, device)
        .map_err(|e| load_error("model.bin", "model", e))?;
    let optim_record =
        Recorder::<B>::load(&recorder, read_bytes(&dir.join("optimizer.bin"))?, device)
            .map_err(|e| load_error("optimizer.bin", "optimizer", e))?;
    let state: TrainState = read_json(&dir.join("state.json"))?;
    Ok(Some(Restored {
        model: model.load_record(model_record),
        optimizer: optimizer.load_record(optim_record),
        state,
    }))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read_bytes(path)?).map_err(|source| PipelineError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `metrics.csv`, `metrics.jsonl` and `loss_curve.png` of the history so far, in `run_dir`.
pub fn write_metrics(run_dir: &Path, history: &[EpochRecord]) -> Result<()> {
    write_file(&run_dir.join("metrics.csv"), &metrics_csv(history)?)?;
    let mut jsonl = String::new();
    for r in history {
        let line = serde_json::to_string(r).map_err(|source| PipelineError::Json {
            path: run_dir.join("metrics.jsonl"),
            source,
        })?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    write_file(&run_dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    loss_curve(history).write_png(&run_dir.join("loss_curve.png"))?;
    Ok(())
}

/// The rows of `metrics.csv`: 6 decimals, the learning rate in exponent form, empty cells for
/// the validation numbers of a run without a validation split.
fn metrics_csv(history: &[EpochRecord]) -> Result<Vec<u8>> {
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
    }
    Ok(csv
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?)
}

const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];
const GREEN: [u8; 3] = [44, 160, 44];

/// Training loss, validation loss and validation DSC per epoch.
pub fn loss_curve(history: &[EpochRecord]) -> LinePlot {
    let series = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|r| (r.epoch as f64, f(r).unwrap_or(f64::NAN)))
            .collect()
    };
    let mut plot = LinePlot::new("Training", "epoch", "loss / DSC").with_series(
        Series::new("train loss", series(&|r| Some(r.train_total)), BLUE).with_markers(),
    );
    if history.iter().any(|r| r.val_loss.is_some()) {
        plot = plot
            .with_series(Series::new("val loss", series(&|r| r.val_loss), ORANGE).with_markers())
            .with_series(Series::new("val DSC", series(&|r| r.val_dice), GREEN).with_markers());
    }
    plot
}

/// The checkpoint a path stands for: a run folder stands for its `latest.safetensors`, or
/// `best.safetensors` when the run's `config.toml` says `test.use_latest = false` (the
/// reference's `TEST.USE_LATEST`); a file is used as given.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let config_path = path.join("config.toml");
    let use_latest = if config_path.is_file() {
        crate::run_config::RunConfig::from_file(&config_path)?
            .test
            .use_latest
    } else {
        crate::run_config::RunConfig::paper().test.use_latest
    };
    let file = path.join(if use_latest {
        "latest.safetensors"
    } else {
        "best.safetensors"
    });
    if !file.is_file() {
        return Err(PipelineError::NoRunCheckpoint {
            dir: path.to_path_buf(),
            file,
            use_latest,
        });
    }
    Ok(file)
}

/// The entries of folder `dir` that `keep` accepts, sorted by path; an unreadable folder is an
/// error naming it.
pub fn folder_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| PipelineError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    files.sort();
    Ok(files)
}

/// A picture file, by its extension.
pub fn is_image_file(path: &Path) -> bool {
    path.is_file() && med_datasets::imaging::has_image_extension(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_resolves_by_use_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("latest.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("best.safetensors"), b"x").unwrap();
        assert_eq!(
            resolve_checkpoint(dir).unwrap(),
            dir.join("latest.safetensors")
        );
        let mut config = crate::RunConfig::demo();
        config.test.use_latest = false;
        std::fs::write(dir.join("config.toml"), toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(
            resolve_checkpoint(dir).unwrap(),
            dir.join("best.safetensors")
        );
        std::fs::remove_file(dir.join("best.safetensors")).unwrap();
        let err = resolve_checkpoint(dir).unwrap_err().to_string();
        assert!(err.contains("best.safetensors"), "{err}");
        let file = dir.join("latest.safetensors");
        assert_eq!(resolve_checkpoint(&file).unwrap(), file);
    }

    fn record(epoch: usize, val: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 1e-3,
            train_total: 0.5,
            train_dice: 0.25,
            train_bce: 0.25,
            train_softcon: 0.0,
            val_loss: val,
            val_dice: val,
            seconds: 1.234,
        }
    }

    #[test]
    fn metrics_csv_leaves_missing_validation_empty() {
        let bytes = metrics_csv(&[record(1, Some(0.5)), record(2, None)]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "1,1.000000e-3,0.500000,0.250000,0.250000,0.000000,0.500000,0.500000,1.23"
        );
        assert_eq!(
            lines[2],
            "2,1.000000e-3,0.500000,0.250000,0.250000,0.000000,,,1.23"
        );
    }

    #[test]
    fn a_missing_pointer_means_nothing_to_resume_and_a_corrupt_one_is_an_error() {
        use burn::backend::{Autodiff, Flex};
        type B = Autodiff<Flex>;
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let model = medclipseg_model::MedClipSegConfig::micro().init::<B>(&device);
        let optimizer: ModelOptimizer<B> = medclipseg_model::train::reference_adam().init();
        let none = load_resumable(dir.path(), model.clone(), optimizer.clone(), &device).unwrap();
        assert!(none.is_none());
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        std::fs::write(latest_pointer(dir.path()), b"{not json").unwrap();
        let error = match load_resumable(dir.path(), model, optimizer, &device) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a corrupt pointer was accepted"),
        };
        assert!(error.contains("latest.json"), "{error}");
    }
}
