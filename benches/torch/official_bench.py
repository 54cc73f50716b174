#!/usr/bin/env python3
"""Times the OFFICIAL PyTorch MedCLIPSeg (HealthX-Lab/MedCLIPSeg) on the workloads of our Rust
`medclipseg bench`, so that the two can be compared side by side.

    PYTHONPATH=/tmp/pydeps python3 benches/torch/official_bench.py \
        --official /path/to/MedCLIPSeg --device cuda --runs 5 --json torch_cuda.json

The model is the paper's default, at full size (configs/<DS>.yaml: UniMedCLIP ViT-B/16 image
tower + BiomedBERT-base text tower, 10 PVL adapters at layers 1..10, adapter width 256, two
ScaleBlocks), built by the official `build_medclipseg_unimedclip`, with RANDOM weights and no
network. Only what would download is replaced (see `patch_offline`); every module that computes
is the official one. Workloads (the shapes of crates/medclipseg-model/src/workloads.rs):

  forward  one stochastic pass, batch 1, a 224x224 image, 256 tokens, no grad, eval mode (the
           adapters still sample V, as in the official inference): the "regular forward" that
           begins `CustomCLIP.forward`: word embeddings, `encode_text_image`,
           `compute_seg_logits`; the logits are copied to the host.
  mc       Monte-Carlo inference of one image exactly as test.py does it:
           `model(image, text, num_samples=TEST.NUM_SAMPLES)` (one discarded pass, then
           NUM_SAMPLES sequential passes), sigmoid, mean over samples, binary entropy of the mean,
           threshold 0.5; mask and uncertainty copied to the host.
  train    one training step at batch 4 as train.py does it: model.train() (BERT dropout on),
           `seg_logits, clip_loss = model(image, text)`, 0.5 Dice (MONAI, as called there) +
           0.5 BCE + 0.1 SoftCon, zero_grad, backward, Adam step, loss.item(); only the
           adapters, mask head and ScaleBlocks train (the official freezing).

transformers must be 4.56.0 exactly (official requirements.txt): from 5.0 a BertLayer returns a
bare tensor, and the official `x_txt = x_txt[0]` then silently takes batch element 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import platform
import resource
import sys
import time
import types
from importlib import metadata

REQUIRED_TRANSFORMERS = "4.56.0"
BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"


def fail(message: str, code: int = 2) -> None:
    print(f"official_bench: error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True,
                   help="checkout of github.com/HealthX-Lab/MedCLIPSeg")
    p.add_argument("--config", default="configs/BUSI.yaml",
                   help="official config, relative to --official (default %(default)s; every "
                        "training config has the same MODEL/TRAIN/TEST values)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (CPU); default: PyTorch's choice")
    p.add_argument("--runs", type=int, default=5, help="timed runs per workload (%(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (%(default)s)")
    p.add_argument("--workloads", default="forward,mc,train",
                   help="comma-separated subset of forward,mc,train (default all)")
    p.add_argument("--mc-samples", type=int, default=None,
                   help="num_samples of the MC workload; default TEST.NUM_SAMPLES of the "
                        "config (30: 31 passes, the first discarded, as the official forward)")
    p.add_argument("--tokens", type=int, default=256, help="prompt length (official: 256)")
    p.add_argument("--train-batch", type=int, default=4, help="training batch (%(default)s)")
    p.add_argument("--seed", type=int, default=666, help="torch seed (official scripts: 666)")
    p.add_argument("--cudnn", choices=["official", "default"], default="official",
                   help="official: test.py's cudnn.benchmark=True for forward/mc and train.py's "
                        "deterministic=True, benchmark=False for train; default: leave them")
    p.add_argument("--tf32", choices=["default", "off", "on"], default="default",
                   help="default leaves PyTorch's TF32 flags as they are (reported either way)")
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in ("forward", "mc", "train"):
            p.error(f"unknown workload {w!r}: use forward, mc, train")
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return args


# --------------------------------------------------------------------------- environment

def check_transformers() -> str:
    try:
        have = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        fail(f"transformers is not installed; the official code needs transformers=="
             f"{REQUIRED_TRANSFORMERS} (see benches/torch/install_offline.sh)")
    if have != REQUIRED_TRANSFORMERS:
        fail(f"transformers {have} found, {REQUIRED_TRANSFORMERS} required exactly: from 5.0 "
             f"BertLayer returns a bare tensor and the official `x_txt = x_txt[0]` silently "
             f"takes batch element 0. Put the 4.56.0 wheels first on PYTHONPATH "
             f"(benches/torch/install_offline.sh WHEELDIR TARGETDIR; PYTHONPATH=TARGETDIR)")
    return have


class _AnyAttr(type):
    """A class whose every missing attribute is another such class (for the stub below)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _AnyAttr(name, (_Dummy,), {})
        setattr(cls, name, sub)
        return sub


