//! Each published layout, generated here under its real key names (tiny shapes), must load
//! strictly and give the same forward as the same numbers under the towers' own names.

use std::collections::BTreeMap;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

use super::*;
use crate::activation::Activation;
use crate::bert::BertConfig;
use crate::clip_text::ClipTextConfig;
use crate::vit::{VisionConfig, VisionTransformer};
use crate::weights::StateWriter;

type B = Flex;

const OURS: TowerPrefixes = TowerPrefixes {
    vision: "vision_model",
    text: "text_model",
};

// Width 16, 2 layers, 2 heads, 32 px / 8 px patches (17 tokens), joint space 8.
const W: usize = 16;
const TOKENS: usize = 17;
const E: usize = 8;

fn vision_config() -> VisionConfig {
    VisionConfig::new(32, 8, W, 2, 2, 32, E)
}

fn timm_config() -> VisionConfig {
    vision_config()
        .with_activation(Activation::Gelu)
        .with_patch_bias(Some(true))
        .with_pre_norm(Some(false))
        .with_layer_norm_eps(Some(1e-6))
}

fn clip_text_config() -> ClipTextConfig {
    ClipTextConfig::new(50, 8, 12, 2, 2, E)
}

/// A module's tensors under its own (native) names, every value redrawn: a fresh module's
/// LayerNorms are ones and zeros, which would hide a swapped norm.
fn native(save: impl FnOnce(&mut StateWriter)) -> BTreeMap<String, HostTensor> {
    let mut writer = StateWriter::new();
    save(&mut writer);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    writer
        .into_tensors()
        .into_iter()
        .map(|(key, t)| {
            let data = t.data.iter().map(|_| next()).collect();
            (key, HostTensor::new(t.shape, data))
        })
        .collect()
}

/// A fresh vision tower filled from `tensors` under prefix `prefix`, every key used.
fn vision_from(
    config: &VisionConfig,
    tensors: &BTreeMap<String, HostTensor>,
    prefix: &str,
) -> VisionTransformer<B> {
    let map = map_of(tensors.clone());
    let tower = config
        .init::<B>(&Default::default())
        .load(&map, prefix, &Default::default());
    map.finish(true).unwrap();
    tower
}

/// A fresh CLIP text tower filled the same way.
fn clip_text_from(
    tensors: &BTreeMap<String, HostTensor>,
    prefix: &str,
) -> crate::clip_text::ClipTextTower<B> {
    let map = map_of(tensors.clone());
    let tower =
        clip_text_config()
            .init::<B>(&Default::default())
            .load(&map, prefix, &Default::default());
    map.finish(true).unwrap();
    tower
}

fn map_of(tensors: BTreeMap<String, HostTensor>) -> WeightMap {
    let mut map = WeightMap::new("generated.pth");
    for (key, tensor) in tensors {
        map.insert(key, tensor);
    }
    map
}

fn transposed(t: &HostTensor) -> HostTensor {
    transpose(t).expect("2-D")
}

fn reshaped(t: &HostTensor, shape: Vec<usize>) -> HostTensor {
    HostTensor::new(shape, t.data.clone())
}

/// Rows `part * n .. (part + 1) * n` of a packed `[3n, ..]` tensor.
fn third(t: &HostTensor, part: usize) -> HostTensor {
    let n = t.shape[0] / 3;
    let row: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = n;
    HostTensor::new(shape, t.data[part * n * row..(part + 1) * n * row].to_vec())
}

