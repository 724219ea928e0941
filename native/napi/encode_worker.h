// Napi::AsyncWorker that runs kst::Model::encode off the JS thread and resolves a Promise with a
// Float32Array. Inputs are copied into the worker when it is created, so the caller may reuse,
// transfer or detach its typed arrays at once; the output buffer is allocated in Execute and handed
// to JS as an external ArrayBuffer (no copy) in OnOK.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kst.h"

namespace kstnapi {

struct EncodeJob {
  std::vector<int32_t> ids;
  std::vector<int32_t> lengths;
  std::vector<int32_t> token_types;  // empty = all zeros
  uint32_t pooling = kst::POOL_MEAN;  // 0 = token embeddings
  bool normalize = false;
};

class EncodeWorker : public Napi::AsyncWorker {
 public:
  EncodeWorker(Napi::Env env, std::shared_ptr<kst::Model> model, EncodeJob job);
  ~EncodeWorker() override;
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  std::shared_ptr<kst::Model> model_;
  EncodeJob job_;
  Napi::Promise::Deferred deferred_;
  float* out_ = nullptr;  // owned until handed to JS in OnOK
  size_t out_len_ = 0;
};

}  // namespace kstnapi
