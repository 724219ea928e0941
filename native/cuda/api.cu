// The C ABI of libkst_cuda.so (kst_cuda_api.h). No exception leaves this file: every failure becomes a status
// and a message for the loader in native/core/cuda_loader.cpp, which turns it into a kst::Error.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "bert_cuda.cuh"
#include "common.cuh"
#include "kst_cuda_api.h"

#define KST_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

struct kst_cuda_model {
  std::unique_ptr<kst::cuda::CudaModel> impl;
};

namespace {

void setErr(char* err, size_t len, const std::string& msg) {
  if (!err || len == 0) return;
  const size_t n = msg.size() < len - 1 ? msg.size() : len - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

bool noDeviceError(cudaError_t e) {
  return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError ||
         e == cudaErrorInvalidDevice || e == cudaErrorNoKernelImageForDevice || e == cudaErrorSystemNotReady ||
         e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice ||
         e == cudaErrorUnsupportedPtxVersion || e == cudaErrorDevicesUnavailable;
}

std::string driverText() {
  int d = 0, r = 0;
  cudaDriverGetVersion(&d);
  cudaRuntimeGetVersion(&r);
  char buf[160];
  if (d == 0)
    std::snprintf(buf, sizeof buf, "no NVIDIA driver found (libcuda.so.1); library built with CUDA %d.%d", r / 1000,
                  (r % 1000) / 10);
  else
    std::snprintf(buf, sizeof buf, "the driver supports CUDA %d.%d, the library was built with CUDA %d.%d", d / 1000,
                  (d % 1000) / 10, r / 1000, (r % 1000) / 10);
  return buf;
}

template <typename F>
int guard(char* err, size_t len, F&& fn) {
  try {
    fn();
    return KST_CUDA_OK;
  } catch (const kst::cuda::CudaError& e) {
    setErr(err, len, e.what());
    return e.sticky ? KST_CUDA_STICKY : KST_CUDA_ERROR;
  } catch (const std::bad_alloc&) {
    setErr(err, len, "out of host memory");
    return KST_CUDA_ERROR;
  } catch (const std::exception& e) {
    setErr(err, len, e.what());
    return KST_CUDA_ERROR;
  } catch (...) {
    setErr(err, len, "unknown C++ exception in libkst_cuda");
    return KST_CUDA_ERROR;
  }
}

// Checks that `device` exists, is sm_80 or newer and that this library has code for it.
int checkDevice(int device, char* err, size_t len) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    setErr(err, len, std::string("no usable CUDA driver or GPU: ") + cudaGetErrorName(e) + " (" +
                         cudaGetErrorString(e) + "); " + driverText());
    return KST_CUDA_NO_DEVICE;
  }
  if (device < 0 || device >= n) {
    setErr(err, len, "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) +
                         " device(s) visible; check CUDA_VISIBLE_DEVICES)");
    return KST_CUDA_NO_DEVICE;
  }
  cudaDeviceProp p;
  e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    setErr(err, len, std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(e));
    return KST_CUDA_NO_DEVICE;
  }
  if (p.major < 8) {
    setErr(err, len, std::string("GPU '") + p.name + "' is sm_" + std::to_string(p.major * 10 + p.minor) +
                         "; the CUDA backend needs sm_80 (Ampere) or newer");
    return KST_CUDA_NO_DEVICE;
  }
  return KST_CUDA_OK;
}

}  // namespace

KST_CUDA_EXPORT int kst_cuda_abi_version(void) { return KST_CUDA_ABI_VERSION; }

KST_CUDA_EXPORT int kst_cuda_probe(int* device_count, char* err, size_t err_len) {
  if (device_count) *device_count = 0;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    setErr(err, err_len,
           std::string("no usable CUDA driver or GPU: ") +
               (e != cudaSuccess ? std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")"
                                 : std::string("no devices")) +
               "; " + driverText());
    return KST_CUDA_NO_DEVICE;
  }
  if (device_count) *device_count = n;
  return KST_CUDA_OK;
}

KST_CUDA_EXPORT int kst_cuda_device_name(int device, char* buf, size_t buf_len) {
  const int rc = checkDevice(device, buf, buf_len);
  if (rc != KST_CUDA_OK && rc != KST_CUDA_NO_DEVICE) return rc;
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
    cudaGetLastError();
    return KST_CUDA_NO_DEVICE;
  }
  int d = 0;
  cudaDriverGetVersion(&d);
  char s[384];
  std::snprintf(s, sizeof s, "%s (sm_%d%d, %d SMs, %.1f GiB, driver CUDA %d.%d)", p.name, p.major, p.minor,
                p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, d / 1000, (d % 1000) / 10);
  setErr(buf, buf_len, s);
  return rc;
}

KST_CUDA_EXPORT int kst_cuda_create(const kst_cuda_config* cfg, const kst_cuda_weights* w,
                                    const kst_cuda_options* opt, kst_cuda_model** out, char* err, size_t err_len) {
  if (out) *out = nullptr;
  if (!cfg || !w || !opt || !out) {
    setErr(err, err_len, "kst_cuda_create: null argument");
    return KST_CUDA_ERROR;
  }
  const int dc = checkDevice(opt->device, err, err_len);
  if (dc != KST_CUDA_OK) return dc;
  int rc = guard(err, err_len, [&] {
    kst_cuda_model* m = new kst_cuda_model;
    try {
      m->impl = kst::cuda::createBert(*cfg, *w, *opt);
    } catch (...) {
      delete m;
      throw;
    }
    *out = m;
  });
  if (rc != KST_CUDA_OK) {
    // A failure while building the model never poisons anything else; report "no device" class errors as such
    // so that device 'auto' can fall back to the CPU.
    const cudaError_t last = cudaGetLastError();
    if (noDeviceError(last)) rc = KST_CUDA_NO_DEVICE;
    if (rc == KST_CUDA_STICKY) rc = KST_CUDA_ERROR;
  }
  return rc;
}

KST_CUDA_EXPORT int kst_cuda_encode(kst_cuda_model* m, const kst_cuda_request* req, float* out, size_t out_len,
                                    char* err, size_t err_len) {
  if (!m || !m->impl || !req) {
    setErr(err, err_len, "kst_cuda_encode: null argument");
    return KST_CUDA_ERROR;
  }
  return guard(err, err_len, [&] { m->impl->encode(*req, out, out_len); });
}

KST_CUDA_EXPORT void kst_cuda_destroy(kst_cuda_model* m) {
  try {
    delete m;
  } catch (...) {
  }
}
