// SPDX-License-Identifier: BSD-3-Clause
// Block histograms for the exact mode / median pyramid: (value, count) bins
// and the small, branch-lean routines that build, merge and select from
// them, apart from the level-by-level leaf that drives them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(MIPMAKER_HAVE_AVX2)
#include <immintrin.h>
#endif

#include "mipmaker/element.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// One distinct value of a block and how many of its voxels hold it.
template <typename V>
struct HistogramBin {
  V value;
  int64_t count;
};

// Offsets (with per-axis `strides`) of the cells of one block of
// `factors[0] x ... x factors[rank-1]`, last axis fastest, into `out`.
inline void BlockOffsets(int rank, const std::array<int64_t, kMaxRank>& factors,
                         const std::array<int64_t, kMaxRank>& strides, std::vector<int64_t>& out) {
  out.clear();
  std::array<int64_t, kMaxRank> c{};
  for (;;) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) off += c[d] * strides[d];
    out.push_back(off);
    int d = rank - 1;
    for (; d >= 0; --d) {
      if (++c[d] < factors[d]) break;
      c[d] = 0;
    }
    if (d < 0) return;
  }
}

// Sorts a short run of bins by value (insertion sort: most runs hold a few
// bins) and merges equal values; returns the new length.
template <typename V>
inline size_t SortMergeBins(HistogramBin<V>* b, size_t n) {
  if (n <= 1) return n;
  if (n <= 32) {
    for (size_t i = 1; i < n; ++i) {
      const HistogramBin<V> x = b[i];
      size_t k = i;
      for (; k > 0 && Less(x.value, b[k - 1].value); --k) b[k] = b[k - 1];
      b[k] = x;
    }
  } else {
    std::sort(b, b + n, [](const HistogramBin<V>& x, const HistogramBin<V>& y) { return Less(x.value, y.value); });
  }
  size_t w = 0;
  for (size_t i = 1; i < n; ++i) {
    if (b[i].value == b[w].value) {
      b[w].count += b[i].count;
    } else {
      b[++w] = b[i];
    }
  }
  return w + 1;
}

// Sorts eight values with a 19-comparator network: no branches, which
// unsorted label blocks would mispredict.
template <typename V>
inline void SortEight(V* v) {
  auto cx = [v](int a, int b) {
    const V lo = Less(v[b], v[a]) ? v[b] : v[a];
    const V hi = Less(v[b], v[a]) ? v[a] : v[b];
    v[a] = lo;
    v[b] = hi;
  };
  cx(0, 2); cx(1, 3); cx(4, 6); cx(5, 7);
  cx(0, 4); cx(1, 5); cx(2, 6); cx(3, 7);
  cx(0, 1); cx(2, 3); cx(4, 5); cx(6, 7);
  cx(2, 4); cx(3, 5);
  cx(1, 4); cx(3, 6);
  cx(1, 2); cx(3, 4); cx(5, 6);
}

// Merges `runs` sorted runs of distinct values, run r at
// b[bounds[r], bounds[r + 1]), into one sorted histogram (equal values
// summed), pairwise level by level through `tmp` (as large as b). Returns
// where the result is (b or tmp) and sets `len`. `bounds` is overwritten.
template <typename V>
inline HistogramBin<V>* MergeRuns(HistogramBin<V>* b, HistogramBin<V>* tmp, size_t* bounds, size_t runs,
                                  size_t& len) {
  while (runs > 1) {
    size_t w = 0, out_runs = 0;
    for (size_t r = 0; r < runs; r += 2) {
      const HistogramBin<V>* x = b + bounds[r];
      const HistogramBin<V>* x_end = b + bounds[r + 1];
      const HistogramBin<V>* y = x_end;
      const HistogramBin<V>* y_end = r + 1 < runs ? b + bounds[r + 2] : x_end;
      bounds[out_runs++] = w;
      while (x != x_end && y != y_end) {
        if (x->value == y->value) {
          tmp[w++] = HistogramBin<V>{x->value, x->count + y->count};
          ++x;
          ++y;
        } else if (Less(x->value, y->value)) {
          tmp[w++] = *x++;
        } else {
          tmp[w++] = *y++;
        }
      }
      while (x != x_end) tmp[w++] = *x++;
      while (y != y_end) tmp[w++] = *y++;
    }
    bounds[out_runs] = w;
    runs = out_runs;
    std::swap(b, tmp);
  }
  len = runs == 1 ? bounds[1] - bounds[0] : 0;
  return b + (runs == 1 ? bounds[0] : 0);
}

