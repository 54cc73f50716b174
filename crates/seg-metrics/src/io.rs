//! Reading mask images (PNG, and the other formats the reference evaluation lists) as OpenCV's
//! `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` does, then binarising with `> 127`.
//!
//! Label maps (what nnU-Net and MONAI write: {0,1}, or 0..N for N structures) would come out all
//! background under `> 127`, so [`read_label_mask`] reads them as such:
//!
//! - with a label `N`: foreground = value `N` (16-bit grey PNGs keep all 16 bits);
//! - without: when some value is above half the range (`> 127` in 8 bits, `> 32767` in 16), the
//!   reference rule `> 127` on the 8-bit grey image applies, unchanged (0/255 PNGs read exactly
//!   as before); otherwise the reference would see an empty mask and the file is a label map:
//!   every non-zero value is foreground.

use std::path::Path;

use image::DynamicImage;

use crate::error::{MetricsError, Result};
use crate::mask::Mask2d;

/// An 8-bit grey image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    /// Number of rows (image height).
    pub rows: usize,
    /// Number of columns (image width).
    pub cols: usize,
    /// Grey values, `data[r * cols + c]`.
    pub data: Vec<u8>,
}

/// The reference binarisation: `cv2.threshold(gray, 127, 255, THRESH_BINARY)`, foreground = `> 127`.
pub const FOREGROUND_THRESHOLD: u8 = 127;

/// libpng's `png_set_rgb_to_gray(png, 1, 0.299, 0.587)` fixed-point weights (sum 32768), which
/// OpenCV's PNG reader uses for `IMREAD_GRAYSCALE`; the result is truncated, not rounded.
/// Checked against cv2 4.11 on random RGB and RGBA PNGs: identical on every pixel.
const RGB_TO_GRAY: [u32; 3] = [9797, 19234, 3737];

fn luma(r: u32, g: u32, b: u32) -> u32 {
    (r * RGB_TO_GRAY[0] + g * RGB_TO_GRAY[1] + b * RGB_TO_GRAY[2]) >> 15
}

/// Reads an image file as 8-bit grey: colour is converted with OpenCV's weights (alpha ignored),
/// 16-bit samples keep their high byte (as cv2 does without `IMREAD_ANYDEPTH`).
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    Ok(to_gray(decode(path)?))
}

/// A grey image at the file's own depth: 16-bit grey keeps its 16 bits, anything else is the
/// 8-bit [`read_gray`] value.
struct DeepGray {
    rows: usize,
    cols: usize,
    values: Vec<u16>,
    /// 255 or 65535.
    full_scale: u16,
    decoded: DynamicImage,
}

