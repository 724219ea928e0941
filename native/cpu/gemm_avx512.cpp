// GEMM y = x Wᵀ + b (AVX-512). W [N][K] is packed once at load into panels of 32 output columns,
// k-major: panel p holds W[32p + j][k] at [p][k][j] (zero-padded past N). The micro-kernels keep two zmm
// accumulators per row (12 × 32: 24 zmm; the small-M path's 14 × 32: 28) and broadcast x[m][k]. Two paths:
//
// M > 42 (the packed path, this file's driver, packedTask): x is first packed per row tile (≤ 12 rows) into a
// contiguous k-major copy (rows floats per k), so the kernel's broadcasts read one sequential stream instead of
// 12 rows K floats apart (K = 3072: 12 KB apart, every row in the same L1 set; K = 768: 3 KB apart). Packing is its
// own parallel pass (a 16×16 register transpose per 16 k; 2–3 % of a 64- or 1024-token forward pass in perf) so
// that every (row block, panel group) task reads the packed copy instead of re-packing it per panel group. K runs in
// balanced blocks of ≤ KCP = 768: the 12 × kc tile of packed x (≤ 36 KB) stays in L1 while the panel's kc × 32
// slice comes from L2, and K = 768 needs no pass that reloads C (KC 256 / 384 / 512 / 1024 / 1536 measured lower
// or equal within noise). `test_ops --peak-json 2` (FMA peak ≈ 445 GFLOP/s), GFLOP/s, before (unpacked, KC 256)
// → after (this path, with the prefetch and epilogue below), 2–3 runs each: 64 × 2304 × 768 283 / 300 → 339 / 365
// / 351; 128 × 3072 × 768 313 / 305 → 367 / 377 / 358; 512 × 2304 × 768 294 / 296 → 345 / 349 / 349; the K = 3072
// rows gain least: 64 × 768 × 3072 306 / 315 → 326 / 345 / 323, 128 × 768 × 3072 284 / 282 → 311 / 316 / 321
// (≈ 71–77 % of peak; still below 80 %).
//
// M ≤ 42 (the small-M path, smallTask below; batch 1 up to 42 tokens): the weight streams from DRAM once per call,
// so the kernel's job is to keep memory busy: K is not blocked, each panel is read as four concurrent streams, the
// first row tile takes as many rows as the registers hold, and x is packed into row tiles per thread (the section's
// comment has the why and the measurements).
//
// Both paths: the first K block starts from the bias, later ones accumulate into y; a last partial panel runs over
// the whole K into a stack tile and copies the valid columns out. Epilogue: gemm_gelu_avx512 applies GELU (erf or
// tanh form) to each finished tile (after the last K block) in registers before the store, so the FFN's
// intermediate activation costs no extra pass over memory.
// ffn_avx512 (end of file) runs the FFN pair with the first GEMM storing its tiles in the layout the second one
// packs x into, so the second has no packing pass.
// Work split: (row block, panel group) tasks, the group count chosen so the task count is a multiple of the thread
// count where possible (no thread idles at the end); at batch 1 (one row block) that splits N across the threads.
// From 128 rows per thread on, the packed path splits rows only (rowTask: each core packs and computes its own rows).
// Packed-path row tiles inside a block are balanced from the block's own row count (64 → 5 × 11 + 9; 5 × 12 + 4
// measured equal within noise at M = 64).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int MR = 12;
constexpr int KCP = 768;  // the packed path's largest K block

// The micro-kernels' accumulators: start from C (a later K block) or from the bias (the first), and store them.
template <int R>
inline __attribute__((always_inline)) void loadTile(bool acc, const float* C, int ldc, const float* bias, __m512* c0,
                                                    __m512* c1) {
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
}
template <int R>
inline __attribute__((always_inline)) void storeTile(float* C, int ldc, const __m512* c0, const __m512* c1) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(C + r * ldc, c0[r]);
    _mm512_storeu_ps(C + r * ldc + 16, c1[r]);
  }
}

// ep 1: GELU (erf), 2: GELU (tanh), else none, on the accumulators before the store.
template <int R>
inline __attribute__((always_inline)) void geluTile(int ep, __m512* c0, __m512* c1) {
  if (ep == 1) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = gelu_erf16(c0[r]);
      c1[r] = gelu_erf16(c1[r]);
    }
  } else if (ep == 2) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      c0[r] = gelu_tanh16(c0[r]);
      c1[r] = gelu_tanh16(c1[r]);
    }
  }
}

#include "gemm_driver.h"

