#include "convert.cuh"

namespace kst {
namespace cuda {
namespace {

template <typename T>
__global__ void convert_kernel(const float* __restrict__ in, T* __restrict__ out, size_t n) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = fromFloat<T>(in[i]);
}

}  // namespace

template <typename T>
void convert_cuda(const float* in, T* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = (n + 255) / 256;
  convert_kernel<T><<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(in, out, n);
  KST_CUDA_LAUNCH("convert_kernel");
}

template void convert_cuda<__half>(const float*, __half*, size_t, cudaStream_t);
template void convert_cuda<__nv_bfloat16>(const float*, __nv_bfloat16*, size_t, cudaStream_t);

}  // namespace cuda
}  // namespace kst
