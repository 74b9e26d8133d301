// SPDX-License-Identifier: BSD-3-Clause
// The one strided N-d loop, templated on a reducer. It knows no dtype and no
// ISA. Work is split by output rows: an output row is the innermost output
// axis at a fixed outer output index; its block rows are the input rows
// (innermost input axis) that fall in the blocks of that output row. Every
// output element is computed from its own block only, in a fixed order, so
// the result never depends on how the rows are split between threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mipmaker/element.h"
#include "mipmaker/finish.h"
#include "mipmaker/fold_groups.h"
#include "mipmaker/method.h"
#include "mipmaker/pair_rows.h"
#include "mipmaker/quad_rows.h"
#include "mipmaker/triple_rows.h"
#include "mipmaker/reducers.h"
#include "mipmaker/small_median.h"
#include "mipmaker/small_mode.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Walks the input rows of the block that produces output row `outer`.
class BlockRows {
 public:
  BlockRows(const Geometry& g, int64_t outer) : g_(g) {
    int64_t rest = outer;
    offset_ = 0;
    rows_ = 1;
    out_offset_ = 0;
    for (int d = g.rank - 2; d >= 0; --d) {
      const int64_t o = rest % g.out_shape[d];
      rest /= g.out_shape[d];
      const int64_t start = o * g.factors[d];
      extent_[d] = std::min(g.factors[d], g.in_shape[d] - start);
      offset_ += start * g.in_strides[d];
      out_offset_ += o * g.out_strides[d];
      rows_ *= extent_[d];
      idx_[d] = 0;
    }
  }
  int64_t rows() const { return rows_; }
  int64_t out_offset() const { return out_offset_; }

  // Calls fn(input element offset of the row start) for each block row.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    const int outer_rank = g_.rank - 1;
    int64_t off = offset_;
    for (int64_t r = 0; r < rows_; ++r) {
      fn(off);
      for (int d = outer_rank - 1; d >= 0; --d) {
        if (++idx_[d] < extent_[d]) {
          off += g_.in_strides[d];
          break;
        }
        off -= (extent_[d] - 1) * g_.in_strides[d];
        idx_[d] = 0;
      }
    }
  }

 private:
  const Geometry& g_;
  std::array<int64_t, kMaxRank> extent_{}, idx_{};
  int64_t offset_, out_offset_, rows_;
};

// Prefetches elements [begin, end) of the row `ahead` elements past p into
// L2 (the hint that measured best here; L1 prefetches were slower). A
// prefetch never faults, and the address is formed as an integer, so it may
// point past the input. The lines are counted from the first one's start:
// NumPy's data sits 16 bytes past a line, and stepping 64 bytes from there
// left each range's last line to a demand miss (u8 C 2048x2048x64, 2x2x2
// x2 with the input 16 bytes off: sparse 7.2 -> 9.9 GVx/s, dense 14.5 ->
// 17.8, as fast as from an aligned input).
template <typename T>
inline void PrefetchL2(const T* p, int64_t ahead, int64_t begin, int64_t end) {
  const uintptr_t q = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(ahead * int64_t{sizeof(T)});
  const uintptr_t last = q + static_cast<uintptr_t>(end * int64_t{sizeof(T)});
  for (uintptr_t a = (q + static_cast<uintptr_t>(begin * int64_t{sizeof(T)})) & ~uintptr_t{63}; a < last; a += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 1);
  }
}

// Vertical pass: folds one input row (`span` elements, element stride `s`)
// into the row accumulator, element by element. Contiguous rows vectorise.
template <typename T, typename R, bool kSparse, bool kFirst>
inline void FoldRow(typename R::Acc* acc, typename R::Count* count, const T* p, int64_t span,
                    int64_t s) {
  using E = Element<T>;
  auto step = [&](int64_t i, const T& x) {
    const auto v = E::Load(x);
    if constexpr (kSparse && R::kIsMean) {
      // A zero adds nothing to a sum (x + 0 == x but for x == -0.0, whose
      // block mean is 0 anyway), so only the count needs the test: no select.
      if constexpr (kFirst) {
        acc[i] = R::Add(R::Init(), v);
        count[i] = !IsZero(v);
      } else {
        acc[i] = R::Add(acc[i], v);
        count[i] += !IsZero(v);
      }
    } else if constexpr (kSparse) {
      const bool nz = !IsZero(v);
      if constexpr (kFirst) {
        acc[i] = nz ? R::Add(R::Init(), v) : R::Init();
        count[i] = nz;
      } else {
        acc[i] = nz ? R::Add(acc[i], v) : acc[i];
        count[i] += nz;
      }
    } else if constexpr (kFirst) {
      acc[i] = R::Add(R::Init(), v);
    } else {
      acc[i] = R::Add(acc[i], v);
    }
  };
  if (s == 1) {
    for (int64_t i = 0; i < span; ++i) step(i, p[i]);
  } else {
    for (int64_t i = 0; i < span; ++i) step(i, p[i * s]);
  }
}

