// SPDX-License-Identifier: BSD-3-Clause
// Accumulating reductions over short rows, several output rows per pass.
// A C-order volume whose last axis is short (64 voxels, say) gives rows too
// short for AccumulateKernel: locating each row's block and finishing it
// costs more than folding it. When the rows are contiguous with the axis
// above them, the f_y input rows of an output row and those of the next K-1
// output rows along that axis form one contiguous super-row, folded in one
// FoldGroups pass; the f_y rows of each output row are then combined and
// the K rows finished together. Where pair_rows.h takes the blocks (f = 2),
// each output row finishes in registers instead (u8 C 2x2x2 from memory:
// 7.9-11.5 -> 12.2-13.1 GVx/s; sparse 6.7-7.4 -> 10.6-10.9), all the whole
// rows of a plane in one call (a call and a BlockRows per 16 rows cost a
// third of the time: standalone, 2048x2048x64 u8, max of 15, a loaded
// machine: dense 5.28-5.40 -> 7.17-7.22 GVx/s, sparse 4.75 -> 7.00, while
// Fortran order gave 6.0-6.2 and 5.2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mipmaker/downsample.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Output rows [0, k) of a batch (starting at `out`, m = n / 2 outputs each)
// through pair_rows.h in one call: output row j's block rows are rows j *
// fy .. j * fy + fy - 1 of every super-row; `ahead` elements of each plane
// are prefetched ahead of the reads. Returns false (having done nothing)
// when the register path does not take these blocks.
template <typename T, typename R, bool kSparse>
bool RegisterRows([[maybe_unused]] const T* in, [[maybe_unused]] T* out,
                  [[maybe_unused]] const std::vector<int64_t>& starts, [[maybe_unused]] int64_t fy,
                  [[maybe_unused]] int64_t n, [[maybe_unused]] int64_t k, [[maybe_unused]] int64_t ahead,
                  [[maybe_unused]] Rounding rounding) {
#if defined(MIPMAKER_HAVE_AVX2)
  using Pairs = RegisterPairs<T, R, kSparse>;
  if constexpr (Pairs::kOk) {
    const int64_t m = n / 2, nrows = static_cast<int64_t>(starts.size()) * fy;
    if (n % 2 != 0 || m % Pairs::kStep != 0 || nrows > Pairs::kMaxRows) return false;
    const PairKeep<R> keep{nullptr, nullptr, false, ahead};
    const T* rows[Pairs::kMaxRows];
    int r = 0;
    for (const int64_t s : starts) {
      for (int64_t dy = 0; dy < fy; ++dy) rows[r++] = in + s + dy * n;
    }
    // Run declines (a dense integer mean of a block that is not a power of
    // two) for every batch alike.
    return Pairs::Run(rows, r, out, m, rounding, keep, k, fy * n) == m;
  }
#endif
  return false;
}

