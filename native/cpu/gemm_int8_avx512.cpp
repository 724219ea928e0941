// GEMM y = x Wᵀ + b in int8 (AVX512-VNNI `vpdpbusd`), the opt-in `precision: 'int8'` path.
//
// Quantisation (quantize_weight_s8_ref / quantize_row_u8_ref in ref.cpp are the reference, term for term):
// - W once at load, symmetric s8 per output channel (scale = max|W[n]| / 127), packed by gemmPackInt8 into panels
//   of 32 columns × k-quads (4 consecutive k of one column in one dword), with the per-channel scales and the
//   column sums Σ_k q[n][k].
// - x on every call, per row (per token), ASYMMETRIC u8 with a zero point: x ≈ sx · (q − zp), range [min(0, min x),
//   max(0, max x)] over 255 steps. Why asymmetric u8 and not symmetric s8: vpdpbusd (and AMX tdpbusd) multiply u8 by
//   s8, so activations must be unsigned anyway, and the zero point costs nothing in the loop — Σ_k (q − zp)·w =
//   Σ_k q·w − zp·Σ_k w, where Σ_k w is the column sum packed at load, a one-multiply correction in the epilogue.
//   In exchange the full 256 levels cover the row's actual range: rows after GELU (the FFN output GEMM's input,
//   ≥ −0.17) or after LayerNorm are far from symmetric, and a symmetric scale would waste up to half the levels.
// - Output: acc = Σ_k q·w − zp·Σ_k w in exact int32 (|acc| ≤ 255 · 127 · K: no overflow below K = 66,000), then
//   y = fma(float(acc), sx[m] · sw[n], b[n]), then the existing epilogues (GELU erf / tanh) on the registers. The
//   sums are exact, so every engine (this one, AMX, AVX-VNNI) gives bitwise the same y as gemm_int8_raw_ref.
//
// Kernel: 12 rows × 32 columns, 24 zmm int32 accumulators; per k-quad two 64-byte loads of W and one dword
// broadcast of x per row, over the whole K (no K blocking: the int32 sums stay in registers, and a 32-column
// panel is 32·K bytes — 24 KB at K = 768, in L1). Work split, row tiles and task coordinates: gemm_driver.h, as the
// fp32 / bf16 GEMMs. Partial last panels use masked stores. The activations are quantised once per GEMM into the
// model's scratch (PackedWeight::act_scratch, grown to the largest M seen, never freed on the hot path).
// Where the CPU has AMX-INT8 and M is large enough, gemm_int8_amx (gemm_int8_amx_avx512.cpp) runs the same GEMM
// on tiles from the same quantised activations and packed weights. Where it has AMX-INT8 and M ≤ 384 (batch 1,
// short batches), gemm_int8_amx_small (gemm_int8_amx_small_avx512.cpp) runs instead, below kAmxMinRows too: tile
// rows = M (passes of 32 rows above 32) and a software prefetch ahead of the tile loads beat both this kernel and
// the blocked AMX engine at every M = 1-32 measured (M = 12, 2 threads, W from memory, µs for 2304×768 / 768×768
// / 3072×768 / 768×3072: VNNI 104 / 25 / 133 / 190, AMX 88 / 24 / 123 / 174, small-M AMX 55 / 19 / 89 / 116; M = 1:
// VNNI 68 / 17 / 99 / 112, small-M AMX 43 / 15 / 69 / 83), and the blocked AMX engine at M = 33-384
// (gemm_int8_amx_small_avx512.cpp).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <cstring>

#define KST_VNNI_TARGET __attribute__((target("avx512vnni,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
constexpr int MC = 192;
// AMX from this many rows up. Below, a 32-row AMX block is mostly zero padding and VNNI is faster (one core of this
// Sapphire Rapids, busy machine, GOP/s VNNI / AMX: M=1 193 / 149, M=4 544 / 405, M=8 591 / 458, M=12 858 / 916,
// M=16 813 / 1502, M=512 760-840 / 1620-2020; test_ops --bench).
constexpr int kAmxMinRows = 12;

#include "gemm_driver.h"

