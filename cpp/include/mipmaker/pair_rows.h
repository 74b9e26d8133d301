// SPDX-License-Identifier: BSD-3-Clause
// Blocks two voxels wide along a contiguous row (Fortran-order 2x2 and
// 2x2x2, the commonest pyramids) finished in registers: each vector of
// outputs loads its voxels from every block row (at most 8), reduces them
// and stores the results, with no row accumulators in between. Also blocks
// two lane groups wide (a C-order volume's short last axis folded into
// lanes, u8 means). Used by AccumulateKernel and ShortRowsKernel (means),
// and by PyramidWorker for level 1 (means, integer min/max), where the
// sums, counts or extrema also go to level 2's row accumulators (PairKeep).
// The fold-then-finish passes cost about a cycle per voxel for f32 means
// (pair sums into an accumulator row, then a finish pass over it), as much
// as streaming the voxels from memory, and the two added up instead of
// overlapping (f32 F 2x2x2 from memory, output pre-touched: 1130 -> 1933
// MVx/s; u16 2394 -> 4217; u8 5442 -> 6775; sparse u8 5057 -> 7183).
// Each step also prefetches the next work item's rows into L2 (`ahead`).
#pragma once

#include <cstdint>
#include <type_traits>

#include "mipmaker/element.h"
#include "mipmaker/method.h"
#include "mipmaker/reducers.h"

#if defined(MIPMAKER_HAVE_AVX2)
#include <immintrin.h>
#endif

namespace mipmaker {
namespace MIPMAKER_ISA {

#if defined(MIPMAKER_HAVE_AVX2)

// Where a fused pyramid's level 1 also leaves each output's unfinished
// accumulator (sum, count, extremum) for level 2: stored by the parent's
// first block row, added by the others; `acc` null: nowhere. `ahead`:
// elements from each block row to the same row of the next work item,
// prefetched into L2 as the steps read (0: none; see PyramidWorker).
template <typename R>
struct PairKeep {
  typename R::Acc* acc = nullptr;
  typename R::Count* count = nullptr;
  bool add = false;
  int64_t ahead = 0;
};

// Calls body(std::integral_constant<int, k>) with k = 0 (no keep), 1
// (store) or 2 (add), so each loop is compiled for its case.
template <typename R, typename F>
inline void WithKeep(const PairKeep<R>& keep, F&& body) {
  if (keep.acc == nullptr) {
    body(std::integral_constant<int, 0>{});
  } else if (!keep.add) {
    body(std::integral_constant<int, 1>{});
  } else {
    body(std::integral_constant<int, 2>{});
  }
}

// One L2 prefetch per block row and step (every step reads 64 bytes of each).
// The addresses may lie past the input (the last work item), so they are
// formed as integers, as PrefetchL2 does.
template <typename T>
inline void PrefetchRows(const T* const* rows, int nrows, int64_t ahead) {
  const uintptr_t bytes = static_cast<uintptr_t>(ahead * int64_t{sizeof(T)});
  for (int r = 0; r < nrows; ++r) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(rows[r]) + bytes), 0, 1);
  }
}

// Whether to read the block rows in turn (InTurn) rather than together:
// when two of them start less than a 4 KiB page apart, as a Fortran-order
// u8 volume 2048 wide puts a block's two rows, one 4 KiB run. Reading both
// step by step leaves the hardware prefetcher two interleaved streams
// within each page, which it follows badly; one row after the other is a
// single sequential stream. Standalone (u8 2x2x1 means, 256 MiB from
// memory, fresh output, best of 11-13): rows 2048 bytes apart 30.1 -> 22.5
// ms (2 rows), 29.0 -> 24.5 ms (4 rows); 1024 apart 32.1 -> 23.6 ms; 4096
// apart 26.6 -> 25.3 ms; but 8192 apart 22.1 -> 23.8 ms, so rows a page or
// more apart stay together. Pieces shorter than 4 steps gain nothing.
// In the library the gain is smaller, since reading together already
// prefetches the next work item (u8 F 2048x2048x64 from Python, 1 thread,
// best of 9, four alternating runs: 2x2x1 mean 7.9-9.3 -> 9.9-10.4 GVx/s,
// 2x2x2 10.4-12.1 -> 10.5-13.7, min 8.1-9.5 -> 9.0-10.0), and where a step
// keeps more than two vectors (QuadMeanAvx2's four: 4x4x1 13.1-14.5 ->
// 12.4-12.9; sparse means with sums and counts apart) it lost. Sparse u8
// means now pack each sum and count into one lane and read in turn (u8 F
// 2048x2048x64 2x2x1 standalone, best of 10: 26.1-32.4 -> 22.8-23.4 ms);
// blocks four wide still read together.
inline bool RowsCloseEnough(int64_t bytes) { return bytes > -4096 && bytes < 4096; }
template <typename T>
inline bool ReadRowsInTurn(const T* const* rows, int nrows, int64_t steps) {
  if (nrows < 2 || steps < 4) return false;
  for (int r = 1; r < nrows; ++r) {
    if (RowsCloseEnough(reinterpret_cast<intptr_t>(rows[r]) - reinterpret_cast<intptr_t>(rows[r - 1]))) return true;
  }
  return false;
}

