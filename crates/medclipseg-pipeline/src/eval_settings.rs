//! How an evaluation predicts and scores, apart from the loop that follows it (so that the run
//! configuration can derive it without importing the evaluator).

use medclipseg_model::McConfig;
use seg_metrics::{MetricsRequest, Protocol};

use crate::seeds::NoiseSource;

/// How images are predicted and scored.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Monte-Carlo samples per image (at least 1).
    pub samples: usize,
    /// Run and discard one extra pass first, as the reference does.
    pub discard_first_pass: bool,
    /// Largest batch of images × samples per network call.
    pub max_batch: usize,
    /// Protocol and tolerance of the surface metrics (the first tolerance is reported).
    pub metrics: MetricsRequest,
    /// Round per-image scores to 4 decimals before the mean, as the reference does.
    pub rounded: bool,
    /// Images per loaded batch.
    pub batch_size: usize,
    /// Seed of the Monte-Carlo noise.
    pub seed: u64,
    /// Panels (image | GT | prediction | uncertainty) written per dataset and style.
    pub panels: usize,
    /// Where the adapters' noise is drawn.
    pub noise: NoiseSource,
}

impl EvalSettings {
    /// The reference protocol with `samples` Monte-Carlo samples: the MedCLIPSeg NSD at 2 px,
    /// rounded per-image scores, seed 666, host noise, no panels.
    pub fn reference(samples: usize) -> Self {
        Self {
            samples,
            discard_first_pass: false,
            max_batch: 8,
            metrics: MetricsRequest::new(Protocol::MedClipSeg),
            rounded: true,
            batch_size: 8,
            seed: 666,
            panels: 0,
            noise: NoiseSource::Host,
        }
    }

    /// The Monte-Carlo settings of a network call.
    pub(crate) fn mc(&self) -> McConfig {
        McConfig::new()
            .with_samples(self.samples)
            .with_discard_first_pass(self.discard_first_pass)
            .with_max_batch(self.max_batch)
    }
}
