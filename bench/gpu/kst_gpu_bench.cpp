// End-to-end GPU checks and timings for bench/gpu.sh, on the C++ API (no Node needed on the device machine):
//   --parity  CPU fp32 vs CUDA (fp16 and bf16) mean-pooled embeddings of every sentence of the ids file,
//             cosine per sentence (issue 4: >= 0.9999 for fp16); exit 1 if the bound fails
//   --bench   CUDA timings: corpus throughput at batch 32 / 128 (sorted by length like sentence-transformers),
//             batch-1 latency p50 / p99 (CUDA graphs on and off), grid batch {1,32,256} x length {16,128}
// Input: --model DIR with kst_manifest.tsv + model.safetensors (bench/gpu/make_model.py), --ids FILE
// (int32 count, then per sentence int32 length + ids). Output: one JSON object per line on stdout.
// --cpu-only: runs only the CPU side (dry runs on machines without a GPU). --dump PREFIX writes the embeddings
// as PREFIX.cpu.f32 / PREFIX.cuda_fp16.f32 / PREFIX.cuda_bf16.f32 (rows × hidden float32) for torch_bench.py.
// --layers DIR: the first 4 sentences (one batch) through the CPU and CUDA fp16 models with KST_DUMP=DIR/cpu and
// DIR/cuda (per-layer outputs), for bench/gpu/compare_dumps.py when parity fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_loader.h"
#include "kst.h"

using Clock = std::chrono::steady_clock;

static double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

static void die(const std::string& m) {
  std::fprintf(stderr, "kst_gpu_bench: %s\n", m.c_str());
  std::exit(2);
}

struct Model {
  kst::BertConfig cfg;
  kst::WeightsSource src;
};

static Model readManifest(const std::string& dir) {
  Model m;
  std::ifstream f(dir + "/kst_manifest.tsv");
  if (!f) die("cannot open " + dir + "/kst_manifest.tsv (run bench/gpu/make_model.py)");
  m.src.path = dir + "/model.safetensors";
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    if (kind == "config") {
      std::string k, v;
      in >> k >> v;
      if (k == "vocab_size") m.cfg.vocab_size = std::stoi(v);
      else if (k == "hidden_size") m.cfg.hidden_size = std::stoi(v);
      else if (k == "num_hidden_layers") m.cfg.num_hidden_layers = std::stoi(v);
      else if (k == "num_attention_heads") m.cfg.num_attention_heads = std::stoi(v);
      else if (k == "intermediate_size") m.cfg.intermediate_size = std::stoi(v);
      else if (k == "max_position_embeddings") m.cfg.max_position_embeddings = std::stoi(v);
      else if (k == "type_vocab_size") m.cfg.type_vocab_size = std::stoi(v);
      else if (k == "pad_token_id") m.cfg.pad_token_id = std::stoi(v);
      else if (k == "layer_norm_eps") m.cfg.layer_norm_eps = std::stof(v);
      else if (k == "hidden_act") m.cfg.hidden_act = v == "gelu_new" ? kst::Activation::GeluNew : kst::Activation::Gelu;
    } else if (kind == "tensor") {
      kst::TensorSpec t;
      std::string dtype, shape;
      in >> t.name >> dtype >> shape >> t.offset >> t.nbytes;
      t.dtype = dtype == "F16" ? kst::DType::F16 : dtype == "BF16" ? kst::DType::BF16 : kst::DType::F32;
      std::stringstream ss(shape);
      std::string d;
      while (std::getline(ss, d, ',')) t.shape.push_back(std::stoll(d));
      m.src.tensors.push_back(t);
    }
  }
  m.cfg.validate();
  return m;
}

static std::vector<std::vector<int32_t>> readIds(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot open " + path);
  int32_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 4);
  std::vector<std::vector<int32_t>> r(static_cast<size_t>(n));
  for (auto& s : r) {
    int32_t L = 0;
    f.read(reinterpret_cast<char*>(&L), 4);
    if (L < 1 || L > 100000) die("bad ids file " + path);
    s.resize(static_cast<size_t>(L));
    f.read(reinterpret_cast<char*>(s.data()), 4 * L);
  }
  if (!f) die("truncated ids file " + path);
  return r;
}

// Encodes sentences[idx[b..e)] as one batch (mean pooling) into out (rows in idx order).
static void encodeBatch(kst::Model& m, const std::vector<std::vector<int32_t>>& s, const size_t* idx, size_t n,
                        std::vector<float>& out) {
  std::vector<int32_t> ids, lengths;
  for (size_t i = 0; i < n; ++i) {
    const auto& q = s[idx[i]];
    ids.insert(ids.end(), q.begin(), q.end());
    lengths.push_back(static_cast<int32_t>(q.size()));
  }
  kst::EncodeRequest r;
  r.ids = ids.data();
  r.lengths = lengths.data();
  r.batch = static_cast<int>(n);
  r.total_tokens = ids.size();
  r.pooling = kst::POOL_MEAN;
  out.resize(n * static_cast<size_t>(m.config().hidden_size));
  m.encode(r, out.data(), out.size());
}

