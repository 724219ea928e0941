// The CPU backend's op tables, one per instruction set. This is the only file that lists every op
// (DESIGN rule 2); an op without a variant for an ISA uses the next lower one.
#include <cstdlib>
#include <new>

#include "ops.h"
#include "ref.h"

namespace kst {
namespace cpu {

// ---- AVX2 + FMA (native/cpu/*_avx2.cpp)
void pack_avx2(PackedWeight& w);
void gemm_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
void gemm_gelu_avx2(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                    ThreadPool* pool);
void gelu_avx2(float* x, size_t n, Activation act, ThreadPool* pool);
void add_layernorm_avx2(const float* x, const float* res, const float* gamma, const float* beta, float* y, int M,
                        int N, float eps, ThreadPool* pool);
void attention_avx2(const AttnArgs& a, float* scratch, ThreadPool* pool);
// ---- AVX-VNNI (native/cpu/gemm_int8_avx2.cpp), only where int8_supported_avx2()
bool int8_supported_avx2();
void pack_int8_avx2(PackedWeight& w);
// ---- AVX-512 F/BW/VL/DQ (native/cpu/*_avx512.cpp)
void pack_avx512(PackedWeight& w);
void gemm_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
void gemm_gelu_avx512(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                      ThreadPool* pool);
void gelu_avx512(float* x, size_t n, Activation act, ThreadPool* pool);
void add_layernorm_avx512(const float* x, const float* res, const float* gamma, const float* beta, float* y, int M,
                          int N, float eps, ThreadPool* pool);
void attention_avx512(const AttnArgs& a, float* scratch, ThreadPool* pool);
// ---- AVX512-BF16 (native/cpu/gemm_bf16_avx512.cpp), only where bf16_supported_avx512()
bool bf16_supported_avx512();
void pack_bf16_avx512(PackedWeight& w);
// ---- AVX512-VNNI / AMX-INT8 (native/cpu/gemm_int8_*avx512.cpp), only where int8_supported_avx512()
bool int8_supported_avx512();
void pack_int8_avx512(PackedWeight& w);

void AlignedBuffer::resize(size_t n) {
  if (n <= n_) return;
  std::free(p_);
  p_ = nullptr;
  n_ = 0;
  size_t bytes = ((n * sizeof(float)) + 63) & ~size_t(63);
  void* q = nullptr;
  if (posix_memalign(&q, 64, bytes ? bytes : 64) != 0) throw std::bad_alloc();
  p_ = static_cast<float*>(q);
  n_ = n;
}

float* packedAlloc(PackedWeight& w, size_t floats) {
  w.packed.resize(floats);
  w.pdata = w.packed.data();
  return w.pdata;
}

namespace {
struct RunCtx {
  RangeFn fn;
  void* ctx;
};
}  // namespace

void parallelRun(ThreadPool* pool, int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  RunCtx rc{fn, ctx};
  parallelFor(pool, n, grain, [&rc](int64_t b, int64_t e, int tid) { rc.fn(rc.ctx, b, e, tid); });
}

int poolThreads(const ThreadPool* pool) { return poolSize(pool); }

size_t attentionScratchPerThread(int max_len, int head_size) {
  // A multiple of 16 floats so every thread's slice of a 64-byte aligned buffer stays aligned.
  // K^T (head_size × padded length) + up to 4 rows of scores (attention_avx512 blocks 4 queries).
  const size_t n = (static_cast<size_t>(max_len) + 16) * (static_cast<size_t>(head_size) + 4) + 64;
  return (n + 15) & ~size_t(15);
}

const Ops& opsFor(Isa isa) {
  static const Ops scalar = [] {
    Ops o;
    o.isa = Isa::Scalar;
    o.name = "scalar";
    o.pack = pack_ref;
    o.gemm = gemm_ref;
    o.gemm_gelu = gemm_gelu_ref;
    o.gelu = gelu_ref;
    o.add_layernorm = add_layernorm_ref;
    o.attention = attention_ref;
    return o;
  }();
#ifndef KST_NO_X86
  static const Ops avx2 = [] {
    Ops o = scalar;
    o.isa = Isa::Avx2;
    o.name = "avx2";
    o.pack = pack_avx2;
    o.gemm = gemm_avx2;
    o.gemm_gelu = gemm_gelu_avx2;
    o.gelu = gelu_avx2;
    o.add_layernorm = add_layernorm_avx2;
    o.attention = attention_avx2;
    o.pack_int8 = int8_supported_avx2() ? pack_int8_avx2 : nullptr;
    return o;
  }();
  static const Ops avx512 = [] {
    Ops o = avx2;
    o.isa = Isa::Avx512;
    o.name = "avx512";
    o.pack = pack_avx512;
    o.gemm = gemm_avx512;
    o.gemm_gelu = gemm_gelu_avx512;
    o.gelu = gelu_avx512;
    o.add_layernorm = add_layernorm_avx512;
    o.attention = attention_avx512;
    o.pack_bf16 = bf16_supported_avx512() ? pack_bf16_avx512 : nullptr;
    o.pack_int8 = int8_supported_avx512() ? pack_int8_avx512 : nullptr;  // never the avx2 table's (16-column panels)
    return o;
  }();
  switch (isa) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return avx2;
    default: break;
  }
#endif
  (void)isa;
  return scalar;
}

}  // namespace cpu
}  // namespace kst
