// Shared by every CUDA op: error checking (every CUDA error becomes a CudaError, later a kst::Error in JS),
// operand types (fp16 / bf16 with fp32 accumulation), warp reductions and the tensor-core PTX wrappers
// (cp.async, ldmatrix, mma.sync m16n8k16) the GEMM and attention kernels share.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace kst {
namespace cuda {

// A failed CUDA call. `sticky` errors (illegal address, launch failure, ...) leave the context unusable;
// the model that saw one refuses every later call instead of returning garbage.
struct CudaError : std::runtime_error {
  CudaError(const std::string& msg, bool sticky_) : std::runtime_error(msg), sticky(sticky_) {}
  bool sticky;
};

// Every error except running out of memory (and a few argument errors raised before any work) is sticky.
inline bool isSticky(cudaError_t e) {
  return e != cudaSuccess && e != cudaErrorMemoryAllocation && e != cudaErrorInvalidValue &&
         e != cudaErrorNotReady;
}

[[noreturn]] inline void throwCuda(cudaError_t e, const char* expr, const char* file, int line) {
  // A non-sticky error (out of memory) stays in the thread's "last error" slot until read: clear it, or every
  // later launch check on this thread would report it again.
  if (!isSticky(e)) cudaGetLastError();
  std::string f(file);
  const size_t slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  throw CudaError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " +
                      expr + " at " + f + ":" + std::to_string(line),
                  isSticky(e));
}

#define KST_CUDA_CHECK(expr)                                                   \
  do {                                                                         \
    cudaError_t kst_e_ = (expr);                                               \
    if (kst_e_ != cudaSuccess) ::kst::cuda::throwCuda(kst_e_, #expr, __FILE__, __LINE__); \
  } while (0)
// After a kernel launch: catches bad launch configurations at once (asynchronous faults surface at the sync).
#define KST_CUDA_LAUNCH(name) KST_CUDA_CHECK(cudaGetLastError())

// Operand element types. T is __half or __nv_bfloat16; accumulation is always fp32.
template <typename T> struct Vec2;
template <> struct Vec2<__half> { using type = __half2; };
template <> struct Vec2<__nv_bfloat16> { using type = __nv_bfloat162; };

template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ __half fromFloat<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <typename T> __device__ __forceinline__ float toFloat(T x);
template <> __device__ __forceinline__ float toFloat<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// ---- PTX wrappers (sm_80+) ------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte global → shared copy; src_bytes = 0 writes zeros (out-of-range rows and columns).
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(smem)), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(smem)));
}
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(smem)));
}

// D = A·B + D for one 16×8×16 tile: A row-major 16×16 (4 regs), B "col" 16×8 (2 regs), D fp32 (4 regs).
template <typename T> __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

inline int ceilDiv(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace cuda
}  // namespace kst
