//! Fused CPU kernels for the hot non-matmul work of the towers, used when the backend is
//! burn-flex (inference: no autodiff) and the `flex-kernels` feature is on. Every function
//! here takes and returns tensors of any backend `B`: for flex it runs the kernel, for any
//! other backend (ndarray, WGPU, CUDA, `Autodiff<_>`) it runs the plain Burn formula, so model
//! code stays generic and training keeps Burn's gradients.
//!
//! What they save on flex (docs/performance.md): QuickGELU in one pass instead of three, the
//! bias of a linear layer added inside its gemm, and attention heads read and written through
//! strides (no permuted copies), with the bias and the softmax applied in the score buffer.
//! The element-wise math itself (`exp`, `erf`, GELU, softmax) is vectorised inside the
//! patched burn-flex (vendor/burn-flex), through `simd-math`, for inference and training.

#[cfg(feature = "flex-kernels")]
mod flex;
#[cfg(feature = "flex-kernels")]
mod nchw;
#[cfg(feature = "flex-kernels")]
mod train;

use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation;

/// The inputs of [`attention`] handed back when no kernel applies.
pub(crate) struct AttentionInputs<B: Backend> {
    pub q: Tensor<B, 3>,
    pub k: Tensor<B, 3>,
    pub v: Tensor<B, 3>,
    pub bias: Option<Tensor<B, 4>>,
}

/// The inputs of [`packed_attention`] handed back when no kernel applies.
pub(crate) struct PackedInputs<B: Backend> {
    pub qkv: Tensor<B, 3>,
    pub bias: Option<Tensor<B, 4>>,
}

/// QuickGELU `x·σ(1.702 x)`.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex-kernels")]
    let x = match flex::map_in_place(x, simd_math::quick_gelu_in_place) {
        Ok(y) => return y,
        Err(x) => x,
    };
    #[cfg(feature = "flex-kernels")]
    let x = match train::activation(x, train::QUICK_GELU) {
        Ok(y) => return y,
        Err(x) => x,
    };
    x.clone() * activation::sigmoid(x * 1.702)
}

/// `softplus(x) = ln(1 + eˣ)` in one pass on flex, as one tracked operation under
/// `Autodiff<Flex>` (Burn's formula is six, on strided views each a walk element by element);
/// the input back for every other backend.
pub(crate) fn softplus<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex-kernels")]
    let x = match flex::map_in_place(x, simd_math::softplus_in_place) {
        Ok(y) => return Ok(y),
        Err(x) => x,
    };
    #[cfg(feature = "flex-kernels")]
    return train::activation(x, train::SOFTPLUS);
    #[cfg(not(feature = "flex-kernels"))]
    Err(x)
}

/// `norm.forward(x)`: LayerNorm over the last dimension. Under `Autodiff<Flex>` one tracked
/// operation with its own backward (Burn's formula is ten, each a pass over `x` forward and
/// again backward); on every other backend Burn's own (flex has a fused kernel for inference).
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    #[cfg(feature = "flex-kernels")]
    if let (Some(beta), Some(epsilon)) = (&norm.beta, layer_norm_epsilon(norm)) {
        match train::layer_norm(x, norm.gamma.val(), beta.val(), epsilon) {
            Ok(y) => return y,
            Err(x) => return norm.forward(x),
        }
    }
    norm.forward(x)
}

/// `norm.forward(residual + dropout.forward(x))`: the post-LN residual of BERT, `x` and
/// `residual` `[.., D]`. Under `Autodiff<Flex>` one tracked operation (Burn's dropout, sum and
/// LayerNorm are four passes over `x` forward and four backward), with a mask that follows the
/// backend seed as Burn's `Dropout` does, drawn on every thread (a different stream from
/// Burn's); on every other backend Burn's own.
pub fn residual_layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
    dropout: &Dropout,
) -> Tensor<B, D> {
    #[cfg(feature = "flex-kernels")]
    if let (Some(beta), Some(epsilon)) = (&norm.beta, layer_norm_epsilon(norm)) {
        let training = B::ad_enabled(&x.device());
        let p = if training { dropout.prob } else { 0.0 };
        let gamma = norm.gamma.val();
        match train::residual_layer_norm(x, residual, gamma, beta.val(), epsilon, p) {
            Ok(y) => return y,
            Err([x, residual]) => return layer_norm(norm, dropout.forward(x) + residual),
        }
    }
    layer_norm(norm, dropout.forward(x) + residual)
}