fn images() -> Tensor<B, 4> {
    Tensor::random(
        [2, 3, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    )
}

fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// A fresh tower filled from `converted` (the caller checks `finish`).
fn load_vision(config: &VisionConfig, converted: &WeightMap) -> VisionTransformer<B> {
    let fresh = config.init::<B>(&Default::default());
    fresh.load(converted, "vision_model", &Default::default())
}

#[test]
fn open_clip_timm_vit_loads_onto_the_vision_tower() {
    let ours = native(|s| timm_config().init::<B>(&Default::default()).save(s, "v"));
    let reference = vision_from(&timm_config(), &ours, "v");
    assert!(!ours.contains_key("v.ln_pre.weight"), "no pre-norm in timm");
    // BiomedCLIP's key names (open_clip TimmModel around timm VisionTransformer).
    let mut foreign = BTreeMap::new();
    let mut put = |k: &str, t: HostTensor| foreign.insert(k.to_string(), t);
    put(
        "visual.trunk.patch_embed.proj.weight",
        ours["v.conv1.weight"].clone(),
    );
    put(
        "visual.trunk.patch_embed.proj.bias",
        ours["v.conv1.bias"].clone(),
    );
    put(
        "visual.trunk.cls_token",
        reshaped(&ours["v.class_embedding"], vec![1, 1, W]),
    );
    put(
        "visual.trunk.pos_embed",
        reshaped(&ours["v.positional_embedding"], vec![1, TOKENS, W]),
    );
    for i in 0..2 {
        let (t, o) = (
            format!("visual.trunk.blocks.{i}"),
            format!("v.transformer.resblocks.{i}"),
        );
        for (timm, native) in [
            ("norm1.weight", "ln_1.weight"),
            ("norm1.bias", "ln_1.bias"),
            ("attn.qkv.weight", "attn.in_proj_weight"),
            ("attn.qkv.bias", "attn.in_proj_bias"),
            ("attn.proj.weight", "attn.out_proj.weight"),
            ("attn.proj.bias", "attn.out_proj.bias"),
            ("norm2.weight", "ln_2.weight"),
            ("norm2.bias", "ln_2.bias"),
            ("mlp.fc1.weight", "mlp.c_fc.weight"),
            ("mlp.fc1.bias", "mlp.c_fc.bias"),
            ("mlp.fc2.weight", "mlp.c_proj.weight"),
            ("mlp.fc2.bias", "mlp.c_proj.bias"),
        ] {
            put(
                &format!("{t}.{timm}"),
                ours[&format!("{o}.{native}")].clone(),
            );
        }
    }
    put("visual.trunk.norm.weight", ours["v.ln_post.weight"].clone());
    put("visual.trunk.norm.bias", ours["v.ln_post.bias"].clone());
    put("visual.head.proj.weight", transposed(&ours["v.proj"]));
    put("logit_scale", HostTensor::new(vec![], vec![4.6]));
    // The real shapes: packed qkv [3W, W], the Linear head [E, W].
    assert_eq!(
        foreign["visual.trunk.blocks.0.attn.qkv.weight"].shape,
        [3 * W, W]
    );
    assert_eq!(foreign["visual.head.proj.weight"].shape, [E, W]);
    assert_eq!(
        foreign["visual.trunk.patch_embed.proj.weight"].shape,
        [W, 3, 8, 8]
    );

    let (converted, layout) = to_tower_names(map_of(foreign), OURS).unwrap();
    assert_eq!(layout, BackboneLayout::OpenClipTimm);
    let loaded = load_vision(&timm_config(), &converted);
    converted.mark_used("logit_scale");
    converted.finish(true).unwrap();
    let x = images();
    let diff = max_diff(reference.forward(x.clone()), loaded.forward(x));
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn biomedclip_text_keys_land_on_the_bert_tower() {
    let device = Default::default();
    let bert = BertConfig::new(40, 16, 2, 2, 32, 12, E)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0);
    let mut foreign = native(|s| {
        bert.init::<B>(&device)
            .save(s, "text.transformer", "text.proj")
    });
    let reference = {
        let map = map_of(foreign.clone());
        let tower = bert
            .init::<B>(&device)
            .load(&map, "text.transformer", "text.proj", &device);
        map.finish(true).unwrap();
        tower
    };
    assert!(foreign.contains_key("text.transformer.encoder.layer.1.attention.self.query.weight"));
    assert!(foreign.contains_key("text.proj.2.weight"));
    // A timm vision key makes this a BiomedCLIP file.
    foreign.insert(
        "visual.trunk.norm.weight".into(),
        HostTensor::new(vec![W], vec![1.0; W]),
    );
    let (converted, _) = to_tower_names(map_of(foreign), OURS).unwrap();
    let loaded = bert.init::<B>(&device).load(
        &converted,
        "text_model.transformer",
        "text_model.proj",
        &device,
    );
    converted.mark_used("vision_model.ln_post.weight");
    converted.finish(true).unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 9, 2], [1, 4]), &device);
    let run = |t: &crate::bert::BertTextTower<B>| {
        let mask = Tensor::<B, 2, Int>::ones([1, 4], &device);
        let mut h = t.embed(ids.clone());
        let bias = t.attention_bias(mask);
        for i in 0..t.num_layers() {
            h = t.layer(i, h, bias.clone());
        }
        t.pool(h)
    };
    assert!(max_diff(run(&reference), run(&loaded)) < 1e-5);
}

