#include "backend_cuda.cuh"

namespace kst {
namespace cuda {

template <>
const CudaOps<__half>& cudaOps<__half>() {
  static const CudaOps<__half> ops = {
      "fp16",
      convert_cuda<__half>,
      embeddings_layernorm_cuda<__half>,
      gemm_cuda<__half>,
      attention_cuda<__half>,
      add_layernorm_cuda<__half>,
      pooling_cuda,
      l2normalize_cuda,
  };
  return ops;
}

template <>
const CudaOps<__nv_bfloat16>& cudaOps<__nv_bfloat16>() {
  static const CudaOps<__nv_bfloat16> ops = {
      "bf16",
      convert_cuda<__nv_bfloat16>,
      embeddings_layernorm_cuda<__nv_bfloat16>,
      gemm_cuda<__nv_bfloat16>,
      attention_cuda<__nv_bfloat16>,
      add_layernorm_cuda<__nv_bfloat16>,
      pooling_cuda,
      l2normalize_cuda,
  };
  return ops;
}

void prepareOps() { gemm_prepare(); }

}  // namespace cuda
}  // namespace kst
