//! Kernels on NCHW feature maps (the segmentation decoder's): a depthwise "same" convolution
//! and a LayerNorm over channels, on flex and as tracked operations of `Autodiff<Flex>`.
//!
//! Burn's versions run on one thread in burn-flex 0.21 (the convolution's two backward passes
//! alone were ~5 % of a training step with the other core idle), and its channel LayerNorm
//! needs the channels moved last and back (two copies forward, two backward).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::flex::{OutPtr, flex_f32, from_vec, owned_contiguous, wrap, zeros};
use super::train::{AdPrimitive, Affine, ad_affine, ad_f32, register, wrap_ad};

/// The sizes of an NCHW map.
#[derive(Debug, Clone, Copy)]
struct Nchw {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
}

impl Nchw {
    fn of(t: &FlexTensor) -> Self {
        let [batch, channels, height, width] = t.layout().shape().dims::<4>();
        Nchw {
            batch,
            channels,
            height,
            width,
        }
    }

    fn plane(self) -> usize {
        self.height * self.width
    }

    fn shape(self) -> Vec<usize> {
        vec![self.batch, self.channels, self.height, self.width]
    }
}

// ---------------------------------------------------------------------------------------------
// Depthwise convolution

/// `out [h, w] += Σ kernel[dy, dx] · input[y + dy − pad, x + dx − pad]` (zero outside), for an
/// odd `k × k` kernel and `pad = (k − 1) / 2`.
fn correlate_plane(out: &mut [f32], input: &[f32], kernel: &[f32], k: usize, [h, w]: [usize; 2]) {
    let pad = (k - 1) / 2;
    for dy in 0..k {
        let rows = pad.saturating_sub(dy)..(h + pad).saturating_sub(dy).min(h);
        for dx in 0..k {
            let cols = pad.saturating_sub(dx)..(w + pad).saturating_sub(dx).min(w);
            if cols.is_empty() {
                continue;
            }
            let weight = kernel[dy * k + dx];
            for y in rows.clone() {
                let source = (y + dy - pad) * w + cols.start + dx - pad;
                let src = &input[source..][..cols.len()];
                let dst = &mut out[y * w + cols.start..][..cols.len()];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += weight * s);
            }
        }
    }
}

/// `Σ_{y,x} grad[y, x] · input[y + dy − pad, x + dx − pad]` for every kernel tap, added to `taps`.
fn accumulate_taps(taps: &mut [f32], grad: &[f32], input: &[f32], k: usize, [h, w]: [usize; 2]) {
    let pad = (k - 1) / 2;
    for dy in 0..k {
        let rows = pad.saturating_sub(dy)..(h + pad).saturating_sub(dy).min(h);
        for dx in 0..k {
            let cols = pad.saturating_sub(dx)..(w + pad).saturating_sub(dx).min(w);
            let mut sum = 0.0f32;
            for y in rows.clone() {
                let source = (y + dy - pad) * w + cols.start + dx - pad;
                let src = &input[source..][..cols.len()];
                let g = &grad[y * w + cols.start..][..cols.len()];
                sum += g.iter().zip(src).map(|(g, s)| g * s).sum::<f32>();
            }
            taps[dy * k + dx] += sum;
        }
    }
}

/// Each channel plane of `x` correlated with its own `k × k` kernel of `kernels [C, k·k]`.
fn depthwise_planes(x: &[f32], kernels: &[f32], dims: Nchw, k: usize) -> Vec<f32> {
    let plane = dims.plane();
    let mut out = zeros(x.len());
    out.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(i, (out, x))| {
            let c = i % dims.channels;
            let kernel = &kernels[c * k * k..][..k * k];
            correlate_plane(out, x, kernel, k, [dims.height, dims.width]);
        });
    out
}

/// The kernels turned by 180°: the input gradient of a "same" correlation is the correlation
/// of the output gradient with them.
fn flipped(kernels: &[f32], k: usize) -> Vec<f32> {
    kernels
        .chunks_exact(k * k)
        .flat_map(|kernel| kernel.iter().rev().copied())
        .collect()
}

