// See cuda_loader.h. Everything CUDA-specific stays behind the C ABI of native/cuda/kst_cuda_api.h.
#include "cuda_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../cuda/kst_cuda_api.h"
#include "weights.h"

namespace kst {
namespace {

// ---- The library: opened once per process (a loaded shared object is process-wide anyway) -----------------
struct CudaLib {
  bool ok = false;
  std::string path, error;
  int (*abi_version)() = nullptr;
  int (*probe)(int*, char*, size_t) = nullptr;
  int (*device_name)(int, char*, size_t) = nullptr;
  int (*create)(const kst_cuda_config*, const kst_cuda_weights*, const kst_cuda_options*, kst_cuda_model**, char*,
                size_t) = nullptr;
  int (*encode)(kst_cuda_model*, const kst_cuda_request*, float*, size_t, char*, size_t) = nullptr;
  void (*destroy)(kst_cuda_model*) = nullptr;
  int device_count = 0;
  std::string no_device;  // probe failure (library loaded, but no driver / GPU)
};

std::string moduleDir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&moduleDir), &info) && info.dli_fname) {
    std::string p = info.dli_fname;
    const size_t slash = p.find_last_of('/');
    return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
  }
  return "";
}

template <typename F>
bool sym(void* h, const char* name, F* out, std::string* err) {
  *out = reinterpret_cast<F>(dlsym(h, name));
  if (!*out) *err = std::string("missing symbol ") + name;
  return *out != nullptr;
}

const CudaLib& cudaLib() {
  static std::once_flag once;
  static CudaLib lib;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    const char* env = std::getenv("KST_CUDA_LIBRARY");
    if (env && *env) {
      candidates.push_back(env);
    } else {
      const std::string dir = moduleDir();
      if (!dir.empty()) candidates.push_back(dir + "/libkst_cuda.so");
      candidates.push_back("libkst_cuda.so");
    }
    std::string tried;
    void* h = nullptr;
    for (const std::string& c : candidates) {
      h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        lib.path = c;
        break;
      }
      const char* e = dlerror();
      tried += "\n    " + c + ": " + (e ? e : "not found");
    }
    if (!h) {
      lib.error = std::string("libkst_cuda.so could not be loaded (the package was built without nvcc, or the "
                              "library is not next to kst.node); tried:") +
                  tried;
      return;
    }
    std::string err;
    if (!sym(h, "kst_cuda_abi_version", &lib.abi_version, &err) || !sym(h, "kst_cuda_probe", &lib.probe, &err) ||
        !sym(h, "kst_cuda_device_name", &lib.device_name, &err) || !sym(h, "kst_cuda_create", &lib.create, &err) ||
        !sym(h, "kst_cuda_encode", &lib.encode, &err) || !sym(h, "kst_cuda_destroy", &lib.destroy, &err)) {
      lib.error = lib.path + ": " + err + " (not a libkst_cuda.so of this package?)";
      return;
    }
    const int abi = lib.abi_version();
    if (abi != KST_CUDA_ABI_VERSION) {
      lib.error = lib.path + " has C ABI version " + std::to_string(abi) + " but this addon expects " +
                  std::to_string(KST_CUDA_ABI_VERSION) + ": rebuild both (npm run build:native)";
      return;
    }
    char msg[1024] = {0};
    if (lib.probe(&lib.device_count, msg, sizeof msg) != KST_CUDA_OK) lib.no_device = msg;
    lib.ok = true;  // the library itself is fine; no_device says whether there is a GPU
  });
  return lib;
}

const char* kFixes =
    "\n  Fixes: use device 'cpu' (or 'auto', which falls back to the CPU); on a machine with an NVIDIA GPU "
    "(sm_80 or newer) and a driver that supports the CUDA version the library was built with, build with nvcc "
    "on PATH (npm run build:native) so that libkst_cuda.so lands next to kst.node, or point KST_CUDA_LIBRARY at "
    "a libkst_cuda.so";

std::string modelType(const BertConfig& c) { return modelTypeName(c.model_type); }

int popcount4(uint32_t m) {
  int n = 0;
  for (m &= 0xF; m; m &= m - 1) ++n;
  return n;
}

std::string envOr(const char* name, const std::string& dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : dflt;
}

