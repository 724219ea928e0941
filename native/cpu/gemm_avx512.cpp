// GEMM y = x Wᵀ + b (AVX-512). W [N][K] is packed once at load into panels of 32 output columns,
// k-major: panel p holds W[32p + j][k] at [p][k][j] (zero-padded past N). The 12×32 micro-kernel keeps
// 24 zmm accumulators and broadcasts x[m][k]. Cache blocking: K in blocks of KC so a panel's KC × 32 slice
// stays in L1 while every row tile of the row block (mc × KC of x, in L2) streams past it; the first
// K block starts from the bias, later ones accumulate into y. Work is split over (row block, panel group)
// tasks. Tails: rows via the kernel's row-count template; a last partial panel runs over the whole K
// into a stack tile and copies the valid columns out.
// At small M (≤ 24 rows) K is not blocked: each panel (K × 128 bytes) is read from DRAM once, and the kernel walks
// it as four concurrent streams (k = i, K/4 + i, K/2 + i, 3K/4 + i) so more cache lines are in flight while it
// computes (12-token batch-1 forward, 2 threads: 21.1 → 15.5 ms p50).
// Epilogue: gemm_gelu_avx512 applies GELU (erf or tanh form) to each finished tile while it is still in L1
// (after the last K block), so the FFN's intermediate activation costs no extra pass over memory.
// Work split: (row block, panel group) tasks, the group count chosen so the task count is a multiple of the
// thread count where possible (no thread idles at the end); at batch 1 (one row block) that splits N across
// the threads. Row tiles inside a block are balanced (16 rows → 8 + 8, not 12 + 4).
// The driver (blocking, split, tails, epilogue) is gemmF32Task in gemm_driver.h, shared with gemm_avx2.cpp and
// compiled here with this file's flags; the micro-kernel is this file's.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
constexpr int KC = 256;

// One k step of the micro-kernel: c[r] += A[r][k] · B[k][0:NR], with a software prefetch `pf` k steps ahead in
// the panel (the hardware prefetcher restarts at every 4 KB page; at small M the GEMM streams W from memory and the
// prefetch keeps the stream going across page boundaries).
template <int R>
inline __attribute__((always_inline)) void kstep(const float* A, int lda, const float* B, int k, int pf, __m512* c0,
                                                 __m512* c1) {
  _mm_prefetch(reinterpret_cast<const char*>(B + (k + pf) * NR), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(B + (k + pf) * NR + 16), _MM_HINT_T0);
  const __m512 w0 = _mm512_load_ps(B + k * NR), w1 = _mm512_load_ps(B + k * NR + 16);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(A[r * lda + k]);
    c0[r] = _mm512_fmadd_ps(a, w0, c0[r]);
    c1[r] = _mm512_fmadd_ps(a, w1, c1[r]);
  }
}

// Long K (≥ kStreamK: the small-M path, where each panel is read from DRAM once): the k loop walks kStreams
// segments of the panel in turn (k = i, seg + i, 2·seg + i, …; the tail K mod kStreams last, in order). Same
// accumulators, same products, only the summation order differs. Four concurrent streams keep more cache lines in
// flight than one: the core computes between loads, so one stream leaves DRAM idle (measured on a synthetic
// 12-row loop over 340 MB: 8.7 GB/s one stream, 13.0 GB/s four, 1 thread).
constexpr int kStreams = 4;
constexpr int kStreamK = 512;

// C[R][NR] = (acc ? C : bias) + A[R][0:K] · B[0:K][NR]
template <int R>
void kernel(const float* A, int lda, const float* B, int K, const float* bias, bool acc, float* C, int ldc) {
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
  int k = 0;
  if (K >= kStreamK) {
    const int seg = K / kStreams;
    for (int i = 0; i < seg; ++i) {
#pragma GCC unroll 4
      for (int s = 0; s < kStreams; ++s) kstep<R>(A, lda, B, s * seg + i, 32, c0, c1);
    }
    k = kStreams * seg;
  }
  for (; k < K; ++k) kstep<R>(A, lda, B, k, 64, c0, c1);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(C + r * ldc, c0[r]);
    _mm512_storeu_ps(C + r * ldc + 16, c1[r]);
  }
}

void runKernel(int rows, const float* A, int lda, const float* B, int K, const float* bias, bool acc, float* C,
               int ldc) {
  switch (rows) {
    case 12: kernel<12>(A, lda, B, K, bias, acc, C, ldc); break;
    case 11: kernel<11>(A, lda, B, K, bias, acc, C, ldc); break;
    case 10: kernel<10>(A, lda, B, K, bias, acc, C, ldc); break;
    case 9: kernel<9>(A, lda, B, K, bias, acc, C, ldc); break;
    case 8: kernel<8>(A, lda, B, K, bias, acc, C, ldc); break;
    case 7: kernel<7>(A, lda, B, K, bias, acc, C, ldc); break;
    case 6: kernel<6>(A, lda, B, K, bias, acc, C, ldc); break;
    case 5: kernel<5>(A, lda, B, K, bias, acc, C, ldc); break;
    case 4: kernel<4>(A, lda, B, K, bias, acc, C, ldc); break;
    case 3: kernel<3>(A, lda, B, K, bias, acc, C, ldc); break;
    case 2: kernel<2>(A, lda, B, K, bias, acc, C, ldc); break;
    default: kernel<1>(A, lda, B, K, bias, acc, C, ldc); break;
  }
}

#include "gemm_driver.h"

}  // namespace

void pack_avx512(PackedWeight& w) { gemmPackPanels<NR>(w); }

void gemm_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
void gemm_gelu_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y,
                           Activation act, ThreadPool* pool);
void gemm_int8_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                      ThreadPool* pool);

namespace {
void run(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmF32Job j;
  gemmF32Operands(j, x, w, bias, y, ep);
  // Small M (batch 1): the whole weight is streamed once and each B element feeds few rows, so the GEMM is
  // bound by memory; one K block per panel lets the kernel read the panel as kStreams concurrent streams
  // (K ≥ kStreamK) instead of K/KC separate 32 KB pieces. The x rows (M × K) stay in L1/L2 either way.
  j.kc = M <= 2 * MR ? w.K : KC;
  // Row blocks of at most 192 rows (mc × KC of x stays in L2), balanced so the last is not tiny.
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, 192, MR));
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, gemmF32Task<NR, MR, true, runKernel, gemmGeluEpilogue32>, &j);
}
}  // namespace

void gemm_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  if (w.bf16) return gemm_bf16_avx512(x, M, w, bias, y, pool);  // packed by pack_bf16 (precision 'bf16')
  if (w.int8) return gemm_int8_avx512(x, M, w, bias, y, 0, pool);  // packed by pack_int8 (precision 'int8')
  run(x, M, w, bias, y, 0, pool);
}

void gemm_gelu_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                      ThreadPool* pool) {
  if (w.bf16) return gemm_gelu_bf16_avx512(x, M, w, bias, y, act, pool);
  if (w.int8) return gemm_int8_avx512(x, M, w, bias, y, act == Activation::Gelu ? 1 : 2, pool);
  run(x, M, w, bias, y, act == Activation::Gelu ? 1 : 2, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
