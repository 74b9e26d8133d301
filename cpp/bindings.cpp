// SPDX-License-Identifier: BSD-3-Clause
// The only Python glue: ndarray -> Geometry, GIL release, error mapping.
// Python (mipmaker._validate) has already checked arguments and allocated
// the output; the checks here only guard the core against misuse.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "mipmaker/dispatch.h"
#include "mipmaker/method.h"
#include "mipmaker/types.h"
#include "mipmaker/view.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mipmaker {
namespace {

using InArray = nb::ndarray<nb::ro, nb::device::cpu>;
using OutArray = nb::ndarray<nb::device::cpu>;

// Methods whose kernels keep running sums or extrema, which may fold a short
// contiguous last axis into SIMD lanes (view.h's FoldLanes); the mode,
// median and stride kernels take the geometry unfolded.
bool Accumulating(int method) {
  return method == static_cast<int>(Method::kMean) || method == static_cast<int>(Method::kMin) ||
         method == static_cast<int>(Method::kMax);
}

DType ToDType(const nb::dlpack::dtype& t) {
  using Code = nb::dlpack::dtype_code;
  if (t.lanes != 1) throw nb::type_error("vector dtypes are not supported");
  const auto code = static_cast<Code>(t.code);
  switch (code) {
    case Code::Bool:
      if (t.bits == 8) return DType::kBool;
      break;
    case Code::UInt:
      if (t.bits == 8) return DType::kUInt8;
      if (t.bits == 16) return DType::kUInt16;
      if (t.bits == 32) return DType::kUInt32;
      if (t.bits == 64) return DType::kUInt64;
      break;
    case Code::Int:
      if (t.bits == 8) return DType::kInt8;
      if (t.bits == 16) return DType::kInt16;
      if (t.bits == 32) return DType::kInt32;
      if (t.bits == 64) return DType::kInt64;
      break;
    case Code::Float:
      if (t.bits == 16) return DType::kFloat16;
      if (t.bits == 32) return DType::kFloat32;
      if (t.bits == 64) return DType::kFloat64;
      break;
    case Code::Complex:
      if (t.bits == 64) return DType::kComplex64;
      if (t.bits == 128) return DType::kComplex128;
      break;
    default:
      break;
  }
  throw nb::type_error("unsupported dtype");
}

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// Fills shapes and element strides of both arrays, checking that `dst` has
// the downsampled shape and the same dtype.
template <typename Src>
Geometry MakeGeometry(const Src& src, const OutArray& dst, const std::vector<int64_t>& factors) {
  const size_t rank = src.ndim();
  if (rank < 1 || rank > static_cast<size_t>(kMaxRank)) {
    throw std::invalid_argument("`image` must have 1 to 8 dimensions");
  }
  if (dst.ndim() != rank || factors.size() != rank) {
    throw std::invalid_argument("`out` and `factors` must match the rank of `image`");
  }
  if (src.dtype() != dst.dtype()) throw nb::type_error("`out` must have the dtype of `image`");
  Geometry g;
  g.rank = static_cast<int>(rank);
  for (size_t d = 0; d < rank; ++d) {
    if (factors[d] < 1) throw std::invalid_argument("`factors` must be positive");
    g.in_shape[d] = static_cast<int64_t>(src.shape(d));
    g.out_shape[d] = static_cast<int64_t>(dst.shape(d));
    g.factors[d] = factors[d];
    g.in_strides[d] = src.stride(d);
    g.out_strides[d] = dst.stride(d);
    if (g.out_shape[d] != CeilDiv(g.in_shape[d], factors[d])) {
      throw std::invalid_argument("`out` does not have the downsampled shape");
    }
  }
  return g;
}

int ResolveThreads(int threads) {
  if (threads < 1) throw std::invalid_argument("`threads` must be a positive integer");
  return threads;
}

// Input elements a thread should get at least, so that starting it pays off.
constexpr int64_t kGrainElements = int64_t{1} << 17;

void Downsample(const InArray& src, OutArray& dst, const std::vector<int64_t>& factors, int method,
                bool sparse, int rounding, int threads) {
  threads = ResolveThreads(threads);
  if (method < 0 || method >= kNumMethods) throw std::invalid_argument("unknown `method`");
  if (rounding < 0 || rounding > 1) throw std::invalid_argument("unknown rounding");
  const DType dtype = ToDType(src.dtype());
  Geometry g = MakeGeometry(src, dst, factors);
  if (!Normalize(g)) return;  // empty output
  const KernelTable& table = ActiveKernelTable();
  const int64_t block = g.BlockSize();
  if (Accumulating(method)) FoldLanes(g);
  const int dt = static_cast<int>(dtype);
  const int tier = table.tier[dt](block, method == static_cast<int>(Method::kMean));
  const DownsampleFn fn = table.downsample[method][dt][sparse ? 1 : 0][tier];
  if (fn == nullptr) throw nb::type_error("this method does not support this dtype");
  const void* in = src.data();
  void* out = dst.data();
  const int64_t outer = g.OuterCount(), inner = g.InnerCount();
  int64_t in_size = g.lanes;
  for (int d = 0; d < g.rank; ++d) in_size *= g.in_shape[d];
  const Rounding r = static_cast<Rounding>(rounding);
  nb::gil_scoped_release release;
  if (outer >= threads || inner == 1) {
    const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, in_size / outer));
    ParallelFor(threads, outer, grain, [&](int64_t b, int64_t e) { fn(in, out, g, r, {b, e, 0, inner}); });
  } else {
    const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, in_size / inner));
    ParallelFor(threads, inner, grain,
                [&](int64_t b, int64_t e) { fn(in, out, g, r, {0, outer, b, e}); });
  }
}

