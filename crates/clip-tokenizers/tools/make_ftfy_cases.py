"""Write `fixtures/ftfy_cases.json`: inputs with the outputs of the Python reference.

    pip install ftfy==6.3.1 regex
    pip download --no-deps open_clip_torch==3.3.0 -d /tmp/oc && unzip -o /tmp/oc/*.whl 'open_clip/*' -d /tmp/oc
    python tools/make_ftfy_cases.py /tmp/oc/open_clip/tokenizer.py > fixtures/ftfy_cases.json

Each case is `[input, ftfy.fix_text(input), open_clip _clean_whitespace(input)]`. The
inputs are deterministic (seeded) mojibake of accented, typographic, Greek, Cyrillic,
CJK and emoji text through the codecs ftfy knows, plus HTML entities, control and
width characters, and text that must be left alone.
"""
import html
import importlib.util
import json
import random
import sys
import types

import ftfy


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


WORDS = [
    "café", "naïve", "résumé", "São Paulo", "Zürich", "Ærøskøbing", "Straße", "crème brûlée",
    "à la mode", "tumor’s edge", "“quoted”", "‘single’", "en–dash", "em—dash", "ellipsis…",
    "€100", "£5", "¥20", "±2 mm", "37 °C", "µm", "½ cup", "×3", "©2020", "®", "™", "•item",
    "Ελληνικά", "Русский текст", "Łódź", "Čeština", "Türkçe", "日本語", "中文", "한국어",
    "✔ done", "😀 smile", "🫁 lungs", "ﬁbrosis", "no problems",
]
ENCODINGS = ["latin-1", "windows-1252", "windows-1251", "windows-1250", "windows-1253",
             "windows-1254", "windows-1257", "iso-8859-2", "mac_roman", "cp437"]
PLAIN = [
    "one small pink circle polyp, located in right of the image\n",
    "Bilateral pulmonary infection involving two regions",
    "Normal pancreatic head with no masses in EUS",
    "Éléphant à l'école, naïve café, Ærø, Straße",
    "Ελληνικά και Русский", "日本語のテキスト", "I ♥ NY", "x ≤ y ≥ z", "C'est très bien",
    "Señor Muñoz", "Ça va? À bientôt", "Ã", "Â", "Ãƒ", "×", "Ã la", "ÂÂ", "a Ã b",
]
EXTRAS = [
    "&amp;lt;tumor&amp;gt;", "&EACUTE;COLE", "&ntilde;", "a &lt; b <i>", "&#x2019;s", "&#150;",
    "&amp;\n<x>\n&amp;", "AT&T", "fish &amp chips", "&notit;", "\u001b[31mred\u001b[0m lesion",
    "bad\u0000\u0007chars\u007f", "\ufeffBOM", "ＦＵＬＬ　ＷＩＤＴＨ １２３", "ﾊﾝｶｸ", "ﬂuﬃeﬆ",
    "line\r\nbreaks\rhere\u2028and\u2029there\u0085", "e\u0301 composed", "\u2018curly\u2019 \u201cquotes\u201d",
    "tab\tand  spaces ", "\u00a0nbsp\u00a0", "\u200bzero width", "\u202f\u205f\u3000", "\u001c\u001d\u001e\u001f sep",
    "\u0080\u0081\u0092\u009d", "ĳ ǆ ŉ",
]


def mojibake(text, rng):
    data = text.encode("utf-8")
    enc = rng.choice(ENCODINGS)
    if enc == "windows-1252" and rng.random() < 0.5:
        enc = "sloppy-windows-1252"
    garbled = data.decode(enc, errors="replace")
    roll = rng.random()
    if roll < 0.15:
        garbled = garbled.replace("\xa0", " ")
    elif roll < 0.25:
        garbled = garbled.encode("utf-8").decode("windows-1252", errors="replace")
    return garbled


def main():
    import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)

    tok = load_open_clip_tokenizer(sys.argv[1])
    rng = random.Random(20261127)
    inputs = list(PLAIN) + list(EXTRAS)
    for word in WORDS:
        inputs.append(mojibake(word, rng))
        inputs.append(mojibake(f"The {word} case", rng))
    for _ in range(160):
        words = rng.sample(WORDS, 2)
        text = f"{words[0]} and {words[1]}"
        kind = rng.random()
        if kind < 0.6:
            text = mojibake(text, rng)
        elif kind < 0.8:
            text = words[0] + " " + mojibake(words[1], rng)
        else:
            text = html.escape(text) if rng.random() < 0.5 else rng.choice(EXTRAS) + " " + text
        inputs.append(text)
    seen, cases = set(), []
    for text in inputs:
        if text in seen:
            continue
        seen.add(text)
        cases.append([text, ftfy.fix_text(text), tok._clean_whitespace(text)])
    json.dump(cases, sys.stdout, ensure_ascii=True, indent=0)
    print()


main()
