//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while drawing or writing a picture, table or report.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// A pixel buffer (map, mask) does not hold `width * height` values.
    #[error("{what}: buffer has {actual} values but a {width}x{height} image needs {expected}")]
    BufferSize {
        /// Which buffer (e.g. "uncertainty map", "prediction mask").
        what: &'static str,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// `width * height`.
        expected: usize,
        /// The length that was passed.
        actual: usize,
    },
    /// An image with no pixels was asked for.
    #[error("{what}: image size {width}x{height} has no pixels")]
    EmptyImage {
        /// Which image.
        what: &'static str,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// A plot or chart canvas too small to hold its axes and labels.
    #[error("{what}: canvas {width}x{height} is smaller than the minimum {min_width}x{min_height}")]
    CanvasTooSmall {
        /// Which figure (its title).
        what: String,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Smallest accepted width.
        min_width: u32,
        /// Smallest accepted height.
        min_height: u32,
    },
    /// A table row whose cell count differs from the header's.
    #[error("table row {row}: {actual} cells but the header has {expected}")]
    RaggedRow {
        /// Zero-based index of the row among the data rows.
        row: usize,
        /// Number of header cells.
        expected: usize,
        /// Number of cells in the row.
        actual: usize,
    },
    /// Writing (or renaming into place) a file failed; the error names the file and the step.
    #[error(transparent)]
    Write(#[from] atomic_io::AtomicWriteError),
    /// PNG encoding failed.
    #[error("cannot encode PNG for {}", path.display())]
    Encode {
        /// The file the PNG was meant for.
        path: PathBuf,
        /// The underlying encoder error.
        source: image::ImageError,
    },
    /// JSON serialisation failed.
    #[error("cannot serialise JSON for {}", path.display())]
    Json {
        /// The file the JSON was meant for.
        path: PathBuf,
        /// The underlying serde_json error.
        source: serde_json::Error,
    },
}

/// Result alias used across the crate.
pub type Result<T, E = VizError> = std::result::Result<T, E>;

/// Checks that a per-pixel buffer has exactly `width * height` entries.
pub(crate) fn check_buffer_len(
    what: &'static str,
    actual: usize,
    width: u32,
    height: u32,
) -> Result<()> {
    let expected = width as usize * height as usize;
    if actual == expected {
        Ok(())
    } else {
        Err(VizError::BufferSize {
            what,
            width,
            height,
            expected,
            actual,
        })
    }
}

/// Checks that an image has at least one pixel.
pub(crate) fn check_not_empty(what: &'static str, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        Err(VizError::EmptyImage {
            what,
            width,
            height,
        })
    } else {
        Ok(())
    }
}
