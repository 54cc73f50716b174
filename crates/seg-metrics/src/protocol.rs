//! The three evaluation protocols (DeepMind, MONAI, MedCLIPSeg): which surface model, which
//! empty-mask rules, which HD95 definition — and the per-image report built from them.

use crate::dice::{DiceConvention, dice};
use crate::error::{MetricsError, Result};
use crate::mask::{Mask2d, Mask3d};
use crate::surface::SurfaceDistances;

/// Which reference implementation the metrics reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// DeepMind `surface-distance`: corner-point contour (2-D) / surfel (3-D) elements weighted by
    /// length / area. NSD: both empty → NaN, one empty → 0. HD95: `compute_robust_hausdorff`
    /// (weighted, no interpolation), `+inf` when either mask is empty. DSC: [`DiceConvention::DeepMind`].
    DeepMind,
    /// MONAI `compute_surface_dice` / `compute_hausdorff_distance` (pixel edges, weight 1,
    /// `use_subvoxels=False`). NSD: both empty → NaN, one empty → 0. HD95: linear quantile per
    /// direction, NaN when either mask is empty. DSC: [`DiceConvention::MonaiIgnoreEmpty`].
    Monai,
    /// MedCLIPSeg `utils/eval.py` (the paper's numbers): the prediction is resized to the GT size
    /// (nearest), NSD is the DeepMind 3-D code on the 2-D mask as a one-slice volume (see
    /// [`MedClipSegSurface`]) with spacing 1 and tolerance 2 px, `(overlap) / (total + 1e-8)`;
    /// both empty → DSC = NSD = 1, GT empty and prediction not → 0, GT not and prediction empty → 0.
    /// DSC: [`DiceConvention::MedClipSeg`]. HD95/ASSD are not computed by the reference; here they
    /// use the same surface with the DeepMind rules, except both empty → NaN.
    #[default]
    MedClipSeg,
}

impl Protocol {
    /// Every protocol, the paper's first.
    pub const ALL: [Protocol; 3] = [Protocol::MedClipSeg, Protocol::DeepMind, Protocol::Monai];

    /// The protocol's name on command lines and in summaries (`medclipseg`, `deepmind`,
    /// `monai`).
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::MedClipSeg => "medclipseg",
            Protocol::DeepMind => "deepmind",
            Protocol::Monai => "monai",
        }
    }

    /// The protocol called `name` (see [`Protocol::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Surface model of the MedCLIPSeg protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MedClipSegSurface {
    /// **Default, faithful to the reference** ("thin slab" quirk, metrics spec §2.5): `mask[..., None]`
    /// is a one-voxel-thick volume, so every foreground pixel's corners (top and bottom faces) are
    /// surface elements and NSD behaves like a dilated region overlap.
    #[default]
    Slab,
    /// The clean variant: the 2-D DeepMind contour (corner points weighted by length). Keeps the
    /// protocol's empty-mask rules and epsilon.
    Contour,
}

/// MedCLIPSeg's `epsilon` in the NSD and DSC denominators.
const MEDCLIPSEG_EPSILON: f64 = 1e-8;

impl Protocol {
    /// The DSC convention of this protocol's reference.
    pub fn dice_convention(self) -> DiceConvention {
        match self {
            Protocol::DeepMind => DiceConvention::DeepMind,
            Protocol::Monai => DiceConvention::MonaiIgnoreEmpty,
            Protocol::MedClipSeg => DiceConvention::MedClipSeg,
        }
    }

