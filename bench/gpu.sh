#!/usr/bin/env bash
# bench/gpu.sh — the GPU run of issue 4, in one script for the device machine (≤ 8 minutes, so a rerun fits
# in a 15-minute lease). In order, each step time-boxed, every result appended to a JSON-lines file:
#   1. the card: nvidia-smi (name, driver, compute capability); no GPU → exit 3 with the reason (see --dry-run)
#   2. build libkst_cuda.so + tests + bench harness for this card's architecture only (cmake, or plain
#      nvcc/g++ when cmake is missing), or take them from --prebuilt DIR
#   3. test_cuda_loader (device selection) and test_cuda_ops --require-gpu (every CUDA op vs native/cpu/ref.cpp)
#   4. a random-weight KoBERT-base model (bench/gpu/make_model.py) and the KorSTS-test token ids
#   5. parity: CUDA fp16 / bf16 vs the CPU fp32 path, cosine per sentence (fp16 must be ≥ 0.9999), and all
#      three against PyTorch sentence-transformers fp32
#   6. timings: kst (bench/gpu/kst_gpu_bench) and PyTorch sentence-transformers fp16 (bench/gpu/torch_bench.py)
#      on the same weights and ids: KorSTS-test throughput at batch 32 / 128, batch-1 latency p50 / p99,
#      grid batch {1,32,256} × length {16,128}; GEMM TFLOP/s vs torch bf16 / fp16
#   7. bench/results/gpu.md (card, driver, commit, tables, targets) + bench/results/gpu-raw.jsonl
# Exit status: 0 all tests and the fp16 parity bound passed; 1 something failed; 2 usage; 3 no GPU.
#
#   bench/gpu.sh [--commit SHA]               the real run (on the device machine)
#   bench/gpu.sh --dry-run                    no GPU needed: the build, the CPU side of parity, torch on the
#                                             CPU with a tiny model and grid, the report (to a temp file)
# Options: --quick (fewer repetitions), --prebuilt DIR (libkst_cuda.so, test_cuda_ops, test_cuda_loader,
# kst_gpu_bench built elsewhere), --archs LIST (CMake CUDA architectures, default: this card's, e.g. 90-real),
# --budget SECONDS (default 450), --out FILE (report path), --work DIR (scratch, default a temp dir),
# --direct-build (skip cmake), --python PY, --export DIR (copy report, raw records and logs there; default $OUT,
# the folder the device tool brings back).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0 QUICK=0 PREBUILT="" ARCHS="" REPORT="" BUDGET=450 WORK="" DIRECT=0 COMMIT="${KST_COMMIT:-}"
PY="${PYTHON:-python3}"
# The device tool brings back only what is written under $OUT: the report, raw records and logs are copied there.
EXPORT="${OUT:-}"

usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "${BASH_SOURCE[0]}"; }
die_usage() { echo "bench/gpu.sh: $*" >&2; echo "run bench/gpu.sh --help for the options" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --quick) QUICK=1 ;;
    --prebuilt) [ $# -ge 2 ] || die_usage "--prebuilt needs a directory"; PREBUILT="$(cd "$2" 2>/dev/null && pwd)" || die_usage "--prebuilt: no such directory: $2"; shift ;;
    --archs) [ $# -ge 2 ] || die_usage "--archs needs a list (e.g. 90-real)"; ARCHS="$2"; shift ;;
    --budget) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || die_usage "--budget needs a number of seconds"; BUDGET="$2"; shift ;;
    --out) [ $# -ge 2 ] || die_usage "--out needs a file"; REPORT="$2"; shift ;;
    --export) [ $# -ge 2 ] || die_usage "--export needs a directory"; EXPORT="$2"; shift ;;
    --work) [ $# -ge 2 ] || die_usage "--work needs a directory"; WORK="$2"; shift ;;
    --commit) [ $# -ge 2 ] || die_usage "--commit needs a value"; COMMIT="$2"; shift ;;
    --python) [ $# -ge 2 ] || die_usage "--python needs an interpreter"; PY="$2"; shift ;;
    --direct-build) DIRECT=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
  shift
done

