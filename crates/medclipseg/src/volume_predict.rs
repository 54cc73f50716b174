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
use med_datasets::imaging::Image8;
use med_volumes::{
    DicomVolume, Input, InputOptions, IntensityMap, IntensitySource, OutputKind, Volume,
    VolumeIndex, is_nifti_path, nifti_stem,
};
use medclipseg_pipeline::VolumePrediction;
use seg_metrics::conformal::CalibrationFile;
use serde::Serialize;

use crate::backend;
use crate::predict_cmd::{PredictRequest, load_predictor};
use crate::store::{self, Provenance};

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

/// `<out>/volume.json`.
#[derive(Debug, Serialize)]
struct VolumeRecord {
    input: String,
    prompt: String,
    shape: [usize; 3],
    spacing: [f64; 3],
    axis: usize,
    slices: usize,
    intensity: String,
    intensity_source: String,
    intensity_bounds: [f64; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    photometric: Option<String>,
    monochrome1_inverted: bool,
    mask: String,
    entropy: String,
    /// The uncertain band (a calibration with two levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    band: Option<String>,
    foreground_voxels: usize,
    foreground_fraction: f64,
    mean_uncertainty: f64,
}

/// True when `predict` should treat `input` as a volume: a NIfTI file (by name or content), a
/// multi-frame DICOM file, or a folder with DICOM files and no 2-D images. A single-frame DICOM
/// file is a 2-D image.
pub fn is_volume_input(input: &Path, image_extensions: &[&str]) -> bool {
    if is_nifti_path(input) || med_volumes::nifti_header_size(input).is_some() {
        return true;
    }
    if input.is_file() {
        return med_volumes::is_dicom_file(input)
            && med_volumes::dicom_frame_count(input).is_ok_and(|n| n > 1);
    }
    let Ok(entries) = std::fs::read_dir(input) else {
        return false;
    };
    let files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    let is_image = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| image_extensions.contains(&e.to_ascii_lowercase().as_str()))
    };
    !files.iter().any(is_image) && files.iter().any(|p| med_volumes::is_dicom_file(p))
}

/// A single-frame DICOM file as the model's BGR image: colour as stored, grey through `window`
/// (else the file's window, else percentiles), MONOCHROME1 inverted. Also says how.
pub fn dicom_image(path: &Path, window: Option<IntensityMap>) -> Result<(Image8, String)> {
    let dicom = med_volumes::read_dicom(path, None)?;
    let [cols, rows, frames] = dicom.volume.dims();
    if frames != 1 {
        bail!(
            "{}: {frames} frames: a volume, not a 2-D image",
            path.display()
        );
    }
    let (map, source) = dicom.intensity(window);
    let bounds = if dicom.rgb.is_some() {
        (0.0, 255.0)
    } else {
        map.bounds(dicom.volume.data())?
    };
    let rgb = dicom.rgb8_slice(0, bounds)?;
    Ok((
        bgr_image(cols, rows, &rgb),
        intensity_note(&dicom, &map, source),
    ))
}

fn intensity_note(dicom: &DicomVolume, map: &IntensityMap, source: IntensitySource) -> String {
    if dicom.monochrome1_inverted {
        tracing::info!("MONOCHROME1 (high values dark): inverted before the model");
    }
    let inverted = if dicom.monochrome1_inverted {
        ", MONOCHROME1 inverted"
    } else {
        ""
    };
    match source {
        IntensitySource::Colour => format!("{source} ({}){inverted}", dicom.photometric),
        _ => format!("{map:?}: {source}{inverted}"),
    }
}

/// Row-major RGB bytes as the pipeline's BGR image.
fn bgr_image(width: usize, height: usize, rgb: &[u8]) -> Image8 {
    Image8 {
        width,
        height,
        channels: 3,
        data: rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
    }
}

/// One volume to predict and where its outputs go.
struct VolumeJob {
    volume: Volume,
    dicom: Option<Box<DicomVolume>>,
    volume_index: Option<usize>,
    name: String,
}

