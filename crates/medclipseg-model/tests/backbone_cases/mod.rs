//! Golden parity of the OpenAI CLIP, PubMedCLIP and BiomedCLIP variants with their official
//! trainers (`testdata/golden/<variant>`, made by `benches/torch/make_backbone_golden.py` from
//! `trainers/medclipseg_{clip,pubmedclip,biomedclip}.py` at tiny sizes, zero adapter noise): every
//! recorded activation, seg logits, losses, gradients and one Adam step, after loading the
//! official model file through the checkpoint reader; and the official `state_dict()` key set of
//! each variant (aliases included) loading end to end. Generic over the backend: `backbones.rs`
//! runs them on Flex, `golden_wgpu.rs` on WGPU.
#![allow(dead_code)]

#[path = "../../../../testdata/golden_support.rs"]
mod golden;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use clip_encoders::weights::to_host;
use clip_encoders::{Activation, BertConfig, ClipTextConfig, HostTensor, TextConfig, VisionConfig};
use golden::{assert_close, read_path, variant_dir};
use medclipseg_model::checkpoint::{load_model, weight_map};
use medclipseg_model::train::{TrainBatch, forward_loss, reference_adam, train_step};
use medclipseg_model::{LoadScope, MedClipSeg, MedClipSegConfig, Noise};
use seg_losses::SegLossConfig;
use torch_checkpoint::{RawTensor, StateDict};

const ABS: f32 = 1e-4;
const REL: f32 = 1e-4;

/// One backbone variant of the official code, at the golden's tiny sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `trainers/medclipseg_clip.py`: OpenAI CLIP ViT-B/16 (value-path patch features).
    Clip,
    /// `trainers/medclipseg_pubmedclip.py`: the same CLIP code at ViT-B/32.
    PubMedClip,
    /// `trainers/medclipseg_biomedclip.py`: timm ViT-B/16 + PubMedBERT (block outputs).
    BiomedClip,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Clip => "clip",
            Variant::PubMedClip => "pubmedclip",
            Variant::BiomedClip => "biomedclip",
        }
    }

    /// The sizes of the golden (see `<variant>_manifest.json`): OpenAI CLIP towers 3 x 64 with
    /// one head (width // 64, as `clip.build_model`), MLP 4x, context 16, vocabulary 256; the
    /// BiomedCLIP builder's fixed 12 layers at width 32 (4 heads, MLP 2x); joint space 32,
    /// adapters of width 32 before layers 1 and 2.
    pub fn config(self) -> MedClipSegConfig {
        let config = match self {
            Variant::Clip | Variant::PubMedClip => {
                let (image, patch) = match self {
                    Variant::Clip => (64, 16),
                    _ => (96, 32),
                };
                MedClipSegConfig::new(
                    VisionConfig::new(image, patch, 64, 3, 1, 256, 32)
                        .with_value_features(Some(true)),
                    TextConfig::Clip(ClipTextConfig::new(256, 16, 64, 3, 1, 32)),
                )
            }
            Variant::BiomedClip => MedClipSegConfig::new(
                VisionConfig::new(64, 16, 32, 12, 4, 64, 32)
                    .with_activation(Activation::Gelu)
                    .with_patch_bias(Some(true))
                    .with_pre_norm(Some(false))
                    .with_layer_norm_eps(Some(1e-6)),
                TextConfig::Bert(
                    BertConfig::new(256, 32, 12, 4, 64, 16, 32)
                        .with_hidden_dropout_prob(0.0)
                        .with_attention_probs_dropout_prob(0.0),
                ),
            ),
        };
        config.with_adapter_dim(32).with_adapter_layers(vec![1, 2])
    }

    fn file(self, suffix: &str) -> PathBuf {
        variant_dir(self.name()).join(format!("{}_{suffix}", self.name()))
    }

    fn golden(self) -> BTreeMap<String, HostTensor> {
        read_path(&self.file("golden.safetensors"))
    }

    /// The official trainer returns the last block's value path (CLIP, PubMedCLIP).
    fn value_features(self) -> bool {
        self != Variant::BiomedClip
    }
}

