// Attention over packed variable-length sequences (AVX-512), one task per (sequence, head).
// Same scheme as attention_avx2.cpp with 16 lanes: K transposed into scratch (Kt[c][j], rows padded to
// a multiple of 16) so scores come 16 keys at a time; vector-exp softmax; p·V accumulated over the
// head's columns with lane masks for head sizes that are not a multiple of 16.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

struct Job {
  const AttnArgs* a;
  float* scratch;
  size_t per_thread;
};

inline __mmask16 firstLanes(int n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFFu : ((1u << n) - 1)); }

void run(void* ctx, int64_t tb, int64_t te, int tid) {
  const Job& J = *static_cast<const Job*>(ctx);
  const AttnArgs& a = *J.a;
  const int HS = a.head_size;
  float* const base = J.scratch + J.per_thread * tid;
  for (int64_t task = tb; task < te; ++task) {
    const int s = static_cast<int>(task / a.heads), h = static_cast<int>(task % a.heads);
    const int L = a.lengths[s];
    const int Lp = (L + 15) & ~15;
    const int64_t t0 = a.offsets[s];
    float* kt = base;                                 // HS × Lp
    float* p = base + static_cast<size_t>(HS) * Lp;  // Lp scores
    for (int j = 0; j < L; ++j) {
      const float* k = a.k + (t0 + j) * a.ld_qkv + h * HS;
      for (int c = 0; c < HS; ++c) kt[static_cast<size_t>(c) * Lp + j] = k[c];
    }
    for (int c = 0; c < HS; ++c)
      for (int j = L; j < Lp; ++j) kt[static_cast<size_t>(c) * Lp + j] = 0.f;
    const __m512 vscale = _mm512_set1_ps(a.scale);
    for (int i = 0; i < L; ++i) {
      const float* q = a.q + (t0 + i) * a.ld_qkv + h * HS;
      __m512 vmax = _mm512_set1_ps(-__builtin_inff());
      for (int j = 0; j < Lp; j += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < HS; ++c)
          acc = _mm512_fmadd_ps(_mm512_set1_ps(q[c]), _mm512_load_ps(kt + static_cast<size_t>(c) * Lp + j), acc);
        acc = _mm512_mul_ps(acc, vscale);
        vmax = _mm512_mask_max_ps(vmax, firstLanes(L - j), vmax, acc);
        _mm512_store_ps(p + j, acc);
      }
      const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
      __m512 vsum = _mm512_setzero_ps();
      for (int j = 0; j < Lp; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(firstLanes(L - j), exp16(_mm512_sub_ps(_mm512_load_ps(p + j), mx)));
        _mm512_store_ps(p + j, e);
        vsum = _mm512_add_ps(vsum, e);
      }
      const __m512 vi = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
      float* o = a.out + (t0 + i) * a.ld_out + h * HS;
      const float* vb = a.v + t0 * a.ld_qkv + h * HS;
      int c = 0;
      for (; c + 64 <= HS; c += 64) {
        __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
        for (int j = 0; j < L; ++j) {
          const float* v = vb + static_cast<int64_t>(j) * a.ld_qkv + c;
          const __m512 pj = _mm512_set1_ps(p[j]);
          o0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v), o0);
          o1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 16), o1);
          o2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 32), o2);
          o3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 48), o3);
        }
        _mm512_storeu_ps(o + c, _mm512_mul_ps(o0, vi));
        _mm512_storeu_ps(o + c + 16, _mm512_mul_ps(o1, vi));
        _mm512_storeu_ps(o + c + 32, _mm512_mul_ps(o2, vi));
        _mm512_storeu_ps(o + c + 48, _mm512_mul_ps(o3, vi));
      }
      for (; c < HS; c += 16) {
        const __mmask16 m = firstLanes(HS - c);
        __m512 o0 = _mm512_setzero_ps();
        for (int j = 0; j < L; ++j)
          o0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, vb + static_cast<int64_t>(j) * a.ld_qkv + c),
                               o0);
        _mm512_mask_storeu_ps(o + c, m, _mm512_mul_ps(o0, vi));
      }
    }
  }
}

}  // namespace

void attention_avx512(const AttnArgs& a, float* scratch, ThreadPool* pool) {
  Job j{&a, scratch, attentionScratchPerThread(a.max_len, a.head_size)};
  parallelRun(pool, static_cast<int64_t>(a.batch) * a.heads, 1, run, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
