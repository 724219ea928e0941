#include "ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace kst {
namespace cpu {

void pack_ref(PackedWeight& w) { w.nr = 0; }

void gemm_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y) {
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<size_t>(m) * K;
    float* yr = y + static_cast<size_t>(m) * N;
    for (int n = 0; n < N; ++n) {
      const float* wr = W + static_cast<size_t>(n) * K;
      float s = 0.f;
      for (int k = 0; k < K; ++k) s += xr[k] * wr[k];
      yr[n] = bias ? s + bias[n] : s;
    }
  }
}

float bf16Round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = ((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16;
  std::memcpy(&f, &u, 4);
  return f;
}

void gemm_bf16_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y) {
  std::vector<float> xr(static_cast<size_t>(M) * K), wr(static_cast<size_t>(N) * K);
  for (size_t i = 0; i < xr.size(); ++i) xr[i] = bf16Round(x[i]);
  for (size_t i = 0; i < wr.size(); ++i) wr[i] = bf16Round(W[i]);
  gemm_raw_ref(xr.data(), M, N, K, wr.data(), bias, y);
}

void quantize_weight_s8_ref(const float* W, int N, int K, int8_t* q, float* scale) {
  for (int n = 0; n < N; ++n) {
    const float* w = W + static_cast<size_t>(n) * K;
    float amax = 0.f;
    for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w[k]));
    const float inv = amax > 0.f ? 127.f / amax : 0.f;
    scale[n] = amax > 0.f ? amax / 127.f : 0.f;
    for (int k = 0; k < K; ++k) {
      const float r = std::nearbyint(w[k] * inv);
      q[static_cast<size_t>(n) * K + k] = static_cast<int8_t>(std::min(127.f, std::max(-127.f, r)));
    }
  }
}

void quantize_row_u8_ref(const float* x, int K, uint8_t* q, float* scale, int32_t* zp) {
  float lo = 0.f, hi = 0.f;
  for (int k = 0; k < K; ++k) {
    lo = std::min(lo, x[k]);
    hi = std::max(hi, x[k]);
  }
  const float range = hi - lo;
  if (!(range > 0.f)) {
    *scale = 0.f;
    *zp = 0;
    for (int k = 0; k < K; ++k) q[k] = 0;
    return;
  }
  const float inv = 255.f / range;
  *scale = range / 255.f;
  const int32_t z = std::min(255, std::max(0, static_cast<int32_t>(std::nearbyint(-lo * inv))));
  *zp = z;
  for (int k = 0; k < K; ++k) {
    const int32_t v = static_cast<int32_t>(std::nearbyint(x[k] * inv)) + z;
    q[k] = static_cast<uint8_t>(std::min(255, std::max(0, v)));
  }
}

void gemm_int8_raw_ref(const float* x, int M, int N, int K, const float* W, const float* bias, float* y,
                       int32_t* acc) {
  std::vector<int8_t> qw(static_cast<size_t>(N) * K);
  std::vector<float> sw(N);
  quantize_weight_s8_ref(W, N, K, qw.data(), sw.data());
  std::vector<uint8_t> qx(static_cast<size_t>(K));
  for (int m = 0; m < M; ++m) {
    float sx;
    int32_t zp;
    quantize_row_u8_ref(x + static_cast<size_t>(m) * K, K, qx.data(), &sx, &zp);
    for (int n = 0; n < N; ++n) {
      const int8_t* w = qw.data() + static_cast<size_t>(n) * K;
      int64_t dot = 0, wsum = 0;  // int64 here; the kernels' int32 cannot overflow: |acc| <= 255 · 127 · 2 · K
      for (int k = 0; k < K; ++k) {
        dot += static_cast<int64_t>(qx[k]) * w[k];
        wsum += w[k];
      }
      const int32_t a = static_cast<int32_t>(dot - static_cast<int64_t>(zp) * wsum);
      if (acc) acc[static_cast<size_t>(m) * N + n] = a;
      y[static_cast<size_t>(m) * N + n] = std::fma(static_cast<float>(a), sx * sw[n], bias ? bias[n] : 0.f);
    }
  }
}

void gemm_ref(const float* x, int M, const PackedWeight& w, const float* bias, float* y, ThreadPool* pool) {
  const int N = w.N, K = w.K;
  parallelFor(pool, M, 4, [&](int64_t b, int64_t e, int) {
    gemm_raw_ref(x + b * K, static_cast<int>(e - b), N, K, w.raw, bias, y + b * N);
  });
}

float gelu_scalar(float x, Activation act) {
  if (act == Activation::Gelu) return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
  // gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  const float c = 0.79788456080286536f;
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

void gelu_ref(float* x, size_t n, Activation act, ThreadPool* pool) {
  parallelFor(pool, static_cast<int64_t>(n), 4096, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) x[i] = gelu_scalar(x[i], act);
  });
}

void gemm_gelu_ref(const float* x, int M, const PackedWeight& w, const float* bias, float* y, Activation act,
                   ThreadPool* pool) {
  gemm_ref(x, M, w, bias, y, pool);
  gelu_ref(y, static_cast<size_t>(M) * w.N, act, pool);
}

