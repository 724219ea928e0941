#include <algorithm>
#include <cmath>
#include <string>

#include "attention.cuh"

namespace kst {
namespace cuda {
namespace {

constexpr int kD = 64;    // head size of the tensor-core path
constexpr int kBQ = 64;   // queries per block (16 per warp)
constexpr int kBKV = 64;  // keys per step

// Rows of 64 halves = 128 bytes = 8 chunks of 16 bytes, XOR-swizzled by row for conflict-free ldmatrix.
__device__ __forceinline__ int sw(int row, int chunk) { return row * kD + ((chunk ^ (row & 7)) << 3); }

template <typename T>
__device__ __forceinline__ void loadRows(T* dst, const T* src, int ld, int64_t first, int row0, int rows_valid,
                                         int tid) {
  // 64 rows × 8 chunks, 128 threads → 4 chunks each; rows >= rows_valid are zero-filled.
#pragma unroll
  for (int it = 0; it < 4; ++it) {
    const int i = tid + it * 128;
    const int r = i >> 3, c = i & 7;
    const bool ok = row0 + r < rows_valid;
    const T* g = ok ? src + (first + row0 + r) * ld + c * 8 : src;
    cpAsync16(dst + sw(r, c), g, ok ? 16 : 0);
  }
}

template <typename T>
__global__ void __launch_bounds__(128) attention_hs64_kernel(AttnParams<T> p, int seq_base) {
  __shared__ __align__(128) T sQ[kBQ * kD];
  __shared__ __align__(128) T sK[2][kBKV * kD];
  __shared__ __align__(128) T sV[2][kBKV * kD];
  const int s = seq_base + blockIdx.z, h = blockIdx.y;
  const int L = p.lengths[s];
  const int q0 = blockIdx.x * kBQ;
  if (q0 >= L) return;
  const int64_t t0 = p.offsets[s];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const T* Q = p.q + h * kD;
  const T* K = p.k + h * kD;
  const T* V = p.v + h * kD;
  const float scale_log2 = p.scale * 1.4426950408889634f;

  loadRows(sQ, Q, p.ld_qkv, t0, q0, L, tid);
  loadRows(sK[0], K, p.ld_qkv, t0, 0, L, tid);
  loadRows(sV[0], V, p.ld_qkv, t0, 0, L, tid);
  cpAsyncCommit();

  const int nT = (L + kBKV - 1) / kBKV;
  float o[8][4];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int q = 0; q < 4; ++q) o[i][q] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  uint32_t qf[4][4];

  for (int j = 0; j < nT; ++j) {
    const int st = j & 1;
    if (j + 1 < nT) {
      loadRows(sK[st ^ 1], K, p.ld_qkv, t0, (j + 1) * kBKV, L, tid);
      loadRows(sV[st ^ 1], V, p.ld_qkv, t0, (j + 1) * kBKV, L, tid);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int row = warp * 16 + (lane & 15);
        ldmatrixX4(qf[kk], sQ + sw(row, kk * 2 + (lane >> 4)));
      }
    }
    // S = Q Kᵀ: 16 queries × 64 keys per warp.
    float sc[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int q = 0; q < 4; ++q) sc[i][q] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) {
        const int n = nj * 16 + (lane & 7) + ((lane >> 4) << 3);
        uint32_t r[4];
        ldmatrixX4(r, sK[st] + sw(n, kk * 2 + ((lane >> 3) & 1)));
        mma16816<T>(sc[2 * nj], qf[kk], r[0], r[1]);
        mma16816<T>(sc[2 * nj + 1], qf[kk], r[2], r[3]);
      }
    }
    // Scale into the log2 domain, mask keys past the sequence, online softmax (rows g and g + 8).
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int ni = 0; ni < 8; ++ni) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int key = j * kBKV + ni * 8 + (lane & 3) * 2 + (q & 1);
        sc[ni][q] = key < L ? sc[ni][q] * scale_log2 : -INFINITY;
      }
      mx0 = fmaxf(mx0, fmaxf(sc[ni][0], sc[ni][1]));
      mx1 = fmaxf(mx1, fmaxf(sc[ni][2], sc[ni][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // 0 on the first step (m = -inf)
    m0 = mn0;
    m1 = mn1;
    float s0 = 0.f, s1 = 0.f;
#pragma unroll
    for (int ni = 0; ni < 8; ++ni) {
      sc[ni][0] = exp2f(sc[ni][0] - mn0);
      sc[ni][1] = exp2f(sc[ni][1] - mn0);
      sc[ni][2] = exp2f(sc[ni][2] - mn1);
      sc[ni][3] = exp2f(sc[ni][3] - mn1);
      s0 += sc[ni][0] + sc[ni][1];
      s1 += sc[ni][2] + sc[ni][3];
      o[ni][0] *= c0;
      o[ni][1] *= c0;
      o[ni][2] *= c1;
      o[ni][3] *= c1;
    }
    l0 = l0 * c0 + s0;
    l1 = l1 * c1 + s1;
    // O += P V: the score accumulators are already in the A-fragment layout of the next mma.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      a[0] = pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
      a[1] = pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
      a[2] = pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      a[3] = pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
      const int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
      for (int dp = 0; dp < 4; ++dp) {
        uint32_t r[4];
        ldmatrixX4Trans(r, sV[st] + sw(key, dp * 2 + (lane >> 4)));
        mma16816<T>(o[2 * dp], a, r[0], r[1]);
        mma16816<T>(o[2 * dp + 1], a, r[2], r[3]);
      }
    }
    __syncthreads();  // everyone is done with stage st before it is refilled
  }
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int r0 = q0 + warp * 16 + (lane >> 2);
  T* out = p.out + h * kD + (lane & 3) * 2;
#pragma unroll
  for (int ni = 0; ni < 8; ++ni) {
    if (r0 < L)
      *reinterpret_cast<uint32_t*>(out + (t0 + r0) * p.ld_out + ni * 8) = pack2<T>(o[ni][0] * inv0, o[ni][1] * inv0);
    if (r0 + 8 < L)
      *reinterpret_cast<uint32_t*>(out + (t0 + r0 + 8) * p.ld_out + ni * 8) =
          pack2<T>(o[ni][2] * inv1, o[ni][3] * inv1);
  }
}