/// The kernel size of `conv` when it is a depthwise, stride-1, undilated, bias-free
/// convolution with odd square kernels and "same" zero padding; `None` otherwise.
fn same_depthwise<B: Backend>(conv: &burn::nn::conv::Conv2d<B>) -> Option<usize> {
    use burn::nn::PaddingConfig2d;
    let [channels_out, per_group, kh, kw] = conv.weight.shape().dims::<4>();
    let k = kh;
    let pad = (k - 1) / 2;
    let padded = match conv.padding {
        PaddingConfig2d::Same => true,
        PaddingConfig2d::Explicit(a, b, c, d) => [a, b, c, d] == [pad; 4],
        PaddingConfig2d::Valid => false,
    };
    let depthwise = per_group == 1 && conv.groups == channels_out;
    let plain = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.bias.is_none();
    (depthwise && plain && padded && kh == kw && k % 2 == 1).then_some(k)
}

/// What the depthwise backward keeps: the input when the kernels are tracked, the kernels
/// when the input is.
#[derive(Debug, Clone)]
struct DepthwiseState {
    x: Option<FlexTensor>,
    kernels: Option<FlexTensor>,
    k: usize,
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = DepthwiseState;

    fn backward(self, ops: Ops<DepthwiseState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = owned_contiguous(grads.consume::<Flex>(&ops.node));
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let DepthwiseState { x, kernels, k } = ops.state;
        let dims = Nchw::of(&grad);
        let dy = grad.storage::<f32>();
        let dx = kernels.map(|kernels| {
            let turned = flipped(kernels.storage::<f32>(), k);
            from_vec(depthwise_planes(dy, &turned, dims, k), dims.shape())
        });
        let dw = x.map(|x| {
            let taps = kernel_gradients(dy, x.storage::<f32>(), dims, k);
            from_vec(taps, vec![dims.channels, 1, k, k])
        });
        register(grads, parents, [dx, dw]);
    }
}

/// `∂L/∂kernels [C, k·k]`: every channel's taps summed over the batch, one task per channel.
fn kernel_gradients(dy: &[f32], x: &[f32], dims: Nchw, k: usize) -> Vec<f32> {
    let plane = dims.plane();
    let mut taps = vec![0.0f32; dims.channels * k * k];
    taps.par_chunks_mut(k * k)
        .enumerate()
        .for_each(|(c, taps)| {
            for b in 0..dims.batch {
                let at = (b * dims.channels + c) * plane;
                let (g, x) = (&dy[at..][..plane], &x[at..][..plane]);
                accumulate_taps(taps, g, x, k, [dims.height, dims.width]);
            }
        });
    taps
}

/// `conv.forward(x)` for a depthwise "same" convolution of `x [B, C, H, W]`: on flex one pass
/// per channel plane on every thread, under `Autodiff<Flex>` the same as one tracked operation;
/// Burn's convolution for any other backend or convolution.
pub fn depthwise_conv2d<B: Backend>(
    conv: &burn::nn::conv::Conv2d<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let Some(k) = same_depthwise(conv) else {
        return conv.forward(x);
    };
    let x = match flex_f32(x) {
        Ok(x) => {
            let kernels =
                flex_f32(conv.weight.val()).expect("the weight lives on the same backend");
            let (x, kernels) = (owned_contiguous(x), owned_contiguous(kernels));
            let dims = Nchw::of(&x);
            let out = depthwise_planes(x.storage::<f32>(), kernels.storage::<f32>(), dims, k);
            return wrap(from_vec(out, dims.shape()));
        }
        Err(x) => x,
    };
    match (ad_f32(x), ad_f32(conv.weight.val())) {
        (Ok(x), Ok(kernels)) => wrap_ad(depthwise_tracked(x, kernels, k)),
        (Ok(x), Err(_)) => conv.forward(wrap_ad(x)),
        (Err(x), _) => conv.forward(x),
    }
}

