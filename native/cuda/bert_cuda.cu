#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "backend_cuda.cuh"
#include "bert_cuda.cuh"
#include "graph.cuh"
#include "memory_pool.cuh"

namespace kst {
namespace cuda {
namespace {

int popcount4(uint32_t m) {
  int n = 0;
  for (m &= 0xF; m; m &= m - 1) ++n;
  return n;
}

template <typename T>
class BertCuda final : public CudaModel {
 public:
  BertCuda(const kst_cuda_config& cfg, const kst_cuda_weights& w, const kst_cuda_options& opt);
  ~BertCuda() override;
  void encode(const kst_cuda_request& req, float* out, size_t out_len) override;

 private:
  struct Layer {
    T *wqkv, *wo, *wi, *wout;
    float *bqkv, *bo, *ln1g, *ln1b, *bi, *bout, *ln2g, *ln2b;
  };
  // Pointers into the workspace for one call (B sequences, T tokens).
  struct Slots {
    int32_t *ints, *ids, *types, *pos, *seq, *lengths, *offsets;
    float *x, *tmp, *out;
    T *xh, *qkv, *ctx, *inter;
  };

  void run(const kst_cuda_request& req, float* out, size_t out_len);
  Slots layout(char* base, int64_t tcap, int64_t bcap, int64_t tokens, int B, size_t* bytes) const;
  void forward(const Slots& s, int B, int64_t tokens, int max_len, uint32_t pooling, bool normalize, cudaStream_t st);
  void dump(const char* name, const float* d, int64_t rows, int64_t cols);

  const CudaOps<T>& ops_;
  kst_cuda_config cfg_;
  int dev_;
  int H_, I_, NH_, HS_;
  cudaStream_t stream_ = nullptr;
  DeviceArena arena_;
  float *word_ = nullptr, *pos_ = nullptr, *type_ = nullptr, *emb_g_ = nullptr, *emb_b_ = nullptr;
  std::vector<Layer> layers_;

