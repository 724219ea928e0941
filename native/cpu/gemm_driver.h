// The GEMM driver shared by gemm_avx2.cpp, gemm_avx512.cpp, gemm_bf16_avx512.cpp, gemm_bf16_amx_avx512.cpp and the
// int8 files (gemm_int8_avx512.cpp, gemm_int8_amx_avx512.cpp, gemm_int8_avx2.cpp):
// row-block sizing, the (row block, panel group) work split over the thread pool, the task → block coordinates,
// weight packing into k-major panels, and the AVX2 fp32 blocked driver (K blocks, row tiles, partial last panel) as
// a template over the micro-kernel.
//
// Include this file ONLY inside an anonymous namespace in kst::cpu, after simd.h:
//
//   namespace kst { namespace cpu { namespace {
//   #include "gemm_driver.h"
//   ... } } }
//
// Everything here then has internal linkage, so each ISA file gets its own copy compiled with its own flags.
// Included at namespace scope instead, these inline functions and templates would be COMDAT-merged by the linker
// across translation units and the AVX-512 copy could end up on the AVX2 path (see ops.h). That is why there is
// no #include and no include guard here: the file is meant to be textually pasted into one anonymous namespace
// per translation unit. It relies on imin / imax from simd.h and on <cstdint> / <cstddef> (via ops.h).

// Row blocks of at most `mc_max` rows, balanced so the last is not tiny; the block height is rounded up to a
// multiple of `round` (the row tile) and capped at mc_max.
struct GemmRows {
  int mblocks, mc;
};
inline GemmRows gemmRows(int M, int mc_max, int round) {
  GemmRows r;
  r.mblocks = (M + mc_max - 1) / mc_max;
  r.mc = imin(mc_max, ((M + r.mblocks - 1) / r.mblocks + round - 1) / round * round);
  return r;
}

// Panels per group for the AVX-512 / bf16 / AMX drivers: groups of at most 8 panels (a KC × 8 panel slice of W
// stays in L2 while the row tiles pass), at least enough groups that every thread has work; prefer a group count
// that divides the panels evenly and makes the task count a multiple of the thread count.
// (≥ tasks_per_thread tasks per thread where the panels allow, 4 by default: threads that get less CPU than
// others — a busy machine — leave their share to the pool's dynamic hand-out)
inline int gemmPanelsPerGroupBalanced(int panels, int mblocks, int threads, int tasks_per_thread = 4) {
  const int min_groups =
      imin(panels, imax((panels + 7) / 8, (tasks_per_thread * threads + mblocks - 1) / mblocks));
  int groups = 0;
  for (int g = min_groups; g <= imin(panels, 4 * min_groups) && !groups; ++g)
    if (panels % g == 0 && (static_cast<int64_t>(mblocks) * g) % threads == 0) groups = g;
  for (int g = min_groups; g <= imin(panels, 4 * min_groups) && !groups; ++g)
    if ((static_cast<int64_t>(mblocks) * g) % threads == 0) groups = g;
  if (!groups) groups = imin(panels, imax(min_groups, (2 * threads + mblocks - 1) / mblocks));
  return (panels + groups - 1) / groups;
}

// Panels per group for the AVX2 driver: at most 8, enough groups that every thread gets work even for a single
// row block.
inline int gemmPanelsPerGroupSimple(int panels, int mblocks, int threads) {
  const int want_groups = imax(1, (2 * threads + mblocks - 1) / mblocks);
  return imax(1, imin(8, (panels + want_groups - 1) / want_groups));
}