// ---- The packed path (M > 24) ---------------------------------------------------------------------------------
// C[R][NR] = ep((acc ? C : bias) + A[0:K][R] · B[0:K][NR]), A a packed row tile (R floats per k), ep 0 none, 1 GELU
// erf, 2 GELU tanh (the caller passes it with the last K block). The software prefetch 16 k steps (2 KB) ahead
// keeps the panel slice coming from L2 (8 to 64 measured equal within noise; 16 kept). `next` + 16k (k < npf) is
// prefetched into L2 as well, one line per k step: the caller points it at its share of the slice it reads next,
// so that slice's trip from DRAM (in a forward pass every weight is read from memory once per GEMM) overlaps this
// one's compute.
// GELU is applied in registers before the store: reloading the tile just stored (rows N floats apart; N = 3072 is
// 12 KB, so every row aliases the previous row's store in its low 12 address bits) stalled on those stores: the
// reload was 40 % of the driver's own time in a perf profile of the 8 × 128-token forward.
// Each x value is broadcast once into a register and feeds both FMAs; folding the broadcast into each FMA instead
// (`vfmadd231ps mem{1to16}`, 12 fewer uops per k step but 24 scalar loads instead of 12) measured 5–7 % slower
// (1 thread pinned, 512 × 768 × 3072, 64 × 768 × 3072, 512 × 3072 × 768, three alternating runs each).
template <int R>
void kernelP(const float* A, const float* B, int K, const float* bias, bool acc, int ep, float* C, int ldc,
             const float* next, int npf) {
  __m512 c0[R], c1[R];
  loadTile<R>(acc, C, ldc, bias, c0, c1);
#pragma GCC unroll 2
  for (int k = 0; k < K; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(B + (k + 16) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(B + (k + 16) * NR + 16), _MM_HINT_T0);
    if (k < npf) _mm_prefetch(reinterpret_cast<const char*>(next + k * 16), _MM_HINT_T1);
    const __m512 w0 = _mm512_load_ps(B + k * NR), w1 = _mm512_load_ps(B + k * NR + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[k * R + r]);
      c0[r] = _mm512_fmadd_ps(a, w0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, w1, c1[r]);
    }
  }
  geluTile<R>(ep, c0, c1);
  storeTile<R>(C, ldc, c0, c1);
}

void runKernelP(int rows, const float* A, const float* B, int K, const float* bias, bool acc, int ep, float* C,
                int ldc, const float* next, int npf) {
  withRows<12>(rows, [&](auto R) { kernelP<decltype(R)::value>(A, B, K, bias, acc, ep, C, ldc, next, npf); });
}

// The job: the fp32 driver's job plus the packed copy of x. Row tile i of row block [m0, m1) covers rows
// [m, m + rows), m = m0 + i·tr, tr = gemmTileRows(m1 − m0, MR), rows = min(tr, m1 − m), and is stored at
// xp + m·K as [K][rows]. A block has at most tiles_per_block = ceil(mc / MR) tiles.
struct PackedJob {
  GemmF32Job j;
  float* xp;         // the packed copy of x the packing passes write (null where x came packed)
  const float* xa;   // what the kernels read: xp, or x itself where it came in the packed layout (ffn's second GEMM)
  int tiles_per_block;
  int row_tasks;     // row-split mode only (rowTask)
  float* yp;         // non-null (ffn's first GEMM): y goes here in the packed layout instead of to j.y (see ffn)
};

