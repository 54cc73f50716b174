//! The training step's operations with their own backward on `Autodiff<Flex>` (training on
//! the CPU): multi-head attention (q, k, v apart or packed in one tensor), linear layers,
//! LayerNorm, BERT's `LN(residual + dropout(x))`, and the element-wise activations (GELU,
//! QuickGELU, softplus). Each is one tracked operation where Burn's formula is several, each a
//! pass over the tensor forward, another backward, and a kept intermediate.
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
    Mat, OutPtr, cast, fill_bias, from_vec, gemm, head_gemm, linear_primitive, matmul,
    owned_contiguous, scores_gemm, zeros,
};
use simd_math as math;

type Ad = Autodiff<Flex>;
pub(super) type AdPrimitive = <Ad as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

/// The autodiff primitive of an f32 tensor of `Autodiff<Flex>`, or the tensor back.
pub(super) fn ad_f32<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<AdPrimitive, Tensor<B, D>> {
    let ad: Tensor<Ad, D> = cast(x)?;
    if ad.dtype() != DType::F32 {
        return Err(cast(ad).expect("B is Autodiff<Flex>"));
    }
    Ok(ad.into_primitive().tensor())
}

pub(super) fn wrap_ad<B: Backend, const D: usize>(t: AdPrimitive) -> Tensor<B, D> {
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

/// One of q, k, v: a `[B, T, W]` tensor and the first column of the part in it (0, or D and 2D
/// for k and v in a packed q|k|v projection).
#[derive(Debug, Clone)]
struct Part {
    tensor: FlexTensor,
    column: usize,
}

impl Part {
    fn whole(tensor: FlexTensor) -> Self {
        Self { tensor, column: 0 }
    }

    /// The columns of head `h` of batch entry `b`.
    fn view(&self, b: usize, h: usize, head_dim: usize) -> Mat {
        let t = &self.tensor;
        Mat::of(t, b as isize * t.layout().strides()[0]).skip_columns(self.column + h * head_dim)
    }
}

/// What the backward pass keeps of the forward.
#[derive(Debug, Clone)]
struct AttentionState {
    dims: Dims,
    qkv: [Part; 3],
    /// Softmax probabilities `[B, H, Tq, Tk]`, contiguous.
    probs: FlexTensor,
    /// The dropout mask (0/1, `[B, H, Tq, Tk]`, contiguous) and 1/keep, when dropout is on.
    dropout: Option<(FlexTensor, f32)>,
}

impl AttentionState {
    /// Per-(entry, head) views of q, k, v.
    fn views(&self, b: usize, h: usize) -> [Mat; 3] {
        let head_dim = self.dims.head_dim();
        [0, 1, 2].map(|i| self.qkv[i].view(b, h, head_dim))
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let out_grad = grads.consume::<Flex>(&ops.node);
        let wanted = [node_q.is_some(), node_k.is_some(), node_v.is_some()];
        let [dq, dk, dv] = attention_backward(&ops.state, &out_grad, GradLayout::Separate(wanted));
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// Self-attention on one packed q|k|v tensor: its gradient is written straight into one packed
/// buffer (Burn's `chunk` would zero-fill a packed buffer per part, copy the part in, and sum
/// the three).
#[derive(Debug)]
struct PackedAttentionBackward;

impl Backward<Flex, 1> for PackedAttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let out_grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let [packed, _, _] = attention_backward(&ops.state, &out_grad, GradLayout::Packed);
            grads.register::<Flex>(node.id, packed.expect("the packed gradient"));
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
    let mask = dropout_mask(dims, dropout);
    Ok(attention_masked(dims, [q, k, v], bias, mask))
}

/// Self-attention on a packed `qkv [B, T, 3D]` (q, k, v side by side, as ViT's `in_proj` gives
/// them) as one tracked operation of `Autodiff<Flex>` whose gradient is one packed tensor;
/// the inputs back for any other backend, dtype or a tracked bias. `bias` as
/// [`super::attention`]; no dropout (the packed towers have none).
pub(super) fn packed_attention<B: Backend>(
    inputs: super::PackedInputs<B>,
    heads: usize,
) -> Result<Tensor<B, 3>, super::PackedInputs<B>> {
    let super::PackedInputs { qkv, bias } = inputs;
    let (qkv, bias) = match (ad_f32(qkv), bias.map(ad_f32)) {
        (Ok(qkv), None) => (qkv, None),
        (Ok(qkv), Some(Ok(b))) if !b.is_tracked() => (qkv, Some(b)),
        (qkv, b) => {
            return Err(super::PackedInputs {
                qkv: qkv.map(wrap_ad).unwrap_or_else(|t| t),
                bias: b.map(|b| b.map(wrap_ad).unwrap_or_else(|t| t)),
            });
        }
    };
    let [batch, tokens, width] = qkv.primitive.layout().shape().dims();
    let dims = Dims {
        batch,
        heads,
        tq: tokens,
        tk: tokens,
        dim: width / 3,
    };
    Ok(packed_attention_masked(dims, qkv, bias, None))
}

/// A dropout mask `[B, H, Tq, Tk]` (0/1, see [`dropout_keep_mask`]) and 1/keep, or `None` for
/// `p = 0`.
fn dropout_mask(dims: Dims, p: f64) -> Option<(FlexTensor, f32)> {
    (p > 0.0).then(|| dropout_keep_mask(vec![dims.batch, dims.heads, dims.tq, dims.tk], p))
}

/// A dropout mask of `shape` (1 kept, 0 dropped, each kept with probability `1 − p`) and 1/keep.
///
/// Burn's `Dropout` draws every element from the backend generator on one thread (ChaCha and a
/// float compare per element: ~3 % of a BERT training step with the other cores idle). Here the
/// generator gives one 64-bit key per mask and the elements come from a counter-based hash of
/// (key, index) on every thread: as reproducible under `Flex::seed`, independent of the thread
/// count, but a different stream from Burn's.
fn dropout_keep_mask(shape: Vec<usize>, p: f64) -> (FlexTensor, f32) {
    let keep = 1.0 - p;
    let len = shape.iter().product();
    let mask = bernoulli_bits(mask_key(), keep, len);
    (from_vec(mask, shape), (1.0 / keep) as f32)
}

/// One 64-bit key from the backend generator (three 22-bit draws: the int element may be i32).
fn mask_key() -> u64 {
    let draws = Tensor::<Flex, 1, Int>::random(
        [3],
        Distribution::Uniform(0.0, (1u64 << 22) as f64),
        &Default::default(),
    );
    let draws = draws.into_data().convert::<i64>();
    draws
        .as_slice::<i64>()
        .expect("converted to i64")
        .iter()
        .fold(0u64, |key, &draw| key << 22 ^ draw as u64)
}

/// `len` values, each 1.0 with probability `keep` and 0.0 otherwise: element `i` compares a
/// 32-bit half of SplitMix64's output for counter `i / 2` of `key` with `keep · 2³²`.
fn bernoulli_bits(key: u64, keep: f64, len: usize) -> Vec<f32> {
    const PAIRS_PER_TASK: usize = 1 << 13;
    let threshold = (keep * 4_294_967_296.0).round().min(u32::MAX as f64 + 1.0) as u64;
    let bit = |word: u64| if word < threshold { 1.0 } else { 0.0 };
    let mut out = zeros(len);
    out.par_chunks_mut(2 * PAIRS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            let first_pair = (task * PAIRS_PER_TASK) as u64;
            for (j, pair) in chunk.chunks_mut(2).enumerate() {
                let word = splitmix64(
                    key.wrapping_add((first_pair + j as u64).wrapping_mul(GOLDEN_GAMMA)),
                );
                pair[0] = bit(word & 0xFFFF_FFFF);
                if let Some(second) = pair.get_mut(1) {
                    *second = bit(word >> 32);
                }
            }
        });
    out
}

/// SplitMix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The tracked operation for a given dropout mask.
fn attention_masked<B: Backend>(
    dims: Dims,
    [q, k, v]: [AdPrimitive; 3],
    bias: Option<AdPrimitive>,
    mask: Option<(FlexTensor, f32)>,
) -> Tensor<B, 3> {
    let bias = bias.map(|b| owned_contiguous(b.primitive));
    let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
    // The inputs stay alive until the operation is registered: dropping a tracked tensor
    // early lets the autodiff graph free its node.
    let qkv = [&q, &k, &v].map(|t| Part::whole(t.primitive.clone()));
    let (out, probs) = attention_forward(dims, &qkv, bias.as_ref(), mask.as_ref());
    let out = match AttentionBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = AttentionState {
                dims,
                qkv,
                probs,
                dropout: mask,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    wrap_ad(out)
}

/// [`attention_masked`] on a packed q|k|v.
fn packed_attention_masked<B: Backend>(
    dims: Dims,
    qkv: AdPrimitive,
    bias: Option<AdPrimitive>,
    mask: Option<(FlexTensor, f32)>,
) -> Tensor<B, 3> {
    let bias = bias.map(|b| owned_contiguous(b.primitive));
    let node = qkv.node.clone();
    let parts = [0, 1, 2].map(|i| Part {
        tensor: qkv.primitive.clone(),
        column: i * dims.dim,
    });
    let (out, probs) = attention_forward(dims, &parts, bias.as_ref(), mask.as_ref());
    let out = match PackedAttentionBackward
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = AttentionState {
                dims,
                qkv: parts,
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
    qkv: &[Part; 3],
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
    let mut out = zeros(batch * tq * dim);
    let mut probs = zeros(batch * heads * dims.probs_len());
    let out_ptr = OutPtr(out.as_mut_ptr());
    let [q, k, v] = qkv;
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
                        q.view(b, h, head_dim),
                        k.view(b, h, head_dim),
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
                    head_gemm(
                        dst,
                        dim,
                        [tq, head_dim, tk],
                        weights,
                        v.view(b, h, head_dim),
                        1.0,
                    );
                }
            },
        );
    (
        from_vec(out, vec![batch, tq, dim]),
        from_vec(probs, vec![batch, heads, tq, tk]),
    )
}

