// A random-weight BERT written to a temporary file in the layout the core memory-maps (F32 tensors back to
// back, HF names), shared by test/test_cuda_loader.cpp and test/test_cuda_ops.cu.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kst.h"

namespace kst_test {

struct TinyModel {
  kst::BertConfig cfg;
  kst::WeightsSource src;
};

// Linear weights U(-a, a) with a = sqrt(3 / fan_in) (unit-variance outputs), biases U(-0.1, 0.1),
// LayerNorm weight U(0.9, 1.1) / bias U(-0.1, 0.1), embeddings U(-1, 1).
// type: BERT (HF BertModel names), RoBERTa (same names, positions from pad_token_id + 1) or DistilBERT
// (q_lin / k_lin / v_lin / out_lin, sa_layer_norm, ffn.lin1 / lin2, output_layer_norm, no token types).
inline TinyModel writeTinyBert(const std::string& path, int H, int heads, int layers, int I, int vocab = 97,
                               int max_pos = 80, unsigned seed = 7, kst::ModelType type = kst::ModelType::Bert) {
  const bool distil = type == kst::ModelType::DistilBert;
  TinyModel m;
  kst::BertConfig& c = m.cfg;
  c.vocab_size = vocab;
  c.hidden_size = H;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.intermediate_size = I;
  c.max_position_embeddings = max_pos;
  c.type_vocab_size = distil ? 1 : 2;
  c.model_type = type;
  c.pad_token_id = 1;
  c.layer_norm_eps = 1e-12f;
  c.hidden_act = kst::Activation::Gelu;
  m.src.path = path;
  std::mt19937 rng(seed);
  std::vector<float> all;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    kst::TensorSpec t;
    t.name = name;
    t.dtype = kst::DType::F32;
    t.shape = shape;
    t.offset = all.size() * 4;
    t.nbytes = n * 4;
    std::uniform_real_distribution<float> d(lo, hi);
    for (size_t i = 0; i < n; ++i) all.push_back(d(rng));
    m.src.tensors.push_back(t);
  };
  auto linear = [&](const std::string& p, int out, int in) {
    const float a = std::sqrt(3.0f / static_cast<float>(in));
    add(p + ".weight", {out, in}, -a, a);
    add(p + ".bias", {out}, -0.1f, 0.1f);
  };
  auto ln = [&](const std::string& p, int n) {
    add(p + ".weight", {n}, 0.9f, 1.1f);
    add(p + ".bias", {n}, -0.1f, 0.1f);
  };
  add("embeddings.word_embeddings.weight", {vocab, H}, -1.f, 1.f);
  add("embeddings.position_embeddings.weight", {max_pos, H}, -1.f, 1.f);
  if (!distil) add("embeddings.token_type_embeddings.weight", {2, H}, -1.f, 1.f);
  ln("embeddings.LayerNorm", H);
  for (int l = 0; l < layers; ++l) {
    if (distil) {
      const std::string p = "transformer.layer." + std::to_string(l) + ".";
      linear(p + "attention.q_lin", H, H);
      linear(p + "attention.k_lin", H, H);
      linear(p + "attention.v_lin", H, H);
      linear(p + "attention.out_lin", H, H);
      ln(p + "sa_layer_norm", H);
      linear(p + "ffn.lin1", I, H);
      linear(p + "ffn.lin2", H, I);
      ln(p + "output_layer_norm", H);
      continue;
    }
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    linear(p + "attention.self.query", H, H);
    linear(p + "attention.self.key", H, H);
    linear(p + "attention.self.value", H, H);
    linear(p + "attention.output.dense", H, H);
    ln(p + "attention.output.LayerNorm", H);
    linear(p + "intermediate.dense", I, H);
    linear(p + "output.dense", H, I);
    ln(p + "output.LayerNorm", H);
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(all.data(), 4, all.size(), f) != all.size()) throw std::runtime_error("cannot write " + path);
  std::fclose(f);
  return m;
}

inline std::string tempPath(const std::string& stem) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/" + stem + "-" + std::to_string(getpid()) + ".bin";
}

inline double cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / (std::sqrt(aa * bb) + 1e-300);
}

}  // namespace kst_test