// The split of one GEMM into (row block, panel group) tasks, task t = mb · n_pg + gb.
struct GemmSplit {
  int M, mc, mblocks, panels, full_panels, pg, n_pg;
  int64_t tasks() const { return static_cast<int64_t>(mblocks) * n_pg; }
};
// pg (panels per group) is set afterwards with gemmSetGroups.
inline GemmSplit gemmSplit(int M, int N, int nr, GemmRows rows) {
  GemmSplit s;
  s.M = M;
  s.mc = rows.mc;
  s.mblocks = rows.mblocks;
  s.panels = (N + nr - 1) / nr;
  s.full_panels = N / nr;
  s.pg = 1;
  s.n_pg = s.panels;
  return s;
}
inline void gemmSetGroups(GemmSplit& s, int pg) {
  s.pg = pg;
  s.n_pg = (s.panels + pg - 1) / pg;
}
// The small-M (batch 1) engines' split: one row block of all M rows, panel groups sized so every thread gets an
// equal share of N.
inline GemmSplit gemmSplitColumns(int M, int N, int nr, int threads, int tasks_per_thread = 4) {
  GemmSplit s = gemmSplit(M, N, nr, gemmRows(M, M, 1));
  gemmSetGroups(s, gemmPanelsPerGroupBalanced(s.panels, 1, threads, tasks_per_thread));
  return s;
}

// The bias of panel columns [n0, n0 + cols) as NR floats: bias + n0 in place for a whole panel, else copied into
// buf (NR floats) with zeros past the valid columns, or all zeros without a bias.
template <int NR>
inline const float* gemmPanelBias(const float* bias, int n0, int cols, float* buf) {
  if (cols == NR && bias) return bias + n0;
  for (int c = 0; c < NR; ++c) buf[c] = (bias && c < cols) ? bias[n0 + c] : 0.f;
  return buf;
}

// The valid columns of a partial panel's stack tile (rows × NR) into y: rows × cols at y, row stride ldy.
template <int NR>
inline void gemmTileOut(const float* tile, int rows, int cols, float* y, int ldy) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) y[static_cast<size_t>(r) * ldy + c] = tile[r * NR + c];
}

// Per-thread copies of a GEMM's x (the small-M engines): thread tid's copy is `slice` floats at base + tid · slice
// in one scratch buffer, made by that thread on its first task of the call. Why per thread: a core's reads of lines
// another core has just written stall (measured for AMX tile loads, gemm_bf16_amx_small_avx512.cpp), and making
// a copy of ≤ 42 × K values once per thread costs next to nothing. One per call (made[] starts zeroed).
struct ThreadCopies {
  float* base = nullptr;  // null: not in use
  size_t slice = 0;       // floats per copy, a multiple of 16 (64-byte aligned copies)
  mutable uint8_t made[ThreadPool::kMaxThreads] = {};
  // Points at `scratch`, grown to one copy of `floats` floats per thread.
  void reserve(AlignedBuffer& scratch, size_t floats, int threads) {
    slice = (floats + 15) & ~size_t(15);
    scratch.resize(slice * static_cast<size_t>(threads));
    base = scratch.data();
  }
  // Thread tid's copy; make(copy) fills it the first time this call asks for it.
  template <typename Make>
  float* get(int tid, Make make) const {
    float* p = base + static_cast<size_t>(tid) * slice;
    if (!made[tid]) {
      make(p);
      made[tid] = 1;
    }
    return p;
  }
};

// Rows [m0, m1) and panels [p0, p1) of task t.
struct GemmBlock {
  int m0, m1, p0, p1;
};
inline GemmBlock gemmBlock(const GemmSplit& s, int64_t t) {
  GemmBlock b;
  const int mb = static_cast<int>(t / s.n_pg), gb = static_cast<int>(t % s.n_pg);
  b.m0 = mb * s.mc;
  b.m1 = imin(s.M, b.m0 + s.mc);
  b.p0 = gb * s.pg;
  b.p1 = imin(s.panels, b.p0 + s.pg);
  return b;
}

// Rows per tile for a block of `rows` rows: as even as possible, at most mr (16 rows, mr 12 → 8 + 8, not 12 + 4).
inline int gemmTileRows(int rows, int mr) {
  const int nt = (rows + mr - 1) / mr;
  return (rows + nt - 1) / nt;
}

// A subnormal weight (0 < |w| < FLT_MIN) as a zero of its sign, a normal one as it is. Why: an FMA with a subnormal
// input runs in microcode on Intel CPUs unless MXCSR's DAZ is set, which only a forward pass does (threadpool.h,
// FlushDenormals); packed this way the GEMM does not depend on it. A 128 × 3072 × 768 GEMM, 2 threads, DAZ off,
// with 1 % of W subnormal ran at 8 GFLOP/s, 10 % at 1 (275-311 with none). The products such a weight feeds are
// under 1.2e-38 · |x|: below the last bit of any sum they join unless that sum is itself that small.
inline float flushSubnormal(float v) {
  return v != 0.f && __builtin_fabsf(v) < __FLT_MIN__ ? __builtin_copysignf(0.f, v) : v;
}