  std::mutex mu_;
  std::string broken_;  // the sticky error that made this model unusable
  Workspace ws_;
  PinnedBuffer pinned_;
  int64_t tcap_ = 0, bcap_ = 0;
  uint64_t layout_gen_ = 0;
  GraphCache graphs_;
  std::string dump_dir_;
  int dump_seq_ = 0;
};

template <typename T>
BertCuda<T>::BertCuda(const kst_cuda_config& cfg, const kst_cuda_weights& w, const kst_cuda_options& opt)
    : ops_(cudaOps<T>()), cfg_(cfg), dev_(opt.device), graphs_(opt.use_graphs != 0) {
  H_ = cfg.hidden_size;
  I_ = cfg.intermediate_size;
  NH_ = cfg.num_heads;
  if (H_ <= 0 || I_ <= 0 || NH_ <= 0 || H_ % NH_ != 0 || cfg.num_layers < 0 || cfg.vocab_size <= 0 ||
      cfg.max_position_embeddings <= 0)
    throw CudaError("CUDA BERT: invalid configuration", false);
  HS_ = H_ / NH_;
  if (HS_ > kAttnMaxHeadSize)
    throw CudaError("CUDA BERT: head size " + std::to_string(HS_) + " is larger than the CUDA attention supports (" +
                        std::to_string(kAttnMaxHeadSize) + ")",
                    false);
  if (!w.word || !w.pos || !w.emb_ln_g || !w.emb_ln_b || (cfg.num_layers > 0 && !w.layers))
    throw CudaError("CUDA BERT: missing embedding weights", false);
  if (const char* d = std::getenv("KST_DUMP")) dump_dir_ = d;

  KST_CUDA_CHECK(cudaSetDevice(dev_));
  prepareOps();
  KST_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

  const size_t h = H_, in = I_, V = cfg.vocab_size, P = cfg.max_position_embeddings;
  const size_t TV = w.type ? static_cast<size_t>(cfg.type_vocab_size) : 0;
  // Sizes first (a Carver over null), then one allocation.
  auto plan = [&](Carver& c) {
    c.take<float>(V * h);
    c.take<float>(P * h);
    if (TV) c.take<float>(TV * h);
    c.take<float>(h);
    c.take<float>(h);
    for (int l = 0; l < cfg.num_layers; ++l) {
      c.take<T>(3 * h * h);
      c.take<T>(h * h);
      c.take<T>(in * h);
      c.take<T>(h * in);
      c.take<float>(3 * h);
      c.take<float>(h);
      c.take<float>(h);
      c.take<float>(h);
      c.take<float>(in);
      c.take<float>(h);
      c.take<float>(h);
      c.take<float>(h);
    }
  };
  Carver sizer(nullptr);
  plan(sizer);
  arena_.reserve(sizer.size());

  auto upF32 = [&](const float* src, size_t n, const char* what) {
    if (!src) throw CudaError(std::string("CUDA BERT: missing weight ") + what, false);
    float* d = arena_.alloc<float>(n);
    KST_CUDA_CHECK(cudaMemcpy(d, src, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
  };
  word_ = upF32(w.word, V * h, "word_embeddings");
  pos_ = upF32(w.pos, P * h, "position_embeddings");
  if (TV) type_ = upF32(w.type, TV * h, "token_type_embeddings");
  emb_g_ = upF32(w.emb_ln_g, h, "embeddings.LayerNorm.weight");
  emb_b_ = upF32(w.emb_ln_b, h, "embeddings.LayerNorm.bias");

  // Linear weights: fp32 to a staging buffer, then converted once into the arena.
  float* staging = nullptr;
  KST_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&staging), std::max(3 * h * h, in * h) * sizeof(float)));
  try {
    auto upT = [&](std::initializer_list<const float*> parts, size_t each, const char* what) {
      T* d = arena_.alloc<T>(each * parts.size());
      size_t off = 0;
      for (const float* p : parts) {
        if (!p) throw CudaError(std::string("CUDA BERT: missing weight ") + what, false);
        KST_CUDA_CHECK(cudaMemcpy(staging + off, p, each * sizeof(float), cudaMemcpyHostToDevice));
        off += each;
      }
      ops_.convert(staging, d, off, stream_);
      KST_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return d;
    };
    layers_.resize(cfg.num_layers);
    for (int l = 0; l < cfg.num_layers; ++l) {
      const kst_cuda_layer& s = w.layers[l];
      Layer& L = layers_[l];
      L.wqkv = upT({s.q_w, s.k_w, s.v_w}, h * h, "attention q/k/v");
      L.wo = upT({s.o_w}, h * h, "attention output dense");
      L.wi = upT({s.i_w}, in * h, "intermediate dense");
      L.wout = upT({s.out_w}, h * in, "output dense");
      L.bqkv = arena_.alloc<float>(3 * h);
      for (int j = 0; j < 3; ++j) {
        const float* b = j == 0 ? s.q_b : j == 1 ? s.k_b : s.v_b;
        if (!b) throw CudaError("CUDA BERT: missing attention q/k/v bias", false);
        KST_CUDA_CHECK(cudaMemcpy(L.bqkv + j * h, b, h * sizeof(float), cudaMemcpyHostToDevice));
      }
      L.bo = upF32(s.o_b, h, "attention output bias");
      L.ln1g = upF32(s.ln1_g, h, "attention LayerNorm weight");
      L.ln1b = upF32(s.ln1_b, h, "attention LayerNorm bias");
      L.bi = upF32(s.i_b, in, "intermediate bias");
      L.bout = upF32(s.out_b, h, "output bias");
      L.ln2g = upF32(s.ln2_g, h, "output LayerNorm weight");
      L.ln2b = upF32(s.ln2_b, h, "output LayerNorm bias");
    }
  } catch (...) {
    cudaFree(staging);
    throw;
  }
  KST_CUDA_CHECK(cudaFree(staging));
}

template <typename T>
BertCuda<T>::~BertCuda() {
  cudaSetDevice(dev_);
  if (stream_) cudaStreamSynchronize(stream_);
  graphs_.clear();
  if (stream_) cudaStreamDestroy(stream_);
}

template <typename T>
typename BertCuda<T>::Slots BertCuda<T>::layout(char* base, int64_t tcap, int64_t bcap, int64_t T_, int B,
                                                size_t* bytes) const {
  Carver c(base);
  Slots s;
  // The per-call integers are packed by the actual T and B (one copy of exactly what is used).
  s.ints = c.take<int32_t>(4 * tcap + 2 * bcap);
  if (s.ints) {
    s.ids = s.ints;
    s.types = s.ids + T_;
    s.pos = s.types + T_;
    s.seq = s.pos + T_;
    s.lengths = s.seq + T_;
    s.offsets = s.lengths + B;
  }
  s.x = c.take<float>(tcap * H_);
  s.tmp = c.take<float>(tcap * H_);
  s.out = c.take<float>(std::max(bcap * 4 * H_, tcap * H_));
  s.xh = c.take<T>(tcap * H_);
  s.qkv = c.take<T>(tcap * 3 * H_);
  s.ctx = c.take<T>(tcap * H_);
  s.inter = c.take<T>(tcap * I_);
  if (bytes) *bytes = c.size();
  return s;
}

template <typename T>
void BertCuda<T>::dump(const char* name, const float* d, int64_t rows, int64_t cols) {
  std::vector<float> h(static_cast<size_t>(rows * cols));
  KST_CUDA_CHECK(cudaStreamSynchronize(stream_));
  KST_CUDA_CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
  const std::string base = dump_dir_ + "/" + std::to_string(dump_seq_) + "." + name;
  if (FILE* f = std::fopen((base + ".f32").c_str(), "wb")) {
    std::fwrite(h.data(), sizeof(float), h.size(), f);
    std::fclose(f);
  }
  if (FILE* f = std::fopen((dump_dir_ + "/manifest.tsv").c_str(), "a")) {
    std::fprintf(f, "%d\t%s\t%lld\t%lld\n", dump_seq_, name, static_cast<long long>(rows),
                 static_cast<long long>(cols));
    std::fclose(f);
  }
}

template <typename T>
void BertCuda<T>::forward(const Slots& s, int B, int64_t T_, int max_len, uint32_t pooling, bool normalize,
                          cudaStream_t st) {
  const int M = static_cast<int>(T_), H = H_, I = I_;
  const float eps = cfg_.layer_norm_eps;
  const bool dumping = !dump_dir_.empty();
  ops_.embeddings_layernorm(s.ids, s.types, s.pos, T_, word_, pos_, type_, emb_g_, emb_b_, H, eps, s.x, s.xh, st);
  if (dumping) dump("embeddings", s.x, T_, H);

  AttnParams<T> ap;
  ap.q = s.qkv;
  ap.k = s.qkv + H;
  ap.v = s.qkv + 2 * H;
  ap.ld_qkv = 3 * H;
  ap.out = s.ctx;
  ap.ld_out = H;
  ap.lengths = s.lengths;
  ap.offsets = s.offsets;
  ap.seq_of_token = s.seq;
  ap.batch = B;
  ap.heads = NH_;
  ap.head_size = HS_;
  ap.max_len = max_len;
  ap.tokens = T_;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(HS_));
  const int act = cfg_.activation == KST_CUDA_ACT_GELU_TANH ? GEMM_ACT_GELU_TANH : GEMM_ACT_GELU;

  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    const bool last = li + 1 == layers_.size();
    // self-attention: fused Q/K/V projection, then attention per (sequence, head)
    GemmEpilogue e_qkv;
    e_qkv.bias = L.bqkv;
    e_qkv.out_h = s.qkv;
    ops_.gemm(s.xh, L.wqkv, M, 3 * H, H, e_qkv, st, GEMM_AUTO);
    ops_.attention(ap, st, -1);
    // self-output: dense + bias + residual, LayerNorm
    GemmEpilogue e_o;
    e_o.bias = L.bo;
    e_o.residual = s.x;
    e_o.out_f32 = s.tmp;
    ops_.gemm(s.ctx, L.wo, M, H, H, e_o, st, GEMM_AUTO);
    ops_.add_layernorm(s.tmp, nullptr, L.ln1g, L.ln1b, s.x, s.xh, M, H, eps, st);
    if (dumping) dump(("encoder.layer." + std::to_string(li) + ".attention.output").c_str(), s.x, T_, H);
    // intermediate: dense + bias + GELU
    GemmEpilogue e_i;
    e_i.bias = L.bi;
    e_i.act = act;
    e_i.out_h = s.inter;
    ops_.gemm(s.xh, L.wi, M, I, H, e_i, st, GEMM_AUTO);
    // output: dense + bias + residual, LayerNorm
    GemmEpilogue e_out;
    e_out.bias = L.bout;
    e_out.residual = s.x;
    e_out.out_f32 = s.tmp;
    ops_.gemm(s.inter, L.wout, M, H, I, e_out, st, GEMM_AUTO);
    ops_.add_layernorm(s.tmp, nullptr, L.ln2g, L.ln2b, s.x, last ? nullptr : s.xh, M, H, eps, st);
    if (dumping) {
      const std::string p = "encoder.layer." + std::to_string(li) + ".output";
      dump(p.c_str(), s.x, T_, H);
    }
  }
  if (pooling) {
    const int dim = H * popcount4(pooling);
    ops_.pooling(s.x, s.lengths, s.offsets, B, H, pooling, s.out, st);
    if (normalize) ops_.l2normalize(s.out, s.out, B, dim, st);
    if (dumping) dump("output", s.out, B, dim);
  } else {
    if (normalize) ops_.l2normalize(s.x, s.out, T_, H, st);
    if (dumping) dump("output", normalize ? s.out : s.x, T_, H);
  }
}

