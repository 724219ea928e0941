// The CPU backend's op table: one function pointer per op, filled per instruction set by
// backend_cpu.cpp (the only file that lists every op). Shared argument types live here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include "kst.h"
#include "threadpool.h"

namespace kst {
namespace cpu {

// A 64-byte aligned float buffer (packed weights, SIMD-friendly scratch).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  // Grows (never shrinks); contents are not preserved. Out of line (backend_cpu.cpp).
  void resize(size_t n);
  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

// Where a model's packed weights live: 64-byte aligned slices, handed out in packing order (a forward pass reads
// them in that order), from a few large mappings that start on 2 MB boundaries and ask for transparent huge pages
// (backend_cpu.cpp says why). Nothing is freed before the arena; it must outlive every PackedWeight it fed.
class WeightArena {
 public:
  WeightArena() = default;
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  float* alloc(size_t floats);  // out of line (backend_cpu.cpp); throws std::bad_alloc
  size_t reservedBytes() const;  // virtual size of all chunks (tests)

 private:
  struct Chunk {
    char* p;
    size_t len;
    bool mapped;  // from mmap (else posix_memalign)
  };
  char* addChunk(size_t len);  // maps a chunk of len bytes (a multiple of 2 MB) and records it
  std::vector<Chunk> chunks_;  // every chunk, released by the destructor
  char* fill_ = nullptr;       // the chunk small slices are cut from (requests over half a chunk get their own)
  size_t fill_len_ = 0, used_ = 0;
};

// The weight of an HF Linear layer: raw is [N out][K in] row-major (y = x Wᵀ + b).
// pack() may build an ISA-specific copy in `packed` (panels of nr output columns).
struct PackedWeight {
  const float* raw = nullptr;
  int N = 0, K = 0;
  int nr = 0;  // panel width of `packed`; 0 = not packed (the scalar path reads raw)
  bool bf16 = false;  // `packed` holds bf16 k-pairs (pack_bf16); the GEMM then runs the bf16 kernel
  // int8 (pack_int8, precision 'int8'): `packed` holds the weight quantised per output channel (symmetric s8),
  // panels of nr columns × kq k-quads (4 consecutive k of one column in one 32-bit word; kq = ceil(K / 4) rounded
  // up to a multiple of 16, zero-padded), followed by nr·panels fp32 scales (qscale) and nr·panels int32 column
  // sums Σ_k q[n][k] (qsum); both 0 past N. The GEMM then quantises x per row and runs an int8 kernel.
  bool int8 = false;
  int kq = 0;
  const float* qscale = nullptr;
  const int32_t* qsum = nullptr;
  // Scratch for the GEMM's per-call copy of x — int8: the quantised activations; fp32 AVX-512: x packed in row tiles;
  // bf16 small-M engines: x rounded to bf16; the fp32 AVX-512 small-M path (≤ 42 rows) and the AMX small-M engines
  // at ≤ 32 rows: one such copy per thread (ThreadCopies, gemm_driver.h) — owned by the model (one per model:
  // encode() is serialised) and grown by the GEMM to the largest size seen; null = the GEMM allocates its own (op
  // tests, benchmarks).
  AlignedBuffer* act_scratch = nullptr;
  // Where pack*() puts the packed copy: the model's arena (set by the model before packing), else `packed`
  // (op tests, benchmarks). pdata points at it either way.
  WeightArena* arena = nullptr;
  AlignedBuffer packed;
  float* pdata = nullptr;
};

// The int8 path's activations: x[M][K] quantised per row (per token), asymmetric u8 with a zero point:
// x[m][k] ≈ scale[m] · (q[m][k] − zp[m]). Rows are lda bytes (lda = 4 · kq of the weight, a multiple of 64; bytes
// past K are 0) and there are M rounded up to a multiple of 32 rows (the extra rows are all 0), so AMX tiles of
// 16 rows × 64 bytes never read outside the buffer.
struct Int8Acts {
  const uint8_t* q = nullptr;
  const float* scale = nullptr;
  const int32_t* zp = nullptr;
  int lda = 0;
};

// ---- Helpers for the *_avx2.cpp / *_avx512.cpp files -------------------------------------------
// Those files are compiled with wider instruction sets, so they must not instantiate inline or
// template code that other files share (the linker keeps one copy of such code, possibly the AVX one,
// which would then run on CPUs without AVX). They use only these out-of-line functions, plain
// struct fields, intrinsics and helpers with internal linkage.
float* packedAlloc(PackedWeight& w, size_t floats);  // (re)allocates w.packed, sets w.pdata
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int tid);
void parallelRun(ThreadPool* pool, int64_t n, int64_t grain, RangeFn fn, void* ctx);
int poolThreads(const ThreadPool* pool);
// Rows per chunk for add_layernorm over `rows` rows: a thread's equal share, within [4, max_rows] (backend_cpu.cpp
// has why).
int64_t layerNormGrain(const ThreadPool* pool, int64_t rows, int64_t max_rows);

// Attention over sequences packed end to end. q/k/v/out are [T, heads*head_size] with row strides
// ld_qkv / ld_out (q, k and v may be column slices of one fused QKV buffer).
struct AttnArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  int ld_qkv = 0;
  float* out = nullptr;
  int ld_out = 0;
  const int32_t* lengths = nullptr;  // batch entries, each >= 1
  const int64_t* offsets = nullptr;  // first token of each sequence
  int batch = 0;
  int heads = 0, head_size = 0;
  int max_len = 0;   // max(lengths)
  float scale = 1.f; // usually 1/sqrt(head_size)
};

