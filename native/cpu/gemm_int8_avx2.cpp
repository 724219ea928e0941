// GEMM y = x Wᵀ + b in int8 with AVX-VNNI (the VEX-encoded `vpdpbusd` on ymm: Alder Lake and later client
// cores, which have no AVX-512), the precision 'int8' path of the avx2 op table. Same quantisation and the same
// exact int32 sums as gemm_int8_avx512.cpp (see its header for the math and why activations are u8 with a zero
// point), so the output is bitwise that of gemm_int8_raw_ref. Layout for ymm: weight panels of 16 columns × k-quads
// (gemmPackInt8<16>), a 6 × 16 kernel with 12 ymm int32 accumulators over the whole K, the dequantisation, bias and
// GELU on the registers, masked stores for a partial last panel. Activations are quantised per row once per GEMM
// into the model's scratch (PackedWeight::act_scratch).
// Only used where the CPU has AVX-VNNI (int8_supported_avx2()).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <cstring>

#define KST_AVXVNNI_TARGET __attribute__((target("avxvnni,avx2,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 16;
constexpr int MR = 6;
constexpr int MC = 192;

#include "gemm_driver.h"

inline float hmin8(__m256 v) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One row: quantize_row_u8_ref's math, 8 floats at a time (the tail in scalar, same operations); bytes [K, lda) = 0.
KST_AVXVNNI_TARGET void quantRow(const float* x, int K, int lda, uint8_t* q, float* scale, int32_t* zp) {
  __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    vlo = _mm256_min_ps(vlo, v);
    vhi = _mm256_max_ps(vhi, v);
  }
  float lo = hmin8(vlo), hi = hmax8(vhi);
  for (; k < K; ++k) {
    lo = x[k] < lo ? x[k] : lo;
    hi = x[k] > hi ? x[k] : hi;
  }
  const float range = hi - lo;
  if (!(range > 0.f)) {
    *scale = 0.f;
    *zp = 0;
    std::memset(q, 0, static_cast<size_t>(lda));
    return;
  }
  const float inv = 255.f / range;
  *scale = range / 255.f;
  int32_t z = static_cast<int32_t>(__builtin_nearbyintf(-lo * inv));
  z = z < 0 ? 0 : (z > 255 ? 255 : z);
  *zp = z;
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i vz = _mm256_set1_epi32(z), v0 = _mm256_setzero_si256(), v255 = _mm256_set1_epi32(255);
  for (k = 0; k + 8 <= K; k += 8) {
    // _mm256_cvtps_epi32 rounds by MXCSR: to nearest even, as nearbyint in the reference.
    __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv));
    i = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(i, vz), v0), v255);
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k), _mm_packus_epi16(w16, w16));
  }
  for (; k < K; ++k) {
    int32_t v = static_cast<int32_t>(__builtin_nearbyintf(x[k] * inv)) + z;
    q[k] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
  std::memset(q + K, 0, static_cast<size_t>(lda - K));
}

struct QuantCtx {
  const float* x;
  int K, lda;
  uint8_t* q;
  float* scale;
  int32_t* zp;
};

KST_AVXVNNI_TARGET void quantTask(void* ctx, int64_t begin, int64_t end, int) {
  const QuantCtx& c = *static_cast<const QuantCtx*>(ctx);
  for (int64_t m = begin; m < end; ++m)
    quantRow(c.x + m * c.K, c.K, c.lda, c.q + m * c.lda, c.scale + m, c.zp + m);
}

// y = fma(float(acc − zp · Σw), sx · sw, b): gemm_int8_raw_ref's epilogue, operation for operation.
KST_AVXVNNI_TARGET inline __m256 dequant8(__m256i acc, __m256i zp, __m256i wsum, __m256 sx, __m256 sw, __m256 b) {
  const __m256i a = _mm256_sub_epi32(acc, _mm256_mullo_epi32(zp, wsum));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_mul_ps(sx, sw), b);
}

