// SPDX-License-Identifier: BSD-3-Clause
// tinybrain's own 2x2 and 2x2x2 mode rules, kept bit-identical for the
// compatible API. Labels are compared bitwise (as tinybrain's C++ does), so
// the kernels run on same-width unsigned integers. Axis 0 is x, 1 is y, 2 is
// z; a block that sticks out of the volume repeats its last row/column/plane
// (tinybrain's padding), which for 2x2 means the block origin wins.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "mipmaker/element.h"
#include "mipmaker/method.h"
#include "mipmaker/tinybrain_avx2.h"
#include "mipmaker/types.h"
#include "mipmaker/view.h"

// The loops over outputs vectorise only when the rules are inlined into
// them; GCC's size heuristics stopped doing that once the kernel grew (2x2x2
// mode fell from 2.5 to 0.8 GVx/s), so it is not left to them.
#if defined(__GNUC__) || defined(__clang__)
#define MIPMAKER_RULE_INLINE inline __attribute__((always_inline))
#else
#define MIPMAKER_RULE_INLINE inline
#endif

namespace mipmaker {
namespace MIPMAKER_ISA {

// The rules are written as selects, not branches, so that loops over them
// vectorise across outputs.
template <typename U>
MIPMAKER_RULE_INLINE U Countless2x2(U a, U b, U c, U d) {
  const U bc = (b == c) ? b : d;
  return (a == b || a == c) ? a : bc;
}

// tinybrain's stippled countless (numpy): zero never wins against a label.
// `x` is the (x+1, y) neighbour and `y` the (x, y+1) one; the order matters
// only for the final "first non-zero" fallback.
template <typename U>
MIPMAKER_RULE_INLINE U Stippled2x2(U a, U x, U y, U d) {
  const bool az = IsZeroBits(a), yz = IsZeroBits(y), dz = IsZeroBits(d);
  const U first_nonzero = !az ? a : (!yz ? y : x);
  const U fallback = !dz ? d : first_nonzero;
  const U pair_y = (!yz && y == x) ? y : fallback;
  return (!az && (a == x || a == y)) ? a : pair_y;
}

// Highest count wins; ties go to the earliest voxel in t = x + 2y + 4z
// order. With `sparse`, zeros are not candidates (an all-zero block gives 0).
template <typename U>
MIPMAKER_RULE_INLINE U Count2x2x2(const U (&v)[8], bool sparse) {
  // Full counts with fixed trip counts: RuleLineStep vectorises this across
  // outputs (forward counts, j > t only, made it 5x slower: no vectorising).
  int count[8];
  for (int t = 0; t < 8; ++t) {
    int c = 0;
    for (int j = 0; j < 8; ++j) c += (v[j] == v[t]);
    count[t] = (sparse && IsZeroBits(v[t])) ? 0 : c;
  }
  U best{};
  int best_count = 0;
  for (int t = 0; t < 8; ++t) {
    const bool take = count[t] > best_count;
    best = take ? v[t] : best;
    best_count = take ? count[t] : best_count;
  }
  return best;
}

template <typename U>
MIPMAKER_RULE_INLINE U ApplyRule(TinybrainRule rule, const U* p, const int64_t (&off)[8]) {
  switch (rule) {
    case TinybrainRule::kCountless2x2:
      return Countless2x2(p[off[0]], p[off[1]], p[off[2]], p[off[3]]);
    case TinybrainRule::kStippled2x2:
      return Stippled2x2(p[off[0]], p[off[1]], p[off[2]], p[off[3]]);
    default: {
      const U v[8] = {p[off[0]], p[off[1]], p[off[2]], p[off[3]],
                      p[off[4]], p[off[5]], p[off[6]], p[off[7]]};
      return Count2x2x2(v, rule == TinybrainRule::kSparseCount2x2x2);
    }
  }
}

// Runs `rule` along one line of outputs: `count` outputs whose blocks start
// kStep (or `step` when kStep is 0) elements apart, with the block's voxels
// at offsets `off`.
template <typename U, TinybrainRule kRule, int kStep>
inline void RuleLineStep(const U* p, int64_t step_rt, const int64_t (&off_rt)[8], U* q, int64_t os,
                         int64_t count) {
  const int64_t step = kStep > 0 ? kStep : step_rt;
  const int64_t (&off)[8] = off_rt;
  constexpr int kN = (kRule == TinybrainRule::kCount2x2x2 || kRule == TinybrainRule::kSparseCount2x2x2) ? 8 : 4;
  auto uniform = [&](const U* b) {
    bool same = true;
    for (int t = 1; t < kN; ++t) same &= b[off[t]] == b[off[0]];
    return same;
  };
  // Segmentations are mostly uniform blocks, random labels almost never: a
  // sample at the start of the line picks a branchy loop with a uniform
  // shortcut (well predicted on labels) or the branch-free vectorised one.
  const int64_t sample = std::min<int64_t>(count, 16);
  int64_t uniform_seen = 0;
  for (int64_t i = 0; i < sample; ++i) uniform_seen += uniform(p + i * step);
  if (uniform_seen * 8 >= sample * 7) {
    for (int64_t i = 0; i < count; ++i) {
      const U* b = p + i * step;
      q[i * os] = uniform(b) ? b[off[0]] : ApplyRule<U>(kRule, b, off);
    }
  } else if (os == 1) {
    for (int64_t i = 0; i < count; ++i) q[i] = ApplyRule<U>(kRule, p + i * step, off);
  } else {
    for (int64_t i = 0; i < count; ++i) q[i * os] = ApplyRule<U>(kRule, p + i * step, off);
  }
}

template <typename U, TinybrainRule kRule>
inline void RuleLine(const U* p, int64_t step, const int64_t (&off)[8], U* q, int64_t os,
                     int64_t count) {
  // Constant strides let the compiler vectorise: unit steps (the line runs
  // along a kept axis) and steps of 2 (along a unit-stride block axis).
  if (step == 1) {
    RuleLineStep<U, kRule, 1>(p, step, off, q, os, count);
  } else if (step == 2) {
    RuleLineStep<U, kRule, 2>(p, step, off, q, os, count);
  } else {
    RuleLineStep<U, kRule, 0>(p, step, off, q, os, count);
  }
}

// RuleLine, with whole vectors of outputs first where the ISA has them.
template <typename U, TinybrainRule kRule>
inline void RunRuleLine(const U* p, int64_t step, const int64_t (&off)[8], int fast, bool vectors,
                        int64_t ahead, bool to_l2, U* q, int64_t os, int64_t count) {
#if defined(MIPMAKER_HAVE_AVX2)
  if constexpr (sizeof(U) == 4 || sizeof(U) == 8) {
    if (vectors) {
      const int64_t done = RuleLineVectors<U, kRule>(p, off, fast, ahead, to_l2, q, count);
      p += done * step;
      q += done;
      count -= done;
    }
  }
#endif
  RuleLine<U, kRule>(p, step, off, q, os, count);
}

// Lines that start closer than this prefetch into L2 (see TinybrainModeKernel).
inline constexpr int64_t kFarPrefetchBytes = 16 << 10;

// tinybrain's rules over the volume. Axes 0, 1 (and 2 for 2x2x2) are the
// block axes (factor 2); the others are kept. The innermost loop runs along
// the axis with the smallest input stride, whichever it is, so C-order,
// Fortran-order and channel-last volumes all stream memory. Work items are
// the output lines along that axis, in mixed-radix order of the other axes.
template <typename U>
void TinybrainModeKernel(const U* in, U* out, const Geometry& g, TinybrainRule rule,
                         int64_t item_begin, int64_t item_end) {
  const int nb = (rule == TinybrainRule::kCount2x2x2 || rule == TinybrainRule::kSparseCount2x2x2) ? 3 : 2;
  const int voxels = nb == 3 ? 8 : 4;
  const int fast = TinybrainFastAxis(g);
  const bool fast_is_block = fast < nb;
  const int64_t n_fast = g.in_shape[fast];
  const int64_t full = fast_is_block ? n_fast / 2 : n_fast;
  const int64_t step = fast_is_block ? 2 * g.in_strides[fast] : g.in_strides[fast];
  const int64_t os = g.out_strides[fast];
  // Whole vectors of outputs need unit-stride block pairs in and contiguous outputs.
  const bool vectors = fast_is_block && g.in_strides[fast] == 1 && os == 1;
  // Consecutive items step along the other axes from the smallest input
  // stride up, so the lines they read follow each other in memory (item
  // order along the largest stride would jump by whole planes, and every
  // line would wait on memory instead of the prefetcher).
  int axes[kMaxRank];
  const int n_axes = TinybrainItemAxes(g, fast, axes);
  // Where item's first block starts in the input and output, and the offset
  // of the +1 voxel along each block axis (0 past an odd edge: it repeats).
  auto locate = [&](int64_t item, int64_t& in_off, int64_t& out_off, int64_t (&neighbour)[3]) {
    int64_t rest = item;
    in_off = out_off = 0;
    for (int k = 0; k < n_axes; ++k) {
      const int d = axes[k];
      const int64_t o = rest % g.out_shape[d];
      rest /= g.out_shape[d];
      out_off += o * g.out_strides[d];
      if (d < nb) {
        in_off += 2 * o * g.in_strides[d];
        neighbour[d] = (2 * o + 1 < g.in_shape[d]) ? g.in_strides[d] : 0;
      } else {
        in_off += o * g.in_strides[d];
      }
    }
  };
  int64_t next_in = 0, next_out = 0, next_neighbour[3] = {0, 0, 0};
  if (item_begin < item_end) locate(item_begin, next_in, next_out, next_neighbour);
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t in_off = next_in, out_off = next_out;
    int64_t neighbour[3] = {next_neighbour[0], next_neighbour[1], next_neighbour[2]};
    // The next line's rows are prefetched while this one runs: rows are
    // often a single 4 KiB page, where the hardware prefetcher stops.
    if (item + 1 < item_end) locate(item + 1, next_in, next_out, next_neighbour);
    // Lines whose rows are short (a 512-voxel u64 row is one 4 KiB page)
    // prefetch two lines ahead into L2; one line ahead into L1 came too late
    // there (2x2 u64 F, 512^3: 1.7 -> 2.3 GVx/s; C 2x2x2: 1.6 -> 1.95) but
    // is a little faster for long rows (2048 F: 2.4 against 2.2).
    const int64_t gap = next_in - in_off;
    const bool to_l2 = std::llabs(gap) * static_cast<int64_t>(sizeof(U)) < kFarPrefetchBytes;
    const int64_t ahead = to_l2 ? 2 * gap : gap;
    if (fast_is_block) neighbour[fast] = g.in_strides[fast];
    int64_t off[8];
    for (int t = 0; t < 8; ++t) {
      off[t] = 0;
      for (int d = 0; d < nb; ++d) off[t] += ((t >> d) & 1) ? neighbour[d] : 0;
      if (t >= voxels) off[t] = 0;
    }
    const U* p = in + in_off;
    U* q = out + out_off;
    if (!vectors && full > 0) {
      // The scalar lines prefetch the next line's rows into L2 here, a cache line
      // at a time, as RuleLineVectors does per step.
      const uintptr_t bytes = static_cast<uintptr_t>(ahead * static_cast<int64_t>(sizeof(U)));
      const uintptr_t len = static_cast<uintptr_t>((full - 1) * step + 1) * sizeof(U);
      for (int t = 0; t < voxels; ++t) {
        if (fast_is_block && ((t >> fast) & 1)) continue;  // the same row as t - (1 << fast)
        const uintptr_t start = reinterpret_cast<uintptr_t>(p + off[t]) + bytes;
        for (uintptr_t a = start & ~uintptr_t{63}; a < start + len; a += 64) {
          __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 1);  // into L2
        }
      }
    }
    switch (rule) {
      case TinybrainRule::kCountless2x2:
        RunRuleLine<U, TinybrainRule::kCountless2x2>(p, step, off, fast, vectors, ahead, to_l2, q, os, full);
        break;
      case TinybrainRule::kStippled2x2:
        RunRuleLine<U, TinybrainRule::kStippled2x2>(p, step, off, fast, vectors, ahead, to_l2, q, os, full);
        break;
      case TinybrainRule::kCount2x2x2:
        RunRuleLine<U, TinybrainRule::kCount2x2x2>(p, step, off, fast, vectors, ahead, to_l2, q, os, full);
        break;
      default:
        RunRuleLine<U, TinybrainRule::kSparseCount2x2x2>(p, step, off, fast, vectors, ahead, to_l2, q, os, full);
        break;
    }
    if (full * (fast_is_block ? 2 : 1) < n_fast) {  // odd block axis: the last voxel repeats
      int64_t edge_off[8];
      const int64_t drop = g.in_strides[fast];
      for (int t = 0; t < 8; ++t) edge_off[t] = off[t] - (((t >> fast) & 1) ? drop : 0);
      q[full * os] = ApplyRule<U>(rule, p + full * step, edge_off);
    }
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
