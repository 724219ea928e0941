#include "embeddings.cuh"
#include "layernorm.cuh"

namespace kst {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // one warp per token

template <typename T>
__global__ void __launch_bounds__(kRowsPerBlock * 32)
    embeddings_layernorm_kernel(const int32_t* __restrict__ ids, const int32_t* __restrict__ types,
                                const int32_t* __restrict__ positions, int64_t tokens, const float* __restrict__ word,
                                const float* __restrict__ pos, const float* __restrict__ type,
                                const float* __restrict__ gamma, const float* __restrict__ beta, int H, float eps,
                                float* x, T* xh) {
  const int lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (t >= tokens) return;
  const float* w = word + static_cast<int64_t>(ids[t]) * H;
  const float* p = pos + static_cast<int64_t>(positions[t]) * H;
  float* row = x + t * H;
  if (type) {
    const float* ty = type + static_cast<int64_t>(types ? types[t] : 0) * H;
    for (int i = lane; i < H; i += 32) row[i] = (w[i] + ty[i]) + p[i];
  } else {
    for (int i = lane; i < H; i += 32) row[i] = w[i] + p[i];
  }
  __syncwarp();
  layernormRowWarp<T>(row, gamma, beta, H, eps, row, xh ? xh + t * H : nullptr, lane);
}

}  // namespace

template <typename T>
void embeddings_layernorm_cuda(const int32_t* ids, const int32_t* types, const int32_t* positions, int64_t tokens,
                               const float* word, const float* pos, const float* type, const float* gamma,
                               const float* beta, int H, float eps, float* x, T* xh, cudaStream_t stream) {
  if (tokens <= 0) return;
  embeddings_layernorm_kernel<T><<<ceilDiv(tokens, kRowsPerBlock), kRowsPerBlock * 32, 0, stream>>>(
      ids, types, positions, tokens, word, pos, type, gamma, beta, H, eps, x, xh);
  KST_CUDA_LAUNCH("embeddings_layernorm_kernel");
}

#define KST_INST(T)                                                                                              \
  template void embeddings_layernorm_cuda<T>(const int32_t*, const int32_t*, const int32_t*, int64_t, const float*, \
                                             const float*, const float*, const float*, const float*, int, float,  \
                                             float*, T*, cudaStream_t);
KST_INST(__half)
KST_INST(__nv_bfloat16)
#undef KST_INST

}  // namespace cuda
}  // namespace kst
