// CUDA op tests (DESIGN rule 1): every kernel in native/cuda against the scalar reference native/cpu/ref.cpp on
// awkward sizes, then whole random-weight models on the GPU against the CPU fp32 path, CUDA graphs, and the
// sticky-error rule. Prints one line per case and "N passed, M failed"; exit 0 / 1, or 77 when there is no GPU
// (2 with --require-gpu). `test_cuda_ops --bench` prints GEMM and attention timings instead (never asserted).
//
// Error bounds. Operands are rounded to the kernel's type first, so the reference sees exactly the kernel's
// inputs; what remains is accumulation order (fp32 both sides) and the rounding of fp16/bf16 outputs:
//   fp16 outputs   |got - ref| <= atol + 1e-3 · |ref|   (fp16 half-ulp is 2^-11 = 4.9e-4 relative)
//   bf16 outputs   |got - ref| <= atol + 8e-3 · |ref|   (bf16 half-ulp is 2^-8 = 3.9e-3 relative)
//   fp32 outputs   |got - ref| <= atol + 1e-5 · |ref|
//   GEMM atol = 2e-5 · sqrt(K) (fp32 summation order); attention atol = 2·half-ulp · max|v| (P is rounded to
//   the operand type before P·V); LayerNorm / embeddings atol 1e-5; pooling and L2 normalise 1e-6.
//   Whole models: cosine(GPU, CPU fp32) >= 0.9999 per sequence for fp16, >= 0.999 for bf16.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend_cuda.cuh"
#include "bert_cuda.cuh"
#include "cuda_loader.h"
#include "cuda_test_model.h"
#include "kst.h"
#include "ops.h"
#include "ref.h"
#include "threadpool.h"
#include "weights.h"

#ifndef KST_CUDA_LIBRARY_PATH
#define KST_CUDA_LIBRARY_PATH ""
#endif

using namespace kst;
using namespace kst::cuda;

static int g_pass = 0, g_fail = 0;
static ThreadPool* g_pool = nullptr;

static std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
static std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}
static void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.empty() ? "" : "  ", detail.c_str());
  std::fflush(stdout);
  (ok ? g_pass : g_fail)++;
}

static std::mt19937 g_rng(4242);
static std::vector<float> rnd(size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}

template <typename T> struct TypeInfo;
template <> struct TypeInfo<__half> {
  static constexpr const char* name = "fp16";
  static constexpr double rtol = 1e-3, halfUlp = 1.0 / 2048;
  static __half from(float x) { return __float2half_rn(x); }
  static float to(__half x) { return __half2float(x); }
};
template <> struct TypeInfo<__nv_bfloat16> {
  static constexpr const char* name = "bf16";
  static constexpr double rtol = 8e-3, halfUlp = 1.0 / 256;
  static __nv_bfloat16 from(float x) { return __float2bfloat16_rn(x); }
  static float to(__nv_bfloat16 x) { return __bfloat162float(x); }
};
template <typename T>
static std::vector<T> toT(const std::vector<float>& v) {
  std::vector<T> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = TypeInfo<T>::from(v[i]);
  return r;
}
template <typename T>
static std::vector<float> fromT(const std::vector<T>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = TypeInfo<T>::to(v[i]);
  return r;
}
template <typename T>
static std::vector<float> roundTo(const std::vector<float>& v) {
  return fromT(toT<T>(v));
}

#define CK(x)                                                                                     \
  do {                                                                                            \
    cudaError_t e_ = (x);                                                                         \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #x); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { CK(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(count, 1) * sizeof(T))); }
  explicit Dev(const std::vector<T>& v) : Dev(v.size()) { up(v); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void up(const std::vector<T>& v) { CK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> down() const {
    std::vector<T> v(n);
    CK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

// Worst |got - ref| / (atol + rtol·|ref|) (≤ 1 passes) and the largest absolute error.
struct Cmp {
  double worst = 0, maxAbs = 0;
  size_t at = 0;
  bool nonfinite = false;
};
static Cmp compare(const std::vector<float>& got, const std::vector<float>& ref, double atol, double rtol) {
  Cmp c;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) {
      c.nonfinite = true;
      c.at = i;
      c.worst = 1e30;
      return c;
    }
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double r = d / (atol + rtol * std::fabs(ref[i]));
    if (r > c.worst) {
      c.worst = r;
      c.at = i;
    }
    c.maxAbs = std::max(c.maxAbs, d);
  }
  return c;
}
static void reportCmp(const std::string& name, const Cmp& c, const std::vector<float>& got,
                      const std::vector<float>& ref) {
  const bool ok = c.worst <= 1.0 && !c.nonfinite;
  report(ok, name,
         ok ? fmt("max|err| %.3g (%.2f of bound)", c.maxAbs, c.worst)
            : fmt("max|err| %.3g, worst at %zu: got %.7g want %.7g (%.2f x bound)", c.maxAbs, c.at,
                  got.empty() ? 0.0 : got[c.at], ref.empty() ? 0.0 : ref[c.at], c.worst));
}
static void sync(const std::string& what) {
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    report(false, what, std::string("CUDA error ") + cudaGetErrorName(e));
    std::printf("%d passed, %d failed\n", g_pass, g_fail);
    std::exit(1);
  }
}

// ---- convert ---------------------------------------------------------------------------------------------
template <typename T>
static void testConvert(size_t n) {
  std::vector<float> x = rnd(n, -70000.f, 70000.f);
  if (n > 3) {
    x[0] = 0.f;
    x[1] = -0.f;
    x[2] = 1e-8f;
    x[3] = 65519.f;
  }
  Dev<float> dx(x);
  Dev<T> dy(n);
  cudaOps<T>().convert(dx.p, dy.p, n, 0);
  sync("convert");
  const std::vector<float> got = fromT(dy.down());
  const std::vector<float> want = roundTo<T>(x);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&got[i], &want[i], 4) != 0 && !(std::isnan(got[i]) && std::isnan(want[i]))) ++bad;
  report(bad == 0, fmt("convert %s n=%zu", TypeInfo<T>::name, n), bad ? fmt("%zu values differ from host rounding", bad) : "bit-exact");
}

