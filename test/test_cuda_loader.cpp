// The CUDA backend's loader and device selection (native/core/cuda_loader.cpp). Runs everywhere, GPU or not:
//   without a usable GPU: device 'cuda' fails with a message that says why and how to fix it, 'auto' gives
//   a CPU model, 'cpu' is untouched; with one: 'cuda' and 'auto' give GPU models whose embeddings match the
//   CPU's (cosine >= 0.9999 per sequence, fp16). Prints one line per check and "N passed, M failed".
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda_loader.h"
#include "cuda_test_model.h"
#include "kst.h"

#ifndef KST_CUDA_LIBRARY_PATH
#define KST_CUDA_LIBRARY_PATH ""
#endif

static int g_pass = 0, g_fail = 0;
static void check(bool ok, const std::string& name, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.empty() ? "" : "  ", detail.c_str());
  (ok ? g_pass : g_fail)++;
}

template <typename F>
static std::string errorOf(F&& fn) {
  try {
    fn();
  } catch (const kst::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a kst::Error) ") + e.what();
  }
  return "";
}

static bool has(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

int main() {
  // The library built next to this test (when nvcc was found), unless the caller chose one.
  if (!std::getenv("KST_CUDA_LIBRARY") && std::strlen(KST_CUDA_LIBRARY_PATH) > 0)
    setenv("KST_CUDA_LIBRARY", KST_CUDA_LIBRARY_PATH, 1);

  const kst::CudaStatus st = kst::cudaStatus();
  std::printf("# CUDA library: %s\n", st.library.empty() ? "(none)" : st.library.c_str());
  std::printf("# CUDA available: %s%s\n", st.available ? "yes" : "no: ", st.available ? "" : st.reason.c_str());
  for (const std::string& d : st.devices) std::printf("# device: %s\n", d.c_str());
  check(st.available || !st.reason.empty(), "cudaStatus explains why CUDA is unavailable");

  const std::string path = kst_test::tempPath("kst-cuda-loader");
  kst_test::TinyModel tm = kst_test::writeTinyBert(path, 128, 2, 2, 200);
  kst::Options opt;
  opt.threads = 1;

  std::unique_ptr<kst::Model> cpu = kst::loadBertOnDevice(tm.cfg, tm.src, opt, "cpu");
  check(cpu && kst::modelDevice(*cpu) == "cpu", "device 'cpu' gives a CPU model");

  const std::string bad = errorOf([&] { kst::loadBertOnDevice(tm.cfg, tm.src, opt, "gpu"); });
  check(has(bad, "device must be 'cpu', 'cuda', 'cuda:N' or 'auto'"), "unknown device name is rejected", bad);
  const std::string bad2 = errorOf([&] { kst::loadBertOnDevice(tm.cfg, tm.src, opt, "cuda:x"); });
  check(has(bad2, "device must be"), "malformed 'cuda:N' is rejected");

  std::string note;
  std::unique_ptr<kst::Model> autoModel = kst::loadBertOnDevice(tm.cfg, tm.src, opt, "auto", kst::CudaOptions(), &note);
  if (!st.available) {
    check(autoModel && kst::modelDevice(*autoModel) == "cpu", "device 'auto' falls back to the CPU", note);
    check(has(note, "device 'auto' → cpu"), "the fallback note says why");
    const std::string e = errorOf([&] { kst::loadBertOnDevice(tm.cfg, tm.src, opt, "cuda"); });
    check(has(e, "device 'cuda'") && has(e, "not available") && has(e, "Fixes"),
          "device 'cuda' without a GPU throws a kst::Error with the reason and fixes");
    std::printf("# message: %s\n", e.c_str());
    const std::string e1 = errorOf([&] { kst::loadBertCuda(tm.cfg, tm.src, kst::CudaOptions()); });
    check(!e1.empty() && e1.find("(not a kst::Error)") == std::string::npos, "loadBertCuda throws kst::Error");
  } else {
    check(autoModel && kst::modelDevice(*autoModel) == "cuda:0", "device 'auto' uses the GPU",
          autoModel ? kst::modelDeviceName(*autoModel) : "");
    std::unique_ptr<kst::Model> gpu = kst::loadBertOnDevice(tm.cfg, tm.src, opt, "cuda");
    check(gpu && kst::modelDevice(*gpu) == "cuda:0", "device 'cuda' gives a GPU model");
    const std::string e = errorOf([&] { kst::loadBertOnDevice(tm.cfg, tm.src, opt, "cuda:4096"); });
    check(has(e, "does not exist"), "a missing device ordinal is reported", e);
    // Parity on a few packed sequences, mean pooling.
    std::vector<int32_t> lengths = {1, 5, 17, 64};
    std::vector<int32_t> ids;
    for (int L : lengths)
      for (int i = 0; i < L; ++i) ids.push_back((i * 37 + L) % tm.cfg.vocab_size);
    kst::EncodeRequest r;
    r.ids = ids.data();
    r.lengths = lengths.data();
    r.batch = static_cast<int>(lengths.size());
    r.total_tokens = ids.size();
    r.pooling = kst::POOL_MEAN;
    const int H = tm.cfg.hidden_size;
    std::vector<float> a(lengths.size() * H), b(lengths.size() * H);
    cpu->encode(r, a.data(), a.size());
    gpu->encode(r, b.data(), b.size());
    double worst = 1;
    for (size_t s = 0; s < lengths.size(); ++s) worst = std::min(worst, kst_test::cosine(&a[s * H], &b[s * H], H));
    char buf[64];
    std::snprintf(buf, sizeof buf, "min cosine %.7f", worst);
    check(worst >= 0.9999, "GPU mean embeddings match the CPU", buf);
    // Bad input is rejected on the host, before the GPU sees it; the model stays usable.
    ids[0] = tm.cfg.vocab_size;
    const std::string ee = errorOf([&] { gpu->encode(r, b.data(), b.size()); });
    check(has(ee, "ids[0]"), "out-of-range ids are rejected before the GPU", ee);
    ids[0] = 2;
    const std::string ok = errorOf([&] { gpu->encode(r, b.data(), b.size()); });
    check(ok.empty(), "the model is still usable after a rejected call", ok);
  }
  std::remove(path.c_str());
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
