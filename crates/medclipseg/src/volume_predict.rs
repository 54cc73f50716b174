//! `medclipseg predict --input VOL.nii.gz | DICOM_DIR`: segments every slice of a volume along one
//! axis with the 2-D model ([`medclipseg_pipeline::Predictor::predict_volume`]) and writes the
//! masks and the uncertainty as NIfTI volumes on the input's grid (shape, affine, spacing,
//! qform/sform of the input).
//!
//! Each slice is mapped to 8-bit grey with one [`IntensityMap`] whose bounds are computed over the
//! whole volume (a CT window, or percentiles), replicated to three channels and preprocessed like
//! a PNG; the mean probability is resized bilinearly back to the slice, then thresholded at 0.5.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use med_volumes::{InputOptions, IntensityMap, OutputKind, VolumeIndex};
use medclipseg_pipeline::{VolumeFiles, VolumeInput, VolumePrediction, VolumeRecord, volume_name};
use seg_metrics::conformal::CalibrationFile;

use crate::backend;
use crate::observers::CutPrompts;
use crate::predict_cmd::{PredictRequest, load_predictor};
use crate::store::{self, Provenance};

/// Where the provenance says the uncertain band's masks are.
const BAND_MASKS: &str = "<name>_band.nii.gz: voxels with low <= probability < high";

/// Volume-only options of `predict`.
#[derive(Debug, Clone, Default)]
pub struct VolumeOptions {
    /// Axis to slice along (0 = i, 1 = j, 2 = k); `None` = the last.
    pub axis: Option<usize>,
    /// Intensity mapping to 8 bits.
    pub intensity: IntensityMap,
    /// True when `--window` gave `intensity`; otherwise a DICOM file's own window wins.
    pub window_given: bool,
    /// `--series UID`: the series to read from a DICOM folder holding several.
    pub series: Option<String>,
    /// `--volume-index`: the volume(s) of a 4-D NIfTI.
    pub volume_index: Option<VolumeIndex>,
    /// `--output-format dicom-seg`: the mask as a DICOM SEG over a DICOM input (`<name>.seg.dcm`)
    /// instead of a NIfTI mask.
    pub dicom_seg: bool,
    /// `--calibration FILE`: the mask is `probability ≥ λ̂`, and a file with a second level
    /// adds `<name>_band.nii.gz`.
    pub calibration: Option<PathBuf>,
}

/// Runs `predict` on a volume.
pub fn run(request: &PredictRequest, options: &VolumeOptions) -> Result<()> {
    let Some(prompt) = request.prompt.clone() else {
        bail!("a volume needs one prompt: --prompt TEXT (--prompts CSV is for image folders)");
    };
    let outputs = |name: &str| {
        let mask = if options.dicom_seg {
            format!("{name}.seg.dcm")
        } else {
            format!("{name}.nii.gz")
        };
        (
            request.out.join(mask),
            request.out.join(format!("{name}_entropy.nii.gz")),
        )
    };
    if request.resume && !request.input.is_dir() {
        // Cheap check before reading: a plain (not 4-D) input whose outputs exist.
        let (mask, entropy) = outputs(&volume_name(&request.input));
        if options.volume_index.is_none() && mask.is_file() && entropy.is_file() {
            tracing::info!(
                "{}: already predicted (--continue), nothing to do",
                mask.display()
            );
            return Ok(());
        }
    }
    let input_options = InputOptions {
        series: options.series.clone(),
        volume_index: options.volume_index,
    };
    let jobs = medclipseg_pipeline::open_volume_inputs(&request.input, &input_options)?;
    let calibration = options
        .calibration
        .as_deref()
        .map(|path| {
            medclipseg_pipeline::calibrator::read_calibration_for(path, &request.checkpoint)
        })
        .transpose()?;
    let axis = options.axis.unwrap_or(2);
    let given = options.window_given.then_some(options.intensity);
    // A bad axis or window is reported before the model is read.
    for job in &jobs {
        job.check(axis, given)?;
    }
    let pending: Vec<&VolumeInput> = jobs
        .iter()
        .filter(|job| {
            let (mask, entropy) = outputs(&job.name);
            let done = request.resume && mask.is_file() && entropy.is_file();
            if done {
                tracing::info!(
                    "{}: already predicted (--continue), skipped",
                    mask.display()
                );
            }
            !done
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let device = backend::device(&request.device)?;
    let predictor = load_predictor(request, &device)?;
    let mut records = Vec::new();
    CutPrompts::default().check(&predictor, &prompt, &request.input.display().to_string())?;
    for job in pending {
        let (mask_path, entropy_path) = outputs(&job.name);
        if job.dicom.as_ref().is_some_and(|d| d.monochrome1_inverted) {
            tracing::info!("MONOCHROME1 (high values dark): inverted before the model");
        }
        if let Some(uneven) = job.dicom.as_ref().and_then(|d| d.uneven_spacing.as_ref()) {
            tracing::warn!("{}: {uneven}", job.path.display());
        }
        let mut predicted = predictor.predict_volume_input(job, &prompt, axis, given)?;
        let band_path = match &calibration {
            Some(file) => {
                apply_calibration(&mut predicted.prediction, file, &request.out, &job.name)?
            }
            None => None,
        };
        let files = VolumeFiles {
            mask: &mask_path,
            entropy: &entropy_path,
        };
        match (&job.dicom, options.dicom_seg) {
            (Some(dicom), true) => {
                let mask = &predicted.prediction.mask;
                med_volumes::write_dicom_seg(&mask_path, dicom, mask, &prompt)?;
                let entropy = &predicted.prediction.entropy;
                med_volumes::write_nifti(&entropy_path, entropy, OutputKind::Float)?;
            }
            (None, true) => bail!(
                "{}: --output-format dicom-seg needs DICOM input",
                request.input.display()
            ),
            _ => medclipseg_pipeline::write_volume_maps(&predicted.prediction, &files)?,
        }
        let mut record = VolumeRecord::new(job, &prompt, &predicted, &files);
        record.band = band_path.map(|p| p.display().to_string());
        tracing::info!(
            "{} slices along axis {axis} -> {}",
            record.slices,
            record.mask
        );
        records.push(record);
    }
    if records.len() == 1 {
        store::write_json(&request.out.join("volume.json"), &records[0])?;
    } else {
        store::write_json(&request.out.join("volume.json"), &records)?;
    }
    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = Some(prompt);
    provenance.model_config = Some(serde_json::to_value(predictor.config())?);
    let intensities: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({"output": r.mask, "intensity": r.intensity, "source": r.intensity_source})
        })
        .collect();
    provenance.config = Some(serde_json::json!({ "intensity": intensities }));
    provenance.calibration = calibration
        .as_ref()
        .map(|c| medclipseg_pipeline::calibrator::calibration_note_with_band_masks(c, BAND_MASKS));
    provenance.write(&request.out)?;
    Ok(())
}

/// Re-thresholds the mask at the calibrated value and writes the uncertain band
/// (`<name>_band.nii.gz`) when the file has a second level; the band's path.
fn apply_calibration(
    prediction: &mut VolumePrediction,
    file: &CalibrationFile,
    out: &Path,
    name: &str,
) -> Result<Option<PathBuf>> {
    prediction.apply_threshold(file.threshold)?;
    let Some((low, high)) = file.band_range() else {
        return Ok(None);
    };
    let path = out.join(format!("{name}_band.nii.gz"));
    let band = prediction.band_mask(low, high)?;
    med_volumes::write_nifti(&path, &band, OutputKind::Labels)?;
    Ok(Some(path))
}
