//! Small raster primitives: rectangles, anti-aliased lines and discs, alpha blending and
//! nearest-neighbour upscaling. Everything clips to the image (or to a given rectangle), so
//! callers may pass coordinates outside it.

use image::{Rgb, RgbImage};

use crate::Colour;

/// An axis-aligned pixel rectangle: columns `x..x + width`, rows `y..y + height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: i64,
    /// Top row.
    pub y: i64,
    /// Width in pixels.
    pub width: i64,
    /// Height in pixels.
    pub height: i64,
}

impl Rect {
    /// The whole of `image`.
    pub fn of_image(image: &RgbImage) -> Self {
        Rect {
            x: 0,
            y: 0,
            width: image.width() as i64,
            height: image.height() as i64,
        }
    }

    /// Whether pixel (`x`, `y`) lies inside.
    pub fn contains(&self, x: i64, y: i64) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.width && y < self.y + self.height
    }

    /// The overlap of two rectangles (possibly empty).
    fn intersect(&self, other: &Rect) -> Rect {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = (self.x + self.width).min(other.x + other.width);
        let bottom = (self.y + self.height).min(other.y + other.height);
        Rect {
            x,
            y,
            width: (right - x).max(0),
            height: (bottom - y).max(0),
        }
    }
}

/// Mixes `colour` over the pixel at (`x`, `y`) with opacity `alpha` in `[0, 1]`;
/// pixels outside `clip` (or the image) are left alone.
pub fn blend_pixel(image: &mut RgbImage, clip: &Rect, x: i64, y: i64, colour: Colour, alpha: f32) {
    let bounds = clip.intersect(&Rect::of_image(image));
    if !bounds.contains(x, y) || alpha <= 0.0 {
        return;
    }
    let alpha = alpha.min(1.0);
    let pixel = image.get_pixel_mut(x as u32, y as u32);
    for (channel, &target) in pixel.0.iter_mut().zip(colour.iter()) {
        let mixed = *channel as f32 * (1.0 - alpha) + target as f32 * alpha;
        *channel = mixed.round().clamp(0.0, 255.0) as u8;
    }
}

/// Fills a rectangle (clipped to the image).
pub fn fill_rect(image: &mut RgbImage, rect: Rect, colour: Colour) {
    let area = rect.intersect(&Rect::of_image(image));
    for y in area.y..area.y + area.height {
        for x in area.x..area.x + area.width {
            image.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}

/// Draws the 1-pixel outline of a rectangle.
pub fn stroke_rect(image: &mut RgbImage, rect: Rect, colour: Colour) {
    if rect.width <= 0 || rect.height <= 0 {
        return;
    }
    let right = rect.x + rect.width - 1;
    let bottom = rect.y + rect.height - 1;
    fill_rect(image, Rect { height: 1, ..rect }, colour);
    fill_rect(
        image,
        Rect {
            y: bottom,
            height: 1,
            ..rect
        },
        colour,
    );
    fill_rect(image, Rect { width: 1, ..rect }, colour);
    fill_rect(
        image,
        Rect {
            x: right,
            width: 1,
            ..rect
        },
        colour,
    );
}

/// Distance from point `p` to the segment `a`-`b`.
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length_squared = dx * dx + dy * dy;
    let t = if length_squared == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length_squared).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Draws an anti-aliased line of the given `width` (pixels) between two points in pixel
/// coordinates (pixel centres at `i + 0.5`), painting only inside `clip`.
pub fn draw_line(
    image: &mut RgbImage,
    clip: &Rect,
    a: (f64, f64),
    b: (f64, f64),
    colour: Colour,
    width: f64,
) {
    if ![a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
        return;
    }
    let half = width.max(0.5) / 2.0;
    let reach = half + 1.0;
    let bounds = clip.intersect(&Rect::of_image(image));
    let x0 = ((a.0.min(b.0) - reach).floor() as i64).max(bounds.x);
    let x1 = ((a.0.max(b.0) + reach).ceil() as i64).min(bounds.x + bounds.width - 1);
    let y0 = ((a.1.min(b.1) - reach).floor() as i64).max(bounds.y);
    let y1 = ((a.1.max(b.1) + reach).ceil() as i64).min(bounds.y + bounds.height - 1);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let centre = (x as f64 + 0.5, y as f64 + 0.5);
            let coverage = (half + 0.5 - distance_to_segment(centre, a, b)).clamp(0.0, 1.0);
            blend_pixel(image, &bounds, x, y, colour, coverage as f32);
        }
    }
}

