"""Train the package's offline default Korean sentence-embedding model (issue 6).

Recipe (all seeded, CPU, Python sentence-transformers):
  0. tokenizer: weights/build_tokenizer.py turns the real KoBERT tokenizer (../shared/data/kobert) into a
     tokenizer.json; the model is trained with that fast tokenizer, so training and shipping tokenization are
     the same by construction (its agreement with KoBertTokenizer is measured by weights/check_tokenizer.py).
  1. optional masked-LM pre-training of a from-scratch BertModel on every distinct Korean sentence in
     ../shared/data (KorNLU + extra), except the sentences of KorSTS dev and test.
  2. MultipleNegativesRankingLoss on KorNLI xnli dev+test (premise, entailment, contradiction as hard negative),
     KLUE-NLI dev (same), ParaKQC paraphrase sets, question pairs with is_duplicate=1, KLUE-STS dev pairs >= 4;
     with --simcse, pool sentences as (s, s) pairs too (unsupervised SimCSE: dropout makes the two views differ).
  3. CosineSimilarityLoss on KorSTS train (score / 5).
Model selection uses KorSTS dev only; this script never reads KorSTS test.

Usage: python weights/train_default.py --out DIR [--layers 4 --hidden 256 ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_tokenizer  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "shared", "data")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------- data
def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(r)
        return [dict(zip(header, row)) for row in r]


def korsts(split):
    rows = read_tsv(os.path.join(DATA, "kornlu", "KorSTS", f"sts-{split}.tsv"))
    return [(r["sentence1"], r["sentence2"], float(r["score"]) / 5.0) for r in rows]


def nli_triplets(rows):
    """rows of (premise, hypothesis, label) -> triplets (p, entailment, contradiction) and leftover pairs."""
    by_p: dict[str, dict[str, list[str]]] = {}
    for p, h, lab in rows:
        by_p.setdefault(p, {}).setdefault(lab, []).append(h)
    trip, pairs = [], []
    for p, d in by_p.items():
        ents, cons = d.get("entailment", []), d.get("contradiction", [])
        for i, e in enumerate(ents):
            if cons:
                trip.append((p, e, cons[i % len(cons)]))
            else:
                pairs.append((p, e))
    return trip, pairs


def xnli_rows():
    out = []
    for split in ("dev", "test"):
        for r in read_tsv(os.path.join(DATA, "kornlu", "KorNLI", f"xnli.{split}.ko.tsv")):
            out.append((r["sentence1"], r["sentence2"], r["gold_label"]))
    return out


def klue_nli_rows():
    with open(os.path.join(DATA, "extra", "klue", "klue-nli-v1.1_dev.json"), encoding="utf-8") as f:
        return [(d["premise"], d["hypothesis"], d["gold_label"]) for d in json.load(f)]


def klue_sts_rows():
    with open(os.path.join(DATA, "extra", "klue", "klue-sts-v1.1_dev.json"), encoding="utf-8") as f:
        return [(d["sentence1"], d["sentence2"], float(d["labels"]["label"])) for d in json.load(f)]


def parakqc_sets():
    sets: list[list[str]] = []
    with open(os.path.join(DATA, "extra", "paraKQC", "paraKQC_v1.txt"), encoding="utf-8") as f:
        lines = [ln.rstrip("\n").split("\t")[-1].strip() for ln in f if ln.strip()]
    for i in range(0, len(lines), 10):
        sets.append(lines[i:i + 10])
    return sets


def question_pairs():
    out = []
    qp = os.path.join(DATA, "extra", "question_pair")
    for name in sorted(os.listdir(qp)):
        if not name.endswith(".csv"):
            continue
        with open(os.path.join(qp, name), encoding="utf-8-sig") as f:
            for r in csv.DictReader(f):
                if (r.get("is_duplicate") or "").strip() == "1":
                    out.append((r["question1"].strip(), r["question2"].strip(), 1))
                else:
                    out.append((r["question1"].strip(), r["question2"].strip(), 0))
    return out


def mnrl_data(rng: random.Random, use_extra: bool):
    trip, pairs = nli_triplets(xnli_rows())
    counts = {"xnli_triplets": len(trip), "xnli_pairs": len(pairs)}
    if use_extra:
        t2, p2 = nli_triplets(klue_nli_rows())
        trip += t2; pairs += p2
        counts.update(klue_nli_triplets=len(t2), klue_nli_pairs=len(p2))
        n = 0
        for s in parakqc_sets():
            s = [x for x in dict.fromkeys(s) if x]
            rng.shuffle(s)
            for i in range(0, len(s) - 1, 2):  # disjoint pairs inside each paraphrase set
                pairs.append((s[i], s[i + 1])); n += 1
        counts["parakqc_pairs"] = n
        qp = [(a, b) for a, b, dup in question_pairs() if dup == 1 and a and b and a != b]
        pairs += qp; counts["question_pairs"] = len(qp)
        ks = [(a, b) for a, b, s in klue_sts_rows() if s >= 4.0]
        pairs += ks; counts["klue_sts_pairs_ge4"] = len(ks)
    rng.shuffle(trip); rng.shuffle(pairs)
    return trip, pairs, counts


def mlm_corpus():
    """Every distinct sentence in ../shared/data except KorSTS dev/test sentences."""
    held = set()
    for split in ("dev", "test"):
        for a, b, _ in korsts(split):
            held.update((a, b))
    sents = set()
    for a, b, _ in korsts("train"):
        sents.update((a, b))
    for p, h, _ in xnli_rows() + klue_nli_rows():
        sents.update((p, h))
    for a, b, _ in klue_sts_rows():
        sents.update((a, b))
    for s in parakqc_sets():
        sents.update(s)
    for a, b, _ in question_pairs():
        sents.update((a, b))
    return sorted(s for s in sents if s and s not in held)


# ---------------------------------------------------------------------------------------- stages
def stage_mlm(args, tok_dir, cfg, out_dir):
    """Masked-LM pre-training (BERT masking: --mlm-mask of the tokens (0.15 as in BERT), 80% [MASK] / 10% random /
    10% kept). With --mlm-save-epochs the encoder is also saved at those epochs (work/mlm_ep{N}), so later stages
    can start from an early checkpoint while pre-training goes on.

    A plain loop rather than transformers' Trainer: batches are grouped by length (little padding) and the
    8002-way output layer runs on the masked positions only, which halves the cost on two cores.
    """
    from transformers import BertForMaskedLM, PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    corpus = mlm_corpus()
    ids = tok(corpus, truncation=True, max_length=args.max_seq_length)["input_ids"]
    n_tok = sum(map(len, ids))
    log(f"MLM corpus: {len(corpus)} sentences, {n_tok} tokens (with [CLS]/[SEP])")
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = BertForMaskedLM(cfg)
    model.train()
    bs = args.mlm_batch
    steps_per_epoch = (len(ids) + bs - 1) // bs
    total = int(round(steps_per_epoch * args.mlm_epochs))
    warm = max(1, int(0.06 * total))
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith("bias") or "LayerNorm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.mlm_lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))

    def batches():
        order = list(range(len(ids)))
        rng.shuffle(order)
        chunk = bs * 50
        out = []
        for i in range(0, len(order), chunk):
            part = sorted(order[i:i + chunk], key=lambda j: len(ids[j]))
            out += [part[k:k + bs] for k in range(0, len(part), bs)]
        rng.shuffle(out)
        return out

    save_at = {int(round(steps_per_epoch * float(e))): e for e in args.mlm_save_epochs.split(",") if e}
    step, t0, run_loss, n_loss = 0, time.time(), 0.0, 0
    while step < total:
        for b in batches():
            if step >= total:
                break
            L = max(len(ids[j]) for j in b)
            x = torch.full((len(b), L), 1, dtype=torch.long)  # [PAD]=1
            for r, j in enumerate(b):
                x[r, :len(ids[j])] = torch.tensor(ids[j])
            att = (x != 1).long()
            cand = att.bool() & (x > 4)  # never mask specials
            m = (torch.rand(x.shape, generator=gen) < args.mlm_mask) & cand
            if not m.any():
                continue
            labels = x[m]
            inp = x.clone()
            u = torch.rand(x.shape, generator=gen)
            inp[m & (u < 0.8)] = 4  # [MASK]
            rnd = m & (u >= 0.8) & (u < 0.9)
            inp[rnd] = torch.randint(5, cfg.vocab_size, (int(rnd.sum()),), generator=gen)
            h = model.bert(input_ids=inp, attention_mask=att).last_hidden_state
            logits = model.cls(h[m])
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
            step += 1; run_loss += loss.item(); n_loss += 1
            if step in save_at:
                d = os.path.join(args.work, f"mlm_ep{save_at[step]}")
                model.bert.save_pretrained(d)
                for f in os.listdir(tok_dir):
                    shutil.copy(os.path.join(tok_dir, f), os.path.join(d, f))
                log(f"saved {d}")
            if step % 50 == 0 or step == total:
                log(f"MLM step {step}/{total} epoch {step/steps_per_epoch:.2f} loss {run_loss/n_loss:.4f} "
                    f"({time.time()-t0:.0f}s)")
                last = run_loss / n_loss
                run_loss, n_loss = 0.0, 0
    log(f"MLM done in {time.time()-t0:.0f}s")
    model.bert.save_pretrained(out_dir)  # the encoder only; the MLM head is dropped
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out_dir, f))
    return last


def dev_evaluator(name="sts-dev", dev=None):
    """KorSTS dev (or the given rows of it) as an evaluator; the metric keeps the name "sts-dev" (st_train reads it)."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    dev = korsts("dev") if dev is None else dev
    return EmbeddingSimilarityEvaluator([a for a, _, _ in dev], [b for _, b, _ in dev], [s for _, _, s in dev],
                                        name=name, batch_size=128, show_progress_bar=False)


