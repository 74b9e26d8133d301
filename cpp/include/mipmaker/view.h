// SPDX-License-Identifier: BSD-3-Clause
// Geometry of one downsampling call: shapes, factors and element strides of
// input and output, normalised so the innermost axis is the one with the
// smallest input stride (C and Fortran order run the same loop).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <numeric>

#include "mipmaker/types.h"

namespace mipmaker {

// Shapes and element strides of further outputs that share the input and
// axis order of a Geometry (the levels 2..K of a fused pyramid).
struct ExtraOutputs {
  int count = 0;
  std::array<std::array<int64_t, kMaxRank>, kMaxLevels> shape{}, strides{};
  std::array<int64_t, kMaxLevels> lane_out_stride{};
};

// Drops unit axes, orders axes by decreasing |input stride| and merges
// neighbouring factor-1 axes that are contiguous in the input and in every
// output. Returns false when the output is empty (nothing to compute).
inline bool Normalize(Geometry& g, ExtraOutputs* extra = nullptr) {
  for (int d = 0; d < g.rank; ++d) {
    if (g.in_shape[d] == 0) return false;
  }
  const int nx = extra ? extra->count : 0;
  Geometry n;
  ExtraOutputs nx_out;
  nx_out.count = nx;
  std::array<int, kMaxRank> order{};
  int r = 0;
  for (int d = 0; d < g.rank; ++d) {
    if (g.in_shape[d] != 1) order[r++] = d;
  }
  std::stable_sort(order.begin(), order.begin() + r, [&](int a, int b) {
    return std::llabs(g.in_strides[a]) > std::llabs(g.in_strides[b]);
  });
  int m = 0;
  for (int i = 0; i < r; ++i) {
    const int d = order[i];
    bool merge = m > 0 && n.factors[m - 1] == 1 && g.factors[d] == 1 &&
                 n.in_strides[m - 1] == g.in_shape[d] * g.in_strides[d] &&
                 n.out_strides[m - 1] == g.out_shape[d] * g.out_strides[d];
    for (int x = 0; merge && x < nx; ++x) {
      merge = nx_out.strides[x][m - 1] == extra->shape[x][d] * extra->strides[x][d];
    }
    if (merge) {
      n.in_shape[m - 1] *= g.in_shape[d];
      n.out_shape[m - 1] *= g.out_shape[d];
      n.in_strides[m - 1] = g.in_strides[d];
      n.out_strides[m - 1] = g.out_strides[d];
      for (int x = 0; x < nx; ++x) {
        nx_out.shape[x][m - 1] *= extra->shape[x][d];
        nx_out.strides[x][m - 1] = extra->strides[x][d];
      }
      continue;
    }
    n.in_shape[m] = g.in_shape[d];
    n.out_shape[m] = g.out_shape[d];
    n.factors[m] = std::min(g.factors[d], g.in_shape[d]);
    n.in_strides[m] = g.in_strides[d];
    n.out_strides[m] = g.out_strides[d];
    for (int x = 0; x < nx; ++x) {
      nx_out.shape[x][m] = extra->shape[x][d];
      nx_out.strides[x][m] = extra->strides[x][d];
    }
    ++m;
  }
  if (m == 0) {  // a single voxel
    n.in_shape[0] = n.out_shape[0] = n.factors[0] = 1;
    n.in_strides[0] = n.out_strides[0] = 1;
    for (int x = 0; x < nx; ++x) nx_out.shape[x][0] = nx_out.strides[x][0] = 1;
    m = 1;
  }
  n.rank = m;
  g = n;
  if (extra) *extra = nx_out;
  return true;
}

// Folds a short contiguous factor-1 innermost axis into lanes of the axis
// above it (see Geometry::lanes). Returns whether it did.
inline bool FoldLanes(Geometry& g, ExtraOutputs* extra = nullptr, int64_t max_lanes = 256) {
  const int r = g.rank;
  if (r < 2 || g.factors[r - 1] != 1 || g.in_strides[r - 1] != 1 || g.in_shape[r - 1] > max_lanes ||
      g.in_strides[r - 2] != g.in_shape[r - 1]) {
    return false;
  }
  g.lanes = g.in_shape[r - 1];
  g.lane_out_stride = g.out_strides[r - 1];
  g.rank = r - 1;
  if (extra) {
    for (int x = 0; x < extra->count; ++x) extra->lane_out_stride[x] = extra->strides[x][r - 1];
  }
  return true;
}

// The axis tinybrain's rule kernels loop along innermost: the one with the
// smallest input stride among axes longer than one voxel. Also decides how
// the bindings count work items.
inline int TinybrainFastAxis(const Geometry& g) {
  int fast = 0;
  for (int d = 1; d < g.rank; ++d) {
    const bool longer = g.in_shape[d] > 1;
    if (longer && (g.in_shape[fast] <= 1 || std::llabs(g.in_strides[d]) < std::llabs(g.in_strides[fast]))) {
      fast = d;
    }
  }
  return fast;
}

// The other axes in the order tinybrain's rule kernels step their work
// items (output lines) along, fastest first: by input stride, so that
// consecutive lines follow each other in memory. Returns their number.
inline int TinybrainItemAxes(const Geometry& g, int fast, int (&axes)[kMaxRank]) {
  int n = 0;
  for (int d = 0; d < g.rank; ++d) {
    if (d != fast) axes[n++] = d;
  }
  std::stable_sort(axes, axes + n, [&](int x, int y) { return g.in_strides[x] < g.in_strides[y]; });
  return n;
}

}  // namespace mipmaker
