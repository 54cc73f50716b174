//! Multi-head attention with its own backward on `Autodiff<Flex>` (training on the CPU).
//!
//! Spelled out in Burn ops, one attention under autodiff is ~15 tracked operations (head
//! split and merge copies, scale, bias, the five-op softmax, dropout), each a pass over the
//! `[B, H, Tq, Tk]` scores forward and again backward, plus one pass per batch entry when the
//! padding bias differs per entry. Here the forward runs per (entry, head) as the inference
//! kernel does and keeps the probabilities; the backward is, per (entry, head):
//!
//! ```text
//! P' = P ∘ M / keep                 (M the dropout mask; P' = P without dropout)
//! dV = P'ᵀ dO      dP = (dO Vᵀ) ∘ M / keep      dS = P ∘ (dP − rowsum(dP ∘ P))
//! dQ = dS K / √d   dK = dSᵀ Q / √d
//! ```
//!
//! The additive bias (padding or causal mask) must be a constant: a tracked bias hands the
//! inputs back to the Burn formula.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::{DType, Distribution, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::flex::{
    Mat, OutPtr, cast, fill_bias, from_vec, gemm, head_gemm, owned_contiguous, scores_gemm,
};
use simd_math as math;

type Ad = Autodiff<Flex>;
type AdPrimitive = <Ad as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

/// The autodiff primitive of an f32 tensor of `Autodiff<Flex>`, or the tensor back.
fn ad_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<AdPrimitive, Tensor<B, D>> {
    let ad: Tensor<Ad, D> = cast(x)?;
    if ad.dtype() != DType::F32 {
        return Err(cast(ad).expect("B is Autodiff<Flex>"));
    }
    Ok(ad.into_primitive().tensor())
}

fn wrap_ad<B: Backend, const D: usize>(t: AdPrimitive) -> Tensor<B, D> {
    cast(Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(t))).expect("B is Autodiff<Flex>")
}

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    dim: usize,
}

impl Dims {
    fn head_dim(self) -> usize {
        self.dim / self.heads
    }

