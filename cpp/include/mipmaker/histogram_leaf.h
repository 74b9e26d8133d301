// SPDX-License-Identifier: BSD-3-Clause
// The bottom levels of an exact mode / median pyramid, for blocks that lie
// wholly inside the volume, computed level by level instead of block by
// block: a whole level-j block is a fixed grid of level-1 blocks, so level 1
// is one pass over the block's voxels with a uniform test, and every level
// above merges its children's histograms, kept in per-level pools. Uniform
// blocks (the bulk of a segmentation) carry no histogram at all: a level-i
// block whose children are uniform with one value is uniform too.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "mipmaker/element.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// One distinct value of a block and how many of its voxels hold it.
template <typename V>
struct HistogramBin {
  V value;
  int64_t count;
};

// Offsets (with per-axis `strides`) of the cells of one block of
// `factors[0] x ... x factors[rank-1]`, last axis fastest, into `out`.
inline void BlockOffsets(int rank, const std::array<int64_t, kMaxRank>& factors,
                         const std::array<int64_t, kMaxRank>& strides, std::vector<int64_t>& out) {
  out.clear();
  std::array<int64_t, kMaxRank> c{};
  for (;;) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) off += c[d] * strides[d];
    out.push_back(off);
    int d = rank - 1;
    for (; d >= 0; --d) {
      if (++c[d] < factors[d]) break;
      c[d] = 0;
    }
    if (d < 0) return;
  }
}

// Sorts a short run of bins by value (insertion sort: most runs hold a few
// bins) and merges equal values; returns the new length.
template <typename V>
inline size_t SortMergeBins(HistogramBin<V>* b, size_t n) {
  if (n <= 1) return n;
  if (n <= 32) {
    for (size_t i = 1; i < n; ++i) {
      const HistogramBin<V> x = b[i];
      size_t k = i;
      for (; k > 0 && Less(x.value, b[k - 1].value); --k) b[k] = b[k - 1];
      b[k] = x;
    }
  } else {
    std::sort(b, b + n, [](const HistogramBin<V>& x, const HistogramBin<V>& y) { return Less(x.value, y.value); });
  }
  size_t w = 0;
  for (size_t i = 1; i < n; ++i) {
    if (b[i].value == b[w].value) {
      b[w].count += b[i].count;
    } else {
      b[++w] = b[i];
    }
  }
  return w + 1;
}

// Sorts eight values with a 19-comparator network: no branches, which
// unsorted label blocks would mispredict.
template <typename V>
inline void SortEight(V* v) {
  auto cx = [v](int a, int b) {
    const V lo = Less(v[b], v[a]) ? v[b] : v[a];
    const V hi = Less(v[b], v[a]) ? v[a] : v[b];
    v[a] = lo;
    v[b] = hi;
  };
  cx(0, 2); cx(1, 3); cx(4, 6); cx(5, 7);
  cx(0, 4); cx(1, 5); cx(2, 6); cx(3, 7);
  cx(0, 1); cx(2, 3); cx(4, 5); cx(6, 7);
  cx(2, 4); cx(3, 5);
  cx(1, 4); cx(3, 6);
  cx(1, 2); cx(3, 4); cx(5, 6);
}

// Merges `runs` sorted runs of distinct values, run r at
// b[bounds[r], bounds[r + 1]), into one sorted histogram (equal values
// summed), pairwise level by level through `tmp` (as large as b). Returns
// where the result is (b or tmp) and sets `len`. `bounds` is overwritten.
template <typename V>
inline HistogramBin<V>* MergeRuns(HistogramBin<V>* b, HistogramBin<V>* tmp, size_t* bounds, size_t runs,
                                  size_t& len) {
  while (runs > 1) {
    size_t w = 0, out_runs = 0;
    for (size_t r = 0; r < runs; r += 2) {
      const HistogramBin<V>* x = b + bounds[r];
      const HistogramBin<V>* x_end = b + bounds[r + 1];
      const HistogramBin<V>* y = x_end;
      const HistogramBin<V>* y_end = r + 1 < runs ? b + bounds[r + 2] : x_end;
      bounds[out_runs++] = w;
      while (x != x_end && y != y_end) {
        if (x->value == y->value) {
          tmp[w++] = HistogramBin<V>{x->value, x->count + y->count};
          ++x;
          ++y;
        } else if (Less(x->value, y->value)) {
          tmp[w++] = *x++;
        } else {
          tmp[w++] = *y++;
        }
      }
      while (x != x_end) tmp[w++] = *x++;
      while (y != y_end) tmp[w++] = *y++;
    }
    bounds[out_runs] = w;
    runs = out_runs;
    std::swap(b, tmp);
  }
  len = runs == 1 ? bounds[1] - bounds[0] : 0;
  return b + (runs == 1 ? bounds[0] : 0);
}

