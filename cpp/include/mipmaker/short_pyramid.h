// SPDX-License-Identifier: BSD-3-Clause
// The fused pyramid over short rows, several top-level rows per pass: what
// ShortRowsKernel is to AccumulateKernel, this is to PyramidWorker. A C-order
// volume with a short last axis (64 voxels) gives every level rows of a few
// dozen values, and PyramidWorker spent more on locating and finishing each
// row than on folding it (u8 C 2048x2048x64, 2x2x2 x2: 21% of the bandwidth
// bound against 44% for one level). When each level's rows are contiguous
// with the axis above them, the block rows of K consecutive top-level rows
// form one contiguous super-row per plane: it is folded in one FoldGroupRow
// pass, and each level combines, finishes and keeps K rows at once.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "mipmaker/downsample.h"
#include "mipmaker/fold_groups.h"
#include "mipmaker/pyramid.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

template <typename T, typename R, bool kSparse>
class ShortRowPyramid {
 public:
  using Acc = typename R::Acc;
  using Count = typename R::Count;

  // Input elements per plane and pass, as AccumulateKernel's chunks.
  static constexpr int64_t kSuperRow = 2048;

  // Whether the geometry has short, whole, contiguous rows at every level
  // (and the work items are whole top-level rows).
  static bool Applies(const Geometry& g, const LevelGeometry* lv, int k, int64_t chunk) {
    if constexpr (!kGroupFirst<T, R>) {
      return false;
    } else {
      if (g.rank < 2 || g.lanes != 1 || g.in_strides[g.rank - 1] != 1) return false;
      const int last = g.rank - 1, up = g.rank - 2;
      const int64_t f = g.factors[last], n = g.in_shape[last];
      if (f < 2 || f > 4 || g.in_strides[up] != n || chunk < lv[k].shape[last]) return false;
      int64_t top = n;  // input elements of one top-level row's block rows, per plane
      for (int j = 1; j <= k; ++j) {
        if (lv[j - 1].shape[last] % f != 0) return false;  // every level's rows whole
        const int64_t m = lv[j].shape[last];
        if (lv[j].strides[last] != 1 || lv[j].strides[up] != m) return false;
        top *= g.factors[up];
      }
      return top * 2 <= kSuperRow;  // at least two top-level rows per pass
    }
  }

  ShortRowPyramid(const T* in, const Geometry& g, const LevelGeometry* levels, int num_levels, int64_t chunk,
                  Rounding rounding)
      : in_(in), g_(g), lv_(levels), k_(num_levels), chunk_(chunk), rounding_(rounding) {
    const int last = g.rank - 1, up = g.rank - 2;
    int64_t fy_k = 1;
    for (int j = 0; j < k_; ++j) fy_k *= g.factors[up];
    k_max_ = kSuperRow / (fy_k * g.in_shape[last]);
    whole_y_ = g.in_shape[up] / fy_k;
    vert_.resize(k_ + 1);
    vcount_.resize(k_ + 1);
    size_t most = 0;
    int64_t rows = k_max_;  // level-j rows per pass
    for (int j = k_; j >= 1; --j) {
      // Level j's accumulators: its child rows, grouped along the row
      // already at level 1 (FoldGroupRow), not yet above.
      const size_t v = static_cast<size_t>(rows * g.factors[up] * lv_[j == 1 ? 1 : j - 1].shape[last]);
      vert_[j].resize(v);
      if (kSparse) vcount_[j].resize(v);
      most = std::max(most, v);
      rows *= g.factors[up];
    }
    sums_.resize(most);
    if (kSparse) sum_counts_.resize(most);
  }

  // Produces top-level rows [b, e) (linear outer indices, whole rows).
  void Run(int64_t b, int64_t e) {
    const int up = g_.rank - 2;
    const int64_t ny = lv_[k_].shape[up];
    for (int64_t item = b; item < e;) {
      const int64_t yo = item % ny;
      const int64_t kb = std::min({k_max_, whole_y_ - yo, e - item});
      if (kb <= 0) {  // a partial y block at the edge: one ordinary row
        if (!edge_) edge_.emplace(in_, g_, lv_, k_, chunk_, rounding_);
        edge_->Run(item, 0, lv_[k_].shape[g_.rank - 1]);
        ++item;
        continue;
      }
      std::array<int64_t, kMaxRank> o{};
      int64_t rest = item / ny;
      for (int d = up - 1; d >= 0; --d) {
        o[d] = rest % lv_[k_].shape[d];
        rest /= lv_[k_].shape[d];
      }
      o[up] = yo;
      Produce(k_, o, kb, nullptr, nullptr, false);
      item += kb;
    }
  }

