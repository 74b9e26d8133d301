// SPDX-License-Identifier: BSD-3-Clause
// Levels 1 and 2 of an exact 2x2x2 mode pyramid of 64- and 32-bit labels,
// one whole 4x4x4 block at a time: its sixteen rows of four labels are
// sixteen AVX2 vectors (eight for 32-bit labels, and for 64-bit ones that
// share their high half), so the block is read once, tested for uniformity in a few
// instructions (most blocks of a segmentation are uniform), and otherwise
// counted one distinct label per pass: a compare of all sixteen rows gives
// the label's count in each level-1 sub-block (summed in vectors, which
// keep each sub-block's best label) and a hit mask that retires its voxels
// and counts it in the whole block. Labels in a mixed 4x4x4 block are few
// (2.7 on average in the real segmentation), and no pass branches except
// on whether labels remain.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#if defined(MIPMAKER_HAVE_AVX2)
#include <immintrin.h>
#endif

#include "mipmaker/element.h"
#include "mipmaker/histogram_bins.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Label types FourCubeModes takes.
template <typename T>
inline constexpr bool kCubeLabel =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && (sizeof(T) == 8 || sizeof(T) == 4);

// Distinct labels past which a 4x4x4 block is sorted instead
// (FourCubeModesSorted): a pass costs as much as sorting a few.
inline constexpr int kCubeMaxPasses = 16;

// The mode of the sorted labels v[0, n) (ties to the smallest; 0 if
// nothing counts: sparse and all zero).
template <typename V, bool kSparse>
inline V ModeOfSorted(const V* v, int n) {
  V best = V(0);
  int most = 0;
  for (int t = 0; t < n;) {
    int e = t + 1;
    while (e < n && v[e] == v[t]) ++e;
    if (!(kSparse && IsZero(v[t])) && e - t > most) {
      most = e - t;
      best = v[t];
    }
    t = e;
  }
  return best;
}

// FourCubeModes for blocks of many labels: sorts the sub-blocks and the
// block. Writes l1 (sub-block 4 dz + 2 dy + dx), l2 and the block's
// histogram (sorted, no zero when sparse) to bins[0, len) (room for 64).
template <typename V, bool kSparse>
inline void FourCubeModesSorted(const V* p, int64_t s0, int64_t s1, V* l1, V& l2, HistogramBin<V>* bins,
                                size_t& len) {
  V all[64];
  for (int s = 0; s < 8; ++s) {
    const V* q = p + 2 * ((s >> 2) * s0 + ((s >> 1) & 1) * s1 + (s & 1));
    V* sub = all + 8 * s;
    for (int t = 0; t < 8; ++t) sub[t] = q[(t >> 2) * s0 + ((t >> 1) & 1) * s1 + (t & 1)];
    SortEight(sub);
    l1[s] = ModeOfSorted<V, kSparse>(sub, 8);
  }
  std::sort(all, all + 64, [](const V& a, const V& b) { return Less(a, b); });
  len = 0;
  for (int t = 0; t < 64;) {
    int e = t + 1;
    while (e < 64 && all[e] == all[t]) ++e;
    if (!(kSparse && IsZero(all[t]))) bins[len++] = HistogramBin<V>{all[t], e - t};
    t = e;
  }
  l2 = SelectFromBins<V, false>(bins, len);
}

#if defined(MIPMAKER_HAVE_AVX2)
// A block's histogram and mode, one label per pass.
template <typename V>
struct CubeTally {
  uint64_t most = 0, mode = 0;  // the mode's count and label (as bits)

  // Appends the label (bits) with its count, unless 0, and takes it as the
  // mode if it counts more, or as much (not 0) and is smaller: selected by
  // masks, as a branch would mispredict on every tie.
  void Add(uint64_t bits, uint64_t total, HistogramBin<V>* bins, size_t& len) {
    const V value = static_cast<V>(bits);
    bins[len] = HistogramBin<V>{value, static_cast<int64_t>(total)};
    len += total != 0;
    const bool take = (total > most) | ((total == most) & (total != 0) & Less(value, static_cast<V>(mode)));
    const uint64_t keep = static_cast<uint64_t>(take) - 1;
    mode = (bits & ~keep) | (mode & keep);
    most = (total & ~keep) | (most & keep);
  }
};

