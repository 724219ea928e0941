// fp32 → fp16 / bf16 (round to nearest even, like torch's .half() / .bfloat16()): weights at load.
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

template <typename T>
void convert_cuda(const float* in, T* out, size_t n, cudaStream_t stream);

}  // namespace cuda
}  // namespace kst
