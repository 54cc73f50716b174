//! Volume inputs as `predict` and `eval --volumes` read them: a NIfTI file (one volume, or those
//! a `VolumeIndex` picks from a 4-D file), a multi-frame DICOM file or a DICOM series folder;
//! each predicted slice by slice with the intensity mapping it calls for, and described by the
//! `volume.json` record written next to its masks.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_datasets::imaging::Image8;
use med_volumes::{
    DicomVolume, Input, InputOptions, IntensityMap, IntensitySource, OutputKind, Volume,
    VolumeIndex, is_nifti_path, nifti_stem,
};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::predictor::Predictor;
use crate::volume::VolumePrediction;

/// One volume of an input, with the DICOM it came from and its output name.
#[derive(Debug, Clone)]
pub struct VolumeInput {
    /// The file or folder it was read from.
    pub path: PathBuf,
    /// The voxels on the input's grid.
    pub volume: Volume,
    /// The DICOM it was read from (its window, photometric interpretation and colour pixels).
    pub dicom: Option<Box<DicomVolume>>,
    /// The volume's index in a 4-D NIfTI, when one was picked.
    pub volume_index: Option<usize>,
    /// Output name: the input's ([`volume_name`]), `_tNNN` for a volume of a 4-D NIfTI.
    pub name: String,
}

/// The volumes of `input`: one, or those `options.volume_index` picks from a 4-D NIfTI.
pub fn open_volume_inputs(input: &Path, options: &InputOptions) -> Result<Vec<VolumeInput>> {
    let name = volume_name(input);
    Ok(match med_volumes::open_input(input, options)? {
        Input::Nifti(volumes) => {
            let indices: Vec<Option<usize>> = match options.volume_index {
                None => vec![None],
                Some(VolumeIndex::One(t)) => vec![Some(t)],
                Some(VolumeIndex::All) => (0..volumes.len()).map(Some).collect(),
            };
            volumes
                .into_iter()
                .zip(indices)
                .map(|(volume, t)| VolumeInput {
                    path: input.to_path_buf(),
                    volume,
                    dicom: None,
                    volume_index: t,
                    name: t.map_or(name.clone(), |t| format!("{name}_t{t:03}")),
                })
                .collect()
        }
        Input::Dicom(dicom) => vec![VolumeInput {
            path: input.to_path_buf(),
            volume: dicom.volume.clone(),
            dicom: Some(dicom),
            volume_index: None,
            name,
        }],
        Input::Image2d(path) => {
            return Err(PipelineError::BadInput(format!(
                "{}: not a volume",
                path.display()
            )));
        }
    })
}

/// `case.nii.gz` → `case`; a DICOM folder or file → its name (`scan.dcm` → `scan`).
pub fn volume_name(input: &Path) -> String {
    let name = if is_nifti_path(input) {
        Some(nifti_stem(input))
    } else if input.is_file() {
        input.file_stem().map(|n| n.to_string_lossy().into_owned())
    } else {
        input.file_name().map(|n| n.to_string_lossy().into_owned())
    };
    name.filter(|n| !n.is_empty())
        .unwrap_or_else(|| "volume".into())
}

/// A volume's prediction with the intensity mapping used.
#[derive(Debug, Clone)]
pub struct PredictedVolume {
    /// The maps on the input's grid.
    pub prediction: VolumePrediction,
    /// The mapping to 8 bits (`Debug` of the [`IntensityMap`]).
    pub intensity: String,
    /// Where the mapping came from (given, the file's window, the default, colour), with the
    /// DICOM's photometric interpretation and MONOCHROME1 inversion when they apply.
    pub intensity_source: String,
}

