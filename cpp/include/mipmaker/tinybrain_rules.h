// SPDX-License-Identifier: BSD-3-Clause
// tinybrain's own 2x2 and 2x2x2 mode rules, kept bit-identical for the
// compatible API. Labels are compared bitwise (as tinybrain's C++ does), so
// the kernels run on same-width unsigned integers. Axis 0 is x, 1 is y, 2 is
// z; a block that sticks out of the volume repeats its last row/column/plane
// (tinybrain's padding), which for 2x2 means the block origin wins.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "mipmaker/element.h"
#include "mipmaker/method.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

template <typename U>
inline U Countless2x2(U a, U b, U c, U d) {
  if (a == b || a == c) return a;
  if (b == c) return b;
  return d;
}

// tinybrain's stippled countless (numpy): zero never wins against a label.
// `y` is the (x, y+1) neighbour and `x` the (x+1, y) one; the order matters
// only for the final "first non-zero" fallback.
template <typename U>
inline U Stippled2x2(U a, U x, U y, U d) {
  if (!IsZeroBits(a) && (a == x || a == y)) return a;
  if (!IsZeroBits(y) && y == x) return y;
  if (!IsZeroBits(d)) return d;
  if (!IsZeroBits(a)) return a;
  if (!IsZeroBits(y)) return y;
  return x;
}

// Highest count wins; ties go to the earliest voxel in t = x + 2y + 4z
// order. With `sparse`, zeros are not candidates (an all-zero block gives 0).
template <typename U>
inline U Count2x2x2(const U (&v)[8], bool sparse) {
  U best = sparse ? U{} : v[0];
  int best_count = 0;
  for (int t = 0; t < 8; ++t) {
    if (sparse && IsZeroBits(v[t])) continue;
    int c = 0;
    for (int j = 0; j < 8; ++j) c += (v[j] == v[t]);
    if (c > best_count) {
      best_count = c;
      best = v[t];
    }
  }
  return best;
}

// One output plane row per work item: items enumerate (outer index, slow
// plane index) where the plane is (x, y) and the fast axis is whichever of x
// and y has the smaller input stride.
template <typename U>
void TinybrainModeKernel(const U* in, U* out, const Geometry& g, TinybrainRule rule,
                         int64_t item_begin, int64_t item_end) {
  const bool three =
      rule == TinybrainRule::kCount2x2x2 || rule == TinybrainRule::kSparseCount2x2x2;
  const int first_rest = three ? 3 : 2;
  const bool x_fast = std::llabs(g.in_strides[0]) <= std::llabs(g.in_strides[1]);
  const int fast = x_fast ? 0 : 1, slow = x_fast ? 1 : 0;
  const int64_t n_slow = g.out_shape[slow], n_fast = g.out_shape[fast];
  const int64_t sx = g.in_strides[0], sy = g.in_strides[1], sz = three ? g.in_strides[2] : 0;
  const int64_t ex = g.in_shape[0] - 1, ey = g.in_shape[1] - 1, ez = three ? g.in_shape[2] - 1 : 0;
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t os = item % n_slow;
    int64_t rest = item / n_slow, in_off = 0, out_off = 0;
    for (int d = g.rank - 1; d >= first_rest; --d) {
      const int64_t o = rest % g.out_shape[d];
      rest /= g.out_shape[d];
      in_off += o * g.in_strides[d];
      out_off += o * g.out_strides[d];
    }
    int64_t z0 = 0, z1 = 0;
    if (three) {
      const int64_t oz = rest;  // z is the last coordinate decoded
      z0 = 2 * oz;
      z1 = std::min(z0 + 1, ez);
      out_off += oz * g.out_strides[2];
    }
    out_off += os * g.out_strides[slow];
    for (int64_t of = 0; of < n_fast; ++of) {
      const int64_t ox = x_fast ? of : os, oy = x_fast ? os : of;
      const int64_t x0 = 2 * ox, x1 = std::min(x0 + 1, ex);
      const int64_t y0 = 2 * oy, y1 = std::min(y0 + 1, ey);
      const U* p = in + in_off;
      U r;
      if (!three) {
        const U a = p[x0 * sx + y0 * sy], b = p[x1 * sx + y0 * sy];
        const U c = p[x0 * sx + y1 * sy], d = p[x1 * sx + y1 * sy];
        r = rule == TinybrainRule::kStippled2x2 ? Stippled2x2(a, b, c, d) : Countless2x2(a, b, c, d);
      } else {
        const U v[8] = {p[x0 * sx + y0 * sy + z0 * sz], p[x1 * sx + y0 * sy + z0 * sz],
                        p[x0 * sx + y1 * sy + z0 * sz], p[x1 * sx + y1 * sy + z0 * sz],
                        p[x0 * sx + y0 * sy + z1 * sz], p[x1 * sx + y0 * sy + z1 * sz],
                        p[x0 * sx + y1 * sy + z1 * sz], p[x1 * sx + y1 * sy + z1 * sz]};
        r = Count2x2x2(v, rule == TinybrainRule::kSparseCount2x2x2);
      }
      out[out_off + of * g.out_strides[fast]] = r;
    }
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
