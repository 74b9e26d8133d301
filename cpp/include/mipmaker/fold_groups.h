// SPDX-License-Identifier: BSD-3-Clause
// Folding integer rows group first: each group of f voxels along a
// contiguous row is summed (or min/max-ed) before it meets the row
// accumulator. For 8- and 16-bit means in pairs (f = 2) FoldGroupRow has
// AVX2 lines: the compiler's own vectorisation of the interleaved pairs
// spent a dozen shuffles per vector where one multiply-add does.
//
// Rows are folded one at a time. Folding two to four block rows in one pass
// into the accumulators was 2-2.5x slower on memory-resident input when
// measured for commit 040b2c0 (u8 F 2048x2048x64, 2x2x2: 25.8 against 11.3
// GVx/s). On today's host the opposite holds for pairs finished in
// registers with no accumulator row at all (pair_rows.h: f32 F 2x2x2 1130
// -> 1933 MVx/s, u8 5442 -> 6775), so AccumulateKernel takes that path for
// f = 2 means.
#pragma once

#include <cstdint>
#include <type_traits>

#include "mipmaker/element.h"

#if defined(MIPMAKER_HAVE_AVX2)
#include <immintrin.h>
#endif

namespace mipmaker {
namespace MIPMAKER_ISA {

// Integer rows with a small factor along a contiguous row fold each group of
// kF voxels first, then add the group into the row accumulator: half (or a
// third, a quarter) of the accumulator traffic of FoldRow, and the groups
// vectorise as interleaved loads. Integer sums, minima and maxima do not
// depend on the order of the voxels. Float means are summed in double, where
// the order changes at most the last bits of the sum, and every group starts
// from R::Init() (+0.0), as FoldRow does, so a block of -0.0 still gives
// +0.0. Float minima and maxima keep FoldRow's order (-0.0 against +0.0
// depends on it). The last group may be short (`span`).
template <typename T, typename R>
constexpr bool kGroupFirst =
    (std::is_integral_v<typename Element<T>::Value> && !std::is_same_v<typename Element<T>::Value, bool>) ||
    (R::kIsMean && std::is_floating_point_v<typename Element<T>::Value>);

template <typename T, typename R, bool kSparse, bool kFirst, int kF>
inline void FoldGroups(typename R::Acc* __restrict acc, typename R::Count* __restrict count,
                       const T* __restrict p, int64_t span) {
  using E = Element<T>;
  using Acc = typename R::Acc;
  using Count = typename R::Count;
  const int64_t whole = span / kF;
  auto group = [&](int64_t o, int64_t len) {
    Acc g;
    Count k = 0;
    if constexpr (kSparse && !R::kIsMean) {  // sparse min/max: zeros are skipped
      g = R::Init();
      for (int64_t j = 0; j < len; ++j) {
        const auto v = E::Load(p[o * kF + j]);
        g = IsZero(v) ? g : R::Add(g, v);
        k += !IsZero(v);
      }
    } else {  // a zero adds nothing to a sparse sum: only the count tests it
      g = R::Add(R::Init(), E::Load(p[o * kF]));
      if constexpr (kSparse) k = !IsZero(E::Load(p[o * kF]));
      for (int64_t j = 1; j < len; ++j) {
        const auto v = E::Load(p[o * kF + j]);
        g = R::Add(g, v);
        if constexpr (kSparse) k += !IsZero(v);
      }
    }
    if constexpr (kFirst) {
      acc[o] = g;
      if constexpr (kSparse) count[o] = k;
    } else {
      acc[o] = R::Combine(acc[o], g);
      if constexpr (kSparse) count[o] += k;
    }
  };
  for (int64_t o = 0; o < whole; ++o) group(o, kF);
  if (whole * kF < span) group(whole, span - whole * kF);
}

// FoldGroups for a run-time factor f in 2..4 and first-row flag.
template <typename T, typename R, bool kSparse>
inline void FoldGroupsAny(typename R::Acc* acc, typename R::Count* count, const T* p, int64_t span, int64_t f,
                          bool first) {
  auto fold = [&](auto first_row) {
    constexpr bool kFirst = decltype(first_row)::value;
    switch (f) {
      case 2: FoldGroups<T, R, kSparse, kFirst, 2>(acc, count, p, span); break;
      case 3: FoldGroups<T, R, kSparse, kFirst, 3>(acc, count, p, span); break;
      default: FoldGroups<T, R, kSparse, kFirst, 4>(acc, count, p, span); break;
    }
  };
  if (first) {
    fold(std::true_type{});
  } else {
    fold(std::false_type{});
  }
}

#if defined(MIPMAKER_HAVE_AVX2)
// Pair sums of an 8- or 16-bit integer row (mean, f = 2) into 16- or 32-bit
// accumulators; sparse counts are the pairs' nonzero voxels. kOk says
// whether the element and accumulator types have a line here.
template <typename T, typename R, bool kSparse>
struct PairRowsAvx2 {
  using V = typename Element<T>::Value;
  using Acc = typename R::Acc;
  using Count = typename R::Count;
  static constexpr bool kByte = std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>;
  static constexpr bool kWord = std::is_same_v<T, uint16_t> || std::is_same_v<T, int16_t>;
  static constexpr bool kOk = R::kIsMean && (kByte || kWord) && std::is_integral_v<Acc> &&
                              (sizeof(Acc) == 4 || (kByte && sizeof(Acc) == 2)) &&
                              (!kSparse || sizeof(Count) == sizeof(Acc));

