// In-place GELU (AVX2 + FMA): exact erf form via erfc (relative error ~2e-7 for every x) or gelu_new.
#include "ops.h"
#include "simd.h"

#if !defined(KST_NO_X86)
namespace kst {
namespace cpu {
namespace {

struct Job {
  float* x;
  size_t n;
  bool erf;
};

void run(void* ctx, int64_t b, int64_t e, int) {
  const Job& j = *static_cast<const Job*>(ctx);
  const int64_t n = imin64(e * 4096, static_cast<int64_t>(j.n));
  int64_t i = b * 4096;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(j.x + i);
    _mm256_storeu_ps(j.x + i, j.erf ? gelu_erf8(v) : gelu_tanh8(v));
  }
  if (i < n) {
    float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int rest = static_cast<int>(n - i);
    for (int c = 0; c < rest; ++c) tmp[c] = j.x[i + c];
    const __m256 v = _mm256_loadu_ps(tmp);
    _mm256_storeu_ps(tmp, j.erf ? gelu_erf8(v) : gelu_tanh8(v));
    for (int c = 0; c < rest; ++c) j.x[i + c] = tmp[c];
  }
}

}  // namespace

void gelu_avx2(float* x, size_t n, Activation act, ThreadPool* pool) {
  Job j{x, n, act == Activation::Gelu};
  parallelRun(pool, static_cast<int64_t>((n + 4095) / 4096), 1, run, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