static std::vector<float> encodeAll(kst::Model& m, const std::vector<std::vector<int32_t>>& s, size_t bs) {
  const size_t H = static_cast<size_t>(m.config().hidden_size);
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<float> all(s.size() * H), tmp;
  for (size_t b = 0; b < s.size(); b += bs) {
    const size_t n = std::min(bs, s.size() - b);
    encodeBatch(m, s, idx.data() + b, n, tmp);
    std::copy(tmp.begin(), tmp.end(), all.begin() + b * H);
  }
  return all;
}

static void dumpF32(const std::string& prefix, const char* name, const std::vector<float>& v) {
  if (prefix.empty()) return;
  const std::string path = prefix + "." + name + ".f32";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(v.data(), sizeof(float), v.size(), f) != v.size()) die("cannot write " + path);
  std::fclose(f);
}

static double cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / (std::sqrt(aa * bb) + 1e-300);
}

static double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * (v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double f = pos - i;
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

// Sentences per second over the whole corpus, sorted by length (longest first, as sentence-transformers does).
static double corpusThroughput(kst::Model& m, const std::vector<std::vector<int32_t>>& s, size_t bs, int passes,
                               double* ms_out) {
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a].size() > s[b].size(); });
  std::vector<float> tmp;
  double best = 1e300;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = Clock::now();
    for (size_t b = 0; b < s.size(); b += bs) encodeBatch(m, s, idx.data() + b, std::min(bs, s.size() - b), tmp);
    best = std::min(best, msSince(t0));
  }
  if (ms_out) *ms_out = best;
  return s.size() / (best / 1000.0);
}