// ---- GEMM ------------------------------------------------------------------------------------------------
enum Epi { EPI_PLAIN_H, EPI_BIAS_H, EPI_GELU_H, EPI_GELU_TANH_H, EPI_RES_F32, EPI_RES_ALIAS_F32, EPI_BIAS_F32, EPI_COUNT };
static const char* kEpiNames[] = {"plain→T", "bias→T", "bias+gelu→T", "bias+gelu_tanh→T", "bias+residual→f32",
                                  "residual(in place)→f32", "bias→f32"};

template <typename T>
static void testGemm(int M, int N, int K, const std::vector<int>& configs, const std::vector<int>& epis) {
  const std::vector<float> A = roundTo<T>(rnd(static_cast<size_t>(M) * K));
  const std::vector<float> W = roundTo<T>(rnd(static_cast<size_t>(N) * K));
  const std::vector<float> bias = rnd(N), res = rnd(static_cast<size_t>(M) * N);
  std::vector<float> prod(static_cast<size_t>(M) * N);
  parallelFor(g_pool, M, 8, [&](int64_t b, int64_t e, int) {
    cpu::gemm_raw_ref(A.data() + b * K, static_cast<int>(e - b), N, K, W.data(), nullptr, prod.data() + b * N);
  });
  Dev<T> dA(toT<T>(A)), dW(toT<T>(W));
  Dev<float> dbias(bias), dres(res), dout32(prod.size());
  Dev<T> douth(prod.size());
  const double atol = 2e-5 * std::sqrt(static_cast<double>(K));
  for (int epi : epis) {
    std::vector<float> ref(prod.size());
    const bool f32 = epi == EPI_RES_F32 || epi == EPI_RES_ALIAS_F32 || epi == EPI_BIAS_F32;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        const size_t o = static_cast<size_t>(m) * N + n;
        float v = prod[o];
        if (epi != EPI_PLAIN_H && epi != EPI_RES_ALIAS_F32) v += bias[n];
        if (epi == EPI_GELU_H) v = cpu::gelu_scalar(v, Activation::Gelu);
        if (epi == EPI_GELU_TANH_H) v = cpu::gelu_scalar(v, Activation::GeluNew);
        if (epi == EPI_RES_F32 || epi == EPI_RES_ALIAS_F32) v += res[o];
        ref[o] = v;
      }
    for (int cfg : configs) {
      GemmEpilogue ep;
      if (epi != EPI_PLAIN_H && epi != EPI_RES_ALIAS_F32) ep.bias = dbias.p;
      if (epi == EPI_GELU_H) ep.act = GEMM_ACT_GELU;
      if (epi == EPI_GELU_TANH_H) ep.act = GEMM_ACT_GELU_TANH;
      if (epi == EPI_RES_F32) ep.residual = dres.p;
      if (epi == EPI_RES_ALIAS_F32) {
        dout32.up(res);
        ep.residual = dout32.p;
      }
      if (f32) ep.out_f32 = dout32.p;
      else ep.out_h = douth.p;
      cudaOps<T>().gemm(dA.p, dW.p, M, N, K, ep, 0, cfg);
      sync("gemm");
      const std::vector<float> got = f32 ? dout32.down() : fromT(douth.down());
      int dev = 0, sms = 0;
      cudaGetDevice(&dev);
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
      const int used = cfg == GEMM_AUTO ? gemmPickConfig(M, N, K, sms) : cfg;
      reportCmp(fmt("gemm %s M=%d N=%d K=%d %s [%s%s]", TypeInfo<T>::name, M, N, K, kEpiNames[epi],
                    cfg == GEMM_AUTO ? "auto→" : "", gemmConfigName(K % 8 ? GEMM_SIMT : used)),
                compare(got, ref, atol, f32 ? 1e-5 : TypeInfo<T>::rtol), got, ref);
    }
  }
}