    fn scale(self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    fn probs_len(self) -> usize {
        self.tq * self.tk
    }
}

/// What the backward pass keeps of the forward.
#[derive(Debug, Clone)]
struct AttentionState {
    dims: Dims,
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    /// Softmax probabilities `[B, H, Tq, Tk]`, contiguous.
    probs: FlexTensor,
    /// The dropout mask (0/1, `[B, H, Tq, Tk]`, contiguous) and 1/keep, when dropout is on.
    dropout: Option<(FlexTensor, f32)>,
}

impl AttentionState {
    /// Per-(entry, head) views of q, k, v.
    fn views(&self, b: usize, h: usize) -> [Mat; 3] {
        let col = (h * self.dims.head_dim()) as isize;
        [&self.q, &self.k, &self.v]
            .map(|t| Mat::of(t, b as isize * t.layout().strides()[0]).offset(col))
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let out_grad = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let wanted = [node_q.is_some(), node_k.is_some(), node_v.is_some()];
        let [dq, dk, dv] = attention_backward(&state, &out_grad, wanted);
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// `softmax(q kᵀ/√d + bias) v` (with dropout `p` on the probabilities when `dropout > 0`) as one
/// tracked operation of `Autodiff<Flex>`; the inputs back for any other backend, dtype or a
/// tracked bias. Shapes as [`super::attention`].
pub(super) fn attention<B: Backend>(
    inputs: super::AttentionInputs<B>,
    heads: usize,
    dropout: f64,
) -> Result<Tensor<B, 3>, super::AttentionInputs<B>> {
    let super::AttentionInputs { q, k, v, bias } = inputs;
    let parts = (ad_f32(q), ad_f32(k), ad_f32(v), bias.map(ad_f32));
    let (q, k, v, bias) = match parts {
        (Ok(q), Ok(k), Ok(v), None) => (q, k, v, None),
        (Ok(q), Ok(k), Ok(v), Some(Ok(b))) if !b.is_tracked() => (q, k, v, Some(b)),
        (q, k, v, b) => {
            let back3 = |t: Result<AdPrimitive, Tensor<B, 3>>| t.map(wrap_ad).unwrap_or_else(|t| t);
            return Err(super::AttentionInputs {
                q: back3(q),
                k: back3(k),
                v: back3(v),
                bias: b.map(|b| b.map(wrap_ad).unwrap_or_else(|t| t)),
            });
        }
    };
    let [batch, tq, dim] = q.primitive.layout().shape().dims();
    let tk = k.primitive.layout().shape()[1];
    let dims = Dims {
        batch,
        heads,
        tq,
        tk,
        dim,
    };
    let mask = (dropout > 0.0).then(|| {
        let keep = 1.0 - dropout;
        let shape = [batch, heads, tq, tk];
        let mask =
            Tensor::<Flex, 4>::random(shape, Distribution::Bernoulli(keep), &Default::default());
        (
            owned_contiguous(mask.into_primitive().tensor()),
            (1.0 / keep) as f32,
        )
    });
    Ok(attention_masked(dims, [q, k, v], bias, mask))
}

/// The tracked operation for a given dropout mask.
fn attention_masked<B: Backend>(
    dims: Dims,
    [q, k, v]: [AdPrimitive; 3],
    bias: Option<AdPrimitive>,
    mask: Option<(FlexTensor, f32)>,
) -> Tensor<B, 3> {
    let bias = bias.map(|b| owned_contiguous(b.primitive));
    let (out, probs) = attention_forward(
        dims,
        [&q.primitive, &k.primitive, &v.primitive],
        bias.as_ref(),
        mask.as_ref(),
    );
    let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
    let out = match AttentionBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = AttentionState {
                dims,
                q: q.primitive,
                k: k.primitive,
                v: v.primitive,
                probs,
                dropout: mask,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    wrap_ad(out)
}

/// The forward: the merged output `[B, Tq, D]` and the probabilities `[B, H, Tq, Tk]`.
fn attention_forward(
    dims: Dims,
    [q, k, v]: [&FlexTensor; 3],
    bias: Option<&FlexTensor>,
    dropout: Option<&(FlexTensor, f32)>,
) -> (FlexTensor, FlexTensor) {
    let Dims {
        batch,
        heads,
        tq,
        tk,
        dim,
    } = dims;
    let head_dim = dims.head_dim();
    let mut out = vec![0.0f32; batch * tq * dim];
    let mut probs = vec![0.0f32; batch * heads * dims.probs_len()];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let view = |t: &FlexTensor, b: usize, h: usize| {
        Mat::of(t, b as isize * t.layout().strides()[0]).offset((h * head_dim) as isize)
    };
    probs
        .par_chunks_mut(dims.probs_len())
        .enumerate()
        .for_each_init(
            || vec![0.0f32; if dropout.is_some() { tq * tk } else { 0 }],
            |dropped, (task, scores)| {
                let (b, h) = (task / heads, task % heads);
                let keep = bias.is_some_and(|bias| fill_bias(scores, bias, b, tk));
                // SAFETY: `scores` is this task's block of `probs`; the q/k/v views stay inside
                // their tensors; the output block (entry b, columns of head h) is this task's.
                unsafe {
                    scores_gemm(
                        scores,
                        [tq, tk, head_dim],
                        keep,
                        view(q, b, h),
                        view(k, b, h),
                        dims.scale(),
                    );
                }
                math::softmax_rows_in_place(scores, tk);
                let weights: &[f32] = match dropout {
                    Some((mask, inv_keep)) => {
                        let mask = &mask.storage::<f32>()[task * tq * tk..][..tq * tk];
                        for ((d, p), m) in dropped.iter_mut().zip(scores.iter()).zip(mask) {
                            *d = p * m * inv_keep;
                        }
                        dropped
                    }
                    None => scores,
                };
                let weights = Mat::contiguous(weights.as_ptr(), tk);
                // SAFETY: as above.
                unsafe {
                    let dst = out_ptr.get().add(b * tq * dim + h * head_dim);
                    head_gemm(dst, dim, [tq, head_dim, tk], weights, view(v, b, h), 1.0);
                }
            },
        );
    (
        from_vec(out, vec![batch, tq, dim]),
        from_vec(probs, vec![batch, heads, tq, tk]),
    )
}

/// The gradients of q, k and v (each `[B, T, D]`), for those `wanted`.
fn attention_backward(
    state: &AttentionState,
    out_grad: &FlexTensor,
    wanted: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let dims = state.dims;
    let Dims {
        batch,
        heads,
        tq,
        tk,
        dim,
    } = dims;
    let head_dim = dims.head_dim();
    let scale = dims.scale();
    let zeros = |t: usize, on: bool| on.then(|| vec![0.0f32; batch * t * dim]);
    let [mut dq, mut dk, mut dv] = [
        zeros(tq, wanted[0]),
        zeros(tk, wanted[1]),
        zeros(tk, wanted[2]),
    ];
    let ptr = |g: &mut Option<Vec<f32>>| g.as_mut().map(|g| OutPtr(g.as_mut_ptr()));
    let (dq_ptr, dk_ptr, dv_ptr) = (ptr(&mut dq), ptr(&mut dk), ptr(&mut dv));
    let all_probs = state.probs.storage::<f32>();
    let go_stride = out_grad.layout().strides()[0];

    (0..batch * heads).into_par_iter().for_each_init(
        || (vec![0.0f32; tq * tk], vec![0.0f32; tq * tk]),
        |(dropped, dp), task| {
            let (b, h) = (task / heads, task % heads);
            let [q, k, v] = state.views(b, h);
            let go = Mat::of(out_grad, b as isize * go_stride).offset((h * head_dim) as isize);
            let probs = &all_probs[task * tq * tk..][..tq * tk];
            let mask = state
                .dropout
                .as_ref()
                .map(|(m, s)| (&m.storage::<f32>()[task * tq * tk..][..tq * tk], *s));
            let weights: &[f32] = match mask {
                Some((mask, inv_keep)) => {
                    for ((d, p), m) in dropped.iter_mut().zip(probs).zip(mask) {
                        *d = p * m * inv_keep;
                    }
                    dropped
                }
                None => probs,
            };
            let col = h * head_dim;
            // SAFETY: every task writes only the columns of head h of entry b in dq/dk/dv, and
            // its own dp buffer; all views stay inside their tensors.
            unsafe {
                if let Some(dv) = dv_ptr {
                    let dst = dv.get().add(b * tk * dim + col);
                    head_gemm(
                        dst,
                        dim,
                        [tk, head_dim, tq],
                        Mat::contiguous(weights.as_ptr(), tk).transposed(),
                        go,
                        1.0,
                    );
                }
                gemm(
                    tq,
                    tk,
                    head_dim,
                    dp.as_mut_ptr(),
                    tk as isize,
                    false,
                    go,
                    v.transposed(),
                    1.0,
                    false,
                );
            }
            if let Some((mask, inv_keep)) = mask {
                for (d, m) in dp.iter_mut().zip(mask) {
                    *d *= m * inv_keep;
                }
            }
            softmax_backward_rows(probs, dp, tk);
            let ds = Mat::contiguous(dp.as_ptr(), tk);
            // SAFETY: as above.
            unsafe {
                if let Some(dq) = dq_ptr {
                    let dst = dq.get().add(b * tq * dim + col);
                    head_gemm(dst, dim, [tq, head_dim, tk], ds, k, scale);
                }
                if let Some(dk) = dk_ptr {
                    let dst = dk.get().add(b * tk * dim + col);
                    head_gemm(dst, dim, [tk, head_dim, tq], ds.transposed(), q, scale);
                }
            }
        },
    );
    let grad = |g: Option<Vec<f32>>, t: usize| g.map(|g| from_vec(g, vec![batch, t, dim]));
    [grad(dq, tq), grad(dk, tk), grad(dv, tk)]
}

/// `dp ← p ∘ (dp − Σ_row dp ∘ p)` row by row: the softmax backward, in place.
fn softmax_backward_rows(probs: &[f32], dp: &mut [f32], row_len: usize) {
    for (p, d) in probs
        .chunks_exact(row_len)
        .zip(dp.chunks_exact_mut(row_len))
    {
        let dot: f32 = p.iter().zip(d.iter()).map(|(p, d)| p * d).sum();
        for (d, p) in d.iter_mut().zip(p) {
            *d = p * (*d - dot);
        }
    }
}

/// An element-wise activation: its kernel in place and its backward (`grads *= f'(xs)`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Activation {
    pub forward: fn(&mut [f32]),
    pub backward: fn(&[f32], &mut [f32]),
}

/// QuickGELU `x·σ(1.702x)`.
pub(super) const QUICK_GELU: Activation = Activation {
    forward: math::quick_gelu_in_place,
    backward: math::quick_gelu_backward,
};

/// Exact GELU `x·Φ(x)`.
pub(super) const GELU: Activation = Activation {
    forward: math::gelu_in_place,
    backward: math::gelu_backward,
};

#[derive(Debug)]
struct ActivationBackward;

impl Backward<Flex, 1> for ActivationBackward {
    /// The input (contiguous) and the activation.
    type State = (FlexTensor, Activation);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let mut grad = owned_contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node {
            let (input, activation) = ops.state;
            grad.storage_mut::<f32>()
                .par_chunks_mut(CHUNK)
                .zip(input.storage::<f32>().par_chunks(CHUNK))
                .for_each(|(g, x)| (activation.backward)(x, g));
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// Elements per rayon task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `activation(x)` as one tracked operation of `Autodiff<Flex>` (Burn's formulas for GELU and
/// QuickGELU are three to five operations, each with its own backward pass over the tensor);
/// `x` back for any other backend.
pub(super) fn activation<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    activation: Activation,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let x = ad_f32(x)?;
    let input = owned_contiguous(x.primitive.clone());
    let values = input.storage::<f32>();
    let mut out = vec![0.0f32; values.len()];
    // Copy and apply chunk by chunk, while each chunk is in cache.
    out.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            y.copy_from_slice(x);
            (activation.forward)(y);
        });
    let out = from_vec(out, input.layout().shape().to_vec());
    let out = match ActivationBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((input, activation), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(wrap_ad(out))
}

/// What the LayerNorm backward keeps: the normalised input `x̂`, `1/σ` per row, and γ.
#[derive(Debug, Clone)]
struct LayerNormState {
    normalized: FlexTensor,
    inv_std: FlexTensor,
    gamma: FlexTensor,
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<LayerNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let out_grad = owned_contiguous(grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let width = state.gamma.layout().shape()[0];
        let dy = out_grad.storage::<f32>();
        let xhat = state.normalized.storage::<f32>();
        if let Some(node) = node_gamma {
            let products: Vec<f32> = dy.iter().zip(xhat).map(|(g, x)| g * x).collect();
            grads.register::<Flex>(
                node.id,
                from_vec(column_sums(&products, width), vec![width]),
            );
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, from_vec(column_sums(dy, width), vec![width]));
        }
        if let Some(node) = node_x {
            let gamma = state.gamma.storage::<f32>();
            let inv_std = state.inv_std.storage::<f32>();
            let mut dx = vec![0.0f32; dy.len()];
            let rows_per_task = (CHUNK / width).max(1);
            dx.par_chunks_mut(rows_per_task * width)
                .zip(dy.par_chunks(rows_per_task * width))
                .zip(xhat.par_chunks(rows_per_task * width))
                .zip(inv_std.par_chunks(rows_per_task))
                .for_each(|(((dx, dy), xhat), inv_std)| {
                    layer_norm_backward_rows(dx, dy, xhat, inv_std, gamma);
                });
            let shape = out_grad.layout().shape().to_vec();
            grads.register::<Flex>(node.id, from_vec(dx, shape));
        }
    }
}

/// `dx = (1/σ)·(g − mean(g) − x̂·mean(g∘x̂))` per row, with `g = dy∘γ`.
fn layer_norm_backward_rows(
    dx: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
) {
    let width = gamma.len();
    let rows = dx
        .chunks_exact_mut(width)
        .zip(dy.chunks_exact(width))
        .zip(xhat.chunks_exact(width));
    for (((dx, dy), xhat), &inv_std) in rows.zip(inv_std) {
        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
        for ((&d, &x), &w) in dy.iter().zip(xhat).zip(gamma) {
            sum_g += d * w;
            sum_gx += d * w * x;
        }
        let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
        for (((out, &d), &x), &w) in dx.iter_mut().zip(dy).zip(xhat).zip(gamma) {
            *out = inv_std * (d * w - mean_g - x * mean_gx);
        }
    }
}

/// Sums of the columns of a row-major `[N, width]` buffer.
fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    let rows_per_task = (CHUNK / width).max(1);
    values
        .par_chunks(rows_per_task * width)
        .map(|block| {
            let mut sums = vec![0.0f32; width];
            for row in block.chunks_exact(width) {
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sums
        })
        .reduce(
            || vec![0.0f32; width],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// LayerNorm over the last dimension (`x [.., D]`, γ and β `[D]`) as one tracked operation of
/// `Autodiff<Flex>`; the inputs back for any other backend.
pub(super) fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let (x, gamma, beta) = match (ad_f32(x), ad_f32(gamma), ad_f32(beta)) {
        (Ok(x), Ok(g), Ok(b)) => (x, g, b),
        (x, _, _) => return Err(x.map(wrap_ad).unwrap_or_else(|t| t)),
    };
    let input = owned_contiguous(x.primitive.clone());
    let gamma_values = owned_contiguous(gamma.primitive.clone());
    let beta_values = owned_contiguous(beta.primitive.clone());
    let width = gamma_values.layout().shape()[0];
    let values = input.storage::<f32>();
    let rows = values.len() / width;
    let (mut out, mut xhat, mut inv_std) = (
        vec![0.0f32; values.len()],
        vec![0.0f32; values.len()],
        vec![0.0f32; rows],
    );
    let rows_per_task = (CHUNK / width).max(1);
    let (g, b) = (gamma_values.storage::<f32>(), beta_values.storage::<f32>());
    out.par_chunks_mut(rows_per_task * width)
        .zip(xhat.par_chunks_mut(rows_per_task * width))
        .zip(inv_std.par_chunks_mut(rows_per_task))
        .zip(values.par_chunks(rows_per_task * width))
        .for_each(|(((out, xhat), inv_std), x)| {
            let rows = out
                .chunks_exact_mut(width)
                .zip(xhat.chunks_exact_mut(width));
            for (((out, xhat), inv), x) in rows.zip(inv_std).zip(x.chunks_exact(width)) {
                let mean = x.iter().sum::<f32>() / width as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
                *inv = 1.0 / (var + epsilon as f32).sqrt();
                for ((((o, h), &v), &g), &b) in
                    out.iter_mut().zip(xhat.iter_mut()).zip(x).zip(g).zip(b)
                {
                    *h = (v - mean) * *inv;
                    *o = *h * g + b;
                }
            }
        });
    let shape = input.layout().shape().to_vec();
    let out = from_vec(out, shape.clone());
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match LayerNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = LayerNormState {
                normalized: from_vec(xhat, shape),
                inv_std: from_vec(inv_std, vec![rows]),
                gamma: gamma_values,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(wrap_ad(out))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tolerance;

    use super::*;
    use crate::attention::attention_formula;

    const HEADS: usize = 2;

    /// q, k, v `[2, 5, 8]` as strided chunks of one packed tensor (as ViT's `in_proj` gives
    /// them), tracked leaves, and a weighting of the output that makes every element matter.
    struct Case {
        packed: Tensor<Ad, 3>,
        weights: Tensor<Ad, 3>,
    }

    impl Case {
        fn new() -> Self {
            let device = Default::default();
            let normal = Distribution::Normal(0.0, 1.5);
            Self {
                packed: Tensor::random([2, 5, 24], normal, &device).require_grad(),
                weights: Tensor::random([2, 5, 8], normal, &device),
            }
        }

        /// Output and the gradient of the packed input, through `attend`.
        fn run(
            &self,
            attend: impl Fn([Tensor<Ad, 3>; 3]) -> Tensor<Ad, 3>,
        ) -> (TensorData, TensorData) {
            let packed = self.packed.clone();
            let mut parts = packed.clone().chunk(3, 2).into_iter();
            let qkv = [(); 3].map(|_| parts.next().expect("three chunks"));
            let out = attend(qkv);
            let grads = (out.clone() * self.weights.clone()).sum().backward();
            let grad = packed.grad(&grads).expect("the input is tracked");
            (out.into_data(), grad.into_data())
        }
    }

    fn padding_bias(entries: usize) -> Tensor<Ad, 4> {
        let rows: Vec<f32> = (0..entries * 5)
            .map(|i| if i % 5 >= 5 - i / 5 % 5 { -1e4 } else { 0.0 })
            .collect();
        Tensor::<Ad, 1>::from_floats(rows.as_slice(), &Default::default())
            .reshape([entries, 1, 1, 5])
    }

    /// Round-off only: sums run in another order (a wrong mask or scale is off by > 10 %).
    fn assert_close(fused: TensorData, formula: TensorData) {
        fused.assert_approx_eq::<f32>(&formula, Tolerance::rel_abs(1e-4, 1e-5));
    }

    fn fused(qkv: [Tensor<Ad, 3>; 3], bias: Option<Tensor<Ad, 4>>, p: f64) -> Tensor<Ad, 3> {
        let [q, k, v] = qkv;
        let inputs = super::super::AttentionInputs { q, k, v, bias };
        attention(inputs, HEADS, p).unwrap_or_else(|_| panic!("Autodiff<Flex> takes the kernel"))
    }

    #[test]
    fn output_and_gradients_equal_the_formula_with_per_entry_padding() {
        let case = Case::new();
        let bias = padding_bias(2);
        let (out, grad) = case.run(|qkv| fused(qkv, Some(bias.clone()), 0.0));
        let (out_f, grad_f) =
            case.run(|[q, k, v]| attention_formula(q, k, v, HEADS, Some(bias.clone()), |p| p));
        assert_close(out, out_f);
        assert_close(grad, grad_f);
    }

    #[test]
    fn dropout_gradients_follow_the_mask_as_the_formula_does() {
        let case = Case::new();
        let device = Default::default();
        let keep = 0.7;
        let mask =
            Tensor::<Flex, 4>::random([2, HEADS, 5, 5], Distribution::Bernoulli(keep), &device);
        let mask_ad = Tensor::<Ad, 4>::from_data(mask.to_data(), &device);
        // Shared by the entries: the formula then applies `on_probs` to the whole batch at once.
        let bias = padding_bias(1);
        let dims = Dims {
            batch: 2,
            heads: HEADS,
            tq: 5,
            tk: 5,
            dim: 8,
        };
        let prim = |t: Tensor<Ad, 3>| t.into_primitive().tensor();
        let dropped = (
            owned_contiguous(mask.into_primitive().tensor()),
            (1.0 / keep) as f32,
        );
        let (out, grad) = case.run(|[q, k, v]| {
            let bias = Some(bias.clone().into_primitive().tensor());
            attention_masked(
                dims,
                [prim(q), prim(k), prim(v)],
                bias,
                Some(dropped.clone()),
            )
        });
        let on_probs = |p: Tensor<Ad, 4>| p * mask_ad.clone() / keep;
        let (out_f, grad_f) =
            case.run(|[q, k, v]| attention_formula(q, k, v, HEADS, Some(bias.clone()), on_probs));
        assert_close(out, out_f);
        assert_close(grad, grad_f);
    }

    #[test]
    fn dropout_draws_a_mask_from_the_backend_seed() {
        let case = Case::new();
        let (out, _) = case.run(|qkv| fused(qkv, None, 0.5));
        let (no_dropout, _) = case.run(|qkv| fused(qkv, None, 0.0));
        assert_ne!(
            out.to_vec::<f32>().expect("f32"),
            no_dropout.to_vec::<f32>().expect("f32")
        );
    }

    #[test]
    fn quick_gelu_output_and_gradient_equal_the_formula_on_a_strided_view() {
        let device = Default::default();
        let x = Tensor::<Ad, 3>::random([2, 7, 3], Distribution::Normal(0.0, 3.0), &device)
            .require_grad();
        let weights = Tensor::<Ad, 3>::random([2, 3, 7], Distribution::Default, &device);
        let run = |f: &dyn Fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>| {
            let y = f(x.clone().swap_dims(1, 2));
            let grads = (y.clone() * weights.clone()).sum().backward();
            (y.into_data(), x.grad(&grads).expect("tracked").into_data())
        };
        let fused = |x| {
            activation(x, QUICK_GELU).unwrap_or_else(|_| panic!("Autodiff<Flex> takes the kernel"))
        };
        let formula = |x: Tensor<Ad, 3>| x.clone() * burn::tensor::activation::sigmoid(x * 1.702);
        let (y, grad) = run(&fused);
        let (y_f, grad_f) = run(&formula);
        assert_close(y, y_f);
        assert_close(grad, grad_f);
    }

    #[test]
    fn layer_norm_output_and_gradients_equal_burns_layer_norm() {
        use burn::module::Param;
        use burn::nn::LayerNormConfig;
        let device = Default::default();
        let normal = Distribution::Normal(0.5, 2.0);
        let mut norm = LayerNormConfig::new(6)
            .with_epsilon(1e-3)
            .init::<Ad>(&device);
        norm.gamma = Param::from_tensor(Tensor::random([6], normal, &device));
        norm.beta = Some(Param::from_tensor(Tensor::random([6], normal, &device)));
        let x = Tensor::<Ad, 3>::random([2, 6, 4], normal, &device).require_grad();
        let weights = Tensor::<Ad, 3>::random([2, 4, 6], normal, &device);
        let run = |f: &dyn Fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>| {
            let y = f(x.clone().swap_dims(1, 2));
            let grads = (y.clone() * weights.clone()).sum().backward();
            let grad = |t: Tensor<Ad, 1>| t.grad(&grads).expect("tracked").into_data();
            let beta = norm.beta.as_ref().expect("bias").val();
            let x_grad = x.grad(&grads).expect("tracked").into_data();
            (y.into_data(), x_grad, grad(norm.gamma.val()), grad(beta))
        };
        let fused = run(&|x| super::super::layer_norm(&norm, x));
        let formula = run(&|x| norm.forward(x));
        assert_close(fused.0, formula.0);
        assert_close(fused.1, formula.1);
        assert_close(fused.2, formula.2);
        assert_close(fused.3, formula.3);
    }

    #[test]
    fn layer_norm_epsilon_is_read_from_the_module() {
        use burn::nn::LayerNormConfig;
        for epsilon in [1e-5, 1e-6, 1e-12, 0.25] {
            let norm = LayerNormConfig::new(3)
                .with_epsilon(epsilon)
                .init::<Flex>(&Default::default());
            assert_eq!(super::super::layer_norm_epsilon(&norm), Some(epsilon));
        }
    }

    #[test]
    fn a_tracked_bias_goes_back_to_the_formula() {
        let device = Default::default();
        let x = Tensor::<Ad, 3>::ones([1, 5, 8], &device);
        let bias = Tensor::<Ad, 4>::zeros([1, 1, 1, 5], &device).require_grad();
        let inputs = super::super::AttentionInputs {
            q: x.clone(),
            k: x.clone(),
            v: x,
            bias: Some(bias),
        };
        assert!(attention(inputs, HEADS, 0.0).is_err());
    }
}
