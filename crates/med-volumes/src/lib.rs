//! Medical volumes for a 2-D segmentation model: NIfTI-1 (`.nii`, `.nii.gz`) and DICOM series in,
//! NIfTI out, framework-free.
//!
//! - [`read_volume`]: a `.nii`/`.nii.gz` file ([`read_nifti`]) or a folder holding one DICOM series
//!   ([`read_dicom_series`]) as a [`Volume`] of f32 voxels with its spacing, affine and NIfTI header.
//! - [`Volume::slices`] / [`Volume::from_slices`]: 2-D slices along any axis and back.
//! - [`IntensityMap`]: CT/MR intensities to 8-bit: a `CENTER,WIDTH` window, percentiles, or the
//!   real range.
//! - [`LabelSelect`]: label maps ({0,1}, {0,255}, multi-label with one label picked) as masks.
//! - [`write_nifti`]: masks (u8 labels) and float maps (probabilities, entropy) on the input's grid,
//!   its qform/sform, spacing and units preserved, written atomically.
//!
//! ```
//! use med_volumes::{IntensityMap, OutputKind, Volume, diagonal_affine, read_nifti, write_nifti};
//!
//! let dir = tempfile::tempdir()?;
//! let ct = Volume::new([4, 3, 2], (0..24).map(|v| v as f32 * 50.0 - 500.0).collect(),
//!                      [0.8, 0.8, 3.0], diagonal_affine([0.8, 0.8, 3.0]))?;
//! let grey = IntensityMap::Window { center: 40.0, width: 400.0 }.to_u8(ct.data())?;
//! let mask = ct.same_grid(grey.iter().map(|&g| f32::from(u8::from(g > 127))).collect())?;
//! let path = dir.path().join("mask.nii.gz");
//! write_nifti(&path, &mask, OutputKind::Labels)?;
//! assert_eq!(read_nifti(&path)?.dims(), [4, 3, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod dicom_io;
mod dicom_scan;
mod dicom_seg;
mod error;
mod input;
mod intensity;
mod jpeg2000;
mod labels;
mod nifti2;
mod nifti_io;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod volume;

use std::path::Path;

pub use dicom_io::{
    DicomVolume, FrameSource, IntensitySource, UnevenSpacing, VoiWindow, dicom_frame_count,
    is_dicom_file, read_dicom, read_dicom_series,
};
pub use dicom_seg::write_dicom_seg;
pub use error::{Result, VolumeError};
pub use input::{
    Converted, Input, InputOptions, convert_to_nifti, is_3d_volume_input, is_volume_input,
    open_input,
};
pub use intensity::{IntensityMap, scale_to_u8};
pub use labels::LabelSelect;
pub use nifti_io::{
    OutputKind, VolumeIndex, is_nifti_path, nifti_stem, read_nifti, read_nifti_volumes, write_nifti,
};
pub use nifti2::nifti_header_size;
pub use volume::{Affine, Slice2d, Volume, diagonal_affine};

/// True for the inputs [`read_volume`] accepts: a `.nii`/`.nii.gz` path, a NIfTI or DICOM file
/// by content, or a folder.
pub fn is_volume_path(path: &Path) -> bool {
    is_nifti_path(path) || path.is_dir() || is_volume_input(path)
}

/// Reads a 3-D NIfTI-1/-2 file, a DICOM file (single or multi-frame), or a folder holding one
/// DICOM series.
pub fn read_volume(path: &Path) -> Result<Volume> {
    if is_nifti_path(path) || nifti_header_size(path).is_some() {
        read_nifti(path)
    } else if path.is_dir() {
        read_dicom_series(path)
    } else if is_dicom_file(path) {
        Ok(read_dicom(path, None)?.volume)
    } else {
        Err(VolumeError::NotAVolume {
            path: path.to_path_buf(),
        })
    }
}

/// A binary mask read from a label volume, on the volume's grid.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelVolume {
    /// Grid size `(nx, ny, nz)`.
    pub dims: [usize; 3],
    /// Voxel size along `i`, `j`, `k`.
    pub spacing: [f64; 3],
    /// Foreground flags, `i` fastest (as [`Volume::data`]).
    pub mask: Vec<bool>,
}

