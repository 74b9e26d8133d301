// SPDX-License-Identifier: BSD-3-Clause
// Reduction methods and integer rounding modes, shared by Python and C++.
#pragma once

namespace mipmaker {

// The order is part of the binding's contract (kernel table index).
enum class Method : int { kMean, kMode, kMedian, kMin, kMax, kStride };
inline constexpr int kNumMethods = 6;

// Integer means: round half to even (tensorstore, the modern API) or
// truncate toward zero (tinybrain's floor/trunc, the compatible API).
enum class Rounding : int { kHalfEven, kTruncate };

// tinybrain's own mode rules, which are not "ties to the smallest".
enum class TinybrainRule : int {
  kCountless2x2,  // a==b -> a, a==c -> a, b==c -> b, else d
  kStippled2x2,   // zero never wins unless the block is all zero
  kCount2x2x2,    // highest count, ties to the earliest voxel in x,y,z scan order
  kSparseCount2x2x2,  // the same, zeros never counted (all zero gives 0)
};

}  // namespace mipmaker
