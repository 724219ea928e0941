// Attention over packed variable-length sequences (AVX2 + FMA), one task per (sequence, head).
// Per task K is transposed into scratch (Kt[c][j], rows padded to a multiple of 8) so the scores of a
// query are computed 8 keys at a time without horizontal sums; softmax uses the vector exp; the output
// row accumulates p_j · v_j over the head's columns (masked tail for head sizes not a multiple of 8).
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

#include "attention_driver.h"

inline __m256i tailMask(int rest) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), idx);
}

// The rest of one (sequence, head) task, after attnRange has transposed K into t.kt.
void body(const AttnArgs& a, const AttnTask& t) {
  const int HS = a.head_size;
  const int h = t.h, L = t.L, Lp = t.Lp;
  const int64_t t0 = t.t0;
  const float* const kt = t.kt;
  float* const p = t.p;  // Lp scores
  const __m256 vscale = _mm256_set1_ps(a.scale);
  const int hs8 = HS & ~7;
  const __m256i tmask = tailMask(HS - hs8);
  for (int i = 0; i < L; ++i) {
    const float* q = a.q + (t0 + i) * a.ld_qkv + h * HS;
    // scores
    __m256 vmax = _mm256_set1_ps(-__builtin_inff());
    for (int j = 0; j < Lp; j += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (int c = 0; c < HS; ++c)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(q + c), _mm256_load_ps(kt + static_cast<size_t>(c) * Lp + j), acc);
      acc = _mm256_mul_ps(acc, vscale);
      _mm256_store_ps(p + j, acc);
    }
    for (int j = L; j < Lp; ++j) p[j] = -__builtin_inff();
    for (int j = 0; j < Lp; j += 8) vmax = _mm256_max_ps(vmax, _mm256_load_ps(p + j));
    const __m256 mx = _mm256_set1_ps(hmax8(vmax));
    __m256 vsum = _mm256_setzero_ps();
    for (int j = 0; j < Lp; j += 8) {
      __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(p + j), mx));
      if (j + 8 > L) e = _mm256_and_ps(e, _mm256_castsi256_ps(tailMask(L - j)));
      _mm256_store_ps(p + j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    const float inv = 1.0f / hsum8(vsum);
    // out = Σ_j p_j v_j · inv
    float* o = a.out + (t0 + i) * a.ld_out + h * HS;
    int c = 0;
    for (; c + 32 <= HS; c += 32) {
      __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
      for (int j = 0; j < L; ++j) {
        const float* v = a.v + (t0 + j) * a.ld_qkv + h * HS + c;
        const __m256 pj = _mm256_broadcast_ss(p + j);
        o0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v), o0);
        o1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8), o1);
        o2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 16), o2);
        o3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 24), o3);
      }
      const __m256 vi = _mm256_set1_ps(inv);
      _mm256_storeu_ps(o + c, _mm256_mul_ps(o0, vi));
      _mm256_storeu_ps(o + c + 8, _mm256_mul_ps(o1, vi));
      _mm256_storeu_ps(o + c + 16, _mm256_mul_ps(o2, vi));
      _mm256_storeu_ps(o + c + 24, _mm256_mul_ps(o3, vi));
    }
    for (; c < hs8; c += 8) {
      __m256 o0 = _mm256_setzero_ps();
      for (int j = 0; j < L; ++j)
        o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(a.v + (t0 + j) * a.ld_qkv + h * HS + c), o0);
      _mm256_storeu_ps(o + c, _mm256_mul_ps(o0, _mm256_set1_ps(inv)));
    }
    if (hs8 < HS) {
      __m256 o0 = _mm256_setzero_ps();
      for (int j = 0; j < L; ++j)
        o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j),
                             _mm256_maskload_ps(a.v + (t0 + j) * a.ld_qkv + h * HS + hs8, tmask), o0);
      _mm256_maskstore_ps(o + hs8, tmask, _mm256_mul_ps(o0, _mm256_set1_ps(inv)));
    }
  }
}

}  // namespace

void attention_avx2(const AttnArgs& a, float* scratch, ThreadPool* pool) {
  attnRun<8, body>(a, scratch, pool);
}

}  // namespace cpu
}  // namespace kst
#endif
