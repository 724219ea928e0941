#!/usr/bin/env python3
"""PyTorch sentence-transformers side of bench/gpu.sh, on the same random weights and token ids as kst.

The model is a SentenceTransformer of two modules: the Hugging Face BertModel (fp16 on the GPU, transformers'
default attention implementation) and sentence_transformers.models.Pooling (mean). Inputs are the pre-tokenized
ids (tokenization is left out on both sides); each timed call pads its batch, copies it to the device, runs
SentenceTransformer.forward and copies the float32 embeddings back, which is what one kst encode() call does.
Prints one JSON object per line: throughput (KorSTS-test sorted by length, batch 32 / 128), batch-1 latency,
the batch x length grid, GEMM TFLOP/s of torch.nn.functional.linear (bf16, fp16), and, with
--compare-prefix, the cosine of kst's embeddings against torch fp32 ("equal to Python sentence-transformers").
"""
import argparse
import json
import os
import struct
import sys
import time


def read_ids(path):
    with open(path, "rb") as f:
        n = struct.unpack("<i", f.read(4))[0]
        out = []
        for _ in range(n):
            L = struct.unpack("<i", f.read(4))[0]
            out.append(list(struct.unpack(f"<{L}i", f.read(4 * L))))
    return out


def emit(**kw):
    print(json.dumps(kw), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--grid-batches", default="1,32,256")
    ap.add_argument("--grid-lengths", default="16,128")
    ap.add_argument("--latency-n", type=int, default=1000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--gemm", action="store_true", help="time torch.nn.functional.linear on BERT-base GEMM shapes")
    ap.add_argument("--gemm-m", default="4096,8192,16384")
    ap.add_argument("--compare-prefix", default="", help="kst embeddings <prefix>.<name>.f32 to compare with torch fp32")
    ap.add_argument("--skip-timing", action="store_true")
    a = ap.parse_args()

    import torch
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling

    dev = torch.device(a.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    emit(kind="torch_env", torch=torch.__version__, transformers=transformers.__version__,
         sentence_transformers=sentence_transformers.__version__, device=a.device, dtype=a.dtype,
         gpu=torch.cuda.get_device_name(0) if dev.type == "cuda" else "",
         cuda=torch.version.cuda if dev.type == "cuda" else "")

    class Encoder(torch.nn.Module):
        """The sentence-transformers input module contract: features in, token_embeddings out."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, features):
            out = self.bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                            token_type_ids=features["token_type_ids"])
            features["token_embeddings"] = out[0]
            return features

    def load(dt):
        bert = transformers.BertModel.from_pretrained(a.model, add_pooling_layer=False).eval()
        enc = Encoder(bert)
        st = SentenceTransformer(modules=[enc, Pooling(bert.config.hidden_size, pooling_mode="mean")], device=a.device)
        return st.to(dev, dt).eval()

    sents = read_ids(a.ids)
    pad_id = 1

    def run(model, batch):
        L = max(len(s) for s in batch)
        ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        feats = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev), "token_type_ids": torch.zeros_like(ids).to(dev)}
        with torch.inference_mode():
            out = model.forward(feats)["sentence_embedding"].float().cpu()
        return out

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if a.compare_prefix:
        import numpy as np

        ref_model = load(torch.float32)
        ref = torch.cat([run(ref_model, sents[i : i + 32]) for i in range(0, len(sents), 32)]).numpy()
        del ref_model
        for name in ("cpu", "cuda_fp16", "cuda_bf16"):
            path = f"{a.compare_prefix}.{name}.f32"
            if not os.path.exists(path):
                continue
            got = np.fromfile(path, dtype=np.float32).reshape(ref.shape)
            cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
            emit(kind="vs_torch_fp32", impl=f"kst_{name}", sentences=len(sents), min_cosine=float(cos.min()),
                 mean_cosine=float(cos.mean()), max_abs_diff=float(np.abs(got - ref).max()))

    if not a.skip_timing:
        model = load(dtype)
        order = sorted(range(len(sents)), key=lambda i: -len(sents[i]))  # longest first, like ST.encode
        for bs in [int(x) for x in a.batches.split(",") if x]:
            for i in range(0, len(order), bs):  # warm-up
                run(model, [sents[j] for j in order[i : i + bs]])
            best = 1e30
            for _ in range(a.passes):
                sync()
                t0 = time.perf_counter()
                for i in range(0, len(order), bs):
                    run(model, [sents[j] for j in order[i : i + bs]])
                sync()
                best = min(best, time.perf_counter() - t0)
            emit(kind="throughput", impl="torch", batch=bs, sentences_per_s=len(sents) / best, ms=best * 1000)
        n1 = min(len(sents), a.latency_n)
        for i in range(n1):
            run(model, [sents[i]])
        lat = []
        for i in range(n1):
            sync()
            t0 = time.perf_counter()
            run(model, [sents[i]])
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()

        def pct(p):
            pos = p / 100 * (len(lat) - 1)
            lo = int(pos)
            hi = min(lo + 1, len(lat) - 1)
            return lat[lo] * (1 - (pos - lo)) + lat[hi] * (pos - lo)

        emit(kind="latency", impl="torch", n=n1, p50_ms=pct(50), p99_ms=pct(99), mean_ms=sum(lat) / len(lat))
        g = torch.Generator().manual_seed(1)
        vocab = model[0].bert.config.vocab_size
        for B in [int(x) for x in a.grid_batches.split(",") if x]:
            for L in [int(x) for x in a.grid_lengths.split(",") if x]:
                batch = torch.randint(5, vocab, (B, L), generator=g).tolist()
                for _ in range(3):
                    run(model, batch)
                ts = []
                for _ in range(20 if dev.type == "cuda" else 3):
                    sync()
                    t0 = time.perf_counter()
                    run(model, batch)
                    ts.append((time.perf_counter() - t0) * 1000)
                ts.sort()
                med = ts[len(ts) // 2]
                emit(kind="grid", impl="torch", batch=B, len=L, median_ms=med, tokens_per_s=B * L / (med / 1000))
        del model

    if a.gemm and dev.type == "cuda":
        import torch.nn.functional as F

        for M in [int(x) for x in a.gemm_m.split(",") if x]:
            for N, K in ((3072, 768), (768, 3072), (2304, 768), (768, 768)):
                res = {}
                for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                    x = torch.randn(M, K, device=dev, dtype=dt)
                    w = torch.randn(N, K, device=dev, dtype=dt)
                    b = torch.randn(N, device=dev, dtype=dt)
                    for _ in range(3):
                        F.linear(x, w, b)
                    e0 = torch.cuda.Event(enable_timing=True)
                    e1 = torch.cuda.Event(enable_timing=True)
                    e0.record()
                    for _ in range(20):
                        F.linear(x, w, b)
                    e1.record()
                    torch.cuda.synchronize()
                    res[name] = 2.0 * M * N * K * 20 / (e0.elapsed_time(e1) * 1e-3) / 1e12
                emit(kind="gemm", impl="torch", M=M, N=N, K=K, **res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
