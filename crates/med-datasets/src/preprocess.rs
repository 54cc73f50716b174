//! Turning one [`Record`] into a model-ready [`Sample`], the way MedCLIPSeg's
//! `DatasetSegmentation` + `RandomGenerator`/`ValGenerator` do it by default.
//!
//! Faithful pipeline (defaults):
//! 1. image: `cv2.imread` (3-channel **BGR**), `cv2.resize` to `S x S` bilinear (bit-exact);
//! 2. mask: `cv2.imread(.., 0)` (grey), `cv2.resize` nearest, `>= 127 -> 1`;
//! 3. training only: with p = 0.5 rotate image and mask together by an integer angle uniform in
//!    [-20, 20] degrees, as PIL `Image.rotate` (bit-exact; see [`crate::rotate`]);
//! 4. `to_tensor` (`/ 255`) and ImageNet mean/std `(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)`
//!    applied to the planes **in file order B, G, R** (the reference never converts BGR to RGB).
//!
//! Clean options, all off by default: [`ChannelOrder::Rgb`], [`MaskRead::AnyChannel`] (colour
//! masks such as raw BKAI), horizontal/vertical flips, random scale, brightness/contrast jitter.

use std::path::PathBuf;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imaging::{Image8, any_channel_mask, binarize, read_bgr, read_gray};
use crate::layout::Record;
use crate::resize::{resize_linear, resize_nearest};
use crate::rotate::pil_rotate;

/// ImageNet mean, as the reference applies it.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Order of the three image planes in [`Sample::image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// B, G, R: what `cv2.imread` returns and the reference feeds the model (faithful default).
    /// Mean/std index 0 (0.485/0.229, the "red" statistics) is applied to the **blue** plane.
    #[default]
    Bgr,
    /// R, G, B: the conventional order (clean option; a model trained with BGR must not get it).
    Rgb,
}

/// How masks are read before thresholding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskRead {
    /// `cv2.imread(path, 0)` then `>= threshold` (faithful default).
    #[default]
    Grayscale,
    /// Foreground where any channel is `> 127` (clean option for colour masks: a pure-red
    /// polyp is 76 in a grey read and would vanish).
    AnyChannel,
}

/// Training-time augmentation. [`Augmentation::default`] is the reference's: rotation only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Probability of a rotation (reference 0.5).
    pub rotate_prob: f64,
    /// Rotation angle bound in degrees: an integer uniform in `[-max, max]` (reference 20).
    pub max_rotation_deg: i32,
    /// Probability of a horizontal flip (off: 0).
    pub hflip_prob: f64,
    /// Probability of a vertical flip (off: 0).
    pub vflip_prob: f64,
    /// Random zoom about the centre by a factor uniform in `[lo, hi]`, canvas kept (off: `None`).
    pub scale_range: Option<(f32, f32)>,
    /// Brightness jitter: an offset uniform in `[-b, b] * 255` grey levels (off: 0).
    pub brightness: f32,
    /// Contrast jitter: a gain uniform in `[1 - c, 1 + c]` about mid-grey (off: 0).
    pub contrast: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self {
            rotate_prob: 0.5,
            max_rotation_deg: 20,
            hflip_prob: 0.0,
            vflip_prob: 0.0,
            scale_range: None,
            brightness: 0.0,
            contrast: 0.0,
        }
    }
}

impl Augmentation {
    /// No augmentation at all.
    pub fn none() -> Self {
        Self {
            rotate_prob: 0.0,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let prob_ok = |p: f64| (0.0..=1.0).contains(&p);
        if !(prob_ok(self.rotate_prob) && prob_ok(self.hflip_prob) && prob_ok(self.vflip_prob)) {
            return Err(Error::Config(
                "augmentation probabilities must be in [0, 1]".into(),
            ));
        }
        if self.max_rotation_deg < 0
            || self.brightness < 0.0
            || !(0.0..1.0).contains(&self.contrast)
        {
            return Err(Error::Config(
                "rotation bound and brightness must be >= 0, contrast in [0, 1)".into(),
            ));
        }
        if let Some((lo, hi)) = self.scale_range
            && !(lo > 0.0 && lo <= hi)
        {
            return Err(Error::Config(format!(
                "scale range ({lo}, {hi}) must satisfy 0 < lo <= hi"
            )));
        }
        Ok(())
    }
}

/// Preprocessing settings. [`PreprocessConfig::default`] is the faithful reference pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Output side length `S` (reference 224).
    pub size: usize,
    /// Plane order of the output image.
    pub channel_order: ChannelOrder,
    /// Per-plane mean, applied in output plane order.
    pub mean: [f32; 3],
    /// Per-plane standard deviation, applied in output plane order.
    pub std: [f32; 3],
    /// Mask threshold after the nearest resize: `>= threshold` is foreground (reference 127).
    pub mask_threshold: u8,
    /// How masks are read.
    pub mask_read: MaskRead,
    /// Training augmentation (used only when a random generator is passed).
    pub augmentation: Augmentation,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            size: 224,
            channel_order: ChannelOrder::Bgr,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            mask_threshold: 127,
            mask_read: MaskRead::Grayscale,
            augmentation: Augmentation::default(),
        }
    }
}

