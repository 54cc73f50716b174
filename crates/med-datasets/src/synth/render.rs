//! Rendering of a [`Scene`] into an image and the mask of its named lesion.
//!
//! Ultrasound-like domain: a smooth tissue field with depth attenuation and faint layer streaks,
//! multiplied by blurred Rayleigh speckle; lesions are dark (hypoechoic) or bright blobs with a
//! soft 1.5-pixel edge and weaker speckle. Shifted (endoscopy-like) domain: the same structure
//! mapped through a warm, mostly desaturated palette, finer unblurred speckle, radial vignetting, lower
//! contrast and a gamma of 0.8.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::scene::Scene;
use super::text::Domain;
use crate::imaging::Image8;

/// Renders the image (grey for ultrasound, RGB for the shifted domain) and the 0/255 mask of the
/// named lesion.
pub(crate) fn render(
    scene: &Scene,
    side: usize,
    domain: Domain,
    rng: &mut ChaCha8Rng,
) -> (Image8, Image8) {
    let background = tissue_field(side, rng);
    let speckle = speckle_field(side, domain, rng);
    let mut intensity = vec![0.0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            let i = y * side + x;
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let (mut level, mut amount) = (background[i], 0.35);
            for lesion in &scene.lesions {
                let reach = lesion.extent() + 2.0;
                if (px - lesion.cx).abs() > reach || (py - lesion.cy).abs() > reach {
                    continue;
                }
                let alpha = (lesion.inside_margin(px, py) / 1.5 + 0.5).clamp(0.0, 1.0);
                level = level * (1.0 - alpha) + lesion.level * alpha;
                amount = amount * (1.0 - alpha) + 0.18 * alpha;
            }
            intensity[i] = (level * (1.0 + amount * (speckle[i] - 1.0))).clamp(0.0, 1.0);
        }
    }
    let image = match domain {
        Domain::Ultrasound => grey_image(&intensity, side),
        Domain::Endoscopy => endoscopy_image(&intensity, side),
    };
    let mut mask = Image8::zeros(side, side, 1);
    if let Some(lesion) = scene.named_lesion() {
        for y in 0..side {
            for x in 0..side {
                if lesion.covers(x, y) {
                    mask.data[y * side + x] = 255;
                }
            }
        }
    }
    (image, mask)
}

/// Smooth tissue brightness: a few broad Gaussian bumps, depth attenuation, faint layers.
fn tissue_field(side: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let s = side as f32;
    let base = rng.random_range(0.42..0.55);
    let bumps: Vec<(f32, f32, f32, f32)> = (0..5)
        .map(|_| {
            (
                rng.random_range(0.0..s),
                rng.random_range(0.0..s),
                rng.random_range(0.15..0.35) * s,
                rng.random_range(-0.08..0.08),
            )
        })
        .collect();
    let layers: Vec<(f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(0.0..s),
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(0.02..0.06),
            )
        })
        .collect();
    let mut field = vec![0.0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let mut v = base;
            for &(bx, by, sigma, amp) in &bumps {
                let d2 = (fx - bx).powi(2) + (fy - by).powi(2);
                v += amp * (-d2 / (2.0 * sigma * sigma)).exp();
            }
            for &(ly, phase, amp) in &layers {
                let centre = ly + 0.03 * s * (fx / s * 6.0 + phase).sin();
                v += amp * (-((fy - centre) / (0.012 * s).max(1.0)).powi(2)).exp();
            }
            v *= 1.08 - 0.25 * fy / s;
            field[y * side + x] = v;
        }
    }
    field
}

/// Multiplicative speckle with mean about 1: Rayleigh samples, blurred 3x3 for ultrasound grain.
fn speckle_field(side: usize, domain: Domain, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let sigma = (2.0 / std::f32::consts::PI).sqrt();
    let raw: Vec<f32> = (0..side * side)
        .map(|_| {
            let u: f32 = rng.random_range(f32::EPSILON..1.0);
            sigma * (-2.0 * u.ln()).sqrt()
        })
        .collect();
    match domain {
        Domain::Ultrasound => box_blur3(&raw, side),
        Domain::Endoscopy => raw.iter().map(|v| 1.0 + 0.4 * (v - 1.0)).collect(),
    }
}

