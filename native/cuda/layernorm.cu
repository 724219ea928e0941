#include "layernorm.cuh"

namespace kst {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // one warp per row

template <typename T>
__global__ void __launch_bounds__(kRowsPerBlock * 32)
    add_layernorm_kernel(const float* x, const float* res, const float* __restrict__ gamma,
                         const float* __restrict__ beta, float* y, T* yh, int M, int N, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (r >= M) return;
  const float* xr = x + r * N;
  float* yr = y + r * N;
  if (res) {  // stage x + res in y (same element, same lane: safe when y aliases x or res)
    const float* rr = res + r * N;
    for (int i = lane; i < N; i += 32) yr[i] = xr[i] + rr[i];
    __syncwarp();
    xr = yr;
  }
  layernormRowWarp<T>(xr, gamma, beta, N, eps, yr, yh ? yh + r * N : nullptr, lane);
}

}  // namespace

template <typename T>
void add_layernorm_cuda(const float* x, const float* res, const float* gamma, const float* beta, float* y, T* yh,
                        int M, int N, float eps, cudaStream_t stream) {
  if (M <= 0) return;
  add_layernorm_kernel<T><<<ceilDiv(M, kRowsPerBlock), kRowsPerBlock * 32, 0, stream>>>(x, res, gamma, beta, y, yh,
                                                                                        M, N, eps);
  KST_CUDA_LAUNCH("add_layernorm_kernel");
}

template void add_layernorm_cuda<__half>(const float*, const float*, const float*, const float*, float*, __half*,
                                         int, int, float, cudaStream_t);
template void add_layernorm_cuda<__nv_bfloat16>(const float*, const float*, const float*, const float*, float*,
                                                __nv_bfloat16*, int, int, float, cudaStream_t);

}  // namespace cuda
}  // namespace kst