// The passes of FourCubeModes64 (below) over 32-bit lanes: for 32-bit labels, and
// for 64-bit ones whose high halves are all `high` (most blocks: labels
// rarely pass 2^32, and never within one block by much), half the vectors
// per pass. A vector holds two rows, (z, y) and (z, y + 1), so group
// g = 2 dz + dy is two vectors, rows y = 2 dy, 2 dy + 1 of z = 2 dz and of
// z = 2 dz + 1; one hit bit per voxel, bit 8 k + 4 h + x for row h of
// vector k. `bits` is p[0]; `flip` makes the low halves compare as signed
// lanes in the labels' order (the top bit, unless 32-bit signed labels).
template <typename V, bool kSparse>
inline int CubePasses32(const __m256i* r, const V* p, int64_t s0, int64_t s1, uint64_t bits, uint32_t flip_bit,
                        uint64_t high, V* l1, V& l2, HistogramBin<V>* bins, size_t& len) {
  __m256i v = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
  const __m256i flip = _mm256_set1_epi32(static_cast<int>(flip_bit));
  const __m256i zero = _mm256_setzero_si256();
  __m256i best_count[4], best[4];
  for (int g = 0; g < 4; ++g) {
    best_count[g] = zero;
    best[g] = flip;
  }
  CubeTally<V> tally;
  uint64_t live = ~uint64_t{0};
  len = 0;
  for (int pass = 0;; ++pass) {
    if (pass == kCubeMaxPasses) return -1;
    const V value = static_cast<V>(bits);
    const __m256i flipped = _mm256_xor_si256(v, flip);
    const __m256i counts = kSparse && IsZero(value) ? zero : _mm256_set1_epi32(-1);
    uint64_t hit = 0;
    for (int g = 0; g < 4; ++g) {
      const __m256i e0 = _mm256_cmpeq_epi32(r[2 * g], v), e1 = _mm256_cmpeq_epi32(r[2 * g + 1], v);
      hit |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_castsi256_ps(e0))) << (16 * g);
      hit |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_castsi256_ps(e1))) << (16 * g + 8);
      // Rows summed per x, then x pairs: sub-block dx in lanes 2 dx, 2 dx + 1.
      __m256i sum = _mm256_and_si256(_mm256_add_epi32(e0, e1), counts);
      sum = _mm256_add_epi32(sum, _mm256_permute2x128_si256(sum, sum, 1));
      sum = _mm256_add_epi32(sum, _mm256_shuffle_epi32(sum, 0xB1));
      const __m256i tie = _mm256_and_si256(_mm256_and_si256(_mm256_cmpeq_epi32(sum, best_count[g]),
                                                            _mm256_cmpgt_epi32(zero, sum)),
                                           _mm256_cmpgt_epi32(best[g], flipped));
      const __m256i take = _mm256_or_si256(_mm256_cmpgt_epi32(best_count[g], sum), tie);
      best[g] = _mm256_blendv_epi8(best[g], flipped, take);
      best_count[g] = _mm256_blendv_epi8(best_count[g], sum, take);
    }
    live &= ~hit;
    const uint64_t seen = static_cast<uint64_t>(__builtin_popcountll(hit));
    tally.Add(bits, kSparse && IsZero(value) ? 0 : seen, bins, len);
    if (live == 0) break;
    const int b = __builtin_ctzll(live), k = b >> 3, h = (b >> 2) & 1;
    bits = static_cast<uint64_t>(p[(2 * (k >> 2) + (k & 1)) * s0 + (2 * ((k >> 1) & 1) + h) * s1 + (b & 3)]);
    v = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
  }
  for (int g = 0; g < 4; ++g) {
    // A sub-block with nothing counted (sparse, all zero) keeps label 0:
    // `high` is 0 then, as zero is in the block.
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_xor_si256(best[g], flip));
    l1[2 * g] = static_cast<V>(high | lanes[0]);
    l1[2 * g + 1] = static_cast<V>(high | lanes[2]);
  }
  l2 = static_cast<V>(tally.mode);
  return 1;
}

