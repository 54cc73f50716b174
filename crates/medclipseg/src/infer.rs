//! Batches to tensors, seeds, and the validation pass shared by `train` and `eval`: the app's
//! face of `medclipseg_pipeline::validation`, with the noise source of the command line.

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::Batch;
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::TrainBatch;
use seg_losses::SegLossConfig;

use crate::text::Prompts;

pub use medclipseg_pipeline::derive_seed;
pub use medclipseg_pipeline::validation::Validation;

/// Seed streams.
pub const STREAM_TRAIN_NOISE: u64 = 1;
/// Dropout masks of training steps.
pub const STREAM_DROPOUT: u64 = 2;
/// Parameter initialisation.
pub const STREAM_INIT: u64 = 4;

/// A loaded batch as model inputs on `device`.
pub fn to_tensors<B: Backend>(
    batch: &Batch,
    prompts: &Prompts,
    device: &B::Device,
) -> Result<TrainBatch<B>> {
    Ok(medclipseg_pipeline::to_tensors(batch, prompts, device)?)
}

/// A tensor's values on the host as `f32`; a failed read-back is an error, never an empty map.
pub fn host_f32(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read a tensor back from the device: {e:?}"))
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
    Ok(medclipseg_pipeline::validate(
        model,
        batches,
        prompts,
        loss,
        noise_seed,
        crate::backend::pipeline_noise_source(),
        device,
    )?)
}
