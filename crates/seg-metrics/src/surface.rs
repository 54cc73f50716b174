//! Surface elements of a mask pair and their distances to the other surface, in the three
//! boundary models of the references (metrics spec §2):
//!
//! - DeepMind `compute_surface_distances`: **corner points** between pixels (2-D) or voxels (3-D)
//!   whose 2x2 (2x2x2) neighbour code is neither empty nor full, weighted by contour length
//!   (surfel area) from the lookup tables, distances between corner points;
//! - MedCLIPSeg: the same 3-D algorithm run on the 2-D mask as a one-voxel-thick volume (the
//!   "thin slab" quirk: every corner touching the foreground is a surface element);
//! - MONAI (`use_subvoxels=False`): **edge pixels** `mask XOR erode(mask, cross)` with weight 1,
//!   distances between pixel centres.
//!
//! Every model first crops to the bounding box of the union of both masks (as the references do);
//! this changes no distance, it only skips empty space.

use crate::edt::{squared_distances_at_2d, squared_distances_at_3d};
use crate::error::{MetricsError, Result};
use crate::lookup::{contour_length_table, surface_area_table};
use crate::mask::{
    Mask2d, Mask3d, check_same_shape, check_spacing, union_bounding_box_2d, union_bounding_box_3d,
};

/// Distances from every surface element of one mask to the other mask's surface, with the
/// element weights (contour length, surfel area, or 1), for both directions.
///
/// Elements are in grid order (not sorted). When a mask is empty its lists are empty and every
/// distance from the other mask is `+inf`, as in the DeepMind code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SurfaceDistances {
    /// Distance from each ground-truth surface element to the predicted surface.
    pub gt_to_pred: Vec<f64>,
    /// Weight of each ground-truth surface element.
    pub gt_weights: Vec<f64>,
    /// Distance from each predicted surface element to the ground-truth surface.
    pub pred_to_gt: Vec<f64>,
    /// Weight of each predicted surface element.
    pub pred_weights: Vec<f64>,
}

/// One mask's surface on the cropped grid.
#[derive(Default)]
struct Surface {
    /// Flat grid indices of the surface elements, ascending.
    points: Vec<usize>,
    weights: Vec<f64>,
}

impl Surface {
    fn from_codes(
        codes: &[u8],
        is_surface: impl Fn(u8) -> bool,
        weight: impl Fn(u8) -> f64,
    ) -> Self {
        let mut surface = Surface::default();
        for (i, &code) in codes.iter().enumerate() {
            if is_surface(code) {
                surface.points.push(i);
                surface.weights.push(weight(code));
            }
        }
        surface
    }
}

/// Grid geometry of one computation.
#[derive(Clone, Copy)]
enum Grid {
    Two([usize; 2], [f64; 2]),
    Three([usize; 3], [f64; 3]),
}

impl Grid {
    fn squared_distances(self, features: &[usize], queries: &[usize]) -> Vec<f64> {
        match self {
            Grid::Two(shape, spacing) => squared_distances_at_2d(features, shape, spacing, queries),
            Grid::Three(shape, spacing) => {
                squared_distances_at_3d(features, shape, spacing, queries)
            }
        }
    }
}

/// Distances from `from`'s elements to `to`'s surface.
fn directed(grid: Grid, from: &Surface, to: &Surface) -> Vec<f64> {
    if from.points.is_empty() {
        return Vec::new();
    }
    if to.points.is_empty() {
        return vec![f64::INFINITY; from.points.len()];
    }
    let mut d = grid.squared_distances(&to.points, &from.points);
    d.iter_mut().for_each(|v| *v = v.sqrt());
    d
}

fn both_directions(grid: Grid, gt: Surface, pred: Surface) -> SurfaceDistances {
    let (gt_to_pred, pred_to_gt) =
        rayon::join(|| directed(grid, &gt, &pred), || directed(grid, &pred, &gt));
    SurfaceDistances {
        gt_to_pred,
        gt_weights: gt.weights,
        pred_to_gt,
        pred_weights: pred.weights,
    }
}

/// Rows of the crop `lo..=hi` of a 2-D mask, 64 pixels per word: bit j of row r is pixel
/// (lo0 + r, lo1 + j). Each row has room for one more column than the crop (the corner grid's).
struct BitRows {
    rows: usize,
    cols: usize,
    words: usize,
    bits: Vec<u64>,
    zeros: Vec<u64>,
}

