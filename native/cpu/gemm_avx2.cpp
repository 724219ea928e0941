// GEMM y = x Wᵀ + b (AVX2 + FMA). W [N][K] is packed once at load into panels of 16 output columns,
// k-major: panel p holds W[16p + j][k] at [p][k][j] (zero-padded past N). The 6×16 micro-kernel keeps
// 12 ymm accumulators and broadcasts x[m][k]. Cache blocking: K in blocks of KC so a panel's KC × 16 slice
// stays in L1 while every row tile of the row block (mc × KC of x, in L2) streams past it; the first
// K block starts from the bias, later ones accumulate into y. Work is split over (row block, panel group)
// tasks. Tails: rows via the kernel's row-count template; a last partial panel runs over the whole K
// into a stack tile and copies the valid columns out.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 16;
constexpr int MR = 6;
constexpr int KC = 256;

// C[R][NR] = (acc ? C : bias) + A[R][0:K] · B[0:K][NR]
template <int R>
void kernel(const float* A, int lda, const float* B, int K, const float* bias, bool acc, float* C, int ldc) {
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
    const __m256 w0 = _mm256_load_ps(B + k * NR), w1 = _mm256_load_ps(B + k * NR + 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, w0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, w1, c1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(C + r * ldc, c0[r]);
    _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
  }
}

void runKernel(int rows, const float* A, int lda, const float* B, int K, const float* bias, bool acc, float* C,
               int ldc) {
  switch (rows) {
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
};

void task(void* ctx, int64_t begin, int64_t end, int) {
  const Job& j = *static_cast<const Job*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  for (int64_t t = begin; t < end; ++t) {
    const int mb = static_cast<int>(t / j.n_pg), gb = static_cast<int>(t % j.n_pg);
    const int m0 = mb * j.mc, m1 = imin(j.M, m0 + j.mc);
    const int p0 = gb * j.pg, p1 = imin(j.panels, p0 + j.pg);
    const int pf = imin(p1, j.full_panels);  // full panels of this group: [p0, pf)
    for (int k0 = 0; k0 < j.K; k0 += KC) {
      const int kc = imin(KC, j.K - k0);
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
        for (int m = m0; m < m1; m += MR) {
          runKernel(imin(MR, m1 - m), j.x + static_cast<size_t>(m) * j.K + k0, j.K, B, kc, bp, k0 > 0,
                    j.y + static_cast<size_t>(m) * j.N + n0, j.N);
        }
      }
    }
    for (int p = pf; p < p1; ++p) {  // the last, partial panel
      const float* B = j.packed + static_cast<size_t>(p) * j.K * NR;
      const int n0 = p * NR, cols = j.N - n0;
      for (int c = 0; c < NR; ++c) bias[c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
      for (int m = m0; m < m1; m += MR) {
        const int rows = imin(MR, m1 - m);
        runKernel(rows, j.x + static_cast<size_t>(m) * j.K, j.K, B, j.K, bias, false, tile, NR);
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) j.y[static_cast<size_t>(m + r) * j.N + n0 + c] = tile[r * NR + c];
      }
    }
  }
}

}  // namespace

void pack_avx2(PackedWeight& w) {
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

void gemm_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  Job j;
  j.x = x;
  j.M = M;
  j.N = w.N;
  j.K = w.K;
  j.packed = w.pdata;
  j.bias = bias;
  j.y = y;
  j.panels = (w.N + NR - 1) / NR;
  j.full_panels = w.N / NR;
  // Row blocks of at most 192 rows (mc × KC of x stays in L2), balanced so the last is not tiny.
  const int mblocks = (M + 191) / 192;
  j.mc = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  const int threads = poolThreads(pool);
  // Enough panel groups that every thread gets work even for a single row block.
  const int want_groups = imax(1, (2 * threads + mblocks - 1) / mblocks);
  j.pg = imax(1, imin(8, (j.panels + want_groups - 1) / want_groups));
  j.n_pg = (j.panels + j.pg - 1) / j.pg;
  parallelRun(pool, static_cast<int64_t>(mblocks) * j.n_pg, 1, task, &j);
}

void gelu_avx2(float* x, size_t n, Activation act, ThreadPool* pool);  // gelu_avx2.cpp

// AVX2 has no fused epilogue yet: GEMM, then GELU as a second pass.
void gemm_gelu_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                    ThreadPool* pool) {
  gemm_avx2(x, M, w, bias, y, pool);
  gelu_avx2(y, static_cast<size_t>(M) * w.N, act, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