  // Sums of the 16 (bytes) or 8 (words) pairs at p, as 16-bit lanes (bytes)
  // or 32-bit lanes (words), and the nonzero voxels among them.
  static void Pairs(const T* p, __m256i& sum, __m256i& nonzero) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (kByte) {
      const __m256i ones = _mm256_set1_epi8(1);
      // maddubs multiplies unsigned bytes (first) by signed ones (second).
      sum = std::is_signed_v<V> ? _mm256_maddubs_epi16(ones, x) : _mm256_maddubs_epi16(x, ones);
      if constexpr (kSparse) {  // a zero's mask byte is -1
        nonzero = _mm256_add_epi16(_mm256_set1_epi16(2), _mm256_maddubs_epi16(ones, _mm256_cmpeq_epi8(x, zero)));
      }
    } else {
      const __m256i ones = _mm256_set1_epi16(1);
      // Unsigned words are biased into int16 range, and the bias taken back.
      if constexpr (std::is_signed_v<V>) {
        sum = _mm256_madd_epi16(x, ones);
      } else {
        sum = _mm256_add_epi32(_mm256_madd_epi16(_mm256_xor_si256(x, _mm256_set1_epi16(-32768)), ones),
                               _mm256_set1_epi32(65536));
      }
      if constexpr (kSparse) {
        nonzero = _mm256_add_epi32(_mm256_set1_epi32(2), _mm256_madd_epi16(_mm256_cmpeq_epi16(x, zero), ones));
      }
    }
  }

  // Adds (or, for the first rows, stores) 16 lanes of 16 bits into 16-bit
  // or 32-bit accumulators; signed lanes widen with their sign.
  template <typename U, bool kSigned>
  static void Put16(U* dst, __m256i v, bool first) {
    if constexpr (sizeof(U) == 2) {
      auto* p = reinterpret_cast<__m256i*>(dst);
      if (!first) v = _mm256_add_epi16(v, _mm256_loadu_si256(p));
      _mm256_storeu_si256(p, v);
    } else {
      const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
      __m256i a = kSigned ? _mm256_cvtepi16_epi32(lo) : _mm256_cvtepu16_epi32(lo);
      __m256i b = kSigned ? _mm256_cvtepi16_epi32(hi) : _mm256_cvtepu16_epi32(hi);
      auto* p = reinterpret_cast<__m256i*>(dst);
      if (!first) {
        a = _mm256_add_epi32(a, _mm256_loadu_si256(p));
        b = _mm256_add_epi32(b, _mm256_loadu_si256(p + 1));
      }
      _mm256_storeu_si256(p, a);
      _mm256_storeu_si256(p + 1, b);
    }
  }

  static void Put32(void* dst, __m256i v, bool first) {
    auto* p = reinterpret_cast<__m256i*>(dst);
    if (!first) v = _mm256_add_epi32(v, _mm256_loadu_si256(p));
    _mm256_storeu_si256(p, v);
  }

