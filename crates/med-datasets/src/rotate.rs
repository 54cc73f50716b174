//! PIL's `Image.rotate(angle)` with its defaults (nearest resampling, canvas size kept, black
//! fill), bit-exact.
//!
//! What Pillow does, and what is reproduced here:
//! 1. `angle %= 360`; `0` is a copy, `180` a flip of both axes, `90`/`270` on a square image a
//!    transpose (`ROTATE_90` is counter-clockwise).
//! 2. Otherwise the *inverse* affine matrix is built around the centre `(w / 2, h / 2)`:
//!    `a = cos(-t)`, `b = sin(-t)`, `d = -sin(-t)`, `e = cos(-t)` (each rounded to 15 decimals,
//!    `t` in radians), `c = a(-cx) + b(-cy) + cx`, `f = d(-cx) + e(-cy) + cy`. A positive angle
//!    turns the picture counter-clockwise.
//! 3. `ImagingTransformAffine` samples at pixel centres in 16.16 fixed point (`affine_fixed` in
//!    `Geometry.c`): `FIX(v) = floor(v * 65536 + 0.5)`, start `FIX(c + a/2 + b/2)`, steps `FIX(a)`
//!    along a row and `FIX(b)` per row; the source pixel is `(xx >> 16, yy >> 16)`, and outside
//!    the source the output stays 0.
//!
//! Pillow switches to a floating-point path when a corner maps beyond +-32768 pixels; images that
//! large are not supported here (the result may differ there).

use crate::imaging::Image8;

/// Rotates `img` by `angle_deg` degrees counter-clockwise about its centre like PIL's
/// `Image.rotate(angle_deg)`.
pub fn pil_rotate(img: &Image8, angle_deg: f64) -> Image8 {
    let angle = angle_deg.rem_euclid(360.0);
    let square = img.width == img.height;
    if angle == 0.0 {
        return img.clone();
    }
    if angle == 180.0 {
        return transpose(img, |x, y, w, h| (w - 1 - x, h - 1 - y));
    }
    if angle == 90.0 && square {
        return transpose(img, |x, y, w, _| (w - 1 - y, x));
    }
    if angle == 270.0 && square {
        return transpose(img, |x, y, _, h| (y, h - 1 - x));
    }
    affine_nearest(img, &inverse_matrix(angle, img.width, img.height))
}

/// An exact pixel permutation of a square (or 180-degree) rotation. `source(x, y, w, h)` gives
/// the input pixel of output pixel `(x, y)`.
fn transpose(
    img: &Image8,
    source: impl Fn(usize, usize, usize, usize) -> (usize, usize),
) -> Image8 {
    let (w, h, cn) = (img.width, img.height, img.channels);
    let mut out = Image8::zeros(w, h, cn);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = source(x, y, w, h);
            let src = (sy * w + sx) * cn;
            let dst = (y * w + x) * cn;
            out.data[dst..dst + cn].copy_from_slice(&img.data[src..src + cn]);
        }
    }
    out
}

/// Python's `round(x, 15)`: correctly rounded to 15 decimals.
fn round15(x: f64) -> f64 {
    format!("{x:.15}").parse().unwrap_or(x)
}

/// Pillow's inverse rotation matrix `[a, b, c, d, e, f]` (output -> input coordinates).
fn inverse_matrix(angle_deg: f64, w: usize, h: usize) -> [f64; 6] {
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let t = -(angle_deg * (std::f64::consts::PI / 180.0));
    let (a, b, d, e) = (
        round15(t.cos()),
        round15(t.sin()),
        round15(-t.sin()),
        round15(t.cos()),
    );
    let (x, y) = (-cx, -cy);
    let c = (a * x + b * y + 0.0) + cx;
    let f = (d * x + e * y + 0.0) + cy;
    [a, b, c, d, e, f]
}

/// 16.16 fixed point of Pillow's `affine_fixed`.
fn fix(v: f64) -> i64 {
    (v * 65536.0 + 0.5).floor() as i64
}