impl PreprocessConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::Config("image size must be > 0".into()));
        }
        if self.std.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
            return Err(Error::Config("std must be positive".into()));
        }
        self.augmentation.validate()
    }
}

/// One preprocessed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Image file name (the sheet's `Image` cell).
    pub name: String,
    /// Normalised image, `CHW`, `3 * S * S`, planes in [`PreprocessConfig::channel_order`].
    pub image: Vec<f32>,
    /// Binary mask, `S * S`, values 0.0 or 1.0.
    pub mask: Vec<f32>,
    /// The prompt, raw.
    pub prompt: String,
    /// Size of the original image as `(height, width)` (evaluation resizes predictions back).
    pub original_size: (usize, usize),
    /// Path of the original mask (evaluation reads it at full size).
    pub mask_path: PathBuf,
    /// Side length `S`.
    pub size: usize,
}

/// Reads a mask as a grey image whose foreground is `>= 127` under either read mode.
pub fn read_mask(path: &std::path::Path, mode: MaskRead) -> Result<Image8> {
    match mode {
        MaskRead::Grayscale => read_gray(path),
        MaskRead::AnyChannel => Ok(any_channel_mask(&read_bgr(path)?, 127, 255)),
    }
}

/// Loads and preprocesses one record. Pass a random generator to apply the training
/// augmentation; `None` is the validation/test pipeline.
pub fn load_sample(
    record: &Record,
    cfg: &PreprocessConfig,
    rng: Option<&mut ChaCha8Rng>,
) -> Result<Sample> {
    let image = read_bgr(&record.image_path)?;
    let mask = read_mask(&record.mask_path, cfg.mask_read)?;
    if (image.width, image.height) != (mask.width, mask.height) {
        return Err(Error::SizeMismatch {
            image: record.image_path.clone(),
            mask: record.mask_path.clone(),
            image_w: image.width as u32,
            image_h: image.height as u32,
            mask_w: mask.width as u32,
            mask_h: mask.height as u32,
        });
    }
    let original_size = (image.height, image.width);
    let (image, mask) = preprocess_pair(&image, &mask, cfg, rng);
    Ok(Sample {
        name: record.name.clone(),
        image,
        mask,
        prompt: record.prompt.clone(),
        original_size,
        mask_path: record.mask_path.clone(),
        size: cfg.size,
    })
}

/// The in-memory part of the pipeline: resize, augment, normalise. `image` is BGR (3 channels),
/// `mask` grey. Returns the `CHW` image and the 0/1 mask.
pub fn preprocess_pair(
    image: &Image8,
    mask: &Image8,
    cfg: &PreprocessConfig,
    rng: Option<&mut ChaCha8Rng>,
) -> (Vec<f32>, Vec<f32>) {
    let s = cfg.size;
    let mut image = resize_linear(image, s, s);
    let mut mask = resize_nearest(mask, s, s);
    mask.data = binarize(&mask.data, cfg.mask_threshold);
    if let Some(rng) = rng {
        augment(&mut image, &mut mask, &cfg.augmentation, rng);
    }
    let tensor = normalize(&image, cfg);
    let mask = mask.data.iter().map(|&v| f32::from(v)).collect();
    (tensor, mask)
}