impl BitRows {
    fn pack(mask: &Mask2d, lo: [usize; 2], hi: [usize; 2]) -> Self {
        let (rows, cols) = (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1);
        let words = (cols + 1).div_ceil(64);
        let mut bits = vec![0u64; rows * words];
        let data = crate::mask::BinaryMask::data(mask);
        for (r, dst) in bits.chunks_exact_mut(words).enumerate() {
            let start = (lo[0] + r) * mask.cols() + lo[1];
            pack_bits(&data[start..start + cols], dst);
        }
        Self {
            rows,
            cols,
            words,
            bits,
            zeros: vec![0; words],
        }
    }

    /// Row `r` of the crop; rows outside it are background.
    fn row(&self, r: isize) -> &[u64] {
        if r < 0 || r as usize >= self.rows {
            &self.zeros
        } else {
            let r = r as usize;
            &self.bits[r * self.words..(r + 1) * self.words]
        }
    }
}

/// Packs bools into words, bit i of word k = `src[64k + i]`; 8 bools at a time (a bool is a 0/1
/// byte, and one multiply gathers the low bit of 8 bytes into the top byte).
fn pack_bits(src: &[bool], dst: &mut [u64]) {
    for (word, chunk) in dst.iter_mut().zip(src.chunks(64)) {
        let mut value = 0u64;
        for (i, part) in chunk.chunks(8).enumerate() {
            let mut bytes = [0u8; 8];
            for (b, &x) in bytes.iter_mut().zip(part) {
                *b = u8::from(x);
            }
            let byte = u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080) >> 56;
            value |= byte << (8 * i);
        }
        *word = value;
    }
}

/// The row bits shifted one column right: bit j holds pixel j - 1 (0 for j = 0).
fn shifted_left(row: &[u64], k: usize) -> u64 {
    let carry = if k > 0 { row[k - 1] >> 63 } else { 0 };
    (row[k] << 1) | carry
}

/// The row bits shifted one column left: bit j holds pixel j + 1.
fn shifted_right(row: &[u64], k: usize) -> u64 {
    let carry = row.get(k + 1).map_or(0, |w| w << 63);
    (row[k] >> 1) | carry
}

/// Which corners of the 2-D corner grid are surface elements.
#[derive(Clone, Copy)]
enum CornerRule {
    /// DeepMind 2-D: the 2x2 block is mixed (code not 0 nor 15).
    Contour,
    /// MedCLIPSeg slab: the 2x2 block touches the foreground (code not 0).
    Slab,
}

/// Surface corners of a 2-D crop on the (rows + 1) x (cols + 1) corner grid, with the 2x2 codes
/// of `scipy.ndimage.correlate(crop, [[8, 4], [2, 1]])` (8 = top-left ... 1 = bottom-right pixel,
/// outside = background) mapped to weights.
fn corner_surface(bits: &BitRows, rule: CornerRule, weight: &[f64; 16]) -> (Surface, [usize; 2]) {
    let grid = [bits.rows + 1, bits.cols + 1];
    let last_word_mask = match grid[1] % 64 {
        0 => u64::MAX,
        used => (1u64 << used) - 1,
    };
    let mut surface = Surface::default();
    for i in 0..grid[0] {
        let (top, bottom) = (bits.row(i as isize - 1), bits.row(i as isize));
        for k in 0..bits.words {
            let (tl, tr) = (shifted_left(top, k), top[k]);
            let (bl, br) = (shifted_left(bottom, k), bottom[k]);
            let mut on = match rule {
                CornerRule::Contour => (tl ^ tr) | (tl ^ bl) | (tl ^ br),
                CornerRule::Slab => tl | tr | bl | br,
            };
            if k + 1 == bits.words {
                on &= last_word_mask;
            }
            while on != 0 {
                let b = on.trailing_zeros();
                on &= on - 1;
                let code = ((tl >> b & 1) << 3)
                    | ((tr >> b & 1) << 2)
                    | ((bl >> b & 1) << 1)
                    | (br >> b & 1);
                surface.points.push(i * grid[1] + 64 * k + b as usize);
                surface.weights.push(weight[code as usize]);
            }
        }
    }
    (surface, grid)
}