// One row tile of x (rows ≤ 16, row stride ld), columns [0, K) → dst[k][rows], 16 k at a time through a register
// transpose (transpose16x16, simd.h).
void packTile(const float* src, size_t ld, int rows, int K, float* dst) {
  const __mmask16 rmask = static_cast<__mmask16>((1u << rows) - 1);
  for (int k = 0; k < K; k += 16) {
    const int n = imin(16, K - k);
    const __mmask16 kmask = static_cast<__mmask16>((1u << n) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(kmask, src + i * ld + k) : _mm512_setzero_ps();
    transpose16x16(r);
    for (int i = 0; i < n; ++i) _mm512_mask_storeu_ps(dst + static_cast<size_t>(k + i) * rows, rmask, r[i]);
  }
}

// Packs row tiles [begin, end) (numbered over all row blocks, tiles_per_block each).
void packTask(void* ctx, int64_t begin, int64_t end, int) {
  const PackedJob& pj = *static_cast<const PackedJob*>(ctx);
  const GemmF32Job& j = pj.j;
  for (int64_t t = begin; t < end; ++t) {
    const int mb = static_cast<int>(t / pj.tiles_per_block), ti = static_cast<int>(t % pj.tiles_per_block);
    const int m0 = mb * j.s.mc, m1 = imin(j.s.M, m0 + j.s.mc);
    const int tr = gemmTileRows(m1 - m0, MR), m = m0 + ti * tr;
    if (m >= m1) continue;
    packTile(j.x + static_cast<size_t>(m) * j.K, j.K, imin(tr, m1 - m), j.K, pj.xp + static_cast<size_t>(m) * j.K);
  }
}

// gemmF32Task's loops (K blocks, then panels, then row tiles; partial last panel over the whole K into a stack
// tile) over rows [m0, m1) and panels [p0, p1), with the packed tiles as A.
void computeBlock(const PackedJob& pj, int m0, int m1, int p0, int p1) {
  const GemmF32Job& j = pj.j;
  alignas(64) float bias[NR];
  alignas(64) float tile[MR * NR];
  const int pf = imin(p1, j.s.full_panels);  // full panels of this group: [p0, pf)
  const int tr = gemmTileRows(m1 - m0, MR);
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
      // The next slice this task reads ((p + 1, k0), else (p0, next K block)) is brought into L2 while this one
      // is used: its 2·kc lines spread evenly over this slice's row tiles, one line per k step from each tile's
      // start (1 x 64-token forward, 2 threads, 3 alternating runs: 49.0 / 49.0 / 51.9 ms with all of it in the
      // first two tiles → 48.4 / 45.4 / 47.3 ms; over the first half of the tiles: in between).
      const float* next = p + 1 < pf ? B + static_cast<size_t>(j.K) * NR
                          : k0 + kc < j.K ? j.packed + (static_cast<size_t>(p0) * j.K + k0 + kc) * NR
                                          : nullptr;
      const int ntiles = (m1 - m0 + tr - 1) / tr, lp = (2 * kc + ntiles - 1) / ntiles;
      for (int m = m0, ti = 0; m < m1; m += tr, ++ti) {
        const int rows = imin(tr, m1 - m);
        const float* pn = next ? next + static_cast<size_t>(ti) * lp * 16 : B;
        const float* A = pj.xa + static_cast<size_t>(m) * j.K + static_cast<size_t>(k0) * rows;
        if (pj.yp) {  // one K block (run() sets kc = K for yp): via the stack into y's packed layout
          runKernelP(rows, A, B, kc, bp, false, j.ep, tile, NR, pn, next ? lp : 0);
          packTile(tile, NR, rows, NR, pj.yp + static_cast<size_t>(m) * j.N + static_cast<size_t>(n0) * rows);
        } else {
          runKernelP(rows, A, B, kc, bp, k0 > 0, last ? j.ep : 0, j.y + static_cast<size_t>(m) * j.N + n0, j.N, pn,
                     next ? lp : 0);
        }
      }
    }
  }
  for (int p = pf; p < p1; ++p) {  // the last, partial panel
    const float* B = j.packed + static_cast<size_t>(p) * j.K * NR;
    const int n0 = p * NR, cols = j.N - n0;
    for (int c = 0; c < NR; ++c) bias[c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
    for (int m = m0; m < m1; m += tr) {
      const int rows = imin(tr, m1 - m);
      runKernelP(rows, pj.xa + static_cast<size_t>(m) * j.K, B, j.K, bias, false, j.ep, tile, NR, B, 0);
      if (pj.yp)
        packTile(tile, NR, rows, cols, pj.yp + static_cast<size_t>(m) * j.N + static_cast<size_t>(n0) * rows);
      else
        gemmTileOut<NR>(tile, rows, cols, j.y + static_cast<size_t>(m) * j.N + n0, j.N);
    }
  }
}

void packedTask(void* ctx, int64_t begin, int64_t end, int) {
  const PackedJob& pj = *static_cast<const PackedJob*>(ctx);
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(pj.j.s, t);
    computeBlock(pj, b.m0, b.m1, b.p0, b.p1);
  }
}