// One row: the u8 quantisation of quantize_row_u8_ref, 16 floats at a time; bytes [K, lda) are set to 0.
KST_VNNI_TARGET void quantRow(const float* x, int K, int lda, uint8_t* q, float* scale, int32_t* zp) {
  __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    vlo = _mm512_min_ps(vlo, v);
    vhi = _mm512_max_ps(vhi, v);
  }
  const __mmask16 tail = static_cast<__mmask16>((1u << (K - k)) - 1u);
  if (k < K) {  // masked-off lanes load 0, which is inside [lo, hi] anyway
    const __m512 v = _mm512_maskz_loadu_ps(tail, x + k);
    vlo = _mm512_min_ps(vlo, v);
    vhi = _mm512_max_ps(vhi, v);
  }
  const float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi), range = hi - lo;
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
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vz = _mm512_set1_epi32(z), v0 = _mm512_setzero_si512(), v255 = _mm512_set1_epi32(255);
  for (k = 0; k + 16 <= K; k += 16) {
    __m512i i = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + k), vinv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    i = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(i, vz), v0), v255);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtepi32_epi8(i));
  }
  if (k < K) {
    __m512i i = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + k), vinv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    i = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(i, vz), v0), v255);
    _mm_mask_storeu_epi8(q + k, tail, _mm512_cvtepi32_epi8(i));
    k = K;
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

KST_VNNI_TARGET void quantTask(void* ctx, int64_t begin, int64_t end, int) {
  const QuantCtx& c = *static_cast<const QuantCtx*>(ctx);
  for (int64_t m = begin; m < end; ++m)
    quantRow(c.x + m * c.K, c.K, c.lda, c.q + m * c.lda, c.scale + m, c.zp + m);
}

// C[R rows][32 columns, masked by k0 / k1] = epilogue(Σ_k A[r] · B): R rows of A (lda bytes apart) against one
// panel B (kq quads of 32 dwords), then the dequantisation, bias and GELU on the registers.
template <int R>
KST_VNNI_TARGET void kernel(const uint8_t* A, int lda, const uint32_t* B, int kq, const float* sx, const int32_t* zp,
                            const float* sw, const int32_t* wsum, const float* bias, int ep, float* C, int ldc,
                            __mmask16 k0, __mmask16 k1) {
  __m512i c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    c0[r] = _mm512_setzero_si512();
    c1[r] = _mm512_setzero_si512();
  }
  for (int q = 0; q < kq; ++q) {
    // 8 KB ahead in the panel (as the fp32 kernel): at batch 1 W streams from memory.
    _mm_prefetch(reinterpret_cast<const char*>(B + (q + 64) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(B + (q + 64) * NR + 16), _MM_HINT_T0);
    const __m512i w0 = _mm512_load_si512(B + q * NR), w1 = _mm512_load_si512(B + q * NR + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, A + static_cast<size_t>(r) * lda + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32(a4);
      // c += a (u8) · w (s8), in place. Inline asm: with the _mm512_dpbusd_epi32 builtin GCC 12 copies every
      // accumulator before the (destructive) instruction and spills them to the stack each step (-60% speed).
      __asm__("vpdpbusd %[w], %[a], %[c]" : [c] "+v"(c0[r]) : [a] "v"(a), [w] "v"(w0));
      __asm__("vpdpbusd %[w], %[a], %[c]" : [c] "+v"(c1[r]) : [a] "v"(a), [w] "v"(w1));
    }
  }
  const __m512 sw0 = _mm512_loadu_ps(sw), sw1 = _mm512_loadu_ps(sw + 16);
  const __m512i ws0 = _mm512_loadu_si512(wsum), ws1 = _mm512_loadu_si512(wsum + 16);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 s = _mm512_set1_ps(sx[r]);
    const __m512i z = _mm512_set1_epi32(zp[r]);
    __m512 y0 = gemmInt8Dequant16(c0[r], z, ws0, s, sw0, b0), y1 = gemmInt8Dequant16(c1[r], z, ws1, s, sw1, b1);
    gemmStoreRow32(C + static_cast<size_t>(r) * ldc, k0, k1, ep, y0, y1);
  }
}

KST_VNNI_TARGET void runKernel(int rows, const uint8_t* A, int lda, const uint32_t* B, int kq, const float* sx,
                               const int32_t* zp, const float* sw, const int32_t* wsum, const float* bias, int ep,
                               float* C, int ldc, __mmask16 k0, __mmask16 k1) {
  withRows<12>(rows, [&](auto R) {
    kernel<decltype(R)::value>(A, lda, B, kq, sx, zp, sw, wsum, bias, ep, C, ldc, k0, k1);
  });
}

