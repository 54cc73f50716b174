//! Image reading with OpenCV's `cv2.imread` semantics, and PNG writing.
//!
//! * [`read_bgr`] is `cv2.imread(path)`: 3 channels in **B, G, R** order, grey replicated, alpha
//!   dropped; 8-bit files are read exactly as OpenCV does.
//! * [`read_gray`] is `cv2.imread(path, 0)`:
//!   * PNG: libpng's `rgb_to_gray` as OpenCV configures it, i.e. `(9797 R + 19234 G + 3737 B) >> 15`
//!     (truncating): bit-exact with OpenCV 4.10 and 5.0 on 8-bit RGB PNGs;
//!   * JPEG: the decoded luma (Y) plane, as libjpeg returns it for a grey request (the IDCT may
//!     differ from libjpeg-turbo's by one grey level on some pixels);
//!   * other formats (BMP, TIFF): OpenCV's `cvtColor` weights `(4899 R + 9617 G + 1868 B + 8192) >> 14`.
//!
//! 16-bit files ([`Depth16`]): OpenCV keeps the high byte (`>> 8`), which turns a 12-bit CT or
//! X-ray PNG (values up to 4095) nearly black. By default ([`Depth16::Range`]) the image's real
//! range `[min, max]` (colour samples, alpha excluded) is stretched linearly to `[0, 255]`;
//! [`read_bgr_with`] / [`read_gray_with`] also take a `CENTER,WIDTH` window or OpenCV's high byte.
//!
//! Not reproduced: EXIF orientation (OpenCV rotates JPEGs by their EXIF tag; medical PNGs have
//! none) and libpng's gamma path for PNGs that carry a `gAMA` chunk.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat};

use crate::error::{Error, Result};
use crate::fsutil;

/// An 8-bit image, interleaved (`HWC`), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels per pixel (1 or 3).
    pub channels: usize,
    /// `height * width * channels` samples.
    pub data: Vec<u8>,
}

impl Image8 {
    /// An all-zero image.
    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![0; width * height * channels],
        }
    }

    /// Wraps existing samples; `None` if the length does not match.
    pub fn from_vec(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Option<Self> {
        (data.len() == width * height * channels).then_some(Self {
            width,
            height,
            channels,
            data,
        })
    }

    /// The sample at (x, y, channel).
    pub fn get(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }
}

/// Reads the width and height from the file header only.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .into_dimensions()
        .map_err(|e| Error::decode(path, e))
}

/// How 16-bit samples become 8-bit (8-bit files are never affected).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Depth16 {
    /// The image's own `[min, max]` to `[0, 255]`, rounded (a flat image keeps OpenCV's high byte).
    #[default]
    Range,
    /// A radiology window: `[center - width/2, center + width/2]` to `[0, 255]`, clamped, rounded.
    Window {
        /// Window centre, in stored sample units.
        center: f64,
        /// Window width (> 0).
        width: f64,
    },
    /// OpenCV's `cv2.imread` without `IMREAD_ANYDEPTH`: the high byte (`v >> 8`).
    HighByte,
}