// Row-split mode (M ≥ kRowSplitRows per thread): task t of n = row_tasks owns rows [M·t / n, M·(t + 1) / n) and
// every panel; it packs its own rows and then computes them, one pass, no barrier in between. Why: one 2-thread GEMM
// (512 × 768 × 3072, the column split above) ran at 308 GFLOP/s while two 1-thread GEMMs in separate processes, one per
// core, ran at 171 + 171, and perf put 92 % of the time in the kernel with no waiting, so the kernel itself ran slower
// with two threads; in that split each core reads packed tiles the other core wrote (tiles are handed out one at a
// time in the pack pass, and a row block's panel groups go to different threads), which the row split removes. The
// output is bitwise the same (same K blocks, same kernel per element; checked against the 1-thread path).
// 2 threads, a synthetic harness (weights resident in cache), median GFLOP/s of 60 calls, two alternating runs:
// 512 × 768 × 3072 305 / 304 → 318 / 320, 512 × 3072 × 768 317 / 330 → 341 / 338. In the 12 × 768 model's forward
// pass (2 threads, three alternating runs, median ms per call) the gain is smaller, because each core now streams
// every weight panel (the column split streams half): 8 × 64 tokens 331 / 305 / 325 → 309 / 302 / 312, 32 × 16
// 315 / 308 / 325 → 302 / 292 / 312, 32 × 64 1270 / 1214 / 1281 → 1213 / 1212 / 1301, 4 × 128 334 / 326 / 351 →
// 305 / 316 / 352; 512 KorSTS-test sentences at batch 32: 120.3 / 110.2 / 103.1 → 122.0 / 114.2 / 103.8 sentences/s.
// Tried from 12 rows per thread, it was slower at 64 tokens (1 × 64: 49.9 / 46.9 → 50.9 / 50.7 ms) and mixed at 128
// (88.7 / 83.9 → 84.4 / 87.5 ms); from 64 rows per thread (quiet machine, three alternating runs) the synthetic
// 128 × 768 × 3072 gained 10–18 % (median 342 / 345 / 333 → 377 / 403 / 395) while the model's forward at 128 tokens
// lost 2–5 % in every pair (1 × 128 75.1 / 74.5 / 74.2 → 77.2 / 76.7 / 76.0 ms, 4 × 32 71.4 / 71.2 / 71.1 → 74.2 /
// 74.6 / 76.8, 8 × 16 71.2 / 71.0 / 70.6 → 74.8 / 74.2 / 74.3): hence the threshold of 128 rows per thread.
constexpr int kRowSplitRows = 128;
void rowTask(void* ctx, int64_t begin, int64_t end, int) {
  const PackedJob& pj = *static_cast<const PackedJob*>(ctx);
  const GemmF32Job& j = pj.j;
  for (int64_t t = begin; t < end; ++t) {
    const int m0 = static_cast<int>(j.s.M * t / pj.row_tasks), m1 = static_cast<int>(j.s.M * (t + 1) / pj.row_tasks);
    const int tr = gemmTileRows(m1 - m0, MR);
    if (pj.xp)
      for (int m = m0; m < m1; m += tr)
        packTile(j.x + static_cast<size_t>(m) * j.K, j.K, imin(tr, m1 - m), j.K, pj.xp + static_cast<size_t>(m) * j.K);
    computeBlock(pj, m0, m1, 0, j.s.panels);
  }
}

// ---- The small-M path (M ≤ kSmallMaxM: batch 1) ---------------------------------------------------------------
// The whole weight streams from DRAM once per call and each element feeds only M multiply-adds, so what counts is
// that the kernel keeps memory busy while it computes. K is not blocked: each panel (K × 128 bytes) is read once, as
// kStreams concurrent streams (k = i, K/4 + i, K/2 + i, 3K/4 + i; the tail K mod kStreams last, in order): the core
// computes between loads, so one stream leaves DRAM idle (synthetic 12-row loop over 340 MB, 1 thread: 8.7 GB/s
// one stream, 13.0 GB/s four). Each stream's last kStreamPf steps prefetch the start of the same stream in the
// panel read next, so a panel's streams do not start cold.
// x is packed into row tiles as on the packed path ([K][rows], packTile), so a k step's broadcasts are one pointer
// plus constant offsets. Before, x was read in place (rows K floats apart): four streams × 12 rows are 48
// addresses, more than the registers hold, and the compiler reloaded a row pointer from the stack before every
// broadcast (12 more loads per k step beside the 12 broadcasts and 2 weight loads), so the load ports, not DRAM,
// set the pace. Each thread packs its own copy on its first task (≤ 42 × K floats), as the AMX small-M engines do
// (there a tile load stalled on lines another core had just written; one shared copy was not tried here). The
// kernel sums in the same order as before: bitwise the same output. Measured (48 GEMMs of a 12-token forward over
// the 12 × 768 model's shapes, 2 threads, median of 100, before / this path alternated in one process, 2 runs; a
// plain 2-thread read of the same 340 MB takes ~10.0 ms):
// pool polling 10 µs 11.85 / 11.53 → 11.00 / 10.67 ms (8 tasks per thread, the best split at that polling);
// polling 50 µs, where threadpool.h's adaptive polling settles at batch 1: 11.38 / 11.15 → 10.43 / 10.25 ms.
// Row tiles: the first tile's pass streams each panel from DRAM, and its FMAs hide under that wait; a later tile
// re-reads the panel from cache with memory idle, so the first tile takes all the rows the registers hold (14: 28
// accumulators, 2 weight vectors, 1 broadcast of the 32 zmm; the compiler spills a few values per 4 k steps at 13
// and 14 rows) and the rest are balanced over tiles of ≤ 14. Before, rows were balanced over tiles of ≤ 12 (13
// rows → 7 + 6: two passes where one does) and the path ended at 24 rows. The 12 × 768 model's forward at batch 1,
// 2 threads, median of 32 calls per variant, variants alternating in one process (ms; before → this): 12 tokens
// 12.64 → 12.50 (the same tiles), 13: 16.27 → 12.80, 16: 17.80 → 16.59, 20: 19.38 → 18.28, 24: 21.12 → 20.28, 28
// (the packed path before): 26.21 → 22.50, 29: 26.50 → 24.08, 32: 27.74 → 25.66, 36: 29.44 → 28.64, 42: 33.71 →
// 31.48. The path ends at three tiles (42 rows): at 48 and 56 rows four tiles of 14 measured within 3 % of the
// packed path.
constexpr int kSmallMR = 14;
constexpr int kSmallMaxM = 3 * kSmallMR;
constexpr int kStreams = 4;
constexpr int kStreamK = 512;  // K from which the panel is read as kStreams streams
constexpr int kStreamPf = 32;  // software prefetch distance per stream, k steps (32 × 128 bytes = 4 KB)
static_assert(kStreamK / kStreams > kStreamPf, "kernelS: each stream is longer than its prefetch distance");

