//! Where the value noise `ε ~ N(0, I)` of the probabilistic attention comes from.
//!
//! The reference draws fresh noise on every pass with `torch.randn_like`. Here the source is
//! injectable:
//! - [`Noise::Seeded`]: host streams (ChaCha8), one per batch row, each determined by the seed
//!   and the row's key. A row keyed by (image, sample) gets the same noise whatever the batch
//!   size, the Monte-Carlo chunking, the backend or the thread count: bit-reproducible runs.
//! - [`Noise::Device`]: drawn on the device by the backend's own generator (seed it with
//!   `B::seed`). No host work and no upload per call: the fast choice on a GPU, reproducible
//!   for the same backend, device and batch layout only.
//! - [`Noise::Zero`]: the deterministic mean path.
//! - [`Noise::Given`]: tensors in call order (to replay the golden run).

use std::collections::VecDeque;

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use rayon::prelude::*;

/// A source of value noise, consulted once per probabilistic attention call.
#[derive(Debug, Clone)]
pub enum Noise<B: Backend> {
    /// Standard normal noise from seeded host streams, one per batch row.
    Seeded(RowStreams),
    /// Standard normal noise from the backend's generator, on the device.
    Device,
    /// No noise: values are their means.
    Zero,
    /// Exactly these tensors, in call order (adapter 0 image->text, adapter 0 text->image, ...).
    Given(VecDeque<Tensor<B, 3>>),
}

impl<B: Backend> Noise<B> {
    /// Seeded host noise; rows are keyed by their position until [`Self::set_rows`] says otherwise.
    pub fn seeded(seed: u64) -> Self {
        Noise::Seeded(RowStreams::new(seed))
    }

    /// Keys the batch rows of the next draws (e.g. [`sample_key`] of each row's image and
    /// Monte-Carlo sample): every key starts its own stream. Only seeded noise has rows.
    pub fn set_rows(&mut self, keys: Vec<u64>) {
        if let Noise::Seeded(streams) = self {
            streams.set_rows(keys);
        }
    }

    /// Noise for one call, shaped like the values `[B, T, D]`; `None` means zero.
    ///
    /// A `Given` source that has run dry yields zero noise; [`Self::remaining`] tells callers
    /// whether every given tensor was consumed.
    pub fn draw(&mut self, shape: [usize; 3], device: &B::Device) -> Option<Tensor<B, 3>> {
        match self {
            Noise::Seeded(streams) => {
                let values = streams.take(shape[0], shape[1] * shape[2]);
                Some(Tensor::from_data(TensorData::new(values, shape), device))
            }
            Noise::Device => Some(Tensor::random(
                shape,
                Distribution::Normal(0.0, 1.0),
                device,
            )),
            Noise::Zero => None,
            Noise::Given(queue) => queue.pop_front(),
        }
    }

    /// Given tensors not yet consumed (0 for the other sources).
    pub fn remaining(&self) -> usize {
        match self {
            Noise::Given(queue) => queue.len(),
            _ => 0,
        }
    }
}

/// The key of Monte-Carlo sample `sample` of the image keyed `image`.
pub fn sample_key(image: u64, sample: u64) -> u64 {
    mix(image ^ mix(sample.wrapping_add(0x5851_F42D_4C95_7F2D)))
}

/// SplitMix64's finaliser: a well-mixed 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One seeded normal stream per batch row, each determined by the seed and the row's key.
#[derive(Debug, Clone)]
pub struct RowStreams {
    seed: u64,
    streams: Vec<NormalStream>,
}

impl RowStreams {
    /// Streams of `seed`, with no rows keyed yet.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            streams: Vec::new(),
        }
    }

    /// Starts one stream per key, in row order.
    pub fn set_rows(&mut self, keys: Vec<u64>) {
        self.streams = keys
            .into_iter()
            .map(|key| NormalStream::new(mix(self.seed ^ mix(key))))
            .collect();
    }

    /// `rows × per_row` values, row by row, each row from its own stream. When the batch has a
    /// different number of rows than were keyed, the rows are keyed by their position.
    pub fn take(&mut self, rows: usize, per_row: usize) -> Vec<f32> {
        if self.streams.len() != rows {
            self.set_rows((0..rows as u64).collect());
        }
        // Each row has its own stream: drawn on every thread, the values are the same.
        let per_stream: Vec<Vec<f32>> = self
            .streams
            .par_iter_mut()
            .map(|stream| stream.take(per_row))
            .collect();
        per_stream.concat()
    }
}

