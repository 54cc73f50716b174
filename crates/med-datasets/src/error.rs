//! The crate's error type. Every variant names the file it is about (and the row, for sheets).

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, converting, preprocessing or generating data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An image file could not be decoded (corrupt, truncated, unsupported format).
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image could not be encoded.
    #[error("{}: cannot encode image: {reason}", path.display())]
    Encode {
        /// The image file being written.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// A prompt spreadsheet (xlsx or csv) is unreadable as a whole: not a spreadsheet, no header,
    /// a required column missing.
    #[error("{}: {reason}", path.display())]
    Sheet {
        /// The spreadsheet.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// One row of a prompt spreadsheet is unusable (strict mode stops at the first one).
    #[error("{}, row {row}: {problem}", path.display())]
    Row {
        /// The spreadsheet.
        path: PathBuf,
        /// The spreadsheet row number as Excel shows it (the header is row 1).
        row: usize,
        /// What is wrong with the row.
        problem: String,
    },
    /// An image and its mask have different sizes.
    #[error(
        "{}: image is {image_w}x{image_h} (w x h) but its mask {} is {mask_w}x{mask_h}",
        image.display(),
        mask.display()
    )]
    SizeMismatch {
        /// The image file.
        image: PathBuf,
        /// The mask file.
        mask: PathBuf,
        /// Image width.
        image_w: u32,
        /// Image height.
        image_h: u32,
        /// Mask width.
        mask_w: u32,
        /// Mask height.
        mask_h: u32,
    },
    /// The requested dataset folder does not exist under the data root.
    #[error("dataset {name:?} not found: {} is not a folder", path.display())]
    DatasetNotFound {
        /// The dataset name that was asked for.
        name: String,
        /// The folder that was expected.
        path: PathBuf,
    },
    /// A raw public release does not have the layout its converter expects.
    #[error("{}: {reason}", path.display())]
    Layout {
        /// The folder or file that is missing or unexpected.
        path: PathBuf,
        /// What was expected.
        reason: String,
    },
    /// The embedded dataset registry is malformed.
    #[error("med-datasets registry.toml: {0}")]
    Registry(String),
    /// A dataset has no domain-generalisation targets to evaluate.
    #[error("{dataset} {reason}")]
    NoDgGroup {
        /// The source dataset.
        dataset: String,
        /// Why it has none.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A spreadsheet-level error on `path`.
    pub(crate) fn sheet(path: &Path, reason: impl Into<String>) -> Self {
        Self::Sheet {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A decode error on `path`.
    pub(crate) fn decode(path: &Path, reason: impl ToString) -> Self {
        Self::Decode {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A layout error on `path`.
    pub(crate) fn layout(path: &Path, reason: impl Into<String>) -> Self {
        Self::Layout {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_the_file_and_leaves_the_cause_to_source() {
        let path = Path::new("/nonexistent/scan.png");
        let err = crate::imaging::read_bgr(path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).expect("the I/O error");
        // What a chain printer (`anyhow`'s `{:#}`) shows: the file, then the cause, once each.
        let chain = format!("{err}: {cause}");
        assert_eq!(chain.matches("/nonexistent/scan.png").count(), 1, "{chain}");
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    }
}
