//! The standard timing workloads, on any backend: one stochastic pass of one 224² image with a
//! 256-token prompt, Monte-Carlo inference of that image, and a training step at batch 4
//! (frozen towers when the preset freezes them, Adam). Random weights: speed does not depend
//! on them. Used by the criterion benches, `model_timing` and `medclipseg bench` (the GPU
//! numbers of docs/performance.md).

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, TensorData};
use seg_losses::SegLossConfig;

use crate::train::{ModelOptimizer, StepError, StepLosses, TrainBatch, reference_adam, train_step};
use crate::{McConfig, MedClipSeg, MedClipSegConfig, Noise, mc_predict};

/// Sizes of the workloads.
#[derive(Config, Debug)]
pub struct WorkloadConfig {
    /// Prompt length of the text tower (the reference pads BERT prompts to 256).
    #[config(default = 256)]
    pub tokens: usize,
    /// Batch of the training step.
    #[config(default = 4)]
    pub train_batch: usize,
    /// Monte-Carlo samples.
    #[config(default = 30)]
    pub samples: usize,
    /// Largest Monte-Carlo chunk (images × samples per batch); `None`: the [`McConfig`] default.
    pub max_batch: Option<usize>,
}

/// Random images, deterministic token ids (all real tokens) for `batch` prompts.
fn inputs<B: Backend>(
    model: &MedClipSegConfig,
    batch: usize,
    tokens: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let side = model.image_size();
    let vocab = model.text.vocab_size();
    let images = Tensor::random([batch, 3, side, side], Distribution::Default, device);
    let ids: Vec<i64> = (0..batch * tokens)
        .map(|i| ((i * 7919 + 101) % vocab) as i64)
        .collect();
    let ids = Tensor::from_data(TensorData::new(ids, [batch, tokens]), device);
    let mask = Tensor::ones([batch, tokens], device);
    (images, ids, mask)
}

/// Inference on one image.
pub struct Inference<B: Backend> {
    model: MedClipSeg<B>,
    images: Tensor<B, 4>,
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    noise: Noise<B>,
    mc: McConfig,
}

impl<B: Backend> Inference<B> {
    /// A randomly initialised `model`, its input, and the given noise source.
    pub fn new(
        model: &MedClipSegConfig,
        sizes: &WorkloadConfig,
        noise: Noise<B>,
        device: &B::Device,
    ) -> Self {
        let (images, ids, mask) = inputs::<B>(model, 1, sizes.tokens, device);
        let mut mc = McConfig::new().with_samples(sizes.samples);
        if let Some(max_batch) = sizes.max_batch {
            mc = mc.with_max_batch(max_batch);
        }
        Self {
            model: model.init(device),
            images,
            ids,
            mask,
            noise,
            mc,
        }
    }

    /// One stochastic pass; returns the logits on the host (which waits for the device).
    pub fn forward(&mut self) -> TensorData {
        let out = self.model.forward(
            self.images.clone(),
            self.ids.clone(),
            self.mask.clone(),
            &mut self.noise,
        );
        out.seg_logits.into_data()
    }

    /// Monte-Carlo inference; returns the mean probability on the host, or `None` with 0
    /// samples.
    pub fn mc(&mut self) -> Option<TensorData> {
        let prediction = mc_predict(
            &self.model,
            self.images.clone(),
            self.ids.clone(),
            self.mask.clone(),
            &[0],
            &self.mc,
            &mut self.noise,
        )?;
        Some(prediction.mean_prob.into_data())
    }
}

/// Training steps (Adam, the reference losses) on one random batch.
pub struct Training<A: AutodiffBackend> {
    model: Option<MedClipSeg<A>>,
    optimizer: ModelOptimizer<A>,
    batch: TrainBatch<A>,
    loss: SegLossConfig,
    noise: Noise<A>,
}

impl<A: AutodiffBackend> Training<A> {
    /// A randomly initialised `model`, a random batch and a fresh optimiser.
    pub fn new(
        model: &MedClipSegConfig,
        sizes: &WorkloadConfig,
        noise: Noise<A>,
        device: &A::Device,
    ) -> Self {
        let batch = sizes.train_batch;
        let (images, ids, attention_mask) = inputs::<A>(model, batch, sizes.tokens, device);
        let side = model.image_size();
        let masks = Tensor::random([batch, side, side], Distribution::Bernoulli(0.3), device);
        Self {
            model: Some(model.init(device)),
            optimizer: reference_adam().init(),
            batch: TrainBatch {
                images,
                ids,
                attention_mask,
                masks,
            },
            loss: SegLossConfig::new(),
            noise,
        }
    }

    /// One step at learning rate 1e-4 (the loss values come back to the host).
    pub fn step(&mut self) -> Result<StepLosses, StepError> {
        let Some(model) = self.model.take() else {
            unreachable!("the model is put back after every step")
        };
        let (model, losses) = train_step(
            model,
            &mut self.optimizer,
            &self.batch,
            &self.loss,
            1e-4,
            &mut self.noise,
        );
        self.model = Some(model);
        losses
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::*;

    #[test]
    fn workloads_run_on_the_micro_model() {
        let device = Default::default();
        let model = MedClipSegConfig::micro();
        let sizes = WorkloadConfig::new()
            .with_tokens(8)
            .with_samples(3)
            .with_train_batch(2);
        let mut inference = Inference::<Flex>::new(&model, &sizes, Noise::seeded(1), &device);
        assert_eq!(inference.forward().shape.to_vec(), vec![1, 32, 32]);
        let mean = inference.mc().expect("3 samples");
        assert!(mean.iter::<f32>().all(|p| (0.0..=1.0).contains(&p)));
        let mut training =
            Training::<Autodiff<Flex>>::new(&model, &sizes, Noise::seeded(1), &device);
        let first = training.step().expect("finite loss");
        let second = training.step().expect("finite loss");
        assert_ne!(first.total, second.total, "the step changed the model");
    }
}
