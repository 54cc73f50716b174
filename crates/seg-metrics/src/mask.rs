//! Binary masks in 2-D (rows, cols) and 3-D (depth, rows, cols), stored row-major, and spacing checks.

use crate::error::{MetricsError, Result};

/// A 2-D binary mask, row-major: `data[r * cols + c]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask2d {
    rows: usize,
    cols: usize,
    data: Vec<bool>,
}

/// A 3-D binary mask, `data[(z * rows + r) * cols + c]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask3d {
    depth: usize,
    rows: usize,
    cols: usize,
    data: Vec<bool>,
}

/// What DSC needs from a mask of any dimension: its shape and its flat data.
pub trait BinaryMask {
    /// Shape in array order.
    fn shape(&self) -> Vec<usize>;
    /// Flat row-major data.
    fn data(&self) -> &[bool];
    /// Number of foreground elements.
    fn count(&self) -> usize {
        self.data().iter().filter(|&&v| v).count()
    }
    /// True when no element is foreground.
    fn is_empty(&self) -> bool {
        !self.data().iter().any(|&v| v)
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let expected = shape.iter().product::<usize>();
    if expected == len {
        Ok(())
    } else {
        Err(MetricsError::DataLength {
            shape: shape.to_vec(),
            expected,
            len,
        })
    }
}

impl Mask2d {
    /// A mask from row-major data; fails when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<bool>) -> Result<Self> {
        check_len(&[rows, cols], data.len())?;
        Ok(Self { rows, cols, data })
    }

    /// A mask from grey values: foreground where `value > threshold` (the reference binarises with 127).
    pub fn from_u8(rows: usize, cols: usize, values: &[u8], threshold: u8) -> Result<Self> {
        check_len(&[rows, cols], values.len())?;
        let data = values.iter().map(|&v| v > threshold).collect();
        Ok(Self { rows, cols, data })
    }

