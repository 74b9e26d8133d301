// SPDX-License-Identifier: BSD-3-Clause
// Per-method math, no loops over arrays. Two families:
//  * accumulating reducers (mean, min, max): Init / Add / Finish over a
//    running accumulator, so a block is folded one input row at a time;
//  * gathering reducers (mode, median): Reduce over the block's values,
//    with NaN (and, when sparse, zero) already removed by the loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "mipmaker/element.h"
#include "mipmaker/method.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Accumulator tiers: the caller picks the narrowest tier whose accumulator
// cannot overflow for the block size (AccumulatorTier), because narrow
// accumulators make the vertical pass several times cheaper (u8 sums of a
// 2x2x2 block fit in 16 bits). Tier 2 also takes blocks of 2^32 voxels or more.
template <typename V, int kTier>
struct IntMeanAcc {
  static constexpr bool kSigned = std::is_signed_v<V>;
  static constexpr int kBits = sizeof(V) * 8;
  template <typename S, typename U>
  using Pick = std::conditional_t<kSigned, S, U>;
  using type = std::conditional_t<
      (kBits <= 8),
      std::conditional_t<kTier == 0, Pick<int16_t, uint16_t>,
                         std::conditional_t<kTier == 1, Pick<int32_t, uint32_t>, Pick<int64_t, uint64_t>>>,
      std::conditional_t<
          (kBits <= 16),
          std::conditional_t<kTier <= 1, Pick<int32_t, uint32_t>, Pick<int64_t, uint64_t>>,
          std::conditional_t<(kBits <= 32 && kTier <= 1), Pick<int64_t, uint64_t>,
                             Pick<__int128, unsigned __int128>>>>;
};

// Per-block voxel counter of sparse reductions, as narrow as the tier allows.
template <typename V, int kTier>
using CountOf = std::conditional_t<(kTier == 0 && sizeof(V) == 1), uint16_t,
                                   std::conditional_t<kTier <= 1, uint32_t, uint64_t>>;

// The narrowest tier that holds sums (mean) and counts of `block` voxels.
template <typename V>
inline int AccumulatorTier(int64_t block, bool mean) {
  const bool fits_u32 = block < (int64_t{1} << 32);
  if constexpr (std::is_integral_v<V>) {
    if (mean) {
      const long double max_abs =
          std::max<long double>(std::numeric_limits<V>::max(),
                                -static_cast<long double>(std::numeric_limits<V>::lowest()));
      auto fits = [&](auto acc) {
        using A = decltype(acc);
        if constexpr (sizeof(A) == 16) {
          return true;
        } else {
          // +1: headroom for the rounding addend of ShiftRound.
          return (max_abs + 1) * block <= static_cast<long double>(std::numeric_limits<A>::max());
        }
      };
      if (fits(typename IntMeanAcc<V, 0>::type{}) && fits_u32) return 0;
      if (fits(typename IntMeanAcc<V, 1>::type{}) && fits_u32) return 1;
      return 2;
    }
  }
  if (sizeof(V) == 1 && block <= 0xffff) return 0;
  return fits_u32 ? 1 : 2;
}

template <typename T, int kTier>
struct MeanReducer {
  using V = typename Element<T>::Value;
  using Acc = std::conditional_t<
      std::is_integral_v<V>, typename IntMeanAcc<V, kTier>::type,
      std::conditional_t<IsComplex<V>::value, std::complex<double>, double>>;
  using Count = CountOf<V, kTier>;
  static constexpr bool kIsMean = true;