#[test]
fn openai_clip_state_dict_loads_both_towers() {
    let device = Default::default();
    let v = native(|s| vision_config().init::<B>(&device).save(s, "visual"));
    let t = native(|s| clip_text_config().init::<B>(&device).save(s, ""));
    let vision = vision_from(&vision_config(), &v, "visual");
    let text = clip_text_from(&t, "");
    let mut foreign = v;
    foreign.extend(t);
    foreign.insert("logit_scale".into(), HostTensor::new(vec![], vec![4.6]));
    // OpenAI CLIP's real names: the text tower sits at the top level.
    for key in [
        "visual.conv1.weight",
        "visual.class_embedding",
        "visual.transformer.resblocks.1.attn.in_proj_weight",
        "visual.proj",
        "token_embedding.weight",
        "positional_embedding",
        "transformer.resblocks.1.mlp.c_proj.weight",
        "ln_final.bias",
        "text_projection",
    ] {
        assert!(foreign.contains_key(key), "{key}");
    }
    let (converted, layout) = to_tower_names(map_of(foreign), OURS).unwrap();
    assert_eq!(layout, BackboneLayout::OpenAiClip);
    let loaded_vision = load_vision(&vision_config(), &converted);
    let loaded_text = clip_text_config()
        .init::<B>(&device)
        .load(&converted, "text_model", &device);
    converted.mark_used("logit_scale");
    converted.finish(true).unwrap();
    let x = images();
    assert!(max_diff(vision.forward(x.clone()), loaded_vision.forward(x)) < 1e-5);
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![48i64, 3, 49, 0], [1, 4]), &device);
    assert!(
        max_diff(
            run_clip_text(&text, &ids),
            run_clip_text(&loaded_text, &ids)
        ) < 1e-5
    );
}

fn run_clip_text(t: &crate::clip_text::ClipTextTower<B>, ids: &Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let mut h = t.embed(ids.clone());
    let bias = t.causal_bias(ids.dims()[1], &ids.device());
    for i in 0..t.num_layers() {
        h = t.layer(i, h, bias.clone());
    }
    t.pool(h, ids.clone())
}

/// HF `CLIPEncoderLayer` names for one of our blocks.
fn hf_layer(
    foreign: &mut BTreeMap<String, HostTensor>,
    ours: &BTreeMap<String, HostTensor>,
    hf: &str,
    o: &str,
) {
    for (name, packed) in [("weight", "in_proj_weight"), ("bias", "in_proj_bias")] {
        let qkv = &ours[&format!("{o}.attn.{packed}")];
        for (part, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
            foreign.insert(format!("{hf}.self_attn.{proj}.{name}"), third(qkv, part));
        }
    }
    for (h, n) in [
        ("self_attn.out_proj", "attn.out_proj"),
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    ] {
        for leaf in ["weight", "bias"] {
            foreign.insert(
                format!("{hf}.{h}.{leaf}"),
                ours[&format!("{o}.{n}.{leaf}")].clone(),
            );
        }
    }
}