KST_VNNI_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmInt8Job& j = *static_cast<const GemmInt8Job*>(ctx);
  const int kq = (j.K + 3) / 4;  // quads holding real K (the panel is padded further, with zeros)
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    const int tr = gemmTileRows(b.m1 - b.m0, MR);
    // Row tile outer, panels inner: the tile's rows (tr × K bytes) stay in L1 while the group's panels stream
    // past them in order (one sequential stream from L2 / memory instead of tr strided ones per panel).
    for (int m = b.m0; m < b.m1; m += tr) {
      const int rows = imin(tr, b.m1 - m);
      for (int p = b.p0; p < b.p1; ++p) {
        const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KQ * NR;
        const int n0 = p * NR, cols = imin(NR, j.N - n0);
        __mmask16 k0, k1;
        gemmPanelLanes(cols, k0, k1);
        runKernel(rows, j.a.q + static_cast<size_t>(m) * j.a.lda, j.a.lda, B, kq, j.a.scale + m, j.a.zp + m,
                  j.wscale + n0, j.wsum + n0, j.bias ? j.bias + n0 : nullptr, j.ep,
                  j.y + static_cast<size_t>(m) * j.N + n0, j.N, k0, k1);
      }
    }
  }
}

}  // namespace

// gemm_int8_amx_avx512.cpp: the same GEMM on AMX tiles, where available; gemm_int8_amx_small_avx512.cpp: the
// small-M (batch 1) AMX engine.
bool amx_int8_ready();
void gemm_int8_amx(const Int8Acts& a, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                   ThreadPool* pool);
bool gemm_int8_amx_small_fits(int M);
void gemm_int8_amx_small(const Int8Acts& a, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                         ThreadPool* pool);
void gemm_int8_amx_small_x(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                           AlignedBuffer& scratch, ThreadPool* pool);

bool int8_supported_avx512() { return __builtin_cpu_supports("avx512vnni"); }

void pack_int8_avx512(PackedWeight& w) { gemmPackInt8<NR>(w); }

namespace {
// Rows M up to a multiple of 32 of the layout: q 0, scale 0, zero point 0 (AMX tiles read whole 16-row tiles).
void zeroPadRows(const QuantCtx& c, int M) {
  const int Mp = (M + 31) & ~31;
  std::memset(c.q + static_cast<size_t>(M) * c.lda, 0, static_cast<size_t>(Mp - M) * c.lda);
  for (int m = M; m < Mp; ++m) {
    c.scale[m] = 0.f;
    c.zp[m] = 0;
  }
}
QuantCtx quantCtx(const float* x, int K, const Int8Acts& a) {
  return QuantCtx{x, K, a.lda, const_cast<uint8_t*>(a.q), const_cast<float*>(a.scale), const_cast<int32_t*>(a.zp)};
}
}  // namespace

// x [M][K] → the quantised activations in buf (grown if needed), laid out for a weight of kq quads.
Int8Acts quantize_int8_avx512(const float* x, int M, int K, int kq, AlignedBuffer& buf, ThreadPool* pool) {
  buf.resize(gemmInt8ActFloats(M, kq));
  Int8Acts a = gemmInt8ActLayout(buf.data(), M, kq);
  QuantCtx c = quantCtx(x, K, a);
  // Up to 256 KB of x (a batch-1 GEMM) on the calling thread, without a pool hand-off; else 64 KB chunks.
  const int64_t grain = static_cast<int64_t>(M) * K <= 65536 ? M : imax(1, 16384 / imax(1, K));
  parallelRun(pool, M, grain, quantTask, &c);
  zeroPadRows(c, M);
  return a;
}

// The same, on the calling thread, into a layout the caller owns (gemm_int8_amx_small's per-thread copies).
void quantize_int8_rows_avx512(const float* x, int M, int K, const Int8Acts& a) {
  QuantCtx c = quantCtx(x, K, a);
  quantTask(&c, 0, M, 0);
  zeroPadRows(c, M);
}

// The AVX512-VNNI engine alone on quantised activations; the op tests call both engines directly.
void gemm_int8_vnni(const Int8Acts& a, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                    ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmInt8Job j;
  gemmInt8Operands(j, a, w, bias, y, ep);
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, MC, MR));
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

// ops.gemm / ops.gemm_gelu for an int8-packed weight (ep: 0 none, 1 GELU erf, 2 GELU tanh).
void gemm_int8_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                      ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  AlignedBuffer local;  // only where the caller gave no scratch (op tests, benchmarks); the model always does
  AlignedBuffer& scratch = w.act_scratch ? *w.act_scratch : local;
  if (gemm_int8_amx_small_fits(M)) return gemm_int8_amx_small_x(x, M, w, bias, y, ep, scratch, pool);
  const Int8Acts a = quantize_int8_avx512(x, M, w.K, w.kq, scratch, pool);
  if (M >= kAmxMinRows && amx_int8_ready()) return gemm_int8_amx(a, M, w, bias, y, ep, pool);
  gemm_int8_vnni(a, M, w, bias, y, ep, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
