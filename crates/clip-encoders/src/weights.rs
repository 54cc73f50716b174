//! Loading weights from a state dict into Burn modules, under PyTorch key names.
//!
//! A [`WeightMap`] holds f32 tensors by their original key. Loaders take a freshly
//! initialised module and return it with every parameter replaced, converting layouts on the
//! way (PyTorch `Linear` is `[out, in]`, Burn's is `[in, out]`). Problems are collected, not
//! raised one at a time, so that [`WeightMap::finish`] can list every missing, unused and
//! mis-shaped key in a single error.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::LoadError;

/// One tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (a scalar has none).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Wraps values with their shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data }
    }
}

/// Tensors by key, with the bookkeeping needed for strict loading.
#[derive(Debug, Default)]
pub struct WeightMap {
    source_name: String,
    tensors: BTreeMap<String, HostTensor>,
    used: RefCell<BTreeSet<String>>,
    missing: RefCell<Vec<String>>,
    shape_mismatches: RefCell<Vec<String>>,
}

impl WeightMap {
    /// An empty map; `source_name` (usually the file) prefixes every error message.
    pub fn new(source_name: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            ..Self::default()
        }
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, key: impl Into<String>, tensor: HostTensor) {
        self.tensors.insert(key.into(), tensor);
    }

    /// Takes the tensors out, by key (for renaming them into another map).
    pub fn into_tensors(self) -> BTreeMap<String, HostTensor> {
        self.tensors
    }

    /// The tensor stored under `key`, if any (does not mark it used).
    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.tensors.get(key)
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the map holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Where the tensors came from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Marks a key as consumed without loading it (e.g. `logit_scale`, unused by the model).
    pub fn mark_used(&self, key: &str) {
        if self.tensors.contains_key(key) {
            self.used.borrow_mut().insert(key.to_string());
        }
    }

    /// Fetches `key` and checks its shape; records a problem and returns `None` otherwise.
    pub fn take(&self, key: &str, expected: &[usize]) -> Option<&HostTensor> {
        let Some(tensor) = self.tensors.get(key) else {
            self.missing.borrow_mut().push(key.to_string());
            return None;
        };
        self.used.borrow_mut().insert(key.to_string());
        if tensor.shape != expected {
            self.shape_mismatches.borrow_mut().push(format!(
                "{key}: expected {expected:?}, found {:?}",
                tensor.shape
            ));
            return None;
        }
        Some(tensor)
    }

    /// Keys present but never consumed.
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self.used.borrow();
        self.tensors
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }

    /// Ends a load: errors if any key was missing or mis-shaped, or (when `strict`) unused.
    pub fn finish(&self, strict: bool) -> Result<(), LoadError> {
        let missing = self.missing.borrow().clone();
        let shape_mismatches = self.shape_mismatches.borrow().clone();
        let unexpected = if strict {
            self.unused_keys()
        } else {
            Vec::new()
        };
        if missing.is_empty() && unexpected.is_empty() && shape_mismatches.is_empty() {
            return Ok(());
        }
        Err(LoadError::Mismatch {
            source_name: self.source_name.clone(),
            missing,
            unexpected,
            shape_mismatches,
        })
    }

    /// Replaces a parameter with the tensor stored under `key` (same layout).
    pub fn param<B: Backend, const D: usize>(
        &self,
        param: Param<Tensor<B, D>>,
        key: &str,
        device: &B::Device,
    ) -> Param<Tensor<B, D>> {
        let shape: [usize; D] = param.lazy_shape().dims();
        match self.take(key, &shape) {
            Some(t) => Param::from_tensor(to_tensor(t, shape, device)),
            None => param,
        }
    }

    /// Replaces a one-element parameter with a scalar stored as `[]` (or `[1]`).
    pub fn scalar<B: Backend>(
        &self,
        param: Param<Tensor<B, 1>>,
        key: &str,
        device: &B::Device,
    ) -> Param<Tensor<B, 1>> {
        let expected: &[usize] = match self.tensors.get(key) {
            Some(t) if t.shape == [1] => &[1],
            _ => &[],
        };
        match self.take(key, expected) {
            Some(t) => Param::from_tensor(to_tensor(t, [1], device)),
            None => param,
        }
    }

    /// Loads a PyTorch `nn.Linear` (`weight [out,in]`, optional `bias`) into a Burn `Linear`.
    pub fn linear<B: Backend>(
        &self,
        mut linear: Linear<B>,
        prefix: &str,
        device: &B::Device,
    ) -> Linear<B> {
        linear.weight = self.transposed(linear.weight, &format!("{prefix}.weight"), device);
        linear.bias = linear
            .bias
            .map(|b| self.param(b, &format!("{prefix}.bias"), device));
        linear
    }

    /// Loads a raw `[out, in]` matrix into a `[in, out]` parameter (a transposed PyTorch weight).
    pub fn transposed<B: Backend>(
        &self,
        param: Param<Tensor<B, 2>>,
        key: &str,
        device: &B::Device,
    ) -> Param<Tensor<B, 2>> {
        let [d_in, d_out] = param.lazy_shape().dims();
        match self.take(key, &[d_out, d_in]) {
            Some(t) => Param::from_tensor(to_tensor::<B, 2>(t, [d_out, d_in], device).transpose()),
            None => param,
        }
    }

    /// Loads a PyTorch `LayerNorm` (`weight`, `bias`) into Burn's (`gamma`, `beta`).
    pub fn layer_norm<B: Backend>(
        &self,
        mut norm: LayerNorm<B>,
        prefix: &str,
        device: &B::Device,
    ) -> LayerNorm<B> {
        norm.gamma = self.param(norm.gamma, &format!("{prefix}.weight"), device);
        norm.beta = norm
            .beta
            .map(|b| self.param(b, &format!("{prefix}.bias"), device));
        norm
    }

    /// Loads a PyTorch `Embedding` (same `[num, dim]` layout).
    pub fn embedding<B: Backend>(
        &self,
        mut embedding: Embedding<B>,
        key: &str,
        device: &B::Device,
    ) -> Embedding<B> {
        embedding.weight = self.param(embedding.weight, key, device);
        embedding
    }

    /// Loads a PyTorch `Conv2d` (same `[out, in/groups, kh, kw]` layout).
    pub fn conv2d<B: Backend>(
        &self,
        mut conv: Conv2d<B>,
        prefix: &str,
        device: &B::Device,
    ) -> Conv2d<B> {
        conv.weight = self.param(conv.weight, &format!("{prefix}.weight"), device);
        conv.bias = conv
            .bias
            .map(|b| self.param(b, &format!("{prefix}.bias"), device));
        conv
    }

    /// Loads a PyTorch `ConvTranspose2d` (same `[in, out/groups, kh, kw]` layout).
    pub fn conv_transpose2d<B: Backend>(
        &self,
        mut conv: ConvTranspose2d<B>,
        prefix: &str,
        device: &B::Device,
    ) -> ConvTranspose2d<B> {
        conv.weight = self.param(conv.weight, &format!("{prefix}.weight"), device);
        conv.bias = conv
            .bias
            .map(|b| self.param(b, &format!("{prefix}.bias"), device));
        conv
    }
}

