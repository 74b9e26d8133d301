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
#include "mipmaker/fold_groups.h"
#include "mipmaker/method.h"
#include "mipmaker/reducers.h"
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

// What the horizontal pass produces for one chunk of an output row: outputs
// [0, m) from groups of f row accumulators; outputs [0, full) have whole
// groups of `full_count` input voxels, the rest (at most one, at the end of
// the row) `tail_count`. A fused pyramid also keeps the combined, unfinished
// accumulators (`keep`, `keep_count`) for the next level; with `keep_add`
// it combines them into what is there (the next level's row accumulators,
// after its first child row) instead of storing them.
template <typename R>
struct RowOutputs {
  int64_t span, full, full_count, tail_count;
  typename R::Acc* keep = nullptr;
  typename R::Count* keep_count = nullptr;
  bool keep_add = false;
};

// Keeps n accumulators (and counts) at `o` of the row's keep arrays.
template <typename R>
inline void KeepSpan(const RowOutputs<R>& row, int64_t o, const typename R::Acc* a, const typename R::Count* c,
                     int64_t n) {
  if (row.keep_add) {
    if (row.keep) {
      for (int64_t i = 0; i < n; ++i) row.keep[o + i] = R::Combine(row.keep[o + i], a[i]);
    }
    if (row.keep_count) {
      for (int64_t i = 0; i < n; ++i) row.keep_count[o + i] += c[i];
    }
  } else {
    if (row.keep) std::copy(a, a + n, row.keep + o);
    if (row.keep_count) std::copy(c, c + n, row.keep_count + o);
  }
}

// Integer means over power-of-two blocks finish with a shift; returns it, or 0.
template <typename T, typename R, bool kSparse>
inline int ShiftFor(int64_t count) {
  using V = typename Element<T>::Value;
  if constexpr (std::is_integral_v<V> && R::kIsMean && !kSparse) {
    if (count > 1 && (count & (count - 1)) == 0) return __builtin_ctzll(static_cast<uint64_t>(count));
  }
  return 0;
}

// The hot loop of the horizontal pass: whole groups of f accumulators with
// the same voxel count, finished without a per-output division where the
// count allows (integer means: a shift; float means: an exact reciprocal).
// kKeep: 0 keeps nothing, 1 stores the groups in `keep`, 2 combines them
// into it.
template <typename T, typename R, bool kSparse, int kF, int kKeep>
inline void FinishWholeGroups(const typename R::Acc* acc, int64_t f_rt, int64_t n, int64_t count,
                              typename R::Acc* keep, T* out, int64_t os, Rounding rounding) {
  using V = typename Element<T>::Value;
  using Acc = typename R::Acc;
  const int64_t f = kF > 0 ? kF : f_rt;
  auto group = [&](int64_t o) {
    Acc a = acc[o * f];
    for (int64_t j = 1; j < f; ++j) a = R::Combine(a, acc[o * f + j]);
    if constexpr (kKeep == 1) keep[o] = a;
    if constexpr (kKeep == 2) keep[o] = R::Combine(keep[o], a);
    return a;
  };
  const bool pow2 = count > 0 && (count & (count - 1)) == 0;
  if constexpr (!R::kIsMean) {
    for (int64_t o = 0; o < n; ++o) out[o * os] = R::Finish(group(o), count, rounding);
  } else if constexpr (std::is_integral_v<V>) {
    if (pow2 && count > 1) {
      const int shift = __builtin_ctzll(static_cast<uint64_t>(count));
      auto loop = [&](auto truncate) {
        constexpr bool kTruncate = decltype(truncate)::value;
        if (os == 1) {
          for (int64_t o = 0; o < n; ++o) out[o] = R::template ShiftRound<kTruncate>(group(o), shift);
        } else {
          for (int64_t o = 0; o < n; ++o) out[o * os] = R::template ShiftRound<kTruncate>(group(o), shift);
        }
      };
      if (rounding == Rounding::kTruncate) {
        loop(std::true_type{});
      } else {
        loop(std::false_type{});
      }
      return;
    }
    for (int64_t o = 0; o < n; ++o) out[o * os] = R::Finish(group(o), count, rounding);
  } else if constexpr (std::is_floating_point_v<V> && !std::is_same_v<T, Half>) {
    if (pow2) {  // x / 2^k == x * 2^-k exactly
      const double inv = 1.0 / static_cast<double>(count);
      for (int64_t o = 0; o < n; ++o) out[o * os] = static_cast<T>(group(o) * inv);
      return;
    }
    for (int64_t o = 0; o < n; ++o) out[o * os] = R::Finish(group(o), count, rounding);
  } else {
    for (int64_t o = 0; o < n; ++o) out[o * os] = R::Finish(group(o), count, rounding);
  }
}