impl VolumeInput {
    /// Checks, before any model is read, that the volume can be sliced along `axis` and mapped
    /// to 8 bits by `window` (else the default percentiles).
    pub fn check(&self, axis: usize, window: Option<IntensityMap>) -> Result<()> {
        self.volume.slice_count(axis)?;
        if self.dicom.as_ref().is_some_and(|d| d.rgb.is_some()) && axis != 2 {
            return Err(PipelineError::BadInput(format!(
                "{}: a colour image is sliced along its frames only (--axis 2)",
                self.path.display()
            )));
        }
        window.unwrap_or_default().bounds(self.volume.data())?;
        Ok(())
    }
}

impl<B: Backend> Predictor<B> {
    /// Predicts every slice of `input` along `axis`: grey through `window` (else a DICOM's own
    /// window, else the default percentiles over the volume), colour DICOM as stored.
    pub fn predict_volume_input(
        &self,
        input: &VolumeInput,
        prompt: &str,
        axis: usize,
        window: Option<IntensityMap>,
    ) -> Result<PredictedVolume> {
        let Some(dicom) = &input.dicom else {
            let map = window.unwrap_or_default();
            let source = if window.is_some() {
                IntensitySource::Given
            } else {
                IntensitySource::Default
            };
            return Ok(PredictedVolume {
                prediction: self.predict_volume(&input.volume, prompt, axis, &map)?,
                intensity: format!("{map:?}"),
                intensity_source: source.to_string(),
            });
        };
        let (map, source) = dicom.intensity(window);
        let prediction = if dicom.rgb.is_some() {
            let [cols, rows, _] = dicom.volume.dims();
            let image = |k: usize, _: &med_volumes::Slice2d| {
                let rgb = dicom.rgb8_slice(k, (0.0, 255.0)).unwrap_or_default();
                bgr_image(cols, rows, &rgb)
            };
            self.predict_slices(&input.volume, prompt, axis, &image)?
        } else {
            self.predict_volume(&input.volume, prompt, axis, &map)?
        };
        Ok(PredictedVolume {
            prediction,
            intensity: format!("{map:?}"),
            intensity_source: intensity_note(dicom, &map, source),
        })
    }
}

/// A single-frame DICOM file as the model's BGR image: colour as stored, grey through `window`
/// (else the file's window, else percentiles), MONOCHROME1 inverted. The note says how.
pub fn dicom_image(path: &Path, window: Option<IntensityMap>) -> Result<DicomImage> {
    let dicom = med_volumes::read_dicom(path, None)?;
    let [cols, rows, frames] = dicom.volume.dims();
    if frames != 1 {
        return Err(PipelineError::BadInput(format!(
            "{}: {frames} frames: a volume, not a 2-D image",
            path.display()
        )));
    }
    let (map, source) = dicom.intensity(window);
    let bounds = if dicom.rgb.is_some() {
        (0.0, 255.0)
    } else {
        map.bounds(dicom.volume.data())?
    };
    let rgb = dicom.rgb8_slice(0, bounds)?;
    Ok(DicomImage {
        image: bgr_image(cols, rows, &rgb),
        note: intensity_note(&dicom, &map, source),
        monochrome1_inverted: dicom.monochrome1_inverted,
    })
}

/// A 2-D DICOM image as the model takes it ([`dicom_image`]).
#[derive(Debug, Clone)]
pub struct DicomImage {
    /// BGR pixels.
    pub image: Image8,
    /// How the intensities were mapped.
    pub note: String,
    /// MONOCHROME1 (high values dark) was inverted before the model.
    pub monochrome1_inverted: bool,
}

fn intensity_note(dicom: &DicomVolume, map: &IntensityMap, source: IntensitySource) -> String {
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

/// Where a volume's maps were written.
#[derive(Debug, Clone)]
pub struct VolumeFiles<'a> {
    /// The mask (NIfTI labels, or a DICOM SEG).
    pub mask: &'a Path,
    /// The predictive entropy (NIfTI floats).
    pub entropy: &'a Path,
}

