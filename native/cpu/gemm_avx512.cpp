// GEMM y = x Wᵀ + b (AVX-512). W [N][K] is packed once at load into panels of 32 output columns,
// k-major: panel p holds W[32p + j][k] at [p][k][j] (zero-padded past N). The 12×32 micro-kernel keeps
// 24 zmm accumulators and broadcasts x[m][k]. Cache blocking: K in blocks of KC so a panel's KC × 32 slice
// stays in L1 while every row tile of the row block (mc × KC of x, in L2) streams past it; the first
// K block starts from the bias, later ones accumulate into y. Work is split over (row block, panel group)
// tasks. Tails: rows via the kernel's row-count template; a last partial panel runs over the whole K
// into a stack tile and copies the valid columns out.
// At small M (≤ 24 rows) K is not blocked: each panel is then one contiguous stream from memory.
// Epilogue: gemm_gelu_avx512 applies GELU (erf or tanh form) to each finished tile while it is still in L1
// (after the last K block), so the FFN's intermediate activation costs no extra pass over memory.
// Work split: (row block, panel group) tasks, the group count chosen so the task count is a multiple of the
// thread count where possible (no thread idles at the end); at batch 1 (one row block) that splits N across
// the threads. Row tiles inside a block are balanced (16 rows → 8 + 8, not 12 + 4).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
constexpr int KC = 256;

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
  for (int k = 0; k < K; ++k) {
    // Software prefetch 8 KB ahead in the panel (the hardware prefetcher restarts at every page; at small M
    // the GEMM streams W from memory and this keeps the stream going across page boundaries).
    _mm_prefetch(reinterpret_cast<const char*>(B + (k + 64) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(B + (k + 64) * NR + 16), _MM_HINT_T0);
    const __m512 w0 = _mm512_load_ps(B + k * NR), w1 = _mm512_load_ps(B + k * NR + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(a, w0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, w1, c1[r]);
    }
  }
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

struct Job {
  const float* x;
  int M, N, K;
  const float* packed;
  const float* bias;
  float* y;
  int mc, panels, full_panels, pg, n_pg;
  int ep;  // epilogue: 0 none, 1 GELU (erf), 2 GELU (tanh)
  int kc;  // K block: KC, or all of K for small M
};

// In place over `rows` rows of 32 floats (row stride ld) just written: y = gelu(y).
void epilogue(int ep, float* C, int rows, int ld) {
  for (int r = 0; r < rows; ++r) {
    float* c = C + static_cast<size_t>(r) * ld;
    if (ep == 1) {
      _mm512_storeu_ps(c, gelu_erf16(_mm512_loadu_ps(c)));
      _mm512_storeu_ps(c + 16, gelu_erf16(_mm512_loadu_ps(c + 16)));
    } else {
      _mm512_storeu_ps(c, gelu_tanh16(_mm512_loadu_ps(c)));
      _mm512_storeu_ps(c + 16, gelu_tanh16(_mm512_loadu_ps(c + 16)));
    }
  }
}

// Rows per tile for a block of `rows` rows: as even as possible, at most MR.
inline int tileRows(int rows) {
  const int nt = (rows + MR - 1) / MR;
  return (rows + nt - 1) / nt;
}

void task(void* ctx, int64_t begin, int64_t end, int) {
  const Job& j = *static_cast<const Job*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  for (int64_t t = begin; t < end; ++t) {
    const int mb = static_cast<int>(t / j.n_pg), gb = static_cast<int>(t % j.n_pg);
    const int m0 = mb * j.mc, m1 = imin(j.M, m0 + j.mc);
    const int p0 = gb * j.pg, p1 = imin(j.panels, p0 + j.pg);
    const int pf = imin(p1, j.full_panels);  // full panels of this group: [p0, pf)
    const int tr = tileRows(m1 - m0);
    for (int k0 = 0; k0 < j.K; k0 += j.kc) {
      const int kc = imin(j.kc, j.K - k0);
      const bool last = k0 + kc >= j.K;
      for (int p = p0; p < pf; ++p) {
        const float* B = j.packed + (static_cast<size_t>(p) * j.K + k0) * NR;
        const int n0 = p * NR;
        const float* bp = bias;
        if (k0 == 0) {
          if (j.bias) {
            bp = j.bias + n0;
          } else {
            for (int c = 0; c < NR; ++c) bias[c] = 0.f;
          }
        }
        for (int m = m0; m < m1; m += tr) {
          const int rows = imin(tr, m1 - m);
          float* C = j.y + static_cast<size_t>(m) * j.N + n0;
          runKernel(rows, j.x + static_cast<size_t>(m) * j.K + k0, j.K, B, kc, bp, k0 > 0, C, j.N);
          if (last && j.ep) epilogue(j.ep, C, rows, j.N);
        }
      }
    }
    for (int p = pf; p < p1; ++p) {  // the last, partial panel
      const float* B = j.packed + static_cast<size_t>(p) * j.K * NR;
      const int n0 = p * NR, cols = j.N - n0;
      for (int c = 0; c < NR; ++c) bias[c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
      for (int m = m0; m < m1; m += tr) {
        const int rows = imin(tr, m1 - m);
        runKernel(rows, j.x + static_cast<size_t>(m) * j.K, j.K, B, j.K, bias, false, tile, NR);
        if (j.ep) epilogue(j.ep, tile, rows, NR);
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) j.y[static_cast<size_t>(m + r) * j.N + n0 + c] = tile[r * NR + c];
      }
    }
  }
}

}  // namespace

