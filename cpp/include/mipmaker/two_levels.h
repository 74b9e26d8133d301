// SPDX-License-Identifier: BSD-3-Clause
// Levels 1 and 2 of a fused u8 mean pyramid (blocks two voxels wide along
// a contiguous row: Fortran-order 2x2x1, 2x2x2) finished together in
// registers. PyramidWorker otherwise makes level 1 with pair_rows.h, which
// leaves each level-1 sum in a row accumulator, and then combines those
// into level 2 in a second pass (FinishWholeGroups); that pass and the
// accumulator traffic cost about as much as a fifth of reading the input
// (u8 F 2048x2048x64 2x2x1 from memory, standalone: one level 29.1 ms, two
// 34.8). Here each step reads 128 voxels of every block row of a level-2
// row (the block rows of its 2 or 4 level-1 rows), sums neighbours with
// maddubs, writes 64 outputs of each level-1 row, adds the level-1 rows'
// sums, sums them in pairs again (hadd) and writes 32 level-2 outputs; the
// level-2 sums go on to level 3's row accumulators (PairKeep).
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

// The block rows of one level-2 output row: `children` level-1 rows, child
// c with rows[c][0 .. nrows[c]) (input pointers at the range's first voxel)
// and its level-1 output at out[c].
template <typename T>
struct TwoLevelRows {
  static constexpr int kMaxChildren = 4;
  static constexpr int kMaxRows = 4;  // per child
  const T* rows[kMaxChildren][kMaxRows];
  int nrows[kMaxChildren];
  T* out[kMaxChildren];
  int children = 0;
};

// Dense u8 means of power-of-two blocks (counts 2 to 16 at level 1, 4 to 64
// at level 2: sums exact in u16), and sparse u8 means of level-2 blocks of
// up to 16 voxels (2x2x1: each lane packs 16 * sum + count, as
// PairMeanAvx2::SparseU8 does, so a step keeps as many vectors as a dense
// one). The level-2 sums (and counts) are kept as R::Acc (u16 or u32).
// Results are those of FoldGroupRow + FinishAny at both levels.
template <typename T, typename R, bool kSparse>
struct TwoLevelMeanAvx2 {
  using Acc = typename R::Acc;
  static constexpr bool kOk = R::kIsMean && std::is_same_v<T, uint8_t> &&
                              (std::is_same_v<Acc, uint16_t> || std::is_same_v<Acc, uint32_t>);
  static constexpr int64_t kStep = 32;  // level-2 outputs per step
  // 16 * 16 * 255 + 16 fits a u16 lane; 32 voxels would not.
  static constexpr int kMaxTotalRows = kSparse ? 4 : 16;
  // Blocks of more rows (2x2x2: 16 rows in 4 planes) read together make
  // that many streams at once: slower than pair_rows.h's level 1 reading
  // each level-1 row's rows in turn (u8 F 2048x2048x64 2x2x2 x2,
  // standalone: 25.7-29.4 -> 32.8-44.9 ms). Read in turn they win (23.8-25.4
  // -> 20.7-22.2 ms).
  static constexpr int kMaxTogether = 4;