/// MONAI edge pixels of a 2-D crop: foreground with a background 4-neighbour (outside =
/// background), i.e. `mask XOR binary_erosion(mask)` with scipy's cross and `border_value=0`.
fn edge_surface(bits: &BitRows) -> (Surface, [usize; 2]) {
    let grid = [bits.rows, bits.cols];
    let mut surface = Surface::default();
    for r in 0..grid[0] {
        let (up, mid, down) = (
            bits.row(r as isize - 1),
            bits.row(r as isize),
            bits.row(r as isize + 1),
        );
        for k in 0..bits.words {
            let interior = up[k] & down[k] & shifted_left(mid, k) & shifted_right(mid, k);
            let mut on = mid[k] & !interior;
            while on != 0 {
                let b = on.trailing_zeros() as usize;
                on &= on - 1;
                surface.points.push(r * grid[1] + 64 * k + b);
                surface.weights.push(1.0);
            }
        }
    }
    (surface, grid)
}

/// The crop `lo..=hi` of a volume with one background voxel added on every side, as 0/1 bytes.
fn padded_crop_3d(mask: &Mask3d, lo: [usize; 3], hi: [usize; 3]) -> (Vec<u8>, [usize; 3]) {
    let dims = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let padded = [dims[0] + 2, dims[1] + 2, dims[2] + 2];
    let mut out = vec![0u8; padded.iter().product()];
    let data = crate::mask::BinaryMask::data(mask);
    for z in 0..dims[0] {
        for r in 0..dims[1] {
            let src_start = ((lo[0] + z) * mask.rows() + lo[1] + r) * mask.cols() + lo[2];
            let src = &data[src_start..src_start + dims[2]];
            let dst_start = ((z + 1) * padded[1] + r + 1) * padded[2] + 1;
            for (d, &s) in out[dst_start..dst_start + dims[2]].iter_mut().zip(src) {
                *d = u8::from(s);
            }
        }
    }
    (out, padded)
}

/// 2x2x2 corner codes of a padded 3-D crop, with the DeepMind kernel
/// `[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]` (bit 128 = voxel (z-1, r-1, c-1), bit 1 = (z, r, c)).
fn corner_codes_3d(padded: &[u8], pshape: [usize; 3]) -> (Vec<u8>, [usize; 3]) {
    let [pd, ph, pw] = pshape;
    let grid = [pd - 1, ph - 1, pw - 1];
    let mut codes = vec![0u8; grid.iter().product()];
    let at = |z: usize, r: usize| &padded[(z * ph + r) * pw..(z * ph + r + 1) * pw];
    for z in 0..grid[0] {
        for r in 0..grid[1] {
            let (a, b, c, d) = (at(z, r), at(z, r + 1), at(z + 1, r), at(z + 1, r + 1));
            let dst = &mut codes[(z * grid[1] + r) * grid[2]..(z * grid[1] + r + 1) * grid[2]];
            for (j, out) in dst.iter_mut().enumerate() {
                *out = (a[j] << 7)
                    | (a[j + 1] << 6)
                    | (b[j] << 5)
                    | (b[j + 1] << 4)
                    | (c[j] << 3)
                    | (c[j + 1] << 2)
                    | (d[j] << 1)
                    | d[j + 1];
            }
        }
    }
    (codes, grid)
}

/// 2-D surface codes of the slab: the 3-D codes of the two corner planes of a one-slice volume
/// with axes (row, col, z). Plane z = 0 sees the slice as its "z" voxels, plane z = 1 as its
/// "z - 1" voxels; returns the 3-D code of each plane for a 2-D code.
fn slab_plane_codes(code2: u8) -> (usize, usize) {
    let tl = usize::from(code2 >> 3 & 1);
    let tr = usize::from(code2 >> 2 & 1);
    let bl = usize::from(code2 >> 1 & 1);
    let br = usize::from(code2 & 1);
    // Kernel bit of voxel (row - 1 + a, col - 1 + b, z - 1 + c) is 1 << (7 - (4a + 2b + c)).
    let lower = 64 * tl + 16 * tr + 4 * bl + br;
    let upper = 128 * tl + 32 * tr + 8 * bl + 2 * br;
    (lower, upper)
}

