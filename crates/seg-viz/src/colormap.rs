//! Colormaps for per-pixel maps, and the reference's uncertainty-map writer.
//!
//! * [`Colormap::NipySpectral`] is matplotlib's `nipy_spectral`, rebuilt from its segment data
//!   (21 control points at 0.0, 0.05, ..., 1.0, matplotlib `_cm.py::_nipy_spectral_data`) and
//!   interpolated into a 256-entry table exactly the way matplotlib's
//!   `colors._create_lookup_table` does. The reference colours its entropy maps with it.
//! * [`Colormap::Viridis`] is matplotlib's `viridis` (a 256-entry listed colormap), used for
//!   probability maps.
//! * [`Colormap::Gray`] maps `x` to the grey level `floor(x * 256)` (no matplotlib claim).
//!
//! Lookup follows matplotlib `Colormap.__call__` for float input, then `(rgb * 255).astype(uint8)`
//! as the reference does: index = `floor(x * 256)` computed in `f32`, `x == 1.0` maps to entry 255,
//! values below 0 take entry 0, values above 1 take entry 255 and NaN is black (matplotlib's
//! default "bad" colour is transparent black).

use std::path::Path;
use std::sync::OnceLock;

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::Colour;
use crate::error::{Result, check_buffer_len, check_not_empty};
use crate::io::write_png;

/// Number of entries in every lookup table (matplotlib's default `N`).
pub const LUT_SIZE: usize = 256;

/// A colormap that turns values in `[0, 1]` into RGB colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colormap {
    /// matplotlib `nipy_spectral` (black, purple, blue, green, yellow, red, light grey).
    #[default]
    NipySpectral,
    /// matplotlib `viridis` (dark purple to yellow), perceptually uniform.
    Viridis,
    /// Linear grey ramp, black to white.
    Gray,
}

impl Colormap {
    /// The 256-entry RGB lookup table of this colormap, as `u8` (matplotlib's float table
    /// multiplied by 255 and truncated, like `(cmap(x) * 255).astype(np.uint8)`).
    pub fn lut(self) -> &'static [Colour; LUT_SIZE] {
        match self {
            Colormap::NipySpectral => nipy_spectral_lut(),
            Colormap::Viridis => &VIRIDIS_LUT,
            Colormap::Gray => gray_lut(),
        }
    }

    /// The colour of one value (see the module doc for the lookup rule).
    pub fn map(self, value: f32) -> Colour {
        match lut_index(value) {
            Some(index) => self.lut()[index],
            None => [0, 0, 0],
        }
    }
}

/// matplotlib's float-to-index rule for an `N = 256` colormap; `None` for NaN ("bad").
fn lut_index(value: f32) -> Option<usize> {
    if value.is_nan() {
        return None;
    }
    // matplotlib multiplies in the input dtype (float32 for our maps), then truncates.
    let scaled = value * LUT_SIZE as f32;
    if scaled < 0.0 {
        Some(0)
    } else if scaled >= LUT_SIZE as f32 {
        Some(LUT_SIZE - 1)
    } else {
        Some(scaled as usize)
    }
}

/// Control-point positions of `_nipy_spectral_data` (shared by the three channels).
const NIPY_SPECTRAL_X: [f64; 21] = [
    0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75,
    0.80, 0.85, 0.90, 0.95, 1.0,
];
/// Red channel values at [`NIPY_SPECTRAL_X`] (continuous: y0 == y1 at every point).
const NIPY_SPECTRAL_RED: [f64; 21] = [
    0.0, 0.4667, 0.5333, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7333, 0.9333, 1.0,
    1.0, 1.0, 0.8667, 0.8, 0.8,
];
/// Green channel values at [`NIPY_SPECTRAL_X`].
const NIPY_SPECTRAL_GREEN: [f64; 21] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.4667, 0.6, 0.6667, 0.6667, 0.6, 0.7333, 0.8667, 1.0, 1.0, 0.9333,
    0.8, 0.6, 0.0, 0.0, 0.0, 0.8,
];
/// Blue channel values at [`NIPY_SPECTRAL_X`].
const NIPY_SPECTRAL_BLUE: [f64; 21] = [
    0.0, 0.5333, 0.6, 0.6667, 0.8667, 0.8667, 0.8667, 0.6667, 0.5333, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.8,
];

