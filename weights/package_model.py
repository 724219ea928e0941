"""Copy a trained sentence-transformers folder into the package layout (weights/default, the folder src/ and package.json load).

Keeps what SentenceTransformer(dir) needs unchanged, adds the legacy keys max_seq_length / do_lower_case to
sentence_bert_config.json (read by older sentence-transformers and by the Node loader; sentence-transformers 6
reads the same 64 from tokenizer_config.json), ships the KoBERT .model + vocab.txt next to tokenizer.json, drops
training leftovers (checkpoints, the auto-generated model card) and checks that the folder loads and encodes.
Usage: python weights/package_model.py SRC_DIR [DST_DIR]
"""
import json, os, shutil, sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEEP = ["config.json", "model.safetensors", "modules.json", "sentence_bert_config.json",
        "config_sentence_transformers.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer_78b3253a26.model", "vocab.txt", os.path.join("1_Pooling", "config.json")]


def main(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.join(dst, "1_Pooling"))
    for name in KEEP:
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    p = os.path.join(dst, "sentence_bert_config.json")
    cfg = json.load(open(p))
    tcfg = json.load(open(os.path.join(dst, "tokenizer_config.json")))
    cfg["max_seq_length"] = tcfg["model_max_length"]
    cfg["do_lower_case"] = False
    json.dump(cfg, open(p, "w"), indent=2)
    with open(os.path.join(dst, "README.md"), "w", encoding="utf-8") as f:
        f.write("# ko-sbert-small\n\nThe offline default model of ko-sentence-transformers. "
                "Model card, recipe and figures: ../README.md (in the repository: weights/README.md).\n")
    import torch
    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(dst, device="cpu")
    e = m.encode(["한국어 모델을 공유합니다."])
    ids = m.tokenizer("한국어 모델을 공유합니다.")["input_ids"]
    print(f"loaded {dst}: dim {e.shape[1]}, max_seq_length {m.max_seq_length}, ids {ids}")
    for r, _, fs in os.walk(dst):
        for f in sorted(fs):
            print(f"  {os.path.relpath(os.path.join(r, f), dst):40s} {os.path.getsize(os.path.join(r, f)):>10,d}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "default"))