  // Writes level-2 outputs [0, n) at `out2` (unit stride) and level-1
  // outputs [0, 2n) of every child, n the largest multiple of kStep up to
  // m; level-2 output i covers voxels [4i, 4i + 4) of every block row.
  // Returns n, or 0 when the blocks are not supported (a count that is not
  // a power of two: the caller's general path runs).
  static int64_t Run(const TwoLevelRows<T>& b, T* out2, int64_t m, Rounding rounding, const PairKeep<R>& keep) {
    if constexpr (kOk) {
      const int64_t n = m / kStep * kStep;
      if (n == 0 || b.children < 1 || b.children > TwoLevelRows<T>::kMaxChildren) return 0;
      int total = 0;
      for (int c = 0; c < b.children; ++c) {
        const int k = b.nrows[c];
        if (k < 1 || k > TwoLevelRows<T>::kMaxRows || (!kSparse && ((2 * k) & (2 * k - 1)) != 0)) return 0;
        total += k;
      }
      if (total > kMaxTotalRows || (!kSparse && ((4 * total) & (4 * total - 1)) != 0)) return 0;
      const int shift2 = kSparse ? 1 : __builtin_ctz(4 * total);  // sparse means divide instead
      const T* flat[kMaxTotalRows];
      int nflat = 0;
      for (int c = 0; c < b.children; ++c) {
        for (int r = 0; r < b.nrows[c]; ++r) flat[nflat++] = b.rows[c][r];
      }
      const bool in_turn = ReadRowsInTurn(flat, nflat, n / kStep);
      if (!in_turn && total > kMaxTogether) return 0;
      WithKeep(keep, [&](auto k) {
        if (rounding == Rounding::kTruncate) {
          in_turn ? InTurnSteps<true, decltype(k)::value>(b, out2, n, shift2, keep)
                  : Steps<true, decltype(k)::value>(b, out2, n, shift2, keep);
        } else {
          in_turn ? InTurnSteps<false, decltype(k)::value>(b, out2, n, shift2, keep)
                  : Steps<false, decltype(k)::value>(b, out2, n, shift2, keep);
        }
      });
      return n;
    } else {
      return 0;
    }
  }

 private:
  using Pairs = PairMeanAvx2<T, R, false>;  // its rounding, on u16 lanes

