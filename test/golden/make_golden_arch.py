#!/usr/bin/env python3
"""Reference fixtures for the non-KoBERT architectures, weight formats and tokenizer.json kinds.

Writes test/fixtures/arch/ (see test/golden/README.md, "make_golden_arch.py"):
  tokenizers/{wordpiece,unigram,bpe}.json.gz   tokenizers trained here on the KorNLU text (8,000 pieces),
                                               the real klue / XLM-R vocabularies cannot be downloaded here
  token-hashes.json.gz                         per-sentence md5 prefixes of Python `tokenizers` ids on the
                                               25,406 KorNLU sentences (texts from kornlu-token-ids.json.gz)
  tokenizers/{wordpiece,unigram,bpe}-tiny.json.gz  600-700 piece tokenizers shared by the tiny matrix models
  models/<name>/                               random-weight sentence-transformers folders in the Hub layout: every
                                               architecture (bert, roberta, xlm-roberta, distilbert) x weight format
                                               (model.safetensors; pytorch_model.bin = torch.save(state_dict) as
                                               transformers 4 wrote it, some with the legacy embeddings.position_ids)
                                               x tokenizer kind (WordPiece, Unigram, byte-level BPE); all six pooling modes
  embeddings.json.gz                           sentence-transformers embeddings of every model on the same texts
  manifest.json                                per model: arch, format, tokenizer kind, pooling, modules, files
                                               (bytes, sha256); the test iterates over it

  python3 test/golden/make_golden_arch.py            # (re)write test/fixtures/arch
  python3 test/golden/make_golden_arch.py --check    # regenerate in a temp dir, byte-compare
  python3 test/golden/make_golden_arch.py --retrain-tokenizers   # train the tokenizers again (new fixtures)

Deterministic (fixed seeds, 1 torch thread, gzip mtime 0) given the committed tokenizers: training with
`tokenizers` is not reproducible across processes, so trained tokenizers are read back from the fixtures
(TOKENIZER_FILES) and only missing ones are trained. Run with RAYON_NUM_THREADS=1 to keep to one thread.
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "test", "fixtures")
SEED = 1234


def write_gz_json(path, obj):
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
            f.write(data)


def f32list(a):
    out = []
    for x in np.asarray(a, dtype=np.float32).ravel():
        s = repr(float(x))
        # shortest text that round-trips through float32
        for digits in range(6, 18):
            t = "%.*g" % (digits, float(x))
            if np.float32(float(t)) == x:
                s = t
                break
        out.append(float(s))
    return out


def kornlu_texts():
    with gzip.open(os.path.join(FIX, "kornlu-token-ids.json.gz"), "rt", encoding="utf-8") as f:
        return [t for t, _ in json.load(f)]


def train_tokenizers(texts, vocab):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    out = {}
    # klue/bert-base style WordPiece: BertNormalizer(lowercase False, strip_accents None, chinese chars),
    # BertPreTokenizer, [CLS] $A [SEP]; special ids [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.
    def wordpiece(specials, v, limit_alphabet=3000):
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tr = trainers.WordPieceTrainer(vocab_size=v, special_tokens=specials, limit_alphabet=limit_alphabet, show_progress=False)
        tok.train_from_iterator(texts, tr)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return tok

    def unigram(v, train_texts=texts):
        # XLM-R style: <s>=0 <pad>=1 </s>=2 <unk>=3, Metaspace, <s> $A </s>
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        tr = trainers.UnigramTrainer(vocab_size=v, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False)
        tok.train_from_iterator(train_texts, tr)
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                           special_tokens=[("<s>", 0), ("</s>", 2)])
        return tok

    def bpe(v):
        # RoBERTa style byte-level BPE
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=v, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, tr)
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
        return tok

    out["wordpiece"] = wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], vocab)
    out["unigram"] = unigram(vocab)
    out["bpe"] = bpe(vocab)
    # small vocabularies for the models (embedding tables stay small)
    out["wordpiece-small"] = wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], 1200)
    # klue/roberta-base style: BertTokenizer vocabulary with [CLS]=0 [PAD]=1 [SEP]=2 [UNK]=3
    out["wordpiece-roberta-small"] = wordpiece(["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"], 1200)
    out["unigram-small"] = unigram(3000)
    # tiny vocabularies for the full architecture x format x tokenizer matrix (one per kind, shared by every
    # architecture; pad id 1 in all three so every architecture can use them):
    # WordPiece klue/roberta layout [CLS]=0 [PAD]=1 [SEP]=2 [UNK]=3 [MASK]=4, 250 most frequent characters
    out["wordpiece-tiny"] = wordpiece(["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"], 700, limit_alphabet=250)
    # Unigram must hold every character it saw: train on the sentences written with the 350 most frequent
    # (NFKC) characters only; other characters become <unk> when encoding
    import unicodedata
    counts = {}
    for t in texts:
        for ch in unicodedata.normalize("NFKC", t):
            counts[ch] = counts.get(ch, 0) + 1
    keep = set(ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:350])
    out["unigram-tiny"] = unigram(700, [t for t in texts if set(unicodedata.normalize("NFKC", t)) <= keep])
    out["bpe-tiny"] = bpe(600)
    return out


# Where the trained tokenizers live in the committed fixtures (relative to the arch fixture folder). Training
# with `tokenizers` is not reproducible across processes (Rust HashMap order decides the WordPiece alphabet order
# and ties; Unigram scores differ in the last bits), so the script trains them only with --retrain-tokenizers and
# otherwise reads these files back: everything else is then byte-identical (--check).
TOKENIZER_FILES = {
    "wordpiece": "tokenizers/wordpiece.json.gz",
    "unigram": "tokenizers/unigram.json.gz",
    "bpe": "tokenizers/bpe.json.gz",
    "wordpiece-small": "models/bert-wordpiece-st/tokenizer.json",
    "wordpiece-roberta-small": "models/roberta-wordpiece-bin/tokenizer.json",
    "unigram-small": "models/xlmr-unigram-st/tokenizer.json",
    "wordpiece-tiny": "tokenizers/wordpiece-tiny.json.gz",
    "unigram-tiny": "tokenizers/unigram-tiny.json.gz",
    "bpe-tiny": "tokenizers/bpe-tiny.json.gz",
}


def load_tokenizers(src):
    from tokenizers import Tokenizer

    out = {}
    for kind, rel in TOKENIZER_FILES.items():
        path = os.path.join(src, rel)
        if not os.path.exists(path):
            continue
        if rel.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
            out[kind] = Tokenizer.from_str(text)
            # written back as read: serde_json's float parsing is not exact, so to_str() of a loaded Unigram
            # differs in the last digit of some scores from the file it came from
            out[kind].source_json = json.loads(text)
        else:
            out[kind] = Tokenizer.from_file(path)
        out[kind].no_truncation()
        out[kind].no_padding()
    return out


def ids_hash(ids):
    return hashlib.md5(",".join(str(i) for i in ids).encode()).hexdigest()[:4]


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "LayerNorm" in name or "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(torch.rand(p.shape, generator=g) * 0.2 + 0.9)
                else:
                    p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def hf_tokenizer(tok, kind, max_len):
    from transformers import PreTrainedTokenizerFast

    if kind.startswith("wordpiece"):
        sp = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    else:
        sp = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", pad_token="<pad>", cls_token="<s>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_len, **sp)


def pad_id(tok):
    for t in ("[PAD]", "<pad>"):
        i = tok.token_to_id(t)
        if i is not None:
            return i
    raise ValueError("no pad token")


def build_model(name, spec, toks, out_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel

    tok = toks[spec["tokenizer"]]
    V = tok.get_vocab_size()
    arch = spec["arch"]
    H, L, I = spec.get("hidden", 16), spec.get("layers", 2), spec.get("intermediate", 32)
    NH = spec.get("heads", 4)
    common = dict(vocab_size=V)
    if arch == "bert":
        cfg = BertConfig(hidden_size=H, num_hidden_layers=L, num_attention_heads=NH, intermediate_size=I,
                         max_position_embeddings=spec.get("max_position", 128), type_vocab_size=2, pad_token_id=pad_id(tok), **common)
        model = BertModel(cfg, add_pooling_layer=True)
    elif arch in ("roberta", "xlm-roberta"):
        C, M = (RobertaConfig, RobertaModel) if arch == "roberta" else (XLMRobertaConfig, XLMRobertaModel)
        assert pad_id(tok) == 1
        cfg = C(hidden_size=H, num_hidden_layers=L, num_attention_heads=NH, intermediate_size=I,
                max_position_embeddings=spec.get("max_position", 66 + 2),
                type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **common)
        model = M(cfg, add_pooling_layer=True)
    elif arch == "distilbert":
        cfg = DistilBertConfig(dim=H, n_layers=L, n_heads=NH, hidden_dim=I, max_position_embeddings=spec.get("max_position", 128),
                               pad_token_id=pad_id(tok), **common)
        model = DistilBertModel(cfg)
    else:
        raise ValueError(arch)
    init_weights(model, SEED + spec["seed"])
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        hf_tokenizer(tok, spec["tokenizer"], 512).save_pretrained(tmp)
        tr = Transformer(tmp, max_seq_length=spec["max_seq_length"])
        modules = [tr, Pooling(H, pooling_mode=spec["pooling"])]
        dim = H * (len(spec["pooling"]) if isinstance(spec["pooling"], (list, tuple)) else 1)
        if spec.get("dense"):
            torch.manual_seed(SEED + spec["seed"] + 7)
            d = Dense(dim, spec.get("dense_out", 16), bias=True, activation_function=torch.nn.Tanh())
            with torch.no_grad():
                d.linear.weight.normal_(0, 0.3)
                d.linear.bias.normal_(0, 0.1)
            modules.append(d)
        if spec.get("normalize"):
            modules.append(Normalize())
        st = SentenceTransformer(modules=modules, device="cpu")
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        st.save(out_dir)
        os.remove(os.path.join(out_dir, "README.md"))
    # Weight format as the Hub repos have it: .bin written the way transformers 4 save_pretrained(
    # safe_serialization=False) did — torch.save(state_dict) (zip format) — and the safetensors removed.
    # legacy_position_ids: transformers < 4.31 also saved the persistent buffer `embeddings.position_ids`
    # (int64, torch.arange(max_pos).expand((1, -1)): size (1, P), stride (0, 1)) first among the embedding
    # keys, as the jhgan/ko-sbert-* and ko-sroberta-* files have it; the model must ignore it.
    if spec["format"] == "bin":
        for sub, _dirs, files in os.walk(out_dir):
            if "model.safetensors" in files:
                from safetensors.torch import load_file
                sd = load_file(os.path.join(sub, "model.safetensors"))
                if spec.get("legacy_position_ids") and sub == out_dir:
                    P = model.config.max_position_embeddings
                    legacy = {"embeddings.position_ids": torch.arange(P).expand((1, -1))}
                    legacy.update(sd)
                    sd = legacy
                torch.save(sd, os.path.join(sub, "pytorch_model.bin"))
                os.remove(os.path.join(sub, "model.safetensors"))
    return SentenceTransformer(out_dir, device="cpu")


ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert")
FORMATS = ("safetensors", "bin")
TOKENIZER_KINDS = ("wordpiece", "unigram", "bpe")
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
ARCH_SHORT = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "xlmr", "distilbert": "distilbert"}


def kind_of(tokenizer):
    return tokenizer.split("-")[0]


MODELS = {
    # name: architecture, tokenizer, weight format, pooling, max_seq_length
    "bert-wordpiece-st": dict(arch="bert", tokenizer="wordpiece-small", format="safetensors", pooling="mean", max_seq_length=64, seed=1),
    "bert-wordpiece-bin": dict(arch="bert", tokenizer="wordpiece-small", format="bin", pooling="mean", max_seq_length=64, seed=1),
    "roberta-wordpiece-bin": dict(arch="roberta", tokenizer="wordpiece-roberta-small", format="bin", pooling="mean", max_seq_length=64, seed=2),
    "xlmr-unigram-st": dict(arch="xlm-roberta", tokenizer="unigram-small", format="safetensors", pooling=["cls", "weightedmean", "lasttoken"],
                            max_seq_length=48, seed=3),
    "distilbert-dense-bin": dict(arch="distilbert", tokenizer="wordpiece-small", format="bin", pooling=["mean", "max", "mean_sqrt_len_tokens"],
                                 max_seq_length=64, seed=4, dense=True, normalize=True),
}

# The rest of the architecture x weight format x tokenizer kind matrix: tiny models (H=16, 1-2 layers, I=32,
# 600-700 vocabulary, one tokenizer per kind shared by all architectures). Every pooling mode appears alone and in combinations.
_TINY = [
    # (arch, kind, format, pooling, extras)
    ("bert", "unigram", "safetensors", "cls", {}),
    ("bert", "unigram", "bin", "max", {"legacy_position_ids": True}),
    ("bert", "bpe", "safetensors", "mean_sqrt_len_tokens", {}),
    ("bert", "bpe", "bin", "weightedmean", {"legacy_position_ids": True}),
    ("roberta", "wordpiece", "safetensors", "lasttoken", {}),
    ("roberta", "unigram", "safetensors", "mean", {}),
    ("roberta", "unigram", "bin", ["max", "cls"], {"legacy_position_ids": True}),
    ("roberta", "bpe", "safetensors", "weightedmean", {"normalize": True}),
    ("roberta", "bpe", "bin", "cls", {"legacy_position_ids": True}),
    ("xlm-roberta", "wordpiece", "safetensors", "max", {}),
    ("xlm-roberta", "wordpiece", "bin", "mean_sqrt_len_tokens", {}),
    ("xlm-roberta", "unigram", "bin", "lasttoken", {"legacy_position_ids": True}),
    ("xlm-roberta", "bpe", "safetensors", ["mean", "lasttoken"], {}),
    ("xlm-roberta", "bpe", "bin", "mean", {"dense": True, "normalize": True, "legacy_position_ids": True}),
    ("distilbert", "wordpiece", "safetensors", ["mean_sqrt_len_tokens", "weightedmean"], {}),
    ("distilbert", "unigram", "safetensors", "mean", {"dense": True, "dense_out": 12}),
    ("distilbert", "unigram", "bin", "cls", {"legacy_position_ids": True}),
    ("distilbert", "bpe", "safetensors", "max", {}),
    ("distilbert", "bpe", "bin", "weightedmean", {"normalize": True}),
]
for _i, (_arch, _kind, _fmt, _pool, _extra) in enumerate(_TINY):
    _name = f"{ARCH_SHORT[_arch]}-{_kind}-{'st' if _fmt == 'safetensors' else 'bin'}"
    assert _name not in MODELS, _name
    _msl = (64, 32, 48)[_i % 3]
    _pos = _msl + 2 if _arch in ("roberta", "xlm-roberta") else _msl
    MODELS[_name] = dict(arch=_arch, tokenizer=f"{_kind}-tiny", format=_fmt, pooling=_pool, max_seq_length=_msl, seed=10 + _i,
                         layers=1 + _i % 2, max_position=_pos, **_extra)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_entry(name, spec, folder, st, dim, toks):
    files = {}
    for sub, dirs, names in os.walk(folder):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(sub, n)
            rel = os.path.relpath(p, folder).replace(os.sep, "/")
            files[rel] = {"bytes": os.path.getsize(p), "sha256": sha256(p)}
    cfg = st[0].auto_model.config
    pooling = spec["pooling"] if isinstance(spec["pooling"], (list, tuple)) else [spec["pooling"]]
    return {
        "name": name, "arch": spec["arch"], "modelType": cfg.model_type, "format": spec["format"],
        "tokenizer": kind_of(spec["tokenizer"]), "tokenizerVocab": spec["tokenizer"], "vocabSize": toks[spec["tokenizer"]].get_vocab_size(),
        "hidden": spec.get("hidden", 16), "layers": spec.get("layers", 2), "heads": spec.get("heads", 4),
        "intermediate": spec.get("intermediate", 32), "maxSeqLength": spec["max_seq_length"], "pooling": list(pooling),
        "dense": bool(spec.get("dense")), "normalize": bool(spec.get("normalize")),
        "legacyPositionIds": bool(spec.get("legacy_position_ids")), "dim": dim,
        "bytes": sum(f["bytes"] for f in files.values()), "files": files,
    }


def tok_json(t):
    return getattr(t, "source_json", None) or json.loads(t.to_str())


def generate(out, tokenizers_from, retrain):
    import sentence_transformers
    import tokenizers
    import transformers

    os.makedirs(os.path.join(out, "tokenizers"), exist_ok=True)
    texts = kornlu_texts()
    assert len(texts) == 25406, len(texts)
    toks = {} if retrain else load_tokenizers(tokenizers_from)
    missing = [k for k in TOKENIZER_FILES if k not in toks]
    if missing:
        print(f"training the tokenizers {missing} (results differ from run to run; see TOKENIZER_FILES)", file=sys.stderr)
        trained = train_tokenizers(texts, 8000)
        for k in missing:
            toks[k] = trained[k]

    hashes = {}
    for kind in ("wordpiece", "unigram", "bpe"):
        t = toks[kind]
        write_gz_json(os.path.join(out, "tokenizers", f"{kind}.json.gz"), tok_json(t))
        encs = t.encode_batch(texts, add_special_tokens=True)
        hashes[kind] = "".join(ids_hash(e.ids) for e in encs)
    for kind in ("wordpiece-tiny", "unigram-tiny", "bpe-tiny"):
        write_gz_json(os.path.join(out, TOKENIZER_FILES[kind]), tok_json(toks[kind]))
    write_gz_json(os.path.join(out, "token-hashes.json.gz"), {
        "format": 1, "count": len(texts), "hash": "md5(ids joined by ',')[:4] per sentence, concatenated", "hashes": hashes,
        "versions": {"tokenizers": tokenizers.__version__}})

    # sentences: the first 120 texts, texts chosen for edge cases, one long text (truncation)
    sents = texts[:120] + ["", " ", "ABC abc Ábc", "한국어 모델을 공유합니다.", "中文 漢字 テスト", "a" * 150,
                           " ".join(texts[200:230])]
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "sentence_transformers": sentence_transformers.__version__, "tokenizers": tokenizers.__version__}
    result = {"format": 1, "versions": versions, "sentences": sents, "models": {}}
    manifest = {"format": 1, "seed": SEED, "versions": versions, "tolerance": {"maxAbs": 1e-4, "minCos": 0.99999},
                "matrix": {"arch": list(ARCHS), "format": list(FORMATS), "tokenizer": list(TOKENIZER_KINDS), "pooling": list(POOLING_MODES)},
                "sentences": len(sents), "models": []}
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for name, spec in MODELS.items():
        folder = os.path.join(out, "models", name)
        st = build_model(name, spec, toks, folder)
        emb = st.encode(sents, batch_size=16, convert_to_numpy=True)
        feats = st.tokenize(sents)
        ids = [[int(i) for i, m in zip(row, mask) if m] for row, mask in zip(feats["input_ids"].tolist(), feats["attention_mask"].tolist())]
        result["models"][name] = {"spec": spec, "dim": int(emb.shape[1]), "tokenIds": ids, "embeddings": [f32list(r) for r in emb]}
        manifest["models"].append(manifest_entry(name, spec, folder, st, int(emb.shape[1]), toks))
        print(name, emb.shape, file=sys.stderr)
    write_gz_json(os.path.join(out, "embeddings.json.gz"), result)

    # coverage of the matrix and of the pooling modes
    cells = {(m["arch"], m["format"], m["tokenizer"]) for m in manifest["models"]}
    missing = [c for c in ((a, f, k) for a in ARCHS for f in FORMATS for k in TOKENIZER_KINDS) if c not in cells]
    assert not missing, missing
    modes = {p for m in manifest["models"] for p in m["pooling"]}
    assert modes == set(POOLING_MODES), modes
    other = ["embeddings.json.gz", "token-hashes.json.gz"] + [f"tokenizers/{k}.json.gz" for k in TOKENIZER_KINDS] + \
        [TOKENIZER_FILES[f"{k}-tiny"] for k in TOKENIZER_KINDS]
    manifest["otherFiles"] = {rel: {"bytes": os.path.getsize(os.path.join(out, rel)), "sha256": sha256(os.path.join(out, rel))} for rel in other}
    manifest["totalBytes"] = sum(m["bytes"] for m in manifest["models"]) + sum(f["bytes"] for f in manifest["otherFiles"].values())
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")


def compare_trees(a, b):
    """Relative paths whose bytes differ (or that exist on one side only)."""
    def files(root):
        out = set()
        for sub, _dirs, names in os.walk(root):
            for n in names:
                out.add(os.path.relpath(os.path.join(sub, n), root))
        return out
    fa, fb = files(a), files(b)
    bad = sorted(fa ^ fb)
    for rel in sorted(fa & fb):
        with open(os.path.join(a, rel), "rb") as x, open(os.path.join(b, rel), "rb") as y:
            if x.read() != y.read():
                bad.append(rel)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(FIX, "arch"))
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and byte-compare with --out")
    ap.add_argument("--retrain-tokenizers", action="store_true", help="train the tokenizers again instead of reading them from --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp, args.out, args.retrain_tokenizers)
            bad = compare_trees(tmp, args.out)
        if bad:
            print("differs from " + args.out + ":\n  " + "\n  ".join(bad), file=sys.stderr)
            sys.exit(1)
        print("byte-identical: " + args.out, file=sys.stderr)
        return
    generate(args.out, args.out, args.retrain_tokenizers)


if __name__ == "__main__":
    main()
