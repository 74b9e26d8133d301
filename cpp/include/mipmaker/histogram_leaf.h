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
#include "mipmaker/histogram_bins.h"
#include "mipmaker/histogram_cube.h"
#include "mipmaker/types.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Levels 1..j of whole level-j blocks, for integer (and bool) values: no
// NaN to track, and equality is identity.
template <typename T, bool kMedian, bool kSparse>
class HistogramLeaf {
 public:
  using V = typename Element<T>::Value;
  using Bin = HistogramBin<V>;
  // Mode of integer labels: mixed blocks count their few labels with
  // CountFewBins.
  static constexpr bool kFastMode =
      !kMedian && std::is_integral_v<V> && !std::is_same_v<V, bool> && sizeof(T) == sizeof(V);
#if defined(MIPMAKER_HAVE_AVX2)
  // Mode of 32- and 64-bit labels: levels 1 and 2 of whole 4x4x4 blocks at once.
  static constexpr bool kCube = kFastMode && kCubeLabel<T>;
#else
  static constexpr bool kCube = false;
#endif

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
    cube_ = kCube && g_.rank == 3 && max_levels_ >= 2 && g_.in_strides[2] == 1;
    for (int d = 0; d < g_.rank; ++d) cube_ &= g_.factors[d] == 2;
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
    // Noisy runs (few_ false) sort and merge level by level instead.
    const bool cube = cube_ && few_ && j >= 2;
    if (cube) {
      LevelTwo(j, o);
    } else {
      LevelOne(j, o);
    }
    for (int i = cube ? 3 : 2; i <= j; ++i) Merge(i, j, o);
    if constexpr (kFastMode) {
      // Counting passes cost one per distinct label, so noise (most mixed
      // level-1 blocks all distinct: random labels) would make the blocks
      // above quadratic: the next run sorts and merges instead.
      few_ = 8 * distinct_blocks_ <= mixed_blocks_;
      distinct_blocks_ = mixed_blocks_ = 0;
    }
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