/// The official model file, read and renamed like any checkpoint (`clip_model.*` aliases,
/// timm names), loaded strictly.
fn load<Bk: Backend>(variant: Variant, device: &Bk::Device) -> MedClipSeg<Bk> {
    load_model(
        &variant.config(),
        &variant.file("model.safetensors"),
        LoadScope::Full,
        device,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", variant.name()))
}

fn tensor<Bk: Backend, const D: usize>(t: &HostTensor, device: &Bk::Device) -> Tensor<Bk, D> {
    let shape: [usize; D] = t.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(t.data.clone(), shape), device)
}

fn int_tensor<Bk: Backend>(t: &HostTensor, device: &Bk::Device) -> Tensor<Bk, 2, Int> {
    let values: Vec<i64> = t.data.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(values, [t.shape[0], t.shape[1]]), device)
}

fn check<Bk: Backend, const D: usize>(
    g: &BTreeMap<String, HostTensor>,
    key: &str,
    actual: Tensor<Bk, D>,
) {
    assert_close(key, &to_host(actual).data, &g[key], ABS, REL);
}

fn batch<Bk: Backend>(g: &BTreeMap<String, HostTensor>, device: &Bk::Device) -> TrainBatch<Bk> {
    TrainBatch {
        images: tensor(&g["image"], device),
        ids: int_tensor(&g["input_ids"], device),
        attention_mask: int_tensor(&g["attention_mask"], device),
        masks: tensor(&g["target_mask"], device),
    }
}

/// The image features the official `encode_text_image` returns: the CLIP trainers drop the
/// class token, the BiomedCLIP one keeps it.
fn official_image_features<Bk: Backend>(
    variant: Variant,
    img_tokens: Tensor<Bk, 3>,
) -> Tensor<Bk, 3> {
    if variant.value_features() {
        let tokens = img_tokens.dims()[1];
        img_tokens.narrow(1, 1, tokens - 1)
    } else {
        img_tokens
    }
}

pub fn forward_matches_every_recorded_activation<B: Backend>(variant: Variant, device: &B::Device) {
    let g = variant.golden();
    let model = load::<B>(variant, device);
    let b = batch::<B>(&g, device);
    let (out, trace) = model.forward_traced(b.images, b.ids, b.attention_mask, &mut Noise::Zero);
    let layers = model.num_layers();

    check(&g, "vis.ln_pre", trace.vision_embed.clone().unwrap());
    check(&g, "txt.embeddings", trace.text_embed.clone().unwrap());
    for i in 0..layers {
        check(&g, &format!("txt.layer{i}"), trace.text_layers[i].clone());
        let last = i + 1 == layers;
        let key = if last && variant.value_features() {
            "vis.value_path".to_string()
        } else {
            format!("vis.block{i}")
        };
        check(&g, &key, trace.vision_blocks[i].clone());
    }
    for (k, adapter) in trace.adapters.iter().enumerate() {
        check(&g, &format!("adapter{k}.in_vis"), adapter.in_vis.clone());
        check(&g, &format!("adapter{k}.in_txt"), adapter.in_txt.clone());
        check(
            &g,
            &format!("adapter{k}.dv"),
            adapter.output.dv.clone().unwrap(),
        );
        check(
            &g,
            &format!("adapter{k}.dt"),
            adapter.output.dt.clone().unwrap(),
        );
    }
    check(
        &g,
        "img_tokens",
        official_image_features(variant, out.img_tokens),
    );
    check(&g, "txt_vec", out.txt_vec);
    check(&g, "seg_logits", out.seg_logits);
}

/// The block-output formulation (what UniMedCLIP and BiomedCLIP return) is far from what the
/// CLIP trainers compute: the value path is not a detail lost in round-off.
pub fn the_last_block_output_is_not_what_the_clip_trainers_return<B: Backend>(
    variant: Variant,
    device: &B::Device,
) {
    let g = variant.golden();
    let value = &g["vis.value_path"].data;
    let last = &g[&format!("vis.block{}", variant.config().vision.layers - 1)].data;
    let gap = value
        .iter()
        .zip(last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap > 0.1, "{gap}");
    // And our tower without the switch gives the block output, not the golden's features.
    let mut config = variant.config();
    config.vision.value_features = None;
    let weights =
        weight_map(&torch_checkpoint::load(variant.file("model.safetensors")).unwrap()).unwrap();
    let model = config
        .init::<B>(device)
        .load_weights(&weights, LoadScope::Full, device);
    let b = batch::<B>(&g, device);
    let (_, trace) = model.forward_traced(b.images, b.ids, b.attention_mask, &mut Noise::Zero);
    let block_output = to_host(trace.vision_blocks.last().unwrap().clone());
    assert_close(
        "vis.block(last)",
        &block_output.data,
        &g[&format!("vis.block{}", config.vision.layers - 1)],
        ABS,
        REL,
    );
}

