//! The model workloads shared by `model.rs` (criterion) and `examples/model_timing.rs`
//! (plain timings and peak memory): the full `unimedclip-vit-b16` preset with random weights,
//! one 224² image with a 256-token prompt, MC-30, and a batch-4 training step.

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use medclipseg_benches::backend::{Cpu, Train};
use medclipseg_model::train::{ModelOptimizer, StepLosses, TrainBatch, reference_adam, train_step};
use medclipseg_model::{McConfig, McPrediction, MedClipSeg, MedClipSegConfig, Noise, mc_predict};
use seg_losses::SegLossConfig;

/// The paper's model.
pub const PRESET: &str = "unimedclip-vit-b16";
/// Prompt length of the text tower.
pub const TOKENS: usize = 256;
/// Image side in pixels.
pub const IMAGE: usize = 224;
/// Batch of the training step.
pub const TRAIN_BATCH: usize = 4;
/// Monte-Carlo samples.
pub const MC_SAMPLES: usize = 30;

fn config() -> MedClipSegConfig {
    MedClipSegConfig::preset(PRESET).expect("the full-size preset exists")
}

/// Random images, deterministic token ids (all real tokens) for `batch` prompts.
fn inputs<B: Backend>(
    batch: usize,
    vocab: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let images = Tensor::random([batch, 3, IMAGE, IMAGE], Distribution::Default, device);
    let ids: Vec<i64> = (0..batch * TOKENS)
        .map(|i| ((i * 7919 + 101) % vocab) as i64)
        .collect();
    let ids = Tensor::from_data(TensorData::new(ids, [batch, TOKENS]), device);
    let mask = Tensor::ones([batch, TOKENS], device);
    (images, ids, mask)
}

/// `McConfig` defaults with [`MC_SAMPLES`] samples; the environment variable `MC_MAX_BATCH`
/// overrides the chunk size (for measuring it).
fn mc_config() -> McConfig {
    let config = McConfig::new().with_samples(MC_SAMPLES);
    match std::env::var("MC_MAX_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(max_batch) => config.with_max_batch(max_batch),
        None => config,
    }
}

/// Inference on one image.
pub struct Inference {
    model: MedClipSeg<Cpu>,
    images: Tensor<Cpu, 4>,
    ids: Tensor<Cpu, 2, Int>,
    mask: Tensor<Cpu, 2, Int>,
    noise: Noise<Cpu>,
    mc: McConfig,
}

impl Inference {
    /// A randomly initialised model and its input.
    pub fn new() -> Self {
        let device = Default::default();
        let config = config();
        let (images, ids, mask) = inputs::<Cpu>(1, config.text.vocab_size(), &device);
        Self {
            model: config.init(&device),
            images,
            ids,
            mask,
            noise: Noise::seeded(0),
            mc: mc_config(),
        }
    }

    /// One stochastic pass; returns the logits `[1, 224, 224]` on the host.
    pub fn forward(&mut self) -> TensorData {
        let out = self.model.forward(
            self.images.clone(),
            self.ids.clone(),
            self.mask.clone(),
            &mut self.noise,
        );
        out.seg_logits.into_data()
    }

    /// `mc_predict` with [`MC_SAMPLES`] samples; returns the mean probability on the host.
    pub fn mc(&mut self) -> TensorData {
        let prediction: McPrediction<Cpu> = mc_predict(
            &self.model,
            self.images.clone(),
            self.ids.clone(),
            self.mask.clone(),
            &[0],
            &self.mc,
            &mut self.noise,
        )
        .expect("MC_SAMPLES > 0 gives a prediction");
        prediction.mean_prob.into_data()
    }
}

/// Training steps at batch [`TRAIN_BATCH`] (frozen encoders, Adam).
pub struct Training {
    model: Option<MedClipSeg<Train>>,
    optimizer: ModelOptimizer<Train>,
    batch: TrainBatch<Train>,
    loss: SegLossConfig,
    noise: Noise<Train>,
}

impl Training {
    /// A randomly initialised model, a random batch and a fresh optimiser.
    pub fn new() -> Self {
        let device = Default::default();
        let config = config();
        let (images, ids, attention_mask) =
            inputs::<Train>(TRAIN_BATCH, config.text.vocab_size(), &device);
        let masks = Tensor::random(
            [TRAIN_BATCH, IMAGE, IMAGE],
            Distribution::Bernoulli(0.3),
            &device,
        );
        Self {
            model: Some(config.init(&device)),
            optimizer: reference_adam().init(),
            batch: TrainBatch {
                images,
                ids,
                attention_mask,
                masks,
            },
            loss: SegLossConfig::new(),
            noise: Noise::seeded(0),
        }
    }

    /// One step at learning rate 1e-4.
    pub fn step(&mut self) -> StepLosses {
        let model = self
            .model
            .take()
            .expect("the model is put back after every step");
        let (model, losses) = train_step(
            model,
            &mut self.optimizer,
            &self.batch,
            &self.loss,
            1e-4,
            &mut self.noise,
        );
        self.model = Some(model);
        losses.expect("random weights give a finite loss")
    }
}