impl Depth16 {
    /// The 16-to-8-bit mapping for these interleaved samples (`stride` samples per pixel, the
    /// first `colour` of them colour, the rest alpha).
    fn mapper(self, samples: &[u16], stride: usize, colour: usize) -> impl Fn(&u16) -> u8 {
        let (lo, hi) = match self {
            Depth16::HighByte => (0.0, 0.0),
            Depth16::Window { center, width } => (center - width / 2.0, center + width / 2.0),
            Depth16::Range => {
                let colours = samples
                    .chunks_exact(stride)
                    .flat_map(|p| p[..colour].iter().copied());
                let (lo, hi) = colours.fold((u16::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
                (f64::from(lo), f64::from(hi))
            }
        };
        move |v: &u16| {
            if hi <= lo {
                return high_byte(v);
            }
            ((f64::from(*v) - lo) / (hi - lo) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        }
    }
}

/// Decodes the file as `cv2.imread(path)` would: 3-channel BGR (16-bit: [`Depth16::Range`]).
pub fn read_bgr(path: &Path) -> Result<Image8> {
    read_bgr_with(path, Depth16::default())
}

/// [`read_bgr`] with a chosen 16-bit reduction.
pub fn read_bgr_with(path: &Path, depth16: Depth16) -> Result<Image8> {
    let bytes = fsutil::read(path)?;
    let decoded = decode(path, &bytes)?;
    Ok(dynamic_to_bgr_with(decoded, depth16))
}

/// Decodes the file as `cv2.imread(path, 0)` would: one grey channel (see the module docs;
/// 16-bit: [`Depth16::Range`]).
pub fn read_gray(path: &Path) -> Result<Image8> {
    read_gray_with(path, Depth16::default())
}

/// [`read_gray`] with a chosen 16-bit reduction.
pub fn read_gray_with(path: &Path, depth16: Depth16) -> Result<Image8> {
    let bytes = fsutil::read(path)?;
    let format = image::guess_format(&bytes).map_err(|e| Error::decode(path, e))?;
    if format == ImageFormat::Jpeg {
        return jpeg_luma(path, &bytes);
    }
    let decoded = decode(path, &bytes)?;
    let weights = if format == ImageFormat::Png {
        GrayWeights::Libpng
    } else {
        GrayWeights::CvtColor
    };
    Ok(dynamic_to_gray_with(decoded, weights, depth16))
}

/// Decodes any supported format (by content, not by extension).
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::decode(path, e))
}

fn jpeg_luma(path: &Path, bytes: &[u8]) -> Result<Image8> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder
        .decode()
        .map_err(|e| Error::decode(path, format!("{e:?}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::decode(path, "JPEG header missing"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = pixels.len() / (w * h).max(1);
    if channels == 1 && pixels.len() == w * h {
        return Ok(Image8 {
            width: w,
            height: h,
            channels: 1,
            data: pixels,
        });
    }
    // The decoder refused the grey request (e.g. CMYK): fall back to converting its output.
    let rgb = decode(path, bytes)?;
    Ok(dynamic_to_gray(rgb, GrayWeights::CvtColor))
}

/// Which RGB-to-grey formula OpenCV uses for a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrayWeights {
    /// libpng `png_set_rgb_to_gray(png, 1, 0.299, 0.587)`: 15-bit weights, truncated.
    Libpng,
    /// `cv::cvtColor(BGR2GRAY)`: 14-bit weights, rounded.
    CvtColor,
}

impl GrayWeights {
    /// Grey value of one RGB pixel.
    pub(crate) fn apply(self, r: u8, g: u8, b: u8) -> u8 {
        let (r, g, b) = (u32::from(r), u32::from(g), u32::from(b));
        match self {
            Self::Libpng => ((9797 * r + 19234 * g + 3737 * b) >> 15) as u8,
            Self::CvtColor => ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14) as u8,
        }
    }
}

/// Converts a decoded image to 3-channel BGR (16-bit: [`Depth16::Range`]).
pub(crate) fn dynamic_to_bgr(img: DynamicImage) -> Image8 {
    dynamic_to_bgr_with(img, Depth16::default())
}

/// Converts a decoded image to 3-channel BGR.
pub(crate) fn dynamic_to_bgr_with(img: DynamicImage, depth16: Depth16) -> Image8 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = Image8::zeros(w, h, 3);
    let reduce = |raw: &[u16], stride, colour| -> Vec<u8> {
        raw.iter()
            .map(depth16.mapper(raw, stride, colour))
            .collect()
    };
    match img {
        DynamicImage::ImageLuma8(g) => replicate(&mut out, g.as_raw().iter().copied(), 1),
        DynamicImage::ImageLumaA8(g) => replicate(&mut out, g.as_raw().iter().copied(), 2),
        DynamicImage::ImageLuma16(g) => {
            replicate(&mut out, reduce(g.as_raw(), 1, 1).into_iter(), 1)
        }
        DynamicImage::ImageLumaA16(g) => {
            replicate(&mut out, reduce(g.as_raw(), 2, 1).into_iter(), 2)
        }
        DynamicImage::ImageRgb8(c) => swap_rb(&mut out, c.as_raw().iter().copied(), 3),
        DynamicImage::ImageRgba8(c) => swap_rb(&mut out, c.as_raw().iter().copied(), 4),
        DynamicImage::ImageRgb16(c) => swap_rb(&mut out, reduce(c.as_raw(), 3, 3).into_iter(), 3),
        DynamicImage::ImageRgba16(c) => swap_rb(&mut out, reduce(c.as_raw(), 4, 3).into_iter(), 4),
        other => {
            let rgb = other.to_rgb8();
            swap_rb(&mut out, rgb.as_raw().iter().copied(), 3);
        }
    }
    out
}

