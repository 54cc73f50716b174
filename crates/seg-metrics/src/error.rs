//! The crate's error type. Errors about files name the file.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

/// Everything that can go wrong while building masks, computing metrics or reading and writing files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A mask's data length does not match its shape.
    #[error("mask data has {len} values but the shape {shape:?} needs {expected}")]
    DataLength {
        /// The shape given.
        shape: Vec<usize>,
        /// The number of values the shape needs.
        expected: usize,
        /// The number of values given.
        len: usize,
    },
    /// Two masks (or a mask and a map) that must have the same shape do not.
    #[error("shape mismatch: ground truth {gt:?} vs prediction {pred:?}")]
    ShapeMismatch {
        /// Shape of the ground truth.
        gt: Vec<usize>,
        /// Shape of the prediction.
        pred: Vec<usize>,
    },
    /// A spacing value is not a finite positive number.
    #[error("invalid spacing {spacing:?}: every value must be finite and > 0")]
    InvalidSpacing {
        /// The spacing given, in array order.
        spacing: Vec<f64>,
    },
    /// A tolerance is negative or not finite, or the list is empty or has a duplicate.
    #[error("invalid tolerances {tolerances:?}: {reason}")]
    InvalidTolerance {
        /// The tolerances given.
        tolerances: Vec<f64>,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A percentile outside [0, 100].
    #[error("invalid percentile {percent}: must be within [0, 100]")]
    InvalidPercent {
        /// The percentile given.
        percent: f64,
    },
    /// A resize target or source has a zero dimension.
    #[error("cannot resize a {from:?} mask to {to:?}")]
    InvalidResize {
        /// Source shape (rows, cols).
        from: [usize; 2],
        /// Target shape (rows, cols).
        to: [usize; 2],
    },
    /// Calibration inputs are unusable (lengths differ, a probability outside [0, 1], NaN, no bins).
    #[error("calibration input: {reason}")]
    Calibration {
        /// What is wrong.
        reason: String,
    },
    /// Conformal calibration or ranking input is unusable (α outside (0, 1), no lesion pixel,
    /// too few images for α, a bad calibration file, an unknown risk or score).
    #[error("{reason}")]
    Conformal {
        /// What is wrong.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An image file could not be decoded (not an image, truncated, unsupported format).
    #[error("{}: cannot decode image", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        source: image::ImageError,
    },
    /// Strict reading found a value other than 0 and 255.
    #[error("{}: not a binary mask: value {value} at row {row}, column {col} (strict mode accepts only 0 and 255)", path.display())]
    NonBinary {
        /// The mask file.
        path: PathBuf,
        /// The offending grey value.
        value: u8,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A prediction and its ground truth have different sizes where the protocol does not resize.
    #[error(
        "{}: prediction is {pred_rows}x{pred_cols} (rows x cols) but the ground truth {} is {gt_rows}x{gt_cols}",
        pred.display(),
        gt.display()
    )]
    SizeMismatch {
        /// The prediction file.
        pred: PathBuf,
        /// The ground-truth file.
        gt: PathBuf,
        /// Prediction rows.
        pred_rows: usize,
        /// Prediction columns.
        pred_cols: usize,
        /// Ground-truth rows.
        gt_rows: usize,
        /// Ground-truth columns.
        gt_cols: usize,
    },
    /// Two mask files in one folder share a stem, so pairing by stem is ambiguous.
    #[error("{}: {first} and {second} have the same stem {stem:?}", dir.display())]
    DuplicateStem {
        /// The folder.
        dir: PathBuf,
        /// The shared stem.
        stem: String,
        /// One file.
        first: String,
        /// The other file.
        second: String,
    },
    /// The two folders have no stem in common.
    #[error("no prediction in {} has a ground truth with the same stem in {}", pred_dir.display(), gt_dir.display())]
    NoPairs {
        /// The prediction folder.
        pred_dir: PathBuf,
        /// The ground-truth folder.
        gt_dir: PathBuf,
    },
}

impl MetricsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
