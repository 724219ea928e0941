// Attention over packed variable-length sequences (AVX-512), one task per (sequence, head).
// Same scheme as attention_avx2.cpp with 16 lanes: K transposed into scratch (Kt[c][j], rows padded to
// a multiple of 16; 16 × 16 register transposes, packK) so scores come 16 keys at a time; vector-exp softmax;
// p·V accumulated over the head's columns with lane masks for head sizes that are not a multiple of 16. Queries are processed QB = 4
// at a time: the score loop then runs QB independent FMA chains (one chain alone is latency-bound) and every
// K^T / V load feeds QB FMAs.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

#include "attention_driver.h"

inline __mmask16 firstLanes(int n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFFu : ((1u << n) - 1)); }

constexpr int QB = 4;  // queries per block

// K of one (sequence, head) → Kt[c][j] (Lp = L rounded up to 16; keys past L are 0), 16 keys × 16 columns per
// register transpose. The scalar loop it replaces (strided 4-byte stores, Lp·4 bytes apart) was 1.4 % of an
// 8 × 128-token forward pass in perf, a quarter of the attention body's own time.
void packK(const AttnArgs& a, const AttnTask& t) {
  const int HS = a.head_size;
  const float* kb = a.k + t.t0 * a.ld_qkv + t.h * HS;
  for (int j0 = 0; j0 < t.Lp; j0 += 16) {
    const int nj = imin(16, t.L - j0);  // ≥ 1: Lp − 16 < L
    for (int c0 = 0; c0 < HS; c0 += 16) {
      const int nc = imin(16, HS - c0);
      const __mmask16 cm = firstLanes(nc);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < nj ? _mm512_maskz_loadu_ps(cm, kb + static_cast<int64_t>(j0 + i) * a.ld_qkv + c0)
                      : _mm512_setzero_ps();
      transpose16x16(r);
      for (int i = 0; i < nc; ++i) _mm512_storeu_ps(t.kt + static_cast<size_t>(c0 + i) * t.Lp + j0, r[i]);
    }
  }
}

// The rest of one (sequence, head) task, after attnRange has transposed K into t.kt.
void body(const AttnArgs& a, const AttnTask& t) {
  const int HS = a.head_size;
  const int h = t.h, L = t.L, Lp = t.Lp;
  const int64_t t0 = t.t0;
  const float* const kt = t.kt;
  float* const p = t.p;  // QB × Lp scores
  const __m512 vscale = _mm512_set1_ps(a.scale);
  const float* vb = a.v + t0 * a.ld_qkv + h * HS;
  for (int i0 = 0; i0 < L; i0 += QB) {
    const int qb = imin(QB, L - i0);
    const float* q[QB];
    float* pr[QB];
    for (int r = 0; r < QB; ++r) {
      q[r] = a.q + (t0 + i0 + (r < qb ? r : 0)) * a.ld_qkv + h * HS;  // rows past the block repeat row 0
      pr[r] = p + static_cast<size_t>(r) * Lp;
    }
    // Scores for QB queries at once: QB independent FMA chains, each K^T load used QB times.
    __m512 vmax[QB];
    for (int r = 0; r < QB; ++r) vmax[r] = _mm512_set1_ps(-__builtin_inff());
    for (int j = 0; j < Lp; j += 16) {
      __m512 acc[QB];
#pragma GCC unroll 4
      for (int r = 0; r < QB; ++r) acc[r] = _mm512_setzero_ps();
      for (int c = 0; c < HS; ++c) {
        const __m512 kv = _mm512_load_ps(kt + static_cast<size_t>(c) * Lp + j);
#pragma GCC unroll 4
        for (int r = 0; r < QB; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][c]), kv, acc[r]);
      }
      const __mmask16 valid = firstLanes(L - j);
#pragma GCC unroll 4
      for (int r = 0; r < QB; ++r) {
        const __m512 sc = _mm512_mul_ps(acc[r], vscale);
        vmax[r] = _mm512_mask_max_ps(vmax[r], valid, vmax[r], sc);
        _mm512_store_ps(pr[r] + j, sc);
      }
    }
    // Softmax per row (unnormalised exp; 1/sum applied to the output).
    __m512 vi[QB];
    for (int r = 0; r < QB; ++r) {
      const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax[r]));
      __m512 vsum = _mm512_setzero_ps();
      for (int j = 0; j < Lp; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(firstLanes(L - j), exp16(_mm512_sub_ps(_mm512_load_ps(pr[r] + j), mx)));
        _mm512_store_ps(pr[r] + j, e);
        vsum = _mm512_add_ps(vsum, e);
      }
      vi[r] = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    }
    // p·V for QB rows at once: each V load feeds QB FMAs.
    int c = 0;
    for (; c + 64 <= HS; c += 64) {
      __m512 o[QB][4];
#pragma GCC unroll 4
      for (int r = 0; r < QB; ++r) o[r][0] = o[r][1] = o[r][2] = o[r][3] = _mm512_setzero_ps();
      for (int j = 0; j < L; ++j) {
        const float* v = vb + static_cast<int64_t>(j) * a.ld_qkv + c;
        const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16), v2 = _mm512_loadu_ps(v + 32),
                     v3 = _mm512_loadu_ps(v + 48);
#pragma GCC unroll 4
        for (int r = 0; r < QB; ++r) {
          const __m512 pj = _mm512_set1_ps(pr[r][j]);
          o[r][0] = _mm512_fmadd_ps(pj, v0, o[r][0]);
          o[r][1] = _mm512_fmadd_ps(pj, v1, o[r][1]);
          o[r][2] = _mm512_fmadd_ps(pj, v2, o[r][2]);
          o[r][3] = _mm512_fmadd_ps(pj, v3, o[r][3]);
        }
      }
      for (int r = 0; r < qb; ++r) {
        float* out = a.out + (t0 + i0 + r) * a.ld_out + h * HS + c;
        _mm512_storeu_ps(out, _mm512_mul_ps(o[r][0], vi[r]));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(o[r][1], vi[r]));
        _mm512_storeu_ps(out + 32, _mm512_mul_ps(o[r][2], vi[r]));
        _mm512_storeu_ps(out + 48, _mm512_mul_ps(o[r][3], vi[r]));
      }
    }
    for (; c < HS; c += 16) {
      const __mmask16 m = firstLanes(HS - c);
      __m512 o[QB];
#pragma GCC unroll 4
      for (int r = 0; r < QB; ++r) o[r] = _mm512_setzero_ps();
      for (int j = 0; j < L; ++j) {
        const __m512 v = _mm512_maskz_loadu_ps(m, vb + static_cast<int64_t>(j) * a.ld_qkv + c);
#pragma GCC unroll 4
        for (int r = 0; r < QB; ++r) o[r] = _mm512_fmadd_ps(_mm512_set1_ps(pr[r][j]), v, o[r]);
      }
      for (int r = 0; r < qb; ++r)
        _mm512_mask_storeu_ps(a.out + (t0 + i0 + r) * a.ld_out + h * HS + c, m, _mm512_mul_ps(o[r], vi[r]));
    }
  }
}

}  // namespace

void attention_avx512(const AttnArgs& a, float* scratch, ThreadPool* pool) {
  attnRun<16, body, packK>(a, scratch, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
