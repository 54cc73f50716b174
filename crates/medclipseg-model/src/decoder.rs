//! The segmentation head (spec §1.4): normalised patch tokens, ScaleBlocks (EoMT), a text MLP,
//! a dot product and bilinear upsampling (as matrix products, see [`crate::resize`]).

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use clip_encoders::fast::{channel_layer_norm, depthwise_conv2d, layer_norm};
use clip_encoders::{StateWriter, WeightMap, gelu};
use seg_losses::l2_normalize;

use crate::resize::resize_bilinear;

/// `ConvTranspose2d(C,C,2,2) -> GELU -> depthwise Conv2d(3x3, no bias) -> LayerNorm2d(eps 1e-6)`:
/// doubles the resolution.
#[derive(Module, Debug)]
pub struct ScaleBlock<B: Backend> {
    /// Transposed convolution with bias, stride 2.
    pub conv1: ConvTranspose2d<B>,
    /// Depthwise 3x3 convolution without bias.
    pub conv2: Conv2d<B>,
    /// Channel LayerNorm (timm `LayerNorm2d`).
    pub norm: LayerNorm<B>,
}

impl<B: Backend> ScaleBlock<B> {
    /// A PyTorch-default initialised block of `channels` channels.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            conv1: ConvTranspose2dConfig::new([channels, channels], [2, 2])
                .with_stride([2, 2])
                .init(device),
            conv2: Conv2dConfig::new([channels, channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_groups(channels)
                .with_bias(false)
                .init(device),
            norm: LayerNormConfig::new(channels)
                .with_epsilon(1e-6)
                .init(device),
        }
    }

    /// `[B, C, h, w]` -> `[B, C, 2h, 2w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = depthwise_conv2d(&self.conv2, gelu(self.conv1.forward(x)));
        let x = match channel_layer_norm(&self.norm, x) {
            Ok(normalized) => return normalized,
            Err(x) => x,
        };
        let batch = x.dims()[0];
        if batch == 1 {
            return self.channel_norm(x);
        }
        // One image at a time: the channel moves below are then plain matrix transposes, which
        // CPU backends copy in cache-sized tiles; a batch of them is walked element by element.
        let images = (0..batch)
            .map(|b| self.channel_norm(x.clone().narrow(0, b, 1)))
            .collect();
        Tensor::cat(images, 0)
    }

    /// LayerNorm over channels: move them last and back (one tracked operation when training
    /// on the CPU, see `clip_encoders::fast::layer_norm`).
    fn channel_norm(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        layer_norm(&self.norm, x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }

    /// Writes the block under `prefix` (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        s.conv_transpose2d(&self.conv1, &format!("{prefix}.conv1"));
        s.conv2d(&self.conv2, &format!("{prefix}.conv2"));
        s.layer_norm(&self.norm, &format!("{prefix}.norm"));
    }

    /// Loads `conv1.{weight,bias}`, `conv2.weight`, `norm.{weight,bias}` under `prefix`.
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        self.conv1 = w.conv_transpose2d(self.conv1, &format!("{prefix}.conv1"), device);
        self.conv2 = w.conv2d(self.conv2, &format!("{prefix}.conv2"), device);
        self.norm = w.layer_norm(self.norm, &format!("{prefix}.norm"), device);
        self
    }
}

/// `Linear -> GELU -> Linear -> GELU -> Linear`, all `E -> E`, on the normalised text vector.
#[derive(Module, Debug)]
pub struct MaskHead<B: Backend> {
    /// `mask_head.0`.
    pub fc0: Linear<B>,
    /// `mask_head.2`.
    pub fc2: Linear<B>,
    /// `mask_head.4`.
    pub fc4: Linear<B>,
}

impl<B: Backend> MaskHead<B> {
    /// A PyTorch-default initialised head of width `dim`.
    pub fn new(dim: usize, device: &B::Device) -> Self {
        Self {
            fc0: LinearConfig::new(dim, dim).init(device),
            fc2: LinearConfig::new(dim, dim).init(device),
            fc4: LinearConfig::new(dim, dim).init(device),
        }
    }

