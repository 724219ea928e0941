// The bf16 GEMM on AMX tiles (AMX-BF16 `tdpbf16ps`), used by gemm_bf16_avx512.cpp where the CPU has AMX and
// the kernel grants the process tile state (arch_prctl ARCH_REQ_XCOMP_PERM); otherwise the AVX512-BF16 kernel
// runs. Same packed weights (panels of 32 columns × k-pairs) and the same bf16 rounding, so the same reference
// (gemm_bf16_raw_ref) and bound apply. Per (row block, panel group) task: the row block's activations are rounded
// to bf16 pairs per K block into a zero-padded stack buffer; each 32 × 32 output block uses four 16 × 16 fp32
// accumulator tiles (0-3), two A tiles of 16 rows × 32 bf16 (4, 5) and two B tiles of 16 k-pairs × 16 columns
// (6, 7). Full blocks load / store C straight from y; edge blocks go through a stack tile. Tile state is
// configured per task call and released after it.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#define KST_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
namespace kst {
namespace cpu {
namespace {

constexpr int NR = 32;
constexpr int TM = 32;   // rows per output block
constexpr int KC = 256;  // floats of K per block
constexpr int KCP = KC / 2;
constexpr int MC = 192;  // rows per row block (multiple of TM)

struct TileCfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

#include "gemm_driver.h"

// rows × kc floats of x → dst (TM-padded rows × KCP pairs, zero past kc and past `rows` up to `prow`).
KST_AMX_TARGET void convertBlock(const float* x, int ldx, int rows, int prow, int kc, uint32_t* dst) {
  const int kp = (kc + 1) / 2, kpp = (kp + 15) & ~15;
  for (int r = 0; r < rows; ++r) {
    const float* s = x + static_cast<size_t>(r) * ldx;
    uint32_t* d = dst + static_cast<size_t>(r) * KCP;
    int k = 0;
    for (; k + 32 <= kc; k += 32)
      _mm512_storeu_si512(d + k / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k)));
    for (; k < kc; k += 2) {
      const uint32_t lo = bf16Bits(s[k]), hi = k + 1 < kc ? bf16Bits(s[k + 1]) : 0u;
      d[k / 2] = lo | (hi << 16);
    }
    for (int j = kp; j < kpp; ++j) d[j] = 0;
  }
  for (int r = rows; r < prow; ++r) std::memset(dst + static_cast<size_t>(r) * KCP, 0, sizeof(uint32_t) * kpp);
}

KST_AMX_TARGET void task(void* ctx, int64_t begin, int64_t end, int) {
  const GemmBf16Job& j = *static_cast<const GemmBf16Job*>(ctx);
  alignas(64) uint32_t abuf[MC * KCP];
  alignas(64) float cbuf[TM * NR];
  alignas(64) float bbuf[TM * NR];
  TileCfg cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  for (int64_t t = begin; t < end; ++t) {
    const GemmBlock b = gemmBlock(j.s, t);
    const int m0 = b.m0, m1 = b.m1, p0 = b.p0, p1 = b.p1;
    const int prow = (m1 - m0 + TM - 1) / TM * TM;
    for (int k0 = 0; k0 < j.K; k0 += KC) {
      const int kc = imin(KC, j.K - k0), chunks = ((kc + 1) / 2 + 15) / 16, kp0 = k0 / 2;
      const bool first = k0 == 0, last = k0 + kc >= j.K;
      convertBlock(j.x + static_cast<size_t>(m0) * j.K + k0, j.K, m1 - m0, prow, kc, abuf);
      for (int p = p0; p < p1; ++p) {
        const uint32_t* B = j.packed + (static_cast<size_t>(p) * j.KP + kp0) * NR;
        const int n0 = p * NR, cols = imin(NR, j.N - n0);
        if (first)
          for (int r = 0; r < TM; ++r)
            for (int c = 0; c < NR; ++c) bbuf[r * NR + c] = (j.bias && c < cols) ? j.bias[n0 + c] : 0.f;
        for (int mt = m0; mt < m1; mt += TM) {
          const int rows = imin(TM, m1 - mt);
          const bool full = rows == TM && cols == NR;
          float* Y = j.y + static_cast<size_t>(mt) * j.N + n0;
          const size_t ldy = static_cast<size_t>(j.N) * sizeof(float);
          if (first) {
            _tile_loadd(0, bbuf, NR * 4);
            _tile_loadd(1, bbuf + 16, NR * 4);
            _tile_loadd(2, bbuf + 16 * NR, NR * 4);
            _tile_loadd(3, bbuf + 16 * NR + 16, NR * 4);
          } else if (full) {
            _tile_loadd(0, Y, ldy);
            _tile_loadd(1, Y + 16, ldy);
            _tile_loadd(2, Y + 16 * j.N, ldy);
            _tile_loadd(3, Y + 16 * j.N + 16, ldy);
          } else {
            for (int r = 0; r < TM; ++r)
              for (int c = 0; c < NR; ++c)
                cbuf[r * NR + c] = (r < rows && c < cols) ? Y[static_cast<size_t>(r) * j.N + c] : 0.f;
            _tile_loadd(0, cbuf, NR * 4);
            _tile_loadd(1, cbuf + 16, NR * 4);
            _tile_loadd(2, cbuf + 16 * NR, NR * 4);
            _tile_loadd(3, cbuf + 16 * NR + 16, NR * 4);
          }
          const uint32_t* A = abuf + static_cast<size_t>(mt - m0) * KCP;
          for (int ch = 0; ch < chunks; ++ch) {
            _tile_loadd(4, A + ch * 16, KCP * 4);
            _tile_loadd(5, A + 16 * KCP + ch * 16, KCP * 4);
            _tile_loadd(6, B + static_cast<size_t>(ch) * 16 * NR, NR * 4);
            _tile_loadd(7, B + static_cast<size_t>(ch) * 16 * NR + 16, NR * 4);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          if (full) {
            _tile_stored(0, Y, ldy);
            _tile_stored(1, Y + 16, ldy);
            _tile_stored(2, Y + 16 * j.N, ldy);
            _tile_stored(3, Y + 16 * j.N + 16, ldy);
            if (last && j.ep) gemmGeluEpilogue32(j.ep, Y, TM, j.N);
          } else {
            _tile_stored(0, cbuf, NR * 4);
            _tile_stored(1, cbuf + 16, NR * 4);
            _tile_stored(2, cbuf + 16 * NR, NR * 4);
            _tile_stored(3, cbuf + 16 * NR + 16, NR * 4);
            if (last && j.ep) gemmGeluEpilogue32(j.ep, cbuf, rows, NR);
            for (int r = 0; r < rows; ++r)
              for (int c = 0; c < cols; ++c) Y[static_cast<size_t>(r) * j.N + c] = cbuf[r * NR + c];
          }
        }
      }
    }
  }
  _tile_release();
}

bool amxInit() {
  if (const char* e = std::getenv("KST_AMX"))
    if (e[0] == '0') return false;
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") ||
      !__builtin_cpu_supports("avx512bf16"))
    return false;
  // Linux ≥ 5.16: ask for the AMX tile data state (XFEATURE_XTILEDATA = 18) for this process.
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
}

}  // namespace

bool amx_bf16_ready() {
  static const bool ok = amxInit();
  return ok;
}

// Slack the AMX kernel may read past a panel's last k-pair row (a partial 16-pair chunk): 16 rows of 32 words.
size_t amx_pack_slack() { return static_cast<size_t>(16) * NR; }

void gemm_bf16_amx(const float* x, int M, const PackedWeight& w, const float* bias, float* y, int ep,
                   ThreadPool* pool) {
  if (M <= 0 || w.N <= 0) return;
  GemmBf16Job j;
  gemmBf16Operands(j, x, w, bias, y, ep);
  j.s = gemmSplit(M, w.N, NR, gemmRows(M, MC, TM));
  gemmSetGroups(j.s, gemmPanelsPerGroupBalanced(j.s.panels, j.s.mblocks, poolThreads(pool)));
  parallelRun(pool, j.s.tasks(), 1, task, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
