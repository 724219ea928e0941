// Napi::ObjectWrap `Model`: owns a shared_ptr to a kst::Model; validates every JS argument and
// hands the work to an EncodeWorker (encode_worker.h). No math here (DESIGN rule 5).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "kst.h"

namespace kstnapi {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  // Throws a JS Error "model has been disposed" when dispose() was called.
  std::shared_ptr<kst::Model> live(Napi::Env env) const;

  // Shared with every in-flight EncodeWorker: the model is freed when the last holder lets go.
  std::shared_ptr<kst::Model> model_;
  std::string path_;
  std::string device_note_;  // why device 'auto' chose the CPU ("" otherwise)
};

// Runs fn and turns any C++ exception other than Napi::Error into a JS Error (never crash the process).
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const kst::Error& e) {
    throw Napi::Error::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("native error: ") + e.what());
  } catch (...) {
    throw Napi::Error::New(env, "native error: unknown C++ exception");
  }
}

}  // namespace kstnapi
