"""KorSTS dev cosine Spearman of saved models, on the whole dev set, on its even / odd rows, and per source file.

    python weights/dev_sources.py MODEL_DIR [MODEL_DIR ...]

Why: `distill_default.py --gold-dev even|odd` trains on one half of KorSTS dev and is measured on the other; the
halves of a model trained without dev are its baseline. Rows alternate, so each half holds half of every source
file (the file is ordered by source). The per-source figures show which kinds of text a change moves.
"""
import os, sys

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_default as td  # noqa: E402  (the KorSTS reader)


def main():
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(1)
    rows = td.read_tsv(os.path.join(td.DATA, "kornlu", "KorSTS", "sts-dev.tsv"))
    gold = np.array([float(r["score"]) for r in rows])
    for path in sys.argv[1:]:
        m = SentenceTransformer(path, device="cpu")
        a = m.encode([r["sentence1"] for r in rows], normalize_embeddings=True)
        b = m.encode([r["sentence2"] for r in rows], normalize_embeddings=True)
        cos = (a * b).sum(1)
        for half, ix in (("all", np.arange(len(rows))), ("even", np.arange(0, len(rows), 2)),
                         ("odd", np.arange(1, len(rows), 2))):
            src = {}
            for i in ix:
                src.setdefault(rows[i]["filename"], []).append(i)
            per = " | ".join(f"{s} {spearmanr(cos[v], gold[v]).correlation:.3f}" for s, v in sorted(src.items()))
            print(f"{path}  {half:4s} {spearmanr(cos[ix], gold[ix]).correlation:.4f}  ({per})", flush=True)


if __name__ == "__main__":
    main()
