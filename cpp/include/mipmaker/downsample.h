// SPDX-License-Identifier: BSD-3-Clause
// The one strided N-d loop, templated on a reducer. It knows no dtype and no
// ISA. Work is split by output rows: an output row is the innermost output
// axis at a fixed outer output index; its block rows are the input rows
// (innermost input axis) that fall in the blocks of that output row. Every
// output element is computed from its own block only, in a fixed order, so
// the result never depends on how the rows are split between threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mipmaker/element.h"
#include "mipmaker/method.h"
#include "mipmaker/reducers.h"
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

// Folds one input row into acc[0..n) where acc[o] covers input elements
// [o*F, o*F+F) of the row, starting at output element `o0`. kF > 0 makes the
// factor a compile-time constant so the compiler can vectorise.
template <typename T, typename R, bool kSparse, int kF>
inline void FoldRow(typename R::Acc* acc, int64_t* count, const T* p, int64_t s, int64_t f_rt,
                    int64_t o0, int64_t n_full, int64_t tail) {
  using E = Element<T>;
  const int64_t f = kF > 0 ? kF : f_rt;
  if (s == 1) {
    const T* q = p + o0 * f;
    for (int64_t o = 0; o < n_full; ++o) {
      auto a = acc[o];
      for (int64_t j = 0; j < f; ++j) {
        const auto v = E::Load(q[o * f + j]);
        if constexpr (kSparse) {
          const bool nz = !IsZero(v);
          a = nz ? R::Add(a, v) : a;
          count[o] += nz;
        } else {
          a = R::Add(a, v);
        }
      }
      acc[o] = a;
    }
  } else {
    const T* q = p + o0 * f * s;
    for (int64_t o = 0; o < n_full; ++o) {
      auto a = acc[o];
      for (int64_t j = 0; j < f; ++j) {
        const auto v = E::Load(q[(o * f + j) * s]);
        if constexpr (kSparse) {
          const bool nz = !IsZero(v);
          a = nz ? R::Add(a, v) : a;
          count[o] += nz;
        } else {
          a = R::Add(a, v);
        }
      }
      acc[o] = a;
    }
  }
  if (tail > 0) {  // the partial block at the end of the row
    const T* q = p + (o0 + n_full) * f * s;
    auto a = acc[n_full];
    for (int64_t j = 0; j < tail; ++j) {
      const auto v = E::Load(q[j * s]);
      if constexpr (kSparse) {
        const bool nz = !IsZero(v);
        a = nz ? R::Add(a, v) : a;
        count[n_full] += nz;
      } else {
        a = R::Add(a, v);
      }
    }
    acc[n_full] = a;
  }
}