/// The volumes of the input: one, or those `--volume-index` picks from a 4-D NIfTI.
fn volume_jobs(request: &PredictRequest, options: &VolumeOptions) -> Result<Vec<VolumeJob>> {
    let input_options = InputOptions {
        series: options.series.clone(),
        volume_index: options.volume_index,
    };
    let name = volume_name(&request.input);
    Ok(
        match med_volumes::open_input(&request.input, &input_options)? {
            Input::Nifti(volumes) => {
                let indices: Vec<Option<usize>> = match options.volume_index {
                    None => vec![None],
                    Some(VolumeIndex::One(t)) => vec![Some(t)],
                    Some(VolumeIndex::All) => (0..volumes.len()).map(Some).collect(),
                };
                volumes
                    .into_iter()
                    .zip(indices)
                    .map(|(volume, t)| VolumeJob {
                        volume,
                        dicom: None,
                        volume_index: t,
                        name: t.map_or(name.clone(), |t| format!("{name}_t{t:03}")),
                    })
                    .collect()
            }
            Input::Dicom(dicom) => vec![VolumeJob {
                volume: dicom.volume.clone(),
                dicom: Some(dicom),
                volume_index: None,
                name,
            }],
            Input::Image2d(path) => bail!("{}: not a volume", path.display()),
        },
    )
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
    let jobs = volume_jobs(request, options)?;
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
        job.volume.slice_count(axis)?;
        if job.dicom.as_ref().is_some_and(|d| d.rgb.is_some()) && axis != 2 {
            bail!(
                "{}: a colour image is sliced along its frames only (--axis 2)",
                request.input.display()
            );
        }
        options.intensity.bounds(job.volume.data())?;
    }
    let pending: Vec<&VolumeJob> = jobs
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
    for job in pending {
        let (mask_path, entropy_path) = outputs(&job.name);
        let (mut prediction, intensity, source) = match &job.dicom {
            Some(dicom) => {
                let (map, source) = dicom.intensity(given);
                let note = intensity_note(dicom, &map, source);
                let prediction = if dicom.rgb.is_some() {
                    let [cols, rows, _] = dicom.volume.dims();
                    let image = |k: usize, _: &med_volumes::Slice2d| {
                        let rgb = dicom.rgb8_slice(k, (0.0, 255.0)).unwrap_or_default();
                        bgr_image(cols, rows, &rgb)
                    };
                    predictor.predict_slices(&job.volume, &prompt, axis, &image)?
                } else {
                    predictor.predict_volume(&job.volume, &prompt, axis, &map)?
                };
                (prediction, format!("{map:?}"), note)
            }
            None => {
                let source = if options.window_given {
                    IntensitySource::Given
                } else {
                    IntensitySource::Default
                };
                let prediction =
                    predictor.predict_volume(&job.volume, &prompt, axis, &options.intensity)?;
                (
                    prediction,
                    format!("{:?}", options.intensity),
                    source.to_string(),
                )
            }
        };
        let band_path = match &calibration {
            Some(file) => apply_calibration(&mut prediction, file, &request.out, &job.name)?,
            None => None,
        };
        let mask_path = match (&job.dicom, options.dicom_seg) {
            (Some(dicom), true) => {
                let seg = request.out.join(format!("{}.seg.dcm", job.name));
                med_volumes::write_dicom_seg(&seg, dicom, &prediction.mask, &prompt)?;
                seg
            }
            (None, true) => bail!(
                "{}: --output-format dicom-seg needs DICOM input",
                request.input.display()
            ),
            _ => {
                med_volumes::write_nifti(&mask_path, &prediction.mask, OutputKind::Labels)?;
                mask_path
            }
        };
        med_volumes::write_nifti(&entropy_path, &prediction.entropy, OutputKind::Float)?;
        let mut record = volume_record(
            request,
            &job.volume,
            &prompt,
            &prediction,
            [&mask_path, &entropy_path],
        );
        record.intensity = intensity;
        record.intensity_source = source;
        record.volume_index = job.volume_index;
        record.photometric = job.dicom.as_ref().map(|d| d.photometric.clone());
        record.monochrome1_inverted = job.dicom.as_ref().is_some_and(|d| d.monochrome1_inverted);
        record.band = band_path.map(|p| p.display().to_string());
        tracing::info!(
            "{} slices along axis {axis} -> {}",
            prediction.slices,
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
    provenance.calibration = calibration.as_ref().map(calibration_note);
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

/// What the provenance says about a calibrated threshold (the library's note, plus where the
/// band volumes are).
fn calibration_note(file: &CalibrationFile) -> serde_json::Value {
    let mut note = medclipseg_pipeline::calibrator::calibration_note(file);
    if let Some(band) = note.get_mut("band").and_then(|b| b.as_object_mut()) {
        band.insert(
            "masks".into(),
            "<name>_band.nii.gz: voxels with low <= probability < high".into(),
        );
    }
    note
}

fn volume_record(
    request: &PredictRequest,
    volume: &Volume,
    prompt: &str,
    prediction: &VolumePrediction,
    [mask_path, entropy_path]: [&Path; 2],
) -> VolumeRecord {
    let voxels = prediction.mask.data().len();
    let foreground = prediction.mask.data().iter().filter(|&&v| v > 0.0).count();
    let entropy_sum: f64 = prediction
        .entropy
        .data()
        .iter()
        .map(|&e| f64::from(e))
        .sum();
    VolumeRecord {
        input: request.input.display().to_string(),
        prompt: prompt.to_string(),
        shape: volume.dims(),
        spacing: volume.spacing(),
        axis: prediction.axis,
        slices: prediction.slices,
        intensity: String::new(),
        intensity_source: String::new(),
        intensity_bounds: prediction.intensity_bounds,
        volume_index: None,
        photometric: None,
        monochrome1_inverted: false,
        mask: mask_path.display().to_string(),
        entropy: entropy_path.display().to_string(),
        band: None,
        foreground_voxels: foreground,
        foreground_fraction: foreground as f64 / voxels.max(1) as f64,
        mean_uncertainty: entropy_sum / voxels.max(1) as f64,
    }
}

/// `case.nii.gz` → `case`; a DICOM folder or file → its name (`scan.dcm` → `scan`).
pub fn volume_name(input: &Path) -> String {
    if is_nifti_path(input) {
        nifti_stem(input)
    } else if input.is_file() {
        input
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "volume".into())
    } else {
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "volume".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_inputs_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_volume_input(Path::new("scan.nii.gz"), &["png"]));
        assert!(!is_volume_input(dir.path(), &["png"]));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM....");
        std::fs::write(dir.path().join("IM0001"), &dicom).unwrap();
        assert!(is_volume_input(dir.path(), &["png"]));
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        assert!(!is_volume_input(dir.path(), &["png"]));
        assert_eq!(volume_name(Path::new("a/case_7.nii")), "case_7");
        assert_eq!(volume_name(Path::new("a/series_3")), "series_3");
    }
}