// One k step: c[r] += a[r] · b[0:NR], and a prefetch of the 2 lines at pf (the hardware prefetcher restarts at
// every 4 KB page).
template <int R>
inline __attribute__((always_inline)) void kstepS(const float* a, const float* b, const float* pf, __m512* c0,
                                                  __m512* c1) {
  _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(pf + 16), _MM_HINT_T0);
  const __m512 w0 = _mm512_load_ps(b), w1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 x = _mm512_set1_ps(a[r]);
    c0[r] = _mm512_fmadd_ps(x, w0, c0[r]);
    c1[r] = _mm512_fmadd_ps(x, w1, c1[r]);
  }
}

// The panel's kStreams streams (segments of seg = K / kStreams k steps: stream s covers k = s·seg + i) and stream
// steps [i0, i1): each step is one k step of every stream; before step own = seg − kStreamPf a stream prefetches its
// own line kStreamPf steps ahead, from there the same offset in the panel read next (`next`; null: B again, cached).
template <int R>
inline __attribute__((always_inline)) void streamStepsS(const float* A, const float* B, int K, const float* next,
                                                        int i0, int i1, __m512* c0, __m512* c1) {
  const int seg = K / kStreams, own = seg - kStreamPf;
  const float* a[kStreams];
  const float* b[kStreams];
  const float* n[kStreams];
  for (int s = 0; s < kStreams; ++s) {
    a[s] = A + static_cast<size_t>(s) * seg * R;
    b[s] = B + static_cast<size_t>(s) * seg * NR;
    n[s] = (next ? next : B) + static_cast<size_t>(s) * seg * NR;
  }
  int i = i0;
  for (; i < imin(i1, own); ++i) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s) kstepS<R>(a[s] + i * R, b[s] + i * NR, b[s] + (i + kStreamPf) * NR, c0, c1);
  }
  for (; i < i1; ++i) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s) kstepS<R>(a[s] + i * R, b[s] + i * NR, n[s] + (i - own) * NR, c0, c1);
  }
}
// The k steps from k0 on (past the streams: K mod kStreams, in order), the epilogue, and the store into C.
template <int R>
inline __attribute__((always_inline)) void finishTileS(const float* A, const float* B, int k0, int K, int ep,
                                                       __m512* c0, __m512* c1, float* C, int ldc) {
  for (int k = k0; k < K; ++k) kstepS<R>(A + k * R, B + k * NR, B + (k + 2 * kStreamPf) * NR, c0, c1);
  geluTile<R>(ep, c0, c1);
  storeTile<R>(C, ldc, c0, c1);
}

// C[R][NR] = ep(bias + A[0:K][R] · B[0:K][NR]), A a packed row tile (R floats per k), the whole K in one pass.
// `next`: the panel this thread reads next (null: none); each stream's last kStreamPf steps prefetch the start of
// the same stream there, so the next panel's streams do not start cold.
template <int R>
void kernelS(const float* A, const float* B, int K, const float* bias, int ep, float* C, int ldc, const float* next) {
  __m512 c0[R], c1[R];
  loadTile<R>(false, C, ldc, bias, c0, c1);
  int k = 0;
  if (K >= kStreamK) {
    streamStepsS<R>(A, B, K, next, 0, K / kStreams, c0, c1);
    k = kStreams * (K / kStreams);
  }
  finishTileS<R>(A, B, k, K, ep, c0, c1, C, ldc);
}

void runKernelS(int rows, const float* A, const float* B, int K, const float* bias, int ep, float* C, int ldc,
                const float* next) {
  withRows<kSmallMR>(rows, [&](auto R) { kernelS<decltype(R)::value>(A, B, K, bias, ep, C, ldc, next); });
}

