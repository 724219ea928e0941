// GEMM y = x Wᵀ + b (AVX2 + FMA). W [N][K] is packed once at load into panels of 16 output columns,
// k-major: panel p holds W[16p + j][k] at [p][k][j] (zero-padded past N). The 6×16 micro-kernel keeps
// 12 ymm accumulators and broadcasts x[m][k]. Cache blocking: K in blocks of KC so a panel's KC × 16 slice
// stays in L1 while every row tile of the row block (mc × KC of x, in L2) streams past it; the first
// K block starts from the bias, later ones accumulate into y. Up to kWholeKRows rows (a sentence or a few at
// batch 1), K is not blocked: each panel is then one sequential stream from memory (K × 64 bytes) instead of
// K / KC slices K × 64 bytes apart, and the kernel's software prefetch keeps it coming; with 2–4 row tiles
// (smallTask) the tiles take turns over each 64-k chunk of the panel. Work is split over (row block, panel group)
// tasks. Tails: rows via the kernel's row-count template; a last partial panel runs over the whole K
// into a stack tile and copies the valid columns out. The driver (blocking, split, tails) is gemmF32Task in
// gemm_driver.h, compiled here with this file's flags; the kernel is this file's. Epilogue: gemm_gelu_avx2 applies
// GELU (erf or tanh form) to each finished tile in registers before the store (the last K block or chunk), so the
// FFN's intermediate activation costs no second pass over memory. Against GEMM then the GELU pass (M × 3072 × 768,
// 2 threads, calls alternating in one process, p10 GFLOP/s): 12 rows 77 → 79, 64: 125 → 128, 128: 126 → 128, 512:
// 127 → 128 (the GELU itself, ~8 % of this GEMM, stays).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 16;
constexpr int MR = 6;
constexpr int KC = 256;
// The 12 × 768 model's forward at batch 1, 2 threads, AVX2 kernels on this project's AVX-512 machine (KST_ISA=avx2),
// median of 20 calls per variant, variants alternating (ms; before → prefetch → prefetch and K not blocked up to
// 24 rows): 6 tokens 22.41 → 15.96 → 14.25, 12 tokens 27.52 → 22.84 → 20.73, 18 tokens 34.33 → 29.40 → 26.67; K
// not blocked up to 48 rows against up to 24: 30 tokens 40.15 → 37.02, 36: 44.53 → 41.76, 48: 56.52 → 53.28.
// Unblocked K measured 2–4 % faster even at 64–512 tokens here (1 × 64 71.95 → 69.62 ms, 32 × 16 489 → 471), but
// there x's row block no longer stays in L2, which this 2 MB-L2 machine does not show for CPUs with 256–512 KB, so
// large M keeps the blocking. Not measured on an AVX2-only CPU.
constexpr int kWholeKRows = 48;
constexpr int kPf = 32;  // software prefetch distance, k steps (one 64-byte panel row each); 16 slower, 64 equal

// C[R][NR] = ep((acc ? C : bias) + A[R][0:K] · B[0:K][NR]), ep 0 none, 1 GELU erf, 2 GELU tanh (gelu_erf8 /
// gelu_tanh8, the functions of the GELU pass gelu_avx2: the same output as GEMM then that pass, bitwise).
template <int R>
void kernel(const float* A, int lda, const float* B, int K, const float* bias, bool acc, int ep, float* C, int ldc) {
  __m256 c0[R], c1[R];
  if (acc) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = _mm256_loadu_ps(C + r * ldc);
      c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
    }
  } else {
    const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = b0;
      c1[r] = b1;
    }
  }
  for (int k = 0; k < K; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(B + (k + kPf) * NR), _MM_HINT_T0);
    const __m256 w0 = _mm256_load_ps(B + k * NR), w1 = _mm256_load_ps(B + k * NR + 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, w0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, w1, c1[r]);
    }
  }
  if (ep == 1) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = gelu_erf8(c0[r]);
      c1[r] = gelu_erf8(c1[r]);
    }
  } else if (ep == 2) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = gelu_tanh8(c0[r]);
      c1[r] = gelu_tanh8(c1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(C + r * ldc, c0[r]);
    _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
  }
}

