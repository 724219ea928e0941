// The int8 GEMM at small M (≤ kMaxRows = 384 rows: batch 1, short batches) on AMX tiles (AMX-INT8 `tdpbusd`),
// used by gemm_int8_avx512.cpp for 1 ≤ M ≤ kMaxRows where AMX-INT8 is usable. Same inputs as the other int8
// engines (the per-row u8 activations quantised once per GEMM, the packed s8 panels of 32 columns × k-quads padded
// to 16-quad chunks) and the same exact int32 sums and epilogue (gemmInt8Dequant16, bias, GELU), so the output is
// bitwise that of gemm_int8_raw_ref, as for gemm_int8_amx and gemm_int8_vnni.
//
// Why: at batch 1 each weight byte feeds only M multiply-adds and the whole weight streams from memory once per
// call, so only how fast W streams in matters. The blocked AMX engine (gemm_int8_amx_avx512.cpp) multiplies full
// 32-row tiles (rows past M are zero padding) and relies on the hardware prefetcher, which stops at every 4 KB page;
// tile loads stall on each miss. Here:
// - tile rows are the rows present: tiles 0-3 are C (rows 0-15 and 16-31 × the panel's two 16-column halves),
//   4, 5 the same two row ranges of x (16 rows × 64 u8 at most), 6, 7 the panel's 16 quads × 16 columns (128-byte
//   stride). M ≤ 16: one row tile;
// - each task walks its panels (contiguous in memory) start to end, each panel's chunks as four interleaved
//   streams with a software prefetch one chunk ahead in each (SmallMPanelPrefetch, gemm_driver.h), so the next
//   lines are in flight while the current chunk multiplies (the sums are exact: the order does not change y);
// - more than 32 rows: groups of 32 rows (two 16-row tiles), one pass over the panel per group, the later passes
//   from L2, the prefetch far enough ahead (to L2) that the next panel streams in meanwhile — as
//   gemm_bf16_amx_small, which has the why. Tile rows are then 16 and 16; the last group's rows past M read the
//   zero rows the quantiser leaves up to a multiple of 32 and are dropped. Measured as there (1 thread pinned, µs
//   per layer, this engine / the blocked one): M = 32 420-640 / 510-680, 33 550-660 / 680-780, 48 620-760 /
//   720-820, 64 780-850 / 820-940, 96 1000-1260 / 1060-1360, 128 1310-1610 / 1410-1660, 192 1880-2000 / 2190-2240;
//   2 threads: 33 700-850 / 810-910, 128 1410-1470 / 1630-1640, 256 2410-2510 / 3030, 384 3680-4450 / 4330-4400,
//   512 5380-5830 / 5460-5750, 768 9080-11400 / 7730-8590: the blocked engine catches up at 384-512 rows, so
//   kMaxRows = 384. End to end (encodeIds, 2 threads, p50 ms, main / this engine to 128 rows): batch 1 × 33 tokens
//   16.2-16.4 / 14.4-14.5, × 48: 18.4-18.7 / 16.0.
// - a pass's epilogue (dequantisation, bias, GELU) runs during the next pass, a few rows per chunk step, from the
//   other of two sum buffers (DeferredRows, gemm_driver.h, has why and what it measured);
// - work split: panel groups only (one row block), sized by gemmPanelsPerGroupBalanced so both threads get equal
//   shares of N.
// Tile state is configured per task call and released after it.
// Effect: 12-token batch-1 int8 forward of the 12 × 768 model, 2 threads, p50 4.95-6.34 → 3.52-3.78 ms (3
// interleaved rounds, busy machine).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <cstring>

#define KST_AMX8_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int kGroupRows = 32;  // rows per pass over a panel: two tiles of (up to) 16 rows
constexpr int kMaxRows = 384;   // the most rows this engine takes (gemm_int8_amx_small_fits)

struct TileCfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