def st_train(model, args, train, loss, epochs, lr, batch, out, evaluator, multi=False, warmup=0.1):
    from sentence_transformers import (SentenceTransformerTrainer, SentenceTransformerTrainingArguments)
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers  # noqa
    kw = dict(
        output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch, learning_rate=lr,
        warmup_steps=warmup, lr_scheduler_type="linear", weight_decay=0.01, logging_steps=50,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="eval_sts-dev_spearman_cosine", greater_is_better=True, report_to=[],
        seed=args.seed, data_seed=args.seed, dataloader_num_workers=0, use_cpu=True, disable_tqdm=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES if multi else BatchSamplers.BATCH_SAMPLER,
    )
    if multi:
        kw["multi_dataset_batch_sampler"] = MultiDatasetBatchSamplers.PROPORTIONAL
    targs = SentenceTransformerTrainingArguments(**kw)
    tr = SentenceTransformerTrainer(model=model, args=targs, train_dataset=train, loss=loss, evaluator=evaluator)
    t0 = time.time(); tr.train()
    hist = [(h.get("epoch"), h["eval_sts-dev_spearman_cosine"]) for h in tr.state.log_history
            if "eval_sts-dev_spearman_cosine" in h]
    log(f"stage done in {time.time()-t0:.0f}s; dev spearman per epoch: "
        + ", ".join(f"{e:.0f}:{s:.4f}" for e, s in hist))
    shutil.rmtree(out, ignore_errors=True)
    return hist, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="folder for the final sentence-transformers model")
    ap.add_argument("--work", default=None, help="scratch folder (default OUT.work)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--max-position", type=int, default=128)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--mlm-epochs", type=float, default=0)
    ap.add_argument("--mlm-batch", type=int, default=128)
    ap.add_argument("--mlm-lr", type=float, default=5e-4)
    ap.add_argument("--mlm-mask", type=float, default=0.15, help="fraction of tokens masked per step")
    ap.add_argument("--mlm-save-epochs", default="", help="comma-separated epochs at which to also save the encoder")
    ap.add_argument("--mlm-only", action="store_true", help="stop after masked-LM pre-training")
    ap.add_argument("--init", default=None, help="start from this BertModel folder (e.g. a saved MLM encoder)")
    ap.add_argument("--no-extra", action="store_true", help="stage 2 on xnli only")
    ap.add_argument("--nli-epochs", type=float, default=4)
    ap.add_argument("--nli-lr", type=float, default=2e-4)
    ap.add_argument("--nli-batch", type=int, default=64)
    ap.add_argument("--sts-epochs", type=float, default=4)
    ap.add_argument("--sts-lr", type=float, default=1e-4)
    ap.add_argument("--sts-batch", type=int, default=32)
    ap.add_argument("--sts-extra", action="store_true", help="add KLUE-STS dev (score / 5) to the KorSTS train stage")
    ap.add_argument("--sts-loss", choices=["cosine", "cosent", "angle"], default="cosine",
                    help="KorSTS stage loss: CosineSimilarityLoss (MSE on cosine), CoSENTLoss or AnglELoss (ranking)")
    ap.add_argument("--sts-joint", action="store_true",
                    help="KorSTS stage also keeps training the MNRL data (multi-task, round robin per batch)")
    ap.add_argument("--korsts-mnrl", type=float, default=0.0,
                    help="add KorSTS-train pairs with score >= this (0-5 scale) as MNRL positives (0 = off)")
    ap.add_argument("--simcse", type=int, default=0,
                    help="add this many pool sentences (mlm_corpus, no KorSTS dev/test) to the MNRL stage as (s, s) "
                         "pairs: unsupervised SimCSE, the two dropout masks make the positive (0 = off, -1 = all)")
    ap.add_argument("--save-nli", default=None, help="save the sentence-transformers model after the MNRL stage")
    ap.add_argument("--start", default=None,
                    help="start from this sentence-transformers folder (e.g. a --save-nli model) instead of --init")
    args = ap.parse_args()
    args.work = args.work or args.out.rstrip("/") + ".work"
    os.makedirs(args.work, exist_ok=True)

    torch.set_num_threads(args.threads)
    random.seed(args.seed); np.random.seed(args.seed); torch.manual_seed(args.seed)
    logging.basicConfig(level=logging.WARNING)
    import sentence_transformers, transformers, tokenizers, datasets
    log(f"args {vars(args)}")
    log(f"versions: python {sys.version.split()[0]} torch {torch.__version__} sentence-transformers "
        f"{sentence_transformers.__version__} transformers {transformers.__version__} tokenizers "
        f"{tokenizers.__version__} datasets {datasets.__version__}")
    t_all = time.time()
    summary = {"args": vars(args)}

    tok_dir = os.path.join(args.work, "tokenizer")
    build_tokenizer.save(tok_dir, os.path.join(DATA, "kobert"), model_max_length=args.max_seq_length)

    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=8002, hidden_size=args.hidden, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, intermediate_size=args.intermediate,
                     max_position_embeddings=args.max_position, hidden_act="gelu", type_vocab_size=2,
                     pad_token_id=1)
    init_dir = os.path.join(args.work, "init")
    if args.init:
        init_dir = args.init
    elif args.mlm_epochs > 0:
        os.makedirs(init_dir, exist_ok=True)
        t0 = time.time()
        summary["mlm_loss"] = stage_mlm(args, tok_dir, cfg, init_dir)
        summary["mlm_seconds"] = time.time() - t0
        shutil.rmtree(os.path.join(args.work, "mlm_ckpt"), ignore_errors=True)
        if args.mlm_only:
            log(f"MLM only: encoder saved in {init_dir}")
            return
    else:
        torch.manual_seed(args.seed)
        BertModel(cfg).save_pretrained(init_dir)
        for f in os.listdir(tok_dir):
            shutil.copy(os.path.join(tok_dir, f), os.path.join(init_dir, f))

    from datasets import Dataset, DatasetDict
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    torch.manual_seed(args.seed)
    if args.start:
        model = SentenceTransformer(args.start, device="cpu")
    else:
        tr = Transformer(init_dir, max_seq_length=args.max_seq_length)
        model = SentenceTransformer(modules=[tr, Pooling(tr.get_embedding_dimension(), "mean")], device="cpu")
    ev = dev_evaluator()
    summary["dev_init"] = ev(model)["sts-dev_spearman_cosine"]
    log(f"dev spearman before fine-tuning: {summary['dev_init']:.4f}")

    mnrl_sets = counts = None
    if args.nli_epochs > 0 or args.sts_joint:  # the MNRL data, for stage 2 and the multi-task KorSTS stage
        rng = random.Random(args.seed)
        trip, pairs, counts = mnrl_data(rng, use_extra=not args.no_extra)
        if args.korsts_mnrl > 0:
            ks = [(a, b) for a, b, s in korsts("train") if s * 5.0 >= args.korsts_mnrl and a != b]
            rng.shuffle(ks)
            pairs += ks; counts["korsts_train_pairs"] = len(ks)
        mnrl_sets = {
            "triplets": Dataset.from_dict({"anchor": [t[0] for t in trip], "positive": [t[1] for t in trip],
                                           "negative": [t[2] for t in trip]}),
            "pairs": Dataset.from_dict({"anchor": [p[0] for p in pairs], "positive": [p[1] for p in pairs]}),
        }
        if args.simcse:
            pool = mlm_corpus()
            rng.shuffle(pool)
            pool = pool if args.simcse < 0 else pool[:args.simcse]
            counts["simcse_sentences"] = len(pool)
            mnrl_sets["simcse"] = Dataset.from_dict({"anchor": pool, "positive": pool})
    if args.nli_epochs > 0:
        log(f"MNRL data: {counts}")
        summary["mnrl_counts"] = counts
        loss = losses.MultipleNegativesRankingLoss(model)
        hist, sec = st_train(model, args, DatasetDict(mnrl_sets), loss, args.nli_epochs, args.nli_lr,
                             args.nli_batch, os.path.join(args.work, "nli_ckpt"), ev, multi=True)
        summary["nli_dev"] = hist; summary["nli_seconds"] = sec
        if args.save_nli:
            model.save(args.save_nli)

    if args.sts_epochs > 0:
        sts = korsts("train")
        if args.sts_extra:
            sts = sts + [(a, b, s / 5.0) for a, b, s in klue_sts_rows()]
        log(f"cosine-loss pairs: {len(sts)}")
        train = Dataset.from_dict({"sentence1": [a for a, _, _ in sts], "sentence2": [b for _, b, _ in sts],
                                   "score": [s for _, _, s in sts]})
        loss = {"cosine": losses.CosineSimilarityLoss, "cosent": losses.CoSENTLoss,
                "angle": losses.AnglELoss}[args.sts_loss](model)
        if args.sts_joint:  # one loss per dataset, batches drawn in proportion to each dataset's size
            train = DatasetDict({"sts": train, **mnrl_sets})
            mnrl = losses.MultipleNegativesRankingLoss(model)
            loss = {"sts": loss, **{name: mnrl for name in mnrl_sets}}
        hist, sec = st_train(model, args, train, loss, args.sts_epochs, args.sts_lr, args.sts_batch,
                             os.path.join(args.work, "sts_ckpt"), ev, multi=args.sts_joint)
        summary["sts_dev"] = hist; summary["sts_seconds"] = sec

    summary["dev_final"] = ev(model)["sts-dev_spearman_cosine"]
    summary["total_seconds"] = time.time() - t_all
    model.save(args.out)
    for name in (build_tokenizer.SP_MODEL, "vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(tok_dir, name), os.path.join(args.out, name))
    with open(os.path.join(args.out, "..", os.path.basename(args.out.rstrip("/")) + ".summary.json"), "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    log(f"final dev spearman {summary['dev_final']:.4f}; total {summary['total_seconds']:.0f}s; saved {args.out}")


if __name__ == "__main__":
    main()
