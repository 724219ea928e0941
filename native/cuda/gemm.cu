#include "gemm.cuh"

namespace kst {
namespace cuda {
namespace {

__device__ __forceinline__ float applyAct(float v, int act) {
  if (act == GEMM_ACT_GELU) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  if (act == GEMM_ACT_GELU_TANH) {
    const float c = 0.79788456080286536f;
    return 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
  }
  return v;
}

// Epilogue for columns c and c+1 of row r (c+1 may be past N).
template <typename T>
__device__ __forceinline__ void storePair(const GemmEpilogue& ep, int r, int c, float v0, float v1, int N) {
  const int64_t o = static_cast<int64_t>(r) * N + c;
  const bool two = c + 1 < N;
  if (ep.bias) {
    v0 += ep.bias[c];
    if (two) v1 += ep.bias[c + 1];
  }
  v0 = applyAct(v0, ep.act);
  v1 = applyAct(v1, ep.act);
  if (two && (N & 1) == 0) {  // 8-byte (fp32) / 4-byte (fp16) aligned pair
    if (ep.residual) {
      const float2 rr = *reinterpret_cast<const float2*>(ep.residual + o);
      v0 += rr.x;
      v1 += rr.y;
    }
    if (ep.out_f32) {
      *reinterpret_cast<float2*>(ep.out_f32 + o) = make_float2(v0, v1);
    } else {
      *reinterpret_cast<uint32_t*>(static_cast<T*>(ep.out_h) + o) = pack2<T>(v0, v1);
    }
    return;
  }
  if (ep.residual) v0 += ep.residual[o];
  if (ep.out_f32) ep.out_f32[o] = v0; else static_cast<T*>(ep.out_h)[o] = fromFloat<T>(v0);
  if (two) {
    if (ep.residual) v1 += ep.residual[o + 1];
    if (ep.out_f32) ep.out_f32[o + 1] = v1; else static_cast<T*>(ep.out_h)[o + 1] = fromFloat<T>(v1);
  }
}

// Shared-memory tile rows are BK halves (64 or 128 bytes); 16-byte chunks are XOR-swizzled so that the 8 rows
// one ldmatrix phase reads land in 8 different bank groups.
template <int BK>
__device__ __forceinline__ int swz(int row, int chunk) {
  if (BK == 64) return chunk ^ (row & 7);
  return chunk ^ ((row >> 1) & 3);  // BK == 32: two rows per 128-byte line
}

template <typename T, int BM, int BN, int BK, int WM, int WN, int STAGES>
struct Tile {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int WTM = BM / WM, WTN = BN / WN;
  static constexpr int MFR = WTM / 16, NFR = WTN / 8;
  static constexpr int CPR = BK / 8;
  static constexpr int kStageElems = (BM + BN) * BK;
  static constexpr int kSmemBytes = STAGES * kStageElems * static_cast<int>(sizeof(T));
  static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tile must be a multiple of 16x16");
  static_assert(BK == 32 || BK == 64, "BK is 32 or 64");
  static_assert((BM * CPR) % kThreads == 0 && (BN * CPR) % kThreads == 0, "tile loads must divide evenly");
};

template <typename T, int BM, int BN, int BK, int WM, int WN, int STAGES>
__device__ __forceinline__ void loadTile(T* sA, T* sB, const T* __restrict__ A, const T* __restrict__ W, int M, int N,
                                         int K, int m0, int n0, int k0, int tid) {
  using C = Tile<T, BM, BN, BK, WM, WN, STAGES>;
#pragma unroll
  for (int it = 0; it < BM * C::CPR / C::kThreads; ++it) {
    const int i = tid + it * C::kThreads;
    const int r = i / C::CPR, c = i % C::CPR;
    const int gr = m0 + r, gc = k0 + c * 8;
    const bool ok = gr < M && gc < K;
    cpAsync16(sA + r * BK + swz<BK>(r, c) * 8, ok ? A + static_cast<int64_t>(gr) * K + gc : A, ok ? 16 : 0);
  }
#pragma unroll
  for (int it = 0; it < BN * C::CPR / C::kThreads; ++it) {
    const int i = tid + it * C::kThreads;
    const int r = i / C::CPR, c = i % C::CPR;
    const int gr = n0 + r, gc = k0 + c * 8;
    const bool ok = gr < N && gc < K;
    cpAsync16(sB + r * BK + swz<BK>(r, c) * 8, ok ? W + static_cast<int64_t>(gr) * K + gc : W, ok ? 16 : 0);
  }
}

template <typename T, int BM, int BN, int BK, int WM, int WN, int STAGES>
__global__ void __launch_bounds__(WM* WN * 32)
    gemm_kernel(const T* __restrict__ A, const T* __restrict__ W, int M, int N, int K, GemmEpilogue ep) {
  using C = Tile<T, BM, BN, BK, WM, WN, STAGES>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp / WN, wn = warp % WN;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int KT = (K + BK - 1) / BK;

  float acc[C::MFR][C::NFR][4];
#pragma unroll
  for (int i = 0; i < C::MFR; ++i)
#pragma unroll
    for (int j = 0; j < C::NFR; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) {
      T* sA = smem + s * C::kStageElems;
      loadTile<T, BM, BN, BK, WM, WN, STAGES>(sA, sA + BM * BK, A, W, M, N, K, m0, n0, s * BK, tid);
    }
    cpAsyncCommit();
  }