/// MONAI edge voxels of a padded 3-D crop: foreground with a background 6-neighbour.
fn edge_codes_3d(padded: &[u8], pshape: [usize; 3]) -> (Vec<u8>, [usize; 3]) {
    let [pd, ph, pw] = pshape;
    let dims = [pd - 2, ph - 2, pw - 2];
    let mut edges = vec![0u8; dims.iter().product()];
    let at = |z: usize, r: usize| &padded[(z * ph + r) * pw..(z * ph + r + 1) * pw];
    for z in 0..dims[0] {
        for r in 0..dims[1] {
            let (mid, up, down) = (at(z + 1, r + 1), at(z + 1, r), at(z + 1, r + 2));
            let (before, after) = (at(z, r + 1), at(z + 2, r + 1));
            let start = (z * dims[1] + r) * dims[2];
            for (c, e) in edges[start..start + dims[2]].iter_mut().enumerate() {
                let interior =
                    up[c + 1] & down[c + 1] & mid[c] & mid[c + 2] & before[c + 1] & after[c + 1];
                *e = mid[c + 1] & (interior ^ 1);
            }
        }
    }
    (edges, dims)
}

impl SurfaceDistances {
    /// DeepMind `compute_surface_distances` on 2-D masks: corner-point contour elements weighted by
    /// length; `spacing` is (row, col).
    pub fn deepmind_2d(gt: &Mask2d, pred: &Mask2d, spacing: [f64; 2]) -> Result<Self> {
        check_same_shape(gt, pred)?;
        check_spacing(&spacing)?;
        let Some((lo, hi)) = union_bounding_box_2d(gt, pred) else {
            return Ok(Self::default());
        };
        let table = contour_length_table(spacing);
        let surface = |mask: &Mask2d| {
            corner_surface(&BitRows::pack(mask, lo, hi), CornerRule::Contour, &table)
        };
        let ((gt_s, grid), (pred_s, _)) = rayon::join(|| surface(gt), || surface(pred));
        Ok(both_directions(Grid::Two(grid, spacing), gt_s, pred_s))
    }

    /// MedCLIPSeg's NSD surface: the DeepMind 3-D algorithm on `mask[..., None]` (a one-slice volume
    /// with axes (row, col, z)) with spacing (row, col, 1). Every corner that touches the foreground
    /// is a surface element on both z planes, interior included; the reference passes spacing
    /// (1, 1, 1). Computed in 2-D: both planes hold the same elements at the same distances, so
    /// their areas are summed per corner.
    pub fn medclipseg_slab(gt: &Mask2d, pred: &Mask2d, spacing: [f64; 2]) -> Result<Self> {
        check_same_shape(gt, pred)?;
        check_spacing(&spacing)?;
        let Some((lo, hi)) = union_bounding_box_2d(gt, pred) else {
            return Ok(Self::default());
        };
        let areas = surface_area_table([spacing[0], spacing[1], 1.0]);
        let mut slab_weight = [0.0; 16];
        for (code, w) in slab_weight.iter_mut().enumerate() {
            let (lower, upper) = slab_plane_codes(code as u8);
            *w = areas[lower] + areas[upper];
        }
        let surface = |mask: &Mask2d| {
            corner_surface(&BitRows::pack(mask, lo, hi), CornerRule::Slab, &slab_weight)
        };
        let ((gt_s, grid), (pred_s, _)) = rayon::join(|| surface(gt), || surface(pred));
        Ok(both_directions(Grid::Two(grid, spacing), gt_s, pred_s))
    }

    /// DeepMind `compute_surface_distances` on volumes: corner-point surfels weighted by the
    /// marching-cubes area table; `spacing` is (z, row, col).
    pub fn deepmind_3d(gt: &Mask3d, pred: &Mask3d, spacing: [f64; 3]) -> Result<Self> {
        check_same_shape(gt, pred)?;
        check_spacing(&spacing)?;
        let Some((lo, hi)) = union_bounding_box_3d(gt, pred) else {
            return Ok(Self::default());
        };
        let table = surface_area_table(spacing);
        let surface = |mask: &Mask3d| {
            let (padded, pshape) = padded_crop_3d(mask, lo, hi);
            let (codes, grid) = corner_codes_3d(&padded, pshape);
            (
                Surface::from_codes(&codes, |c| c != 0 && c != 255, |c| table[usize::from(c)]),
                grid,
            )
        };
        let ((gt_s, grid), (pred_s, _)) = rayon::join(|| surface(gt), || surface(pred));
        Ok(both_directions(Grid::Three(grid, spacing), gt_s, pred_s))
    }

