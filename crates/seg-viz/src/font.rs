//! Text drawing with an embedded DejaVu Sans, rasterised anti-aliased by `ab_glyph`.
//!
//! The font file is a subset of DejaVu Sans 2.37 (Bitstream Vera licence, see
//! `assets/LICENSE-DejaVu.txt`): Basic Latin, Latin-1, Latin Extended-A, Greek, general
//! punctuation, super- and subscripts, letter-like symbols, arrows, mathematical operators and
//! geometric shapes, so labels such as `β sweep`, `mm²`, `μ ± σ` or `p ≤ 0.05` draw as written.
//! A character outside the subset draws as the replacement character `�`, a control character
//! as a space.
//!
//! Sizes are given as an integer `scale`: one line of text is [`LINE_HEIGHT`]` * scale` pixels
//! tall (ascender to descender), so callers size layouts the same way at every scale.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, Glyph, GlyphId, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};

use crate::Colour;

/// The embedded font (a 130 KB subset of DejaVu Sans).
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Line height in pixels per unit of `scale`.
pub const LINE_HEIGHT: u32 = 11;

/// Drawn for characters the embedded font does not have.
const REPLACEMENT: char = '\u{FFFD}';

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    // The bytes are compiled in and parsed by a unit test, so this cannot fail at run time.
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).expect("embedded font parses"))
}

/// Whether the embedded font has a glyph of its own for `c` (not the replacement character).
pub fn has_glyph(c: char) -> bool {
    font().glyph_id(c) != GlyphId(0)
}

fn px_scale(scale: u32) -> PxScale {
    PxScale::from(text_height(scale) as f32)
}

/// The glyph drawn for `c`: its own, a space for control characters, else the replacement.
fn glyph_id(c: char) -> GlyphId {
    let c = if c.is_control() { ' ' } else { c };
    match font().glyph_id(c) {
        GlyphId(0) => font().glyph_id(REPLACEMENT),
        id => id,
    }
}

/// Positions the glyphs of `text` on one line whose top is y = 0; returns them and the
/// line's advance width in pixels.
fn layout(text: &str, scale: u32) -> (Vec<Glyph>, f32) {
    let scaled = font().as_scaled(px_scale(scale));
    let mut glyphs = Vec::with_capacity(text.len());
    let mut caret = 0.0f32;
    let mut previous: Option<GlyphId> = None;
    for c in text.chars() {
        let id = glyph_id(c);
        if let Some(previous) = previous {
            caret += scaled.kern(previous, id);
        }
        glyphs.push(id.with_scale_and_position(px_scale(scale), point(caret, scaled.ascent())));
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    (glyphs, caret)
}

/// Width in image pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    layout(text, scale).1.ceil() as u32
}

/// Height in image pixels of one line drawn at `scale`.
pub fn text_height(scale: u32) -> u32 {
    LINE_HEIGHT * scale.max(1)
}

/// The longest prefix of `text` (with `..` appended when cut) that fits in `max_width` pixels.
pub fn fit_text(text: &str, max_width: u32, scale: u32) -> String {
    if text_width(text, scale) <= max_width {
        return text.to_string();
    }
    let mut kept: String = text.to_string();
    while !kept.is_empty() {
        kept.pop();
        let candidate = format!("{kept}..");
        if text_width(&candidate, scale) <= max_width {
            return candidate;
        }
    }
    String::new()
}

/// Ink coverage (0 to 1) of `text`, row-major, `text_width` by `text_height` pixels.
struct Coverage {
    width: u32,
    height: u32,
    values: Vec<f32>,
}

fn rasterise(text: &str, scale: u32) -> Coverage {
    let (glyphs, advance) = layout(text, scale);
    let (width, height) = (advance.ceil() as u32, text_height(scale));
    let mut values = vec![0.0f32; (width * height) as usize];
    for glyph in glyphs {
        let Some(outline) = font().outline_glyph(glyph) else {
            continue; // a space
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let x = bounds.min.x as i64 + gx as i64;
            let y = bounds.min.y as i64 + gy as i64;
            // Ink that pokes out of the line box (a negative side bearing) is dropped, so the
            // text never leaves the box that `text_width`/`text_height` promise.
            if (0..width as i64).contains(&x) && (0..height as i64).contains(&y) {
                let cell = &mut values[(y as u32 * width + x as u32) as usize];
                *cell = (*cell + coverage).min(1.0);
            }
        });
    }
    Coverage {
        width,
        height,
        values,
    }
}

/// Blends `colour` into the pixel at (`x`, `y`) with opacity `alpha`; outside pixels are dropped.
fn blend_clipped(image: &mut RgbImage, x: i64, y: i64, colour: Colour, alpha: f32) {
    if alpha <= 0.0 || x < 0 || y < 0 || x >= image.width() as i64 || y >= image.height() as i64 {
        return;
    }
    let pixel = image.get_pixel_mut(x as u32, y as u32);
    let mixed: [u8; 3] = std::array::from_fn(|i| {
        let (under, over) = (pixel.0[i] as f32, colour[i] as f32);
        (under + (over - under) * alpha).round() as u8
    });
    *pixel = Rgb(mixed);
}

/// Draws `text` with the top-left corner of its line box at (`x`, `y`), anti-aliased;
/// pixels outside the image are dropped.
pub fn draw_text(image: &mut RgbImage, x: i64, y: i64, text: &str, colour: Colour, scale: u32) {
    let ink = rasterise(text, scale);
    for row in 0..ink.height {
        for column in 0..ink.width {
            let alpha = ink.values[(row * ink.width + column) as usize];
            blend_clipped(image, x + column as i64, y + row as i64, colour, alpha);
        }
    }
}

/// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top), as on a
/// y-axis label. (`x`, `y`) is the top-left corner of its bounding box, which is
/// `text_height(scale)` wide and `text_width(text, scale)` tall.
pub fn draw_text_vertical(
    image: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    colour: Colour,
    scale: u32,
) {
    let ink = rasterise(text, scale);
    for row in 0..ink.height {
        for column in 0..ink.width {
            let alpha = ink.values[(row * ink.width + column) as usize];
            // Counter-clockwise quarter turn: (column, row) -> (row, width - 1 - column).
            let (px, py) = (row as i64, (ink.width - 1 - column) as i64);
            blend_clipped(image, x + px, y + py, colour, alpha);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

    /// Renders `text` black on white in an image exactly its box.
    fn render(text: &str, scale: u32) -> RgbImage {
        let (w, h) = (text_width(text, scale).max(1), text_height(scale));
        let mut image = RgbImage::from_pixel(w, h, WHITE);
        draw_text(&mut image, 0, 0, text, [0, 0, 0], scale);
        image
    }

    fn ink_count(image: &RgbImage) -> usize {
        image.pixels().filter(|p| **p != WHITE).count()
    }

    #[test]
    fn embedded_font_parses_and_covers_the_labels_we_write() {
        assert!(FontRef::try_from_slice(FONT_BYTES).is_ok());
        for c in "β²³μσ±×≤≥→°·–—…αΔ∑√∞é".chars() {
            assert!(has_glyph(c), "no glyph for {c:?}");
        }
        assert!(!has_glyph('中'));
    }

    #[test]
    fn every_printable_ascii_glyph_has_ink_except_space() {
        for code in 33u8..=126 {
            let c = code as char;
            assert!(ink_count(&render(&c.to_string(), 2)) > 0, "{c:?} is empty");
        }
        assert_eq!(ink_count(&render(" ", 2)), 0);
    }

    #[test]
    fn greek_beta_is_drawn_as_itself_not_as_a_question_mark() {
        // The old bitmap font drew every non-ASCII character as '?' ("? sweep").
        let beta = render("β", 3);
        let question = render("?", 3);
        assert!(ink_count(&beta) > 0);
        assert_ne!(beta, question);
        assert_ne!(render("β sweep", 2), render("? sweep", 2));
        // Characters outside the font become the replacement character, not '?'.
        assert_eq!(render("中", 2), render("\u{FFFD}", 2));
        assert_ne!(render("中", 2), render("?", 2));
    }

    #[test]
    fn text_is_anti_aliased() {
        let image = render("Dice β", 2);
        let grey = image
            .pixels()
            .filter(|p| p.0[0] > 0 && p.0[0] < 255)
            .count();
        assert!(grey > 0, "no intermediate coverage");
    }

    #[test]
    fn width_grows_with_text_and_scale_and_height_scales() {
        assert_eq!(text_width("", 3), 0);
        assert!(text_width("A", 1) > 0);
        assert!(text_width("AB", 1) > text_width("A", 1));
        assert!(text_width("β sweep", 1) > text_width("sweep", 1));
        assert!(text_width("Loss", 2) >= 2 * text_width("Loss", 1) - 2);
        assert_eq!(text_height(1), LINE_HEIGHT);
        assert_eq!(text_height(3), 3 * LINE_HEIGHT);
    }

    #[test]
    fn drawn_text_stays_inside_its_box() {
        let mut image = RgbImage::from_pixel(120, 40, WHITE);
        let text = "jÅgβ,";
        draw_text(&mut image, 5, 4, text, [0, 0, 0], 2);
        let (w, h) = (text_width(text, 2), text_height(2));
        let mut inked = 0;
        for (x, y, p) in image.enumerate_pixels() {
            if *p != WHITE {
                inked += 1;
                assert!(
                    (5..5 + w).contains(&x) && (4..4 + h).contains(&y),
                    "ink at {x},{y}"
                );
            }
        }
        assert!(inked > 0);
    }

    #[test]
    fn vertical_text_is_the_rotated_horizontal_text() {
        let text = "Loss β";
        let (w, h) = (text_width(text, 1), text_height(1));
        let flat = render(text, 1);
        let mut upright = RgbImage::from_pixel(h, w, WHITE);
        draw_text_vertical(&mut upright, 0, 0, text, [0, 0, 0], 1);
        for (x, y, p) in flat.enumerate_pixels() {
            // Counter-clockwise quarter turn: (x, y) -> (y, w - 1 - x).
            assert_eq!(p, upright.get_pixel(y, w - 1 - x), "at {x},{y}");
        }
    }

    #[test]
    fn drawing_off_canvas_clips_instead_of_panicking() {
        let blank = RgbImage::from_pixel(10, 10, WHITE);
        let mut image = blank.clone();
        draw_text(&mut image, -200, -3, "far away", [255, 0, 0], 3);
        draw_text_vertical(&mut image, 8, -400, "far away", [255, 0, 0], 2);
        assert_eq!(
            image, blank,
            "text wholly outside must not touch the canvas"
        );
        // Partly outside: the visible part is drawn.
        draw_text(&mut image, -4, -6, "HH", [255, 0, 0], 3);
        assert!(ink_count(&image) > 0);
    }

    #[test]
    fn fit_text_truncates_with_dots() {
        assert_eq!(fit_text("short", 100, 1), "short");
        let cut = fit_text("a very long title about β", 40, 1);
        assert!(cut.ends_with(".."), "{cut}");
        assert!(text_width(&cut, 1) <= 40);
        assert_eq!(fit_text("abc", 0, 1), "");
    }

    #[test]
    fn control_characters_draw_as_spaces() {
        assert_eq!(render("a\nb", 1), render("a b", 1));
    }
}