  static __m256i Load(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

  // MeanReducer::ShiftRound by 2^shift on u16 lanes.
  struct Divisor {
    __m128i shift;
    __m256i half_m1;
    explicit Divisor(int s)
        : shift(_mm_cvtsi32_si128(s)), half_m1(_mm256_set1_epi16(static_cast<int16_t>((1 << (s - 1)) - 1))) {}
    Divisor() : Divisor(1) {}
  };
  template <bool kTruncate>
  static __m256i Round(__m256i sum, const Divisor& d) {
    return Pairs::template Round<kTruncate>(sum, d.shift, d.half_m1, _mm256_set1_epi16(1));
  }

  // The sums of 16 voxel pairs from 32 voxels at p, in u16 lanes (sparse:
  // 16 * sum + count of nonzero voxels).
  static __m256i PairSums(const T* p) {
    const __m256i v = Load(p), ones = _mm256_set1_epi8(1);
    if constexpr (kSparse) {
      return _mm256_add_epi16(_mm256_maddubs_epi16(v, _mm256_set1_epi8(16)),
                              _mm256_maddubs_epi16(_mm256_min_epu8(v, ones), ones));
    } else {
      return _mm256_maddubs_epi16(v, ones);
    }
  }

  // floor(sum / count) on 16 u16 lanes, count <= 16 and sum <= 255 *
  // count, as PairMeanAvx2::Quotients with a 16-entry table (low and high
  // bytes apart): the multiply by ceil(2^15 / count) errs by sum * e /
  // (count * 2^15), e = count * ceil(2^15 / count) - 2^15 <= 7 here, so
  // below 1 / count (every count and sum: tests/test_pyramid.py). Count 16
  // shares entry 0 with empty blocks, whose sum is 0.
  static __m256i Quotients16(__m256i sum, __m256i count) {
    alignas(16) static constexpr uint16_t kTable[16] = {2048, 32768, 16384, 10923, 8192, 6554, 5462, 4682,
                                                        4096, 3641,  3277,  2979,  2731, 2521, 2341, 2185};
    alignas(16) static constexpr auto kBytes = [] {
      std::array<std::array<uint8_t, 16>, 2> b{};
      for (int c = 0; c < 16; ++c) {
        b[0][c] = static_cast<uint8_t>(kTable[c] & 0xFF);
        b[1][c] = static_cast<uint8_t>(kTable[c] >> 8);
      }
      return b;
    }();
    const __m256i lo = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kBytes[0].data())));
    const __m256i hi = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kBytes[1].data())));
    // The index in each lane's low byte, 0x80 (zero) in its high one.
    const __m256i index = _mm256_or_si256(_mm256_and_si256(count, _mm256_set1_epi16(15)), _mm256_set1_epi16(-32768));
    const __m256i m = _mm256_or_si256(_mm256_shuffle_epi8(lo, index),
                                      _mm256_slli_epi16(_mm256_shuffle_epi8(hi, index), 8));
    return _mm256_mulhi_epu16(_mm256_slli_epi16(sum, 1), m);
  }
  // Means of 16 packed lanes (16 * sum + count, count <= 16: count 16
  // carries into the sum's bits, so it is told from an empty lane by the
  // lane being nonzero); the sums and counts too.
  template <bool kTruncate>
  static __m256i SparseMeans(__m256i packed, __m256i& sum, __m256i& cnt) {
    const __m256i one = _mm256_set1_epi16(1);
    const __m256i low = _mm256_and_si256(_mm256_sub_epi16(packed, one), _mm256_set1_epi16(15));
    cnt = _mm256_min_epu16(packed, _mm256_add_epi16(low, one));
    sum = _mm256_srli_epi16(_mm256_sub_epi16(packed, cnt), 4);
    return RoundQuotients<kTruncate>(Quotients16(sum, cnt), sum, cnt);
  }
  template <bool kTruncate>
  static __m256i Means(__m256i sums, const Divisor& d) {
    if constexpr (kSparse) {
      __m256i sum, cnt;
      return SparseMeans<kTruncate>(sums, sum, cnt);
    } else {
      return Round<kTruncate>(sums, d);
    }
  }

  // Level-1 outputs 2i .. 2i + 63 from the pair sums p[0..3] of a child.
  template <bool kTruncate>
  static void Level1(T* out, const __m256i* p, const Divisor& d) {
    for (int h = 0; h < 2; ++h) {
      const __m256i packed = _mm256_packus_epi16(Means<kTruncate>(p[2 * h], d), Means<kTruncate>(p[2 * h + 1], d));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * h), _mm256_permute4x64_epi64(packed, 0xD8));
    }
  }

  // Level-2 outputs i .. i + 31 (and their kept sums) from the summed pair
  // sums q[0..3] of all children.
  template <bool kTruncate, int kKeep>
  static void Level2(T* out2, int64_t i, const __m256i* q, const Divisor& d, const PairKeep<R>& keep) {
    // hadd and packus work within 128-bit halves (see quad_rows.h).
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    // hadd(q0, q1) = level-2 sums 0-3, 8-11 | 4-7, 12-15 (u16).
    const __m256i s0 = _mm256_hadd_epi16(q[0], q[1]), s1 = _mm256_hadd_epi16(q[2], q[3]);
    if constexpr (kSparse) {
      __m256i sum0, cnt0, sum1, cnt1;
      const __m256i m0 = SparseMeans<kTruncate>(s0, sum0, cnt0), m1 = SparseMeans<kTruncate>(s1, sum1, cnt1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out2 + i),
                          _mm256_permutevar8x32_epi32(_mm256_packus_epi16(m0, m1), order));
      if constexpr (kKeep != 0) {
        Pairs::template KeepSums<kKeep>(keep.acc + i, _mm256_permute4x64_epi64(sum0, 0xD8),
                                        _mm256_permute4x64_epi64(sum1, 0xD8));
        Pairs::template KeepSums<kKeep>(keep.count + i, _mm256_permute4x64_epi64(cnt0, 0xD8),
                                        _mm256_permute4x64_epi64(cnt1, 0xD8));
      }
      return;
    }
    const __m256i packed = _mm256_packus_epi16(Round<kTruncate>(s0, d), Round<kTruncate>(s1, d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out2 + i), _mm256_permutevar8x32_epi32(packed, order));
    if constexpr (kKeep != 0) {
      Pairs::template KeepSums<kKeep>(keep.acc + i, _mm256_permute4x64_epi64(s0, 0xD8),
                                      _mm256_permute4x64_epi64(s1, 0xD8));
    }
  }

  // The rows one after another (see ReadRowsInTurn), a piece of kPiece
  // level-2 outputs at a time: the child's pair sums and the level-2 sums
  // of a piece wait in L1 (4 KiB).
  template <bool kTruncate, int kKeep>
  static void InTurnSteps(const TwoLevelRows<T>& b, T* out2, int64_t n, int shift2, const PairKeep<R>& keep) {
    constexpr int64_t kPiece = 512;
    alignas(32) __m256i ps[kPiece / kStep][4], qs[kPiece / kStep][4];
    const Divisor level2(shift2);
    for (int64_t lo = 0; lo < n; lo += kPiece) {
      const int64_t hi = lo + kPiece < n ? lo + kPiece : n;
      for (int c = 0; c < b.children; ++c) {
        const Divisor level1(__builtin_ctz(2 * b.nrows[c]));
        for (int r = 0; r < b.nrows[c]; ++r) {
          const T* row = b.rows[c][r];
          const bool last = r + 1 == b.nrows[c];
          for (int64_t i = lo; i < hi; i += kStep) {
            __m256i* p = ps[(i - lo) / kStep];
            for (int j = 0; j < 4; ++j) {
              const __m256i x = PairSums(row + 4 * i + 32 * j);
              p[j] = r == 0 ? x : _mm256_add_epi16(p[j], x);
            }
            if (keep.ahead != 0) {
              PrefetchRows(&row, 1, 4 * i + keep.ahead);
              PrefetchRows(&row, 1, 4 * i + 64 + keep.ahead);
            }
            if (last) {
              Level1<kTruncate>(b.out[c] + 2 * i, p, level1);
              __m256i* q = qs[(i - lo) / kStep];
              for (int j = 0; j < 4; ++j) q[j] = c == 0 ? p[j] : _mm256_add_epi16(q[j], p[j]);
              if (c + 1 == b.children) Level2<kTruncate, kKeep>(out2, i, q, level2, keep);
            }
          }
        }
      }
    }
  }

  template <bool kTruncate, int kKeep>
  static void Steps(const TwoLevelRows<T>& b, T* out2, int64_t n, int shift2, const PairKeep<R>& keep) {
    Divisor level1[TwoLevelRows<T>::kMaxChildren];
    for (int c = 0; c < b.children; ++c) level1[c] = Divisor(__builtin_ctz(2 * b.nrows[c]));
    const Divisor level2(shift2);
    for (int64_t i = 0; i < n; i += kStep) {
      __m256i q[4];
      for (int c = 0; c < b.children; ++c) {
        // p[j]: the child's pair sums of voxels [4i + 32j, 4i + 32j + 32),
        // level-1 outputs 2i + 16j .. 2i + 16j + 15 in order.
        const T* const* rows = b.rows[c];
        __m256i p[4];
        for (int j = 0; j < 4; ++j) p[j] = PairSums(rows[0] + 4 * i + 32 * j);
        for (int r = 1; r < b.nrows[c]; ++r) {
          for (int j = 0; j < 4; ++j) {
            p[j] = _mm256_add_epi16(p[j], PairSums(rows[r] + 4 * i + 32 * j));
          }
        }
        if (keep.ahead != 0) {  // each step reads 128 bytes of every row
          PrefetchRows(rows, b.nrows[c], 4 * i + keep.ahead);
          PrefetchRows(rows, b.nrows[c], 4 * i + 64 + keep.ahead);
        }
        Level1<kTruncate>(b.out[c] + 2 * i, p, level1[c]);
        for (int j = 0; j < 4; ++j) q[j] = c == 0 ? p[j] : _mm256_add_epi16(q[j], p[j]);
      }
      Level2<kTruncate, kKeep>(out2, i, q, level2, keep);
    }
  }
};

#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