/// HF `CLIPModel` names for the native tensors `v` (vision, prefix `v`) and `t` (text, `t`).
fn hf_clip_state_dict(
    v: &BTreeMap<String, HostTensor>,
    t: &BTreeMap<String, HostTensor>,
) -> BTreeMap<String, HostTensor> {
    let mut foreign = BTreeMap::new();
    let mut put = |k: &str, x: HostTensor| foreign.insert(k.to_string(), x);
    put(
        "vision_model.embeddings.patch_embedding.weight",
        v["v.conv1.weight"].clone(),
    );
    put(
        "vision_model.embeddings.class_embedding",
        v["v.class_embedding"].clone(),
    );
    put(
        "vision_model.embeddings.position_embedding.weight",
        v["v.positional_embedding"].clone(),
    );
    put(
        "vision_model.embeddings.position_ids",
        HostTensor::new(vec![1, TOKENS], (0..TOKENS).map(|i| i as f32).collect()),
    );
    put(
        "vision_model.pre_layrnorm.weight",
        v["v.ln_pre.weight"].clone(),
    );
    put("vision_model.pre_layrnorm.bias", v["v.ln_pre.bias"].clone());
    put(
        "vision_model.post_layernorm.weight",
        v["v.ln_post.weight"].clone(),
    );
    put(
        "vision_model.post_layernorm.bias",
        v["v.ln_post.bias"].clone(),
    );
    put("visual_projection.weight", transposed(&v["v.proj"]));
    put(
        "text_model.embeddings.token_embedding.weight",
        t["t.token_embedding.weight"].clone(),
    );
    put(
        "text_model.embeddings.position_embedding.weight",
        t["t.positional_embedding"].clone(),
    );
    put(
        "text_model.final_layer_norm.weight",
        t["t.ln_final.weight"].clone(),
    );
    put(
        "text_model.final_layer_norm.bias",
        t["t.ln_final.bias"].clone(),
    );
    put(
        "text_projection.weight",
        transposed(&t["t.text_projection"]),
    );
    put("logit_scale", HostTensor::new(vec![], vec![4.6]));
    for i in 0..2 {
        hf_layer(
            &mut foreign,
            v,
            &format!("vision_model.encoder.layers.{i}"),
            &format!("v.transformer.resblocks.{i}"),
        );
        hf_layer(
            &mut foreign,
            t,
            &format!("text_model.encoder.layers.{i}"),
            &format!("t.transformer.resblocks.{i}"),
        );
    }
    foreign
}

/// Native tensors of a tiny ViT (prefix `v`) and CLIP text tower (prefix `t`).
fn native_clip_pair() -> (BTreeMap<String, HostTensor>, BTreeMap<String, HostTensor>) {
    let device = Default::default();
    (
        native(|s| vision_config().init::<B>(&device).save(s, "v")),
        native(|s| clip_text_config().init::<B>(&device).save(s, "t")),
    )
}

#[test]
fn hf_transformers_clip_model_loads_both_towers() {
    let device = Default::default();
    let (v, t) = native_clip_pair();
    let vision = vision_from(&vision_config(), &v, "v");
    let text = clip_text_from(&t, "t");
    let foreign = hf_clip_state_dict(&v, &t);
    assert_eq!(
        foreign["vision_model.encoder.layers.0.self_attn.k_proj.weight"].shape,
        [W, W]
    );
    assert_eq!(foreign["visual_projection.weight"].shape, [E, W]);
    assert_eq!(foreign["text_projection.weight"].shape, [E, 12]);
    let (converted, layout) = to_tower_names(map_of(foreign), OURS).unwrap();
    assert_eq!(layout, BackboneLayout::HfClip);
    let loaded_vision = load_vision(&vision_config(), &converted);
    let loaded_text = clip_text_config()
        .init::<B>(&device)
        .load(&converted, "text_model", &device);
    converted.mark_used("logit_scale");
    converted.finish(true).unwrap();
    let x = images();
    assert!(max_diff(vision.forward(x.clone()), loaded_vision.forward(x)) < 1e-5);
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![48i64, 3, 49, 0], [1, 4]), &device);
    assert!(
        max_diff(
            run_clip_text(&text, &ids),
            run_clip_text(&loaded_text, &ids)
        ) < 1e-5
    );
}