// fp32 W [N][K] → panels of NR output columns, k-major: panel p holds W[NR·p + j][k] at [p][k][j] (zero-padded
// past N; subnormal weights as zeros, flushSubnormal), plus NR floats of slack.
template <int NR>
void gemmPackPanels(PackedWeight& w) {
  const int N = w.N, K = w.K, panels = (N + NR - 1) / NR;
  float* dst = packedAlloc(w, static_cast<size_t>(panels) * K * NR + NR);
  for (int p = 0; p < panels; ++p)
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < NR; ++c) {
        const int n = p * NR + c;
        dst[(static_cast<size_t>(p) * K + k) * NR + c] =
            n < N ? flushSubnormal(w.raw[static_cast<size_t>(n) * K + k]) : 0.f;
      }
  w.nr = NR;
}

// Round to nearest even (inputs are finite).
inline uint32_t bf16Bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

#ifdef __AVX512F__
// The GELU epilogue of the blocked bf16 drivers (AVX512-BF16, AMX) and the AVX512-BF16 small-M one: in place over
// `rows` rows of 32 floats (row stride ld) just written, y = gelu(y), ep 1 the erf form, 2 the tanh form. Only the
// *_avx512.cpp files see it.
inline void gemmGeluEpilogue32(int ep, float* C, int rows, int ld) {
  for (int r = 0; r < rows; ++r) {
    float* c = C + static_cast<size_t>(r) * ld;
    for (int h = 0; h < 32; h += 16) {
      const __m512 v = _mm512_loadu_ps(c + h);
      _mm512_storeu_ps(c + h, ep == 1 ? gelu_erf16(v) : gelu_tanh16(v));
    }
  }
}

// The lanes of a 32-column panel's two 16-column halves that hold its `cols` real columns.
inline void gemmPanelLanes(int cols, __mmask16& k0, __mmask16& k1) {
  k0 = static_cast<__mmask16>(cols >= 16 ? 0xFFFFu : (1u << cols) - 1u);
  k1 = static_cast<__mmask16>(cols >= 32 ? 0xFFFFu : cols > 16 ? (1u << (cols - 16)) - 1u : 0u);
}

// One finished 32-column output row (v0, v1: its halves) to y, GELU first by ep (1 erf form, 2 tanh form, else
// none), only the lanes k0 / k1 of the halves written (gemmPanelLanes).
inline void gemmStoreRow32(float* y, __mmask16 k0, __mmask16 k1, int ep, __m512 v0, __m512 v1) {
  if (ep == 1) {
    v0 = gelu_erf16(v0);
    v1 = gelu_erf16(v1);
  } else if (ep == 2) {
    v0 = gelu_tanh16(v0);
    v1 = gelu_tanh16(v1);
  }
  _mm512_mask_storeu_ps(y, k0, v0);
  _mm512_mask_storeu_ps(y + 16, k1, v1);
}

// The int8 epilogue's dequantisation of 16 columns of one row (gemm_int8_raw_ref's formula, operation for operation):
// y = fma(float(acc − zp · Σ_k w), sx · sw, b).
inline __m512 gemmInt8Dequant16(__m512i acc, __m512i zp, __m512i wsum, __m512 sx, __m512 sw, __m512 b) {
  const __m512i a = _mm512_sub_epi32(acc, _mm512_mullo_epi32(zp, wsum));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_mul_ps(sx, sw), b);
}
#endif

// ---- The bf16 drivers (gemm_bf16_avx512.cpp, gemm_bf16_amx_avx512.cpp) --------------------------------------
// One GEMM on bf16-packed weights (pairs of bf16 along K in 32-bit words, KP = ceil(K / 2) pairs per column).
struct GemmBf16Job {
  GemmSplit s;
  const float* x;
  int N, K, KP;
  const uint32_t* packed;
  const float* bias;
  float* y;
  int ep;
};
inline void gemmBf16Operands(GemmBf16Job& j, const float* x, const PackedWeight& w, const float* bias, float* y,
                             int ep) {
  j.x = x;
  j.N = w.N;
  j.K = w.K;
  j.KP = (w.K + 1) / 2;
  j.packed = reinterpret_cast<const uint32_t*>(w.pdata);
  j.bias = bias;
  j.y = y;
  j.ep = ep;
}

