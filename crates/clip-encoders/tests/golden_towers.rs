//! Parity of the towers with the official code on the tiny golden run, loading the golden
//! state dict by its original key names. Layers that follow an adapter are fed the recorded
//! adapter-updated states, so each tower layer is checked on its own.

#[path = "../../../testdata/golden_support.rs"]
mod golden;

use std::collections::BTreeMap;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorData;
use clip_encoders::weights::to_host;
use clip_encoders::{BertConfig, HostTensor, VisionConfig};
use golden::{assert_close, model_weights, read};

type B = Flex;

fn tensor<const D: usize>(t: &HostTensor) -> Tensor<B, D> {
    let shape: [usize; D] = t.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(t.data.clone(), shape), &Default::default())
}

fn check<const D: usize>(g: &BTreeMap<String, HostTensor>, key: &str, actual: Tensor<B, D>) {
    assert_close(key, &to_host(actual).data, &g[key], 1e-4, 1e-4);
}

/// The state entering layer `i`: the recorded output of layer `i-1`, plus the adapter update
/// recorded before layer `i` when there is one (adapters sit before layers 1 and 2).
fn layer_input<const D: usize>(
    g: &BTreeMap<String, HostTensor>,
    i: usize,
    modality: &str,
) -> Tensor<B, D> {
    let (prev, inp, delta) = match modality {
        "vis" => (format!("vis.block{}", i - 1), "in_vis", "dv"),
        _ => (format!("txt.layer{}", i - 1), "in_txt", "dt"),
    };
    match i {
        1 | 2 => {
            let k = i - 1;
            let input: Tensor<B, D> = tensor(&g[&format!("adapter{k}.{inp}")]);
            // The recorded adapter input is the previous layer's output.
            assert_close(&prev, &to_host(input.clone()).data, &g[&prev], 0.0, 0.0);
            input + tensor(&g[&format!("adapter{k}.{delta}")])
        }
        _ => tensor(&g[&prev]),
    }
}

#[test]
fn vision_tower_matches_layer_by_layer_and_after_ln_post_and_proj() {
    let g = read("tiny_golden.safetensors");
    let weights = model_weights();
    let device = Default::default();
    let vit = VisionConfig::new(64, 16, 64, 4, 4, 128, 32)
        .init::<B>(&device)
        .load(&weights, "vision_model", &device);
    let embedded = vit.embed(tensor(&g["image"]));
    check(&g, "vis.ln_pre", embedded.clone());
    check(&g, "vis.block0", vit.block(0, embedded));
    for i in 1..4 {
        check(
            &g,
            &format!("vis.block{i}"),
            vit.block(i, layer_input(&g, i, "vis")),
        );
    }
    check(&g, "img_tokens", vit.head(tensor(&g["vis.block3"])));
    assert!(
        weights
            .unused_keys()
            .iter()
            .all(|k| !k.starts_with("vision_model"))
    );
}

#[test]
fn bert_tower_matches_last_hidden_state_and_projected_text_vector() {
    let g = read("tiny_golden.safetensors");
    let weights = model_weights();
    let device = Default::default();
    let bert = BertConfig::new(256, 64, 4, 4, 128, 32, 32)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0)
        .init::<B>(&device)
        .load(
            &weights,
            "text_model.transformer",
            "text_model.proj",
            &device,
        );
    let ids: Vec<i64> = g["input_ids"].data.iter().map(|&v| v as i64).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [2, 16]), &device);
    let mask = ids.clone().not_equal_elem(0).int();
    let bias = bert.attention_bias(mask);
    let embedded = bert.embed(ids);
    check(&g, "txt.embeddings", embedded.clone());
    check(&g, "txt.layer0", bert.layer(0, embedded, bias.clone()));
    for i in 1..4 {
        check(
            &g,
            &format!("txt.layer{i}"),
            bert.layer(i, layer_input(&g, i, "txt"), bias.clone()),
        );
    }
    check(
        &g,
        "txt_vec",
        bert.pool(tensor(&g["txt.last_hidden_state"])),
    );
}

#[test]
fn strict_loading_lists_missing_and_unexpected_keys() {
    let all = model_weights();
    let mut weights = clip_encoders::WeightMap::new("tiny_model.safetensors");
    for key in all.keys().filter(|k| k.starts_with("vision_model.")) {
        weights.insert(key.clone(), all.get(key).unwrap().clone());
    }
    weights.insert("vision_model.extra", HostTensor::new(vec![1], vec![0.0]));
    let device = Default::default();
    // A tower with one layer more than the checkpoint.
    let _vit = VisionConfig::new(64, 16, 64, 5, 4, 128, 32)
        .init::<B>(&device)
        .load(&weights, "vision_model", &device);
    let message = weights.finish(true).unwrap_err().to_string();
    assert!(
        message.contains("vision_model.transformer.resblocks.4.ln_1.weight"),
        "{message}"
    );
    assert!(message.contains("unexpected keys (1)"), "{message}");
    assert!(message.contains("vision_model.extra"), "{message}");
    assert!(message.contains("tiny_model.safetensors"), "{message}");
}

#[test]
fn shape_mismatches_are_reported_not_panicked() {
    let weights = model_weights();
    let device = Default::default();
    // Width 32 instead of 64: every tensor has the wrong shape.
    let _vit = VisionConfig::new(64, 16, 32, 4, 4, 128, 32)
        .init::<B>(&device)
        .load(&weights, "vision_model", &device);
    let message = weights.finish(false).unwrap_err().to_string();
    assert!(
        message
            .contains("vision_model.conv1.weight: expected [32, 3, 16, 16], found [64, 3, 16, 16]"),
        "{message}"
    );
}
