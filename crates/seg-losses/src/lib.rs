//! Segmentation losses of MedCLIPSeg (spec §2) on Burn, generic over the backend.
//!
//! - [`bce_with_logits`]: `BCEWithLogitsLoss()` (mean), numerically stable.
//! - [`dice_loss`] with [`DiceMode::Reference`] (default, faithful): the reference calls MONAI's
//!   `DiceLoss(include_background=False, sigmoid=True)` on `[B, H, W]` tensors, so MONAI reads
//!   the rows as channels: a soft Dice per row, row 0 dropped, smooth 1e-5.
//!   [`DiceMode::PerImage`] is the clean per-image soft Dice the authors probably meant.
//! - [`soft_contrastive_loss`]: SoftCon with soft targets from the text-text similarity
//!   (τ = 0.2), plus the paper's variants (hard targets, attention-pooled image features).
//! - [`SegLoss`]: the weighted total `0.5·Dice + 0.5·BCE + 0.1·SoftCon`.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, sigmoid, softmax};

/// MONAI's smoothing constant (`smooth_nr = smooth_dr = 1e-5`).
const DICE_SMOOTH: f64 = 1e-5;

/// `F.normalize`'s floor on the norm.
const NORM_EPS: f64 = 1e-12;

/// Which Dice the loss uses.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DiceMode {
    /// The reference's row-wise MONAI Dice (row 0 dropped): needed to reproduce its training.
    Reference,
    /// Soft Dice over each whole image, averaged over the batch.
    PerImage,
}

/// Targets of the SoftCon loss.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SoftConTargets {
    /// Row-normalised text-text similarities through a softmax (the paper).
    Soft,
    /// The identity: a standard InfoNCE ("hard targets" ablation).
    Hard,
}

/// How SoftCon pools the patch embeddings into one image vector.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SoftConPooling {
    /// Mean of the L2-normalised patch embeddings (the paper).
    Mean,
    /// Softmax attention over patches with the normalised text vector as query, temperature τ
    /// ("attention-pooled SoftCon" ablation; our reading of it).
    Attention,
}

/// `mean(max(x,0) − x·y + log(1 + exp(−|x|)))` over every element: `BCEWithLogitsLoss()`.
///
/// `logits`, `targets`: `[B, H, W]`, targets in {0, 1}. Returns a one-element tensor.
pub fn bce_with_logits<B: Backend>(logits: Tensor<B, 3>, targets: Tensor<B, 3>) -> Tensor<B, 1> {
    let softplus_neg_abs = (logits.clone().abs().neg().exp() + 1.0).log();
    (logits.clone().clamp_min(0.0) - logits * targets + softplus_neg_abs).mean()
}

/// Soft Dice loss on `logits [B, H, W]` against `targets [B, H, W]` in {0, 1}.
pub fn dice_loss<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 3>,
    mode: DiceMode,
) -> Tensor<B, 1> {
    let probs = sigmoid(logits);
    match mode {
        DiceMode::Reference => {
            let height = probs.dims()[1];
            // Rows are MONAI's "channels"; include_background=False drops row 0.
            let p = probs.narrow(1, 1, height - 1);
            let g = targets.narrow(1, 1, height - 1);
            dice_terms(p, g, 2).mean()
        }
        DiceMode::PerImage => {
            let [batch, height, width] = probs.dims();
            let p = probs.reshape([batch, 1, height * width]);
            let g = targets.reshape([batch, 1, height * width]);
            dice_terms(p, g, 2).mean()
        }
    }
}

/// `1 − (2Σ p·g + s) / (Σ p + Σ g + s)` reduced over `dim`.
fn dice_terms<B: Backend>(p: Tensor<B, 3>, g: Tensor<B, 3>, dim: usize) -> Tensor<B, 3> {
    let intersection = (p.clone() * g.clone()).sum_dim(dim);
    let denominator = p.sum_dim(dim) + g.sum_dim(dim);
    ((intersection * 2.0 + DICE_SMOOTH) / (denominator + DICE_SMOOTH)).neg() + 1.0
}

/// Rows divided by their L2 norm (floored at 1e-12), like `F.normalize(x, dim=-1)`.
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(NORM_EPS);
    x / norm
}

/// Settings of [`soft_contrastive_loss`].
#[derive(Config, Debug, Copy)]
pub struct SoftConConfig {
    /// Temperature τ of the logits.
    #[config(default = 0.2)]
    pub temperature: f64,
    /// Target construction.
    #[config(default = "SoftConTargets::Soft")]
    pub targets: SoftConTargets,
    /// Patch pooling.
    #[config(default = "SoftConPooling::Mean")]
    pub pooling: SoftConPooling,
}