// flags[x] = whether the level-1 block at p + x * step (voxels at offsets
// offs[0..m)) is uniform. Written, for integer T, as an OR of XORs with fixed
// trip counts, so the common shapes (kM voxels, kStep apart) vectorise
// across blocks.
template <typename T, int kM, int kStep>
inline void UniformFlags(const T* __restrict p, const int64_t* __restrict offs, int m_rt, int64_t step_rt,
                         int64_t count, uint8_t* __restrict flags) {
  const int m = kM > 0 ? kM : m_rt;
  const int64_t step = kStep > 0 ? kStep : step_rt;
  for (int64_t x = 0; x < count; ++x) {
    const T* b = p + x * step;
    if constexpr (std::is_integral_v<T>) {
      const T v0 = b[0];
      T diff = 0;
      for (int t = 1; t < m; ++t) diff |= static_cast<T>(b[offs[t]] ^ v0);
      flags[x] = diff == 0;
    } else {  // bool storage: compare values, not bytes
      const auto v0 = Element<T>::Load(b[0]);
      bool same = true;
      for (int t = 1; t < m; ++t) same &= Element<T>::Load(b[offs[t]]) == v0;
      flags[x] = same;
    }
  }
}

// The mode (the most frequent value, ties to the smallest) or the lower
// median of a sorted histogram; 0 for an empty one (sparse, all zero).
template <typename V, bool kMedian>
inline V SelectFromBins(const HistogramBin<V>* bins, size_t n) {
  if (n == 0) return V(0);
  if constexpr (kMedian) {
    int64_t total = 0;
    for (size_t i = 0; i < n; ++i) total += bins[i].count;
    const int64_t rank = (total - 1) / 2;
    int64_t seen = 0;
    size_t i = 0;
    while (seen + bins[i].count <= rank) seen += bins[i++].count;
    return bins[i].value;
  } else {
    size_t best = 0;  // strict '>' keeps the smallest of tied values
    for (size_t i = 1; i < n; ++i) best = bins[i].count > bins[best].count ? i : best;
    return bins[best].value;
  }
}

// Levels 1..j of whole level-j blocks, for integer (and bool) values: no
// NaN to track, and equality is identity.
template <typename T, bool kMedian, bool kSparse>
class HistogramLeaf {
 public:
  using V = typename Element<T>::Value;
  using Bin = HistogramBin<V>;

  HistogramLeaf(const T* in, const Geometry& g, const LevelGeometry* levels, int num_levels)
      : in_(in), g_(g), lv_(levels) {
    BlockOffsets(g_.rank, g_.factors, g_.in_strides, voxel_offsets_);  // a level-1 block's voxels
    // The leaf covers up to kMaxLeafVoxels voxels: enough levels that the
    // histograms above it are few, few enough that its pools stay in cache.
    constexpr int64_t kMaxLeafVoxels = 1 << 15;
    const int64_t per_block = static_cast<int64_t>(voxel_offsets_.size());
    int64_t voxels = 1;
    max_levels_ = 0;
    while (max_levels_ < num_levels && per_block > 1 && voxels * per_block <= kMaxLeafVoxels) {
      voxels *= per_block;
      ++max_levels_;
    }
    for (int j = 0; j <= max_levels_; ++j) {
      for (int d = 0; d < g_.rank; ++d) span_[j][d] = j == 0 ? 1 : span_[j - 1][d] * g_.factors[d];
      voxels_[j] = j == 0 ? 1 : voxels_[j - 1] * per_block;
    }
    // A block's bins before merging: at most one per voxel.
    scratch_.resize(static_cast<size_t>(std::max<int64_t>(voxels_[max_levels_], per_block)));
    spare_.resize(scratch_.size());
    values_.resize(static_cast<size_t>(per_block) + 1);
  }