    /// A mask whose pixel (r, c) is `f(r, c)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> bool) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                data.push(f(r, c));
            }
        }
        Self { rows, cols, data }
    }

    /// An all-background mask.
    pub fn empty(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![false; rows * cols],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixel (r, c); panics when out of range, like slice indexing.
    pub fn get(&self, r: usize, c: usize) -> bool {
        assert!(
            r < self.rows && c < self.cols,
            "pixel ({r}, {c}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[r * self.cols + c]
    }

    /// Sets pixel (r, c); panics when out of range, like slice indexing.
    pub fn set(&mut self, r: usize, c: usize, value: bool) {
        assert!(
            r < self.rows && c < self.cols,
            "pixel ({r}, {c}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[r * self.cols + c] = value;
    }

    /// Nearest-neighbour resize with OpenCV `INTER_NEAREST` semantics, as the MedCLIPSeg evaluation
    /// resizes predictions to the ground-truth size.
    ///
    /// OpenCV computes `src = min(floor(dst * (1 / (dst_size / src_size))), src_size - 1)` in double
    /// precision. That differs from the exact rational `floor(dst * src_size / dst_size)` for some
    /// sizes (113 of 4623 size pairs checked against cv2 4.11), so the double formula is used.
    pub fn resize_nearest(&self, rows: usize, cols: usize) -> Result<Mask2d> {
        if rows == 0 || cols == 0 || self.rows == 0 || self.cols == 0 {
            return Err(MetricsError::InvalidResize {
                from: [self.rows, self.cols],
                to: [rows, cols],
            });
        }
        let row_map = nearest_source_indices(self.rows, rows);
        let col_map = nearest_source_indices(self.cols, cols);
        let mut data = Vec::with_capacity(rows * cols);
        for &sr in &row_map {
            let src_row = &self.data[sr * self.cols..(sr + 1) * self.cols];
            data.extend(col_map.iter().map(|&sc| src_row[sc]));
        }
        Ok(Mask2d { rows, cols, data })
    }

    /// Inclusive bounding box `([r0, c0], [r1, c1])` of the foreground, or `None` when empty.
    pub fn bounding_box(&self) -> Option<([usize; 2], [usize; 2])> {
        union_bounding_box_2d(self, self)
    }
}

/// cv2 `INTER_NEAREST` source index for every destination index.
fn nearest_source_indices(src: usize, dst: usize) -> Vec<usize> {
    let inv_scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| ((d as f64 * inv_scale).floor() as usize).min(src - 1))
        .collect()
}

impl BinaryMask for Mask2d {
    fn shape(&self) -> Vec<usize> {
        vec![self.rows, self.cols]
    }
    fn data(&self) -> &[bool] {
        &self.data
    }
}

impl Mask3d {
    /// A volume from flat data; fails when `data.len() != depth * rows * cols`.
    pub fn new(depth: usize, rows: usize, cols: usize, data: Vec<bool>) -> Result<Self> {
        check_len(&[depth, rows, cols], data.len())?;
        Ok(Self {
            depth,
            rows,
            cols,
            data,
        })
    }

    /// A volume whose voxel (z, r, c) is `f(z, r, c)`.
    pub fn from_fn(
        depth: usize,
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize, usize) -> bool,
    ) -> Self {
        let mut data = Vec::with_capacity(depth * rows * cols);
        for z in 0..depth {
            for r in 0..rows {
                for c in 0..cols {
                    data.push(f(z, r, c));
                }
            }
        }
        Self {
            depth,
            rows,
            cols,
            data,
        }
    }

    /// An all-background volume.
    pub fn empty(depth: usize, rows: usize, cols: usize) -> Self {
        Self {
            depth,
            rows,
            cols,
            data: vec![false; depth * rows * cols],
        }
    }

    /// A one-slice volume holding a 2-D mask: shape (1, rows, cols).
    pub fn from_slice(mask: &Mask2d) -> Self {
        Self {
            depth: 1,
            rows: mask.rows,
            cols: mask.cols,
            data: mask.data.clone(),
        }
    }

    /// Number of slices.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Number of rows per slice.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns per slice.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Voxel (z, r, c); panics when out of range, like slice indexing.
    pub fn get(&self, z: usize, r: usize, c: usize) -> bool {
        assert!(
            z < self.depth && r < self.rows && c < self.cols,
            "voxel ({z}, {r}, {c}) out of range"
        );
        self.data[(z * self.rows + r) * self.cols + c]
    }

    /// Inclusive bounding box `([z0, r0, c0], [z1, r1, c1])` of the foreground, or `None` when empty.
    pub fn bounding_box(&self) -> Option<([usize; 3], [usize; 3])> {
        union_bounding_box_3d(self, self)
    }
}

impl BinaryMask for Mask3d {
    fn shape(&self) -> Vec<usize> {
        vec![self.depth, self.rows, self.cols]
    }
    fn data(&self) -> &[bool] {
        &self.data
    }
}

/// Fails unless both masks have the same shape.
pub(crate) fn check_same_shape<M: BinaryMask>(gt: &M, pred: &M) -> Result<()> {
    if gt.shape() == pred.shape() {
        Ok(())
    } else {
        Err(MetricsError::ShapeMismatch {
            gt: gt.shape(),
            pred: pred.shape(),
        })
    }
}

/// Fails unless every spacing value is finite and positive.
pub(crate) fn check_spacing(spacing: &[f64]) -> Result<()> {
    if spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(MetricsError::InvalidSpacing {
            spacing: spacing.to_vec(),
        })
    }
}

/// Inclusive bounding box of the union of two same-shape 2-D masks.
pub(crate) fn union_bounding_box_2d(a: &Mask2d, b: &Mask2d) -> Option<([usize; 2], [usize; 2])> {
    let mut lo = [usize::MAX; 2];
    let mut hi = [0usize; 2];
    for r in 0..a.rows {
        let row_a = &a.data[r * a.cols..(r + 1) * a.cols];
        let row_b = &b.data[r * b.cols..(r + 1) * b.cols];
        let Some((first, last)) = foreground_span(row_a, row_b) else {
            continue;
        };
        lo[0] = lo[0].min(r);
        hi[0] = r;
        lo[1] = lo[1].min(first);
        hi[1] = hi[1].max(last);
    }
    (lo[0] != usize::MAX).then_some((lo, hi))
}