/// `conv.forward(x)` for `x [B, C, H, W]`. A depthwise, stride-1, bias-free convolution with
/// odd kernels and "same" padding runs on flex as one pass per channel plane on every thread,
/// and under `Autodiff<Flex>` as one tracked operation with its own backward (burn-flex runs
/// Burn's convolution and both its backward passes on one thread); anything else is Burn's.
pub fn depthwise_conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex-kernels")]
    return nchw::depthwise_conv2d(conv, x);
    #[cfg(not(feature = "flex-kernels"))]
    conv.forward(x)
}

/// `norm` over the channels of `x [B, C, H, W]` (LayerNorm2d), read and written in NCHW: on
/// flex and under `Autodiff<Flex>` one pass (one tracked operation) instead of moving the
/// channels last and back; `x` back for any other backend.
pub fn channel_layer_norm<B: Backend>(
    norm: &LayerNorm<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex-kernels")]
    if let (Some(beta), Some(epsilon)) = (&norm.beta, layer_norm_epsilon(norm)) {
        return nchw::channel_layer_norm(x, norm.gamma.val(), beta.val(), epsilon);
    }
    #[cfg(not(feature = "flex-kernels"))]
    let _ = norm;
    Err(x)
}

/// A LayerNorm's epsilon. Burn 0.21 keeps the field private; the module's `Display` (its
/// `ModuleDisplay` content, `epsilon: …`) is the only way to read it.
#[cfg(feature = "flex-kernels")]
fn layer_norm_epsilon<B: Backend>(norm: &LayerNorm<B>) -> Option<f64> {
    let shown = norm.to_string();
    let rest = &shown[shown.find("epsilon: ")? + "epsilon: ".len()..];
    let end = rest.find(|c: char| c == ',' || c == '}' || c.is_whitespace())?;
    rest[..end].parse().ok()
}

/// Exact GELU `x·Φ(x)` under `Autodiff<Flex>` as one operation with its own backward; the
/// input back for every other backend.
pub(crate) fn gelu_autodiff<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex-kernels")]
    return train::activation(x, train::GELU);
    #[cfg(not(feature = "flex-kernels"))]
    Err(x)
}

/// `linear.forward(x)` for `x: [M, K]`: on flex one gemm onto the bias rows, under
/// `Autodiff<Flex>` the same as one tracked operation.
pub fn linear2d<B: Backend>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex-kernels")]
    {
        let bias = linear.bias.as_ref().map(|b| b.val());
        let weight = linear.weight.val();
        if let Some(y) = flex::linear(&x, &weight, bias.as_ref()) {
            return y;
        }
        if let Some(y) = train::linear(&x, &weight, bias.as_ref()) {
            return y;
        }
    }
    linear.forward(x)
}

/// Multi-head attention `softmax(q kᵀ/√d + bias) v` on flex, with dropout `p` on the
/// probabilities when `dropout > 0` (training only); the inputs back otherwise.
///
/// `q`: `[B, Tq, D]`, `k`/`v`: `[B, Tk, D]`, `bias`: `[B or 1, 1, Tq or 1, Tk]`. Without autodiff
/// (and without dropout) the inference kernel runs; under `Autodiff<Flex>` the kernel with its
/// own backward (`train.rs`).
pub(crate) fn attention<B: Backend>(
    inputs: AttentionInputs<B>,
    heads: usize,
    dropout: f64,
) -> Result<Tensor<B, 3>, AttentionInputs<B>> {
    #[cfg(feature = "flex-kernels")]
    {
        let shared_heads = inputs.bias.as_ref().is_none_or(|b| b.dims()[1] == 1);
        if shared_heads {
            let inputs = if dropout == 0.0 {
                let AttentionInputs { q, k, v, bias } = inputs;
                match flex::attention(q, k, v, heads, bias) {
                    Ok(out) => return Ok(out),
                    Err(back) => back,
                }
            } else {
                inputs
            };
            return train::attention(inputs, heads, dropout);
        }
    }
    let _ = (heads, dropout);
    Err(inputs)
}

