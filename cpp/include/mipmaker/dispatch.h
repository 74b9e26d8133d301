// SPDX-License-Identifier: BSD-3-Clause
// The method x dtype kernel table (one per ISA build) and run-time choice of
// the table. Entry points are plain function pointers over untyped memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mipmaker/method.h"
#include "mipmaker/types.h"

namespace mipmaker {

// Computes the outputs of `w` from `in` into `out`, whose shapes, factors
// and element strides are `g` (already normalised).
using DownsampleFn = void (*)(const void* in, void* out, const Geometry& g, Rounding rounding,
                              WorkRange w);
// tinybrain rules: items [begin, end) of the (x, y)-plane rows, see
// tinybrain_rules.h. `g` is in the caller's axis order (x, y, z, ...).
using TinybrainFn = void (*)(const void* in, void* out, const Geometry& g, TinybrainRule rule,
                             int64_t item_begin, int64_t item_end);

// Fused pyramid: levels[0] is the input, levels 1..num_levels the outputs;
// work items as in pyramid.h (mean, min, max, stride) or histogram_pyramid.h (mode,
// median: one per top-level voxel).
using PyramidFn = void (*)(const void* in, const Geometry& g, const LevelGeometry* levels,
                           int num_levels, int64_t chunk, int64_t item_begin, int64_t item_end,
                           Rounding rounding);

struct KernelTable {
  const char* isa;
  // [method][dtype][sparse][accumulator tier]; nullptr where unsupported
  // (e.g. median of complex).
  DownsampleFn downsample[kNumMethods][kNumDTypes][2][3];
  // [method][dtype][sparse][tier]: fused accumulators for mean, min and max,
  // histogram merging for mode and median, row copies for stride.
  PyramidFn pyramid[kNumMethods][kNumDTypes][2][3];
  // Indexed by log2 of the element size (1..16 bytes).
  TinybrainFn tinybrain[5];
  // The accumulator tier for blocks of `block` voxels (see reducers.h).
  int (*tier[kNumDTypes])(int64_t block, bool mean);
};

namespace scalar {
const KernelTable& GetKernelTable();
}
namespace avx2 {
const KernelTable& GetKernelTable();
}
namespace avx512 {
const KernelTable& GetKernelTable();
}

// The table in use: the best the CPU supports unless MIPMAKER_ISA or
// ForceIsa says otherwise.
const KernelTable& ActiveKernelTable();
// Selects an ISA by name ("scalar", "avx2", "avx512"); false if not built or the CPU
// lacks it.
bool ForceIsa(const std::string& name);
std::vector<std::string> AvailableIsas();

// Runs fn(begin, end) over [0, n) split into contiguous pieces on up to
// `threads` threads; rethrows the first exception from any piece.
void ParallelFor(int threads, int64_t n, int64_t min_grain,
                 const std::function<void(int64_t, int64_t)>& fn);

}  // namespace mipmaker
