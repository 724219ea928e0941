#include "model_wrap.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "cuda_loader.h"
#include "encode_worker.h"

namespace kstnapi {
namespace {

// Largest integer a JS number holds exactly.
constexpr double kMaxSafeInteger = 9007199254740991.0;

[[noreturn]] void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void rangeError(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

std::string typeOf(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return v.IsArray() ? "array" : v.IsTypedArray() ? "typed array" : "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

Napi::Object requireObject(Napi::Env env, const Napi::Value& v, const std::string& field) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction()) typeError(env, field + " must be an object, got " + typeOf(v));
  return v.As<Napi::Object>();
}

std::string requireString(Napi::Env env, const Napi::Value& v, const std::string& field) {
  if (!v.IsString()) typeError(env, field + " must be a string, got " + typeOf(v));
  return v.As<Napi::String>().Utf8Value();
}

// An integer-valued JS number in [lo, hi].
int64_t requireInt(Napi::Env env, const Napi::Value& v, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) typeError(env, field + " must be an integer, got " + typeOf(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) typeError(env, field + " must be an integer, got " + std::to_string(d));
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    rangeError(env, field + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                        std::to_string(static_cast<long long>(d)));
  }
  return static_cast<int64_t>(d);
}

// A byte offset or count: a non-negative safe-integer number or a bigint.
uint64_t requireU64(Napi::Env env, const Napi::Value& v, const std::string& field) {
  if (v.IsBigInt()) {
    bool lossless = false;
    const uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) rangeError(env, field + " must be a non-negative 64-bit integer");
    return u;
  }
  if (!v.IsNumber()) typeError(env, field + " must be a number or bigint, got " + typeOf(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) typeError(env, field + " must be an integer");
  if (d < 0 || d > kMaxSafeInteger) rangeError(env, field + " must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

kst::DType parseDType(Napi::Env env, const std::string& s, const std::string& field) {
  if (s == "F32") return kst::DType::F32;
  if (s == "F16") return kst::DType::F16;
  if (s == "BF16") return kst::DType::BF16;
  rangeError(env, field + " must be 'F32', 'F16' or 'BF16', got '" + s + "'");
}

kst::BertConfig parseConfig(Napi::Env env, const Napi::Object& o) {
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  auto field = [&](const char* name) { return o.Get(name); };
  auto intField = [&](const char* name, int64_t lo) {
    return static_cast<int>(requireInt(env, field(name), std::string("config.") + name, lo, kMaxInt));
  };
  kst::BertConfig c;
  c.vocab_size = intField("vocab_size", 1);
  c.hidden_size = intField("hidden_size", 1);
  c.num_hidden_layers = intField("num_hidden_layers", 0);
  c.num_attention_heads = intField("num_attention_heads", 1);
  c.intermediate_size = intField("intermediate_size", 1);
  c.max_position_embeddings = intField("max_position_embeddings", 1);
  c.type_vocab_size = intField("type_vocab_size", 1);
  c.pad_token_id = intField("pad_token_id", 0);
  const Napi::Value eps = field("layer_norm_eps");
  if (!eps.IsNumber()) typeError(env, "config.layer_norm_eps must be a number, got " + typeOf(eps));
  const double e = eps.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(e) || e <= 0 || e >= 1) rangeError(env, "config.layer_norm_eps must be in (0, 1)");
  c.layer_norm_eps = static_cast<float>(e);
  const std::string act = requireString(env, field("hidden_act"), "config.hidden_act");
  if (act == "gelu") {
    c.hidden_act = kst::Activation::Gelu;
  } else if (act == "gelu_new") {
    c.hidden_act = kst::Activation::GeluNew;
  } else {
    rangeError(env, "config.hidden_act must be 'gelu' or 'gelu_new', got '" + act + "'");
  }
  const Napi::Value mt = field("model_type");
  if (!mt.IsUndefined()) {
    const std::string t = requireString(env, mt, "config.model_type");
    if (t == "bert") {
      c.model_type = kst::ModelType::Bert;
    } else if (t == "roberta" || t == "xlm-roberta") {
      c.model_type = kst::ModelType::Roberta;
    } else if (t == "distilbert") {
      c.model_type = kst::ModelType::DistilBert;
    } else {
      rangeError(env, "config.model_type must be 'bert', 'roberta', 'xlm-roberta' or 'distilbert', got '" + t + "'");
    }
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    rangeError(env, "config.hidden_size (" + std::to_string(c.hidden_size) +
                        ") must be a multiple of config.num_attention_heads (" +
                        std::to_string(c.num_attention_heads) + ")");
  }
  if (c.pad_token_id >= c.vocab_size) rangeError(env, "config.pad_token_id must be < config.vocab_size");
  return c;
}

std::vector<kst::TensorSpec> parseTensors(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) typeError(env, "tensors must be an array, got " + typeOf(v));
  const Napi::Array arr = v.As<Napi::Array>();
  std::vector<kst::TensorSpec> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string at = "tensors[" + std::to_string(i) + "]";
    const Napi::Object t = requireObject(env, arr.Get(i), at);
    kst::TensorSpec s;
    s.name = requireString(env, t.Get("name"), at + ".name");
    const std::string where = at + " (\"" + s.name + "\")";
    s.dtype = parseDType(env, requireString(env, t.Get("dtype"), where + ".dtype"), where + ".dtype");
    const Napi::Value shape = t.Get("shape");
    if (!shape.IsArray()) typeError(env, where + ".shape must be an array, got " + typeOf(shape));
    const Napi::Array sa = shape.As<Napi::Array>();
    if (sa.Length() > 8) rangeError(env, where + ".shape has too many dimensions");
    for (uint32_t d = 0; d < sa.Length(); ++d) {
      s.shape.push_back(requireInt(env, sa.Get(d), where + ".shape[" + std::to_string(d) + "]", 0,
                                   std::numeric_limits<int32_t>::max()));
    }
    s.offset = requireU64(env, t.Get("offset"), where + ".offset");
    s.nbytes = requireU64(env, t.Get("nbytes"), where + ".nbytes");
    out.push_back(std::move(s));
  }
  return out;
}