template <typename T>
static void gemmSuite() {
  const std::vector<int> all = {GEMM_AUTO,  GEMM_128x128, GEMM_64x128,  GEMM_64x64,      GEMM_32x64,
                                GEMM_32x32, GEMM_SIMT,    GEMM_128x256, GEMM_128x128_K64};
  const std::vector<int> autoOnly = {GEMM_AUTO};
  const std::vector<int> allEpis = {EPI_PLAIN_H, EPI_BIAS_H, EPI_GELU_H, EPI_GELU_TANH_H, EPI_RES_F32,
                                    EPI_RES_ALIAS_F32, EPI_BIAS_F32};
  const std::vector<int> twoEpis = {EPI_GELU_H, EPI_RES_F32};
  struct S { int M, N, K; };
  for (S s : {S{1, 8, 16}, S{7, 24, 40}, S{33, 72, 96}, S{129, 200, 264}, S{65, 33, 64}, S{200, 130, 520},
              S{513, 96, 128}})
    testGemm<T>(s.M, s.N, s.K, all, twoEpis);
  testGemm<T>(37, 50, 72, autoOnly, allEpis);
  // BERT-base shapes: QKV, FFN in / out at batch-1 and batch sizes.
  for (S s : {S{300, 768, 768}, S{17, 2304, 768}, S{64, 3072, 768}, S{40, 768, 3072}, S{1, 768, 3072}})
    testGemm<T>(s.M, s.N, s.K, all, {EPI_RES_F32});
  // K not a multiple of 8: the SIMT fallback.
  for (S s : {S{5, 9, 13}, S{65, 33, 100}, S{3, 17, 7}}) testGemm<T>(s.M, s.N, s.K, autoOnly, twoEpis);
}

// ---- attention -------------------------------------------------------------------------------------------
template <typename T>
static void testAttention(const std::vector<int>& lengths, int heads, int HS, float amp, int path) {
  const int H = heads * HS;
  int64_t Tn = 0;
  int maxL = 0;
  std::vector<int64_t> off64;
  std::vector<int32_t> off32, seq;
  for (size_t s = 0; s < lengths.size(); ++s) {
    off64.push_back(Tn);
    off32.push_back(static_cast<int32_t>(Tn));
    for (int i = 0; i < lengths[s]; ++i) seq.push_back(static_cast<int32_t>(s));
    Tn += lengths[s];
    maxL = std::max(maxL, lengths[s]);
  }
  const std::vector<float> qkv = roundTo<T>(rnd(static_cast<size_t>(Tn) * 3 * H, -amp, amp));
  std::vector<float> ref(static_cast<size_t>(Tn) * H);
  cpu::AttnArgs a;
  a.q = qkv.data();
  a.k = qkv.data() + H;
  a.v = qkv.data() + 2 * H;
  a.ld_qkv = 3 * H;
  a.out = ref.data();
  a.ld_out = H;
  a.lengths = lengths.data();
  a.offsets = off64.data();
  a.batch = static_cast<int>(lengths.size());
  a.heads = heads;
  a.head_size = HS;
  a.max_len = maxL;
  a.scale = 1.0f / std::sqrt(static_cast<float>(HS));
  std::vector<float> scratch(cpu::attentionScratchPerThread(maxL, HS) * poolSize(g_pool) + 64);
  cpu::attention_ref(a, scratch.data(), g_pool);

  Dev<T> dqkv(toT<T>(qkv)), dout(ref.size());
  Dev<int32_t> dlen(std::vector<int32_t>(lengths.begin(), lengths.end())), doff(off32), dseq(seq);
  AttnParams<T> p;
  p.q = dqkv.p;
  p.k = dqkv.p + H;
  p.v = dqkv.p + 2 * H;
  p.ld_qkv = 3 * H;
  p.out = dout.p;
  p.ld_out = H;
  p.lengths = dlen.p;
  p.offsets = doff.p;
  p.seq_of_token = dseq.p;
  p.batch = a.batch;
  p.heads = heads;
  p.head_size = HS;
  p.max_len = maxL;
  p.tokens = Tn;
  p.scale = a.scale;
  cudaOps<T>().attention(p, 0, path);
  sync("attention");
  const std::vector<float> got = fromT(dout.down());
  std::string ls;
  for (size_t i = 0; i < lengths.size() && i < 6; ++i) ls += (i ? "," : "") + std::to_string(lengths[i]);
  if (lengths.size() > 6) ls += ",…";
  reportCmp(fmt("attention %s %s heads=%d hs=%d amp=%g lengths={%s}", TypeInfo<T>::name,
                path == 0 ? "generic" : (HS == 64 ? "hs64" : "generic"), heads, HS, amp, ls.c_str()),
            compare(got, ref, 2 * TypeInfo<T>::halfUlp * amp, TypeInfo<T>::rtol), got, ref);
}

