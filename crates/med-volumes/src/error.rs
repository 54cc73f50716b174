//! The crate's error type. Errors about files name the file (or the series folder).

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, converting or writing volumes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A file or folder could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An output could not be written atomically (its folder, the temporary file, the rename).
    #[error(transparent)]
    Write(#[from] atomic_io::AtomicWriteError),
    /// The NIfTI library rejected the file.
    #[error("{}: cannot read or write NIfTI", path.display())]
    Nifti {
        /// The file.
        path: PathBuf,
        /// What the library said.
        source: nifti::NiftiError,
    },
    /// A DICOM file could not be parsed or its pixels decoded.
    #[error("{}: DICOM: {reason}", path.display())]
    Dicom {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The pixel data of a file could not be decoded: an unsupported transfer syntax or codec
    /// feature (`feature` names the build feature that adds it, when one does), or corrupt data.
    #[error("{}: cannot decode pixel data (transfer syntax {transfer_syntax}): {reason}{}", path.display(), feature.map(|f| format!("; {f}")).unwrap_or_default())]
    Codec {
        /// The file.
        path: PathBuf,
        /// Its transfer syntax UID.
        transfer_syntax: String,
        /// What the decoder said.
        reason: String,
        /// What would add support, when something would.
        feature: Option<&'static str>,
    },
    /// The file parsed but its content is not a usable volume (4-D data, zero-sized axis, ...).
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that is neither `.nii`, `.nii.gz` nor a folder of DICOM files.
    #[error("{}: not a volume (expected a .nii or .nii.gz file, or a folder holding one DICOM series)", path.display())]
    NotAVolume {
        /// The path given.
        path: PathBuf,
    },
    /// An axis outside 0..3.
    #[error("axis {axis} does not exist: a volume has axes 0, 1 and 2")]
    InvalidAxis {
        /// The axis given.
        axis: usize,
    },
    /// Slices given for reassembly do not fit the volume.
    #[error("slice reassembly: {reason}")]
    Reassembly {
        /// What does not fit.
        reason: String,
    },
    /// Intensity mapping parameters are unusable.
    #[error("intensity mapping: {reason}")]
    Intensity {
        /// What is wrong.
        reason: String,
    },
    /// Two volumes that must share a grid (prediction and ground truth) do not.
    #[error("{}: shape {pred:?} does not match {}'s shape {gt:?}", pred_path.display(), gt_path.display())]
    ShapeMismatch {
        /// The prediction file.
        pred_path: PathBuf,
        /// Its shape.
        pred: [usize; 3],
        /// The ground-truth file.
        gt_path: PathBuf,
        /// Its shape.
        gt: [usize; 3],
    },
}

impl VolumeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn dicom(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::Dicom {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