// Sparse means divide each sum by its own count. Integer sums of at most 32
// bits are divided in floating point instead, exactly (|sum| < 2^24 in float,
// 2^53 in double, so floor(sum / count) is the true floor), which vectorises
// where integer division does not. The remainder then rounds half to even.
template <typename T, typename R>
constexpr bool kFastSparseFinish = R::kIsMean && std::is_integral_v<typename Element<T>::Value> &&
                                   sizeof(typename R::Acc) <= 4;

template <typename T, typename R, bool kTruncate, bool kUnit>
inline void FinishSparseLoop(const typename R::Acc* __restrict a, const typename R::Count* __restrict c,
                             int64_t n, T* __restrict out, int64_t os) {
  using V = typename Element<T>::Value;
  using Acc = typename R::Acc;
  using F = std::conditional_t<sizeof(Acc) <= 2, float, double>;
  using W = std::conditional_t<sizeof(Acc) <= 2, int32_t, int64_t>;
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    // Written so that GCC vectorises it: no ?: (control flow), no casts of
    // comparisons. An empty block divides 0 by 1: its sum is 0, since only
    // zeros go uncounted, so q is 0 without a mask (the mask's multiply was
    // a quarter of the loop's shuffles).
    const W count = static_cast<W>(c[i]);
    const W den = count + (count == 0);
    const W sum = static_cast<W>(a[i]);
    const F x = static_cast<F>(sum) / static_cast<F>(den);
    W q = static_cast<W>(x);  // truncates toward zero
    if constexpr (!kTruncate) {
      if constexpr (std::is_signed_v<Acc>) q -= (static_cast<F>(q) > x);  // floor
      const W r2 = 2 * (sum - q * den);
      q += (r2 > den) + ((r2 == den) & q & 1);
    }
    out[kUnit ? i : i * os] = Element<T>::Store(static_cast<V>(q));
  }
}

template <typename T, typename R>
inline void FinishSparseSpan(const typename R::Acc* a, const typename R::Count* c, int64_t n, T* out,
                             int64_t os, Rounding rounding) {
  const bool unit = os == 1;  // a contiguous store vectorises
  if (rounding == Rounding::kTruncate) {
    unit ? FinishSparseLoop<T, R, true, true>(a, c, n, out, os) : FinishSparseLoop<T, R, true, false>(a, c, n, out, os);
  } else {
    unit ? FinishSparseLoop<T, R, false, true>(a, c, n, out, os)
         : FinishSparseLoop<T, R, false, false>(a, c, n, out, os);
  }
}

