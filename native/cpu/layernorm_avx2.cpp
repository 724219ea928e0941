// y = LayerNorm(x + res) (AVX2 + FMA), row-wise: sum pass (writes x + res into y), variance pass
// around the mean, then scale/shift. y may alias x or res (each element is read before it is written).

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
  for (int64_t m = rb; m < re; ++m) {
    const float* x = j.x + m * N;
    const float* r = j.res ? j.res + m * N : nullptr;
    float* y = j.y + m * N;
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= N; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
      _mm256_storeu_ps(y + i, v);
      acc = _mm256_add_ps(acc, v);
    }
    float s = hsum8(acc);
    for (; i < N; ++i) {
      const float v = r ? x[i] + r[i] : x[i];
      y[i] = v;
      s += v;
    }
    const float mean = s / static_cast<float>(N);
    const __m256 vm = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= N; i += 8) {
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(y + i), vm);
      acc = _mm256_fmadd_ps(d, d, acc);
    }
    float var = hsum8(acc);
    for (; i < N; ++i) {
      const float d = y[i] - mean;
      var += d * d;
    }
    var /= static_cast<float>(N);
    const float inv = 1.0f / __builtin_sqrtf(var + j.eps);
    const __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= N; i += 8) {
      const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(y + i), vm), vi);
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(j.g + i), _mm256_loadu_ps(j.b + i)));
    }
    for (; i < N; ++i) y[i] = (y[i] - mean) * inv * j.g[i] + j.b[i];
  }
}

}  // namespace

void add_layernorm_avx2(const float* x, const float* res, const float* gamma, const float* beta, float* y, int M,
                        int N, float eps, ThreadPool* pool) {
  Job j{x, res, gamma, beta, y, N, eps};
  parallelRun(pool, M, layerNormGrain(pool, M, 16), run, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