template <typename T>
static void attentionSuite() {
  testAttention<T>({1}, 1, 64, 1.f, -1);
  testAttention<T>({2, 3, 1}, 2, 64, 1.f, -1);
  testAttention<T>({17, 64, 65}, 3, 64, 4.f, -1);
  testAttention<T>({128, 129, 1, 511}, 2, 64, 1.f, -1);
  testAttention<T>({512}, 12, 64, 4.f, -1);
  testAttention<T>({33, 7}, 12, 64, 8.f, -1);
  testAttention<T>({17, 64, 65}, 3, 64, 4.f, 0);  // forced generic path at head size 64
  for (int hs : {1, 16, 24, 32, 48, 80, 96, 128, 200}) testAttention<T>({1, 9, 70}, 2, hs, 2.f, -1);
}

// ---- embeddings + LayerNorm, residual + LayerNorm --------------------------------------------------------
template <typename T>
static void testEmbeddings(int H, const std::vector<int32_t>& lengths, int posOffset, bool withTypes) {
  const int V = 50, P = 96, TV = 2;
  const float eps = 1e-12f;
  int64_t Tn = 0;
  for (int L : lengths) Tn += L;
  std::vector<int32_t> ids(Tn), types(Tn), pos(Tn);
  std::uniform_int_distribution<int> di(0, V - 1), dt(0, TV - 1);
  int64_t t = 0;
  for (int L : lengths)
    for (int p = 0; p < L; ++p, ++t) {
      ids[t] = di(g_rng);
      types[t] = withTypes ? dt(g_rng) : 0;
      pos[t] = posOffset + p;
    }
  const std::vector<float> word = rnd(static_cast<size_t>(V) * H), ptab = rnd(static_cast<size_t>(P) * H);
  const std::vector<float> ttab = withTypes ? rnd(static_cast<size_t>(TV) * H) : std::vector<float>(TV * H, 0.f);
  const std::vector<float> g = rnd(H, 0.5f, 1.5f), b = rnd(H, -0.5f, 0.5f);
  std::vector<float> ref(static_cast<size_t>(Tn) * H);
  cpu::embeddings_sum_ref(ids.data(), types.data(), lengths.data(), static_cast<int>(lengths.size()), word.data(),
                          ptab.data() + static_cast<size_t>(posOffset) * H, ttab.data(), H, ref.data());
  cpu::add_layernorm_ref(ref.data(), nullptr, g.data(), b.data(), ref.data(), static_cast<int>(Tn), H, eps, g_pool);
  Dev<int32_t> dids(ids), dtypes(types), dpos(pos);
  Dev<float> dword(word), dptab(ptab), dttab(ttab), dg(g), db(b), dx(ref.size());
  Dev<T> dxh(ref.size());
  cudaOps<T>().embeddings_layernorm(dids.p, dtypes.p, dpos.p, Tn, dword.p, dptab.p, withTypes ? dttab.p : nullptr,
                                    dg.p, db.p, H, eps, dx.p, dxh.p, 0);
  sync("embeddings");
  const std::vector<float> x = dx.down(), xh = fromT(dxh.down());
  const std::string name = fmt("embeddings+LN %s H=%d tokens=%lld pos_offset=%d%s", TypeInfo<T>::name, H,
                               static_cast<long long>(Tn), posOffset, withTypes ? "" : " no-type-table");
  reportCmp(name + " f32", compare(x, ref, 1e-5, 1e-5), x, ref);
  reportCmp(name + " operand copy", compare(xh, ref, 1e-5, TypeInfo<T>::rtol), xh, ref);
}

template <typename T>
static void testAddLayerNorm(int M, int N, bool withRes, bool inPlace) {
  const float eps = 1e-5f;
  const std::vector<float> x = rnd(static_cast<size_t>(M) * N, -3.f, 3.f), r = rnd(static_cast<size_t>(M) * N);
  const std::vector<float> g = rnd(N, 0.5f, 1.5f), b = rnd(N, -0.5f, 0.5f);
  std::vector<float> ref(x.size());
  cpu::add_layernorm_ref(x.data(), withRes ? r.data() : nullptr, g.data(), b.data(), ref.data(), M, N, eps, g_pool);
  Dev<float> dx(x), dr(r), dg(g), db(b), dy(x.size());
  Dev<T> dyh(x.size());
  float* y = inPlace ? dx.p : dy.p;
  cudaOps<T>().add_layernorm(dx.p, withRes ? dr.p : nullptr, dg.p, db.p, y, dyh.p, M, N, eps, 0);
  sync("add_layernorm");
  const std::vector<float> got = inPlace ? dx.down() : dy.down(), goth = fromT(dyh.down());
  const std::string name = fmt("residual+LN %s M=%d N=%d%s%s", TypeInfo<T>::name, M, N, withRes ? " +res" : "",
                               inPlace ? " in-place" : "");
  reportCmp(name + " f32", compare(got, ref, 1e-5, 1e-5), got, ref);
  reportCmp(name + " operand copy", compare(goth, ref, 1e-5, TypeInfo<T>::rtol), goth, ref);
}

