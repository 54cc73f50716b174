//! Multi-head attention in the layouts of the checkpoints we load.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::weights::{StateWriter, WeightMap};

/// `linear.forward(x)` for `x: [B, T, D]`, computed as one `[B·T, D] × [D, O]` product.
///
/// Burn's `Linear` on a 3-D input is a broadcast batched matmul: `B` separate products, each
/// packing the weight again and each too small to use every thread. Folding the batch into the
/// rows gives one large product; the result is the same up to float round-off.
pub fn linear3d<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, tokens, width] = x.dims();
    let out = linear.forward(x.reshape([batch * tokens, width]));
    let out_width = out.dims()[1];
    out.reshape([batch, tokens, out_width])
}

/// Scaled dot-product attention over heads.
///
/// `q`: `[B, Tq, D]`, `k`/`v`: `[B, Tk, D]`, `bias`: additive logits broadcastable to
/// `[B, H, Tq, Tk]` (padding or causal masks). Returns `[B, Tq, D]`.
///
/// Spelled out (batched matmuls, softmax) rather than Burn's fused `attention` op: on the
/// flex CPU backend the fused op runs head by head on one thread and measured slower here
/// (see docs/performance.md).
pub fn multi_head_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    bias: Option<Tensor<B, 4>>,
) -> Tensor<B, 3> {
    let [batch, tq, dim] = q.dims();
    let tk = k.dims()[1];
    let head_dim = dim / heads;
    let split = |x: Tensor<B, 3>, t: usize| x.reshape([batch, t, heads, head_dim]).swap_dims(1, 2);
    let q = split(q, tq) * (1.0 / (head_dim as f64).sqrt());
    let (k, v) = (split(k, tk), split(v, tk));
    let mut scores = q.matmul(k.swap_dims(2, 3));
    if let Some(bias) = bias {
        scores = scores + bias;
    }
    let probs = softmax(scores, 3);
    probs.matmul(v).swap_dims(1, 2).reshape([batch, tq, dim])
}

/// `nn.MultiheadAttention` as open_clip uses it: one packed `in_proj` (q|k|v) and `out_proj`.
#[derive(Module, Debug)]
pub struct PackedSelfAttention<B: Backend> {
    /// Packed q|k|v projection, `[D, 3D]` in Burn layout.
    pub in_proj: Linear<B>,
    /// Output projection.
    pub out_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> PackedSelfAttention<B> {
    /// A randomly initialised attention of `width` channels and `heads` heads.
    pub fn new(width: usize, heads: usize, device: &B::Device) -> Self {
        Self {
            in_proj: LinearConfig::new(width, 3 * width).init(device),
            out_proj: LinearConfig::new(width, width).init(device),
            heads,
        }
    }

    /// Self-attention: `[B, T, D]` -> `[B, T, D]`, with optional additive mask `[.., T, T]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let qkv = linear3d(&self.in_proj, x);
        let mut parts = qkv.chunk(3, 2).into_iter();
        let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("chunk(3) of a 3D-wide tensor yields three parts")
        };
        linear3d(
            &self.out_proj,
            multi_head_attention(q, k, v, self.heads, bias),
        )
    }

    /// Writes `in_proj_weight`, `in_proj_bias`, `out_proj.*` under `prefix`.
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        s.transposed(&self.in_proj.weight, format!("{prefix}.in_proj_weight"));
        if let Some(bias) = &self.in_proj.bias {
            s.param(bias, format!("{prefix}.in_proj_bias"));
        }
        s.linear(&self.out_proj, &format!("{prefix}.out_proj"));
    }

    /// Loads `in_proj_weight [3D, D]`, `in_proj_bias`, `out_proj.{weight,bias}`.
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        self.in_proj.weight = w.transposed(
            self.in_proj.weight,
            &format!("{prefix}.in_proj_weight"),
            device,
        );
        self.in_proj.bias = self
            .in_proj
            .bias
            .map(|b| w.param(b, &format!("{prefix}.in_proj_bias"), device));
        self.out_proj = w.linear(self.out_proj, &format!("{prefix}.out_proj"), device);
        self
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn linear3d_equals_linear_forward_on_every_batch_size() {
        let device = Default::default();
        for (batch, bias) in [(1, true), (3, true), (2, false)] {
            let linear = LinearConfig::new(8, 5)
                .with_bias(bias)
                .init::<Flex>(&device);
            let x = Tensor::<Flex, 3>::random([batch, 7, 8], Distribution::Default, &device);
            let expected = linear.forward(x.clone());
            let actual = linear3d(&linear, x);
            assert_eq!(actual.dims(), [batch, 7, 5]);
            actual
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
        }
    }
}