fn check_losses<Bk: Backend>(
    g: &BTreeMap<String, HostTensor>,
    prefix: &str,
    loss: &seg_losses::SegLoss<Bk>,
) {
    for (name, value) in [
        ("dice", &loss.dice),
        ("bce", &loss.bce),
        ("softcon", &loss.softcon),
        ("total", &loss.total),
    ] {
        let key = format!("{prefix}{name}");
        assert_close(&key, &to_host(value.clone()).data, &g[&key], 0.0, 1e-5);
    }
}

/// Replaces every parameter by its gradient (zeros where there is none).
struct GradientsAsParams<'a, A: AutodiffBackend> {
    grads: &'a A::Gradients,
}

impl<A: AutodiffBackend> ModuleMapper<A> for GradientsAsParams<'_, A> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<A, D>>) -> Param<Tensor<A, D>> {
        let (id, tensor, mapper) = param.consume();
        let grad = match tensor.grad(self.grads) {
            Some(g) => Tensor::from_inner(g),
            None => tensor.zeros_like(),
        };
        Param::from_mapped_value(id, grad, mapper)
    }
}

pub fn losses_and_gradients_match<A: AutodiffBackend>(variant: Variant, device: &A::Device) {
    let g = variant.golden();
    let model = load::<A>(variant, device);
    let (loss, _) = forward_loss(
        &model,
        &batch(&g, device),
        &SegLossConfig::new(),
        &mut Noise::Zero,
    );
    check_losses(&g, "loss.", &loss);
    let grads = loss.total.backward();
    let gradients: BTreeMap<String, HostTensor> = model
        .clone()
        .map(&mut GradientsAsParams { grads: &grads })
        .state_dict()
        .into_iter()
        .collect();
    let expected: Vec<(&str, &HostTensor)> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("grad.").map(|k| (k, v)))
        .collect();
    assert!(expected.len() > 70, "{}", expected.len());
    for (key, want) in expected {
        // norm_k.bias has an analytically zero gradient (round-off only): compared absolutely.
        let abs = if key.ends_with("norm_k.bias") {
            1e-8
        } else {
            1e-7
        };
        assert_close(key, &gradients[key].data, want, abs, 1e-3);
    }
}

pub fn one_adam_step_matches<A: AutodiffBackend>(variant: Variant, device: &A::Device) {
    let g = variant.golden();
    let model = load::<A>(variant, device);
    let b = batch::<A>(&g, device);
    let loss_config = SegLossConfig::new();
    let mut optimizer = reference_adam().init();
    let (model, step) = train_step(
        model,
        &mut optimizer,
        &b,
        &loss_config,
        3e-4,
        &mut Noise::Zero,
    );
    step.expect("finite loss");
    let after: BTreeMap<String, HostTensor> = model.state_dict().into_iter().collect();
    let recorded: Vec<_> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("adam1.").map(|k| (k, v)))
        .collect();
    assert_eq!(recorded.len(), 8);
    for (key, expected) in recorded {
        assert_close(key, &after[key].data, expected, 2e-6, 1e-5);
    }
    let (loss, _) = forward_loss(&model, &b, &loss_config, &mut Noise::Zero);
    check_losses(&g, "step1.loss.", &loss);
}

/// Keys with their shapes, in the file's order.
type KeyShapes = Vec<(String, Vec<usize>)>;

/// `<variant>_keys.json`: every key and shape of the official `model.state_dict()` and the
/// aliases among them (`alias -> twin`).
fn official_key_set(variant: Variant) -> (KeyShapes, BTreeMap<String, String>) {
    let path = variant.file("keys.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry[0].as_str().unwrap().to_string();
            let shape = entry[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name, shape)
        })
        .collect();
    let aliases = json["aliases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (keys, aliases)
}

/// A state dict with the official key set, random values, each alias holding its twin's.
fn official_state_dict(variant: Variant) -> (StateDict, BTreeMap<String, Vec<f32>>) {
    let (keys, aliases) = official_key_set(variant);
    let mut values = BTreeMap::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for (key, shape) in keys.iter().filter(|(k, _)| !aliases.contains_key(k)) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        values.insert(key.clone(), data);
    }
    let mut sd = StateDict::new(format!("official_{}.safetensors", variant.name()));
    for (key, shape) in &keys {
        let data = &values[aliases.get(key).unwrap_or(key)];
        sd.insert(
            key.clone(),
            RawTensor::from_f32(shape.clone(), data).unwrap(),
        );
    }
    (sd, values)
}