// Steps [0, n) (kStep outputs each) with the block rows read in turn, a
// piece of kPiece outputs at a time: row(r, i, v) combines row r's step i
// into the kVecs vectors at v (row 0 sets them); as the last row's step
// goes in, finish(i, v). The partial results of a piece stay in L1 (at most 8 KiB).
template <int kVecs, int64_t kStep, typename Row, typename Finish>
inline void InTurn(int nrows, int64_t n, Row&& row, Finish&& finish) {
  constexpr int64_t kPiece = 1024;
  static_assert(kPiece % kStep == 0 && kPiece / kStep * kVecs * 32 <= 8192);
  alignas(32) __m256i buf[kPiece / kStep * kVecs];
  for (int64_t b = 0; b < n; b += kPiece) {
    const int64_t e = b + kPiece < n ? b + kPiece : n;
    for (int r = 0; r + 1 < nrows; ++r) {
      __m256i* v = buf;
      for (int64_t i = b; i < e; i += kStep, v += kVecs) row(r, i, v);
    }
    __m256i* v = buf;
    for (int64_t i = b; i < e; i += kStep, v += kVecs) {
      row(nrows - 1, i, v);
      finish(i, v);
    }
  }
}

// Means sum / count on 16 u16 lanes from their floors q (count 0: sum and
// q 0), truncated or rounded half to even (sum - q * count < 2^14).
template <bool kTruncate>
inline __m256i RoundQuotients(__m256i q, __m256i sum, __m256i cnt) {
  if constexpr (!kTruncate) {
    const __m256i one16 = _mm256_set1_epi16(1);
    const __m256i den = _mm256_max_epu16(cnt, one16);
    // Half to even: up when 2r > den, or 2r == den and q is odd.
    const __m256i r2 = _mm256_slli_epi16(_mm256_sub_epi16(sum, _mm256_mullo_epi16(q, den)), 1);
    const __m256i odd = _mm256_cmpeq_epi16(_mm256_and_si256(q, one16), one16);
    const __m256i up =
        _mm256_or_si256(_mm256_cmpgt_epi16(r2, den), _mm256_and_si256(_mm256_cmpeq_epi16(r2, den), odd));
    q = _mm256_sub_epi16(q, up);  // up is -1 where it applies
  }
  return q;
}

// Means of u8 (u16 sums, dense or sparse), u16 (u32 sums) and f32 (double
// sums), for 1 to kMaxRows block rows. Dense integer means take
// power-of-two blocks only (a shift); floats and sparse means divide.
// Results are those of FoldGroupRow + FinishAny: the same sums in the same
// order (per row: +0.0, then each row's pair sum).
template <typename T, typename R, bool kSparse>
struct PairMeanAvx2 {
  using Acc = typename R::Acc;
  // u8 sums are kept in u32 too (a deep pyramid's tier), widened on the way.
  static constexpr bool kU8 =
      std::is_same_v<T, uint8_t> && (std::is_same_v<Acc, uint16_t> || std::is_same_v<Acc, uint32_t>);
  static constexpr bool kOk =
      R::kIsMean && (kU8 || (!kSparse && ((std::is_same_v<T, uint16_t> && std::is_same_v<Acc, uint32_t>) ||
                                          (std::is_same_v<T, float> && std::is_same_v<Acc, double>))));
  static constexpr int kMaxRows = 8;
  // Outputs per step.
  static constexpr int64_t kStep = std::is_same_v<T, uint8_t> ? 32 : (std::is_same_v<T, uint16_t> ? 16 : 8);

