// SPDX-License-Identifier: BSD-3-Clause
// Builds the method x dtype kernel table. This file is compiled once per ISA
// (MIPMAKER_ISA = scalar, avx2, ...) and everything it instantiates lives in
// that ISA's namespace.
#include <cstdint>

#include "mipmaker/dispatch.h"
#include "mipmaker/downsample.h"
#include "mipmaker/element.h"
#include "mipmaker/histogram_pyramid.h"
#include "mipmaker/isa.h"
#include "mipmaker/pyramid.h"
#include "mipmaker/reducers.h"
#include "mipmaker/short_pyramid.h"
#include "mipmaker/short_rows.h"
#include "mipmaker/stride_pyramid.h"
#include "mipmaker/tinybrain_rules.h"

namespace mipmaker {
namespace MIPMAKER_ISA {
namespace {

#define MIPMAKER_STR2(x) #x
#define MIPMAKER_STR(x) MIPMAKER_STR2(x)

template <typename T, typename R, bool kSparse>
void RunAccumulate(const void* in, void* out, const Geometry& g, Rounding r, WorkRange w) {
  const T* src = static_cast<const T*>(in);
  T* dst = static_cast<T*>(out);
  if (!ShortRowsKernel<T, R, kSparse>(src, dst, g, w, r)) AccumulateKernel<T, R, kSparse>(src, dst, g, w, r);
}
template <typename T, bool kSparse, int kTier>
void RunMean(const void* in, void* out, const Geometry& g, Rounding r, WorkRange w) {
  RunAccumulate<T, MeanReducer<T, kTier>, kSparse>(in, out, g, r, w);
}
template <typename T, bool kSparse, bool kMax, int kTier>
void RunExtremum(const void* in, void* out, const Geometry& g, Rounding r, WorkRange w) {
  RunAccumulate<T, ExtremumReducer<T, kMax, kTier>, kSparse>(in, out, g, r, w);
}
template <typename T, typename R, bool kSparse>
void RunPyramid(const void* in, const Geometry& g, const LevelGeometry* levels, int num_levels,
                int64_t chunk, int64_t b, int64_t e, Rounding r) {
  const T* src = static_cast<const T*>(in);
  if (ShortRowPyramid<T, R, kSparse>::Applies(g, levels, num_levels, chunk)) {
    ShortRowPyramid<T, R, kSparse>(src, g, levels, num_levels, chunk, r).Run(b, e);
    return;
  }
  PyramidKernel<T, R, kSparse>(src, g, levels, num_levels, chunk, b, e, r);
}
template <typename T, bool kMedian, bool kSparse>
void RunHistogramPyramid(const void* in, const Geometry& g, const LevelGeometry* levels,
                         int num_levels, int64_t, int64_t b, int64_t e, Rounding) {
  HistogramPyramidKernel<T, kMedian, kSparse>(static_cast<const T*>(in), g, levels, num_levels, b, e);
}
template <typename T, bool kSparse, template <typename> class R>
void RunGather(const void* in, void* out, const Geometry& g, Rounding, WorkRange w) {
  GatherKernel<T, R<T>, kSparse>(static_cast<const T*>(in), static_cast<T*>(out), g, w);
}
template <typename T>
void RunStride(const void* in, void* out, const Geometry& g, Rounding, WorkRange w) {
  StrideKernel<T>(static_cast<const T*>(in), static_cast<T*>(out), g, w);
}
template <typename T>
void RunStridePyramid(const void* in, const Geometry& g, const LevelGeometry* levels, int num_levels,
                      int64_t chunk, int64_t b, int64_t e, Rounding) {
  StridePyramidKernel<T>(static_cast<const T*>(in), g, levels, num_levels, chunk, b, e);
}
template <typename U>
void RunTinybrain(const void* in, void* out, const Geometry& g, TinybrainRule rule, int64_t b,
                  int64_t e) {
  TinybrainModeKernel<U>(static_cast<const U*>(in), static_cast<U*>(out), g, rule, b, e);
}
template <typename T>
int Tier(int64_t block, bool mean) {
  return AccumulatorTier<typename Element<T>::Value>(block, mean);
}

template <typename T, int kTier>
void FillTier(KernelTable& t, int d) {
  auto& k = t.downsample;
  const int mean = static_cast<int>(Method::kMean), mode = static_cast<int>(Method::kMode);
  const int median = static_cast<int>(Method::kMedian), mn = static_cast<int>(Method::kMin);
  const int mx = static_cast<int>(Method::kMax), stride = static_cast<int>(Method::kStride);
  k[mean][d][0][kTier] = RunMean<T, false, kTier>;
  k[mean][d][1][kTier] = RunMean<T, true, kTier>;
  auto& p = t.pyramid;
  p[mean][d][0][kTier] = RunPyramid<T, MeanReducer<T, kTier>, false>;
  p[mean][d][1][kTier] = RunPyramid<T, MeanReducer<T, kTier>, true>;
  // Gathering methods and stride have no accumulator: one instance serves all tiers.
  p[mode][d][0][kTier] = RunHistogramPyramid<T, false, false>;
  p[mode][d][1][kTier] = RunHistogramPyramid<T, false, true>;
  k[mode][d][0][kTier] = RunGather<T, false, ModeReducer>;
  k[mode][d][1][kTier] = RunGather<T, true, ModeReducer>;
  k[stride][d][0][kTier] = RunStride<T>;
  p[stride][d][0][kTier] = RunStridePyramid<T>;
  if constexpr (!IsComplex<T>::value) {  // min, max, median need an order
    p[median][d][0][kTier] = RunHistogramPyramid<T, true, false>;
    p[median][d][1][kTier] = RunHistogramPyramid<T, true, true>;
    k[median][d][0][kTier] = RunGather<T, false, MedianReducer>;
    k[median][d][1][kTier] = RunGather<T, true, MedianReducer>;
    k[mn][d][0][kTier] = RunExtremum<T, false, false, kTier>;
    k[mn][d][1][kTier] = RunExtremum<T, true, false, kTier>;
    k[mx][d][0][kTier] = RunExtremum<T, false, true, kTier>;
    k[mx][d][1][kTier] = RunExtremum<T, true, true, kTier>;
    p[mn][d][0][kTier] = RunPyramid<T, ExtremumReducer<T, false, kTier>, false>;
    p[mn][d][1][kTier] = RunPyramid<T, ExtremumReducer<T, false, kTier>, true>;
    p[mx][d][0][kTier] = RunPyramid<T, ExtremumReducer<T, true, kTier>, false>;
    p[mx][d][1][kTier] = RunPyramid<T, ExtremumReducer<T, true, kTier>, true>;
  }
}

template <typename T>
void FillDType(KernelTable& t, DType dtype) {
  const int d = static_cast<int>(dtype);
  FillTier<T, 0>(t, d);
  FillTier<T, 1>(t, d);
  FillTier<T, 2>(t, d);
  t.tier[d] = Tier<T>;
}

KernelTable BuildTable() {
  KernelTable t{};
  t.isa = MIPMAKER_STR(MIPMAKER_ISA);
#define MIPMAKER_FILL(enumerator, type) FillDType<type>(t, DType::enumerator);
  MIPMAKER_FOR_EACH_DTYPE(MIPMAKER_FILL)
#undef MIPMAKER_FILL
  t.tinybrain[0] = RunTinybrain<BitsOf<1>::type>;
  t.tinybrain[1] = RunTinybrain<BitsOf<2>::type>;
  t.tinybrain[2] = RunTinybrain<BitsOf<4>::type>;
  t.tinybrain[3] = RunTinybrain<BitsOf<8>::type>;
  t.tinybrain[4] = RunTinybrain<BitsOf<16>::type>;
  return t;
}

}  // namespace

const KernelTable& GetKernelTable() {
  static const KernelTable table = BuildTable();
  return table;
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