    /// `[B, E]` -> `[B, E]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = gelu(self.fc0.forward(x));
        let x = gelu(self.fc2.forward(x));
        self.fc4.forward(x)
    }

    /// Writes `{prefix}.{0,2,4}` (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        s.linear(&self.fc0, &format!("{prefix}.0"));
        s.linear(&self.fc2, &format!("{prefix}.2"));
        s.linear(&self.fc4, &format!("{prefix}.4"));
    }

    /// Loads `mask_head.{0,2,4}` under `prefix`.
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        self.fc0 = w.linear(self.fc0, &format!("{prefix}.0"), device);
        self.fc2 = w.linear(self.fc2, &format!("{prefix}.2"), device);
        self.fc4 = w.linear(self.fc4, &format!("{prefix}.4"), device);
        self
    }
}

/// Intermediate decoder activations (for parity tests and inspection).
#[derive(Debug, Clone)]
pub struct DecoderOutput<B: Backend> {
    /// Logits at the input resolution `[B, H, W]`.
    pub seg_logits: Tensor<B, 3>,
    /// Normalised patch tokens as a map `[B, E, g, g]`.
    pub upscale_in: Tensor<B, 4>,
    /// Output of each ScaleBlock.
    pub upscaled: Vec<Tensor<B, 4>>,
    /// Text embedding after the mask head `[B, E]`.
    pub mask_embedding: Tensor<B, 2>,
    /// Logits before upsampling `[B, 1, g·2^n, g·2^n]`.
    pub logits_lowres: Tensor<B, 4>,
}

/// Runs the head: `img_tokens [B, 1+g², E]`, `txt_vec [B, E]` -> logits at `output_size`.
pub fn decode<B: Backend>(
    upscale: &[ScaleBlock<B>],
    mask_head: &MaskHead<B>,
    img_tokens: Tensor<B, 3>,
    txt_vec: Tensor<B, 2>,
    output_size: [usize; 2],
) -> DecoderOutput<B> {
    let [batch, tokens, dim] = img_tokens.dims();
    let grid = ((tokens - 1) as f64).sqrt().round() as usize;
    let patches = l2_normalize(img_tokens.narrow(1, 1, tokens - 1));
    let upscale_in = patches.swap_dims(1, 2).reshape([batch, dim, grid, grid]);
    let mut upscaled = Vec::with_capacity(upscale.len());
    let mut features = upscale_in.clone();
    for block in upscale {
        features = block.forward(features);
        upscaled.push(features.clone());
    }
    let mask_embedding = mask_head.forward(l2_normalize(txt_vec));
    let [_, _, h, w] = features.dims();
    let logits_lowres = mask_embedding
        .clone()
        .reshape([batch, 1, dim])
        .matmul(features.reshape([batch, dim, h * w]))
        .reshape([batch, 1, h, w]);
    // Separable matrix form: differentiable on every backend (see `resize`).
    let seg_logits = resize_bilinear(logits_lowres.clone().reshape([batch, h, w]), output_size);
    DecoderOutput {
        seg_logits,
        upscale_in,
        upscaled,
        mask_embedding,
        logits_lowres,
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn scale_block_on_a_batch_equals_image_by_image() {
        let device = Default::default();
        let block = ScaleBlock::<Flex>::new(6, &device);
        let x = Tensor::<Flex, 4>::random([3, 6, 4, 4], Distribution::Default, &device);
        let batched = block.forward(x.clone());
        assert_eq!(batched.dims(), [3, 6, 8, 8]);
        let one_by_one = (0..3)
            .map(|b| block.forward(x.clone().narrow(0, b, 1)))
            .collect();
        batched.into_data().assert_approx_eq::<f32>(
            &Tensor::cat(one_by_one, 0).into_data(),
            Tolerance::default(),
        );
    }
}
