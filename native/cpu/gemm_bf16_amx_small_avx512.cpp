// The bf16 GEMM y = x Wᵀ + b at small M (≤ kMaxRows = 512 rows: batch 1, short batches) on AMX tiles.
// gemm_bf16_avx512.cpp routes small M here where AMX is usable (amx_bf16_ready()); where it is not,
// gemm_bf16_small (gemm_bf16_smallm_avx512.cpp) runs.
// Same packed weights (panels of 32 columns × k-pairs, pack_bf16_avx512, with the zeroed slack the AMX engines read
// past the last panel) and the same bf16 rounding, so the same reference (gemm_bf16_raw_ref) and bound apply.
//
// Why: at batch 1 the whole weight streams from memory once per call and each element feeds only M multiply-adds.
// On this CPU (Sapphire Rapids class) vdpbf16ps retires at half the fp32 FMA rate (1.8 G/s vs 7.2 G/s per core,
// measured), so the AVX512-BF16 kernels are compute-bound at M = 12 below the memory rate, and even widening bf16 to
// fp32 for FMAs leaves the cores busy most of the time. A tile multiply costs next to nothing here, so only the
// streaming of W matters; the blocked AMX engine (gemm_bf16_amx_avx512.cpp) pads M to 32-row tiles and cuts each
// panel into 16 KB K blocks, which stalls the stream.
// - x is rounded to bf16 pairs once per call into the model's scratch (PackedWeight::act_scratch, grown to the
//   largest x seen, so no allocation on the hot path; a buffer of the call's own where none is given): M rows × KP
//   pairs rounded up to 16, zero-padded (above 32 rows, M rounded up to 16 with zero rows too). Up to 32 rows each
//   thread rounds its own copy; above, the pool rounds one shared copy (gemm_bf16_amx_small says why).
// - tiles: C (0-3: rows 0-15 and 16-31 × the panel's two 16-column halves, fp32), A (4, 5: the same two row
//   ranges × 16 pairs of x), B (6, 7: 16 pairs × 16 columns, the panel's rows at a 128-byte stride). Tile rows are
//   set to the rows present (M ≤ 16: one row tile, 12 rows at M = 12), so no padding rows are multiplied.
//   Measured, M = 12 / 24 / 32, 2 threads, GB/s of W read (this engine / the blocked AMX engine): ≈ 34-44 / 12-14,
//   24-30 / 10-12, 20-31 / 14-18.
// - more than 32 rows: the rows run in groups of 32 (two 16-row tiles; the tiles cannot hold more C), one pass
//   over the panel per group. The first pass streams the panel from DRAM, the later ones re-read it from L2 (a
//   panel is 64·K bytes: 48 KB at K = 768), so W is still read from memory once per call, and the prefetch runs
//   far enough ahead (to L2) that the next panel streams in during the later passes. Without this the dispatcher
//   handed M = 33 to the blocked engine: batch-1 forward 10.9 → 24.8 ms from 32 to 33 tokens (2 threads).
//   Measured (engines alone, the 4 BERT-base shapes × 8 copies so W comes from memory, 1 thread pinned, µs per
//   layer, this engine / the blocked one): M = 32 1250-1330 / 1950-2050, 33 1550-1700 / 3250-3350, 48 1630-1730 /
//   3680-3840, 64 1770-1830 / 2410-2500, 96 2190-2240 / 3140-3170, 128 2450-2640 / 3650-3730, 256 4380-4990 /
//   7440-7920; 2 threads (the other core not idle): 33 1870-1960 / 3610-3770, 128 2630 / 4070-4200, 512
//   9650-10680 / 12370-13440, 768 16760-16990 / 19340-20010. kMaxRows = 512 (not measured end to end above it;
//   x's bf16 copy, M × K × 2 bytes, then outgrows L2 at K = 3072). End to end (encodeIds, 2 threads, p50 ms,
//   main / this engine to 128 rows / to 512): batch 1 × 33 tokens 42.4-43.3 / 25.0; × 64: 38.6-40.1 / 31.0-32.6;
//   × 128: 62.5-63.8 / 48.1-48.8; batch 4 × 64 tokens 114-116 / 116-118 / 79-80; batch 16 × 32: 209-212 / 206-209
//   / 152-154.
// - no K blocking: each task walks its panels (contiguous in memory) start to end, each panel's chunks as four
//   interleaved streams with a software prefetch one chunk ahead in each (SmallMPanelPrefetch, gemm_driver.h, has
//   the order and why), so the next lines are in flight while the current chunk multiplies (tile loads stall on a
//   miss; the hardware prefetcher stops at 4 KB pages).
// - C starts from the bias (a stride-0 tile load repeats the panel's 32 bias floats in every row). The tiles go to a
//   stack buffer, and the pass's epilogue (GELU for the FFN's first GEMM, then the valid rows and columns out to y)
//   runs during the next pass, a few rows per chunk step, from the other of two buffers (task() says why not
//   straight into y; DeferredRows, gemm_driver.h, why deferred). Before either, C started at zero and the bias was
//   added to the stored rows, and that reload of just-stored tile rows (24 lines per panel) waited for the tile
//   stores: without it the 48 GEMMs of a 12-token forward (M = 12, 2 threads, a throw-away harness over the real
//   kernels, median of 100 calls, 3 alternating runs) took 6.03 / 6.09 / 6.07 → 5.22 / 5.52 / 5.64 ms.
// - work split: panel groups only (one row block), sized by gemmPanelsPerGroupBalanced so both threads get equal
//   shares of N. Tile state is configured per task call and released after it.
// Effect: 12-token batch-1 forward of the 12 × 768 model, 2 threads, p50 19.4-20.7 → 7.6-9.6 ms (3 interleaved
// rounds, busy machine). With W from memory the engine reads 20-24 GB/s, about what a plain 2-thread streaming read
// gets on this VM (24-25 GB/s), so the bf16 GEMMs are at the DRAM floor (170 MB per forward). Tried and dropped:
// prefetch distance 2-32 KB and _MM_HINT_T1 (within noise), _MM_HINT_NTA on part of the panels so the rest stays
// in L3 between forwards (much slower), 1 or 2 tasks per thread instead of the balanced groups (within noise).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <cstring>