/// A reproducible stream of standard normal `f32` values (ChaCha8 + Box-Muller).
#[derive(Debug, Clone)]
pub struct NormalStream {
    rng: Box<rand_chacha::ChaCha8Rng>,
}

impl NormalStream {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            rng: Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The next `n` values, in pieces on every thread: a pair of values takes two `u64` draws
    /// (four words) of the generator, so piece `i` starts at a known word position and the
    /// values equal those of one draw after another.
    pub fn take(&mut self, n: usize) -> Vec<f32> {
        const PAIRS_PER_TASK: usize = 4096;
        let pairs = n.div_ceil(2);
        let start = self.rng.get_word_pos();
        let first_word = |pair: usize| start + (WORDS_PER_PAIR * pair) as u128;
        let mut out = vec![0.0f32; 2 * pairs];
        let rng: &rand_chacha::ChaCha8Rng = &self.rng;
        out.par_chunks_mut(2 * PAIRS_PER_TASK)
            .enumerate()
            .for_each(|(task, piece)| {
                let mut rng = rng.clone();
                rng.set_word_pos(first_word(task * PAIRS_PER_TASK));
                for pair in piece.chunks_exact_mut(2) {
                    [pair[0], pair[1]] = normal_pair(&mut rng);
                }
            });
        self.rng.set_word_pos(first_word(pairs));
        // An odd `n` drops the second value of the last pair, as one draw after another would.
        out.truncate(n);
        out
    }
}

/// Generator words one Box-Muller pair consumes (two `u64`).
const WORDS_PER_PAIR: usize = 4;

/// Two standard normal values from two uniform draws (Box-Muller).
fn normal_pair(rng: &mut rand_chacha::ChaCha8Rng) -> [f32; 2] {
    use rand::Rng;
    // u1 in (0, 1] keeps ln(u1) finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    let radius = (-2.0 * u1.ln()).sqrt();
    let angle = std::f64::consts::TAU * u2;
    [(radius * angle.cos()) as f32, (radius * angle.sin()) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_moments_are_standard() {
        let a = NormalStream::new(5).take(20_000);
        let b = NormalStream::new(5).take(20_000);
        assert_eq!(a, b);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
        assert_ne!(a, NormalStream::new(6).take(20_000));
    }

    /// The stream as one draw after another (the definition the pieces must equal).
    fn drawn_one_by_one(seed: u64, takes: &[usize]) -> Vec<Vec<f32>> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        takes
            .iter()
            .map(|&n| {
                let mut values: Vec<f32> = (0..n.div_ceil(2))
                    .flat_map(|_| normal_pair(&mut rng))
                    .collect();
                values.truncate(n);
                values
            })
            .collect()
    }

    #[test]
    fn values_drawn_in_pieces_equal_one_draw_after_another() {
        // Odd sizes, sizes across piece boundaries, and a take of one value.
        let takes = [1, 20_001, 8_192, 3, 70_000];
        let mut stream = NormalStream::new(9);
        let pieces: Vec<Vec<f32>> = takes.iter().map(|&n| stream.take(n)).collect();
        assert_eq!(pieces, drawn_one_by_one(9, &takes));
    }

    #[test]
    fn a_keyed_row_gets_the_same_noise_in_any_batch() {
        let keys = [sample_key(3, 0), sample_key(3, 1), sample_key(8, 0)];
        let mut alone = RowStreams::new(42);
        alone.set_rows(vec![keys[1]]);
        let first_alone = alone.take(1, 6);
        let second_alone = alone.take(1, 6);
        let mut batched = RowStreams::new(42);
        batched.set_rows(keys.to_vec());
        let first = batched.take(3, 6);
        let second = batched.take(3, 6);
        assert_eq!(&first[6..12], first_alone.as_slice());
        assert_eq!(&second[6..12], second_alone.as_slice());
        assert_ne!(&first[0..6], &first[6..12]);
        assert_ne!(first, second);
        let mut other_seed = RowStreams::new(43);
        other_seed.set_rows(keys.to_vec());
        assert_ne!(other_seed.take(3, 6), first);
    }

    #[test]
    fn unkeyed_rows_are_keyed_by_position() {
        let mut implicit = RowStreams::new(7);
        let mut explicit = RowStreams::new(7);
        explicit.set_rows(vec![0, 1]);
        assert_eq!(implicit.take(2, 5), explicit.take(2, 5));
    }

    #[test]
    fn sample_keys_differ_across_images_and_samples() {
        let keys: std::collections::HashSet<u64> = (0..50)
            .flat_map(|i| (0..30).map(move |s| sample_key(i, s)))
            .collect();
        assert_eq!(keys.len(), 1500);
    }
}