// Copies an Int32Array argument (inputs are copied so the caller may reuse or detach them at once).
std::vector<int32_t> copyInt32Array(Napi::Env env, const Napi::Value& v, const std::string& field) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    typeError(env, field + " must be an Int32Array, got " + typeOf(v));
  }
  const Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

uint32_t parsePoolingName(Napi::Env env, const std::string& s, const std::string& field) {
  if (s == "cls") return kst::POOL_CLS;
  if (s == "max") return kst::POOL_MAX;
  if (s == "mean") return kst::POOL_MEAN;
  if (s == "mean_sqrt_len") return kst::POOL_MEAN_SQRT_LEN;
  rangeError(env, field + " must be one of 'cls', 'max', 'mean', 'mean_sqrt_len', got '" + s + "'");
}

uint32_t parsePooling(Napi::Env env, const Napi::Value& v) {
  if (v.IsString()) {
    const std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "token_embeddings") return 0;
    rangeError(env, "options.pooling must be an array of modes or 'token_embeddings', got '" + s + "'");
  }
  if (!v.IsArray()) {
    typeError(env, "options.pooling must be an array of modes or 'token_embeddings', got " + typeOf(v));
  }
  const Napi::Array a = v.As<Napi::Array>();
  if (a.Length() == 0) rangeError(env, "options.pooling must name at least one mode");
  uint32_t mask = 0;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const std::string field = "options.pooling[" + std::to_string(i) + "]";
    const uint32_t m = parsePoolingName(env, requireString(env, a.Get(i), field), field);
    if (mask & m) rangeError(env, field + " repeats a mode");
    mask |= m;
  }
  return mask;
}

}  // namespace