int main(int argc, char** argv) {
  std::string modelDir, idsPath, dumpPrefix, layersDir;
  bool parity = false, bench = false, cpuOnly = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) modelDir = argv[++i];
    else if (a == "--ids" && i + 1 < argc) idsPath = argv[++i];
    else if (a == "--parity") parity = true;
    else if (a == "--bench") bench = true;
    else if (a == "--cpu-only") cpuOnly = true;
    else if (a == "--quick") quick = true;
    else if (a == "--dump" && i + 1 < argc) dumpPrefix = argv[++i];
    else if (a == "--layers" && i + 1 < argc) layersDir = argv[++i];
    else die("usage: kst_gpu_bench --model DIR --ids FILE [--parity] [--bench] [--cpu-only] [--quick] [--dump PREFIX] [--layers DIR]");
  }
  if (modelDir.empty() || idsPath.empty() || (!parity && !bench && layersDir.empty()))
    die("need --model, --ids and --parity, --bench or --layers");
  const Model mm = readManifest(modelDir);
  const auto sentences = readIds(idsPath);
  const size_t H = static_cast<size_t>(mm.cfg.hidden_size);
  const kst::CudaStatus st = kst::cudaStatus();
  std::printf("{\"kind\":\"env\",\"cuda_available\":%s,\"cuda_library\":\"%s\",\"device\":\"%s\",\"sentences\":%zu,"
              "\"layers\":%d,\"hidden\":%d}\n",
              st.available ? "true" : "false", st.library.c_str(), st.devices.empty() ? "" : st.devices[0].c_str(),
              sentences.size(), mm.cfg.num_hidden_layers, mm.cfg.hidden_size);
  if (!st.available && !cpuOnly) die("CUDA is not available: " + st.reason);
  int rc = 0;

  if (!layersDir.empty()) {
    std::vector<size_t> idx = {0, 1, 2, 3};
    idx.resize(std::min<size_t>(4, sentences.size()));
    std::vector<float> out;
    for (int gpu = 0; gpu < (cpuOnly ? 1 : 2); ++gpu) {
      const std::string d = layersDir + (gpu ? "/cuda" : "/cpu");
      if (std::system(("mkdir -p '" + d + "'").c_str()) != 0) die("cannot create " + d);
      setenv("KST_DUMP", d.c_str(), 1);
      std::unique_ptr<kst::Model> m =
          gpu ? kst::loadBertCuda(mm.cfg, mm.src, kst::CudaOptions()) : kst::loadBert(mm.cfg, mm.src, kst::Options());
      encodeBatch(*m, sentences, idx.data(), idx.size(), out);
      unsetenv("KST_DUMP");
    }
    std::printf("{\"kind\":\"layers\",\"dir\":\"%s\",\"sentences\":%zu}\n", layersDir.c_str(), idx.size());
  }

  if (parity) {
    kst::Options opt;
    auto t0 = Clock::now();
    std::unique_ptr<kst::Model> cpu = kst::loadBert(mm.cfg, mm.src, opt);
    const std::vector<float> ref = encodeAll(*cpu, sentences, 32);
    std::printf("{\"kind\":\"cpu_reference\",\"isa\":\"%s\",\"threads\":%d,\"ms\":%.1f}\n", kst::isaName(cpu->isa()),
                cpu->threads(), msSince(t0));
    cpu.reset();
    dumpF32(dumpPrefix, "cpu", ref);
    if (!cpuOnly) {
      for (const char* prec : {"fp16", "bf16"}) {
        kst::CudaOptions co;
        co.precision = prec;
        std::unique_ptr<kst::Model> gpu = kst::loadBertCuda(mm.cfg, mm.src, co);
        const std::vector<float> got = encodeAll(*gpu, sentences, 32);
        dumpF32(dumpPrefix, std::strcmp(prec, "fp16") == 0 ? "cuda_fp16" : "cuda_bf16", got);
        double minc = 1, sum = 0, maxAbs = 0;
        size_t worst = 0, below = 0;
        for (size_t s = 0; s < sentences.size(); ++s) {
          const double c = cosine(&ref[s * H], &got[s * H], H);
          sum += c;
          if (c < minc) {
            minc = c;
            worst = s;
          }
          if (c < 0.9999) ++below;
          for (size_t i = 0; i < H; ++i) maxAbs = std::max(maxAbs, static_cast<double>(std::fabs(ref[s * H + i] - got[s * H + i])));
        }
        const bool gate = std::strcmp(prec, "fp16") == 0;
        const bool pass = below == 0;
        if (gate && !pass) rc = 1;
        std::printf("{\"kind\":\"parity\",\"precision\":\"%s\",\"sentences\":%zu,\"min_cosine\":%.8f,\"mean_cosine\":%.8f,"
                    "\"below_0.9999\":%zu,\"worst_sentence\":%zu,\"max_abs_diff\":%.3g,\"pass\":%s,\"gating\":%s}\n",
                    prec, sentences.size(), minc, sum / sentences.size(), below, worst, maxAbs, pass ? "true" : "false",
                    gate ? "true" : "false");
        std::fflush(stdout);
      }
    }
  }

  if (bench && !cpuOnly) {
    kst::CudaOptions co;
    co.precision = "fp16";
    std::unique_ptr<kst::Model> gpu = kst::loadBertCuda(mm.cfg, mm.src, co);
    co.graphs = 0;
    std::unique_ptr<kst::Model> eager = kst::loadBertCuda(mm.cfg, mm.src, co);
    const int passes = quick ? 2 : 3;
    for (size_t bs : {size_t(32), size_t(128)}) {
      double ms = 0;
      corpusThroughput(*eager, sentences, bs, 1, nullptr);  // warm-up (allocations)
      const double sps = corpusThroughput(*eager, sentences, bs, passes, &ms);
      std::printf("{\"kind\":\"throughput\",\"impl\":\"kst\",\"batch\":%zu,\"sentences_per_s\":%.1f,\"ms\":%.2f,\"graphs\":false}\n",
                  bs, sps, ms);
      std::fflush(stdout);
    }
    // Batch-1 latency over the first sentences, each alone (graphs: two warm-up passes capture every shape).
    const size_t n1 = std::min<size_t>(sentences.size(), quick ? 200 : 1000);
    for (int g = 1; g >= 0; --g) {
      kst::Model& m = g ? *gpu : *eager;
      std::vector<float> tmp;
      std::vector<size_t> one(1);
      for (int w = 0; w < 2; ++w)
        for (size_t i = 0; i < n1; ++i) {
          one[0] = i;
          encodeBatch(m, sentences, one.data(), 1, tmp);
        }
      std::vector<double> lat;
      for (size_t i = 0; i < n1; ++i) {
        one[0] = i;
        const auto t0 = Clock::now();
        encodeBatch(m, sentences, one.data(), 1, tmp);
        lat.push_back(msSince(t0));
      }
      std::printf("{\"kind\":\"latency\",\"impl\":\"kst\",\"graphs\":%s,\"n\":%zu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f}\n",
                  g ? "true" : "false", n1, pct(lat, 50), pct(lat, 99),
                  std::accumulate(lat.begin(), lat.end(), 0.0) / lat.size());
      std::fflush(stdout);
    }
    // Grid: batch x length of random ids, median of repeated calls (graphs on: repeated shapes replay).
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> di(5, mm.cfg.vocab_size - 1);
    for (int B : {1, 32, 256})
      for (int L : {16, 128}) {
        std::vector<int32_t> ids(static_cast<size_t>(B) * L), lengths(B, L);
        for (auto& x : ids) x = di(rng);
        kst::EncodeRequest r;
        r.ids = ids.data();
        r.lengths = lengths.data();
        r.batch = B;
        r.total_tokens = ids.size();
        r.pooling = kst::POOL_MEAN;
        std::vector<float> out(static_cast<size_t>(B) * H);
        for (int w = 0; w < 3; ++w) gpu->encode(r, out.data(), out.size());
        std::vector<double> t;
        for (int i = 0; i < (quick ? 5 : 20); ++i) {
          const auto t0 = Clock::now();
          gpu->encode(r, out.data(), out.size());
          t.push_back(msSince(t0));
        }
        const double med = pct(t, 50);
        std::printf("{\"kind\":\"grid\",\"impl\":\"kst\",\"batch\":%d,\"len\":%d,\"median_ms\":%.4f,\"tokens_per_s\":%.0f}\n",
                    B, L, med, B * L / (med / 1000.0));
        std::fflush(stdout);
      }
  }
  return rc;
}
