// Residual + LayerNorm: y = LayerNorm(x + res)·gamma + beta per row (fp32, biased variance, eps inside the
// sqrt, mean then centred variance like native/cpu/ref.cpp add_layernorm_ref). Writes the fp32 residual
// stream y and, when yh is given, its fp16/bf16 copy that the next GEMM reads.
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

// One warp normalises one row in place: row holds the pre-norm values; the result goes to y (may alias row)
// and yh (may be null). Shared with the embeddings kernel.
template <typename T>
__device__ __forceinline__ void layernormRowWarp(const float* row, const float* __restrict__ gamma,
                                                 const float* __restrict__ beta, int N, float eps, float* y, T* yh,
                                                 int lane) {
  float s = 0.f;
  for (int i = lane; i < N; i += 32) s += row[i];
  const float mean = warpSum(s) / static_cast<float>(N);
  float v = 0.f;
  for (int i = lane; i < N; i += 32) {
    const float d = row[i] - mean;
    v += d * d;
  }
  const float var = warpSum(v) / static_cast<float>(N);
  const float inv = 1.0f / sqrtf(var + eps);
  for (int i = lane; i < N; i += 32) {
    const float o = (row[i] - mean) * inv * gamma[i] + beta[i];
    y[i] = o;
    if (yh) yh[i] = fromFloat<T>(o);
  }
}

// res may be null; y may alias x or res; yh may be null.
template <typename T>
void add_layernorm_cuda(const float* x, const float* res, const float* gamma, const float* beta, float* y, T* yh,
                        int M, int N, float eps, cudaStream_t stream);

}  // namespace cuda
}  // namespace kst