/// Where the backward writes the gradients of q, k and v.
#[derive(Debug, Clone, Copy)]
enum GradLayout {
    /// One `[B, T, D]` tensor each, for those wanted.
    Separate([bool; 3]),
    /// One `[B, T, 3D]` tensor (self-attention, `Tq = Tk`), returned first.
    Packed,
}

/// The gradient buffer of one part: where head 0 of entry 0 starts, and its strides.
#[derive(Clone, Copy)]
struct GradDst {
    ptr: OutPtr,
    entry_stride: usize,
    row_stride: usize,
}

impl GradDst {
    /// The first element of head `h` (`head_dim` columns) of entry `b`.
    fn at(self, b: usize, h: usize, head_dim: usize) -> *mut f32 {
        // SAFETY (of the offset): callers pass b < B and h < H, inside the buffer.
        unsafe { self.ptr.get().add(b * self.entry_stride + h * head_dim) }
    }
}

/// The gradients of q, k and v, laid out as `layout` says.
fn attention_backward(
    state: &AttentionState,
    out_grad: &FlexTensor,
    layout: GradLayout,
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
    let mut buffers: [Option<Vec<f32>>; 3] = match layout {
        GradLayout::Separate(wanted) => {
            let tokens = [tq, tk, tk];
            [0, 1, 2].map(|i| wanted[i].then(|| zeros(batch * tokens[i] * dim)))
        }
        GradLayout::Packed => [Some(zeros(batch * tq * 3 * dim)), None, None],
    };
    let dsts: [Option<GradDst>; 3] = match layout {
        GradLayout::Separate(_) => {
            let tokens = [tq, tk, tk];
            let mut dsts = [None; 3];
            for ((dst, buffer), t) in dsts.iter_mut().zip(&mut buffers).zip(tokens) {
                *dst = buffer.as_mut().map(|g| GradDst {
                    ptr: OutPtr(g.as_mut_ptr()),
                    entry_stride: t * dim,
                    row_stride: dim,
                });
            }
            dsts
        }
        GradLayout::Packed => {
            let base = buffers[0].as_mut().expect("allocated above").as_mut_ptr();
            [0, 1, 2].map(|i| {
                Some(GradDst {
                    // SAFETY: column i·D of the first row, inside the buffer.
                    ptr: OutPtr(unsafe { base.add(i * dim) }),
                    entry_stride: tq * 3 * dim,
                    row_stride: 3 * dim,
                })
            })
        }
    };
    let [dq_dst, dk_dst, dv_dst] = dsts;
    let all_probs = state.probs.storage::<f32>();
    let go_stride = out_grad.layout().strides()[0];

    (0..batch * heads).into_par_iter().for_each_init(
        || (vec![0.0f32; tq * tk], vec![0.0f32; tq * tk]),
        |(dropped, dp), task| {
            let (b, h) = (task / heads, task % heads);
            let [q, k, v] = state.views(b, h);
            let go = Mat::of(out_grad, b as isize * go_stride).skip_columns(h * head_dim);
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
            // SAFETY: every task writes only the columns of head h of entry b in dq/dk/dv, and
            // its own dp buffer; all views stay inside their tensors.
            unsafe {
                if let Some(dv) = dv_dst {
                    head_gemm(
                        dv.at(b, h, head_dim),
                        dv.row_stride,
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
                if let Some(dq) = dq_dst {
                    let dst = dq.at(b, h, head_dim);
                    head_gemm(dst, dq.row_stride, [tq, head_dim, tk], ds, k, scale);
                }
                if let Some(dk) = dk_dst {
                    let dst = dk.at(b, h, head_dim);
                    head_gemm(
                        dst,
                        dk.row_stride,
                        [tk, head_dim, tq],
                        ds.transposed(),
                        q,
                        scale,
                    );
                }
            }
        },
    );
    let [dq, dk, dv] = buffers;
    match layout {
        GradLayout::Separate(_) => {
            let grad = |g: Option<Vec<f32>>, t: usize| g.map(|g| from_vec(g, vec![batch, t, dim]));
            [grad(dq, tq), grad(dk, tk), grad(dv, tk)]
        }
        GradLayout::Packed => [
            dq.map(|g| from_vec(g, vec![batch, tq, 3 * dim])),
            None,
            None,
        ],
    }
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

/// `softplus(x) = ln(1 + eˣ)`.
pub(super) const SOFTPLUS: Activation = Activation {
    forward: math::softplus_in_place,
    backward: math::softplus_backward,
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
    let mut out = zeros(values.len());
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

/// What the linear backward keeps: the input when the weight is tracked, the weight when the
/// input is.
#[derive(Debug, Clone)]
struct LinearState {
    x: Option<FlexTensor>,
    weight: Option<FlexTensor>,
}

/// The gradients of a linear layer's input, weight and bias, for those `wanted`.
fn linear_backward(
    state: LinearState,
    out_grad: FlexTensor,
    [want_x, want_weight, want_bias]: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let dy = owned_contiguous(out_grad);
    let [m, n] = dy.layout().shape().dims();
    let LinearState { x, weight } = state;
    // dX = dY Wᵀ.
    let dx = weight.filter(|_| want_x).map(|weight| {
        let k = weight.layout().shape()[0];
        let dx = matmul(Mat::of(&dy, 0), Mat::of(&weight, 0).transposed(), [m, n, k]);
        from_vec(dx, vec![m, k])
    });
    // dW = Xᵀ dY.
    let dw = x.filter(|_| want_weight).map(|x| {
        let k = x.layout().shape()[1];
        let dw = matmul(Mat::of(&x, 0).transposed(), Mat::of(&dy, 0), [k, m, n]);
        from_vec(dw, vec![k, n])
    });
    let db = want_bias.then(|| from_vec(column_sums(dy.storage::<f32>(), n), vec![n]));
    [dx, dw, db]
}

/// Registers `computed[i]` for every present parent `i`.
pub(super) fn register<const N: usize>(
    grads: &mut Gradients,
    parents: [Option<burn::backend::autodiff::NodeId>; N],
    computed: impl IntoIterator<Item = Option<FlexTensor>>,
) {
    for (node, grad) in parents.into_iter().zip(computed) {
        if let (Some(node), Some(grad)) = (node, grad) {
            grads.register::<Flex>(node, grad);
        }
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let out_grad = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let computed = linear_backward(ops.state, out_grad, parents.map(|p| p.is_some()));
        register(grads, parents, computed);
    }
}

#[derive(Debug)]
struct UnbiasedLinearBackward;

impl Backward<Flex, 2> for UnbiasedLinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let out_grad = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let [want_x, want_weight] = parents.map(|p| p.is_some());
        let computed = linear_backward(ops.state, out_grad, [want_x, want_weight, false]);
        register(grads, parents, computed);
    }
}

/// `x [M, K] · w [K, N] + bias [N]` as one tracked operation of `Autodiff<Flex>`: the bias is
/// added inside the gemm (Burn's linear is a product into a zeroed buffer, then a broadcast
/// add, and its backward reshapes with copies); `None` for any other backend.
pub(super) fn linear<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    let x = ad_f32(x.clone()).ok()?;
    let weight = ad_f32(weight.clone()).ok()?;
    let bias = match bias {
        Some(b) => Some(ad_f32(b.clone()).ok()?),
        None => None,
    };
    let out = linear_primitive(
        &x.primitive,
        &weight.primitive,
        bias.as_ref().map(|b| &b.primitive),
    );
    // The input is kept only for the weight's gradient, the weight only for the input's.
    let state = || LinearState {
        x: weight.is_tracked().then(|| x.primitive.clone()),
        weight: x.is_tracked().then(|| weight.primitive.clone()),
    };
    let out = match &bias {
        Some(bias) => {
            let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
            match LinearBackward
                .prepare::<NoCheckpointing>(nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state(), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
        None => {
            let nodes = [x.node.clone(), weight.node.clone()];
            match UnbiasedLinearBackward
                .prepare::<NoCheckpointing>(nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state(), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    };
    Some(wrap_ad(out))
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
        let out_grad = grads.consume::<Flex>(&ops.node);
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let computed = layer_norm_backward(&ops.state, out_grad, wanted);
        for (node, grad) in ops.parents.into_iter().zip(computed) {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The gradients of a LayerNorm's input, γ and β, for those `wanted`.
fn layer_norm_backward(
    state: &LayerNormState,
    out_grad: FlexTensor,
    [want_x, want_gamma, want_beta]: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let out_grad = owned_contiguous(out_grad);
    let width = state.gamma.layout().shape()[0];
    let dy = out_grad.storage::<f32>();
    let xhat = state.normalized.storage::<f32>();
    let dgamma = want_gamma.then(|| {
        let products: Vec<f32> = dy.iter().zip(xhat).map(|(g, x)| g * x).collect();
        from_vec(column_sums(&products, width), vec![width])
    });
    let dbeta = want_beta.then(|| from_vec(column_sums(dy, width), vec![width]));
    let dx = want_x.then(|| {
        let gamma = state.gamma.storage::<f32>();
        let inv_std = state.inv_std.storage::<f32>();
        let mut dx = zeros(dy.len());
        let rows_per_task = (CHUNK / width).max(1);
        dx.par_chunks_mut(rows_per_task * width)
            .zip(dy.par_chunks(rows_per_task * width))
            .zip(xhat.par_chunks(rows_per_task * width))
            .zip(inv_std.par_chunks(rows_per_task))
            .for_each(|(((dx, dy), xhat), inv_std)| {
                layer_norm_backward_rows(dx, dy, xhat, inv_std, gamma);
            });
        from_vec(dx, out_grad.layout().shape().to_vec())
    });
    [dx, dgamma, dbeta]
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

/// γ, β and ε of one LayerNorm, γ and β contiguous.
pub(super) struct Affine {
    pub(super) gamma: FlexTensor,
    pub(super) beta: FlexTensor,
    pub(super) epsilon: f32,
}

/// What a LayerNorm forward gives: the output, and the state its backward keeps.
struct Normalized {
    out: FlexTensor,
    state: LayerNormState,
}

/// LayerNorm over rows of γ's width: `fill(block, first_row)` writes a block of input rows,
/// which are then normalised in place, block by block while in cache.
fn layer_norm_forward(
    shape: Vec<usize>,
    affine: Affine,
    fill: impl Fn(&mut [f32], usize) + Sync,
) -> Normalized {
    let width = affine.gamma.layout().shape()[0];
    let len: usize = shape.iter().product();
    let rows = len / width;
    let (mut out, mut xhat, mut inv_std) = (zeros(len), zeros(len), zeros(rows));
    let rows_per_task = (CHUNK / width).max(1);
    let (g, b) = (affine.gamma.storage::<f32>(), affine.beta.storage::<f32>());
    out.par_chunks_mut(rows_per_task * width)
        .zip(xhat.par_chunks_mut(rows_per_task * width))
        .zip(inv_std.par_chunks_mut(rows_per_task))
        .enumerate()
        .for_each(|(task, ((out, xhat), inv_std))| {
            fill(xhat, task * rows_per_task);
            let rows = out
                .chunks_exact_mut(width)
                .zip(xhat.chunks_exact_mut(width));
            for ((out, xhat), inv) in rows.zip(inv_std) {
                let mean = xhat.iter().sum::<f32>() / width as f32;
                let var = xhat.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
                *inv = 1.0 / (var + affine.epsilon).sqrt();
                for (((o, h), &g), &b) in out.iter_mut().zip(xhat.iter_mut()).zip(g).zip(b) {
                    *h = (*h - mean) * *inv;
                    *o = *h * g + b;
                }
            }
        });
    Normalized {
        out: from_vec(out, shape.clone()),
        state: LayerNormState {
            normalized: from_vec(xhat, shape),
            inv_std: from_vec(inv_std, vec![rows]),
            gamma: affine.gamma,
        },
    }
}

/// γ and β as autodiff primitives with their values, or `None` for another backend.
pub(super) fn ad_affine<B: Backend>(
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Option<([AdPrimitive; 2], Affine)> {
    let (gamma, beta) = (ad_f32(gamma).ok()?, ad_f32(beta).ok()?);
    let affine = Affine {
        gamma: owned_contiguous(gamma.primitive.clone()),
        beta: owned_contiguous(beta.primitive.clone()),
        epsilon: epsilon as f32,
    };
    Some(([gamma, beta], affine))
}

/// LayerNorm over the last dimension (`x [.., D]`, γ and β `[D]`) as one tracked operation of
/// `Autodiff<Flex>`; the inputs back for any other backend.
pub(super) fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let x = ad_f32(x)?;
    let Some(([gamma, beta], affine)) = ad_affine(gamma, beta, epsilon) else {
        return Err(wrap_ad(x));
    };
    let input = owned_contiguous(x.primitive.clone());
    let values = input.storage::<f32>();
    let width = affine.gamma.layout().shape()[0];
    let normalized = layer_norm_forward(input.layout().shape().to_vec(), affine, |block, row| {
        block.copy_from_slice(&values[row * width..][..block.len()]);
    });
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match LayerNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(normalized.state, normalized.out),
        OpsKind::UnTracked(prep) => prep.finish(normalized.out),
    };
    Ok(wrap_ad(out))
}

/// What the backward of `LN(residual + dropout(x))` keeps: the LayerNorm's state and the
/// dropout mask (0/1, contiguous) with 1/keep.
#[derive(Debug, Clone)]
struct ResidualNormState {
    norm: LayerNormState,
    dropout: Option<(FlexTensor, f32)>,
}

#[derive(Debug)]
struct ResidualNormBackward;

impl Backward<Flex, 4> for ResidualNormBackward {
    type State = ResidualNormState;

    fn backward(self, ops: Ops<ResidualNormState, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_residual, node_gamma, node_beta] = ops.parents;
        let out_grad = grads.consume::<Flex>(&ops.node);
        let want_sum = node_x.is_some() || node_residual.is_some();
        let wanted = [want_sum, node_gamma.is_some(), node_beta.is_some()];
        let [dsum, dgamma, dbeta] = layer_norm_backward(&ops.state.norm, out_grad, wanted);
        for (node, grad) in [(node_gamma, dgamma), (node_beta, dbeta)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
        let Some(dsum) = dsum else { return };
        if let Some(node) = node_x {
            let dx = match &ops.state.dropout {
                Some((mask, inv_keep)) => {
                    let mut dx = dsum.clone().to_contiguous();
                    dx.storage_mut::<f32>()
                        .par_chunks_mut(CHUNK)
                        .zip(mask.storage::<f32>().par_chunks(CHUNK))
                        .for_each(|(d, m)| {
                            d.iter_mut().zip(m).for_each(|(d, m)| *d *= m * inv_keep)
                        });
                    dx
                }
                None => dsum.clone(),
            };
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_residual {
            grads.register::<Flex>(node.id, dsum);
        }
    }
}

/// `LN(residual + dropout(x))` (BERT's post-LN residual: dropout `p` on `x` when `dropout > 0`)
/// as one tracked operation of `Autodiff<Flex>`. Spelled in Burn ops it is the mask product,
/// the 1/keep scale, the sum and the LayerNorm: four passes forward and four backward. The
/// inputs back for any other backend.
pub(super) fn residual_layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    dropout: f64,
) -> Result<Tensor<B, D>, [Tensor<B, D>; 2]> {
    let (x, residual) = match (ad_f32(x), ad_f32(residual)) {
        (Ok(x), Ok(r)) => (x, r),
        (x, r) => {
            let back = |t: Result<AdPrimitive, Tensor<B, D>>| t.map(wrap_ad).unwrap_or_else(|t| t);
            return Err([back(x), back(r)]);
        }
    };
    let Some(affine) = ad_affine(gamma, beta, epsilon) else {
        return Err([wrap_ad(x), wrap_ad(residual)]);
    };
    let shape = x.primitive.layout().shape().to_vec();
    let mask = (dropout > 0.0).then(|| dropout_keep_mask(shape, dropout));
    Ok(residual_layer_norm_masked(x, residual, affine, mask))
}

/// The tracked operation for a given dropout mask (`None`: no dropout).
fn residual_layer_norm_masked<B: Backend, const D: usize>(
    x: AdPrimitive,
    residual: AdPrimitive,
    ([gamma, beta], affine): ([AdPrimitive; 2], Affine),
    mask: Option<(FlexTensor, f32)>,
) -> Tensor<B, D> {
    let values = owned_contiguous(x.primitive.clone());
    let skip = owned_contiguous(residual.primitive.clone());
    let (h, r) = (values.storage::<f32>(), skip.storage::<f32>());
    let width = affine.gamma.layout().shape()[0];
    let shape = values.layout().shape().to_vec();
    let normalized = layer_norm_forward(shape, affine, |block, row| {
        let (start, n) = (row * width, block.len());
        let (h, r) = (&h[start..][..n], &r[start..][..n]);
        match &mask {
            Some((mask, inv_keep)) => {
                let m = &mask.storage::<f32>()[start..][..n];
                for (((s, &h), &r), &m) in block.iter_mut().zip(h).zip(r).zip(m) {
                    *s = r + h * m * inv_keep;
                }
            }
            None => {
                for ((s, &h), &r) in block.iter_mut().zip(h).zip(r) {
                    *s = r + h;
                }
            }
        }
    });
    let nodes = [
        x.node.clone(),
        residual.node.clone(),
        gamma.node.clone(),
        beta.node.clone(),
    ];
    let out = match ResidualNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = ResidualNormState {
                norm: normalized.state,
                dropout: mask,
            };
            prep.finish(state, normalized.out)
        }
        OpsKind::UnTracked(prep) => prep.finish(normalized.out),
    };
    wrap_ad(out)
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
            self.run_packed(|packed| {
                let mut parts = packed.chunk(3, 2).into_iter();
                attend([(); 3].map(|_| parts.next().expect("three chunks")))
            })
        }

        /// Output and the gradient of the packed input, through `attend` on the packed tensor.
        fn run_packed(
            &self,
            attend: impl Fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>,
        ) -> (TensorData, TensorData) {
            let packed = self.packed.clone();
            let out = attend(packed.clone());
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
    fn packed_output_and_gradient_equal_the_formula_for_every_bias_layout() {
        let case = Case::new();
        let causal = Tensor::<Ad, 2>::ones([5, 5], &Default::default())
            .triu(1)
            .reshape([1, 1, 5, 5])
            * -1e4;
        for bias in [None, Some(padding_bias(2)), Some(causal)] {
            let (out, grad) = case.run_packed(|packed| {
                let inputs = super::super::PackedInputs {
                    qkv: packed,
                    bias: bias.clone(),
                };
                packed_attention(inputs, HEADS)
                    .unwrap_or_else(|_| panic!("Autodiff<Flex> takes the kernel"))
            });
            let (out_f, grad_f) =
                case.run(|[q, k, v]| attention_formula(q, k, v, HEADS, bias.clone(), |p| p));
            assert_close(out, out_f);
            assert_close(grad, grad_f);
        }
    }

    /// A packed tensor whose columns are not contiguous (a transposed view) and a given dropout
    /// mask: the views and the packed gradient follow the strides.
    #[test]
    fn packed_gradient_follows_strides_and_the_dropout_mask() {
        let device = Default::default();
        let normal = Distribution::Normal(0.0, 1.5);
        let case = Case {
            packed: Tensor::random([2, 24, 5], normal, &device).require_grad(),
            weights: Tensor::random([2, 5, 8], normal, &device),
        };
        let keep = 0.6;
        let mask =
            Tensor::<Flex, 4>::random([2, HEADS, 5, 5], Distribution::Bernoulli(keep), &device);
        let mask_ad = Tensor::<Ad, 4>::from_data(mask.to_data(), &device);
        let dropped = (
            owned_contiguous(mask.into_primitive().tensor()),
            (1.0 / keep) as f32,
        );
        let dims = Dims {
            batch: 2,
            heads: HEADS,
            tq: 5,
            tk: 5,
            dim: 8,
        };
        let run = |attend: &dyn Fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>| {
            let out = attend(case.packed.clone().swap_dims(1, 2));
            let grads = (out.clone() * case.weights.clone()).sum().backward();
            let grad = case.packed.grad(&grads).expect("the input is tracked");
            (out.into_data(), grad.into_data())
        };
        let (out, grad) = run(&|packed| {
            let packed = packed.into_primitive().tensor();
            packed_attention_masked(dims, packed, None, Some(dropped.clone()))
        });
        let on_probs = |p: Tensor<Ad, 4>| p * mask_ad.clone() / keep;
        let (out_f, grad_f) = run(&|packed| {
            let mut parts = packed.chunk(3, 2).into_iter();
            let [q, k, v] = [(); 3].map(|_| parts.next().expect("three chunks"));
            attention_formula(q, k, v, HEADS, None, on_probs)
        });
        assert_close(out, out_f);
        assert_close(grad, grad_f);
    }

    #[test]
    fn dropout_masks_keep_the_asked_share_whatever_the_thread_count() {
        let len = 100_001;
        let mask = bernoulli_bits(7, 0.9, len);
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
        let kept = mask.iter().sum::<f32>() as f64 / len as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept {kept}");
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a pool")
            .install(|| bernoulli_bits(7, 0.9, len));
        assert_eq!(mask, one_thread);
        assert_ne!(mask, bernoulli_bits(8, 0.9, len));
        let never = bernoulli_bits(7, 0.0, 1000);
        assert!(never.iter().all(|&m| m == 0.0));
        let always = bernoulli_bits(7, 1.0, 1000);
        assert!(always.iter().all(|&m| m == 1.0));
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

    /// A LayerNorm of width 6 with random tracked γ and β, inputs `x` and `residual` given as
    /// transposed (strided) views of tracked `[2, 6, 4]` leaves, and a weighting of the output.
    struct NormCase {
        norm: burn::nn::LayerNorm<Ad>,
        x: Tensor<Ad, 3>,
        residual: Tensor<Ad, 3>,
        weights: Tensor<Ad, 3>,
    }

    /// The output and the gradients of x, residual, γ and β.
    type NormRun = (TensorData, TensorData, TensorData, TensorData, TensorData);

    impl NormCase {
        fn new() -> Self {
            use burn::module::Param;
            use burn::nn::LayerNormConfig;
            let device = Default::default();
            let normal = Distribution::Normal(0.5, 2.0);
            let mut norm = LayerNormConfig::new(6)
                .with_epsilon(1e-3)
                .init::<Ad>(&device);
            norm.gamma = Param::from_tensor(Tensor::random([6], normal, &device));
            norm.beta = Some(Param::from_tensor(Tensor::random([6], normal, &device)));
            let leaf = || Tensor::<Ad, 3>::random([2, 6, 4], normal, &device).require_grad();
            Self {
                norm,
                x: leaf(),
                residual: leaf(),
                weights: Tensor::random([2, 4, 6], normal, &device),
            }
        }

        fn run(&self, f: &dyn Fn(Tensor<Ad, 3>, Tensor<Ad, 3>) -> Tensor<Ad, 3>) -> NormRun {
            let y = f(
                self.x.clone().swap_dims(1, 2),
                self.residual.clone().swap_dims(1, 2),
            );
            let grads = (y.clone() * self.weights.clone()).sum().backward();
            let grad = |t: Tensor<Ad, 3>| t.grad(&grads).expect("tracked").into_data();
            let param = |t: Tensor<Ad, 1>| t.grad(&grads).expect("tracked").into_data();
            let beta = self.norm.beta.as_ref().expect("bias").val();
            (
                y.into_data(),
                grad(self.x.clone()),
                grad(self.residual.clone()),
                param(self.norm.gamma.val()),
                param(beta),
            )
        }
    }

    fn assert_all_close(fused: NormRun, formula: NormRun) {
        assert_close(fused.0, formula.0);
        assert_close(fused.1, formula.1);
        assert_close(fused.2, formula.2);
        assert_close(fused.3, formula.3);
        assert_close(fused.4, formula.4);
    }

    #[test]
    fn residual_layer_norm_with_a_given_mask_equals_the_formula() {
        let case = NormCase::new();
        let device = Default::default();
        let keep = 0.7;
        let mask = Tensor::<Flex, 3>::random([2, 4, 6], Distribution::Bernoulli(keep), &device);
        let mask_ad = Tensor::<Ad, 3>::from_data(mask.to_data(), &device);
        let dropped = (
            owned_contiguous(mask.into_primitive().tensor()),
            (1.0 / keep) as f32,
        );
        let fused = case.run(&|x, residual| {
            let prim = |t: Tensor<Ad, 3>| t.into_primitive().tensor();
            let (gamma, beta) = (
                case.norm.gamma.val(),
                case.norm.beta.as_ref().unwrap().val(),
            );
            let affine = ad_affine(gamma, beta, 1e-3).expect("Autodiff<Flex>");
            residual_layer_norm_masked(prim(x), prim(residual), affine, Some(dropped.clone()))
        });
        let formula =
            case.run(&|x, residual| case.norm.forward(x * mask_ad.clone() / keep + residual));
        assert_all_close(fused, formula);
    }

    #[test]
    fn residual_layer_norm_without_dropout_equals_the_formula() {
        let case = NormCase::new();
        let dropout = burn::nn::DropoutConfig::new(0.0).init();
        let fused = case.run(&|x, residual| {
            super::super::residual_layer_norm(&case.norm, x, residual, &dropout)
        });
        let formula = case.run(&|x, residual| case.norm.forward(x + residual));
        assert_all_close(fused, formula);
    }

    /// Dropout drawn inside the operation: the gradient of `x` is the residual's times 0 or
    /// 1/keep, element by element, and both occur.
    #[test]
    fn residual_layer_norm_drops_x_and_keeps_the_residual_path() {
        let case = NormCase::new();
        let dropout = burn::nn::DropoutConfig::new(0.5).init();
        let (_, dx, dresidual, _, _) = case.run(&|x, residual| {
            super::super::residual_layer_norm(&case.norm, x, residual, &dropout)
        });
        let (dx, dresidual) = (
            dx.to_vec::<f32>().unwrap(),
            dresidual.to_vec::<f32>().unwrap(),
        );
        let dropped = dx.iter().filter(|&&g| g == 0.0).count();
        assert!(
            dropped > 0 && dropped < dx.len(),
            "{dropped} of {} dropped",
            dx.len()
        );
        for (&gx, &gr) in dx.iter().zip(&dresidual) {
            assert!(
                gx == 0.0 || (gx - 2.0 * gr).abs() <= 1e-5 * gr.abs().max(1.0),
                "{gx} {gr}"
            );
        }
    }

    /// Burn's `Linear` and the fused one on a transposed (strided) input: output, and the
    /// gradients of the input, weight and bias, with and without a bias, tracked or frozen.
    #[test]
    fn linear_output_and_gradients_equal_burns_linear() {
        use burn::nn::LinearConfig;
        let device = Default::default();
        for (bias, frozen) in [(true, false), (false, false), (true, true)] {
            let mut linear = LinearConfig::new(7, 5).with_bias(bias).init::<Ad>(&device);
            if frozen {
                linear = linear.no_grad();
            }
            let x = Tensor::<Ad, 2>::random([7, 6], Distribution::Default, &device).require_grad();
            let weights = Tensor::<Ad, 2>::random([6, 5], Distribution::Default, &device);
            let run = |f: &dyn Fn(Tensor<Ad, 2>) -> Tensor<Ad, 2>| {
                let y = f(x.clone().transpose());
                let grads = (y.clone() * weights.clone()).sum().backward();
                let weight = linear.weight.val().grad(&grads).map(|g| g.into_data());
                let bias = linear.bias.as_ref().and_then(|b| b.val().grad(&grads));
                let x_grad = x.grad(&grads).expect("tracked").into_data();
                (y.into_data(), x_grad, weight, bias.map(|g| g.into_data()))
            };
            let fused = run(&|x| {
                let bias = linear.bias.as_ref().map(|b| b.val());
                super::linear(&x, &linear.weight.val(), bias.as_ref()).expect("Autodiff<Flex>")
            });
            let formula = run(&|x| linear.forward(x));
            assert_close(fused.0, formula.0);
            assert_close(fused.1, formula.1);
            assert_eq!(fused.2.is_some(), !frozen);
            for (a, b) in [(fused.2, formula.2), (fused.3, formula.3)] {
                assert_eq!(a.is_some(), b.is_some());
                if let (Some(a), Some(b)) = (a, b) {
                    assert_close(a, b);
                }
            }
        }
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