  // Visits the rows (along the last axis) of a level-i grid inside level-j
  // block `o`, in row-major order: row(first node index, output offset,
  // origin, blocks in the row) where origin is the row's first block's first
  // voxel (i == 1) or first child node (i > 1), given by `outer(c)`.
  template <typename Outer, typename Row>
  void ForGridRows(int i, int j, const std::array<int64_t, kMaxRank>& o, Outer outer, Row row) {
    const int rank = g_.rank, last = rank - 1;
    const LevelGeometry& L = lv_[i];
    const int64_t run = GridSize(i, j, last);
    std::array<int64_t, kMaxRank> c{};
    int64_t n = 0;
    for (;;) {
      int64_t out_off = o[last] * span_[j - i][last] * L.strides[last];
      for (int d = 0; d < last; ++d) out_off += (o[d] * span_[j - i][d] + c[d]) * L.strides[d];
      row(n, out_off, outer(c), run);
      n += run;
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++c[d] < GridSize(i, j, d)) break;
        c[d] = 0;
      }
      if (d < 0) return;
    }
  }

  // ForGridRows, block by block: fn(node index, output offset, origin),
  // origins `unit` apart along the last axis.
  template <typename Outer, typename Fn>
  void ForGrid(int i, int j, const std::array<int64_t, kMaxRank>& o, int64_t unit, Outer outer, Fn fn) {
    const int64_t step = lv_[i].strides[g_.rank - 1];
    ForGridRows(i, j, o, outer, [&](int64_t n, int64_t out_off, int64_t origin, int64_t run) {
      for (int64_t x = 0; x < run; ++x, ++n, origin += unit, out_off += step) fn(n, out_off, origin);
    });
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
    mixed_.resize(static_cast<size_t>(run));
    int64_t* mixed = mixed_.data();
    const int64_t step = lv_[1].strides[last];
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
      return off;
    };
    // Every block of a row is first written as if uniform, in one tight
    // loop that also lists the mixed ones; then only those are redone. Most
    // blocks are uniform, and a branch per block would mispredict on the
    // rest.
    ForGridRows(1, j, o, outer, [&](int64_t row_n, int64_t row_out, int64_t row_origin, int64_t blocks) {
      Node* row_nodes = nodes.data() + row_n;
      int64_t count = 0;
      for (int64_t x = 0; x < blocks; ++x) {
        const V v0 = Element<T>::Load(in_[row_origin + x * unit]);
        row_nodes[x] = Node{v0, -1, 0};
        out[row_out + x * step] = Element<T>::Store(v0);
        mixed[count] = x;
        count += !flags[x];
      }
      for (int64_t q = 0; q < count; ++q) {
        const int64_t x = mixed[q];
        const T* p = in_ + row_origin + x * unit;
        Node& node = row_nodes[x];
        if (kFastMode && few_ && m <= kMaxFewBins) {
          uint64_t counted = 0;  // each voxel counts 1, sparse zeros 0
          for (size_t t = 0; t < m; ++t) {
            const V v = Element<T>::Load(p[offs[t]]);
            few_values_[t] = static_cast<uint64_t>(v);
            counted |= static_cast<uint64_t>(!(kSparse && IsZero(v))) << t;
          }
          out[row_out + x * step] = Element<T>::Store(CountFew<true>(1, m, counted, node));
          distinct_blocks_ += static_cast<size_t>(node.size) == m;
          continue;
        }
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
        out[row_out + x * step] = Element<T>::Store(AddBins(1, b, len, node, true));
        if constexpr (kFastMode) distinct_blocks_ += len == m;  // only the noise guard reads it
      }
      mixed_blocks_ += count;
    });
  }

  // Levels 1 and 2 inside the run of level-j blocks from `o`, for cube_:
  // whole 4x4x4 blocks in registers (FourCubeModes), their histograms to
  // level 2's pool for the levels above.
  void LevelTwo(int j, const std::array<int64_t, kMaxRank>& o) {
#if defined(MIPMAKER_HAVE_AVX2)  // kCube is false without
    if constexpr (kCube) {
      const int64_t g0 = GridSize(2, j, 0), g1 = GridSize(2, j, 1), g2 = GridSize(2, j, 2);
      std::vector<Node>& nodes = nodes_[2];
      nodes.resize(static_cast<size_t>(g0 * g1 * g2));
      pool_used_[2] = 0;
      const LevelGeometry& L1 = lv_[1];
      const LevelGeometry& L2 = lv_[2];
      const int64_t s0 = g_.in_strides[0], s1 = g_.in_strides[1];
      const int64_t step1 = L1.strides[2], step2 = L2.strides[2];
      std::array<int64_t, 3> q{};  // the grid's first level-2 block
      for (int d = 0; d < 3; ++d) q[d] = o[d] * span_[j - 2][d];
      int64_t mixed = 0, busy = 0, n = 0;
      V l1[8];
      for (int64_t a = 0; a < g0; ++a) {
        for (int64_t b = 0; b < g1; ++b) {
          const T* p = in_ + 4 * ((q[0] + a) * s0 + (q[1] + b) * s1 + q[2]);
          T* o2 = static_cast<T*>(L2.data) + (q[0] + a) * L2.strides[0] + (q[1] + b) * L2.strides[1] + q[2] * step2;
          T* o1 = static_cast<T*>(L1.data) + 2 * ((q[0] + a) * L1.strides[0] + (q[1] + b) * L1.strides[1] + q[2] * step1);
          for (int64_t c = 0; c < g2; ++c, ++n, p += 4, o1 += 2 * step1, o2 += step2) {
            Bin* bins = PoolSpace(2, 64);
            size_t len = 0;
            V mode;
            const int got = FourCubeModes<V, kSparse>(p, s0, s1, l1, mode, bins, len);
            if (got == 0) {
              nodes[static_cast<size_t>(n)] = Node{mode, -1, 0};
              std::fill(l1, l1 + 8, mode);
            } else {
              if (got < 0) {
                FourCubeModesSorted<V, kSparse>(p, s0, s1, l1, mode, bins, len);
                ++busy;
              }
              nodes[static_cast<size_t>(n)] = Node{mode, static_cast<int32_t>(pool_used_[2]), static_cast<int32_t>(len)};
              pool_used_[2] += len;
              ++mixed;
            }
            *o2 = mode;
            for (int s = 0; s < 8; ++s) {
              o1[(s >> 2) * L1.strides[0] + ((s >> 1) & 1) * L1.strides[1] + (s & 1) * step1] = l1[s];
            }
          }
        }
      }
      // Too many busy blocks: the next run sorts and merges (few_ false).
      mixed_blocks_ += mixed;
      distinct_blocks_ += busy;
    }
#else
    (void)j, (void)o;
#endif
  }

  // Mode of integer labels above level 1: the children's bins (a uniform
  // child is one) are gathered for CountFewBins, and the block's histogram
  // goes to the pool unsorted (the fallback in Merge sorts). Returns false,
  // having done nothing, past kMaxFewBins bins.
  bool MergeFew(int i, const Node* below, const Bin* below_pool, int64_t first, int64_t child_voxels,
                Node& node, V& r) {
    uint64_t* gv = few_values_.data();  // values as bits: equality is all a pass needs
    uint64_t* gc = few_counts_.data();
    size_t n = 0;
    for (const int64_t kid : kid_offsets_) {
      const Node& k = below[first + kid];
      const bool u = k.begin < 0;
      // A uniform child is one bin (none if sparse and zero); kFewCopy bins
      // are copied either way (the pool has room past its end), then the
      // first is replaced for a uniform child, so neither case branches.
      const Bin* src = below_pool + (k.begin & ~(k.begin >> 31));  // max(begin, 0), without a branch
      const size_t size = static_cast<size_t>(k.size) + (u & !(kSparse && IsZero(k.value)));  // uniform: size 0
      if (n + size > kMaxFewBins) return false;
      for (size_t t = 0; t < kFewCopy; ++t) {
        gv[n + t] = static_cast<uint64_t>(src[t].value);
        gc[n + t] = static_cast<uint64_t>(src[t].count);
      }
      for (size_t t = kFewCopy; t < size; ++t) {
        gv[n + t] = static_cast<uint64_t>(src[t].value);
        gc[n + t] = static_cast<uint64_t>(src[t].count);
      }
      const uint64_t keep = static_cast<uint64_t>(u) - 1;  // all ones for a mixed child
      gv[n] = (gv[n] & keep) | (static_cast<uint64_t>(k.value) & ~keep);
      gc[n] = (gc[n] & keep) | (static_cast<uint64_t>(child_voxels) & ~keep);
      n += size;
    }
    r = CountFew<false>(i, n, 0, node);
    return true;
  }

  // CountFewBins over few_values_/few_counts_[0, n) into level i's pool, as
  // the histogram of `node`; returns the mode.
  template <bool kUnit>
  V CountFew(int i, size_t n, uint64_t counted, Node& node) {
    size_t len = 0;
    const V best =
        CountFewBins<V, kUnit>(few_values_.data(), few_counts_.data(), counted, n, PoolSpace(i, n), len);
    node = Node{best, static_cast<int32_t>(pool_used_[i]), static_cast<int32_t>(len)};
    pool_used_[i] += len;
    return best;
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
    // MergeFew reads kFewCopy bins from any child's start.
    std::vector<Bin>& below_bins = pool_[i - 1];
    if (below_bins.size() < pool_used_[i - 1] + kFewCopy) below_bins.resize(pool_used_[i - 1] + kFewCopy);
    const Node* below = nodes_[i - 1].data();
    const Bin* below_pool = below_bins.data();
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
      for (size_t t = 1; t < kids.size(); ++t) {  // no early exit: mixed kids come unpredictably
        const Node& k = below[first + kids[t]];
        uniform &= (k.begin < 0) & (k.value == k0.value);
      }
      Node& node = nodes[static_cast<size_t>(n)];
      V r = k0.value;
      if (uniform) {
        node = Node{k0.value, -1, 0};
      } else if (kFastMode && few_ && MergeFew(i, below, below_pool, first, child_voxels, node, r)) {
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
        if (kFastMode && few_) {  // MergeFew's and CountFew's histograms are unsorted
          r = AddBins(i, scratch, len, node);
        } else {
          Bin* merged = MergeRuns(scratch, spare, bounds, runs, len);
          r = AddBins(i, merged, len, node, true);
        }
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
  // Bins for CountFewBins (values and counts apart, to vectorise), with
  // room for MergeFew's last copy's overrun and the padding.
  static constexpr size_t kFewCopy = 4;
  bool few_ = kFastMode;  // this run counts with CountFewBins
  bool cube_ = false;     // LevelTwo applies to whole level-2 blocks
  // Blocks of the run: mixed and all distinct (level 1), or mixed and past
  // kCubeMaxPasses labels (level 2, LevelTwo).
  int64_t mixed_blocks_ = 0, distinct_blocks_ = 0;
  std::vector<uint64_t> few_values_ = std::vector<uint64_t>(kMaxFewBins + kFewCopy + kFewPad);
  std::vector<uint64_t> few_counts_ = std::vector<uint64_t>(kMaxFewBins + kFewCopy + kFewPad);
  std::vector<size_t> bounds_;
  std::vector<V> values_;  // a level-1 block's values, sorted
  std::vector<uint8_t> flags_;  // uniform level-1 blocks of a grid row
  std::vector<int64_t> mixed_;  // the others' indices in the row
};

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