// Horizontal pass: combines groups of f row accumulators into outputs and
// finishes them. kF > 0 makes the factor a compile-time constant.
template <typename T, typename R, bool kSparse, int kF>
inline void FinishRow(const typename R::Acc* acc, const typename R::Count* count, int64_t f_rt,
                      const RowOutputs<R>& row, T* out, int64_t os, Rounding rounding) {
  using V = typename Element<T>::Value;
  using Acc = typename R::Acc;
  const int64_t f = kF > 0 ? kF : f_rt;
  const int64_t m = (row.span + f - 1) / f;
  int64_t o = 0;
  if constexpr (kSparse && kFastSparseFinish<T, R> && kF == 1) {
    // Groups of one (rows folded by FoldGroups): finish the accumulators in
    // place; gathering them into blocks first was a plain copy.
    KeepSpan<R>(row, 0, acc, count, m);
    FinishSparseSpan<T, R>(acc, count, m, out, os, rounding);
    return;
  } else if constexpr (kSparse && kFastSparseFinish<T, R>) {
    using Count = typename R::Count;
    constexpr int64_t kBlock = 256;
    Acc sums[kBlock];
    Count counts[kBlock];
    for (int64_t o0 = 0; o0 < m; o0 += kBlock) {
      const int64_t n = std::min(kBlock, m - o0);
      const int64_t whole = std::max<int64_t>(0, std::min(n, row.span / f - o0));
      const Acc* ga = acc + o0 * f;
      const Count* gc = count + o0 * f;
      auto group = [&](int64_t i, int64_t len) {
        Acc x = ga[i * f];
        Count k = gc[i * f];
        for (int64_t j = 1; j < len; ++j) {
          x = R::Combine(x, ga[i * f + j]);
          k += gc[i * f + j];
        }
        sums[i] = x;
        counts[i] = k;
      };
      for (int64_t i = 0; i < whole; ++i) group(i, f);  // f is a constant here when kF is
      for (int64_t i = whole; i < n; ++i) group(i, std::min(f, row.span - (o0 + i) * f));  // the short end
      KeepSpan<R>(row, o0, sums, counts, n);
      FinishSparseSpan<T, R>(sums, counts, n, out + o0 * os, os, rounding);
    }
    return;
  }
  if constexpr (!kSparse) {
    // Whole groups only: a block clamped by the volume edge can hold a full
    // count in fewer than f accumulators.
    const int64_t whole = std::min(row.full, row.span / f);
    if (row.keep && row.keep_add) {
      FinishWholeGroups<T, R, kSparse, kF, 2>(acc, f, whole, row.full_count, row.keep, out, os, rounding);
    } else if (row.keep) {
      FinishWholeGroups<T, R, kSparse, kF, 1>(acc, f, whole, row.full_count, row.keep, out, os, rounding);
    } else {
      FinishWholeGroups<T, R, kSparse, kF, 0>(acc, f, whole, row.full_count, nullptr, out, os, rounding);
    }
    o = whole;
  }
  for (; o < m; ++o) {
    const int64_t len = std::min(f, row.span - o * f);
    Acc a = acc[o * f];
    int64_t c = 0;
    if constexpr (kSparse) c = count[o * f];
    for (int64_t j = 1; j < len; ++j) {
      a = R::Combine(a, acc[o * f + j]);
      if constexpr (kSparse) c += count[o * f + j];
    }
    if constexpr (kSparse) {
      const auto k = static_cast<typename R::Count>(c);
      KeepSpan<R>(row, o, &a, &k, 1);
      out[o * os] = c == 0 ? Element<T>::Store(V(0)) : R::Finish(a, c, rounding);
    } else {
      KeepSpan<R>(row, o, &a, nullptr, 1);
      out[o * os] = R::Finish(a, o < row.full ? row.full_count : row.tail_count, rounding);
    }
  }
}

// Horizontal pass with lanes: the row accumulators hold `lanes` values per
// element; groups of f elements combine lane by lane (vectorised over lanes),
// in place. Output lanes are `ls` apart.
// Pairs of lane groups of whole integer-mean blocks of 2^shift voxels, one
// pass per output (combine, keep, finish) instead of three: the lane loops
// are short (64 lanes for a 2048x2048x64 C-order volume), so each separate
// pass cost about as much in loop overhead as in work.
template <typename T, typename R, int kKeep, bool kTruncate>
inline void FinishLanePairs(const typename R::Acc* __restrict acc, int64_t m, int64_t lanes, int shift,
                            typename R::Acc* __restrict keep, T* __restrict out, int64_t os) {
  for (int64_t o = 0; o < m; ++o) {
    const typename R::Acc* a = acc + o * 2 * lanes;
    typename R::Acc* k = keep + o * lanes;
    T* q = out + o * os;
    for (int64_t l = 0; l < lanes; ++l) {
      const typename R::Acc x = R::Combine(a[l], a[lanes + l]);
      if constexpr (kKeep == 1) k[l] = x;
      if constexpr (kKeep == 2) k[l] = R::Combine(k[l], x);
      q[l] = R::template ShiftRound<kTruncate>(x, shift);
    }
  }
}