void add_layernorm_ref(const float* x, const float* res, const float* gamma, const float* beta, float* y,
                       int M, int N, float eps, ThreadPool* pool) {
  parallelFor(pool, M, 8, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> row;
    row.resize(N);
    for (int64_t m = b; m < e; ++m) {
      const float* xr = x + m * N;
      const float* rr = res ? res + m * N : nullptr;
      float mean = 0.f;
      for (int i = 0; i < N; ++i) {
        row[i] = rr ? xr[i] + rr[i] : xr[i];
        mean += row[i];
      }
      mean /= static_cast<float>(N);
      float var = 0.f;
      for (int i = 0; i < N; ++i) {
        float d = row[i] - mean;
        var += d * d;
      }
      var /= static_cast<float>(N);
      float inv = 1.0f / std::sqrt(var + eps);
      float* yr = y + m * N;
      for (int i = 0; i < N; ++i) yr[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
    }
  });
}

void attention_ref(const AttnArgs& a, float* scratch, ThreadPool* pool) {
  const int HS = a.head_size;
  const size_t per = attentionScratchPerThread(a.max_len, HS);
  parallelFor(pool, static_cast<int64_t>(a.batch) * a.heads, 1, [&](int64_t b, int64_t e, int tid) {
    float* p = scratch + per * tid;
    for (int64_t task = b; task < e; ++task) {
      const int s = static_cast<int>(task / a.heads), h = static_cast<int>(task % a.heads);
      const int L = a.lengths[s];
      const int64_t t0 = a.offsets[s];
      for (int i = 0; i < L; ++i) {
        const float* q = a.q + (t0 + i) * a.ld_qkv + h * HS;
        float mx = -INFINITY;
        for (int j = 0; j < L; ++j) {
          const float* k = a.k + (t0 + j) * a.ld_qkv + h * HS;
          float d = 0.f;
          for (int c = 0; c < HS; ++c) d += q[c] * k[c];
          p[j] = d * a.scale;
          mx = std::max(mx, p[j]);
        }
        float sum = 0.f;
        for (int j = 0; j < L; ++j) {
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        const float inv = 1.0f / sum;
        float* o = a.out + (t0 + i) * a.ld_out + h * HS;
        for (int c = 0; c < HS; ++c) o[c] = 0.f;
        for (int j = 0; j < L; ++j) {
          const float* v = a.v + (t0 + j) * a.ld_qkv + h * HS;
          const float pj = p[j] * inv;
          for (int c = 0; c < HS; ++c) o[c] += pj * v[c];
        }
      }
    }
  });
}

void embeddings_sum_ref(const int32_t* ids, const int32_t* types, const int32_t* lengths, int batch,
                        const float* word, const float* pos, const float* type, int H, float* out) {
  size_t t = 0;
  for (int s = 0; s < batch; ++s) {
    for (int p = 0; p < lengths[s]; ++p, ++t) {
      const float* w = word + static_cast<size_t>(ids[t]) * H;
      const float* ty = type + static_cast<size_t>(types ? types[t] : 0) * H;
      const float* po = pos + static_cast<size_t>(p) * H;
      float* o = out + t * H;
      // HF: embeddings = inputs_embeds + token_type_embeddings; embeddings += position_embeddings
      for (int i = 0; i < H; ++i) o[i] = (w[i] + ty[i]) + po[i];
    }
  }
}

void pooling_ref(const float* h, const int32_t* lengths, int batch, int H, uint32_t mode, float* out) {
  int modes = 0;
  for (uint32_t m = mode & 0xF; m; m &= m - 1) ++modes;
  const size_t width = static_cast<size_t>(H) * modes;
  size_t t0 = 0;
  for (int s = 0; s < batch; ++s) {
    const int L = lengths[s];
    const float* seq = h + t0 * H;
    float* o = out + s * width;
    if (mode & POOL_CLS) {
      for (int i = 0; i < H; ++i) o[i] = seq[i];
      o += H;
    }
    if (mode & POOL_MAX) {
      for (int i = 0; i < H; ++i) o[i] = seq[i];
      for (int t = 1; t < L; ++t)
        for (int i = 0; i < H; ++i) o[i] = std::max(o[i], seq[static_cast<size_t>(t) * H + i]);
      o += H;
    }
    if (mode & (POOL_MEAN | POOL_MEAN_SQRT_LEN)) {
      thread_local std::vector<float> sum;
      sum.assign(H, 0.f);
      for (int t = 0; t < L; ++t)
        for (int i = 0; i < H; ++i) sum[i] += seq[static_cast<size_t>(t) * H + i];
      if (mode & POOL_MEAN) {
        const float d = static_cast<float>(L);
        for (int i = 0; i < H; ++i) o[i] = sum[i] / d;
        o += H;
      }
      if (mode & POOL_MEAN_SQRT_LEN) {
        const float d = std::sqrt(static_cast<float>(L));
        for (int i = 0; i < H; ++i) o[i] = sum[i] / d;
        o += H;
      }
    }
    t0 += L;
  }
}

void l2normalize_ref(float* x, int64_t rows, int cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* p = x + r * cols;
    float s = 0.f;
    for (int i = 0; i < cols; ++i) s += p[i] * p[i];
    const float d = std::max(std::sqrt(s), 1e-12f);
    for (int i = 0; i < cols; ++i) p[i] /= d;
  }
}

}  // namespace cpu
}  // namespace kst
