//! Probabilistic Vision-Language (PVL) adapters of MedCLIPSeg (spec §1.3), on Burn.
//!
//! - [`ProbCrossAttention`]: keys and values are Gaussian (LayerNorm means, `softplus + 1e-6`
//!   variances); logits `Q Kμᵀ/√d − β·√((Q∘Q) Kσ²ᵀ / d)` (β = 2.35) penalise uncertain keys;
//!   values are sampled `μ + σ∘ε` on every pass; a sigmoid gate mixes the result with the query.
//! - [`PvlAdapter`]: down-projections, image→text then text→updated-image attention,
//!   up-projections; the caller adds the updates to the encoder tokens.
//! - [`Noise`]: the value noise is injectable: seeded host streams keyed per batch row (the same
//!   noise for an (image, sample) whatever the batch layout or backend), the device's own
//!   generator (fast on a GPU), zero, or given tensors.
//!
//! # Ablation switches
//! Declared once, in [`ProbAttentionSwitches`] and [`PvlAdapterSwitches`] (which embeds it);
//! the model's config embeds those. The paper's ablation rows map to these switches (the paper does not define all of them
//! precisely; where it does not, this is the reading we chose):
//!
//! | paper row | switch |
//! | --- | --- |
//! | w/o Gating | `ProbAttentionSwitches::gating = false`: plain residual `query + out` instead of the convex gate |
//! | w/o AttnPVL | `probabilistic = false`: ordinary dot-product attention on the key/value means (no β penalty, no sampling) |
//! | Deterministic MedCLIPSeg | `sample_values = false`: β-penalised logits kept, values are their means, so every pass is identical |
//! | w/o visual adaptation | `PvlAdapterSwitches::adapt_vision = false`: the image tokens are not updated |
//! | w/o textual adaptation | `adapt_text = false`: the text tokens are not updated |
//! | w/o bidirectional interaction | `interaction = Parallel`: text attends to the *original* image tokens |
//! | Unimodal | `interaction = Unimodal`: each modality attends to itself |
//! | β | `beta` |
//!
//! "w/o PVL adapters" and the adapter-layer sweep are model-level switches (`medclipseg-model`).

mod adapter;
mod attention;
mod noise;

pub use adapter::{
    Interaction, PvlAdapter, PvlAdapterConfig, PvlAdapterOutput, PvlAdapterSwitches,
};
pub use attention::{
    ProbAttentionOutput, ProbAttentionSwitches, ProbCrossAttention, ProbCrossAttentionConfig,
};
pub use noise::{Noise, NormalStream, RowStreams, sample_key};

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
