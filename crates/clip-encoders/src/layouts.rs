//! Published backbone checkpoint layouts, renamed onto the towers' own key names.
//!
//! The towers load one scheme below a vision prefix `V` and a text prefix `T` (see
//! [`crate::VisionTransformer::load`], [`crate::BertTextTower::load`] and
//! [`crate::ClipTextTower::load`]): open_clip's names. Published backbones use these layouts:
//!
//! | layout | vision keys | text keys |
//! | --- | --- | --- |
//! | open_clip (UniMedCLIP) | `visual.conv1`, `visual.transformer.resblocks.N.*`, `visual.proj` | `text.transformer.*` (HF BERT), `text.proj.{0,2}` |
//! | OpenAI CLIP (`clip`, PubMedCLIP's `.pth`) | as open_clip | top level: `token_embedding`, `positional_embedding`, `transformer.resblocks.N.*`, `ln_final`, `text_projection` |
//! | open_clip timm (BiomedCLIP) | `visual.trunk.{patch_embed.proj, cls_token, pos_embed, blocks.N.*, norm}`, `visual.head.proj` (or the same below `V.`, as MedCLIPSeg's BiomedCLIP variant saves them) | as open_clip |
//! | HF transformers `CLIPModel` (`pubmed-clip-vit-base-patch32`) | `vision_model.{embeddings, pre_layrnorm, encoder.layers.N, post_layernorm}`, `visual_projection` | `text_model.{embeddings, encoder.layers.N, final_layer_norm}`, `text_projection` |
//!
//! MedCLIPSeg's own CLIP and PubMedCLIP checkpoints (the official `CustomCLIP` state dict) keep
//! the towers under `V.`/`T.` and, because `CustomCLIP` also registers the whole CLIP model as
//! `clip_model`, every tower tensor a second time under `clip_model.*` (`clip_model.visual.*`,
//! `clip_model.transformer.*`, ...); the token embedding exists only as
//! `clip_model.token_embedding.weight`. [`fold_aliases`] drops each alias after checking that it
//! equals its twin, and moves an alias without a twin to the towers' name.
//!
//! Renaming also converts layouts: a Linear head (`[out, in]`) becomes a `[in, out]` matrix,
//! timm's `[1, 1, W]` class token and `[1, T, W]` positions lose their leading ones, and HF's
//! separate `q_proj`/`k_proj`/`v_proj` are packed into `in_proj_*`. Keys a recognised layout
//! holds but the towers have no place for are refused as a group ([`LoadError::UnsupportedParts`]).

use std::collections::BTreeMap;

use crate::error::LoadError;
use crate::weights::{HostTensor, WeightMap};

/// Which published layout a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackboneLayout {
    /// Already under the towers' prefixes (e.g. a MedCLIPSeg checkpoint): nothing to rename.
    Native,
    /// open_clip with a custom text tower: `visual.*` and `text.*` (UniMedCLIP).
    OpenClip,
    /// OpenAI CLIP: `visual.*` and the text tower at the top level (CLIP, PubMedCLIP `.pth`).
    OpenAiClip,
    /// open_clip wrapping a timm ViT: `visual.trunk.*`, `visual.head.*` (BiomedCLIP).
    OpenClipTimm,
    /// HF transformers `CLIPModel`: `vision_model.embeddings.*`, `text_model.embeddings.*`, ...
    HfClip,
}

