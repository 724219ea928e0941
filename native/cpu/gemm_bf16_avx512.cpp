// GEMM y = x Wᵀ + b with bf16 inputs and fp32 accumulation (AVX512-BF16 `vdpbf16ps`), the opt-in
// `precision: 'bf16'` path. W is rounded to bf16 (round to nearest even) and packed once at load into panels of
// 32 output columns holding k-pairs: panel p, pair kp holds (W[32p + j][2kp], W[32p + j][2kp + 1]) in dword j
// (zero-padded past N and past an odd K), so one vdpbf16ps does 32 multiply-adds per lane pair. Activations are
// rounded to bf16 per (row block, K block) into a stack buffer, once per task. Blocking and the work split
// follow gemm_avx512.cpp (12 × 32 tile, KC = 256, balanced row tiles); the split, the task coordinates and the
// GELU epilogue come from gemm_driver.h.
// Only used where the CPU has AVX512_BF16 (bf16_supported_avx512()); gemm_bf16_raw_ref in ref.cpp is its
// reference. This file also picks the engine per call (dispatch(), below): at small M (batch 1) the small-M engines
// gemm_bf16_amx_small / gemm_bf16_small; otherwise, where AMX-BF16 is usable, gemm_bf16_amx
// (gemm_bf16_amx_avx512.cpp), else this file's blocked kernel.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#define KST_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
}  // namespace

// gemm_bf16_amx_avx512.cpp: the same GEMM on AMX tiles, where available.
bool amx_bf16_ready();
size_t amx_pack_slack();
void gemm_bf16_amx(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                   ThreadPool* pool);
// The small-M (batch 1) engines: gemm_bf16_amx_small_avx512.cpp (AMX) and gemm_bf16_smallm_avx512.cpp (widened to
// fp32 FMAs); each says whether it takes an M × K GEMM.
bool gemm_bf16_amx_small_fits(int M);
void gemm_bf16_amx_small(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                         ThreadPool* pool);
bool gemm_bf16_small_fits(int M);
void gemm_bf16_small(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                     ThreadPool* pool);

namespace {
constexpr int KC = 256;  // floats of K per block (KC / 2 pairs)
constexpr int MC = 192;  // most rows in a row block

#include "gemm_driver.h"

template <int R>
KST_BF16_TARGET void kernel(const uint32_t* A, int lda, const uint32_t* B, int KP, const float* bias, bool acc,
                            float* C, int ldc) {
  __m512 c0[R], c1[R];
  if (acc) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = _mm512_loadu_ps(C + r * ldc);
      c1[r] = _mm512_loadu_ps(C + r * ldc + 16);
    }
  } else {
    const __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = b0;
      c1[r] = b1;
    }
  }
  for (int kp = 0; kp < KP; ++kp) {
    const __m512bh w0 = (__m512bh)_mm512_load_si512(B + kp * NR);
    const __m512bh w1 = (__m512bh)_mm512_load_si512(B + kp * NR + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[r * lda + kp]));
      c0[r] = _mm512_dpbf16_ps(c0[r], a, w0);
      c1[r] = _mm512_dpbf16_ps(c1[r], a, w1);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(C + r * ldc, c0[r]);
    _mm512_storeu_ps(C + r * ldc + 16, c1[r]);
  }
}

KST_BF16_TARGET void runKernel(int rows, const uint32_t* A, int lda, const uint32_t* B, int KP, const float* bias,
                               bool acc, float* C, int ldc) {
  withRows<12>(rows, [&](auto R) { kernel<decltype(R)::value>(A, lda, B, KP, bias, acc, C, ldc); });
}

// x[rows][k0 : k0 + kc] → dst[rows][kc/2 pairs] (bf16 pairs, an odd tail padded with 0).
KST_BF16_TARGET void convertBlock(const float* x, int ldx, int rows, int kc, uint32_t* dst, int ldd) {
  const int kp = (kc + 1) / 2;
  for (int r = 0; r < rows; ++r) {
    const float* s = x + static_cast<size_t>(r) * ldx;
    uint32_t* d = dst + static_cast<size_t>(r) * ldd;
    int k = 0;
    for (; k + 32 <= kc; k += 32)
      _mm512_storeu_si512(d + k / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k)));
    for (; k < kc; k += 2) {
      const uint32_t lo = bf16Bits(s[k]), hi = k + 1 < kc ? bf16Bits(s[k + 1]) : 0u;
      d[k / 2] = lo | (hi << 16);
    }
    (void)kp;
  }
}

