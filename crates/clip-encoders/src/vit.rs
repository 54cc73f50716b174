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
    // The three timm switches are options so that configs stored before them still
    // deserialize (Burn's Config derive has no serde defaults; a missing option reads as None).
    /// `conv1` has a bias (timm's `patch_embed.proj` does; open_clip's `conv1` does not).
    /// `None`: no bias.
    pub patch_bias: Option<bool>,
    /// Apply `ln_pre` after the embedding (open_clip does; timm's ViT-B has no pre-norm).
    /// `None`: applied.
    pub pre_norm: Option<bool>,
    /// Epsilon of every LayerNorm in the tower (timm's ViT uses 1e-6). `None`: PyTorch's 1e-5.
    pub layer_norm_eps: Option<f64>,
    /// The tower's output tokens are the last block's value path, `out_proj(v_proj(ln_1(x)))`
    /// of that block's input, instead of its output (the vendored OpenAI CLIP that MedCLIPSeg's
    /// CLIP and PubMedCLIP trainers run). `None`: the block output (UniMedCLIP, BiomedCLIP).
    pub value_features: Option<bool>,
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

    /// Whether the output tokens are the last block's value path (see `value_features`).
    pub fn has_value_features(&self) -> bool {
        self.value_features.unwrap_or(false)
    }

    /// timm `vit_base_patch16_224` as open_clip wraps it for BiomedCLIP: patch embedding with
    /// bias, no pre-norm, LayerNorm eps 1e-6, erf GELU, linear head 768 -> 512.
    pub fn timm_vit_b16() -> Self {
        Self::vit_b16()
            .with_activation(Activation::Gelu)
            .with_patch_bias(Some(true))
            .with_pre_norm(Some(false))
            .with_layer_norm_eps(Some(1e-6))
    }

    /// Whether `conv1` has a bias.
    pub fn has_patch_bias(&self) -> bool {
        self.patch_bias.unwrap_or(false)
    }

    /// Whether `ln_pre` is applied.
    pub fn has_pre_norm(&self) -> bool {
        self.pre_norm.unwrap_or(true)
    }

    /// Epsilon of the tower's LayerNorms.
    pub fn norm_eps(&self) -> f64 {
        self.layer_norm_eps.unwrap_or(1e-5)
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
        let norm = || {
            LayerNormConfig::new(self.width)
                .with_epsilon(self.norm_eps())
                .init(device)
        };
        VisionTransformer {
            conv1: Conv2dConfig::new([3, self.width], [self.patch_size, self.patch_size])
                .with_stride([self.patch_size, self.patch_size])
                .with_bias(self.has_patch_bias())
                .init(device),
            class_embedding: Param::from_tensor(randn(vec![1, self.width]).reshape([self.width])),
            positional_embedding: Param::from_tensor(randn(vec![self.num_tokens(), self.width])),
            ln_pre: self.has_pre_norm().then(norm),
            blocks: (0..self.layers)
                .map(|_| {
                    ResidualAttentionBlock::new(
                        self.width,
                        self.heads,
                        self.mlp_width,
                        self.activation,
                        self.norm_eps(),
                        device,
                    )
                })
                .collect(),
            ln_post: norm(),
            proj: Param::from_tensor(randn(vec![self.width, self.output_dim])),
            value_features: self.has_value_features(),
        }
    }
}

/// The image tower. Callers may run [`Self::embed`], then [`Self::block`] for each layer
/// (modifying the tokens in between, as the PVL adapters do), then [`Self::head`].
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch embedding `[W, 3, P, P]` (with a bias `[W]` only when `patch_bias`).
    pub conv1: Conv2d<B>,
    /// Class token `[W]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Positional embedding `[T, W]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// LayerNorm before the blocks (absent when the config has no `pre_norm`).
    pub ln_pre: Option<LayerNorm<B>>,
    /// The residual attention blocks.
    pub blocks: Vec<ResidualAttentionBlock<B>>,
    /// LayerNorm after the blocks (applied to every token).
    pub ln_post: LayerNorm<B>,
    /// Projection to the joint space `[W, E]` (applied as `x @ proj`).
    pub proj: Param<Tensor<B, 2>>,
    /// The last block contributes its value path instead of its output.
    #[module(skip)]
    value_features: bool,
}

