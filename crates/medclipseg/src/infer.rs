//! Batches to tensors, seeds, and the validation pass shared by `train` and `eval`.

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::Batch;
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::{TrainBatch, forward_loss};
use seg_losses::SegLossConfig;

use crate::text::Prompts;

pub use medclipseg_pipeline::derive_seed;

/// Seed streams.
pub const STREAM_TRAIN_NOISE: u64 = 1;
/// Dropout masks of training steps.
pub const STREAM_DROPOUT: u64 = 2;
/// Validation noise.
pub const STREAM_VAL_NOISE: u64 = 3;
/// Parameter initialisation.
pub const STREAM_INIT: u64 = 4;

/// A loaded batch as model inputs on `device`.
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

/// A tensor's values on the host as `f32`; a failed read-back is an error, never an empty map.
pub fn host_f32(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read a tensor back from the device: {e:?}"))
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
        .map_err(|e| anyhow::anyhow!("cannot read the validation Dice back: {e:?}"))
}

/// Mean loss and mean per-image DSC over a split, one stochastic pass per image.
#[derive(Debug, Clone, Copy)]
pub struct Validation {
    /// Mean total loss over batches.
    pub loss: f64,
    /// Mean DSC over images.
    pub dice: f64,
}

/// Runs the validation pass (one stochastic sample, as the reference's validation). `loss` is
/// the validation loss: [`crate::settings::RunConfig::validation_loss_config`].
pub fn validate<B: Backend>(
    model: &MedClipSeg<B>,
    batches: impl Iterator<Item = med_datasets::Result<Batch>>,
    prompts: &Prompts,
    loss: &SegLossConfig,
    noise_seed: u64,
    device: &B::Device,
) -> Result<Option<Validation>> {
    let (mut loss_sum, mut batches_seen, mut dices) = (0.0, 0usize, Vec::new());
    for (step, batch) in batches.enumerate() {
        let batch = batch?;
        let tensors = to_tensors::<B>(&batch, prompts, device)?;
        let batch_seed = derive_seed(noise_seed, STREAM_VAL_NOISE, step as u64, 0);
        let mut noise = crate::backend::noise::<B>(batch_seed, batch_seed, device);
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