/// Pillow's `affine_fixed`: nearest sampling at pixel centres, black outside.
fn affine_nearest(img: &Image8, m: &[f64; 6]) -> Image8 {
    let (w, h, cn) = (img.width, img.height, img.channels);
    let (a0, a1, a3, a4) = (fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4]));
    let mut row_x = fix(m[2] + m[0] * 0.5 + m[1] * 0.5);
    let mut row_y = fix(m[5] + m[3] * 0.5 + m[4] * 0.5);
    let mut out = Image8::zeros(w, h, cn);
    for y in 0..h {
        let (mut xx, mut yy) = (row_x, row_y);
        for x in 0..w {
            let (xin, yin) = (xx >> 16, yy >> 16);
            if (0..w as i64).contains(&xin) && (0..h as i64).contains(&yin) {
                let src = (yin as usize * w + xin as usize) * cn;
                let dst = (y * w + x) * cn;
                out.data[dst..dst + cn].copy_from_slice(&img.data[src..src + cn]);
            }
            xx += a0;
            yy += a3;
        }
        row_x += a1;
        row_y += a4;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize, data: Vec<u8>) -> Image8 {
        Image8::from_vec(w, h, 1, data).unwrap()
    }

    fn ramp(w: usize, h: usize) -> Image8 {
        gray(w, h, (1..=(w * h) as u8).collect())
    }

    #[test]
    fn quarter_turns_are_counter_clockwise() {
        // 1 2 3        3 6 9
        // 4 5 6  -90-> 2 5 8  (top-right corner moves to the top-left)
        // 7 8 9        1 4 7
        let img = ramp(3, 3);
        assert_eq!(pil_rotate(&img, 90.0).data, [3, 6, 9, 2, 5, 8, 1, 4, 7]);
        assert_eq!(pil_rotate(&img, -90.0).data, [7, 4, 1, 8, 5, 2, 9, 6, 3]);
        assert_eq!(pil_rotate(&img, 180.0).data, [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(pil_rotate(&img, 360.0).data, img.data);
    }

    #[test]
    fn ninety_degrees_on_a_non_square_image_keeps_the_canvas() {
        // 4x2 image, centre (2, 1). Inverse map of output centre (x+.5, y+.5):
        // src_x = -(y+.5) + 3, src_y = (x+.5) - 1. Row 0: src_x = 2.5 -> column 2; src_y =
        // -0.5, 0.5, 1.5, 2.5 -> rows -1 (black), 0, 1, 2 (black). Row 1: column 1.
        // PIL gives [0, 3, 7, 0, 0, 2, 6, 0].
        let img = ramp(4, 2);
        assert_eq!(pil_rotate(&img, 90.0).data, [0, 3, 7, 0, 0, 2, 6, 0]);
    }

    #[test]
    fn small_angle_matches_pillow() {
        // 6x5 ramp rotated by 20 and -15 degrees; values from Pillow 13.0 Image.rotate.
        let img = ramp(6, 5);
        assert_eq!(pil_rotate(&img, 20.0).data, PILLOW_6X5_ROT20);
        assert_eq!(pil_rotate(&img, -15.0).data, PILLOW_6X5_ROTM15);
    }

    #[test]
    fn fixed_point_start_by_hand() {
        // 10 degrees on a 2x2 image: a = e = cos(10deg) = 0.984807753012208,
        // b = -sin = -0.173648177666930, d = 0.173648177666930, centre (1, 1):
        // c = -a + 0.17364... + 1 = 0.188840424654722, f = -0.17364... - a + 1 = -0.158455930679138.
        // Pixel (0, 0) samples c + a/2 + b/2 = 0.594420212327361 -> column 0, f + d/2 + e/2 =
        // 0.420772034836070 -> row 0: output keeps pixel 1. Pixel (1, 0): x = 1.579 -> column 1,
        // y = 0.595 -> row 0. Pixel (0, 1): x = 0.421, y = 1.405 -> (0, 1). Pixel (1, 1): (1, 1).
        let img = ramp(2, 2);
        assert_eq!(pil_rotate(&img, 10.0).data, [1, 2, 3, 4]);
        let m = inverse_matrix(10.0, 2, 2);
        assert!((m[2] - 0.188840424654722).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn colour_channels_move_together() {
        let img = Image8::from_vec(2, 2, 3, (0..12).collect()).unwrap();
        let out = pil_rotate(&img, 90.0);
        // pixel (0,0) comes from input (1,0): samples 3,4,5.
        assert_eq!(&out.data[..3], &[3, 4, 5]);
    }

    const PILLOW_6X5_ROT20: [u8; 30] = [
        0, 3, 4, 5, 12, 0, 1, 8, 9, 10, 17, 18, 7, 8, 15, 16, 23, 24, 13, 14, 21, 22, 23, 30, 0,
        19, 26, 27, 28, 0,
    ];
    const PILLOW_6X5_ROTM15: [u8; 30] = [
        7, 2, 2, 3, 4, 0, 13, 8, 9, 10, 11, 6, 19, 14, 15, 16, 17, 12, 25, 20, 21, 22, 23, 18, 0,
        27, 28, 29, 29, 24,
    ];
}