 private:
  // Level j's rows o[up] .. o[up] + rows - 1 at outer position `o`: writes
  // them and hands their unfinished accumulators to `keep` (stored, or
  // combined into what is there with `add`).
  void Produce(int j, const std::array<int64_t, kMaxRank>& o, int64_t rows, Acc* keep, Count* keep_count,
               bool add) {
    const int last = g_.rank - 1, up = g_.rank - 2;
    const int64_t fy = g_.factors[up], f = g_.factors[last];
    const int64_t child_rows = rows * fy;
    Acc* vert = vert_[j].data();
    Count* vc = kSparse ? vcount_[j].data() : nullptr;
    std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
    for (int d = 0; d < up; ++d) {
      lo[d] = o[d] * g_.factors[d];
      hi[d] = std::min(lo[d] + g_.factors[d], lv_[j - 1].shape[d]);
      c[d] = lo[d];
    }
    c[up] = o[up] * fy;
    if (j == 1 && RegisterLevelOne(o, rows, keep, keep_count, add)) return;
    bool first = true;
    for (;;) {
      if (j == 1) {
        int64_t off = c[up] * g_.in_strides[up];
        for (int d = 0; d < up; ++d) off += c[d] * g_.in_strides[d];
        const int64_t span = child_rows * g_.in_shape[last];
        FoldGroupRow<T, R, kSparse>(vert, vc, in_ + off, span, f, first);
        // Each plane of the block is its own stream, and two levels' work
        // sits between a stream's reads: its next pass is prefetched into
        // L2 (u8 C 2048x2048x64, 2x2x2 x2: 15.5 -> 16.8 GVx/s, sparse
        // 8.0 -> 10.0; one level gains nothing).
        if (k_ > 1) PrefetchL2(in_ + off, span, 0, span);
      } else {
        Produce(j - 1, c, child_rows, vert, vc, !first);
      }
      first = false;
      int d = up - 1;
      for (; d >= 0; --d) {
        if (++c[d] < hi[d]) break;
        c[d] = lo[d];
      }
      if (d < 0) break;
    }
    // Combine the fy child rows of each row; level 1's are grouped along the
    // row already, the others' are combined in groups of f by FinishAny.
    const LevelGeometry& L = lv_[j];
    const int64_t m = L.shape[last], width = j == 1 ? m : m * f;
    Acc* s = vert;
    Count* sc = vc;
    if (fy > 1) {
      for (int64_t r = 0; r < rows; ++r) {
        const Acc* src = vert + r * fy * width;
        Acc* dst = sums_.data() + r * width;
        for (int64_t i = 0; i < width; ++i) dst[i] = R::Combine(src[i], src[width + i]);
        for (int64_t dy = 2; dy < fy; ++dy) {
          for (int64_t i = 0; i < width; ++i) dst[i] = R::Combine(dst[i], src[dy * width + i]);
        }
        if constexpr (kSparse) {
          const Count* csrc = vc + r * fy * width;
          Count* cdst = sum_counts_.data() + r * width;
          for (int64_t i = 0; i < width; ++i) cdst[i] = static_cast<Count>(csrc[i] + csrc[width + i]);
          for (int64_t dy = 2; dy < fy; ++dy) {
            for (int64_t i = 0; i < width; ++i) cdst[i] += csrc[dy * width + i];
          }
        }
      }
      s = sums_.data();
      sc = kSparse ? sum_counts_.data() : nullptr;
    }
    // Input voxels per output: edge blocks are short along the outer axes
    // only (rows and the y blocks of a pass are whole).
    int64_t voxels = L.block[up] * L.block[last], out_off = o[up] * L.strides[up];
    for (int d = 0; d < up; ++d) {
      const int64_t start = o[d] * L.block[d];
      voxels *= std::min(start + L.block[d], g_.in_shape[d]) - start;
      out_off += o[d] * L.strides[d];
    }
    RowOutputs<R> ro{rows * width, rows * m, voxels, voxels, keep, kSparse ? keep_count : nullptr, add};
    FinishAny<T, R, kSparse>(s, sc, j == 1 ? 1 : f, 1, ro, static_cast<T*>(L.data) + out_off, 1, 0, rounding_);
  }