// Integer rows with lanes (a short contiguous factor-1 axis below the row
// axis) fold their groups of f lane groups into one lane group per output,
// as FoldGroups does without lanes: `span` elements of `lanes` values each.
template <typename T, typename R, bool kSparse>
inline void FoldLaneGroups(typename R::Acc* acc, typename R::Count* count, const T* row, int64_t span, int64_t f,
                           int64_t lanes, bool first) {
  const int64_t m = (span + f - 1) / f;
  for (int64_t q = 0; q < m; ++q) {
    const int64_t len = std::min(f, span - q * f);
    auto* aq = acc + q * lanes;
    auto* cq = kSparse ? count + q * lanes : nullptr;
    const T* p = row + q * f * lanes;
    int64_t j = 0;
    if (first) {
      FoldRow<T, R, kSparse, true>(aq, cq, p, lanes, 1);
      j = 1;
    }
    for (; j < len; ++j) FoldRow<T, R, kSparse, false>(aq, cq, p + j * lanes, lanes, 1);
  }
}

// Without sparse counts, up to four contiguous rows fold in one pass:
// left to right, as FoldRow one row at a time would (the same sums bit for
// bit, floats included), with a fraction of the accumulator loads and stores.
// Used for blocks of three rows or more: with two (2x2x1 float means) it
// measured slower than two FoldRow passes (2.3 against 3.6 GVx/s).
template <typename T, typename R, int kK>
inline void FoldRows(typename R::Acc* __restrict acc, const T* const (&rows)[4], int64_t span,
                     bool first) {
  using E = Element<T>;
  const T* __restrict r[kK];
  for (int k = 0; k < kK; ++k) r[k] = rows[k];
  if (first) {
    for (int64_t i = 0; i < span; ++i) {
      auto x = R::Add(R::Init(), E::Load(r[0][i]));
      for (int k = 1; k < kK; ++k) x = R::Add(x, E::Load(r[k][i]));
      acc[i] = x;
    }
  } else {
    for (int64_t i = 0; i < span; ++i) {
      auto x = acc[i];
      for (int k = 0; k < kK; ++k) x = R::Add(x, E::Load(r[k][i]));
      acc[i] = x;
    }
  }
}

