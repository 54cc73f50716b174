//! Masks drawn over images: tinted fills, contours, GT-versus-prediction overlays and
//! side-by-side titled panels (image | GT | prediction | uncertainty).
//!
//! Masks are row-major `&[bool]` buffers of the image's size (`true` = foreground).

use image::{Rgb, RgbImage};

use crate::colormap::{ChannelOrder, uncertainty_image};
use crate::draw::{Rect, blend_pixel, fill_rect, paste, upscale_nearest};
use crate::error::{Result, check_buffer_len, check_not_empty};
use crate::font::{draw_text, fit_text, text_height, text_width};
use crate::{Colour, palette};

/// How a mask is drawn over an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    /// Tint of the foreground: colour and opacity in `[0, 1]`; `None` for no fill.
    pub fill: Option<(Colour, f32)>,
    /// Contour: colour and thickness in pixels (inside the mask); `None` for no contour.
    pub contour: Option<(Colour, u32)>,
}

impl OverlayStyle {
    /// A translucent fill with a solid contour of the same colour.
    pub fn filled(colour: Colour) -> Self {
        OverlayStyle {
            fill: Some((colour, 0.35)),
            contour: Some((colour, 2)),
        }
    }

    /// A contour only.
    pub fn outline(colour: Colour, thickness: u32) -> Self {
        OverlayStyle {
            fill: None,
            contour: Some((colour, thickness)),
        }
    }
}

/// Shrinks a mask by one pixel (4-neighbourhood); pixels outside the image count as background.
fn erode(mask: &[bool], width: usize, height: usize) -> Vec<bool> {
    let at = |x: usize, y: usize| mask[y * width + x];
    let mut eroded = vec![false; mask.len()];
    for y in 0..height {
        for x in 0..width {
            eroded[y * width + x] = at(x, y)
                && x > 0
                && y > 0
                && x + 1 < width
                && y + 1 < height
                && at(x - 1, y)
                && at(x + 1, y)
                && at(x, y - 1)
                && at(x, y + 1);
        }
    }
    eroded
}

/// The inner contour of a mask, `thickness` pixels wide: foreground pixels within
/// `thickness` 4-neighbour steps of the background (or of the image border).
pub fn mask_contour(mask: &[bool], width: u32, height: u32, thickness: u32) -> Result<Vec<bool>> {
    check_buffer_len("mask", mask.len(), width, height)?;
    let mut interior = mask.to_vec();
    for _ in 0..thickness {
        interior = erode(&interior, width as usize, height as usize);
    }
    Ok(mask.iter().zip(&interior).map(|(&m, &i)| m && !i).collect())
}

/// Enlarges a mask by an integer factor (nearest neighbour).
pub fn upscale_mask(mask: &[bool], width: u32, height: u32, factor: u32) -> Result<Vec<bool>> {
    check_buffer_len("mask", mask.len(), width, height)?;
    let factor = factor.max(1) as usize;
    let (width, height) = (width as usize, height as usize);
    let big_width = width * factor;
    Ok((0..height * factor * big_width)
        .map(|i| mask[(i / big_width / factor) * width + (i % big_width) / factor])
        .collect())
}

/// Draws `mask` over a copy of `image` in the given style (fill first, contour on top).
pub fn overlay_mask(image: &RgbImage, mask: &[bool], style: &OverlayStyle) -> Result<RgbImage> {
    let mut out = image.clone();
    draw_mask(&mut out, mask, style)?;
    Ok(out)
}

fn draw_mask(image: &mut RgbImage, mask: &[bool], style: &OverlayStyle) -> Result<()> {
    let (width, height) = image.dimensions();
    check_buffer_len("mask", mask.len(), width, height)?;
    let clip = Rect::of_image(image);
    if let Some((colour, alpha)) = style.fill {
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            let (x, y) = ((i % width as usize) as i64, (i / width as usize) as i64);
            blend_pixel(image, &clip, x, y, colour, alpha);
        }
    }
    if let Some((colour, thickness)) = style.contour {
        let contour = mask_contour(mask, width, height, thickness)?;
        for (i, _) in contour.iter().enumerate().filter(|(_, c)| **c) {
            image.put_pixel(i as u32 % width, i as u32 / width, Rgb(colour));
        }
    }
    Ok(())
}