class _Dummy(metaclass=_AnyAttr):
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return self


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _AnyAttr(name, (_Dummy,), {})
        setattr(self, name, sub)
        return sub


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports any module under `roots` as an inert stub."""

    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0"  # parsed as a version by timm
        return module

    def exec_module(self, module):
        pass


def ensure_torchvision() -> str:
    """The official open_clip_lib (image transforms, FrozenBatchNorm2d) and timm import
    torchvision (and PIL) at module level; the UniMedCLIP MedCLIPSeg model never calls them:
    the transforms it builds are discarded, FrozenBatchNorm2d is for ResNet towers. A torchvision
    wheel is tied to one torch build, so none is shipped: where it is absent, an inert stub
    stands in for it. Returns the torchvision version, or 'stub'."""
    missing = []
    try:
        import torchvision  # noqa: F401
        version = torchvision.__version__
    except ImportError:
        missing.append("torchvision")
        version = "stub"
    try:
        import PIL  # noqa: F401
    except ImportError:
        missing.append("PIL")
    if missing:
        for name in missing:
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
        sys.meta_path.insert(0, _StubFinder(missing))
        print(f"official_bench: {', '.join(missing)} not installed: inert stub(s) used "
              f"(only image transforms the model builds and discards use them)", file=sys.stderr)
    return version


class AttrDict(dict):
    """The official CfgNode's attribute access (utils/main_utils.py imports pandas; not needed)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name, value):
        self[name] = value


def to_attr(obj):
    if isinstance(obj, dict):
        return AttrDict({k: to_attr(v) for k, v in obj.items()})
    return obj


# --------------------------------------------------------------------------- offline model