  for (int kt = 0; kt < KT; ++kt) {
    cpAsyncWait<STAGES - 2>();
    __syncthreads();  // tile kt landed for every thread; stage (kt-1) % STAGES is free to refill
    const int nk = kt + STAGES - 1;
    if (nk < KT) {
      T* sA = smem + (nk % STAGES) * C::kStageElems;
      loadTile<T, BM, BN, BK, WM, WN, STAGES>(sA, sA + BM * BK, A, W, M, N, K, m0, n0, nk * BK, tid);
    }
    cpAsyncCommit();

    const T* sA = smem + (kt % STAGES) * C::kStageElems;
    const T* sB = sA + BM * BK;
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t af[C::MFR][4];
      uint32_t bf[C::NFR][2];
#pragma unroll
      for (int mi = 0; mi < C::MFR; ++mi) {
        const int row = wm * C::WTM + mi * 16 + (lane & 15);
        const int c = kk * 2 + (lane >> 4);
        ldmatrixX4(af[mi], sA + row * BK + swz<BK>(row, c) * 8);
      }
#pragma unroll
      for (int nj = 0; nj < C::NFR / 2; ++nj) {
        const int n = wn * C::WTN + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int c = kk * 2 + ((lane >> 3) & 1);
        uint32_t r[4];
        ldmatrixX4(r, sB + n * BK + swz<BK>(n, c) * 8);
        bf[2 * nj][0] = r[0];
        bf[2 * nj][1] = r[1];
        bf[2 * nj + 1][0] = r[2];
        bf[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < C::MFR; ++mi)
#pragma unroll
        for (int ni = 0; ni < C::NFR; ++ni) mma16816<T>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  cpAsyncWait<0>();

#pragma unroll
  for (int mi = 0; mi < C::MFR; ++mi) {
#pragma unroll
    for (int ni = 0; ni < C::NFR; ++ni) {
      const int r0 = m0 + wm * C::WTM + mi * 16 + (lane >> 2);
      const int c = n0 + wn * C::WTN + ni * 8 + (lane & 3) * 2;
      if (c >= N) continue;
      if (r0 < M) storePair<T>(ep, r0, c, acc[mi][ni][0], acc[mi][ni][1], N);
      if (r0 + 8 < M) storePair<T>(ep, r0 + 8, c, acc[mi][ni][2], acc[mi][ni][3], N);
    }
  }
}

// Fallback for any K and alignment: 16×16 outputs per block, fp32 accumulation through shared memory.
template <typename T>
__global__ void __launch_bounds__(256)
    gemm_simt_kernel(const T* __restrict__ A, const T* __restrict__ W, int M, int N, int K, GemmEpilogue ep) {
  __shared__ float sA[16][17], sW[16][17];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m = blockIdx.y * 16 + ty, n = blockIdx.x * 16 + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += 16) {
    const int am = blockIdx.y * 16 + ty, wn = blockIdx.x * 16 + ty;
    sA[ty][tx] = (am < M && k0 + tx < K) ? toFloat<T>(A[static_cast<int64_t>(am) * K + k0 + tx]) : 0.f;
    sW[ty][tx] = (wn < N && k0 + tx < K) ? toFloat<T>(W[static_cast<int64_t>(wn) * K + k0 + tx]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) acc += sA[ty][k] * sW[tx][k];
    __syncthreads();
  }
  if (m >= M || n >= N) return;
  float v = acc;
  if (ep.bias) v += ep.bias[n];
  v = applyAct(v, ep.act);
  const int64_t o = static_cast<int64_t>(m) * N + n;
  if (ep.residual) v += ep.residual[o];
  if (ep.out_f32) ep.out_f32[o] = v; else static_cast<T*>(ep.out_h)[o] = fromFloat<T>(v);
}

struct ConfigShape {
  int bm, bn;
};
constexpr ConfigShape kShapes[GEMM_NUM_CONFIGS] = {{128, 128}, {64, 128}, {64, 64}, {32, 64},
                                                     {32, 32},   {16, 16},  {128, 256}, {128, 128}};

// Config id → kernel template arguments.
#define KST_GEMM_CONFIGS(X)         \
  X(GEMM_128x128, 128, 128, 32, 2, 4, 4) \
  X(GEMM_64x128, 64, 128, 32, 2, 4, 4)   \
  X(GEMM_64x64, 64, 64, 32, 2, 2, 4)     \
  X(GEMM_32x64, 32, 64, 32, 1, 4, 4)     \
  X(GEMM_32x32, 32, 32, 32, 2, 2, 4)     \
  X(GEMM_128x256, 128, 256, 32, 2, 4, 3) \
  X(GEMM_128x128_K64, 128, 128, 64, 2, 4, 3)

template <typename T, int BM, int BN, int BK, int WM, int WN, int STAGES>
void launchTile(const T* A, const T* W, int M, int N, int K, const GemmEpilogue& ep, cudaStream_t stream) {
  using C = Tile<T, BM, BN, BK, WM, WN, STAGES>;
  dim3 grid(ceilDiv(N, BN), ceilDiv(M, BM));
  gemm_kernel<T, BM, BN, BK, WM, WN, STAGES><<<grid, C::kThreads, C::kSmemBytes, stream>>>(A, W, M, N, K, ep);
}

template <typename T, int BM, int BN, int BK, int WM, int WN, int STAGES>
void prepareTile() {
  using C = Tile<T, BM, BN, BK, WM, WN, STAGES>;
  KST_CUDA_CHECK(cudaFuncSetAttribute(gemm_kernel<T, BM, BN, BK, WM, WN, STAGES>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
}

}  // namespace

const char* gemmConfigName(int config) {
  static const char* names[GEMM_NUM_CONFIGS] = {"128x128", "64x128", "64x64",   "32x64",
                                                "32x32",   "simt",   "128x256", "128x128k64"};
  return config >= 0 && config < GEMM_NUM_CONFIGS ? names[config] : "?";
}

int gemmPickConfig(int M, int N, int K, int num_sms) {
  if (K % 8 != 0) return GEMM_SIMT;
  // The largest tile that still gives every SM a block; small problems get the tile with the most blocks.
  for (int c = GEMM_128x128; c <= GEMM_32x32; ++c) {
    const int64_t blocks = static_cast<int64_t>(ceilDiv(M, kShapes[c].bm)) * ceilDiv(N, kShapes[c].bn);
    if (blocks >= num_sms) return c;
  }
  return GEMM_32x32;
}

void gemm_prepare() {
#define KST_PREP(id, BM, BN, BK, WM, WN, ST) \
  prepareTile<__half, BM, BN, BK, WM, WN, ST>();  \
  prepareTile<__nv_bfloat16, BM, BN, BK, WM, WN, ST>();
  KST_GEMM_CONFIGS(KST_PREP)
#undef KST_PREP
}

template <typename T>
void gemm_cuda(const T* A, const T* W, int M, int N, int K, const GemmEpilogue& ep, cudaStream_t stream, int config) {
  if (M <= 0 || N <= 0) return;
  if ((ep.out_f32 == nullptr) == (ep.out_h == nullptr))
    throw CudaError("gemm_cuda: exactly one of out_f32 / out_h must be set", false);
  const bool aligned = K % 8 == 0 && (reinterpret_cast<uintptr_t>(A) & 15) == 0 &&
                       (reinterpret_cast<uintptr_t>(W) & 15) == 0;
  if (config == GEMM_AUTO) {
    int dev = 0, sms = 0;
    KST_CUDA_CHECK(cudaGetDevice(&dev));
    KST_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    config = gemmPickConfig(M, N, K, sms);
  }
  if (!aligned) config = GEMM_SIMT;
  if (K <= 0) config = GEMM_SIMT;  // y = epilogue(0)
  switch (config) {
#define KST_CASE(id, BM, BN, BK, WM, WN, ST)                          \
  case id:                                                            \
    launchTile<T, BM, BN, BK, WM, WN, ST>(A, W, M, N, K, ep, stream); \
    break;
    KST_GEMM_CONFIGS(KST_CASE)
#undef KST_CASE
    default: {
      dim3 grid(ceilDiv(N, 16), ceilDiv(M, 16));
      gemm_simt_kernel<T><<<grid, 256, 0, stream>>>(A, W, M, N, K, ep);
    }
  }
  KST_CUDA_LAUNCH("gemm_kernel");
}

template void gemm_cuda<__half>(const __half*, const __half*, int, int, int, const GemmEpilogue&, cudaStream_t, int);
template void gemm_cuda<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, int, int, int,
                                       const GemmEpilogue&, cudaStream_t, int);

}  // namespace cuda
}  // namespace kst
