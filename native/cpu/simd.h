// Shared SIMD helpers for the *_avx2.cpp / *_avx512.cpp files. Everything here has internal
// linkage (anonymous namespace): these files are compiled with wider instruction sets and must not
// share inline code with the baseline files (see ops.h).
#pragma once

#if !defined(KST_NO_X86) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

// GCC 12 warns falsely about _mm512_undefined_* inside its own AVX-512 headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // same, for _mm512_cvtepi32_ps (the int8 epilogue)
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace kst {
namespace cpu {
namespace {

inline int imin(int a, int b) { return a < b ? a : b; }
inline int64_t imin64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }

// The micro-kernels are templates over their tile's row count R; a tile's run-time row count picks one with
// withRows<MaxR>(rows, [&](auto R) { kernel<decltype(R)::value>(...); }): R = rows, clamped to [1, MaxR].
template <int MaxR, typename F>
inline __attribute__((always_inline)) void withRows(int rows, F&& f) {
  if constexpr (MaxR > 1) {
    if (rows < MaxR) return withRows<MaxR - 1>(rows, f);
  }
  f(std::integral_constant<int, MaxR>());
}

// Coefficients shared by the vector exp / erfc below.
// exp: Cody–Waite reduction x = n·ln2 + r, then a degree-6 polynomial (≈1 ulp on [-ln2/2, ln2/2]).
constexpr float kExpHi = 88.0f, kExpLo = -87.3365447505531f;
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kE0 = 1.9875691500E-4f, kE1 = 1.3981999507E-3f, kE2 = 8.3334519073E-3f, kE3 = 4.1665795894E-2f,
                kE4 = 1.6666665459E-1f, kE5 = 5.0000001201E-1f;
// erfc(z), z >= 0: t·exp(-z² + P(t)), t = 1/(1 + z/2), P the 10-term Chebyshev fit with fractional
// error < 1.2e-7 over all z (Press et al., Numerical Recipes §6.2).
constexpr float kC[10] = {-1.26551223f, 1.00002368f, 0.37409196f,  0.09678418f, -0.18628806f,
                          0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
// The vector GELU (erf form) takes erfc(|z|) as 0 from |z| = 9 (x ≤ −9·√2 ≈ −12.73): there erfc < 4.2e-37 and the
// exact GELU is under 2.7e-36 in size, and computing it went through subnormal floats (t · exp(−z² + P) under
// 1.2e-38 from x ≈ −13.2; exp itself is clamped to normal results), which this CPU handles in microcode, per
// instruction: 512 × 3072 × 768 GEMM + GELU, 2 threads, pre-activations of standard deviation ≈ 9 (8 % below −13,
// so 3 of 4 vectors of 16 hold one), ran at 0.48-0.52 of the plain GEMM's speed (AVX2 kernels: 0.58), and at
// 0.92-0.93 (0.93) with the cut; calls alternating in one process. The reference's 0.5·x·(1 + erf) form (and
// PyTorch's) is already 0 from x ≈ −5.9. Up to |z| = 9 every step stays a normal float (exp's argument ≥ −82.2,
// t ≥ 0.18).
constexpr float kGeluErfcMax = 9.f;

#ifdef __AVX2__
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLo)), _mm256_set1_ps(kExpHi));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kE0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE5));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  // n in [-126, 127]: 2^n = (n + 127) << 23
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// erfc(z) for z >= 0.
inline __m256 erfc_pos8(__m256 z) {
  const __m256 one = _mm256_set1_ps(1.f);
  __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), one));
  __m256 p = _mm256_set1_ps(kC[9]);
  for (int i = 8; i >= 0; --i) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kC[i]));
  __m256 arg = _mm256_fnmadd_ps(z, z, p);  // -z² + P(t)
  return _mm256_mul_ps(t, exp8(arg));
}

// Exact GELU 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(-x/√2), accurate in relative terms for x > −9·√2; below that
// −0 (see kGeluErfcMax).
inline __m256 gelu_erf8(__m256 x) {
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));
  const __m256 az = _mm256_min_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), z), _mm256_set1_ps(kGeluErfcMax));
  const __m256 e = _mm256_and_ps(erfc_pos8(az), _mm256_cmp_ps(az, _mm256_set1_ps(kGeluErfcMax), _CMP_LT_OQ));
  // erfc(z) = e for z >= 0, 2 - e for z < 0
  const __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 ec = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.f), e), neg);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), ec);
}

// gelu_new 0.5·x·(1 + tanh(u)) = x / (1 + exp(-2u)), u = √(2/π)(x + 0.044715x³).
inline __m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                                 _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  const __m256 e = exp8(_mm256_mul_ps(u, _mm256_set1_ps(-2.f)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), e));
}
#endif  // __AVX2__

#ifdef __AVX512F__
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLo)), _mm512_set1_ps(kExpHi));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kE0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE5));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

inline __m512 gelu_erf16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(-0.70710678118654752f));
  const __m512 az = _mm512_min_ps(_mm512_abs_ps(z), _mm512_set1_ps(kGeluErfcMax));
  __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(az, _mm512_set1_ps(0.5f), one));
  __m512 p = _mm512_set1_ps(kC[9]);
  for (int i = 8; i >= 0; --i) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(kC[i]));
  const __m512 e = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(az, _mm512_set1_ps(kGeluErfcMax), _CMP_LT_OQ), t,
                                       exp16(_mm512_fnmadd_ps(az, az, p)));
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 ec = _mm512_mask_sub_ps(e, neg, _mm512_set1_ps(2.f), e);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), ec);
}

inline __m512 gelu_tanh16(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                                 _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  const __m512 e = exp16(_mm512_mul_ps(u, _mm512_set1_ps(-2.f)));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), e));
}
// 16 × 16 transpose in registers: r[i] lane j → r[j] lane i (unpack ps, unpack pd, then two rounds of 128-bit
// lane shuffles). Packs x for the fp32 GEMM (gemm_avx512.cpp) and K for attention (attention_avx512.cpp).
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}
#endif  // __AVX512F__

}  // namespace
}  // namespace cpu
}  // namespace kst

#endif  // x86