  // How many level-j blocks along the last axis, from `o` on (at most
  // `limit`), this leaf computes in one run: each within max_levels_
  // levels and with its whole f^j block inside the volume. 0: none.
  int64_t Covers(int j, const std::array<int64_t, kMaxRank>& o, int64_t limit = 1) const {
    if (j > max_levels_) return 0;
    const int last = g_.rank - 1;
    for (int d = 0; d < last; ++d) {
      if ((o[d] + 1) * span_[j][d] > g_.in_shape[d]) return 0;
    }
    const int64_t fit = g_.in_shape[last] / span_[j][last] - o[last];
    // A run's pools stay within about kMaxRunVoxels bins.
    constexpr int64_t kMaxRunVoxels = 1 << 18;
    const int64_t cap = std::max<int64_t>(1, kMaxRunVoxels / voxels_[j]);
    return std::max<int64_t>(0, std::min({fit, limit, cap}));
  }

  // Writes levels 1..j inside the `run` level-j blocks from `o` on along
  // the last axis (Covers(j, o) >= run). With `out`, appends the histogram
  // (sorted, distinct values; no zeros when sparse) of each block to it.
  void Run(int j, const std::array<int64_t, kMaxRank>& o, int64_t run, std::vector<Bin>* out) {
    run_ = run;
    LevelOne(j, o);
    for (int i = 2; i <= j; ++i) Merge(i, j, o);
    if (out == nullptr) return;
    for (int64_t b = 0; b < run; ++b) {
      const Node& top = nodes_[j][static_cast<size_t>(b)];
      if (top.begin < 0) {
        if (!(kSparse && IsZero(top.value))) out->push_back(Bin{top.value, voxels_[j]});
      } else {
        out->insert(out->end(), pool_[j].begin() + top.begin, pool_[j].begin() + top.begin + top.size);
      }
    }
  }

 private:
  // A block at some level: uniform (begin < 0) with `value`, or the bins
  // [begin, begin + size) of its level's pool.
  struct Node {
    V value;
    int32_t begin;
    int32_t size;
  };

  // Grid of level-i blocks inside the run of level-j blocks: f^(j-i) per
  // axis, run_ times that along the last one.
  int64_t GridSize(int i, int j, int d) const { return span_[j - i][d] * (d == g_.rank - 1 ? run_ : 1); }

  // Appends bins [b, b + n) (which may already sit at PoolSpace(i, n)) to
  // level i's pool, sorted and merged (unless `sorted` says they are), as the
  // histogram of `node`; returns the block's mode / median.
  V AddBins(int i, Bin* b, size_t n, Node& node, bool sorted = false) {
    const size_t len = sorted ? n : SortMergeBins(b, n);
    Bin* dst = PoolSpace(i, len);
    if (dst != b) std::copy(b, b + len, dst);
    const size_t at = pool_used_[i];
    pool_used_[i] = at + len;
    node = Node{V(0), static_cast<int32_t>(at), static_cast<int32_t>(len)};
    return SelectFromBins<V, kMedian>(dst, len);
  }

  // Room for n more bins at the end of level i's pool (not yet counted in it).
  Bin* PoolSpace(int i, size_t n) {
    std::vector<Bin>& pool = pool_[i];
    const size_t need = pool_used_[i] + n;
    if (pool.size() < need) pool.resize(std::max(need, 2 * pool.size()));
    return pool.data() + pool_used_[i];
  }

