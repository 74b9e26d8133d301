// SPDX-License-Identifier: BSD-3-Clause
// The namespace of the ISA being compiled. Kernel headers put everything in
// mipmaker::MIPMAKER_ISA, so the scalar and AVX2 builds of the same template
// never merge at link time (which would run AVX2 code on any CPU).
#pragma once

#ifndef MIPMAKER_ISA
#define MIPMAKER_ISA scalar
#endif