impl<B: Backend> VisionTransformer<B> {
    /// Number of blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Patch + class + positional embedding and `ln_pre` (if any): `[B, 3, H, W]` -> `[B, T, W]`.
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
        let tokens = tokens + pos;
        match &self.ln_pre {
            Some(norm) => crate::fast::layer_norm(norm, tokens),
            None => tokens,
        }
    }

    /// Block `index`: `[B, T, W]` -> `[B, T, W]`.
    pub fn block(&self, index: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.blocks[index].forward(x, None)
    }

    /// Whether [`Self::block_features`] takes the last block's value path.
    pub fn value_features(&self) -> bool {
        self.value_features
    }

    /// Block `index` as the tower's output sees it: the block's output, except the last block
    /// of a value-feature tower, which gives its value path ([`ResidualAttentionBlock::value_path`]).
    /// `[B, T, W]` -> `[B, T, W]`.
    pub fn block_features(&self, index: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.value_features && index + 1 == self.num_layers() {
            self.blocks[index].value_path(x)
        } else {
            self.block(index, x)
        }
    }

    /// `ln_post` on all tokens, then `proj`: `[B, T, W]` -> `[B, T, E]`.
    pub fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, width] = x.dims();
        let out = crate::fast::layer_norm(&self.ln_post, x)
            .reshape([batch * tokens, width])
            .matmul(self.proj.val());
        let dim = out.dims()[1];
        out.reshape([batch, tokens, dim])
    }

    /// The whole tower: `[B, 3, H, W]` -> `[B, T, E]` (class token first; the last block's value
    /// path when the tower has value features).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = (0..self.num_layers()).fold(self.embed(images), |x, i| self.block_features(i, x));
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
        if let Some(norm) = &self.ln_pre {
            s.layer_norm(norm, &format!("{prefix}.ln_pre"));
        }
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
        self.ln_pre = self
            .ln_pre
            .map(|norm| w.layer_norm(norm, &format!("{prefix}.ln_pre"), device));
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn configs_stored_before_the_timm_switches_still_load() {
        let json = r#"{"image_size":32,"patch_size":8,"width":16,"layers":1,"heads":2,
            "mlp_width":32,"output_dim":8,"activation":"QuickGelu"}"#;
        let config: VisionConfig = serde_json::from_str(json).unwrap();
        assert!(!config.has_patch_bias() && config.has_pre_norm());
        assert_eq!(config.norm_eps(), 1e-5);
    }

    #[test]
    fn timm_switches_change_the_tower() {
        let device = Default::default();
        let timm = VisionConfig::new(32, 8, 16, 1, 2, 32, 8)
            .with_patch_bias(Some(true))
            .with_pre_norm(Some(false))
            .with_layer_norm_eps(Some(1e-6))
            .init::<Flex>(&device);
        assert!(timm.conv1.bias.is_some());
        assert!(timm.ln_pre.is_none());
        // LayerNorm's epsilon is private; its Debug output shows it.
        for norm in [&timm.ln_post, &timm.blocks[0].ln_1, &timm.blocks[0].ln_2] {
            let shown = format!("{norm:?}");
            assert!(shown.contains("epsilon: 1e-6"), "{shown}");
        }
        // Without pre-norm the embedding is the raw sum (not normalised per token).
        let images = Tensor::<Flex, 4>::ones([1, 3, 32, 32], &device);
        let tokens = timm.embed(images);
        let std = tokens.var(2).mean().into_scalar();
        assert!((std - 1.0).abs() > 1e-2, "{std}");
    }

    /// The vendored OpenAI CLIP's value path, written out from the packed weights:
    /// `out_proj(ln_1(x) @ W_v^T + b_v)` with `W_v` the last third of `in_proj_weight`.
    fn reference_value_path(
        block: &ResidualAttentionBlock<Flex>,
        x: Tensor<Flex, 3>,
    ) -> Tensor<Flex, 3> {
        let width = x.dims()[2];
        let qkv = crate::attention::linear3d(
            &block.attn.in_proj,
            crate::fast::layer_norm(&block.ln_1, x),
        );
        let value = qkv.narrow(2, 2 * width, width);
        crate::attention::linear3d(&block.attn.out_proj, value)
    }

    #[test]
    fn value_feature_towers_end_on_the_last_blocks_value_path() {
        let device = Default::default();
        let config = VisionConfig::new(32, 8, 16, 2, 2, 32, 8).with_value_features(Some(true));
        let tower = config.init::<Flex>(&device);
        let images = Tensor::<Flex, 4>::random(
            [2, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let before_last = tower.block(0, tower.embed(images.clone()));
        let value = tower.head(reference_value_path(&tower.blocks[1], before_last.clone()));
        let block_output = tower.head(tower.block(1, before_last.clone()));
        let actual = tower.forward(images);
        let gap =
            |a: Tensor<Flex, 3>, b: Tensor<Flex, 3>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(gap(actual.clone(), value) < 1e-5);
        // The block-output formulation (UniMedCLIP, BiomedCLIP) is far from it.
        assert!(gap(actual, block_output) > 1e-1);

        // A value path mixes no tokens: changing one token's input changes only its own row.
        let mut changed = before_last.clone();
        changed = changed.slice_assign(
            [0..1, 3..4, 0..16],
            Tensor::<Flex, 3>::ones([1, 1, 16], &device),
        );
        let rows_changed = (tower.block_features(1, changed)
            - tower.block_features(1, before_last))
        .abs()
        .sum_dim(2)
        .greater_elem(0.0)
        .int()
        .sum()
        .into_scalar();
        assert_eq!(rows_changed, 1);
        // Without the switch the tower returns the block outputs.
        let plain = VisionConfig::new(32, 8, 16, 2, 2, 32, 8).init::<Flex>(&device);
        assert!(!plain.value_features());
    }
}
