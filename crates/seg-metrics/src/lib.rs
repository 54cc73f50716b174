//! Segmentation metrics on plain binary masks, framework-free: DSC, NSD (surface Dice), HD95,
//! ASSD, exact Euclidean distance transforms, calibration of probability maps, and the evaluation
//! of prediction/ground-truth mask files as the reference code does it.
//!
//! Definitions follow `shared/spec/metrics.md` (what the reference libraries actually compute) and
//! `shared/spec/medclipseg.md` §5 (MedCLIPSeg's evaluation protocol).
//!
//! # Protocols
//!
//! [`Protocol`] picks the reference to reproduce:
//!
//! | protocol | surface elements | weights | NSD both empty / one empty | HD95 | DSC |
//! |---|---|---|---|---|---|
//! | [`Protocol::DeepMind`] | corner points (2-D and 3-D) | contour length / surfel area | NaN / 0 | weighted percentile, no interpolation; inf if a mask is empty | [`DiceConvention::DeepMind`] |
//! | [`Protocol::Monai`] | erosion-edge pixels, centre distances | 1 | NaN / 0 | linear quantile per direction; NaN if a mask is empty | [`DiceConvention::MonaiIgnoreEmpty`] |
//! | [`Protocol::MedClipSeg`] (default) | DeepMind 3-D on a one-slice volume | surfel area | 1 / 0 | DeepMind rule; NaN if both empty | [`DiceConvention::MedClipSeg`] |
//!
//! Distances are in spacing units; spacing is always in **array order**: (row, col) in 2-D,
//! (z, row, col) in 3-D. `d <= tolerance` counts as within tolerance.
//!
//! # Quirks of the reference, reproduced by default
//!
//! - **MedCLIPSeg "thin slab"** (metrics spec §2.5, medclipseg spec §5): the reference runs the 3-D
//!   DeepMind code on `mask[..., None]`, so every foreground pixel is a surface element and NSD
//!   behaves like a dilated region overlap. [`MedClipSegSurface::Slab`] (default) reproduces it;
//!   [`MedClipSegSurface::Contour`] is the clean 2-D contour variant.
//! - MedCLIPSeg's `+1e-8` in the DSC and NSD denominators, its empty-mask rules, the
//!   nearest-neighbour resize of the prediction to the ground-truth size (cv2 `INTER_NEAREST`
//!   index rule, see [`Mask2d::resize_nearest`]) and OpenCV's grey conversion ([`read_gray`]).
//! - Every DSC empty-mask convention of the spec: [`DiceConvention`].
//!
//! # Example
//!
//! ```
//! use seg_metrics::{Mask2d, MetricsRequest, Protocol, evaluate_masks_2d, render_json};
//!
//! // A 12x12 square and the same square shifted by 3 columns (spec table: repo NSD 0.946).
//! let square = |c0: usize| Mask2d::from_fn(48, 48, move |r, c| (10..22).contains(&r) && (c0..c0 + 12).contains(&c));
//! let (gt, pred) = (square(10), square(13));
//!
//! let report = evaluate_masks_2d(&gt, &pred, &MetricsRequest::new(Protocol::MedClipSeg))?;
//! assert!((report.nsd[0].1 - 0.946).abs() < 1e-3);
//! assert!((report.dsc - 0.75).abs() < 1e-6);
//!
//! let mut deepmind = MetricsRequest::new(Protocol::DeepMind);
//! deepmind.tolerances = vec![1.0, 2.0];
//! deepmind.spacing = Some([1.0, 0.5]); // (row, col)
//! let report = evaluate_masks_2d(&gt, &pred, &deepmind)?;
//! println!("{}", render_json(&report)); // {"dsc": 0.75, "nsd": {"1": …, "2": …}, "hd95": …, "assd": …}
//! # Ok::<(), seg_metrics::MetricsError>(())
//! ```
//!
//! Lower-level pieces: [`dice`] with a [`DiceConvention`]; [`SurfaceDistances`] (per-element
//! distances and weights, DeepMind's `compute_surface_distances` and the metrics built on it);
//! [`edt_2d`] / [`edt_3d`] (exact linear-time EDT with anisotropic spacing); calibration
//! ([`reliability_diagram`], [`expected_calibration_error`], [`brier_score`],
//! [`error_detection_auroc`]); files ([`read_mask`], [`evaluate_files`], [`evaluate_dirs`],
//! [`render_json`]).

#![warn(missing_docs)]

mod calibration;
pub mod conformal;
mod dice;
mod edt;
mod error;
mod eval;
mod io;
mod lookup;
mod mask;
mod protocol;
pub mod ranking;
mod surface;

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod reference_tests;

pub use calibration::{
    ReliabilityBin, ReliabilityDiagram, brier_score, error_detection_auroc,
    expected_calibration_error, reliability_diagram,
};
pub use dice::{DiceConvention, dice, dice_from_counts, harmonic_mean};
pub use edt::{edt_2d, edt_3d, squared_edt_2d, squared_edt_3d};
pub use error::{MetricsError, Result};
pub use eval::{
    DirectoryReport, MASK_EXTENSIONS, NamedReport, evaluate_dirs, evaluate_files, render_csv,
    render_json, round4, write_atomic,
};
pub use io::{
    FOREGROUND_THRESHOLD, GrayImage, read_gray, read_label_mask, read_mask, read_prediction_mask,
};
pub use mask::{BinaryMask, Mask2d, Mask3d};
pub use protocol::{
    ImageReport, MedClipSegSurface, MetricsRequest, Protocol, assd_2d, check_tolerances,
    evaluate_masks_2d, evaluate_masks_3d, hd95_2d, nsd_2d,
};
pub use surface::SurfaceDistances;

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
