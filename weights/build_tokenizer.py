"""Build a Hugging Face `tokenizer.json` equivalent to the KoBERT tokenizer.

KoBERT = SentencePiece unigram model (tokenizer_78b3253a26.model, nmt_nfkc normaliser) whose *pieces*
are mapped to ids through vocab.txt (line number = id). The fast tokenizer reproduces that as:

  normalizer   : Replace("``"->'"'), Replace("''"->'"'), NFKD, StripAccents   (KoBertTokenizer.preprocess_text)
                 NFC (Hangul syllables decomposed by NFKD are recomposed: HF's Precompiled maps per
                      grapheme, SentencePiece by longest trie match, and only the latter recomposes them)
                 Precompiled(charsmap of the .model)                           (SentencePiece nmt_nfkc)
                 Replace(" {2,}" -> " "), Strip                                 (remove_extra_whitespaces)
  pre-tokenizer: Metaspace("▁", prepend_scheme="always")                      (add_dummy_prefix + escape_whitespaces)
  model        : Unigram, vocabulary in vocab.txt order (id = line number), piece scores from the .model,
                 [UNK]=0 as the unknown token
  post-process : [CLS] $A [SEP]  /  [CLS] $A [SEP] $B [SEP]   (token_type_ids all 0, like KoBertTokenizer)

Usage: python weights/build_tokenizer.py OUT_DIR [--kobert ../shared/data/kobert]
Writes OUT_DIR/tokenizer.json, tokenizer_config.json, special_tokens_map.json and copies the .model and
vocab.txt next to them (the Node package tokenizes with those two files).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIALS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
SP_MODEL = "tokenizer_78b3253a26.model"


def build(kobert_dir: str) -> Tokenizer:
    proto = sp_pb2.ModelProto()
    with open(os.path.join(kobert_dir, SP_MODEL), "rb") as f:
        proto.ParseFromString(f.read())
    assert proto.trainer_spec.model_type == 1, "expected a unigram SentencePiece model"
    scores = {p.piece: p.score for p in proto.pieces if p.type == 1}  # NORMAL pieces only
    with open(os.path.join(kobert_dir, "vocab.txt"), encoding="utf-8") as f:
        vocab_txt = [line.rstrip("\n") for line in f]
    assert vocab_txt[:5] == SPECIALS, vocab_txt[:5]
    missing = [t for t in vocab_txt[5:] if t not in scores]
    assert not missing, f"vocab.txt tokens absent from the .model: {missing[:10]}"
    vocab = [(t, 0.0) for t in SPECIALS] + [(t, scores[t]) for t in vocab_txt[5:]]

    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace("``", '"'),
        normalizers.Replace("''", '"'),
        normalizers.NFKD(),
        normalizers.StripAccents(),
        normalizers.NFC(),  # recompose Hangul syllables (HF's Precompiled works per grapheme, SentencePiece by trie)
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Strip(),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    return tok


def save(out_dir: str, kobert_dir: str, model_max_length: int = 128) -> None:
    os.makedirs(out_dir, exist_ok=True)
    tok = build(kobert_dir)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    specials = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                "mask_token": "[MASK]"}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
           "do_lower_case": False, "clean_up_tokenization_spaces": False,
           "model_input_names": ["input_ids", "token_type_ids", "attention_mask"], **specials}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(specials, f, ensure_ascii=False, indent=2)
    for name in (SP_MODEL, "vocab.txt"):
        shutil.copyfile(os.path.join(kobert_dir, name), os.path.join(out_dir, name))


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--kobert", default=os.path.join(here, "..", "..", "shared", "data", "kobert"))
    ap.add_argument("--model-max-length", type=int, default=128)
    a = ap.parse_args()
    save(a.out_dir, a.kobert, a.model_max_length)
    print("wrote", a.out_dir)