START=$SECONDS
left() { echo $(( BUDGET - (SECONDS - START) )); }
log() { printf '[gpu.sh %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
jstr() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1" 2>/dev/null || printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\')"; }
record() { printf '%s\n' "$1" >> "$RAW"; }
skip() { log "skipped: $1 ($2)"; record "{\"kind\":\"skipped\",\"what\":$(jstr "$1"),\"why\":$(jstr "$2")}"; }
FAILED=0
fail() { log "FAILED: $*"; FAILED=1; }
# timeout for a step: its own cap, but never past the budget (keeps 20 s for the report)
tbox() { local cap=$1 l; l=$(( $(left) - 20 )); [ "$l" -lt "$cap" ] && cap=$l; [ "$cap" -lt 1 ] && cap=1; echo "$cap"; }
have_time() { [ "$(left)" -ge "$1" ]; }

# ---- 1. the card ------------------------------------------------------------------------------------------
CARD="" DRIVER="" CC="" CUDA_DRIVER=""
if command -v nvidia-smi >/dev/null 2>&1 && SMI="$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1)" && [ -n "$SMI" ]; then
  IFS=',' read -r CARD DRIVER CC <<< "$(echo "$SMI" | head -1)"
  CARD="$(echo "$CARD" | xargs)"; DRIVER="$(echo "$DRIVER" | xargs)"; CC="$(echo "$CC" | xargs)"
  CUDA_DRIVER="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)"
  log "GPU: $CARD, driver $DRIVER (CUDA $CUDA_DRIVER), compute capability $CC"
elif [ "$DRY" = 1 ]; then
  log "dry run: no GPU here ($(command -v nvidia-smi >/dev/null 2>&1 && echo "nvidia-smi failed: ${SMI:-no output}" || echo "no nvidia-smi")); running the CPU parts only"
else
  echo "bench/gpu.sh: no NVIDIA GPU is visible: $(command -v nvidia-smi >/dev/null 2>&1 && echo "nvidia-smi failed: ${SMI:-no output}" || echo "nvidia-smi is not installed")." >&2
  echo "This script is for the device machine. To check its CPU parts here, run: bench/gpu.sh --dry-run" >&2
  exit 3
fi
WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/kst-gpu.XXXXXX")}"
mkdir -p "$WORK" || die_usage "cannot create $WORK"
RAW="$WORK/raw.jsonl"
: > "$RAW"
if [ -z "$ARCHS" ]; then
  if [ -n "$CC" ]; then ARCHS="$(echo "$CC" | tr -d .)-real"; else ARCHS="90-real"; fi
fi
if [ -z "$COMMIT" ]; then
  COMMIT="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  if [ "$COMMIT" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain -- native bench/gpu bench/gpu.sh test CMakeLists.txt 2>/dev/null)" ]; then
    COMMIT="$COMMIT+uncommitted changes"
  fi
fi
CPU_NAME="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
JOBS="$(nproc)"

