// The C ABI between the core (native/core/cuda_loader.cpp, always built) and libkst_cuda.so (native/cuda,
// built only where nvcc exists and loaded with dlopen only for device 'cuda' / 'auto').
// Plain C types only: no C++ objects, exceptions or allocations cross this boundary. Every function that
// can fail returns a KST_CUDA_* status and writes a message into err (always NUL-terminated).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped whenever a struct or signature below changes; the loader refuses a library with another value.
#define KST_CUDA_ABI_VERSION 1

enum {
  KST_CUDA_OK = 0,
  KST_CUDA_ERROR = 1,      // this call failed (bad argument, out of memory); the model is still usable
  KST_CUDA_STICKY = 2,     // a CUDA error that poisons the model (illegal address, launch failure, ...):
                           // every later encode on it fails with the same message
  KST_CUDA_NO_DEVICE = 3,  // no driver, no GPU, or the driver is too old for this library
};

enum { KST_CUDA_FP16 = 0, KST_CUDA_BF16 = 1 };
enum { KST_CUDA_ACT_GELU = 0, KST_CUDA_ACT_GELU_TANH = 1 };

typedef struct kst_cuda_config {
  int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
  int max_position_embeddings, type_vocab_size;
  int position_offset;  // position id of a sequence's first token: 0 (BERT, DistilBERT), pad_token_id + 1 (RoBERTa)
  float layer_norm_eps;
  int activation;       // KST_CUDA_ACT_*
} kst_cuda_config;

// F32 host pointers, valid only during kst_cuda_create (they are uploaded and converted there).
// Linear weights in HF layout [out][in].
typedef struct kst_cuda_layer {
  const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  // [H][H], [H]
  const float *o_w, *o_b;                          // attention output dense [H][H], [H]
  const float *ln1_g, *ln1_b;                      // attention output LayerNorm [H]
  const float *i_w, *i_b;                          // intermediate dense [I][H], [I]
  const float *out_w, *out_b;                      // output dense [H][I], [H]
  const float *ln2_g, *ln2_b;                      // output LayerNorm [H]
} kst_cuda_layer;

typedef struct kst_cuda_weights {
  const float* word;    // [vocab][H]
  const float* pos;     // [max_position_embeddings][H]
  const float* type;    // [type_vocab][H], or NULL (DistilBERT: no token type embeddings)
  const float *emb_ln_g, *emb_ln_b;
  const kst_cuda_layer* layers;  // num_layers entries
} kst_cuda_weights;

typedef struct kst_cuda_options {
  int device;       // CUDA device ordinal
  int precision;    // KST_CUDA_FP16 / KST_CUDA_BF16: GEMM and attention operands; accumulation is fp32
  int use_graphs;   // 1: replay CUDA graphs for repeated shapes (batch-1 launch overhead); 0: always eager
} kst_cuda_options;

// Already validated by the caller (ids, types, lengths in range; total_tokens == sum(lengths)).
typedef struct kst_cuda_request {
  const int32_t* ids;
  const int32_t* lengths;
  const int32_t* token_types;  // NULL = all zeros
  int batch;
  int64_t total_tokens;
  uint32_t pooling;            // kst::PoolingMode bits; 0 = token embeddings (T x H)
  int normalize;
} kst_cuda_request;

typedef struct kst_cuda_model kst_cuda_model;

int kst_cuda_abi_version(void);
// Number of usable devices, or a KST_CUDA_NO_DEVICE status with the reason (driver missing / too old, no GPU).
int kst_cuda_probe(int* device_count, char* err, size_t err_len);
// A one-line description of a device: "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB, driver 12.8)".
int kst_cuda_device_name(int device, char* buf, size_t buf_len);
int kst_cuda_create(const kst_cuda_config* cfg, const kst_cuda_weights* w, const kst_cuda_options* opt,
                    kst_cuda_model** out, char* err, size_t err_len);
// out receives rows x dim floats (rows = batch for pooled output, total_tokens for token embeddings).
int kst_cuda_encode(kst_cuda_model* m, const kst_cuda_request* req, float* out, size_t out_len, char* err,
                    size_t err_len);
void kst_cuda_destroy(kst_cuda_model* m);

#ifdef __cplusplus
}
#endif