    /// Surface distances of a 2-D pair; `spacing` is (row, col). For the MedCLIPSeg slab the third
    /// spacing is 1.
    pub fn surface_distances_2d(
        self,
        gt: &Mask2d,
        pred: &Mask2d,
        spacing: [f64; 2],
        surface: MedClipSegSurface,
    ) -> Result<SurfaceDistances> {
        match (self, surface) {
            (Protocol::DeepMind, _) | (Protocol::MedClipSeg, MedClipSegSurface::Contour) => {
                SurfaceDistances::deepmind_2d(gt, pred, spacing)
            }
            (Protocol::Monai, _) => SurfaceDistances::monai_2d(gt, pred, spacing),
            (Protocol::MedClipSeg, MedClipSegSurface::Slab) => {
                SurfaceDistances::medclipseg_slab(gt, pred, spacing)
            }
        }
    }

    /// Surface distances of a 3-D pair; `spacing` is (z, row, col). MedCLIPSeg uses the DeepMind
    /// 3-D surface (its slab quirk only concerns 2-D masks).
    pub fn surface_distances_3d(
        self,
        gt: &Mask3d,
        pred: &Mask3d,
        spacing: [f64; 3],
    ) -> Result<SurfaceDistances> {
        match self {
            Protocol::DeepMind | Protocol::MedClipSeg => {
                SurfaceDistances::deepmind_3d(gt, pred, spacing)
            }
            Protocol::Monai => SurfaceDistances::monai_3d(gt, pred, spacing),
        }
    }

    /// NSD at `tolerance` (`d <= tolerance` counts) with this protocol's empty-mask rules.
    pub fn nsd(self, distances: &SurfaceDistances, tolerance: f64) -> f64 {
        match self {
            Protocol::DeepMind | Protocol::Monai => distances.surface_dice(tolerance),
            Protocol::MedClipSeg => {
                let total = distances.gt_surface() + distances.pred_surface();
                if total == 0.0 {
                    return 1.0;
                }
                let (gt_in, pred_in) = distances.overlap_weights(tolerance);
                (gt_in + pred_in) / (total + MEDCLIPSEG_EPSILON)
            }
        }
    }

    /// HD95 with this protocol's definition.
    pub fn hd95(self, distances: &SurfaceDistances) -> f64 {
        let value = match self {
            Protocol::DeepMind => distances.robust_hausdorff(95.0),
            Protocol::Monai => distances.quantile_hausdorff(95.0),
            Protocol::MedClipSeg if distances.is_empty() => Ok(f64::NAN),
            Protocol::MedClipSeg => distances.robust_hausdorff(95.0),
        };
        // 95 is a valid percentile, so the error branch cannot be taken.
        value.unwrap_or(f64::NAN)
    }

    /// ASSD (pooled over both directions, see [`SurfaceDistances::assd`]): NaN when both masks are
    /// empty, `+inf` when one is.
    pub fn assd(self, distances: &SurfaceDistances) -> f64 {
        distances.assd()
    }
}

/// Per-image metrics: DSC, NSD at each tolerance, HD95 and ASSD.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageReport {
    /// Dice similarity coefficient.
    pub dsc: f64,
    /// `(tolerance, NSD)` in the order the tolerances were requested.
    pub nsd: Vec<(f64, f64)>,
    /// 95th-percentile Hausdorff distance (spacing units).
    pub hd95: f64,
    /// Average symmetric surface distance (spacing units).
    pub assd: f64,
}

impl ImageReport {
    /// NSD at the first requested tolerance (the CSV column), NaN if none.
    pub fn first_nsd(&self) -> f64 {
        self.nsd.first().map_or(f64::NAN, |&(_, v)| v)
    }
}

/// Fails unless the tolerances are non-empty, finite, `>= 0` and distinct.
pub fn check_tolerances(tolerances: &[f64]) -> Result<()> {
    let bad = |reason| MetricsError::InvalidTolerance {
        tolerances: tolerances.to_vec(),
        reason,
    };
    if tolerances.is_empty() {
        return Err(bad("at least one tolerance is needed"));
    }
    if tolerances.iter().any(|t| !t.is_finite() || *t < 0.0) {
        return Err(bad("tolerances must be finite and >= 0"));
    }
    for (i, t) in tolerances.iter().enumerate() {
        if tolerances[..i].contains(t) {
            return Err(bad("tolerances must be distinct"));
        }
    }
    Ok(())
}

