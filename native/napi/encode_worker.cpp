#include "encode_worker.h"

#include <cstring>
#include <new>

namespace kstnapi {

EncodeWorker::EncodeWorker(Napi::Env env, std::shared_ptr<kst::Model> model, EncodeJob job)
    : Napi::AsyncWorker(env, "kst:encode"),
      model_(std::move(model)),
      job_(std::move(job)),
      deferred_(Napi::Promise::Deferred::New(env)) {}

EncodeWorker::~EncodeWorker() { delete[] out_; }

void EncodeWorker::Execute() {
  try {
    const int batch = static_cast<int>(job_.lengths.size());
    const size_t rows = job_.pooling == 0 ? job_.ids.size() : static_cast<size_t>(batch);
    const size_t dim = static_cast<size_t>(model_->outputDim(job_.pooling));
    out_len_ = rows * dim;
    out_ = new float[out_len_ > 0 ? out_len_ : 1];
    if (batch == 0) return;
    kst::EncodeRequest req;
    req.ids = job_.ids.data();
    req.lengths = job_.lengths.data();
    req.token_types = job_.token_types.empty() ? nullptr : job_.token_types.data();
    req.batch = batch;
    req.total_tokens = job_.ids.size();
    req.pooling = job_.pooling;
    req.normalize = job_.normalize;
    model_->encode(req, out_, out_len_);
  } catch (const kst::Error& e) {
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    SetError("out of memory allocating the encode output");
  } catch (const std::exception& e) {
    SetError(std::string("native error: ") + e.what());
  } catch (...) {
    SetError("native error: unknown C++ exception");
  }
  // The worker's reference to the model is dropped on the JS thread with the worker itself; a
  // disposed model is freed then if this was the last run holding it.
}

void EncodeWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  const size_t nbytes = out_len_ * sizeof(float);
  Napi::ArrayBuffer ab;
  try {
    float* data = out_;
    ab = Napi::ArrayBuffer::New(env, data, nbytes, [](Napi::Env, void* p) { delete[] static_cast<float*>(p); });
    out_ = nullptr;  // owned by the ArrayBuffer now
  } catch (const Napi::Error&) {
    // Runtimes that forbid external buffers (e.g. V8 sandbox): fall back to one copy.
    ab = Napi::ArrayBuffer::New(env, nbytes);
    if (nbytes) std::memcpy(ab.Data(), out_, nbytes);
  }
  deferred_.Resolve(Napi::Float32Array::New(env, out_len_, ab, 0));
}

void EncodeWorker::OnError(const Napi::Error& e) {
  Napi::HandleScope scope(Env());
  deferred_.Reject(e.Value());
}

}  // namespace kstnapi