/// matplotlib `_create_lookup_table(N, data)` for continuous segment data (gamma 1):
/// sample `x = (N-1) * linspace(0, 1, N)`, find the segment with `searchsorted(side='left')`
/// and interpolate linearly; the first and last entries are the end values.
fn segment_lookup_table(x: &[f64], y: &[f64]) -> [f64; LUT_SIZE] {
    let last = (LUT_SIZE - 1) as f64;
    let scaled_x: Vec<f64> = x.iter().map(|v| v * last).collect();
    // numpy's linspace computes i * (1 / (N - 1)), not i / (N - 1); keep its rounding.
    let step = 1.0 / last;
    let mut lut = [0.0; LUT_SIZE];
    lut[0] = y[0];
    lut[LUT_SIZE - 1] = y[y.len() - 1];
    for (i, entry) in lut.iter_mut().enumerate().take(LUT_SIZE - 1).skip(1) {
        let sample = last * (i as f64 * step);
        let upper = scaled_x.partition_point(|&v| v < sample);
        let lower = upper - 1;
        let distance = (sample - scaled_x[lower]) / (scaled_x[upper] - scaled_x[lower]);
        *entry = distance * (y[upper] - y[lower]) + y[lower];
    }
    lut.map(|v| v.clamp(0.0, 1.0))
}

/// `nipy_spectral` as matplotlib's float table (values in `[0, 1]`), one row per entry.
pub fn nipy_spectral_float_lut() -> [[f64; 3]; LUT_SIZE] {
    let red = segment_lookup_table(&NIPY_SPECTRAL_X, &NIPY_SPECTRAL_RED);
    let green = segment_lookup_table(&NIPY_SPECTRAL_X, &NIPY_SPECTRAL_GREEN);
    let blue = segment_lookup_table(&NIPY_SPECTRAL_X, &NIPY_SPECTRAL_BLUE);
    std::array::from_fn(|i| [red[i], green[i], blue[i]])
}

/// `float * 255` truncated to `u8`, as numpy's `astype(np.uint8)` does for values in [0, 255].
fn float_to_u8(value: f64) -> u8 {
    (value * 255.0) as u8
}

fn nipy_spectral_lut() -> &'static [Colour; LUT_SIZE] {
    static LUT: OnceLock<[Colour; LUT_SIZE]> = OnceLock::new();
    LUT.get_or_init(|| nipy_spectral_float_lut().map(|rgb| rgb.map(float_to_u8)))
}

fn gray_lut() -> &'static [Colour; LUT_SIZE] {
    static LUT: OnceLock<[Colour; LUT_SIZE]> = OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|i| [i as u8; 3]))
}

/// The reference's per-image min-max normalisation (`utils/main_utils.py::normalize`):
/// `(x - min) / (max(x - min) + 1e-8)`, computed in `f32` like numpy on a float32 map.
/// A constant map becomes all zeros; a map containing NaN becomes all NaN (numpy's `min`
/// and `max` propagate NaN).
pub fn normalize_min_max(map: &[f32]) -> Vec<f32> {
    if map.iter().any(|v| v.is_nan()) {
        return vec![f32::NAN; map.len()];
    }
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted: Vec<f32> = map.iter().map(|&v| v - min).collect();
    let max = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let denominator = max + 1e-8;
    shifted.into_iter().map(|v| v / denominator).collect()
}

/// Colours a row-major `width x height` map whose values are expected in `[0, 1]`
/// (see the module doc for out-of-range and NaN values).
pub fn colorize(map: &[f32], width: u32, height: u32, colormap: Colormap) -> Result<RgbImage> {
    check_not_empty("colorize", width, height)?;
    check_buffer_len("colorize map", map.len(), width, height)?;
    let lut = colormap.lut();
    let mut image = RgbImage::new(width, height);
    for (pixel, &value) in image.pixels_mut().zip(map) {
        *pixel = Rgb(lut_index(value).map_or([0, 0, 0], |i| lut[i]));
    }
    Ok(image)
}