/// Ground truth against prediction on one image: the prediction tinted red with a red contour,
/// and the ground-truth contour in green on top, so misses and false alarms stand out.
pub fn overlay_gt_pred(
    image: &RgbImage,
    ground_truth: &[bool],
    prediction: &[bool],
) -> Result<RgbImage> {
    let (width, height) = image.dimensions();
    check_buffer_len("ground-truth mask", ground_truth.len(), width, height)?;
    check_buffer_len("prediction mask", prediction.len(), width, height)?;
    let mut out = overlay_mask(
        image,
        prediction,
        &OverlayStyle::filled(palette::PREDICTION),
    )?;
    draw_mask(
        &mut out,
        ground_truth,
        &OverlayStyle::outline(palette::GROUND_TRUTH, 2),
    )?;
    Ok(out)
}

/// A binary mask as a black-and-white image.
pub fn mask_image(mask: &[bool], width: u32, height: u32) -> Result<RgbImage> {
    check_not_empty("mask image", width, height)?;
    check_buffer_len("mask", mask.len(), width, height)?;
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let on = mask[(y * width + x) as usize];
        Rgb(if on { [255; 3] } else { [0; 3] })
    }))
}

/// A greyscale `u8` buffer (one value per pixel) as an RGB image.
pub fn gray_image(values: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    check_not_empty("grey image", width, height)?;
    check_buffer_len("grey image", values.len(), width, height)?;
    Ok(RgbImage::from_fn(width, height, |x, y| {
        Rgb([values[(y * width + x) as usize]; 3])
    }))
}

/// One titled picture of a [`panel_row`].
#[derive(Clone, Debug)]
pub struct Panel {
    /// Short title drawn above the picture.
    pub title: String,
    /// The picture.
    pub image: RgbImage,
}

const PANEL_GAP: u32 = 8;
const PANEL_BACKGROUND: Colour = [255, 255, 255];
const PANEL_TEXT: Colour = [20, 20, 20];

/// The integer factor that makes an image's larger side at least `min_side` pixels.
pub fn upscale_factor(width: u32, height: u32, min_side: u32) -> u32 {
    let side = width.max(height).max(1);
    min_side.div_ceil(side).max(1)
}

/// Puts panels side by side on a white background, each with its title above it. Pictures
/// whose larger side is under `min_side` are enlarged by an integer factor (nearest
/// neighbour) so tiny images (64x64) stay visible; long titles are cut with `..`.
pub fn panel_row(panels: &[Panel], min_side: u32) -> Result<RgbImage> {
    for panel in panels {
        check_not_empty("panel", panel.image.width(), panel.image.height())?;
    }
    let scaled: Vec<RgbImage> = panels
        .iter()
        .map(|p| {
            let (w, h) = p.image.dimensions();
            upscale_nearest(&p.image, upscale_factor(w, h, min_side))
        })
        .collect();
    let title_scale = if scaled.iter().all(|s| s.width() >= 160) {
        2
    } else {
        1
    };
    let title_band = text_height(title_scale) + 2 * PANEL_GAP;
    let width = PANEL_GAP + scaled.iter().map(|s| s.width() + PANEL_GAP).sum::<u32>();
    let height = title_band + scaled.iter().map(RgbImage::height).max().unwrap_or(0) + PANEL_GAP;
    check_not_empty("panel row", width, height)?;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb(PANEL_BACKGROUND));
    let mut x = PANEL_GAP;
    for (panel, picture) in panels.iter().zip(&scaled) {
        let title = fit_text(&panel.title, picture.width(), title_scale);
        let title_x = x + (picture.width() - text_width(&title, title_scale)) / 2;
        draw_text(
            &mut canvas,
            title_x as i64,
            PANEL_GAP as i64,
            &title,
            PANEL_TEXT,
            title_scale,
        );
        paste(&mut canvas, picture, x as i64, title_band as i64);
        x += picture.width() + PANEL_GAP;
    }
    Ok(canvas)
}

/// One test case to show: the input image, the masks and optionally the entropy map,
/// all at the image's size.
#[derive(Clone, Copy, Debug)]
pub struct SegmentationSample<'a> {
    /// The input image.
    pub image: &'a RgbImage,
    /// Ground-truth mask, when known.
    pub ground_truth: Option<&'a [bool]>,
    /// Predicted mask.
    pub prediction: &'a [bool],
    /// Per-pixel uncertainty (e.g. binary entropy of the mean probability), when available.
    pub uncertainty: Option<&'a [f32]>,
}