/// Draws an anti-aliased filled disc, painting only inside `clip`.
pub fn draw_disc(
    image: &mut RgbImage,
    clip: &Rect,
    centre: (f64, f64),
    radius: f64,
    colour: Colour,
) {
    draw_line(image, clip, centre, centre, colour, 2.0 * radius);
}

/// Enlarges an image by an integer factor, repeating each pixel (keeps pixels crisp).
pub fn upscale_nearest(image: &RgbImage, factor: u32) -> RgbImage {
    let factor = factor.max(1);
    RgbImage::from_fn(image.width() * factor, image.height() * factor, |x, y| {
        *image.get_pixel(x / factor, y / factor)
    })
}

/// Copies `source` into `target` with its top-left corner at (`x`, `y`) (clipped).
pub fn paste(target: &mut RgbImage, source: &RgbImage, x: i64, y: i64) {
    let bounds = Rect::of_image(target);
    for (sx, sy, pixel) in source.enumerate_pixels() {
        let (tx, ty) = (x + sx as i64, y + sy as i64);
        if bounds.contains(tx, ty) {
            target.put_pixel(tx as u32, ty as u32, *pixel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Colour = [255, 255, 255];

    #[test]
    fn fill_and_stroke_clip_to_the_image() {
        let mut image = RgbImage::from_pixel(10, 10, Rgb(WHITE));
        fill_rect(
            &mut image,
            Rect {
                x: -5,
                y: 8,
                width: 8,
                height: 8,
            },
            [0, 0, 0],
        );
        let black = image.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        assert_eq!(black, 3 * 2);
        stroke_rect(
            &mut image,
            Rect {
                x: 2,
                y: 2,
                width: 4,
                height: 3,
            },
            [1, 2, 3],
        );
        let outline = image.pixels().filter(|p| p.0 == [1, 2, 3]).count();
        assert_eq!(outline, 4 * 3 - 2);
    }

    #[test]
    fn horizontal_line_is_solid_in_the_middle_and_clipped() {
        let mut image = RgbImage::from_pixel(20, 10, Rgb(WHITE));
        let clip = Rect {
            x: 0,
            y: 0,
            width: 15,
            height: 10,
        };
        draw_line(&mut image, &clip, (2.0, 5.5), (18.0, 5.5), [0, 0, 0], 1.0);
        assert_eq!(image.get_pixel(8, 5).0, [0, 0, 0]);
        assert_eq!(image.get_pixel(8, 2).0, WHITE);
        assert_eq!(
            image.get_pixel(16, 5).0,
            WHITE,
            "outside the clip rectangle"
        );
    }

    #[test]
    fn non_finite_line_is_ignored() {
        let mut image = RgbImage::from_pixel(5, 5, Rgb(WHITE));
        let clip = Rect::of_image(&image);
        draw_line(
            &mut image,
            &clip,
            (f64::NAN, 1.0),
            (3.0, 3.0),
            [0, 0, 0],
            1.0,
        );
        assert!(image.pixels().all(|p| p.0 == WHITE));
    }

    #[test]
    fn blending_mixes_colours() {
        let mut image = RgbImage::from_pixel(1, 1, Rgb([0, 0, 0]));
        let clip = Rect::of_image(&image);
        blend_pixel(&mut image, &clip, 0, 0, [200, 100, 0], 0.5);
        assert_eq!(image.get_pixel(0, 0).0, [100, 50, 0]);
    }

    #[test]
    fn upscale_repeats_pixels() {
        let image = RgbImage::from_fn(2, 1, |x, _| Rgb([x as u8, 0, 0]));
        let big = upscale_nearest(&image, 3);
        assert_eq!(big.dimensions(), (6, 3));
        assert_eq!(big.get_pixel(2, 2).0, [0, 0, 0]);
        assert_eq!(big.get_pixel(3, 0).0, [1, 0, 0]);
    }

    #[test]
    fn paste_clips() {
        let mut target = RgbImage::new(4, 4);
        let source = RgbImage::from_pixel(3, 3, Rgb(WHITE));
        paste(&mut target, &source, 2, -1);
        let white = target.pixels().filter(|p| p.0 == WHITE).count();
        assert_eq!(white, 2 * 2);
    }
}
