#!/usr/bin/env python3
"""Golden fixtures for ko-sentence-transformers: the Python reference's numbers.

Every expected value used by the JS/C++ tests comes from running this script against the Python
reference stack (torch, transformers, sentence-transformers, sentencepiece). Nothing is typed in by hand.

How to run (from the repository root, with the shared data checked out at ../shared/data):

    python3 test/golden/make_golden.py              # tiny model + all committed fixtures (~1-2 min)
    python3 test/golden/make_golden.py --base       # also the 12-layer base model (not committed)
    python3 test/golden/make_golden.py --check      # regenerate tiny fixtures in a temp dir, compare bytes

Options: --data DIR (default: $KO_ST_DATA or <repo>/../shared/data), --seed N (default 20240611),
--threads N (torch intra-op threads, default 1).

What it writes (committed, under test/fixtures/):
    kobert-tiny/                       SentenceTransformer folder: KoBertTransformer (random 2-layer BERT) + mean Pooling
    kornlu-token-ids.json.gz           [[text, ids], ...] for the 25,406 distinct KorSTS/KorNLI sentences (max 512)
    edge-token-ids.json                edge-case texts and their ids (several max_seq_length values)
    kobert-tiny-embeddings.json.gz     SentenceTransformer.encode() outputs of kobert-tiny (mean/cls/max/normalized)
                                       plus per-layer hidden states for 3 sentences
    unicode-python.json                Python's unicodedata tables the tokenizer depends on (as ranges)
    golden-manifest.json               versions, counts, sanity facts, sha256 of every fixture
Not committed (gitignored):
    test/golden/models/kobert-base/    random 12x768 KoBERT-shaped model (with --base)
    test/golden/out/kobert-base-embeddings.json.gz

Determinism: weights come from a torch.Generator seeded with --seed; every JSON file is written with sorted
insertion order, no timestamps, and gzip with mtime=0, so rerunning on the same stack gives identical bytes.
Floats are float32 values written in their shortest round-trip form (str(np.float32)); the script asserts that
parsing each as a double and rounding to float32 (what Math.fround(parseFloat(s)) does) gives the value back.

Loading the fixture model in Python needs test/golden on sys.path and trust_remote_code=True (sentence-
transformers 6 refuses to import module classes outside its own namespace otherwise):

    sys.path.insert(0, "test/golden")
    SentenceTransformer("test/fixtures/kobert-tiny", trust_remote_code=True)
"""
from __future__ import annotations

import argparse
import filecmp
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Quiet, offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import safetensors  # noqa: E402
import sentence_transformers  # noqa: E402
import sentencepiece  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

transformers.logging.set_verbosity_error()

from ko_sentence_transformers import KoBertTokenizer  # noqa: E402
from ko_sentence_transformers.models import KoBertTransformer  # noqa: E402

DEFAULT_SEED = 20240611
KNOWN_TEXT = "한국어 모델을 공유합니다."
KNOWN_IDS = [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]
EXPECTED_DISTINCT = 25406

TINY = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=100)
BASE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)


# ---------------------------------------------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------------------------------------------
def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "unidata_version": unicodedata.unidata_version,
    }


def f32_list(arr) -> list:
    """float32 array -> nested lists of Python floats carrying the shortest float32 round-trip digits."""
    a = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite value in a fixture")
    flat = [float(str(v)) for v in a.reshape(-1)]
    back = np.asarray(flat, dtype=np.float64).astype(np.float32)
    if not np.array_equal(back.view(np.uint32), a.reshape(-1).view(np.uint32)):
        raise AssertionError("float32 text form does not round-trip")
    out = np.asarray(flat, dtype=object).reshape(a.shape)
    return out.tolist()