pub fn the_official_state_dict_loads_unchanged<B: Backend>(variant: Variant, device: &B::Device) {
    let (sd, values) = official_state_dict(variant);
    let weights = weight_map(&sd).unwrap_or_else(|e| panic!("{}: {e}", variant.name()));
    let model = variant
        .config()
        .init::<B>(device)
        .load_weights(&weights, LoadScope::Full, device);
    weights
        .finish(true)
        .unwrap_or_else(|e| panic!("{}: {e}", variant.name()));
    // Tensors under the towers' own names land unchanged (the CLIP variants' keys are ours;
    // BiomedCLIP's timm/open_clip names are renamed and checked in clip-encoders).
    let loaded: BTreeMap<String, HostTensor> = model.state_dict().into_iter().collect();
    let mut compared = 0;
    for (key, tensor) in &loaded {
        let source = match key.as_str() {
            "text_model.token_embedding.weight" => "clip_model.token_embedding.weight",
            other => other,
        };
        if let Some(expected) = values.get(source) {
            assert_eq!(&tensor.data, expected, "{key}");
            compared += 1;
        }
    }
    assert!(compared > 60, "{compared}");
    if variant.value_features() {
        assert!(loaded.contains_key("text_model.token_embedding.weight"));
    }
}

pub fn an_alias_that_differs_from_its_twin_is_refused(variant: Variant) {
    let (mut sd, _) = official_state_dict(variant);
    let alias = "clip_model.visual.ln_post.bias";
    let (shape, mut data) = sd.tensor_f32(alias).unwrap();
    data[0] += 0.5;
    sd.insert(alias, RawTensor::from_f32(shape, &data).unwrap());
    let err = weight_map(&sd).unwrap_err().to_string();
    assert!(
        err.contains(alias) && err.contains("vision_model.ln_post.bias"),
        "{err}"
    );
}

/// One `#[test]` per case and variant on backend `$b` (autodiff `$a`), device `$device`.
macro_rules! backbone_tests {
    ($b:ty, $a:ty, $device:expr) => {
        $crate::backbone_cases::backbone_tests!(@variant clip, Clip, $b, $a, $device);
        $crate::backbone_cases::backbone_tests!(@variant pubmedclip, PubMedClip, $b, $a, $device);
        $crate::backbone_cases::backbone_tests!(@variant biomedclip, BiomedClip, $b, $a, $device);
        #[test]
        fn clip_value_path_is_not_the_block_output() {
            backbone_cases::the_last_block_output_is_not_what_the_clip_trainers_return::<$b>(
                backbone_cases::Variant::Clip,
                &$device,
            );
        }
        #[test]
        fn pubmedclip_value_path_is_not_the_block_output() {
            backbone_cases::the_last_block_output_is_not_what_the_clip_trainers_return::<$b>(
                backbone_cases::Variant::PubMedClip,
                &$device,
            );
        }
        #[test]
        fn clip_alias_that_differs_is_refused() {
            backbone_cases::an_alias_that_differs_from_its_twin_is_refused(
                backbone_cases::Variant::Clip,
            );
        }
    };
    (@variant $name:ident, $variant:ident, $b:ty, $a:ty, $device:expr) => {
        mod $name {
            use super::*;
            const VARIANT: backbone_cases::Variant = backbone_cases::Variant::$variant;
            #[test]
            fn forward_matches_every_recorded_activation() {
                backbone_cases::forward_matches_every_recorded_activation::<$b>(VARIANT, &$device);
            }
            #[test]
            fn losses_and_gradients_match() {
                backbone_cases::losses_and_gradients_match::<$a>(VARIANT, &$device);
            }
            #[test]
            fn one_adam_step_matches() {
                backbone_cases::one_adam_step_matches::<$a>(VARIANT, &$device);
            }
            #[test]
            fn the_official_state_dict_loads_unchanged() {
                backbone_cases::the_official_state_dict_loads_unchanged::<$b>(VARIANT, &$device);
            }
        }
    };
}
pub(crate) use backbone_tests;