template <typename T>
void BertCuda<T>::run(const kst_cuda_request& req, float* out, size_t out_len) {
  const int B = req.batch;
  const int64_t T_ = req.total_tokens;
  if (B <= 0) return;
  if (!req.ids || !req.lengths || !out) throw CudaError("kst_cuda_encode: null ids, lengths or out", false);
  const int dim = req.pooling ? H_ * popcount4(req.pooling) : H_;
  const int64_t rows = req.pooling ? B : T_;
  if (out_len != static_cast<size_t>(rows) * dim)
    throw CudaError("kst_cuda_encode: out_len " + std::to_string(out_len) + " != " + std::to_string(rows) + " x " +
                        std::to_string(dim),
                    false);
  KST_CUDA_CHECK(cudaSetDevice(dev_));
  cudaGetLastError();  // a stale non-sticky error left on this (pool) thread by other code is not ours

  int max_len = 0;
  for (int s = 0; s < B; ++s) max_len = std::max(max_len, static_cast<int>(req.lengths[s]));

  // Workspace for at least T tokens and B sequences (grown geometrically; a new layout drops the graphs).
  if (T_ > tcap_ || B > bcap_) {
    int64_t tc = std::max<int64_t>(T_, tcap_ + tcap_ / 2);
    tc = (tc + 63) / 64 * 64;
    int64_t bc = std::max<int64_t>(B, bcap_ + bcap_ / 2);
    bc = (bc + 15) / 16 * 16;
    size_t bytes = 0;
    layout(nullptr, tc, bc, 0, 0, &bytes);
    graphs_.clear();
    ++layout_gen_;
    tcap_ = bcap_ = 0;         // stays 0 if the allocation below fails (out of memory): retried next call
    ws_.ensure(bytes, stream_);
    tcap_ = tc;
    bcap_ = bc;
  }
  const Slots s = layout(ws_.base(), tcap_, bcap_, T_, B, nullptr);

  // Inputs: ids, types, positions, sequence of each token, lengths, offsets → one pinned block → one copy.
  const size_t nints = static_cast<size_t>(4 * T_ + 2 * B);
  const size_t out_bytes = static_cast<size_t>(rows) * dim * sizeof(float);
  const size_t in_bytes = alignUp(nints * sizeof(int32_t));
  pinned_.ensure(in_bytes + out_bytes, stream_);
  int32_t* hi = static_cast<int32_t*>(pinned_.data());
  float* ho = reinterpret_cast<float*>(static_cast<char*>(pinned_.data()) + in_bytes);
  std::memcpy(hi, req.ids, T_ * sizeof(int32_t));
  if (req.token_types) std::memcpy(hi + T_, req.token_types, T_ * sizeof(int32_t));
  else std::memset(hi + T_, 0, T_ * sizeof(int32_t));
  int32_t* hpos = hi + 2 * T_;
  int32_t* hseq = hi + 3 * T_;
  int32_t* hlen = hi + 4 * T_;
  int32_t* hoff = hlen + B;
  int64_t t = 0;
  for (int q = 0; q < B; ++q) {
    const int L = req.lengths[q];
    hlen[q] = L;
    hoff[q] = static_cast<int32_t>(t);
    for (int p = 0; p < L; ++p, ++t) {
      hpos[t] = cfg_.position_offset + p;
      hseq[t] = q;
    }
  }
  if (t != T_) throw CudaError("kst_cuda_encode: total_tokens != sum(lengths)", false);
  KST_CUDA_CHECK(cudaMemcpyAsync(s.ints, hi, nints * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));

  const bool normalize = req.normalize != 0;
  if (!dump_dir_.empty()) {
    forward(s, B, T_, max_len, req.pooling, normalize, stream_);
    ++dump_seq_;
  } else {
    GraphKey key;
    key.batch = B;
    key.tokens = T_;
    key.max_len = max_len;
    key.pooling = req.pooling;
    key.normalize = normalize;
    key.layout = layout_gen_;
    graphs_.run(key, stream_, [&](cudaStream_t st) { forward(s, B, T_, max_len, req.pooling, normalize, st); });
  }
  const float* src = (req.pooling || normalize) ? s.out : s.x;
  KST_CUDA_CHECK(cudaMemcpyAsync(ho, src, out_bytes, cudaMemcpyDeviceToHost, stream_));
  KST_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(out, ho, out_bytes);
}

template <typename T>
void BertCuda<T>::encode(const kst_cuda_request& req, float* out, size_t out_len) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.empty())
    throw CudaError("the CUDA model is unusable after an earlier error (load it again): " + broken_, true);
  try {
    run(req, out, out_len);
  } catch (const CudaError& e) {
    if (e.sticky) broken_ = e.what();
    throw;
  }
}

}  // namespace

std::unique_ptr<CudaModel> createBert(const kst_cuda_config& cfg, const kst_cuda_weights& w,
                                      const kst_cuda_options& opt) {
  if (opt.precision == KST_CUDA_BF16) return std::unique_ptr<CudaModel>(new BertCuda<__nv_bfloat16>(cfg, w, opt));
  if (opt.precision == KST_CUDA_FP16) return std::unique_ptr<CudaModel>(new BertCuda<__half>(cfg, w, opt));
  throw CudaError("kst_cuda_create: unknown precision " + std::to_string(opt.precision), false);
}

}  // namespace cuda
}  // namespace kst
