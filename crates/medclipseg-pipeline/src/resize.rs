//! Maps from the model's square input grid back to an image's own size.

/// Bilinear resize of a square `s x s` map to `h x w` (half-pixel centres, edge clamped, as
/// `cv2.resize(..., INTER_LINEAR)` and `F.interpolate(align_corners=False)`).
pub fn resize_map(map: &[f32], s: usize, h: usize, w: usize) -> Vec<f32> {
    let coord = |dst: usize, src: usize, out: usize| {
        let x = ((dst as f32 + 0.5) * src as f32 / out as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let i = x.floor() as usize;
        (i, (i + 1).min(src - 1), x - i as f32)
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let (y0, y1, fy) = coord(y, s, h);
        for x in 0..w {
            let (x0, x1, fx) = coord(x, s, w);
            let top = map[y0 * s + x0] * (1.0 - fx) + map[y0 * s + x1] * fx;
            let bottom = map[y1 * s + x0] * (1.0 - fx) + map[y1 * s + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_resize_keeps_constants_and_interpolates() {
        assert_eq!(resize_map(&[0.5; 4], 2, 3, 5), vec![0.5; 15]);
        let up = resize_map(&[0.0, 1.0, 0.0, 1.0], 2, 2, 4);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0]);
    }
}
