//! The [`Volume`] type: f32 voxels on a 3-D grid with its geometry, and 2-D slicing along an axis.

use nifti::NiftiHeader;

use crate::error::{Result, VolumeError};
use crate::nifti_io::header_for_geometry;

/// A 4x4 voxel-to-world matrix: `world = affine * [i, j, k, 1]`, in millimetres, RAS+ (NIfTI).
pub type Affine = [[f64; 4]; 4];

/// A 3-D scalar volume.
///
/// Voxel `(i, j, k)` is `data[i + nx * (j + ny * k)]` (NIfTI's on-disk order: `i` fastest).
/// `spacing` is the voxel size along `i`, `j`, `k` (NIfTI `pixdim[1..=3]`). The NIfTI header of the
/// source (or, for a DICOM series, one built from its geometry) is kept so that outputs written on
/// the same grid carry the same qform, sform, units and description.
#[derive(Clone, Debug)]
pub struct Volume {
    dims: [usize; 3],
    data: Vec<f32>,
    spacing: [f64; 3],
    affine: Affine,
    header: NiftiHeader,
}

/// A 2-D image cut from a volume, row-major: `data[r * cols + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice2d {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Values, `rows * cols`.
    pub data: Vec<f32>,
}

impl Volume {
    /// A volume from voxels and geometry; builds a NIfTI header with the affine as both sform and
    /// qform (scanner coordinates). Fails when `data.len()` is not `nx * ny * nz`, a dimension is
    /// zero, or a spacing is not finite and positive.
    pub fn new(
        dims: [usize; 3],
        data: Vec<f32>,
        spacing: [f64; 3],
        affine: Affine,
    ) -> Result<Self> {
        let header = header_for_geometry(dims, spacing, &affine);
        Self::with_header(dims, data, spacing, affine, header)
    }

    pub(crate) fn with_header(
        dims: [usize; 3],
        data: Vec<f32>,
        spacing: [f64; 3],
        affine: Affine,
        header: NiftiHeader,
    ) -> Result<Self> {
        let expected = dims.iter().product::<usize>();
        if expected == 0 || data.len() != expected {
            return Err(VolumeError::Reassembly {
                reason: format!(
                    "{} voxels given for a {dims:?} grid (needs {expected}, none zero)",
                    data.len()
                ),
            });
        }
        if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(VolumeError::Reassembly {
                reason: format!("spacing {spacing:?} must be finite and > 0"),
            });
        }
        Ok(Self {
            dims,
            data,
            spacing,
            affine,
            header,
        })
    }

    /// Grid size `(nx, ny, nz)`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Voxels, `i` fastest.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Voxel size along `i`, `j`, `k` (mm for NIfTI with mm units and for DICOM).
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }

    /// Voxel-to-world matrix (RAS+, mm).
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// The NIfTI header written with outputs on this grid.
    pub fn header(&self) -> &NiftiHeader {
        &self.header
    }

    /// Voxel `(i, j, k)`; panics when out of range, like slice indexing.
    pub fn get(&self, i: usize, j: usize, k: usize) -> f32 {
        let [nx, ny, nz] = self.dims;
        assert!(
            i < nx && j < ny && k < nz,
            "voxel ({i}, {j}, {k}) outside {:?}",
            self.dims
        );
        self.data[i + nx * (j + ny * k)]
    }

    /// Another volume on the same grid and header (a mask or a probability map of this one).
    pub fn same_grid(&self, data: Vec<f32>) -> Result<Volume> {
        Self::with_header(
            self.dims,
            data,
            self.spacing,
            self.affine,
            self.header.clone(),
        )
    }

    /// Number of slices along `axis` (0 = i, 1 = j, 2 = k).
    pub fn slice_count(&self, axis: usize) -> Result<usize> {
        check_axis(axis)?;
        Ok(self.dims[axis])
    }

    /// Slice `index` along `axis` as a 2-D image: its columns run along the lower remaining axis and
    /// its rows along the higher one (for `axis = 2`: columns = `i`, rows = `j`).
    pub fn slice(&self, axis: usize, index: usize) -> Result<Slice2d> {
        let (p, q) = in_plane_axes(axis)?;
        if index >= self.dims[axis] {
            return Err(VolumeError::Reassembly {
                reason: format!(
                    "slice {index} along axis {axis} does not exist ({} slices)",
                    self.dims[axis]
                ),
            });
        }
        let (cols, rows) = (self.dims[p], self.dims[q]);
        let mut data = Vec::with_capacity(rows * cols);
        let mut idx = [0usize; 3];
        idx[axis] = index;
        for r in 0..rows {
            idx[q] = r;
            for c in 0..cols {
                idx[p] = c;
                data.push(self.data[self.offset(idx)]);
            }
        }
        Ok(Slice2d { rows, cols, data })
    }

    /// All slices along `axis`, in index order.
    pub fn slices(&self, axis: usize) -> Result<Vec<Slice2d>> {
        (0..self.slice_count(axis)?)
            .map(|s| self.slice(axis, s))
            .collect()
    }

    /// The inverse of [`Volume::slices`]: a volume on this grid whose slices along `axis` are the
    /// given ones. Each slice must have the shape [`Volume::slice`] returns.
    pub fn from_slices(&self, axis: usize, slices: &[Slice2d]) -> Result<Volume> {
        let (p, q) = in_plane_axes(axis)?;
        if slices.len() != self.dims[axis] {
            return Err(VolumeError::Reassembly {
                reason: format!(
                    "{} slices given, axis {axis} has {}",
                    slices.len(),
                    self.dims[axis]
                ),
            });
        }
        let (cols, rows) = (self.dims[p], self.dims[q]);
        let mut data = vec![0.0f32; self.data.len()];
        let mut idx = [0usize; 3];
        for (s, slice) in slices.iter().enumerate() {
            if (slice.rows, slice.cols) != (rows, cols) || slice.data.len() != rows * cols {
                return Err(VolumeError::Reassembly {
                    reason: format!(
                        "slice {s} is {}x{} (rows x cols), axis {axis} needs {rows}x{cols}",
                        slice.rows, slice.cols
                    ),
                });
            }
            idx[axis] = s;
            for r in 0..rows {
                idx[q] = r;
                for c in 0..cols {
                    idx[p] = c;
                    data[self.offset(idx)] = slice.data[r * cols + c];
                }
            }
        }
        self.same_grid(data)
    }

    fn offset(&self, [i, j, k]: [usize; 3]) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }
}