/// Reads a label volume (NIfTI or DICOM folder) and keeps the voxels `select` picks.
pub fn read_label_volume(path: &Path, select: LabelSelect) -> Result<LabelVolume> {
    Ok(label_volume(&read_volume(path)?, select))
}

fn label_volume(volume: &Volume, select: LabelSelect) -> LabelVolume {
    LabelVolume {
        dims: volume.dims(),
        spacing: volume.spacing(),
        mask: select.mask(volume.data()),
    }
}

/// Reads a prediction and a ground-truth label volume that must share a grid. `gt_select` picks
/// the structure in the ground truth; the prediction is read by
/// [`LabelSelect::for_prediction`]: a binary mask (one non-zero value) as it is, whatever the
/// label, and a label map (several labels) by the same label.
pub fn read_label_pair(
    pred: &Path,
    gt: &Path,
    gt_select: LabelSelect,
) -> Result<(LabelVolume, LabelVolume)> {
    let prediction = read_volume(pred)?;
    let p = label_volume(&prediction, gt_select.for_prediction(prediction.data()));
    let g = read_label_volume(gt, gt_select)?;
    if p.dims != g.dims {
        return Err(VolumeError::ShapeMismatch {
            pred_path: pred.to_path_buf(),
            pred: p.dims,
            gt_path: gt.to_path_buf(),
            gt: g.dims,
        });
    }
    Ok((p, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_series_in_nifti_out_keeps_the_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("series");
        std::fs::create_dir(&series).unwrap();
        testing::write_ct_series(&series, 3, 4, 5).unwrap();
        let ct = read_volume(&series).unwrap();
        let mask = ct
            .same_grid(
                ct.data()
                    .iter()
                    .map(|&v| f32::from(u8::from(v > 100.0)))
                    .collect(),
            )
            .unwrap();
        let out = dir.path().join("series.nii.gz");
        write_nifti(&out, &mask, OutputKind::Labels).unwrap();
        let back = read_volume(&out).unwrap();
        assert_eq!(back.dims(), ct.dims());
        assert_eq!(back.spacing(), ct.spacing());
        for (a, b) in back
            .affine()
            .iter()
            .flatten()
            .zip(ct.affine().iter().flatten())
        {
            assert!(
                (a - b).abs() < 1e-6,
                "{:?} vs {:?}",
                back.affine(),
                ct.affine()
            );
        }
        assert_eq!(back.data(), mask.data());
    }

    #[test]
    fn label_pairs_must_share_a_grid() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, dims: [usize; 3], values: Vec<f32>| {
            let v = Volume::new(dims, values, [1.0; 3], diagonal_affine([1.0; 3])).unwrap();
            let path = dir.path().join(name);
            write_nifti(&path, &v, OutputKind::Labels).unwrap();
            path
        };
        let a = write("a.nii.gz", [2, 2, 1], vec![0.0, 1.0, 2.0, 2.0]);
        let b = write("b.nii", [2, 2, 1], vec![2.0, 0.0, 0.0, 2.0]);
        let c = write("c.nii", [1, 4, 1], vec![0.0; 4]);
        // Both are label maps: the label is picked in each.
        let (p, g) = read_label_pair(&a, &b, LabelSelect::Label(2)).unwrap();
        assert_eq!(p.mask, vec![false, false, true, true]);
        assert_eq!(g.mask, vec![true, false, false, true]);
        // Ground truth with labels 1 and 3, a binary 0/1 prediction of structure 3: label 3 in
        // the ground truth only (selecting 3 in the prediction too would leave it empty).
        let gt = write("gt.nii.gz", [2, 2, 1], vec![1.0, 3.0, 3.0, 0.0]);
        let pred = write("pred.nii.gz", [2, 2, 1], vec![0.0, 1.0, 1.0, 0.0]);
        let (p, g) = read_label_pair(&pred, &gt, LabelSelect::Label(3)).unwrap();
        assert_eq!(p.mask, vec![false, true, true, false]);
        assert_eq!(g.mask, p.mask);
        let err = read_label_pair(&a, &c, LabelSelect::AnyNonZero).unwrap_err();
        assert!(err.to_string().contains("c.nii"), "{err}");
        let err = read_volume(&dir.path().join("x.png")).unwrap_err();
        assert!(matches!(err, VolumeError::NotAVolume { .. }));
    }
}

/// The README example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