Napi::Function ModelWrap::DefineClass(Napi::Env env) {
  return Napi::ObjectWrap<ModelWrap>::DefineClass(
      env, "Model",
      {
          InstanceMethod<&ModelWrap::Encode>("encode"),
          InstanceMethod<&ModelWrap::Info>("info"),
          InstanceMethod<&ModelWrap::Dispose>("dispose"),
          InstanceAccessor<&ModelWrap::IsDisposed>("disposed"),
      });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    if (!info.IsConstructCall()) typeError(env, "Model must be called with new");
    const Napi::Object opts = requireObject(env, info[0], "options");
    path_ = requireString(env, opts.Get("path"), "options.path");
    if (path_.empty()) rangeError(env, "options.path must not be empty");
    const kst::BertConfig cfg = parseConfig(env, requireObject(env, opts.Get("config"), "options.config"));
    kst::WeightsSource src;
    src.path = path_;
    src.tensors = parseTensors(env, opts.Get("tensors"));
    kst::Options o;
    const Napi::Value threads = opts.Get("threads");
    if (!threads.IsUndefined()) o.threads = static_cast<int>(requireInt(env, threads, "options.threads", 0, 1024));
    const Napi::Value isa = opts.Get("isa");
    if (!isa.IsUndefined()) o.isa = requireString(env, isa, "options.isa");
    const Napi::Value precision = opts.Get("precision");
    if (!precision.IsUndefined()) {
      o.precision = requireString(env, precision, "options.precision");
      if (o.precision != "fp32" && o.precision != "bf16" && o.precision != "int8") {
        rangeError(env, "options.precision must be 'fp32', 'bf16' or 'int8', got '" + o.precision + "'");
      }
    }
    // device: 'cpu' (default) | 'cuda' | 'cuda:N' | 'auto'. The CUDA library is opened only for the last three;
    // 'cuda' without a usable GPU throws with the reason, 'auto' falls back to the CPU and says why in info().
    std::string device = "cpu";
    const Napi::Value dev = opts.Get("device");
    if (!dev.IsUndefined()) device = requireString(env, dev, "options.device");
    kst::CudaOptions co;
    const Napi::Value prec = opts.Get("cudaPrecision");
    if (!prec.IsUndefined()) {
      co.precision = requireString(env, prec, "options.cudaPrecision");
      if (co.precision != "fp16" && co.precision != "bf16" && co.precision != "auto") {
        rangeError(env, "options.cudaPrecision must be 'fp16', 'bf16' or 'auto', got '" + co.precision + "'");
      }
    }
    const Napi::Value graphs = opts.Get("cudaGraphs");
    if (!graphs.IsUndefined()) {
      if (!graphs.IsBoolean()) typeError(env, "options.cudaGraphs must be a boolean, got " + typeOf(graphs));
      co.graphs = graphs.As<Napi::Boolean>().Value() ? 1 : 0;
    }
    std::unique_ptr<kst::Model> m = kst::loadBertOnDevice(cfg, src, o, device, co, &device_note_);
    if (!m) throw Napi::Error::New(env, "loadBert returned no model");
    model_ = std::shared_ptr<kst::Model>(std::move(m));
    return 0;
  });
}

std::shared_ptr<kst::Model> ModelWrap::live(Napi::Env env) const {
  if (!model_) throw Napi::Error::New(env, "model has been disposed");
  return model_;
}

