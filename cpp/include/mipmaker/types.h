// SPDX-License-Identifier: BSD-3-Clause
// Plain types shared by the bindings and every ISA build of the kernels.
// Nothing here is compiled differently per ISA, so it may live in the
// common namespace.
#pragma once

#include <array>
#include <cstdint>

namespace mipmaker {

// The order is part of the binding's contract (kernel table index) and
// matches mipmaker._validate.DTYPES.
enum class DType : int {
  kBool,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFloat16,
  kFloat32,
  kFloat64,
  kComplex64,
  kComplex128,
};
inline constexpr int kNumDTypes = 14;

inline constexpr int kMaxRank = 8;
// Levels one fused pyramid call can produce (2^16 per axis is far beyond
// any volume; callers split longer requests).
inline constexpr int kMaxLevels = 16;

struct Geometry {
  int rank = 0;
  std::array<int64_t, kMaxRank> in_shape{};
  std::array<int64_t, kMaxRank> out_shape{};
  std::array<int64_t, kMaxRank> factors{};
  std::array<int64_t, kMaxRank> in_strides{};   // elements
  std::array<int64_t, kMaxRank> out_strides{};  // elements
  // A short, contiguous, factor-1 innermost axis folded into the elements of
  // the axis above it ("lanes"), so that C-order volumes with few voxels
  // along their last axis still stream long rows. Input lanes are adjacent;
  // output lanes are `lane_out_stride` apart. Only the accumulating kernels
  // accept lanes > 1.
  int64_t lanes = 1;
  int64_t lane_out_stride = 0;

  int64_t OuterCount() const {
    int64_t n = 1;
    for (int d = 0; d + 1 < rank; ++d) n *= out_shape[d];
    return n;
  }
  int64_t InnerCount() const { return rank ? out_shape[rank - 1] : 1; }
  // Voxels of the largest (interior) block; bounds accumulator widths.
  int64_t BlockSize() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= std::min(factors[d], in_shape[d]);
    return n;
  }
};


// Level j of a fused pyramid: its shape, element strides and voxel-block
// extent (f^j, clamped to the input) per normalised axis; level 0 is the input.
struct LevelGeometry {
  std::array<int64_t, kMaxRank> shape{}, strides{}, block{};
  int64_t lane_stride = 0;
  void* data = nullptr;
};

// A half-open range of output rows (outer index) and of output elements
// within each row (inner index): the unit handed to one thread.
struct WorkRange {
  int64_t outer_begin, outer_end, inner_begin, inner_end;
};

}  // namespace mipmaker