#include "gemm_driver.h"

}  // namespace
// gemm_int8_avx512.cpp
void quantize_int8_rows_avx512(const float* x, int M, int K, const Int8Acts& a);
Int8Acts quantize_int8_avx512(const float* x, int M, int K, int kq, AlignedBuffer& buf, ThreadPool* pool);
namespace {

// The job; with x set (M ≤ kGroupRows), each thread quantises x itself into its own copy (xc), and j.a is not used.
struct SmallJob {
  GemmInt8Job j;
  const float* x = nullptr;
  ThreadCopies xc;
};

KST_AMX8_TARGET void task(void* ctx, int64_t begin, int64_t end, int tid) {
  const SmallJob& sj = *static_cast<const SmallJob*>(ctx);
  const GemmInt8Job& j = sj.j;
  Int8Acts a = j.a;
  if (sj.x)
    a = gemmInt8ActLayout(sj.xc.get(tid, [&](float* copy) {
      quantize_int8_rows_avx512(sj.x, j.s.M, j.K, gemmInt8ActLayout(copy, j.s.M, j.KQ));
    }), j.s.M, j.KQ);
  // This pass's sums in one buffer; the last pass's, awaiting their epilogue, in the other.
  alignas(64) int32_t cbuf[2][kGroupRows * NR];
  int cb = 0;
  // The epilogue of the last pass: its panel's per-column operands (those of gemm_int8_amx, operation for operation:
  // bitwise the same y), its rows, done a few at each chunk step of the next pass (DeferredRows, gemm_driver.h).
  struct Epi {
    __mmask16 k0, k1;
    __m512 sw0, sw1, b0, b1;
    __m512i ws0, ws1;
    const int32_t* c;
    float* Y;
    int m0;
  } e;
  DeferredRows later;
  const auto epilogue = [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const __m512 s = _mm512_set1_ps(a.scale[e.m0 + r]);
      const __m512i z = _mm512_set1_epi32(a.zp[e.m0 + r]);
      gemmStoreRow32(e.Y + static_cast<size_t>(r) * j.N, e.k0, e.k1, j.ep,
                     gemmInt8Dequant16(_mm512_load_si512(e.c + r * NR), z, e.ws0, s, e.sw0, e.b0),
                     gemmInt8Dequant16(_mm512_load_si512(e.c + r * NR + 16), z, e.ws1, s, e.sw1, e.b1));
    }
  };
  // Tile rows: M ≤ 32 the rows present (no padding row multiplied); M > 32: 16 and 16, the last group's rows past
  // M read from the zeroed padding rows quantize_int8_avx512 leaves up to a multiple of 32, and are dropped.
  const int M = j.s.M;
  const int r0 = M <= kGroupRows ? imin(M, 16) : 16, r1 = M <= kGroupRows ? M - r0 : 16;
  TileCfg cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  const int rows[8] = {r0, r0, r1, r1, r0, r1, 16, 16};
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(rows[t]);
    cfg.colsb[t] = rows[t] ? 64 : 0;
  }
  _tile_loadconfig(&cfg);
  const int chunks = ((j.K + 3) / 4 + 15) / 16;  // 16-quad chunks holding real K (≤ j.KQ / 16)
  const int groups = (M + kGroupRows - 1) / kGroupRows;
  const size_t lda = static_cast<size_t>(a.lda);
  SmallMPanelPrefetch pf(static_cast<size_t>(j.KQ) * NR * 4, groups, chunks);  // gemm_driver.h has the why
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    pf.startTask(j.packed + static_cast<size_t>(b.p0) * j.KQ * NR);
    for (int p = b.p0; p < b.p1; ++p) {
      const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KQ * NR;
      pf.startPanel(B, p + 1 < j.s.panels ? B + static_cast<size_t>(j.KQ) * NR : nullptr);
      const int n0 = p * NR, cols = imin(NR, j.N - n0);
      for (int g = 0; g < groups; ++g) {
        const int m0 = g * kGroupRows, real = imin(kGroupRows, M - m0);
        const bool two = real > r0;  // the group's second row tile holds rows
        const uint8_t* A0 = a.q + static_cast<size_t>(m0) * lda;
        const uint8_t* A1 = A0 + 16 * lda;
        _tile_zero(0);
        _tile_zero(1);
        if (two) {
          _tile_zero(2);
          _tile_zero(3);
        }
        for (int step = 0; step < chunks; ++step) {
          const int ch = pf.chunk(g, step);  // the order and the prefetch: gemm_driver.h
          later.step(epilogue);
          const uint32_t* Bc = B + static_cast<size_t>(ch) * 16 * NR;  // 16 quads × 32 columns = 2 KB
          _tile_loadd(4, A0 + ch * 64, lda);
          _tile_loadd(6, Bc, NR * 4);
          _tile_loadd(7, Bc + 16, NR * 4);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          if (two) {
            _tile_loadd(5, A1 + ch * 64, lda);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
          }
        }
        int32_t* C = cbuf[cb];
        cb ^= 1;
        _tile_stored(0, C, NR * 4);
        _tile_stored(1, C + 16, NR * 4);
        if (two) {
          _tile_stored(2, C + 16 * NR, NR * 4);
          _tile_stored(3, C + 16 * NR + 16, NR * 4);
        }
        later.finish(epilogue);  // the pass before this one, if it had more rows than this pass had steps
        gemmPanelLanes(cols, e.k0, e.k1);
        e.sw0 = _mm512_loadu_ps(j.wscale + n0);
        e.sw1 = _mm512_loadu_ps(j.wscale + n0 + 16);
        e.ws0 = _mm512_loadu_si512(j.wsum + n0);
        e.ws1 = _mm512_loadu_si512(j.wsum + n0 + 16);
        e.b0 = j.bias ? _mm512_maskz_loadu_ps(e.k0, j.bias + n0) : _mm512_setzero_ps();
        e.b1 = j.bias ? _mm512_maskz_loadu_ps(e.k1, j.bias + n0 + 16) : _mm512_setzero_ps();
        e.c = C;
        e.Y = j.y + static_cast<size_t>(m0) * j.N + n0;
        e.m0 = m0;
        later.start(real, chunks);
      }
    }
  }
  later.finish(epilogue);
  _tile_release();
}

}  // namespace