impl BackboneLayout {
    /// A readable name, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            BackboneLayout::Native => "native",
            BackboneLayout::OpenClip => "open_clip",
            BackboneLayout::OpenAiClip => "OpenAI CLIP",
            BackboneLayout::OpenClipTimm => "open_clip timm ViT (BiomedCLIP)",
            BackboneLayout::HfClip => "HF transformers CLIPModel",
        }
    }

    /// Recognises the layout from the keys.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a String>, prefixes: TowerPrefixes) -> Self {
        let keys: Vec<&String> = keys.into_iter().collect();
        let any = |pred: &dyn Fn(&str) -> bool| keys.iter().any(|k| pred(k));
        if any(&|k| {
            k.starts_with("vision_model.embeddings.")
                || k.starts_with("text_model.embeddings.")
                || k == "visual_projection.weight"
        }) {
            BackboneLayout::HfClip
        } else if any(&|k| {
            k.starts_with("visual.trunk.") || k.starts_with(&format!("{}.trunk.", prefixes.vision))
        }) {
            BackboneLayout::OpenClipTimm
        } else if any(&|k| {
            k.starts_with(&format!("{}.", prefixes.vision))
                || k.starts_with(&format!("{}.", prefixes.text))
        }) {
            BackboneLayout::Native
        } else if any(&|k| is_openai_text_key(k)) {
            BackboneLayout::OpenAiClip
        } else if any(&|k| k.starts_with("visual.") || k.starts_with("text.")) {
            BackboneLayout::OpenClip
        } else {
            BackboneLayout::Native
        }
    }
}

/// The prefixes the towers load under (MedCLIPSeg: `vision_model`, `text_model`).
#[derive(Debug, Clone, Copy)]
pub struct TowerPrefixes<'a> {
    /// Prefix of the image tower's keys.
    pub vision: &'a str,
    /// Prefix of the text tower's keys.
    pub text: &'a str,
}

/// Renames `map` from its detected layout onto the towers' names under `prefixes`.
///
/// Keys outside both towers (e.g. `logit_scale`) keep their names.
pub fn to_tower_names(
    map: WeightMap,
    prefixes: TowerPrefixes,
) -> Result<(WeightMap, BackboneLayout), LoadError> {
    let map = fold_aliases(map, prefixes)?;
    let layout = BackboneLayout::detect(map.keys(), prefixes);
    if layout == BackboneLayout::Native {
        return Ok((map, layout));
    }
    let source_name = map.source_name().to_string();
    let mut out = WeightMap::new(source_name.clone());
    let mut unsupported = Vec::new();
    let mut packed: BTreeMap<String, [Option<(String, HostTensor)>; 3]> = BTreeMap::new();
    let bad = |key: &str, message: String| LoadError::BadTensor {
        source_name: source_name.clone(),
        key: key.to_string(),
        message,
    };
    for (key, tensor) in map.into_tensors() {
        let target = match layout {
            BackboneLayout::HfClip => hf_clip_target(&key, prefixes),
            _ => open_clip_target(&key, prefixes),
        };
        match target {
            Target::Same(name) => out.insert(name, tensor),
            Target::Transposed(name) => {
                let transposed = transpose(&tensor).ok_or_else(|| {
                    bad(
                        &key,
                        format!("expected a 2-D Linear weight, found {:?}", tensor.shape),
                    )
                })?;
                out.insert(name, transposed);
            }
            Target::Squeezed(name, rank) => {
                let squeezed = squeeze_leading(tensor, rank).map_err(|shape| {
                    bad(
                        &key,
                        format!("expected {rank} dims after leading ones, found {shape:?}"),
                    )
                })?;
                out.insert(name, squeezed);
            }
            Target::PackedPart(name, part) => {
                packed.entry(name).or_default()[part] = Some((key, tensor));
            }
            Target::Buffer => {}
            Target::Unsupported => unsupported.push(key),
        }
    }
    if !unsupported.is_empty() {
        return Err(LoadError::UnsupportedParts {
            source_name,
            layout: layout.describe(),
            keys: unsupported,
        });
    }
    for (name, parts) in packed {
        out.insert(
            name.clone(),
            pack_qkv(&name, parts).map_err(|m| bad(&name, m))?,
        );
    }
    Ok((out, layout))
}

/// Prefix under which the official CLIP/PubMedCLIP `CustomCLIP` saves its whole CLIP model.
const CLIP_MODEL: &str = "clip_model.";

/// The towers' name of a `clip_model.*` alias key (the tensor it repeats), or `None` for any
/// other key.
pub fn alias_twin(key: &str, p: TowerPrefixes) -> Option<String> {
    clip_model_twin(key.strip_prefix(CLIP_MODEL)?, p)
}

