//! Conformal calibration of the mask threshold with a model: Monte-Carlo predictions over a
//! labelled calibration set feed [`seg_metrics::conformal`] (the math, Burn-free).
//!
//! ```no_run
//! use burn::backend::Flex;
//! use medclipseg_pipeline::{Calibrator, Predictor, calibrator};
//! use seg_metrics::conformal::Risk;
//!
//! let device = Default::default();
//! let predictor = Predictor::<Flex>::load("busi.safetensors", &device)?.with_samples(30);
//! let items = calibrator::items_from_folders("val/img".as_ref(), "val/label".as_ref(), "a tumour")?;
//! let set = Calibrator::new(&predictor).measure(&items, &mut |_, _| {})?;
//! let result = set.calibrate(Risk::Fnr, 0.1)?;
//! println!("threshold {} keeps the missed lesion fraction <= 0.1 on average", result.threshold);
//! # Ok::<(), medclipseg_pipeline::PipelineError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use seg_metrics::BinaryMask;
use seg_metrics::conformal::{
    CalibrationFile, CrcResult, Risk, ThresholdCounts, calibrate_threshold, threshold_value,
};
use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result};
use crate::predictor::Predictor;

/// One labelled calibration image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationItem {
    /// The image.
    pub image: PathBuf,
    /// Its ground-truth mask (non-zero is lesion), at the image's size.
    pub mask: PathBuf,
    /// Its prompt.
    pub prompt: String,
}

/// The items of a dataset sheet (e.g. the `Val` split).
pub fn items_from_records(records: &[med_datasets::Record]) -> Vec<CalibrationItem> {
    records
        .iter()
        .map(|r| CalibrationItem {
            image: r.image_path.clone(),
            mask: r.mask_path.clone(),
            prompt: r.prompt.trim().to_string(),
        })
        .collect()
}

/// Images of `images` paired by file stem with the masks of `labels`, all with `prompt`.
/// An image without a mask is an error naming it.
pub fn items_from_folders(
    images: &Path,
    labels: &Path,
    prompt: &str,
) -> Result<Vec<CalibrationItem>> {
    let masks: BTreeMap<String, PathBuf> = image_files(labels)?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    let items: Vec<CalibrationItem> = image_files(images)?
        .into_iter()
        .map(|image| {
            let mask = masks.get(&stem(&image)).cloned().ok_or_else(|| {
                PipelineError::BadInput(format!(
                    "{}: no mask with the same name in {}",
                    image.display(),
                    labels.display()
                ))
            })?;
            Ok(CalibrationItem {
                image,
                mask,
                prompt: prompt.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    if items.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "{}: no images found",
            images.display()
        )));
    }
    Ok(items)
}

/// The image files of a folder, sorted.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::run_files::folder_entries(dir, crate::run_files::is_image_file)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a calibration file (`--calibration FILE` of predict, eval and serve) and checks that it
/// was made with `checkpoint`: another model's threshold carries no guarantee, so a different
/// checkpoint hash is an error naming the file and both hashes.
pub fn read_calibration_for(path: &Path, checkpoint: &Path) -> Result<CalibrationFile> {
    let file = CalibrationFile::read(path)?;
    file.check_checkpoint(&sha256_file(checkpoint)?)
        .map_err(|e| PipelineError::BadInput(format!("{}: {e}", path.display())))?;
    Ok(file)
}

/// What a calibrated threshold means, for provenance and API answers: risk, α, threshold λ̂
/// (`mask = probability ≥ λ̂`), n, prompt style, calibration hash, the guarantee in words and,
/// with a second level, the uncertain band `[low, high)`.
pub fn calibration_note(file: &CalibrationFile) -> serde_json::Value {
    let band = file.band.as_ref().zip(file.band_range());
    serde_json::json!({
        "risk": file.risk,
        "alpha": file.alpha,
        "threshold": threshold_value(file.threshold),
        "n": file.n,
        "prompt_style": file.prompt_style,
        "calibration_sha256": file.calibration_sha256,
        "statement": file.statement,
        "band": band.map(|(band, (low, high))| serde_json::json!({
            "alpha": band.alpha,
            "threshold": threshold_value(band.threshold),
            "low": threshold_value(low),
            "high": threshold_value(high),
        })),
    })
}

/// [`calibration_note`] for outputs that write the uncertain band: the band entry also says
/// where its masks are (`masks`, e.g. `"band/<name>.png: pixels with low <= probability < high"`).
pub fn calibration_note_with_band_masks(file: &CalibrationFile, masks: &str) -> serde_json::Value {
    let mut note = calibration_note(file);
    if let Some(band) = note.get_mut("band").and_then(|b| b.as_object_mut()) {
        band.insert("masks".into(), masks.into());
    }
    note
}

