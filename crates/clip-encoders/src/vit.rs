//! open_clip `VisionTransformer` (spec §1.1), stepped block by block.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::activation::Activation;
use crate::block::ResidualAttentionBlock;
use crate::weights::{StateWriter, WeightMap};

/// Sizes of an open_clip vision tower.
#[derive(Config, Debug, PartialEq)]
pub struct VisionConfig {
    /// Input side length in pixels (square images).
    pub image_size: usize,
    /// Patch side length (the stride of `conv1`).
    pub patch_size: usize,
    /// Token width.
    pub width: usize,
    /// Number of residual attention blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_width: usize,
    /// Output dimension of `proj` (the joint embedding space).
    pub output_dim: usize,
    /// MLP activation.
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
}

impl VisionConfig {
    /// OpenAI / UniMedCLIP ViT-B/16 at 224 px (`ViT-B-16-quickgelu`).
    pub fn vit_b16() -> Self {
        Self::new(224, 16, 768, 12, 12, 3072, 512)
    }

    /// OpenAI ViT-B/32 at 224 px (PubMedCLIP).
    pub fn vit_b32() -> Self {
        Self::new(224, 32, 768, 12, 12, 3072, 512)
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: the class token plus one per patch.
    pub fn num_tokens(&self) -> usize {
        1 + self.grid() * self.grid()
    }

    /// A randomly initialised tower.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTransformer<B> {
        let scale = (self.width as f64).powf(-0.5);
        let randn = |shape: Vec<usize>| {
            Tensor::<B, 2>::random(
                shape,
                burn::tensor::Distribution::Normal(0.0, scale),
                device,
            )
        };
        VisionTransformer {
            conv1: Conv2dConfig::new([3, self.width], [self.patch_size, self.patch_size])
                .with_stride([self.patch_size, self.patch_size])
                .with_bias(false)
                .init(device),
            class_embedding: Param::from_tensor(randn(vec![1, self.width]).reshape([self.width])),
            positional_embedding: Param::from_tensor(randn(vec![self.num_tokens(), self.width])),
            ln_pre: LayerNormConfig::new(self.width).init(device),
            blocks: (0..self.layers)
                .map(|_| {
                    ResidualAttentionBlock::new(
                        self.width,
                        self.heads,
                        self.mlp_width,
                        self.activation,
                        device,
                    )
                })
                .collect(),
            ln_post: LayerNormConfig::new(self.width).init(device),
            proj: Param::from_tensor(randn(vec![self.width, self.output_dim])),
        }
    }
}

/// The image tower. Callers may run [`Self::embed`], then [`Self::block`] for each layer
/// (modifying the tokens in between, as the PVL adapters do), then [`Self::head`].
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch embedding, no bias: `[W, 3, P, P]`.
    pub conv1: Conv2d<B>,
    /// Class token `[W]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Positional embedding `[T, W]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// LayerNorm before the blocks.
    pub ln_pre: LayerNorm<B>,
    /// The residual attention blocks.
    pub blocks: Vec<ResidualAttentionBlock<B>>,
    /// LayerNorm after the blocks (applied to every token).
    pub ln_post: LayerNorm<B>,
    /// Projection to the joint space `[W, E]` (applied as `x @ proj`).
    pub proj: Param<Tensor<B, 2>>,
}

impl<B: Backend> VisionTransformer<B> {
    /// Number of blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Patch + class + positional embedding and `ln_pre`: `[B, 3, H, W]` -> `[B, T, W]`.
    pub fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches = self.conv1.forward(images);
        let [batch, width, gh, gw] = patches.dims();
        let patches = patches.reshape([batch, width, gh * gw]).swap_dims(1, 2);
        let cls = self
            .class_embedding
            .val()
            .reshape([1, 1, width])
            .expand([batch, 1, width]);
        let tokens = Tensor::cat(vec![cls, patches], 1);
        let pos = self.positional_embedding.val().unsqueeze_dim::<3>(0);
        self.ln_pre.forward(tokens + pos)
    }

    /// Block `index`: `[B, T, W]` -> `[B, T, W]`.
    pub fn block(&self, index: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.blocks[index].forward(x, None)
    }

    /// `ln_post` on all tokens, then `proj`: `[B, T, W]` -> `[B, T, E]`.
    pub fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, width] = x.dims();
        let out = self
            .ln_post
            .forward(x)
            .reshape([batch * tokens, width])
            .matmul(self.proj.val());
        let dim = out.dims()[1];
        out.reshape([batch, tokens, dim])
    }

    /// The whole tower: `[B, 3, H, W]` -> `[B, T, E]` (class token first).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = (0..self.num_layers()).fold(self.embed(images), |x, i| self.block(i, x));
        self.head(x)
    }

    /// Writes open_clip keys under `prefix` (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        s.conv2d(&self.conv1, &format!("{prefix}.conv1"));
        s.param(&self.class_embedding, format!("{prefix}.class_embedding"));
        s.param(
            &self.positional_embedding,
            format!("{prefix}.positional_embedding"),
        );
        s.layer_norm(&self.ln_pre, &format!("{prefix}.ln_pre"));
        for (i, block) in self.blocks.iter().enumerate() {
            block.save(s, &format!("{prefix}.transformer.resblocks.{i}"));
        }
        s.layer_norm(&self.ln_post, &format!("{prefix}.ln_post"));
        s.param(&self.proj, format!("{prefix}.proj"));
    }

    /// Loads open_clip keys under `prefix` (`visual` for open_clip, `vision_model` for MedCLIPSeg).
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        self.conv1 = w.conv2d(self.conv1, &format!("{prefix}.conv1"), device);
        self.class_embedding = w.param(
            self.class_embedding,
            &format!("{prefix}.class_embedding"),
            device,
        );
        self.positional_embedding = w.param(
            self.positional_embedding,
            &format!("{prefix}.positional_embedding"),
            device,
        );
        self.ln_pre = w.layer_norm(self.ln_pre, &format!("{prefix}.ln_pre"), device);
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.load(w, &format!("{prefix}.transformer.resblocks.{i}"), device))
            .collect();
        self.ln_post = w.layer_norm(self.ln_post, &format!("{prefix}.ln_post"), device);
        self.proj = w.param(self.proj, &format!("{prefix}.proj"), device);
        self
    }
}