// ---- pooling, L2 normalise -------------------------------------------------------------------------------
static void testPooling(int H, const std::vector<int32_t>& lengths, uint32_t mode) {
  int64_t Tn = 0;
  std::vector<int32_t> off;
  for (int L : lengths) {
    off.push_back(static_cast<int32_t>(Tn));
    Tn += L;
  }
  int modes = 0;
  for (uint32_t m = mode; m; m &= m - 1) ++modes;
  const int B = static_cast<int>(lengths.size());
  const std::vector<float> h = rnd(static_cast<size_t>(Tn) * H, -2.f, 2.f);
  std::vector<float> ref(static_cast<size_t>(B) * H * modes);
  cpu::pooling_ref(h.data(), lengths.data(), B, H, mode, ref.data());
  Dev<float> dh(h), dout(ref.size());
  Dev<int32_t> dlen(lengths), doff(off);
  cudaOps<__half>().pooling(dh.p, dlen.p, doff.p, B, H, mode, dout.p, 0);
  sync("pooling");
  const std::vector<float> got = dout.down();
  reportCmp(fmt("pooling mode=%u H=%d batch=%d", mode, H, B), compare(got, ref, 1e-6, 1e-6), got, ref);
}

static void testL2(int rows, int cols, bool zeroRow) {
  std::vector<float> x = rnd(static_cast<size_t>(rows) * cols, -3.f, 3.f);
  if (zeroRow) std::fill(x.begin(), x.begin() + cols, 0.f);
  std::vector<float> ref = x;
  cpu::l2normalize_ref(ref.data(), rows, cols);
  Dev<float> dx(x), dy(x.size());
  cudaOps<__half>().l2normalize(dx.p, dy.p, rows, cols, 0);
  cudaOps<__half>().l2normalize(dx.p, dx.p, rows, cols, 0);  // in place
  sync("l2normalize");
  const std::vector<float> got = dy.down(), got2 = dx.down();
  reportCmp(fmt("l2normalize rows=%d cols=%d%s", rows, cols, zeroRow ? " (zero row)" : ""),
            compare(got, ref, 1e-7, 1e-6), got, ref);
  reportCmp(fmt("l2normalize in place rows=%d cols=%d", rows, cols), compare(got2, ref, 1e-7, 1e-6), got2, ref);
}