// ---- The Model the core hands out for a GPU ------------------------------------------------------------
class CudaBertModel final : public Model {
 public:
  CudaBertModel(const BertConfig& cfg, const CudaLib& lib, kst_cuda_model* h, int device, std::string name)
      : cfg_(cfg), lib_(lib), h_(h), device_(device), name_(std::move(name)) {}
  ~CudaBertModel() override { lib_.destroy(h_); }
  const BertConfig& config() const override { return cfg_; }
  Isa isa() const override { return Isa::Scalar; }  // no CPU kernels run; see modelDevice()
  int threads() const override { return 1; }
  int outputDim(uint32_t pooling) const override {
    if (pooling & ~0xFu) throw Error("pooling: unknown mode bits " + std::to_string(pooling));
    return pooling == 0 ? cfg_.hidden_size : cfg_.hidden_size * popcount4(pooling);
  }
  void encode(const EncodeRequest& req, float* out, size_t out_len) override;
  int device() const { return device_; }
  const std::string& name() const { return name_; }

 private:
  void validate(const EncodeRequest& req, size_t out_len) const;
  BertConfig cfg_;
  const CudaLib& lib_;
  kst_cuda_model* h_;
  int device_;
  std::string name_;
};

// The GPU must never see an out-of-range index (that would be an illegal address and poison the model).
void CudaBertModel::validate(const EncodeRequest& req, size_t out_len) const {
  if (req.batch < 0) throw Error("EncodeRequest.batch must be >= 0, got " + std::to_string(req.batch));
  if (req.pooling & ~0xFu) throw Error("EncodeRequest.pooling: unknown mode bits " + std::to_string(req.pooling));
  if (req.batch > 0 && !req.lengths) throw Error("EncodeRequest.lengths is null");
  const int maxL = cfg_.maxSequenceLength();
  uint64_t sum = 0;
  for (int s = 0; s < req.batch; ++s) {
    const int32_t L = req.lengths[s];
    if (L < 1 || L > maxL)
      throw Error("EncodeRequest.lengths[" + std::to_string(s) + "] = " + std::to_string(L) + " is outside [1, " +
                  std::to_string(maxL) + "]");
    sum += static_cast<uint64_t>(L);
  }
  if (sum != req.total_tokens)
    throw Error("EncodeRequest.total_tokens = " + std::to_string(req.total_tokens) + " but sum(lengths) = " +
                std::to_string(sum));
  if (req.total_tokens > 0 && !req.ids) throw Error("EncodeRequest.ids is null");
  if (req.total_tokens > (size_t(1) << 31) / static_cast<size_t>(std::max(cfg_.intermediate_size, 3 * cfg_.hidden_size)))
    throw Error("EncodeRequest.total_tokens = " + std::to_string(req.total_tokens) + " is too large for one call");
  for (size_t t = 0; t < req.total_tokens; ++t)
    if (req.ids[t] < 0 || req.ids[t] >= cfg_.vocab_size)
      throw Error("EncodeRequest.ids[" + std::to_string(t) + "] = " + std::to_string(req.ids[t]) +
                  " is outside [0, " + std::to_string(cfg_.vocab_size) + ") (vocab_size)");
  if (req.token_types)
    for (size_t t = 0; t < req.total_tokens; ++t)
      if (req.token_types[t] < 0 || req.token_types[t] >= cfg_.type_vocab_size)
        throw Error("EncodeRequest.token_types[" + std::to_string(t) + "] = " + std::to_string(req.token_types[t]) +
                    " is outside [0, " + std::to_string(cfg_.type_vocab_size) + ") (type_vocab_size)");
  const size_t rows = req.pooling == 0 ? req.total_tokens : static_cast<size_t>(req.batch);
  const size_t need = rows * static_cast<size_t>(outputDim(req.pooling));
  if (out_len != need)
    throw Error("out_len = " + std::to_string(out_len) + " but the output needs " + std::to_string(need) + " floats");
}

void CudaBertModel::encode(const EncodeRequest& req, float* out, size_t out_len) {
  validate(req, out_len);
  if (req.batch == 0) return;
  if (!out) throw Error("out is null");
  kst_cuda_request r;
  r.ids = req.ids;
  r.lengths = req.lengths;
  r.token_types = req.token_types;
  r.batch = req.batch;
  r.total_tokens = static_cast<int64_t>(req.total_tokens);
  r.pooling = req.pooling;
  r.normalize = req.normalize ? 1 : 0;
  char msg[1024] = {0};
  const int rc = lib_.encode(h_, &r, out, out_len, msg, sizeof msg);
  if (rc != KST_CUDA_OK) throw Error(std::string("CUDA (cuda:") + std::to_string(device_) + "): " + msg);
}