// Two row tiles over one panel (kSmallMR < M ≤ 2·kSmallMR, K ≥ kStreamK), interleaved in chunks of kChunkI
// stream steps (kStreams k each): the second tile runs each chunk right after the first, while that slice of the
// panel is still in L1, instead of re-reading the panel in a second pass after it. The accumulators live in a stack
// buffer between chunks (2·R zmm per tile); the streams and prefetches are kernelS's, and each element's sum runs in
// the same k order as kernelS (bitwise the same output). Measured (the 12 × 768 forward at batch 1, 2 threads,
// median of 32 calls per variant, alternating; ms, two passes → chunks of 16): 15 tokens 15.01 → 13.96 (chunks of
// 32), 16: 15.80 / 15.54 → 14.72 / 14.32, 20: 17.51 / 17.22 → 16.64 / 15.86, 24: 18.96 / 18.81 → 18.61 / 18.62,
// 26: 19.90 / 20.53 → 19.44 / 20.13, 28: 20.22 / 20.59 → 20.61 / 20.87 (within noise); chunks of 8 as 16, 64 worse
// (16 tokens 15.16). Three tiles stay in passes: 32 / 36 / 42 tokens with passes 23.10 / 25.69 / 29.73 and 22.81 /
// 25.68 / 29.32, with chunks 22.61 / 25.89 / 30.81 and 22.18 / 25.97 / 30.62. Letting the second tile prefetch
// further ahead (one chunk past the first tile's distance) made 16 tokens slower: 18.47 ms.
constexpr int kChunkI = 16;
template <int R>
void chunkS(const float* A, const float* B, int K, int i0, int i1, const float* next, float* acc) {
  __m512 c0[R], c1[R];
  loadTile<R>(true, acc, NR, nullptr, c0, c1);
  streamStepsS<R>(A, B, K, next, i0, i1, c0, c1);
  storeTile<R>(acc, NR, c0, c1);
}
template <int R>
void finishS(const float* A, const float* B, int k0, int K, int ep, const float* acc, float* C, int ldc) {
  __m512 c0[R], c1[R];
  loadTile<R>(true, acc, NR, nullptr, c0, c1);
  finishTileS<R>(A, B, k0, K, ep, c0, c1, C, ldc);
}

struct SmallJob {
  GemmF32Job j;
  ThreadCopies xc;  // each thread's packed copy of x: row tile at + m·K, [K][rows]
  int t0, tr;       // rows of the first tile, and of each later one (run() sets them)
  // Rows of the tile that starts at row m.
  int tileRows(int m) const { return imin(m == 0 ? t0 : tr, j.s.M - m); }
};

// One panel with two row tiles, interleaved (chunkS); the output through `tile` where the panel is partial.
void smallPanelTwoTiles(const SmallJob& sj, const float* xp, const float* B, const float* bp, const float* next, int n0,
                        int cols, float* tile) {
  const GemmF32Job& j = sj.j;
  alignas(64) float acc[2][kSmallMR * NR];
  const int ms[2] = {0, sj.t0}, rs[2] = {sj.t0, j.s.M - sj.t0};
  for (int t = 0; t < 2; ++t)
    for (int r = 0; r < rs[t]; ++r)
      for (int c = 0; c < NR; ++c) acc[t][r * NR + c] = bp[c];
  const int seg = j.K / kStreams;
  for (int i0 = 0; i0 < seg; i0 += kChunkI)
    for (int t = 0; t < 2; ++t)
      withRows<kSmallMR>(rs[t], [&](auto R) {
        chunkS<decltype(R)::value>(xp + static_cast<size_t>(ms[t]) * j.K, B, j.K, i0, imin(seg, i0 + kChunkI), next,
                                   acc[t]);
      });
  for (int t = 0; t < 2; ++t) {
    float* Y = j.y + static_cast<size_t>(ms[t]) * j.N + n0;
    withRows<kSmallMR>(rs[t], [&](auto R) {
      finishS<decltype(R)::value>(xp + static_cast<size_t>(ms[t]) * j.K, B, kStreams * seg, j.K, j.ep, acc[t],
                                  cols == NR ? Y : tile, cols == NR ? j.N : NR);
    });
    if (cols != NR)
      gemmTileOut<NR>(tile, rs[t], cols, Y, j.N);
  }
}