/// Self-attention on a packed `qkv [B, T, 3D]` (q | k | v along the last dimension): under
/// `Autodiff<Flex>` one tracked operation whose gradient is one packed tensor, written in place
/// (Burn's `chunk` backward zero-fills and copies a packed tensor per part and sums them); the
/// inputs back for every other backend. `bias` as [`attention`].
pub(crate) fn packed_attention<B: Backend>(
    inputs: PackedInputs<B>,
    heads: usize,
) -> Result<Tensor<B, 3>, PackedInputs<B>> {
    #[cfg(feature = "flex-kernels")]
    if inputs.bias.as_ref().is_none_or(|b| b.dims()[1] == 1) {
        return train::packed_attention(inputs, heads);
    }
    let _ = heads;
    Err(inputs)
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    type Plain = Autodiff<Flex>;

    /// A random `[2, 5, 9]` tensor as a transposed (non-contiguous) view, on flex and on
    /// `Autodiff<Flex>` (where the formulas run) with the same values.
    fn inputs() -> (Tensor<Flex, 3>, Tensor<Plain, 3>) {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::random([2, 9, 5], Distribution::Normal(0.0, 3.0), &device);
        let plain = Tensor::<Plain, 3>::from_data(x.to_data(), &device);
        (x.swap_dims(1, 2), plain.swap_dims(1, 2))
    }

    fn assert_same<const D: usize>(fast: Tensor<Flex, D>, plain: Tensor<Plain, D>) {
        fast.into_data()
            .assert_approx_eq::<f32>(&plain.into_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }

    #[test]
    fn quick_gelu_equals_its_formula_on_strided_input() {
        let (x, plain) = inputs();
        assert_same(
            quick_gelu(x),
            plain.clone() * activation::sigmoid(plain * 1.702),
        );
    }

    #[test]
    fn kernels_leave_a_shared_input_untouched() {
        let (x, _) = inputs();
        let before = x.to_data();
        let _ = quick_gelu(x.clone());
        x.into_data().assert_eq(&before, true);
    }

    /// The patched burn-flex copies N-D views block by block (vendor/burn-flex/PATCH.md):
    /// every permutation of a 4-D tensor, with and without an offset, reads back exactly.
    #[test]
    fn flex_copies_permuted_and_offset_views_exactly() {
        let device = Default::default();
        let dims = [2usize, 3, 4, 5];
        let values: Vec<f32> = (0..2 * 3 * 4 * 6).map(|v| v as f32).collect();
        let wide = Tensor::<Flex, 1>::from_floats(values.as_slice(), &device).reshape([2, 3, 4, 6]);
        let base = wide.narrow(3, 1, 5);
        let at = |i: [usize; 4]| (((i[0] * 3 + i[1]) * 4 + i[2]) * 6 + i[3] + 1) as f32;
        for perm in [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2], [2, 3, 0, 1]] {
            let permuted = base.clone().permute(perm);
            let shape: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
            let mut expected = Vec::new();
            for a in 0..shape[0] {
                for b in 0..shape[1] {
                    for c in 0..shape[2] {
                        for d in 0..shape[3] {
                            let mut index = [0; 4];
                            for (k, v) in [a, b, c, d].into_iter().enumerate() {
                                index[perm[k]] = v;
                            }
                            expected.push(at(index));
                        }
                    }
                }
            }
            assert_eq!(
                permuted.into_data().to_vec::<f32>().unwrap(),
                expected,
                "{perm:?}"
            );
        }
    }

    #[test]
    fn linear_equals_burn_linear_with_and_without_bias() {
        let device = Default::default();
        for bias in [true, false] {
            let linear = LinearConfig::new(9, 4)
                .with_bias(bias)
                .init::<Flex>(&device);
            let x = Tensor::<Flex, 2>::random([6, 9], Distribution::Default, &device);
            linear2d(&linear, x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&linear.forward(x).into_data(), Tolerance::default());
        }
    }
}
