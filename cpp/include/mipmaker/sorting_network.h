// SPDX-License-Identifier: BSD-3-Clause
// Sorting networks for small blocks held across SIMD lanes (one block per
// lane, value j of every block in vector j): used by small_median.h for
// medians and by small_mode.h for the modes of blocks of 16 or more values.
#pragma once

#include <algorithm>
#include <cstdint>

#include "mipmaker/isa.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

// Comparators (lo, hi) that sort n <= 32 values: Batcher's
// odd-even merge sort for the next power of two, minus every comparator that
// touches an index >= n. Those would compare against +infinity pads at the
// end, which no comparator moves, so the rest sorts the n values. 191
// comparators for 32 values, 19 for 8.
struct SortingNetwork {
  uint8_t lo[256] = {}, hi[256] = {};
  int size = 0;
  constexpr explicit SortingNetwork(int n) {
    int p2 = 1;
    while (p2 < n) p2 <<= 1;
    for (int p = 1; p < p2; p <<= 1) {
      for (int k = p; k >= 1; k >>= 1) {
        for (int j = k % p; j + k < p2; j += 2 * k) {
          for (int i = 0; i < std::min(k, p2 - j - k); ++i) {
            const int a = i + j, b = i + j + k;
            if (a / (2 * p) == b / (2 * p) && b < n) {
              lo[size] = static_cast<uint8_t>(a);
              hi[size] = static_cast<uint8_t>(b);
              ++size;
            }
          }
        }
      }
    }
  }
};

// Sorts the lanes of x[0..net's n) (GCC/Clang vector extensions: `<` and
// the select lower to vector min/max).
template <typename UV>
inline void SortInLanes(UV* x, const SortingNetwork& net) {
  for (int c = 0; c < net.size; ++c) {
    const UV a = x[net.lo[c]], b = x[net.hi[c]];
    x[net.lo[c]] = a < b ? a : b;
    x[net.hi[c]] = a < b ? b : a;
  }
}

// The same for a network of kN values known at compile time, unrolled so x
// stays in registers (with indices known only at run time every comparator
// goes through the stack). Blocks held in L1, best of 200, ns per block:
// median of 8 u8 1.16 -> 0.51 with AVX2, 1.05 -> 0.17 with AVX-512; of 8 u64
// 12.9 -> 8.1 and 5.9 -> 1.4; of 27 u64 (AVX-512) 47 -> 18.
template <int kN, typename UV>
inline void SortInLanes(UV* x) {
  static constexpr SortingNetwork kNet(kN);
#pragma GCC unroll 256
  for (int c = 0; c < kNet.size; ++c) {
    const UV a = x[kNet.lo[c]], b = x[kNet.hi[c]];
    x[kNet.lo[c]] = a < b ? a : b;
    x[kNet.hi[c]] = a < b ? b : a;
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
