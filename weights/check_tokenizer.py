"""Measure tokenizer.json against the team's KoBertTokenizer on every distinct KorNLU sentence.

Usage: python weights/check_tokenizer.py MODEL_DIR [--out LOG]
Compares input_ids of the fast tokenizer (MODEL_DIR/tokenizer.json via AutoTokenizer) with
test/golden/ko_sentence_transformers.KoBertTokenizer (../shared/data/kobert), no truncation.
"""
import argparse, csv, glob, os, sys, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "test", "golden"))
from ko_sentence_transformers import KoBertTokenizer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("model_dir")
ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data"))
ap.add_argument("--out", default=None)
a = ap.parse_args()

sents = set()
for path in sorted(glob.glob(os.path.join(a.data, "kornlu", "KorSTS", "*.tsv"))):
    with open(path, encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE); next(r)
        for row in r:
            sents.update(row[5:7])
for path in sorted(glob.glob(os.path.join(a.data, "kornlu", "KorNLI", "*.tsv"))):
    with open(path, encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE); next(r)
        for row in r:
            sents.update(row[0:2])
sents = sorted(sents)
kb = os.path.join(a.data, "kobert")
slow = KoBertTokenizer(os.path.join(kb, "tokenizer_78b3253a26.model"), os.path.join(kb, "vocab.txt"))
fast = AutoTokenizer.from_pretrained(a.model_dir)
t0 = time.time(); ref = [slow(s)["input_ids"] for s in sents]; t1 = time.time()
got = fast(sents)["input_ids"]; t2 = time.time()
bad = [(s, r, g) for s, r, g in zip(sents, ref, got) if r != g]
lines = [f"sentences: {len(sents)} distinct (KorSTS train/dev/test + KorNLI xnli dev/test)",
         f"fast tokenizer: {type(fast).__name__} from {a.model_dir}/tokenizer.json",
         f"mismatches: {len(bad)}",
         f"tokens: {sum(map(len, ref))} (KoBertTokenizer)  time slow {t1-t0:.1f}s fast {t2-t1:.1f}s"]
for s, r, g in bad[:30]:
    lines.append(f"  {s!r}\n    slow {slow.convert_ids_to_tokens(r)}\n    fast {slow.convert_ids_to_tokens(g)}")
txt = "\n".join(lines)
print(txt)
if a.out:
    open(a.out, "w", encoding="utf-8").write(txt + "\n")