/// Converts a decoded image to one grey channel with the given colour weights (16-bit:
/// [`Depth16::Range`]).
pub(crate) fn dynamic_to_gray(img: DynamicImage, weights: GrayWeights) -> Image8 {
    dynamic_to_gray_with(img, weights, Depth16::default())
}

/// Converts a decoded image to one grey channel with the given colour weights.
pub(crate) fn dynamic_to_gray_with(
    img: DynamicImage,
    weights: GrayWeights,
    depth16: Depth16,
) -> Image8 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<u8> = match img {
        DynamicImage::ImageLuma8(g) => g.into_raw(),
        DynamicImage::ImageLumaA8(g) => g.as_raw().iter().step_by(2).copied().collect(),
        DynamicImage::ImageLuma16(g) => {
            let raw = g.as_raw();
            raw.iter().map(depth16.mapper(raw, 1, 1)).collect()
        }
        DynamicImage::ImageLumaA16(g) => {
            let raw = g.as_raw();
            raw.iter()
                .step_by(2)
                .map(depth16.mapper(raw, 2, 1))
                .collect()
        }
        other => {
            let bgr = dynamic_to_bgr_with(other, depth16);
            bgr.data
                .chunks_exact(3)
                .map(|p| weights.apply(p[2], p[1], p[0]))
                .collect()
        }
    };
    Image8 {
        width: w,
        height: h,
        channels: 1,
        data,
    }
}

fn high_byte(v: &u16) -> u8 {
    (v >> 8) as u8
}

fn replicate(out: &mut Image8, samples: impl Iterator<Item = u8>, stride: usize) {
    for (dst, v) in out.data.chunks_exact_mut(3).zip(samples.step_by(stride)) {
        dst.fill(v);
    }
}

fn swap_rb(out: &mut Image8, samples: impl Iterator<Item = u8>, stride: usize) {
    let samples: Vec<u8> = samples.collect();
    for (dst, src) in out
        .data
        .chunks_exact_mut(3)
        .zip(samples.chunks_exact(stride))
    {
        dst[0] = src[2];
        dst[1] = src[1];
        dst[2] = src[0];
    }
}

/// Binarises a grey mask the reference way: `v >= threshold` is foreground (1), else 0.
pub fn binarize(gray: &[u8], threshold: u8) -> Vec<u8> {
    gray.iter().map(|&v| u8::from(v >= threshold)).collect()
}

/// Foreground where **any** channel of a 3-channel image is `> threshold`: a grey mask with
/// `on` there and 0 elsewhere (colour masks, whose red or green lesions grey reads would dim).
pub fn any_channel_mask(bgr: &Image8, threshold: u8, on: u8) -> Image8 {
    let data = bgr
        .data
        .chunks_exact(3)
        .map(|p| {
            if p.iter().any(|&v| v > threshold) {
                on
            } else {
                0
            }
        })
        .collect();
    Image8 {
        width: bgr.width,
        height: bgr.height,
        channels: 1,
        data,
    }
}

