#!/usr/bin/env bash
# CPU benchmark: builds what it needs, then runs bench/bench.js (arguments are passed on, e.g. --quick).
#   bash bench/run.sh [--threads 2] [--quick] [--models kobert-base,klue-base] [--out bench/results/cpu.md]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/Release/kst.node ] && [ -f dist/src/index.js ] && [ -x build/test_ops ] || npm run build
[ -d bench/node_modules/onnxruntime-node ] || (cd bench && npm install --ignore-scripts --no-audit --no-fund)
[ -f bench/models/models.json ] || python3 bench/make_models.py
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (quiet machine: < 0.5)" >&2
exec node bench/bench.js "$@"
