// SPDX-License-Identifier: BSD-3-Clause
// Fused stride pyramid: level j is every f^j-th input voxel, which is every
// f^(j-1)-th voxel of level 1. Each level-1 row is copied from the input
// and, where it is also a row of level j, level j's row is copied from it
// at once, while it is still in L1: the input is read once (and, where the
// axis above the rows is strided, only its sampled rows) for all levels,
// instead of once per level or level by level through memory.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "mipmaker/downsample.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Levels 1..k of stride for work items [item_begin, item_end): item =
// (row of the top level's outer axes) * chunks + (chunk of `chunk` top-level
// voxels along the last axis), as the fused accumulators (pyramid.h). No
// lanes (the caller does not fold them for stride).
template <typename T>
void StridePyramidKernel(const T* in, const Geometry& g, const LevelGeometry* lv, int k, int64_t chunk,
                         int64_t item_begin, int64_t item_end) {
  const int last = g.rank - 1;
  const LevelGeometry& L1 = lv[1];
  const LevelGeometry& top = lv[k];
  // pow[j][d] = f_d^j, capped at level 1's extent: past it only index 0
  // divides, and the top level is one voxel wide there, so the cap is exact.
  std::array<std::array<int64_t, kMaxRank>, kMaxLevels + 1> pow{};
  for (int d = 0; d < g.rank; ++d) {
    const int64_t cap = std::max<int64_t>(1, L1.shape[d]);
    pow[0][d] = 1;
    for (int j = 1; j <= k; ++j) {
      const int64_t p = pow[j - 1][d];
      pow[j][d] = p > cap / g.factors[d] ? cap : std::min(cap, p * g.factors[d]);
    }
  }
  const int64_t step = g.factors[last] * g.in_strides[last];
  T* out1 = static_cast<T*>(L1.data);
  const int64_t ahead = StrideRowsAhead<T>(g);
  const int64_t chunks = (top.shape[last] + chunk - 1) / chunk;
  std::array<int64_t, kMaxRank> lo{}, hi{}, c{};
  for (int64_t item = item_begin; item < item_end; ++item) {
    int64_t rest = item / chunks;
    const int64_t t0 = (item % chunks) * chunk, t1 = std::min(t0 + chunk, top.shape[last]);
    for (int d = last - 1; d >= 0; --d) {
      const int64_t o = rest % top.shape[d];
      rest /= top.shape[d];
      lo[d] = o * pow[k - 1][d];
      hi[d] = std::min(lo[d] + pow[k - 1][d], L1.shape[d]);
      c[d] = lo[d];
    }
    // Level j's span of the last axis: [t0 f^(k-j), min(t1 f^(k-j), n_j)).
    std::array<int64_t, kMaxLevels + 1> xb{}, xe{};
    for (int j = 1; j <= k; ++j) {
      xb[j] = t0 * pow[k - j][last];
      xe[j] = std::min(t1 * pow[k - j][last], lv[j].shape[last]);
    }
    for (;;) {
      int64_t in_off = 0, off1 = 0;
      for (int d = 0; d < last; ++d) {
        in_off += c[d] * g.factors[d] * g.in_strides[d];
        off1 += c[d] * L1.strides[d];
      }
      const T* p = in + in_off;
      T* q1 = out1 + off1;
      if (ahead != 0) PrefetchL2(p, ahead, xb[1] * step, xe[1] * step);
      StrideRowAny(p, q1, step, L1.strides[last], xb[1], xe[1]);
      for (int j = 2; j <= k; ++j) {
        int64_t offj = 0;
        bool row = true;
        for (int d = 0; d < last; ++d) {
          row &= c[d] % pow[j - 1][d] == 0;
          offj += c[d] / pow[j - 1][d] * lv[j].strides[d];
        }
        if (!row) break;  // nor of any higher level
        StrideRowAny(q1, static_cast<T*>(lv[j].data) + offj, pow[j - 1][last] * L1.strides[last],
                     lv[j].strides[last], xb[j], xe[j]);
      }
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++c[d] < hi[d]) break;
        c[d] = lo[d];
      }
      if (d < 0) break;
    }
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
