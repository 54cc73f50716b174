//! One entry point for whatever a user hands over: a path is read by its content, not its name.

use std::path::{Path, PathBuf};

use crate::dicom_io::{DicomVolume, is_dicom_file, read_dicom};
use crate::error::{Result, VolumeError};
use crate::nifti_io::{VolumeIndex, is_nifti_path, read_nifti_volumes};
use crate::nifti2::nifti_header_size;
use crate::volume::Volume;

/// Choices that only some inputs need.
#[derive(Clone, Debug, Default)]
pub struct InputOptions {
    /// SeriesInstanceUID to read from a folder holding several series.
    pub series: Option<String>,
    /// Volume(s) of a 4-D NIfTI.
    pub volume_index: Option<VolumeIndex>,
}

/// What [`open_input`] found.
#[derive(Clone, Debug)]
pub enum Input {
    /// A DICOM file (single or multi-frame) or a series folder.
    Dicom(Box<DicomVolume>),
    /// A NIfTI-1 or NIfTI-2 file: one volume, or those `--volume-index` picked from a 4-D one.
    Nifti(Vec<Volume>),
    /// Neither: a file for the 2-D image decoder (PNG, JPEG, ...).
    Image2d(PathBuf),
}

/// Reads `path` by its content: a NIfTI header (348 or 540 bytes), a DICOM file (`DICM` at byte
/// 128, or a file meta group / data set from byte 0), a folder of DICOM files; anything else is
/// a 2-D image left to the caller's image decoder.
pub fn open_input(path: &Path, options: &InputOptions) -> Result<Input> {
    if path.is_dir() {
        if !folder_has_dicom(path)? {
            return Err(VolumeError::NotAVolume {
                path: path.to_path_buf(),
            });
        }
        return Ok(Input::Dicom(Box::new(read_dicom(
            path,
            options.series.as_deref(),
        )?)));
    }
    if !path.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder");
        return Err(VolumeError::io(path, source));
    }
    if nifti_header_size(path).is_some() || is_nifti_path(path) {
        return Ok(Input::Nifti(read_nifti_volumes(
            path,
            options.volume_index,
        )?));
    }
    if is_dicom_file(path) {
        return Ok(Input::Dicom(Box::new(read_dicom(
            path,
            options.series.as_deref(),
        )?)));
    }
    Ok(Input::Image2d(path.to_path_buf()))
}

/// True for what [`open_input`] reads as a volume: a NIfTI or DICOM file (by content, or a
/// `.nii`/`.nii.gz` name), or a folder holding a DICOM file.
pub fn is_volume_input(path: &Path) -> bool {
    if path.is_dir() {
        return folder_has_dicom(path).unwrap_or(false);
    }
    is_nifti_path(path) || nifti_header_size(path).is_some() || is_dicom_file(path)
}

fn folder_has_dicom(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| VolumeError::io(dir, e))?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .any(|p| p.is_file() && is_dicom_file(&p)))
}
