//! Reading mask images (PNG, and the other formats the reference evaluation lists) as OpenCV's
//! `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` does, then binarising with `> 127`.

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
    let reader = image::ImageReader::open(path)
        .map_err(|e| MetricsError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| MetricsError::io(path, e))?;
    let decoded = reader.decode().map_err(|source| MetricsError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(to_gray(decoded))
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

/// Reads a mask file: grey values `> 127` are foreground. With `strict`, any value other than 0
/// and 255 is an error naming the file and the first offending pixel.
pub fn read_mask(path: &Path, strict: bool) -> Result<Mask2d> {
    let gray = read_gray(path)?;
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