// ---- whole models through the loader (libkst_cuda.so) ----------------------------------------------------
static void testModel(int H, int heads, int layers, int I, const char* precision, double minCos,
                      ModelType type = ModelType::Bert) {
  const std::string path = kst_test::tempPath(fmt("kst-cuda-model-%d-%d", H, heads));
  kst_test::TinyModel tm = kst_test::writeTinyBert(path, H, heads, layers, I, 97, 80, 7, type);
  Options opt;
  opt.threads = 0;
  std::unique_ptr<Model> cpu = loadBert(tm.cfg, tm.src, opt);
  CudaOptions co;
  co.precision = precision;
  std::unique_ptr<Model> gpu, gpuEager;
  try {
    gpu = loadBertCuda(tm.cfg, tm.src, co);
    co.graphs = 0;
    gpuEager = loadBertCuda(tm.cfg, tm.src, co);
  } catch (const std::exception& e) {
    report(false, fmt("model %s H=%d heads=%d %s: load", modelTypeName(type), H, heads, precision), e.what());
    std::remove(path.c_str());
    return;
  }
  const int maxL = tm.cfg.maxSequenceLength();  // 80, or 77 for RoBERTa (positions start at pad_token_id + 1)
  const std::vector<std::vector<int32_t>> batches = {{1}, {7}, {1, 5, 17, 64, maxL, 2}, {maxL, maxL, maxL, 3}};
  std::uniform_int_distribution<int> di(0, tm.cfg.vocab_size - 1), dt(0, tm.cfg.type_vocab_size - 1);
  for (const auto& lengths : batches) {
    std::vector<int32_t> ids, types;
    for (int L : lengths)
      for (int i = 0; i < L; ++i) {
        ids.push_back(di(g_rng));
        types.push_back(dt(g_rng));
      }
    for (uint32_t pool : {uint32_t(POOL_MEAN), uint32_t(POOL_CLS | POOL_MAX | POOL_MEAN | POOL_MEAN_SQRT_LEN), 0u}) {
      for (bool norm : {false, true}) {
        EncodeRequest r;
        r.ids = ids.data();
        r.lengths = lengths.data();
        r.token_types = types.data();
        r.batch = static_cast<int>(lengths.size());
        r.total_tokens = ids.size();
        r.pooling = pool;
        r.normalize = norm;
        const int dim = cpu->outputDim(pool);
        const size_t rows = pool ? lengths.size() : ids.size();
        std::vector<float> a(rows * dim), b(a.size()), b2(a.size()), b3(a.size()), e(a.size());
        cpu->encode(r, a.data(), a.size());
        std::string err;
        try {
          gpu->encode(r, b.data(), b.size());   // eager (first sighting of this shape)
          gpu->encode(r, b2.data(), b.size());  // captured into a graph and launched
          gpu->encode(r, b3.data(), b.size());  // replayed
          gpuEager->encode(r, e.data(), e.size());
        } catch (const std::exception& x) {
          err = x.what();
        }
        const std::string name = fmt("model %s H=%d heads=%d layers=%d %s batch=%zu tokens=%zu pooling=%u%s",
                                     modelTypeName(type), H, heads, layers, precision, lengths.size(), ids.size(), pool, norm ? " normalized" : "");
        if (!err.empty()) {
          report(false, name, err);
          continue;
        }
        double worst = 1, maxAbs = 0;
        for (size_t s = 0; s < rows; ++s) worst = std::min(worst, kst_test::cosine(&a[s * dim], &b[s * dim], dim));
        for (size_t i = 0; i < a.size(); ++i) maxAbs = std::max(maxAbs, static_cast<double>(std::fabs(a[i] - b[i])));
        const bool same = std::memcmp(b.data(), b2.data(), b.size() * 4) == 0 &&
                          std::memcmp(b.data(), b3.data(), b.size() * 4) == 0 &&
                          std::memcmp(b.data(), e.data(), b.size() * 4) == 0;
        report(worst >= minCos && same, name,
               fmt("min cosine vs CPU %.7f (need %.4f), max|err| %.3g; graph replay %s", worst, minCos, maxAbs,
                   same ? "bit-identical to eager" : "DIFFERS from eager"));
      }
    }
  }
  std::remove(path.c_str());
}

// A kernel fault must poison the model: later calls fail instead of returning garbage. Bypasses the loader's
// input validation on purpose, so it runs last (the fault leaves the process's CUDA context unusable).
static void testStickyError() {
  const std::string path = kst_test::tempPath("kst-cuda-sticky");
  kst_test::TinyModel tm = kst_test::writeTinyBert(path, 64, 1, 1, 64);
  WeightFile wf(tm.src);
  const int H = 64, I = 64;
  kst_cuda_config c{};
  c.vocab_size = tm.cfg.vocab_size;
  c.hidden_size = H;
  c.num_layers = 1;
  c.num_heads = 1;
  c.intermediate_size = I;
  c.max_position_embeddings = tm.cfg.max_position_embeddings;
  c.type_vocab_size = 2;
  c.layer_norm_eps = 1e-12f;
  kst_cuda_layer L{};
  const std::string p = "encoder.layer.0.";
  L.q_w = wf.get(p + "attention.self.query.weight", {H, H});
  L.q_b = wf.get(p + "attention.self.query.bias", {H});
  L.k_w = wf.get(p + "attention.self.key.weight", {H, H});
  L.k_b = wf.get(p + "attention.self.key.bias", {H});
  L.v_w = wf.get(p + "attention.self.value.weight", {H, H});
  L.v_b = wf.get(p + "attention.self.value.bias", {H});
  L.o_w = wf.get(p + "attention.output.dense.weight", {H, H});
  L.o_b = wf.get(p + "attention.output.dense.bias", {H});
  L.ln1_g = wf.get(p + "attention.output.LayerNorm.weight", {H});
  L.ln1_b = wf.get(p + "attention.output.LayerNorm.bias", {H});
  L.i_w = wf.get(p + "intermediate.dense.weight", {I, H});
  L.i_b = wf.get(p + "intermediate.dense.bias", {I});
  L.out_w = wf.get(p + "output.dense.weight", {H, I});
  L.out_b = wf.get(p + "output.dense.bias", {H});
  L.ln2_g = wf.get(p + "output.LayerNorm.weight", {H});
  L.ln2_b = wf.get(p + "output.LayerNorm.bias", {H});
  kst_cuda_weights w{};
  w.word = wf.get("embeddings.word_embeddings.weight", {tm.cfg.vocab_size, H});
  w.pos = wf.get("embeddings.position_embeddings.weight", {tm.cfg.max_position_embeddings, H});
  w.type = wf.get("embeddings.token_type_embeddings.weight", {2, H});
  w.emb_ln_g = wf.get("embeddings.LayerNorm.weight", {H});
  w.emb_ln_b = wf.get("embeddings.LayerNorm.bias", {H});
  w.layers = &L;
  kst_cuda_options o{};
  o.use_graphs = 0;
  std::unique_ptr<CudaModel> m = createBert(c, w, o);
  std::vector<int32_t> ids = {1 << 28, 2, 3}, lengths = {3};
  kst_cuda_request r{};
  r.ids = ids.data();
  r.lengths = lengths.data();
  r.batch = 1;
  r.total_tokens = 3;
  r.pooling = 4;
  std::vector<float> out(H);
  std::string first, second;
  bool sticky = false;
  try {
    m->encode(r, out.data(), out.size());
  } catch (const CudaError& e) {
    first = e.what();
    sticky = e.sticky;
  }
  ids[0] = 1;
  try {
    m->encode(r, out.data(), out.size());
  } catch (const CudaError& e) {
    second = e.what();
  }
  report(!first.empty() && sticky, "sticky error: a kernel fault becomes a sticky CudaError", first);
  report(second.find("unusable") != std::string::npos, "sticky error: later calls on the model fail", second);
  std::remove(path.c_str());
}

