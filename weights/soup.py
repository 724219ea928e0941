"""Uniform weight average ("model soup") of sentence-transformers folders fine-tuned from the same start.

Why: KorSTS-stage runs that start from the same MNRL model but see the data in a different order (seed) or with
another loss land in the same basin, and their mean is better on KorSTS dev than the average ingredient and than
most single runs (weights/README.md, round 3). Averaging is exact in float64 and stored as float32; the folder
layout (config, tokenizer, pooling) is copied from the first ingredient, so every ingredient must share it.
The script prints the KorSTS dev Spearman of the soup (dev only: this script never reads KorSTS test).

Usage: python weights/soup.py OUT_DIR DIR1 DIR2 [...]
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_default  # noqa: E402  (KorSTS reader and the dev evaluator)


def soup(out, srcs):
    sds = [load_file(os.path.join(s, "model.safetensors")) for s in srcs]
    keys = set(sds[0])
    for s, sd in zip(srcs, sds):
        if set(sd) != keys or any(sd[k].shape != sds[0][k].shape for k in keys):
            raise SystemExit(f"{s}: tensor names or shapes differ from {srcs[0]}; only same-architecture runs mix")
    avg = {k: (sum(sd[k].double() for sd in sds) / len(sds)).float().contiguous() for k in sorted(keys)}
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(srcs[0], out)
    save_file(avg, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    out, srcs = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    soup(out, srcs)
    from sentence_transformers import SentenceTransformer
    ev = train_default.dev_evaluator()
    dev = {s: ev(SentenceTransformer(s, device="cpu"))["sts-dev_spearman_cosine"] for s in srcs}
    dev_soup = ev(SentenceTransformer(out, device="cpu"))["sts-dev_spearman_cosine"]
    for s, v in dev.items():
        print(f"ingredient {s}: dev spearman {v:.4f}")
    print(f"soup {out} of {len(srcs)}: dev spearman {dev_soup:.4f}")
    with open(out.rstrip("/") + ".soup.json", "w") as f:
        json.dump({"ingredients": dev, "soup": dev_soup}, f, indent=1)


if __name__ == "__main__":
    main()
