// SPDX-License-Identifier: BSD-3-Clause
// AVX2 lines of tinybrain's mode rules for 32- and 64-bit labels along a
// unit-stride block axis (C order: z, Fortran order: x). Each step takes one
// 256-bit vector of outputs: it loads the block rows, splits every row into
// its first and second voxels (so vector t holds voxel t of every output)
// and runs the rule on whole vectors. The compiler's own vectorisation of
// the scalar rules spends most of its time on those deinterleaving gathers
// and, for mostly uniform segmentations, cannot skip the counting.
#pragma once

#if defined(MIPMAKER_HAVE_AVX2)

#include <immintrin.h>

#include <cstdint>

#include "mipmaker/method.h"

namespace mipmaker {
namespace MIPMAKER_ISA {

template <int kBits>
struct LabelLanes;

template <>
struct LabelLanes<64> {
  static constexpr int kWidth = 4;
  static __m256i Eq(__m256i a, __m256i b) { return _mm256_cmpeq_epi64(a, b); }
  static __m256i Gt(__m256i a, __m256i b) { return _mm256_cmpgt_epi64(a, b); }
  static __m256i Add(__m256i a, __m256i b) { return _mm256_add_epi64(a, b); }
  static __m256i Set(int v) { return _mm256_set1_epi64x(v); }
  // a = [o0x0 o0x1 o1x0 o1x1], b = [o2x0 o2x1 o3x0 o3x1] -> [o0..o3 x0], [o0..o3 x1]
  static void Split(__m256i a, __m256i b, __m256i& x0, __m256i& x1) {
    x0 = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(a, b), 0xD8);
    x1 = _mm256_permute4x64_epi64(_mm256_unpackhi_epi64(a, b), 0xD8);
  }
};

template <>
struct LabelLanes<32> {
  static constexpr int kWidth = 8;
  static __m256i Eq(__m256i a, __m256i b) { return _mm256_cmpeq_epi32(a, b); }
  static __m256i Gt(__m256i a, __m256i b) { return _mm256_cmpgt_epi32(a, b); }
  static __m256i Add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
  static __m256i Set(int v) { return _mm256_set1_epi32(v); }
  static void Split(__m256i a, __m256i b, __m256i& x0, __m256i& x1) {
    const __m256 fa = _mm256_castsi256_ps(a), fb = _mm256_castsi256_ps(b);
    x0 = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(fa, fb, 0x88)), 0xD8);
    x1 = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(fa, fb, 0xDD)), 0xD8);
  }
};

inline __m256i Select(__m256i if_clear, __m256i if_set, __m256i mask) {
  return _mm256_blendv_epi8(if_clear, if_set, mask);
}

// Count2x2x2 on vectors. Scores are negated counts so that the running best
// starts at 0 and "higher count" is one signed compare: a voxel scores
// -(1 + later equal voxels), or 0 when sparse and zero. A later copy of a
// value never beats its first copy, which already saw all of them, so the
// forward counts select what the full counts do (28 compares, not 56).
// `score0` is voxel 0's score, already computed by the caller.
template <typename L, bool kSparse>
inline __m256i CountVectors(const __m256i (&v)[8], __m256i score0) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i best = zero, best_score = zero;
  for (int t = 0; t < 8; ++t) {
    __m256i s = score0;
    if (t > 0) {
      s = L::Set(-1);
      for (int j = t + 1; j < 8; ++j) s = L::Add(s, L::Eq(v[t], v[j]));
    }
    if (kSparse) s = _mm256_andnot_si256(L::Eq(v[t], zero), s);
    const __m256i take = L::Gt(best_score, s);
    best = Select(best, v[t], take);
    best_score = Select(best_score, s, take);
  }
  return best;
}

inline __m256i CountlessVectors(__m256i a, __m256i b, __m256i c, __m256i d, __m256i ab, __m256i ac,
                                __m256i bc) {
  return Select(Select(d, b, bc), a, _mm256_or_si256(ab, ac));
}