// HF weight names per model type, mirroring native/core/bert.cpp.
struct Names {
  std::string word, pos, type, emb_g, emb_b;
  std::string q, k, v, o, ln1, inter, out, ln2;  // per layer, with "{i}" → layer index
  std::string layer_prefix;
};

Names namesFor(const std::string& type) {
  Names n;
  n.word = "embeddings.word_embeddings.weight";
  n.pos = "embeddings.position_embeddings.weight";
  n.emb_g = "embeddings.LayerNorm.weight";
  n.emb_b = "embeddings.LayerNorm.bias";
  if (type == "distilbert") {
    n.layer_prefix = "transformer.layer.";
    n.q = "attention.q_lin";
    n.k = "attention.k_lin";
    n.v = "attention.v_lin";
    n.o = "attention.out_lin";
    n.ln1 = "sa_layer_norm";
    n.inter = "ffn.lin1";
    n.out = "ffn.lin2";
    n.ln2 = "output_layer_norm";
  } else {
    n.type = "embeddings.token_type_embeddings.weight";
    n.layer_prefix = "encoder.layer.";
    n.q = "attention.self.query";
    n.k = "attention.self.key";
    n.v = "attention.self.value";
    n.o = "attention.output.dense";
    n.ln1 = "attention.output.LayerNorm";
    n.inter = "intermediate.dense";
    n.out = "output.dense";
    n.ln2 = "output.LayerNorm";
  }
  return n;
}

int parsePrecision(const std::string& p) {
  const std::string v = p == "auto" ? envOr("KST_CUDA_PRECISION", "fp16") : p;
  if (v == "fp16" || v == "float16" || v == "half") return KST_CUDA_FP16;
  if (v == "bf16" || v == "bfloat16") return KST_CUDA_BF16;
  throw Error("CUDA precision must be 'fp16' or 'bf16', got '" + v + "'" +
              (p == "auto" ? " (from KST_CUDA_PRECISION)" : ""));
}

}  // namespace

CudaStatus cudaStatus() {
  CudaStatus s;
  const CudaLib& lib = cudaLib();
  s.library = lib.ok ? lib.path : "";
  if (!lib.ok) {
    s.reason = lib.error;
    return s;
  }
  if (!lib.no_device.empty()) {
    s.reason = lib.path + " loaded, but " + lib.no_device;
    return s;
  }
  for (int d = 0; d < lib.device_count; ++d) {
    char buf[512] = {0};
    lib.device_name(d, buf, sizeof buf);
    s.devices.push_back(buf);
  }
  s.available = lib.device_count > 0;
  if (!s.available) s.reason = "no CUDA devices";
  return s;
}