fn depthwise_tracked(x: AdPrimitive, kernels: AdPrimitive, k: usize) -> AdPrimitive {
    let input = owned_contiguous(x.primitive.clone());
    let weights = owned_contiguous(kernels.primitive.clone());
    let dims = Nchw::of(&input);
    let out = depthwise_planes(input.storage::<f32>(), weights.storage::<f32>(), dims, k);
    let out = from_vec(out, dims.shape());
    let state = DepthwiseState {
        x: kernels.is_tracked().then_some(input),
        kernels: x.is_tracked().then_some(weights),
        k,
    };
    match DepthwiseBackward
        .prepare::<NoCheckpointing>([x.node.clone(), kernels.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over channels

/// Pixels per task: each pass over the channels reads `PIXELS` contiguous values per channel.
const PIXELS: usize = 64;

/// One task's pixels: image `image`, pixels `first..first + len` of its planes.
#[derive(Debug, Clone, Copy)]
struct PixelBlock {
    image: usize,
    first: usize,
    len: usize,
}

fn pixel_blocks(dims: Nchw) -> Vec<PixelBlock> {
    let plane = dims.plane();
    (0..dims.batch)
        .flat_map(|image| {
            (0..plane).step_by(PIXELS).map(move |first| PixelBlock {
                image,
                first,
                len: PIXELS.min(plane - first),
            })
        })
        .collect()
}

impl PixelBlock {
    /// Offset of channel `c` of this block.
    fn at(self, dims: Nchw, c: usize) -> usize {
        (self.image * dims.channels + c) * dims.plane() + self.first
    }
}

/// What the channel LayerNorm's forward gives: the output, and `x̂` and `1/σ` per pixel when
/// its backward needs them.
struct ChannelNormalized {
    out: Vec<f32>,
    xhat: Option<Vec<f32>>,
    inv_std: Vec<f32>,
}

/// `y[b, c, p] = (x − mean_c) / σ_c · γ[c] + β[c]` with the statistics over channels per pixel.
fn channel_norm_forward(
    x: &[f32],
    dims: Nchw,
    affine: &Affine,
    keep_xhat: bool,
) -> ChannelNormalized {
    let (gamma, beta) = (affine.gamma.storage::<f32>(), affine.beta.storage::<f32>());
    let blocks = pixel_blocks(dims);
    let mut out = zeros(x.len());
    let mut xhat = keep_xhat.then(|| zeros(x.len()));
    let mut inv_std = zeros(dims.batch * dims.plane());
    let out_ptr = OutPtr(out.as_mut_ptr());
    let xhat_ptr = xhat.as_mut().map(|v| OutPtr(v.as_mut_ptr()));
    let inv_ptr = OutPtr(inv_std.as_mut_ptr());
    let channels = dims.channels as f32;
    blocks.par_iter().for_each(|&block| {
        let n = block.len;
        let row = |c: usize| &x[block.at(dims, c)..][..n];
        let mut mean = [0.0f32; PIXELS];
        for c in 0..dims.channels {
            mean[..n].iter_mut().zip(row(c)).for_each(|(m, v)| *m += v);
        }
        mean[..n].iter_mut().for_each(|m| *m /= channels);
        let mut inv = [0.0f32; PIXELS];
        for c in 0..dims.channels {
            let centred = row(c).iter().zip(&mean[..n]);
            inv[..n]
                .iter_mut()
                .zip(centred)
                .for_each(|(s, (v, m))| *s += (v - m) * (v - m));
        }
        inv[..n]
            .iter_mut()
            .for_each(|s| *s = 1.0 / (*s / channels + affine.epsilon).sqrt());
        for c in 0..dims.channels {
            let at = block.at(dims, c);
            // SAFETY: blocks are disjoint pixel ranges, so every task writes its own elements.
            let y = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(at), n) };
            for (((y, v), m), s) in y.iter_mut().zip(row(c)).zip(&mean[..n]).zip(&inv[..n]) {
                *y = (v - m) * s;
            }
            if let Some(xhat_ptr) = xhat_ptr {
                // SAFETY: as above.
                let h = unsafe { std::slice::from_raw_parts_mut(xhat_ptr.get().add(at), n) };
                h.copy_from_slice(y);
            }
            y.iter_mut().for_each(|y| *y = *y * gamma[c] + beta[c]);
        }
        let first = block.image * dims.plane() + block.first;
        // SAFETY: as above, one pixel range per task.
        let inv_out = unsafe { std::slice::from_raw_parts_mut(inv_ptr.get().add(first), n) };
        inv_out.copy_from_slice(&inv[..n]);
    });
    ChannelNormalized { out, xhat, inv_std }
}

/// The input, γ and β gradients of the channel LayerNorm from `dy`, `x̂`, `1/σ` and γ.
fn channel_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    dims: Nchw,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let blocks = pixel_blocks(dims);
    let mut dx = zeros(dy.len());
    let dx_ptr = OutPtr(dx.as_mut_ptr());
    let channels = dims.channels;
    let (dgamma, dbeta) = blocks
        .par_iter()
        .fold(
            || (vec![0.0f32; channels], vec![0.0f32; channels]),
            |(mut dgamma, mut dbeta), &block| {
                let n = block.len;
                let (mut sum_g, mut sum_gx) = ([0.0f32; PIXELS], [0.0f32; PIXELS]);
                for c in 0..channels {
                    let at = block.at(dims, c);
                    let (dy, h) = (&dy[at..][..n], &xhat[at..][..n]);
                    for (((sg, sgx), &d), &h) in sum_g.iter_mut().zip(&mut sum_gx).zip(dy).zip(h) {
                        *sg += d * gamma[c];
                        *sgx += d * gamma[c] * h;
                    }
                    dgamma[c] += dy.iter().zip(h).map(|(d, h)| d * h).sum::<f32>();
                    dbeta[c] += dy.iter().sum::<f32>();
                }
                let first = block.image * dims.plane() + block.first;
                let inv = &inv_std[first..][..n];
                let scale = 1.0 / channels as f32;
                for (c, &gamma_c) in gamma.iter().enumerate() {
                    let at = block.at(dims, c);
                    // SAFETY: blocks are disjoint pixel ranges, so every task writes its own
                    // elements.
                    let out = unsafe { std::slice::from_raw_parts_mut(dx_ptr.get().add(at), n) };
                    let (dy, h) = (&dy[at..][..n], &xhat[at..][..n]);
                    let sums = sum_g.iter().zip(&sum_gx);
                    let inputs = dy.iter().zip(h).zip(inv).zip(sums);
                    for (o, (((d, h), inv), (sg, sgx))) in out.iter_mut().zip(inputs) {
                        *o = inv * (d * gamma_c - sg * scale - h * sgx * scale);
                    }
                }
                (dgamma, dbeta)
            },
        )
        .reduce(
            || (vec![0.0f32; channels], vec![0.0f32; channels]),
            |(mut ga, mut ba), (gb, bb)| {
                ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                ba.iter_mut().zip(&bb).for_each(|(a, b)| *a += b);
                (ga, ba)
            },
        );
    (dx, dgamma, dbeta)
}