KST_BF16_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmBf16Job& j = *static_cast<const GemmBf16Job*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  alignas(64) uint32_t abuf[MC * (KC / 2)];  // this task's row block, one K block, as bf16 pairs
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    const int m0 = b.m0, m1 = b.m1, p0 = b.p0, p1 = b.p1;
    const int tr = gemmTileRows(m1 - m0, MR);
    for (int k0 = 0; k0 < j.K; k0 += KC) {
      const int kc = imin(KC, j.K - k0), kpc = (kc + 1) / 2, kp0 = k0 / 2;
      const bool first = k0 == 0, last = k0 + kc >= j.K;
      convertBlock(j.x + static_cast<size_t>(m0) * j.K + k0, j.K, m1 - m0, kc, abuf, KC / 2);
      for (int p = p0; p < p1; ++p) {
        const uint32_t* B = j.packed + (static_cast<size_t>(p) * j.KP + kp0) * NR;
        const int n0 = p * NR, cols = imin(NR, j.N - n0);
        const bool full = cols == NR;
        const float* bp = bias;
        if (first) {
          if (full && j.bias) {
            bp = j.bias + n0;
          } else {
            for (int c = 0; c < NR; ++c) bias[c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
          }
        }
        for (int m = m0; m < m1; m += tr) {
          const int rows = imin(tr, m1 - m);
          const uint32_t* A = abuf + static_cast<size_t>(m - m0) * (KC / 2);
          if (full) {
            float* C = j.y + static_cast<size_t>(m) * j.N + n0;
            runKernel(rows, A, KC / 2, B, kpc, bp, !first, C, j.N);
            if (last && j.ep) gemmGeluEpilogue32(j.ep, C, rows, j.N);
          } else {  // partial panel: accumulate through the stack tile
            if (!first)
              for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c) tile[r * NR + c] = j.y[static_cast<size_t>(m + r) * j.N + n0 + c];
            runKernel(rows, A, KC / 2, B, kpc, bp, !first, tile, NR);
            if (last && j.ep) gemmGeluEpilogue32(j.ep, tile, rows, NR);
            gemmTileOut<NR>(tile, rows, cols, j.y + static_cast<size_t>(m) * j.N + n0, j.N);
          }
        }
      }
    }
  }
}

void run(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmBf16Job j;
  gemmBf16Operands(j, x, w, bias, y, ep);
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, MC, MR));
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace

// The AVX512-BF16 engine alone (ep: 0 none, 1 GELU erf, 2 GELU tanh); the op tests call both engines directly.
void gemm_bf16_dpbf16(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                      ThreadPool* pool) {
  run(x, M, w, bias, y, ep, pool);
}

bool bf16_supported_avx512() { return __builtin_cpu_supports("avx512bf16"); }

void pack_bf16_avx512(PackedWeight& w) {
  const int N = w.N, K = w.K, KP = (K + 1) / 2, panels = (N + NR - 1) / NR;
  // bf16 pairs stored as 32-bit words in the float buffer (same byte size as KP × 32 floats per panel).
  // + zeroed slack: the AMX kernel reads whole 16-pair chunks past the last panel's last pair.
  const size_t words = static_cast<size_t>(panels) * KP * NR, slack = NR + amx_pack_slack();
  uint32_t* dst = reinterpret_cast<uint32_t*>(packedAlloc(w, words + slack));
  for (size_t i = words; i < words + slack; ++i) dst[i] = 0;
  for (int p = 0; p < panels; ++p)
    for (int kp = 0; kp < KP; ++kp)
      for (int c = 0; c < NR; ++c) {
        const int n = p * NR + c, k = 2 * kp;
        uint32_t lo = 0, hi = 0;
        if (n < N) {
          // subnormal weights as zeros (flushSubnormal): the small-M engine widens them back to fp32 for its FMAs
          lo = bf16Bits(flushSubnormal(w.raw[static_cast<size_t>(n) * K + k]));
          if (k + 1 < K) hi = bf16Bits(flushSubnormal(w.raw[static_cast<size_t>(n) * K + k + 1]));
        }
        dst[(static_cast<size_t>(p) * KP + kp) * NR + c] = lo | (hi << 16);
      }
  w.nr = NR;
  w.bf16 = true;
}

namespace {
// Engine choice (M = rows of x; measured at M = 1, 12, 16, 24 on the four BERT-base shapes, 2 threads, W streamed
// from memory, GB/s of W read — see the small-M files' headers for why):
// - AMX: M ≤ 512 the small-M AMX engine (≈ 35-40 GB/s at M = 12 vs 12 GB/s for the blocked AMX engine; above
//   32 rows in passes of 32 over each panel, still ahead of the blocked engine at 33-768 rows: the numbers in
//   gemm_bf16_amx_small_avx512.cpp), above it the blocked AMX engine;
// - no AMX: M ≤ 24 the small-M fp32-FMA engine (M = 12: 16-22 GB/s vs 11-14 for vdpbf16ps, which retires at half
//   the FMA rate here), above it the blocked vdpbf16ps engine.
void dispatch(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool) {
  if (gemm_bf16_amx_small_fits(M)) return gemm_bf16_amx_small(x, M, w, bias, y, ep, pool);
  if (amx_bf16_ready()) return gemm_bf16_amx(x, M, w, bias, y, ep, pool);
  if (gemm_bf16_small_fits(M)) return gemm_bf16_small(x, M, w, bias, y, ep, pool);
  run(x, M, w, bias, y, ep, pool);
}
}  // namespace

void gemm_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  dispatch(x, M, w, bias, y, 0, pool);
}

void gemm_gelu_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y,
                           Activation act, ThreadPool* pool) {
  dispatch(x, M, w, bias, y, act == Activation::Gelu ? 1 : 2, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
