"""KoBertTokenizer: a slow (pure Python) tokenizer with monologg/KoBERT-Transformers semantics.

Two files: a SentencePiece model (``tokenizer_78b3253a26.model``) that cuts text into pieces, and
``vocab.txt`` (line number = id) that maps pieces to ids. SentencePiece's own ids are never used.
Everything else (splitting on special tokens, truncation, padding) is left to transformers'
``PreTrainedTokenizer`` machinery, because that is what the reference does.
"""
from __future__ import annotations

import os
import shutil
import unicodedata

import sentencepiece as spm
from transformers import PreTrainedTokenizer

VOCAB_FILES_NAMES = {
    "vocab_file": "tokenizer_78b3253a26.model",
    "vocab_txt": "vocab.txt",
}

SPIECE_UNDERLINE = "\u2581"  # "▁"


def _read_vocab_txt(path: str) -> dict[str, int]:
    token2idx: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for idx, line in enumerate(f):
            token = line.rstrip("\n")
            # Later duplicates (if any) must not shadow the first id; KoBERT's vocab has none.
            token2idx.setdefault(token, idx)
    return token2idx


class KoBertTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file,
        vocab_txt,
        do_lower_case=False,
        remove_space=True,
        keep_accents=False,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        **kwargs,
    ):
        # The vocabulary must exist before the base __init__ runs: it queries get_vocab().
        self.vocab_file = vocab_file
        self.vocab_txt = vocab_txt
        self.do_lower_case = do_lower_case
        self.remove_space = remove_space
        self.keep_accents = keep_accents
        self.token2idx = _read_vocab_txt(vocab_txt)
        self.idx2token = {i: t for t, i in self.token2idx.items()}
        self.sp_model = spm.SentencePieceProcessor()
        self.sp_model.Load(vocab_file)

        super().__init__(
            do_lower_case=do_lower_case,
            remove_space=remove_space,
            keep_accents=keep_accents,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            token_type_ids_pattern="all_zeros",
            special_tokens_pattern="cls_sep",
            **kwargs,
        )

    # -- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.token2idx)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.token2idx)
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _convert_token_to_id(self, token: str) -> int:
        return self.token2idx.get(token, self.token2idx[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        return self.idx2token.get(index, str(self.unk_token))

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens).replace(SPIECE_UNDERLINE, " ").strip()

    # -- pickling (SentencePieceProcessor is not picklable) -------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["sp_model"] = None
        return state

    def __setstate__(self, d):
        self.__dict__ = d
        self.sp_model = spm.SentencePieceProcessor()
        self.sp_model.Load(self.vocab_file)

    # -- text -> pieces -----------------------------------------------------------------------
    def preprocess_text(self, inputs: str) -> str:
        if self.remove_space:
            outputs = " ".join(inputs.strip().split())
        else:
            outputs = inputs
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
                # "1,000" style pieces: re-encode the part before the comma on its own.
                cur_pieces = self.sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
                if piece[0] != SPIECE_UNDERLINE and cur_pieces[0][0] == SPIECE_UNDERLINE:
                    if len(cur_pieces[0]) == 1:
                        cur_pieces = cur_pieces[1:]
                    else:
                        cur_pieces[0] = cur_pieces[0][1:]
                cur_pieces.append(piece[-1])
                new_pieces.extend(cur_pieces)
            else:
                new_pieces.append(piece)
        return new_pieces

    # -- special tokens (explicit, not relying on the pattern defaults) ------------------------
    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        cls = [self.cls_token_id]
        sep = [self.sep_token_id]
        if token_ids_1 is None:
            return cls + token_ids_0 + sep
        return cls + token_ids_0 + sep + token_ids_1 + sep

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            specials = set(self.all_special_ids)
            ids = token_ids_0 if token_ids_1 is None else token_ids_0 + token_ids_1
            return [1 if i in specials else 0 for i in ids]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        n = len(token_ids_0) + 2
        if token_ids_1 is not None:
            n += len(token_ids_1) + 1
        return [0] * n

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path ({save_directory}) should be a directory")
        prefix = (filename_prefix + "-") if filename_prefix else ""
        out_model = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])
        out_txt = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_txt"])
        if os.path.abspath(self.vocab_file) != os.path.abspath(out_model):
            shutil.copyfile(self.vocab_file, out_model)
        if os.path.abspath(self.vocab_txt) != os.path.abspath(out_txt):
            shutil.copyfile(self.vocab_txt, out_txt)
        return out_model, out_txt