    /// MONAI pixel surface (`use_subvoxels=False`): edge pixels with weight 1, pixel-centre distances.
    pub fn monai_2d(gt: &Mask2d, pred: &Mask2d, spacing: [f64; 2]) -> Result<Self> {
        check_same_shape(gt, pred)?;
        check_spacing(&spacing)?;
        let Some((lo, hi)) = union_bounding_box_2d(gt, pred) else {
            return Ok(Self::default());
        };
        let surface = |mask: &Mask2d| edge_surface(&BitRows::pack(mask, lo, hi));
        let ((gt_s, grid), (pred_s, _)) = rayon::join(|| surface(gt), || surface(pred));
        Ok(both_directions(Grid::Two(grid, spacing), gt_s, pred_s))
    }

    /// MONAI voxel surface in 3-D (6-neighbourhood erosion), weight 1.
    pub fn monai_3d(gt: &Mask3d, pred: &Mask3d, spacing: [f64; 3]) -> Result<Self> {
        check_same_shape(gt, pred)?;
        check_spacing(&spacing)?;
        let Some((lo, hi)) = union_bounding_box_3d(gt, pred) else {
            return Ok(Self::default());
        };
        let surface = |mask: &Mask3d| {
            let (padded, pshape) = padded_crop_3d(mask, lo, hi);
            let (edges, grid) = edge_codes_3d(&padded, pshape);
            (Surface::from_codes(&edges, |e| e != 0, |_| 1.0), grid)
        };
        let ((gt_s, grid), (pred_s, _)) = rayon::join(|| surface(gt), || surface(pred));
        Ok(both_directions(Grid::Three(grid, spacing), gt_s, pred_s))
    }

    /// True when neither mask has a surface element (both masks empty).
    pub fn is_empty(&self) -> bool {
        self.gt_weights.is_empty() && self.pred_weights.is_empty()
    }

    /// Total ground-truth surface (contour length, area, or element count).
    pub fn gt_surface(&self) -> f64 {
        self.gt_weights.iter().sum()
    }

    /// Total predicted surface.
    pub fn pred_surface(&self) -> f64 {
        self.pred_weights.iter().sum()
    }

    /// Weight of the ground-truth and predicted elements within `tolerance` (`<=`) of the other surface.
    pub fn overlap_weights(&self, tolerance: f64) -> (f64, f64) {
        (
            weight_within(&self.gt_to_pred, &self.gt_weights, tolerance),
            weight_within(&self.pred_to_gt, &self.pred_weights, tolerance),
        )
    }

    /// DeepMind `compute_surface_overlap_at_tolerance`: the fraction of each surface within
    /// `tolerance` of the other (NaN for an empty surface).
    pub fn surface_overlap(&self, tolerance: f64) -> (f64, f64) {
        let (gt_in, pred_in) = self.overlap_weights(tolerance);
        (gt_in / self.gt_surface(), pred_in / self.pred_surface())
    }

    /// DeepMind `compute_surface_dice_at_tolerance`: weighted surface Dice, `NaN` when both masks
    /// are empty, 0 when one is.
    pub fn surface_dice(&self, tolerance: f64) -> f64 {
        let (gt_in, pred_in) = self.overlap_weights(tolerance);
        (gt_in + pred_in) / (self.gt_surface() + self.pred_surface())
    }

    /// DeepMind `compute_robust_hausdorff`: per direction, the first distance (sorted ascending)
    /// whose cumulative weight fraction reaches `percent / 100` (no interpolation); the larger of
    /// the two. `+inf` when either mask is empty.
    pub fn robust_hausdorff(&self, percent: f64) -> Result<f64> {
        check_percent(percent)?;
        let a = weighted_percentile(&self.gt_to_pred, &self.gt_weights, percent);
        let b = weighted_percentile(&self.pred_to_gt, &self.pred_weights, percent);
        Ok(a.max(b))
    }

    /// MONAI `compute_hausdorff_distance(percentile=percent)`: per direction the linear-interpolated
    /// quantile (`torch.quantile`), the larger of the two. `NaN` when either mask is empty (the
    /// quantile of an empty or all-infinite vector).
    pub fn quantile_hausdorff(&self, percent: f64) -> Result<f64> {
        check_percent(percent)?;
        if self.gt_to_pred.is_empty() || self.pred_to_gt.is_empty() {
            return Ok(f64::NAN);
        }
        let q = percent / 100.0;
        Ok(linear_quantile(&self.gt_to_pred, q).max(linear_quantile(&self.pred_to_gt, q)))
    }