#[test]
fn hf_clip_with_a_missing_projection_names_it() {
    let (v, t) = native_clip_pair();
    let mut foreign = hf_clip_state_dict(&v, &t);
    foreign.remove("text_model.encoder.layers.1.self_attn.k_proj.bias");
    let err = to_tower_names(map_of(foreign), OURS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("generated.pth"), "{err}");
    assert!(
        err.contains("text_model.transformer.resblocks.1.attn.in_proj_bias"),
        "{err}"
    );
    assert!(err.contains("k_proj is missing"), "{err}");
}

#[test]
fn timm_parts_the_towers_cannot_hold_are_listed_together() {
    let mut foreign = BTreeMap::new();
    for key in [
        "visual.trunk.patch_embed.proj.weight",
        "visual.trunk.blocks.0.ls1.gamma",
        "visual.trunk.fc_norm.weight",
        "visual.head.proj.bias",
    ] {
        foreign.insert(key.to_string(), HostTensor::new(vec![1], vec![0.0]));
    }
    let err = to_tower_names(map_of(foreign), OURS).unwrap_err();
    let LoadError::UnsupportedParts { keys, layout, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*layout, "open_clip timm ViT (BiomedCLIP)");
    assert_eq!(
        keys,
        &[
            "visual.head.proj.bias",
            "visual.trunk.blocks.0.ls1.gamma",
            "visual.trunk.fc_norm.weight",
        ]
    );
    assert!(err.to_string().starts_with("generated.pth: "), "{err}");
}

#[test]
fn a_class_token_that_is_not_one_by_one_by_w_is_refused() {
    let mut foreign = BTreeMap::new();
    foreign.insert(
        "visual.trunk.cls_token".to_string(),
        HostTensor::new(vec![2, 1, 4], vec![0.0; 8]),
    );
    let err = to_tower_names(map_of(foreign), OURS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("visual.trunk.cls_token"), "{err}");
    assert!(err.contains("[2, 1, 4]"), "{err}");
}

#[test]
fn native_and_open_clip_names_are_told_apart() {
    let native_keys = [
        "vision_model.conv1.weight".to_string(),
        "text_model.proj.0.weight".to_string(),
    ];
    assert_eq!(
        BackboneLayout::detect(&native_keys, OURS),
        BackboneLayout::Native
    );
    let open_clip = [
        "visual.conv1.weight".to_string(),
        "text.proj.0.weight".to_string(),
    ];
    assert_eq!(
        BackboneLayout::detect(&open_clip, OURS),
        BackboneLayout::OpenClip
    );
    let mut map = WeightMap::new("x");
    map.insert("visual.proj", HostTensor::new(vec![W, E], vec![0.0; W * E]));
    map.insert("text.proj.0.weight", HostTensor::new(vec![1], vec![0.0]));
    let (converted, _) = to_tower_names(map, OURS).unwrap();
    let keys: Vec<&String> = converted.keys().collect();
    assert_eq!(keys, ["text_model.proj.0.weight", "vision_model.proj"]);
}

#[test]
fn timm_keys_below_the_vision_prefix_are_renamed_too() {
    // MedCLIPSeg's BiomedCLIP variant saves `vision_model.trunk.*` next to its adapters.
    let mut map = WeightMap::new("x");
    map.insert(
        "vision_model.trunk.norm.weight",
        HostTensor::new(vec![W], vec![0.0; W]),
    );
    map.insert(
        "vision_model.head.proj.weight",
        HostTensor::new(vec![E, W], vec![0.0; W * E]),
    );
    map.insert(
        "text_model.proj.0.weight",
        HostTensor::new(vec![1], vec![0.0]),
    );
    map.insert("pvl_adapters.0.gate", HostTensor::new(vec![], vec![0.0]));
    let (converted, layout) = to_tower_names(map, OURS).unwrap();
    assert_eq!(layout, BackboneLayout::OpenClipTimm);
    let keys: Vec<&String> = converted.keys().collect();
    assert_eq!(
        keys,
        [
            "pvl_adapters.0.gate",
            "text_model.proj.0.weight",
            "vision_model.ln_post.weight",
            "vision_model.proj"
        ]
    );
    assert_eq!(converted.get("vision_model.proj").unwrap().shape, [W, E]);
}