/// Applies the augmentation to an already resized pair. Random numbers are drawn only for the
/// enabled transforms, in a fixed order, so the reference stream does not depend on the others.
pub fn augment(image: &mut Image8, mask: &mut Image8, aug: &Augmentation, rng: &mut ChaCha8Rng) {
    if aug.rotate_prob > 0.0 && rng.random::<f64>() < aug.rotate_prob {
        let angle = rng.random_range(-aug.max_rotation_deg..=aug.max_rotation_deg);
        *image = pil_rotate(image, f64::from(angle));
        *mask = pil_rotate(mask, f64::from(angle));
    }
    if aug.hflip_prob > 0.0 && rng.random::<f64>() < aug.hflip_prob {
        flip(image, true);
        flip(mask, true);
    }
    if aug.vflip_prob > 0.0 && rng.random::<f64>() < aug.vflip_prob {
        flip(image, false);
        flip(mask, false);
    }
    if let Some((lo, hi)) = aug.scale_range {
        let factor = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        *image = zoom(image, factor, true);
        *mask = zoom(mask, factor, false);
    }
    if aug.brightness > 0.0 || aug.contrast > 0.0 {
        let offset = if aug.brightness > 0.0 {
            rng.random_range(-aug.brightness..=aug.brightness) * 255.0
        } else {
            0.0
        };
        let gain = if aug.contrast > 0.0 {
            rng.random_range(1.0 - aug.contrast..=1.0 + aug.contrast)
        } else {
            1.0
        };
        for v in &mut image.data {
            *v = ((f32::from(*v) - 127.5) * gain + 127.5 + offset)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

/// Mirrors an image left-right (`horizontal`) or top-bottom.
fn flip(img: &mut Image8, horizontal: bool) {
    let (w, h, cn) = (img.width, img.height, img.channels);
    let src = img.data.clone();
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = if horizontal {
                (w - 1 - x, y)
            } else {
                (x, h - 1 - y)
            };
            let (d, s) = ((y * w + x) * cn, (sy * w + sx) * cn);
            img.data[d..d + cn].copy_from_slice(&src[s..s + cn]);
        }
    }
}

/// Zooms about the centre by `factor` (> 1 enlarges), canvas kept, black outside; bilinear
/// for images, nearest for masks.
fn zoom(img: &Image8, factor: f32, bilinear: bool) -> Image8 {
    let (w, h, cn) = (img.width, img.height, img.channels);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = Image8::zeros(w, h, cn);
    for y in 0..h {
        for x in 0..w {
            let sx = (x as f32 + 0.5 - cx) / factor + cx - 0.5;
            let sy = (y as f32 + 0.5 - cy) / factor + cy - 0.5;
            let d = (y * w + x) * cn;
            for c in 0..cn {
                out.data[d + c] = if bilinear {
                    sample_bilinear(img, sx, sy, c)
                } else {
                    sample_nearest(img, sx, sy, c)
                };
            }
        }
    }
    out
}

fn sample_nearest(img: &Image8, sx: f32, sy: f32, c: usize) -> u8 {
    let (x, y) = ((sx + 0.5).floor(), (sy + 0.5).floor());
    if x < 0.0 || y < 0.0 || x >= img.width as f32 || y >= img.height as f32 {
        return 0;
    }
    img.get(x as usize, y as usize, c)
}

fn sample_bilinear(img: &Image8, sx: f32, sy: f32, c: usize) -> u8 {
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    let at = |x: f32, y: f32| -> f32 {
        if x < 0.0 || y < 0.0 || x >= img.width as f32 || y >= img.height as f32 {
            0.0
        } else {
            f32::from(img.get(x as usize, y as usize, c))
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

/// `to_tensor` then `Normalize(mean, std)`: interleaved BGR `u8` to planar `f32` in the
/// configured plane order.
pub fn normalize(image: &Image8, cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = image.width * image.height;
    let mut out = vec![0.0f32; 3 * plane];
    for (plane_index, chunk) in out.chunks_exact_mut(plane).enumerate() {
        let source_channel = match cfg.channel_order {
            ChannelOrder::Bgr => plane_index,
            ChannelOrder::Rgb => 2 - plane_index,
        };
        let (mean, std) = (cfg.mean[plane_index], cfg.std[plane_index]);
        for (dst, px) in chunk.iter_mut().zip(image.data.chunks_exact(3)) {
            *dst = (f32::from(px[source_channel]) / 255.0 - mean) / std;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn bgr_pixel(b: u8, g: u8, r: u8) -> Image8 {
        Image8::from_vec(1, 1, 3, vec![b, g, r]).unwrap()
    }

    #[test]
    fn normalisation_numbers_and_bgr_quirk() {
        let cfg = PreprocessConfig {
            size: 1,
            ..Default::default()
        };
        // B = 255, G = 0, R = 51 (0.2 * 255).
        let t = normalize(&bgr_pixel(255, 0, 51), &cfg);
        // plane 0 is B with the "red" statistics: (1 - 0.485) / 0.229 = 2.2489083
        assert!((t[0] - 2.248_908_3).abs() < 1e-6, "{t:?}");
        // plane 1 is G: (0 - 0.456) / 0.224 = -2.0357143
        assert!((t[1] + 2.035_714_3).abs() < 1e-6);
        // plane 2 is R with the "blue" statistics: (0.2 - 0.406) / 0.225 = -0.9155556
        assert!((t[2] + 0.915_555_6).abs() < 1e-6);
        let rgb = PreprocessConfig {
            channel_order: ChannelOrder::Rgb,
            ..cfg
        };
        let t = normalize(&bgr_pixel(255, 0, 51), &rgb);
        // plane 0 is now R: (0.2 - 0.485) / 0.229 = -1.2445415
        assert!((t[0] + 1.244_541_5).abs() < 1e-6, "{t:?}");
        // plane 2 is B: (1 - 0.406) / 0.225 = 2.64
        assert!((t[2] - 2.64).abs() < 1e-6);
    }

    #[test]
    fn pair_is_resized_and_mask_thresholded_at_127() {
        let image = Image8::from_vec(2, 1, 3, vec![0, 0, 0, 255, 255, 255]).unwrap();
        let mask = Image8::from_vec(2, 1, 1, vec![126, 127]).unwrap();
        let cfg = PreprocessConfig {
            size: 4,
            ..Default::default()
        };
        let (img, m) = preprocess_pair(&image, &mask, &cfg, None);
        assert_eq!(img.len(), 3 * 16);
        // nearest 2 -> 4 columns: 0, 0, 1, 1 on every row
        assert_eq!(&m[..4], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(m.iter().sum::<f32>(), 8.0);
    }

    #[test]
    fn augmentation_is_reproducible_and_keeps_pairs_aligned() {
        let mut image = Image8::zeros(16, 16, 3);
        let mut mask = Image8::zeros(16, 16, 1);
        for y in 2..6 {
            for x in 3..9 {
                mask.data[y * 16 + x] = 1;
                image.data[(y * 16 + x) * 3..(y * 16 + x) * 3 + 3].fill(200);
            }
        }
        let aug = Augmentation {
            rotate_prob: 1.0,
            hflip_prob: 1.0,
            scale_range: Some((0.8, 1.2)),
            brightness: 0.0,
            ..Augmentation::default()
        };
        let run = |seed| {
            let (mut i, mut m) = (image.clone(), mask.clone());
            augment(&mut i, &mut m, &aug, &mut ChaCha8Rng::seed_from_u64(seed));
            (i, m)
        };
        assert_eq!(run(3), run(3));
        let (i, m) = run(3);
        // Geometry is shared: foreground mask pixels are bright image pixels and vice versa,
        // up to the zoom's different interpolation at the edges.
        let agree = (0..256)
            .filter(|&k| (m.data[k] == 1) == (i.data[k * 3] > 100))
            .count();
        assert!(agree >= 240, "{agree}");
    }

    #[test]
    fn flips_by_hand() {
        let mut img = Image8::from_vec(3, 2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        flip(&mut img, true);
        assert_eq!(img.data, [3, 2, 1, 6, 5, 4]);
        flip(&mut img, false);
        assert_eq!(img.data, [6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let mut cfg = PreprocessConfig::default();
        assert!(cfg.validate().is_ok());
        cfg.augmentation.rotate_prob = 1.5;
        assert!(cfg.validate().is_err());
        cfg.augmentation = Augmentation {
            scale_range: Some((1.2, 0.8)),
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        cfg.augmentation = Augmentation::default();
        cfg.size = 0;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn any_channel_mask_keeps_red_polyps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 20, 30, 40])
            .unwrap()
            .save(&path)
            .unwrap();
        assert_eq!(
            read_mask(&path, MaskRead::AnyChannel).unwrap().data,
            [255, 0]
        );
        // libpng weights: (9797*255) >> 15 = 76; (9797*20 + 19234*30 + 3737*40) >> 15 = 28.
        assert_eq!(
            read_mask(&path, MaskRead::Grayscale).unwrap().data,
            [76, 28]
        );
    }
}
