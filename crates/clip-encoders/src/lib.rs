//! CLIP-family encoders on Burn, generic over the backend.
//!
//! - [`VisionTransformer`]: the open_clip ViT (conv1 without bias, class + positional
//!   embedding, `ln_pre`, pre-LN blocks with packed `in_proj` attention, QuickGELU or GELU,
//!   `ln_post` on all tokens, `proj`).
//! - [`BertTextTower`]: HF BERT (post-LN, erf GELU, LN eps 1e-12, additive padding mask, CLS
//!   pooling, MLP projection without bias), the UniMedCLIP text tower.
//! - [`ClipTextTower`]: the OpenAI CLIP text transformer (causal mask, EOT pooling).
//!
//! Every tower exposes its layers (`embed`/`begin`, `block`/`layer`, `head`/`finish`) so a caller
//! can run image layer `i` and text layer `i` in turn and change the hidden states in between;
//! that is how MedCLIPSeg's adapters sit between layers.
//!
//! Weights load from a [`WeightMap`] under the checkpoints' own key names (see
//! [`weights`]); [`layouts`] renames the published backbone layouts (open_clip, OpenAI CLIP, open_clip timm,
//! HF transformers CLIP) onto those names.
//!
//! ```
//! use burn::backend::Flex;
//! use clip_encoders::VisionConfig;
//!
//! let device = Default::default();
//! let vit = VisionConfig::new(32, 16, 16, 1, 2, 32, 8).init::<Flex>(&device);
//! let images = burn::tensor::Tensor::<Flex, 4>::zeros([1, 3, 32, 32], &device);
//! assert_eq!(vit.forward(images).dims(), [1, 5, 8]);
//! ```

mod activation;
mod attention;
mod bert;
mod block;
mod clip_text;
mod error;
pub mod fast;
pub mod layouts;
mod text;
mod vit;
pub mod weights;

pub use activation::{Activation, gelu, softplus};
pub use attention::{PackedSelfAttention, linear3d, multi_head_attention};
pub use bert::{BertConfig, BertLayer, BertTextTower};
pub use block::ResidualAttentionBlock;
pub use clip_text::{ClipTextConfig, ClipTextTower};
pub use error::LoadError;
pub use layouts::{BackboneLayout, TowerPrefixes, to_tower_names};
pub use text::{TextConfig, TextEncoder, TextState};
pub use vit::{VisionConfig, VisionTransformer};
pub use weights::{HostTensor, StateWriter, WeightMap};

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