// ---- benchmarks (not tests) ------------------------------------------------------------------------------
// Uniform(-1, 1) pseudo-random fill on the device (host generation of 10^8 values would dominate the bench).
template <typename T>
__global__ void fill_kernel(T* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    p[i] = fromFloat<T>(static_cast<float>(h) * (2.0f / 4294967296.0f) - 1.0f);
  }
}
template <typename T>
static void fill(Dev<T>& d, uint32_t seed) {
  fill_kernel<T><<<1024, 256>>>(d.p, d.n, seed);
  sync("fill");
}

template <typename T>
static double timeGemm(int M, int N, int K, int cfg, int iters) {
  Dev<T> A(static_cast<size_t>(M) * K), W(static_cast<size_t>(N) * K);
  fill(A, 1);
  fill(W, 2);
  Dev<T> out(static_cast<size_t>(M) * N);
  Dev<float> bias(rnd(N));
  GemmEpilogue ep;
  ep.bias = bias.p;
  ep.out_h = out.p;
  for (int i = 0; i < 3; ++i) cudaOps<T>().gemm(A.p, W.p, M, N, K, ep, 0, cfg);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaEventRecord(e0);
  for (int i = 0; i < iters; ++i) cudaOps<T>().gemm(A.p, W.p, M, N, K, ep, 0, cfg);
  cudaEventRecord(e1);
  sync("bench gemm");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * M * N * K * iters / (ms * 1e-3) / 1e12;
}

template <typename T>
static void benchAttention(int B, int L) {
  const int heads = 12, HS = 64, H = heads * HS;
  const int64_t Tn = static_cast<int64_t>(B) * L;
  Dev<T> qkv(static_cast<size_t>(Tn) * 3 * H), out(static_cast<size_t>(Tn) * H);
  fill(qkv, 3);
  std::vector<int32_t> len(B, L), off(B), seq(Tn);
  for (int s = 0; s < B; ++s) {
    off[s] = s * L;
    for (int i = 0; i < L; ++i) seq[s * L + i] = s;
  }
  Dev<int32_t> dl(len), doff(off), dseq(seq);
  AttnParams<T> p;
  p.q = qkv.p;
  p.k = qkv.p + H;
  p.v = qkv.p + 2 * H;
  p.ld_qkv = 3 * H;
  p.out = out.p;
  p.ld_out = H;
  p.lengths = dl.p;
  p.offsets = doff.p;
  p.seq_of_token = dseq.p;
  p.batch = B;
  p.heads = heads;
  p.head_size = HS;
  p.max_len = L;
  p.tokens = Tn;
  p.scale = 0.125f;
  for (int i = 0; i < 3; ++i) cudaOps<T>().attention(p, 0, -1);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  const int iters = 20;
  cudaEventRecord(e0);
  for (int i = 0; i < iters; ++i) cudaOps<T>().attention(p, 0, -1);
  cudaEventRecord(e1);
  sync("bench attention");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  const double flops = 4.0 * B * static_cast<double>(L) * L * HS * heads * iters;
  std::printf("{\"bench\":\"attention\",\"dtype\":\"%s\",\"batch\":%d,\"len\":%d,\"us\":%.2f,\"tflops\":%.2f}\n",
              TypeInfo<T>::name, B, L, ms * 1e3 / iters, flops / (ms * 1e-3) / 1e12);
}

