// SPDX-License-Identifier: BSD-3-Clause
// u8 means of blocks four voxels wide along a contiguous row (Fortran-order
// 4x4x1, 4x2x1, 4x4x2 ...) finished in registers, as pair_rows.h does for
// blocks two wide: each step loads 128 voxels of every block row, sums
// neighbours into u16 pairs (maddubs), adds the rows, then the pairs into
// quads (hadd), and rounds, packs and stores 32 outputs. The grouped fold
// (FoldGroupRow into a row of accumulators, then FinishAny over it) spent a
// second pass on every output and stayed well under the memory bound.
#pragma once

#include <cstdint>
#include <type_traits>

#include "mipmaker/method.h"
#include "mipmaker/pair_rows.h"

#if defined(MIPMAKER_HAVE_AVX2)
#include <immintrin.h>
#endif

namespace mipmaker {
namespace MIPMAKER_ISA {

#if defined(MIPMAKER_HAVE_AVX2)

// Dense u8 means of 1 to 8 block rows whose blocks hold a power of two of
// voxels (4, 8, 16 or 32: a shift), sums exact in u16 (at most 32 * 255 plus
// the rounding addend). Results are those of FoldGroupRow + FinishAny: the
// sums are exact integers, rounded by MeanReducer::ShiftRound's rule.
template <typename T, typename R, bool kSparse>
struct QuadMeanAvx2 {
  static constexpr bool kOk = R::kIsMean && !kSparse && std::is_same_v<T, uint8_t>;
  static constexpr int kMaxRows = 8;
  static constexpr int64_t kStep = 32;  // outputs per step

  // Writes outputs [0, n) of `out` (unit stride), n the largest multiple of
  // kStep up to m, output i the mean of voxels [4i, 4i + 4) of every row;
  // prefetches each row `ahead` elements on into L2 (0: none). Returns n,
  // or 0 when the block is not supported (the caller's general path runs).
  static int64_t Run(const T* const* rows, int nrows, T* out, int64_t m, Rounding rounding, int64_t ahead) {
    if constexpr (kOk) {
      const int64_t n = m / kStep * kStep;
      const int count = 4 * nrows;
      if (nrows < 1 || nrows > kMaxRows || n == 0 || (count & (count - 1)) != 0) return 0;
      const int shift = __builtin_ctz(count);
      if (rounding == Rounding::kTruncate) {
        Steps<true>(rows, nrows, out, n, shift, ahead);
      } else {
        Steps<false>(rows, nrows, out, n, shift, ahead);
      }
      return n;
    } else {
      return 0;
    }
  }

 private:
  static __m256i Load(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

  template <bool kTruncate>
  static void Steps(const T* const* rows, int nrows, T* out, int64_t n, int shift, int64_t ahead) {
    const __m256i ones = _mm256_set1_epi8(1), one = _mm256_set1_epi16(1);
    const __m128i s = _mm_cvtsi32_si128(shift);
    const __m256i half_m1 = _mm256_set1_epi16(static_cast<int16_t>((1 << (shift - 1)) - 1));  // shift >= 2
    // hadd and packus work within 128-bit halves, which leaves the 4-output
    // groups as 0, 2, 4, 6 | 1, 3, 5, 7 (see below); this puts them back.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n; i += kStep) {
      __m256i p[4];
      for (int j = 0; j < 4; ++j) p[j] = _mm256_maddubs_epi16(Load(rows[0] + 4 * i + 32 * j), ones);
      for (int r = 1; r < nrows; ++r) {
        for (int j = 0; j < 4; ++j) {
          p[j] = _mm256_add_epi16(p[j], _mm256_maddubs_epi16(Load(rows[r] + 4 * i + 32 * j), ones));
        }
      }
      if (ahead != 0) {  // each step reads 128 bytes of every row
        PrefetchRows(rows, nrows, 4 * i + ahead);
        PrefetchRows(rows, nrows, 4 * i + 64 + ahead);
      }
      // p[j] holds the pair sums of voxels [32j, 32j + 32): quad sums of
      // outputs 8j .. 8j+3 in its low half, 8j+4 .. 8j+7 in its high half.
      // hadd(p0, p1) = quads 0-3, 8-11 | 4-7, 12-15, as u16.
      __m256i q0 = _mm256_hadd_epi16(p[0], p[1]), q1 = _mm256_hadd_epi16(p[2], p[3]);
      using Pairs = PairMeanAvx2<T, R, false>;  // its rounding, on u16 lanes
      q0 = Pairs::template Round<kTruncate>(q0, s, half_m1, one);
      q1 = Pairs::template Round<kTruncate>(q1, s, half_m1, one);
      // Means fit u8, so the saturating pack is exact: groups of 4 outputs
      // 0, 2, 4, 6 | 1, 3, 5, 7.
      const __m256i packed = _mm256_packus_epi16(q0, q1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permutevar8x32_epi32(packed, order));
    }
  }
};

#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
