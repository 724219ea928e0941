#!/usr/bin/env python3
"""Reference fixtures for skt/kobert-base-v1 style `spiece.model` tokenizers (XLNet text rules, SentencePiece ids).

skt/kobert-base-v1 itself cannot be downloaded here, so this script makes a faithful stand-in and the expected
ids for it:

1. Trains a small SentencePiece unigram model (vocab 3000, nmt_nfkc, seeded, one thread) on the 25,406 distinct
   KorNLU sentences, then lays its pieces out the way skt's `spiece.model` does: 8002 pieces in skt's file,
   ids 0..4 = [UNK] [PAD] [CLS] [SEP] [MASK], then the NORMAL pieces in Python string order (skt's ids are the
   gluonnlp vocabulary order, which is sorted; its known answer "한국어 모델을 공유합니다." ->
   [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3] equals the monologg vocab.txt ids). [UNK] is the UNKNOWN piece.
   SKTBrain/KoBERT issue #11 shows skt's model splitting "[CLS] 감사합니다. [SEP]" into
   ['▁', '[CLS]', '▁감사', ...], i.e. [CLS]/[SEP] are USER_DEFINED pieces there; the other way to declare them
   (CONTROL) is written too:
     test/fixtures/spiece/spiece.model          [PAD] [CLS] [SEP] [MASK] USER_DEFINED
     test/fixtures/spiece/control/spiece.model  the same model with those four pieces CONTROL
   For text given to the tokenizer the two differ only where a special token appears in the text *after*
   NFKD (e.g. "[ＣＬＳ]": transformers' literal split does not see it, NFKD makes "[CLS]", and SentencePiece
   then matches the USER_DEFINED piece but not the CONTROL one).

2. The reference tokenizer: SKT's `KoBERTTokenizer` is a subclass of transformers' *slow* `XLNetTokenizer`
   (transformers 4.x: SentencePiece processor, `preprocess_text` + `_tokenize` with the digit-comma rule,
   `_convert_token_to_id` = `sp_model.PieceToId`) with do_lower_case False, remove_space True,
   keep_accents False, special tokens [CLS] [SEP] [UNK] [PAD] [MASK] (mask lstrip=True), no additional special
   tokens, padding right, and `build_inputs_with_special_tokens` / token types overridden to BERT's
   `[CLS] X [SEP]`, all 0.
   transformers 5.18 no longer has the slow XLNetTokenizer: `XLNetTokenizer` is the tokenizers-backed (fast)
   class (WhitespaceSplit + Metaspace + float64 Unigram, no digit-comma rule), which is not what SKT's class
   inherits. So the slow XLNet rules are written here (`SlowXLNetTokenizer`) on top of transformers 5's
   `SentencePieceBackend` (the slow PreTrainedTokenizer that holds a `sentencepiece.SentencePieceProcessor`,
   splits on special tokens with its trie, maps tokens with `piece_to_id`), and `KoBERTTokenizer` subclasses it
   exactly as SKT's does. Ids are what sentence-transformers' Transformer module gets: text.strip(), then
   tokenizer([text], padding=True, truncation="longest_first", max_length=m).

Outputs (test/fixtures/spiece/):
   spiece.model, control/spiece.model, tokenizer_config.json (skt's settings, for the folder test)
   kornlu-ids.json.gz  {"format":1, "maxSeqLength":512, "sentences":[[text, ids], ...],
                        "controlDiffers":[[index, idsControl], ...]}
   edge.json           {"format":1, "versions", "cases":[{name, text, maxSeqLength, ids, idsControl, pieces,
                        piecesControl}], "sp":[{text, pieces, ids, piecesControl, idsControl}]}
                        ("sp": sentencepiece's own encode(text), no KoBERT rules, to test the processor)
   manifest.json       versions, seed, counts, sha256 of every file

Usage: python3 test/golden/make_golden_spiece.py [--data DIR] [--out DIR] [--check]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import sentencepiece as spm  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # noqa: E402
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend  # noqa: E402
from transformers.tokenization_utils_base import AddedToken  # noqa: E402

import make_golden as mg  # noqa: E402  (corpus reader, edge texts, JSON writer, versions)

SEED = 20240611
VOCAB_SIZE = 3000
SPECIALS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
SPIECE_UNDERLINE = "\u2581"
# Neither the real KoBERT model nor one trained here has a piece ending in digit + "," (sentencepiece splits numbers
# from punctuation when training), so XLNet's digit-comma rule would never fire. These NORMAL pieces are added to the
# trained model (score: the best split's score + 1, so that they win) to exercise it.
DIGIT_COMMA_PIECES = ["0,", "00,", "1,", "5,", "\u25811,", "\u25812,", "\u258112,"]


# ---------------------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------------------
def train_model(sentences: list[str]) -> bytes:
    spm.set_random_generator_seed(SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        model_type="unigram",
        vocab_size=VOCAB_SIZE - len(DIGIT_COMMA_PIECES),
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9995,
        unk_id=0,
        unk_piece="[UNK]",
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        user_defined_symbols=SPECIALS[1:],
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return buf.getvalue()


def skt_layout(raw: bytes, special_type: int) -> bytes:
    """ids 0..4 = the specials, then NORMAL pieces sorted (Python str order); specials of the given type."""
    m = sp_pb2.ModelProto()
    m.ParseFromString(raw)
    by_piece = {p.piece: p for p in m.pieces}
    assert all(s in by_piece for s in SPECIALS), "specials missing from the trained model"
    normal = [p for p in m.pieces if p.piece not in SPECIALS]
    for piece in DIGIT_COMMA_PIECES:
        assert piece not in by_piece and piece[:-1] in by_piece and "," in by_piece, piece
        extra = sp_pb2.ModelProto.SentencePiece()
        extra.piece = piece
        extra.score = by_piece[piece[:-1]].score + by_piece[","].score + 1.0
        extra.type = sp_pb2.ModelProto.SentencePiece.NORMAL
        normal.append(extra)
    normal.sort(key=lambda p: p.piece)
    assert all(p.type == sp_pb2.ModelProto.SentencePiece.NORMAL for p in normal)
    out = sp_pb2.ModelProto()
    out.CopyFrom(m)
    del out.pieces[:]
    for s in SPECIALS:
        p = out.pieces.add()
        p.piece = s
        p.score = 0.0
        p.type = sp_pb2.ModelProto.SentencePiece.UNKNOWN if s == "[UNK]" else special_type
    for q in normal:
        p = out.pieces.add()
        p.CopyFrom(q)
    ts = out.trainer_spec
    del ts.user_defined_symbols[:]
    del ts.control_symbols[:]
    target = ts.user_defined_symbols if special_type == sp_pb2.ModelProto.SentencePiece.USER_DEFINED else ts.control_symbols
    target.extend(SPECIALS[1:])
    ts.input[:] = []
    ts.model_prefix = ""
    return out.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------------------------------
# the reference tokenizer
# ---------------------------------------------------------------------------------------------------------------
class SlowXLNetTokenizer(SentencePieceBackend):
    """transformers 4.x's slow XLNetTokenizer text rules on transformers 5's slow SentencePiece base."""

    vocab_files_names = {"vocab_file": "spiece.model"}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    padding_side = "left"

    def __init__(self, vocab_file, do_lower_case=False, remove_space=True, keep_accents=False, **kwargs):
        self.do_lower_case = do_lower_case
        self.remove_space = remove_space
        self.keep_accents = keep_accents
        super().__init__(vocab_file=vocab_file, do_lower_case=do_lower_case, remove_space=remove_space,
                         keep_accents=keep_accents, **kwargs)

    def preprocess_text(self, inputs: str) -> str:
        outputs = " ".join(inputs.strip().split()) if self.remove_space else inputs
        outputs = outputs.replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            outputs = unicodedata.normalize("NFKD", outputs)
            outputs = "".join(c for c in outputs if not unicodedata.combining(c))
        if self.do_lower_case:
            outputs = outputs.lower()
        return outputs

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        text = self.preprocess_text(text)
        pieces = self.sp_model.encode(text, out_type=str)
        new_pieces: list[str] = []
        for piece in pieces:
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                cur = self.sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
                if piece[0] != SPIECE_UNDERLINE and cur[0][0] == SPIECE_UNDERLINE:
                    cur = cur[1:] if len(cur[0]) == 1 else [cur[0][1:]] + cur[1:]
                cur.append(piece[-1])
                new_pieces.extend(cur)
            else:
                new_pieces.append(piece)
        return new_pieces


class KoBERTTokenizer(SlowXLNetTokenizer):
    """SKT's kobert_tokenizer.KoBERTTokenizer: the XLNet tokenizer with KoBERT's specials and BERT layout."""

    padding_side = "right"

    def __init__(self, vocab_file, do_lower_case=False, remove_space=True, keep_accents=False,
                 bos_token="[CLS]", eos_token="[SEP]", unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                 cls_token="[CLS]", mask_token="[MASK]", additional_special_tokens=None, **kwargs):
        mask_token = AddedToken(mask_token, lstrip=True, rstrip=False) if isinstance(mask_token, str) else mask_token
        if additional_special_tokens is not None:
            kwargs["additional_special_tokens"] = additional_special_tokens
        super().__init__(vocab_file, do_lower_case=do_lower_case, remove_space=remove_space,
                         keep_accents=keep_accents, bos_token=bos_token, eos_token=eos_token, unk_token=unk_token,
                         sep_token=sep_token, pad_token=pad_token, cls_token=cls_token, mask_token=mask_token,
                         **kwargs)
        self._pad_token_type_id = 0

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + token_ids_0 + sep
        return cls + token_ids_0 + sep + token_ids_1 + sep

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        n = len(token_ids_0) + 2
        return [0] * n if token_ids_1 is None else [0] * n + [1] * (len(token_ids_1) + 1)


class Ref:
    def __init__(self, model_file: str):
        self.tok = KoBERTTokenizer(model_file)
        self.sp = self.tok.sp_model

    def ids(self, text: str, max_seq_length: int) -> list[int]:
        enc = self.tok([text.strip()], padding=True, truncation="longest_first", max_length=max_seq_length)
        return list(enc["input_ids"][0])

    def pieces(self, text: str) -> list[str]:
        return self.tok.tokenize(text.strip())


def sanity(ref: Ref) -> dict:
    tok = ref.tok
    assert [tok.unk_token_id, tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    enc = tok(["한국어 모델을 공유합니다."], padding=True)
    ids = enc["input_ids"][0]
    assert ids[0] == 2 and ids[-1] == 3, ids
    assert all(t == 0 for t in enc["token_type_ids"][0]), enc
    body = [ref.sp.piece_to_id(p) for p in tok.tokenize("한국어 모델을 공유합니다.")]
    assert ids == [2] + body + [3]
    # padding right, token type 0
    b = tok(["가", "한국어 모델을 공유합니다."], padding=True)
    assert b["input_ids"][0][-1] == 1 and b["attention_mask"][0][-1] == 0 and set(b["token_type_ids"][0]) == {0}
    # literal specials are split before SentencePiece, ids from the model
    assert 4 in tok(["a [MASK] b"])["input_ids"][0]
    return {"knownText": "한국어 모델을 공유합니다.", "knownIds": list(ids)}


# ---------------------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------------------
def extra_cases() -> list[tuple[str, str]]:
    return [
        ("literal_cls_sep", "[CLS] 감사합니다. [SEP]"),
        ("literal_all_specials", "[UNK][PAD][CLS][SEP][MASK]"),
        ("literal_specials_spaced", " [MASK] 는 [PAD] 와 [UNK] 입니다 "),
        ("fullwidth_specials", "안녕 [ＣＬＳ] 하세요 ［ＳＥＰ］ ［MASK］끝"),
        ("fullwidth_special_only", "[ＭＡＳＫ]"),
        ("fullwidth_special_glued", "가[ＰＡＤ]1,000원"),
        ("special_then_digit_comma", "[CLS]1,000원 [SEP]2,500"),
        ("xlnet_specials_not_split", "<eop> <eod> <s> </s> <unk> <cls> <sep>"),
        ("underline_literal", "\u2581가 \u2581\u2581 나\u2581"),
        ("digit_comma_fullwidth_digits", "１，０００원 ２,５００"),
        ("digit_comma_after_hangul", "원1,2 가3,"),
        ("accents_nfkd", "Ça va? Ñandú Å ǅ ﬁ"),
    ]


def sp_texts() -> list[str]:
    return [
        "[CLS] 감사합니다. [SEP]",
        "[CLS]",
        "  [CLS]  ",
        "a[MASK]b",
        "[CLS][CLS][SEP]",
        "[ＣＬＳ] 가",
        "[[CLS]]",
        "[CLS [SEP",
        "[UNK] 가",
        "감사[PAD]합니다",
        "ＡＢＣ[SEP]１２３",
        "\u3000[MASK]\u3000",
        "[MASK]😀😀",
        "😀[MASK]😀",
        "1,000[SEP]원",
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("KO_ST_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "spiece"))
    ap.add_argument("--check", action="store_true", help="regenerate in a temp dir and byte-compare with --out")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(args.data, tmp)
            bad = []
            for dirpath, _, files in os.walk(tmp):
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), tmp)
                    a, b = os.path.join(tmp, rel), os.path.join(args.out, rel)
                    if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
                        bad.append(rel)
            print("check:", "OK" if not bad else f"DIFFER: {bad}")
            return 1 if bad else 0
    generate(args.data, args.out)
    return 0


def write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def generate(data_dir: str, out: str) -> None:
    sentences, per_file = mg.load_kornlu(data_dir)
    assert len(sentences) == 25406, len(sentences)
    raw = train_model(sentences)
    ud = skt_layout(raw, sp_pb2.ModelProto.SentencePiece.USER_DEFINED)
    ctl = skt_layout(raw, sp_pb2.ModelProto.SentencePiece.CONTROL)
    main_file = os.path.join(out, "spiece.model")
    ctl_file = os.path.join(out, "control", "spiece.model")
    write_bytes(main_file, ud)
    write_bytes(ctl_file, ctl)
    cfg = {
        "do_lower_case": False, "remove_space": True, "keep_accents": False,
        "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]", "padding_side": "right", "model_max_length": 512,
        "tokenizer_class": "KoBERTTokenizer",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
        f.write("\n")

    ref = Ref(main_file)
    refc = Ref(ctl_file)
    facts = sanity(ref)
    assert ref.sp.get_piece_size() == VOCAB_SIZE

    # corpus
    rows, differs = [], []
    for i, s in enumerate(sentences):
        ids = ref.ids(s, 512)
        idc = refc.ids(s, 512)
        rows.append([s, ids])
        if idc != ids:
            differs.append([i, idc])
    payload = json.dumps({"format": 1, "maxSeqLength": 512, "sentences": rows, "controlDiffers": differs},
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    gz_path = os.path.join(out, "kornlu-ids.json.gz")
    with open(gz_path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as g:
            g.write(payload)

    # digit-comma statistics (to show the rule is exercised)
    dc = sum(1 for s in sentences if any(len(p) > 1 and p[-1] == "," and p[-2].isdigit()
                                          for p in ref.sp.encode(ref.tok.preprocess_text(s.strip()), out_type=str)))
    unk = sum(1 for _, ids in rows if 0 in ids[1:-1])

    # edge cases
    sts_test = per_file["KorSTS/sts-test.tsv"]
    long = mg.long_text(sts_test, ref, min_tokens=600)
    cases_in = mg.edge_cases(long)[:-1] + extra_cases() + [("long", long)]
    cases = []
    for name, text in cases_in:
        for m in ([512, 128] if name == "long" else [512]):
            cases.append({
                "name": name, "text": text, "maxSeqLength": m,
                "ids": ref.ids(text, m), "idsControl": refc.ids(text, m),
                "pieces": ref.pieces(text), "piecesControl": refc.pieces(text),
            })
    long_pieces = len(ref.pieces(long))
    assert long_pieces >= 600
    sp_rows = []
    for text in sp_texts() + [t for _, t in cases_in[:-1]]:
        sp_rows.append({
            "text": text,
            "pieces": ref.sp.encode(text, out_type=str), "ids": ref.sp.encode(text),
            "piecesControl": refc.sp.encode(text, out_type=str), "idsControl": refc.sp.encode(text),
        })
    mg.dump_json({"format": 1, "versions": mg.versions(), "cases": cases, "sp": sp_rows},
                 os.path.join(out, "edge.json"), compact=False)

    files = {}
    for dirpath, _, fs in os.walk(out):
        for f in sorted(fs):
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, out)
            if rel == "manifest.json":
                continue
            files[rel] = {"bytes": os.path.getsize(p), "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()}
    manifest = {
        "format": 1, "seed": SEED, "vocabSize": VOCAB_SIZE, "versions": mg.versions(),
        "reference": "KoBERTTokenizer(SlowXLNetTokenizer(transformers SentencePieceBackend)), see make_golden_spiece.py",
        "counts": {"sentences": len(rows), "controlDiffers": len(differs), "edgeCases": len(cases), "spTexts": len(sp_rows),
                   "digitCommaSentences": dc, "sentencesWithUnk": unk, "longPieces": long_pieces,
                   "edgeControlDiffers": sum(1 for c in cases if c["ids"] != c["idsControl"])},
        "facts": facts,
        "files": dict(sorted(files.items())),
    }
    mg.dump_json(manifest, os.path.join(out, "manifest.json"), compact=False)
    print(json.dumps(manifest["counts"]), {k: v["bytes"] for k, v in files.items()})


if __name__ == "__main__":
    sys.exit(main())
