//! Where the value noise `ε ~ N(0, I)` of the probabilistic attention comes from.
//!
//! The reference draws fresh noise on every pass with `torch.randn_like`. Here the source is
//! injectable: seeded random (drawn on the host with ChaCha8, so a seed gives the same noise on
//! every backend and thread count), zero (the deterministic mean path), or tensors given in call
//! order (to replay the golden run).

use std::collections::VecDeque;

use burn::prelude::*;
use burn::tensor::TensorData;

/// A source of value noise, consulted once per probabilistic attention call.
#[derive(Debug, Clone)]
pub enum Noise<B: Backend> {
    /// Standard normal noise from a seeded generator.
    Seeded(NormalStream),
    /// No noise: values are their means.
    Zero,
    /// Exactly these tensors, in call order (adapter 0 image->text, adapter 0 text->image, ...).
    Given(VecDeque<Tensor<B, 3>>),
}

impl<B: Backend> Noise<B> {
    /// Seeded standard normal noise.
    pub fn seeded(seed: u64) -> Self {
        Noise::Seeded(NormalStream::new(seed))
    }

    /// Noise for one call, shaped like the values `[B, T, D]`; `None` means zero.
    ///
    /// A `Given` source that has run dry yields zero noise; [`Self::remaining`] tells callers
    /// whether every given tensor was consumed.
    pub fn draw(&mut self, shape: [usize; 3], device: &B::Device) -> Option<Tensor<B, 3>> {
        match self {
            Noise::Seeded(stream) => {
                let values = stream.take(shape.iter().product());
                Some(Tensor::from_data(TensorData::new(values, shape), device))
            }
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

    /// The next `n` values.
    pub fn take(&mut self, n: usize) -> Vec<f32> {
        use rand::Rng;
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // u1 in (0, 1] keeps ln(u1) finite.
            let u1: f64 = 1.0 - self.rng.random::<f64>();
            let u2: f64 = self.rng.random::<f64>();
            let radius = (-2.0 * u1.ln()).sqrt();
            let angle = std::f64::consts::TAU * u2;
            out.push((radius * angle.cos()) as f32);
            out.push((radius * angle.sin()) as f32);
        }
        out.truncate(n);
        out
    }
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
}