template <typename T, typename R, bool kSparse>
inline void FinishRowLanes(typename R::Acc* acc, typename R::Count* count, int64_t f, int64_t lanes,
                           const RowOutputs<R>& row, T* out, int64_t os, int64_t ls,
                           Rounding rounding) {
  using V = typename Element<T>::Value;
  const int64_t m = (row.span + f - 1) / f;
  if constexpr (!kSparse && std::is_integral_v<V> && R::kIsMean) {
    const int shift = ShiftFor<T, R, kSparse>(row.full_count);
    const int64_t whole = std::min(row.full, row.span / 2);
    if (f == 2 && ls == 1 && shift != 0 && whole > 0) {
      auto run = [&](auto keep_mode, auto truncate) {
        FinishLanePairs<T, R, decltype(keep_mode)::value, decltype(truncate)::value>(acc, whole, lanes, shift,
                                                                                     row.keep, out, os);
      };
      auto by_rounding = [&](auto keep_mode) {
        if (rounding == Rounding::kTruncate) {
          run(keep_mode, std::true_type{});
        } else {
          run(keep_mode, std::false_type{});
        }
      };
      if (!row.keep) {
        by_rounding(std::integral_constant<int, 0>{});
      } else if (row.keep_add) {
        by_rounding(std::integral_constant<int, 2>{});
      } else {
        by_rounding(std::integral_constant<int, 1>{});
      }
      if (whole == m) return;
      // The rest (a short block at the row's end) goes the general way.
      RowOutputs<R> rest{row.span - whole * 2, row.full - whole, row.full_count, row.tail_count,
                         row.keep ? row.keep + whole * lanes : nullptr, nullptr, row.keep_add};
      FinishRowLanes<T, R, kSparse>(acc + whole * 2 * lanes, nullptr, f, lanes, rest, out + whole * os, os, ls,
                                    rounding);
      return;
    }
  }
  for (int64_t o = 0; o < m; ++o) {
    const int64_t len = std::min(f, row.span - o * f);
    typename R::Acc* a = acc + o * f * lanes;
    typename R::Count* c = kSparse ? count + o * f * lanes : nullptr;
    for (int64_t j = 1; j < len; ++j) {
      const typename R::Acc* b = a + j * lanes;
      for (int64_t l = 0; l < lanes; ++l) a[l] = R::Combine(a[l], b[l]);
      if constexpr (kSparse) {
        const typename R::Count* cb = c + j * lanes;
        for (int64_t l = 0; l < lanes; ++l) c[l] += cb[l];
      }
    }
    KeepSpan<R>(row, o * lanes, a, c, lanes);
    T* q = out + o * os;
    if constexpr (kSparse && kFastSparseFinish<T, R>) {
      FinishSparseSpan<T, R>(a, c, lanes, q, ls, rounding);
    } else if constexpr (kSparse) {
      for (int64_t l = 0; l < lanes; ++l) {
        q[l * ls] = c[l] == 0 ? Element<T>::Store(V(0)) : R::Finish(a[l], c[l], rounding);
      }
    } else {
      const int64_t block = o < row.full ? row.full_count : row.tail_count;
      if constexpr (std::is_integral_v<V> && R::kIsMean) {
        if (const int shift = ShiftFor<T, R, kSparse>(block)) {
          auto loop = [&](auto truncate) {
            constexpr bool kTruncate = decltype(truncate)::value;
            if (ls == 1) {
              for (int64_t l = 0; l < lanes; ++l) q[l] = R::template ShiftRound<kTruncate>(a[l], shift);
            } else {
              for (int64_t l = 0; l < lanes; ++l) {
                q[l * ls] = R::template ShiftRound<kTruncate>(a[l], shift);
              }
            }
          };
          if (rounding == Rounding::kTruncate) {
            loop(std::true_type{});
          } else {
            loop(std::false_type{});
          }
          continue;
        }
      }
      for (int64_t l = 0; l < lanes; ++l) q[l * ls] = R::Finish(a[l], block, rounding);
    }
  }
}