# ---- 2. build -----------------------------------------------------------------------------------------------
find_nvcc() {
  local c
  for c in "${NVCC:-}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc /usr/local/bin/nvcc; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  c="$("$PY" -c 'import nvidia.cuda_nvcc, os; print(os.path.join(os.path.dirname(nvidia.cuda_nvcc.__file__), "bin", "nvcc"))' 2>/dev/null)"
  [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  return 1
}
gencode_flags() {  # CMake arch list → nvcc -gencode flags
  local a n out=""
  for a in ${1//;/ }; do
    n="${a%%-*}"
    case "$a" in
      *-real) out="$out -gencode arch=compute_$n,code=sm_$n" ;;
      *-virtual) out="$out -gencode arch=compute_$n,code=compute_$n" ;;
      *) out="$out -gencode arch=compute_$n,code=[sm_$n,compute_$n]" ;;
    esac
  done
  echo "$out"
}
# The same targets as CMakeLists.txt, with plain compiler calls (for machines without cmake).
direct_build() {
  local B="$1" NV="$2" GC; GC="$(gencode_flags "$ARCHS")"
  mkdir -p "$B/obj" || return 1
  local inc="-I$ROOT/native/include -I$ROOT/native/core -I$ROOT/native/cpu"
  {
    for f in "$ROOT"/native/core/*.cpp "$ROOT"/native/cpu/*.cpp; do
      local extra=""
      case "$f" in
        *_avx2.cpp) extra="-mavx2 -mfma -mf16c" ;;
        *_avx512.cpp) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c" ;;
      esac
      echo "g++ -std=c++17 -O2 -fPIC -ffp-contract=off -fno-math-errno $extra $inc -c $f -o $B/obj/core_$(basename "$f").o"
    done
    for f in "$ROOT"/native/cuda/*.cu; do
      echo "$NV -std=c++17 -O3 $GC -Xcompiler -fPIC,-fvisibility=hidden -I$ROOT/native/cuda -c $f -o $B/obj/cuda_$(basename "$f").o"
    done
  } > "$B/compile.txt"
  xargs -P "$JOBS" -I{} sh -c '{}' < "$B/compile.txt" || return 1
  rm -f "$B/libkst_core.a" && ar rcs "$B/libkst_core.a" "$B"/obj/core_*.o || return 1
  local ops; ops="$(ls "$B"/obj/cuda_*.o | grep -v cuda_api.cu.o)"
  # shellcheck disable=SC2086
  "$NV" -shared $GC -o "$B/libkst_cuda.so" "$B/obj/cuda_api.cu.o" $ops -cudart static -Xlinker --exclude-libs,ALL || return 1
  # shellcheck disable=SC2086
  "$NV" -std=c++17 -O2 $GC $inc -I"$ROOT/native/cuda" -I"$ROOT/test" -DKST_CUDA_LIBRARY_PATH="\"$B/libkst_cuda.so\"" \
    "$ROOT/test/test_cuda_ops.cu" $ops "$B/libkst_core.a" -cudart static -o "$B/test_cuda_ops" -lpthread -ldl || return 1
  g++ -std=c++17 -O2 $inc -I"$ROOT/test" -DKST_CUDA_LIBRARY_PATH="\"$B/libkst_cuda.so\"" "$ROOT/test/test_cuda_loader.cpp" \
    "$B/libkst_core.a" -o "$B/test_cuda_loader" -lpthread -ldl || return 1
  g++ -std=c++17 -O2 $inc "$ROOT/bench/gpu/kst_gpu_bench.cpp" "$B/libkst_core.a" -o "$B/kst_gpu_bench" -lpthread -ldl
}

BUILD="$WORK/build"
NVCC_PATH="" NVCC_VER="" BUILD_S=""
if [ -n "$PREBUILT" ]; then
  BUILD="$PREBUILT"
  for f in libkst_cuda.so test_cuda_ops test_cuda_loader kst_gpu_bench; do
    [ -e "$BUILD/$f" ] || [ -e "$BUILD/Release/$f" ] || { echo "bench/gpu.sh: --prebuilt $BUILD has no $f" >&2; exit 2; }
  done
  NVCC_VER="prebuilt ($BUILD)"
  log "using prebuilt binaries from $BUILD"
else
  NVCC_PATH="$(find_nvcc)" || {
    echo "bench/gpu.sh: nvcc not found (PATH, /usr/local/cuda/bin, pip nvidia-cuda-nvcc). Build elsewhere and pass --prebuilt DIR" >&2
    exit 1
  }
  NVCC_VER="$("$NVCC_PATH" --version | sed -n 's/.*release \([0-9.]*\).*/CUDA \1/p')"
  log "building for $ARCHS with $NVCC_PATH ($NVCC_VER) in $BUILD"
  T0=$SECONDS
  if [ "$DIRECT" = 0 ] && command -v cmake >/dev/null 2>&1; then
    GEN=""; command -v ninja >/dev/null 2>&1 && GEN="-G Ninja"
    # shellcheck disable=SC2086
    timeout "$(tbox 240)" cmake -S "$ROOT" -B "$BUILD" $GEN -DCMAKE_BUILD_TYPE=Release -DKST_CUDA_ARCHS="$ARCHS" \
        -DCMAKE_CUDA_COMPILER="$NVCC_PATH" > "$WORK/cmake.log" 2>&1 &&
      timeout "$(tbox 240)" cmake --build "$BUILD" -j "$JOBS" --target kst_cuda test_cuda_ops test_cuda_loader kst_gpu_bench \
        > "$WORK/build.log" 2>&1
    RC=$?
  else
    log "no cmake (or --direct-build): compiling with nvcc / g++ directly"
    timeout "$(tbox 300)" bash -c "$(declare -f direct_build gencode_flags); ROOT='$ROOT' ARCHS='$ARCHS' JOBS='$JOBS' direct_build '$BUILD' '$NVCC_PATH'" > "$WORK/build.log" 2>&1
    RC=$?
  fi
  BUILD_S=$((SECONDS - T0))
  if [ $RC != 0 ]; then
    tail -40 "$WORK/cmake.log" "$WORK/build.log" 2>/dev/null >&2
    echo "bench/gpu.sh: build failed (exit $RC); logs in $WORK" >&2
    exit 1
  fi
  log "built in ${BUILD_S}s"
fi
bin() { if [ -e "$BUILD/$1" ]; then echo "$BUILD/$1"; else echo "$BUILD/Release/$1"; fi; }
export KST_CUDA_LIBRARY="$(bin libkst_cuda.so)"

record "{\"kind\":\"meta\",\"mode\":\"$([ "$DRY" = 1 ] && echo dry-run || echo gpu)\",\"date\":$(jstr "$(date -u '+%Y-%m-%d %H:%M UTC')"),\"commit\":$(jstr "$COMMIT"),\"card\":$(jstr "$CARD"),\"driver\":$(jstr "$DRIVER"),\"cuda_driver\":$(jstr "$CUDA_DRIVER"),\"nvcc\":$(jstr "$NVCC_VER"),\"archs\":$(jstr "$ARCHS"),\"cpu\":$(jstr "$CPU_NAME"),\"build_s\":$(jstr "$BUILD_S"),\"raw\":\"gpu-raw.jsonl\"}"

# ---- 3. tests -------------------------------------------------------------------------------------------------
run_test() {  # kind exe args...
  local kind=$1 exe=$2; shift 2
  local log="$WORK/$kind.log" rc status
  timeout "$(tbox 200)" "$exe" "$@" > "$log" 2>&1; rc=$?
  local summary; summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed|^SKIP' "$log" | tail -1)"
  if [ $rc = 0 ]; then status=passed
  elif [ $rc = 77 ]; then status="skipped (no GPU)"
  elif [ $rc = 124 ]; then status="timed out"
  else status="FAILED (exit $rc)"
  fi
  grep -E '^FAIL' "$log" | head -20 >&2
  log "$kind: $status — $summary"
  record "{\"kind\":\"$kind\",\"status\":$(jstr "$status"),\"summary\":$(jstr "$summary"),\"exit\":$rc}"
  [ $rc = 0 ] || { [ "$DRY" = 1 ] && [ $rc = 77 ]; } || fail "$kind"
}
run_test loader_tests "$(bin test_cuda_loader)"
if [ "$DRY" = 1 ]; then
  run_test op_tests "$(bin test_cuda_ops)"  # expected: SKIP (exit 77) without a GPU
else
  run_test op_tests "$(bin test_cuda_ops)" --require-gpu $([ "$QUICK" = 1 ] && echo --quick)
fi

# ---- 4. model and ids ------------------------------------------------------------------------------------------
TORCH=1
"$PY" -c 'import torch, transformers, sentence_transformers, safetensors' > /dev/null 2>&1 || TORCH=0
MODEL="$WORK/model"
if [ $TORCH = 0 ]; then
  skip "model, parity and PyTorch timings" "$PY cannot import torch, transformers, sentence-transformers and safetensors"
  [ "$DRY" = 1 ] || fail "python stack missing"
else
  if [ "$DRY" = 1 ]; then
    MARGS="--layers 2 --hidden 128 --heads 2 --intermediate 256 --limit 64"
  else
    MARGS=""
  fi
  # shellcheck disable=SC2086
  if timeout "$(tbox 120)" "$PY" "$ROOT/bench/gpu/make_model.py" --out "$MODEL" $MARGS 2> "$WORK/make_model.log" | grep '^{' >> "$RAW"; then
    log "model written to $MODEL"
  else
    tail -5 "$WORK/make_model.log" >&2
    fail "make_model.py"
    TORCH=0
  fi
fi

# ---- 5. parity ----------------------------------------------------------------------------------------------------
if [ $TORCH = 1 ]; then
  PARGS="--parity --dump $WORK/emb"
  [ "$DRY" = 1 ] && PARGS="$PARGS --cpu-only"
  # shellcheck disable=SC2086
  timeout "$(tbox 150)" "$(bin kst_gpu_bench)" --model "$MODEL" --ids "$MODEL/ids.bin" $PARGS > "$WORK/parity.jsonl" 2> "$WORK/parity.log"
  RC=$?
  cat "$WORK/parity.jsonl" >> "$RAW"
  grep '"kind":"parity"' "$WORK/parity.jsonl" | sed 's/^/  /' >&2
  if [ $RC != 0 ]; then
    tail -3 "$WORK/parity.log" >&2
    fail "parity (exit $RC)"
    if [ "$DRY" = 0 ] && have_time 60; then  # where does it diverge? per-layer outputs of 4 sentences, CPU vs CUDA
      timeout "$(tbox 60)" "$(bin kst_gpu_bench)" --model "$MODEL" --ids "$MODEL/ids.bin" --layers "$WORK/layers" > /dev/null 2>&1 &&
        "$PY" "$ROOT/bench/gpu/compare_dumps.py" "$WORK/layers/cpu" "$WORK/layers/cuda" > "$WORK/layers.log" 2>&1
      head -40 "$WORK/layers.log" >&2
    fi
  fi
  if have_time 100; then
    DEV=cuda; [ "$DRY" = 1 ] && DEV=cpu
    timeout "$(tbox 90)" "$PY" "$ROOT/bench/gpu/torch_bench.py" --model "$MODEL" --ids "$MODEL/ids.bin" --device $DEV --dtype fp32 \
      --compare-prefix "$WORK/emb" --skip-timing 2> "$WORK/torch_compare.log" | grep '^{' >> "$RAW" || { tail -3 "$WORK/torch_compare.log" >&2; fail "comparison with PyTorch fp32"; }
  else
    skip "comparison with PyTorch fp32" "time budget"
  fi
fi

# ---- 6. timings ---------------------------------------------------------------------------------------------------
if [ "$DRY" = 0 ]; then
  if [ $TORCH = 1 ] && have_time 90; then
    log "kst timings"
    timeout "$(tbox 120)" "$(bin kst_gpu_bench)" --model "$MODEL" --ids "$MODEL/ids.bin" --bench $([ "$QUICK" = 1 ] && echo --quick) \
      2> "$WORK/kst_bench.log" | grep '^{' >> "$RAW" || { tail -3 "$WORK/kst_bench.log" >&2; fail "kst timings"; }
  else
    skip "kst timings" "time budget or no model"
  fi
  if have_time 60; then
    log "GEMM / attention kernel timings"
    timeout "$(tbox 90)" "$(bin test_cuda_ops)" --bench 2> "$WORK/gemm_bench.log" | grep '^{' >> "$RAW" || fail "kernel timings"
  else
    skip "GEMM timings" "time budget"
  fi
  if [ $TORCH = 1 ] && have_time 60; then
    log "PyTorch sentence-transformers fp16 timings"
    TARGS="--gemm"
    [ "$QUICK" = 1 ] && TARGS="$TARGS --latency-n 200 --passes 2 --gemm-m 4096,8192"
    # shellcheck disable=SC2086
    timeout "$(tbox 180)" "$PY" "$ROOT/bench/gpu/torch_bench.py" --model "$MODEL" --ids "$MODEL/ids.bin" --device cuda --dtype fp16 $TARGS \
      2> "$WORK/torch_bench.log" | grep '^{' >> "$RAW" || { tail -3 "$WORK/torch_bench.log" >&2; fail "PyTorch timings"; }
  else
    skip "PyTorch timings" "time budget or no PyTorch"
  fi
elif [ $TORCH = 1 ]; then
  log "dry run: PyTorch timing code on the CPU (tiny model and grid; not a benchmark)"
  timeout "$(tbox 120)" "$PY" "$ROOT/bench/gpu/torch_bench.py" --model "$MODEL" --ids "$MODEL/ids.bin" --device cpu --dtype fp32 \
    --batches 32 --grid-batches 1,32 --grid-lengths 16 --latency-n 16 --passes 1 2> "$WORK/torch_bench.log" | grep '^{' >> "$RAW" ||
    { tail -3 "$WORK/torch_bench.log" >&2; fail "PyTorch timing code"; }
  skip "kst GPU timings and GEMM TFLOP/s" "dry run: no GPU"
fi

# ---- 7. report ----------------------------------------------------------------------------------------------------
if [ -z "$REPORT" ]; then
  if [ "$DRY" = 1 ]; then REPORT="$WORK/gpu-dryrun.md"; else REPORT="$ROOT/bench/results/gpu.md"; fi
fi
mkdir -p "$(dirname "$REPORT")"
RAWCOPY="$(dirname "$REPORT")/$(basename "$REPORT" .md)-raw.jsonl"
cp "$RAW" "$RAWCOPY"
"$PY" "$ROOT/bench/gpu/report.py" "$RAW" --out "$REPORT" >&2 || fail "report"
if [ -n "$EXPORT" ]; then
  mkdir -p "$EXPORT/gpu-logs" && cp "$REPORT" "$RAWCOPY" "$EXPORT/" && cp "$WORK"/*.log "$EXPORT/gpu-logs/" 2>/dev/null
  log "copied the report, raw records and logs to $EXPORT"
fi
log "done in $((SECONDS - START))s; report $REPORT; scratch $WORK"
[ "$FAILED" = 0 ] && exit 0 || exit 1