// ---- The int8 drivers (gemm_int8_avx512.cpp, gemm_int8_amx_avx512.cpp, gemm_int8_avx2.cpp) ------------------
// fp32 W [N][K] → the int8 layout of PackedWeight (see ops.h): per output channel n, amax = max_k |W[n][k]|,
// scale = amax / 127, q = clamp(rint(W · 127 / amax), −127, 127) (quantize_weight_s8_ref's math, term for term);
// panel p, quad kq holds the bytes q[NR·p + j][4kq .. 4kq + 3] in dword j; KQ = ceil(K / 4) rounded up to 16
// quads, zero-padded; then the scales and the column sums Σ_k q (both 0 past N).
template <int NR>
void gemmPackInt8(PackedWeight& w) {
  const int N = w.N, K = w.K, panels = (N + NR - 1) / NR, KQ = ((K + 3) / 4 + 15) & ~15;
  const size_t words = static_cast<size_t>(panels) * KQ * NR, cols = static_cast<size_t>(panels) * NR;
  float* base = packedAlloc(w, words + 2 * cols);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(base);
  __builtin_memset(bytes, 0, words * 4);
  float* scale = base + words;
  int32_t* sum = reinterpret_cast<int32_t*>(scale + cols);
  for (size_t n = 0; n < cols; ++n) {
    scale[n] = 0.f;
    sum[n] = 0;
    if (n >= static_cast<size_t>(N)) continue;
    const float* row = w.raw + n * K;
    float amax = 0.f;
    for (int k = 0; k < K; ++k) {
      const float a = __builtin_fabsf(row[k]);
      amax = a > amax ? a : amax;
    }
    const float inv = amax > 0.f ? 127.f / amax : 0.f;
    scale[n] = amax > 0.f ? amax / 127.f : 0.f;
    const size_t p = n / NR, c = n % NR;
    int32_t s = 0;
    for (int k = 0; k < K; ++k) {
      float r = __builtin_nearbyintf(row[k] * inv);
      r = r > 127.f ? 127.f : (r < -127.f ? -127.f : r);
      const int8_t q = static_cast<int8_t>(r);
      s += q;
      bytes[((p * KQ + k / 4) * NR + c) * 4 + k % 4] = static_cast<uint8_t>(q);
    }
    sum[n] = s;
  }
  w.nr = NR;
  w.kq = KQ;
  w.qscale = scale;
  w.qsum = sum;
  w.int8 = true;
}

// Bytes of scratch for the quantised activations of an M × K GEMM on a weight with kq quads: per-row scales and
// zero points (Mp floats + Mp int32), then Mp rows of 4·kq bytes, Mp = M rounded up to 32.
inline size_t gemmInt8ActFloats(int M, int kq) {
  const size_t Mp = (static_cast<size_t>(M) + 31) & ~size_t(31);
  return 2 * Mp + Mp * static_cast<size_t>(kq);  // 4·kq bytes per row = kq floats
}
inline Int8Acts gemmInt8ActLayout(float* base, int M, int kq) {
  const size_t Mp = (static_cast<size_t>(M) + 31) & ~size_t(31);
  Int8Acts a;
  a.scale = base;
  a.zp = reinterpret_cast<const int32_t*>(base + Mp);
  a.q = reinterpret_cast<const uint8_t*>(base + 2 * Mp);
  a.lda = 4 * kq;
  return a;
}

// One int8 GEMM on quantised activations.
struct GemmInt8Job {
  GemmSplit s;
  Int8Acts a;
  int N, K, KQ;
  const uint32_t* packed;
  const float* wscale;
  const int32_t* wsum;
  const float* bias;
  float* y;
  int ep;
};
inline void gemmInt8Operands(GemmInt8Job& j, const Int8Acts& a, const PackedWeight& w, const float* bias, float* y,
                             int ep) {
  j.a = a;
  j.N = w.N;
  j.K = w.K;
  j.KQ = w.kq;
  j.packed = reinterpret_cast<const uint32_t*>(w.pdata);
  j.wscale = w.qscale;
  j.wsum = w.qsum;
  j.bias = bias;
  j.y = y;
  j.ep = ep;
}

