// Tensor-core GEMM with fused epilogues: y[M,N] = epilogue(A[M,K] · W[N,K]ᵀ), the HF Linear layout
// (W is [out][in], converted to fp16/bf16 once at load). Operands fp16 or bf16, fp32 accumulation
// (mma.sync m16n8k16 through inline PTX, cp.async multi-stage pipeline, ldmatrix from swizzled shared
// memory). Epilogues, applied to the fp32 accumulator in this order: + bias[n], GELU (erf or tanh),
// + residual[m,n] (fp32); the result is stored as fp32 (residual stream) or as the operand type.
// K % 8 != 0 or misaligned pointers take a plain SIMT kernel (correct, slow; no real model needs it).
#pragma once

#include "common.cuh"

namespace kst {
namespace cuda {

enum GemmAct { GEMM_ACT_NONE = 0, GEMM_ACT_GELU = 1, GEMM_ACT_GELU_TANH = 2 };

struct GemmEpilogue {
  const float* bias = nullptr;      // [N] or null
  int act = GEMM_ACT_NONE;
  const float* residual = nullptr;  // [M][N] fp32 or null; may alias out_f32
  float* out_f32 = nullptr;         // exactly one of out_f32 / out_h is set
  void* out_h = nullptr;            // [M][N] of the operand type T
};

// Tile configurations (BM×BN output tile per block). -1 = pick by shape and SM count.
enum GemmConfig {
  GEMM_AUTO = -1,
  GEMM_128x128 = 0,
  GEMM_64x128 = 1,
  GEMM_64x64 = 2,
  GEMM_32x64 = 3,
  GEMM_32x32 = 4,
  GEMM_SIMT = 5,        // the fallback kernel
  GEMM_128x256 = 6,     // 8 warps of 64×64 (not picked by GEMM_AUTO until measured on a GPU)
  GEMM_128x128_K64 = 7, // BK = 64, 3 stages (likewise)
  GEMM_NUM_CONFIGS = 8
};
const char* gemmConfigName(int config);
// The configuration gemm_cuda uses for this shape on a device with num_sms SMs.
int gemmPickConfig(int M, int N, int K, int num_sms);

// Raises the dynamic shared-memory limit of every GEMM kernel on the current device (call once per device).
void gemm_prepare();

template <typename T>
void gemm_cuda(const T* A, const T* W, int M, int N, int K, const GemmEpilogue& ep, cudaStream_t stream,
               int config = GEMM_AUTO);

}  // namespace cuda
}  // namespace kst