// Modes of levels 1 and 2 of the whole 4x4x4 block of 64-bit labels at p
// (axis strides s0, s1 and 1, in elements). Returns 0 if the block is
// uniform (only l2 written: its label); 1 with l1 (the modes of the eight
// level-1 sub-blocks, sub-block 4 dz + 2 dy + dx), l2 and the block's
// histogram in bins[0, len) (distinct labels, any order, none that counts
// 0; room for kCubeMaxPasses); or -1, past kCubeMaxPasses labels (bins
// overwritten, nothing else). Ties go to the smallest label.
//
// Rows are held in four groups g = 2 dz + dy of the four rows (z, y) with
// z = 2 dz + (i >> 1), y = 2 dy + (i & 1), i = 0..3: the sum of a group's
// compares, added to itself with its 64-bit halves swapped, is (negated)
// the count of the pass's label in sub-block (dz, dy, dx) in lanes 2 dx and
// 2 dx + 1, so the eight sub-blocks keep their best label in vectors.
template <typename V, bool kSparse>
inline int FourCubeModes64(const V* p, int64_t s0, int64_t s1, V* l1, V& l2, HistogramBin<V>* bins, size_t& len) {
  __m256i r[16];
  for (int k = 0; k < 16; ++k) {
    const int g = k >> 2, i = k & 3;
    const int64_t z = 2 * (g >> 1) + (i >> 1), y = 2 * (g & 1) + (i & 1);
    r[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + z * s0 + y * s1));
  }
  uint64_t bits = static_cast<uint64_t>(p[0]);
  __m256i v = _mm256_set1_epi64x(static_cast<long long>(bits));
  __m256i diff = _mm256_xor_si256(r[0], v);
  for (int k = 1; k < 16; ++k) diff = _mm256_or_si256(diff, _mm256_xor_si256(r[k], v));
  if (_mm256_testz_si256(diff, diff)) {
    l2 = p[0];
    return 0;
  }
  const __m256i high = _mm256_set1_epi64x(static_cast<long long>(~uint64_t{0} << 32));
  if (_mm256_testz_si256(diff, high)) {
    // One high half: the low halves, packed into the 32-bit layout (vector
    // k is rows i = 2 (k & 1) and i + 1 of group 2 (k >> 2) + ((k >> 1) & 1)),
    // decide; they order as unsigned, signed labels or not.
    __m256i n[8];
    for (int k = 0; k < 8; ++k) {
      const int i = 4 * (2 * (k >> 2) + ((k >> 1) & 1)) + 2 * (k & 1);
      const __m256 lows = _mm256_shuffle_ps(_mm256_castsi256_ps(r[i]), _mm256_castsi256_ps(r[i + 1]), 0x88);
      n[k] = _mm256_permute4x64_epi64(_mm256_castps_si256(lows), 0xD8);
    }
    return CubePasses32<V, kSparse>(n, p, s0, s1, bits, uint32_t{1} << 31, bits & (~uint64_t{0} << 32), l1, l2,
                                    bins, len);
  }
  // Labels compare as signed 64-bit lanes: unsigned ones with the top bit flipped.
  const __m256i flip = _mm256_set1_epi64x(std::is_signed_v<V> ? 0 : static_cast<long long>(uint64_t{1} << 63));
  const __m256i zero = _mm256_setzero_si256();
  __m256i best_count[4], best[4];  // per group: minus the best count, its label (flipped)
  for (int g = 0; g < 4; ++g) {
    best_count[g] = zero;
    best[g] = flip;
  }
  CubeTally<V> tally;
  // Two hit bits per voxel (see below): groups 0 and 1 in live[0], 2 and 3 in live[1].
  uint64_t live0 = ~uint64_t{0}, live1 = ~uint64_t{0};
  len = 0;
  for (int pass = 0;; ++pass) {
    if (pass == kCubeMaxPasses) return -1;
    const V value = static_cast<V>(bits);
    const __m256i flipped = _mm256_xor_si256(v, flip);
    // Sparse zeros are retired but count nothing.
    const __m256i counts = kSparse && IsZero(value) ? zero : _mm256_set1_epi64x(-1);
    uint64_t hit[2] = {0, 0};
    for (int g = 0; g < 4; ++g) {
      const __m256i e0 = _mm256_cmpeq_epi64(r[4 * g], v), e1 = _mm256_cmpeq_epi64(r[4 * g + 1], v);
      const __m256i e2 = _mm256_cmpeq_epi64(r[4 * g + 2], v), e3 = _mm256_cmpeq_epi64(r[4 * g + 3], v);
      // Bytes, two per voxel: voxel m = byte / 2 is row (m >> 1) & 3,
      // x = (m & 1) + 2 (m >> 3).
      const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(e0, e1), _mm256_packs_epi32(e2, e3));
      hit[g >> 1] |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(packed))) << (32 * (g & 1));
      __m256i sum = _mm256_and_si256(_mm256_add_epi64(_mm256_add_epi64(e0, e1), _mm256_add_epi64(e2, e3)), counts);
      sum = _mm256_add_epi64(sum, _mm256_shuffle_epi32(sum, 0x4E));
      // Take the label if it counts more, or as much (not 0) and is smaller.
      const __m256i tie = _mm256_and_si256(_mm256_and_si256(_mm256_cmpeq_epi64(sum, best_count[g]),
                                                            _mm256_cmpgt_epi64(zero, sum)),
                                           _mm256_cmpgt_epi64(best[g], flipped));
      const __m256i take = _mm256_or_si256(_mm256_cmpgt_epi64(best_count[g], sum), tie);
      best[g] = _mm256_blendv_epi8(best[g], flipped, take);
      best_count[g] = _mm256_blendv_epi8(best_count[g], sum, take);
    }
    live0 &= ~hit[0];
    live1 &= ~hit[1];
    const uint64_t seen = static_cast<uint64_t>(__builtin_popcountll(hit[0]) + __builtin_popcountll(hit[1])) / 2;
    tally.Add(bits, kSparse && IsZero(value) ? 0 : seen, bins, len);
    if ((live0 | live1) == 0) break;
    const int b = live0 != 0 ? __builtin_ctzll(live0) : 64 + __builtin_ctzll(live1);
    const int g = b >> 5, m = (b & 31) >> 1, i = (m >> 1) & 3;
    const int64_t z = 2 * (g >> 1) + (i >> 1), y = 2 * (g & 1) + (i & 1), x = (m & 1) + 2 * (m >> 3);
    bits = static_cast<uint64_t>(p[z * s0 + y * s1 + x]);
    v = _mm256_set1_epi64x(static_cast<long long>(bits));
  }
  for (int g = 0; g < 4; ++g) {
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_xor_si256(best[g], flip));
    l1[2 * g] = static_cast<V>(lanes[0]);  // sub-block 4 dz + 2 dy + dx = 2 g + dx
    l1[2 * g + 1] = static_cast<V>(lanes[2]);
  }
  l2 = static_cast<V>(tally.mode);
  return 1;
}