// Runs the horizontal pass with the factor as a compile-time constant
// where it is small.
template <typename T, typename R, bool kSparse>
inline void FinishAny(typename R::Acc* acc, typename R::Count* count, int64_t f, int64_t lanes,
                      const RowOutputs<R>& row, T* out, int64_t os, int64_t ls, Rounding rounding) {
  if (lanes > 1) {
    FinishRowLanes<T, R, kSparse>(acc, count, f, lanes, row, out, os, ls, rounding);
    return;
  }
  switch (f) {
    case 1: FinishRow<T, R, kSparse, 1>(acc, count, f, row, out, os, rounding); break;
    case 2: FinishRow<T, R, kSparse, 2>(acc, count, f, row, out, os, rounding); break;
    case 3: FinishRow<T, R, kSparse, 3>(acc, count, f, row, out, os, rounding); break;
    case 4: FinishRow<T, R, kSparse, 4>(acc, count, f, row, out, os, rounding); break;
    default: FinishRow<T, R, kSparse, 0>(acc, count, f, row, out, os, rounding); break;
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
  // Row accumulators for about 2048 input elements stay in L1.
  const int64_t chunk = std::max<int64_t>(1, 2048 / (f * lanes));
  const size_t cap = static_cast<size_t>(std::min(chunk, w.inner_end - w.inner_begin) * f * lanes);
  std::vector<typename R::Acc> acc(cap);
  std::vector<typename R::Count> count(kSparse ? cap : 0);
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
      if constexpr (kGroupFirst<T, R>) {
        if (lanes > 1 && f >= 2) {
          // Lanes (a short C-order inner axis): the f lane groups of an
          // output go straight into its one lane group of accumulators.
          const int64_t m = (span + f - 1) / f;
          rows.ForEach([&](int64_t off) {
            FoldLaneGroups<T, R, kSparse>(a, c, in + off + i0 * f * lanes, span, f, lanes, first);
            first = false;
          });
          T* o = out + rows.out_offset() + i0 * os;
          RowOutputs<R> ro{m, span / f, rows.rows() * f, rows.rows() * (span % f)};
          FinishRowLanes<T, R, kSparse>(a, c, 1, lanes, ro, o, os, g.lane_out_stride, rounding);
          continue;
        }
        if (lanes == 1 && s == 1 && f >= 2 && f <= 4) {
          rows.ForEach([&](int64_t off) {
            FoldGroupRow<T, R, kSparse>(a, c, in + off + i0 * f, span, f, first);
            first = false;
          });
          T* o = out + rows.out_offset() + i0 * os;
          const int64_t m = (span + f - 1) / f;
          RowOutputs<R> ro{m, span / f, rows.rows() * f, rows.rows() * (span % f)};
          FinishAny<T, R, kSparse>(a, c, 1, 1, ro, o, os, g.lane_out_stride, rounding);
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
// Full blocks of 4 or 8 values (2x2, 2x2x1, 2x2x2, ...) take the
// vectorised SmallModeBlocks path instead.
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
  const bool small = kSmallMode && (slot == 4 || slot == 8);
  const int64_t budget = small ? 2048 : (int64_t{1} << 20);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w.inner_end - w.inner_begin, budget / slot));
  std::vector<V> vals(static_cast<size_t>(chunk * slot));
  std::vector<int64_t> fill(chunk);
  std::vector<uint8_t> saw_nan(chunk);
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    BlockRows rows(g, outer);
    for (int64_t i0 = w.inner_begin; i0 < w.inner_end; i0 += chunk) {
      const int64_t i1 = std::min(w.inner_end, i0 + chunk);
      const int64_t m = i1 - i0;
      T* o = out + rows.out_offset();
      if constexpr (kSmallMode) {
        const int64_t full = std::min(i1, n / f) - i0;  // outputs with a whole block along the row
        if (small && rows.rows() == block_rows && full > 0) {
          // Transpose into position-major order: v[(r * f + j) * full + i].
          int64_t r = 0;
          rows.ForEach([&](int64_t off) {
            const T* row = in + off + i0 * f * s;
            for (int64_t j = 0; j < f; ++j) {
              V* dst = vals.data() + (r * f + j) * full;
              if (s == 1 && f == 2) {  // constant strides: the deinterleave vectorises
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[i * 2 + j]);
              } else {
                for (int64_t i = 0; i < full; ++i) dst[i] = Element<T>::Load(row[(i * f + j) * s]);
              }
            }
            ++r;
          });
          T* q = o + i0 * os;
          if (slot == 4) {
            SmallModeBlocks<T, kSparse, 4>(vals.data(), full, q, os);
          } else {
            SmallModeBlocks<T, kSparse, 8>(vals.data(), full, q, os);
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

// stride: the origin sample of every block.
template <typename T>
void StrideKernel(const T* in, T* out, const Geometry& g, WorkRange w) {
  const int last = g.rank - 1;
  const int64_t step = g.factors[last] * g.in_strides[last];
  const int64_t os = g.out_strides[last];
  // Blocks that skip rows (a factor above 1 on the axis above) read every
  // f-th row: the hardware prefetcher stops at the 4 KiB page ends between
  // them, so the next row read is prefetched into L2 by hand (u8 F 2048^2x64:
  // stride 2 14.8 -> 9.4 ms, stride 4 7.7 -> 4.7 ms). Only where the row's
  // samples touch every cache line on the way (`step` of 64 bytes or less).
  const bool skips = g.rank >= 2 && g.factors[last - 1] > 1 && step > 0 && step * int64_t{sizeof(T)} <= 64;
  const int64_t ahead = skips ? g.factors[last - 1] * g.in_strides[last - 1] * int64_t{sizeof(T)} : 0;
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
    if (ahead != 0) {
      const uintptr_t next = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(ahead);
      const int64_t first = b * step * int64_t{sizeof(T)}, end = e * step * int64_t{sizeof(T)};
      for (int64_t i = first; i < end; i += 64) __builtin_prefetch(reinterpret_cast<const void*>(next + i), 0, 1);
    }
    if (os == 1 && step == 2) {
      StrideRow<T, 2>(p, q, step, os, b, e);
    } else if (os == 1 && step == 3) {
      StrideRow<T, 3>(p, q, step, os, b, e);
    } else if (os == 1 && step == 4) {
      StrideRow<T, 4>(p, q, step, os, b, e);
    } else {
      StrideRow<T, 0>(p, q, step, os, b, e);
    }
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
