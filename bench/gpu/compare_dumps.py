#!/usr/bin/env python3
"""Layer-by-layer comparison of two KST_DUMP directories (kst_gpu_bench --layers DIR writes DIR/cpu and DIR/cuda):
for every tensor name both dumped (embeddings, encoder.layer.{i}.output, output), the max abs difference and the
worst row cosine, so a parity failure points at the first op that diverges."""
import os
import sys

import numpy as np


def manifest(d):
    out = {}
    with open(os.path.join(d, "manifest.tsv")) as f:
        for line in f:
            seq, name, rows, cols = line.rstrip("\n").split("\t")
            out[name] = (os.path.join(d, f"{seq}.{name}.f32"), int(rows), int(cols))
    return out


def main():
    if len(sys.argv) != 3:
        print("usage: compare_dumps.py CPU_DIR CUDA_DIR", file=sys.stderr)
        return 2
    a, b = manifest(sys.argv[1]), manifest(sys.argv[2])
    print(f"{'tensor':45s} {'rows x cols':>12s} {'max |diff|':>12s} {'min row cos':>12s}")
    for name in a:
        if name not in b:
            continue
        pa, r, c = a[name]
        x = np.fromfile(pa, dtype=np.float32).reshape(r, c)
        y = np.fromfile(b[name][0], dtype=np.float32).reshape(r, c)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-30)
        print(f"{name:45s} {f'{r}x{c}':>12s} {np.abs(x - y).max():12.4g} {cos.min():12.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