  // Writes outputs [0, n) of `out` (unit stride), n the largest multiple
  // of kStep up to m, output i the mean of voxels 2i and 2i+1 of every
  // row, and leaves their sums (and counts) in `keep`. Returns n, or 0 when
  // the block is not supported (the caller's general path runs).
  // k > 1 (m a multiple of kStep): k such rows of outputs in one call,
  // row j's block rows `jump` elements after row j - 1's, its outputs (and
  // keep) m after; one call per 64-voxel row of a short-row volume cost as
  // much as reading it.
  static int64_t Run(const T* const* rows, int nrows, T* out, int64_t m, Rounding rounding,
                     const PairKeep<R>& keep = {}, int64_t k = 1, int64_t jump = 0) {
    const int64_t n = m / kStep * kStep;
    if (nrows < 1 || nrows > kMaxRows || n == 0 || (k > 1 && n != m)) return 0;
    const bool trunc = rounding == Rounding::kTruncate;
    if constexpr (kSparse) {
      if (nrows > 4) return 0;  // Quotients takes counts up to 8
      WithKeep(keep, [&](auto kk) {
        if (trunc) {
          SparseU8<true, decltype(kk)::value>(rows, nrows, out, n, keep, k, jump);
        } else {
          SparseU8<false, decltype(kk)::value>(rows, nrows, out, n, keep, k, jump);
        }
      });
    } else if constexpr (std::is_same_v<T, float>) {
      WithKeep(keep, [&](auto kk) { Floats<decltype(kk)::value>(rows, nrows, out, n, keep, k, jump); });
    } else {
      const int count = 2 * nrows;
      if ((count & (count - 1)) != 0) return 0;
      const int shift = __builtin_ctz(count);
      WithKeep(keep, [&](auto kk) {
        if (trunc) {
          Ints<true, decltype(kk)::value>(rows, nrows, out, n, shift, keep, k, jump);
        } else {
          Ints<false, decltype(kk)::value>(rows, nrows, out, n, shift, keep, k, jump);
        }
      });
    }
    return n;
  }

  // Lanes: a C-order volume's short last axis folded into the elements
  // (2048x2048x64 at 2x2x1: 64 lanes). Output i, lane z is the mean of lane
  // z of lane groups 2i and 2i + 1 of every row, at rows[r][(2i + g) * lanes
  // + z]; only adds down the lanes, no pairs within a vector. Writes outputs
  // [0, m) (m * lanes values at `out`, and at `keep` from index 0) and
  // returns m, or 0 when not supported: u8 only, lanes a multiple of 32,
  // up to 4 rows (counts up to 8), dense blocks of a power of two.
  static constexpr bool kLanesOk = kOk && kU8;
  static int64_t RunLanes(const T* const* rows, int nrows, int64_t lanes, T* out, int64_t m, Rounding rounding,
                          const PairKeep<R>& keep) {
    if constexpr (kLanesOk) {
      const int count = 2 * nrows;
      if (nrows < 1 || nrows > 4 || lanes % 32 != 0 || m <= 0) return 0;
      if (!kSparse && (count & (count - 1)) != 0) return 0;
      const int shift = __builtin_ctz(count);
      const bool trunc = rounding == Rounding::kTruncate;
      WithKeep(keep, [&](auto k) {
        if (trunc) {
          LanesU8<true, decltype(k)::value>(rows, nrows, lanes, out, m, shift, keep);
        } else {
          LanesU8<false, decltype(k)::value>(rows, nrows, lanes, out, m, shift, keep);
        }
      });
      return m;
    } else {
      return 0;
    }
  }

