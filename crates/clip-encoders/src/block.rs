//! The pre-LN residual attention block shared by the open_clip ViT and the CLIP text tower.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::activation::Activation;
use crate::attention::{PackedSelfAttention, linear3d};
use crate::fast::layer_norm;
use crate::weights::{StateWriter, WeightMap};

/// `x += attn(ln_1(x)); x += mlp(ln_2(x))` (open_clip `ResidualAttentionBlock`).
#[derive(Module, Debug)]
pub struct ResidualAttentionBlock<B: Backend> {
    /// Pre-attention LayerNorm.
    pub ln_1: LayerNorm<B>,
    /// Packed multi-head self-attention.
    pub attn: PackedSelfAttention<B>,
    /// Pre-MLP LayerNorm.
    pub ln_2: LayerNorm<B>,
    /// MLP expansion.
    pub c_fc: Linear<B>,
    /// MLP projection back to the width.
    pub c_proj: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> ResidualAttentionBlock<B> {
    /// A randomly initialised block; `layer_norm_eps` is PyTorch's 1e-5 except in timm ViTs (1e-6).
    pub fn new(
        width: usize,
        heads: usize,
        mlp_width: usize,
        activation: Activation,
        layer_norm_eps: f64,
        device: &B::Device,
    ) -> Self {
        let norm = || {
            LayerNormConfig::new(width)
                .with_epsilon(layer_norm_eps)
                .init(device)
        };
        Self {
            ln_1: norm(),
            attn: PackedSelfAttention::new(width, heads, device),
            ln_2: norm(),
            c_fc: LinearConfig::new(width, mlp_width).init(device),
            c_proj: LinearConfig::new(mlp_width, width).init(device),
            activation,
        }
    }

    /// `[B, T, D]` -> `[B, T, D]`; `bias` is an additive attention mask (causal for text).
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(layer_norm(&self.ln_1, x), bias);
        let hidden = self
            .activation
            .apply(linear3d(&self.c_fc, layer_norm(&self.ln_2, x.clone())));
        x + linear3d(&self.c_proj, hidden)
    }

    /// The attention's value path on the normalised input, `out_proj(v_proj(ln_1(x)))`, taken
    /// before the block's own attention and MLP update: `[B, T, D]` -> `[B, T, D]`.
    pub fn value_path(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.attn.value_path(layer_norm(&self.ln_1, x))
    }

    /// Writes the block under `prefix` (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        s.layer_norm(&self.ln_1, &format!("{prefix}.ln_1"));
        self.attn.save(s, &format!("{prefix}.attn"));
        s.layer_norm(&self.ln_2, &format!("{prefix}.ln_2"));
        s.linear(&self.c_fc, &format!("{prefix}.mlp.c_fc"));
        s.linear(&self.c_proj, &format!("{prefix}.mlp.c_proj"));
    }

    /// Loads `ln_1`, `attn.*`, `ln_2`, `mlp.c_fc`, `mlp.c_proj` under `prefix`.
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        self.ln_1 = w.layer_norm(self.ln_1, &format!("{prefix}.ln_1"), device);
        self.attn = self.attn.load(w, &format!("{prefix}.attn"), device);
        self.ln_2 = w.layer_norm(self.ln_2, &format!("{prefix}.ln_2"), device);
        self.c_fc = w.linear(self.c_fc, &format!("{prefix}.mlp.c_fc"), device);
        self.c_proj = w.linear(self.c_proj, &format!("{prefix}.mlp.c_proj"), device);
        self
    }
}
