// SPDX-License-Identifier: BSD-3-Clause
// Lower median of many small integer blocks at once (2..kMaxSmallMode values):
// a sorting network of min/max steps over block-position-major values, with
// blocks in SIMD lanes. Values arrive as for SmallModeBlocks: v[j * pitch + i]
// is value j of block i.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "mipmaker/element.h"
#include "mipmaker/isa.h"
#include "mipmaker/small_mode.h"
#include "mipmaker/sorting_network.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// One block at a time; the portable path and the SIMD path's leftover blocks.
// Sparse: zeros become the type's maximum, so they sort last, and the median
// is element (count - 1) / 2 of the nonzero `count`; a pad chosen there has
// the same value as the real maximum it ties with. No nonzero value: 0.
template <typename T, bool kSparse>
inline void SmallMedianBlocksScalar(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os,
                                    int64_t pitch, int n, const SortingNetwork& net) {
  using V = typename Element<T>::Value;
  constexpr V kTop = std::numeric_limits<V>::max();
  for (int64_t i = 0; i < m; ++i) {
    V x[kMaxSmallMode];
    int count = n;
    for (int j = 0; j < n; ++j) {
      const V value = v[j * pitch + i];
      if constexpr (kSparse) {
        count -= value == V(0);
        x[j] = value == V(0) ? kTop : value;
      } else {
        x[j] = value;
      }
    }
    for (int c = 0; c < net.size; ++c) {
      const V a = x[net.lo[c]], b = x[net.hi[c]];
      x[net.lo[c]] = std::min(a, b);
      x[net.hi[c]] = std::max(a, b);
    }
    out[i * os] = Element<T>::Store(count == 0 ? V(0) : x[(count - 1) / 2]);
  }
}

#if defined(MIPMAKER_HAVE_AVX2)
// kVectorBytes of blocks per step: 32 u8 blocks, or 4 u64 blocks (64 and 8 in
// the AVX-512 build). GCC lowers the min/max selects to vpminu*/vpmaxu* (in
// AVX2 a compare and blend for 64-bit lanes; AVX-512 has vpminuq).
template <typename T, bool kSparse, int kN = 0>
inline void SmallMedianBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os, int n,
                              const SortingNetwork& net) {
  using V = typename Element<T>::Value;
  using S = std::make_signed_t<V>;
  typedef V UV __attribute__((vector_size(kVectorBytes)));
  typedef S SV __attribute__((vector_size(kVectorBytes)));
  constexpr int kW = kVectorBytes / sizeof(V);
  if constexpr (kN > 0) n = kN;
  if (n < 2 || n > kMaxSmallMode) __builtin_unreachable();
  int64_t i0 = 0;
  for (; i0 + kW <= m; i0 += kW) {
    UV x[kMaxSmallMode];
    SV count = SV{} + static_cast<S>(n);
    for (int j = 0; j < n; ++j) {
      std::memcpy(&x[j], v + j * m + i0, sizeof(UV));
      if constexpr (kSparse) {
        const SV zero = x[j] == UV{};  // -1 where zero
        count += zero;
        x[j] = zero ? UV{} + std::numeric_limits<V>::max() : x[j];
      }
    }
    if constexpr (kN > 0) {
      SortInLanes<kN>(x);
    } else {
      SortInLanes(x, net);
    }
    UV med;
    if constexpr (kSparse) {
      // Lane-wise index (count - 1) / 2; -1 (no nonzero value) picks nothing.
      const SV k = (count - 1) >> 1;
      med = UV{};
      for (int j = 0; j < (n + 1) / 2; ++j) med = (k == static_cast<S>(j)) ? x[j] : med;
    } else {
      med = x[(n - 1) / 2];
    }
    if (os == 1) {
      std::memcpy(out + i0, &med, sizeof(UV));
    } else {
      for (int l = 0; l < kW; ++l) std::memcpy(out + (i0 + l) * os, &med[l], sizeof(V));
    }
  }
  if (i0 < m) SmallMedianBlocksScalar<T, kSparse>(v + i0, m - i0, out + i0 * os, os, m, n, net);
}
#else
template <typename T, bool kSparse, int kN = 0>
inline void SmallMedianBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os, int n,
                              const SortingNetwork& net) {
  SmallMedianBlocksScalar<T, kSparse>(v, m, out, os, m, n, net);
}
#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