#define KST_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int kGroupRows = 32;  // rows per pass over a panel: two tiles of (up to) 16 rows
constexpr int kMaxRows = 512;   // the most rows this engine takes (gemm_bf16_amx_small_fits)

struct TileCfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

#include "gemm_driver.h"

struct AmxSmallJob {
  GemmSplit s;
  const uint32_t* a;  // x as bf16 pairs: M rows of KPP words (KP rounded up to 16, zero-padded)
  int M, N, K, KP, KPP;
  // M ≤ kGroupRows: each thread rounds x itself into its own copy (xc in use), instead of reading the caller's copy
  // at a.
  const float* x;
  ThreadCopies xc;
  const uint32_t* packed;
  const float* bias;
  float* y;
  int ep;
};

// x[M][K] → dst[M][KPP] bf16 pairs (round to nearest even), zero past K.
KST_AMX_TARGET void convertRows(const float* x, int M, int K, int KPP, uint32_t* dst) {
  for (int r = 0; r < M; ++r) {
    const float* s = x + static_cast<size_t>(r) * K;
    uint32_t* d = dst + static_cast<size_t>(r) * KPP;
    int k = 0;
    for (; k + 32 <= K; k += 32)
      _mm512_storeu_si512(d + k / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k)));
    for (; k < K; k += 2) {
      const uint32_t lo = bf16Bits(s[k]), hi = k + 1 < K ? bf16Bits(s[k + 1]) : 0u;
      d[k / 2] = lo | (hi << 16);
    }
    for (int j = (K + 1) / 2; j < KPP; ++j) d[j] = 0;
  }
}

// Tile rows: M ≤ 32: the rows present (r0 = min(M, 16), r1 = M − r0), so no padding row is multiplied. M > 32:
// 16 and 16, with x zero-padded to whole 16-row tiles (the last group's padding rows are multiplied and dropped).
KST_AMX_TARGET void tileRows(int M, int& r0, int& r1) {
  r0 = M <= kGroupRows ? imin(M, 16) : 16;
  r1 = M <= kGroupRows ? M - r0 : 16;
}

