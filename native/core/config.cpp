#include <string>

#include "kst.h"

namespace kst {

size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  throw Error("dtypeSize: unknown dtype " + std::to_string(static_cast<int>(t)));
}

const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

const char* modelTypeName(ModelType t) {
  switch (t) {
    case ModelType::Bert: return "bert";
    case ModelType::Roberta: return "roberta";
    case ModelType::DistilBert: return "distilbert";
  }
  return "?";
}

int BertConfig::maxSequenceLength() const {
  if (model_type == ModelType::Roberta) return max_position_embeddings - pad_token_id - 1;
  return max_position_embeddings;
}

namespace {
void positive(const char* field, int v) {
  if (v <= 0) throw Error(std::string("BertConfig.") + field + " must be > 0, got " + std::to_string(v));
}
}  // namespace

void BertConfig::validate() const {
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  if (hidden_size % num_attention_heads != 0)
    throw Error("BertConfig.hidden_size (" + std::to_string(hidden_size) +
                ") must be a multiple of num_attention_heads (" + std::to_string(num_attention_heads) + ")");
  if (pad_token_id < 0 || pad_token_id >= vocab_size)
    throw Error("BertConfig.pad_token_id must be in [0, vocab_size), got " + std::to_string(pad_token_id));
  if (!(layer_norm_eps > 0.f) || !(layer_norm_eps < 1.f))
    throw Error("BertConfig.layer_norm_eps must be in (0, 1), got " + std::to_string(layer_norm_eps));
  if (hidden_act != Activation::Gelu && hidden_act != Activation::GeluNew)
    throw Error("BertConfig.hidden_act: unknown activation " + std::to_string(static_cast<int>(hidden_act)));
  if (model_type != ModelType::Bert && model_type != ModelType::Roberta && model_type != ModelType::DistilBert)
    throw Error("BertConfig.model_type: unknown model type " + std::to_string(static_cast<int>(model_type)));
  if (model_type == ModelType::Roberta && maxSequenceLength() < 1)
    throw Error("BertConfig: RoBERTa positions start at pad_token_id + 1 = " + std::to_string(pad_token_id + 1) +
                ", which leaves no room in max_position_embeddings = " + std::to_string(max_position_embeddings));
  if (model_type == ModelType::DistilBert && type_vocab_size != 1)
    throw Error("BertConfig.type_vocab_size must be 1 for DistilBERT (it has no token type embeddings), got " +
                std::to_string(type_vocab_size));
  // Guard the products the forward pass forms (rows × columns fit comfortably in size_t / int).
  const int64_t big = int64_t(1) << 30;
  if (int64_t(vocab_size) * hidden_size >= big * 4)
    throw Error("BertConfig.vocab_size × hidden_size is too large");
  if (hidden_size > (1 << 20) || intermediate_size > (1 << 22) || max_position_embeddings > (1 << 20))
    throw Error("BertConfig: hidden_size / intermediate_size / max_position_embeddings is implausibly large");
}

}  // namespace kst