// C[R rows][16 columns, lanes masked by m0 / m1] = epilogue(Σ_k A[r] · B) over one panel B (kq quads of 16 dwords).
template <int R>
KST_AVXVNNI_TARGET void kernel(const uint8_t* A, int lda, const uint32_t* B, int kq, const float* sx,
                               const int32_t* zp, const float* sw, const int32_t* wsum, const float* bias, int ep,
                               float* C, int ldc, __m256i m0, __m256i m1, bool full) {
  __m256i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    c0[r] = _mm256_setzero_si256();
    c1[r] = _mm256_setzero_si256();
  }
  for (int q = 0; q < kq; ++q) {
    _mm_prefetch(reinterpret_cast<const char*>(B + (q + 64) * NR), _MM_HINT_T0);
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(B + q * NR));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(B + q * NR + 8));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, A + static_cast<size_t>(r) * lda + 4 * q, 4);
      const __m256i a = _mm256_set1_epi32(a4);
      // c += a (u8) · w (s8), in place; {vex} (%{ %} in asm): the AVX-VNNI encoding (the EVEX one needs AVX512-VNNI + VL).
      // Inline asm because GCC 12 copies and spills the accumulators around the _mm256_dpbusd_avx_epi32 builtin.
      __asm__("%{vex%} vpdpbusd %[w], %[a], %[c]" : [c] "+x"(c0[r]) : [a] "x"(a), [w] "x"(w0));
      __asm__("%{vex%} vpdpbusd %[w], %[a], %[c]" : [c] "+x"(c1[r]) : [a] "x"(a), [w] "x"(w1));
    }
  }
  const __m256 sw0 = _mm256_loadu_ps(sw), sw1 = _mm256_loadu_ps(sw + 8);
  const __m256i ws0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wsum));
  const __m256i ws1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wsum + 8));
  const __m256 b0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
  const __m256 b1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 s = _mm256_set1_ps(sx[r]);
    const __m256i z = _mm256_set1_epi32(zp[r]);
    __m256 y0 = dequant8(c0[r], z, ws0, s, sw0, b0), y1 = dequant8(c1[r], z, ws1, s, sw1, b1);
    if (ep == 1) {
      y0 = gelu_erf8(y0);
      y1 = gelu_erf8(y1);
    } else if (ep == 2) {
      y0 = gelu_tanh8(y0);
      y1 = gelu_tanh8(y1);
    }
    float* c = C + static_cast<size_t>(r) * ldc;
    if (full) {
      _mm256_storeu_ps(c, y0);
      _mm256_storeu_ps(c + 8, y1);
    } else {
      _mm256_maskstore_ps(c, m0, y0);
      _mm256_maskstore_ps(c + 8, m1, y1);
    }
  }
}

KST_AVXVNNI_TARGET void runKernel(int rows, const uint8_t* A, int lda, const uint32_t* B, int kq, const float* sx,
                                  const int32_t* zp, const float* sw, const int32_t* wsum, const float* bias, int ep,
                                  float* C, int ldc, __m256i m0, __m256i m1, bool full) {
  withRows<6>(rows, [&](auto R) {
    kernel<decltype(R)::value>(A, lda, B, kq, sx, zp, sw, wsum, bias, ep, C, ldc, m0, m1, full);
  });
}

KST_AVXVNNI_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmInt8Job& j = *static_cast<const GemmInt8Job*>(ctx);
  const int kq = (j.K + 3) / 4;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    const int tr = gemmTileRows(b.m1 - b.m0, MR);
    for (int p = b.p0; p < b.p1; ++p) {
      const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KQ * NR;
      const int n0 = p * NR, cols = imin(NR, j.N - n0);
      const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);      // lanes < cols
      const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);  // lanes < cols − 8
      for (int m = b.m0; m < b.m1; m += tr) {
        const int rows = imin(tr, b.m1 - m);
        runKernel(rows, j.a.q + static_cast<size_t>(m) * j.a.lda, j.a.lda, B, kq, j.a.scale + m, j.a.zp + m,
                  j.wscale + n0, j.wsum + n0, j.bias ? j.bias + n0 : nullptr, j.ep,
                  j.y + static_cast<size_t>(m) * j.N + n0, j.N, m0, m1, cols == NR);
      }
    }
  }
}

}  // namespace

bool int8_supported_avx2() { return __builtin_cpu_supports("avxvnni"); }

void pack_int8_avx2(PackedWeight& w) { gemmPackInt8<NR>(w); }

// x [M][K] → the quantised activations in buf (grown if needed), laid out for a weight of kq quads.
Int8Acts quantize_int8_avx2(const float* x, int M, int K, int kq, AlignedBuffer& buf, ThreadPool* pool) {
  buf.resize(gemmInt8ActFloats(M, kq));
  Int8Acts a = gemmInt8ActLayout(buf.data(), M, kq);
  QuantCtx c{x, K, a.lda, const_cast<uint8_t*>(a.q), const_cast<float*>(a.scale), const_cast<int32_t*>(a.zp)};
  const int64_t grain = static_cast<int64_t>(M) * K <= 65536 ? M : imax(1, 16384 / imax(1, K));
  parallelRun(pool, M, grain, quantTask, &c);
  const int Mp = (M + 31) & ~31;
  std::memset(c.q + static_cast<size_t>(M) * a.lda, 0, static_cast<size_t>(Mp - M) * a.lda);
  for (int m = M; m < Mp; ++m) {
    c.scale[m] = 0.f;
    c.zp[m] = 0;
  }
  return a;
}

// ops.gemm / ops.gemm_gelu (avx2 table) for an int8-packed weight (ep: 0 none, 1 GELU erf, 2 GELU tanh).
void gemm_int8_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                    ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  AlignedBuffer local;  // only where the caller gave no scratch (op tests, benchmarks); the model always does
  GemmInt8Job j;
  gemmInt8Operands(j, quantize_int8_avx2(x, M, w.K, w.kq, w.act_scratch ? *w.act_scratch : local, pool), w, bias, y,
                   ep);
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, MC, MR));
  gemmSetGroups(j.s, gemmPanelsPerGroupSimple(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
