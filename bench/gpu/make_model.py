#!/usr/bin/env python3
"""Random-weight KoBERT-shaped model for bench/gpu.sh (no downloads: the weights are random, the shapes real).

Writes into --out:
  config.json, model.safetensors   a Hugging Face BertModel (save_pretrained, F32)
  kst_manifest.tsv                 config + tensor spans for bench/gpu/kst_gpu_bench (no JSON parser in C++)
  ids.bin                          KorSTS-test token ids (int32 count, then per sentence int32 length + ids),
                                   truncated to --max-seq-length like sentence-transformers
Initialisation (so a 12-layer model does not collapse, as in test/golden/make_golden.py --base): Linear weights
N(0, 0.2·sqrt(64/fan_in)), ×0.25 for the residual-branch projections; biases N(0, 0.1); LayerNorm weight
U(0.9, 1.1), bias U(-0.1, 0.1); embeddings N(0, 0.2).
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--vocab", type=int, default=8002)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N sentences (dry runs)")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(a.seed)
    cfg = BertConfig(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                     num_attention_heads=a.heads, intermediate_size=a.intermediate, max_position_embeddings=512,
                     type_vocab_size=2, pad_token_id=1, layer_norm_eps=1e-12, hidden_act="gelu")
    model = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                if name.endswith("weight"):
                    p.uniform_(0.9, 1.1)
                else:
                    p.uniform_(-0.1, 0.1)
            elif "embeddings" in name:
                p.normal_(0.0, 0.2)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            else:
                std = 0.2 * math.sqrt(64.0 / p.shape[1])
                if name.endswith("attention.output.dense.weight") or (".output.dense.weight" in name and "attention" not in name):
                    std *= 0.25
                p.normal_(0.0, std)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)

    st = os.path.join(a.out, "model.safetensors")
    with open(st, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    with open(os.path.join(a.out, "kst_manifest.tsv"), "w") as f:
        for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size", "pad_token_id", "layer_norm_eps", "hidden_act"):
            f.write(f"config {k} {getattr(cfg, k)}\n")
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            key = name[5:] if name.startswith("bert.") else name
            f.write(f"tensor {key} {t['dtype']} {','.join(str(d) for d in t['shape'])} {8 + n + b} {e - b}\n")

    with gzip.open(os.path.join(HERE, "korsts-test-ids.json.gz")) as g:
        ids = json.load(g)["ids"]
    if a.limit:
        ids = ids[: a.limit]
    m = a.max_seq_length
    ids = [s if len(s) <= m else s[: m - 1] + [s[-1]] for s in ids]
    with open(os.path.join(a.out, "ids.bin"), "wb") as f:
        f.write(struct.pack("<i", len(ids)))
        for s in ids:
            f.write(struct.pack("<i", len(s)))
            f.write(struct.pack(f"<{len(s)}i", *s))
    print(json.dumps({"kind": "model", "dir": a.out, "layers": a.layers, "hidden": a.hidden, "heads": a.heads,
                      "intermediate": a.intermediate, "vocab": a.vocab, "sentences": len(ids),
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    sys.exit(main())
