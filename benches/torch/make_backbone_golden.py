#!/usr/bin/env python3
"""Golden files for the OpenAI CLIP, PubMedCLIP and BiomedCLIP variants of MedCLIPSeg, made by
the official trainers (github.com/HealthX-Lab/MedCLIPSeg, read at commit 8d7ef36) at tiny sizes
with seeded random weights:

    python benches/torch/make_backbone_golden.py --official CHECKOUT --out testdata/golden \
        [--variant clip|pubmedclip|biomedclip|all]

Each variant is built by its official builder (`trainers/medclipseg_{clip,pubmedclip,biomedclip}.py`,
`build_medclipseg_*`) from the official `configs/BUSI.yaml`; nothing is downloaded. What is
replaced, and why, is listed in each manifest under `patches`: the backbone loaders return towers
built from tiny sizes with the official classes (the published sizes with fewer layers and a
narrower width, random weights), the tokenizers pass token ids through, the adapters' noise is
zero, and `CustomCLIP`'s hard-coded widths are pinned to the tiny ones. No forward code is changed.

Writes, per variant, to OUT/<variant>/:
  - `<variant>_model.safetensors`: the model's state dict before the step, one name per tensor
    (the `clip_model.*` aliases of the CLIP variants dropped where their twin is kept);
  - `<variant>_golden.safetensors`: inputs, activations, seg logits, losses, gradients, one Adam
    step (names as in testdata/golden/tiny);
  - `<variant>_keys.json`: every key and shape of the official `model.state_dict()`, and which
    keys are aliases (the same tensor) of which;
  - `<variant>_manifest.json`: versions, sizes, seeds, patches.
"""

import argparse
import importlib
import json
import platform
import sys
import types
from pathlib import Path

import numpy as np
import torch

BATCH = 2
LAYERS = 3
ADAPTER_DIM = 32
ADAPTER_LAYERS = [1, 2]
CONTEXT = 16
VOCAB = 256
EMBED = 32
SEEDS = {"weights": 1234, "perturbation": 1235, "inputs": 7}
# Parameters whose value after the Adam step is recorded (as in the UniMedCLIP golden: every
# trainable module kind; the gradients of all are recorded).
ADAM_RECORDED = [
    "mask_head.0.weight",
    "mask_head.4.bias",
    "pvl_adapters.0.two_way.cross_attn_img_to_txt.gate",
    "pvl_adapters.0.two_way.cross_attn_img_to_txt.k_proj.weight",
    "pvl_adapters.0.two_way.cross_attn_txt_to_img.norm_v.bias",
    "pvl_adapters.1.proj_txt_up.weight",
    "upscale.1.conv2.weight",
    "upscale.1.norm.weight",
]

VARIANTS = {
    "clip": dict(
        module="trainers.medclipseg_clip",
        builder="build_medclipseg_clip",
        loader="load_clip_to_cpu",
        backbone="ViT-B/16",
        image=64,
        patch=16,
        width=64,
        layers=LAYERS,
    ),
    "pubmedclip": dict(
        module="trainers.medclipseg_pubmedclip",
        builder="build_medclipseg_pubmedclip",
        loader="load_pubmedclip_to_cpu",
        backbone="ViT-B/32",
        image=96,
        patch=32,
        width=64,
        layers=LAYERS,
    ),
    "biomedclip": dict(
        module="trainers.medclipseg_biomedclip",
        builder="build_medclipseg_biomedclip",
        loader="create_model_from_pretrained",
        backbone="ViT-B/16",
        image=64,
        patch=16,
        # The builder hard-codes 12 vision blocks and 12 BERT layers (it copies the loaded
        # towers' parameters into `Block(768, 12)` x 12 and `BertLayer()` x 12), so the tiny
        # BiomedCLIP keeps 12 layers and narrows the width instead.
        width=32,
        layers=12,
    ),
}


def pin_attributes(cls, **values):
    """Class-level read-only properties: `CustomCLIP.__init__` assigns the ViT-B widths to these
    names; with a property in place its assignments are no-ops and the tiny values stay."""
    for name, value in values.items():
        setattr(cls, name, property(lambda self, v=value: v, lambda self, _v: None))