KST_AMX_TARGET void task(void* ctx, int64_t begin, int64_t end, int tid) {
  const AmxSmallJob& j = *static_cast<const AmxSmallJob*>(ctx);
  const uint32_t* a = j.a;
  if (j.xc.base)
    a = reinterpret_cast<const uint32_t*>(
        j.xc.get(tid, [&](float* copy) { convertRows(j.x, j.M, j.K, j.KPP, reinterpret_cast<uint32_t*>(copy)); }));
  alignas(64) float bias[NR];
  int r0, r1;
  tileRows(j.M, r0, r1);
  TileCfg cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  const int rows[8] = {r0, r0, r1, r1, r0, r1, 16, 16};  // 0-3: C (two row tiles × two column halves); 4, 5: A; 6, 7: B
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(rows[t]);
    cfg.colsb[t] = rows[t] ? 64 : 0;
  }
  _tile_loadconfig(&cfg);
  const int chunks = j.KPP / 16, groups = (j.M + kGroupRows - 1) / kGroupRows;
  const size_t lda = static_cast<size_t>(j.KPP) * 4;
  SmallMPanelPrefetch pf(static_cast<size_t>(j.KP) * NR * 4, groups, chunks);  // gemm_driver.h has the why
  // A pass's tiles go to one of two stack buffers; its epilogue (GELU or none, the valid columns out to y) runs
  // during the next pass, a few rows per chunk step (DeferredRows, gemm_driver.h). Why not the tiles straight into
  // y: a tile store writes 16 rows N floats apart, at N = 3072 (12 KB) all in one L1 set, and the epilogue then reads
  // them back; through the stack, 48 GEMMs of a 12-token-shaped forward measured 1-4 % faster at M = 12-48 (p10 of
  // 30 alternating calls 6.64 / 6.83 → 6.52 / 6.62 ms at M = 12, 13.60 / 13.36 → 12.89 / 12.85 at M = 48).
  alignas(64) float cbuf[2][kGroupRows * NR];
  int cb = 0;
  DeferredRows later;
  const float* src = nullptr;  // the last pass: its sums, where they go, the valid columns of each half
  float* dst = nullptr;
  __mmask16 k0 = 0, k1 = 0;
  const auto out = [&](int ra, int rb) {
    for (int r = ra; r < rb; ++r)
      gemmStoreRow32(dst + static_cast<size_t>(r) * j.N, k0, k1, j.ep, _mm512_load_ps(src + r * NR),
                     _mm512_load_ps(src + r * NR + 16));
  };
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    pf.startTask(j.packed + static_cast<size_t>(b.p0) * j.KP * NR);
    for (int p = b.p0; p < b.p1; ++p) {
      const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KP * NR;
      pf.startPanel(B, p + 1 < j.s.panels ? B + static_cast<size_t>(j.KP) * NR : nullptr);
      const int n0 = p * NR, cols = imin(NR, j.N - n0);
      const float* bp = gemmPanelBias<NR>(j.bias, n0, cols, bias);
      for (int g = 0; g < groups; ++g) {
        const int m0 = g * kGroupRows, real = imin(kGroupRows, j.M - m0);
        const bool two = real > r0;  // the group's second row tile holds rows
        const uint32_t* A0 = a + static_cast<size_t>(m0) * j.KPP;
        const uint32_t* A1 = A0 + static_cast<size_t>(16) * j.KPP;
        // C starts from the bias: a tile load with stride 0 puts the same 16 floats in every row.
        _tile_loadd(0, bp, 0);
        _tile_loadd(1, bp + 16, 0);
        if (two) {
          _tile_loadd(2, bp, 0);
          _tile_loadd(3, bp + 16, 0);
        }
        for (int step = 0; step < chunks; ++step) {
          const int ch = pf.chunk(g, step);  // the order and the prefetch: gemm_driver.h
          later.step(out);
          const uint32_t* Bc = B + static_cast<size_t>(ch) * 16 * NR;  // 16 pairs × 32 columns = 2 KB
          _tile_loadd(4, A0 + ch * 16, lda);
          _tile_loadd(6, Bc, NR * 4);
          _tile_loadd(7, Bc + 16, NR * 4);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          if (two) {
            _tile_loadd(5, A1 + ch * 16, lda);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        float* C = cbuf[cb];
        cb ^= 1;
        _tile_stored(0, C, NR * 4);
        _tile_stored(1, C + 16, NR * 4);
        if (two) {
          _tile_stored(2, C + 16 * NR, NR * 4);
          _tile_stored(3, C + 16 * NR + 16, NR * 4);
        }
        later.finish(out);  // the pass before, if it had more rows than this pass had steps
        src = C;
        dst = j.y + static_cast<size_t>(m0) * j.N + n0;
        gemmPanelLanes(cols, k0, k1);
        later.start(real, chunks);
      }
    }
  }
  later.finish(out);
  _tile_release();
}

}  // namespace