static int bench() {
  // GEMM shapes of BERT-base at >= 4,096 tokens: FFN in (N=3072, K=768), FFN out (768, 3072), QKV, attention out.
  struct S { int N, K; };
  for (int M : {4096, 8192, 16384})
    for (S s : {S{3072, 768}, S{768, 3072}, S{2304, 768}, S{768, 768}}) {
      std::printf("{\"bench\":\"gemm\",\"M\":%d,\"N\":%d,\"K\":%d,\"fp16\":%.1f,\"bf16\":%.1f", M, s.N, s.K,
                  timeGemm<__half>(M, s.N, s.K, GEMM_AUTO, 20), timeGemm<__nv_bfloat16>(M, s.N, s.K, GEMM_AUTO, 20));
      if (M == 8192)
        for (int c : {GEMM_128x128, GEMM_64x128, GEMM_64x64, GEMM_32x64, GEMM_32x32, GEMM_128x256, GEMM_128x128_K64})
          std::printf(",\"bf16_%s\":%.1f", gemmConfigName(c), timeGemm<__nv_bfloat16>(M, s.N, s.K, c, 10));
      std::printf("}\n");
      std::fflush(stdout);
    }
  for (int M : {16, 32, 128, 512})
    for (S s : {S{3072, 768}, S{768, 3072}, S{2304, 768}})
      std::printf("{\"bench\":\"gemm\",\"M\":%d,\"N\":%d,\"K\":%d,\"fp16\":%.2f}\n", M, s.N, s.K,
                  timeGemm<__half>(M, s.N, s.K, GEMM_AUTO, 50));
  for (int B : {1, 32, 256})
    for (int L : {16, 128}) benchAttention<__half>(B, L);
  return 0;
}

int main(int argc, char** argv) {
  bool requireGpu = false, benchMode = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--require-gpu")) requireGpu = true;
    else if (!std::strcmp(argv[i], "--bench")) benchMode = true;
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else {
      std::fprintf(stderr, "usage: test_cuda_ops [--require-gpu] [--quick] [--bench]\n");
      return 2;
    }
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    std::printf("SKIP: no usable CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
    return requireGpu ? 2 : 77;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int drv = 0;
  cudaDriverGetVersion(&drv);
  std::printf("# device 0: %s, sm_%d%d, %d SMs, driver CUDA %d.%d\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, drv / 1000, (drv % 1000) / 10);
  if (prop.major < 8) {
    std::printf("SKIP: sm_%d%d is older than sm_80\n", prop.major, prop.minor);
    return requireGpu ? 2 : 77;
  }
  try {
    prepareOps();
  } catch (const std::exception& x) {
    std::printf("FAIL prepareOps: %s\n", x.what());
    return 1;
  }
  if (benchMode) return bench();
  if (!std::getenv("KST_CUDA_LIBRARY") && std::strlen(KST_CUDA_LIBRARY_PATH) > 0)
    setenv("KST_CUDA_LIBRARY", KST_CUDA_LIBRARY_PATH, 1);
  ThreadPool pool(0);
  g_pool = &pool;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (size_t nconv : {size_t(1), size_t(7), size_t(1000), size_t(70001)}) {
      testConvert<__half>(nconv);
      testConvert<__nv_bfloat16>(nconv);
    }
    gemmSuite<__half>();
    gemmSuite<__nv_bfloat16>();
    attentionSuite<__half>();
    attentionSuite<__nv_bfloat16>();
    for (int H : {1, 31, 64, 100, 768})
      for (auto lengths : {std::vector<int32_t>{1}, std::vector<int32_t>{3, 17, 1}}) {
        testEmbeddings<__half>(H, lengths, 0, true);
        testEmbeddings<__nv_bfloat16>(H, lengths, 2, true);
      }
    testEmbeddings<__half>(64, {5, 9}, 0, false);
    for (int M : {1, 3, 257})
      for (int N : {1, 31, 64, 768, 1000}) {
        testAddLayerNorm<__half>(M, N, true, false);
        testAddLayerNorm<__nv_bfloat16>(M, N, M != 3, M == 3);
      }
    for (uint32_t mode = 1; mode < 16; ++mode) testPooling(mode % 3 ? 64 : 130, {1, 5, 33}, mode);
    testPooling(768, {1, 512, 2}, POOL_MEAN);
    testPooling(1, {4}, POOL_MAX | POOL_MEAN);
    for (int cols : {1, 7, 768, 3072}) testL2(3, cols, cols == 7);
    testModel(128, 2, 2, 200, "fp16", 0.9999);  // head size 64: tensor-core attention
    testModel(96, 4, 2, 150, "fp16", 0.9999);   // head size 24: generic attention
    testModel(128, 2, 2, 200, "fp16", 0.9999, ModelType::Roberta);
    testModel(128, 2, 2, 200, "fp16", 0.9999, ModelType::DistilBert);
    if (!quick) {
      testModel(128, 2, 2, 200, "bf16", 0.999);
      testModel(256, 4, 3, 512, "fp16", 0.9999);
    }
    testStickyError();  // last: leaves the CUDA context unusable
  } catch (const std::exception& x) {
    report(false, "unexpected exception", x.what());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d passed, %d failed (%.1f s)\n", g_pass, g_fail, secs);
  return g_fail ? 1 : 0;
}