// mean / min / max: for a chunk of one output row, fold every block row
// into a row of accumulators (vertical), then combine groups of f of them
// into outputs (horizontal). Both passes stream contiguous memory.
template <typename T, typename R, bool kSparse>
void AccumulateKernel(const T* in, T* out, const Geometry& g, WorkRange w, Rounding rounding) {
  const int last = g.rank - 1;
  const int64_t f = g.factors[last], n = g.in_shape[last], s = g.in_strides[last];
  const int64_t os = g.out_strides[last];
  const int64_t lanes = g.lanes;
  // Row accumulators for about 2048 input elements stay in L1. A range a
  // little longer than that is one chunk, not a whole one and a sliver: the
  // sliver read a few voxels of every block row as a work item of its own,
  // and the whole chunk then prefetched the sliver instead of the next row
  // (u8 F 2050x2048x64 4x4x1 from Python, 1 thread: 25.5 ms against 18.8
  // for 2048 wide; 2049 wide 2x2x1: 33.3 against 29.1).
  const int64_t range = w.inner_end - w.inner_begin;
  int64_t chunk = std::max<int64_t>(1, 2048 / (f * lanes));
  if (range > 0 && range <= chunk + chunk / 4) chunk = range;
  const size_t cap = static_cast<size_t>(std::min(chunk, range) * f * lanes);
  std::vector<typename R::Acc> acc(cap);
  std::vector<typename R::Count> count(kSparse ? cap : 0);
  // Contiguous rows prefetch those of the next work item (the next output
  // row, or the next chunk of this one) into L2 as they are read: the
  // hardware prefetcher stops at every 4 KiB page, and these rows are a
  // page or two long (u8 F from memory, 2x2x1 register path: 5.1 -> 9.1
  // GVx/s; grouped folds, 4x4x1: 7.2 -> 8.8, 3x3x3: 6.6 -> 7.3).
  // `ahead`: elements from a block row to the same row of the next work
  // item. Rows with lanes are long and cut into chunks; each block row is
  // its own stream, so the next chunk of the same rows is prefetched likewise.
  const int64_t ahead = lanes > 1 ? chunk * f * lanes
                        : range <= chunk && last >= 1
                            ? g.factors[last - 1] * g.in_strides[last - 1]
                            : chunk * f * s;
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    BlockRows rows(g, outer);
    for (int64_t i0 = w.inner_begin; i0 < w.inner_end; i0 += chunk) {
      const int64_t i1 = std::min(w.inner_end, i0 + chunk);
      const int64_t span = std::min(i1 * f, n) - i0 * f;
      bool first = true;
      auto* a = acc.data();
      auto* c = kSparse ? count.data() : nullptr;
      // With lanes, a row of `span` elements is span * lanes adjacent values.
      const int64_t fold_span = lanes > 1 ? span * lanes : span;
      const int64_t fold_stride = lanes > 1 ? 1 : s;
#if defined(MIPMAKER_HAVE_AVX2)
      if constexpr (R::kIsMean && PairMeanAvx2<T, R, kSparse>::kLanesOk) {
        // Lanes two groups wide finish in registers (pair_rows.h).
        if (lanes > 1 && f == 2 && span % 2 == 0 && s == lanes && os == lanes && g.lane_out_stride == 1 &&
            rows.rows() <= 4) {
          const T* starts[4];
          int nr = 0;
          rows.ForEach([&](int64_t off) { starts[nr++] = in + off + i0 * f * lanes; });
          const PairKeep<R> keep{nullptr, nullptr, false, ahead};
          if (PairMeanAvx2<T, R, kSparse>::RunLanes(starts, nr, lanes, out + rows.out_offset() + i0 * os, span / 2,
                                                    rounding, keep) != 0) {
            continue;
          }
        }
      }
#endif
      if constexpr (kGroupFirst<T, R>) {
        // Whole-row vertical folds and FinishLanePairs beat the grouped fold
        // for pairs of dense integer means (u8 C 2x2x1 kernel: 12.2 -> 19 GVx/s).
        const bool lane_pairs = !kSparse && R::kIsMean && f == 2;
        if (lanes > 1 && f >= 2 && !lane_pairs) {
          // Lanes (a short C-order inner axis): the f lane groups of an
          // output go straight into its one lane group of accumulators.
          const int64_t m = (span + f - 1) / f;
          rows.ForEach([&](int64_t off) {
            FoldLaneGroups<T, R, kSparse>(a, c, in + off + i0 * f * lanes, span, f, lanes, first);
            PrefetchL2(in + off + i0 * f * lanes, ahead, 0, span * lanes);
            first = false;
          });
          T* o = out + rows.out_offset() + i0 * os;
          RowOutputs<R> ro{m, span / f, rows.rows() * f, rows.rows() * (span % f)};
          FinishRowLanes<T, R, kSparse>(a, c, 1, lanes, ro, o, os, g.lane_out_stride, rounding);
          continue;
        }
        if (lanes == 1 && s == 1 && f >= 2 && f <= 4) {
          T* o = out + rows.out_offset() + i0 * os;
          const int64_t m = (span + f - 1) / f;
          int64_t done = 0;  // outputs already finished in registers
#if defined(MIPMAKER_HAVE_AVX2)
          // Blocks two (pair_rows.h), three (triple_rows.h, u8 means) or
          // four (quad_rows.h, u8 means) wide finish in registers.
          using Pairs = RegisterPairs<T, R, kSparse>;
          using Triples = TripleMeanAvx2<T, R, kSparse>;
          using Quads = QuadMeanAvx2<T, R, kSparse>;
          static_assert(Pairs::kMaxRows == 8 && Triples::kMaxRows == 9 && Quads::kMaxRows == 8);
          if ((Pairs::kOk || Triples::kOk || Quads::kOk) && os == 1 && rows.rows() <= (f == 3 ? 9 : 8)) {
            const T* starts[9];
            int nr = 0;
            rows.ForEach([&](int64_t off) { starts[nr++] = in + off + i0 * f; });
            if constexpr (Pairs::kOk) {
              if (f == 2) {
                done = Pairs::Run(starts, nr, o, span / f, rounding, PairKeep<R>{nullptr, nullptr, false, ahead});
              }
            }
            if constexpr (Triples::kOk) {
              if (f == 3) done = Triples::Run(starts, nr, o, span / f, rounding, ahead);
            }
            if constexpr (Quads::kOk) {
              if (f == 4) done = Quads::Run(starts, nr, o, span / f, rounding, ahead);
            }
          }
#endif
          if (done == m) continue;
          const int64_t rest = span - done * f;
          rows.ForEach([&](int64_t off) {
            FoldGroupRow<T, R, kSparse>(a, c, in + off + (i0 + done) * f, rest, f, first);
            PrefetchL2(in + off + (i0 + done) * f, ahead, 0, rest);
            first = false;
          });
          RowOutputs<R> ro{m - done, rest / f, rows.rows() * f, rows.rows() * (rest % f)};
          FinishAny<T, R, kSparse>(a, c, 1, 1, ro, o + done * os, os, g.lane_out_stride, rounding);
          continue;
        }
      }
      if (!kSparse && fold_stride == 1 && rows.rows() > 2) {
        const T* batch[4];
        int nb = 0;
        auto flush = [&] {
          switch (nb) {
            case 1: FoldRows<T, R, 1>(a, batch, fold_span, first); break;
            case 2: FoldRows<T, R, 2>(a, batch, fold_span, first); break;
            case 3: FoldRows<T, R, 3>(a, batch, fold_span, first); break;
            default: FoldRows<T, R, 4>(a, batch, fold_span, first); break;
          }
          first = false;
          nb = 0;
        };
        rows.ForEach([&](int64_t off) {
          batch[nb++] = in + off + i0 * f * s;
          if (nb == 4) flush();
        });
        if (nb > 0) flush();
      } else {
        rows.ForEach([&](int64_t off) {
          const T* row = in + off + i0 * f * s;
          if (first) {
            FoldRow<T, R, kSparse, true>(a, c, row, fold_span, fold_stride);
            first = false;
          } else {
            FoldRow<T, R, kSparse, false>(a, c, row, fold_span, fold_stride);
          }
          if (lanes > 1) PrefetchL2(row, ahead, 0, fold_span);
        });
      }
      T* o = out + rows.out_offset() + i0 * os;
      RowOutputs<R> ro{span, span / f, rows.rows() * f, rows.rows() * (span % f)};
      FinishAny<T, R, kSparse>(a, c, f, lanes, ro, o, os, g.lane_out_stride, rounding);
    }
  }
}