/// Builds a tensor of a known rank from host data whose shape has already been checked.
pub fn to_tensor<B: Backend, const D: usize>(
    tensor: &HostTensor,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(tensor.data.clone(), shape), device)
}

/// Copies a tensor back to the host, for saving or comparing.
pub fn to_host<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> HostTensor {
    let shape = tensor.dims().to_vec();
    let data = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default();
    HostTensor { shape, data }
}

/// Collects a module's tensors under PyTorch key names and layouts (the inverse of loading).
#[derive(Debug, Default)]
pub struct StateWriter {
    tensors: Vec<(String, HostTensor)>,
}

impl StateWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The collected `(key, tensor)` pairs, in insertion order.
    pub fn into_tensors(self) -> Vec<(String, HostTensor)> {
        self.tensors
    }

    /// Adds one tensor as it is.
    pub fn tensor<B: Backend, const D: usize>(&mut self, key: String, tensor: Tensor<B, D>) {
        self.tensors.push((key, to_host(tensor)));
    }

    /// A parameter in its own layout.
    pub fn param<B: Backend, const D: usize>(&mut self, param: &Param<Tensor<B, D>>, key: String) {
        self.tensor(key, param.val());
    }

    /// A one-element parameter written as a 0-d scalar (the reference's `gate`).
    pub fn scalar<B: Backend>(&mut self, param: &Param<Tensor<B, 1>>, key: String) {
        let mut host = to_host(param.val());
        host.shape.clear();
        self.tensors.push((key, host));
    }

    /// A `[in, out]` Burn matrix written as PyTorch's `[out, in]`.
    pub fn transposed<B: Backend>(&mut self, param: &Param<Tensor<B, 2>>, key: String) {
        self.tensor(key, param.val().transpose());
    }

    /// `nn.Linear`: `weight [out, in]` and `bias`.
    pub fn linear<B: Backend>(&mut self, linear: &Linear<B>, prefix: &str) {
        self.transposed(&linear.weight, format!("{prefix}.weight"));
        if let Some(bias) = &linear.bias {
            self.param(bias, format!("{prefix}.bias"));
        }
    }

    /// `LayerNorm`: `weight`, `bias`.
    pub fn layer_norm<B: Backend>(&mut self, norm: &LayerNorm<B>, prefix: &str) {
        self.param(&norm.gamma, format!("{prefix}.weight"));
        if let Some(beta) = &norm.beta {
            self.param(beta, format!("{prefix}.bias"));
        }
    }

    /// `Embedding`: `weight`.
    pub fn embedding<B: Backend>(&mut self, embedding: &Embedding<B>, key: &str) {
        self.param(&embedding.weight, key.to_string());
    }

    /// `Conv2d`: `weight`, `bias`.
    pub fn conv2d<B: Backend>(&mut self, conv: &Conv2d<B>, prefix: &str) {
        self.param(&conv.weight, format!("{prefix}.weight"));
        if let Some(bias) = &conv.bias {
            self.param(bias, format!("{prefix}.bias"));
        }
    }

    /// `ConvTranspose2d`: `weight`, `bias`.
    pub fn conv_transpose2d<B: Backend>(&mut self, conv: &ConvTranspose2d<B>, prefix: &str) {
        self.param(&conv.weight, format!("{prefix}.weight"));
        if let Some(bias) = &conv.bias {
            self.param(bias, format!("{prefix}.bias"));
        }
    }
}