 private:
  // Pair sums of 2 * kStep voxels from `p`: outputs [0, kStep / 2) in `lo`,
  // the rest in `hi`, each in output order.
  static void Pairs(const T* p, __m256i& lo, __m256i& hi) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kStep));
    if constexpr (std::is_same_v<T, uint8_t>) {
      const __m256i ones = _mm256_set1_epi8(1);
      lo = _mm256_maddubs_epi16(a, ones);
      hi = _mm256_maddubs_epi16(b, ones);
    } else {
      const __m256i low = _mm256_set1_epi32(0xffff);
      lo = _mm256_add_epi32(_mm256_and_si256(a, low), _mm256_srli_epi32(a, 16));
      hi = _mm256_add_epi32(_mm256_and_si256(b, low), _mm256_srli_epi32(b, 16));
    }
  }
  static __m256i Add(__m256i a, __m256i b) {
    return std::is_same_v<T, uint8_t> ? _mm256_add_epi16(a, b) : _mm256_add_epi32(a, b);
  }
  static __m256i Srl(__m256i a, __m128i s) {
    return std::is_same_v<T, uint8_t> ? _mm256_srl_epi16(a, s) : _mm256_srl_epi32(a, s);
  }
 public:
  // MeanReducer::ShiftRound on unsigned lanes (u16 for u8, else u32; also
  // QuadMeanAvx2's): truncate, or add half - 1 + (q & 1).
  template <bool kTruncate>
  static __m256i Round(__m256i sum, __m128i s, __m256i half_m1, __m256i one) {
    if constexpr (kTruncate) {
      return Srl(sum, s);
    } else {
      const __m256i odd = _mm256_and_si256(Srl(sum, s), one);
      return Srl(Add(Add(sum, half_m1), odd), s);
    }
  }

  // Stores (kKeep 1) or adds (kKeep 2) two vectors of sums at `p`, in
  // output order (lo: the first half of the step).
  template <int kKeep, typename A>
  static void KeepSums(A* p, __m256i lo, __m256i hi) {
    auto* q = reinterpret_cast<__m256i*>(p);
    if constexpr (sizeof(A) == 2 * sizeof(T)) {
      if constexpr (kKeep == 2) {
        lo = Add(lo, _mm256_loadu_si256(q));
        hi = Add(hi, _mm256_loadu_si256(q + 1));
      }
      _mm256_storeu_si256(q, lo);
      _mm256_storeu_si256(q + 1, hi);
    } else {
      static_assert(std::is_same_v<T, uint8_t> && sizeof(A) == 4);
      KeepWide<kKeep>(q, lo);
      KeepWide<kKeep>(q + 2, hi);
    }
  }
  // 16 u16 sums widened to u32, in order.
  template <int kKeep>
  static void KeepWide(__m256i* q, __m256i v) {
    __m256i a = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v));
    __m256i b = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1));
    if constexpr (kKeep == 2) {
      a = _mm256_add_epi32(a, _mm256_loadu_si256(q));
      b = _mm256_add_epi32(b, _mm256_loadu_si256(q + 1));
    }
    _mm256_storeu_si256(q, a);
    _mm256_storeu_si256(q + 1, b);
  }

 private:
  template <bool kTruncate, int kKeep>
  static void Ints(const T* const* rows, int nrows, T* out, int64_t n, int shift, const PairKeep<R>& keep,
                   int64_t k, int64_t jump) {
    const __m128i s = _mm_cvtsi32_si128(shift);
    const bool u8 = std::is_same_v<T, uint8_t>;
    const __m256i one = u8 ? _mm256_set1_epi16(1) : _mm256_set1_epi32(1);
    const int half = shift > 0 ? 1 << (shift - 1) : 1;
    const __m256i half_m1 = u8 ? _mm256_set1_epi16(static_cast<int16_t>(half - 1)) : _mm256_set1_epi32(half - 1);
    auto finish = [&](int64_t i, __m256i lo, __m256i hi) {
      if constexpr (kKeep != 0) KeepSums<kKeep>(keep.acc + i, lo, hi);
      lo = Round<kTruncate>(lo, s, half_m1, one);
      hi = Round<kTruncate>(hi, s, half_m1, one);
      // Means fit T, so the saturating packs are exact; they interleave the
      // 128-bit lanes, which the permute undoes.
      const __m256i packed = u8 ? _mm256_packus_epi16(lo, hi) : _mm256_packus_epi32(lo, hi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(packed, 0xD8));
    };
    if (k == 1 && ReadRowsInTurn(rows, nrows, n / kStep)) {
      InTurn<2, kStep>(
          nrows, n,
          [&](int r, int64_t i, __m256i* v) {
            __m256i l, h;
            Pairs(rows[r] + 2 * i, l, h);
            if (keep.ahead != 0) PrefetchRows(rows + r, 1, 2 * i + keep.ahead);
            v[0] = r == 0 ? l : Add(v[0], l);
            v[1] = r == 0 ? h : Add(v[1], h);
          },
          [&](int64_t i, const __m256i* v) { finish(i, v[0], v[1]); });
      return;
    }
    for (int64_t j = 0, at = 0; j < k; ++j, at += jump) {
      for (int64_t i = 0; i < n; i += kStep) {
        __m256i lo, hi;
        Pairs(rows[0] + at + 2 * i, lo, hi);
        for (int r = 1; r < nrows; ++r) {
          __m256i l, h;
          Pairs(rows[r] + at + 2 * i, l, h);
          lo = Add(lo, l);
          hi = Add(hi, h);
        }
        if (keep.ahead != 0) PrefetchRows(rows, nrows, at + 2 * i + keep.ahead);
        finish(j * n + i, lo, hi);
      }
    }
  }

  // q = floor(sum / count) on 16 u16 lanes, count <= 8 and sum <= 255 *
  // count, as a multiply by ceil(2^15 / count) (checked exhaustively: the
  // error stays below 1/16, under the 1/8 between any fraction and the next
  // integer). The divisor comes from a byte-shuffle table indexed by
  // count & 7: count 8 shares entry 0 with empty blocks, whose sum is 0.
  // A float division per lane cost as much as reading the voxels.
  static __m256i Quotients(__m256i sum, __m256i count) {
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_setr_epi16(4096, -32768, 16384, 10923, 8192, 6554, 5462, 4682));
    const __m256i k2 = _mm256_slli_epi16(_mm256_and_si256(count, _mm256_set1_epi16(7)), 1);
    const __m256i index = _mm256_add_epi16(_mm256_or_si256(k2, _mm256_slli_epi16(k2, 8)), _mm256_set1_epi16(0x100));
    return _mm256_mulhi_epu16(_mm256_slli_epi16(sum, 1), _mm256_shuffle_epi8(table, index));
  }
  // Sparse u8 means of up to 4 rows: each pair's sum and nonzero count
  // (min(v, 1) is 1 for every nonzero voxel), divided per output; an empty
  // block gives 0. Sum and count travel packed in one u16 lane, 16 * sum +
  // count (at most 16 * 2040 + 8), so that a step keeps two vectors of
  // partial results, as dense pairs do, and the rows can be read in turn.
  template <bool kTruncate, int kKeep>
  static void SparseU8(const T* const* rows, int nrows, T* out, int64_t n, const PairKeep<R>& keep, int64_t k,
                       int64_t jump) {
    const __m256i ones = _mm256_set1_epi8(1), sixteen = _mm256_set1_epi8(16), low = _mm256_set1_epi16(15);
    auto packed = [&](const T* p) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      return _mm256_add_epi16(_mm256_maddubs_epi16(v, sixteen), _mm256_maddubs_epi16(_mm256_min_epu8(v, ones), ones));
    };
    auto finish = [&](int64_t i, __m256i p0, __m256i p1) {
      const __m256i sum0 = _mm256_srli_epi16(p0, 4), sum1 = _mm256_srli_epi16(p1, 4);
      const __m256i cnt0 = _mm256_and_si256(p0, low), cnt1 = _mm256_and_si256(p1, low);
      if constexpr (kKeep != 0) {
        KeepSums<kKeep>(keep.acc + i, sum0, sum1);
        KeepSums<kKeep>(keep.count + i, cnt0, cnt1);
      }
      const __m256i q0 = SparseMeans<kTruncate>(sum0, cnt0), q1 = SparseMeans<kTruncate>(sum1, cnt1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                          _mm256_permute4x64_epi64(_mm256_packus_epi16(q0, q1), 0xD8));
    };
    if (k == 1 && ReadRowsInTurn(rows, nrows, n / 32)) {
      InTurn<2, 32>(
          nrows, n,
          [&](int r, int64_t i, __m256i* v) {
            const __m256i a = packed(rows[r] + 2 * i), b = packed(rows[r] + 2 * i + 32);
            if (keep.ahead != 0) PrefetchRows(rows + r, 1, 2 * i + keep.ahead);
            v[0] = r == 0 ? a : _mm256_add_epi16(v[0], a);
            v[1] = r == 0 ? b : _mm256_add_epi16(v[1], b);
          },
          [&](int64_t i, const __m256i* v) { finish(i, v[0], v[1]); });
      return;
    }
    for (int64_t j = 0, at = 0; j < k; ++j, at += jump) {
      for (int64_t i = 0; i < n; i += 32) {
        __m256i p0 = packed(rows[0] + at + 2 * i), p1 = packed(rows[0] + at + 2 * i + 32);
        for (int r = 1; r < nrows; ++r) {
          p0 = _mm256_add_epi16(p0, packed(rows[r] + at + 2 * i));
          p1 = _mm256_add_epi16(p1, packed(rows[r] + at + 2 * i + 32));
        }
        if (keep.ahead != 0) PrefetchRows(rows, nrows, at + 2 * i + keep.ahead);
        finish(j * n + i, p0, p1);
      }
    }
  }
  // Sparse means of 16 u16 sums and counts (count <= 8; 0 for an empty block).
  template <bool kTruncate>
  static __m256i SparseMeans(__m256i sum, __m256i cnt) {
    return RoundQuotients<kTruncate>(Quotients(sum, cnt), sum, cnt);
  }

  // Lane layout (see RunLanes): the voxels of output i, lanes [z, z + 32).
  // Sparse sums interleave a row's two lane groups (unpack), which puts
  // each lane's two voxels side by side: one maddubs adds them and one
  // more counts the nonzero ones, in the lane order packus restores. That
  // is half the work of widening each group to u16 and adding, twice (u8 C
  // 2048x2048x64 2x2x1, standalone, best of 10: 28.1-30.2 -> 19.2-21.0
  // ms, as fast as dense); dense sums widen, which measured 1-2 ms faster
  // (21.2-22.0 against 22.9-24.0) than interleaving.
  template <bool kTruncate, int kKeep>
  static void LanesU8(const T* const* rows, int nrows, int64_t lanes, T* out, int64_t m, int shift,
                      const PairKeep<R>& keep) {
    const __m128i s = _mm_cvtsi32_si128(shift);
    const __m256i ones = _mm256_set1_epi8(1), one = _mm256_set1_epi16(1);
    const __m256i half_m1 = _mm256_set1_epi16(static_cast<int16_t>(shift > 0 ? (1 << (shift - 1)) - 1 : 0));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t at = 2 * i * lanes;
      if (keep.ahead != 0) {
        for (int64_t z = 0; z < 2 * lanes; z += 64) PrefetchRows(rows, nrows, at + z + keep.ahead);
      }
      for (int64_t z = 0; z < lanes; z += 32) {
        // Sums (and counts) of lanes [z, z + 32): dense z + 0-15 in lo,
        // 16-31 in hi; sparse z + 0-7, 16-23 in lo, 8-15, 24-31 in hi.
        __m256i lo = _mm256_setzero_si256(), hi = lo, clo = lo, chi = lo;
        for (int r = 0; r < nrows; ++r) {
          const T* p = rows[r] + at + z;
          const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
          const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + lanes));
          if constexpr (kSparse) {
            const __m256i xl = _mm256_unpacklo_epi8(a, b), xh = _mm256_unpackhi_epi8(a, b);
            lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(xl, ones));
            hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(xh, ones));
            clo = _mm256_add_epi16(clo, _mm256_maddubs_epi16(_mm256_min_epu8(xl, ones), ones));
            chi = _mm256_add_epi16(chi, _mm256_maddubs_epi16(_mm256_min_epu8(xh, ones), ones));
          } else {
            for (const __m256i v : {a, b}) {
              lo = _mm256_add_epi16(lo, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)));
              hi = _mm256_add_epi16(hi, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1)));
            }
          }
        }
        if constexpr (kSparse) {
          if constexpr (kKeep != 0) {  // in lane order
            KeepSums<kKeep>(keep.acc + i * lanes + z, _mm256_permute2x128_si256(lo, hi, 0x20),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
            KeepSums<kKeep>(keep.count + i * lanes + z, _mm256_permute2x128_si256(clo, chi, 0x20),
                            _mm256_permute2x128_si256(clo, chi, 0x31));
          }
          const __m256i q = _mm256_packus_epi16(SparseMeans<kTruncate>(lo, clo), SparseMeans<kTruncate>(hi, chi));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * lanes + z), q);
        } else {
          if constexpr (kKeep != 0) KeepSums<kKeep>(keep.acc + i * lanes + z, lo, hi);
          const __m256i q =
              _mm256_packus_epi16(Round<kTruncate>(lo, s, half_m1, one), Round<kTruncate>(hi, s, half_m1, one));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * lanes + z), _mm256_permute4x64_epi64(q, 0xD8));
        }
      }
    }
  }

  template <int kKeep>
  static void Floats(const T* const* rows, int nrows, T* out, int64_t n, const PairKeep<R>& keep, int64_t k,
                     int64_t jump) {
    for (int64_t j = 0; j < k; ++j) {
      const T* moved[kMaxRows];
      for (int r = 0; r < nrows; ++r) moved[r] = rows[r] + j * jump;
      PairKeep<R> at = keep;
      if (at.acc != nullptr) at.acc += j * n;
      FloatRow<kKeep>(moved, nrows, out + j * n, n, at);
    }
  }
  template <int kKeep>
  static void FloatRow(const T* const* rows, int nrows, T* out, int64_t n, const PairKeep<R>& keep) {
    const int count = 2 * nrows;
    const bool pow2 = (count & (count - 1)) == 0;
    // A power-of-two reciprocal is exact, so multiplying equals dividing.
    const __m256d scale = _mm256_set1_pd(pow2 ? 1.0 / count : static_cast<double>(count));
    const __m256d zero = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
      // Converting straight from memory and adding neighbours with hadd
      // took fewer shuffles than deinterleaving the floats first (f32 rows
      // in L2: 4.9 -> 5.7 GVx/s for 2 rows, 5.5 -> 7.0 for 4).
      // lo: outputs 0, 2, 1, 3; hi: outputs 4, 6, 5, 7.
      __m256d lo = zero, hi = zero;
      for (int r = 0; r < nrows; ++r) {
        const float* p = reinterpret_cast<const float*>(rows[r]) + 2 * i;
        const __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(p)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
        const __m256d x2 = _mm256_cvtps_pd(_mm_loadu_ps(p + 8)), x3 = _mm256_cvtps_pd(_mm_loadu_ps(p + 12));
        lo = _mm256_add_pd(lo, _mm256_hadd_pd(x0, x1));
        hi = _mm256_add_pd(hi, _mm256_hadd_pd(x2, x3));
      }
      if (keep.ahead != 0) PrefetchRows(rows, nrows, 2 * i + keep.ahead);
      if constexpr (kKeep != 0) {
        double* q = keep.acc + i;
        __m256d l = _mm256_permute4x64_pd(lo, 0xD8), h = _mm256_permute4x64_pd(hi, 0xD8);
        if constexpr (kKeep == 2) {  // Combine(keep, sum): one IEEE add, which commutes
          l = _mm256_add_pd(_mm256_loadu_pd(q), l);
          h = _mm256_add_pd(_mm256_loadu_pd(q + 4), h);
        }
        _mm256_storeu_pd(q, l);
        _mm256_storeu_pd(q + 4, h);
      }
      lo = pow2 ? _mm256_mul_pd(lo, scale) : _mm256_div_pd(lo, scale);
      hi = pow2 ? _mm256_mul_pd(hi, scale) : _mm256_div_pd(hi, scale);
      const __m256 both = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
      _mm256_storeu_ps(reinterpret_cast<float*>(out) + i, _mm256_permute_ps(both, 0xD8));
    }
  }
};

