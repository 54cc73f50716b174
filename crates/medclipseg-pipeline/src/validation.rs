//! Loaded batches as model inputs, and the validation pass shared by training and evaluation:
//! one stochastic forward per image, the validation loss and the per-image DSC.

use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::Batch;
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::{TrainBatch, forward_loss};
use seg_losses::SegLossConfig;

use crate::error::{PipelineError, Result};
use crate::prompts::Prompts;
use crate::seeds::{NoiseSource, STREAM_VAL_NOISE, derive_seed, noise};

/// A loaded batch as model inputs on `device`: images `[N, 3, S, S]`, prompt ids and attention
/// mask `[N, L]`, masks `[N, S, S]`.
pub fn to_tensors<B: Backend>(
    batch: &Batch,
    prompts: &Prompts,
    device: &B::Device,
) -> Result<TrainBatch<B>> {
    let (n, s) = (batch.len(), batch.size);
    let encoded = prompts.encode::<B>(&batch.prompts, device)?;
    Ok(TrainBatch {
        images: Tensor::from_data(TensorData::new(batch.images.clone(), [n, 3, s, s]), device),
        ids: encoded.ids,
        attention_mask: encoded.attention_mask,
        masks: Tensor::from_data(TensorData::new(batch.masks.clone(), [n, s, s]), device),
    })
}

/// `(2|P∩G| + 1e-7) / (|P| + |G| + 1e-7)` per image of `[B, H, W]` logits (threshold 0.5 on the
/// probability), as the reference's validation computes it.
pub fn batch_dice<B: Backend>(logits: Tensor<B, 3>, masks: Tensor<B, 3>) -> Result<Vec<f64>> {
    let [b, h, w] = logits.dims();
    let pred = logits.greater_elem(0.0).float().reshape([b, h * w]);
    let gt = masks.reshape([b, h * w]);
    let inter = (pred.clone() * gt.clone()).sum_dim(1);
    let total = pred.sum_dim(1) + gt.sum_dim(1);
    let dice = (inter * 2.0 + 1e-7) / (total + 1e-7);
    dice.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .map_err(|e| PipelineError::ReadBack(format!("{e:?}")))
}

/// Mean loss and mean per-image DSC over a split, one stochastic pass per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// Mean total loss over batches.
    pub loss: f64,
    /// Mean DSC over images.
    pub dice: f64,
}

/// Runs the validation pass (one stochastic sample, as the reference's validation); `None`
/// when there are no batches. Batch `k` draws its noise from `derive_seed(noise_seed, 3, k, 0)`.
pub fn validate<B: Backend>(
    model: &MedClipSeg<B>,
    batches: impl Iterator<Item = med_datasets::Result<Batch>>,
    prompts: &Prompts,
    loss: &SegLossConfig,
    noise_seed: u64,
    source: NoiseSource,
    device: &B::Device,
) -> Result<Option<Validation>> {
    let (mut loss_sum, mut batches_seen, mut dices) = (0.0, 0usize, Vec::new());
    for (step, batch) in batches.enumerate() {
        let tensors = to_tensors::<B>(&batch?, prompts, device)?;
        let batch_seed = derive_seed(noise_seed, STREAM_VAL_NOISE, step as u64, 0);
        let mut noise = noise::<B>(source, batch_seed, batch_seed, device);
        let (terms, out) = forward_loss(model, &tensors, loss, &mut noise);
        loss_sum += terms.total.into_scalar().elem::<f64>();
        batches_seen += 1;
        dices.extend(batch_dice(out.seg_logits, tensors.masks)?);
    }
    if dices.is_empty() {
        return Ok(None);
    }
    Ok(Some(Validation {
        loss: loss_sum / batches_seen as f64,
        dice: dices.iter().sum::<f64>() / dices.len() as f64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn dice_per_image_with_the_reference_smoothing() {
        let device = Default::default();
        // Image 0: prediction = GT (one pixel) -> 1; image 1: empty prediction and GT -> 1;
        // image 2: one predicted pixel, GT elsewhere -> 1e-7 / (2 + 1e-7).
        let logits =
            Tensor::<Flex, 3>::from_floats([[[5.0, -5.0]], [[-5.0, -5.0]], [[5.0, -5.0]]], &device);
        let masks =
            Tensor::<Flex, 3>::from_floats([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]], &device);
        let dice = batch_dice(logits, masks).unwrap();
        assert!((dice[0] - 1.0).abs() < 1e-6 && (dice[1] - 1.0).abs() < 1e-6);
        assert!(dice[2] < 1e-6, "{dice:?}");
    }
}
