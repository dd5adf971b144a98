// Shared pieces of the fused LSTM loops: vectorisable activations and small helpers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <c10/util/Exception.h>

namespace lstmlab_fused {


// exp for float without a library call, so that the gate loops vectorise (AVX-512:
// 16 lanes). Cephes' expf: n = round(x / ln 2), r = x - n ln 2 (split in two constants),
// a degree-6 polynomial for exp(r), times 2^n built in the exponent bits. ~2 ulp.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  union { int32_t i; float f; } scale{bits};  // 2^n (GCC vectorises this pun, not bit_cast)
  return p * scale.f;
}

// float: the vectorisable approximations; double (used by the float64 checks): libm.
inline float exp_(float x) { return exp_approx(x); }
inline double exp_(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T z) {
  // Clamped so that exp never overflows (-ffast-math assumes no inf).
  z = z < T(-60) ? T(-60) : (z > T(60) ? T(60) : z);
  return T(1) / (T(1) + exp_(-z));
}

// tanh for float, vectorisable, within ~2 ulp of tanh(x) relative to its value. Cephes'
// tanhf: for |x| >= 0.625, 1 - 2 / (exp(2|x|) + 1) with the sign of x; below, an odd
// polynomial. 1 - 2 / (exp(2x) + 1) alone is off by up to ~1e-7 in absolute terms, which
// near 0 is many ulps of tanh(x): g = tanh(z_g) and m = o tanh(c) then carried that noise
// into c and h at every step (float32 gradients noticeably less accurate than torch's).
inline float tanh_(float x) {
  const float a = x < 0.0f ? -x : x;
  const float e = exp_approx(2.0f * (a > 9.0f ? 9.0f : a));  // tanh(9) rounds to 1 in float
  const float large = 1.0f - 2.0f / (e + 1.0f);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * a + a;
  const float t = a >= 0.625f ? large : small;
  return x < 0.0f ? -t : t;
}
inline double tanh_(double x) { return std::tanh(x); }

inline bool is_valid(const int64_t* lengths, int64_t b, int64_t t) {
  return lengths == nullptr || t < lengths[b];
}

// Processing order: step k of the loop handles time index t(k).
inline int64_t time_index(int64_t k, int64_t steps, bool reverse) {
  return reverse ? steps - 1 - k : k;
}


// Calls fn(std::integral_constant<bool, peephole>, std::integral_constant<bool, coupled>),
// turning the variant flags into compile-time constants.
template <typename Fn>
void dispatch_variant(bool peephole, bool coupled, Fn&& fn) {
  if (peephole) {
    if (coupled) fn(std::true_type{}, std::true_type{});
    else fn(std::true_type{}, std::false_type{});
  } else {
    if (coupled) fn(std::false_type{}, std::true_type{});
    else fn(std::false_type{}, std::false_type{});
  }
}

// The cell's variant bits (engines/fused_extension.py `cell_bits` writes them): the coupled
// input-forget gate, and Greff et al.'s one-part-removed cells. A loop is compiled for
// each single bit (and for none): one change to the cell at a time.
constexpr int kCoupled = 1, kNoInputGate = 2, kNoForgetGate = 4, kNoOutputGate = 8, kNoInputActivation = 16,
              kNoOutputActivation = 32;

// Calls fn(std::integral_constant<bool, peephole>, std::integral_constant<int, cell>) for
// the loops that run every cell of `dispatch_cell`'s list (the plain time loops; the
// layer-norm loops take dispatch_variant: coupled or not).
template <bool P, typename Fn>
void dispatch_cell_bits(int64_t cell, Fn&& fn) {
  switch (cell) {
    case 0: fn(std::integral_constant<bool, P>{}, std::integral_constant<int, 0>{}); break;
    case kCoupled: fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kCoupled>{}); break;
    case kNoInputGate: fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kNoInputGate>{}); break;
    case kNoForgetGate: fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kNoForgetGate>{}); break;
    case kNoOutputGate: fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kNoOutputGate>{}); break;
    case kNoInputActivation:
      fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kNoInputActivation>{});
      break;
    case kNoOutputActivation:
      fn(std::integral_constant<bool, P>{}, std::integral_constant<int, kNoOutputActivation>{});
      break;
    default: TORCH_CHECK(false, "fused engine: unsupported cell bits ", cell, " (one change to the cell at a time)");
  }
}

template <typename Fn>
void dispatch_cell(bool peephole, int64_t cell, Fn&& fn) {
  if (peephole) dispatch_cell_bits<true>(cell, fn);
  else dispatch_cell_bits<false>(cell, fn);
}

inline int64_t grain(int64_t hidden) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hidden)); }

}  // namespace lstmlab_fused
