// Fused self-attention over sequences packed end to end (no padding): out = softmax(q kᵀ · scale) v per
// (sequence, head), the math of native/cpu/ref.cpp attention_ref. Flash-style: scores never leave the chip;
// an online softmax (running max and sum, fp32) walks the keys tile by tile.
//   head size 64: tensor cores (mma.sync m16n8k16): 64 queries × 64 keys per step, 4 warps, P kept in
//                 registers as fp16/bf16 for P·V, fp32 accumulation and softmax;
//   any other head size ≤ 512: one warp per (token, head), fp32 throughout (correct, slower).
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

template <typename T>
struct AttnParams {
  const T* q = nullptr;  // [T][ld_qkv]: head h at columns h*head_size ... (k and v likewise)
  const T* k = nullptr;
  const T* v = nullptr;
  int ld_qkv = 0;
  T* out = nullptr;  // [T][ld_out], head h at columns h*head_size
  int ld_out = 0;
  const int32_t* lengths = nullptr;       // [batch], each >= 1
  const int32_t* offsets = nullptr;       // [batch], first token of each sequence
  const int32_t* seq_of_token = nullptr;  // [tokens] (used by the generic path)
  int batch = 0, heads = 0, head_size = 0, max_len = 0;
  int64_t tokens = 0;
  float scale = 1.f;
};

constexpr int kAttnMaxHeadSize = 512;

// path: -1 auto, 0 force the generic kernel (tests), 1 require the head-size-64 kernel.
template <typename T>
void attention_cuda(const AttnParams<T>& p, cudaStream_t stream, int path = -1);

}  // namespace cuda
}  // namespace kst
