#include "pooling.cuh"

namespace kst {
namespace cuda {
namespace {

constexpr uint32_t kCls = 1u, kMax = 2u, kMean = 4u, kMeanSqrt = 8u;  // kst::PoolingMode

__global__ void __launch_bounds__(128) pooling_kernel(const float* __restrict__ h, const int32_t* __restrict__ lengths,
                                                      const int32_t* __restrict__ offsets, int H, uint32_t mode,
                                                      int width, float* __restrict__ out) {
  const int s = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= H) return;
  const int L = lengths[s];
  const float* seq = h + static_cast<int64_t>(offsets[s]) * H + i;
  float* o = out + static_cast<int64_t>(s) * width + i;
  if (mode & kCls) {
    *o = seq[0];
    o += H;
  }
  if (mode & kMax) {
    float m = seq[0];
    for (int t = 1; t < L; ++t) m = fmaxf(m, seq[static_cast<int64_t>(t) * H]);
    *o = m;
    o += H;
  }
  if (mode & (kMean | kMeanSqrt)) {
    float sum = 0.f;
    for (int t = 0; t < L; ++t) sum += seq[static_cast<int64_t>(t) * H];
    if (mode & kMean) {
      *o = sum / static_cast<float>(L);
      o += H;
    }
    if (mode & kMeanSqrt) *o = sum / sqrtf(static_cast<float>(L));
  }
}

__global__ void __launch_bounds__(256) l2normalize_kernel(const float* x, float* y, int cols) {
  __shared__ float part[8];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * cols;
  float* yr = y + r * cols;
  float s = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i] * xr[i];
  s = warpSum(s);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
  __syncthreads();
  float tot = 0.f;
#pragma unroll
  for (int w = 0; w < 8; ++w) tot += part[w];
  const float d = fmaxf(sqrtf(tot), 1e-12f);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = xr[i] / d;
}

}  // namespace

void pooling_cuda(const float* h, const int32_t* lengths, const int32_t* offsets, int batch, int H, uint32_t mode,
                  float* out, cudaStream_t stream) {
  if (batch <= 0) return;
  int modes = 0;
  for (uint32_t m = mode & 0xF; m; m &= m - 1) ++modes;
  if (modes == 0) throw CudaError("pooling_cuda: no pooling mode", false);
  for (int base = 0; base < batch; base += 65535) {
    const int n = batch - base < 65535 ? batch - base : 65535;
    dim3 grid(ceilDiv(H, 128), n);
    pooling_kernel<<<grid, 128, 0, stream>>>(h, lengths + base, offsets + base, H, mode & 0xF, H * modes,
                                             out + static_cast<int64_t>(base) * H * modes);
    KST_CUDA_LAUNCH("pooling_kernel");
  }
}

void l2normalize_cuda(const float* x, float* y, int64_t rows, int cols, cudaStream_t stream) {
  if (rows <= 0) return;
  for (int64_t base = 0; base < rows; base += 2147483647LL) {
    const int64_t n = rows - base < 2147483647LL ? rows - base : 2147483647LL;
    l2normalize_kernel<<<static_cast<unsigned>(n), 256, 0, stream>>>(x + base * cols, y + base * cols, cols);
    KST_CUDA_LAUNCH("l2normalize_kernel");
  }
}

}  // namespace cuda
}  // namespace kst
