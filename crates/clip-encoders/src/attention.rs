//! Multi-head attention in the layouts of the checkpoints we load.

use burn::nn::{Dropout, Linear, LinearConfig};
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
    let out = crate::fast::linear2d(linear, x.reshape([batch * tokens, width]));
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
    multi_head_attention_with(q, k, v, heads, bias, None)
}

/// [`multi_head_attention`] with dropout on the attention probabilities (BERT while training;
/// Burn's `Dropout` is the identity without autodiff). On flex the fused kernels run: the
/// inference one without autodiff, the one with its own backward under `Autodiff<Flex>`.
pub(crate) fn multi_head_attention_with<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    bias: Option<Tensor<B, 4>>,
    dropout: Option<&Dropout>,
) -> Tensor<B, 3> {
    let training = B::ad_enabled(&q.device());
    let dropout = dropout.filter(|d| training && d.prob > 0.0);
    let inputs = crate::fast::AttentionInputs { q, k, v, bias };
    let (q, k, v, bias) =
        match crate::fast::attention(inputs, heads, dropout.map_or(0.0, |d| d.prob)) {
            Ok(out) => return out,
            Err(back) => (back.q, back.k, back.v, back.bias),
        };
    let on_probs = |probs| match dropout {
        Some(dropout) => dropout.forward(probs),
        None => probs,
    };
    attention_formula(q, k, v, heads, bias, on_probs)
}

/// Multi-head attention in Burn ops (any backend; Burn's own gradients), with `on_probs`
/// applied to the probabilities `[B, H, Tq, Tk]` (dropout).
pub(crate) fn attention_formula<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    bias: Option<Tensor<B, 4>>,
    on_probs: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [batch, tq, dim] = q.dims();
    let tk = k.dims()[1];
    let head_dim = dim / heads;
    let split = |x: Tensor<B, 3>, t: usize| x.reshape([batch, t, heads, head_dim]).swap_dims(1, 2);
    let q = split(q, tq) * (1.0 / (head_dim as f64).sqrt());
    let (k, v) = (split(k, tk), split(v, tk));
    let attend = |q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>, bias: Option<Tensor<B, 4>>| {
        let mut scores = q.matmul(k.swap_dims(2, 3));
        if let Some(bias) = bias {
            scores = add_bias(scores, bias);
        }
        on_probs(softmax(scores, 3)).matmul(v)
    };
    let heads_out = match bias {
        // A bias that differs per batch entry (padding masks): one entry at a time, so every
        // addition is of one bias row shared by all rows, which CPU backends vectorise; the
        // batched broadcast is walked element by element.
        Some(bias) if batch > 1 && bias.dims()[0] == batch => {
            let entry = |x: &Tensor<B, 4>, b: usize| x.clone().narrow(0, b, 1);
            let outputs = (0..batch)
                .map(|b| {
                    attend(
                        entry(&q, b),
                        entry(&k, b),
                        entry(&v, b),
                        Some(entry(&bias, b)),
                    )
                })
                .collect();
            Tensor::cat(outputs, 0)
        }
        bias => attend(q, k, v, bias),
    };
    heads_out.swap_dims(1, 2).reshape([batch, tq, dim])
}

