// y = LayerNorm(x + res) (AVX-512), row-wise: sum pass (writes x + res into y), variance pass around the mean,
// then scale/shift. Column tails use masked loads/stores (no scalar loop); two accumulators per reduction.
// y may alias x or res (each element is read before it is written).

#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

struct Job {
  const float *x, *res, *g, *b;
  float* y;
  int N;
  float eps;
};

void run(void* ctx, int64_t rb, int64_t re, int) {
  const Job& j = *static_cast<const Job*>(ctx);
  const int N = j.N;
  const int full = N & ~15;
  const __mmask16 tail = static_cast<__mmask16>((1u << (N - full)) - 1u);
  for (int64_t m = rb; m < re; ++m) {
    const float* x = j.x + m * N;
    const float* r = j.res ? j.res + m * N : nullptr;
    float* y = j.y + m * N;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= full; i += 32) {
      __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
      if (r) {
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(r + i));
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(r + i + 16));
      }
      _mm512_storeu_ps(y + i, v0);
      _mm512_storeu_ps(y + i + 16, v1);
      a0 = _mm512_add_ps(a0, v0);
      a1 = _mm512_add_ps(a1, v1);
    }
    for (; i < full; i += 16) {
      __m512 v = _mm512_loadu_ps(x + i);
      if (r) v = _mm512_add_ps(v, _mm512_loadu_ps(r + i));
      _mm512_storeu_ps(y + i, v);
      a0 = _mm512_add_ps(a0, v);
    }
    if (tail) {
      __m512 v = _mm512_maskz_loadu_ps(tail, x + full);
      if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, r + full));
      _mm512_mask_storeu_ps(y + full, tail, v);
      a1 = _mm512_add_ps(a1, v);
    }
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) / static_cast<float>(N);
    const __m512 vm = _mm512_set1_ps(mean);
    a0 = _mm512_setzero_ps();
    a1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= full; i += 32) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(y + i), vm);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(y + i + 16), vm);
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
    }
    for (; i < full; i += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(y + i), vm);
      a0 = _mm512_fmadd_ps(d, d, a0);
    }
    if (tail) {
      const __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, y + full), vm);
      a1 = _mm512_fmadd_ps(d, d, a1);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) / static_cast<float>(N);
    const float inv = 1.0f / __builtin_sqrtf(var + j.eps);
    const __m512 vi = _mm512_set1_ps(inv);
    for (i = 0; i < full; i += 16) {
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(y + i), vm), vi);
      _mm512_storeu_ps(y + i, _mm512_fmadd_ps(d, _mm512_loadu_ps(j.g + i), _mm512_loadu_ps(j.b + i)));
    }
    if (tail) {
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, y + full), vm), vi);
      _mm512_mask_storeu_ps(y + full, tail,
                            _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(tail, j.g + full), _mm512_maskz_loadu_ps(tail, j.b + full)));
    }
  }
}

}  // namespace

void add_layernorm_avx512(const float* x, const float* res, const float* gamma, const float* beta, float* y, int M,
                          int N, float eps, ThreadPool* pool) {
  Job j{x, res, gamma, beta, y, N, eps};
  parallelRun(pool, M, layerNormGrain(pool, M, 32), run, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