  // Visits the blocks of a level-i grid inside level-j block `o` in
  // row-major order (last axis fastest): fn(node index, output offset,
  // origin) where origin is the block's first voxel (i == 1) or first child
  // node (i > 1), `unit` apart along the last axis and `outer(c)` per row.
  template <typename Outer, typename Fn>
  void ForGrid(int i, int j, const std::array<int64_t, kMaxRank>& o, int64_t unit, Outer outer, Fn fn) {
    const int rank = g_.rank, last = rank - 1;
    const LevelGeometry& L = lv_[i];
    const int64_t run = GridSize(i, j, last);
    std::array<int64_t, kMaxRank> c{};
    int64_t n = 0;
    for (;;) {
      int64_t out_off = o[last] * span_[j - i][last] * L.strides[last];
      for (int d = 0; d < last; ++d) out_off += (o[d] * span_[j - i][d] + c[d]) * L.strides[d];
      int64_t origin = outer(c);
      for (int64_t x = 0; x < run; ++x, ++n, origin += unit, out_off += L.strides[last]) fn(n, out_off, origin);
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++c[d] < GridSize(i, j, d)) break;
        c[d] = 0;
      }
      if (d < 0) return;
    }
  }

  void LevelOne(int j, const std::array<int64_t, kMaxRank>& o) {
    const int rank = g_.rank, last = rank - 1;
    int64_t total = 1;
    for (int d = 0; d < rank; ++d) total *= GridSize(1, j, d);
    std::vector<Node>& nodes = nodes_[1];
    nodes.resize(static_cast<size_t>(total));
    pool_used_[1] = 0;
    const size_t m = voxel_offsets_.size();
    const int64_t* offs = voxel_offsets_.data();
    V* vals = values_.data();
    T* out = static_cast<T*>(lv_[1].data);
    int64_t base = 0;
    for (int d = 0; d < rank; ++d) base += o[d] * span_[j][d] * g_.in_strides[d];
    const int64_t unit = g_.factors[last] * g_.in_strides[last];
    const int64_t run = GridSize(1, j, last);
    flags_.resize(static_cast<size_t>(run));
    uint8_t* flags = flags_.data();
    int64_t x = 0;  // the block's index in its grid row
    // Per grid row: the uniform flags of all its blocks, in one pass.
    auto outer = [&](const std::array<int64_t, kMaxRank>& c) {
      int64_t off = base;
      for (int d = 0; d < last; ++d) off += c[d] * g_.factors[d] * g_.in_strides[d];
      const int mi = static_cast<int>(m);
      if (m == 8 && unit == 2) {
        UniformFlags<T, 8, 2>(in_ + off, offs, mi, unit, run, flags);
      } else if (m == 4 && unit == 2) {
        UniformFlags<T, 4, 2>(in_ + off, offs, mi, unit, run, flags);
      } else {
        UniformFlags<T, 0, 0>(in_ + off, offs, mi, unit, run, flags);
      }
      x = 0;
      return off;
    };
    ForGrid(1, j, o, unit, outer, [&](int64_t n, int64_t out_off, int64_t origin) {
      const T* p = in_ + origin;
      const V v0 = Element<T>::Load(p[0]);
      const bool uniform = flags[x++];
      Node& node = nodes[static_cast<size_t>(n)];
      V r = v0;
      if (uniform) {
        node = Node{v0, -1, 0};
      } else {
        // Sort the values themselves (not bins), then count runs: mixed
        // blocks are common and unpredictable, so eight values (2x2x2) go
        // through a branch-free sorting network.
        for (size_t t = 0; t < m; ++t) vals[t] = Element<T>::Load(p[offs[t]]);
        if (m == 8) {
          SortEight(vals);
        } else {
          for (size_t t = 1; t < m; ++t) {
            const V v = vals[t];
            size_t at = t;
            for (; at > 0 && Less(v, vals[at - 1]); --at) vals[at] = vals[at - 1];
            vals[at] = v;
          }
        }
        // Runs of equal values become bins, straight into the pool. A run's
        // count is rewritten at every step (t - start) rather than
        // incremented, so no step waits on the store of the one before.
        Bin* b = PoolSpace(1, m);
        size_t len = 0, start = 0;
        b[0].value = vals[0];
        for (size_t t = 1; t < m; ++t) {
          const bool same = vals[t] == vals[t - 1];
          b[len].count = static_cast<int64_t>(t - start);
          len += !same;
          start = same ? start : t;
          b[len].value = vals[t];
        }
        b[len].count = static_cast<int64_t>(m - start);
        ++len;
        if constexpr (kSparse) {  // zeros take no part: drop their bin
          size_t w = 0;
          for (size_t t = 0; t < len; ++t) {
            b[w] = b[t];
            w += !IsZero(b[t].value);
          }
          len = w;
        }
        r = AddBins(1, b, len, node, true);
      }
      out[out_off] = Element<T>::Store(r);
    });
  }

  // Level i (2 <= i <= j) from level i - 1, inside level-j block `o`.
  void Merge(int i, int j, const std::array<int64_t, kMaxRank>& o) {
    const int rank = g_.rank, last = rank - 1;
    std::array<int64_t, kMaxRank> child_row{};
    int64_t total = 1, stride = 1;
    for (int d = rank - 1; d >= 0; --d) {  // row-major strides of the child grid
      total *= GridSize(i, j, d);
      child_row[d] = stride;
      stride *= GridSize(i - 1, j, d);
    }
    // Node offsets of a block's children from its first child.
    std::vector<int64_t>& kids = kid_offsets_;
    BlockOffsets(rank, g_.factors, child_row, kids);
    const Node* below = nodes_[i - 1].data();
    const Bin* below_pool = pool_[i - 1].data();
    std::vector<Node>& nodes = nodes_[i];
    nodes.resize(static_cast<size_t>(total));
    pool_used_[i] = 0;
    const int64_t child_voxels = voxels_[i - 1];
    Bin* scratch = scratch_.data();
    Bin* spare = spare_.data();
    bounds_.resize(kids.size() + 1);
    size_t* bounds = bounds_.data();
    T* out = static_cast<T*>(lv_[i].data);
    auto outer = [&](const std::array<int64_t, kMaxRank>& c) {
      int64_t first = 0;
      for (int d = 0; d < last; ++d) first += c[d] * g_.factors[d] * child_row[d];
      return first;
    };
    ForGrid(i, j, o, g_.factors[last], outer, [&](int64_t n, int64_t out_off, int64_t first) {
      const Node& k0 = below[first];
      bool uniform = k0.begin < 0;
      for (size_t t = 1; t < kids.size() && uniform; ++t) {
        const Node& k = below[first + kids[t]];
        uniform = k.begin < 0 && k.value == k0.value;
      }
      Node& node = nodes[static_cast<size_t>(n)];
      V r = k0.value;
      if (uniform) {
        node = Node{k0.value, -1, 0};
      } else {
        // Uniform children first, gathered into one sorted run (they
        // repeat a few values), then each mixed child's histogram is a
        // sorted run of its own: merge the runs.
        size_t len = 0, runs = 0;
        for (const int64_t kid : kids) {
          const Node& k = below[first + kid];
          if (k.begin >= 0 || (kSparse && IsZero(k.value))) continue;
          size_t at = 0;
          while (at < len && scratch[at].value != k.value) ++at;
          if (at < len) {
            scratch[at].count += child_voxels;
          } else {
            scratch[len++] = Bin{k.value, child_voxels};
          }
        }
        if (len > 0) {
          len = SortMergeBins(scratch, len);
          bounds[runs++] = 0;
        }
        for (const int64_t kid : kids) {
          const Node& k = below[first + kid];
          if (k.begin < 0 || k.size == 0) continue;
          bounds[runs++] = len;
          std::copy(below_pool + k.begin, below_pool + k.begin + k.size, scratch + len);
          len += static_cast<size_t>(k.size);
        }
        bounds[runs] = len;
        Bin* merged = MergeRuns(scratch, spare, bounds, runs, len);
        r = AddBins(i, merged, len, node, true);
      }
      out[out_off] = Element<T>::Store(r);
    });
  }

  const T* in_;
  const Geometry& g_;
  const LevelGeometry* lv_;
  int max_levels_ = 0;
  int64_t run_ = 1;
  std::array<std::array<int64_t, kMaxRank>, kMaxLevels + 1> span_{};  // f^j per axis
  std::array<int64_t, kMaxLevels + 1> voxels_{};                      // voxels of a whole level-j block
  std::vector<int64_t> voxel_offsets_, kid_offsets_;
  std::array<std::vector<Node>, kMaxLevels + 1> nodes_;
  std::array<std::vector<Bin>, kMaxLevels + 1> pool_;
  std::array<size_t, kMaxLevels + 1> pool_used_{};
  std::vector<Bin> scratch_;
  std::vector<Bin> spare_;  // MergeRuns' other buffer
  std::vector<size_t> bounds_;
  std::vector<V> values_;  // a level-1 block's values, sorted
  std::vector<uint8_t> flags_;  // uniform level-1 blocks of a grid row
};

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
