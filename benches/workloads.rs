//! The model workloads shared by `model.rs` (criterion) and `examples/model_timing.rs`
//! (plain timings and peak memory): the full `unimedclip-vit-b16` preset with random weights,
//! one 224² image with a 256-token prompt, MC-30, and a batch-4 training step, on the CPU
//! backend of this build (`medclipseg_model::workloads` on any backend).

use burn::tensor::TensorData;
use medclipseg_benches::backend::{Cpu, Train};
use medclipseg_model::train::StepLosses;
use medclipseg_model::workloads::{self, WorkloadConfig};
use medclipseg_model::{MedClipSegConfig, Noise};

/// The paper's model.
pub const PRESET: &str = "unimedclip-vit-b16";

fn config() -> MedClipSegConfig {
    MedClipSegConfig::preset(PRESET).expect("the full-size preset exists")
}

/// The default sizes (MC-30, batch-4 training); the environment variable `MC_MAX_BATCH`
/// overrides the Monte-Carlo chunk size (for measuring it).
fn sizes() -> WorkloadConfig {
    let max_batch = std::env::var("MC_MAX_BATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    WorkloadConfig::new().with_max_batch(max_batch)
}

/// Inference on one image.
pub struct Inference(workloads::Inference<Cpu>);

impl Inference {
    /// A randomly initialised model and its input.
    pub fn new() -> Self {
        let device = Default::default();
        Self(workloads::Inference::new(
            &config(),
            &sizes(),
            Noise::seeded(0),
            &device,
        ))
    }

    /// One stochastic pass; returns the logits `[1, 224, 224]` on the host.
    pub fn forward(&mut self) -> TensorData {
        self.0.forward()
    }

    /// Monte-Carlo inference with 30 samples; returns the mean probability on the host.
    pub fn mc(&mut self) -> TensorData {
        self.0.mc().expect("30 samples give a prediction")
    }
}

/// Training steps at batch 4 (frozen encoders, Adam).
pub struct Training(workloads::Training<Train>);

impl Training {
    /// A randomly initialised model, a random batch and a fresh optimiser.
    pub fn new() -> Self {
        let device = Default::default();
        Self(workloads::Training::new(
            &config(),
            &sizes(),
            Noise::seeded(0),
            &device,
        ))
    }

    /// One step at learning rate 1e-4.
    pub fn step(&mut self) -> StepLosses {
        self.0.step().expect("random weights give a finite loss")
    }
}