    /// DeepMind `compute_average_surface_distance`: the weighted mean distance (gt → pred, pred → gt).
    pub fn average_surface_distance(&self) -> (f64, f64) {
        (
            weighted_sum(&self.gt_to_pred, &self.gt_weights) / self.gt_surface(),
            weighted_sum(&self.pred_to_gt, &self.pred_weights) / self.pred_surface(),
        )
    }

    /// Average symmetric surface distance, pooled over both directions:
    /// `(Σ w·d over both surfaces) / (Σ w over both)`. With unit weights this is MONAI's
    /// `compute_average_surface_distance(symmetric=True)`. `NaN` when both masks are empty,
    /// `+inf` when one is.
    pub fn assd(&self) -> f64 {
        let total = weighted_sum(&self.gt_to_pred, &self.gt_weights)
            + weighted_sum(&self.pred_to_gt, &self.pred_weights);
        total / (self.gt_surface() + self.pred_surface())
    }
}

fn check_percent(percent: f64) -> Result<()> {
    if (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(MetricsError::InvalidPercent { percent })
    }
}

fn weight_within(distances: &[f64], weights: &[f64], tolerance: f64) -> f64 {
    distances
        .iter()
        .zip(weights)
        .filter(|(d, _)| **d <= tolerance)
        // A fold from +0.0, not `sum()`: Rust's float sum of nothing is -0.0, which made a
        // zero NSD print as `-0.0000`.
        .fold(0.0, |total, (_, w)| total + w)
}

fn weighted_sum(distances: &[f64], weights: &[f64]) -> f64 {
    distances.iter().zip(weights).map(|(d, w)| d * w).sum()
}

/// DeepMind's percentile: sort (distance, weight) pairs, cumulative weight / total,
/// `searchsorted(cum, percent / 100)` (first index with `cum >= p`), clamped to the last element.
fn weighted_percentile(distances: &[f64], weights: &[f64], percent: f64) -> f64 {
    if distances.is_empty() {
        return f64::INFINITY;
    }
    let mut pairs: Vec<(f64, f64)> = distances
        .iter()
        .copied()
        .zip(weights.iter().copied())
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let target = percent / 100.0;
    let mut cum = 0.0;
    for (d, w) in &pairs {
        cum += w;
        if cum / total >= target {
            return *d;
        }
    }
    pairs[pairs.len() - 1].0
}

/// `torch.quantile(values, q)` with linear interpolation (values need not be sorted).
fn linear_quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    lerp(sorted[below], sorted[above], rank - below as f64)
}

