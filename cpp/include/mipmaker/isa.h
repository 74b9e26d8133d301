// SPDX-License-Identifier: BSD-3-Clause
// The namespace of the ISA being compiled. Kernel headers put everything in
// mipmaker::MIPMAKER_ISA, so the scalar, AVX2 and AVX-512 builds of the same template
// never merge at link time (which would run AVX2 code on any CPU).
#pragma once

#ifndef MIPMAKER_ISA
#define MIPMAKER_ISA scalar
#endif

namespace mipmaker {
namespace MIPMAKER_ISA {
// Bytes per vector of the kernels written with GCC/Clang vector extensions
// (small_mode.h, small_median.h): the ISA's full register width, so the
// AVX-512 build runs them on 64-byte vectors without a second copy. The
// hand-written intrinsics kernels stay 32 bytes wide in every build.
#if defined(MIPMAKER_HAVE_AVX512)
inline constexpr int kVectorBytes = 64;
#else
inline constexpr int kVectorBytes = 32;
#endif
}  // namespace MIPMAKER_ISA
}  // namespace mipmaker
