//! OpenAI CLIP text transformer (causal mask, EOT pooling, context 77), for the `clip`
//! backbone variant of spec §1.6.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::activation::Activation;
use crate::block::ResidualAttentionBlock;
use crate::weights::{StateWriter, WeightMap};

/// Sizes of the OpenAI CLIP text tower.
#[derive(Config, Debug, PartialEq)]
pub struct ClipTextConfig {
    /// BPE vocabulary size (49408 for OpenAI CLIP).
    pub vocab_size: usize,
    /// Context length (77).
    pub context_length: usize,
    /// Token width.
    pub width: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Output dimension of `text_projection`.
    pub output_dim: usize,
    /// MLP activation.
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
}

impl ClipTextConfig {
    /// The text tower of OpenAI ViT-B/16 and ViT-B/32: 12 x 512, 8 heads, projection 512.
    pub fn openai_base() -> Self {
        Self::new(49408, 77, 512, 12, 8, 512)
    }

    /// A randomly initialised tower.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipTextTower<B> {
        let normal = |shape: [usize; 2], std: f64| {
            Param::from_tensor(Tensor::random(
                shape,
                burn::tensor::Distribution::Normal(0.0, std),
                device,
            ))
        };
        ClipTextTower {
            token_embedding: EmbeddingConfig::new(self.vocab_size, self.width).init(device),
            positional_embedding: normal([self.context_length, self.width], 0.01),
            blocks: (0..self.layers)
                .map(|_| {
                    ResidualAttentionBlock::new(
                        self.width,
                        self.heads,
                        4 * self.width,
                        self.activation,
                        1e-5,
                        device,
                    )
                })
                .collect(),
            ln_final: LayerNormConfig::new(self.width).init(device),
            text_projection: normal(
                [self.width, self.output_dim],
                (self.width as f64).powf(-0.5),
            ),
        }
    }
}

/// The CLIP text tower, stepped block by block like [`crate::VisionTransformer`].
#[derive(Module, Debug)]
pub struct ClipTextTower<B: Backend> {
    /// `token_embedding`.
    pub token_embedding: Embedding<B>,
    /// `positional_embedding [ctx, W]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// `transformer.resblocks.*`.
    pub blocks: Vec<ResidualAttentionBlock<B>>,
    /// `ln_final`.
    pub ln_final: LayerNorm<B>,
    /// `text_projection [W, E]` (applied as `x @ text_projection`).
    pub text_projection: Param<Tensor<B, 2>>,
}

impl<B: Backend> ClipTextTower<B> {
    /// Token + positional embedding: `ids [B, L]` -> `[B, L, W]`.
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let len = ids.dims()[1];
        let pos = self
            .positional_embedding
            .val()
            .narrow(0, 0, len)
            .unsqueeze_dim::<3>(0);
        self.token_embedding.forward(ids) + pos
    }

    /// Causal additive mask `[1, 1, L, L]`: a huge negative above the diagonal.
    pub fn causal_bias(&self, len: usize, device: &B::Device) -> Tensor<B, 4> {
        let rows = Tensor::<B, 1, Int>::arange(0..len as i64, device).reshape([len, 1]);
        let cols = Tensor::<B, 1, Int>::arange(0..len as i64, device).reshape([1, len]);
        let future = cols.expand([len, len]).greater(rows.expand([len, len]));
        Tensor::<B, 2>::zeros([len, len], device)
            .mask_fill(future, -1.0e30)
            .reshape([1, 1, len, len])
    }

    /// Block `index`.
    pub fn layer(&self, index: usize, x: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        self.blocks[index].forward(x, Some(bias))
    }

    /// `ln_final`, the end-of-text token's features (the largest id), `@ text_projection`.
    pub fn pool(&self, hidden: Tensor<B, 3>, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [batch, _, width] = hidden.dims();
        let eot = ids
            .argmax(1)
            .reshape([batch, 1, 1])
            .expand([batch, 1, width]);
        let features = self
            .ln_final
            .forward(hidden)
            .gather(1, eot)
            .reshape([batch, width]);
        features.matmul(self.text_projection.val())
    }

    /// Number of blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Writes OpenAI/open_clip keys (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        let p = |x: &str| {
            if prefix.is_empty() {
                x.to_string()
            } else {
                format!("{prefix}.{x}")
            }
        };
        s.embedding(&self.token_embedding, &p("token_embedding.weight"));
        s.param(&self.positional_embedding, p("positional_embedding"));
        for (i, block) in self.blocks.iter().enumerate() {
            block.save(s, &p(&format!("transformer.resblocks.{i}")));
        }
        s.layer_norm(&self.ln_final, &p("ln_final"));
        s.param(&self.text_projection, p("text_projection"));
    }

    /// Loads OpenAI/open_clip keys under `prefix` (empty for a bare CLIP state dict).
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        let p = |s: &str| {
            if prefix.is_empty() {
                s.to_string()
            } else {
                format!("{prefix}.{s}")
            }
        };
        self.token_embedding =
            w.embedding(self.token_embedding, &p("token_embedding.weight"), device);
        self.positional_embedding = w.param(
            self.positional_embedding,
            &p("positional_embedding"),
            device,
        );
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.load(w, &p(&format!("transformer.resblocks.{i}")), device))
            .collect();
        self.ln_final = w.layer_norm(self.ln_final, &p("ln_final"), device);
        self.text_projection = w.param(self.text_projection, &p("text_projection"), device);
        self
    }
}