// flags[x] = whether the level-1 block at p + x * step (voxels at offsets
// offs[0..m)) is uniform. Written, for integer T, as an OR of XORs with fixed
// trip counts, so the common shapes (kM voxels, kStep apart) vectorise
// across blocks.
template <typename T, int kM, int kStep>
inline void UniformFlags(const T* __restrict p, const int64_t* __restrict offs, int m_rt, int64_t step_rt,
                         int64_t count, uint8_t* __restrict flags) {
  const int m = kM > 0 ? kM : m_rt;
  const int64_t step = kStep > 0 ? kStep : step_rt;
  for (int64_t x = 0; x < count; ++x) {
    const T* b = p + x * step;
    if constexpr (std::is_integral_v<T>) {
      const T v0 = b[0];
      T diff = 0;
      for (int t = 1; t < m; ++t) diff |= static_cast<T>(b[offs[t]] ^ v0);
      flags[x] = diff == 0;
    } else {  // bool storage: compare values, not bytes
      const auto v0 = Element<T>::Load(b[0]);
      bool same = true;
      for (int t = 1; t < m; ++t) same &= Element<T>::Load(b[offs[t]]) == v0;
      flags[x] = same;
    }
  }
}

// The mode (the most frequent value, ties to the smallest) or the lower
// median of a sorted histogram; 0 for an empty one (sparse, all zero).
template <typename V, bool kMedian>
inline V SelectFromBins(const HistogramBin<V>* bins, size_t n) {
  if (n == 0) return V(0);
  if constexpr (kMedian) {
    int64_t total = 0;
    for (size_t i = 0; i < n; ++i) total += bins[i].count;
    const int64_t rank = (total - 1) / 2;
    int64_t seen = 0;
    size_t i = 0;
    while (seen + bins[i].count <= rank) seen += bins[i++].count;
    return bins[i].value;
  } else {
    size_t best = 0;  // strict '>' keeps the smallest of tied values
    for (size_t i = 1; i < n; ++i) best = bins[i].count > bins[best].count ? i : best;
    return bins[best].value;
  }
}

// Counting few bins (CountFewBins): values as 64-bit patterns (equality is
// all it needs), in groups of kFewPad, two vectors of four.
using FewLanes = uint64_t __attribute__((vector_size(32)));
constexpr size_t kFewPad = 8, kMaxFewBins = 64;

// Unaligned loads of four bins; the vector is an out-parameter, as returning
// one changes the ABI in the builds without AVX (-Wpsabi).
inline void LoadFewLanes(FewLanes& x, const uint64_t* p) { std::memcpy(&x, p, sizeof x); }

// Bit t of a live mask, loaded rather than shifted so that a pass vectorises.
inline constexpr std::array<uint64_t, kMaxFewBins> kFewBits = [] {
  std::array<uint64_t, kMaxFewBins> bits{};
  for (size_t t = 0; t < kMaxFewBins; ++t) bits[t] = uint64_t{1} << t;
  return bits;
}();