void smallTask(void* ctx, int64_t begin, int64_t end, int tid) {
  const SmallJob& sj = *static_cast<const SmallJob*>(ctx);
  const GemmF32Job& j = sj.j;
  const float* xp = sj.xc.get(tid, [&](float* copy) {
    for (int m = 0, rows; m < j.s.M; m += rows) {
      rows = sj.tileRows(m);
      packTile(j.x + static_cast<size_t>(m) * j.K, j.K, rows, j.K, copy + static_cast<size_t>(m) * j.K);
    }
  });
  alignas(64) float bias[NR];
  alignas(64) float tile[kSmallMR * NR];
  const bool twoTiles = j.s.M > sj.t0 && j.s.M <= 2 * kSmallMR && j.K >= kStreamK;  // interleaved by chunks
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    for (int p = b.p0; p < b.p1; ++p) {
      const auto [B, n0, cols, bp] = gemmPanelRef<NR>(j, p, bias);
      if (twoTiles) {
        smallPanelTwoTiles(sj, xp, B, bp, p + 1 < b.p1 ? B + static_cast<size_t>(j.K) * NR : nullptr, n0, cols, tile);
        continue;
      }
      for (int m = 0, rows; m < j.s.M; m += rows) {
        rows = sj.tileRows(m);
        const float* A = xp + static_cast<size_t>(m) * j.K;
        float* Y = j.y + static_cast<size_t>(m) * j.N + n0;
        // The next panel read: this one again for the next row tile, else the group's next panel.
        const float* next = m + rows < j.s.M ? B : p + 1 < b.p1 ? B + static_cast<size_t>(j.K) * NR : nullptr;
        if (cols == NR) {
          runKernelS(rows, A, B, j.K, bp, j.ep, Y, j.N, next);
        } else {  // the last, partial panel: through a stack tile, valid columns copied out
          runKernelS(rows, A, B, j.K, bp, j.ep, tile, NR, next);
          gemmTileOut<NR>(tile, rows, cols, Y, j.N);
        }
      }
    }
  }
}

}  // namespace

void pack_avx512(PackedWeight& w) { gemmPackPanels<NR>(w); }

void gemm_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
void gemm_gelu_bf16_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y,
                           Activation act, ThreadPool* pool);
void gemm_int8_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                      ThreadPool* pool);

namespace {
// x_packed: x is already in the packed path's layout (ffn's second GEMM). yp: write y there in that layout instead
// of to y (ffn's first GEMM; K runs in one block then, so ffn keeps K ≤ KCP to stay bitwise gemm_gelu's).
void run(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep, ThreadPool* pool,
         bool x_packed = false, float* yp = nullptr) {
  if (M <= 0 || w.N <= 0) return;
  GemmF32Job j;
  gemmF32Operands(j, x, w, bias, y, ep);
  const int T = poolThreads(pool);
  // The packed copy of x (M × K floats; small M: one per thread): the model's scratch (PackedWeight::act_scratch,
  // grown to the largest size seen, so the hot path does not allocate; at 4,096 tokens × K 3,072 that is 50 MB, the
  // size of the FFN activation the model holds anyway); a buffer of this call's own only where none is given (op
  // tests, benchmarks). Allocating per call instead cost ~9,800 page faults per 8 × 128-token forward pass and no
  // measurable wall time.
  AlignedBuffer local;
  AlignedBuffer& xp = w.act_scratch ? *w.act_scratch : local;
  if (M <= kSmallMaxM && !x_packed && !yp) {  // (the packed path takes any M: ffn keeps small M off it)
    // Small M (batch 1): one row block, N split into 2 tasks per thread. Measured (the harness above, polling 50
    // µs, with the pool as it was before cdddfe8): 1 / 2 / 4 tasks per thread within 1 % of each other, 8 tasks
    // 3-4 % slower (my reading: each task's first panel starts its streams cold); with 10 µs polling 8 tasks were
    // best (my reading: with fewer, larger tasks the thread that finished first waited longer and went to sleep
    // more often). With the current pool (the 12-token forward, 2 threads, median of 400 calls per variant,
    // alternating, two runs): 1 / 2 / 4 / 8 tasks 12.70 / 12.70 / 12.80 / 13.17 ms and 12.62 / 12.58 / 12.63 / 13.03.
    // Tiles: the first takes min(M, kSmallMR) rows, the rest are balanced over tiles of ≤ kSmallMR (the section's
    // comment says why).
    j.s = gemmSplitColumns(M, w.N, NR, T, 2);
    j.kc = w.K;
    SmallJob sj;
    sj.j = j;
    sj.xc.reserve(xp, static_cast<size_t>(M) * w.K, T);
    sj.t0 = imin(M, kSmallMR);
    sj.tr = M > sj.t0 ? gemmTileRows(M - sj.t0, kSmallMR) : sj.t0;
    parallelRun(pool, j.s.tasks(), 1, smallTask, &sj);
    return;
  }
  // Row blocks of at most 192 rows (mc × kc of packed x stays in L2), balanced so the last is not tiny.
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, 192, MR));
  // With more than one K block (K > KCP: the FFN output, K = 3072 / 1024) 2 tasks per thread instead of 4: every
  // task of a row block re-reads that block's packed x once per K block, and at K = 3072 that x (M × 12 KB) and the
  // task's weight panels no longer fit one L2 together, so fewer, wider tasks re-read less. Measured (2 threads,
  // alternating, the group count forced to what this rule gives at N = 768: 6 panels per group): synthetic M × 768 ×
  // 3072 best GFLOP/s 64 rows 374 / 353 → 383 / 363, 96 rows 373 / 348 → 390 / 357, 128 rows 381 / 387 / 380 → 405 /
  // 399 / 395; the default model (4 × 256, FFN K = 1024) at batch 32
  // on KorSTS-test 2006 / 2102 / 2204 / 2279 → 2104 / 2165 / 2260 / 2281 sentences/s; the 12 × 768 model's forward at
  // 64-128 tokens within noise (10 pairs each way).
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, T, w.K > KCP ? 2 : 4));
  const int kblocks = yp ? 1 : (w.K + KCP - 1) / KCP;  // yp: the tiles go out packed after one K block
  j.kc = (w.K + kblocks - 1) / kblocks;                 // balanced: K = 769 → 385 + 384, not 768 + 1
  PackedJob pj;
  pj.j = j;
  pj.tiles_per_block = (j.s.mc + MR - 1) / MR;
  pj.yp = yp;
  if (x_packed) {
    pj.xp = nullptr;
    pj.xa = x;
  } else {
    xp.resize(static_cast<size_t>(M) * w.K);
    pj.xp = xp.data();
    pj.xa = pj.xp;
  }
  if (T > 1 && M >= kRowSplitRows * T) {
    // Row split: blocks of at most 192 rows, a multiple of the thread count of them (576 rows, 2 threads: 4 × 144).
    pj.row_tasks = (imax((M + 191) / 192, T) + T - 1) / T * T;
    parallelRun(pool, pj.row_tasks, 1, rowTask, &pj);
    return;
  }
  if (pj.xp) parallelRun(pool, static_cast<int64_t>(j.s.mblocks) * pj.tiles_per_block, 1, packTask, &pj);
  parallelRun(pool, j.s.tasks(), 1, packedTask, &pj);
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

