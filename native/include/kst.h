// The core's public C++ API: model configuration, weight views, the encoder.
// No N-API types here: the binding (native/napi) and the op tests (test/test_ops.cpp) both build on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kst {

// Every failure the core reports (bad sizes, missing tensors, I/O) is a kst::Error with a message
// that names the file, tensor or argument; the binding turns it into a JS Error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { F32, F16, BF16 };
size_t dtypeSize(DType t);
const char* dtypeName(DType t);

enum class Activation { Gelu /* exact erf */, GeluNew /* tanh approximation */ };

// Which Hugging Face encoder the weights belong to (config.json "model_type"). All three are post-LN
// transformer encoders with the same math; they differ in weight names and position ids:
//   Bert       modeling_bert.py: embeddings.*, encoder.layer.{i}.attention.self.query ..., positions 0..L-1
//   Roberta    modeling_roberta.py / XLM-R: the BERT names, positions pad_token_id + 1 + i (HF's
//              create_position_ids_from_input_ids on an unpadded sequence), type_vocab_size usually 1
//   DistilBert modeling_distilbert.py: embeddings.{word,position}_embeddings, embeddings.LayerNorm,
//              transformer.layer.{i}.attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin1/lin2,
//              output_layer_norm; no token types (type_vocab_size must be 1 and types all 0)
enum class ModelType { Bert = 0, Roberta = 1, DistilBert = 2 };
const char* modelTypeName(ModelType t);

// The fields of HF config.json the BERT forward pass needs (names as in config.json).
struct BertConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  int max_position_embeddings = 0;
  int type_vocab_size = 0;
  int pad_token_id = 0;
  float layer_norm_eps = 1e-12f;
  Activation hidden_act = Activation::Gelu;
  ModelType model_type = ModelType::Bert;
  void validate() const;  // throws kst::Error naming the first bad field
  // Longest sequence the position table allows: max_position_embeddings, less pad_token_id + 1 for RoBERTa.
  int maxSequenceLength() const;
};

// One tensor inside a memory-mapped weights file: where it is and what it holds.
// The TypeScript layer parses safetensors headers and passes these; the core re-checks every span.
struct TensorSpec {
  std::string name;  // HF key, verbatim (e.g. "encoder.layer.0.attention.self.query.weight")
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // byte offset from the start of the file
  uint64_t nbytes = 0;
};

struct WeightsSource {
  std::string path;                // file that is memory-mapped read-only
  std::vector<TensorSpec> tensors;
};

// Instruction set used by the CPU kernels. Chosen at load by cpuid; KST_ISA=scalar|avx2|avx512 in the
// environment (or Options::isa) can only lower it, never raise it above what the CPU supports.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isaName(Isa isa);
Isa detectIsa();               // best the CPU supports
Isa parseIsa(const std::string& s);  // "auto" → detectIsa(); throws on unknown names

struct Options {
  int threads = 0;        // 0 = available cores
  std::string isa = "auto";
  // Weights precision of the GEMMs: "fp32" (default), "bf16" (weights rounded to bf16 and packed at load,
  // activations rounded per block, fp32 accumulation; AVX512_BF16 only) or "int8" (weights quantised per output
  // channel to s8 at load, activations per token to u8 on every GEMM, exact int32 sums; AVX512-VNNI / AMX-INT8 at
  // the avx512 level, AVX-VNNI at the avx2 level). Where the CPU lacks the instructions it falls back to fp32, see
  // Model::precision() and precisionNote(). Embeddings, LayerNorm, attention and pooling stay fp32 in every
  // precision. Empty = $KST_PRECISION if set, else "fp32".
  std::string precision;
};

// Pooling modes in sentence-transformers' concatenation order (Pooling.forward).
enum PoolingMode : uint32_t {
  POOL_CLS = 1u << 0,
  POOL_MAX = 1u << 1,
  POOL_MEAN = 1u << 2,
  POOL_MEAN_SQRT_LEN = 1u << 3,
};

// One encode request. Sequences are packed end to end: ids holds sum(lengths) token ids, no padding.
struct EncodeRequest {
  const int32_t* ids = nullptr;
  const int32_t* lengths = nullptr;     // B entries, each in [1, config.maxSequenceLength()]
  const int32_t* token_types = nullptr; // optional, same layout as ids; null = all zeros
  int batch = 0;                        // B
  size_t total_tokens = 0;              // length of ids (checked against sum(lengths))
  uint32_t pooling = POOL_MEAN;         // 0 = return token embeddings (T × H) instead of pooled rows
  bool normalize = false;               // L2-normalise each output row
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const BertConfig& config() const = 0;
  virtual Isa isa() const = 0;
  virtual int threads() const = 0;
  // Precision the GEMMs actually run in: "fp32", "bf16" or "int8".
  virtual const char* precision() const { return "fp32"; }
  // Why the precision asked for is not the one that runs (e.g. int8 on a CPU without VNNI); "" when it is.
  virtual std::string precisionNote() const { return ""; }
  // Columns of one output row for a pooling mask (H × number of modes; H for token embeddings).
  virtual int outputDim(uint32_t pooling) const = 0;
  // Runs the forward pass. out must hold rows × outputDim floats, rows = B (pooled) or total_tokens.
  // Thread-safe: concurrent calls on one model are serialised.
  virtual void encode(const EncodeRequest& req, float* out, size_t out_len) = 0;
};

// Builds a BERT, RoBERTa / XLM-R or DistilBERT model (cfg.model_type): maps the weights file, checks every tensor's presence, shape and span,
// converts F16/BF16 to F32 once. Throws kst::Error naming the tensor and expected shape.
std::unique_ptr<Model> loadBert(const BertConfig& cfg, const WeightsSource& weights, const Options& opt);

}  // namespace kst