// Gathers the blocks of outputs [i0, i1) of one output row into `vals`
// (one slot of `slot` values per output) and reduces each with R.
template <typename T, typename R, bool kSparse>
void GatherRange(const T* in, T* o, const Geometry& g, BlockRows& rows, int64_t i0, int64_t i1,
                 int64_t slot, typename Element<T>::Value* vals, int64_t* fill, uint8_t* saw_nan) {
  using V = typename Element<T>::Value;
  const int last = g.rank - 1;
  const int64_t f = g.factors[last], n = g.in_shape[last], s = g.in_strides[last];
  const int64_t os = g.out_strides[last];
  const int64_t m = i1 - i0;
  std::fill(fill, fill + m, 0);
  std::fill(saw_nan, saw_nan + m, 0);
  rows.ForEach([&](int64_t off) {
    const T* row = in + off;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t start = (i0 + i) * f;
      const int64_t len = std::min(f, n - start);
      V* dst = vals + i * slot;
      int64_t k = fill[i];
      for (int64_t j = 0; j < len; ++j) {
        const V v = Element<T>::Load(row[(start + j) * s]);
        if constexpr (kSparse) {
          if (IsZero(v)) continue;
        }
        if constexpr (kIsFloatValue<V>) {
          if (IsNan(v)) {
            saw_nan[i] = 1;
            continue;
          }
        }
        dst[k++] = v;
      }
      fill[i] = k;
    }
  });
  for (int64_t i = 0; i < m; ++i) {
    T r;
    if (fill[i] > 0) {
      r = R::Reduce(vals + i * slot, fill[i]);
    } else {
      r = Element<T>::Store(saw_nan[i] ? QuietNan<V>() : V(0));
    }
    o[(i0 + i) * os] = r;
  }
}