class ZeroNoiseTorch(types.ModuleType):
    """`torch` as trainers/layers.py sees it: `randn_like` returns zeros (zero adapter noise)."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def randn_like(x, *args, **kwargs):
        return torch.zeros_like(x)


def openai_clip(variant):
    """The vendored OpenAI CLIP (clip/model.py) at tiny sizes, as `clip.build_model` builds it
    (heads = width // 64, MLP 4x, MedCLIPSeg blocks), fp32 (the builder calls `.float()`)."""
    from clip.model import CLIP

    design = {"trainer": "MedCLIPSeg", "vision_depth": 0, "language_depth": 0,
              "vision_ctx": 0, "language_ctx": 0}
    width = variant["width"]
    return CLIP(EMBED, variant["image"], variant["layers"], width, variant["patch"], CONTEXT,
                VOCAB, width, width // 64, variant["layers"], design).eval()


def patch_clip_variant(mod, variant, patches):
    setattr(mod, variant["loader"], lambda cfg: openai_clip(variant))
    patches.append(f"{mod.__name__}.{variant['loader']} -> clip.model.CLIP(embed_dim={EMBED}, "
                   f"image_resolution={variant['image']}, vision_layers={variant['layers']}, "
                   f"vision_width={variant['width']}, vision_patch_size={variant['patch']}, "
                   f"context_length={CONTEXT}, vocab_size={VOCAB}, transformer_width="
                   f"{variant['width']}, transformer_heads={variant['width'] // 64}, "
                   f"transformer_layers={variant['layers']}, trainer 'MedCLIPSeg'), random init; no download")
    mod.clip = types.SimpleNamespace(tokenize=lambda row: row.reshape(1, -1))
    patches.append(f"{mod.__name__}.clip.tokenize -> the row of token ids itself (`text` passed to "
                   "CustomCLIP.forward is the LongTensor of ids: SOT, words, EOT = the largest id)")
    pin_attributes(mod.CustomCLIP, embed_dim=variant["width"], text_emb_dim=variant["width"],
                   text_proj_dim=EMBED, patch_size=variant["patch"])
    patches.append(f"{mod.__name__}.CustomCLIP: properties pin embed_dim/text_emb_dim/"
                   f"text_proj_dim/patch_size to {variant['width']}/{variant['width']}/{EMBED}/"
                   f"{variant['patch']} (the official __init__ hard-codes 768/512/512)")


def bert_config(variant):
    from transformers import BertConfig

    width = variant["width"]
    return BertConfig(vocab_size=VOCAB, hidden_size=width, num_hidden_layers=variant["layers"],
                      num_attention_heads=4, intermediate_size=2 * width,
                      max_position_embeddings=CONTEXT, type_vocab_size=2, layer_norm_eps=1e-12,
                      pad_token_id=0, hidden_act="gelu", hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1)


def patch_biomedclip_variant(mod, variant, patches):
    """BiomedCLIP: open_clip's hf-hub model (timm ViT-B/16 + PubMedBERT-256) built from its
    published open_clip config with tiny sizes; the official vendored Block/BertLayer classes
    (which the builder swaps in) sized to match."""
    import open_clip
    import timm
    from open_clip import hf_model, timm_model
    from transformers import BertModel
    from biomedclip import text_modules
    from biomedclip.vision_modules import Block

    width = variant["width"]
    heads = 4
    tiny_timm = dict(img_size=variant["image"], embed_dim=width, depth=variant["layers"],
                     num_heads=heads,
                     mlp_ratio=2.0)
    create_timm = timm.create_model
    timm_model.timm = types.SimpleNamespace(
        create_model=lambda name, **kw: create_timm(name, **{**kw, **tiny_timm}))
    hf_model.AutoConfig = types.SimpleNamespace(from_pretrained=lambda name: bert_config(variant))
    hf_model.AutoModel = types.SimpleNamespace(
        from_pretrained=lambda name, add_pooling_layer=False: BertModel(
            bert_config(variant), add_pooling_layer=add_pooling_layer),
        from_config=lambda config, add_pooling_layer=False: BertModel(
            config, add_pooling_layer=add_pooling_layer))
    model_cfg = {
        "embed_dim": EMBED,
        "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False,
                       "timm_pool": "", "timm_proj": "linear", "image_size": variant["image"]},
        "text_cfg": {"hf_model_name": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                     "hf_tokenizer_name": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                     "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                     "context_length": CONTEXT},
    }

    def create_model_from_pretrained(name):
        open_clip.factory._MODEL_CONFIGS["tiny-biomedclip"] = model_cfg
        model = open_clip.create_model("tiny-biomedclip", pretrained=None)
        return model, None

    mod.create_model_from_pretrained = create_model_from_pretrained
    patches.append(f"{mod.__name__}.create_model_from_pretrained('hf-hub:microsoft/BiomedCLIP-"
                   f"PubMedBERT_256-vit_base_patch16_224') -> open_clip.create_model of BiomedCLIP's "
                   f"published open_clip config {json.dumps(model_cfg)} with timm.create_model "
                   f"given {tiny_timm} and the HF BERT built offline from {bert_config(variant).to_dict()}"
                   " (random init)")
    mod.Block = lambda dim, num_heads: Block(width, heads, mlp_ratio=2.0)
    patches.append(f"{mod.__name__}.Block(768, 12) -> biomedclip.vision_modules.Block({width}, "
                   f"{heads}, mlp_ratio=2.0)")

    def tiny_bert_layer():
        # The vendored BertLayer hard-codes BiomedBERT-base sizes (768, 3072, 12 x 64): built
        # with nn.Linear/nn.LayerNorm sized down, heads set to the tiny ones; forward untouched.
        sizes = {768: width, 3072: 2 * width}
        real_nn = text_modules.nn
        text_modules.nn = types.SimpleNamespace(
            Module=real_nn.Module, Dropout=real_nn.Dropout, functional=real_nn.functional,
            Linear=lambda i, o, **kw: real_nn.Linear(sizes.get(i, i), sizes.get(o, o), **kw),
            LayerNorm=lambda d, eps: real_nn.LayerNorm(sizes.get(d, d), eps=eps))
        try:
            layer = text_modules.BertLayer()
        finally:
            text_modules.nn = real_nn
        attention = layer.attention.self
        attention.num_attention_heads = heads
        attention.attention_head_size = width // heads
        attention.all_head_size = width
        return layer

    mod.BertLayer = tiny_bert_layer
    patches.append(f"{mod.__name__}.BertLayer() -> biomedclip.text_modules.BertLayer built with "
                   f"its 768/3072 Linear and LayerNorm sizes replaced by {width}/{2 * width} and "
                   f"{heads} heads of {width // heads} (it hard-codes 12 x 64)")
    mod.get_tokenizer = lambda name: (lambda text: text)
    patches.append(f"{mod.__name__}.get_tokenizer -> passthrough: `text` passed to "
                   "CustomCLIP.forward is the LongTensor of token ids")
    pin_attributes(mod.CustomCLIP, embed_dim=width, text_proj_dim=EMBED,
                   patch_size=variant["patch"])
    patches.append(f"{mod.__name__}.CustomCLIP: properties pin embed_dim/text_proj_dim/patch_size "
                   f"to {width}/{EMBED}/{variant['patch']} (the official __init__ hard-codes "
                   "768/512/16)")


def load_cfg(official, variant):
    from utils.main_utils import load_cfg_from_cfg_file

    cfg = load_cfg_from_cfg_file(str(official / "configs" / "BUSI.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE = variant["backbone"]
    cfg.MODEL.ADAPTER_DIM = ADAPTER_DIM
    cfg.MODEL.LAYERS = list(ADAPTER_LAYERS)
    cfg.DATASET.SIZE = variant["image"]
    return cfg


def perturb_constants(model):
    """Constant default inits (LayerNorm ones/zeros, zero biases, gates) cannot reveal a swapped
    gamma/beta or a missing bias in a port: replace them by seeded random values, as the tiny
    UniMedCLIP golden does. Shared parameters are visited once (named_parameters dedups)."""
    gen = torch.Generator().manual_seed(SEEDS["perturbation"])
    changed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                continue
            if name.endswith(".gate"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif p.numel() > 0 and bool((p == 1).all()):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.numel() > 0 and bool((p == 0).all()):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            else:
                continue
            changed.append(name)
    return changed


def make_inputs(variant, name):
    rng = np.random.default_rng(SEEDS["inputs"])
    size = variant["image"]
    image = rng.standard_normal((BATCH, 3, size, size)).astype(np.float32)
    target = (rng.random((BATCH, size, size)) < 0.3).astype(np.int64)
    lengths = [9, 13]
    ids = np.zeros((BATCH, CONTEXT), dtype=np.int64)
    for b, n in enumerate(lengths):
        if name == "biomedclip":
            # [CLS]=101 words [SEP]=102, [PAD]=0 (BERT-uncased ids; no vocabulary).
            row = [101, *rng.integers(103, VOCAB, n - 2), 102]
        else:
            # SOT, words, EOT: EOT is the largest id, where CLIP pools (argmax).
            row = [VOCAB - 2, *rng.integers(1, VOCAB - 2, n - 2), VOCAB - 1]
        ids[b, :n] = row
    return torch.from_numpy(image), torch.from_numpy(ids), torch.from_numpy(target)


class Recorder:
    """Forward hooks that copy activations, batch-first; observation only."""

    def __init__(self):
        self.values = {}
        self.on = True

    def put(self, key, tensor):
        if self.on:
            self.values[key] = tensor.detach().clone().contiguous()


def attach_clip_hooks(model, rec):
    vision = model.vision_model
    rec_ln = vision.ln_pre.register_forward_hook(lambda m, a, out: rec.put("vis.ln_pre", out))
    handles = [rec_ln]
    blocks = list(vision.transformer.resblocks)
    for i, block in enumerate(blocks):
        def hook(m, args, out, i=i):
            rec.put(f"vis.block{i}", out[0].transpose(0, 1))
            if i == len(blocks) - 1:
                rec.put("vis.value_path", out[1][-1].transpose(0, 1))
        handles.append(block.register_forward_hook(hook))
    text_blocks = list(model.text_model.transformer.resblocks)
    handles.append(text_blocks[0].register_forward_pre_hook(
        lambda m, args: rec.put("txt.embeddings", args[0][0].transpose(0, 1))))
    for i, layer in enumerate(text_blocks):
        handles.append(layer.register_forward_hook(
            lambda m, a, out, i=i: rec.put(f"txt.layer{i}", out[0].transpose(0, 1))))
    return handles


def attach_biomedclip_hooks(model, rec):
    trunk = model.vision_model.trunk
    handles = [trunk.norm_pre.register_forward_hook(lambda m, a, out: rec.put("vis.ln_pre", out))]
    for i, block in enumerate(trunk.blocks):
        handles.append(block.register_forward_hook(
            lambda m, a, out, i=i: rec.put(f"vis.block{i}", out)))
    bert = model.text_model.transformer
    handles.append(bert.embeddings.register_forward_hook(
        lambda m, a, out: rec.put("txt.embeddings", out)))
    for i, layer in enumerate(bert.encoder.layer):
        handles.append(layer.register_forward_hook(
            lambda m, a, out, i=i: rec.put(f"txt.layer{i}", out[0])))
    return handles


def attach_common_hooks(model, rec):
    handles = []
    for k, adapter in enumerate(model.pvl_adapters):
        def hook(m, args, out, k=k):
            rec.put(f"adapter{k}.in_vis", args[0])
            rec.put(f"adapter{k}.in_txt", args[1])
            rec.put(f"adapter{k}.dv", out[0])
            rec.put(f"adapter{k}.dt", out[1])
        handles.append(adapter.register_forward_hook(hook))
    encode = model.encode_text_image

    def recorded_encode(*args, **kwargs):
        image_features, text_features = encode(*args, **kwargs)
        rec.put("img_tokens", image_features)
        rec.put("txt_vec", text_features)
        return image_features, text_features

    model.encode_text_image = recorded_encode
    return handles


def losses(seg_logits, target, clip_loss):
    import monai
    from torch.nn import BCEWithLogitsLoss

    dice = monai.losses.DiceLoss(include_background=False, sigmoid=True, reduction="mean")
    d = dice(seg_logits, target)
    b = BCEWithLogitsLoss()(seg_logits, target.float())
    total = 0.5 * d + 0.5 * b + 0.1 * clip_loss
    return {"dice": d, "bce": b, "softcon": clip_loss, "total": total}


def key_set(model):
    """Every key and shape of the state dict, and the aliases: keys holding the same tensor as an
    earlier key (the twin a loader should keep is the one not under `clip_model.`)."""
    sd = model.state_dict(keep_vars=True)
    keys = [[k, list(v.shape)] for k, v in sd.items()]
    owner = {}
    aliases = {}
    for k, v in sd.items():
        ident = (v.data_ptr(), tuple(v.shape), tuple(v.stride()))
        if ident in owner:
            aliases[k] = owner[ident]
        else:
            owner[ident] = k
    # Report each alias against the canonical (non-`clip_model.`) name.
    groups = {}
    for alias, first in aliases.items():
        groups.setdefault(first, [first]).append(alias)
    canonical = {}
    for members in groups.values():
        keep = next((m for m in members if not m.startswith("clip_model.")), members[0])
        for m in members:
            if m != keep:
                canonical[m] = keep
    return {"keys": keys, "aliases": canonical}


def generate(official, out_root, name):
    variant = VARIANTS[name]
    torch.set_num_threads(2)
    patches = []
    mod = importlib.import_module(variant["module"])
    layers = importlib.import_module("trainers.layers")
    layers.torch = ZeroNoiseTorch()
    patches.append("trainers.layers sees a proxy `torch` whose randn_like returns zeros "
                   "(zero adapter noise); every other torch call passes through")
    if name == "biomedclip":
        patch_biomedclip_variant(mod, variant, patches)
    else:
        patch_clip_variant(mod, variant, patches)
    cfg = load_cfg(official, variant)

    torch.manual_seed(SEEDS["weights"])
    model = getattr(mod, variant["builder"])(cfg)
    perturbed = perturb_constants(model)
    # Dropout off (the BERT of BiomedCLIP), as the UniMedCLIP golden's forward and train step.
    dropouts = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
            dropouts += 1
    keys = key_set(model)
    model_tensors = {
        k: v.detach().clone().contiguous()
        for k, v in model.state_dict().items()
        if k not in keys["aliases"]
    }

    image, ids, target = make_inputs(variant, name)
    rec = Recorder()
    handles = (attach_biomedclip_hooks(model, rec) if name == "biomedclip"
               else attach_clip_hooks(model, rec))
    handles += attach_common_hooks(model, rec)

    model.train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([p for _, p in trainable], lr=3e-4)
    seg_logits, clip_loss = model(image=image, text=ids)
    rec.put("seg_logits", seg_logits)
    loss = losses(seg_logits, target, clip_loss)
    optimizer.zero_grad()
    loss["total"].backward()
    golden = dict(rec.values)
    golden["image"] = image
    golden["input_ids"] = ids
    golden["attention_mask"] = (ids != 0).long()
    golden["target_mask"] = target
    for k, v in loss.items():
        golden[f"loss.{k}"] = v.detach().reshape([])
    for n, p in trainable:
        golden[f"grad.{n}"] = p.grad.detach().clone()
    optimizer.step()
    for n, p in trainable:
        if n in ADAM_RECORDED:
            golden[f"adam1.{n}"] = p.detach().clone()
    rec.on = False
    with torch.no_grad():
        seg_logits, clip_loss = model(image=image, text=ids)
        for k, v in losses(seg_logits, target, clip_loss).items():
            golden[f"step1.loss.{k}"] = v.detach().reshape([])
    for h in handles:
        h.remove()

    from safetensors.torch import save_file

    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    save_file(model_tensors, str(out / f"{name}_model.safetensors"))
    save_file({k: v.contiguous() for k, v in golden.items()},
              str(out / f"{name}_golden.safetensors"))
    (out / f"{name}_keys.json").write_text(json.dumps(keys, indent=0) + "\n")
    manifest = {
        "what": f"MedCLIPSeg reference golden data, backbone variant '{name}'",
        "official_code": {"repo": "HealthX-Lab/MedCLIPSeg", "module": variant["module"],
                          "builder": variant["builder"], "config": "configs/BUSI.yaml"},
        "generated_by": "benches/torch/make_backbone_golden.py",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__,
                     "transformers": importlib.import_module("transformers").__version__},
        "sizes": {"image": variant["image"], "patch": variant["patch"],
                  "width": variant["width"], "layers": variant["layers"], "embed_dim": EMBED,
                  "context": CONTEXT, "vocab": VOCAB, "adapter_dim": ADAPTER_DIM,
                  "adapter_layers": ADAPTER_LAYERS, "batch": BATCH},
        "seeds": SEEDS,
        "patches": patches,
        "perturbed_params": perturbed,
        "dropout_modules_zeroed": dropouts,
        "noise": "zero (adapter randn_like -> zeros)",
        "run": "model.train(); seg_logits, clip_loss = model(image=image, text=ids); loss = "
               "0.5*Dice(MONAI, include_background=False, sigmoid) + 0.5*BCEWithLogits + "
               "0.1*clip_loss; Adam(requires_grad params, lr=3e-4); zero_grad; backward; step; "
               "then the same forward again for step1.loss.*",
        "img_tokens": ("encode_text_image's image features: all tokens after norm and head "
                       "[B,1+g*g,E]" if name == "biomedclip" else
                       "encode_text_image's x_patch: the last block's value path "
                       "out_proj(v_proj(ln_1(x))) of the patch tokens, ln_post, @ proj [B,g*g,E]"),
        "losses": {k: float(v) for k, v in loss.items()},
        "losses_after_one_adam_step": {
            k: float(golden[f"step1.loss.{k}"]) for k in loss},
        "tensors": {k: list(v.shape) for k, v in sorted(golden.items())},
    }
    (out / f"{name}_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{name}: {len(golden)} golden tensors, {len(model_tensors)} weights, "
          f"{len(keys['keys'])} official keys ({len(keys['aliases'])} aliases), "
          f"losses {manifest['losses']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, type=Path,
                        help="checkout of HealthX-Lab/MedCLIPSeg")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variant", default="all", choices=[*VARIANTS, "all"])
    args = parser.parse_args()
    official = args.official.resolve()
    sys.path.insert(0, str(official))
    names = list(VARIANTS) if args.variant == "all" else [args.variant]
    for name in names:
        generate(official, args.out, name)


if __name__ == "__main__":
    main()
