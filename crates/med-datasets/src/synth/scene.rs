//! What a synthetic image contains: 0 to 3 lesions, each in its own cell of a 3x3 grid, with a
//! size, shape and brightness, and which one the prompt names.

use std::f32::consts::PI;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Lesion size; radius as a fraction of the image side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// About 5 % of the side.
    Small,
    /// About 7.5 % of the side.
    Medium,
    /// About 10.5 % of the side.
    Large,
}

impl Size {
    /// All sizes.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The prompt word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }

    /// Base radius as a fraction of the image side.
    fn radius_fraction(self) -> f32 {
        match self {
            Self::Small => 0.05,
            Self::Medium => 0.075,
            Self::Large => 0.105,
        }
    }
}

/// Lesion outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Nearly circular.
    Round,
    /// Elongated ellipse.
    Oval,
    /// Lobulated blob.
    Irregular,
}

impl Shape {
    /// All shapes.
    pub const ALL: [Shape; 3] = [Shape::Round, Shape::Oval, Shape::Irregular];

    /// The prompt word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Round => "round",
            Self::Oval => "oval",
            Self::Irregular => "irregular",
        }
    }
}

/// Lesion echogenicity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brightness {
    /// Darker than the tissue (hypoechoic).
    Dark,
    /// Brighter than the tissue (hyperechoic).
    Bright,
}

impl Brightness {
    /// All brightness values.
    pub const ALL: [Brightness; 2] = [Brightness::Dark, Brightness::Bright];

    /// The prompt word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Dark => "dark",
            Self::Bright => "bright",
        }
    }
}

/// A cell of the 3x3 grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Row 0 (top) to 2 (bottom).
    pub row: usize,
    /// Column 0 (left) to 2 (right).
    pub col: usize,
}

impl Location {
    /// The nine cells, row by row.
    pub const ALL: [Location; 9] = [
        Location { row: 0, col: 0 },
        Location { row: 0, col: 1 },
        Location { row: 0, col: 2 },
        Location { row: 1, col: 0 },
        Location { row: 1, col: 1 },
        Location { row: 1, col: 2 },
        Location { row: 2, col: 0 },
        Location { row: 2, col: 1 },
        Location { row: 2, col: 2 },
    ];

    /// The prompt words ("top left", "right", "center", ...).
    pub fn words(self) -> &'static str {
        const WORDS: [[&str; 3]; 3] = [
            ["top left", "top", "top right"],
            ["left", "center", "right"],
            ["bottom left", "bottom", "bottom right"],
        ];
        WORDS[self.row][self.col]
    }

    /// Parses prompt words back into a cell.
    pub fn from_words(words: &str) -> Option<Location> {
        Self::ALL.into_iter().find(|l| l.words() == words.trim())
    }
}

/// One lesion, in pixel units.
#[derive(Debug, Clone, PartialEq)]
pub struct Lesion {
    /// Size class.
    pub size: Size,
    /// Shape class.
    pub shape: Shape,
    /// Brightness class.
    pub brightness: Brightness,
    /// Grid cell of its centre.
    pub location: Location,
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Base radius.
    pub radius: f32,
    /// Semi-axis factors (x, y) before rotation.
    pub axes: (f32, f32),
    /// Rotation of the axes in radians.
    pub angle: f32,
    /// Border harmonics `(k, amplitude, phase)`: `r(t) = radius (1 + sum a sin(k t + p))`.
    pub harmonics: Vec<(f32, f32, f32)>,
    /// Interior intensity in [0, 1].
    pub level: f32,
}

impl Lesion {
    /// Largest distance of the border from the centre (for placement).
    pub fn extent(&self) -> f32 {
        let bump: f32 = self.harmonics.iter().map(|h| h.1).sum();
        self.radius * self.axes.0.max(self.axes.1) * (1.0 + bump)
    }

    /// Signed distance-like value at a point: positive inside, in (approximate) pixels.
    pub fn inside_margin(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (s, c) = self.angle.sin_cos();
        let (u, v) = (
            (dx * c + dy * s) / self.axes.0,
            (-dx * s + dy * c) / self.axes.1,
        );
        let rho = (u * u + v * v).sqrt();
        let theta = v.atan2(u);
        let border = self.radius
            * (1.0
                + self
                    .harmonics
                    .iter()
                    .map(|&(k, a, p)| a * (k * theta + p).sin())
                    .sum::<f32>());
        border - rho
    }

    /// Whether the pixel centre `(x + 0.5, y + 0.5)` lies inside.
    pub fn covers(&self, x: usize, y: usize) -> bool {
        self.inside_margin(x as f32 + 0.5, y as f32 + 0.5) > 0.0
    }
}

/// The content of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The lesions (each in a different cell).
    pub lesions: Vec<Lesion>,
    /// Index of the lesion the prompt names and the mask shows (`None`: no lesion).
    pub named: Option<usize>,
}

impl Scene {
    /// The named lesion.
    pub fn named_lesion(&self) -> Option<&Lesion> {
        self.named.and_then(|i| self.lesions.get(i))
    }
}

