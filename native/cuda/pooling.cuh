// sentence-transformers Pooling over each packed sequence (cls, max, mean, mean_sqrt_len, concatenated in
// that order, like native/cpu/ref.cpp pooling_ref; the sum runs over tokens in order, in fp32), and
// torch.nn.functional.normalize(p=2, dim=1, eps=1e-12) row by row.
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

// out[s] = concat(modes) of h's rows offsets[s] .. offsets[s] + lengths[s] - 1; mode = kst::PoolingMode bits.
void pooling_cuda(const float* h, const int32_t* lengths, const int32_t* offsets, int batch, int H, uint32_t mode,
                  float* out, cudaStream_t stream);
// y = x / max(‖x‖₂, 1e-12) per row; y may alias x.
void l2normalize_cuda(const float* x, float* y, int64_t rows, int cols, cudaStream_t stream);

}  // namespace cuda
}  // namespace kst