/// The towers' name for a `clip_model.*` key (its rest after the prefix), or `None` when the
/// rest is not a CLIP tensor.
fn clip_model_twin(rest: &str, p: TowerPrefixes) -> Option<String> {
    if let Some(visual) = rest.strip_prefix("visual.") {
        return Some(format!("{}.{visual}", p.vision));
    }
    if is_openai_text_key(rest) {
        return Some(format!("{}.{rest}", p.text));
    }
    (rest == "logit_scale").then(|| rest.to_string())
}

/// Folds the `clip_model.*` aliases of an official CLIP/PubMedCLIP MedCLIPSeg checkpoint onto
/// the towers' names: an alias whose twin is present must hold the same values (else
/// [`LoadError::AliasMismatch`] names both keys) and is dropped; one without a twin (the token
/// embedding, or every tensor when only the aliases were saved) takes the twin's name.
pub fn fold_aliases(map: WeightMap, prefixes: TowerPrefixes) -> Result<WeightMap, LoadError> {
    if !map.keys().any(|k| k.starts_with(CLIP_MODEL)) {
        return Ok(map);
    }
    let source_name = map.source_name().to_string();
    let mut tensors = map.into_tensors();
    let aliases: Vec<(String, String)> = tensors
        .keys()
        .filter_map(|k| Some((k.clone(), alias_twin(k, prefixes)?)))
        .collect();
    for (alias, twin) in aliases {
        let Some(tensor) = tensors.remove(&alias) else {
            continue;
        };
        match tensors.get(&twin) {
            Some(kept) => {
                if let Some(difference) = difference(&tensor, kept) {
                    return Err(LoadError::AliasMismatch {
                        source_name,
                        alias,
                        twin,
                        difference,
                    });
                }
            }
            None => {
                tensors.insert(twin, tensor);
            }
        }
    }
    let mut out = WeightMap::new(source_name);
    for (key, tensor) in tensors {
        out.insert(key, tensor);
    }
    Ok(out)
}

/// How two tensors that should be one differ (shape, or the first differing element), compared
/// bit for bit; `None` when they are identical.
fn difference(a: &HostTensor, b: &HostTensor) -> Option<String> {
    if a.shape != b.shape {
        return Some(format!(
            "its shape is {:?}, the twin's {:?}",
            a.shape, b.shape
        ));
    }
    let (index, (x, y)) = a
        .data
        .iter()
        .zip(&b.data)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits())?;
    Some(format!("element {index} is {x}, the twin's {y}"))
}

/// Where one key of a foreign layout goes.
#[derive(Debug, PartialEq)]
enum Target {
    /// Renamed, same values and shape.
    Same(String),
    /// A Linear weight `[out, in]` stored as a `[in, out]` matrix.
    Transposed(String),
    /// Leading size-one dims dropped, leaving this rank.
    Squeezed(String, usize),
    /// Part 0, 1 or 2 (q, k, v) of a packed `in_proj_*`.
    PackedPart(String, usize),
    /// A buffer without weights (position ids).
    Buffer,
    /// Under a tower, but nothing in the towers can hold it.
    Unsupported,
}

/// Top-level text keys of an OpenAI CLIP state dict.
fn is_openai_text_key(key: &str) -> bool {
    matches!(
        key,
        "token_embedding.weight"
            | "positional_embedding"
            | "ln_final.weight"
            | "ln_final.bias"
            | "text_projection"
    ) || key.starts_with("transformer.resblocks.")
}

/// open_clip, OpenAI CLIP and open_clip timm keys.
fn open_clip_target(key: &str, p: TowerPrefixes) -> Target {
    let (v, t) = (p.vision, p.text);
    // MedCLIPSeg's BiomedCLIP variant keeps open_clip's module under its own vision prefix.
    let (trunk, head) = (format!("{v}.trunk."), format!("{v}.head."));
    if let Some(rest) = key
        .strip_prefix("visual.trunk.")
        .or(key.strip_prefix(trunk.as_str()))
    {
        return timm_trunk_target(rest, v);
    }
    if let Some(rest) = key
        .strip_prefix("visual.head.")
        .or(key.strip_prefix(head.as_str()))
    {
        return match rest {
            "proj.weight" => Target::Transposed(format!("{v}.proj")),
            _ => Target::Unsupported,
        };
    }
    if let Some(rest) = key.strip_prefix("visual.") {
        return Target::Same(format!("{v}.{rest}"));
    }
    if let Some(rest) = key.strip_prefix("text.") {
        return Target::Same(format!("{t}.{rest}"));
    }
    if is_openai_text_key(key) {
        return Target::Same(format!("{t}.{key}"));
    }
    Target::Same(key.to_string())
}