// Floats of scratch one thread needs for attention over sequences up to max_len tokens.
size_t attentionScratchPerThread(int max_len, int head_size);

struct Ops {
  Isa isa = Isa::Scalar;
  const char* name = "ref";
  // Builds w.packed from w.raw (no-op for the scalar path).
  void (*pack)(PackedWeight& w);
  // Builds a bf16 w.packed (precision 'bf16'); null where the CPU has no AVX512_BF16. gemm / gemm_gelu then
  // take the bf16 path for that weight.
  void (*pack_bf16)(PackedWeight& w) = nullptr;
  // Builds an int8 w.packed (precision 'int8'); null where the CPU has no AVX512-VNNI (AVX-512 table) or
  // AVX-VNNI (AVX2 table). gemm / gemm_gelu then take the int8 path for that weight.
  void (*pack_int8)(PackedWeight& w) = nullptr;
  // y[M,N] = x[M,K] Wᵀ + bias (bias may be null). x row stride K, y row stride N.
  void (*gemm)(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool);
  // y = act(x Wᵀ + bias): GEMM with the activation applied in its epilogue (BertIntermediate).
  void (*gemm_gelu)(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                    ThreadPool* pool);
  // BertIntermediate's dense + act, then BertOutput's dense: y[M, w_out.N] = gemm(act(gemm(x, w_in) + b_in), w_out) +
  // b_out, `inter` (M × w_in.N floats) the intermediate activation's buffer. Bitwise the same as gemm_gelu into
  // inter, then gemm from it, but afterwards `inter` may hold the intermediate in a layout of the ISA's own (the
  // AVX-512 table writes it in the layout its GEMM packs x into, so the second GEMM has no packing pass). Null where
  // an ISA has no fused form: the caller then runs gemm_gelu and gemm.
  void (*ffn)(const float* x, int M, const PackedWeight& w_in, const float* b_in, const PackedWeight& w_out,
              const float* b_out, Activation act, float* inter, float* y, ThreadPool* pool) = nullptr;
  // In place: x = act(x) over n floats. The forward pass does not call it (gemm_gelu fuses GELU on every ISA since
  // the AVX2 GEMM took the epilogue too); test_ops checks through it the vector GELU that the epilogues share.
  void (*gelu)(float* x, size_t n, Activation act, ThreadPool* pool);
  // y = LayerNorm(x + res) row-wise over M rows of N; res may be null; y may alias x or res.
  void (*add_layernorm)(const float* x, const float* res, const float* gamma, const float* beta, float* y,
                        int M, int N, float eps, ThreadPool* pool);
  // softmax(q kᵀ · scale) v per (sequence, head); scratch holds poolSize × attentionScratchPerThread floats.
  void (*attention)(const AttnArgs& a, float* scratch, ThreadPool* pool);
};

// The op table for an instruction set (falls back to lower ones for ops without a variant).
const Ops& opsFor(Isa isa);

}  // namespace cpu
}  // namespace kst