/// SoftCon: a batch-level image-text contrastive loss with soft targets (spec §2).
///
/// `img_tokens [B, 1+P, E]` (class token first; only patches are used), `txt_vec [B, E]` (the
/// projected text CLS, not normalised). A batch of one gives 0.
pub fn soft_contrastive_loss<B: Backend>(
    img_tokens: Tensor<B, 3>,
    txt_vec: Tensor<B, 2>,
    config: &SoftConConfig,
) -> Tensor<B, 1> {
    let [batch, tokens, dim] = img_tokens.dims();
    let patches = l2_normalize(img_tokens.narrow(1, 1, tokens - 1));
    let pooled = match config.pooling {
        SoftConPooling::Mean => patches.mean_dim(1).reshape([batch, dim]),
        SoftConPooling::Attention => {
            let query = l2_normalize(txt_vec.clone()).reshape([batch, dim, 1]);
            let weights = softmax(patches.clone().matmul(query) / config.temperature, 1);
            (patches * weights).sum_dim(1).reshape([batch, dim])
        }
    };
    let image_to_text = pooled.clone().matmul(txt_vec.clone().transpose()) / config.temperature;
    let text_to_image = txt_vec.clone().matmul(pooled.transpose()) / config.temperature;
    let targets = soft_targets(txt_vec, config);
    let loss = soft_cross_entropy(image_to_text, targets.clone())
        + soft_cross_entropy(text_to_image, targets.transpose());
    loss / 2.0
}

/// `softmax_row(S / ||S_i||)` with `S = T Tᵀ / τ`, computed without gradient.
fn soft_targets<B: Backend>(txt_vec: Tensor<B, 2>, config: &SoftConConfig) -> Tensor<B, 2> {
    let [batch, _] = txt_vec.dims();
    match config.targets {
        SoftConTargets::Hard => Tensor::eye(batch, &txt_vec.device()),
        SoftConTargets::Soft => {
            let t = txt_vec.detach();
            let similarity = t.clone().matmul(t.transpose()) / config.temperature;
            softmax(l2_normalize(similarity), 1)
        }
    }
}

/// `−mean_i Σ_j Y_ij · log_softmax(X)_ij`.
fn soft_cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// Weights and variants of the training loss.
#[derive(Config, Debug)]
pub struct SegLossConfig {
    /// `DICE_WEIGHT`.
    #[config(default = 0.5)]
    pub dice_weight: f64,
    /// `CE_WEIGHT`.
    #[config(default = 0.5)]
    pub bce_weight: f64,
    /// `CLIP_WEIGHT` (0 disables SoftCon: "w/o SoftCon" ablation).
    #[config(default = 0.1)]
    pub softcon_weight: f64,
    /// Dice variant.
    #[config(default = "DiceMode::Reference")]
    pub dice_mode: DiceMode,
    /// SoftCon settings.
    #[config(default = "SoftConConfig::new()")]
    pub softcon: SoftConConfig,
}

/// The three loss terms and their weighted total, each a one-element tensor.
#[derive(Debug, Clone)]
pub struct SegLoss<B: Backend> {
    /// Dice term.
    pub dice: Tensor<B, 1>,
    /// BCE term.
    pub bce: Tensor<B, 1>,
    /// SoftCon term.
    pub softcon: Tensor<B, 1>,
    /// `w_dice·dice + w_bce·bce + w_softcon·softcon`.
    pub total: Tensor<B, 1>,
}

impl SegLossConfig {
    /// Computes every term on `seg_logits [B, H, W]`, `targets [B, H, W]`, `img_tokens [B, T, E]`
    /// and `txt_vec [B, E]`.
    pub fn compute<B: Backend>(
        &self,
        seg_logits: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        img_tokens: Tensor<B, 3>,
        txt_vec: Tensor<B, 2>,
    ) -> SegLoss<B> {
        let dice = dice_loss(seg_logits.clone(), targets.clone(), self.dice_mode);
        let bce = bce_with_logits(seg_logits, targets);
        let softcon = soft_contrastive_loss(img_tokens, txt_vec, &self.softcon);
        let total = dice.clone() * self.dice_weight
            + bce.clone() * self.bce_weight
            + softcon.clone() * self.softcon_weight;
        SegLoss {
            dice,
            bce,
            softcon,
            total,
        }
    }
}

#[cfg(test)]
mod tests;

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
