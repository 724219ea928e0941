#!/usr/bin/env python3
"""Benchmark models: random-weight 12 x 768 BERTs in the sentence-transformers layout, and the same weights as ONNX.

    python3 bench/make_models.py            # both models (~3-6 min on 2 cores), skips what already exists
    python3 bench/make_models.py --force    # rebuild everything

Models (written under bench/models/, gitignored):
  kobert-base  12 x 768, vocab 8002 (KoBERT's). Reuses test/golden/models/kobert-base (made by
               `python3 test/golden/make_golden.py --base`) when present, otherwise builds it the same way.
  klue-base    12 x 768, vocab 32000 (klue/bert-base's shape). Same init recipe, another seed. It keeps the
               KoBERT tokenizer (its 8002 ids are valid rows of the 32000-row table), so every peer sees the same ids.

ONNX, per model (bench/models/<name>/onnx/):
  model.onnx           TorchScript export (torch.onnx.export, dynamo=False, opset 17) of a minimal BERT written in
                       the transformers 4.x eager style (view/permute heads, q k^T / sqrt(d) + (1 - mask) * -10000,
                       softmax, . v), loading the HF weights by their HF names, plus masked mean pooling in the graph.
                       transformers 5's own export (sdpa / the new masking utilities) is not recognised by ORT's
                       attention fusion; this graph is, so ORT gets its fused Attention.
  model_opt.onnx       onnxruntime.transformers.optimizer (model_type "bert"): EmbedLayerNormalization, Attention,
                       SkipLayerNormalization, BiasGelu; the fused-op counts are written to onnx/fusion.json.
  model_opt_int8.onnx  onnxruntime.quantization.quantize_dynamic of model_opt.onnx (QInt8 weights, per-tensor).
The script checks the ONNX outputs against sentence-transformers' encode() on a few KorSTS sentences.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "test", "golden")
sys.path.insert(0, GOLDEN)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_golden as mg  # noqa: E402  (the reference script: tokenizer, init recipe, module classes)

DATA = os.environ.get("KO_ST_DATA", os.path.join(ROOT, "..", "shared", "data"))
MODELS = os.path.join(HERE, "models")


# ---------------------------------------------------------------------------------------------------------------
# random-weight sentence-transformers folders
# ---------------------------------------------------------------------------------------------------------------
def build_st(out_dir: str, vocab_size: int, seed: int) -> None:
    tok = mg.make_tokenizer(DATA)
    config = mg.kobert_config(mg.BASE)
    config.vocab_size = vocab_size
    bert = mg.BertModel(config, add_pooling_layer=True)
    mg.randomize_(bert, seed, fan_in_ref=mg.TINY["hidden_size"])
    bert.eval()
    module = mg.KoBertTransformer(max_seq_length=128, do_lower_case=False, bert_model=bert, tokenizer=tok)
    pooling = mg.Pooling(mg.BASE["hidden_size"], pooling_mode="mean")
    st = mg.SentenceTransformer(modules=[module, pooling], device="cpu")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    st.save(out_dir, create_model_card=False)


# ---------------------------------------------------------------------------------------------------------------
# a minimal BERT in the transformers 4.x eager style, for an export ORT's fusion recognises
# ---------------------------------------------------------------------------------------------------------------
class ExportBert(torch.nn.Module):
    def __init__(self, sd: dict, cfg: dict):
        super().__init__()
        self.H = cfg["hidden_size"]
        self.NH = cfg["num_attention_heads"]
        self.HS = self.H // self.NH
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_eps"]
        E = torch.nn.Embedding
        self.word = E.from_pretrained(sd["embeddings.word_embeddings.weight"])
        self.pos = E.from_pretrained(sd["embeddings.position_embeddings.weight"])
        self.typ = E.from_pretrained(sd["embeddings.token_type_embeddings.weight"])
        self.emb_ln = self._ln(sd, "embeddings.LayerNorm")
        self.layers = torch.nn.ModuleList()
        for i in range(self.L):
            p = f"encoder.layer.{i}."
            m = torch.nn.Module()
            m.q = self._lin(sd, p + "attention.self.query")
            m.k = self._lin(sd, p + "attention.self.key")
            m.v = self._lin(sd, p + "attention.self.value")
            m.o = self._lin(sd, p + "attention.output.dense")
            m.ln1 = self._ln(sd, p + "attention.output.LayerNorm")
            m.i = self._lin(sd, p + "intermediate.dense")
            m.out = self._lin(sd, p + "output.dense")
            m.ln2 = self._ln(sd, p + "output.LayerNorm")
            self.layers.append(m)

    def _lin(self, sd, name):
        w = sd[name + ".weight"]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data.copy_(w)
        lin.bias.data.copy_(sd[name + ".bias"])
        return lin

    def _ln(self, sd, name):
        ln = torch.nn.LayerNorm(sd[name + ".weight"].shape[0], eps=self.eps)
        ln.weight.data.copy_(sd[name + ".weight"])
        ln.bias.data.copy_(sd[name + ".bias"])
        return ln

    def heads(self, x):
        b, t, _ = x.size()
        return x.view(b, t, self.NH, self.HS).permute(0, 2, 1, 3)

    def forward(self, input_ids, attention_mask, token_type_ids):
        seq = input_ids.size(1)
        pos_ids = torch.arange(seq, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.typ(token_type_ids)
        x = x + self.pos(pos_ids)
        x = self.emb_ln(x)
        ext = attention_mask[:, None, None, :].to(torch.float32)
        ext = (1.0 - ext) * -10000.0
        for m in self.layers:
            q = self.heads(m.q(x))
            k = self.heads(m.k(x))
            v = self.heads(m.v(x))
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.HS)
            s = s + ext
            p = torch.softmax(s, dim=-1)
            c = torch.matmul(p, v).permute(0, 2, 1, 3).contiguous()
            b, t = c.size(0), c.size(1)
            c = c.view(b, t, self.H)
            x = m.ln1(m.o(c) + x)
            h = torch.nn.functional.gelu(m.i(x))
            x = m.ln2(m.out(h) + x)
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        summed = (x * mask).sum(dim=1)
        count = torch.clamp(mask.sum(dim=1), min=1e-9)
        return summed / count


def export_onnx(st_dir: str, onnx_dir: str) -> dict:
    from safetensors.torch import load_file

    tdir = os.path.join(st_dir, "0_KoBertTransformer")
    cfg = json.load(open(os.path.join(tdir, "config.json")))
    sd = {k[5:] if k.startswith("bert.") else k: v for k, v in load_file(os.path.join(tdir, "model.safetensors")).items()}
    model = ExportBert(sd, cfg).eval()
    os.makedirs(onnx_dir, exist_ok=True)
    raw = os.path.join(onnx_dir, "model.onnx")
    ids = torch.tensor([[2, 100, 200, 300, 3], [2, 400, 3, 1, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    types = torch.zeros_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask, types), raw, dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "token_type_ids": {0: "batch", 1: "seq"}, "sentence_embedding": {0: "batch"}},
        )

    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    opts = FusionOptions("bert")
    opt = optimizer.optimize_model(raw, model_type="bert", num_heads=cfg["num_attention_heads"],
                                   hidden_size=cfg["hidden_size"], optimization_options=opts, opt_level=0)
    stats = opt.get_fused_operator_statistics()
    opt_path = os.path.join(onnx_dir, "model_opt.onnx")
    opt.save_model_to_file(opt_path)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    q_path = os.path.join(onnx_dir, "model_opt_int8.onnx")
    import onnx

    # Shape inference cannot type the outputs of the com.microsoft fused ops; they are all float32.
    quantize_dynamic(opt_path, q_path, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    info = {"fused_ops": {k: v for k, v in stats.items() if v}, "export": "torch.onnx.export dynamo=False opset 17",
            "optimizer": "onnxruntime.transformers.optimizer model_type=bert opt_level=0",
            "quantization": "quantize_dynamic QInt8"}
    json.dump(info, open(os.path.join(onnx_dir, "fusion.json"), "w"), indent=1)
    return info


def check(st_dir: str, onnx_dir: str) -> float:
    """max |ONNX - sentence-transformers| over a few KorSTS sentences, for the fp32 graphs."""
    import onnxruntime as ort

    st = mg.load_st(st_dir)
    _, per_file = mg.load_kornlu(DATA)
    sents = per_file["KorSTS/sts-test.tsv"][:8]
    want = st.encode(sents, convert_to_numpy=True, batch_size=8)
    kt = st._modules["0"]
    feats = kt.tokenize(sents)
    feed = {"input_ids": feats["input_ids"].numpy().astype(np.int64),
            "attention_mask": feats["attention_mask"].numpy().astype(np.int64),
            "token_type_ids": np.zeros_like(feats["input_ids"].numpy(), dtype=np.int64)}
    worst = 0.0
    for name in ("model.onnx", "model_opt.onnx"):
        s = ort.InferenceSession(os.path.join(onnx_dir, name), providers=["CPUExecutionProvider"])
        got = s.run(None, feed)[0]
        d = float(np.abs(got - want).max())
        print(f"  {name}: max |onnx - sentence-transformers| = {d:.3g}")
        worst = max(worst, d)
    s = ort.InferenceSession(os.path.join(onnx_dir, "model_opt_int8.onnx"), providers=["CPUExecutionProvider"])
    got = s.run(None, feed)[0]
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    print(f"  model_opt_int8.onnx: min cosine to fp32 = {cos.min():.5f}")
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--only", choices=["kobert-base", "klue-base"])
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(MODELS, exist_ok=True)
    manifest = {}
    for name, vocab, seed_off in (("kobert-base", 8002, 1), ("klue-base", 32000, 2)):
        if args.only and name != args.only:
            continue
        st_dir = os.path.join(MODELS, name)
        golden = os.path.join(GOLDEN, "models", "kobert-base")
        if name == "kobert-base" and os.path.isdir(golden) and not args.force:
            st_dir = golden
        elif args.force or not os.path.exists(os.path.join(st_dir, "modules.json")):
            print(f"{name}: building random-weight model (vocab {vocab})")
            build_st(st_dir, vocab, mg.DEFAULT_SEED + seed_off)
        onnx_dir = os.path.join(MODELS, name, "onnx")
        if args.force or not os.path.exists(os.path.join(onnx_dir, "model_opt_int8.onnx")):
            print(f"{name}: exporting ONNX")
            info = export_onnx(st_dir, onnx_dir)
            print("  fused:", info["fused_ops"])
            d = check(st_dir, onnx_dir)
            assert d < 1e-3, f"{name}: ONNX export differs from sentence-transformers by {d}"
        manifest[name] = {"st": os.path.relpath(st_dir, HERE), "onnx": os.path.relpath(onnx_dir, HERE),
                          "vocab_size": vocab}
    old = {}
    mpath = os.path.join(MODELS, "models.json")
    if os.path.exists(mpath):
        old = json.load(open(mpath))
    old.update(manifest)
    json.dump(old, open(mpath, "w"), indent=1)
    print("wrote", mpath)
    return 0


if __name__ == "__main__":
    sys.exit(main())
