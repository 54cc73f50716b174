//! One training step of the reference recipe (spec §3): the weighted loss, backward through
//! the frozen towers into the adapters and the head, and an Adam step.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use pvl_adapters::Noise;
use seg_losses::{SegLoss, SegLossConfig};

use crate::model::{MedClipSeg, MedClipSegOutput};

/// One batch, as tensors.
#[derive(Debug, Clone)]
pub struct TrainBatch<B: Backend> {
    /// Normalised images `[B, 3, H, W]`.
    pub images: Tensor<B, 4>,
    /// Token ids `[B, L]`.
    pub ids: Tensor<B, 2, Int>,
    /// 1 on tokens, 0 on padding `[B, L]`.
    pub attention_mask: Tensor<B, 2, Int>,
    /// Ground truth in {0, 1} `[B, H, W]`.
    pub masks: Tensor<B, 3>,
}

/// The loss values of one step, on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    /// Dice term.
    pub dice: f64,
    /// BCE term.
    pub bce: f64,
    /// SoftCon term.
    pub softcon: f64,
    /// Weighted total.
    pub total: f64,
}

impl StepLosses {
    /// Reads the terms back from the device.
    pub fn read<B: Backend>(loss: &SegLoss<B>) -> Self {
        let value = |t: &Tensor<B, 1>| t.clone().into_scalar().elem::<f64>();
        Self {
            dice: value(&loss.dice),
            bce: value(&loss.bce),
            softcon: value(&loss.softcon),
            total: value(&loss.total),
        }
    }
}

/// A step that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The loss is NaN or infinite; the model was left unchanged.
    #[error(
        "the training loss is not finite (dice {dice}, bce {bce}, softcon {softcon}); the step was not applied"
    )]
    NonFiniteLoss {
        /// Dice term.
        dice: f64,
        /// BCE term.
        bce: f64,
        /// SoftCon term.
        softcon: f64,
    },
}

/// The reference optimiser: Adam, betas (0.9, 0.999), eps 1e-8, no weight decay.
pub fn reference_adam() -> AdamConfig {
    AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
}

/// The optimiser type used with [`MedClipSeg`].
pub type ModelOptimizer<B> = OptimizerAdaptor<Adam, MedClipSeg<B>, B>;

/// `CosineAnnealingLR(T_max = epochs, eta_min)` stepped per epoch: the rate of `epoch` (0-based).
pub fn cosine_lr(epoch: usize, epochs: usize, base_lr: f64, min_lr: f64) -> f64 {
    if epochs == 0 {
        return base_lr;
    }
    let progress = epoch as f64 / epochs as f64;
    min_lr + (base_lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
}

/// Forward pass and loss on a batch.
pub fn forward_loss<B: Backend>(
    model: &MedClipSeg<B>,
    batch: &TrainBatch<B>,
    loss: &SegLossConfig,
    noise: &mut Noise<B>,
) -> (SegLoss<B>, MedClipSegOutput<B>) {
    let out = model.forward(
        batch.images.clone(),
        batch.ids.clone(),
        batch.attention_mask.clone(),
        noise,
    );
    let terms = loss.compute(
        out.seg_logits.clone(),
        batch.masks.clone(),
        out.img_tokens.clone(),
        out.txt_vec.clone(),
    );
    (terms, out)
}

/// One optimisation step at learning rate `lr`. On a non-finite loss the model comes back
/// unchanged with the error.
pub fn train_step<B: AutodiffBackend>(
    model: MedClipSeg<B>,
    optimizer: &mut ModelOptimizer<B>,
    batch: &TrainBatch<B>,
    loss: &SegLossConfig,
    lr: f64,
    noise: &mut Noise<B>,
) -> (MedClipSeg<B>, Result<StepLosses, StepError>) {
    let (terms, _) = forward_loss(&model, batch, loss, noise);
    let values = StepLosses::read(&terms);
    if !values.total.is_finite() {
        let error = StepError::NonFiniteLoss {
            dice: values.dice,
            bce: values.bce,
            softcon: values.softcon,
        };
        return (model, Err(error));
    }
    let grads = GradientsParams::from_grads(terms.total.backward(), &model);
    let model = optimizer.step(lr, model, grads);
    (model, Ok(values))
}

/// The model without autodiff, for evaluation.
pub fn for_inference<B: AutodiffBackend>(model: &MedClipSeg<B>) -> MedClipSeg<B::InnerBackend> {
    model.valid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_runs_from_base_to_min() {
        assert_eq!(cosine_lr(0, 100, 3e-4, 1e-4), 3e-4);
        assert!((cosine_lr(50, 100, 3e-4, 1e-4) - 2e-4).abs() < 1e-12);
        assert!((cosine_lr(100, 100, 3e-4, 1e-4) - 1e-4).abs() < 1e-12);
        let rates: Vec<f64> = (0..=10).map(|e| cosine_lr(e, 10, 3e-4, 1e-4)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
    }
}