// Levels 1..K in one pass: dsts[k-1] receives the reduction of every f^k
// block of `src`.
void Pyramid(const InArray& src, std::vector<OutArray>& dsts, const std::vector<int64_t>& factors,
             int method, bool sparse, int rounding, int threads) {
  threads = ResolveThreads(threads);
  const int num_levels = static_cast<int>(dsts.size());
  if (num_levels < 1 || num_levels > kMaxLevels) {
    throw std::invalid_argument("a fused pyramid takes 1 to 16 levels");
  }
  if (rounding < 0 || rounding > 1) throw std::invalid_argument("unknown rounding");
  const DType dtype = ToDType(src.dtype());
  Geometry g = MakeGeometry(src, dsts[0], factors);
  ExtraOutputs extra;
  extra.count = num_levels - 1;
  for (int k = 1; k < num_levels; ++k) {
    const OutArray& d = dsts[k];
    if (d.ndim() != src.ndim() || d.dtype() != src.dtype()) {
      throw std::invalid_argument("pyramid levels must match `image` in rank and dtype");
    }
    for (int a = 0; a < g.rank; ++a) {
      const int64_t below = static_cast<int64_t>(dsts[k - 1].shape(a));
      if (static_cast<int64_t>(d.shape(a)) != CeilDiv(below, factors[a])) {
        throw std::invalid_argument("pyramid level does not have the downsampled shape");
      }
      extra.shape[k - 1][a] = static_cast<int64_t>(d.shape(a));
      extra.strides[k - 1][a] = d.stride(a);
    }
  }
  if (method < 0 || method >= kNumMethods) throw std::invalid_argument("unknown `method`");
  const bool histogram = method == static_cast<int>(Method::kMode) ||
                         method == static_cast<int>(Method::kMedian);
  if (!Normalize(g, &extra)) return;
  if (Accumulating(method)) FoldLanes(g, &extra);
  std::vector<LevelGeometry> levels(num_levels + 1);
  for (int j = 0; j <= num_levels; ++j) {
    LevelGeometry& L = levels[j];
    for (int d = 0; d < g.rank; ++d) {
      if (j == 0) {
        L.shape[d] = g.in_shape[d];
        L.strides[d] = g.in_strides[d];
        L.block[d] = 1;
      } else {
        L.shape[d] = j == 1 ? g.out_shape[d] : extra.shape[j - 2][d];
        L.strides[d] = j == 1 ? g.out_strides[d] : extra.strides[j - 2][d];
        // f^j clamped to the extent, without overflow.
        L.block[d] = std::min(levels[j - 1].block[d] * g.factors[d], g.in_shape[d]);
      }
    }
    L.lane_stride = j == 0 ? 1 : (j == 1 ? g.lane_out_stride : extra.lane_out_stride[j - 2]);
    L.data = j == 0 ? nullptr : dsts[j - 1].data();
  }
  const LevelGeometry& top = levels[num_levels];
  int64_t block = 1;
  for (int d = 0; d < g.rank; ++d) block *= top.block[d];
  const KernelTable& table = ActiveKernelTable();
  const int dt = static_cast<int>(dtype);
  const int tier = table.tier[dt](block, method == static_cast<int>(Method::kMean));
  const PyramidFn fn = table.pyramid[method][dt][sparse ? 1 : 0][tier];
  if (fn == nullptr) throw nb::type_error("no fused pyramid for this method and dtype");
  const int last = g.rank - 1;
  // As AccumulateKernel's chunks: a row a little longer than one is one.
  int64_t chunk = std::max<int64_t>(1, 2048 / (top.block[last] * g.lanes));
  if (top.shape[last] <= chunk + chunk / 4) chunk = std::max<int64_t>(1, top.shape[last]);
  int64_t outer = 1;
  for (int d = 0; d < last; ++d) outer *= top.shape[d];
  const int64_t items = histogram ? outer * top.shape[last] : outer * ((top.shape[last] + chunk - 1) / chunk);
  int64_t in_size = g.lanes;
  for (int d = 0; d < g.rank; ++d) in_size *= g.in_shape[d];
  const void* in = src.data();
  const Rounding r = static_cast<Rounding>(rounding);
  nb::gil_scoped_release release;
  ParallelFor(threads, items, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, in_size / items)),
              [&](int64_t b, int64_t e) { fn(in, g, levels.data(), num_levels, chunk, b, e, r); });
}