// The bits, from bit b on, of the lanes of eq0 (bins b..b+3) and eq1
// (b+4..b+7) that are all ones.
inline uint64_t FewHits(const FewLanes& eq0, const FewLanes& eq1, size_t b) {
#if defined(MIPMAKER_HAVE_AVX2)
  const int m = _mm256_movemask_pd(reinterpret_cast<__m256d>(eq0)) |
                (_mm256_movemask_pd(reinterpret_cast<__m256d>(eq1)) << 4);
  return static_cast<uint64_t>(m) << b;
#else
  FewLanes k0, k1;
  LoadFewLanes(k0, kFewBits.data() + b);
  LoadFewLanes(k1, kFewBits.data() + b + 4);
  const FewLanes hit = (k0 & eq0) | (k1 & eq1);
  return hit[0] | hit[1] | hit[2] | hit[3];
#endif
}

// The histogram of bins (values[t], counts[t]), t < n <= kMaxFewBins, whose
// values repeat: its distinct values with summed counts (any order, none
// that counts 0) go to dst (room for n), their number to `len`; returns the
// mode, ties to the smallest value, or 0 if nothing counts. counts[n,
// round up to kFewPad) is overwritten. kUnit: every count is 1, except the
// bins outside `counted` (a bit per bin), which count 0; `counts` is unused.
//
// Labels in a block are few (the real segmentation's mixed 4x4x4 blocks
// hold 2.7 on average, from a few dozen bins), so each distinct value takes
// one branch-free, vectorised pass over all the bins; probing or sorting
// them mispredicts at every step.
template <typename V, bool kUnit>
inline V CountFewBins(const uint64_t* values, uint64_t* counts, uint64_t counted, size_t n,
                      HistogramBin<V>* dst, size_t& len) {
  const size_t padded = (n + kFewPad - 1) / kFewPad * kFewPad;
  if constexpr (!kUnit) {
    for (size_t t = n; t < padded; ++t) counts[t] = 0;  // count nothing, whatever the value
  }
  len = 0;
  V best = V(0);
  int64_t most = 0;
  // `live`: the bins whose value is not counted yet. Each pass takes the
  // first one's value, sums the counts of all its bins and retires them.
  // Bins before the first live one's group of kFewPad are all retired.
  const uint64_t all = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
  uint64_t live = all;
  while (live != 0) {
    const size_t a = static_cast<size_t>(__builtin_ctzll(live));
    const FewLanes v = FewLanes{} + values[a];
    FewLanes sum0{}, sum1{};
    uint64_t hit = 0;
    for (size_t b = a / kFewPad * kFewPad; b < padded; b += kFewPad) {
      FewLanes v0, v1;
      LoadFewLanes(v0, values + b);
      LoadFewLanes(v1, values + b + 4);
      const FewLanes eq0 = reinterpret_cast<FewLanes>(v0 == v), eq1 = reinterpret_cast<FewLanes>(v1 == v);
      hit |= FewHits(eq0, eq1, b);
      if constexpr (!kUnit) {
        FewLanes c0, c1;
        LoadFewLanes(c0, counts + b);
        LoadFewLanes(c1, counts + b + 4);
        sum0 += c0 & eq0;
        sum1 += c1 & eq1;
      }
    }
    hit &= all;  // padding may hold the value
    live &= ~hit;
    int64_t total;
    if constexpr (kUnit) {
      total = __builtin_popcountll(hit & counted);
    } else {
      const FewLanes sum = sum0 + sum1;
      total = static_cast<int64_t>(sum[0] + sum[1] + sum[2] + sum[3]);
    }
    const V value = static_cast<V>(values[a]);
    dst[len] = HistogramBin<V>{value, total};
    len += total != 0;  // sparse zeros count 0
    // Ties go to the smallest value, as SelectFromBins does on sorted bins;
    // selected by masks, as GCC turns `take ? value : best` into a branch.
    const bool take = (total > most) | ((total == most) & (total != 0) & (value < best));
    const uint64_t keep = static_cast<uint64_t>(take) - 1;
    best = static_cast<V>((values[a] & ~keep) | (static_cast<uint64_t>(best) & keep));
    most = static_cast<int64_t>((static_cast<uint64_t>(total) & ~keep) | (static_cast<uint64_t>(most) & keep));
  }
  return best;
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