/// Everything needed to evaluate 2-D mask pairs the way one reference does.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRequest {
    /// Which reference to reproduce.
    pub protocol: Protocol,
    /// NSD tolerances in spacing units (pixels when spacing is 1).
    pub tolerances: Vec<f64>,
    /// Pixel spacing in array order (row, col); `None` = (1, 1). Note the order: an `x,y` CLI
    /// option must be reversed before it lands here.
    pub spacing: Option<[f64; 2]>,
    /// Surface model of the MedCLIPSeg protocol (ignored by the others); default: the faithful slab.
    pub medclipseg_surface: MedClipSegSurface,
    /// DSC convention; `None` = the protocol's own.
    pub dice: Option<DiceConvention>,
    /// Reject mask files with grey values other than 0 and 255.
    pub strict: bool,
    /// In a ground-truth label map, the label to evaluate; `None` = the reference `> 127` rule,
    /// or any non-zero value for a label map (see [`crate::read_label_mask`]). The prediction is
    /// read as a binary mask unless it is a label map of several labels
    /// (see [`crate::read_prediction_mask`]).
    pub label: Option<u16>,
}

impl MetricsRequest {
    /// The protocol's reference setup: tolerance 2 px, spacing 1, the protocol's DSC convention,
    /// faithful MedCLIPSeg slab, non-strict reading.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            tolerances: vec![2.0],
            spacing: None,
            medclipseg_surface: MedClipSegSurface::default(),
            dice: None,
            strict: false,
            label: None,
        }
    }

    /// The spacing to use, (1, 1) by default.
    pub fn spacing_or_unit(&self) -> [f64; 2] {
        self.spacing.unwrap_or([1.0, 1.0])
    }

    /// The DSC convention to use.
    pub fn dice_convention(&self) -> DiceConvention {
        self.dice.unwrap_or(self.protocol.dice_convention())
    }
}

impl Default for MetricsRequest {
    fn default() -> Self {
        Self::new(Protocol::default())
    }
}

/// All metrics of one 2-D pair of same-shape masks (no resizing here; see
/// [`crate::evaluate_files`] for the MedCLIPSeg resize).
pub fn evaluate_masks_2d(
    gt: &Mask2d,
    pred: &Mask2d,
    request: &MetricsRequest,
) -> Result<ImageReport> {
    check_tolerances(&request.tolerances)?;
    let dsc = dice(gt, pred, request.dice_convention())?;
    let distances = request.protocol.surface_distances_2d(
        gt,
        pred,
        request.spacing_or_unit(),
        request.medclipseg_surface,
    )?;
    Ok(report_from(
        request.protocol,
        dsc,
        &distances,
        &request.tolerances,
    ))
}

/// All metrics of one 3-D pair; `spacing` is (z, row, col).
pub fn evaluate_masks_3d(
    gt: &Mask3d,
    pred: &Mask3d,
    protocol: Protocol,
    spacing: [f64; 3],
    tolerances: &[f64],
) -> Result<ImageReport> {
    check_tolerances(tolerances)?;
    let dsc = dice(gt, pred, protocol.dice_convention())?;
    let distances = protocol.surface_distances_3d(gt, pred, spacing)?;
    Ok(report_from(protocol, dsc, &distances, tolerances))
}

fn report_from(
    protocol: Protocol,
    dsc: f64,
    distances: &SurfaceDistances,
    tolerances: &[f64],
) -> ImageReport {
    ImageReport {
        dsc,
        nsd: tolerances
            .iter()
            .map(|&t| (t, protocol.nsd(distances, t)))
            .collect(),
        hd95: protocol.hd95(distances),
        assd: protocol.assd(distances),
    }
}