// Level k of a tinybrain rule is computed from level k - 1 (dsts[k-1] from
// dsts[k-2], dsts[0] from src). Where every level's work items line up (a
// 2x2 rule whose lines run along one block axis and whose items step along
// the other first, as in Fortran order), bands of top-level lines run down
// through all levels while the lower levels' lines are still in cache:
// levels 2.. re-read level 1 from L2 instead of memory. Otherwise level by
// level.
void TinybrainModeLevels(const InArray& src, std::vector<OutArray>& dsts, int rule, int threads) {
  threads = ResolveThreads(threads);
  if (rule < 0 || rule > static_cast<int>(TinybrainRule::kSparseCount2x2x2)) {
    throw std::invalid_argument("unknown tinybrain rule");
  }
  const auto tb_rule = static_cast<TinybrainRule>(rule);
  const bool three =
      tb_rule == TinybrainRule::kCount2x2x2 || tb_rule == TinybrainRule::kSparseCount2x2x2;
  const size_t rank = src.ndim();
  const int num_levels = static_cast<int>(dsts.size());
  if (num_levels < 1) throw std::invalid_argument("`dsts` is empty");
  std::vector<int64_t> factors(rank, 1);
  if (rank < (three ? 3u : 2u)) throw std::invalid_argument("`image` has too few dimensions");
  factors[0] = factors[1] = 2;
  if (three) factors[2] = 2;
  ToDType(src.dtype());
  std::vector<Geometry> g(num_levels);
  std::vector<const void*> ins(num_levels);
  for (int k = 0; k < num_levels; ++k) {
    g[k] = k == 0 ? MakeGeometry(src, dsts[0], factors) : MakeGeometry(dsts[k - 1], dsts[k], factors);
    ins[k] = k == 0 ? src.data() : dsts[k - 1].data();
    for (int d = 0; d < g[k].rank; ++d) {
      if (g[k].in_shape[d] == 0) return;
    }
  }
  const size_t bytes = src.itemsize();
  int idx = 0;
  while ((size_t{1} << idx) < bytes) ++idx;
  const TinybrainFn fn = ActiveKernelTable().tinybrain[idx];
  // Items per level: output lines along the fast axis; `across` is the
  // axis the items step along first, `planes` the items' other axes.
  const int fast = TinybrainFastAxis(g[0]);
  int axes0[kMaxRank];
  const int n_axes = TinybrainItemAxes(g[0], fast, axes0);
  bool banded = !three && num_levels > 1 && num_levels <= kMaxLevels && fast < 2 && n_axes >= 1 && axes0[0] == 1 - fast;
  for (int k = 1; k < num_levels && banded; ++k) {
    int axes[kMaxRank];
    banded = TinybrainFastAxis(g[k]) == fast && TinybrainItemAxes(g[k], fast, axes) == n_axes &&
             std::equal(axes, axes + n_axes, axes0);
  }
  const nb::gil_scoped_release release;
  if (!banded) {
    for (int k = 0; k < num_levels; ++k) {
      const int fast_k = TinybrainFastAxis(g[k]);
      int64_t items = 1;
      for (int d = 0; d < g[k].rank; ++d) items *= (d == fast_k) ? 1 : g[k].out_shape[d];
      const int64_t per_item = g[k].out_shape[fast_k] * (three ? 8 : 4);
      void* out = dsts[k].data();
      ParallelFor(threads, items, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, per_item)),
                  [&](int64_t b, int64_t e) { fn(ins[k], out, g[k], tb_rule, b, e); });
    }
    return;
  }
  // Top-level lines per band: level 1's part of a band (2^(K-1) times as
  // many lines) about 256 KiB of output, so that level 2 finds it in L2.
  const int top = num_levels - 1;
  const int across = axes0[0];
  int64_t planes = 1;
  for (int a = 1; a < n_axes; ++a) planes *= g[0].out_shape[axes0[a]];
  const int64_t line1 = std::max<int64_t>(1, g[0].out_shape[fast] * static_cast<int64_t>(bytes));
  const int64_t band = std::max<int64_t>(1, ((int64_t{256} << 10) / line1) >> top);
  const int64_t top_lines = g[top].out_shape[across];
  const int64_t bands = (top_lines + band - 1) / band;
  const int64_t per_unit = std::max<int64_t>(1, (band << top) * g[0].out_shape[fast] * 4);
  ParallelFor(threads, planes * bands, std::max<int64_t>(1, kGrainElements / per_unit), [&](int64_t b, int64_t e) {
    for (int64_t unit = b; unit < e; ++unit) {
      const int64_t plane = unit / bands, t0 = (unit % bands) * band, t1 = t0 + band;
      for (int k = 0; k < num_levels; ++k) {
        // Level k's lines of this band; level k - 1's lines of the band
        // (twice as many, clipped) are exactly their blocks' lines.
        const int up = top - k;
        const int64_t h = g[k].out_shape[across];
        const int64_t y0 = std::min(h, t0 << up), y1 = std::min(h, t1 << up);
        if (y0 < y1) fn(ins[k], dsts[k].data(), g[k], tb_rule, plane * h + y0, plane * h + y1);
      }
    }
  });
}

