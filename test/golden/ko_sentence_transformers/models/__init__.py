"""ko_sentence_transformers.models.KoBertTransformer: the seed project's sentence-transformers input module (BertModel + KoBertTokenizer).

Saved folder layout (what ``save`` writes, what ``load`` reads):
  config.json, model.safetensors                     BertModel.save_pretrained
  tokenizer_78b3253a26.model, vocab.txt,
  tokenizer_config.json                              KoBertTokenizer.save_pretrained (+ whatever transformers adds)
  sentence_bert_config.json                          {"max_seq_length": ..., "do_lower_case": ...}

Loading with sentence-transformers 6: ``load`` takes exactly one parameter (the module's folder) and
``__init__`` has no ``model_kwargs``/``config_kwargs`` parameters, so ST 6 treats this as an "old-style"
module and calls ``KoBertTransformer.load(local_dir)``. ST 6 also requires ``trust_remote_code=True``
to import any module class outside the ``sentence_transformers.*`` namespace, even from a local folder.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn
from transformers import BertConfig, BertModel

from ..tokenization_kobert import KoBertTokenizer

__all__ = ["KoBertTransformer"]


class KoBertTransformer(nn.Module):
    config_file_name = "sentence_bert_config.json"

    def __init__(
        self,
        model_name_or_path: str | None = None,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
        *,
        bert_model: BertModel | None = None,
        tokenizer: KoBertTokenizer | None = None,
    ):
        super().__init__()
        self.config_keys = ["max_seq_length", "do_lower_case"]
        self.do_lower_case = do_lower_case
        if bert_model is None:
            bert_model = BertModel.from_pretrained(model_name_or_path, add_pooling_layer=True)
        if tokenizer is None:
            tokenizer = KoBertTokenizer.from_pretrained(model_name_or_path)
        self.auto_model = bert_model
        self.tokenizer = tokenizer
        if max_seq_length is None:
            max_seq_length = min(self.auto_model.config.max_position_embeddings, 512)
        self.max_seq_length = max_seq_length

    def __repr__(self):
        return f"KoBertTransformer({self.get_config_dict()}) with Transformer model: {type(self.auto_model).__name__}"

    def get_config_dict(self):
        return {key: self.__dict__[key] for key in self.config_keys}

    def forward(self, features, **kwargs):
        trans_features = {"input_ids": features["input_ids"], "attention_mask": features["attention_mask"]}
        if "token_type_ids" in features:
            trans_features["token_type_ids"] = features["token_type_ids"]
        output = self.auto_model(**trans_features, return_dict=True)
        features.update({"token_embeddings": output.last_hidden_state, "attention_mask": features["attention_mask"]})
        if output.hidden_states is not None:
            features["all_layer_embeddings"] = output.hidden_states
        return features

    def get_word_embedding_dimension(self) -> int:
        return self.auto_model.config.hidden_size

    def tokenize(self, texts):
        texts = [str(t).strip() for t in texts]
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        return self.tokenizer(
            texts,
            padding=True,
            truncation="longest_first",
            return_tensors="pt",
            max_length=self.max_seq_length,
        )

    def save(self, output_path: str, safe_serialization: bool = True, **kwargs):
        os.makedirs(output_path, exist_ok=True)
        self.auto_model.save_pretrained(output_path, safe_serialization=safe_serialization)
        self.tokenizer.save_pretrained(output_path)
        with open(os.path.join(output_path, self.config_file_name), "w", encoding="utf-8") as f:
            json.dump(self.get_config_dict(), f, indent=2)

    @staticmethod
    def load(input_path: str):
        with open(os.path.join(input_path, KoBertTransformer.config_file_name), encoding="utf-8") as f:
            config = json.load(f)
        return KoBertTransformer(model_name_or_path=input_path, **config)
