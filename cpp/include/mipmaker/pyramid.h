// SPDX-License-Identifier: BSD-3-Clause
// Fused multi-level pyramid for the accumulating methods (mean, min, max):
// the input is read once and every level 1..K is produced from cache-sized
// pieces. Level j keeps *unfinished* accumulators (exact sums for mean), so
// level k is the exact reduction of its whole f^k block of the input, never a
// reduction of rounded values: the same numbers as K separate downsample
// calls with factors f^k, at the cost of one pass.
//
// The unit of work is one output row of the top level K (a fixed outer index)
// and a chunk of its inner range. For a row at level j, the rows of level
// j - 1 inside its block are produced recursively, folded vertically into a
// row accumulator, then combined horizontally in groups of f (lane by lane
// when the geometry has lanes) and written to level j's output; the combined,
// unfinished accumulators go straight into level j + 1's row accumulator.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "mipmaker/downsample.h"
#include "mipmaker/element.h"
#include "mipmaker/two_levels.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

template <typename T, typename R, bool kSparse>
class PyramidWorker {
 public:
  using Acc = typename R::Acc;
  using Count = typename R::Count;

  // `levels[0]` describes the input, levels[1..num_levels] the outputs.
  PyramidWorker(const T* in, const Geometry& g, const LevelGeometry* levels,
                int num_levels, int64_t chunk, Rounding rounding)
      : in_(in), g_(g), lv_(levels), k_(num_levels), rounding_(rounding) {
    const int last = g.rank - 1;
    const int64_t f = g.factors[last];
    vert_.resize(k_ + 1);
    vcount_.resize(k_ + 1);
    int64_t span = chunk;  // elements of level j per chunk of level k
    for (int j = k_; j >= 1; --j) {
      const size_t v = static_cast<size_t>(std::min(span * f, lv_[j - 1].shape[last]) * g.lanes);
      vert_[j].resize(v);
      if (kSparse) vcount_[j].resize(v);
      span *= f;
    }
    // Level-1 blocks that span several planes of the input read as many
    // interleaved streams, which the hardware prefetcher follows poorly
    // once other levels' work sits between the reads (2x2x2 x2 ran at half
    // the speed of x1). Prefetching the next top-level row's input into L2
    // while folding this one measured 9.9 -> 15 GVx/s there (u8 F 2048^2x64);
    // into L1 it was slower. Single-plane blocks gain from it from three
    // levels on (2x2x1 x3: 9.6 -> 12.0, x5: 7.2 -> 10.1 GVx/s), but two
    // levels lose (x2: 14-16 -> 12.3-12.5).
    bool planes = false;
    for (int d = 0; d + 1 < last; ++d) planes |= g.factors[d] > 1;
    if (k_ >= 2 && (planes || k_ >= 3) && last >= 1 && g.lanes == 1 && g.in_strides[last] == 1 &&
        chunk >= lv_[k_].shape[last]) {
      prefetch_ = lv_[k_].block[last - 1] * g.in_strides[last - 1];
    }
    // Rows with lanes (a C-order volume's short last axis) are long and cut
    // into chunks; each block row is a separate stream, so the next chunk of
    // the same rows is prefetched (C 2x2x1 x2, u8: 7.3-9.3 -> 11.6-12.9 GVx/s).
    if (k_ >= 2 && g.lanes > 1 && chunk < lv_[k_].shape[last]) {
      prefetch_ = chunk * lv_[k_].block[last] * g.in_strides[last];
    }
    // Level 1's register path (pair_rows.h) prefetches as it reads, which
    // wins at every depth: the hardware prefetcher stops at each 4 KiB page
    // (u8 F 2048^2x64, 2x2x1 max x1: 6.4 -> 8.4 GVx/s, mean x2: 3.7 -> 7.2).
    if (last >= 1 && g.in_strides[last] == g.lanes) {
      pair_ahead_ = chunk >= lv_[k_].shape[last] ? lv_[k_].block[last - 1] * g.in_strides[last - 1]
                                                 : chunk * lv_[k_].block[last] * g.in_strides[last];
    }
#if defined(MIPMAKER_HAVE_AVX2)
    // Whether levels 1 and 2 may finish together in registers: rows and
    // outputs contiguous, interior level-2 blocks of few enough rows (more
    // than TwoLevelMeanAvx2::kMaxTogether only where they are read in turn,
    // as ReadRowsInTurn decides for rows less than 4 KiB apart). Decided
    // once here, so that rows it would decline cost nothing per work item.
    if constexpr (TwoLevelMeanAvx2<T, R, kSparse>::kOk) {
      using Two = TwoLevelMeanAvx2<T, R, kSparse>;
      int64_t rows = 1;
      for (int d = 0; d < last; ++d) rows *= g.factors[d] * g.factors[d];
      const int64_t pitch = last >= 1 ? g.in_strides[last - 1] * int64_t{sizeof(T)} : 0;
      const bool close = last >= 1 && g.factors[last - 1] > 1 && RowsCloseEnough(pitch);
      two_levels_ = k_ >= 2 && g.lanes == 1 && g.factors[last] == 2 && g.in_strides[last] == 1 &&
                    lv_[1].strides[last] == 1 && lv_[2].strides[last] == 1 &&
                    (rows <= Two::kMaxTogether || (rows <= Two::kMaxTotalRows && close));
    }
#endif
  }