bool amx_bf16_ready();

// Whether gemm_bf16_amx_small takes an M-row GEMM (AMX usable, M ≤ kMaxRows).
bool gemm_bf16_amx_small_fits(int M) { return M >= 1 && M <= kMaxRows && amx_bf16_ready(); }

// ep: 0 none, 1 GELU erf, 2 GELU tanh. Requires gemm_bf16_amx_small_fits(M).
KST_AMX_TARGET void gemm_bf16_amx_small(const float* x, int M, const PackedWeight& w, const float* bias, float* y,
                                        int ep, ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  AmxSmallJob j;
  j.M = M;
  j.N = w.N;
  j.KP = (w.K + 1) / 2;
  j.KPP = (j.KP + 15) & ~15;
  j.K = w.K;
  j.x = x;
  j.packed = reinterpret_cast<const uint32_t*>(w.pdata);
  j.bias = bias;
  j.y = y;
  j.ep = ep;
  const int T = poolThreads(pool);
  AlignedBuffer local;
  AlignedBuffer& buf = w.act_scratch ? *w.act_scratch : local;
  if (M <= kGroupRows) {
    // One slice per thread, each rounded by the thread that reads it. Why: a tile load of x stalls on every line
    // another core has just written (the caller's copy sits in the caller's cache), while the ordinary loads that
    // round x overlap those misses; rounding ≤ 32 × K floats once per thread costs next to nothing. Measured, 2
    // threads, alternating: 48 GEMMs of a 12-token forward (harness as above) 6.08 / 6.33 / 6.75 → 4.85 / 6.19 /
    // 5.12 ms; the model's 12-token batch-1 p50 6.63 / 6.08 / 6.35 → 5.68 / 5.33 / 5.75 ms, and interleaved with
    // ORT as in bench/ (workload b) 7.18 / 6.98 → 6.78 / 6.29 ms.
    j.xc.reserve(buf, static_cast<size_t>(M) * j.KPP, T);  // uint32 words (bf16 pairs), 4 bytes like floats
    j.a = nullptr;
  } else {
    const int Mp = (M + 15) & ~15;  // whole 16-row tiles above 32 rows (tileRows)
    buf.resize(static_cast<size_t>(Mp) * j.KPP);
    uint32_t* abuf = reinterpret_cast<uint32_t*>(buf.data());
    std::memset(abuf + static_cast<size_t>(M) * j.KPP, 0, static_cast<size_t>(Mp - M) * j.KPP * 4);
    // Rounded by the pool in chunks of ≥ 16 K floats, not by the caller alone while the other threads wait: the
    // bf16 forward (2 threads, median ms per call, 3 alternating runs) 1 × 64 tokens 16.1 / 15.7 / 16.2 → 14.3 /
    // 14.2 / 14.9, 8 × 16 25.0 / 25.0 / 26.0 → 23.6 / 23.8 / 21.1, 4 × 128 96.5 / 102.4 / 95.4 → 90.6 / 92.2 / 90.3.
    struct Conv {
      const float* x;
      int K, KPP;
      uint32_t* dst;
    } cv{x, w.K, j.KPP, abuf};
    parallelRun(pool, M, imax(1, 16384 / imax(1, w.K)), [](void* c, int64_t b, int64_t e, int) {
      const Conv& v = *static_cast<const Conv*>(c);
      convertRows(v.x + b * v.K, static_cast<int>(e - b), v.K, v.KPP, v.dst + b * v.KPP);
    }, &cv);
    j.a = abuf;
  }
  j.s = gemmSplitColumns(M, w.N, NR, T);
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