bool amx_int8_ready();

// Whether gemm_int8_amx_small takes M rows (AMX-INT8 usable, 1 ≤ M ≤ kMaxRows).
bool gemm_int8_amx_small_fits(int M) { return M >= 1 && M <= kMaxRows && amx_int8_ready(); }

// ep: 0 none, 1 GELU erf, 2 GELU tanh. Requires gemm_int8_amx_small_fits(M).
void gemm_int8_amx_small(const Int8Acts& a, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                         ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  SmallJob sj;
  gemmInt8Operands(sj.j, a, w, bias, y, ep);
  sj.j.s = gemmSplitColumns(M, w.N, NR, poolThreads(pool));
  parallelRun(pool, sj.j.s.tasks(), 1, task, &sj);
}

// From x: at M ≤ kGroupRows each thread quantises x into its own slice of `scratch`; above, x is quantised once
// (quantize_int8_avx512, by the pool) and gemm_int8_amx_small runs on that copy. Why the slices: a tile load of x
// stalls on every line another core has just written, so tile-loading the caller's copy cost more than quantising
// ≤ 32 × K floats once per thread.
// Measured (2 threads, 3 alternating runs): 48 GEMMs of a 12-token forward in a throw-away harness over the real
// kernels 2.47 / 2.48 / 2.55 → 2.31 / 2.30 / 2.29 ms (with x's quantisation left out altogether: 2.38 → 2.09 ms, the
// bound); the model's 12-token batch-1 p50 3.09 / 3.13 / 3.04 → 2.90 / 2.94 / 2.87 ms.
void gemm_int8_amx_small_x(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                           AlignedBuffer& scratch, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  if (M > kGroupRows) {
    gemm_int8_amx_small(quantize_int8_avx512(x, M, w.K, w.kq, scratch, pool), M, w, bias, y, ep, pool);
    return;
  }
  const int T = poolThreads(pool);
  SmallJob sj;
  gemmInt8Operands(sj.j, Int8Acts(), w, bias, y, ep);
  sj.j.s = gemmSplitColumns(M, w.N, NR, T);
  sj.xc.reserve(scratch, gemmInt8ActFloats(M, w.kq), T);
  sj.x = x;
  parallelRun(pool, sj.j.s.tasks(), 1, task, &sj);
}

}  // namespace cpu
}  // namespace kst
#endif
