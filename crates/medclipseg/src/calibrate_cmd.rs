//! `medclipseg calibrate`: a conformal risk-controlled mask threshold from a labelled
//! calibration set, through [`medclipseg_pipeline::Calibrator`]. Writes the calibration file
//! (JSON) and, next to it, the risk-vs-threshold figure (`<out stem>.png`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use med_datasets::{Percent, PromptStyle, ReadOptions, SheetKind, read_records};
use medclipseg_pipeline::calibrator::{self, CalibrationItem, sha256_file, write_risk_curve_png};
use medclipseg_pipeline::{Calibrator, LoadedModel, Predictor};
use seg_metrics::conformal::{CalibrationFile, CalibrationProvenance, Risk, check_alpha};

use crate::backend::{self, Inner};

/// Where the calibration images come from.
#[derive(Debug, Clone)]
pub enum CalibrationSource {
    /// A split of a packaged dataset (`val`, or `test` under a prompt style).
    Dataset {
        /// Data root.
        root: PathBuf,
        /// Dataset folder.
        name: String,
        /// `val` or `test`.
        split: String,
        /// Prompt style of the test sheet (the validation sheet has one style: original).
        style: PromptStyle,
    },
    /// A folder of images and one of masks (same file stems), with one prompt.
    Folders {
        /// Images.
        images: PathBuf,
        /// Masks.
        labels: PathBuf,
        /// Prompt of every image.
        prompt: String,
    },
}

/// What to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrateRequest {
    /// Our checkpoint.
    pub checkpoint: PathBuf,
    /// The labelled images.
    pub source: CalibrationSource,
    /// Risk to control.
    pub risk: Risk,
    /// Level.
    pub alpha: f64,
    /// A second level whose threshold bounds the uncertain band with the first.
    pub band_alpha: Option<f64>,
    /// Calibration file to write.
    pub out: PathBuf,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
    /// No progress bar.
    pub quiet: bool,
}

/// The risk-vs-threshold figure written next to a calibration file.
pub fn curve_path(out: &Path) -> PathBuf {
    out.with_extension("png")
}

/// Runs the calibration, writes the file and the figure, returns the file's contents.
pub fn run(request: &CalibrateRequest) -> Result<CalibrationFile> {
    // Bad input is reported before the model is read.
    check_alpha(request.alpha)?;
    if let Some(band_alpha) = request.band_alpha {
        check_alpha(band_alpha).context("--band-alpha")?;
        if band_alpha == request.alpha {
            bail!("--band-alpha {band_alpha} must differ from --alpha");
        }
    }
    let (items, prompt_style) = items(&request.source)?;
    let device = backend::device(&request.device)?;
    let checkpoint_sha256 = sha256_file(&request.checkpoint)?;
    let loaded = LoadedModel::<Inner>::load(&request.checkpoint, &device)?;
    let predictor = Predictor::new(loaded, &device)?
        .with_samples(request.samples)
        .with_seed(request.seed)
        .with_noise(backend::pipeline_noise_source());
    let progress = crate::train_cmd::progress_bar(items.len() as u64, request.quiet);
    progress.set_message("calibrate");
    let set = Calibrator::new(&predictor).measure(&items, &mut |_, _| progress.inc(1))?;
    progress.finish_and_clear();
    let result = set.calibrate(request.risk, request.alpha)?;
    let mut file = CalibrationFile::new(
        &result,
        CalibrationProvenance {
            calibration_sha256: set.sha256.clone(),
            checkpoint_sha256,
            prompt_style,
            samples: request.samples,
        },
    );
    if let Some(band_alpha) = request.band_alpha {
        let band = set
            .calibrate(request.risk, band_alpha)
            .context("--band-alpha")?;
        file = file.with_band(&band)?;
    }
    file.write(&request.out)?;
    let figure = curve_path(&request.out);
    write_risk_curve_png(&result, &figure)?;
    tracing::info!(
        "threshold {:.3} on {} images: {} -> {} (figure {})",
        file.threshold,
        file.n,
        file.statement,
        request.out.display(),
        figure.display()
    );
    Ok(file)
}

/// The calibration items and the prompt style recorded for them.
fn items(source: &CalibrationSource) -> Result<(Vec<CalibrationItem>, String)> {
    match source {
        CalibrationSource::Dataset {
            root,
            name,
            split,
            style,
        } => {
            let (kind, style) = match split.to_ascii_lowercase().as_str() {
                "val" => (SheetKind::Val(Percent::P100), PromptStyle::Original),
                "test" => (SheetKind::Test(*style), *style),
                other => bail!("--split {other:?}: val or test"),
            };
            let sheet = read_records(root, name, kind, ReadOptions::default())
                .with_context(|| format!("{name}: cannot read the {split} sheet"))?;
            for p in &sheet.problems {
                tracing::warn!("{name}: {} row {}: {} (skipped)", p.file, p.row, p.problem);
            }
            if sheet.records.is_empty() {
                bail!("{}: no calibration rows", sheet.sheet_path.display());
            }
            Ok((
                calibrator::items_from_records(&sheet.records),
                style.to_string(),
            ))
        }
        CalibrationSource::Folders {
            images,
            labels,
            prompt,
        } => Ok((
            calibrator::items_from_folders(images, labels, prompt)?,
            "custom".to_string(),
        )),
    }
}