// FourCubeModes64 for 32-bit labels.
template <typename V, bool kSparse>
inline int FourCubeModes32(const V* p, int64_t s0, int64_t s1, V* l1, V& l2, HistogramBin<V>* bins, size_t& len) {
  __m256i r[8];
  for (int k = 0; k < 8; ++k) {
    const V* row = p + (2 * (k >> 2) + (k & 1)) * s0 + 2 * ((k >> 1) & 1) * s1;
    r[k] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(row + s1), reinterpret_cast<const __m128i*>(row));
  }
  const uint32_t first = static_cast<uint32_t>(p[0]);
  const __m256i v = _mm256_set1_epi32(static_cast<int>(first));
  __m256i diff = _mm256_xor_si256(r[0], v);
  for (int k = 1; k < 8; ++k) diff = _mm256_or_si256(diff, _mm256_xor_si256(r[k], v));
  if (_mm256_testz_si256(diff, diff)) {
    l2 = p[0];
    return 0;
  }
  return CubePasses32<V, kSparse>(r, p, s0, s1, static_cast<uint64_t>(p[0]),
                                  std::is_signed_v<V> ? 0 : uint32_t{1} << 31, 0, l1, l2, bins, len);
}

// FourCubeModes64 or FourCubeModes32, by the size of the labels.
template <typename V, bool kSparse>
inline int FourCubeModes(const V* p, int64_t s0, int64_t s1, V* l1, V& l2, HistogramBin<V>* bins, size_t& len) {
  static_assert(kCubeLabel<V>);
  if constexpr (sizeof(V) == 8) {
    return FourCubeModes64<V, kSparse>(p, s0, s1, l1, l2, bins, len);
  } else {
    return FourCubeModes32<V, kSparse>(p, s0, s1, l1, l2, bins, len);
  }
}
#endif

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
