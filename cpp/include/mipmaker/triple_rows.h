// SPDX-License-Identifier: BSD-3-Clause
// u8 means of blocks three voxels wide along a contiguous row (Fortran-order
// 3x3x3, 3x3x1, 3x1x1 ...) finished in registers, as quad_rows.h does for
// blocks four wide. The grouped fold (FoldGroupRow into a row of
// accumulators, then FinishAny over it) gathers every third byte with
// scalar code, which kept u8 F 3x3x3 at 42% of the bandwidth bound.
//
// A step makes 32 outputs from 96 voxels of every block row. Each 128-bit
// half of the registers takes 48 consecutive voxels (16 outputs), so that
// the triples never straddle the halves: the rows are widened to u16 and
// added, then each half's sums of three neighbours are picked out with byte
// shuffles, divided by the block's voxel count (a multiply-high), rounded
// and packed back to bytes.
//
// Standalone (u8 F 2046x2046x63, 3x3x3, 9 rows per output row, fresh
// output, best of 12): 19.3-19.7 ms, against 36.6 ms for the grouped fold
// from Python. The rows are read together, each step prefetching the next
// output row's block rows into L2: read in turn (pair_rows.h InTurn, six
// vectors of partial sums per step) it ran 20.7-21.7 ms.
#pragma once

#include <array>
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

// floor(s / n) = (s * magic) >> (16 + shift) for every sum s of n bytes
// (s <= 255 n), n <= 27; found and checked exhaustively once per n.
struct ByteSumDivisor {
  uint16_t magic = 0;
  int shift = -1;  // -1: none found (not expected for n <= 27)

  static const ByteSumDivisor& For(int n) {
    static const std::array<ByteSumDivisor, 28> table = [] {
      std::array<ByteSumDivisor, 28> t{};
      for (uint32_t d = 2; d < t.size(); ++d) {
        for (int sh = 0; sh < 16 && t[d].shift < 0; ++sh) {
          const uint64_t m = ((uint64_t{1} << (16 + sh)) + d - 1) / d;
          if (m > 0xFFFF) break;
          bool exact = true;
          for (uint64_t s = 0; s <= 255 * d && exact; ++s) exact = ((s * m) >> (16 + sh)) == s / d;
          if (exact) t[d] = ByteSumDivisor{static_cast<uint16_t>(m), sh};
        }
      }
      return t;
    }();
    return table[static_cast<size_t>(n)];
  }
};

// Dense u8 means of 1 to 9 block rows, blocks three voxels wide (3 to 27
// voxels: sums exact in u16). Results are those of FoldGroupRow +
// FinishAny: MeanReducer::Finish's quotient, truncated or rounded half to
// even.
template <typename T, typename R, bool kSparse>
struct TripleMeanAvx2 {
  static constexpr bool kOk = R::kIsMean && !kSparse && std::is_same_v<T, uint8_t>;
  static constexpr int kMaxRows = 9;
  static constexpr int64_t kStep = 32;  // outputs per step

  // Writes outputs [0, n) of `out` (unit stride), n the largest multiple of
  // kStep up to m, output i the mean of voxels [3i, 3i + 3) of every row;
  // prefetches each row `ahead` elements on into L2 (0: none). Returns n,
  // or 0 when the block is not supported (the caller's general path runs).
  static int64_t Run(const T* const* rows, int nrows, T* out, int64_t m, Rounding rounding, int64_t ahead) {
    if constexpr (kOk) {
      const int64_t n = m / kStep * kStep;
      if (nrows < 1 || nrows > kMaxRows || n == 0) return 0;
      const int count = 3 * nrows;
      const ByteSumDivisor& d = ByteSumDivisor::For(count);
      if (d.shift < 0) return 0;
      if (rounding == Rounding::kTruncate) {
        Steps<true>(rows, nrows, out, n, count, d, ahead);
      } else {
        Steps<false>(rows, nrows, out, n, count, d, ahead);
      }
      return n;
    } else {
      return 0;
    }
  }

