// Registers the addon's exports only; the work lives in model_wrap.cpp and encode_worker.cpp.
// No static mutable state: the addon may be loaded in several worker_threads at once.
#include <napi.h>

#include "kst.h"
#include "model_wrap.h"

namespace {

Napi::Value DetectIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return kstnapi::guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, kst::isaName(kst::detectIsa())); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", kstnapi::ModelWrap::DefineClass(env));
  exports.Set("detectIsa", Napi::Function::New(env, DetectIsa, "detectIsa"));
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(kst, Init)