#[derive(Debug, Clone)]
struct ChannelNormState {
    xhat: FlexTensor,
    inv_std: Vec<f32>,
    gamma: FlexTensor,
}

#[derive(Debug)]
struct ChannelNormBackward;

impl Backward<Flex, 3> for ChannelNormBackward {
    type State = ChannelNormState;

    fn backward(self, ops: Ops<ChannelNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = owned_contiguous(grads.consume::<Flex>(&ops.node));
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let state = ops.state;
        let dims = Nchw::of(&grad);
        let (dx, dgamma, dbeta) = channel_norm_backward(
            grad.storage::<f32>(),
            state.xhat.storage::<f32>(),
            &state.inv_std,
            state.gamma.storage::<f32>(),
            dims,
        );
        let computed = [
            Some(from_vec(dx, dims.shape())),
            Some(from_vec(dgamma, vec![dims.channels])),
            Some(from_vec(dbeta, vec![dims.channels])),
        ];
        register(grads, parents, computed);
    }
}

/// LayerNorm over the channels of `x [B, C, H, W]` (γ, β `[C]`), read and written in NCHW: on
/// flex one pass per pixel block on every thread, under `Autodiff<Flex>` the same as one
/// tracked operation; `x` back for any other backend.
pub(super) fn channel_layer_norm<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let x = match flex_f32(x) {
        Ok(x) => {
            let affine = Affine {
                gamma: owned_contiguous(flex_f32(gamma).expect("γ lives on x's backend")),
                beta: owned_contiguous(flex_f32(beta).expect("β lives on x's backend")),
                epsilon: epsilon as f32,
            };
            let x = owned_contiguous(x);
            let dims = Nchw::of(&x);
            let normalized = channel_norm_forward(x.storage::<f32>(), dims, &affine, false);
            return Ok(wrap(from_vec(normalized.out, dims.shape())));
        }
        Err(x) => x,
    };
    let x = ad_f32(x)?;
    let Some(([gamma, beta], affine)) = ad_affine(gamma, beta, epsilon) else {
        return Err(wrap_ad(x));
    };
    let input = owned_contiguous(x.primitive.clone());
    let dims = Nchw::of(&input);
    let normalized = channel_norm_forward(input.storage::<f32>(), dims, &affine, true);
    let out = from_vec(normalized.out, dims.shape());
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match ChannelNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = ChannelNormState {
                xhat: from_vec(normalized.xhat.expect("kept for training"), dims.shape()),
                inv_std: normalized.inv_std,
                gamma: affine.gamma,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(wrap_ad(out))
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::module::Param;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::{LayerNorm, LayerNormConfig, PaddingConfig2d};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    use super::*;

    type Ad = Autodiff<Flex>;

    fn assert_close(fused: TensorData, formula: TensorData) {
        fused.assert_approx_eq::<f32>(&formula, Tolerance::rel_abs(1e-4, 1e-5));
    }

    fn depthwise<B: Backend>(channels: usize, k: usize, device: &B::Device) -> Conv2d<B> {
        let pad = (k - 1) / 2;
        Conv2dConfig::new([channels, channels], [k, k])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(channels)
            .with_bias(false)
            .init(device)
    }

    /// A convolution applied by the code under test.
    type ConvFn = dyn Fn(&Conv2d<Ad>, Tensor<Ad, 4>) -> Tensor<Ad, 4>;

    /// The output and the gradients of the input and the kernels, for `y · weights` summed.
    fn conv_run(
        conv: &Conv2d<Ad>,
        x: &Tensor<Ad, 4>,
        weights: &Tensor<Ad, 4>,
        f: &ConvFn,
    ) -> [TensorData; 3] {
        // A strided view of the tracked leaf: the kernel must read through the layout.
        let y = f(conv, x.clone().swap_dims(2, 3));
        let grads = (y.clone() * weights.clone()).sum().backward();
        let x_grad = x.grad(&grads).expect("tracked").into_data();
        let w_grad = conv.weight.val().grad(&grads).expect("tracked").into_data();
        [y.into_data(), x_grad, w_grad]
    }

    #[test]
    fn depthwise_output_and_gradients_equal_burns_convolution() {
        let device = Default::default();
        let normal = Distribution::Normal(0.0, 1.0);
        // 3×3 on a plane wider than tall, 5×5 on planes smaller than the kernel in one side.
        for (k, [h, w]) in [(3, [4, 7]), (5, [2, 6]), (3, [1, 1])] {
            let conv = depthwise::<Ad>(3, k, &device);
            let x = Tensor::<Ad, 4>::random([2, 3, w, h], normal, &device).require_grad();
            let weights = Tensor::<Ad, 4>::random([2, 3, h, w], normal, &device);
            let fused = conv_run(&conv, &x, &weights, &|c, x| depthwise_conv2d(c, x));
            let formula = conv_run(&conv, &x, &weights, &|c, x| c.forward(x));
            for (fused, formula) in fused.into_iter().zip(formula) {
                assert_close(fused, formula);
            }
        }
    }

    #[test]
    fn depthwise_on_flex_equals_burns_convolution_and_others_fall_back() {
        let device = Default::default();
        let conv = depthwise::<Flex>(4, 3, &device);
        let x = Tensor::<Flex, 4>::random([2, 4, 6, 5], Distribution::Default, &device);
        let fused = depthwise_conv2d(&conv, x.clone().swap_dims(2, 3));
        assert_close(
            fused.into_data(),
            conv.forward(x.swap_dims(2, 3)).into_data(),
        );
        // A convolution with a bias is not one of ours: same result as Burn's, by Burn's.
        let dense = Conv2dConfig::new([4, 4], [3, 3]).init::<Flex>(&device);
        assert!(same_depthwise(&dense).is_none());
        assert!(same_depthwise(&conv).is_some());
    }

    fn channel_norm<B: Backend>(channels: usize, device: &B::Device) -> LayerNorm<B> {
        let normal = Distribution::Normal(0.5, 2.0);
        let mut norm = LayerNormConfig::new(channels)
            .with_epsilon(1e-6)
            .init::<B>(device);
        norm.gamma = Param::from_tensor(Tensor::random([channels], normal, device));
        norm.beta = Some(Param::from_tensor(Tensor::random(
            [channels],
            normal,
            device,
        )));
        norm
    }

    fn burns_channel_norm<B: Backend>(norm: &LayerNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        norm.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }

    #[test]
    fn channel_layer_norm_output_and_gradients_equal_burns_layer_norm() {
        let device = Default::default();
        let normal = Distribution::Normal(0.3, 2.0);
        // 70 pixels per image: one full pixel block and a partial one.
        let norm = channel_norm::<Ad>(6, &device);
        let x = Tensor::<Ad, 4>::random([2, 6, 10, 7], normal, &device).require_grad();
        let weights = Tensor::<Ad, 4>::random([2, 6, 7, 10], normal, &device);
        let run = |f: &dyn Fn(Tensor<Ad, 4>) -> Tensor<Ad, 4>| {
            let y = f(x.clone().swap_dims(2, 3));
            let grads = (y.clone() * weights.clone()).sum().backward();
            let grad = |t: Tensor<Ad, 1>| t.grad(&grads).expect("tracked").into_data();
            let beta = norm.beta.as_ref().expect("bias").val();
            let x_grad = x.grad(&grads).expect("tracked").into_data();
            [y.into_data(), x_grad, grad(norm.gamma.val()), grad(beta)]
        };
        let fused = run(&|x| super::super::channel_layer_norm(&norm, x).expect("Autodiff<Flex>"));
        let formula = run(&|x| burns_channel_norm(&norm, x));
        for (fused, formula) in fused.into_iter().zip(formula) {
            assert_close(fused, formula);
        }
    }

    #[test]
    fn channel_layer_norm_on_flex_equals_burns_layer_norm() {
        let device = Default::default();
        let norm = channel_norm::<Flex>(5, &device);
        let x = Tensor::<Flex, 4>::random([3, 5, 9, 8], Distribution::Normal(1.0, 3.0), &device);
        let fused = super::super::channel_layer_norm(&norm, x.clone()).expect("flex");
        assert_close(fused.into_data(), burns_channel_norm(&norm, x).into_data());
    }
}