  // Produces the block of level-k output row `outer` (linear outer index)
  // over inner outputs [a, b) at every level.
  void Run(int64_t outer, int64_t a, int64_t b) {
    std::array<int64_t, kMaxRank> o{};
    int64_t rest = outer;
    for (int d = g_.rank - 2; d >= 0; --d) {
      o[d] = rest % lv_[k_].shape[d];
      rest /= lv_[k_].shape[d];
    }
    Produce(k_, o, a, b, Keep{});
  }

 private:
  // Where a level-j row's unfinished accumulators go: into its parent's row
  // accumulators (stored by the first child row, combined by the others),
  // or nowhere for the top level.
  struct Keep {
    Acc* acc = nullptr;
    Count* count = nullptr;
    bool add = false;
  };

  // Writes level j's output for row `o` over inner range [a, b) and hands
  // its accumulators to `keep`.
  void Produce(int j, const std::array<int64_t, kMaxRank>& o, int64_t a, int64_t b, Keep keep) {
    if (j == 1 || j == 2) {  // whole pairs (and pairs of pairs) may finish in registers
      const int64_t n = j == 1 ? RegisterPairsRow(o, a, b, keep) : RegisterTwoLevelsRow(o, a, b, keep);
      if (n == b - a) return;
      a += n;
      if (keep.acc != nullptr) keep.acc += n * g_.lanes;
      if (keep.count != nullptr) keep.count += n * g_.lanes;
    }
    const int last = g_.rank - 1;
    const int64_t f = g_.factors[last];
    const int64_t lanes = g_.lanes;
    const int64_t a0 = a * f, b0 = std::min(b * f, lv_[j - 1].shape[last]);  // level j-1 range
    Acc* vert = vert_[j].data();
    Count* vcnt = kSparse ? vcount_[j].data() : nullptr;
    // Children of `o` at level j - 1: an odometer over the outer axes.
    std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
    for (int d = 0; d < last; ++d) {
      lo[d] = o[d] * g_.factors[d];
      hi[d] = std::min(lo[d] + g_.factors[d], lv_[j - 1].shape[d]);
      c[d] = lo[d];
    }
    bool first = true;
    // Level 1 of integer rows folds groups first, as AccumulateKernel does.
    bool grouped = false;
    if constexpr (kGroupFirst<T, R>) {
      grouped = j == 1 && lanes == 1 && g_.in_strides[last] == 1 && f >= 2 && f <= 4;
    }
    for (;;) {
      if (grouped) {
        if constexpr (kGroupFirst<T, R>) {
          int64_t off = a0;
          for (int d = 0; d < last; ++d) off += c[d] * g_.in_strides[d];
          FoldGroupRow<T, R, kSparse>(vert, vcnt, in_ + off, b0 - a0, f, first);
          if (prefetch_ != 0) PrefetchL2(in_ + off, prefetch_, 0, b0 - a0);
        }
      } else if (j == 1) {
        int64_t off = a0 * g_.in_strides[last];
        for (int d = 0; d < last; ++d) off += c[d] * g_.in_strides[d];
        const T* row = in_ + off;
        const int64_t span = lanes > 1 ? (b0 - a0) * lanes : b0 - a0;
        const int64_t s = lanes > 1 ? 1 : g_.in_strides[last];
        if (first) {
          FoldRow<T, R, kSparse, true>(vert, vcnt, row, span, s);
        } else {
          FoldRow<T, R, kSparse, false>(vert, vcnt, row, span, s);
        }
        if (prefetch_ != 0) PrefetchL2(row, prefetch_, 0, span);
      } else {
        Produce(j - 1, c, a0, b0, Keep{vert, vcnt, !first});
      }
      first = false;
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++c[d] < hi[d]) break;
        c[d] = lo[d];
      }
      if (d < 0) break;
    }
    // Grouped rows hold one accumulator per output already.
    Horizontal(j, o, a, b, grouped ? b - a : b0 - a0, grouped ? 1 : f, keep);
  }

  // Outputs [a, a + n) of level 1's row `o` through pair_rows.h, when its
  // blocks are pairs along contiguous rows (or of adjacent lane groups),
  // with their accumulators handed to `keep`; returns n (maybe 0).
  int64_t RegisterPairsRow(const std::array<int64_t, kMaxRank>& o, int64_t a, int64_t b, const Keep& keep) {
#if defined(MIPMAKER_HAVE_AVX2)
    using Pairs = RegisterPairs<T, R, kSparse>;
    if constexpr (Pairs::kOk) {
      const int last = g_.rank - 1;
      const LevelGeometry& L = lv_[1];
      const int64_t lanes = g_.lanes;
      if (g_.factors[last] != 2 || g_.in_strides[last] != lanes || L.strides[last] != lanes) return 0;
      if (lanes > 1 && L.lane_stride != 1) return 0;
      const int64_t whole = std::min(b, g_.in_shape[last] / 2) - a;  // outputs of two voxels
      std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
      int64_t rows = 1, out_off = a * lanes;
      for (int d = 0; d < last; ++d) {
        lo[d] = c[d] = o[d] * g_.factors[d];
        hi[d] = std::min(lo[d] + g_.factors[d], g_.in_shape[d]);
        rows *= hi[d] - lo[d];
        out_off += o[d] * L.strides[d];
      }
      if (whole <= 0 || rows > Pairs::kMaxRows) return 0;
      const T* starts[Pairs::kMaxRows];
      for (int r = 0; r < rows; ++r) {
        int64_t off = 2 * a * lanes;
        for (int d = 0; d < last; ++d) off += c[d] * g_.in_strides[d];
        starts[r] = in_ + off;
        for (int d = last - 1; d >= 0 && ++c[d] == hi[d]; --d) c[d] = lo[d];
      }
      const PairKeep<R> to{keep.acc, kSparse ? keep.count : nullptr, keep.add, pair_ahead_};
      T* out = static_cast<T*>(L.data) + out_off;
      if (lanes == 1) return Pairs::Run(starts, static_cast<int>(rows), out, whole, rounding_, to);
      if constexpr (R::kIsMean && PairMeanAvx2<T, R, kSparse>::kLanesOk) {
        return PairMeanAvx2<T, R, kSparse>::RunLanes(starts, static_cast<int>(rows), lanes, out, whole, rounding_, to);
      }
      return 0;
    }
#endif
    (void)keep;
    return 0;
  }

  // Outputs [a, a + n) of level 2's row `o` and the level-1 outputs under
  // them through two_levels.h (u8 means of blocks two voxels wide along
  // contiguous rows), with the level-2 sums (and counts) handed to `keep`; returns n
  // (maybe 0).
  int64_t RegisterTwoLevelsRow(const std::array<int64_t, kMaxRank>& o, int64_t a, int64_t b, const Keep& keep) {
#if defined(MIPMAKER_HAVE_AVX2)
    using Two = TwoLevelMeanAvx2<T, R, kSparse>;
    if constexpr (Two::kOk) {
      const int last = g_.rank - 1;
      const LevelGeometry &L1 = lv_[1], &L2 = lv_[2];
      if (!two_levels_) return 0;
      const int64_t whole = std::min(b, g_.in_shape[last] / 4) - a;  // outputs of four voxels per row
      if (whole < Two::kStep) return 0;
      TwoLevelRows<T> rows;
      // Level-1 children of `o`, and the input rows of each: odometers over
      // the outer axes.
      std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
      for (int d = 0; d < last; ++d) {
        lo[d] = c[d] = o[d] * g_.factors[d];
        hi[d] = std::min(lo[d] + g_.factors[d], L1.shape[d]);
      }
      for (;;) {
        if (rows.children == TwoLevelRows<T>::kMaxChildren) return 0;
        const int k = rows.children++;
        int64_t out_off = 2 * a;
        std::array<int64_t, kMaxRank> ilo{}, ihi{}, ic{};
        for (int d = 0; d < last; ++d) {
          out_off += c[d] * L1.strides[d];
          ilo[d] = ic[d] = c[d] * g_.factors[d];
          ihi[d] = std::min(ilo[d] + g_.factors[d], g_.in_shape[d]);
        }
        rows.out[k] = static_cast<T*>(L1.data) + out_off;
        rows.nrows[k] = 0;
        for (;;) {
          if (rows.nrows[k] == TwoLevelRows<T>::kMaxRows) return 0;
          int64_t off = 4 * a;
          for (int d = 0; d < last; ++d) off += ic[d] * g_.in_strides[d];
          rows.rows[k][rows.nrows[k]++] = in_ + off;
          int d = last - 1;
          for (; d >= 0 && ++ic[d] == ihi[d]; --d) ic[d] = ilo[d];
          if (d < 0) break;
        }
        int d = last - 1;
        for (; d >= 0 && ++c[d] == hi[d]; --d) c[d] = lo[d];
        if (d < 0) break;
      }
      int64_t out_off = a;
      for (int d = 0; d < last; ++d) out_off += o[d] * L2.strides[d];
      const PairKeep<R> to{keep.acc, kSparse ? keep.count : nullptr, keep.add, pair_ahead_};
      return Two::Run(rows, static_cast<T*>(L2.data) + out_off, whole, rounding_, to);
    }
#endif
    (void)o, (void)a, (void)b, (void)keep;
    return 0;
  }

  // Combines groups of f level-(j-1) accumulators into level j, hands the
  // unfinished accumulators to `keep` for level j + 1, and writes level j.
  void Horizontal(int j, const std::array<int64_t, kMaxRank>& o, int64_t a, int64_t b, int64_t span,
                  int64_t f, Keep keep) {
    const int last = g_.rank - 1;
    const LevelGeometry& L = lv_[j];
    // Input voxels per output along the outer axes (edge blocks are smaller).
    int64_t outer_voxels = 1, out_off = 0;
    for (int d = 0; d < last; ++d) {
      const int64_t start = o[d] * L.block[d];
      outer_voxels *= std::min(start + L.block[d], g_.in_shape[d]) - start;
      out_off += o[d] * L.strides[d];
    }
    const int64_t n_in = g_.in_shape[last], fb = L.block[last], m = b - a;
    // Only the last output of a row can cover fewer than f^j input voxels.
    const bool short_end = b == L.shape[last] && n_in % fb != 0;
    RowOutputs<R> row{span, short_end ? m - 1 : m, outer_voxels * fb,
                      outer_voxels * (n_in - (L.shape[last] - 1) * fb), keep.acc,
                      kSparse ? keep.count : nullptr, keep.add};
    T* out = static_cast<T*>(L.data) + out_off + a * L.strides[last];
    FinishAny<T, R, kSparse>(vert_[j].data(), kSparse ? vcount_[j].data() : nullptr, f, g_.lanes, row, out,
                             L.strides[last], L.lane_stride, rounding_);
  }

  const T* in_;
  const Geometry& g_;
  // Elements from a level-1 input row to its place in the next work item
  // (0: no prefetch).
  int64_t prefetch_ = 0;
  int64_t pair_ahead_ = 0;  // the same for the register path
  bool two_levels_ = false;  // see RegisterTwoLevelsRow
  const LevelGeometry* lv_;
  int k_;
  Rounding rounding_;
  std::vector<std::vector<Acc>> vert_;
  std::vector<std::vector<Count>> vcount_;
};

// Work items are (top-level outer row, inner chunk) pairs, row-major.
template <typename T, typename R, bool kSparse>
void PyramidKernel(const T* in, const Geometry& g, const LevelGeometry* levels, int num_levels,
                   int64_t chunk, int64_t item_begin, int64_t item_end, Rounding rounding) {
  PyramidWorker<T, R, kSparse> worker(in, g, levels, num_levels, chunk, rounding);
  const int last = g.rank - 1;
  const int64_t inner = levels[num_levels].shape[last];
  const int64_t chunks = (inner + chunk - 1) / chunk;
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t outer = item / chunks, c = item % chunks;
    worker.Run(outer, c * chunk, std::min(inner, (c + 1) * chunk));
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