// ---- The fp32 blocked driver ---------------------------------------------------------------------------------
// One GEMM: the split, the operands, the epilogue (0 none, 1 GELU erf, 2 GELU tanh) and the K block.
struct GemmF32Job {
  GemmSplit s;
  const float* x;
  int N, K;
  const float* packed;
  const float* bias;
  float* y;
  int ep;
  int kc;
};

// Panel p of a whole-K job: its packed weights, first column, valid columns and bias (gemmPanelBias; buf: NR floats).
struct GemmPanelRef {
  const float* B;
  int n0, cols;
  const float* bias;
};
template <int NR>
inline GemmPanelRef gemmPanelRef(const GemmF32Job& j, int p, float* buf) {
  const int n0 = p * NR, cols = imin(NR, j.N - n0);
  return {j.packed + static_cast<size_t>(p) * j.K * NR, n0, cols, gemmPanelBias<NR>(j.bias, n0, cols, buf)};
}

// Kernel: C[rows][NR] = ep((acc ? C : bias) + A[rows][0:K] · B[0:K][NR]), ep 0 none, 1 GELU erf, 2 GELU tanh
using GemmF32Kernel = void (*)(int rows, const float* A, int lda, const float* B, int K, const float* bias, bool acc,
                               int ep, float* C, int ldc);

// The AVX2 fp32 driver (gemm_avx2.cpp): K in blocks of j.kc so a panel's kc × NR slice stays in L1 while every row
// tile (MR rows) of the row block streams past it; the first K block starts from the bias, later ones accumulate
// into y. A last partial panel runs over the whole K into a stack tile and copies the valid columns out. The
// epilogue j.ep goes to the kernel with the last K block (and with the partial panel's whole-K call).
template <int NR, int MR, GemmF32Kernel runKernel>
void gemmF32Task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmF32Job& j = *static_cast<const GemmF32Job*>(ctx);
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    const int m0 = b.m0, m1 = b.m1, p0 = b.p0, p1 = b.p1;
    const int pf = imin(p1, j.s.full_panels);  // full panels of this group: [p0, pf)
    for (int k0 = 0; k0 < j.K; k0 += j.kc) {
      const int kc = imin(j.kc, j.K - k0);
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
          const int rows = imin(MR, m1 - m);
          float* C = j.y + static_cast<size_t>(m) * j.N + n0;
          runKernel(rows, j.x + static_cast<size_t>(m) * j.K + k0, j.K, B, kc, bp, k0 > 0, k0 + kc >= j.K ? j.ep : 0,
                    C, j.N);
        }
      }
    }
    for (int p = pf; p < p1; ++p) {  // the last, partial panel
      const float* B = j.packed + static_cast<size_t>(p) * j.K * NR;
      const int n0 = p * NR, cols = j.N - n0;
      for (int c = 0; c < NR; ++c) bias[c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
      for (int m = m0; m < m1; m += MR) {
        const int rows = imin(MR, m1 - m);
        runKernel(rows, j.x + static_cast<size_t>(m) * j.K, j.K, B, j.K, bias, false, j.ep, tile, NR);
        gemmTileOut<NR>(tile, rows, cols, j.y + static_cast<size_t>(m) * j.N + n0, j.N);
      }
    }
  }
}

// Fills the job's operands (split and kc are the caller's).
inline void gemmF32Operands(GemmF32Job& j, const float* x, const PackedWeight& w, const float* bias, float* y,
                            int ep) {
  j.x = x;
  j.N = w.N;
  j.K = w.K;
  j.packed = w.pdata;
  j.bias = bias;
  j.y = y;
  j.ep = ep;
}