  // Folds the whole vectors of a row of `span`; returns how many elements
  // it did.
  static int64_t Run(Acc* acc, Count* count, const T* row, int64_t span, bool first) {
    constexpr int64_t kStep = 32 / sizeof(T);
    const int64_t end = span / kStep * kStep;
    for (int64_t i = 0; i < end; i += kStep) {
      __m256i sum, nonzero;
      Pairs(row + i, sum, nonzero);
      if constexpr (kByte) {
        Put16<Acc, std::is_signed_v<V>>(acc + i / 2, sum, first);
        if constexpr (kSparse) Put16<Count, false>(count + i / 2, nonzero, first);
      } else {
        Put32(acc + i / 2, sum, first);
        if constexpr (kSparse) Put32(count + i / 2, nonzero, first);
      }
    }
    return end;
  }
};

// Pair sums of a float row (mean, f = 2) into double accumulators, half the
// accumulator traffic of FoldRow's voxel-by-voxel fold (f32 F 2x2x1 kernel,
// pre-touched output: 3.0-3.3 -> 4.6-5.0 GVx/s). Sparse counts are the
// pairs' nonzero voxels.
template <typename T, typename R, bool kSparse>
struct PairFloatsAvx2 {
  using Acc = typename R::Acc;
  using Count = typename R::Count;
  static constexpr bool kOk = R::kIsMean && std::is_same_v<T, float> && std::is_same_v<Acc, double> &&
                              (!kSparse || sizeof(Count) == 4);

  static int64_t Run(Acc* acc, Count* count, const T* row, int64_t span, bool first) {
    const int64_t end = span / 8 * 8;
    const __m256d zero = _mm256_setzero_pd();
    for (int64_t i = 0; i < end; i += 8) {
      // Converting from memory spares the extract of the upper half.
      const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(row + i));
      const __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(row + i + 4));
      // hadd gives [x0+x1, x4+x5, x2+x3, x6+x7]; the permute restores the order.
      __m256d sum = _mm256_permute4x64_pd(_mm256_hadd_pd(lo, hi), 0xD8);
      double* a = acc + i / 2;
      // +0.0 first (R::Init()), so that -0.0 pairs start a block at +0.0.
      sum = _mm256_add_pd(first ? zero : _mm256_loadu_pd(a), sum);
      _mm256_storeu_pd(a, sum);
      if constexpr (kSparse) {
        // A zero's mask lane is -1: 2 + the pair's mask sum counts its nonzeros.
        const __m256 x = _mm256_loadu_ps(row + i);
        const __m256i z = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ));
        const __m256i pairs = _mm256_permute4x64_epi64(_mm256_hadd_epi32(z, z), 0x08);
        __m128i k = _mm_add_epi32(_mm_set1_epi32(2), _mm256_castsi256_si128(pairs));
        auto* c = reinterpret_cast<__m128i*>(count + i / 2);
        if (!first) k = _mm_add_epi32(k, _mm_loadu_si128(c));
        _mm_storeu_si128(c, k);
      }
    }
    return end;
  }
};
#endif

// Folds a contiguous row of `span` elements, groups of f in 2..4, into the
// row accumulators (one per group; the last group may be short).
template <typename T, typename R, bool kSparse>
inline void FoldGroupRow(typename R::Acc* acc, typename R::Count* count, const T* row, int64_t span, int64_t f,
                         bool first) {
  int64_t done = 0;
#if defined(MIPMAKER_HAVE_AVX2)
  using Lines = PairRowsAvx2<T, R, kSparse>;
  using FloatLines = PairFloatsAvx2<T, R, kSparse>;
  if constexpr (Lines::kOk) {
    if (f == 2) {
      done = Lines::Run(acc, count, row, span, first);
      if (done == span) return;
    }
  } else if constexpr (FloatLines::kOk) {
    if (f == 2) {
      done = FloatLines::Run(acc, count, row, span, first);
      if (done == span) return;
    }
  }
#endif
  FoldGroupsAny<T, R, kSparse>(acc + done / f, kSparse ? count + done / f : nullptr, row + done, span - done, f,
                               first);
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
