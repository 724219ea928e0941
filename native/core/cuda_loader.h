// Device selection and the CUDA backend loader (issue 4). The CUDA kernels live in a separate shared library,
// libkst_cuda.so (native/cuda, built only where nvcc exists); this file, part of the always-built core, opens
// it with dlopen only when a model asks for device 'cuda' or 'auto', so the CPU package never depends on CUDA.
//
// Where the library is looked for, in order: $KST_CUDA_LIBRARY (a path), the directory of the module that holds
// this code (kst.node: build/Release or prebuilds/<platform>/), then the dynamic linker's path.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kst.h"

namespace kst {

struct CudaOptions {
  int device = 0;                  // CUDA ordinal ("cuda:1" → 1)
  std::string precision = "auto";  // "fp16" | "bf16" | "auto" (= $KST_CUDA_PRECISION or fp16)
  int graphs = -1;                 // 1 on, 0 off, -1 = $KST_CUDA_GRAPHS (default on)
};

// Whether the CUDA backend can run here; never throws. Opens the library at most once per process.
struct CudaStatus {
  bool available = false;
  std::string library;              // path of the library that was loaded ("" if none)
  std::string reason;               // why not, when !available (names every path tried and the driver error)
  std::vector<std::string> devices; // one line per GPU, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, ...)"
};
CudaStatus cudaStatus();

// Builds the model on a GPU. Throws kst::Error with the reason and the fixes when CUDA is unavailable.
std::unique_ptr<Model> loadBertCuda(const BertConfig& cfg, const WeightsSource& weights, const CudaOptions& opt);

// device: "cpu" | "cuda" | "cuda:N" | "auto". 'auto' uses the GPU when the CUDA backend can load this model and
// the CPU otherwise (the reason goes to *note when given). 'cuda' throws instead of falling back.
std::unique_ptr<Model> loadBertOnDevice(const BertConfig& cfg, const WeightsSource& weights, const Options& opt,
                                        const std::string& device, const CudaOptions& cuda = CudaOptions(),
                                        std::string* note = nullptr);

// "cpu", or "cuda:N" for a model made by loadBertCuda; deviceName adds the GPU's description ("" on CPU).
std::string modelDevice(const Model& m);
std::string modelDeviceName(const Model& m);

}  // namespace kst