// The order in which the small-M AMX engines (gemm_bf16_amx_small, gemm_int8_amx_small) walk a panel's chunks (2 KB
// of panel each: 16 k-pairs / k-quads × 32 columns), and their software prefetch. Each task walks its panels
// (contiguous in memory) once per 32-row group of x.
// One group (M ≤ 32: one pass over each panel, straight from DRAM): the chunks as kStreams
// interleaved streams (stream s covers chunks [s·chunks/S, (s+1)·chunks/S); one chunk of every stream in turn), each
// prefetching, to L1, its own next chunk or, at its end, the start of the same stream in the panel read next. Why:
// with one stream and the prefetch 4 KB ahead (the previous order) the engines read W well below a plain streaming
// read, even on one thread, where the fp32 small-M kernel (gemm_avx512.cpp), which reads its panels as four
// streams, matches it; the hardware prefetcher keeps one stream per 4 KB page going, so four pages in flight keep
// DRAM busier. Measured (the 48 GEMMs of a 12-token forward over the 12 × 768 model's shapes, bf16, the two
// orders alternating in one process with a plain read of the same 162 MB, median ms of 20-40): 1 thread 14.69 →
// 12.72 (the read 13.58); 2 threads M = 12 8.50 / 7.43 / 7.65 / 8.86 → 7.78 / 6.88 / 6.99 / 8.26 (the read 6.72 /
// 6.26 / 6.03 / 6.74), M = 16 9.70 / 8.81 → 8.90 / 8.07, M = 24 10.38 → 10.40, M = 32 10.80 → 10.73. Two streams
// and the prefetch two chunks ahead did no better; fewer prefetches per chunk (1, 8 or 16 lines) and _MM_HINT_T2
// no better or worse. The bf16 forward, 12 tokens, 2 threads, p50 of 200 calls, 10 pairs of processes: 8.83-10.58
// (median 9.20) → 7.73-9.33 ms (8.75), faster in 9 of the 10. int8 (M = 12, the 48 GEMMs, old and new build in
// alternating processes): 1 thread 6.79 / 6.92 → 6.26 / 6.15 ms, 2 threads within noise.
// At 17-32 rows (two row tiles) both orders run at 1.3-2× the read, and the weights' stream is not what holds them
// back: the same 48 GEMMs on one layer's weights, from cache, take 5.9 ms at M = 16 and 9.7 at 32. With the weights
// in cache at M = 32 (one process, variants alternating, p50 8.92 ms), leaving out the tile multiplies saved 15 %, x's
// tile loads (re-read from L2 for every panel) 11 %, the GELU epilogue 11 %: no single part dominates. Two passes of
// one row tile, the second from L2, were slower (M = 24: 13.2 against 10.2 ms).
// More groups: chunks in order, and a cursor along the task's panels, advancing one panel per panel over all
// `groups` passes (2 KB / groups per chunk step) and leading the first pass's tile loads by kPfBytes plus
// (groups − 1) / groups of a panel (the least lead the first pass never catches up with), so DRAM keeps streaming
// the next panel while the later groups re-read this one from L2 (to L2: the lead exceeds L1; T0 measured 15-25 %
// slower at M = 33-64).
// The int8 engine's sums are exact, so the order does not change its output; the bf16 engine's fp32 accumulation
// order follows it (within gemm_bf16_raw_ref's bound, as every bf16 engine).
struct SmallMPanelPrefetch {
  static constexpr size_t kChunkBytes = 2048;
  static constexpr int kStreams = 4;
  static constexpr size_t kPfBytes = 4096;  // the cursor's lead beyond the later groups' share (more groups)
  size_t panelBytes, steps, lead;
  int groups, chunks;
  const char* end = nullptr;   // more groups: the cursor, next line to prefetch
  const char* base = nullptr;  // more groups: this panel's start + lead
  const char* panel = nullptr;  // one group: this panel and the next (null: none)
  const char* next = nullptr;
  int bound[kStreams + 1];  // one group: stream s covers chunks [bound[s], bound[s + 1])
  int i = 0, s = 0;         // one group: the step's place in the current stream and the stream
  SmallMPanelPrefetch(size_t panel_bytes, int groups_, int chunks_)
      : panelBytes(panel_bytes), steps(static_cast<size_t>(groups_) * chunks_),
        lead(kPfBytes + panel_bytes * (groups_ - 1) / groups_), groups(groups_), chunks(chunks_) {
    for (int k = 0; k <= kStreams; ++k) bound[k] = chunks * k / kStreams;
  }
  void startTask(const void* first_panel) { end = static_cast<const char*>(first_panel) + kPfBytes; }
  // Before group 0's pass over `p`; `next_panel` is the one after it in memory (this task's next panel, or at the
  // task's end the first of the next task, which the pool hands out in order), null at the end of W.
  void startPanel(const void* p, const void* next_panel) {
    base = static_cast<const char*>(p) + lead;
    panel = static_cast<const char*>(p);
    next = static_cast<const char*>(next_panel);
  }
  // Group g's step `step` (0 .. chunks − 1, in order, each group starting at 0): the chunk to multiply next, its
  // prefetch issued.
  int chunk(int g, int step) {
    if (groups > 1) {
      const char* to = base + panelBytes * (static_cast<size_t>(g) * chunks + step + 1) / steps;
      for (; end < to; end += 64) _mm_prefetch(end, _MM_HINT_T1);
      return step;
    }
    if (step == 0) i = s = 0;
    int ch;
    for (;;) {  // the next stream with a chunk left at place i (streams differ in length by at most one)
      ch = bound[s] + i;
      const bool here = ch < bound[s + 1];
      const int st = s;
      if (++s == kStreams) s = 0, ++i;
      if (here) {
        const char* pf = ch + 1 < bound[st + 1] ? panel + (ch + 1) * kChunkBytes
                         : next                 ? next + bound[st] * kChunkBytes
                                                : nullptr;
        if (pf) {
#pragma GCC unroll 32
          for (int l = 0; l < 32; ++l) _mm_prefetch(pf + 64 * l, _MM_HINT_T0);
        }
        return ch;
      }
    }
  }
};