// Minima and maxima of integers up to 32 bits: the rows meet lane by lane
// first (the order does not matter for integers), then each lane pair.
template <typename T, typename R, bool kSparse>
struct PairExtremumAvx2 {
  static constexpr bool kOk = false;
  static constexpr int kMaxRows = 8;
};

template <typename T, bool kMax, int kTier, bool kSparse>
struct PairExtremumAvx2<T, ExtremumReducer<T, kMax, kTier>, kSparse> {
  static constexpr bool kOk = !kSparse && std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= 4;
  static constexpr int kMaxRows = 8;
  static constexpr int64_t kStep = 32 / sizeof(T);  // outputs per step

  using R = ExtremumReducer<T, kMax, kTier>;

  // As PairMeanAvx2::Run; the extrema are also what `keep` takes.
  static int64_t Run(const T* const* rows, int nrows, T* out, int64_t m, Rounding,
                     const PairKeep<R>& keep = {}, int64_t k = 1, int64_t jump = 0) {
    const int64_t n = m / kStep * kStep;
    if (nrows < 1 || nrows > kMaxRows || n == 0 || (k > 1 && n != m)) return 0;
    WithKeep(keep, [&](auto kk) { Steps<decltype(kk)::value>(rows, nrows, out, n, keep, k, jump); });
    return n;
  }

