//! One interface over the two text towers, so the model steps either in lock-step with the ViT.

use burn::prelude::*;

use crate::bert::{BertConfig, BertTextTower};
use crate::clip_text::{ClipTextConfig, ClipTextTower};
use crate::weights::{StateWriter, WeightMap};

/// Which text tower, with its sizes.
#[derive(Config, Debug)]
pub enum TextConfig {
    /// HF BERT with CLS pooling and an MLP projection (UniMedCLIP, BiomedCLIP).
    Bert(BertConfig),
    /// OpenAI CLIP text transformer with EOT pooling (CLIP, PubMedCLIP).
    Clip(ClipTextConfig),
}

impl TextConfig {
    /// A randomly initialised tower.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TextEncoder<B> {
        match self {
            TextConfig::Bert(c) => TextEncoder::Bert(c.init(device)),
            TextConfig::Clip(c) => TextEncoder::Clip(c.init(device)),
        }
    }

    /// Token width inside the tower.
    pub fn width(&self) -> usize {
        match self {
            TextConfig::Bert(c) => c.hidden_size,
            TextConfig::Clip(c) => c.width,
        }
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        match self {
            TextConfig::Bert(c) => c.num_hidden_layers,
            TextConfig::Clip(c) => c.layers,
        }
    }

    /// Width of the pooled, projected text vector.
    pub fn output_dim(&self) -> usize {
        match self {
            TextConfig::Bert(c) => c.projection_dim,
            TextConfig::Clip(c) => c.output_dim,
        }
    }

    /// Tokens per prompt the tower was built for (BERT: max positions; CLIP: context).
    pub fn context_length(&self) -> usize {
        match self {
            TextConfig::Bert(c) => c.max_position_embeddings,
            TextConfig::Clip(c) => c.context_length,
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match self {
            TextConfig::Bert(c) => c.vocab_size,
            TextConfig::Clip(c) => c.vocab_size,
        }
    }
}

/// A text tower.
// One tower lives per model, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TextEncoder<B: Backend> {
    /// BERT.
    Bert(BertTextTower<B>),
    /// OpenAI CLIP text transformer.
    Clip(ClipTextTower<B>),
}

/// Hidden states of a text tower between layers, with what every layer needs.
#[derive(Debug, Clone)]
pub struct TextState<B: Backend> {
    /// Token states `[B, L, W]`.
    pub hidden: Tensor<B, 3>,
    /// Additive attention mask used inside the tower (padding for BERT, causal for CLIP).
    pub attention_bias: Tensor<B, 4>,
    /// Token ids `[B, L]` (CLIP pools at the end-of-text token).
    pub ids: Tensor<B, 2, Int>,
}

impl<B: Backend> TextEncoder<B> {
    /// Embeds `ids [B, L]`; `attention_mask [B, L]` is 1 on tokens, 0 on padding.
    pub fn begin(&self, ids: Tensor<B, 2, Int>, attention_mask: Tensor<B, 2, Int>) -> TextState<B> {
        match self {
            TextEncoder::Bert(t) => TextState {
                hidden: t.embed(ids.clone()),
                attention_bias: t.attention_bias(attention_mask),
                ids,
            },
            TextEncoder::Clip(t) => {
                let device = ids.device();
                TextState {
                    hidden: t.embed(ids.clone()),
                    attention_bias: t.causal_bias(ids.dims()[1], &device),
                    ids,
                }
            }
        }
    }

    /// Layer `index` on `hidden [B, L, W]`.
    pub fn layer(&self, index: usize, hidden: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        match self {
            TextEncoder::Bert(t) => t.layer(index, hidden, bias),
            TextEncoder::Clip(t) => t.layer(index, hidden, bias),
        }
    }

    /// Layer `index` for the rows the pooling reads, when it is the last: BERT's CLS row
    /// (`[B, 1, W]`, which [`Self::finish`] pools as it pools a whole state); CLIP pools the
    /// end-of-text row under a causal mask, and runs the whole layer.
    pub fn last_layer_pooled_rows(
        &self,
        index: usize,
        hidden: Tensor<B, 3>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        match self {
            TextEncoder::Bert(t) => t.layer_cls(index, hidden, bias),
            TextEncoder::Clip(t) => t.layer(index, hidden, bias),
        }
    }

    /// The pooled, projected text vector `[B, E]` (not normalised).
    pub fn finish(&self, state: TextState<B>) -> Tensor<B, 2> {
        match self {
            TextEncoder::Bert(t) => t.pool(state.hidden),
            TextEncoder::Clip(t) => t.pool(state.hidden, state.ids),
        }
    }

    /// The whole tower: `ids [B, L]` -> `[B, E]`.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2> {
        let mut state = self.begin(ids, attention_mask);
        for i in 0..self.num_layers() {
            state.hidden = self.layer(i, state.hidden, state.attention_bias.clone());
        }
        self.finish(state)
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        match self {
            TextEncoder::Bert(t) => t.num_layers(),
            TextEncoder::Clip(t) => t.num_layers(),
        }
    }

    /// Writes MedCLIPSeg keys (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        match self {
            TextEncoder::Bert(t) => t.save(
                s,
                &format!("{prefix}.transformer"),
                &format!("{prefix}.proj"),
            ),
            TextEncoder::Clip(t) => t.save(s, prefix),
        }
    }

    /// Loads MedCLIPSeg keys: BERT under `{prefix}.transformer` + `{prefix}.proj`, CLIP under `prefix`.
    pub fn load(self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        match self {
            TextEncoder::Bert(t) => TextEncoder::Bert(t.load(
                w,
                &format!("{prefix}.transformer"),
                &format!("{prefix}.proj"),
                device,
            )),
            TextEncoder::Clip(t) => TextEncoder::Clip(t.load(w, prefix, device)),
        }
    }
}