/// Byte order of the colour channels in a written uncertainty PNG.
///
/// The reference (`test.py`) does `cv2.cvtColor(rgb, COLOR_RGB2BGR)` and then `cv2.imwrite`,
/// which expects BGR: the two swaps cancel, so the reference's `unc_results/*.png` files hold
/// the true matplotlib colours. [`ChannelOrder::Rgb`] therefore reproduces those files byte for
/// byte and is also the right choice for people. [`ChannelOrder::Bgr`] swaps red and blue, which
/// is what a pipeline that skipped the `cvtColor` (or compares against a `cv2.imread` array)
/// would see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChannelOrder {
    /// True colours (the reference's files, and our reports).
    #[default]
    Rgb,
    /// Red and blue swapped.
    Bgr,
}

/// The reference's uncertainty picture: min-max normalise the entropy map, colour it with
/// `nipy_spectral`, and order the channels as asked.
pub fn uncertainty_image(
    entropy: &[f32],
    width: u32,
    height: u32,
    order: ChannelOrder,
) -> Result<RgbImage> {
    check_buffer_len("uncertainty map", entropy.len(), width, height)?;
    let mut image = colorize(
        &normalize_min_max(entropy),
        width,
        height,
        Colormap::NipySpectral,
    )?;
    if order == ChannelOrder::Bgr {
        for pixel in image.pixels_mut() {
            pixel.0.swap(0, 2);
        }
    }
    Ok(image)
}

/// Writes [`uncertainty_image`] as a PNG (atomically), like the reference's `unc_results` files.
pub fn write_uncertainty_png(
    path: &Path,
    entropy: &[f32],
    width: u32,
    height: u32,
    order: ChannelOrder,
) -> Result<()> {
    write_png(path, &uncertainty_image(entropy, width, height, order)?)
}

/// A horizontal colour bar (left = 0, right = 1) for legends next to coloured maps.
pub fn colorbar(width: u32, height: u32, colormap: Colormap) -> Result<RgbImage> {
    check_not_empty("colorbar", width, height)?;
    let denominator = (width.max(2) - 1) as f32;
    Ok(RgbImage::from_fn(width, height, |x, _| {
        Rgb(colormap.map(x as f32 / denominator))
    }))
}