  // Level 1's rows o[up] .. o[up] + rows - 1 through pair_rows.h in one
  // call, each row finished in registers with its sums (and counts) handed
  // to `keep` (row r's at keep + r * m), instead of folding the pass into
  // row accumulators, combining their fy rows and dividing in separate
  // passes (u8 C 2048x2048x64 2x2x2 x2 standalone, sparse, best of 24-30:
  // 43.6-56.4 -> 30.5-34.1 ms). A call per 64-voxel row lost to folding
  // where finishing is a shift; one call for all of them won for dense
  // means too (2048x2048x64 2x2x2 x2, standalone, max of 15, four
  // alternating runs: dense 4.19-4.31 -> 6.04-6.12 GVx/s, sparse 4.34 ->
  // 5.23-5.31). Returns false (having done nothing) where the register path
  // does not take the blocks.
  bool RegisterLevelOne(const std::array<int64_t, kMaxRank>& o, int64_t rows, Acc* keep, Count* keep_count,
                        bool add) {
#if defined(MIPMAKER_HAVE_AVX2)
    using Pairs = RegisterPairs<T, R, kSparse>;
    if constexpr (Pairs::kOk) {
      const int last = g_.rank - 1, up = g_.rank - 2;
      const int64_t fy = g_.factors[up], n = g_.in_shape[last], m = lv_[1].shape[last];
      if (g_.factors[last] != 2 || m % Pairs::kStep != 0) return false;
      // The planes of the block: an odometer over the axes above `up`.
      std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
      int64_t planes = 1, out_off = o[up] * lv_[1].strides[up];
      for (int d = 0; d < up; ++d) {
        lo[d] = c[d] = o[d] * g_.factors[d];
        hi[d] = std::min(lo[d] + g_.factors[d], g_.in_shape[d]);
        planes *= hi[d] - lo[d];
        out_off += o[d] * lv_[1].strides[d];
      }
      if (planes * fy > Pairs::kMaxRows) return false;
      const T* starts[Pairs::kMaxRows];
      int nplanes = 0;
      for (;;) {
        int64_t off = o[up] * fy * n;
        for (int d = 0; d < up; ++d) off += c[d] * g_.in_strides[d];
        starts[nplanes++] = in_ + off;
        int d = up - 1;
        for (; d >= 0 && ++c[d] == hi[d]; --d) c[d] = lo[d];
        if (d < 0) break;
      }
      // The next pass of every plane is prefetched as the steps read (see
      // the folding path below).
      const int64_t span = rows * fy * n;
      T* out = static_cast<T*>(lv_[1].data) + out_off;
      const T* block[Pairs::kMaxRows];
      int k = 0;
      for (int p = 0; p < nplanes; ++p) {
        for (int64_t dy = 0; dy < fy; ++dy) block[k++] = starts[p] + dy * n;
      }
      const PairKeep<R> to{keep, keep_count, add, k_ > 1 ? span : 0};
      return Pairs::Run(block, k, out, m, rounding_, to, rows, fy * n) == m;
    }
#endif
    (void)o, (void)rows, (void)keep, (void)keep_count, (void)add;
    return false;
  }

  const T* in_;
  const Geometry& g_;
  const LevelGeometry* lv_;
  int k_;
  int64_t chunk_;
  Rounding rounding_;
  int64_t k_max_ = 1, whole_y_ = 0;
  std::vector<std::vector<Acc>> vert_;
  std::vector<std::vector<Count>> vcount_;
  std::vector<Acc> sums_;
  std::vector<Count> sum_counts_;
  std::optional<PyramidWorker<T, R, kSparse>> edge_;
};

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
