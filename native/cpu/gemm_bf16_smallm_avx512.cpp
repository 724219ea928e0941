// The bf16 GEMM y = x Wᵀ + b at small M (batch 1: a few tokens) on CPUs with AVX512-BF16 but without usable AMX:
// gemm_bf16_avx512.cpp routes M ≤ kBf16SmallRows here when gemm_bf16_amx_small cannot run. Same packed weights
// (panels of 32 columns × k-pairs, see pack_bf16_avx512), same bf16 rounding of x and W, so the same reference
// (gemm_bf16_raw_ref) and bound apply.
//
// Why not vdpbf16ps: at small M the whole weight streams from memory once per call and each element feeds only M
// multiply-adds, so the kernel must keep up with memory. On the Sapphire Rapids class CPU this was tuned on,
// vdpbf16ps retires at half the fp32 FMA rate (1.8 G/s vs 7.2 G/s per core), so the blocked vdpbf16ps engine was
// compute-bound at ≈ 12 GB/s of W at M = 12 (2 threads). Here the bf16 pairs of W are widened to fp32 in registers
// (the low bf16 of a word shifted up, the high one with the low half masked off: 2 integer ops per 16 columns × 2
// k) and multiplied with plain FMAs: ≈ 16-22 GB/s at M = 12 (M = 24: 10 GB/s, still ahead of vdpbf16ps' 7).
// Products of two bf16 values are exact in fp32, so the only difference from the reference is summation order.
// As the fp32 small-M path (gemm_avx512.cpp):
// - x is rounded to bf16 and widened back to fp32 ONCE per call, by the caller, into the model's scratch
//   (PackedWeight::act_scratch, grown to the largest x seen: no allocation on the hot path);
// - no K blocking: each panel (KP × 128 bytes: 48 KB at K = 768, 192 KB at K = 3072) is walked once, start to end,
//   for every row tile (a second row tile, M > 12, re-reads it from L2);
// - the walk interleaves four k-streams (pairs i, KP/4 + i, KP/2 + i, 3KP/4 + i; the tail KP mod 4 last) with a
//   software prefetch kPf pairs ahead in each stream, so four cache-line streams are in flight instead of one.
//   Near a stream's end the prefetch moves on to the same stream of the next panel (contiguous in memory), so the
//   next panel does not start cold. (One stream with prefetch measured within noise of four at M = 12.)
// - work split: panel groups only (one row block), sized by gemmPanelsPerGroupBalanced so both threads get equal
//   shares of N.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#define KST_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
constexpr int kBf16SmallRows = 24;  // most rows this engine takes (two row tiles)
constexpr int kStreams = 4;
constexpr int kStreamKP = 256;  // four streams from K = 512 up; shorter panels are one stream
constexpr int kPf = 32;         // prefetch distance in pairs (32 × 128 B = 4 KB ahead per stream)

#include "gemm_driver.h"

struct SmallJob {
  GemmSplit s;
  const float* a;  // x rounded to bf16 as fp32, M rows of 2·KP floats
  int M, N, KP;
  const uint32_t* packed;
  const float* bias;
  float* y;
  int ep;
};

// c[r] += x[r][2kp] · W[2kp][0:32] + x[r][2kp + 1] · W[2kp + 1][0:32], prefetching the pair at `pf`. A holds x
// already rounded to bf16 and widened back to fp32 (exact), 2·lda floats per row; the packed pair words of B are
// widened to fp32 in registers (the low bf16 of a word is k even: shift it up; the high one is k odd: mask the low
// half off), then plain FMAs. Both products are exact in fp32, as in the reference.
template <int R>
KST_BF16_TARGET inline __attribute__((always_inline)) void kstep(const float* A, int lda, const uint32_t* B, int kp,
                                                                 int pf, __m512* c0, __m512* c1) {
  _mm_prefetch(reinterpret_cast<const char*>(B + static_cast<size_t>(pf) * NR), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(B + static_cast<size_t>(pf) * NR + 16), _MM_HINT_T0);
  const __m512i p0 = _mm512_load_si512(B + static_cast<size_t>(kp) * NR);
  const __m512i p1 = _mm512_load_si512(B + static_cast<size_t>(kp) * NR + 16);
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(p0, 16)), e1 = _mm512_castsi512_ps(_mm512_slli_epi32(p1, 16));
  const __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(p0, hi)), o1 = _mm512_castsi512_ps(_mm512_and_si512(p1, hi));
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 ae = _mm512_set1_ps(A[r * 2 * lda + 2 * kp]), ao = _mm512_set1_ps(A[r * 2 * lda + 2 * kp + 1]);
    c0[r] = _mm512_fmadd_ps(ae, e0, c0[r]);
    c1[r] = _mm512_fmadd_ps(ae, e1, c1[r]);
    c0[r] = _mm512_fmadd_ps(ao, o0, c0[r]);
    c1[r] = _mm512_fmadd_ps(ao, o1, c1[r]);
  }
}

