use burn::prelude::*;
use burn::tensor::activation;

/// The MLP activation of a transformer block.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// OpenAI CLIP's `x * sigmoid(1.702 x)` (UniMedCLIP is trained with it).
    QuickGelu,
    /// Exact GELU, `x * Φ(x)` with the error function (BERT, open_clip non-quickgelu models).
    Gelu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
            Activation::Gelu => activation::gelu(x),
        }
    }
}

/// `softplus(x) = log(1 + exp(x))`, computed without overflow for large `x`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone().clamp_min(0.0) + (x.abs().neg().exp() + 1.0).log()
}
