//! Monte-Carlo inference and uncertainty (spec §1.5).
//!
//! N stochastic passes give N probability maps. The reference reports the mean probability, the
//! mask `mean > 0.5` and the binary entropy of the mean (predictive entropy). We also return
//! its decomposition: expected entropy of the samples (aleatoric) and mutual information
//! (epistemic) = predictive − expected.
//!
//! Speed: the samples run as one batch (chunked to bound memory), and the layers before the
//! first adapter, identical for every sample, run once.

use std::ops::ControlFlow;

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use pvl_adapters::{Noise, sample_key};

use crate::model::MedClipSeg;

/// Added inside the logarithms, as the reference's `test.py` does.
const LOG_EPS: f64 = 1e-8;

/// Settings of [`mc_predict`].
#[derive(Config, Debug)]
pub struct McConfig {
    /// Stochastic passes (`TEST.NUM_SAMPLES`).
    #[config(default = 30)]
    pub samples: usize,
    /// Run and discard one extra pass first, like the reference's `forward` in eval mode.
    #[config(default = false)]
    pub discard_first_pass: bool,
    /// Largest batch (images × samples) sent through the network at once. Measured fastest
    /// at 6–8 for the ViT-B/16 + BERT-base presets on CPU (docs/performance.md): larger chunks
    /// gain nothing in the matrix products and cost memory and page faults.
    #[config(default = 8)]
    pub max_batch: usize,
}

/// The maps of a Monte-Carlo prediction, each `[B, H, W]`.
#[derive(Debug, Clone)]
pub struct McPrediction<B: Backend> {
    /// Mean of the sample probabilities.
    pub mean_prob: Tensor<B, 3>,
    /// Binary entropy of the mean probability (the reference's uncertainty map).
    pub predictive_entropy: Tensor<B, 3>,
    /// Mean of the samples' binary entropies (aleatoric part).
    pub expected_entropy: Tensor<B, 3>,
    /// `predictive − expected` (epistemic part), floored at 0.
    pub mutual_information: Tensor<B, 3>,
    /// Fraction of the samples whose probability is above 0.5 (their masks' vote): the
    /// samples' pairwise disagreement is `2 v (1 − v) N / (N − 1)`.
    pub vote_fraction: Tensor<B, 3>,
    /// Number of samples averaged.
    pub samples: usize,
}

impl<B: Backend> McPrediction<B> {
    /// The segmentation: mean probability above 0.5.
    pub fn mask(&self) -> Tensor<B, 3, Bool> {
        self.mean_prob.clone().greater_elem(0.5)
    }
}

/// `−(p ln(p + 1e-8) + (1 − p) ln(1 − p + 1e-8))`, element-wise.
pub fn binary_entropy<B: Backend, const D: usize>(p: Tensor<B, D>) -> Tensor<B, D> {
    let q = p.clone().neg() + 1.0;
    (p.clone() * (p + LOG_EPS).log() + q.clone() * (q + LOG_EPS).log()).neg()
}

/// Per-image min-max normalisation `(x − min) / (max(x − min) + 1e-8)` of `[B, H, W]` maps.
pub fn min_max_normalize<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, h, w] = x.dims();
    let flat = x.reshape([batch, h * w]);
    let shifted = flat.clone() - flat.min_dim(1);
    let range = shifted.clone().max_dim(1) + LOG_EPS;
    (shifted / range).reshape([batch, h, w])
}

/// Running sums of sample probabilities and entropies.
#[derive(Debug, Clone)]
struct Accumulator<B: Backend> {
    prob_sum: Option<Tensor<B, 3>>,
    entropy_sum: Option<Tensor<B, 3>>,
    vote_sum: Option<Tensor<B, 3>>,
    count: usize,
}

impl<B: Backend> Accumulator<B> {
    fn new() -> Self {
        Self {
            prob_sum: None,
            entropy_sum: None,
            vote_sum: None,
            count: 0,
        }
    }