/// `scores [B, H, Tq, Tk] + bias` for a bias shared by the batch and the heads
/// (`[1, 1, 1 or Tq, Tk]`) or of batch 1, added as one row repeated over flat rows.
fn add_bias<B: Backend>(scores: Tensor<B, 4>, bias: Tensor<B, 4>) -> Tensor<B, 4> {
    let dims = scores.dims();
    let [batch, heads, tq, tk] = dims;
    let [bias_batch, bias_heads, bias_rows, _] = bias.dims();
    if bias_batch != 1 || bias_heads != 1 {
        return scores + bias;
    }
    let row = bias_rows * tk;
    let flat = scores.reshape([batch * heads * tq * tk / row, row]);
    (flat + bias.reshape([1, row])).reshape(dims)
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
        let inputs = crate::fast::PackedInputs { qkv, bias };
        let (qkv, bias) = match crate::fast::packed_attention(inputs, self.heads) {
            Ok(out) => return linear3d(&self.out_proj, out),
            Err(back) => (back.qkv, back.bias),
        };
        let mut parts = qkv.chunk(3, 2).into_iter();
        let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("chunk(3) of a 3D-wide tensor yields three parts")
        };
        linear3d(
            &self.out_proj,
            multi_head_attention(q, k, v, self.heads, bias),
        )
    }

    /// The value path alone, `out_proj(v_proj(x))` with `v_proj` the value slice of the packed
    /// `in_proj`: `[B, T, D]` -> `[B, T, D]`. Every token's own value, no mixing across tokens:
    /// the dense patch features of the vendored OpenAI CLIP (`ResidualAttentionBlock_CMM`).
    pub fn value_path(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, width] = x.dims();
        // Burn's Linear weight is `[in, out]`: the value projection is the last third of `out`.
        let weight = self.in_proj.weight.val().narrow(1, 2 * width, width);
        let mut value = x.reshape([batch * tokens, width]).matmul(weight);
        if let Some(bias) = &self.in_proj.bias {
            value = value + bias.val().narrow(0, 2 * width, width).unsqueeze_dim(0);
        }
        linear3d(&self.out_proj, value.reshape([batch, tokens, width]))
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

    /// The textbook formula, with the bias broadcast by the backend.
    fn reference_attention(
        q: Tensor<Flex, 3>,
        k: Tensor<Flex, 3>,
        v: Tensor<Flex, 3>,
        heads: usize,
        bias: Option<Tensor<Flex, 4>>,
    ) -> Tensor<Flex, 3> {
        let [batch, tq, dim] = q.dims();
        let tk = k.dims()[1];
        let hd = dim / heads;
        let split = |x: Tensor<Flex, 3>, t: usize| x.reshape([batch, t, heads, hd]).swap_dims(1, 2);
        let mut scores = split(q, tq).matmul(split(k, tk).swap_dims(2, 3)) / (hd as f64).sqrt();
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        softmax(scores, 3)
            .matmul(split(v, tk))
            .swap_dims(1, 2)
            .reshape([batch, tq, dim])
    }

    #[test]
    fn attention_matches_the_textbook_formula_for_every_bias_layout() {
        let device = Default::default();
        let (batch, tq, tk, dim, heads) = (3, 5, 6, 8, 2);
        let random =
            |shape: [usize; 3]| Tensor::<Flex, 3>::random(shape, Distribution::Default, &device);
        let (q, k, v) = (
            random([batch, tq, dim]),
            random([batch, tk, dim]),
            random([batch, tk, dim]),
        );
        // Per-entry padding (entry 1 pads its last two keys), a shared causal-like mask, none.
        let mut padding = vec![0.0f32; batch * tk];
        padding[tk + tk - 2..2 * tk].fill(-1.0e30);
        let padding = Tensor::<Flex, 4>::from_data(
            burn::tensor::TensorData::new(padding, [batch, 1, 1, tk]),
            &device,
        );
        let shared = Tensor::<Flex, 4>::random([1, 1, tq, tk], Distribution::Default, &device);
        let row = Tensor::<Flex, 4>::random([1, 1, 1, tk], Distribution::Default, &device);
        for bias in [Some(padding), Some(shared), Some(row), None] {
            let expected =
                reference_attention(q.clone(), k.clone(), v.clone(), heads, bias.clone());
            let actual = multi_head_attention(q.clone(), k.clone(), v.clone(), heads, bias);
            actual
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
        }
    }

    #[test]
    fn attention_reads_strided_views_of_a_packed_projection() {
        let device = Default::default();
        let (batch, tokens, dim, heads) = (2, 7, 12, 3);
        let packed =
            Tensor::<Flex, 3>::random([batch, tokens, 3 * dim], Distribution::Default, &device);
        let part = |i: usize| packed.clone().narrow(2, i * dim, dim);
        let contiguous = |i: usize| Tensor::<Flex, 3>::from_data(part(i).into_data(), &device);
        let expected =
            reference_attention(contiguous(0), contiguous(1), contiguous(2), heads, None);
        let actual = multi_head_attention(part(0), part(1), part(2), heads, None);
        actual
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
    }

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