// mean / min / max: fold every block row into a row of accumulators, then
// finish each one with its voxel count.
template <typename T, typename R, bool kSparse>
void AccumulateKernel(const T* in, T* out, const Geometry& g, WorkRange w, Rounding rounding) {
  const int last = g.rank - 1;
  const int64_t f = g.factors[last], n = g.in_shape[last], s = g.in_strides[last];
  const int64_t os = g.out_strides[last];
  // Chunks of the inner range keep the accumulators in L1/L2.
  const int64_t chunk = std::max<int64_t>(1, 4096 / f);
  std::vector<typename R::Acc> acc(static_cast<size_t>(std::min(chunk, w.inner_end - w.inner_begin)));
  std::vector<int64_t> count(kSparse ? acc.size() : 0);
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    BlockRows rows(g, outer);
    for (int64_t i0 = w.inner_begin; i0 < w.inner_end; i0 += chunk) {
      const int64_t i1 = std::min(w.inner_end, i0 + chunk);
      const int64_t m = i1 - i0;
      // The last output of the row may own a partial block.
      const bool partial = (i1 == g.out_shape[last]) && (n % f != 0);
      const int64_t n_full = partial ? m - 1 : m;
      const int64_t tail = partial ? n - (i1 - 1) * f : 0;
      std::fill(acc.begin(), acc.begin() + m, R::Init());
      if constexpr (kSparse) std::fill(count.begin(), count.begin() + m, 0);
      rows.ForEach([&](int64_t off) {
        const T* row = in + off;
        auto* a = acc.data();
        int64_t* c = kSparse ? count.data() : nullptr;
        switch (f) {
          case 1: FoldRow<T, R, kSparse, 1>(a, c, row, s, f, i0, n_full, tail); break;
          case 2: FoldRow<T, R, kSparse, 2>(a, c, row, s, f, i0, n_full, tail); break;
          case 3: FoldRow<T, R, kSparse, 3>(a, c, row, s, f, i0, n_full, tail); break;
          case 4: FoldRow<T, R, kSparse, 4>(a, c, row, s, f, i0, n_full, tail); break;
          default: FoldRow<T, R, kSparse, 0>(a, c, row, s, f, i0, n_full, tail); break;
        }
      });
      T* o = out + rows.out_offset();
      for (int64_t i = 0; i < m; ++i) {
        int64_t cnt;
        if constexpr (kSparse) {
          cnt = count[i];
          if (cnt == 0) {
            o[(i0 + i) * os] = Element<T>::Store(typename Element<T>::Value(0));
            continue;
          }
        } else {
          cnt = rows.rows() * ((partial && i == m - 1) ? tail : f);
        }
        o[(i0 + i) * os] = R::Finish(acc[i], cnt, rounding);
      }
    }
  }
}

// mode / median: copy each block's values (minus NaN, minus zeros when
// sparse) into its own slot of a scratch buffer, then reduce each slot.
template <typename T, typename R, bool kSparse>
void GatherKernel(const T* in, T* out, const Geometry& g, WorkRange w) {
  using V = typename Element<T>::Value;
  const int last = g.rank - 1;
  const int64_t f = g.factors[last], n = g.in_shape[last], s = g.in_strides[last];
  const int64_t os = g.out_strides[last];
  int64_t block_rows = 1;
  for (int d = 0; d < last; ++d) block_rows *= g.factors[d];
  const int64_t slot = block_rows * f;
  // Bound the scratch to about 1 Mi values unless one block is bigger.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w.inner_end - w.inner_begin,
                                                               (int64_t{1} << 20) / slot));
  std::vector<V> vals(static_cast<size_t>(chunk * slot));
  std::vector<int64_t> fill(chunk);
  std::vector<uint8_t> saw_nan(chunk);
  for (int64_t outer = w.outer_begin; outer < w.outer_end; ++outer) {
    BlockRows rows(g, outer);
    for (int64_t i0 = w.inner_begin; i0 < w.inner_end; i0 += chunk) {
      const int64_t i1 = std::min(w.inner_end, i0 + chunk);
      const int64_t m = i1 - i0;
      std::fill(fill.begin(), fill.begin() + m, 0);
      std::fill(saw_nan.begin(), saw_nan.begin() + m, 0);
      rows.ForEach([&](int64_t off) {
        const T* row = in + off;
        for (int64_t i = 0; i < m; ++i) {
          const int64_t start = (i0 + i) * f;
          const int64_t len = std::min(f, n - start);
          V* dst = vals.data() + i * slot;
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
      T* o = out + rows.out_offset();
      for (int64_t i = 0; i < m; ++i) {
        T r;
        if (fill[i] > 0) {
          r = R::Reduce(vals.data() + i * slot, fill[i]);
        } else {
          r = Element<T>::Store(saw_nan[i] ? QuietNan<V>() : V(0));
        }
        o[(i0 + i) * os] = r;
      }
    }
  }
}

// stride: the origin sample of every block.
template <typename T>
void StrideKernel(const T* in, T* out, const Geometry& g, WorkRange w) {
  const int last = g.rank - 1;
  const int64_t step = g.factors[last] * g.in_strides[last];
  const int64_t os = g.out_strides[last];
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
    for (int64_t i = w.inner_begin; i < w.inner_end; ++i) q[i * os] = p[i * step];
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
