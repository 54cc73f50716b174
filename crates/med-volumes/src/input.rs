//! One entry point for whatever a user hands over: a path is read by its content, not its name.

use std::path::{Path, PathBuf};

use crate::dicom_io::{DicomVolume, dicom_frame_count, is_dicom_file, read_dicom};
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

/// True when `path` is a 3-D volume rather than 2-D images, as `predict` decides: a NIfTI file
/// (by name or content), a multi-frame DICOM file, or a folder with DICOM files and no file
/// with one of `image_extensions` (lower case, no dot). Unlike [`is_volume_input`], a
/// single-frame DICOM file is a 2-D image, and a folder of 2-D images stays one even when a
/// DICOM file sits in it.
pub fn is_3d_volume_input(path: &Path, image_extensions: &[&str]) -> bool {
    if is_nifti_path(path) || nifti_header_size(path).is_some() {
        return true;
    }
    if path.is_file() {
        return is_dicom_file(path) && dicom_frame_count(path).is_ok_and(|n| n > 1);
    }
    let Ok(entries) = std::fs::read_dir(path) else {
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
    !files.iter().any(is_image) && files.iter().any(|p| is_dicom_file(p))
}

fn folder_has_dicom(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| VolumeError::io(dir, e))?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .any(|p| p.is_file() && is_dicom_file(&p)))
}

/// What [`convert_to_nifti`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The NIfTI files, one per volume (`<stem>_t000.nii.gz`, ... for `--volume-index all`).
    pub outputs: Vec<PathBuf>,
    /// Grid size of each.
    pub dims: [usize; 3],
    /// True when a MONOCHROME1 input was negated (as `predict` reads it).
    pub monochrome1_inverted: bool,
}

/// Writes `input` (DICOM or NIfTI) as float32 NIfTI at `out` exactly as [`open_input`] reads
/// it: modality values (rescale applied, before any window; MONOCHROME1 negated), with its
/// affine. Colour images are refused (NIfTI outputs here are scalar).
pub fn convert_to_nifti(input: &Path, out: &Path, options: &InputOptions) -> Result<Converted> {
    let (volumes, inverted) = match open_input(input, options)? {
        Input::Dicom(dicom) if dicom.rgb.is_some() => {
            return Err(VolumeError::unsupported(
                input,
                format!(
                    "{} colour image: convert writes scalar volumes only",
                    dicom.photometric
                ),
            ));
        }
        Input::Dicom(dicom) => (vec![dicom.volume], dicom.monochrome1_inverted),
        Input::Nifti(volumes) => (volumes, false),
        Input::Image2d(_) => {
            return Err(VolumeError::NotAVolume {
                path: input.to_path_buf(),
            });
        }
    };
    let outputs: Vec<PathBuf> = if volumes.len() == 1 {
        vec![out.to_path_buf()]
    } else {
        let stem = crate::nifti_io::nifti_stem(out);
        (0..volumes.len())
            .map(|t| out.with_file_name(format!("{stem}_t{t:03}.nii.gz")))
            .collect()
    };
    for (volume, path) in volumes.iter().zip(&outputs) {
        crate::nifti_io::write_nifti(path, volume, crate::nifti_io::OutputKind::Float)?;
    }
    Ok(Converted {
        outputs,
        dims: volumes[0].dims(),
        monochrome1_inverted: inverted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_nifti;

    #[test]
    fn volume_inputs_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_3d_volume_input(Path::new("scan.nii.gz"), &["png"]));
        assert!(!is_3d_volume_input(dir.path(), &["png"]));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM....");
        std::fs::write(dir.path().join("IM0001"), &dicom).unwrap();
        assert!(is_3d_volume_input(dir.path(), &["png"]));
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        assert!(!is_3d_volume_input(dir.path(), &["png"]));
        // What `open_input` reads is wider: a folder holding a DICOM file.
        assert!(is_volume_input(dir.path()));
    }

    #[test]
    fn a_dicom_series_converts_to_the_volume_predict_reads() {
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("series");
        std::fs::create_dir(&series).unwrap();
        crate::testing::write_ct_series(&series, 3, 4, 5).unwrap();
        let out = dir.path().join("ct.nii.gz");
        let converted = convert_to_nifti(&series, &out, &InputOptions::default()).unwrap();
        assert_eq!(converted.outputs, vec![out.clone()]);
        let Input::Dicom(dicom) = open_input(&series, &InputOptions::default()).unwrap() else {
            panic!("not DICOM");
        };
        let back = read_nifti(&out).unwrap();
        assert_eq!(back.data(), dicom.volume.data());
        assert_eq!(back.dims(), [4, 3, 5]);
        for (a, b) in back
            .affine()
            .iter()
            .flatten()
            .zip(dicom.volume.affine().iter().flatten())
        {
            assert!((a - b).abs() < 1e-5);
        }
        // The NIfTI written converts to itself.
        let again = dir.path().join("again.nii.gz");
        convert_to_nifti(&out, &again, &InputOptions::default()).unwrap();
        assert_eq!(read_nifti(&again).unwrap().data(), back.data());
        // A PNG is not a volume.
        let png = dir.path().join("x.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n....").unwrap();
        assert!(convert_to_nifti(&png, &again, &InputOptions::default()).is_err());
    }
}
