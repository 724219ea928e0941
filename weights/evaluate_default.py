"""Evaluate a saved model folder with Python sentence-transformers, loaded unchanged.

  python weights/evaluate_default.py MODEL_DIR                 # KorSTS dev only (model selection)
  python weights/evaluate_default.py MODEL_DIR --test --json weights/eval/korsts-test-python.json
                                                               # + KorSTS test, once the model is chosen
Prints the eight figures of EmbeddingSimilarityEvaluator (cosine / euclidean / manhattan / dot x Pearson /
Spearman, x100) and the seed's 9-sentence semantic-search example (top 5 per query).
"""
import argparse, csv, json, os, sys, time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")
FIG = [(f"{k}_{m}", f"{m.capitalize()} {k.capitalize()}") for m in ("cosine", "euclidean", "manhattan", "dot")
       for k in ("pearson", "spearman")]
CORPUS = ['한 남자가 음식을 먹는다.', '한 남자가 빵 한 조각을 먹는다.', '그 여자가 아이를 돌본다.', '한 남자가 말을 탄다.',
          '한 여자가 바이올린을 연주한다.', '두 남자가 수레를 숲 속으로 밀었다.', '한 남자가 담으로 싸인 땅에서 백마를 타고 있다.',
          '원숭이 한 마리가 드럼을 연주한다.', '치타 한 마리가 먹이 뒤에서 달리고 있다.']
QUERIES = ['한 남자가 파스타를 먹는다.', '고릴라 의상을 입은 누군가가 드럼을 연주하고 있다.', '치타가 들판을 가로 질러 먹이를 쫓는다.']


def korsts(split):
    with open(os.path.join(DATA, "kornlu", "KorSTS", f"sts-{split}.tsv"), encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE); next(r)
        rows = list(r)
    return [x[5] for x in rows], [x[6] for x in rows], [float(x[4]) / 5.0 for x in rows]


def figures(model, split):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    s1, s2, sc = korsts(split)
    ev = EmbeddingSimilarityEvaluator(s1, s2, sc, name=f"sts-{split}", batch_size=64, show_progress_bar=False,
                                      similarity_fn_names=["cosine", "euclidean", "manhattan", "dot"])
    res = ev(model)
    return {k: res[f"sts-{split}_{k}"] for k, _ in FIG}, (s1, s2, sc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--test", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer, util
    import sentence_transformers
    model = SentenceTransformer(a.model_dir, device="cpu")
    print(f"model {a.model_dir}: {model}")
    print(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}")
    splits = ["dev"] + (["test"] if a.test else [])
    out = {}
    for split in splits:
        t0 = time.time()
        fig, (s1, s2, sc) = figures(model, split)
        print(f"\nKorSTS {split} ({len(sc)} pairs, {time.time()-t0:.1f}s)")
        for k, name in FIG:
            print(f"  {name:20s} {100*fig[k]:.2f}")
        out[split] = {"figures": fig, "pairs": len(sc)}
        if split == "test" and a.json:
            e1 = model.encode(s1, batch_size=64, convert_to_tensor=True)
            e2 = model.encode(s2, batch_size=64, convert_to_tensor=True)
            cos = torch.nn.functional.cosine_similarity(e1, e2).tolist()
            rec = {"model": os.path.basename(os.path.abspath(a.model_dir)), "data": "KorSTS sts-test.tsv",
                   "pairs": len(sc), "scores_gold_divided_by": 5,
                   "sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__,
                   "figures_x100": {k: round(100 * v, 4) for k, v in fig.items()},
                   "figures": fig,
                   "cosine_scores": [round(c, 6) for c in cos],
                   "first_embeddings": {"sentences": s1[:3], "embeddings": [[round(v, 6) for v in e]
                                                                          for e in e1[:3].tolist()]}}
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json, "w", encoding="utf-8") as f:
                json.dump(rec, f, ensure_ascii=False)
            print(f"wrote {a.json}")
    ce = model.encode(CORPUS, convert_to_tensor=True)
    qe = model.encode(QUERIES, convert_to_tensor=True)
    print("\nSemantic search (seed example), top 5 per query, cosine:")
    for q, hits in zip(QUERIES, util.semantic_search(qe, ce, top_k=5)):
        print(f"\nQuery: {q}")
        for h in hits:
            print(f"  {CORPUS[h['corpus_id']]} (Score: {h['score']:.4f})")


if __name__ == "__main__":
    main()