/// File extensions of the images the tool reads (those its `image` build decodes), lower case.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`], in any case.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Encodes and atomically writes a 1-channel (grey) or 3-channel (**RGB** order) PNG.
pub fn write_png(path: &Path, img: &Image8) -> Result<()> {
    let color = match img.channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        n => {
            return Err(Error::Encode {
                path: path.to_path_buf(),
                reason: format!("{n} channels cannot be written as PNG here"),
            });
        }
    };
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    image::ImageEncoder::write_image(
        encoder,
        &img.data,
        img.width as u32,
        img.height as u32,
        color,
    )
    .map_err(|e| Error::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every extension `predict` accepts decodes with this build of `image`: a file of each,
    /// written here in the format its extension names, reads back to the same size.
    #[test]
    fn every_accepted_extension_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let rgb =
            image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 90]));
        for ext in IMAGE_EXTENSIONS {
            let path = dir.path().join(format!("scan.{ext}"));
            let format = image::ImageFormat::from_extension(ext)
                .unwrap_or_else(|| panic!("{ext}: not an image format the image crate knows"));
            image::DynamicImage::ImageRgb8(rgb.clone())
                .save_with_format(&path, format)
                .unwrap_or_else(|e| panic!("{ext}: cannot encode: {e}"));
            let read = read_bgr(&path).unwrap_or_else(|e| panic!("{ext}: cannot decode: {e}"));
            assert_eq!((read.width, read.height, read.channels), (5, 3, 3), "{ext}");
            assert!(has_image_extension(
                &path.with_extension(ext.to_uppercase())
            ));
        }
    }

    fn save_rgb(path: &Path, w: u32, h: u32, rgb: &[u8]) {
        image::RgbImage::from_raw(w, h, rgb.to_vec())
            .unwrap()
            .save(path)
            .unwrap();
    }

    #[test]
    fn rgb_png_reads_as_bgr_and_grey_with_libpng_weights() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        // Pure red, pure green, pure blue, and a mixed pixel.
        save_rgb(
            &path,
            4,
            1,
            &[255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50],
        );
        let bgr = read_bgr(&path).unwrap();
        assert_eq!(bgr.data, [0, 0, 255, 0, 255, 0, 255, 0, 0, 50, 100, 200]);
        let gray = read_gray(&path).unwrap();
        // (9797*255)>>15 = 76, (19234*255)>>15 = 149, (3737*255)>>15 = 29,
        // (9797*200 + 19234*100 + 3737*50) >> 15 = (1959400+1923400+186850)>>15 = 124.
        assert_eq!(gray.data, [76, 149, 29, 124]);
    }

    #[test]
    fn pure_red_mask_vanishes_under_grey_threshold() {
        // The BKAI pitfall: a pure-red polyp is 76 < 127 in a grey read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.png");
        save_rgb(&path, 1, 1, &[255, 0, 0]);
        assert_eq!(binarize(&read_gray(&path).unwrap().data, 127), [0]);
    }

    #[test]
    fn cvtcolor_weights_round() {
        // (4899*200 + 9617*100 + 1868*50 + 8192) >> 14 = 2043092 >> 14 = 124 (124.20 rounded).
        assert_eq!(GrayWeights::CvtColor.apply(200, 100, 50), 124);
        assert_eq!(GrayWeights::CvtColor.apply(255, 255, 255), 255);
        assert_eq!(GrayWeights::Libpng.apply(255, 255, 255), 255);
        assert_eq!(GrayWeights::CvtColor.apply(255, 0, 0), 76);
    }

    #[test]
    fn grey_png_is_replicated_and_16_bit_keeps_opencv_high_byte_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let g8 = dir.path().join("g8.png");
        image::GrayImage::from_raw(2, 1, vec![7, 200])
            .unwrap()
            .save(&g8)
            .unwrap();
        assert_eq!(read_bgr(&g8).unwrap().data, [7, 7, 7, 200, 200, 200]);
        let g16 = dir.path().join("g16.png");
        let img = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 1, vec![0x12ff, 0xff00])
            .unwrap();
        img.save(&g16).unwrap();
        assert_eq!(
            read_gray_with(&g16, Depth16::HighByte).unwrap().data,
            [0x12, 0xff]
        );
    }

    #[test]
    fn twelve_bit_png_is_stretched_by_its_range_or_windowed() {
        let dir = tempfile::tempdir().unwrap();
        // A 12-bit X-ray in a 16-bit PNG: with `>> 8` every value is <= 15 (nearly black).
        let path = dir.path().join("xray12.png");
        let img =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(4, 1, vec![100, 1000, 2100, 4095])
                .unwrap();
        img.save(&path).unwrap();
        assert_eq!(read_gray(&path).unwrap().data, [0, 57, 128, 255]);
        assert_eq!(read_bgr(&path).unwrap().data[9..], [255, 255, 255]);
        let window = Depth16::Window {
            center: 1100.0,
            width: 2000.0,
        };
        assert_eq!(
            read_gray_with(&path, window).unwrap().data,
            [0, 115, 255, 255]
        );
        // Alpha does not count towards the range.
        let rgba = dir.path().join("rgba16.png");
        let img = image::ImageBuffer::<image::Rgba<u16>, _>::from_raw(
            2,
            1,
            vec![0, 0, 0, 65535, 4000, 2000, 1000, 65535],
        )
        .unwrap();
        img.save(&rgba).unwrap();
        assert_eq!(read_bgr(&rgba).unwrap().data, [0, 0, 0, 64, 128, 255]);
    }

    #[test]
    fn rgba_alpha_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        image::RgbaImage::from_raw(1, 1, vec![10, 20, 30, 0])
            .unwrap()
            .save(&path)
            .unwrap();
        assert_eq!(read_bgr(&path).unwrap().data, [30, 20, 10]);
    }

    #[test]
    fn jpeg_grey_read_returns_the_luma_plane() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jpeg");
        let flat: Vec<u8> = [255u8, 0, 0].repeat(16 * 16);
        image::RgbImage::from_raw(16, 16, flat)
            .unwrap()
            .save(&path)
            .unwrap();
        let gray = read_gray(&path).unwrap();
        assert_eq!((gray.width, gray.height, gray.channels), (16, 16, 1));
        // Y of pure red is 0.299*255 = 76.2; JPEG quantisation moves it by a level or two.
        assert!(
            gray.data.iter().all(|&v| (74..=78).contains(&v)),
            "{:?}",
            &gray.data[..4]
        );
    }

    #[test]
    fn corrupt_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        for result in [read_bgr(&bad), read_gray(&bad)] {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("bad.png") && err.contains("decode"), "{err}");
        }
        let text = dir.path().join("text.png");
        std::fs::write(&text, b"hello").unwrap();
        assert!(
            read_bgr(&text)
                .unwrap_err()
                .to_string()
                .contains("text.png")
        );
        let err = read_gray(&dir.path().join("missing.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.png"), "{err}");
        assert!(
            dimensions(&bad)
                .unwrap_err()
                .to_string()
                .contains("bad.png")
        );
    }

    #[test]
    fn png_write_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/x.png");
        let img = Image8::from_vec(2, 1, 3, vec![1, 2, 3, 4, 5, 6]).unwrap();
        write_png(&path, &img).unwrap();
        // written as RGB, read back as BGR
        assert_eq!(read_bgr(&path).unwrap().data, [3, 2, 1, 6, 5, 4]);
        assert!(Image8::from_vec(2, 2, 3, vec![0; 5]).is_none());
    }

    #[test]
    fn image_extensions_ignore_case_and_leave_out_undecodable_formats() {
        assert!(has_image_extension(Path::new("a/scan.PNG")));
        assert!(has_image_extension(Path::new("scan.tiff")));
        // The `image` build has no WebP decoder: listing .webp would fail later, on decode.
        assert!(!has_image_extension(Path::new("scan.webp")));
        assert!(!has_image_extension(Path::new("notes.txt")));
        assert!(!has_image_extension(Path::new("png")));
    }

    #[test]
    fn any_channel_mask_marks_pixels_with_one_bright_channel() {
        let bgr = Image8 {
            width: 3,
            height: 1,
            channels: 3,
            data: vec![0, 0, 200, 127, 127, 127, 1, 0, 0],
        };
        assert_eq!(any_channel_mask(&bgr, 127, 255).data, [255, 0, 0]);
        assert_eq!(any_channel_mask(&bgr, 0, 1).data, [1, 1, 1]);
    }
}
