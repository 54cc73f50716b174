//! Pictures of runs: the training curve and the per-case panels.

use anyhow::Result;
use med_datasets::{ChannelOrder, PreprocessConfig};
use seg_viz::{LinePlot, RgbImage, Series};

use crate::store::EpochRecord;

const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];
const GREEN: [u8; 3] = [44, 160, 44];

/// Training loss, validation loss and validation DSC per epoch.
pub fn loss_curve(history: &[EpochRecord]) -> Result<LinePlot> {
    let series = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|r| (r.epoch as f64, f(r).unwrap_or(f64::NAN)))
            .collect()
    };
    let mut plot = LinePlot::new("Training", "epoch", "loss / DSC").with_series(
        Series::new("train loss", series(&|r| Some(r.train_total)), BLUE).with_markers(),
    );
    if history.iter().any(|r| r.val_loss.is_some()) {
        plot = plot
            .with_series(Series::new("val loss", series(&|r| r.val_loss), ORANGE).with_markers())
            .with_series(Series::new("val DSC", series(&|r| r.val_dice), GREEN).with_markers());
    }
    Ok(plot)
}

/// The RGB picture of a normalised `CHW` image (undoing the mean/std and the channel order).
pub fn denormalize(chw: &[f32], size: usize, preprocess: &PreprocessConfig) -> RgbImage {
    let plane = size * size;
    let mut img = RgbImage::new(size as u32, size as u32);
    for (i, pixel) in img.pixels_mut().enumerate() {
        let value = |c: usize| {
            let v = chw[c * plane + i] * preprocess.std[c] + preprocess.mean[c];
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        };
        let (b, g, r) = (value(0), value(1), value(2));
        pixel.0 = match preprocess.channel_order {
            ChannelOrder::Bgr => [r, g, b],
            ChannelOrder::Rgb => [b, g, r],
        };
    }
    img
}
