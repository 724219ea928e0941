// Plain scalar reference of every op (DESIGN rule 1). Compiled with -O2 -ffp-contract=off and no
// SIMD flags, so it is what every AVX2 / AVX-512 variant is tested against. It is also the
// "scalar" instruction-set path of the model.
#pragma once

#include <cstdint>

#include "ops.h"

namespace kst {
namespace cpu {

void pack_ref(PackedWeight& w);
// y[M,N] = x[M,K] Wᵀ + b, W = w.raw in HF Linear layout [N][K].
void gemm_ref(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
// y = gelu(x Wᵀ + b): the FFN's intermediate dense + activation (BertIntermediate), as one op.
void gemm_gelu_ref(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                   ThreadPool* pool);
// Same, with raw pointers (used by the tests).
void gemm_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y);
// Reference of the bf16 path: x and W rounded to bf16 (round to nearest even), products summed in fp32.
void gemm_bf16_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y);
float bf16Round(float f);
// ---- The int8 path (precision 'int8'): the quantisation math every int8 kernel must reproduce exactly.
// Weights, per output channel n (symmetric s8): amax = max_k |W[n][k]|, scale = amax / 127, q = clamp(rint(W · (127 /
// amax)), −127, 127); a zero row has scale 0 and q 0.
void quantize_weight_s8_ref(const float* W, int N, int K, int8_t* q, float* scale);
// Activations, per row (asymmetric u8): lo = min(0, min x), hi = max(0, max x), scale = (hi − lo) / 255,
// inv = 255 / (hi − lo), zp = rint(−lo · inv), q = clamp(rint(x · inv) + zp, 0, 255), so x ≈ scale · (q − zp);
// an all-zero row has scale 0, zp 0, q 0. rint = round half to even.
void quantize_row_u8_ref(const float* x, int K, uint8_t* q, float* scale, int32_t* zp);
// The int8 GEMM: x quantised per row and W per channel as above, exact int32 sums
// acc[m][n] = Σ_k qx[m][k] · qw[n][k] − zp[m] · Σ_k qw[n][k], then y = fma(float(acc), sx[m] · sw[n], b[n] or 0).
// acc (optional, M × N) receives the int32 sums.
void gemm_int8_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y,
                       int32_t* acc = nullptr);
// x = gelu(x): exact erf form 0.5·x·(1 + erf(x/√2)) or the tanh form (gelu_new).
void gelu_ref(float* x, size_t n, Activation act, ThreadPool* pool);
float gelu_scalar(float x, Activation act);
// y = LayerNorm(x + res) · gamma + beta per row (biased variance, eps inside the sqrt).
void add_layernorm_ref(const float* x, const float* res, const float* gamma, const float* beta, float* y,
                       int M, int N, float eps, ThreadPool* pool);
void attention_ref(const AttnArgs& a, float* scratch, ThreadPool* pool);

// BertEmbeddings: out[t] = word[ids[t]] + type[types[t]] + pos[t - start of its sequence] (before LayerNorm).
void embeddings_sum_ref(const int32_t* ids, const int32_t* types, const int32_t* lengths, int batch,
                        const float* word, const float* pos, const float* type, int H, float* out);
// sentence-transformers Pooling over each sequence's tokens; output row = H × popcount(mode) floats,
// modes concatenated in the order cls, max, mean, mean_sqrt_len.
void pooling_ref(const float* h, const int32_t* lengths, int batch, int H, uint32_t mode, float* out);
// torch.nn.functional.normalize(p=2, dim=1, eps=1e-12), in place.
void l2normalize_ref(float* x, int64_t rows, int cols);

}  // namespace cpu
}  // namespace kst