// mode / median: copy each block's values (minus NaN, minus zeros when
// sparse) into its own slot of a scratch buffer, then reduce each slot.
// Mode of full blocks of up to kMaxSmallMode values (2x2, 2x2x2, 3x3x3, 4x4,
// ...), and the integer median of such blocks, take the vectorised
// SmallModeBlocks and SmallMedianBlocks paths instead.
template <typename T, typename R, bool kSparse>
void GatherKernel(const T* in, T* out, const Geometry& g, WorkRange w) {
  using V = typename Element<T>::Value;
  const int last = g.rank - 1;
  const int64_t f = g.factors[last], n = g.in_shape[last], s = g.in_strides[last];
  const int64_t os = g.out_strides[last];
  int64_t block_rows = 1;
  for (int d = 0; d < last; ++d) block_rows *= g.factors[d];
  const int64_t slot = block_rows * f;
  // Bound the scratch to about 1 Mi values unless one block is bigger; the
  // small-block path wants it in L1/L2.
  constexpr bool kSmallMode = std::is_same_v<R, ModeReducer<T>> && !IsComplex<V>::value;
#if defined(MIPMAKER_HAVE_AVX2)
  // The portable build keeps nth_element: a scalar sorting network is no
  // faster than it past a few values.
  constexpr bool kSmallMedian =
      std::is_same_v<R, MedianReducer<T>> && std::is_integral_v<V> && sizeof(T) == sizeof(V);
#else
  constexpr bool kSmallMedian = false;
#endif
  const bool small = (kSmallMode || kSmallMedian) && slot >= 2 && slot <= kMaxSmallMode;
  const SortingNetwork net(kSmallMedian && small ? static_cast<int>(slot) : 1);
  const int64_t budget = small ? (slot <= 8 ? 2048 : 8192) : (int64_t{1} << 20);
  int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w.inner_end - w.inner_begin, budget / slot));
  // Whole SIMD groups (up to kVectorBytes lanes for u8): a chunk's leftover
  // blocks go through the scalar tail.
  if (small && chunk > kVectorBytes) chunk -= chunk % kVectorBytes;
  std::vector<V> vals(static_cast<size_t>(chunk * slot));
  std::vector<int64_t> fill(chunk);
  std::vector<uint8_t> saw_nan(chunk);
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    BlockRows rows(g, outer);
    for (int64_t i0 = w.inner_begin; i0 < w.inner_end; i0 += chunk) {
      const int64_t i1 = std::min(w.inner_end, i0 + chunk);
      const int64_t m = i1 - i0;
      T* o = out + rows.out_offset();
      if constexpr (kSmallMode || kSmallMedian) {
        const int64_t full = std::min(i1, n / f) - i0;  // outputs with a whole block along the row
        if (small && rows.rows() == block_rows && full > 0) {
          // Transpose into position-major order: v[(r * f + j) * full + i].
          int64_t r = 0;
          rows.ForEach([&](int64_t off) {
            const T* row = in + off + i0 * f * s;
            for (int64_t j = 0; j < f; ++j) {
              V* dst = vals.data() + (r * f + j) * full;
              // Constant strides: the deinterleave vectorises (u8 3x3: 5x
              // faster than the run-time stride).
              if (s == 1 && f == 2) {
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[i * 2 + j]);
              } else if (s == 1 && f == 3) {
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[i * 3 + j]);
              } else if (s == 1 && f == 4) {
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[i * 4 + j]);
              } else {
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[(i * f + j) * s]);
              }
            }
            ++r;
          });
          T* q = o + i0 * os;
          if constexpr (kSmallMedian) {
            // Networks unrolled for the common blocks: 2x2, 2x2x2, 4x4, 3x3x3.
            if (slot == 4) {
              SmallMedianBlocks<T, kSparse, 4>(vals.data(), full, q, os, 4, net);
            } else if (slot == 8) {
              SmallMedianBlocks<T, kSparse, 8>(vals.data(), full, q, os, 8, net);
            } else if (slot == 16) {
              SmallMedianBlocks<T, kSparse, 16>(vals.data(), full, q, os, 16, net);
            } else if (slot == 27) {
              SmallMedianBlocks<T, kSparse, 27>(vals.data(), full, q, os, 27, net);
            } else {
              SmallMedianBlocks<T, kSparse>(vals.data(), full, q, os, static_cast<int>(slot), net);
            }
          } else if (slot == 4) {
            SmallModeBlocks<T, kSparse, 4>(vals.data(), full, q, os);
          } else if (slot == 8) {
            SmallModeBlocks<T, kSparse, 8>(vals.data(), full, q, os);
          } else if (slot == 16) {
            SmallModeBlocks<T, kSparse, 16>(vals.data(), full, q, os);
          } else if (slot == 27) {
            SmallModeBlocks<T, kSparse, 27>(vals.data(), full, q, os);
          } else {
            SmallModeBlocks<T, kSparse, 0>(vals.data(), full, q, os, static_cast<int>(slot));
          }
          if (full == m) continue;
          // The partial block at the end of the row goes the general way.
          GatherRange<T, R, kSparse>(in, o, g, rows, i0 + full, i1, slot, vals.data(), fill.data(),
                                     saw_nan.data());
          continue;
        }
      }
      GatherRange<T, R, kSparse>(in, o, g, rows, i0, i1, slot, vals.data(), fill.data(),
                                 saw_nan.data());
    }
  }
}