/// NSD of a 2-D pair under `protocol` (MedCLIPSeg: faithful slab); `spacing` is (row, col).
pub fn nsd_2d(
    gt: &Mask2d,
    pred: &Mask2d,
    protocol: Protocol,
    spacing: [f64; 2],
    tolerance: f64,
) -> Result<f64> {
    check_tolerances(&[tolerance])?;
    let d = protocol.surface_distances_2d(gt, pred, spacing, MedClipSegSurface::Slab)?;
    Ok(protocol.nsd(&d, tolerance))
}

/// HD95 of a 2-D pair under `protocol`.
pub fn hd95_2d(gt: &Mask2d, pred: &Mask2d, protocol: Protocol, spacing: [f64; 2]) -> Result<f64> {
    let d = protocol.surface_distances_2d(gt, pred, spacing, MedClipSegSurface::Slab)?;
    Ok(protocol.hd95(&d))
}

/// ASSD of a 2-D pair under `protocol`.
pub fn assd_2d(gt: &Mask2d, pred: &Mask2d, protocol: Protocol, spacing: [f64; 2]) -> Result<f64> {
    let d = protocol.surface_distances_2d(gt, pred, spacing, MedClipSegSurface::Slab)?;
    Ok(protocol.assd(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::from_name(protocol.name()), Some(protocol));
        }
        assert_eq!(Protocol::from_name("MONAI"), None);
    }
    use crate::round4;

    fn square_at(rows: usize, cols: usize, r0: usize, c0: usize, side: usize) -> Mask2d {
        Mask2d::from_fn(rows, cols, |r, c| {
            r >= r0 && r < r0 + side && c >= c0 && c < c0 + side
        })
    }

    #[test]
    fn a_zero_nsd_is_positive_zero() {
        // Far apart: no surface element lies within the tolerance of the other surface.
        let gt = square_at(48, 48, 2, 2, 6);
        let pred = square_at(48, 48, 30, 30, 6);
        for protocol in [Protocol::MedClipSeg, Protocol::DeepMind, Protocol::Monai] {
            let nsd = nsd_2d(&gt, &pred, protocol, [1.0, 1.0], 2.0).unwrap();
            assert_eq!(nsd, 0.0, "{protocol:?}");
            assert!(nsd.is_sign_positive(), "{protocol:?}: {nsd}");
            assert_eq!(format!("{:.4}", round4(nsd)), "0.0000", "{protocol:?}");
        }
    }

    #[test]
    fn shifted_square_table_of_the_spec() {
        // medclipseg.md §5: a 12x12 square against the same square shifted by s columns;
        // repo NSD 0.946 / 0.784 / 0.216 (and DSC 0.75 / 0.58 / 0).
        for (shift, nsd, dsc) in [(3, 0.946, 0.75), (5, 0.784, 0.5833), (12, 0.216, 0.0)] {
            let gt = square_at(48, 48, 10, 10, 12);
            let pred = square_at(48, 48, 10, 10 + shift, 12);
            let report =
                evaluate_masks_2d(&gt, &pred, &MetricsRequest::new(Protocol::MedClipSeg)).unwrap();
            assert!(
                (report.first_nsd() - nsd).abs() < 6e-4,
                "shift {shift}: {}",
                report.first_nsd()
            );
            assert!(
                (report.dsc - dsc).abs() < 1e-4,
                "shift {shift}: {}",
                report.dsc
            );
            // The clean contour variant gives the 2-D NSD column (0.5854, 0.5, 0.3505 with the
            // DeepMind package, 2-D, spacing 1, tolerance 2).
            let mut clean = MetricsRequest::new(Protocol::MedClipSeg);
            clean.medclipseg_surface = MedClipSegSurface::Contour;
            let c = evaluate_masks_2d(&gt, &pred, &clean).unwrap().first_nsd();
            let expected = [(3, 0.5854), (5, 0.5), (12, 0.3505)]
                .iter()
                .find(|e| e.0 == shift)
                .unwrap()
                .1;
            assert!((c - expected).abs() < 1e-4, "shift {shift}: {c}");
        }
    }

    #[test]
    fn medclipseg_empty_rules() {
        let req = MetricsRequest::new(Protocol::MedClipSeg);
        let empty = Mask2d::empty(8, 8);
        let some = square_at(8, 8, 2, 2, 3);
        let both = evaluate_masks_2d(&empty, &empty, &req).unwrap();
        assert_eq!((both.dsc, both.first_nsd()), (1.0, 1.0));
        assert!(both.hd95.is_nan() && both.assd.is_nan());
        let gt_empty = evaluate_masks_2d(&empty, &some, &req).unwrap();
        assert_eq!((gt_empty.dsc, gt_empty.first_nsd()), (0.0, 0.0));
        let pred_empty = evaluate_masks_2d(&some, &empty, &req).unwrap();
        assert_eq!((pred_empty.dsc, pred_empty.first_nsd()), (0.0, 0.0));
        assert_eq!(pred_empty.hd95, f64::INFINITY);
    }

    #[test]
    fn deepmind_and_monai_empty_rules() {
        let empty = Mask2d::empty(8, 8);
        let some = square_at(8, 8, 2, 2, 3);
        for p in [Protocol::DeepMind, Protocol::Monai] {
            let req = MetricsRequest::new(p);
            let both = evaluate_masks_2d(&empty, &empty, &req).unwrap();
            assert!(both.dsc.is_nan() && both.first_nsd().is_nan() && both.assd.is_nan());
            let one = evaluate_masks_2d(&some, &empty, &req).unwrap();
            assert_eq!((one.dsc, one.first_nsd()), (0.0, 0.0));
            assert_eq!(one.assd, f64::INFINITY);
        }
        let dm =
            evaluate_masks_2d(&empty, &empty, &MetricsRequest::new(Protocol::DeepMind)).unwrap();
        assert_eq!(dm.hd95, f64::INFINITY);
        let mo = evaluate_masks_2d(&some, &empty, &MetricsRequest::new(Protocol::Monai)).unwrap();
        assert!(mo.hd95.is_nan());
    }

    #[test]
    fn tolerances_are_validated() {
        assert!(check_tolerances(&[]).is_err());
        assert!(check_tolerances(&[1.0, -1.0]).is_err());
        assert!(check_tolerances(&[f64::NAN]).is_err());
        assert!(check_tolerances(&[2.0, 2.0]).is_err());
        assert!(check_tolerances(&[0.0, 0.5, 2.0]).is_ok());
    }

    #[test]
    fn hand_computed_3d_square_prism() {
        // Two identical 2x2x2 cubes: NSD 1, HD 0, ASSD 0; a one-voxel shift along z with spacing 2
        // puts the far faces 2 apart.
        let a = Mask3d::from_fn(5, 4, 4, |z, r, c| {
            (1..3).contains(&z) && (1..3).contains(&r) && (1..3).contains(&c)
        });
        let b = Mask3d::from_fn(5, 4, 4, |z, r, c| {
            (2..4).contains(&z) && (1..3).contains(&r) && (1..3).contains(&c)
        });
        let same = evaluate_masks_3d(&a, &a, Protocol::DeepMind, [2.0, 1.0, 1.0], &[0.0]).unwrap();
        assert_eq!(
            (same.dsc, same.first_nsd(), same.hd95, same.assd),
            (1.0, 1.0, 0.0, 0.0)
        );
        let shifted =
            evaluate_masks_3d(&a, &b, Protocol::DeepMind, [2.0, 1.0, 1.0], &[1.9, 2.0]).unwrap();
        assert_eq!(shifted.dsc, 0.5);
        assert!(shifted.nsd[0].1 < 1.0);
        assert_eq!(shifted.nsd[1].1, 1.0);
        assert_eq!(shifted.hd95, 2.0);
    }
}