/// Draws a scene for an image of side `side`; `count_weights` are the odds of 0..=3 lesions.
pub fn sample_scene(rng: &mut ChaCha8Rng, side: f32, count_weights: &[f64; 4]) -> Scene {
    let wanted = sample_count(rng, count_weights);
    let mut lesions: Vec<Lesion> = Vec::new();
    let mut free: Vec<Location> = Location::ALL.to_vec();
    while lesions.len() < wanted && !free.is_empty() {
        let cell = free.swap_remove(rng.random_range(0..free.len()));
        if let Some(lesion) = place_lesion(rng, side, cell, &lesions) {
            lesions.push(lesion);
        }
    }
    let named = (!lesions.is_empty()).then(|| rng.random_range(0..lesions.len()));
    Scene { lesions, named }
}

fn sample_count(rng: &mut ChaCha8Rng, weights: &[f64; 4]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (count, w) in weights.iter().enumerate() {
        if u < *w {
            return count;
        }
        u -= w;
    }
    3
}

/// Tries to put a new lesion in `cell` without touching the others; `None` if it cannot.
fn place_lesion(
    rng: &mut ChaCha8Rng,
    side: f32,
    cell: Location,
    others: &[Lesion],
) -> Option<Lesion> {
    let mut lesion = random_lesion(rng, side, cell);
    let cell_side = side / 3.0;
    let (centre_x, centre_y) = (
        (cell.col as f32 + 0.5) * cell_side,
        (cell.row as f32 + 0.5) * cell_side,
    );
    let jitter = 0.12 * cell_side;
    let extent = lesion.extent();
    for _ in 0..30 {
        let cx = (centre_x + rng.random_range(-jitter..=jitter))
            .clamp(extent + 1.0, side - extent - 1.0);
        let cy = (centre_y + rng.random_range(-jitter..=jitter))
            .clamp(extent + 1.0, side - extent - 1.0);
        let clear = others.iter().all(|o| {
            let d = ((o.cx - cx).powi(2) + (o.cy - cy).powi(2)).sqrt();
            d > o.extent() + extent + 2.0
        });
        if clear {
            lesion.cx = cx;
            lesion.cy = cy;
            return Some(lesion);
        }
    }
    None
}

fn random_lesion(rng: &mut ChaCha8Rng, side: f32, location: Location) -> Lesion {
    let size = Size::ALL[rng.random_range(0..3)];
    let shape = Shape::ALL[rng.random_range(0..3)];
    let brightness = Brightness::ALL[rng.random_range(0..2)];
    let radius = size.radius_fraction() * side * rng.random_range(0.9..1.1);
    let angle = rng.random_range(0.0..PI);
    let (axes, harmonics) = match shape {
        Shape::Round => ((1.0, 1.0), border_wobble(rng, 0.03)),
        Shape::Oval => {
            let long = rng.random_range(1.3..1.45);
            ((long, 1.0 / long), border_wobble(rng, 0.03))
        }
        Shape::Irregular => {
            let mut h = vec![
                (
                    2.0,
                    rng.random_range(0.08..0.14),
                    rng.random_range(0.0..2.0 * PI),
                ),
                (
                    3.0,
                    rng.random_range(0.06..0.12),
                    rng.random_range(0.0..2.0 * PI),
                ),
            ];
            h.extend(border_wobble(rng, 0.05));
            ((1.1, 0.9), h)
        }
    };
    let level = match brightness {
        Brightness::Dark => rng.random_range(0.10..0.20),
        Brightness::Bright => rng.random_range(0.82..0.92),
    };
    Lesion {
        size,
        shape,
        brightness,
        location,
        cx: 0.0,
        cy: 0.0,
        radius,
        axes,
        angle,
        harmonics,
        level,
    }
}

/// Small high-frequency border irregularity (harmonics 4 and 5).
fn border_wobble(rng: &mut ChaCha8Rng, amplitude: f32) -> Vec<(f32, f32, f32)> {
    [4.0, 5.0]
        .into_iter()
        .map(|k| {
            (
                k,
                rng.random_range(0.0..=amplitude),
                rng.random_range(0.0..2.0 * PI),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lesions_are_in_distinct_cells_and_do_not_touch() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            let scene = sample_scene(&mut rng, 128.0, &[0.0, 0.0, 0.0, 1.0]);
            assert!(
                scene.lesions.len() >= 2,
                "three requested, at least two always fit"
            );
            for (i, a) in scene.lesions.iter().enumerate() {
                for b in &scene.lesions[i + 1..] {
                    assert_ne!(a.location, b.location);
                    let d = ((a.cx - b.cx).powi(2) + (a.cy - b.cy).powi(2)).sqrt();
                    assert!(d > a.extent() + b.extent());
                }
                let cell = 128.0 / 3.0;
                assert_eq!((a.cx / cell) as usize, a.location.col);
                assert_eq!((a.cy / cell) as usize, a.location.row);
            }
        }
    }

    #[test]
    fn location_words_round_trip() {
        for l in Location::ALL {
            assert_eq!(Location::from_words(l.words()), Some(l));
        }
        assert_eq!(Location { row: 2, col: 0 }.words(), "bottom left");
    }

    #[test]
    fn the_border_function_contains_the_centre() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let scene = sample_scene(&mut rng, 64.0, &[0.0, 1.0, 0.0, 0.0]);
            let l = &scene.lesions[0];
            assert!(l.inside_margin(l.cx, l.cy) > 0.0);
            assert!(l.inside_margin(l.cx + l.extent() + 0.5, l.cy) < 0.0);
        }
    }
}
