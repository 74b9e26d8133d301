// SPDX-License-Identifier: BSD-3-Clause
// Mode of many small blocks at once (2x2, 2x2x1, 2x2x2: 4 or 8 values):
// pairwise equality counts and a select chain, across blocks in SIMD lanes.
// Values arrive block-position-major: v[j * m + i] is value j of block i.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mipmaker/element.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Mode of `m` full blocks of kN values stored block-position-major
// (v[j * m + i] is value j of block i), computed for all blocks at once with
// selects only, so the loop over blocks vectorises. Counting all pairs is
// cheaper than sorting for blocks this small. NaN never equals itself, so it
// is never counted; with `kSparse` zeros are not candidates either. A block
// with no candidate gives NaN if it holds one, else 0.
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocksScalar(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os,
                                  int64_t pitch = -1) {
  using V = typename Element<T>::Value;
  if (pitch < 0) pitch = m;  // value j of block i is v[j * pitch + i]
  for (int64_t i = 0; i < m; ++i) {
    V x[kN];
    for (int j = 0; j < kN; ++j) x[j] = v[j * pitch + i];
    int c[kN];
    for (int j = 0; j < kN; ++j) c[j] = 0;
    for (int j = 0; j < kN; ++j) {
      for (int k = j; k < kN; ++k) {
        const int e = x[j] == x[k];
        c[j] += e;
        c[k] += (k != j) ? e : 0;
      }
    }
    V best = V(0);
    int best_count = 0;
    bool saw_nan = false;
    for (int j = 0; j < kN; ++j) {
      int cj = c[j];
      if constexpr (kSparse) cj = IsZero(x[j]) ? 0 : cj;
      if constexpr (kIsFloatValue<V>) saw_nan |= (x[j] != x[j]);
      const bool take = cj > best_count || (cj == best_count && x[j] < best);
      best = take ? x[j] : best;
      best_count = take ? cj : best_count;
    }
    if constexpr (kIsFloatValue<V>) {
      if (best_count == 0) best = saw_nan ? QuietNan<V>() : V(0);
    } else if constexpr (kSparse) {
      best = best_count == 0 ? V(0) : best;
    }
    out[i * os] = Element<T>::Store(Canonical(best));
  }
}


#if defined(MIPMAKER_HAVE_AVX2)
// GCC/Clang vector extensions: one 32-byte vector of blocks per step. Only
// integer labels (and bool) come here; floats need NaN rules and take the
// scalar path. Unsigned values are compared as signed after flipping the
// sign bit, because AVX2 has no unsigned 64-bit compare.
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os) {
  using V = typename Element<T>::Value;
  if constexpr (!std::is_integral_v<V> || sizeof(T) != sizeof(V)) {
    SmallModeBlocksScalar<T, kSparse, kN>(v, m, out, os);
  } else {
    using S = std::make_signed_t<V>;
    typedef S SV __attribute__((vector_size(32)));
    constexpr int kW = 32 / sizeof(V);
    const S sign = std::is_unsigned_v<V> ? static_cast<S>(V(1) << (sizeof(V) * 8 - 1)) : S(0);
    const SV flip = SV{} + sign;
    int64_t i0 = 0;
    for (; i0 + kW <= m; i0 += kW) {
      SV x[kN];
      for (int j = 0; j < kN; ++j) std::memcpy(&x[j], v + j * m + i0, sizeof(SV));
      SV best;
      SV same = x[0] == x[1];
      for (int j = 2; j < kN; ++j) same &= x[0] == x[j];
      bool uniform = true;
      for (int l = 0; l < kW; ++l) uniform &= same[l] != 0;
      if (uniform && !kSparse) {  // segmentations are mostly uniform blocks
        best = x[0];
      } else {
        // Forward counts: c[j] counts x[j] among x[j..]. The first
        // occurrence of a value gets its full count and later ones less, so
        // the selection below (highest count, ties to the smaller value)
        // picks the same label as with full counts, for half the additions.
        SV c[kN];
        for (int j = 0; j < kN; ++j) c[j] = SV{};
        for (int j = 0; j < kN; ++j) {
          for (int k = j + 1; k < kN; ++k) c[j] -= x[j] == x[k];  // -1 where equal
        }
        if constexpr (kSparse) {
          for (int j = 0; j < kN; ++j) c[j] = (x[j] != 0) ? c[j] + 1 : SV{};
        }
        best = x[0];
        SV bc = c[0], bkey = x[0] ^ flip;
        for (int j = 1; j < kN; ++j) {
          const SV key = x[j] ^ flip;
          const SV take = (c[j] > bc) | ((c[j] == bc) & (key < bkey));
          best = take ? x[j] : best;
          bkey = take ? key : bkey;
          bc = take ? c[j] : bc;
        }
        if constexpr (kSparse) best = (bc == 0) ? SV{} : best;
      }
      if (os == 1) {
        std::memcpy(out + i0, &best, sizeof(SV));
      } else {
        for (int l = 0; l < kW; ++l) std::memcpy(out + (i0 + l) * os, &best[l], sizeof(V));
      }
    }
    if (i0 < m) SmallModeBlocksScalar<T, kSparse, kN>(v + i0, m - i0, out + i0 * os, os, m);
  }
}
#else
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os) {
  SmallModeBlocksScalar<T, kSparse, kN>(v, m, out, os);
}
#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