/// The standard picture of one case: `image | GT | prediction | uncertainty` (GT and
/// uncertainty panels only when given). Images are enlarged first so that contours stay thin.
/// The GT panel shows the GT in green; the prediction panel shows the prediction in red with
/// the GT contour in green; the uncertainty panel is the reference's normalised
/// `nipy_spectral` map with a small colour bar.
pub fn segmentation_panels(sample: &SegmentationSample<'_>, min_side: u32) -> Result<RgbImage> {
    let (width, height) = sample.image.dimensions();
    check_not_empty("segmentation image", width, height)?;
    check_buffer_len("prediction mask", sample.prediction.len(), width, height)?;
    let factor = upscale_factor(width, height, min_side);
    let image = upscale_nearest(sample.image, factor);
    let prediction = upscale_mask(sample.prediction, width, height, factor)?;
    let mut panels = vec![Panel {
        title: "image".into(),
        image: image.clone(),
    }];
    let ground_truth = match sample.ground_truth {
        Some(gt) => Some(upscale_mask(gt, width, height, factor)?),
        None => None,
    };
    if let Some(gt) = &ground_truth {
        panels.push(Panel {
            title: "ground truth".into(),
            image: overlay_mask(&image, gt, &OverlayStyle::filled(palette::GROUND_TRUTH))?,
        });
        panels.push(Panel {
            title: "prediction vs GT".into(),
            image: overlay_gt_pred(&image, gt, &prediction)?,
        });
    } else {
        panels.push(Panel {
            title: "prediction".into(),
            image: overlay_mask(
                &image,
                &prediction,
                &OverlayStyle::filled(palette::PREDICTION),
            )?,
        });
    }
    if let Some(uncertainty) = sample.uncertainty {
        let map = uncertainty_image(uncertainty, width, height, ChannelOrder::Rgb)?;
        panels.push(Panel {
            title: "uncertainty".into(),
            image: with_colorbar(&upscale_nearest(&map, factor)),
        });
    }
    panel_row(&panels, min_side)
}

