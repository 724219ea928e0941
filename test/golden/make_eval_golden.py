#!/usr/bin/env python3
"""Reference figures for the KorSTS evaluator (src/evaluation.ts): test/fixtures/eval-golden.json.

Runs sentence-transformers' own EmbeddingSimilarityEvaluator, with all four similarity functions, on the
committed random-weight fixture model test/fixtures/kobert-tiny and the first N pairs of KorSTS
sts-test.tsv, read as the seed's benchmark.py reads it (split on tab, no quoting, header skipped,
score / 5.0).

    python3 test/golden/make_eval_golden.py [--data DIR] [--pairs 200]

--data defaults to $KO_ST_DATA or <repo>/../shared/data. Deterministic (1 torch thread, no randomness).
The fixture holds the pairs themselves, so the jest test needs no data folder.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)  # ko_sentence_transformers (the fixture model's KoBertTransformer module)


def read_korsts(path, limit):
    s1, s2, scores = [], [], []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            cols = line.rstrip("\n").split("\t")
            s1.append(cols[5])
            s2.append(cols[6])
            scores.append(float(cols[4]) / 5.0)
            if len(s1) == limit:
                break
    return s1, s2, scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("KO_ST_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "eval-golden.json"))
    args = ap.parse_args()

    import numpy as np
    import scipy
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    torch.set_num_threads(1)
    tsv = os.path.join(args.data, "kornlu", "KorSTS", "sts-test.tsv")
    s1, s2, scores = read_korsts(tsv, args.pairs)
    model_dir = os.path.join(ROOT, "test", "fixtures", "kobert-tiny")
    model = SentenceTransformer(model_dir, device="cpu", trust_remote_code=True)
    fns = ["cosine", "euclidean", "manhattan", "dot"]
    ev = EmbeddingSimilarityEvaluator(s1, s2, scores, batch_size=16, similarity_fn_names=fns, name="korsts-test", write_csv=False)
    metrics = ev(model)
    prefix = "korsts-test_"
    figures = {}
    for fn in fns:
        figures[fn] = {
            "pearson": float(metrics[f"{prefix}pearson_{fn}"]),
            "spearman": float(metrics[f"{prefix}spearman_{fn}"]),
        }
    out = {
        "format": 1,
        "source": "sentence_transformers EmbeddingSimilarityEvaluator(batch_size=16, similarity_fn_names=[cosine, euclidean, manhattan, dot])",
        "model": "test/fixtures/kobert-tiny",
        "data": "KorSTS sts-test.tsv, first %d pairs, score / 5.0" % len(s1),
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
        },
        "figures": figures,
        "sentences1": s1,
        "sentences2": s2,
        "scores": scores,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for fn in fns:
        print(f"{fn:10s} pearson {figures[fn]['pearson'] * 100:6.2f}  spearman {figures[fn]['spearman'] * 100:6.2f}")
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
