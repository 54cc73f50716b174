//! A tiny built-in 5x7 bitmap font for printable ASCII (32..=126), drawn at an integer scale.
//!
//! Each glyph is five column bytes, left to right; bit 0 of a byte is the top row. Capitals
//! and digits use rows 0-6; row 7 holds the descenders of `g j p q y , ;` (the layout of
//! the classic 5x8 LCD fonts). Characters outside printable ASCII are drawn as `?`.

use image::{Rgb, RgbImage};

use crate::Colour;

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph cell height in font pixels (7 rows plus one for descenders).
pub const GLYPH_HEIGHT: u32 = 8;
/// Horizontal distance between the starts of two characters, in font pixels.
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;

const FIRST_CHAR: u32 = 32;

/// Glyphs for ASCII 32 (space) to 126 (`~`).
const GLYPHS: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], // space
    [0x00, 0x00, 0x5F, 0x00, 0x00], // !
    [0x00, 0x07, 0x00, 0x07, 0x00], // "
    [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
    [0x23, 0x13, 0x08, 0x64, 0x62], // %
    [0x36, 0x49, 0x55, 0x22, 0x50], // &
    [0x00, 0x05, 0x03, 0x00, 0x00], // '
    [0x00, 0x1C, 0x22, 0x41, 0x00], // (
    [0x00, 0x41, 0x22, 0x1C, 0x00], // )
    [0x08, 0x2A, 0x1C, 0x2A, 0x08], // *
    [0x08, 0x08, 0x3E, 0x08, 0x08], // +
    [0x00, 0xA0, 0x60, 0x00, 0x00], // ,
    [0x08, 0x08, 0x08, 0x08, 0x08], // -
    [0x00, 0x60, 0x60, 0x00, 0x00], // .
    [0x20, 0x10, 0x08, 0x04, 0x02], // /
    [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
    [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
    [0x42, 0x61, 0x51, 0x49, 0x46], // 2
    [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
    [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
    [0x27, 0x45, 0x45, 0x45, 0x39], // 5
    [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
    [0x01, 0x71, 0x09, 0x05, 0x03], // 7
    [0x36, 0x49, 0x49, 0x49, 0x36], // 8
    [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
    [0x00, 0x36, 0x36, 0x00, 0x00], // :
    [0x00, 0xAC, 0x6C, 0x00, 0x00], // ;
    [0x08, 0x14, 0x22, 0x41, 0x00], // <
    [0x14, 0x14, 0x14, 0x14, 0x14], // =
    [0x00, 0x41, 0x22, 0x14, 0x08], // >
    [0x02, 0x01, 0x51, 0x09, 0x06], // ?
    [0x32, 0x49, 0x79, 0x41, 0x3E], // @
    [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
    [0x7F, 0x49, 0x49, 0x49, 0x36], // B
    [0x3E, 0x41, 0x41, 0x41, 0x22], // C
    [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
    [0x7F, 0x49, 0x49, 0x49, 0x41], // E
    [0x7F, 0x09, 0x09, 0x09, 0x01], // F
    [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
    [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
    [0x00, 0x41, 0x7F, 0x41, 0x00], // I
    [0x20, 0x40, 0x41, 0x3F, 0x01], // J
    [0x7F, 0x08, 0x14, 0x22, 0x41], // K
    [0x7F, 0x40, 0x40, 0x40, 0x40], // L
    [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
    [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
    [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
    [0x7F, 0x09, 0x09, 0x09, 0x06], // P
    [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
    [0x7F, 0x09, 0x19, 0x29, 0x46], // R
    [0x46, 0x49, 0x49, 0x49, 0x31], // S
    [0x01, 0x01, 0x7F, 0x01, 0x01], // T
    [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
    [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
    [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
    [0x63, 0x14, 0x08, 0x14, 0x63], // X
    [0x07, 0x08, 0x70, 0x08, 0x07], // Y
    [0x61, 0x51, 0x49, 0x45, 0x43], // Z
    [0x00, 0x7F, 0x41, 0x41, 0x00], // [
    [0x02, 0x04, 0x08, 0x10, 0x20], // backslash
    [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
    [0x04, 0x02, 0x01, 0x02, 0x04], // ^
    [0x40, 0x40, 0x40, 0x40, 0x40], // _
    [0x00, 0x01, 0x02, 0x04, 0x00], // `
    [0x20, 0x54, 0x54, 0x54, 0x78], // a
    [0x7F, 0x48, 0x44, 0x44, 0x38], // b
    [0x38, 0x44, 0x44, 0x44, 0x20], // c
    [0x38, 0x44, 0x44, 0x48, 0x7F], // d
    [0x38, 0x54, 0x54, 0x54, 0x18], // e
    [0x08, 0x7E, 0x09, 0x01, 0x02], // f
    [0x18, 0xA4, 0xA4, 0xA4, 0x7C], // g
    [0x7F, 0x08, 0x04, 0x04, 0x78], // h
    [0x00, 0x44, 0x7D, 0x40, 0x00], // i
    [0x40, 0x80, 0x84, 0x7D, 0x00], // j
    [0x7F, 0x10, 0x28, 0x44, 0x00], // k
    [0x00, 0x41, 0x7F, 0x40, 0x00], // l
    [0x7C, 0x04, 0x18, 0x04, 0x78], // m
    [0x7C, 0x08, 0x04, 0x04, 0x78], // n
    [0x38, 0x44, 0x44, 0x44, 0x38], // o
    [0xFC, 0x24, 0x24, 0x24, 0x18], // p
    [0x18, 0x24, 0x24, 0x18, 0xFC], // q
    [0x7C, 0x08, 0x04, 0x04, 0x08], // r
    [0x48, 0x54, 0x54, 0x54, 0x20], // s
    [0x04, 0x3F, 0x44, 0x40, 0x20], // t
    [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
    [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
    [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
    [0x44, 0x28, 0x10, 0x28, 0x44], // x
    [0x9C, 0xA0, 0xA0, 0xA0, 0x7C], // y
    [0x44, 0x64, 0x54, 0x4C, 0x44], // z
    [0x00, 0x08, 0x36, 0x41, 0x00], // {
    [0x00, 0x00, 0x7F, 0x00, 0x00], // |
    [0x00, 0x41, 0x36, 0x08, 0x00], // }
    [0x08, 0x04, 0x08, 0x10, 0x08], // ~
];

/// The five column bytes of a character (`?` for anything outside printable ASCII).
pub fn glyph(c: char) -> [u8; 5] {
    let code = c as u32;
    let index = if (FIRST_CHAR..=126).contains(&code) {
        code - FIRST_CHAR
    } else {
        '?' as u32 - FIRST_CHAR
    };
    GLYPHS[index as usize]
}

/// Whether font pixel (`column`, `row`) of `c` is ink.
fn is_ink(glyph: &[u8; 5], column: u32, row: u32) -> bool {
    glyph[column as usize] >> row & 1 == 1
}

/// Width in image pixels of `text` drawn at `scale` (no trailing gap).
pub fn text_width(text: &str, scale: u32) -> u32 {
    let chars = text.chars().count() as u32;
    if chars == 0 {
        0
    } else {
        (chars * ADVANCE - 1) * scale
    }
}

/// Height in image pixels of one line drawn at `scale`.
pub fn text_height(scale: u32) -> u32 {
    GLYPH_HEIGHT * scale
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

fn put_clipped(image: &mut RgbImage, x: i64, y: i64, colour: Colour) {
    if x >= 0 && y >= 0 && (x as u64) < image.width() as u64 && (y as u64) < image.height() as u64 {
        image.put_pixel(x as u32, y as u32, Rgb(colour));
    }
}

/// Draws `text` with its top-left corner at (`x`, `y`); pixels outside the image are dropped.
pub fn draw_text(image: &mut RgbImage, x: i64, y: i64, text: &str, colour: Colour, scale: u32) {
    let scale = scale.max(1);
    for (index, c) in text.chars().enumerate() {
        let glyph = glyph(c);
        let origin_x = x + (index as u32 * ADVANCE * scale) as i64;
        for column in 0..GLYPH_WIDTH {
            for row in 0..GLYPH_HEIGHT {
                if is_ink(&glyph, column, row) {
                    fill_cell(
                        image,
                        origin_x + (column * scale) as i64,
                        y + (row * scale) as i64,
                        scale,
                        colour,
                    );
                }
            }
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
    let scale = scale.max(1);
    let length = text_width(text, scale) as i64;
    for (index, c) in text.chars().enumerate() {
        let glyph = glyph(c);
        let along = (index as u32 * ADVANCE * scale) as i64;
        for column in 0..GLYPH_WIDTH {
            for row in 0..GLYPH_HEIGHT {
                if is_ink(&glyph, column, row) {
                    // Horizontal position `along + column` becomes distance up from the bottom.
                    let px = x + (row * scale) as i64;
                    let py = y + length - along - ((column + 1) * scale) as i64;
                    fill_cell(image, px, py, scale, colour);
                }
            }
        }
    }
}

fn fill_cell(image: &mut RgbImage, x: i64, y: i64, scale: u32, colour: Colour) {
    for dy in 0..scale as i64 {
        for dx in 0..scale as i64 {
            put_clipped(image, x + dx, y + dy, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink_count(image: &RgbImage) -> usize {
        image.pixels().filter(|p| p.0 != [255, 255, 255]).count()
    }

    #[test]
    fn every_printable_glyph_has_ink_except_space() {
        for code in 33u8..=126 {
            let g = glyph(code as char);
            assert!(
                g.iter().any(|&b| b != 0),
                "glyph {:?} is empty",
                code as char
            );
        }
        assert_eq!(glyph(' '), [0; 5]);
    }

    #[test]
    fn only_descender_glyphs_use_the_last_row() {
        for code in 32u8..=126 {
            let c = code as char;
            let uses_last_row = glyph(c).iter().any(|&b| b & 0x80 != 0);
            assert_eq!(uses_last_row, "gjpqy,;".contains(c), "glyph {c:?}");
        }
    }

    #[test]
    fn unknown_characters_fall_back_to_question_mark() {
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(glyph('\n'), glyph('?'));
    }

    #[test]
    fn text_width_and_height_scale() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("A", 1), 5);
        assert_eq!(text_width("AB", 2), 22);
        assert_eq!(text_height(3), 24);
    }

    #[test]
    fn drawn_text_stays_inside_its_box() {
        let mut image = RgbImage::from_pixel(60, 30, Rgb([255, 255, 255]));
        draw_text(&mut image, 5, 4, "Hi 9", [0, 0, 0], 2);
        let (w, h) = (text_width("Hi 9", 2), text_height(2));
        for (x, y, p) in image.enumerate_pixels() {
            if p.0 != [255, 255, 255] {
                assert!(
                    (5..5 + w).contains(&x) && (4..4 + h).contains(&y),
                    "ink at {x},{y}"
                );
            }
        }
        // 'H' alone has 7 + 7 + 3 = 17 ink cells, each 2x2 pixels.
        let mut h_only = RgbImage::from_pixel(20, 20, Rgb([255, 255, 255]));
        draw_text(&mut h_only, 0, 0, "H", [0, 0, 0], 2);
        assert_eq!(ink_count(&h_only), 17 * 4);
    }

    #[test]
    fn vertical_text_is_the_rotated_horizontal_text() {
        let text = "Loss";
        let (w, h) = (text_width(text, 1), text_height(1));
        let mut flat = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
        draw_text(&mut flat, 0, 0, text, [0, 0, 0], 1);
        let mut upright = RgbImage::from_pixel(h, w, Rgb([255, 255, 255]));
        draw_text_vertical(&mut upright, 0, 0, text, [0, 0, 0], 1);
        for (x, y, p) in flat.enumerate_pixels() {
            // Counter-clockwise quarter turn: (x, y) -> (y, w - 1 - x).
            assert_eq!(p, upright.get_pixel(y, w - 1 - x), "at {x},{y}");
        }
    }

    #[test]
    fn drawing_off_canvas_does_not_panic() {
        let mut image = RgbImage::new(10, 10);
        draw_text(&mut image, -20, -3, "clipped text", [255, 0, 0], 3);
        draw_text_vertical(&mut image, 8, -40, "clipped", [255, 0, 0], 2);
    }

    #[test]
    fn fit_text_truncates_with_dots() {
        assert_eq!(fit_text("short", 100, 1), "short");
        let cut = fit_text("a very long title", 40, 1);
        assert!(cut.ends_with(".."));
        assert!(text_width(&cut, 1) <= 40);
        assert_eq!(fit_text("abc", 0, 1), "");
    }
}