/// First and last index where either row is set. The emptiness test has no early exit, so it
/// vectorises; most rows of a mask are empty.
fn foreground_span(row_a: &[bool], row_b: &[bool]) -> Option<(usize, usize)> {
    let any = row_a
        .iter()
        .zip(row_b)
        .fold(false, |acc, (&x, &y)| acc | x | y);
    if !any {
        return None;
    }
    let first = row_a.iter().zip(row_b).position(|(&x, &y)| x || y)?;
    let last = row_a.iter().zip(row_b).rposition(|(&x, &y)| x || y)?;
    Some((first, last))
}

/// Inclusive bounding box of the union of two same-shape 3-D masks.
pub(crate) fn union_bounding_box_3d(a: &Mask3d, b: &Mask3d) -> Option<([usize; 3], [usize; 3])> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let cols = a.cols;
    for z in 0..a.depth {
        for r in 0..a.rows {
            let start = (z * a.rows + r) * cols;
            let row_a = &a.data[start..start + cols];
            let row_b = &b.data[start..start + cols];
            let Some((first, last)) = foreground_span(row_a, row_b) else {
                continue;
            };
            lo[0] = lo[0].min(z);
            hi[0] = hi[0].max(z);
            lo[1] = lo[1].min(r);
            hi[1] = hi[1].max(r);
            lo[2] = lo[2].min(first);
            hi[2] = hi[2].max(last);
        }
    }
    (lo[0] != usize::MAX).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_lengths() {
        assert!(Mask2d::new(2, 3, vec![false; 6]).is_ok());
        assert!(matches!(
            Mask2d::new(2, 3, vec![false; 5]),
            Err(MetricsError::DataLength {
                expected: 6,
                len: 5,
                ..
            })
        ));
        assert!(Mask3d::new(2, 2, 2, vec![true; 7]).is_err());
    }

    #[test]
    fn from_u8_thresholds_above_127() {
        let m = Mask2d::from_u8(1, 4, &[0, 127, 128, 255], 127).unwrap();
        assert_eq!(m.data(), &[false, false, true, true]);
    }

    #[test]
    fn bounding_boxes() {
        let m = Mask2d::from_fn(5, 6, |r, c| (r == 1 && c == 4) || (r == 3 && c == 2));
        assert_eq!(m.bounding_box(), Some(([1, 2], [3, 4])));
        assert_eq!(Mask2d::empty(3, 3).bounding_box(), None);
        let v = Mask3d::from_fn(4, 3, 5, |z, r, c| {
            (z, r, c) == (2, 1, 3) || (z, r, c) == (1, 2, 0)
        });
        assert_eq!(v.bounding_box(), Some(([1, 1, 0], [2, 2, 3])));
    }

    #[test]
    fn nearest_resize_matches_cv2_index_rule() {
        // Expected indices from cv2.resize(..., interpolation=cv2.INTER_NEAREST) on an arange row.
        assert_eq!(nearest_source_indices(4, 8), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(nearest_source_indices(8, 3), vec![0, 2, 5]);
        assert_eq!(nearest_source_indices(3, 3), vec![0, 1, 2]);
        let m = Mask2d::from_fn(2, 2, |r, c| r == c);
        let up = m.resize_nearest(4, 4).unwrap();
        let expected = Mask2d::from_fn(4, 4, |r, c| r / 2 == c / 2);
        assert_eq!(up, expected);
        assert!(m.resize_nearest(0, 4).is_err());
    }

    #[test]
    fn spacing_must_be_positive_and_finite() {
        assert!(check_spacing(&[1.0, 0.5]).is_ok());
        assert!(check_spacing(&[1.0, 0.0]).is_err());
        assert!(check_spacing(&[f64::NAN, 1.0]).is_err());
        assert!(check_spacing(&[f64::INFINITY, 1.0]).is_err());
    }
}