/// matplotlib 3.11 `viridis`, `(cmap(np.arange(256))[:, :3] * 255).astype(np.uint8)`.
/// viridis is by Stéfan van der Walt and Nathaniel Smith, released under CC0.
const VIRIDIS_LUT: [Colour; LUT_SIZE] = [
    [68, 1, 84],
    [68, 2, 85],
    [68, 3, 87],
    [69, 5, 88],
    [69, 6, 90],
    [69, 8, 91],
    [70, 9, 92],
    [70, 11, 94],
    [70, 12, 95],
    [70, 14, 97],
    [71, 15, 98],
    [71, 17, 99],
    [71, 18, 101],
    [71, 20, 102],
    [71, 21, 103],
    [71, 22, 105],
    [71, 24, 106],
    [72, 25, 107],
    [72, 26, 108],
    [72, 28, 110],
    [72, 29, 111],
    [72, 30, 112],
    [72, 32, 113],
    [72, 33, 114],
    [72, 34, 115],
    [72, 35, 116],
    [71, 37, 117],
    [71, 38, 118],
    [71, 39, 119],
    [71, 40, 120],
    [71, 42, 121],
    [71, 43, 122],
    [71, 44, 123],
    [70, 45, 124],
    [70, 47, 124],
    [70, 48, 125],
    [70, 49, 126],
    [69, 50, 127],
    [69, 52, 127],
    [69, 53, 128],
    [69, 54, 129],
    [68, 55, 129],
    [68, 57, 130],
    [67, 58, 131],
    [67, 59, 131],
    [67, 60, 132],
    [66, 61, 132],
    [66, 62, 133],
    [66, 64, 133],
    [65, 65, 134],
    [65, 66, 134],
    [64, 67, 135],
    [64, 68, 135],
    [63, 69, 135],
    [63, 71, 136],
    [62, 72, 136],
    [62, 73, 137],
    [61, 74, 137],
    [61, 75, 137],
    [61, 76, 137],
    [60, 77, 138],
    [60, 78, 138],
    [59, 80, 138],
    [59, 81, 138],
    [58, 82, 139],
    [58, 83, 139],
    [57, 84, 139],
    [57, 85, 139],
    [56, 86, 139],
    [56, 87, 140],
    [55, 88, 140],
    [55, 89, 140],
    [54, 90, 140],
    [54, 91, 140],
    [53, 92, 140],
    [53, 93, 140],
    [52, 94, 141],
    [52, 95, 141],
    [51, 96, 141],
    [51, 97, 141],
    [50, 98, 141],
    [50, 99, 141],
    [49, 100, 141],
    [49, 101, 141],
    [49, 102, 141],
    [48, 103, 141],
    [48, 104, 141],
    [47, 105, 141],
    [47, 106, 141],
    [46, 107, 142],
    [46, 108, 142],
    [46, 109, 142],
    [45, 110, 142],
    [45, 111, 142],
    [44, 112, 142],
    [44, 113, 142],
    [44, 114, 142],
    [43, 115, 142],
    [43, 116, 142],
    [42, 117, 142],
    [42, 118, 142],
    [42, 119, 142],
    [41, 120, 142],
    [41, 121, 142],
    [40, 122, 142],
    [40, 122, 142],
    [40, 123, 142],
    [39, 124, 142],
    [39, 125, 142],
    [39, 126, 142],
    [38, 127, 142],
    [38, 128, 142],
    [38, 129, 142],
    [37, 130, 142],
    [37, 131, 141],
    [36, 132, 141],
    [36, 133, 141],
    [36, 134, 141],
    [35, 135, 141],
    [35, 136, 141],
    [35, 137, 141],
    [34, 137, 141],
    [34, 138, 141],
    [34, 139, 141],
    [33, 140, 141],
    [33, 141, 140],
    [33, 142, 140],
    [32, 143, 140],
    [32, 144, 140],
    [32, 145, 140],
    [31, 146, 140],
    [31, 147, 139],
    [31, 148, 139],
    [31, 149, 139],
    [31, 150, 139],
    [30, 151, 138],
    [30, 152, 138],
    [30, 153, 138],
    [30, 153, 138],
    [30, 154, 137],
    [30, 155, 137],
    [30, 156, 137],
    [30, 157, 136],
    [30, 158, 136],
    [30, 159, 136],
    [30, 160, 135],
    [31, 161, 135],
    [31, 162, 134],
    [31, 163, 134],
    [32, 164, 133],
    [32, 165, 133],
    [33, 166, 133],
    [33, 167, 132],
    [34, 167, 132],
    [35, 168, 131],
    [35, 169, 130],
    [36, 170, 130],
    [37, 171, 129],
    [38, 172, 129],
    [39, 173, 128],
    [40, 174, 127],
    [41, 175, 127],
    [42, 176, 126],
    [43, 177, 125],
    [44, 177, 125],
    [46, 178, 124],
    [47, 179, 123],
    [48, 180, 122],
    [50, 181, 122],
    [51, 182, 121],
    [53, 183, 120],
    [54, 184, 119],
    [56, 185, 118],
    [57, 185, 118],
    [59, 186, 117],
    [61, 187, 116],
    [62, 188, 115],
    [64, 189, 114],
    [66, 190, 113],
    [68, 190, 112],
    [69, 191, 111],
    [71, 192, 110],
    [73, 193, 109],
    [75, 194, 108],
    [77, 194, 107],
    [79, 195, 105],
    [81, 196, 104],
    [83, 197, 103],
    [85, 198, 102],
    [87, 198, 101],
    [89, 199, 100],
    [91, 200, 98],
    [94, 201, 97],
    [96, 201, 96],
    [98, 202, 95],
    [100, 203, 93],
    [103, 204, 92],
    [105, 204, 91],
    [107, 205, 89],
    [109, 206, 88],
    [112, 206, 86],
    [114, 207, 85],
    [116, 208, 84],
    [119, 208, 82],
    [121, 209, 81],
    [124, 210, 79],
    [126, 210, 78],
    [129, 211, 76],
    [131, 211, 75],
    [134, 212, 73],
    [136, 213, 71],
    [139, 213, 70],
    [141, 214, 68],
    [144, 214, 67],
    [146, 215, 65],
    [149, 215, 63],
    [151, 216, 62],
    [154, 216, 60],
    [157, 217, 58],
    [159, 217, 56],
    [162, 218, 55],
    [165, 218, 53],
    [167, 219, 51],
    [170, 219, 50],
    [173, 220, 48],
    [175, 220, 46],
    [178, 221, 44],
    [181, 221, 43],
    [183, 221, 41],
    [186, 222, 39],
    [189, 222, 38],
    [191, 223, 36],
    [194, 223, 34],
    [197, 223, 33],
    [199, 224, 31],
    [202, 224, 30],
    [205, 224, 29],
    [207, 225, 28],
    [210, 225, 27],
    [212, 225, 26],
    [215, 226, 25],
    [218, 226, 24],
    [220, 226, 24],
    [223, 227, 24],
    [225, 227, 24],
    [228, 227, 24],
    [231, 228, 25],
    [233, 228, 25],
    [236, 228, 26],
    [238, 229, 27],
    [241, 229, 28],
    [243, 229, 30],
    [246, 230, 31],
    [248, 230, 33],
    [250, 230, 34],
    [253, 231, 36],
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// matplotlib 3.11.2 `nipy_spectral`, `(cmap(np.arange(256))[:, :3] * 255).astype(np.uint8)`.
    const MATPLOTLIB_NIPY_SPECTRAL: [Colour; LUT_SIZE] = [
        [0, 0, 0],
        [9, 0, 10],
        [18, 0, 21],
        [28, 0, 31],
        [37, 0, 42],
        [46, 0, 53],
        [56, 0, 63],
        [65, 0, 74],
        [74, 0, 85],
        [84, 0, 95],
        [93, 0, 106],
        [102, 0, 117],
        [112, 0, 127],
        [119, 0, 136],
        [120, 0, 137],
        [122, 0, 138],
        [123, 0, 140],
        [124, 0, 141],
        [126, 0, 142],
        [127, 0, 144],
        [128, 0, 145],
        [129, 0, 146],
        [131, 0, 148],
        [132, 0, 149],
        [133, 0, 150],
        [135, 0, 152],
        [130, 0, 153],
        [119, 0, 155],
        [109, 0, 156],
        [98, 0, 157],
        [87, 0, 159],
        [77, 0, 160],
        [66, 0, 161],
        [55, 0, 163],
        [45, 0, 164],
        [34, 0, 165],
        [23, 0, 167],
        [13, 0, 168],
        [2, 0, 169],
        [0, 0, 173],
        [0, 0, 177],
        [0, 0, 181],
        [0, 0, 185],
        [0, 0, 189],
        [0, 0, 193],
        [0, 0, 197],
        [0, 0, 201],
        [0, 0, 205],
        [0, 0, 209],
        [0, 0, 213],
        [0, 0, 217],
        [0, 0, 221],
        [0, 9, 221],
        [0, 18, 221],
        [0, 28, 221],
        [0, 37, 221],
        [0, 46, 221],
        [0, 56, 221],
        [0, 65, 221],
        [0, 74, 221],
        [0, 84, 221],
        [0, 93, 221],
        [0, 102, 221],
        [0, 112, 221],
        [0, 119, 221],
        [0, 122, 221],
        [0, 125, 221],
        [0, 127, 221],
        [0, 130, 221],
        [0, 133, 221],
        [0, 135, 221],
        [0, 138, 221],
        [0, 141, 221],
        [0, 143, 221],
        [0, 146, 221],
        [0, 149, 221],
        [0, 151, 221],
        [0, 153, 219],
        [0, 155, 215],
        [0, 156, 211],
        [0, 157, 207],
        [0, 159, 203],
        [0, 160, 199],
        [0, 161, 195],
        [0, 163, 191],
        [0, 164, 187],
        [0, 165, 183],
        [0, 167, 179],
        [0, 168, 175],
        [0, 169, 171],
        [0, 170, 168],
        [0, 170, 165],
        [0, 170, 162],
        [0, 170, 160],
        [0, 170, 157],
        [0, 170, 154],
        [0, 170, 151],
        [0, 170, 149],
        [0, 170, 146],
        [0, 170, 143],
        [0, 170, 141],
        [0, 170, 138],
        [0, 170, 135],
        [0, 168, 125],
        [0, 167, 114],
        [0, 166, 103],
        [0, 164, 93],
        [0, 163, 82],
        [0, 162, 71],
        [0, 160, 61],
        [0, 159, 50],
        [0, 158, 39],
        [0, 156, 29],
        [0, 155, 18],
        [0, 154, 7],
        [0, 153, 0],
        [0, 156, 0],
        [0, 158, 0],
        [0, 161, 0],
        [0, 164, 0],
        [0, 166, 0],
        [0, 169, 0],
        [0, 172, 0],
        [0, 174, 0],
        [0, 177, 0],
        [0, 180, 0],
        [0, 182, 0],
        [0, 185, 0],
        [0, 188, 0],
        [0, 190, 0],
        [0, 193, 0],
        [0, 196, 0],
        [0, 198, 0],
        [0, 201, 0],
        [0, 204, 0],
        [0, 207, 0],
        [0, 209, 0],
        [0, 212, 0],
        [0, 215, 0],
        [0, 217, 0],
        [0, 220, 0],
        [0, 223, 0],
        [0, 225, 0],
        [0, 228, 0],
        [0, 231, 0],
        [0, 233, 0],
        [0, 236, 0],
        [0, 239, 0],
        [0, 241, 0],
        [0, 244, 0],
        [0, 247, 0],
        [0, 249, 0],
        [0, 252, 0],
        [0, 255, 0],
        [14, 255, 0],
        [29, 255, 0],
        [43, 255, 0],
        [58, 255, 0],
        [73, 255, 0],
        [87, 255, 0],
        [102, 255, 0],
        [117, 255, 0],
        [131, 255, 0],
        [146, 255, 0],
        [161, 255, 0],
        [175, 255, 0],
        [187, 254, 0],
        [191, 253, 0],
        [195, 251, 0],
        [199, 250, 0],
        [203, 249, 0],
        [207, 247, 0],
        [211, 246, 0],
        [215, 245, 0],
        [219, 243, 0],
        [223, 242, 0],
        [227, 241, 0],
        [231, 239, 0],
        [235, 238, 0],
        [238, 236, 0],
        [239, 233, 0],
        [241, 231, 0],
        [242, 228, 0],
        [243, 225, 0],
        [245, 223, 0],
        [246, 220, 0],
        [247, 217, 0],
        [249, 215, 0],
        [250, 212, 0],
        [251, 209, 0],
        [253, 207, 0],
        [254, 204, 0],
        [255, 201, 0],
        [255, 197, 0],
        [255, 193, 0],
        [255, 189, 0],
        [255, 185, 0],
        [255, 181, 0],
        [255, 177, 0],
        [255, 173, 0],
        [255, 169, 0],
        [255, 165, 0],
        [255, 161, 0],
        [255, 157, 0],
        [255, 153, 0],
        [255, 141, 0],
        [255, 129, 0],
        [255, 117, 0],
        [255, 105, 0],
        [255, 93, 0],
        [255, 81, 0],
        [255, 69, 0],
        [255, 57, 0],
        [255, 44, 0],
        [255, 32, 0],
        [255, 20, 0],
        [255, 8, 0],
        [254, 0, 0],
        [251, 0, 0],
        [249, 0, 0],
        [246, 0, 0],
        [243, 0, 0],
        [241, 0, 0],
        [238, 0, 0],
        [235, 0, 0],
        [233, 0, 0],
        [230, 0, 0],
        [227, 0, 0],
        [225, 0, 0],
        [222, 0, 0],
        [220, 0, 0],
        [219, 0, 0],
        [217, 0, 0],
        [216, 0, 0],
        [215, 0, 0],
        [213, 0, 0],
        [212, 0, 0],
        [211, 0, 0],
        [209, 0, 0],
        [208, 0, 0],
        [207, 0, 0],
        [205, 0, 0],
        [204, 0, 0],
        [204, 12, 12],
        [204, 27, 27],
        [204, 44, 44],
        [204, 60, 60],
        [204, 76, 76],
        [204, 92, 92],
        [204, 108, 108],
        [204, 124, 124],
        [204, 140, 140],
        [204, 156, 156],
        [204, 172, 172],
        [204, 188, 188],
        [204, 204, 204],
    ];

    #[test]
    fn nipy_spectral_lut_matches_matplotlib_entry_for_entry() {
        let ours = Colormap::NipySpectral.lut();
        for (i, (a, b)) in ours.iter().zip(MATPLOTLIB_NIPY_SPECTRAL.iter()).enumerate() {
            assert_eq!(a, b, "entry {i}");
        }
    }

    #[test]
    fn nipy_spectral_endpoints() {
        assert_eq!(Colormap::NipySpectral.map(0.0), [0, 0, 0]);
        assert_eq!(Colormap::NipySpectral.map(1.0), [204, 204, 204]);
        let float_lut = nipy_spectral_float_lut();
        assert_eq!(float_lut[0], [0.0, 0.0, 0.0]);
        assert_eq!(float_lut[255], [0.8, 0.8, 0.8]);
    }

    /// Inputs and outputs of `(cmap(np.float32 array)[..., :3] * 255).astype(np.uint8)`,
    /// matplotlib 3.11.2 / numpy 2.4.6.
    const FLOAT_INPUTS: [f32; 18] = [
        0.0,
        1e-7,
        0.003_906_25,
        0.003_906_2,
        0.05,
        0.1,
        0.25,
        0.333,
        0.5,
        0.501_953_1,
        0.66,
        0.75,
        0.9,
        0.99,
        0.999_999_9,
        1.0,
        1.5,
        -0.2,
    ];
    const NIPY_AT_INPUTS: [Colour; 18] = [
        [0, 0, 0],
        [0, 0, 0],
        [9, 0, 10],
        [0, 0, 0],
        [112, 0, 127],
        [135, 0, 152],
        [0, 119, 221],
        [0, 164, 187],
        [0, 188, 0],
        [0, 188, 0],
        [195, 251, 0],
        [255, 201, 0],
        [220, 0, 0],
        [204, 172, 172],
        [204, 204, 204],
        [204, 204, 204],
        [204, 204, 204],
        [0, 0, 0],
    ];
    const VIRIDIS_AT_INPUTS: [Colour; 18] = [
        [68, 1, 84],
        [68, 1, 84],
        [68, 2, 85],
        [68, 1, 84],
        [71, 18, 101],
        [72, 35, 116],
        [58, 82, 139],
        [48, 103, 141],
        [32, 144, 140],
        [32, 144, 140],
        [50, 181, 122],
        [94, 201, 97],
        [189, 222, 38],
        [248, 230, 33],
        [253, 231, 36],
        [253, 231, 36],
        [253, 231, 36],
        [68, 1, 84],
    ];

    #[test]
    fn float_lookup_matches_matplotlib() {
        for (i, &x) in FLOAT_INPUTS.iter().enumerate() {
            assert_eq!(
                Colormap::NipySpectral.map(x),
                NIPY_AT_INPUTS[i],
                "nipy at {x}"
            );
            assert_eq!(
                Colormap::Viridis.map(x),
                VIRIDIS_AT_INPUTS[i],
                "viridis at {x}"
            );
        }
    }

    #[test]
    fn nan_is_black() {
        assert_eq!(Colormap::Viridis.map(f32::NAN), [0, 0, 0]);
        assert_eq!(Colormap::NipySpectral.map(f32::NAN), [0, 0, 0]);
    }

    /// Entropy of `p = rng.uniform(0, 1, (3, 5)).astype(float32)` (numpy default_rng(0)),
    /// and the reference's normalise + nipy_spectral + uint8 output for it.
    const ENTROPY_3X5: [f32; 15] = [
        0.6551463,
        0.5830466,
        0.17102584,
        0.084198594,
        0.4814462,
        0.29611567,
        0.6702292,
        0.58375895,
        0.68933606,
        0.24031597,
        0.47762305,
        0.018892808,
        0.40964758,
        0.1469931,
        0.58360124,
    ];
    const NORMALIZED_3X5: [f32; 15] = [
        0.94900423, 0.8414639, 0.22691411, 0.09740688, 0.6899218, 0.41349193, 0.9715012, 0.8425264,
        1.0, 0.33026385, 0.68421936, 0.0, 0.58283055, 0.19106807, 0.8422912,
    ];
    const REFERENCE_PNG_3X5: [Colour; 15] = [
        [204, 0, 0],
        [255, 20, 0],
        [0, 65, 221],
        [133, 0, 150],
        [227, 241, 0],
        [0, 166, 103],
        [204, 92, 92],
        [255, 20, 0],
        [204, 204, 204],
        [0, 163, 191],
        [223, 242, 0],
        [0, 0, 0],
        [0, 244, 0],
        [0, 0, 209],
        [255, 20, 0],
    ];

    #[test]
    fn normalisation_matches_numpy_float32() {
        assert_eq!(normalize_min_max(&ENTROPY_3X5), NORMALIZED_3X5.to_vec());
    }

    #[test]
    fn uncertainty_image_matches_reference_pipeline() {
        let rgb = uncertainty_image(&ENTROPY_3X5, 5, 3, ChannelOrder::Rgb).unwrap();
        let pixels: Vec<Colour> = rgb.pixels().map(|p| p.0).collect();
        assert_eq!(pixels, REFERENCE_PNG_3X5.to_vec());
        let bgr = uncertainty_image(&ENTROPY_3X5, 5, 3, ChannelOrder::Bgr).unwrap();
        for (a, b) in rgb.pixels().zip(bgr.pixels()) {
            assert_eq!([a[2], a[1], a[0]], b.0);
        }
    }

    #[test]
    fn constant_map_normalises_to_zero_and_nan_propagates() {
        assert_eq!(normalize_min_max(&[0.3; 4]), vec![0.0; 4]);
        assert!(
            normalize_min_max(&[0.1, f32::NAN])
                .iter()
                .all(|v| v.is_nan())
        );
        assert!(normalize_min_max(&[]).is_empty());
    }

    #[test]
    fn wrong_buffer_size_is_an_error_not_a_panic() {
        let err = colorize(&[0.0; 5], 2, 3, Colormap::Viridis).unwrap_err();
        assert!(err.to_string().contains("needs 6"), "{err}");
        assert!(uncertainty_image(&[0.0; 7], 2, 3, ChannelOrder::Rgb).is_err());
        assert!(colorize(&[], 0, 3, Colormap::Gray).is_err());
    }

    #[test]
    fn written_uncertainty_png_has_reference_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unc_results/case_001.png");
        write_uncertainty_png(&path, &ENTROPY_3X5, 5, 3, ChannelOrder::Rgb).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        let pixels: Vec<Colour> = back.pixels().map(|p| p.0).collect();
        assert_eq!(pixels, REFERENCE_PNG_3X5.to_vec());
    }

    #[test]
    fn colorbar_runs_from_low_to_high() {
        let bar = colorbar(100, 4, Colormap::Viridis).unwrap();
        assert_eq!(bar.get_pixel(0, 0).0, Colormap::Viridis.map(0.0));
        assert_eq!(bar.get_pixel(99, 3).0, Colormap::Viridis.map(1.0));
    }

    proptest! {
        #[test]
        fn normalised_values_lie_in_unit_interval(map in proptest::collection::vec(-1e3f32..1e3, 1..64)) {
            let normalised = normalize_min_max(&map);
            prop_assert!(normalised.iter().all(|&v| (0.0..=1.0).contains(&v)));
            prop_assert!(normalised.contains(&0.0));
        }

        #[test]
        fn lookup_index_is_monotonic(a in -0.5f32..1.5, b in -0.5f32..1.5) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(lut_index(lo).unwrap() <= lut_index(hi).unwrap());
        }
    }
}
