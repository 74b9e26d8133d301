// SPDX-License-Identifier: BSD-3-Clause
// Mode of many small blocks at once (2x2, 2x2x2, 3x3x3, 4x4: up to 32 values):
// pairwise equality counts and a select chain, or for 4x4 and 3x3x3 blocks a
// sorting network and a run count, across blocks in SIMD lanes.
// Values arrive block-position-major: v[j * m + i] is value j of block i.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mipmaker/element.h"
#include "mipmaker/isa.h"
#include "mipmaker/sorting_network.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// The largest block (in values) that the SIMD paths take. Counting pairs
// costs n(n-1)/2 vector compares per SIMD group of blocks, which beats
// sorting each block one at a time up to about this size (u64 random labels,
// 3x3x3, 27 values: 34 MVx/s sorting, 206-230 counting pairs, compare.py);
// sorting in lanes with a network unrolled at compile time beats it from 16
// values (kMinSortedMode).
constexpr int kMaxSmallMode = 32;

// Blocks of kN values, kN from here up (4x4, 3x3x3), sort each block in
// its lanes with an unrolled network and take the longest run: for 27 values
// about 150 comparators (two ops each) and 26 run steps, where counting pairs
// takes 351 compares and adds. Not for 64-bit values without AVX-512, which
// has no 64-bit min/max (a compare, a sign flip and two blends each).
// Blocks held in L1, random labels, best of 100, ns per block, pairs ->
// sorted: AVX-512 u64 16 values 21 -> 13, 27 values 51 -> 29; u32 27 values
// 18-20 -> 12-16 (AVX2 and AVX-512), u8 5.6-6.3 -> 4.4-4.6; but AVX2 u64 27
// values 45 -> 66.
constexpr int kMinSortedMode = 16;
template <typename V>
constexpr bool SortsBlocks(int n) {
  return n >= kMinSortedMode && (sizeof(V) < 8 || kVectorBytes >= 64);
}

// The mode of the blocks in the lanes of x(0..kN): the longest run of equal
// values once sorted, ties to the first run (the smallest value, in V's
// order, as the pair counts' tie rule); with kSparse zeros never win, and a
// lane of zeros gives 0.
template <typename V, typename SV, bool kSparse, int kN, typename X>
inline SV SortedMode(X&& x) {
  typedef V UV __attribute__((vector_size(sizeof(SV))));
  UV y[kN];
  for (int j = 0; j < kN; ++j) {
    const SV xj = x(j);
    std::memcpy(&y[j], &xj, sizeof(UV));
  }
  SortInLanes<kN>(y);
  const SV one = SV{} + 1;
  SV run = one, best_run = one;
  UV best = y[0];
  if constexpr (kSparse) best_run = (y[0] != UV{}) & one;
  for (int j = 1; j < kN; ++j) {
    const SV same = y[j] == y[j - 1];
    run = same ? run + 1 : one;
    SV take = run > best_run;
    if constexpr (kSparse) take &= y[j] != UV{};
    best = take ? y[j] : best;
    best_run = take ? run : best_run;
  }
  if constexpr (kSparse) best = best_run == SV{} ? UV{} : best;
  SV out;
  std::memcpy(&out, &best, sizeof(SV));
  return out;
}

