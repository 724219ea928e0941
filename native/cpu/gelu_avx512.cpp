// In-place GELU (AVX-512): exact erf form via erfc or gelu_new; tails with a lane mask.
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
  for (int64_t i = b * 4096; i < n; i += 16) {
    const int rest = static_cast<int>(imin64(16, n - i));
    const __mmask16 m = static_cast<__mmask16>((1u << rest) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, j.x + i);
    _mm512_mask_storeu_ps(j.x + i, m, j.erf ? gelu_erf16(v) : gelu_tanh16(v));
  }
}

}  // namespace

void gelu_avx512(float* x, size_t n, Activation act, ThreadPool* pool) {
  Job j{x, n, act == Activation::Gelu};
  parallelRun(pool, static_cast<int64_t>((n + 4095) / 4096), 1, run, &j);
}

}  // namespace cpu
}  // namespace kst
#endif