// Runs work range `w` in super-rows when the geometry allows and returns
// true; returns false (having done nothing) otherwise.
template <typename T, typename R, bool kSparse>
bool ShortRowsKernel(const T* in, T* out, const Geometry& g, WorkRange w, Rounding rounding) {
  if constexpr (!kGroupFirst<T, R>) {
    return false;
  } else {
    using Acc = typename R::Acc;
    using Count = typename R::Count;
    const int last = g.rank - 1, up = g.rank - 2;
    if (g.rank < 2 || g.lanes != 1) return false;
    const int64_t f = g.factors[last], n = g.in_shape[last], m = g.out_shape[last];
    const int64_t fy = g.factors[up];
    if (g.in_strides[last] != 1 || f < 2 || f > 4 || n % f != 0 || g.out_strides[last] != 1 ||
        g.in_strides[up] != n || g.out_strides[up] != m || w.inner_begin != 0 || w.inner_end != m) {
      return false;
    }
    constexpr int64_t kSuperRow = 2048;  // input elements per pass, as AccumulateKernel's chunks
    if (fy * n * 2 > kSuperRow) return false;  // long rows: AccumulateKernel is fine
    const int64_t k_max = kSuperRow / (fy * n);
    std::vector<Acc> acc(static_cast<size_t>(fy * k_max * m)), sums(static_cast<size_t>(k_max * m));
    std::vector<Count> counts(kSparse ? acc.size() : 0), sum_counts(kSparse ? sums.size() : 0);
    std::vector<int64_t> starts;
    const int64_t whole_y = g.in_shape[up] / fy;  // output rows whose y block is whole
    // The register path takes every whole output row of a plane in one
    // batch (a call per batch cost as much as reading it); the folding path
    // batches what its accumulators hold.
    bool registers = true;
    for (int64_t outer = w.outer_begin; outer < w.outer_end;) {
      const int64_t yo = outer % g.out_shape[up];
      const int64_t k_all = std::min(whole_y - yo, w.outer_end - outer);
      if (k_all <= 0) {  // a partial y block at the edge: one ordinary row
        AccumulateKernel<T, R, kSparse>(in, out, g, WorkRange{outer, outer + 1, 0, m}, rounding);
        ++outer;
        continue;
      }
      BlockRows rows(g, outer);
      // Block rows come with y fastest: every fy-th one starts a super-row.
      starts.clear();
      int64_t r = 0;
      rows.ForEach([&](int64_t off) {
        if (r == 0) starts.push_back(off);
        if (++r == fy) r = 0;
      });
      if (registers) {
        registers = RegisterRows<T, R, kSparse>(in, out + rows.out_offset(), starts, fy, n, k_all, fy * k_max * n,
                                                rounding);
        if (registers) {
          outer += k_all;
          continue;
        }
      }
      const int64_t k = std::min(k_max, k_all);
      const int64_t span = fy * k * n;
      Acc* a = acc.data();
      Count* c = kSparse ? counts.data() : nullptr;
      for (size_t i = 0; i < starts.size(); ++i) {
        FoldGroupRow<T, R, kSparse>(a, c, in + starts[i], span, f, i == 0);
        // Each super-row is its own stream (one per plane of the block), and
        // the hardware prefetcher stops at every 4 KiB page.
        PrefetchL2(in + starts[i], span, 0, span);
      }
      // Output row j of the batch sums accumulator rows fy*j .. fy*j + fy-1.
      Acc* s = sums.data();
      Count* sc = kSparse ? sum_counts.data() : nullptr;
      for (int64_t j = 0; j < k; ++j) {
        const Acc* src = a + j * fy * m;
        Acc* dst = s + j * m;
        if (fy == 2) {  // one pass, no copy: these rows are short (32 sums for 64 voxels)
          for (int64_t i = 0; i < m; ++i) dst[i] = R::Combine(src[i], src[m + i]);
        } else {
          std::copy(src, src + m, dst);
          for (int64_t dy = 1; dy < fy; ++dy) {
            for (int64_t i = 0; i < m; ++i) dst[i] = R::Combine(dst[i], src[dy * m + i]);
          }
        }
        if constexpr (kSparse) {
          const Count* csrc = c + j * fy * m;
          Count* cdst = sc + j * m;
          if (fy == 2) {
            for (int64_t i = 0; i < m; ++i) cdst[i] = static_cast<Count>(csrc[i] + csrc[m + i]);
          } else {
            std::copy(csrc, csrc + m, cdst);
            for (int64_t dy = 1; dy < fy; ++dy) {
              for (int64_t i = 0; i < m; ++i) cdst[i] += csrc[dy * m + i];
            }
          }
        }
      }
      const RowOutputs<R> ro{k * m, k * m, rows.rows() * f, 0};
      FinishAny<T, R, kSparse>(s, sc, 1, 1, ro, out + rows.out_offset(), 1, 0, rounding);
      outer += k;
    }
    return true;
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