    /// Adds `samples` sample logits laid out sample-major as `[samples·B, H, W]`.
    fn add(&mut self, logits: Tensor<B, 3>, samples: usize) {
        let [n, h, w] = logits.dims();
        let batch = n / samples;
        let probs = sigmoid(logits).reshape([samples, batch, h, w]);
        let prob_sum = probs.clone().sum_dim(0).reshape([batch, h, w]);
        let vote_sum = probs
            .clone()
            .greater_elem(0.5)
            .float()
            .sum_dim(0)
            .reshape([batch, h, w]);
        let entropy_sum = binary_entropy(probs).sum_dim(0).reshape([batch, h, w]);
        self.vote_sum = Some(match self.vote_sum.take() {
            Some(acc) => acc + vote_sum,
            None => vote_sum,
        });
        self.prob_sum = Some(match self.prob_sum.take() {
            Some(acc) => acc + prob_sum,
            None => prob_sum,
        });
        self.entropy_sum = Some(match self.entropy_sum.take() {
            Some(acc) => acc + entropy_sum,
            None => entropy_sum,
        });
        self.count += samples;
    }

    fn finish(self) -> Option<McPrediction<B>> {
        let count = self.count as f64;
        let mean_prob = self.prob_sum? / count;
        let expected_entropy = self.entropy_sum? / count;
        let vote_fraction = self.vote_sum? / count;
        let predictive_entropy = binary_entropy(mean_prob.clone());
        let mutual_information =
            (predictive_entropy.clone() - expected_entropy.clone()).clamp_min(0.0);
        Some(McPrediction {
            mean_prob,
            predictive_entropy,
            expected_entropy,
            mutual_information,
            vote_fraction,
            samples: self.count,
        })
    }
}

/// Summarises given sample logits `[N, B, H, W]` (as `test.py` does with its stacked samples).
pub fn summarize_samples<B: Backend>(sample_logits: Tensor<B, 4>) -> Option<McPrediction<B>> {
    let [n, b, h, w] = sample_logits.dims();
    let mut acc = Accumulator::new();
    if n > 0 {
        acc.add(sample_logits.reshape([n * b, h, w]), n);
    }
    acc.finish()
}

/// The row keys of samples `samples` of the images keyed `image_keys`, sample-major (the
/// layout of [`mc_predict`]'s batches).
fn chunk_row_keys(image_keys: &[u64], samples: std::ops::Range<u64>) -> Vec<u64> {
    samples
        .flat_map(|s| image_keys.iter().map(move |&image| sample_key(image, s)))
        .collect()
}

/// Monte-Carlo prediction of `images [B, 3, H, W]` with prompts `ids`/`attention_mask [B, L]`.
///
/// `image_keys` names each image (e.g. its index in the dataset): with [`Noise::Seeded`], sample
/// `s` of an image always gets the noise of `sample_key(key, s)`, so the prediction of an image
/// does not depend on the batch it came in nor on `config.max_batch`.
///
/// Returns `None` only when `config.samples` is 0.
pub fn mc_predict<B: Backend>(
    model: &MedClipSeg<B>,
    images: Tensor<B, 4>,
    ids: Tensor<B, 2, Int>,
    attention_mask: Tensor<B, 2, Int>,
    image_keys: &[u64],
    config: &McConfig,
    noise: &mut Noise<B>,
) -> Option<McPrediction<B>> {
    let inputs = McInputs {
        images,
        ids,
        attention_mask,
    };
    mc_predict_observed(model, inputs, image_keys, config, noise, &mut |_| {
        ControlFlow::Continue(())
    })
}

/// Where a Monte-Carlo prediction stands after a chunk of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McProgress {
    /// Samples done.
    pub done: usize,
    /// Samples asked for.
    pub total: usize,
}