  static Acc Init() { return Acc(0); }
  static Acc Combine(Acc a, Acc b) { return a + b; }
  static Acc Add(Acc a, V v) {
    if constexpr (IsComplex<V>::value) {
      return a + std::complex<double>(v.real(), v.imag());
    } else {
      return a + static_cast<Acc>(v);
    }
  }
  // Division by 2^shift (shift >= 1) without branches, so loops over it
  // vectorise. Half to even: adding half - 1 + (q & 1) before the floor
  // shift rounds up exactly when the remainder is above half, or equal to it
  // with q odd (AccumulatorTier leaves headroom for the addend).
  template <bool kTruncate>
  static T ShiftRound(Acc sum, int shift) {
    if constexpr (kTruncate) {
      if constexpr (std::is_signed_v<Acc>) sum += (sum < 0) ? ((Acc(1) << shift) - 1) : Acc(0);
      return Element<T>::Store(static_cast<V>(sum >> shift));
    } else {
      const Acc half = Acc(1) << (shift - 1);
      return Element<T>::Store(static_cast<V>((sum + half - 1 + ((sum >> shift) & 1)) >> shift));
    }
  }
  static T Finish(Acc sum, int64_t count, Rounding rounding) {
    if constexpr (std::is_integral_v<V>) {
      const Acc n = static_cast<Acc>(count);
      Acc q = sum / n;  // truncates toward zero
      if (rounding == Rounding::kTruncate) return Element<T>::Store(static_cast<V>(q));
      Acc r = sum % n;
      if constexpr (std::is_signed_v<Acc>) {
        if (r < 0) {  // floor division, so the remainder test below is one-sided
          q -= 1;
          r += n;
        }
      }
      if (2 * r > n || (2 * r == n && (q & 1))) q += 1;
      return Element<T>::Store(static_cast<V>(q));
    } else if constexpr (IsComplex<V>::value) {
      const std::complex<double> m = sum / static_cast<double>(count);
      return T(static_cast<typename T::value_type>(m.real()),
               static_cast<typename T::value_type>(m.imag()));
    } else if constexpr (std::is_same_v<T, Half>) {
      return DoubleToHalf(sum / static_cast<double>(count));
    } else {
      return static_cast<T>(sum / static_cast<double>(count));
    }
  }
};

// Min and max ignore NaN: the accumulator starts as NaN (floats) and any
// number replaces a NaN accumulator, so NaN survives only an all-NaN block.
template <typename T, bool kMax, int kTier>
struct ExtremumReducer {
  using V = typename Element<T>::Value;
  using Acc = V;
  using Count = CountOf<V, kTier>;
  static constexpr bool kIsMean = false;
  static Acc Init() {
    if constexpr (std::is_floating_point_v<V>) {
      return std::numeric_limits<V>::quiet_NaN();
    } else {
      return kMax ? std::numeric_limits<V>::lowest() : std::numeric_limits<V>::max();
    }
  }
  static Acc Add(Acc a, V v) {
    if constexpr (std::is_floating_point_v<V>) {
      const bool take = kMax ? (v > a) : (v < a);
      return (take || a != a) ? v : a;
    } else {
      return kMax ? std::max(a, v) : std::min(a, v);
    }
  }
  static Acc Combine(Acc a, Acc b) { return Add(a, b); }
  static T Finish(Acc a, int64_t, Rounding) { return Element<T>::Store(a); }
};

// Most frequent value, ties to the smallest. Small blocks count pairs
// directly; larger ones sort (values are NaN-free, so the order is strict).
template <typename T>
struct ModeReducer {
  using V = typename Element<T>::Value;
  static T Reduce(V* v, int64_t n) {
    if (n <= 16) {
      V best = v[0];
      int64_t best_count = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t c = 0;
        for (int64_t j = 0; j < n; ++j) c += (v[j] == v[i]);
        if (c > best_count || (c == best_count && Less(v[i], best))) {
          best = v[i];
          best_count = c;
        }
      }
      return Element<T>::Store(Canonical(best));
    }
    std::sort(v, v + n, Less<V>);
    V best = v[0];
    int64_t best_count = 0;
    for (int64_t i = 0; i < n;) {
      int64_t j = i + 1;
      while (j < n && v[j] == v[i]) ++j;
      if (j - i > best_count) {  // strict: the earlier (smaller) run keeps ties
        best_count = j - i;
        best = v[i];
      }
      i = j;
    }
    return Element<T>::Store(Canonical(best));
  }
};

// Lower median: element (n-1)/2 of the sorted block, always a value present.
template <typename T>
struct MedianReducer {
  using V = typename Element<T>::Value;
  static T Reduce(V* v, int64_t n) {
    const int64_t k = (n - 1) / 2;
    std::nth_element(v, v + k, v + n, Less<V>);
    return Element<T>::Store(Canonical(v[k]));
  }
};

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