void TinybrainMode(const InArray& src, OutArray& dst, int rule, int threads) {
  std::vector<OutArray> dsts{dst};
  TinybrainModeLevels(src, dsts, rule, threads);
}

}  // namespace
}  // namespace mipmaker

NB_MODULE(_core, m) {
  using namespace mipmaker;
  m.doc() = "mipmaker's compiled core. Use the functions of the `mipmaker` package instead.";
  m.def("downsample", &Downsample, "src"_a.noconvert(), "dst"_a.noconvert(), "factors"_a,
        "method"_a, "sparse"_a, "rounding"_a, "threads"_a,
        "Reduce blocks of `src` (factors per axis) into the preallocated `dst`.");
  m.def("pyramid", &Pyramid, "src"_a.noconvert(), "dsts"_a.noconvert(), "factors"_a, "method"_a,
        "sparse"_a, "rounding"_a, "threads"_a,
        "Levels 1..len(dsts) of mean, min or max in one pass over `src`.");
  m.def("tinybrain_mode_levels", &TinybrainModeLevels, "src"_a.noconvert(), "dsts"_a.noconvert(), "rule"_a,
        "threads"_a, "Levels of a tinybrain rule, each from the one below: dsts[k] from dsts[k-1].");
  m.def("tinybrain_mode", &TinybrainMode, "src"_a.noconvert(), "dst"_a.noconvert(), "rule"_a,
        "threads"_a, "tinybrain's 2x2 / 2x2x2 mode rules from `src` into `dst`.");
  m.def("isa", [] { return std::string(ActiveKernelTable().isa); },
        "Name of the instruction set the kernels run with.");
  m.def("available_isas", &AvailableIsas, "Instruction sets built and supported by this CPU.");
  m.def("force_isa", &ForceIsa, "name"_a,
        "Use the kernels of one instruction set; False if it is not available.");
}
