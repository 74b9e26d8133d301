// SPDX-License-Identifier: BSD-3-Clause
// The horizontal pass of the accumulating methods (mean, min, max): groups
// of f row accumulators are combined, finished into outputs and, for a fused
// pyramid, kept (unfinished) for the next level.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "mipmaker/element.h"
#include "mipmaker/method.h"
#include "mipmaker/reducers.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

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

// Sparse means divide each sum by its own count, and dense means whose count
// is not a power of two by their shared one. Integer sums of at most 32 bits
// are divided in floating point instead, exactly (|sum| < 2^24 in float,
// 2^53 in double, so floor(sum / count) is the true floor), which vectorises
// where integer division does not. The remainder then rounds half to even.
template <typename T, typename R>
constexpr bool kFastSparseFinish = R::kIsMean && std::is_integral_v<typename Element<T>::Value> &&
                                   sizeof(typename R::Acc) <= 4;

// kShared: every output has the same count `shared` (>= 1; `c` is unused).
template <typename T, typename R, bool kTruncate, bool kUnit, bool kShared = false>
inline void FinishSparseLoop(const typename R::Acc* __restrict a, const typename R::Count* __restrict c,
                             int64_t n, T* __restrict out, int64_t os, int64_t shared = 1) {
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
    const W count = kShared ? static_cast<W>(shared) : static_cast<W>(c[i]);
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

// The hot loop of the horizontal pass: whole groups of f accumulators with
// the same voxel count, finished without a per-output division where the
// count allows (integer means: a shift; float means: an exact reciprocal).
// kKeep: 0 keeps nothing, 1 stores the groups in `keep`, 2 combines them
// into it.
//
// Kept out of line: inlined into ShortRowsKernel, GCC left its shift loop
// scalar (one sarx and byte store per output), and the u8 C 2x2x2 kernel
// ran at half speed (9.5 against 19-22 GVx/s); on its own it vectorises.
template <typename T, typename R, bool kSparse, int kF, int kKeep>
[[gnu::noinline]] void FinishWholeGroups(const typename R::Acc* acc, int64_t f_rt, int64_t n, int64_t count,
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
    if constexpr (kFastSparseFinish<T, R>) {
      // Other counts (3x3x3: 27) divide in floating point, exactly and
      // vectorised, as sparse sums do: R::Finish's integer division per
      // output was 40% of the u8 F 3x3x3 kernel.
      constexpr int64_t kBlock = 256;
      Acc sums[kBlock];
      for (int64_t o0 = 0; o0 < n; o0 += kBlock) {
        const int64_t k = std::min(kBlock, n - o0);
        for (int64_t i = 0; i < k; ++i) sums[i] = group(o0 + i);
        T* q = out + o0 * os;
        if (rounding == Rounding::kTruncate) {
          os == 1 ? FinishSparseLoop<T, R, true, true, true>(sums, nullptr, k, q, os, count)
                  : FinishSparseLoop<T, R, true, false, true>(sums, nullptr, k, q, os, count);
        } else {
          os == 1 ? FinishSparseLoop<T, R, false, true, true>(sums, nullptr, k, q, os, count)
                  : FinishSparseLoop<T, R, false, false, true>(sums, nullptr, k, q, os, count);
        }
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

// Horizontal pass with lanes: the row accumulators hold `lanes` values per
// element; groups of f elements combine lane by lane (vectorised over lanes),
// in place. Output lanes are `ls` apart.
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

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