def biomedbert_config():
    """BiomedBERT-base (microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract) by hand: BERT-base
    with its 30522-token uncased vocabulary; the other values are BertConfig's defaults, which the
    checkpoint's config.json has (GELU, dropout 0.1, LayerNorm eps 1e-12, pad id 0)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
    )


def token_ids(batch: int, tokens: int, vocab: int):
    """Deterministic pseudo-random ids, all real tokens (no id is the pad id 0, so the official
    `attention_mask = ids != pad_token_id` is all ones): the ids of our Rust workloads."""
    import torch

    ids = [(i * 7919 + 101) % vocab for i in range(batch * tokens)]
    ids = [i if i != 0 else 1 for i in ids]
    return torch.tensor(ids, dtype=torch.long).reshape(batch, tokens)


class FixedTokenizer:
    """Stands in for open_clip_lib.HFTokenizer (which downloads BiomedBERT's vocabulary): returns
    `tokens` fixed ids per text, as HFTokenizer returns [B, 256] ids on the host."""

    def __init__(self, tokenizer_name, context_length=256, **_kwargs):
        self.tokenizer_name = tokenizer_name
        self.context_length = context_length

    def __call__(self, texts, context_length=None):
        if isinstance(texts, str):
            texts = [texts]
        return token_ids(len(texts), context_length or self.context_length, 30522)


def patch_offline(mcs, hf_model, tokens: int) -> list[str]:
    """Replaces the three things the official build downloads; returns what was patched."""
    from transformers import AutoModel as HFAutoModel

    config = biomedbert_config()

    class OfflineAutoConfig:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            assert name == BIOMEDBERT, name
            return biomedbert_config()

    class OfflineAutoModel:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            # The official HFTextEncoder calls AutoModel.from_pretrained(name,
            # add_pooling_layer=False): same class and attention implementation (sdpa) from the
            # config, random weights, and eval mode as from_pretrained leaves it.
            assert name == BIOMEDBERT, name
            return HFAutoModel.from_config(config, *args, **kwargs).eval()

        from_config = staticmethod(HFAutoModel.from_config)

    hf_model.AutoConfig = OfflineAutoConfig
    hf_model.AutoModel = OfflineAutoModel
    # UniMedCLIP weights (HF TahaKoleilat/MedCLIPSeg): '' makes create_model skip the load, so
    # the towers keep open_clip's / HF's random initialisation.
    mcs.download_checkpoint = lambda filename: ""
    mcs.HFTokenizer = lambda name, context_length=256, **kw: FixedTokenizer(name, tokens, **kw)
    return [
        "trainers.medclipseg_unimedclip.download_checkpoint -> '' (no UniMedCLIP checkpoint: "
        "random ViT-B/16 + projection weights)",
        "open_clip_lib.hf_model.AutoConfig.from_pretrained -> hand-built BiomedBERT-base "
        "BertConfig",
        "open_clip_lib.hf_model.AutoModel.from_pretrained -> AutoModel.from_config(config, "
        "add_pooling_layer=False).eval() (random BERT weights)",
        f"trainers.medclipseg_unimedclip.HFTokenizer -> fixed ids [B,{tokens}], no pad token "
        "(no vocabulary download)",
    ]


def import_official(official: str):
    """Imports trainers.medclipseg_unimedclip without trainers/__init__.py, which also imports
    the BiomedCLIP / CLIP / PubMedCLIP variants (open_clip_torch, PIL, the OpenAI clip package)
    that the UniMedCLIP model does not use."""
    official = os.path.abspath(official)
    if not os.path.isfile(os.path.join(official, "trainers", "medclipseg_unimedclip.py")):
        fail(f"{official} is not a MedCLIPSeg checkout (no trainers/medclipseg_unimedclip.py)")
    sys.path.insert(0, official)
    pkg = types.ModuleType("trainers")
    pkg.__path__ = [os.path.join(official, "trainers")]
    sys.modules["trainers"] = pkg
    mcs = importlib.import_module("trainers.medclipseg_unimedclip")
    hf_model = importlib.import_module("open_clip_lib.hf_model")
    return official, mcs, hf_model


# --------------------------------------------------------------------------- measuring

def peak_rss_reset() -> bool:
    """Resets the kernel's peak-RSS counter (VmHWM) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(resettable: bool):
    if resettable:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024, "VmHWM (reset per workload)"
        except OSError:
            pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, \
        "ru_maxrss (process lifetime peak)"


def tf32_flags(torch) -> dict:
    """PyTorch's TF32 switches as they stand (reading the legacy ones warns from 2.9 on)."""
    import warnings

    reads = {
        "cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
        "fp32_precision": lambda: torch.backends.fp32_precision,
        "cuda.matmul.fp32_precision": lambda: torch.backends.cuda.matmul.fp32_precision,
        "cudnn.conv.fp32_precision": lambda: torch.backends.cudnn.conv.fp32_precision,
    }
    flags = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, read in reads.items():
            try:
                flags[name] = read()
            except (AttributeError, RuntimeError):
                pass
    return flags


def set_tf32(torch, on: bool) -> None:
    """--tf32 on|off: TF32 for both the matmuls (cuBLAS) and the convolutions (cuDNN)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
            torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
            torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
        else:
            torch.backends.cuda.matmul.allow_tf32 = on
            torch.backends.cudnn.allow_tf32 = on


def device_name(torch, device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_workload(torch, device, name, work, runs, warmup, setup=None) -> dict:
    if setup is not None:
        setup()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    resettable = peak_rss_reset() if device.type == "cpu" else False

    def once():
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    warm = [once() for _ in range(warmup)]
    times = [once() for _ in range(runs)]
    ordered = sorted(times)
    result = {
        "warmup": warm,
        "runs": times,
        "min": ordered[0],
        # sorted[n // 2], as our Rust bench (the upper median for an even count).
        "median": ordered[len(ordered) // 2],
    }
    if device.type == "cuda":
        result["memory"] = {
            "max_memory_allocated": torch.cuda.max_memory_allocated(device),
            "max_memory_reserved": torch.cuda.max_memory_reserved(device),
        }
    else:
        rss, how = peak_rss_bytes(resettable)
        result["memory"] = {"peak_rss": rss, "peak_rss_method": how}
    print(f"official_bench: {name}: warm-up {sum(warm):.3f} s, min {result['min']:.4f} s, "
          f"median {result['median']:.4f} s", file=sys.stderr)
    return result


# --------------------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(argv)
    transformers_version = check_transformers()

    import numpy as np  # noqa: F401 - the official code needs it
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        fail(f"--device cuda asked, but this torch ({torch.__version__}, built for CUDA "
             f"{torch.version.cuda}) sees no CUDA device; use --device cpu")
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.tf32 != "default":
        set_tf32(torch, args.tf32 == "on")

    torchvision_version = ensure_torchvision()
    import transformers

    assert transformers.__version__ == REQUIRED_TRANSFORMERS, transformers.__version__
    official, mcs, hf_model = import_official(args.official)
    import monai
    from torch.nn.modules.loss import BCEWithLogitsLoss

    import yaml

    with open(os.path.join(official, args.config)) as f:
        cfg = to_attr(yaml.safe_load(f))
    cfg.MODEL.DEVICE = str(device)
    mc_samples = cfg.TEST.NUM_SAMPLES if args.mc_samples is None else args.mc_samples

    patches = patch_offline(mcs, hf_model, args.tokens)
    torch.manual_seed(args.seed)
    model = mcs.build_medclipseg_unimedclip(cfg)  # the official build, freezing included
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    attn = model.text_model.transformer.config._attn_implementation
    print(f"official_bench: trainable {trainable:,} / frozen {frozen:,} parameters; BERT "
          f"attention {attn}; MC {mc_samples} samples (+1 discarded pass)", file=sys.stderr)

    size = cfg.DATASET.SIZE
    gen = torch.Generator().manual_seed(args.seed)
    image1 = torch.rand(1, 3, size, size, generator=gen).to(device)
    images = torch.rand(args.train_batch, 3, size, size, generator=gen).to(device)
    masks = (torch.rand(args.train_batch, size, size, generator=gen) < 0.3).long().to(device)
    text1 = ["prompt"]
    texts = ["prompt"] * args.train_batch

    cudnn = torch.backends.cudnn
    cudnn_used = {}

    def cudnn_inference():  # test.py: set_random_seed
        if args.cudnn == "official":
            cudnn.benchmark = True
        cudnn_used["forward/mc"] = {"benchmark": cudnn.benchmark,
                                    "deterministic": cudnn.deterministic}

    def cudnn_training():  # train.py: set_random_seed
        if args.cudnn == "official":
            cudnn.deterministic = True
            cudnn.benchmark = False
        cudnn_used["train"] = {"benchmark": cudnn.benchmark, "deterministic": cudnn.deterministic}

    # (a) The "regular forward" that starts CustomCLIP.forward, once.
    def forward():
        with torch.no_grad():
            B, _, H, W = image1.shape
            ids = model.tokenizer(text1).to(model.device)
            prompts = model.text_model.transformer.embeddings.word_embeddings(ids).type(
                model.dtype)
            image_features, text_features = model.encode_text_image(ids, prompts, image1)
            seg_logits, _ = model.compute_seg_logits(image_features, text_features, B, H, W)
        return seg_logits.cpu()

    # (b) test.py's loop body for one image.
    def mc():
        with torch.no_grad():
            seg_samples = model(image=image1, text=text1, num_samples=mc_samples)
            seg_samples = torch.sigmoid(seg_samples)
            seg_logits = seg_samples.mean(dim=0)  # predictive mean
            seg_unc = -(seg_logits * torch.log(seg_logits + 1e-8)
                        + (1 - seg_logits) * torch.log(1 - seg_logits + 1e-8))
            mask_preds = seg_logits > 0.5
        return mask_preds[0].cpu().numpy(), seg_unc[0].cpu().numpy()

    # (c) train.py's step.
    ce_loss = BCEWithLogitsLoss()
    dice_loss = monai.losses.DiceLoss(include_background=False, sigmoid=True, reduction="mean")

    def calc_loss(low_res_logits, low_res_label_batch):  # train.py::calc_loss
        loss_ce = ce_loss(low_res_logits, low_res_label_batch.float())
        loss_dice = dice_loss(low_res_logits, low_res_label_batch)
        return cfg.TRAIN.DICE_WEIGHT * loss_dice + cfg.TRAIN.CE_WEIGHT * loss_ce

    optimizer = None

    def train_setup():
        nonlocal optimizer
        cudnn_training()
        model.train()
        optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()),
                                     lr=cfg.TRAIN.LEARNING_RATE)

    def train():
        seg_logits, clip_loss = model(image=images, text=texts)
        loss = calc_loss(seg_logits, masks)
        loss += cfg.TRAIN.CLIP_WEIGHT * clip_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def inference_setup():
        cudnn_inference()
        model.eval()

    results = {}
    for name in args.workloads:
        if name == "forward":
            results[name] = time_workload(torch, device, name, forward, args.runs, args.warmup,
                                          inference_setup)
        elif name == "mc":
            results[name] = time_workload(torch, device, name, mc, args.runs, args.warmup,
                                          inference_setup)
        else:
            results[name] = time_workload(torch, device, name, train, args.runs, args.warmup,
                                          train_setup)

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    report = {
        "implementation": "official PyTorch MedCLIPSeg (HealthX-Lab/MedCLIPSeg)",
        "official_dir": official,
        "config": args.config,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers_version,
        "torchvision": torchvision_version,
        "monai": monai.__version__,
        "timm": version("timm"),
        "numpy": version("numpy"),
        "device": str(device),
        "device_name": device_name(torch, device),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "tf32_setting": args.tf32,
        "tf32": tf32_flags(torch),
        "cudnn": cudnn_used,
        "bert_attention": attn,
        "seed": args.seed,
        "tokens": args.tokens,
        "mc_samples": mc_samples,
        "mc_passes": mc_samples + 1,
        "train_batch": args.train_batch,
        "image_size": size,
        "trainable_params": trainable,
        "frozen_params": frozen,
        "warmup_runs": args.warmup,
        "timed_runs": args.runs,
        "offline_patches": patches,
        "workloads": results,
    }
    print_table(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report


def print_table(report: dict) -> None:
    gib = float(1 << 30)
    labels = {
        "forward": "one pass, batch 1",
        "mc": f"MC-{report['mc_samples']} of one image ({report['mc_passes']} passes)",
        "train": f"training step, batch {report['train_batch']}",
    }
    where = report["device_name"] if report["device"] != "cpu" else \
        f"cpu, {report['threads']} threads"
    print(f"| workload (official PyTorch {report['torch']}, {where}) | min | median | "
          f"peak memory |")
    print("| --- | --- | --- | --- |")
    for name, t in report["workloads"].items():
        mem = t["memory"]
        if "max_memory_reserved" in mem:
            memory = (f"{mem['max_memory_allocated'] / gib:.2f} GiB allocated, "
                      f"{mem['max_memory_reserved'] / gib:.2f} GiB reserved")
        else:
            memory = f"{mem['peak_rss'] / gib:.2f} GiB RSS"
        print(f"| {labels[name]} | {t['min']:.4f} s | {t['median']:.4f} s | {memory} |")


if __name__ == "__main__":
    main()