fn box_blur3(values: &[f32], side: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for y in 0..side {
        for x in 0..side {
            let (mut sum, mut n) = (0.0, 0.0);
            for yy in y.saturating_sub(1)..=(y + 1).min(side - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(side - 1) {
                    sum += values[yy * side + xx];
                    n += 1.0;
                }
            }
            out[y * side + x] = sum / n;
        }
    }
    out
}

fn grey_image(intensity: &[f32], side: usize) -> Image8 {
    let data = intensity.iter().map(|&v| to_u8(v)).collect();
    Image8 {
        width: side,
        height: side,
        channels: 1,
        data,
    }
}

/// A warm, mostly desaturated palette, vignetting, lower contrast and gamma 0.8; RGB order.
///
/// The tint is kept mild on purpose: the shift is one of texture and contrast (another
/// scanner), which a model trained on the grey domain can partly bridge, so domain
/// generalisation numbers measure something.
fn endoscopy_image(intensity: &[f32], side: usize) -> Image8 {
    const DARK: [f32; 3] = [0.16, 0.11, 0.10];
    const MID: [f32; 3] = [0.60, 0.50, 0.47];
    const LIGHT: [f32; 3] = [0.98, 0.92, 0.86];
    let s = side as f32;
    let mut data = Vec::with_capacity(side * side * 3);
    for (i, &v) in intensity.iter().enumerate() {
        let (x, y) = ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5);
        let r2 = ((x - s / 2.0).powi(2) + (y - s / 2.0).powi(2)) / (s * s / 2.0);
        let light = 1.0 - 0.45 * r2;
        let t = 0.5 + (v - 0.5) * 0.85;
        let colour = if t < 0.5 {
            lerp(DARK, MID, t * 2.0)
        } else {
            lerp(MID, LIGHT, t * 2.0 - 1.0)
        };
        data.extend(
            colour
                .iter()
                .map(|c| to_u8((c * light).clamp(0.0, 1.0).powf(0.8))),
        );
    }
    Image8 {
        width: side,
        height: side,
        channels: 3,
        data,
    }
}

fn lerp(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::scene::sample_scene;
    use rand::SeedableRng;

    #[test]
    fn named_lesion_contrasts_with_the_background() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut checked = 0;
        for _ in 0..20 {
            let scene = sample_scene(&mut rng, 64.0, &[0.0, 1.0, 0.0, 0.0]);
            let (image, mask) = render(&scene, 64, Domain::Ultrasound, &mut rng);
            let lesion = scene.named_lesion().unwrap();
            let (mut inside, mut outside, mut n_in, mut n_out) = (0.0, 0.0, 0.0, 0.0);
            for (m, v) in mask.data.iter().zip(&image.data) {
                if *m == 255 {
                    inside += f32::from(*v);
                    n_in += 1.0;
                } else {
                    outside += f32::from(*v);
                    n_out += 1.0;
                }
            }
            let (inside, outside) = (inside / n_in, outside / n_out);
            match lesion.brightness {
                super::super::scene::Brightness::Dark => {
                    assert!(inside + 40.0 < outside, "{inside} {outside}")
                }
                super::super::scene::Brightness::Bright => {
                    assert!(inside > outside + 40.0, "{inside} {outside}")
                }
            }
            checked += 1;
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn empty_scene_has_an_empty_mask_and_shifted_domain_is_colour() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let scene = sample_scene(&mut rng, 64.0, &[1.0, 0.0, 0.0, 0.0]);
        let (image, mask) = render(&scene, 64, Domain::Endoscopy, &mut rng);
        assert_eq!(image.channels, 3);
        assert!(mask.data.iter().all(|&v| v == 0));
        let reds = image.data.chunks_exact(3).filter(|p| p[0] > p[2]).count();
        assert!(
            reds > 64 * 64 * 9 / 10,
            "pinkish: red above blue almost everywhere"
        );
    }
}