/// The official CLIP/PubMedCLIP `CustomCLIP` state dict: the towers under our prefixes (no token
/// embedding in the text tower), and the whole CLIP model again under `clip_model.*`.
fn custom_clip_state_dict() -> BTreeMap<String, HostTensor> {
    let device = Default::default();
    let v = native(|s| vision_config().init::<B>(&device).save(s, "vision_model"));
    let t = native(|s| clip_text_config().init::<B>(&device).save(s, "text_model"));
    let mut sd = BTreeMap::new();
    for (key, tensor) in v.iter().chain(&t) {
        let alias = match key.strip_prefix("vision_model.") {
            Some(rest) => format!("clip_model.visual.{rest}"),
            None => key.replacen("text_model.", "clip_model.", 1),
        };
        sd.insert(alias, tensor.clone());
        if !key.ends_with("token_embedding.weight") {
            sd.insert(key.clone(), tensor.clone());
        }
    }
    sd.insert("logit_scale".into(), HostTensor::new(vec![], vec![4.6]));
    sd.insert(
        "clip_model.logit_scale".into(),
        HostTensor::new(vec![], vec![4.6]),
    );
    sd
}

#[test]
fn clip_model_aliases_fold_onto_their_twins_and_the_token_embedding_is_found() {
    let sd = custom_clip_state_dict();
    assert!(sd.contains_key("clip_model.token_embedding.weight"));
    assert!(!sd.contains_key("text_model.token_embedding.weight"));
    let expected_embedding = sd["clip_model.token_embedding.weight"].clone();
    let (converted, layout) = to_tower_names(map_of(sd), OURS).unwrap();
    assert_eq!(layout, BackboneLayout::Native);
    assert!(converted.keys().all(|k| !k.starts_with("clip_model.")));
    assert_eq!(
        converted.get("text_model.token_embedding.weight"),
        Some(&expected_embedding)
    );
    let device = Default::default();
    load_vision(&vision_config(), &converted);
    clip_text_config()
        .init::<B>(&device)
        .load(&converted, "text_model", &device);
    converted.mark_used("logit_scale");
    converted.finish(true).unwrap();
}

#[test]
fn a_checkpoint_saved_with_only_the_aliases_loads_too() {
    let only_aliases: BTreeMap<String, HostTensor> = custom_clip_state_dict()
        .into_iter()
        .filter(|(k, _)| k.starts_with("clip_model."))
        .collect();
    let (converted, _) = to_tower_names(map_of(only_aliases), OURS).unwrap();
    let device = Default::default();
    load_vision(&vision_config(), &converted);
    clip_text_config()
        .init::<B>(&device)
        .load(&converted, "text_model", &device);
    converted.mark_used("logit_scale");
    converted.finish(true).unwrap();
}

#[test]
fn an_alias_that_differs_from_its_twin_is_refused_by_name() {
    let mut sd = custom_clip_state_dict();
    let alias = "clip_model.visual.transformer.resblocks.1.ln_2.bias";
    sd.get_mut(alias).unwrap().data[3] += 1.0;
    let err = to_tower_names(map_of(sd), OURS).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LoadError::AliasMismatch { .. }), "{message}");
    assert!(message.contains(alias), "{message}");
    assert!(
        message.contains("vision_model.transformer.resblocks.1.ln_2.bias"),
        "{message}"
    );
    assert!(message.contains("element 3"), "{message}");
}