// One output row of stride: every kStep-th input element (kStep 0: `step`).
// Constant small steps into a contiguous row vectorise as deinterleaves.
template <typename T, int kStep>
inline void StrideRow(const T* __restrict p, T* __restrict q, int64_t step_rt, int64_t os, int64_t begin,
                      int64_t end) {
  const int64_t step = kStep > 0 ? kStep : step_rt;
  if (kStep > 0) {
    for (int64_t i = begin; i < end; ++i) q[i] = p[i * step];
  } else {
    for (int64_t i = begin; i < end; ++i) q[i * os] = p[i * step];
  }
}

// One output row of stride from a source row (`step` elements apart) into
// a row `os` apart; the common contiguous steps as constants.
template <typename T>
inline void StrideRowAny(const T* p, T* q, int64_t step, int64_t os, int64_t begin, int64_t end) {
  if (os == 1 && step == 2) {
    StrideRow<T, 2>(p, q, step, os, begin, end);
  } else if (os == 1 && step == 3) {
    StrideRow<T, 3>(p, q, step, os, begin, end);
  } else if (os == 1 && step == 4) {
    StrideRow<T, 4>(p, q, step, os, begin, end);
  } else {
    StrideRow<T, 0>(p, q, step, os, begin, end);
  }
}

// Elements from one sampled row of stride to the next one read (0: no
// prefetch). Blocks that skip rows (a factor above 1 on the axis above) read
// every f-th row: the hardware prefetcher stops at the 4 KiB page ends
// between them, so the next row read is prefetched into L2 by hand (u8 F
// 2048^2x64: stride 2 14.8 -> 9.4 ms, stride 4 7.7 -> 4.7 ms). Only where the
// row's samples touch every cache line on the way (a step of 64 bytes or
// less).
template <typename T>
inline int64_t StrideRowsAhead(const Geometry& g) {
  const int last = g.rank - 1;
  const int64_t step = g.factors[last] * g.in_strides[last];
  const bool skips = g.rank >= 2 && g.factors[last - 1] > 1 && step > 0 && step * int64_t{sizeof(T)} <= 64;
  return skips ? g.factors[last - 1] * g.in_strides[last - 1] : 0;
}

// stride: the origin sample of every block.
template <typename T>
void StrideKernel(const T* in, T* out, const Geometry& g, WorkRange w) {
  const int last = g.rank - 1;
  const int64_t step = g.factors[last] * g.in_strides[last];
  const int64_t os = g.out_strides[last];
  const int64_t ahead = StrideRowsAhead<T>(g);
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    int64_t rest = outer, in_off = 0, out_off = 0;
    for (int d = last - 1; d >= 0; --d) {
      const int64_t o = rest % g.out_shape[d];
      rest /= g.out_shape[d];
      in_off += o * g.factors[d] * g.in_strides[d];
      out_off += o * g.out_strides[d];
    }
    const T* p = in + in_off;
    T* q = out + out_off;
    const int64_t b = w.inner_begin, e = w.inner_end;
    if (ahead != 0) PrefetchL2(p, ahead, b * step, e * step);
    StrideRowAny(p, q, step, os, b, e);
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
