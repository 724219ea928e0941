#include "cpu_features.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KST_X86 1
#endif

namespace kst {

namespace {
#ifdef KST_X86
uint64_t readXcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

Isa detectOnce() {
#ifdef KST_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Scalar;
  const bool osxsave = (c >> 27) & 1;
  if (!osxsave) return Isa::Scalar;
  const uint64_t xcr0 = readXcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM + YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  __builtin_cpu_init();
  const bool avx2 = os_avx && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("avx");
  if (!avx2) return Isa::Scalar;
  const bool avx512 = os_avx512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return avx512 ? Isa::Avx512 : Isa::Avx2;
#else
  return Isa::Scalar;
#endif
}
}  // namespace

Isa detectIsa() {
  static const Isa best = detectOnce();  // immutable after first call; cpuid cannot change
  return best;
}

Isa parseIsa(const std::string& s) {
  if (s == "auto" || s.empty()) return detectIsa();
  if (s == "scalar" || s == "ref") return Isa::Scalar;
  if (s == "avx2") return Isa::Avx2;
  if (s == "avx512") return Isa::Avx512;
  throw Error("unknown instruction set '" + s + "' (expected scalar, avx2, avx512 or auto)");
}

Isa effectiveIsa(const std::string& requested) {
  Isa best = detectIsa();
  Isa isa = best;
  try {
    isa = std::min(isa, parseIsa(requested));
  } catch (const Error& e) {
    throw Error(std::string("Options.isa: ") + e.what());
  }
  if (const char* env = std::getenv("KST_ISA")) {
    try {
      isa = std::min(isa, parseIsa(env));
    } catch (const Error& e) {
      throw Error(std::string("environment variable KST_ISA: ") + e.what());
    }
  }
  return std::min(isa, best);
}

}  // namespace kst
