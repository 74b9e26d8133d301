// SPDX-License-Identifier: BSD-3-Clause
// Exact mode and median pyramids by merging block histograms. The histogram
// of a level-j block (its distinct values, sorted, with counts) is the merge
// of its children's histograms, so every level is the exact mode / lower
// median of its whole f^j block of the input while each voxel is read once.
// Labelled volumes are mostly uniform at small scales, so histograms stay
// tiny and the common case is a single (value, count) pair.
#pragma once

#include <algorithm>
#include <type_traits>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "mipmaker/element.h"
#include "mipmaker/histogram_leaf.h"
#include "mipmaker/method.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

template <typename T, bool kMedian, bool kSparse>
class HistogramPyramid {
 public:
  using V = typename Element<T>::Value;
  using Bin = HistogramBin<V>;
  // Integer values take the level-by-level leaf for whole blocks.
  static constexpr bool kLeaf = std::is_integral_v<V>;

  // `levels[0]` is the input, levels[1..num_levels] the outputs (normalised
  // axes; no lanes).
  HistogramPyramid(const T* in, const Geometry& g, const LevelGeometry* levels, int num_levels)
      : in_(in), g_(g), lv_(levels), k_(num_levels), leaf_(in, g, levels, kLeaf ? num_levels : 0) {
    // Input offsets of the voxels of a whole level-1 block, for the fast path.
    BlockOffsets(g_.rank, g_.factors, g_.in_strides, block_offsets_);
  }

  // Computes level-k output voxels [item, end) (linear indices) and every
  // voxel of the lower levels inside their blocks; returns how many it did
  // (at least one). Whole blocks go to the leaf in runs along the last axis,
  // which read each input row in one sweep instead of a short piece per block.
  int64_t Run(int64_t item, int64_t end) {
    std::array<int64_t, kMaxRank> o{};
    int64_t rest = item;
    for (int d = g_.rank - 1; d >= 0; --d) {
      o[d] = rest % lv_[k_].shape[d];
      rest /= lv_[k_].shape[d];
    }
    if constexpr (kLeaf) {
      const int last = g_.rank - 1;
      const int64_t run = leaf_.Covers(k_, o, std::min(end - item, lv_[k_].shape[last] - o[last]));
      if (run > 0) {
        leaf_.Run(k_, o, run, nullptr);
        return run;
      }
    }
    bins_.clear();
    bool nan = false;
    Build(k_, o, nan);
    return 1;
  }

 private:
  // Appends the histogram of level-j block `o` to bins_ (sorted, distinct
  // values) and writes its mode / median to level j's output. Children
  // append theirs first, then the block merges them in place.
  void Build(int j, const std::array<int64_t, kMaxRank>& o, bool& saw_nan) {
    if constexpr (kLeaf) {
      if (leaf_.Covers(j, o)) {
        leaf_.Run(j, o, 1, &bins_);
        return;
      }
    }
    const size_t base = bins_.size();
    bool nan = false;
    std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
    bool whole = true;
    for (int d = 0; d < g_.rank; ++d) {
      lo[d] = o[d] * g_.factors[d];
      hi[d] = std::min(lo[d] + g_.factors[d], lv_[j - 1].shape[d]);
      c[d] = lo[d];
      whole &= hi[d] - lo[d] == g_.factors[d];
    }
    if (j == 1) {
      int64_t origin = 0;
      for (int d = 0; d < g_.rank; ++d) origin += lo[d] * g_.in_strides[d];
      if (whole) {
        const V v0 = Element<T>::Load(in_[origin]);
        bool uniform = true;
        for (size_t t = 1; t < block_offsets_.size(); ++t) {
          uniform &= Element<T>::Load(in_[origin + block_offsets_[t]]) == v0;
        }
        if (uniform && Keep(v0, nan)) {  // the common case in segmentations
          bins_.push_back(Bin{v0, static_cast<int64_t>(block_offsets_.size())});
          Write(j, o, bins_.data() + base, 1, false);
          return;
        }
        nan = false;
        for (const int64_t off : block_offsets_) {
          const V v = Element<T>::Load(in_[origin + off]);
          if (Keep(v, nan)) bins_.push_back(Bin{v, 1});
        }
      } else {
        for (;;) {
          int64_t off = 0;
          for (int d = 0; d < g_.rank; ++d) off += c[d] * g_.in_strides[d];
          const V v = Element<T>::Load(in_[off]);
          if (Keep(v, nan)) bins_.push_back(Bin{v, 1});
          if (!Next(c, lo, hi)) break;
        }
      }
    } else {
      V v;
      if (j <= 3 && UniformBlock(j, o, v) && Keep(v, nan)) {
        // Small uniform blocks are the bulk of a segmentation: one scan of
        // the voxels, then every lower level inside the block is `v`.
        int64_t voxels = 1;
        for (int d = 0; d < g_.rank; ++d) voxels *= lv_[j].block[d];
        bins_.push_back(Bin{v, voxels});
        for (int i = 1; i <= j; ++i) Fill(i, j, o, v);
        return;
      }
      nan = false;
      for (;;) {
        Build(j - 1, c, nan);
        if (!Next(c, lo, hi)) break;
      }
    }
    Compact(bins_, base);
    saw_nan |= nan;
    Write(j, o, bins_.data() + base, bins_.size() - base, nan);
  }

