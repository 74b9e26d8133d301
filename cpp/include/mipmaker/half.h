// SPDX-License-Identifier: BSD-3-Clause
// IEEE 754 binary16 storage with exact widening and round-to-nearest-even
// narrowing; C++17 has no half type, and the kernels must not depend on F16C.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "mipmaker/isa.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

struct Half {
  uint16_t bits;
};

inline float HalfToFloat(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  const uint32_t man = h.bits & 0x3ffu;
  uint32_t out;
  if (exp == 0x1f) {
    out = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    out = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    out = sign;
  } else {
    // Subnormal half: exact in float, so scaling by 2^-24 is exact too.
    float f = std::ldexp(static_cast<float>(man), -24);
    std::memcpy(&out, &f, 4);
    out |= sign;
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

// Correctly rounded (nearest, ties to even) double -> half. Taking a double
// avoids double rounding when a float64 mean is narrowed straight to half.
inline Half DoubleToHalf(double d) {
  uint64_t x;
  std::memcpy(&x, &d, 8);
  const uint16_t sign = static_cast<uint16_t>((x >> 48) & 0x8000u);
  const int exp = static_cast<int>((x >> 52) & 0x7ff);
  uint64_t man = x & ((uint64_t{1} << 52) - 1);
  if (exp == 0x7ff) {
    return Half{static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0u))};
  }
  const int e = exp - 1023;  // unbiased exponent
  if (e > 15) return Half{static_cast<uint16_t>(sign | 0x7c00u)};
  if (exp == 0) return Half{sign};  // double subnormals are far below half's range
  man |= uint64_t{1} << 52;         // implicit bit
  // Number of low mantissa bits to drop: normal halves keep 10 fraction
  // bits; subnormals (e < -14) keep fewer.
  int shift = 42;
  int he = e + 15;
  if (he <= 0) {
    shift += 1 - he;
    he = 0;
  }
  if (shift > 63) return Half{sign};
  uint64_t kept = man >> shift;
  const uint64_t rem = man & ((uint64_t{1} << shift) - 1);
  const uint64_t halfway = uint64_t{1} << (shift - 1);
  if (rem > halfway || (rem == halfway && (kept & 1))) ++kept;
  // `kept` includes the implicit bit for normals; carries roll into the
  // exponent field naturally (and to inf at the top).
  uint32_t bits;
  if (he == 0) {
    bits = static_cast<uint32_t>(kept);  // subnormal (may round up to the smallest normal)
  } else {
    bits = (static_cast<uint32_t>(he) << 10) + static_cast<uint32_t>(kept - (uint64_t{1} << 10));
  }
  if (bits >= 0x7c00u) bits = 0x7c00u;
  return Half{static_cast<uint16_t>(sign | bits)};
}

inline Half FloatToHalf(float f) { return DoubleToHalf(static_cast<double>(f)); }

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