// BertIntermediate + BertOutput's dense: y = gemm(act(gemm(x, w_in) + b_in), w_out) + b_out. Where both GEMMs take
// the packed path (fp32 weights, M > kSmallMaxM, w_in's K in one block), the first writes the intermediate straight
// into `inter` in the layout the second one's kernels read (row tiles k-major, the tiles the second GEMM cuts: both
// run the same M on the same pool, so run() cuts the same row blocks, row-split tasks and tiles), and the second
// GEMM has no packing pass (the tile is transposed from the stack right after the first GEMM's kernel, while it is
// in L1). Every output is bitwise that of gemm_gelu_avx512 then gemm_avx512; `inter` then holds the packed layout.
// Why: the packing pass was ~5 % of a 128 × 768 × 3072 GEMM's samples in perf, and that GEMM ran 6.5–7.5 % faster
// with it skipped (a timing-only hack, 64 / 128 / 192 rows). Measured, the pair as one op against gemm_gelu + gemm
// (a harness over both, BERT-base shapes, calls alternating, best-decile time, two runs): 2 threads, M = 43 +1.9 /
// +1.3 %, 64 +1.7 / +1.5 %, 100 +3.5 / +2.0 %, 128 +4.1 / +3.2 %, 192 +4.1 / +2.7 %, 256 +2.9 %, 512 +4.3 / +5.1 %;
// 1 thread M = 128 +4.2 %; 3 threads M = 200 +5.8 %. The 12 × 768 model's forward pass (2 threads, one Node process,
// fused and not in paired rounds, order alternating, median of 6–8 calls each; 30 rounds per shape, two runs): the
// fused form faster in 18 / 30 rounds at 8 × 16 tokens, 20 and 20 at 1 × 128, 22 at 4 × 64, 21 at 16 × 32, 19 at 2 ×
// 64, 18 at 8 × 64, 14 at 32 × 16 (152 of 240 in all); median time ratio 0.995–1.039 (the FFN pair is 2/3 of the
// GEMM flops).
void ffn_avx512(const float* x, int M, const PackedWeight& w_in, const float* b_in, const PackedWeight& w_out,
                const float* b_out, Activation act, float* inter, float* y, ThreadPool* pool) {
  const auto fp32 = [](const PackedWeight& w) { return !w.bf16 && !w.int8 && w.nr == NR && w.pdata; };
  if (M > kSmallMaxM && fp32(w_in) && fp32(w_out) && w_in.K <= KCP && w_out.K == w_in.N) {
    run(x, M, w_in, b_in, nullptr, act == Activation::Gelu ? 1 : 2, pool, false, inter);
    run(inter, M, w_out, b_out, y, 0, pool, true);
    return;
  }
  gemm_gelu_avx512(x, M, w_in, b_in, inter, act, pool);
  gemm_avx512(inter, M, w_out, b_out, y, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