 private:
  template <int kKeep>
  static void Steps(const T* const* rows, int nrows, T* out, int64_t n, const PairKeep<R>& keep, int64_t k,
                    int64_t jump) {
    if (k == 1 && ReadRowsInTurn(rows, nrows, n / kStep)) {
      InTurn<2, kStep>(
          nrows, n,
          [&](int r, int64_t i, __m256i* v) {
            const __m256i a = Load(rows[r] + 2 * i), b = Load(rows[r] + 2 * i + kStep);
            if (keep.ahead != 0) PrefetchRows(rows + r, 1, 2 * i + keep.ahead);
            v[0] = r == 0 ? a : Op(v[0], a);
            v[1] = r == 0 ? b : Op(v[1], b);
          },
          [&](int64_t i, const __m256i* v) { Finish<kKeep>(i, v[0], v[1], out, keep); });
      return;
    }
    for (int64_t j = 0, at = 0; j < k; ++j, at += jump) {
      for (int64_t i = 0; i < n; i += kStep) {
        __m256i a = Load(rows[0] + at + 2 * i), b = Load(rows[0] + at + 2 * i + kStep);
        for (int r = 1; r < nrows; ++r) {
          a = Op(a, Load(rows[r] + at + 2 * i));
          b = Op(b, Load(rows[r] + at + 2 * i + kStep));
        }
        if (keep.ahead != 0) PrefetchRows(rows, nrows, at + 2 * i + keep.ahead);
        Finish<kKeep>(j * n + i, a, b, out, keep);
      }
    }
  }