/// `torch.lerp`: exact at both ends.
fn lerp(start: f64, end: f64, weight: f64) -> f64 {
    if weight < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(n: usize, r0: usize, c0: usize, side: usize) -> Mask2d {
        Mask2d::from_fn(n, n, |r, c| {
            r >= r0 && r < r0 + side && c >= c0 && c < c0 + side
        })
    }

    #[test]
    fn one_pixel_contour_is_four_half_diagonals() {
        let m = Mask2d::from_fn(5, 5, |r, c| r == 2 && c == 2);
        let sd = SurfaceDistances::deepmind_2d(&m, &m, [1.0, 1.0]).unwrap();
        assert_eq!(sd.gt_weights.len(), 4);
        assert!((sd.gt_surface() - 2.0 * 2f64.sqrt()).abs() < 1e-12);
        assert!(sd.gt_to_pred.iter().all(|&d| d == 0.0));
        assert_eq!(sd.surface_dice(0.0), 1.0);
    }

    #[test]
    fn full_image_contour_runs_along_the_border() {
        // Spec case identical_full_image: DeepMind length 158.83 for a 32x48 full image (2 * (31 + 47)
        // straight steps plus 4 corners of two half diagonals), MONAI 156 edge pixels.
        let m = Mask2d::from_fn(32, 48, |_, _| true);
        let dm = SurfaceDistances::deepmind_2d(&m, &m, [1.0, 1.0]).unwrap();
        assert!(
            (dm.gt_surface() - 158.83).abs() < 5e-3,
            "{}",
            dm.gt_surface()
        );
        let mo = SurfaceDistances::monai_2d(&m, &m, [1.0, 1.0]).unwrap();
        assert_eq!(mo.gt_weights.len(), 156);
    }

    #[test]
    fn two_px_gap_is_two_between_corners_and_three_between_centres() {
        // Spec case disjoint_gap2: corners are 2 apart, edge-pixel centres 3.
        let a = Mask2d::from_fn(10, 12, |r, c| (2..8).contains(&r) && (1..4).contains(&c));
        let b = Mask2d::from_fn(10, 12, |r, c| (2..8).contains(&r) && (6..9).contains(&c));
        let dm = SurfaceDistances::deepmind_2d(&a, &b, [1.0, 1.0]).unwrap();
        let min_dm = dm.gt_to_pred.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(min_dm, 2.0);
        let mo = SurfaceDistances::monai_2d(&a, &b, [1.0, 1.0]).unwrap();
        let min_mo = mo.gt_to_pred.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(min_mo, 3.0);
        assert_eq!(mo.surface_dice(2.0), 0.0);
        assert!(dm.surface_dice(2.0) > 0.0);
    }

    #[test]
    fn slab_equals_the_generic_3d_code_on_a_one_slice_volume() {
        let gt = Mask2d::from_fn(14, 17, |r, c| {
            (r as i32 - 6).pow(2) + (c as i32 - 8).pow(2) <= 20
        });
        let pred = Mask2d::from_fn(14, 17, |r, c| (3..11).contains(&r) && (5..15).contains(&c));
        for spacing in [[1.0, 1.0], [0.5, 2.0]] {
            let slab = SurfaceDistances::medclipseg_slab(&gt, &pred, spacing).unwrap();
            // gt[..., None]: axes (row, col, z) become this crate's (depth, rows, cols).
            let as_volume =
                |m: &Mask2d| Mask3d::from_fn(m.rows(), m.cols(), 1, |r, c, _| m.get(r, c));
            let v = SurfaceDistances::deepmind_3d(
                &as_volume(&gt),
                &as_volume(&pred),
                [spacing[0], spacing[1], 1.0],
            )
            .unwrap();
            assert!((slab.gt_surface() - v.gt_surface()).abs() < 1e-9);
            assert!((slab.pred_surface() - v.pred_surface()).abs() < 1e-9);
            for tol in [0.0, 0.5, 1.0, 2.0, 3.5] {
                assert!((slab.surface_dice(tol) - v.surface_dice(tol)).abs() < 1e-12);
            }
            assert_eq!(
                slab.robust_hausdorff(95.0).unwrap(),
                v.robust_hausdorff(95.0).unwrap()
            );
            assert!((slab.assd() - v.assd()).abs() < 1e-12);
        }
    }

    #[test]
    fn bit_packing_matches_a_plain_loop() {
        let src: Vec<bool> = (0..150).map(|i| (i * 7 + i / 3) % 5 < 2).collect();
        let mut packed = vec![0u64; 3];
        pack_bits(&src, &mut packed);
        for (i, &b) in src.iter().enumerate() {
            assert_eq!(packed[i / 64] >> (i % 64) & 1 == 1, b, "bit {i}");
        }
        assert_eq!(packed[2] >> 22, 0);
    }

    #[test]
    fn corner_and_edge_surfaces_match_the_byte_codes() {
        // Word boundaries: crops 63..66 columns wide.
        for cols in [1, 62, 63, 64, 65, 66, 130] {
            let m = Mask2d::from_fn(5, cols, |r, c| (r * 31 + c * 17) % 7 < 3);
            let (lo, hi) = ([0, 0], [4, cols - 1]);
            let bits = BitRows::pack(&m, lo, hi);
            let mut padded = vec![0u8; 7 * (cols + 2)];
            for r in 0..5 {
                for c in 0..cols {
                    padded[(r + 1) * (cols + 2) + c + 1] = u8::from(m.get(r, c));
                }
            }
            // Codes by the definition: output (i, j) sees pixels (i-1..=i, j-1..=j).
            let code = |i: usize, j: usize| {
                let p = |r: usize, c: usize| padded[r * (cols + 2) + c];
                (p(i, j) << 3) | (p(i, j + 1) << 2) | (p(i + 1, j) << 1) | p(i + 1, j + 1)
            };
            let index = std::array::from_fn(|i| i as f64);
            let (contour, grid) = corner_surface(&bits, CornerRule::Contour, &index);
            let (slab, _) = corner_surface(&bits, CornerRule::Slab, &index);
            let mut expected_contour = Vec::new();
            let mut expected_slab = Vec::new();
            for i in 0..grid[0] {
                for j in 0..grid[1] {
                    let c = code(i, j);
                    if c != 0 && c != 15 {
                        expected_contour.push((i * grid[1] + j, f64::from(c)));
                    }
                    if c != 0 {
                        expected_slab.push((i * grid[1] + j, f64::from(c)));
                    }
                }
            }
            let pairs = |s: &Surface| {
                s.points
                    .iter()
                    .copied()
                    .zip(s.weights.iter().copied())
                    .collect::<Vec<_>>()
            };
            assert_eq!(pairs(&contour), expected_contour, "cols {cols}");
            assert_eq!(pairs(&slab), expected_slab, "cols {cols}");
            let (edges, _) = edge_surface(&bits);
            let p = |r: usize, c: usize| padded[r * (cols + 2) + c];
            let expected_edges: Vec<usize> = (0..5 * cols)
                .filter(|&i| {
                    let (r, c) = (i / cols + 1, i % cols + 1);
                    p(r, c) == 1 && (p(r - 1, c) & p(r + 1, c) & p(r, c - 1) & p(r, c + 1)) == 0
                })
                .collect();
            assert_eq!(edges.points, expected_edges, "cols {cols}");
        }
    }

    #[test]
    fn slab_plane_codes_cover_the_kernel_bits() {
        assert_eq!(
            slab_plane_codes(0b1111),
            (64 + 16 + 4 + 1, 128 + 32 + 8 + 2)
        );
        assert_eq!(slab_plane_codes(0b0001), (1, 2));
        assert_eq!(slab_plane_codes(0b1000), (64, 128));
    }

    #[test]
    fn empty_masks_follow_the_deepmind_rules() {
        let empty = Mask2d::empty(6, 6);
        let some = square(6, 1, 1, 3);
        let both = SurfaceDistances::deepmind_2d(&empty, &empty, [1.0, 1.0]).unwrap();
        assert!(both.is_empty());
        assert!(both.surface_dice(1.0).is_nan());
        assert_eq!(both.robust_hausdorff(95.0).unwrap(), f64::INFINITY);
        assert!(both.assd().is_nan());
        let one = SurfaceDistances::deepmind_2d(&some, &empty, [1.0, 1.0]).unwrap();
        assert_eq!(one.surface_dice(1.0), 0.0);
        assert!(one.gt_to_pred.iter().all(|d| d.is_infinite()));
        assert_eq!(one.robust_hausdorff(95.0).unwrap(), f64::INFINITY);
        assert_eq!(one.assd(), f64::INFINITY);
        let mo = SurfaceDistances::monai_2d(&empty, &some, [1.0, 1.0]).unwrap();
        assert!(mo.quantile_hausdorff(95.0).unwrap().is_nan());
        assert_eq!(mo.surface_dice(3.0), 0.0);
    }

    #[test]
    fn percent_must_be_in_range() {
        let sd = SurfaceDistances::default();
        assert!(sd.robust_hausdorff(101.0).is_err());
        assert!(sd.quantile_hausdorff(-1.0).is_err());
        assert!(sd.robust_hausdorff(f64::NAN).is_err());
    }

    #[test]
    fn weighted_percentile_follows_searchsorted() {
        // cum fractions 0.25, 0.5, 0.75, 1.0: 50 % is reached at the second element.
        let d = [4.0, 1.0, 3.0, 2.0];
        let w = [1.0; 4];
        assert_eq!(weighted_percentile(&d, &w, 50.0), 2.0);
        assert_eq!(weighted_percentile(&d, &w, 50.1), 3.0);
        assert_eq!(weighted_percentile(&d, &w, 100.0), 4.0);
        assert_eq!(weighted_percentile(&d, &w, 0.0), 1.0);
    }

    #[test]
    fn linear_quantile_matches_torch() {
        // torch.quantile(torch.tensor([1., 2., 3., 10.]), 0.95) = 8.95
        assert!((linear_quantile(&[10.0, 1.0, 3.0, 2.0], 0.95) - 8.95).abs() < 1e-12);
        assert_eq!(linear_quantile(&[5.0], 0.95), 5.0);
    }

    #[test]
    fn monai_3d_edges_of_a_cube() {
        // A 3x3x3 cube has 26 edge voxels (all but the centre).
        let cube = Mask3d::from_fn(5, 5, 5, |z, r, c| {
            (1..4).contains(&z) && (1..4).contains(&r) && (1..4).contains(&c)
        });
        let sd = SurfaceDistances::monai_3d(&cube, &cube, [1.0, 1.0, 1.0]).unwrap();
        assert_eq!(sd.gt_weights.len(), 26);
        assert_eq!(sd.surface_dice(0.0), 1.0);
    }
}