// The small-M AMX engines' epilogue (bf16: GELU, copy out to y; int8: dequantisation, bias, GELU), run a few
// rows at each chunk step of the engine's next pass instead of all at once after a pass's tile stores. Why: at batch
// 1 the engines are bound by W's stream, and an epilogue between two passes leaves DRAM idle while it runs (it also
// first waits for the tile stores it reads back); spread over the next pass it runs while the tile loads wait for
// W. Holds only the row count: the engine keeps what the rows need and hands the work over as f(r0, r1).
// Measured (the 48 GEMMs of a 12-token-shaped forward, 2 threads, the two ways alternating in one process with a
// plain read of the same bytes, median ms of 30, two rounds): bf16 (tiles then still stored straight into y, only
// the GELU deferred) M = 12 6.61 / 6.72 → 6.51 / 6.56, M = 16 7.00 / 6.92 → 6.65 / 6.55, M = 24 9.25 / 9.37 →
// 8.67 / 8.80, M = 32 13.77 / 13.74 → 13.74 / 13.60 (no gain: SmallMPanelPrefetch says what holds M = 32 back),
// M = 64 16.94 / 16.87 → 16.52 / 15.85; int8 M = 12 3.28 / 3.22 → 3.04 / 3.02, M = 16 3.70 / 3.64 → 3.55 / 3.47,
// M = 24 4.90 / 5.02 → 4.85 / 4.80. With the bf16 GELU left out altogether (a timing variant, not a result), the
// sweep took ~4 % less at M = 12 and ~8 % less at M = 24 than with it at the end of each pass: the erf GELU costs
// ~0.9 ns per value per core (its division is not the limit: a reciprocal estimate with one Newton step was no
// faster).
struct DeferredRows {
  int rows = 0, done = 0, perStep = 1;
  // `n` rows to do over the `steps` chunk steps of the next pass.
  void start(int n, int steps) {
    rows = n;
    done = 0;
    perStep = (n + steps - 1) / steps;
  }
  template <typename F>
  void step(F&& f) {
    if (done >= rows) return;
    const int n = imin(perStep, rows - done);
    f(done, done + n);
    done += n;
  }
  // Whatever is left: at the end of the next pass (it had fewer steps than rows) or of the task call.
  template <typename F>
  void finish(F&& f) {
    if (done < rows) f(done, rows);
    done = rows = 0;
  }
};