/// timm `VisionTransformer` keys (below `visual.trunk.`).
fn timm_trunk_target(rest: &str, v: &str) -> Target {
    match rest {
        "patch_embed.proj.weight" => return Target::Same(format!("{v}.conv1.weight")),
        "patch_embed.proj.bias" => return Target::Same(format!("{v}.conv1.bias")),
        "cls_token" => return Target::Squeezed(format!("{v}.class_embedding"), 1),
        "pos_embed" => return Target::Squeezed(format!("{v}.positional_embedding"), 2),
        "norm_pre.weight" => return Target::Same(format!("{v}.ln_pre.weight")),
        "norm_pre.bias" => return Target::Same(format!("{v}.ln_pre.bias")),
        "norm.weight" => return Target::Same(format!("{v}.ln_post.weight")),
        "norm.bias" => return Target::Same(format!("{v}.ln_post.bias")),
        _ => {}
    }
    const BLOCK: [(&str, &str); 12] = [
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
    ];
    match layer_leaf(rest, "blocks.") {
        Some((index, leaf)) => match BLOCK.iter().find(|(from, _)| *from == leaf) {
            Some((_, to)) => Target::Same(format!("{v}.transformer.resblocks.{index}.{to}")),
            None => Target::Unsupported,
        },
        None => Target::Unsupported,
    }
}

/// HF transformers `CLIPModel` keys.
fn hf_clip_target(key: &str, p: TowerPrefixes) -> Target {
    let (v, t) = (p.vision, p.text);
    match key {
        "vision_model.embeddings.patch_embedding.weight" => {
            return Target::Same(format!("{v}.conv1.weight"));
        }
        "vision_model.embeddings.class_embedding" => {
            return Target::Same(format!("{v}.class_embedding"));
        }
        "vision_model.embeddings.position_embedding.weight" => {
            return Target::Same(format!("{v}.positional_embedding"));
        }
        "vision_model.pre_layrnorm.weight" => return Target::Same(format!("{v}.ln_pre.weight")),
        "vision_model.pre_layrnorm.bias" => return Target::Same(format!("{v}.ln_pre.bias")),
        "vision_model.post_layernorm.weight" => {
            return Target::Same(format!("{v}.ln_post.weight"));
        }
        "vision_model.post_layernorm.bias" => return Target::Same(format!("{v}.ln_post.bias")),
        "visual_projection.weight" => return Target::Transposed(format!("{v}.proj")),
        "text_model.embeddings.token_embedding.weight" => {
            return Target::Same(format!("{t}.token_embedding.weight"));
        }
        "text_model.embeddings.position_embedding.weight" => {
            return Target::Same(format!("{t}.positional_embedding"));
        }
        "text_model.final_layer_norm.weight" => {
            return Target::Same(format!("{t}.ln_final.weight"));
        }
        "text_model.final_layer_norm.bias" => return Target::Same(format!("{t}.ln_final.bias")),
        "text_projection.weight" => return Target::Transposed(format!("{t}.text_projection")),
        "vision_model.embeddings.position_ids" | "text_model.embeddings.position_ids" => {
            return Target::Buffer;
        }
        _ => {}
    }
    for (hf, ours) in [("vision_model.", v), ("text_model.", t)] {
        if let Some(rest) = key.strip_prefix(hf) {
            return match layer_leaf(rest, "encoder.layers.") {
                Some((index, leaf)) => {
                    hf_layer_target(leaf, &format!("{ours}.transformer.resblocks.{index}"))
                }
                None => Target::Unsupported,
            };
        }
    }
    Target::Same(key.to_string())
}

