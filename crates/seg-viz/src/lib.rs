//! Pictures and reports for MedCLIPSeg-rs: what the `medclipseg` app and `cargo xtask bench`
//! show people.
//!
//! * [`colormap`]: matplotlib's `nipy_spectral` (rebuilt from its segment data, identical to
//!   matplotlib's 256-entry table) and `viridis`; [`colorize`], the reference's min-max
//!   [`normalize_min_max`] and its uncertainty PNG writer [`write_uncertainty_png`].
//! * [`overlay`]: masks over images (tint + contour), GT-versus-prediction overlays and
//!   titled side-by-side panels (`image | GT | prediction | uncertainty`).
//! * [`plot`]: line plots and bar charts with nice ticks and a legend, straight to PNG.
//! * [`report`]: one report written as a self-contained HTML page and as Markdown.
//! * [`table`]: result tables as Markdown and RFC 4180 CSV (the `csv` crate).
//! * [`font`] and [`draw`]: anti-aliased text in an embedded DejaVu Sans subset (rasterised by
//!   `ab_glyph`; Latin, Greek and math symbols) and raster primitives underneath.
//!
//! Plots are drawn here (no plotting crate), images are [`image::RgbImage`], masks are
//! row-major `&[bool]`, and every file is written atomically ([`io`], through `atomic-io`).
//! Buffer-size mistakes and write failures are [`VizError`]s, never panics.
//!
//! ```
//! use seg_viz::{Colormap, LinePlot, Series, colorize, palette};
//!
//! let map: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
//! let picture = colorize(&map, 4, 4, Colormap::Viridis)?;
//! assert_eq!(picture.dimensions(), (4, 4));
//!
//! let plot = LinePlot::new("Validation DSC", "epoch", "DSC")
//!     .with_series(Series::new("val", vec![(1.0, 0.5), (2.0, 0.7), (3.0, 0.8)], palette::TAB10[0]))
//!     .with_y_range(0.0, 1.0);
//! let image = plot.render()?;
//! assert_eq!(image.dimensions(), (800, 480));
//! # Ok::<(), seg_viz::VizError>(())
//! ```

#![warn(missing_docs)]

pub mod colormap;
pub mod draw;
pub mod error;
pub mod font;
pub mod io;
pub mod overlay;
pub mod plot;
pub mod report;
pub mod table;

pub use colormap::{
    ChannelOrder, Colormap, colorbar, colorize, normalize_min_max, uncertainty_image,
    write_uncertainty_png,
};
pub use error::{Result, VizError};
pub use image::RgbImage;
pub use io::{write_atomic, write_json, write_png};
pub use overlay::{
    OverlayStyle, Panel, SegmentationSample, mask_contour, mask_image, overlay_gt_pred,
    overlay_mask, panel_row, segmentation_panels,
};
pub use plot::{BarChart, LinePlot, Series, nice_ticks};
pub use report::{Block, Report, ReportFiles};
pub use table::Table;

/// An RGB colour, 8 bits per channel.
pub type Colour = [u8; 3];

/// Named colours used across the pictures.
pub mod palette {
    use crate::Colour;

    /// Ground truth in overlays (green).
    pub const GROUND_TRUTH: Colour = [40, 220, 60];
    /// Prediction in overlays (red).
    pub const PREDICTION: Colour = [235, 45, 45];
    /// matplotlib's "tab10" cycle, for plot series.
    pub const TAB10: [Colour; 10] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ];
}

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