/// Writes the mask (u8 labels) and the entropy (floats) as NIfTI on the input's grid.
pub fn write_volume_maps(prediction: &VolumePrediction, files: &VolumeFiles) -> Result<()> {
    med_volumes::write_nifti(files.mask, &prediction.mask, OutputKind::Labels)?;
    med_volumes::write_nifti(files.entropy, &prediction.entropy, OutputKind::Float)?;
    Ok(())
}

/// `volume.json`: what was predicted from a volume and how.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeRecord {
    /// The input path.
    pub input: String,
    /// The prompt.
    pub prompt: String,
    /// Grid size `(nx, ny, nz)`.
    pub shape: [usize; 3],
    /// Voxel size along `i`, `j`, `k`.
    pub spacing: [f64; 3],
    /// The axis sliced along.
    pub axis: usize,
    /// Slices predicted.
    pub slices: usize,
    /// The mapping to 8 bits.
    pub intensity: String,
    /// Where the mapping came from.
    pub intensity_source: String,
    /// Intensities mapped to 0 and 255.
    pub intensity_bounds: [f64; 2],
    /// The volume's index in a 4-D NIfTI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_index: Option<usize>,
    /// A DICOM's photometric interpretation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photometric: Option<String>,
    /// MONOCHROME1 was inverted before the model.
    pub monochrome1_inverted: bool,
    /// A DICOM series whose slices are unevenly spaced (a missing slice, a gap): what the
    /// reader found; the outputs' grid places the slices at the mean step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uneven_spacing: Option<String>,
    /// The mask file.
    pub mask: String,
    /// The entropy file.
    pub entropy: String,
    /// The uncertain band (a calibration with two levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// Foreground voxels of the mask.
    pub foreground_voxels: usize,
    /// Their fraction of the volume.
    pub foreground_fraction: f64,
    /// Mean predictive entropy over the volume.
    pub mean_uncertainty: f64,
}

impl VolumeRecord {
    /// The record of `input` predicted as `predicted` into `files`.
    pub fn new(
        input: &VolumeInput,
        prompt: &str,
        predicted: &PredictedVolume,
        files: &VolumeFiles,
    ) -> Self {
        let prediction = &predicted.prediction;
        let voxels = prediction.mask.data().len().max(1) as f64;
        let foreground = prediction.mask.data().iter().filter(|&&v| v > 0.0).count();
        let entropy_sum: f64 = prediction
            .entropy
            .data()
            .iter()
            .map(|&e| f64::from(e))
            .sum();
        Self {
            input: input.path.display().to_string(),
            prompt: prompt.to_string(),
            shape: input.volume.dims(),
            spacing: input.volume.spacing(),
            axis: prediction.axis,
            slices: prediction.slices,
            intensity: predicted.intensity.clone(),
            intensity_source: predicted.intensity_source.clone(),
            intensity_bounds: prediction.intensity_bounds,
            volume_index: input.volume_index,
            photometric: input.dicom.as_ref().map(|d| d.photometric.clone()),
            monochrome1_inverted: input.dicom.as_ref().is_some_and(|d| d.monochrome1_inverted),
            uneven_spacing: input
                .dicom
                .as_ref()
                .and_then(|d| d.uneven_spacing.as_ref())
                .map(ToString::to_string),
            mask: files.mask.display().to_string(),
            entropy: files.entropy.display().to_string(),
            band: None,
            foreground_voxels: foreground,
            foreground_fraction: foreground as f64 / voxels,
            mean_uncertainty: entropy_sum / voxels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_come_from_the_input() {
        assert_eq!(volume_name(Path::new("a/case_7.nii")), "case_7");
        assert_eq!(volume_name(Path::new("a/case_7.nii.gz")), "case_7");
        assert_eq!(volume_name(Path::new("a/series_3")), "series_3");
    }

    #[test]
    fn rgb_pixels_become_bgr() {
        let image = bgr_image(2, 1, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(image.data, vec![3, 2, 1, 6, 5, 4]);
    }
}
