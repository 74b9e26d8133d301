// SPDX-License-Identifier: BSD-3-Clause
// Element types of the core: one X-macro list drives the kernel table.
// Compiled per ISA: everything is inside mipmaker::MIPMAKER_ISA.
#pragma once

#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "mipmaker/half.h"
#include "mipmaker/isa.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// NumPy's bool is one byte holding 0 or 1; a distinct type keeps it out of
// the integer overloads and lets loads normalise stray non-zero bytes.
struct Bool8 {
  uint8_t bits;
};


// X(enumerator, storage type)
#define MIPMAKER_FOR_EACH_DTYPE(X)      \
  X(kBool, Bool8)           \
  X(kUInt8, uint8_t)                    \
  X(kUInt16, uint16_t)                  \
  X(kUInt32, uint32_t)                  \
  X(kUInt64, uint64_t)                  \
  X(kInt8, int8_t)                      \
  X(kInt16, int16_t)                    \
  X(kInt32, int32_t)                    \
  X(kInt64, int64_t)                    \
  X(kFloat16, Half)         \
  X(kFloat32, float)                    \
  X(kFloat64, double)                   \
  X(kComplex64, std::complex<float>)    \
  X(kComplex128, std::complex<double>)

// Element<T>: how a stored element becomes the value the reducers compute on
// (`Value`) and back. Integers and floats are their own values; bool loads as
// 0/1, float16 as float.
template <typename T>
struct Element {
  using Value = T;
  static Value Load(T x) { return x; }
  static T Store(Value v) { return v; }
};
template <>
struct Element<Bool8> {
  using Value = uint8_t;
  static Value Load(Bool8 x) { return x.bits != 0; }
  static Bool8 Store(Value v) { return Bool8{static_cast<uint8_t>(v != 0)}; }
};
template <>
struct Element<Half> {
  using Value = float;
  static Value Load(Half x) { return HalfToFloat(x); }
  static Half Store(float v) { return FloatToHalf(v); }
};

template <typename V>
struct IsComplex : std::false_type {};
template <typename F>
struct IsComplex<std::complex<F>> : std::true_type {};

template <typename V>
inline constexpr bool kIsFloatValue =
    std::is_floating_point_v<V> || IsComplex<V>::value;

// NaN test on the computed value; always false for integers.
template <typename V>
inline bool IsNan(const V& v) {
  if constexpr (std::is_floating_point_v<V>) {
    return v != v;
  } else if constexpr (IsComplex<V>::value) {
    return v.real() != v.real() || v.imag() != v.imag();
  } else {
    return false;
  }
}

template <typename V>
inline bool IsZero(const V& v) {
  return v == V(0);
}

// Strict weak order used by mode and median: numeric for reals,
// lexicographic (real, imag) for complex (NaN is removed beforehand).
template <typename V>
inline bool Less(const V& a, const V& b) {
  if constexpr (IsComplex<V>::value) {
    return a.real() < b.real() || (a.real() == b.real() && a.imag() < b.imag());
  } else {
    return a < b;
  }
}

// Mode and median treat -0.0 and 0.0 as one value; returning it as +0.0
// makes the result independent of which copy a kernel met first.
template <typename V>
inline V Canonical(const V& v) {
  if constexpr (IsComplex<V>::value) {
    using F = typename V::value_type;
    return V(v.real() == F(0) ? F(0) : v.real(), v.imag() == F(0) ? F(0) : v.imag());
  } else if constexpr (std::is_floating_point_v<V>) {
    return v == V(0) ? V(0) : v;
  } else {
    return v;
  }
}

template <typename V>
inline V QuietNan() {
  if constexpr (IsComplex<V>::value) {
    using F = typename V::value_type;
    return V(std::numeric_limits<F>::quiet_NaN(), std::numeric_limits<F>::quiet_NaN());
  } else if constexpr (std::is_floating_point_v<V>) {
    return std::numeric_limits<V>::quiet_NaN();
  } else {
    return V(0);
  }
}

// Unsigned integer of the same width, for tinybrain's bitwise label compares.
struct U128 {
  uint64_t lo, hi;
  friend bool operator==(const U128& a, const U128& b) { return a.lo == b.lo && a.hi == b.hi; }
  friend bool operator!=(const U128& a, const U128& b) { return !(a == b); }
};
template <int kBytes>
struct BitsOf;
template <> struct BitsOf<1> { using type = uint8_t; };
template <> struct BitsOf<2> { using type = uint16_t; };
template <> struct BitsOf<4> { using type = uint32_t; };
template <> struct BitsOf<8> { using type = uint64_t; };
template <> struct BitsOf<16> { using type = U128; };

inline bool IsZeroBits(const U128& v) { return v.lo == 0 && v.hi == 0; }
template <typename U>
inline bool IsZeroBits(U v) {
  return v == 0;
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