// Stippled2x2 on vectors (see the scalar rule for the order of the fallbacks).
template <typename L>
inline __m256i StippledVectors(__m256i a, __m256i x, __m256i y, __m256i d) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i az = L::Eq(a, zero), yz = L::Eq(y, zero), dz = L::Eq(d, zero);
  const __m256i first_nonzero = Select(a, Select(y, x, yz), az);
  const __m256i fallback = Select(d, first_nonzero, dz);
  const __m256i pair_y = Select(fallback, y, _mm256_andnot_si256(yz, L::Eq(y, x)));
  const __m256i a_pairs = _mm256_andnot_si256(az, _mm256_or_si256(L::Eq(a, x), L::Eq(a, y)));
  return Select(pair_y, a, a_pairs);
}

inline __m256i LoadVector(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// One line of `count` outputs, contiguous in `q`, whose blocks start two
// voxels apart along the unit-stride block axis `fast` (0, 1 or 2); voxel t
// of a block is at offset off[t] (off[t | 1 << fast] = off[t] + 1). Returns
// how many outputs it wrote (whole vectors; the caller does the rest). Each
// step prefetches the cache line of every row `ahead` elements further on
// (a later line's rows), one line per row per step, as it consumes them,
// into L1 or, with `to_l2`, into L2.
template <typename U, TinybrainRule kRule, int kFast>
inline int64_t RuleLineVectorsAt(const U* p, const int64_t (&off)[8], int64_t ahead, bool to_l2, U* q,
                                 int64_t count) {
  using L = LabelLanes<8 * sizeof(U)>;
  constexpr int kW = L::kWidth;
  constexpr bool kCube = kRule == TinybrainRule::kCount2x2x2 || kRule == TinybrainRule::kSparseCount2x2x2;
  constexpr int kN = kCube ? 8 : 4;
  constexpr int bit = 1 << kFast;
  int64_t i = 0;
  for (; i + kW <= count; i += kW) {
    const U* b = p + 2 * i;
    __m256i v[8];
    for (int t = 0; t < kN; ++t) {
      if (t & bit) continue;
      const char* next = reinterpret_cast<const char*>(b + off[t] + ahead);
      if (to_l2) {
        _mm_prefetch(next, _MM_HINT_T1);
      } else {
        _mm_prefetch(next, _MM_HINT_T0);
      }
      L::Split(LoadVector(b + off[t]), LoadVector(b + off[t] + kW), v[t], v[t | bit]);
    }
    __m256i r;
    if constexpr (kCube) {
      // Segmentations are mostly uniform blocks: voxel 0's count decides
      // those without the other 21 compares.
      __m256i s0 = L::Set(-1);
      for (int j = 1; j < 8; ++j) s0 = L::Add(s0, L::Eq(v[0], v[j]));
      if (_mm256_movemask_epi8(L::Eq(s0, L::Set(-8))) == -1) {
        r = v[0];
      } else {
        r = CountVectors<L, kRule == TinybrainRule::kSparseCount2x2x2>(v, s0);
      }
    } else if constexpr (kRule == TinybrainRule::kCountless2x2) {
      r = CountlessVectors(v[0], v[1], v[2], v[3], L::Eq(v[0], v[1]), L::Eq(v[0], v[2]), L::Eq(v[1], v[2]));
    } else {
      r = StippledVectors<L>(v[0], v[1], v[2], v[3]);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), r);
  }
  return i;
}

// The unit-stride axis is a template argument so that the loop over t
// unrolls and v[] stays in registers: with a run-time `fast` GCC kept v[] on
// the stack (v[t | bit] is a run-time index), and the 2x2 u64 line ran at
// 1.2 GVx/s, slower than tinybrain's scalar loop (2.0); unrolled it is 2.7.
template <typename U, TinybrainRule kRule>
inline int64_t RuleLineVectors(const U* p, const int64_t (&off)[8], int fast, int64_t ahead, bool to_l2,
                               U* q, int64_t count) {
  switch (fast) {
    case 0: return RuleLineVectorsAt<U, kRule, 0>(p, off, ahead, to_l2, q, count);
    case 1: return RuleLineVectorsAt<U, kRule, 1>(p, off, ahead, to_l2, q, count);
    default: return RuleLineVectorsAt<U, kRule, 2>(p, off, ahead, to_l2, q, count);
  }
}

}  // namespace MIPMAKER_ISA
}  // namespace mipmaker

#endif  // MIPMAKER_HAVE_AVX2
