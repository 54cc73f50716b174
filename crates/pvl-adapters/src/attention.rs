//! `ProbCrossAttention` (spec §1.3): Gaussian keys and values, a lower-confidence-bound
//! attention logit, sampled values and a sigmoid gate mixing the result with the query.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use clip_encoders::fast::layer_norm;
use clip_encoders::{StateWriter, WeightMap, linear3d, softplus};

use crate::noise::Noise;

/// Variance floor added after softplus, as in the reference.
const VARIANCE_FLOOR: f64 = 1e-6;

/// The switches of a probabilistic cross-attention (everything but its width), declared here
/// once: [`crate::PvlAdapterSwitches`] and the model's config embed them.
#[derive(Config, Debug, PartialEq)]
pub struct ProbAttentionSwitches {
    /// Weight of the key-variance penalty on the logits (`MODEL.BETA`).
    #[config(default = 2.35)]
    pub beta: f64,
    /// Initial gate logit (`sigmoid(0) = 0.5`, `MODEL.GATE_INIT`).
    #[config(default = 0.0)]
    pub gate_init: f64,
    /// Variance-aware logits and sampled values (off: plain dot-product attention on the means).
    #[config(default = true)]
    pub probabilistic: bool,
    /// Sample values `μ + σ∘ε` (off: values are their means, the logits keep the β penalty).
    #[config(default = true)]
    pub sample_values: bool,
    /// Convex sigmoid gate with the query (off: plain residual `query + out`).
    #[config(default = true)]
    pub gating: bool,
}

/// Width and switches of one probabilistic cross-attention.
#[derive(Config, Debug)]
pub struct ProbCrossAttentionConfig {
    /// Width of queries, keys and values (the adapter width).
    pub dim: usize,
    /// The switches.
    #[config(default = "ProbAttentionSwitches::new()")]
    pub switches: ProbAttentionSwitches,
}

impl ProbCrossAttentionConfig {
    /// PyTorch-default initialisation (the reference uses no custom init).
    pub fn init<B: Backend>(&self, device: &B::Device) -> ProbCrossAttention<B> {
        let d = self.dim;
        ProbCrossAttention {
            q_proj: LinearConfig::new(d, d).init(device),
            k_proj: LinearConfig::new(d, 2 * d).init(device),
            v_proj: LinearConfig::new(d, 2 * d).init(device),
            out_proj: LinearConfig::new(d, d).init(device),
            norm_k: LayerNormConfig::new(d).init(device),
            norm_v: LayerNormConfig::new(d).init(device),
            gate: Param::from_tensor(Tensor::full([1], self.switches.gate_init, device)),
            beta: self.switches.beta,
            probabilistic: self.switches.probabilistic,
            sample_values: self.switches.sample_values,
            gating: self.switches.gating,
        }
    }
}

/// Single-head probabilistic cross-attention over the full adapter width, with no padding mask.
#[derive(Module, Debug)]
pub struct ProbCrossAttention<B: Backend> {
    /// Query projection `d -> d`.
    pub q_proj: Linear<B>,
    /// Key mean | key variance input, `d -> 2d`.
    pub k_proj: Linear<B>,
    /// Value mean | value variance input, `d -> 2d`.
    pub v_proj: Linear<B>,
    /// Output projection `d -> d`.
    pub out_proj: Linear<B>,
    /// LayerNorm on the key means.
    pub norm_k: LayerNorm<B>,
    /// LayerNorm on the value means.
    pub norm_v: LayerNorm<B>,
    /// Gate logit (one scalar).
    pub gate: Param<Tensor<B, 1>>,
    beta: f64,
    probabilistic: bool,
    sample_values: bool,
    gating: bool,
}

/// Everything one attention call computes, for callers and for parity tests.
#[derive(Debug, Clone)]
pub struct ProbAttentionOutput<B: Backend> {
    /// The result `[B, Tq, d]`: `g·out_proj(A V) + (1-g)·query`.
    pub output: Tensor<B, 3>,
    /// `Q = q_proj(query)` `[B, Tq, d]`.
    pub query: Tensor<B, 3>,
    /// `k_proj(context)` `[B, Tk, 2d]`.
    pub key_out: Tensor<B, 3>,
    /// Normalised key means `[B, Tk, d]`.
    pub key_mean: Tensor<B, 3>,
    /// `v_proj(context)` `[B, Tk, 2d]`.
    pub value_out: Tensor<B, 3>,
    /// Normalised value means `[B, Tk, d]`.
    pub value_mean: Tensor<B, 3>,
    /// Attention weights `[B, Tq, Tk]`.
    pub attention: Tensor<B, 3>,
    /// `A V` `[B, Tq, d]`.
    pub attended: Tensor<B, 3>,
    /// `out_proj(A V)` `[B, Tq, d]`.
    pub projected: Tensor<B, 3>,
}

