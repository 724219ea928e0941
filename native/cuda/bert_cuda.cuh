// The BERT / RoBERTa / DistilBERT encoder forward pass on one GPU (the structure of native/core/bert.cpp:
// embeddings+LN → N × [fused QKV GEMM → attention → out GEMM+residual → LN → FFN GEMM+GELU →
// GEMM+residual → LN] → pooling → normalize), with its own stream, device memory and graph cache.
#pragma once

#include <memory>

#include "kst_cuda_api.h"

namespace kst {
namespace cuda {

class CudaModel {
 public:
  virtual ~CudaModel() = default;
  // Thread-safe (calls are serialised). Throws CudaError; after a sticky one every later call throws too.
  virtual void encode(const kst_cuda_request& req, float* out, size_t out_len) = 0;
};

std::unique_ptr<CudaModel> createBert(const kst_cuda_config& cfg, const kst_cuda_weights& w,
                                      const kst_cuda_options& opt);

}  // namespace cuda
}  // namespace kst
