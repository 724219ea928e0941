#!/usr/bin/env python3
"""Reference fixtures for the non-KoBERT architectures, weight formats and tokenizer.json kinds.

Writes test/fixtures/arch/ (see test/golden/README.md, "make_golden_arch.py"):
  tokenizers/{wordpiece,unigram,bpe}.json.gz   tokenizers trained here on the KorNLU text (8,000 pieces),
                                               the real klue / XLM-R vocabularies cannot be downloaded here
  token-hashes.json.gz                         per-sentence md5 prefixes of Python `tokenizers` ids on the
                                               25,406 KorNLU sentences (texts from kornlu-token-ids.json.gz)
  models/<name>/                               random-weight sentence-transformers folders in the Hub layout
  embeddings.json.gz                           sentence-transformers embeddings of every model on the same texts

Deterministic (fixed seeds, 1 torch thread, gzip mtime 0).
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
    def wordpiece(specials, v):
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tr = trainers.WordPieceTrainer(vocab_size=v, special_tokens=specials, limit_alphabet=3000, show_progress=False)
        tok.train_from_iterator(texts, tr)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return tok

    def unigram(v):
        # XLM-R style: <s>=0 <pad>=1 </s>=2 <unk>=3, Metaspace, <s> $A </s>
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        tr = trainers.UnigramTrainer(vocab_size=v, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False)
        tok.train_from_iterator(texts, tr)
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


def build_model(name, spec, toks, out_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel

    tok = toks[spec["tokenizer"]]
    V = tok.get_vocab_size()
    arch = spec["arch"]
    common = dict(vocab_size=V)
    if arch == "bert":
        cfg = BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32, max_position_embeddings=128,
                         type_vocab_size=2, pad_token_id=0, **common)
        model = BertModel(cfg, add_pooling_layer=True)
    elif arch in ("roberta", "xlm-roberta"):
        C, M = (RobertaConfig, RobertaModel) if arch == "roberta" else (XLMRobertaConfig, XLMRobertaModel)
        cfg = C(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32, max_position_embeddings=66 + 2,
                type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **common)
        model = M(cfg, add_pooling_layer=True)
    elif arch == "distilbert":
        cfg = DistilBertConfig(dim=16, n_layers=2, n_heads=4, hidden_dim=32, max_position_embeddings=128, pad_token_id=0, **common)
        model = DistilBertModel(cfg)
    else:
        raise ValueError(arch)
    init_weights(model, SEED + spec["seed"])
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        hf_tokenizer(tok, spec["tokenizer"], 512).save_pretrained(tmp)
        tr = Transformer(tmp, max_seq_length=spec["max_seq_length"])
        modules = [tr, Pooling(16, pooling_mode=spec["pooling"])]
        dim = 16 * (len(spec["pooling"]) if isinstance(spec["pooling"], (list, tuple)) else 1)
        if spec.get("dense"):
            torch.manual_seed(SEED + spec["seed"] + 7)
            d = Dense(dim, 16, bias=True, activation_function=torch.nn.Tanh())
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
    if spec["format"] == "bin":
        for sub, _dirs, files in os.walk(out_dir):
            if "model.safetensors" in files:
                from safetensors.torch import load_file
                sd = load_file(os.path.join(sub, "model.safetensors"))
                torch.save(sd, os.path.join(sub, "pytorch_model.bin"))
                os.remove(os.path.join(sub, "model.safetensors"))
    return SentenceTransformer(out_dir, device="cpu")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(FIX, "arch"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    import sentence_transformers
    import tokenizers
    import transformers

    out = args.out
    os.makedirs(os.path.join(out, "tokenizers"), exist_ok=True)
    texts = kornlu_texts()
    assert len(texts) == 25406, len(texts)
    toks = train_tokenizers(texts, 8000)

    hashes = {}
    for kind in ("wordpiece", "unigram", "bpe"):
        t = toks[kind]
        write_gz_json(os.path.join(out, "tokenizers", f"{kind}.json.gz"), json.loads(t.to_str()))
        encs = t.encode_batch(texts, add_special_tokens=True)
        hashes[kind] = "".join(ids_hash(e.ids) for e in encs)
    write_gz_json(os.path.join(out, "token-hashes.json.gz"), {
        "format": 1, "count": len(texts), "hash": "md5(ids joined by ',')[:4] per sentence, concatenated", "hashes": hashes,
        "versions": {"tokenizers": tokenizers.__version__}})

    # sentences: the first 120 texts, texts chosen for edge cases, one long text (truncation)
    sents = texts[:120] + ["", " ", "ABC abc Ábc", "한국어 모델을 공유합니다.", "中文 漢字 テスト", "a" * 150,
                           " ".join(texts[200:230])]
    result = {"format": 1, "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                        "sentence_transformers": sentence_transformers.__version__, "tokenizers": tokenizers.__version__},
              "sentences": sents, "models": {}}
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for name, spec in MODELS.items():
        st = build_model(name, spec, toks, os.path.join(out, "models", name))
        emb = st.encode(sents, batch_size=16, convert_to_numpy=True)
        feats = st.tokenize(sents)
        ids = [[int(i) for i, m in zip(row, mask) if m] for row, mask in zip(feats["input_ids"].tolist(), feats["attention_mask"].tolist())]
        result["models"][name] = {"spec": spec, "dim": int(emb.shape[1]), "tokenIds": ids, "embeddings": [f32list(r) for r in emb]}
        print(name, emb.shape, file=sys.stderr)
    write_gz_json(os.path.join(out, "embeddings.json.gz"), result)


if __name__ == "__main__":
    main()