  // Whether level-j block `o` lies inside the volume and holds a single
  // value (returned in `v`). Scans rows along the innermost axis.
  bool UniformBlock(int j, const std::array<int64_t, kMaxRank>& o, V& v) const {
    const LevelGeometry& L = lv_[j];
    const int last = g_.rank - 1;
    std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
    for (int d = 0; d < g_.rank; ++d) {
      lo[d] = o[d] * L.block[d];
      hi[d] = lo[d] + L.block[d];
      if (hi[d] > g_.in_shape[d]) return false;
      c[d] = lo[d];
    }
    int64_t origin = 0;
    for (int d = 0; d < g_.rank; ++d) origin += lo[d] * g_.in_strides[d];
    v = Element<T>::Load(in_[origin]);
    const int64_t run = L.block[last], s = g_.in_strides[last];
    for (;;) {
      int64_t off = 0;
      for (int d = 0; d < last; ++d) off += c[d] * g_.in_strides[d];
      const T* p = in_ + off + lo[last] * s;
      bool same = true;
      if (s == 1) {
        for (int64_t i = 0; i < run; ++i) same &= Element<T>::Load(p[i]) == v;
      } else {
        for (int64_t i = 0; i < run; ++i) same &= Element<T>::Load(p[i * s]) == v;
      }
      if (!same) return false;
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++c[d] < hi[d]) break;
        c[d] = lo[d];
      }
      if (d < 0) return true;
    }
  }

  // Writes `v` to every level-i voxel inside level-j block `o`.
  void Fill(int i, int j, const std::array<int64_t, kMaxRank>& o, const V& v) {
    const LevelGeometry& L = lv_[i];
    const T value = Element<T>::Store(Canonical(v));
    std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
    for (int d = 0; d < g_.rank; ++d) {
      lo[d] = o[d];
      hi[d] = o[d] + 1;
      for (int k = j; k > i; --k) {  // descend level by level: blocks clamp at the edge
        lo[d] *= g_.factors[d];
        hi[d] = std::min(hi[d] * g_.factors[d], lv_[k - 1].shape[d]);
      }
      c[d] = lo[d];
    }
    T* base = static_cast<T*>(L.data);
    for (;;) {
      int64_t off = 0;
      for (int d = 0; d < g_.rank; ++d) off += c[d] * L.strides[d];
      base[off] = value;
      if (!Next(c, lo, hi)) break;
    }
  }

  // Whether a voxel takes part: NaN never does, zero not when sparse.
  static bool Keep(const V& v, bool& nan) {
    if constexpr (kIsFloatValue<V>) {
      if (IsNan(v)) {
        nan = true;
        return false;
      }
    }
    if constexpr (kSparse) return !IsZero(v);
    return true;
  }

  // Sorts bins [base, end) by value and merges equal values. Uniform blocks
  // (one distinct value) skip the sort.
  static void Compact(std::vector<Bin>& bins, size_t base) {
    const size_t n = bins.size() - base;
    if (n <= 1) return;
    Bin* b = bins.data() + base;
    bool uniform = true;
    int64_t total = b[0].count;
    for (size_t i = 1; i < n; ++i) {
      uniform &= b[i].value == b[0].value;
      total += b[i].count;
    }
    if (uniform) {
      b[0].count = total;
      bins.resize(base + 1);
      return;
    }
    bins.resize(base + SortMergeBins(b, n));
  }

  void Write(int j, const std::array<int64_t, kMaxRank>& o, const Bin* bins, size_t n, bool nan) {
    const LevelGeometry& L = lv_[j];
    int64_t off = 0;
    for (int d = 0; d < g_.rank; ++d) off += o[d] * L.strides[d];
    T* out = static_cast<T*>(L.data) + off;
    if (n == 0) {
      *out = Element<T>::Store(nan ? QuietNan<V>() : V(0));
      return;
    }
    if constexpr (kMedian) {
      int64_t total = 0;
      for (size_t i = 0; i < n; ++i) total += bins[i].count;
      const int64_t rank = (total - 1) / 2;  // the lower median
      int64_t seen = 0;
      size_t i = 0;
      while (seen + bins[i].count <= rank) seen += bins[i++].count;
      *out = Element<T>::Store(Canonical(bins[i].value));
    } else {
      size_t best = 0;  // strict '>' keeps the smallest of tied values
      for (size_t i = 1; i < n; ++i) best = bins[i].count > bins[best].count ? i : best;
      *out = Element<T>::Store(Canonical(bins[best].value));
    }
  }

  bool Next(std::array<int64_t, kMaxRank>& c, const std::array<int64_t, kMaxRank>& lo,
            const std::array<int64_t, kMaxRank>& hi) const {
    for (int d = g_.rank - 1; d >= 0; --d) {
      if (++c[d] < hi[d]) return true;
      c[d] = lo[d];
    }
    return false;
  }

  const T* in_;
  const Geometry& g_;
  const LevelGeometry* lv_;
  int k_;
  std::vector<int64_t> block_offsets_;
  std::vector<Bin> bins_;
  HistogramLeaf<T, kMedian, kSparse> leaf_;
};

template <typename T, bool kMedian, bool kSparse>
void HistogramPyramidKernel(const T* in, const Geometry& g, const LevelGeometry* levels,
                            int num_levels, int64_t item_begin, int64_t item_end) {
  HistogramPyramid<T, kMedian, kSparse> worker(in, g, levels, num_levels);
  for (int64_t item = item_begin; item < item_end;) item += worker.Run(item, item_end);
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