 private:
  // Voxels [0, 96) of a step as u16, added to (kAdd) or stored in v[0..5]:
  // the low halves hold voxels 0-47, the high halves 48-95, 8 per vector.
  template <bool kAdd>
  static void Row(const T* p, __m256i* v) {
    const __m256i zero = _mm256_setzero_si256();
    for (int j = 0; j < 3; ++j) {
      const __m256i x = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 48 + 16 * j),
                                            reinterpret_cast<const __m128i*>(p + 16 * j));
      const __m256i lo = _mm256_unpacklo_epi8(x, zero), hi = _mm256_unpackhi_epi8(x, zero);
      if constexpr (kAdd) {
        v[2 * j] = _mm256_add_epi16(v[2 * j], lo);
        v[2 * j + 1] = _mm256_add_epi16(v[2 * j + 1], hi);
      } else {
        v[2 * j] = lo;
        v[2 * j + 1] = hi;
      }
    }
  }

  // The 8 triple sums (per half) of the 24 u16 sums in a, b, c.
  static __m256i Triples(__m256i a, __m256i b, __m256i c) {
    // t[k] = s[k] + s[k + 1] + s[k + 2]; outputs start at k = 0, 3, 6 of
    // ta, 1, 4, 7 of tb (k = 7 reaches into c) and 2, 5 of tc.
    const __m256i ta = _mm256_add_epi16(_mm256_add_epi16(a, _mm256_alignr_epi8(b, a, 2)), _mm256_alignr_epi8(b, a, 4));
    const __m256i tb = _mm256_add_epi16(_mm256_add_epi16(b, _mm256_alignr_epi8(c, b, 2)), _mm256_alignr_epi8(c, b, 4));
    const __m256i tc = _mm256_add_epi16(_mm256_add_epi16(c, _mm256_srli_si256(c, 2)), _mm256_srli_si256(c, 4));
    const __m256i pick_a = _mm256_setr_epi8(0, 1, 6, 7, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 1, 6, 7, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i pick_b = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 3, 8, 9, 14, 15, -1, -1, -1, -1,
                                            -1, -1, -1, -1, -1, -1, 2, 3, 8, 9, 14, 15, -1, -1, -1, -1);
    const __m256i pick_c = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 4, 5, 10, 11,
                                            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 4, 5, 10, 11);
    return _mm256_or_si256(_mm256_or_si256(_mm256_shuffle_epi8(ta, pick_a), _mm256_shuffle_epi8(tb, pick_b)),
                           _mm256_shuffle_epi8(tc, pick_c));
  }

  template <bool kTruncate>
  static __m256i Divide(__m256i s, __m256i magic, __m128i shift, __m256i n, __m256i half, __m256i one) {
    __m256i q = _mm256_srl_epi16(_mm256_mulhi_epu16(s, magic), shift);
    if constexpr (!kTruncate) {  // half to even, from the remainder (at most 26)
      const __m256i r = _mm256_sub_epi16(s, _mm256_mullo_epi16(q, n));
      const __m256i tie = _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_add_epi16(r, r), n),
                                           _mm256_cmpeq_epi16(_mm256_and_si256(q, one), one));
      q = _mm256_sub_epi16(q, _mm256_or_si256(_mm256_cmpgt_epi16(r, half), tie));
    }
    return q;
  }

  template <bool kTruncate>
  static void Steps(const T* const* rows, int nrows, T* out, int64_t n, int count, const ByteSumDivisor& d,
                    int64_t ahead) {
    const __m256i magic = _mm256_set1_epi16(static_cast<int16_t>(d.magic));
    const __m128i shift = _mm_cvtsi32_si128(d.shift);
    const __m256i nv = _mm256_set1_epi16(static_cast<int16_t>(count));
    const __m256i half = _mm256_set1_epi16(static_cast<int16_t>(count / 2));
    const __m256i one = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n; i += kStep) {
      __m256i v[6];
      Row<false>(rows[0] + 3 * i, v);
      for (int r = 1; r < nrows; ++r) Row<true>(rows[r] + 3 * i, v);
      if (ahead != 0) {  // each step reads 96 bytes of every row
        PrefetchRows(rows, nrows, 3 * i + ahead);
        PrefetchRows(rows, nrows, 3 * i + 48 + ahead);
      }
      // Outputs 0-7 | 16-23 from v[0..2], 8-15 | 24-31 from v[3..5]: the
      // pack puts them in order.
      const __m256i lo = Divide<kTruncate>(Triples(v[0], v[1], v[2]), magic, shift, nv, half, one);
      const __m256i hi = Divide<kTruncate>(Triples(v[3], v[4], v[5]), magic, shift, nv, half, one);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_packus_epi16(lo, hi));
    }
  }
};

#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