/// The inputs of [`mc_predict_observed`]: `images [B, 3, H, W]`, prompts `ids` and
/// `attention_mask [B, L]`.
#[derive(Debug, Clone)]
pub struct McInputs<B: Backend> {
    /// Preprocessed images `[B, 3, H, W]`.
    pub images: Tensor<B, 4>,
    /// Token ids `[B, L]`.
    pub ids: Tensor<B, 2, Int>,
    /// Attention mask `[B, L]`.
    pub attention_mask: Tensor<B, 2, Int>,
}

/// [`mc_predict`] that reports after every chunk of samples; `on_chunk` returning
/// `ControlFlow::Break` stops before the next chunk (a cancelled job) and gives `None`.
pub fn mc_predict_observed<B: Backend>(
    model: &MedClipSeg<B>,
    inputs: McInputs<B>,
    image_keys: &[u64],
    config: &McConfig,
    noise: &mut Noise<B>,
    on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
) -> Option<McPrediction<B>> {
    let McInputs {
        images,
        ids,
        attention_mask,
    } = inputs;
    let [batch, _, h, w] = images.dims();
    debug_assert_eq!(image_keys.len(), batch, "one key per image");
    let image_keys: Vec<u64> = if image_keys.len() == batch {
        image_keys.to_vec()
    } else {
        (0..batch as u64).collect()
    };
    if config.discard_first_pass {
        // The reference's extra pass, keyed apart from the kept samples.
        noise.set_rows(chunk_row_keys(&image_keys, u64::MAX - 1..u64::MAX));
        let _ = model.forward(images.clone(), ids.clone(), attention_mask.clone(), noise);
    }
    // Everything before the first adapter is the same for every sample: run it once.
    let shared_until = model
        .adapter_layers()
        .iter()
        .copied()
        .min()
        .unwrap_or(model.num_layers());
    let shared = model.advance(
        model.begin(images, ids, attention_mask),
        shared_until,
        noise,
        None,
    );
    let per_chunk = (config.max_batch / batch.max(1)).max(1);
    let mut acc = Accumulator::new();
    let mut done = 0;
    while done < config.samples {
        let samples = per_chunk.min(config.samples - done);
        noise.set_rows(chunk_row_keys(
            &image_keys,
            done as u64..(done + samples) as u64,
        ));
        let state = shared.clone().repeat(samples);
        let out = model.finish(state, [h, w], noise, None);
        acc.add(out.seg_logits, samples);
        done += samples;
        let progress = McProgress {
            done,
            total: config.samples,
        };
        if on_chunk(progress).is_break() {
            return None;
        }
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    use super::*;
    use crate::MedClipSegConfig;

    type Inputs = (Tensor<Flex, 4>, Tensor<Flex, 2, Int>, Tensor<Flex, 2, Int>);

    fn tiny_inputs(batch: usize, device: &burn::backend::flex::FlexDevice) -> Inputs {
        let images = Tensor::random([batch, 3, 64, 64], Distribution::Default, device);
        let ids: Vec<i64> = (0..batch * 8).map(|i| (i * 37 % 256) as i64).collect();
        let ids = Tensor::from_data(TensorData::new(ids, [batch, 8]), device);
        (images, ids, Tensor::ones([batch, 8], device))
    }

    #[test]
    fn chunking_does_not_change_the_prediction_and_zero_noise_gives_one_pass() {
        let device = Default::default();
        let model = MedClipSegConfig::tiny().init::<Flex>(&device);
        let (images, ids, mask) = tiny_inputs(2, &device);
        let predict = |max_batch: usize| {
            let config = McConfig::new().with_samples(5).with_max_batch(max_batch);
            let mut noise = Noise::Zero;
            mc_predict(
                &model,
                images.clone(),
                ids.clone(),
                mask.clone(),
                &[0, 1],
                &config,
                &mut noise,
            )
            .expect("5 samples")
        };
        let (whole, chunked) = (predict(32), predict(3));
        assert_eq!((whole.samples, chunked.samples), (5, 5));
        let single = model.forward(images.clone(), ids.clone(), mask.clone(), &mut Noise::Zero);
        let expected = sigmoid(single.seg_logits).into_data();
        for prediction in [whole, chunked] {
            assert_eq!(prediction.mean_prob.dims(), [2, 64, 64]);
            // Identical samples vote alike: the vote is the mask of the mean, 0 or 1.
            let mask = prediction.mask().float().into_data();
            prediction
                .mean_prob
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::default());
            prediction
                .vote_fraction
                .into_data()
                .assert_approx_eq::<f32>(&mask, Tolerance::default());
            // Identical samples carry no epistemic uncertainty.
            let mi = prediction.mutual_information.max().into_scalar();
            assert!(mi < 1e-5, "mutual information {mi}");
        }
    }

    #[test]
    fn observed_prediction_reports_each_chunk_and_stops_when_told() {
        let device = Default::default();
        let model = MedClipSegConfig::tiny().init::<Flex>(&device);
        let (images, ids, attention_mask) = tiny_inputs(1, &device);
        let inputs = McInputs {
            images,
            ids,
            attention_mask,
        };
        let config = McConfig::new().with_samples(5).with_max_batch(2);
        let mut seen = Vec::new();
        let whole = mc_predict_observed(
            &model,
            inputs.clone(),
            &[0],
            &config,
            &mut Noise::Zero,
            &mut |p| {
                seen.push((p.done, p.total));
                ControlFlow::Continue(())
            },
        );
        assert_eq!(whole.expect("5 samples").samples, 5);
        assert_eq!(seen, vec![(2, 5), (4, 5), (5, 5)]);
        let mut calls = 0;
        let stopped =
            mc_predict_observed(&model, inputs, &[0], &config, &mut Noise::Zero, &mut |_| {
                calls += 1;
                ControlFlow::Break(())
            });
        assert!(stopped.is_none());
        assert_eq!(calls, 1, "no chunk runs after a break");
    }

    #[test]
    fn seeded_prediction_of_an_image_does_not_depend_on_its_batch_or_the_chunking() {
        let device = Default::default();
        let model = MedClipSegConfig::tiny().init::<Flex>(&device);
        let (images, ids, mask) = tiny_inputs(2, &device);
        let config = McConfig::new().with_samples(5);
        let together = mc_predict(
            &model,
            images.clone(),
            ids.clone(),
            mask.clone(),
            &[10, 11],
            &config.clone().with_max_batch(32),
            &mut Noise::seeded(3),
        )
        .expect("5 samples");
        let second_alone = mc_predict(
            &model,
            images.clone().narrow(0, 1, 1),
            ids.clone().narrow(0, 1, 1),
            mask.clone().narrow(0, 1, 1),
            &[11],
            &config.with_max_batch(2),
            &mut Noise::seeded(3),
        )
        .expect("5 samples");
        let together = together.mean_prob.narrow(0, 1, 1);
        together.clone().into_data().assert_approx_eq::<f32>(
            &second_alone.mean_prob.into_data(),
            Tolerance::absolute(1e-5),
        );
        // The noise is real: a zero-noise prediction differs.
        let mean_path = mc_predict(
            &model,
            images.narrow(0, 1, 1),
            ids.narrow(0, 1, 1),
            mask.narrow(0, 1, 1),
            &[11],
            &McConfig::new().with_samples(1),
            &mut Noise::Zero,
        )
        .expect("1 sample");
        let gap = (mean_path.mean_prob - together).abs().max().into_scalar();
        assert!(gap > 1e-4, "noise changed nothing: {gap}");
    }

    #[test]
    fn zero_samples_give_no_prediction() {
        let device = Default::default();
        let model = MedClipSegConfig::tiny().init::<Flex>(&device);
        let (images, ids, mask) = tiny_inputs(1, &device);
        let config = McConfig::new().with_samples(0);
        assert!(mc_predict(&model, images, ids, mask, &[0], &config, &mut Noise::Zero).is_none());
    }
}