fn check_axis(axis: usize) -> Result<()> {
    if axis < 3 {
        Ok(())
    } else {
        Err(VolumeError::InvalidAxis { axis })
    }
}

/// The two axes spanning a slice across `axis`, in increasing order.
fn in_plane_axes(axis: usize) -> Result<(usize, usize)> {
    check_axis(axis)?;
    Ok(match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    })
}

/// The identity affine scaled by `spacing`.
pub fn diagonal_affine(spacing: [f64; 3]) -> Affine {
    let mut a = [[0.0; 4]; 4];
    for (d, s) in spacing.iter().enumerate() {
        a[d][d] = *s;
    }
    a[3][3] = 1.0;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: [usize; 3]) -> Volume {
        let n = dims.iter().product::<usize>();
        let data = (0..n).map(|v| v as f32).collect();
        Volume::new(
            dims,
            data,
            [1.0, 2.0, 3.0],
            diagonal_affine([1.0, 2.0, 3.0]),
        )
        .unwrap()
    }

    #[test]
    fn slices_index_the_grid_as_documented() {
        let v = ramp([4, 3, 2]);
        let s = v.slice(2, 1).unwrap();
        assert_eq!((s.rows, s.cols), (3, 4));
        assert_eq!(s.data[2 * 4 + 3], v.get(3, 2, 1));
        let s = v.slice(0, 3).unwrap();
        assert_eq!((s.rows, s.cols), (2, 3));
        assert_eq!(s.data[4], v.get(3, 1, 1));
        let s = v.slice(1, 2).unwrap();
        assert_eq!((s.rows, s.cols), (2, 4));
        assert_eq!(s.data[5], v.get(1, 2, 1));
    }

    #[test]
    fn slices_reassemble_to_the_same_volume_on_every_axis() {
        let v = ramp([5, 4, 3]);
        for axis in 0..3 {
            let back = v.from_slices(axis, &v.slices(axis).unwrap()).unwrap();
            assert_eq!(back.data(), v.data(), "axis {axis}");
            assert_eq!(back.affine(), v.affine());
        }
    }

    #[test]
    fn bad_axes_counts_and_shapes_are_errors() {
        let v = ramp([2, 2, 2]);
        assert!(matches!(
            v.slice(3, 0),
            Err(VolumeError::InvalidAxis { axis: 3 })
        ));
        assert!(v.slice(2, 2).is_err());
        let mut slices = v.slices(2).unwrap();
        assert!(v.from_slices(2, &slices[..1]).is_err());
        slices[1].cols = 1;
        assert!(v.from_slices(2, &slices).is_err());
        assert!(Volume::new([2, 2, 2], vec![0.0; 7], [1.0; 3], diagonal_affine([1.0; 3])).is_err());
        assert!(
            Volume::new(
                [1, 1, 1],
                vec![0.0],
                [0.0, 1.0, 1.0],
                diagonal_affine([1.0; 3])
            )
            .is_err()
        );
    }
}