fn read_deep_gray(path: &Path) -> Result<DeepGray> {
    let decoded = decode(path)?;
    let (cols, rows) = (decoded.width() as usize, decoded.height() as usize);
    let (values, full_scale) = match &decoded {
        DynamicImage::ImageLuma16(buf) => (buf.pixels().map(|p| p.0[0]).collect(), u16::MAX),
        DynamicImage::ImageLumaA16(buf) => (buf.pixels().map(|p| p.0[0]).collect(), u16::MAX),
        other => {
            let gray = to_gray(other.clone());
            (gray.data.iter().map(|&v| u16::from(v)).collect(), 255)
        }
    };
    Ok(DeepGray {
        rows,
        cols,
        values,
        full_scale,
        decoded,
    })
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| MetricsError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| MetricsError::io(path, e))?;
    reader.decode().map_err(|source| MetricsError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

fn to_gray(img: DynamicImage) -> GrayImage {
    let (cols, rows) = (img.width() as usize, img.height() as usize);
    let data = match img {
        DynamicImage::ImageLuma8(buf) => buf.into_raw(),
        DynamicImage::ImageLumaA8(buf) => buf.pixels().map(|p| p.0[0]).collect(),
        DynamicImage::ImageRgb8(buf) => buf
            .pixels()
            .map(|p| luma(p.0[0].into(), p.0[1].into(), p.0[2].into()) as u8)
            .collect(),
        DynamicImage::ImageRgba8(buf) => buf
            .pixels()
            .map(|p| luma(p.0[0].into(), p.0[1].into(), p.0[2].into()) as u8)
            .collect(),
        DynamicImage::ImageLuma16(buf) => buf.pixels().map(|p| (p.0[0] >> 8) as u8).collect(),
        DynamicImage::ImageLumaA16(buf) => buf.pixels().map(|p| (p.0[0] >> 8) as u8).collect(),
        DynamicImage::ImageRgb16(buf) => buf
            .pixels()
            .map(|p| (luma(p.0[0].into(), p.0[1].into(), p.0[2].into()) >> 8) as u8)
            .collect(),
        DynamicImage::ImageRgba16(buf) => buf
            .pixels()
            .map(|p| (luma(p.0[0].into(), p.0[1].into(), p.0[2].into()) >> 8) as u8)
            .collect(),
        // Float images and future variants: the image crate's own conversion.
        other => other.to_luma8().into_raw(),
    };
    GrayImage { rows, cols, data }
}

/// Reads a mask file: grey values `> 127` are foreground, or non-zero values for a label map whose
/// values all lie in the lower half of the range (see the module notes). With `strict`, any value
/// other than 0 and 255 is an error naming the file and the first offending pixel.
pub fn read_mask(path: &Path, strict: bool) -> Result<Mask2d> {
    read_label_mask(path, strict, None)
}

/// Reads a mask file with an optional label: `Some(n)` keeps the pixels equal to `n` (at the
/// file's own bit depth); `None` is [`read_mask`]'s rule.
pub fn read_label_mask(path: &Path, strict: bool, label: Option<u16>) -> Result<Mask2d> {
    mask_of(path, read_deep_gray(path)?, strict, label)
}

/// Reads a prediction evaluated against ground-truth label `label`: a binary mask (0/255, or a
/// label map holding one non-zero value: a model predicts one structure) by [`read_mask`]'s
/// rule whatever `label` is; a label map holding several labels by `label`, as the ground truth.
pub fn read_prediction_mask(path: &Path, strict: bool, label: Option<u16>) -> Result<Mask2d> {
    let deep = read_deep_gray(path)?;
    let label = label.filter(|_| holds_several_labels(&deep));
    mask_of(path, deep, strict, label)
}

/// Whether a grey image is a label map (no value above half the range) with two or more
/// distinct non-zero values.
fn holds_several_labels(deep: &DeepGray) -> bool {
    let half_range = deep.full_scale / 2;
    if deep.values.iter().any(|&v| v > half_range) {
        return false;
    }
    let mut non_zero = deep.values.iter().filter(|&&v| v != 0);
    let first = non_zero.next();
    first.is_some_and(|&f| non_zero.any(|&v| v != f))
}

/// The mask of a decoded image: by `label`, else the label-map or `> 127` rule.
fn mask_of(path: &Path, deep: DeepGray, strict: bool, label: Option<u16>) -> Result<Mask2d> {
    if let Some(label) = label {
        let data = deep.values.iter().map(|&v| v == label).collect();
        return Mask2d::new(deep.rows, deep.cols, data);
    }
    let half_range = deep.full_scale / 2;
    if !strict && !deep.values.iter().any(|&v| v > half_range) {
        let data = deep.values.iter().map(|&v| v != 0).collect();
        return Mask2d::new(deep.rows, deep.cols, data);
    }
    let gray = to_gray(deep.decoded);
    if strict && let Some(i) = gray.data.iter().position(|&v| v != 0 && v != 255) {
        return Err(MetricsError::NonBinary {
            path: path.to_path_buf(),
            value: gray.data[i],
            row: i / gray.cols.max(1),
            col: i % gray.cols.max(1),
        });
    }
    Mask2d::from_u8(gray.rows, gray.cols, &gray.data, FOREGROUND_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::BinaryMask;
    use image::{ImageBuffer, Luma, Rgb, Rgba};

    #[test]
    fn rgb_weights_match_cv2() {
        // cv2.imread(rgb.png, IMREAD_GRAYSCALE) of a few colours (cv2 4.11).
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 149);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(128, 128, 128), 128);
    }

    #[test]
    fn reads_grey_rgb_rgba_and_16_bit() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("g.png");
        ImageBuffer::<Luma<u8>, _>::from_raw(3, 2, vec![0, 255, 128, 127, 0, 255])
            .unwrap()
            .save(&grey)
            .unwrap();
        let m = read_mask(&grey, false).unwrap();
        assert_eq!((m.rows(), m.cols()), (2, 3));
        assert_eq!(m.data(), &[false, true, true, false, false, true]);

        let rgb = dir.path().join("c.png");
        ImageBuffer::<Rgb<u8>, _>::from_raw(2, 1, vec![255, 255, 255, 255, 0, 0])
            .unwrap()
            .save(&rgb)
            .unwrap();
        // Pure red is grey 76: background after the > 127 threshold.
        assert_eq!(read_mask(&rgb, false).unwrap().data(), &[true, false]);

        let rgba = dir.path().join("a.png");
        ImageBuffer::<Rgba<u8>, _>::from_raw(1, 1, vec![255, 255, 255, 0])
            .unwrap()
            .save(&rgba)
            .unwrap();
        assert_eq!(read_mask(&rgba, true).unwrap().data(), &[true]);

        let deep = dir.path().join("d.png");
        ImageBuffer::<Luma<u16>, _>::from_raw(2, 1, vec![65535, 32767])
            .unwrap()
            .save(&deep)
            .unwrap();
        assert_eq!(read_gray(&deep).unwrap().data, vec![255, 127]);
    }

    #[test]
    fn label_maps_are_read_as_labels_not_thresholded() {
        let dir = tempfile::tempdir().unwrap();
        // nnU-Net / MONAI style {0,1} mask: `> 127` would make it all background.
        let binary = dir.path().join("binary01.png");
        ImageBuffer::<Luma<u8>, _>::from_raw(3, 1, vec![0, 1, 1])
            .unwrap()
            .save(&binary)
            .unwrap();
        assert_eq!(
            read_mask(&binary, false).unwrap().data(),
            &[false, true, true]
        );
        // Multi-label 16-bit map: labels 0, 2, 7, 1000; one label picked, or all of them.
        let multi = dir.path().join("multi.png");
        ImageBuffer::<Luma<u16>, _>::from_raw(4, 1, vec![0, 2, 7, 1000])
            .unwrap()
            .save(&multi)
            .unwrap();
        let pick = |l| {
            read_label_mask(&multi, false, Some(l))
                .unwrap()
                .data()
                .to_vec()
        };
        assert_eq!(pick(2), vec![false, true, false, false]);
        assert_eq!(pick(1000), vec![false, false, false, true]);
        assert_eq!(
            read_mask(&multi, false).unwrap().data(),
            &[false, true, true, true]
        );
        // The reference rule is untouched for 0/255 masks and for grey images above 127.
        let grey = dir.path().join("grey.png");
        ImageBuffer::<Luma<u8>, _>::from_raw(4, 1, vec![0, 100, 128, 255])
            .unwrap()
            .save(&grey)
            .unwrap();
        assert_eq!(
            read_mask(&grey, false).unwrap().data(),
            &[false, false, true, true]
        );
        let deep = dir.path().join("deep.png");
        ImageBuffer::<Luma<u16>, _>::from_raw(3, 1, vec![0, 32767, 65535])
            .unwrap()
            .save(&deep)
            .unwrap();
        assert_eq!(
            read_mask(&deep, false).unwrap().data(),
            &[false, false, true]
        );
    }

    #[test]
    fn strict_mode_rejects_grey_values_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soft.png");
        ImageBuffer::<Luma<u8>, _>::from_raw(2, 2, vec![0, 255, 255, 200])
            .unwrap()
            .save(&path)
            .unwrap();
        assert!(read_mask(&path, false).is_ok());
        let err = read_mask(&path, true).unwrap_err();
        assert!(matches!(
            err,
            MetricsError::NonBinary {
                value: 200,
                row: 1,
                col: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("soft.png"), "{err}");
    }

    #[test]
    fn unreadable_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let err = read_mask(&bad, false).unwrap_err();
        assert!(err.to_string().contains("broken.png"), "{err}");
        let missing = dir.path().join("missing.png");
        let err = read_mask(&missing, false).unwrap_err();
        assert!(matches!(err, MetricsError::Io { .. }));
        assert!(err.to_string().contains("missing.png"));
    }
}