std::unique_ptr<Model> loadBertCuda(const BertConfig& cfg, const WeightsSource& weights, const CudaOptions& opt) {
  cfg.validate();
  const CudaLib& lib = cudaLib();
  if (!lib.ok) throw Error("device 'cuda': the CUDA backend is not available: " + lib.error + kFixes);
  if (!lib.no_device.empty())
    throw Error("device 'cuda': the CUDA backend is not available: " + lib.no_device + kFixes);
  const std::string type = modelType(cfg);
  if (type != "bert" && type != "roberta" && type != "distilbert")
    throw Error("device 'cuda': model type '" + type + "' is not supported by the CUDA backend");
  const int H = cfg.hidden_size, I = cfg.intermediate_size;

  kst_cuda_config c;
  std::memset(&c, 0, sizeof c);
  c.vocab_size = cfg.vocab_size;
  c.hidden_size = H;
  c.num_layers = cfg.num_hidden_layers;
  c.num_heads = cfg.num_attention_heads;
  c.intermediate_size = I;
  c.max_position_embeddings = cfg.max_position_embeddings;
  c.type_vocab_size = cfg.type_vocab_size;
  c.position_offset = type == "roberta" ? cfg.pad_token_id + 1 : 0;
  c.layer_norm_eps = cfg.layer_norm_eps;
  c.activation = cfg.hidden_act == Activation::GeluNew ? KST_CUDA_ACT_GELU_TANH : KST_CUDA_ACT_GELU;

  kst_cuda_options o;
  o.device = opt.device;
  o.precision = parsePrecision(opt.precision);
  o.use_graphs = opt.graphs >= 0 ? opt.graphs : (envOr("KST_CUDA_GRAPHS", "1") == "0" ? 0 : 1);

  // Host F32 views of every tensor (mapped in place or converted once); they only live during the upload.
  WeightFile wf(weights);
  const Names n = namesFor(type);
  kst_cuda_weights w;
  std::memset(&w, 0, sizeof w);
  w.word = wf.get(n.word, {cfg.vocab_size, H});
  w.pos = wf.get(n.pos, {cfg.max_position_embeddings, H});
  w.type = n.type.empty() ? nullptr : wf.get(n.type, {cfg.type_vocab_size, H});
  w.emb_ln_g = wf.get(n.emb_g, {H});
  w.emb_ln_b = wf.get(n.emb_b, {H});
  std::vector<kst_cuda_layer> layers(static_cast<size_t>(cfg.num_hidden_layers));
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = n.layer_prefix + std::to_string(i) + ".";
    kst_cuda_layer& L = layers[static_cast<size_t>(i)];
    L.q_w = wf.get(p + n.q + ".weight", {H, H});
    L.q_b = wf.get(p + n.q + ".bias", {H});
    L.k_w = wf.get(p + n.k + ".weight", {H, H});
    L.k_b = wf.get(p + n.k + ".bias", {H});
    L.v_w = wf.get(p + n.v + ".weight", {H, H});
    L.v_b = wf.get(p + n.v + ".bias", {H});
    L.o_w = wf.get(p + n.o + ".weight", {H, H});
    L.o_b = wf.get(p + n.o + ".bias", {H});
    L.ln1_g = wf.get(p + n.ln1 + ".weight", {H});
    L.ln1_b = wf.get(p + n.ln1 + ".bias", {H});
    L.i_w = wf.get(p + n.inter + ".weight", {I, H});
    L.i_b = wf.get(p + n.inter + ".bias", {I});
    L.out_w = wf.get(p + n.out + ".weight", {H, I});
    L.out_b = wf.get(p + n.out + ".bias", {H});
    L.ln2_g = wf.get(p + n.ln2 + ".weight", {H});
    L.ln2_b = wf.get(p + n.ln2 + ".bias", {H});
  }
  w.layers = layers.data();

  kst_cuda_model* h = nullptr;
  char msg[1024] = {0};
  const int rc = lib.create(&c, &w, &o, &h, msg, sizeof msg);
  if (rc != KST_CUDA_OK || !h) {
    if (rc == KST_CUDA_NO_DEVICE)
      throw Error(std::string("device 'cuda:") + std::to_string(opt.device) + "': " + msg + kFixes);
    throw Error(std::string("device 'cuda:") + std::to_string(opt.device) + "': loading '" + weights.path +
                "' failed: " + msg);
  }
  char name[512] = {0};
  lib.device_name(opt.device, name, sizeof name);
  return std::unique_ptr<Model>(new CudaBertModel(cfg, lib, h, opt.device, name));
}

std::unique_ptr<Model> loadBertOnDevice(const BertConfig& cfg, const WeightsSource& weights, const Options& opt,
                                        const std::string& device, const CudaOptions& cuda, std::string* note) {
  if (note) note->clear();
  if (device.empty() || device == "cpu") return loadBert(cfg, weights, opt);
  CudaOptions co = cuda;
  if (device == "cuda" || device == "auto") {
    // keep co.device
  } else if (device.compare(0, 5, "cuda:") == 0 && device.size() > 5 && device.size() < 9 &&
             device.find_first_not_of("0123456789", 5) == std::string::npos) {
    co.device = std::atoi(device.c_str() + 5);
  } else {
    throw Error("device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got '" + device + "'");
  }
  if (device != "auto") return loadBertCuda(cfg, weights, co);
  const CudaStatus st = cudaStatus();
  if (!st.available) {
    if (note) *note = "device 'auto' → cpu: " + st.reason;
    return loadBert(cfg, weights, opt);
  }
  try {
    return loadBertCuda(cfg, weights, co);
  } catch (const Error& e) {
    if (note) *note = std::string("device 'auto' → cpu: ") + e.what();
    return loadBert(cfg, weights, opt);
  }
}

std::string modelDevice(const Model& m) {
  if (const auto* c = dynamic_cast<const CudaBertModel*>(&m)) return "cuda:" + std::to_string(c->device());
  return "cpu";
}

std::string modelDeviceName(const Model& m) {
  if (const auto* c = dynamic_cast<const CudaBertModel*>(&m)) return c->name();
  return "";
}

}  // namespace kst