void runKernel(int rows, const float* A, int lda, const float* B, int K, const float* bias, bool acc, int ep,
               float* C, int ldc) {
  withRows<6>(rows, [&](auto R) { kernel<decltype(R)::value>(A, lda, B, K, bias, acc, ep, C, ldc); });
}

#include "gemm_driver.h"

// Small M (MR < M ≤ kChunkRows: two to four row tiles): panel by panel, K in chunks of kChunkK, every row tile over
// each chunk in turn while the chunk is in L1 (the tiles' sums stay in y between chunks), instead of each tile
// streaming the whole panel after the other. Measured as above (ms; whole-K tiles one after the other → chunks of
// 64): 8 tokens 17.68 → 16.26, 12: 20.70 / 20.01 → 18.12 / 17.59, 16: 25.41 → 22.62, 24: 31.84 / 31.10 → 30.57 /
// 30.04, 36: 42.36 → 42.33, 48: 53.12 → 55.09 (hence up to 24 rows); chunks of 128 and 32 slower than 64, 256 no gain.
constexpr int kChunkRows = 24;
constexpr int kChunkK = 64;
void smallTask(void* ctx, int64_t begin, int64_t end, int) {
  const GemmF32Job& j = *static_cast<const GemmF32Job*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[kChunkRows * NR];
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    for (int p = b.p0; p < b.p1; ++p) {
      const auto [B, n0, cols, bp] = gemmPanelRef<NR>(j, p, bias);
      float* C = cols == NR ? j.y + n0 : tile;
      const int ldc = cols == NR ? j.N : NR;
      for (int k0 = 0; k0 < j.K; k0 += kChunkK)
        for (int m = 0; m < j.s.M; m += MR)
          runKernel(imin(MR, j.s.M - m), j.x + static_cast<size_t>(m) * j.K + k0, j.K, B + static_cast<size_t>(k0) * NR,
                    imin(kChunkK, j.K - k0), bp, k0 > 0, k0 + kChunkK >= j.K ? j.ep : 0,
                    C + static_cast<size_t>(m) * ldc, ldc);
      if (cols != NR)
        gemmTileOut<NR>(tile, j.s.M, cols, j.y + n0, j.N);
    }
  }
}

}  // namespace

void pack_avx2(PackedWeight& w) { gemmPackPanels<NR>(w); }

void gemm_int8_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                    ThreadPool* pool);  // gemm_int8_avx2.cpp (AVX-VNNI)

namespace {
void run(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmF32Job j;
  gemmF32Operands(j, x, w, bias, y, ep);
  j.kc = M <= kWholeKRows ? w.K : KC;
  // Row blocks of at most 192 rows (mc × KC of x stays in L2), balanced so the last is not tiny.
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, 192, MR));
  gemmSetGroups(j.s, gemmPanelsPerGroupSimple(j.s.panels, j.s.mblocks, poolThreads(pool)));
  if (M > MR && M <= kChunkRows) {
    parallelRun(pool, j.s.tasks(), 1, smallTask, &j);
    return;
  }
  parallelRun(pool, j.s.tasks(), 1, gemmF32Task<NR, MR, runKernel>, &j);
}
}  // namespace

void gemm_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  if (w.int8) return gemm_int8_avx2(x, M, w, bias, y, 0, pool);  // packed by pack_int8 (precision 'int8')
  run(x, M, w, bias, y, 0, pool);
}

void gemm_gelu_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                    ThreadPool* pool) {
  const int ep = act == Activation::Gelu ? 1 : 2;
  if (w.int8) return gemm_int8_avx2(x, M, w, bias, y, ep, pool);
  run(x, M, w, bias, y, ep, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
