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
use med_volumes::{IntensityMap, OutputKind, Volume, is_nifti_path, nifti_stem};
use medclipseg_pipeline::VolumePrediction;
use serde::Serialize;

use crate::backend;
use crate::predict_cmd::{PredictRequest, load_predictor};
use crate::store::{self, Provenance};

/// Volume-only options of `predict`.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// Axis to slice along (0 = i, 1 = j, 2 = k); `None` = the last.
    pub axis: Option<usize>,
    /// Intensity mapping to 8 bits.
    pub intensity: IntensityMap,
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
    intensity_bounds: [f64; 2],
    mask: String,
    entropy: String,
    foreground_voxels: usize,
    foreground_fraction: f64,
    mean_uncertainty: f64,
}

/// True when `predict` should treat `input` as a volume: a `.nii`/`.nii.gz` file, or a folder
/// with DICOM files and no 2-D images.
pub fn is_volume_input(input: &Path, image_extensions: &[&str]) -> bool {
    if is_nifti_path(input) {
        return true;
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
    !files.iter().any(is_image) && files.iter().any(|p| has_dicm_preamble(p))
}

fn has_dicm_preamble(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head[128..] == b"DICM")
}

/// Runs `predict` on a volume.
pub fn run(request: &PredictRequest, options: &VolumeOptions) -> Result<()> {
    let Some(prompt) = request.prompt.clone() else {
        bail!("a volume needs one prompt: --prompt TEXT (--prompts CSV is for image folders)");
    };
    let name = volume_name(&request.input);
    let mask_path = request.out.join(format!("{name}.nii.gz"));
    let entropy_path = request.out.join(format!("{name}_entropy.nii.gz"));
    if request.resume && mask_path.is_file() && entropy_path.is_file() {
        tracing::info!(
            "{}: already predicted (--continue), nothing to do",
            mask_path.display()
        );
        return Ok(());
    }
    let volume = med_volumes::read_volume(&request.input)?;
    let axis = options.axis.unwrap_or(2);
    // A bad axis or window is reported before the model is read.
    volume.slice_count(axis)?;
    options.intensity.bounds(volume.data())?;

    let device = backend::device(&request.device)?;
    let predictor = load_predictor(request, &device)?;
    let prediction = predictor.predict_volume(&volume, &prompt, axis, &options.intensity)?;
    med_volumes::write_nifti(&mask_path, &prediction.mask, OutputKind::Labels)?;
    med_volumes::write_nifti(&entropy_path, &prediction.entropy, OutputKind::Float)?;
    let record = volume_record(
        request,
        options,
        &volume,
        &prompt,
        &prediction,
        [&mask_path, &entropy_path],
    );
    store::write_json(&request.out.join("volume.json"), &record)?;
    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = Some(prompt);
    provenance.model_config = Some(serde_json::to_value(predictor.config())?);
    provenance.write(&request.out)?;
    tracing::info!(
        "{} slices along axis {axis} -> {}",
        prediction.slices,
        record.mask
    );
    Ok(())
}

fn volume_record(
    request: &PredictRequest,
    options: &VolumeOptions,
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
        intensity: format!("{:?}", options.intensity),
        intensity_bounds: prediction.intensity_bounds,
        mask: mask_path.display().to_string(),
        entropy: entropy_path.display().to_string(),
        foreground_voxels: foreground,
        foreground_fraction: foreground as f64 / voxels.max(1) as f64,
        mean_uncertainty: entropy_sum / voxels.max(1) as f64,
    }
}

/// `case.nii.gz` → `case`; a DICOM folder → its name.
pub fn volume_name(input: &Path) -> String {
    if is_nifti_path(input) {
        nifti_stem(input)
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
