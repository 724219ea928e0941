// The CPU backend's op tables, one per instruction set. This is the only file that lists every op
// (DESIGN rule 2); an op without a variant for an ISA uses the next lower one.
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

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
void ffn_avx512(const float* x, int M, const PackedWeight& w_in, const float* b_in, const PackedWeight& w_out,
                const float* b_out, Activation act, float* inter, float* y, ThreadPool* pool);
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

// The weight arena. Why huge pages: at batch 1 a forward pass streams every weight once (340 MB fp32, 170 MB
// bf16, 85 MB int8 for 12 × 768), and with 4 KB pages that stream takes a page walk every 4 KB. On this VM a
// 2-thread read of 164 MB (which the last-level cache mostly holds between passes) ran at 28.7 GB/s with 4 KB pages
// and 46.3 GB/s with 2 MB pages (37.4 → 44.5 with a software prefetch); 340 MB from DRAM 24.5 → 27.1. Measured (2
// threads, 3 alternating rounds): the 48 GEMMs of a 12-token forward in a throw-away harness over the real kernels,
// heap → arena: fp32 13.5-15.8 → 12.3-13.3 ms, bf16 6.3-7.1 → 5.2-5.8 ms, int8 2.7-3.0 → 2.4-2.8 ms; the model's
// batch-1 p50 end to end: fp32 15.7-16.4 → 12.9-14.9 ms, bf16 6.9-7.7 → 6.1-6.8 ms, int8 3.3-3.7 → 3.2-3.5 ms;
// batch-32 throughput unchanged.
// One arena rather than a huge-page mapping per weight: then only the whole 2 MB pages inside each weight are huge
// (a 1.2 MB bf16 768 × 768 weight gets none), and the harness's bf16 GEMMs took 7.2-7.6 ms that way. The chunks are
// fresh mappings, advised before anything touches them (heap memory that was touched before stays in 4 KB pages
// whatever it is advised). Cost: the last 2 MB page touched in a chunk is backed whole (≤ 2 MB per 64 MB chunk; a
// weight over 32 MB gets a chunk of its own, rounded up to 2 MB).
namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kChunkBytes = size_t(64) << 20;
}  // namespace

WeightArena::~WeightArena() {
  for (const Chunk& c : chunks_) {
#if defined(__linux__)
    if (c.mapped) {
      munmap(c.p, c.len);
      continue;
    }
#endif
    std::free(c.p);
  }
}

size_t WeightArena::reservedBytes() const {
  size_t n = 0;
  for (const Chunk& c : chunks_) n += c.len;
  return n;
}

// A fresh mapping of `len` bytes (a multiple of 2 MB) starting on a 2 MB boundary, advised for huge pages.
static void* mapChunk(size_t len, bool* mapped) {
#if defined(__linux__)
  // Map 2 MB more than needed and unmap the slop before the first 2 MB boundary and after the chunk.
  void* m = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t start = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (start > base) munmap(m, start - base);
  if (base + kHugePage > start) munmap(reinterpret_cast<void*>(start + len), base + kHugePage - start);
#if defined(MADV_HUGEPAGE)
  madvise(reinterpret_cast<void*>(start), len, MADV_HUGEPAGE);  // fails harmlessly where THP is off
#endif
  *mapped = true;
  return reinterpret_cast<void*>(start);
#else
  void* q = nullptr;
  if (posix_memalign(&q, 64, len) != 0) throw std::bad_alloc();
  *mapped = false;
  return q;
#endif
}

char* WeightArena::addChunk(size_t len) {
  chunks_.reserve(chunks_.size() + 1);  // so that recording the chunk cannot throw once it is mapped
  Chunk c{nullptr, len, false};
  c.p = static_cast<char*>(mapChunk(len, &c.mapped));
  chunks_.push_back(c);
  return c.p;
}

float* WeightArena::alloc(size_t floats) {
  if (floats > (SIZE_MAX - kChunkBytes) / sizeof(float)) throw std::bad_alloc();
  const size_t bytes = (floats * sizeof(float) + 63) & ~size_t(63);
  if (bytes > kChunkBytes / 2)  // a chunk of its own; the chunk being filled stays the one to fill
    return reinterpret_cast<float*>(addChunk((bytes + kHugePage - 1) & ~(kHugePage - 1)));
  if (!fill_ || fill_len_ - used_ < bytes) {
    fill_ = addChunk(kChunkBytes);
    fill_len_ = kChunkBytes;
    used_ = 0;
  }
  float* p = reinterpret_cast<float*>(fill_ + used_);
  used_ += bytes;
  return p;
}

float* packedAlloc(PackedWeight& w, size_t floats) {
  if (w.arena) {
    w.pdata = w.arena->alloc(floats);
  } else {
    w.packed.resize(floats);
    w.pdata = w.packed.data();
  }
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

// Why split even a dozen rows: at batch 1 LayerNorm's input is the output of a GEMM whose columns each thread wrote
// half of, so one thread alone spends most of the op reading lines from the other core. Measured (768 columns, 2
// threads, the input written by both threads beforehand as a GEMM's, p50 of 2000 calls): 12 rows on the caller
// alone 5.75 µs, as 2 chunks of 6 rows 3.51 µs (4 chunks of 3 rows 3.71); 24 rows 9.21 → 5.80 µs. A 12-token
// forward runs 25 of them. The floor of 4 rows is reasoned, not measured: a row takes ~0.25 µs from cache and an
// empty pool round trip measured 0.6-1 µs, so a smaller chunk would cost more to hand over than to run.
int64_t layerNormGrain(const ThreadPool* pool, int64_t rows, int64_t max_rows) {
  const int64_t t = poolSize(pool);
  const int64_t share = (rows + t - 1) / t;
  return share < 4 ? 4 : share > max_rows ? max_rows : share;
}

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
    o.ffn = ffn_avx512;
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