impl<B: Backend> ProbCrossAttention<B> {
    /// `query [B, Tq, d]` attends to `context [B, Tk, d]`; one noise draw for the values.
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        context: Tensor<B, 3>,
        noise: &mut Noise<B>,
    ) -> ProbAttentionOutput<B> {
        let dim = query.dims()[2];
        let q = linear3d(&self.q_proj, query.clone());
        let key_out = linear3d(&self.k_proj, context.clone());
        let value_out = linear3d(&self.v_proj, context);
        let key_mean = layer_norm(&self.norm_k, key_out.clone().narrow(2, 0, dim));
        let value_mean = layer_norm(&self.norm_v, value_out.clone().narrow(2, 0, dim));

        let mut logits = q.clone().matmul(key_mean.clone().swap_dims(1, 2)) / (dim as f64).sqrt();
        if self.probabilistic {
            let key_var = softplus(key_out.clone().narrow(2, dim, dim)) + VARIANCE_FLOOR;
            let logit_var = q.clone().square().matmul(key_var.swap_dims(1, 2)) / dim as f64;
            logits = logits - logit_var.sqrt() * self.beta;
        }
        let attention = softmax(logits, 2);

        let values = self.values(value_out.clone(), value_mean.clone(), noise);
        let attended = attention.clone().matmul(values);
        let projected = linear3d(&self.out_proj, attended.clone());
        let output = self.mix(projected.clone(), query);
        ProbAttentionOutput {
            output,
            query: q,
            key_out,
            key_mean,
            value_out,
            value_mean,
            attention,
            attended,
            projected,
        }
    }

    /// `μ + sqrt(softplus(r) + 1e-6) ∘ ε`, or `μ` when sampling is off or the noise is zero.
    fn values(
        &self,
        value_out: Tensor<B, 3>,
        value_mean: Tensor<B, 3>,
        noise: &mut Noise<B>,
    ) -> Tensor<B, 3> {
        if !(self.probabilistic && self.sample_values) {
            return value_mean;
        }
        let dims = value_mean.dims();
        let device = value_mean.device();
        match noise.draw(dims, &device) {
            Some(eps) => {
                let value_var = softplus(value_out.narrow(2, dims[2], dims[2])) + VARIANCE_FLOOR;
                value_mean + value_var.sqrt() * eps
            }
            None => value_mean,
        }
    }

    /// The gate: a convex mix with the query, or a plain residual when gating is off.
    fn mix(&self, projected: Tensor<B, 3>, query: Tensor<B, 3>) -> Tensor<B, 3> {
        if !self.gating {
            return query + projected;
        }
        let g = sigmoid(self.gate.val()).reshape([1, 1, 1]);
        projected * g.clone() + query * (g.neg() + 1.0)
    }

    /// Writes the reference keys under `prefix` (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        let p = |x: &str| format!("{prefix}.{x}");
        s.linear(&self.q_proj, &p("q_proj"));
        s.linear(&self.k_proj, &p("k_proj"));
        s.linear(&self.v_proj, &p("v_proj"));
        s.linear(&self.out_proj, &p("out_proj"));
        s.layer_norm(&self.norm_k, &p("norm_k"));
        s.layer_norm(&self.norm_v, &p("norm_v"));
        s.scalar(&self.gate, p("gate"));
    }

    /// Loads `{q,k,v,out}_proj.{weight,bias}`, `norm_k`, `norm_v`, `gate` under `prefix`.
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        self.q_proj = w.linear(self.q_proj, &p("q_proj"), device);
        self.k_proj = w.linear(self.k_proj, &p("k_proj"), device);
        self.v_proj = w.linear(self.v_proj, &p("v_proj"), device);
        self.out_proj = w.linear(self.out_proj, &p("out_proj"), device);
        self.norm_k = w.layer_norm(self.norm_k, &p("norm_k"), device);
        self.norm_v = w.layer_norm(self.norm_v, &p("norm_v"), device);
        self.gate = w.scalar(self.gate, &p("gate"), device);
        self
    }
}