/// One HF `CLIPEncoderLayer` tensor below `block` (our `ResidualAttentionBlock` prefix).
fn hf_layer_target(leaf: &str, block: &str) -> Target {
    const QKV: [&str; 3] = ["q_proj", "k_proj", "v_proj"];
    let qkv = leaf
        .strip_prefix("self_attn.")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(proj, kind)| Some((QKV.iter().position(|q| *q == proj)?, kind)));
    if let Some((part, kind)) = qkv {
        return match kind {
            "weight" => Target::PackedPart(format!("{block}.attn.in_proj_weight"), part),
            "bias" => Target::PackedPart(format!("{block}.attn.in_proj_bias"), part),
            _ => Target::Unsupported,
        };
    }
    const LEAVES: [(&str, &str); 10] = [
        ("self_attn.out_proj.weight", "attn.out_proj.weight"),
        ("self_attn.out_proj.bias", "attn.out_proj.bias"),
        ("layer_norm1.weight", "ln_1.weight"),
        ("layer_norm1.bias", "ln_1.bias"),
        ("layer_norm2.weight", "ln_2.weight"),
        ("layer_norm2.bias", "ln_2.bias"),
        ("mlp.fc1.weight", "mlp.c_fc.weight"),
        ("mlp.fc1.bias", "mlp.c_fc.bias"),
        ("mlp.fc2.weight", "mlp.c_proj.weight"),
        ("mlp.fc2.bias", "mlp.c_proj.bias"),
    ];
    match LEAVES.iter().find(|(from, _)| *from == leaf) {
        Some((_, to)) => Target::Same(format!("{block}.{to}")),
        None => Target::Unsupported,
    }
}

/// `"{list}{index}.{leaf}"` -> `(index, leaf)`.
fn layer_leaf<'a>(rest: &'a str, list: &str) -> Option<(usize, &'a str)> {
    let (index, leaf) = rest.strip_prefix(list)?.split_once('.')?;
    Some((index.parse().ok()?, leaf))
}

/// `[r, c]` -> `[c, r]`; `None` for other ranks.
fn transpose(t: &HostTensor) -> Option<HostTensor> {
    let [rows, cols] = t.shape[..] else {
        return None;
    };
    let mut data = vec![0.0; t.data.len()];
    for r in 0..rows {
        for c in 0..cols {
            data[c * rows + r] = t.data[r * cols + c];
        }
    }
    Some(HostTensor::new(vec![cols, rows], data))
}

/// Drops leading size-one dims until `rank` remain; the shape back if that is impossible.
fn squeeze_leading(t: HostTensor, rank: usize) -> Result<HostTensor, Vec<usize>> {
    let extra = t
        .shape
        .len()
        .checked_sub(rank)
        .ok_or_else(|| t.shape.clone())?;
    if t.shape[..extra].iter().any(|&d| d != 1) {
        return Err(t.shape);
    }
    Ok(HostTensor::new(t.shape[extra..].to_vec(), t.data))
}

/// Stacks q, k and v along the first dim (PyTorch's `in_proj` order).
fn pack_qkv(name: &str, parts: [Option<(String, HostTensor)>; 3]) -> Result<HostTensor, String> {
    let mut shape: Option<Vec<usize>> = None;
    let mut data = Vec::new();
    for (part, label) in parts.into_iter().zip(["q_proj", "k_proj", "v_proj"]) {
        let (key, tensor) =
            part.ok_or_else(|| format!("cannot pack {name}: {label} is missing"))?;
        match &shape {
            None => shape = Some(tensor.shape.clone()),
            Some(s) if *s != tensor.shape => {
                return Err(format!(
                    "cannot pack {name}: {key} has shape {:?}, the others {s:?}",
                    tensor.shape
                ));
            }
            Some(_) => {}
        }
        data.extend(tensor.data);
    }
    let mut shape = shape.unwrap_or_default();
    match shape.first_mut() {
        Some(rows) => *rows *= 3,
        None => return Err(format!("cannot pack {name}: scalar projections")),
    }
    Ok(HostTensor::new(shape, data))
}

#[cfg(test)]
mod tests;
