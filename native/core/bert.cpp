// BERT forward pass mirroring Hugging Face modeling_bert.py (BertEmbeddings → BertEncoder of BertLayer:
// BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput), with the HF weight keys verbatim,
// and its two siblings with the same math: RoBERTa / XLM-R (modeling_roberta.py: BERT names, positions from
// pad_token_id + 1) and DistilBERT (modeling_distilbert.py: q_lin/k_lin/v_lin/out_lin, sa_layer_norm,
// ffn.lin1/lin2, output_layer_norm, no token types),
// followed by sentence-transformers Pooling and optional Normalize. Sequences are packed end to end.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kst.h"
#include "ops.h"
#include "ref.h"
#include "threadpool.h"
#include "weights.h"

namespace kst {
namespace {

using cpu::PackedWeight;

// Once a weight is packed the SIMD path reads only the packed copy: hand the raw pages back to the kernel so
// they stop counting in RSS (file-backed pages of the mapping are re-read from the page cache if ever touched
// again; a converted heap copy is not read again). Only whole pages inside [p, p + bytes) are released.
void dropPages(const void* p, size_t bytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

int popcount4(uint32_t m) {
  int n = 0;
  for (m &= 0xF; m; m &= m - 1) ++n;
  return n;
}

class BertModel final : public Model {
 public:
  BertModel(const BertConfig& cfg, const WeightsSource& ws, const Options& opt);
  const BertConfig& config() const override { return cfg_; }
  Isa isa() const override { return isa_; }
  int threads() const override { return pool_->size(); }
  const char* precision() const override { return bf16_ ? "bf16" : int8_ ? "int8" : "fp32"; }
  std::string precisionNote() const override { return precision_note_; }
  int outputDim(uint32_t pooling) const override;
  void encode(const EncodeRequest& req, float* out, size_t out_len) override;

 private:
  struct Layer {
    std::vector<float> qkv_w;  // [3H, H]: query, key, value weights stacked (raw for the scalar path)
    std::vector<float> qkv_b;  // [3H]
    PackedWeight qkv, attn_out, inter, out;
    const float *attn_out_b, *ln1_g, *ln1_b, *inter_b, *out_b, *ln2_g, *ln2_b;
  };

  void validate(const EncodeRequest& req, size_t out_len) const;
  void dump(const std::string& name, const float* p, size_t rows, size_t cols);
  void linear(PackedWeight& w, const std::string& prefix, int N, int K, const float** bias);
  void releaseRaw(const std::string& name, const float* p, size_t bytes);
  void packWeight(PackedWeight& w) {
    w.arena = &arena_;  // every packed weight of the model in one huge-page arena, in forward order
    if (bf16_) {
      ops_->pack_bf16(w);
    } else if (int8_) {
      ops_->pack_int8(w);
    } else {
      ops_->pack(w);
    }
    // The GEMMs' per-call copy of x (int8: the quantised activations; fp32 AVX-512 from 25 rows: x packed in row
    // tiles), one buffer for every GEMM of this model (encode() is serialised), so the hot path does not allocate.
    w.act_scratch = &act_scratch_;
  }

  BertConfig cfg_;
  Isa isa_;
  const cpu::Ops* ops_;
  bool bf16_ = false;  // precision 'bf16' requested and the CPU has AVX512_BF16
  bool int8_ = false;  // precision 'int8' requested and the CPU has AVX512-VNNI (or AVX-VNNI at the avx2 level)
  std::string precision_note_;  // why the precision asked for is not the one that runs ('' when it is)
  std::unique_ptr<ThreadPool> pool_;
  WeightFile wf_;
  cpu::WeightArena arena_;  // the packed weights (PackedWeight::arena); declared before layers_ so it outlives them
  const float *word_, *pos_, *pos_start_, *type_, *emb_ln_g_, *emb_ln_b_;
  std::vector<float> zero_type_;  // DistilBERT: stands in for the token type table
  std::vector<Layer> layers_;

  std::mutex mu_;  // serialises encode(); guards the buffers below
  std::vector<float> x_, qkv_, ctx_, tmp_, inter_;
  std::vector<int64_t> offsets_;
  cpu::AlignedBuffer scratch_;
  cpu::AlignedBuffer act_scratch_;  // PackedWeight::act_scratch of every layer, grown to the largest M × K seen
  std::string dump_dir_;
  int dump_seq_ = 0;
};

void BertModel::releaseRaw(const std::string& name, const float* p, size_t bytes) {
  const TensorSpec* t = wf_.find(name);
  if (t && t->dtype == DType::F32) dropPages(p, bytes);  // F32 tensors: pages of the file mapping
}

void BertModel::linear(PackedWeight& w, const std::string& prefix, int N, int K, const float** bias) {
  w.raw = wf_.get(prefix + ".weight", {N, K});
  w.N = N;
  w.K = K;
  *bias = wf_.get(prefix + ".bias", {N});
  packWeight(w);
  if (w.nr > 0) releaseRaw(prefix + ".weight", w.raw, static_cast<size_t>(N) * K * sizeof(float));
}

BertModel::BertModel(const BertConfig& cfg, const WeightsSource& ws, const Options& opt)
    : cfg_(cfg), isa_(effectiveIsa(opt.isa)), ops_(&cpu::opsFor(isa_)), wf_(ws) {
  cfg_.validate();
  if (opt.threads < 0) throw Error("Options.threads must be >= 0, got " + std::to_string(opt.threads));
  pool_.reset(new ThreadPool(opt.threads));
  {
    std::string prec = opt.precision;
    const char* where = "Options.precision";
    if (prec.empty()) {
      const char* e = std::getenv("KST_PRECISION");
      prec = e && *e ? e : "fp32";
      if (e && *e) where = "environment variable KST_PRECISION";
    }
    if (prec != "fp32" && prec != "bf16" && prec != "int8")
      throw Error(std::string(where) + ": unknown precision '" + prec + "' (expected fp32, bf16 or int8)");
    // Otherwise fp32: a clean fallback, reported by precision() and precisionNote().
    bf16_ = prec == "bf16" && ops_->pack_bf16 != nullptr;
    int8_ = prec == "int8" && ops_->pack_int8 != nullptr;
    if (prec == "bf16" && !bf16_)
      precision_note_ = std::string("precision 'bf16' needs AVX512-BF16 and the avx512 kernels (running ") +
                        isaName(isa_) + "): running fp32";
    if (prec == "int8" && !int8_)
      precision_note_ = std::string("precision 'int8' needs AVX512-VNNI (avx512 kernels) or AVX-VNNI (avx2 kernels); "
                                    "this CPU / instruction set (") + isaName(isa_) + ") has neither: running fp32";
    // The int8 GEMMs sum u8 x s8 products over K in int32: |sum| <= 255 * 127 * K, exact only for K <= 66,311.
    // K is hidden_size or intermediate_size; past the bound run fp32 rather than return wrapped sums.
    constexpr int kInt8MaxK = 65536;
    if (int8_ && (cfg_.hidden_size > kInt8MaxK || cfg_.intermediate_size > kInt8MaxK)) {
      int8_ = false;
      precision_note_ = "precision 'int8' sums in int32, exact up to K = " + std::to_string(kInt8MaxK) +
                        "; this model's hidden_size / intermediate_size is larger: running fp32";
    }
  }
  const int H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const bool distil = cfg_.model_type == ModelType::DistilBert;
  word_ = wf_.get("embeddings.word_embeddings.weight", {cfg_.vocab_size, H});
  pos_ = wf_.get("embeddings.position_embeddings.weight", {cfg_.max_position_embeddings, H});
  if (distil) {
    // DistilBERT's Embeddings has no token_type_embeddings: a zero row makes (word + 0) + pos == word + pos.
    zero_type_.assign(static_cast<size_t>(H), 0.f);
    type_ = zero_type_.data();
  } else {
    type_ = wf_.get("embeddings.token_type_embeddings.weight", {cfg_.type_vocab_size, H});
  }
  // RoBERTa: position ids of an unpadded sequence are pad_token_id + 1 + i; start the table there.
  pos_start_ = cfg_.model_type == ModelType::Roberta ? pos_ + static_cast<size_t>(cfg_.pad_token_id + 1) * H : pos_;
  emb_ln_g_ = wf_.get("embeddings.LayerNorm.weight", {H});
  emb_ln_b_ = wf_.get("embeddings.LayerNorm.bias", {H});
  layers_.resize(cfg_.num_hidden_layers);
  for (int i = 0; i < cfg_.num_hidden_layers; ++i) {
    Layer& L = layers_[i];
    // HF module names per architecture (modeling_bert.py BertLayer / modeling_distilbert.py TransformerBlock).
    const std::string p = (distil ? "transformer.layer." : "encoder.layer.") + std::to_string(i) + ".";
    const std::string qkv[3] = {distil ? p + "attention.q_lin" : p + "attention.self.query",
                                distil ? p + "attention.k_lin" : p + "attention.self.key",
                                distil ? p + "attention.v_lin" : p + "attention.self.value"};
    const std::string attn_out = distil ? p + "attention.out_lin" : p + "attention.output.dense";
    const std::string ln1 = distil ? p + "sa_layer_norm" : p + "attention.output.LayerNorm";
    const std::string inter = distil ? p + "ffn.lin1" : p + "intermediate.dense";
    const std::string out = distil ? p + "ffn.lin2" : p + "output.dense";
    const std::string ln2 = distil ? p + "output_layer_norm" : p + "output.LayerNorm";
    L.qkv_w.resize(static_cast<size_t>(3) * H * H);
    L.qkv_b.resize(static_cast<size_t>(3) * H);
    for (int j = 0; j < 3; ++j) {
      const float* w = wf_.get(qkv[j] + ".weight", {H, H});
      const float* b = wf_.get(qkv[j] + ".bias", {H});
      std::memcpy(L.qkv_w.data() + static_cast<size_t>(j) * H * H, w, sizeof(float) * H * H);
      std::memcpy(L.qkv_b.data() + static_cast<size_t>(j) * H, b, sizeof(float) * H);
      releaseRaw(qkv[j] + ".weight", w, sizeof(float) * H * H);  // only the stacked copy is read from here on
    }
    L.qkv.raw = L.qkv_w.data();
    L.qkv.N = 3 * H;
    L.qkv.K = H;
    packWeight(L.qkv);
    if (L.qkv.nr > 0) {  // packed copy is all the SIMD path reads
      std::vector<float>().swap(L.qkv_w);
      L.qkv.raw = nullptr;
    }
    linear(L.attn_out, attn_out, H, H, &L.attn_out_b);
    L.ln1_g = wf_.get(ln1 + ".weight", {H});
    L.ln1_b = wf_.get(ln1 + ".bias", {H});
    linear(L.inter, inter, I, H, &L.inter_b);
    linear(L.out, out, H, I, &L.out_b);
    L.ln2_g = wf_.get(ln2 + ".weight", {H});
    L.ln2_b = wf_.get(ln2 + ".bias", {H});
  }
  if (const char* d = std::getenv("KST_DUMP")) {
    if (*d) dump_dir_ = d;
  }
}

int BertModel::outputDim(uint32_t pooling) const {
  if (pooling & ~0xFu) throw Error("pooling: unknown mode bits " + std::to_string(pooling));
  if (pooling == 0) return cfg_.hidden_size;
  return cfg_.hidden_size * popcount4(pooling);
}

void BertModel::validate(const EncodeRequest& req, size_t out_len) const {
  if (req.batch < 0) throw Error("EncodeRequest.batch must be >= 0, got " + std::to_string(req.batch));
  if (req.pooling & ~0xFu) throw Error("EncodeRequest.pooling: unknown mode bits " + std::to_string(req.pooling));
  if (req.batch > 0 && !req.lengths) throw Error("EncodeRequest.lengths is null");
  uint64_t sum = 0;
  for (int s = 0; s < req.batch; ++s) {
    const int32_t L = req.lengths[s];
    if (L < 1 || L > cfg_.maxSequenceLength())
      throw Error("EncodeRequest.lengths[" + std::to_string(s) + "] = " + std::to_string(L) + " is outside [1, " +
                  std::to_string(cfg_.maxSequenceLength()) + "] (max_position_embeddings" +
                  (cfg_.model_type == ModelType::Roberta ? " - pad_token_id - 1)" : ")"));
    sum += static_cast<uint64_t>(L);
  }
  if (sum != req.total_tokens)
    throw Error("EncodeRequest.total_tokens = " + std::to_string(req.total_tokens) + " but sum(lengths) = " +
                std::to_string(sum));
  if (req.total_tokens > 0 && !req.ids) throw Error("EncodeRequest.ids is null");
  if (req.total_tokens > (size_t(1) << 31) / static_cast<size_t>(std::max(cfg_.intermediate_size, 3 * cfg_.hidden_size)))
    throw Error("EncodeRequest.total_tokens = " + std::to_string(req.total_tokens) + " is too large for one call");
  for (size_t t = 0; t < req.total_tokens; ++t) {
    if (req.ids[t] < 0 || req.ids[t] >= cfg_.vocab_size)
      throw Error("EncodeRequest.ids[" + std::to_string(t) + "] = " + std::to_string(req.ids[t]) +
                  " is outside [0, " + std::to_string(cfg_.vocab_size) + ") (vocab_size)");
  }
  if (req.token_types) {
    for (size_t t = 0; t < req.total_tokens; ++t) {
      if (req.token_types[t] < 0 || req.token_types[t] >= cfg_.type_vocab_size)
        throw Error("EncodeRequest.token_types[" + std::to_string(t) + "] = " + std::to_string(req.token_types[t]) +
                    " is outside [0, " + std::to_string(cfg_.type_vocab_size) + ") (type_vocab_size)");
    }
  }
  const size_t rows = req.pooling == 0 ? req.total_tokens : static_cast<size_t>(req.batch);
  const size_t need = rows * static_cast<size_t>(outputDim(req.pooling));
  if (out_len != need)
    throw Error("out_len = " + std::to_string(out_len) + " but the output needs " + std::to_string(rows) +
                " rows × " + std::to_string(outputDim(req.pooling)) + " = " + std::to_string(need) + " floats");
}

void BertModel::dump(const std::string& name, const float* p, size_t rows, size_t cols) {
  if (dump_dir_.empty()) return;
  const std::string base = dump_dir_ + "/" + std::to_string(dump_seq_) + "." + name;
  if (FILE* f = std::fopen((base + ".f32").c_str(), "wb")) {
    std::fwrite(p, sizeof(float), rows * cols, f);
    std::fclose(f);
  }
  if (FILE* f = std::fopen((dump_dir_ + "/manifest.tsv").c_str(), "a")) {
    std::fprintf(f, "%d\t%s\t%zu\t%zu\n", dump_seq_, name.c_str(), rows, cols);
    std::fclose(f);
  }
}

template <typename T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

void BertModel::encode(const EncodeRequest& req, float* out, size_t out_len) {
  validate(req, out_len);
  if (req.batch == 0) return;
  if (!out) throw Error("out is null");
  std::lock_guard<std::mutex> lock(mu_);

  const int H = cfg_.hidden_size, I = cfg_.intermediate_size, NH = cfg_.num_attention_heads, HS = H / NH;
  const size_t T = req.total_tokens;
  const int M = static_cast<int>(T);
  grow(x_, T * H);
  grow(qkv_, T * 3 * H);
  grow(ctx_, T * H);
  grow(tmp_, T * H);
  grow(inter_, T * I);
  grow(offsets_, static_cast<size_t>(req.batch));
  int max_len = 0;
  int64_t off = 0;
  for (int s = 0; s < req.batch; ++s) {
    offsets_[s] = off;
    off += req.lengths[s];
    max_len = std::max(max_len, static_cast<int>(req.lengths[s]));
  }
  scratch_.resize(cpu::attentionScratchPerThread(max_len, HS) * pool_->size());
  ThreadPool* pool = pool_.get();
  ThreadPool::Hold hold(pool);  // no thread sleeps between the ops of this forward pass (threadpool.h)
  ThreadPool::FlushDenormals ftz;  // subnormal activations as zeros, this thread and the workers (threadpool.h)
  const cpu::Ops& ops = *ops_;
  const float eps = cfg_.layer_norm_eps;

  // BertEmbeddings / RobertaEmbeddings / DistilBERT Embeddings (see the constructor for pos_start_ and type_)
  cpu::embeddings_sum_ref(req.ids, req.token_types, req.lengths, req.batch, word_, pos_start_, type_, H, x_.data());
  ops.add_layernorm(x_.data(), nullptr, emb_ln_g_, emb_ln_b_, x_.data(), M, H, eps, pool);
  dump("embeddings", x_.data(), T, H);

  cpu::AttnArgs a;
  a.q = qkv_.data();
  a.k = qkv_.data() + H;
  a.v = qkv_.data() + 2 * H;
  a.ld_qkv = 3 * H;
  a.out = ctx_.data();
  a.ld_out = H;
  a.lengths = req.lengths;
  a.offsets = offsets_.data();
  a.batch = req.batch;
  a.heads = NH;
  a.head_size = HS;
  a.max_len = max_len;
  a.scale = 1.0f / std::sqrt(static_cast<float>(HS));

  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& L = layers_[li];
    const std::string p = dump_dir_.empty() ? std::string() : "encoder.layer." + std::to_string(li) + ".";
    // BertSelfAttention: fused query/key/value projection, then attention per (sequence, head).
    ops.gemm(x_.data(), M, L.qkv, L.qkv_b.data(), qkv_.data(), pool);
    ops.attention(a, scratch_.data(), pool);
    if (!p.empty()) dump(p + "attention.self", ctx_.data(), T, H);
    // BertSelfOutput: dense, dropout (identity), LayerNorm(hidden + input)
    ops.gemm(ctx_.data(), M, L.attn_out, L.attn_out_b, tmp_.data(), pool);
    ops.add_layernorm(tmp_.data(), x_.data(), L.ln1_g, L.ln1_b, x_.data(), M, H, eps, pool);
    if (!p.empty()) dump(p + "attention.output", x_.data(), T, H);
    // BertIntermediate: dense + activation; BertOutput: dense, LayerNorm(hidden + attention output). One op where the
    // ISA fuses the pair (inter_ is then not row-major, so not where the intermediate is dumped).
    if (ops.ffn && p.empty()) {
      ops.ffn(x_.data(), M, L.inter, L.inter_b, L.out, L.out_b, cfg_.hidden_act, inter_.data(), tmp_.data(), pool);
    } else {
      ops.gemm_gelu(x_.data(), M, L.inter, L.inter_b, inter_.data(), cfg_.hidden_act, pool);
      if (!p.empty()) dump(p + "intermediate", inter_.data(), T, I);
      ops.gemm(inter_.data(), M, L.out, L.out_b, tmp_.data(), pool);
    }
    ops.add_layernorm(tmp_.data(), x_.data(), L.ln2_g, L.ln2_b, x_.data(), M, H, eps, pool);
    if (!p.empty()) dump(p + "output", x_.data(), T, H);
  }

  size_t rows, dim;
  if (req.pooling == 0) {
    rows = T;
    dim = H;
    std::memcpy(out, x_.data(), sizeof(float) * T * H);
  } else {
    rows = static_cast<size_t>(req.batch);
    dim = static_cast<size_t>(outputDim(req.pooling));
    cpu::pooling_ref(x_.data(), req.lengths, req.batch, H, req.pooling, out);
  }
  if (req.normalize) cpu::l2normalize_ref(out, static_cast<int64_t>(rows), static_cast<int>(dim));
  dump("output", out, rows, dim);
  if (!dump_dir_.empty()) ++dump_seq_;
}

}  // namespace

std::unique_ptr<Model> loadBert(const BertConfig& cfg, const WeightsSource& weights, const Options& opt) {
  cfg.validate();
  return std::unique_ptr<Model>(new BertModel(cfg, weights, opt));
}

}  // namespace kst
