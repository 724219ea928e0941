// The CUDA backend's op table (DESIGN rule 2: only backend_cuda.cu lists every op), one per operand type:
// fp16 or bf16 operands with fp32 accumulation. Each op lives in its own .cu/.cuh pair:
//   convert.cu      fp32 → fp16/bf16 weights at load
//   embeddings.cu   BertEmbeddings (word + type + position) + LayerNorm
//   gemm.cu         tensor-core GEMM, epilogues bias / bias+GELU / bias+residual
//   attention.cu    fused flash-style attention over packed variable-length sequences
//   layernorm.cu    residual + LayerNorm
//   pooling.cu      cls / max / mean / mean_sqrt_len pooling and L2 normalisation
// Support: memory_pool.cu (device arena, workspace, pinned staging), graph.cu (CUDA graph cache),
// bert_cuda.cu (the forward pass), api.cu (the C ABI of libkst_cuda.so, kst_cuda_api.h).
#pragma once

#include "attention.cuh"
#include "convert.cuh"
#include "embeddings.cuh"
#include "gemm.cuh"
#include "layernorm.cuh"
#include "pooling.cuh"

namespace kst {
namespace cuda {

template <typename T>
struct CudaOps {
  const char* precision;
  void (*convert)(const float* in, T* out, size_t n, cudaStream_t stream);
  void (*embeddings_layernorm)(const int32_t* ids, const int32_t* types, const int32_t* positions, int64_t tokens,
                               const float* word, const float* pos, const float* type, const float* gamma,
                               const float* beta, int H, float eps, float* x, T* xh, cudaStream_t stream);
  void (*gemm)(const T* A, const T* W, int M, int N, int K, const GemmEpilogue& ep, cudaStream_t stream,
               int config);
  void (*attention)(const AttnParams<T>& p, cudaStream_t stream, int path);
  void (*add_layernorm)(const float* x, const float* res, const float* gamma, const float* beta, float* y, T* yh,
                        int M, int N, float eps, cudaStream_t stream);
  void (*pooling)(const float* h, const int32_t* lengths, const int32_t* offsets, int batch, int H, uint32_t mode,
                  float* out, cudaStream_t stream);
  void (*l2normalize)(const float* x, float* y, int64_t rows, int cols, cudaStream_t stream);
};

template <typename T>
const CudaOps<T>& cudaOps();

// Per-device one-time setup of the op kernels (shared-memory limits). Call with the device current.
void prepareOps();

}  // namespace cuda
}  // namespace kst