/// Runs the model over a labelled set and collects what calibration needs.
pub struct Calibrator<'a, B: Backend> {
    predictor: &'a Predictor<B>,
}

/// The per-image statistics of a calibration set and its fingerprint.
#[derive(Debug, Clone)]
pub struct CalibrationSet {
    /// Pixel counts of each image at every grid threshold.
    pub counts: Vec<ThresholdCounts>,
    /// SHA-256 over every image's bytes, mask bytes and prompt, in order.
    pub sha256: String,
}

impl CalibrationSet {
    /// The conformal threshold for `risk` at level `alpha` (errors: α outside (0, 1), no
    /// lesion pixel in the set, too few images for α).
    pub fn calibrate(&self, risk: Risk, alpha: f64) -> Result<CrcResult> {
        Ok(calibrate_threshold(&self.counts, risk, alpha)?)
    }
}

impl<'a, B: Backend> Calibrator<'a, B> {
    /// A calibrator predicting with `predictor` (its samples, seed and noise).
    pub fn new(predictor: &'a Predictor<B>) -> Self {
        Self { predictor }
    }

    /// Predicts every item (image `i` keyed `i` for its noise) and counts its pixels against
    /// its mask; `progress(done, total)` after each. A mask whose size differs from its image
    /// is an error naming both.
    pub fn measure(
        &self,
        items: &[CalibrationItem],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<CalibrationSet> {
        let mut hasher = Sha256::new();
        let mut counts = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            counts.push(self.measure_one(item, index as u64, &mut hasher)?);
            progress(index + 1, items.len());
        }
        Ok(CalibrationSet {
            counts,
            sha256: hex(&hasher.finalize()),
        })
    }

    fn measure_one(
        &self,
        item: &CalibrationItem,
        key: u64,
        hasher: &mut Sha256,
    ) -> Result<ThresholdCounts> {
        for path in [&item.image, &item.mask] {
            let bytes = std::fs::read(path).map_err(|source| PipelineError::Read {
                path: path.clone(),
                source,
            })?;
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        hasher.update(item.prompt.as_bytes());
        hasher.update([0]);
        let image = crate::read_image(&item.image)?;
        let truth = seg_metrics::read_mask(&item.mask, false)?;
        if (truth.rows(), truth.cols()) != (image.height, image.width) {
            return Err(PipelineError::BadInput(format!(
                "{}: the mask is {}x{} but the image {} is {}x{} (rows x cols)",
                item.mask.display(),
                truth.rows(),
                truth.cols(),
                item.image.display(),
                image.height,
                image.width
            )));
        }
        let prediction = self
            .predictor
            .predict_image_keyed(&image, &item.prompt, key)?;
        Ok(ThresholdCounts::new(&prediction.probability, truth.data())?)
    }
}

/// Draws the calibration's risk against the threshold, with the conformal bound, α and the
/// calibrated threshold marked, as a PNG (atomically).
pub fn write_risk_curve_png(result: &CrcResult, path: &Path) -> Result<()> {
    use seg_viz::palette::TAB10;
    use seg_viz::plot::{LinePlot, Series};
    let curve = &result.curve;
    let points = |values: &[f64]| -> Vec<(f64, f64)> {
        curve
            .thresholds
            .iter()
            .zip(values)
            .filter(|(t, _)| **t <= 1.0)
            .map(|(&t, &v)| (f64::from(t), v))
            .collect()
    };
    let top = curve
        .bound
        .iter()
        .cloned()
        .fold(result.alpha, f64::max)
        .min(1.0)
        * 1.05;
    let t_hat = f64::from(result.threshold.min(1.0));
    let label = result.risk.label();
    let plot = LinePlot::new(
        format!("{label} vs threshold ({} calibration images)", result.n),
        "threshold (mask: probability >= threshold)",
        label,
    )
    .with_x_range(0.0, 1.0)
    .with_y_range(0.0, top)
    .with_series(Series::new(
        format!("calibration {label}"),
        points(&curve.risk),
        TAB10[0],
    ))
    .with_series(Series::new(
        "conformal bound",
        points(&curve.bound),
        TAB10[1],
    ))
    .with_series(Series::new(
        format!("alpha = {}", result.alpha),
        vec![(0.0, result.alpha), (1.0, result.alpha)],
        TAB10[7],
    ))
    .with_series(Series::new(
        format!("calibrated threshold {:.3}", result.threshold),
        vec![(t_hat, 0.0), (t_hat, top)],
        TAB10[3],
    ));
    Ok(plot.write_png(path)?)
}