def dump_json(obj, path: str, compact: bool = True) -> None:
    if compact:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=1)
    data = (text + "\n").encode("utf-8")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".gz"):
        buf = io.BytesIO()
        # mtime=0 and no file name in the header: byte-identical output on every run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
            gz.write(data)
        data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_tsv(path: str) -> list[list[str]]:
    """No quoting at all: split lines on tab, skip the header (some sentences hold quote characters)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    for line in lines[1:]:
        if line.endswith("\r"):
            line = line[:-1]
        if line == "":
            continue
        rows.append(line.split("\t"))
    return rows


def load_kornlu(data_dir: str):
    """Distinct sentences in first-occurrence order, plus the KorSTS test sentences on their own."""
    base = os.path.join(data_dir, "kornlu")
    sources = [
        ("KorSTS/sts-train.tsv", 5, 6),
        ("KorSTS/sts-dev.tsv", 5, 6),
        ("KorSTS/sts-test.tsv", 5, 6),
        ("KorNLI/xnli.dev.ko.tsv", 0, 1),
        ("KorNLI/xnli.test.ko.tsv", 0, 1),
    ]
    seen: dict[str, None] = {}
    per_file: dict[str, list[str]] = {}
    for rel, c1, c2 in sources:
        rows = read_tsv(os.path.join(base, rel))
        ordered: dict[str, None] = {}
        for r in rows:
            for c in (c1, c2):
                if c >= len(r):
                    raise ValueError(f"{rel}: row with {len(r)} columns: {r!r}")
                ordered.setdefault(r[c], None)
                seen.setdefault(r[c], None)
        per_file[rel] = list(ordered)
    return list(seen), per_file


# ---------------------------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------------------------
def make_tokenizer(data_dir: str) -> KoBertTokenizer:
    kb = os.path.join(data_dir, "kobert")
    return KoBertTokenizer(os.path.join(kb, "tokenizer_78b3253a26.model"), os.path.join(kb, "vocab.txt"))


class TokenizeOnly:
    """KoBertTransformer.tokenize semantics without a model (strip, optional lower, [CLS] X [SEP], truncate)."""

    def __init__(self, tokenizer: KoBertTokenizer):
        self.tokenizer = tokenizer

    def ids(self, text: str, max_seq_length: int) -> list[int]:
        t = text.strip()
        enc = self.tokenizer([t], padding=True, truncation="longest_first", max_length=max_seq_length)
        return list(enc["input_ids"][0])

    def pieces(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text.strip())


def digit_comma_hit(tokenizer: KoBertTokenizer, text: str) -> bool:
    """Does _tokenize take the digit-comma branch for this text (ignoring special-token splitting)?"""
    pre = tokenizer.preprocess_text(text.strip())
    return any(
        len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in tokenizer.sp_model.encode(pre, out_type=str)
    )


def long_text(sts_test: list[str], tok: TokenizeOnly, min_tokens: int = 600) -> str:
    parts = []
    for s in sts_test:
        parts.append(s)
        text = " ".join(parts)
        if len(tok.pieces(text)) >= min_tokens:
            return text
    raise RuntimeError("not enough text for the long case")


def edge_cases(long: str) -> list[tuple[str, str]]:
    """(name, text) pairs. Texts are written with escapes so the source stays readable."""
    return [
        ("empty", ""),
        ("spaces", "     "),
        ("tabs_newlines", "\t\n 안녕\n\t하세요 \r\n"),
        ("whitespace_only_mixed", " \t\n\r\x0b\x0c"),
        ("unicode_spaces", "안녕\u3000하세요\u00a0반가워요\u2003끝"),
        ("unicode_spaces_only", "\u3000\u00a0\u2028\u0085"),
        ("leading_trailing", "   한국어 문장입니다.   "),
        ("known_answer", KNOWN_TEXT),
        ("emoji_single", "😀"),
        ("emoji_repeated", "😀😀😀"),
        ("emoji_mixed", "😀🙂👍"),
        ("emoji_korean", "안녕하세요😀 반가워요🙂👍 좋아요"),
        ("emoji_zwj_skin", "👨‍👩‍👧 가족 👍🏽"),
        ("unknown_run_spaced", "😀 😀 😀"),
        ("accented_latin", "Café naïve résumé"),
        ("vietnamese", "Tiếng Việt có dấu"),
        ("fullwidth", "ＡＢＣ１２３"),
        ("fullwidth_korean", "가격：１，０００원！"),
        ("digit_comma_won", "1,000원"),
        ("digit_comma_long", "가격은 1,000,000원이고 3,5,7번"),
        ("digit_comma_variants", "10,000달러 2023, 12,345.67 3, 5 1,2,3,4,5,6 a1,b ,1,"),
        ("digit_comma_unicode_digits", "²,3 ١,٢ ①,② ５,０００"),
        ("mixed_ko_en", "나는 Python과 JavaScript를 좋아해요. iPhone 15 Pro는 비싸요!"),
        ("upper_lower", "KoBERT SentenceTransformer UPPER lower"),
        ("special_cls_mask", "안녕 [CLS] 하세요 [MASK]입니다"),
        ("special_glued", "a[CLS]b[SEP]c[PAD]d[UNK]e"),
        ("special_only", "[MASK]"),
        ("special_lowercase", "[cls] [mask] [Mask]"),
        ("special_spaced", "  [SEP]  [SEP]  "),
        ("backticks_quotes", "``hi''"),
        ("backticks_korean", "그가 ``안녕''이라고 말했다. \"따옴표\" '작은따옴표' `하나`"),
        ("hangul_compat_jamo", "ㄱㄴㄷ ㅏㅑㅓ ㅋㅋㅋ ㅠㅠ"),
        ("hangul_conjoining_jamo", "\u1100\u1161\u11a8 \u1112\u1161\u11ab"),
        ("hangul_nfd", unicodedata.normalize("NFD", "한국어 모델을 공유합니다.")),
        ("hangul_halfwidth", "\uffa1\uffc2 \uffbe"),
        ("hangul_combining_mark", "한\u0301국\u0308어"),
        ("hanja", "大韓民國 漢字 表記"),
        ("hanja_compat", "\uf900\uf901 \ufa10"),
        ("cjk_ext_b", "\U00020000\U0002a6d6 한자"),
        ("japanese_chinese", "日本語のテキスト 中文文本"),
        ("zero_width", "안\u200b녕\u200c하\u200d세\ufeff요\u00ad끝"),
        ("control_chars", "안녕\x00하세요\x07 \x1b[0m끝\x7f\x08"),
        ("c1_controls", "가\x80나\x9f다"),
        ("math_bold", "𝐇𝐞𝐥𝐥𝐨 𝟏𝟐𝟑"),
        ("compat_symbols", "ﬁ ① ㈜ ℃ ™ ½ x² ㎏ Ⅻ"),
        ("punctuation", "…!?。、·“”‘’—–-()[]{}<>@#$%^&*_+=|\\/~"),
        ("private_use", "\ue000\uf8ff 가"),
        ("noncharacter", "\ufffe\uffff\U0010ffff 가"),
        ("replacement_char", "\ufffd 깨진"),
        ("single_char", "가"),
        ("long_word", "가" * 200),
        ("long", long),
    ]


def write_edge_fixture(path: str, tok: TokenizeOnly, cases: list[tuple[str, str]]) -> list[dict]:
    out = []
    for name, text in cases:
        lengths = [512, 128, 75] if name == "long" else [512]
        for m in lengths:
            ids = tok.ids(text, m)
            out.append({"name": name, "text": text, "maxSeqLength": m, "ids": ids, "pieces": tok.pieces(text)})
    dump_json({"format": 1, "versions": versions(), "cases": out}, path, compact=False)
    return out


# ---------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------
def kobert_config(dims: dict) -> BertConfig:
    return BertConfig(
        vocab_size=8002,
        hidden_size=dims["hidden_size"],
        num_hidden_layers=dims["num_hidden_layers"],
        num_attention_heads=dims["num_attention_heads"],
        intermediate_size=dims["intermediate_size"],
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.2,
        layer_norm_eps=1e-12,
        pad_token_id=1,
    )


def randomize_(model: torch.nn.Module, seed: int, fan_in_ref: int | None = None) -> None:
    """Large random weights so every op leaves a mark on the output.

    Linear/Embedding weights ~ N(0, 0.2); biases ~ N(0, 0.1); LayerNorm weight ~ U(0.9, 1.1),
    LayerNorm bias ~ U(-0.1, 0.1). Parameters are visited in named_parameters() order with one generator.
    The [PAD] embedding row is random too (it is never attended to or pooled).

    fan_in_ref (base model only): Linear weights get std 0.2 * sqrt(fan_in_ref / fan_in) instead, i.e. the
    tiny model's per-unit scale. With a flat 0.2 at H=768 the attention scores have std ~30 (one-hot softmax)
    and the 12-layer model collapses: every token's output is the same to ~2e-6, so mean/cls/max pooling agree
    and positions/attention stop mattering. Fan-in scaling alone still collapses (tokens equal to ~1e-4 after
    12 layers), so the two residual-branch projections (attention.output.dense, output.dense) get a further
    x0.25; then tokens stay distinct through all 12 layers. Embedding tables keep std 0.2 (a LayerNorm follows).
    """
    linear_fan_in = {n + ".weight": m.in_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith(".weight"):
                v = 1.0 + (torch.rand(p.shape, generator=g) * 2 - 1) * 0.1
            elif "LayerNorm" in name and name.endswith(".bias"):
                v = (torch.rand(p.shape, generator=g) * 2 - 1) * 0.1
            elif name.endswith(".bias"):
                v = torch.randn(p.shape, generator=g) * 0.1
            else:
                std = 0.2
                if fan_in_ref is not None and name in linear_fan_in:
                    std = 0.2 * (fan_in_ref / linear_fan_in[name]) ** 0.5
                    if name.endswith("output.dense.weight"):
                        std *= 0.25  # residual branches (attention out, FFN out): keeps 12 layers from collapsing
                v = torch.randn(p.shape, generator=g) * std
            p.copy_(v.to(p.dtype))


def build_and_save(out_dir: str, dims: dict, seed: int, tokenizer: KoBertTokenizer, max_seq_length: int = 128,
                   fan_in_ref: int | None = None):
    config = kobert_config(dims)
    bert = BertModel(config, add_pooling_layer=True)
    randomize_(bert, seed, fan_in_ref)
    bert.eval()
    module = KoBertTransformer(max_seq_length=max_seq_length, do_lower_case=False, bert_model=bert, tokenizer=tokenizer)
    pooling = Pooling(dims["hidden_size"], pooling_mode="mean")
    st = SentenceTransformer(modules=[module, pooling], device="cpu")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    st.save(out_dir, create_model_card=False)
    return st


def load_st(model_dir: str) -> SentenceTransformer:
    return SentenceTransformer(model_dir, device="cpu", trust_remote_code=True)


LEGACY_POOLING_CONFIG = {
    "word_embedding_dimension": 64,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}


def check_legacy_layout(model_dir: str, sentences: list[str], expected: np.ndarray) -> dict:
    """Copy the model, rewrite modules.json / 1_Pooling/config.json the way sentence-transformers 2.x wrote them
    (type "sentence_transformers.models.Pooling", boolean pooling_mode_* keys), load it in ST 6, compare."""
    tmp = tempfile.mkdtemp(prefix="kobert-legacy-")
    try:
        d = os.path.join(tmp, "m")
        shutil.copytree(model_dir, d)
        with open(os.path.join(d, "modules.json"), encoding="utf-8") as f:
            mods = json.load(f)
        for m in mods:
            if m["path"] == "1_Pooling":
                m["type"] = "sentence_transformers.models.Pooling"
        with open(os.path.join(d, "modules.json"), "w", encoding="utf-8") as f:
            json.dump(mods, f, indent=2)
        with open(os.path.join(d, "1_Pooling", "config.json"), "w", encoding="utf-8") as f:
            json.dump(LEGACY_POOLING_CONFIG, f, indent=4)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = load_st(d)
            got = st.encode(sentences, convert_to_numpy=True, batch_size=32)
        same = bool(np.array_equal(got, expected))
        assert same, "legacy layout loads to different embeddings"
        return {"modulesType": "sentence_transformers.models.Pooling", "poolingConfig": LEGACY_POOLING_CONFIG,
                "loadsInST6": True, "sameEmbeddings": same}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def encode_all(st: SentenceTransformer, sentences: list[str], dim: int, batch_size: int = 32) -> dict:
    """mean / cls / max / mean+normalize, all by swapping the Pooling module on the same loaded model."""
    out = {}
    original = st._modules["1"]
    try:
        for mode in ("mean", "cls", "max"):
            st._modules["1"] = Pooling(dim, pooling_mode=mode)
            out[mode] = st.encode(sentences, convert_to_numpy=True, batch_size=batch_size)
        st._modules["1"] = Pooling(dim, pooling_mode="mean")
        out["meanNormalized"] = st.encode(
            sentences, convert_to_numpy=True, batch_size=batch_size, normalize_embeddings=True
        )
    finally:
        st._modules["1"] = original
    return out


def hidden_states(st: SentenceTransformer, text: str) -> dict:
    kt: KoBertTransformer = st._modules["0"]
    feats = kt.tokenize([text])
    with torch.no_grad():
        out = kt.auto_model(
            input_ids=feats["input_ids"],
            attention_mask=feats["attention_mask"],
            token_type_ids=feats["token_type_ids"],
            output_hidden_states=True,
            return_dict=True,
        )
    return {
        "text": text,
        "tokenIds": feats["input_ids"][0].tolist(),
        # layers[0] = embeddings output (after LayerNorm), layers[i] = output of encoder layer i; each T x H
        "layers": [f32_list(h[0].numpy()) for h in out.hidden_states],
    }


# ---------------------------------------------------------------------------------------------------------------
# unicode reference tables
# ---------------------------------------------------------------------------------------------------------------
def ranges(pred) -> list[list[int]]:
    out: list[list[int]] = []
    start = None
    for cp in range(0x110000):
        ok = pred(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append([start, cp - 1])
            start = None
    if start is not None:
        out.append([start, 0x10FFFF])
    return out


def write_unicode(path: str) -> None:
    obj = {
        "format": 1,
        "python": platform.python_version(),
        "unidata_version": unicodedata.unidata_version,
        "note": "Inclusive [first, last] code point ranges over U+0000..U+10FFFF (surrogates included in the scan).",
        "combining_nonzero": ranges(lambda c: unicodedata.combining(c) != 0),
        "isspace": ranges(str.isspace),
        "isdigit": ranges(str.isdigit),
    }
    text = json.dumps(obj, separators=(",", ":"))
    # one range list per line keeps the file small yet diffable
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------
def generate_tiny(fixtures: str, data_dir: str, seed: int) -> dict:
    os.makedirs(fixtures, exist_ok=True)
    tokenizer = make_tokenizer(data_dir)
    tok = TokenizeOnly(tokenizer)
    facts: dict = {}

    # 1. the known answer
    got = tok.ids(KNOWN_TEXT, 512)
    assert got == KNOWN_IDS, f"known answer mismatch: {got}"
    facts["knownAnswer"] = {"text": KNOWN_TEXT, "ids": got}
    print(f"known answer reproduced: {KNOWN_TEXT!r} -> {got}")

    # 2. kornlu corpus token ids
    distinct, per_file = load_kornlu(data_dir)
    print(f"distinct kornlu sentences: {len(distinct)} (expected {EXPECTED_DISTINCT})")
    assert len(distinct) == EXPECTED_DISTINCT, len(distinct)
    pairs = []
    n_digit_comma = n_unk = n_trunc = 0
    unk_examples = []
    max_len = 0
    for s in distinct:
        ids = tok.ids(s, 512)
        pairs.append([s, ids])
        max_len = max(max_len, len(ids))
        if digit_comma_hit(tokenizer, s):
            n_digit_comma += 1
        if 0 in ids:
            n_unk += 1
            if len(unk_examples) < 10:
                unk_examples.append(s)
        if len(ids) == 512:
            n_trunc += 1
    dump_json(pairs, os.path.join(fixtures, "kornlu-token-ids.json.gz"))
    facts["kornlu"] = {
        "distinctSentences": len(distinct),
        "perFileDistinct": {k: len(v) for k, v in per_file.items()},
        "digitCommaRuleSentences": n_digit_comma,
        "sentencesWithUnk": n_unk,
        "unkExamples": unk_examples,
        "truncatedAt512": n_trunc,
        "maxIdsLength": max_len,
        "totalIds": sum(len(p[1]) for p in pairs),
    }
    print(f"kornlu: digit-comma rule hit in {n_digit_comma} sentences, [UNK] in {n_unk}, max length {max_len}")

    # 3. edge cases
    sts_test = per_file["KorSTS/sts-test.tsv"]
    long = long_text(sts_test, tok)
    cases = edge_cases(long)
    edge = write_edge_fixture(os.path.join(fixtures, "edge-token-ids.json"), tok, cases)
    facts["edgeCases"] = len(edge)
    facts["longTextPieces"] = len(tok.pieces(long))
    facts["unknownRunMerged"] = {
        "text": "😀😀😀",
        "pieces": tok.pieces("😀😀😀"),
        "note": "sentencepiece returns one piece for a run of unknown characters -> a single [UNK] id",
    }

    # 4. tiny model
    model_dir = os.path.join(fixtures, "kobert-tiny")
    st0 = build_and_save(model_dir, TINY, seed, tokenizer)
    st = load_st(model_dir)
    assert type(st._modules["0"]).__name__ == "KoBertTransformer"
    emb_sentences = sts_test[:300] + [t for _, t in cases]
    # the long text is the last edge case; it is included once
    for a, b in zip(st0.state_dict().values(), st.state_dict().values()):
        assert torch.equal(a, b), "weights changed on save/load"
    e0 = st0.encode(emb_sentences, convert_to_numpy=True, batch_size=32)
    embs = encode_all(st, emb_sentences, TINY["hidden_size"])
    assert np.array_equal(e0, embs["mean"]), "reloaded model gives different embeddings"
    kt: KoBertTransformer = st._modules["0"]
    token_ids = [kt.tokenize([s])["input_ids"][0].tolist() for s in emb_sentences]
    hs_texts = [KNOWN_TEXT, sts_test[0], "가격은 1,000,000원이고 3,5,7번 [MASK] 😀"]
    fixture = {
        "format": 1,
        "model": "test/fixtures/kobert-tiny",
        "versions": versions(),
        "seed": seed,
        "maxSeqLength": kt.max_seq_length,
        "batchSize": 32,
        "counts": {"korstsTest": 300, "edge": len(cases)},
        "sentences": emb_sentences,
        "tokenIds": token_ids,
        "embeddings": {k: f32_list(v) for k, v in embs.items()},
        "hiddenStates": [hidden_states(st, t) for t in hs_texts],
    }
    dump_json(fixture, os.path.join(fixtures, "kobert-tiny-embeddings.json.gz"))
    facts["tinyEmbeddings"] = {
        "sentences": len(emb_sentences),
        "meanAbs": {k: float(np.abs(v).mean()) for k, v in embs.items()},
    }

    # the seed's / published models' legacy layout must load to the same numbers in ST 6
    facts["legacyLayout"] = check_legacy_layout(model_dir, emb_sentences[:64], st.encode(emb_sentences[:64], convert_to_numpy=True, batch_size=32))

    # 5. unicode
    write_unicode(os.path.join(fixtures, "unicode-python.json"))
    return facts


def generate_base(data_dir: str, seed: int) -> None:
    tokenizer = make_tokenizer(data_dir)
    model_dir = os.path.join(HERE, "models", "kobert-base")
    build_and_save(model_dir, BASE, seed + 1, tokenizer, fan_in_ref=TINY["hidden_size"])
    st = load_st(model_dir)
    _, per_file = load_kornlu(data_dir)
    sentences = per_file["KorSTS/sts-test.tsv"][:256]
    embs = encode_all(st, sentences, BASE["hidden_size"])
    embs.pop("meanNormalized")
    kt = st._modules["0"]
    fixture = {
        "format": 1,
        "model": "test/golden/models/kobert-base",
        "versions": versions(),
        "seed": seed + 1,
        "maxSeqLength": kt.max_seq_length,
        "batchSize": 32,
        "sentences": sentences,
        "tokenIds": [kt.tokenize([s])["input_ids"][0].tolist() for s in sentences],
        "embeddings": {k: f32_list(v) for k, v in embs.items()},
        "init": "Linear weights N(0, 0.2*sqrt(64/fan_in)), x0.25 for attention.output.dense and output.dense, embeddings N(0, 0.2), biases N(0, 0.1), LN U(0.9,1.1)/U(-0.1,0.1)",
    }
    diff = float(np.abs(embs["mean"] - embs["cls"]).max())
    print(f"base: max |mean - cls| = {diff:.4g} (a collapsed model gives ~1e-6)")
    assert diff > 0.1, "base model collapsed"
    dump_json(fixture, os.path.join(HERE, "out", "kobert-base-embeddings.json.gz"))
    print("base model:", model_dir, "embeddings: test/golden/out/kobert-base-embeddings.json.gz")


def write_manifest(fixtures: str, facts: dict, seed: int) -> None:
    files = {}
    for dirpath, _, names in os.walk(fixtures):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, fixtures)
            if rel == "golden-manifest.json":
                continue
            files[rel] = {"bytes": os.path.getsize(p), "sha256": sha256(p)}
    manifest = {
        "format": 1,
        "generator": "test/golden/make_golden.py",
        "seed": seed,
        "versions": versions(),
        "facts": facts,
        "files": dict(sorted(files.items())),
    }
    dump_json(manifest, os.path.join(fixtures, "golden-manifest.json"), compact=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("KO_ST_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "test", "fixtures"))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--base", action="store_true", help="also build the 12-layer base model (not committed)")
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with --fixtures")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    if args.check:
        tmp = tempfile.mkdtemp(prefix="golden-check-")
        try:
            facts = generate_tiny(tmp, args.data, args.seed)
            write_manifest(tmp, facts, args.seed)
            cmp = filecmp.dircmp(args.fixtures, tmp)
            bad = []

            def walk(c, prefix=""):
                bad.extend(prefix + x for x in c.left_only + c.right_only + c.diff_files + c.funny_files)
                _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
                bad.extend(prefix + x for x in mismatch + errors)
                for name, sub in c.subdirs.items():
                    walk(sub, prefix + name + "/")

            walk(cmp)
            bad = sorted(set(bad))
            print("identical" if not bad else f"DIFFERENT: {bad}")
            return 1 if bad else 0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    facts = generate_tiny(args.fixtures, args.data, args.seed)
    write_manifest(args.fixtures, facts, args.seed)
    print(json.dumps(facts, ensure_ascii=False, indent=1)[:3000])
    if args.base:
        generate_base(args.data, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
