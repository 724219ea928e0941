// The int8 GEMM on AMX tiles (AMX-INT8 `tdpbusd`: u8 × s8 → int32), used by gemm_int8_avx512.cpp for larger M
// where the CPU has AMX-INT8 and the kernel grants the process tile state (arch_prctl ARCH_REQ_XCOMP_PERM);
// otherwise the AVX512-VNNI kernel runs. Same inputs as that kernel — the per-row u8 activations quantised once per
// GEMM (Int8Acts: rows of lda bytes, a multiple of 64, zero past K; rows padded with zero rows to a multiple of 32)
// and the same packed weights (panels of 32 columns × k-quads, padded with zero quads to a multiple of 16) — and the
// same exact int32 sums and epilogue, so the output is bitwise that of gemm_int8_raw_ref too.
// Per (row block, panel group) task, each 32 × 32 output block is four 16 × 16 int32 accumulator tiles (0-3) over
// the whole K: per 64-byte K chunk two A tiles of 16 rows × 64 u8 (4, 5) and two B tiles of 16 quads × 16 columns
// (6, 7), straight from the activation buffer and the packed panel (no copies). The accumulators go through a
// stack int32 block to the AVX-512 epilogue (dequantisation, bias, GELU, masked stores for partial blocks).
// Tile state is configured per task call and released after it.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#define KST_AMX8_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int TM = 32;   // rows per output block
constexpr int MC = 192;  // rows per row block (multiple of TM)

struct TileCfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

#include "gemm_driver.h"

KST_AMX8_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmInt8Job& j = *static_cast<const GemmInt8Job*>(ctx);
  alignas(64) int32_t cbuf[TM * NR];
  TileCfg cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  const int chunks = ((j.K + 3) / 4 + 15) / 16;  // 16-quad chunks holding real K (≤ j.KQ / 16)
  const size_t lda = static_cast<size_t>(j.a.lda);
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    for (int p = b.p0; p < b.p1; ++p) {
      const uint32_t* B = j.packed + static_cast<size_t>(p) * j.KQ * NR;
      const int n0 = p * NR, cols = imin(NR, j.N - n0);
      __mmask16 k0, k1;
      gemmPanelLanes(cols, k0, k1);
      const __m512 sw0 = _mm512_loadu_ps(j.wscale + n0), sw1 = _mm512_loadu_ps(j.wscale + n0 + 16);
      const __m512i ws0 = _mm512_loadu_si512(j.wsum + n0), ws1 = _mm512_loadu_si512(j.wsum + n0 + 16);
      const __m512 b0 = j.bias ? _mm512_maskz_loadu_ps(k0, j.bias + n0) : _mm512_setzero_ps();
      const __m512 b1 = j.bias ? _mm512_maskz_loadu_ps(k1, j.bias + n0 + 16) : _mm512_setzero_ps();
      for (int mt = b.m0; mt < b.m1; mt += TM) {
        const int rows = imin(TM, b.m1 - mt);
        const uint8_t* A = j.a.q + static_cast<size_t>(mt) * lda;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int ch = 0; ch < chunks; ++ch) {
          _tile_loadd(4, A + ch * 64, lda);
          _tile_loadd(5, A + 16 * lda + ch * 64, lda);
          _tile_loadd(6, B + static_cast<size_t>(ch) * 16 * NR, NR * 4);
          _tile_loadd(7, B + static_cast<size_t>(ch) * 16 * NR + 16, NR * 4);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          _tile_dpbusd(2, 5, 6);
          _tile_dpbusd(3, 5, 7);
        }
        _tile_stored(0, cbuf, NR * 4);
        _tile_stored(1, cbuf + 16, NR * 4);
        _tile_stored(2, cbuf + 16 * NR, NR * 4);
        _tile_stored(3, cbuf + 16 * NR + 16, NR * 4);
        float* Y = j.y + static_cast<size_t>(mt) * j.N + n0;
        for (int r = 0; r < rows; ++r) {
          const __m512 s = _mm512_set1_ps(j.a.scale[mt + r]);
          const __m512i z = _mm512_set1_epi32(j.a.zp[mt + r]);
          gemmStoreRow32(Y + static_cast<size_t>(r) * j.N, k0, k1, j.ep,
                         gemmInt8Dequant16(_mm512_load_si512(cbuf + r * NR), z, ws0, s, sw0, b0),
                         gemmInt8Dequant16(_mm512_load_si512(cbuf + r * NR + 16), z, ws1, s, sw1, b1));
        }
      }
    }
  }
  _tile_release();
}

bool amxInit() {
  if (const char* e = std::getenv("KST_AMX"))
    if (e[0] == '0') return false;
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-int8")) return false;
  // Linux ≥ 5.16: ask for the AMX tile data state (XFEATURE_XTILEDATA = 18) for this process.
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
}

}  // namespace

bool amx_int8_ready() {
  static const bool ok = amxInit();
  return ok;
}

void gemm_int8_amx(const Int8Acts& a, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                   ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmInt8Job j;
  gemmInt8Operands(j, a, w, bias, y, ep);
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, MC, TM));
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