// Any head size: one warp per (token, head); lane owns dims lane, lane + 32, ... (CH of them).
template <typename T, int CH>
__global__ void __launch_bounds__(128) attention_generic_kernel(AttnParams<T> p) {
  const int lane = threadIdx.x & 31;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (gw >= p.tokens * p.heads) return;
  const int64_t t = gw / p.heads;
  const int h = static_cast<int>(gw % p.heads);
  const int HS = p.head_size;
  const int s = p.seq_of_token[t];
  const int L = p.lengths[s];
  const int64_t start = p.offsets[s];
  float q[CH], o[CH];
  const T* qp = p.q + t * p.ld_qkv + static_cast<int64_t>(h) * HS;
#pragma unroll
  for (int i = 0; i < CH; ++i) {
    const int d = lane + 32 * i;
    q[i] = d < HS ? toFloat<T>(qp[d]) : 0.f;
    o[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = 0; j < L; ++j) {
    const T* kp = p.k + (start + j) * p.ld_qkv + static_cast<int64_t>(h) * HS;
    float d = 0.f;
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const int c = lane + 32 * i;
      if (c < HS) d += q[i] * toFloat<T>(kp[c]);
    }
    d = warpSum(d) * p.scale;
    const float mn = fmaxf(m, d);
    const float corr = expf(m - mn), pj = expf(d - mn);
    l = l * corr + pj;
    m = mn;
    const T* vp = p.v + (start + j) * p.ld_qkv + static_cast<int64_t>(h) * HS;
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const int c = lane + 32 * i;
      o[i] = o[i] * corr + (c < HS ? pj * toFloat<T>(vp[c]) : 0.f);
    }
  }
  const float inv = 1.0f / l;
  T* op = p.out + t * p.ld_out + static_cast<int64_t>(h) * HS;
#pragma unroll
  for (int i = 0; i < CH; ++i) {
    const int c = lane + 32 * i;
    if (c < HS) op[c] = fromFloat<T>(o[i] * inv);
  }
}

template <typename T>
bool fastPathOk(const AttnParams<T>& p) {
  auto al = [](const void* x) { return (reinterpret_cast<uintptr_t>(x) & 15) == 0; };
  return p.head_size == kD && p.ld_qkv % 8 == 0 && p.ld_out % 2 == 0 && al(p.q) && al(p.k) && al(p.v) &&
         (reinterpret_cast<uintptr_t>(p.out) & 3) == 0;
}

}  // namespace

template <typename T>
void attention_cuda(const AttnParams<T>& p, cudaStream_t stream, int path) {
  if (p.batch <= 0 || p.tokens <= 0) return;
  if (p.head_size < 1 || p.head_size > kAttnMaxHeadSize)
    throw CudaError("attention: head size " + std::to_string(p.head_size) + " is not supported on CUDA (1.." +
                        std::to_string(kAttnMaxHeadSize) + ")",
                    false);
  const bool fast = fastPathOk(p);
  if (path == 1 && !fast) throw CudaError("attention: the head-size-64 kernel cannot take these arguments", false);
  if (fast && path != 0) {
    for (int base = 0; base < p.batch; base += 65535) {
      const int n = std::min(65535, p.batch - base);
      dim3 grid(ceilDiv(p.max_len, kBQ), p.heads, n);
      attention_hs64_kernel<T><<<grid, 128, 0, stream>>>(p, base);
      KST_CUDA_LAUNCH("attention_hs64_kernel");
    }
    return;
  }
  const int blocks = ceilDiv(p.tokens * p.heads, 4);
  const int ch = (p.head_size + 31) / 32;
  if (ch <= 1) attention_generic_kernel<T, 1><<<blocks, 128, 0, stream>>>(p);
  else if (ch <= 2) attention_generic_kernel<T, 2><<<blocks, 128, 0, stream>>>(p);
  else if (ch <= 4) attention_generic_kernel<T, 4><<<blocks, 128, 0, stream>>>(p);
  else if (ch <= 8) attention_generic_kernel<T, 8><<<blocks, 128, 0, stream>>>(p);
  else attention_generic_kernel<T, 16><<<blocks, 128, 0, stream>>>(p);
  KST_CUDA_LAUNCH("attention_generic_kernel");
}

template void attention_cuda<__half>(const AttnParams<__half>&, cudaStream_t, int);
template void attention_cuda<__nv_bfloat16>(const AttnParams<__nv_bfloat16>&, cudaStream_t, int);

}  // namespace cuda
}  // namespace kst