Napi::Value ModelWrap::Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<kst::Model> model = live(env);
    const kst::BertConfig& cfg = model->config();
    EncodeJob job;
    job.ids = copyInt32Array(env, info[0], "ids");
    job.lengths = copyInt32Array(env, info[1], "lengths");
    const Napi::Object opts = requireObject(env, info[2], "options");
    job.pooling = parsePooling(env, opts.Get("pooling"));
    const Napi::Value norm = opts.Get("normalize");
    if (!norm.IsUndefined()) {
      if (!norm.IsBoolean()) typeError(env, "options.normalize must be a boolean, got " + typeOf(norm));
      job.normalize = norm.As<Napi::Boolean>().Value();
    }
    const Napi::Value tt = opts.Get("tokenTypes");
    if (!tt.IsUndefined() && !tt.IsNull()) {
      job.token_types = copyInt32Array(env, tt, "options.tokenTypes");
      if (job.token_types.size() != job.ids.size()) {
        rangeError(env, "options.tokenTypes has " + std::to_string(job.token_types.size()) +
                            " entries but ids has " + std::to_string(job.ids.size()));
      }
    }
    // Argument checks (not math): report bad input on the calling thread with the index at fault.
    if (job.lengths.size() > static_cast<size_t>(std::numeric_limits<int>::max())) rangeError(env, "lengths too long");
    uint64_t total = 0;
    for (size_t i = 0; i < job.lengths.size(); ++i) {
      const int32_t L = job.lengths[i];
      if (L < 1 || L > cfg.maxSequenceLength()) {
        rangeError(env, "lengths[" + std::to_string(i) + "] = " + std::to_string(L) + " must be in [1, " +
                            std::to_string(cfg.maxSequenceLength()) + "] (max_position_embeddings" +
                            (cfg.model_type == kst::ModelType::Roberta ? " - pad_token_id - 1)" : ")"));
      }
      total += static_cast<uint64_t>(L);
    }
    if (total != job.ids.size()) {
      rangeError(env, "lengths sum to " + std::to_string(total) + " but ids has " + std::to_string(job.ids.size()) +
                          " entries");
    }
    for (size_t i = 0; i < job.ids.size(); ++i) {
      if (job.ids[i] < 0 || job.ids[i] >= cfg.vocab_size) {
        rangeError(env, "ids[" + std::to_string(i) + "] = " + std::to_string(job.ids[i]) + " is out of range [0, " +
                            std::to_string(cfg.vocab_size) + ") (vocab_size)");
      }
    }
    for (size_t i = 0; i < job.token_types.size(); ++i) {
      if (job.token_types[i] < 0 || job.token_types[i] >= cfg.type_vocab_size) {
        rangeError(env, "options.tokenTypes[" + std::to_string(i) + "] = " + std::to_string(job.token_types[i]) +
                            " is out of range [0, " + std::to_string(cfg.type_vocab_size) + ") (type_vocab_size)");
      }
    }
    auto* worker = new EncodeWorker(env, std::move(model), std::move(job));
    Napi::Promise p = worker->Promise();
    worker->Queue();  // the worker deletes itself after OnOK/OnError
    return p;
  });
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<kst::Model> model = live(env);
    const kst::BertConfig& c = model->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", path_);
    o.Set("isa", kst::isaName(model->isa()));
    o.Set("threads", model->threads());
    o.Set("precision", model->precision());
    const std::string precision_note = model->precisionNote();
    if (!precision_note.empty()) o.Set("precisionNote", precision_note);
    o.Set("vocab_size", c.vocab_size);
    o.Set("hidden_size", c.hidden_size);
    o.Set("num_hidden_layers", c.num_hidden_layers);
    o.Set("num_attention_heads", c.num_attention_heads);
    o.Set("intermediate_size", c.intermediate_size);
    o.Set("max_position_embeddings", c.max_position_embeddings);
    o.Set("type_vocab_size", c.type_vocab_size);
    o.Set("pad_token_id", c.pad_token_id);
    o.Set("layer_norm_eps", c.layer_norm_eps);
    o.Set("hidden_act", c.hidden_act == kst::Activation::Gelu ? "gelu" : "gelu_new");
    o.Set("model_type", kst::modelTypeName(c.model_type));
    o.Set("max_sequence_length", c.maxSequenceLength());
    o.Set("device", kst::modelDevice(*model));
    o.Set("deviceName", kst::modelDeviceName(*model));
    if (!device_note_.empty()) o.Set("deviceNote", device_note_);
    return o;
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  // Drops this wrapper's reference; runs in flight hold their own and finish normally.
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !model_);
}

}  // namespace kstnapi