/// Appends a thin `nipy_spectral` bar (low on the left, high on the right) under a map.
fn with_colorbar(map: &RgbImage) -> RgbImage {
    let (width, height) = map.dimensions();
    let bar_height = (height / 24).clamp(4, 12);
    let mut out = RgbImage::from_pixel(width, height + 2 + bar_height, Rgb(PANEL_BACKGROUND));
    paste(&mut out, map, 0, 0);
    let denominator = (width.max(2) - 1) as f32;
    for x in 0..width {
        let colour = crate::colormap::Colormap::NipySpectral.map(x as f32 / denominator);
        let column = Rect {
            x: x as i64,
            y: (height + 2) as i64,
            width: 1,
            height: bar_height as i64,
        };
        fill_rect(&mut out, column, colour);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `size x size` mask with a filled square `from..to` on both axes.
    fn square_mask(size: u32, from: u32, to: u32) -> Vec<bool> {
        (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                (from..to).contains(&x) && (from..to).contains(&y)
            })
            .collect()
    }

    #[test]
    fn one_pixel_contour_is_exactly_the_square_border() {
        let mask = square_mask(10, 2, 7);
        let contour = mask_contour(&mask, 10, 10, 1).unwrap();
        for y in 0..10u32 {
            for x in 0..10u32 {
                let inside = (2..7).contains(&x) && (2..7).contains(&y);
                let border = inside && (x == 2 || x == 6 || y == 2 || y == 6);
                assert_eq!(contour[(y * 10 + x) as usize], border, "at {x},{y}");
            }
        }
    }

    #[test]
    fn mask_touching_the_image_edge_has_contour_there() {
        let mask = vec![true; 9];
        let contour = mask_contour(&mask, 3, 3, 1).unwrap();
        assert_eq!(contour.iter().filter(|&&c| c).count(), 8);
        assert!(!contour[4]);
    }

    #[test]
    fn overlay_contour_changes_only_boundary_pixels() {
        let image = RgbImage::from_pixel(10, 10, Rgb([50, 50, 50]));
        let mask = square_mask(10, 2, 7);
        let out = overlay_mask(&image, &mask, &OverlayStyle::outline([0, 255, 0], 1)).unwrap();
        let contour = mask_contour(&mask, 10, 10, 1).unwrap();
        for (i, pixel) in out.pixels().enumerate() {
            let expected = if contour[i] {
                [0, 255, 0]
            } else {
                [50, 50, 50]
            };
            assert_eq!(pixel.0, expected, "pixel {i}");
        }
    }

    #[test]
    fn fill_tints_inside_only() {
        let image = RgbImage::from_pixel(6, 6, Rgb([0, 0, 0]));
        let mask = square_mask(6, 1, 5);
        let style = OverlayStyle {
            fill: Some(([200, 0, 0], 0.5)),
            contour: None,
        };
        let out = overlay_mask(&image, &mask, &style).unwrap();
        assert_eq!(out.get_pixel(2, 2).0, [100, 0, 0]);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn gt_pred_overlay_uses_green_and_red() {
        let image = RgbImage::from_pixel(12, 12, Rgb([0, 0, 0]));
        let gt = square_mask(12, 1, 6);
        let pred = square_mask(12, 6, 11);
        let out = overlay_gt_pred(&image, &gt, &pred).unwrap();
        assert_eq!(out.get_pixel(1, 1).0, palette::GROUND_TRUTH);
        assert_eq!(out.get_pixel(10, 10).0, palette::PREDICTION);
        assert_eq!(out.get_pixel(0, 11).0, [0, 0, 0]);
    }

    #[test]
    fn wrong_mask_size_is_an_error() {
        let image = RgbImage::new(4, 4);
        assert!(overlay_mask(&image, &[true; 15], &OverlayStyle::filled([1, 1, 1])).is_err());
        assert!(overlay_gt_pred(&image, &[true; 16], &[true; 3]).is_err());
        assert!(mask_contour(&[true; 3], 2, 2, 1).is_err());
        assert!(mask_image(&[true; 3], 2, 2).is_err());
        let sample = SegmentationSample {
            image: &image,
            ground_truth: None,
            prediction: &[false; 16],
            uncertainty: Some(&[0.0; 15]),
        };
        assert!(segmentation_panels(&sample, 64).is_err());
    }

    #[test]
    fn panels_upscale_tiny_images_and_keep_titles() {
        let image = RgbImage::from_pixel(64, 64, Rgb([90, 90, 90]));
        let gt = square_mask(64, 10, 40);
        let pred = square_mask(64, 20, 50);
        let uncertainty: Vec<f32> = (0..64 * 64).map(|i| (i % 64) as f32 / 63.0).collect();
        let sample = SegmentationSample {
            image: &image,
            ground_truth: Some(&gt),
            prediction: &pred,
            uncertainty: Some(&uncertainty),
        };
        let row = segmentation_panels(&sample, 256).unwrap();
        // Four 256-wide panels plus five gaps.
        assert_eq!(row.width(), 4 * 256 + 5 * PANEL_GAP);
        assert!(row.height() > 256);
        // Title text is drawn in the band above the pictures.
        let band_ink = (0..row.width())
            .flat_map(|x| (0..PANEL_GAP + text_height(2)).map(move |y| (x, y)))
            .filter(|&(x, y)| row.get_pixel(x, y).0 == PANEL_TEXT)
            .count();
        assert!(band_ink > 50);
    }

    #[test]
    fn upscale_factor_reaches_min_side() {
        assert_eq!(upscale_factor(64, 64, 256), 4);
        assert_eq!(upscale_factor(224, 224, 256), 2);
        assert_eq!(upscale_factor(300, 100, 256), 1);
    }

    proptest! {
        #[test]
        fn contour_pixels_are_foreground_and_touch_background(
            bits in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let (w, h) = (8usize, 8usize);
            let contour = mask_contour(&bits, 8, 8, 1).unwrap();
            let fg = |x: i64, y: i64| x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && bits[y as usize * w + x as usize];
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let on_edge = fg(x, y)
                        && !(fg(x - 1, y) && fg(x + 1, y) && fg(x, y - 1) && fg(x, y + 1));
                    prop_assert_eq!(contour[y as usize * w + x as usize], on_edge);
                }
            }
        }

        #[test]
        fn upscaled_mask_keeps_the_foreground_fraction(
            bits in proptest::collection::vec(any::<bool>(), 12), factor in 1u32..4,
        ) {
            let big = upscale_mask(&bits, 4, 3, factor).unwrap();
            let on = |m: &[bool]| m.iter().filter(|&&b| b).count();
            prop_assert_eq!(big.len(), 12 * (factor * factor) as usize);
            prop_assert_eq!(on(&big), on(&bits) * (factor * factor) as usize);
        }
    }
}
