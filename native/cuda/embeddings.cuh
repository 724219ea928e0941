// BertEmbeddings + LayerNorm in one kernel: x[t] = LN((word[ids[t]] + type[types[t]]) + pos[positions[t]]),
// the same sum order as native/cpu/ref.cpp embeddings_sum_ref. fp32 tables and output (the residual
// stream), plus the fp16/bf16 copy xh for the first QKV GEMM.
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

// type may be null (DistilBERT: no token type embeddings); types may be null (all zeros).
template <typename T>
void embeddings_layernorm_cuda(const int32_t* ids, const int32_t* types, const int32_t* positions, int64_t tokens,
                               const float* word, const float* pos, const float* type, const float* gamma,
                               const float* beta, int H, float eps, float* x, T* xh, cudaStream_t stream);

}  // namespace cuda
}  // namespace kst