// C[R][32] = bias + A[R][0:KP] · B[0:KP][32], the whole K in one pass (see the header for the stream walk).
template <int R>
KST_BF16_TARGET void kernel(const float* A, int lda, const uint32_t* B, int KP, const float* bias, float* C,
                            int ldc) {
  __m512 c0[R], c1[R];
  const __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    c0[r] = b0;
    c1[r] = b1;
  }
  int kp = 0;
  if (KP >= kStreamKP) {
    const int seg = KP / kStreams;
    for (int i = 0; i < seg; ++i) {
      // pair i + kPf of each stream, or past the stream's end the same offset into the next panel's stream
      const int ahead = i + kPf < seg ? kPf : kPf + KP - seg;
#pragma GCC unroll 4
      for (int s = 0; s < kStreams; ++s) kstep<R>(A, lda, B, s * seg + i, s * seg + i + ahead, c0, c1);
    }
    kp = kStreams * seg;
  }
  for (; kp < KP; ++kp) kstep<R>(A, lda, B, kp, kp + 2 * kPf, c0, c1);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(C + r * ldc, c0[r]);
    _mm512_storeu_ps(C + r * ldc + 16, c1[r]);
  }
}

KST_BF16_TARGET void runKernel(int rows, const float* A, int lda, const uint32_t* B, int KP, const float* bias,
                               float* C, int ldc) {
  withRows<12>(rows, [&](auto R) { kernel<decltype(R)::value>(A, lda, B, KP, bias, C, ldc); });
}

// x[M][K] → dst[M][2·KP]: each x rounded to bf16 (round to nearest even) and widened back to fp32, an odd K's
// last row entry padded with 0.
KST_BF16_TARGET void convertRows(const float* x, int M, int K, float* dst) {
  const int K2 = (K + 1) & ~1;
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)), round = _mm512_set1_epi32(0x7FFF),
                one = _mm512_set1_epi32(1);
  for (int r = 0; r < M; ++r) {
    const float* s = x + static_cast<size_t>(r) * K;
    float* d = dst + static_cast<size_t>(r) * K2;
    int k = 0;
    for (; k + 16 <= K; k += 16) {  // bf16Bits() in lanes: u + 0x7FFF + (bit 16 of u), keep the high half
      const __m512i u = _mm512_loadu_si512(s + k);
      const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
      const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, round), odd);
      _mm512_storeu_si512(d + k, _mm512_and_si512(r, hi));
    }
    for (; k < K2; ++k) {
      const uint32_t u = k < K ? bf16Bits(s[k]) << 16 : 0u;
      __builtin_memcpy(d + k, &u, 4);
    }
  }
}

KST_BF16_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const SmallJob& j = *static_cast<const SmallJob*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  const int tr = gemmTileRows(j.M, MR);
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    for (int p = b.p0; p < b.p1; ++p) {
      const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KP * NR;
      const int n0 = p * NR, cols = imin(NR, j.N - n0);
      const bool full = cols == NR;
      const float* bp = gemmPanelBias<NR>(j.bias, n0, cols, bias);
      for (int m = 0; m < j.M; m += tr) {
        const int rows = imin(tr, j.M - m);
        const float* A = j.a + static_cast<size_t>(m) * 2 * j.KP;
        if (full) {
          float* C = j.y + static_cast<size_t>(m) * j.N + n0;
          runKernel(rows, A, j.KP, B, j.KP, bp, C, j.N);
          if (j.ep) gemmGeluEpilogue32(j.ep, C, rows, j.N);
        } else {  // partial last panel: through the stack tile, valid columns copied out
          runKernel(rows, A, j.KP, B, j.KP, bp, tile, NR);
          if (j.ep) gemmGeluEpilogue32(j.ep, tile, rows, NR);
          gemmTileOut<NR>(tile, rows, cols, j.y + static_cast<size_t>(m) * j.N + n0, j.N);
        }
      }
    }
  }
}

}  // namespace

// Whether gemm_bf16_small takes an M-row GEMM: M ≤ kBf16SmallRows (the caller's threshold).
bool gemm_bf16_small_fits(int M) { return M >= 1 && M <= kBf16SmallRows; }

// ep: 0 none, 1 GELU erf, 2 GELU tanh. Requires gemm_bf16_small_fits(M).
KST_BF16_TARGET void gemm_bf16_small(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                                     ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  AlignedBuffer local;
  AlignedBuffer& buf = w.act_scratch ? *w.act_scratch : local;
  buf.resize(static_cast<size_t>(M) * ((w.K + 1) & ~1));
  float* abuf = buf.data();
  SmallJob j;
  j.M = M;
  j.N = w.N;
  j.KP = (w.K + 1) / 2;
  j.a = abuf;
  j.packed = reinterpret_cast<const uint32_t*>(w.pdata);
  j.bias = bias;
  j.y = y;
  j.ep = ep;
  convertRows(x, M, w.K, abuf);
  j.s = gemmSplitColumns(M, w.N, NR, poolThreads(pool));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