  // Step i's outputs from the rows' extrema a, b (the step's two halves).
  template <int kKeep>
  static void Finish(int64_t i, __m256i a, __m256i b, T* out, const PairKeep<R>& keep) {
    // Each pair's result lands in its even element; the odd one is junk.
    a = Op(a, Down(a));
    b = Op(b, Down(b));
    __m256i packed;
    if constexpr (sizeof(T) == 4) {
      packed = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), 0x88));
    } else {
      // Even elements zero-extended, so the unsigned saturating pack is exact
      // for signed values too (it only moves their bits).
      const __m256i low = sizeof(T) == 1 ? _mm256_set1_epi16(0xff) : _mm256_set1_epi32(0xffff);
      a = _mm256_and_si256(a, low);
      b = _mm256_and_si256(b, low);
      packed = sizeof(T) == 1 ? _mm256_packus_epi16(a, b) : _mm256_packus_epi32(a, b);
    }
    const __m256i res = _mm256_permute4x64_epi64(packed, 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), res);
    if constexpr (kKeep != 0) {
      T* q = keep.acc + i;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), kKeep == 2 ? Op(Load(q), res) : res);
    }
  }

  static __m256i Load(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // Every odd element moved onto the even one below it.
  static __m256i Down(__m256i x) {
    if constexpr (sizeof(T) == 1) return _mm256_srli_epi16(x, 8);
    if constexpr (sizeof(T) == 2) return _mm256_srli_epi32(x, 16);
    if constexpr (sizeof(T) == 4) return _mm256_srli_epi64(x, 32);
  }
  static __m256i Op(__m256i x, __m256i y) {
    constexpr bool s = std::is_signed_v<T>;
    if constexpr (sizeof(T) == 1) {
      if constexpr (s) return kMax ? _mm256_max_epi8(x, y) : _mm256_min_epi8(x, y);
      else return kMax ? _mm256_max_epu8(x, y) : _mm256_min_epu8(x, y);
    } else if constexpr (sizeof(T) == 2) {
      if constexpr (s) return kMax ? _mm256_max_epi16(x, y) : _mm256_min_epi16(x, y);
      else return kMax ? _mm256_max_epu16(x, y) : _mm256_min_epu16(x, y);
    } else {
      if constexpr (s) return kMax ? _mm256_max_epi32(x, y) : _mm256_min_epi32(x, y);
      else return kMax ? _mm256_max_epu32(x, y) : _mm256_min_epu32(x, y);
    }
  }
};

// The register path for reducer R, if any (kOk).
template <typename T, typename R, bool kSparse>
using RegisterPairs =
    std::conditional_t<R::kIsMean, PairMeanAvx2<T, R, kSparse>, PairExtremumAvx2<T, R, kSparse>>;

#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