// Mode of `m` full blocks of kN values stored block-position-major
// (v[j * pitch + i] is value j of block i), computed for all blocks at once
// with selects only, so the loop over blocks vectorises. Counting all pairs is
// cheaper than sorting for blocks this small. NaN never equals itself, so it
// is never counted; with `kSparse` zeros are not candidates either. A block
// with no candidate gives NaN if it holds one, else 0. kN == 0 takes the block
// size from `n_rt` (2..kMaxSmallMode); kN = 4 and 8 unroll fully;
// kN >= kMinSortedMode sorts (SortedMode).
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocksScalar(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os,
                                  int64_t pitch = -1, int n_rt = kN) {
  using V = typename Element<T>::Value;
  constexpr int kCap = kN > 0 ? kN : kMaxSmallMode;
  const int n = kN > 0 ? kN : n_rt;
  if (pitch < 0) pitch = m;  // value j of block i is v[j * pitch + i]
  for (int64_t i = 0; i < m; ++i) {
    V x[kCap];
    for (int j = 0; j < n; ++j) x[j] = v[j * pitch + i];
    int c[kCap];
    for (int j = 0; j < n; ++j) c[j] = 0;
    for (int j = 0; j < n; ++j) {
      for (int k = j; k < n; ++k) {
        const int e = x[j] == x[k];
        c[j] += e;
        c[k] += (k != j) ? e : 0;
      }
    }
    V best = V(0);
    int best_count = 0;
    bool saw_nan = false;
    for (int j = 0; j < n; ++j) {
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
// GCC/Clang vector extensions: one vector of blocks per step (kVectorBytes:
// 32 bytes, 64 in the AVX-512 build, where the compares go to mask
// registers and 64-bit lanes compare natively). Only
// integer labels (and bool) come here; floats need NaN rules and take the
// scalar path. Unsigned values are compared as signed after flipping the
// sign bit, because AVX2 has no unsigned 64-bit compare.
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os,
                            int n_rt = kN) {
  using V = typename Element<T>::Value;
  if constexpr (!std::is_integral_v<V> || sizeof(T) != sizeof(V)) {
    SmallModeBlocksScalar<T, kSparse, kN>(v, m, out, os, -1, n_rt);
  } else {
    using S = std::make_signed_t<V>;
    typedef S SV __attribute__((vector_size(kVectorBytes)));
    constexpr int kW = kVectorBytes / sizeof(V);
    constexpr int kCap = kN > 0 ? kN : kMaxSmallMode;
    const int n = kN > 0 ? kN : n_rt;
    // The caller guarantees it; telling GCC keeps it from warning that
    // c[0] and c[1] might be unset.
    if (n < 2 || n > kCap) __builtin_unreachable();
    const S sign = std::is_unsigned_v<V> ? static_cast<S>(V(1) << (sizeof(V) * 8 - 1)) : S(0);
    const SV flip = SV{} + sign;
    int64_t i0 = 0;
    for (; i0 + kW <= m; i0 += kW) {
      // Values are read where they lie (L1), not copied to a local array:
      // the compares take them as memory operands.
      const V* at = v + i0;
      auto x = [at, m](int j) {
        SV r;
        std::memcpy(&r, at + j * m, sizeof(SV));
        return r;
      };
      SV best;
      const SV x0 = x(0);
      SV same = x0 == x0;
      for (int j = 1; j < n; ++j) same &= x0 == x(j);
      bool uniform = true;
      for (int l = 0; l < kW; ++l) uniform &= same[l] != 0;
      if (uniform && !kSparse) {  // segmentations are mostly uniform blocks
        best = x0;
      } else if constexpr (SortsBlocks<V>(kN)) {
        best = SortedMode<V, SV, kSparse, kN>(x);
      } else {
        // Forward counts: c[j] counts x[j] among x[j..]. The first
        // occurrence of a value gets its full count and later ones less, so
        // the selection below (highest count, ties to the smaller value)
        // picks the same label as with full counts, for half the additions.
        SV c[kCap];
        int j = 0;
        // Four counts at a time: four independent add chains per load of x[k].
        for (; j + 4 <= n; j += 4) {
          const SV a0 = x(j), a1 = x(j + 1), a2 = x(j + 2), a3 = x(j + 3);
          SV c0 = SV{} - (a0 == a1) - (a0 == a2) - (a0 == a3);  // compares give -1 where equal
          SV c1 = SV{} - (a1 == a2) - (a1 == a3);
          SV c2 = SV{} - (a2 == a3);
          SV c3 = SV{};
          for (int k = j + 4; k < n; ++k) {
            const SV xk = x(k);
            c0 -= a0 == xk;
            c1 -= a1 == xk;
            c2 -= a2 == xk;
            c3 -= a3 == xk;
          }
          c[j] = c0;
          c[j + 1] = c1;
          c[j + 2] = c2;
          c[j + 3] = c3;
        }
        for (; j < n; ++j) {
          const SV aj = x(j);
          SV cj = SV{};
          for (int k = j + 1; k < n; ++k) cj -= aj == x(k);
          c[j] = cj;
        }
        if constexpr (kSparse) {
          for (int t = 0; t < n; ++t) c[t] = (x(t) != 0) ? c[t] + 1 : SV{};
        }
        // The best (count, then smallest key) in two independent chains over
        // even and odd j, merged at the end: the order is total, so any
        // grouping picks the same value, and two chains halve the latency.
        auto better = [](SV& bc, SV& bkey, SV cj, SV key) {
          const SV take = (cj > bc) | ((cj == bc) & (key < bkey));
          bkey = take ? key : bkey;
          bc = take ? cj : bc;
        };
        SV bc0 = c[0], bkey0 = x0 ^ flip, bc1 = c[1], bkey1 = x(1) ^ flip;
        int t = 2;
        for (; t + 2 <= n; t += 2) {
          better(bc0, bkey0, c[t], x(t) ^ flip);
          better(bc1, bkey1, c[t + 1], x(t + 1) ^ flip);
        }
        if (t < n) better(bc0, bkey0, c[t], x(t) ^ flip);
        better(bc0, bkey0, bc1, bkey1);
        best = bkey0 ^ flip;
        if constexpr (kSparse) best = (bc0 == 0) ? SV{} : best;
      }
      if (os == 1) {
        std::memcpy(out + i0, &best, sizeof(SV));
      } else {
        for (int l = 0; l < kW; ++l) std::memcpy(out + (i0 + l) * os, &best[l], sizeof(V));
      }
    }
    if (i0 < m) SmallModeBlocksScalar<T, kSparse, kN>(v + i0, m - i0, out + i0 * os, os, m, n);
  }
}
#else
template <typename T, bool kSparse, int kN>
inline void SmallModeBlocks(const typename Element<T>::Value* v, int64_t m, T* out, int64_t os,
                            int n_rt = kN) {
  SmallModeBlocksScalar<T, kSparse, kN>(v, m, out, os, -1, n_rt);
}
#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
