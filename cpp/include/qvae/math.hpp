// Vector float kernels (GCC/Clang vector extensions): 8 floats per vector, which the
// compiler maps to one AVX2 register or two SSE2 registers depending on the clone.
#pragma once

#include <cstdint>

// Hot kernels are compiled for AVX2+FMA and for baseline x86-64 (the RBM Gibbs kernel also for
// AVX-512, below) and picked at load time
// (QVAE_NO_TARGET_CLONES, CMake option QVAE_TARGET_CLONES=OFF: baseline only, which CI tests).
// Clones need ifunc, which glibc has and musl has not (<cstdint> above defines __GLIBC__ on glibc).
#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__) && !defined(QVAE_NO_TARGET_CLONES)
#define QVAE_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
// Also for AVX-512 machines (x86-64-v4: 32 vector registers, one-instruction rotates), where the
// RBM Gibbs kernel measured ~15% faster; the CT-QMC walk measured no faster there.
#define QVAE_MULTIVERSION_V4 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QVAE_MULTIVERSION
#define QVAE_MULTIVERSION_V4
#endif

// Vector helpers are always inlined: an out-of-line copy would be shared by clones built for
// different instruction sets, which pass vectors in different registers.
#if defined(__GNUC__)
#define QVAE_VECTOR_INLINE inline __attribute__((always_inline))
#else
#define QVAE_VECTOR_INLINE inline
#endif

namespace qvae {

using vfloat = float __attribute__((vector_size(32)));
using vint = std::int32_t __attribute__((vector_size(32)));
using vfloat_u = float __attribute__((vector_size(32), aligned(4)));  // unaligned access
constexpr int kVec = 8;

QVAE_VECTOR_INLINE vfloat vload(const float* p) { return *reinterpret_cast<const vfloat_u*>(p); }
QVAE_VECTOR_INLINE void vstore(float* p, vfloat v) { *reinterpret_cast<vfloat_u*>(p) = v; }
QVAE_VECTOR_INLINE vfloat vbroadcast(float x) { return vfloat{} + x; }
QVAE_VECTOR_INLINE vfloat vselect(vint mask, vfloat a, vfloat b) {
  return reinterpret_cast<vfloat>((mask & reinterpret_cast<vint>(a)) |
                                  (~mask & reinterpret_cast<vint>(b)));
}

// exp(x), |rel err| < 2 ulp on [-87, 87] (Cephes expf reduction and polynomial); inputs are
// clamped to that range, far beyond where a logistic saturates in float.
QVAE_VECTOR_INLINE vfloat vexp(vfloat x) {
  const vfloat lo = vbroadcast(-87.0f), hi = vbroadcast(87.0f);
  x = vselect(x < lo, lo, x);
  x = vselect(x > hi, hi, x);
  // n = round(x / ln 2) by the 1.5*2^23 trick; its integer sits in the low mantissa bits.
  const vfloat magic = vbroadcast(12582912.0f);
  vfloat t = x * 1.44269504088896341f + magic;
  vfloat n = t - magic;
  vint ni = reinterpret_cast<vint>(t) - reinterpret_cast<vint>(magic);
  vfloat r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vfloat p = vbroadcast(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  vint e = (ni + 127) << 23;
  return p * reinterpret_cast<vfloat>(e);
}

// log(x) for x > 0 normal floats, |abs err| < 2e-7 near 1 (Cephes logf): mantissa in
// [sqrt(1/2), sqrt(2)) and a degree-8 polynomial.
QVAE_VECTOR_INLINE vfloat vlog(vfloat x) {
  vint bits = reinterpret_cast<vint>(x);
  vint e = ((bits >> 23) & 0xff) - 126;
  vfloat m = reinterpret_cast<vfloat>((bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  vint small = m < 0.70710678f;
  vfloat ef = __builtin_convertvector(e, vfloat) - vselect(small, vbroadcast(1.0f), vfloat{});
  m = m + vselect(small, m, vfloat{}) - 1.0f;
  vfloat z = m * m;
  vfloat y = vbroadcast(7.0376836292e-2f);
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y + ef * -2.12194440e-4f;
  y = y - 0.5f * z;
  return m + y + ef * 0.693359375f;
}

// Heat-bath draws, true (all bits set) with probability sigmoid(field), given u uniform in (0,1):
// u < 1/(1+e^{-f})  <=>  u (1 + e^{-f}) < 1.
QVAE_VECTOR_INLINE vint vlogistic_take(vfloat field, vfloat u) { return u * (1.0f + vexp(-field)) < 1.0f; }

// The same draws as floats 1.0 / 0.0.
QVAE_VECTOR_INLINE vfloat vbernoulli_logistic(vfloat field, vfloat u) {
  return reinterpret_cast<vfloat>(vlogistic_take(field, u) & reinterpret_cast<vint>(vbroadcast(1.0f)));
}

}  // namespace qvae