void pack_avx512(PackedWeight& w) {
  const int N = w.N, K = w.K, panels = (N + NR - 1) / NR;
  float* dst = packedAlloc(w, static_cast<size_t>(panels) * K * NR + NR);
  for (int p = 0; p < panels; ++p)
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < NR; ++c) {
        const int n = p * NR + c;
        dst[(static_cast<size_t>(p) * K + k) * NR + c] = n < N ? w.raw[static_cast<size_t>(n) * K + k] : 0.f;
      }
  w.nr = NR;
}

void gemm_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
void gemm_gelu_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y,
                           Activation act, ThreadPool* pool);

namespace {
void run(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  Job j;
  j.x = x;
  j.M = M;
  j.N = w.N;
  j.K = w.K;
  j.packed = w.pdata;
  j.bias = bias;
  j.y = y;
  j.ep = ep;
  // Small M (batch 1): the whole weight is streamed once and each B element feeds few rows, so the GEMM is
  // bound by memory; one K block per panel reads each panel as a single contiguous run (one prefetch stream)
  // instead of K/KC separate 32 KB pieces. The x rows (M × K) stay in L1/L2 either way.
  j.kc = M <= 2 * MR ? w.K : KC;
  j.panels = (w.N + NR - 1) / NR;
  j.full_panels = w.N / NR;
  // Row blocks of at most 192 rows (mc × KC of x stays in L2), balanced so the last is not tiny.
  const int mblocks = (M + 191) / 192;
  j.mc = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  const int threads = poolThreads(pool);
  // Panel groups of at most 8 panels (a KC × 8 × 32 slice of W stays in L2 while the row tiles pass), at least
  // enough groups that every thread has work; prefer a group count that divides the panels evenly and makes
  // the task count a multiple of the thread count.
  // (≥ 4 tasks per thread where the panels allow: threads that get less CPU than others — a busy machine —
  // leave their share to the pool's dynamic hand-out)
  const int min_groups = imin(j.panels, imax((j.panels + 7) / 8, (4 * threads + mblocks - 1) / mblocks));
  int groups = 0;
  for (int g = min_groups; g <= imin(j.panels, 4 * min_groups) && !groups; ++g)
    if (j.panels % g == 0 && (static_cast<int64_t>(mblocks) * g) % threads == 0) groups = g;
  for (int g = min_groups; g <= imin(j.panels, 4 * min_groups) && !groups; ++g)
    if ((static_cast<int64_t>(mblocks) * g) % threads == 0) groups = g;
  if (!groups) groups = imin(j.panels, imax(min_groups, (2 * threads + mblocks - 1) / mblocks));
  j.pg = (j.panels + groups - 1) / groups;
  j.n_pg = (j.panels + j.pg - 1) / j.pg;
  parallelRun(pool, static_cast<int64_t>(mblocks) * j.n_pg, 1, task, &j);
}
}  // namespace

void gemm_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  if (w.bf16) return gemm_bf16_avx512(x, M, w, bias, y, pool);  // packed by pack_bf16 (precision 'bf16')
  run(x, M, w, bias, y, 0, pool);
}

void gemm_gelu_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                      ThreadPool* pool) {
  if (w.bf16) return gemm_gelu_bf16_avx512(x, M, w, bias, y, act, pool);
  run(x, M, w, bias, y, act == Activation::Gelu ? 1 : 2, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
