// SPDX-License-Identifier: BSD-3-Clause
// Picks the kernel table once per process and runs work on threads.
#include "mipmaker/dispatch.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

namespace mipmaker {
namespace {

bool CpuHas(const std::string& isa) {
  if (isa == "scalar") return true;
#if defined(MIPMAKER_BUILT_AVX2) && (defined(__GNUC__) || defined(__clang__))
  if (isa == "avx2") {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2");
  }
#endif
#if defined(MIPMAKER_BUILT_AVX512) && (defined(__GNUC__) || defined(__clang__))
  if (isa == "avx512") {
    __builtin_cpu_init();
    return CpuHas("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
#endif
  return false;
}

const KernelTable* TableFor(const std::string& isa) {
  if (!CpuHas(isa)) return nullptr;
  if (isa == "scalar") return &scalar::GetKernelTable();
#ifdef MIPMAKER_BUILT_AVX2
  if (isa == "avx2") return &avx2::GetKernelTable();
#endif
#ifdef MIPMAKER_BUILT_AVX512
  if (isa == "avx512") return &avx512::GetKernelTable();
#endif
  return nullptr;
}

std::atomic<const KernelTable*>& Active() {
  static std::atomic<const KernelTable*> active{[] {
    const char* env = std::getenv("MIPMAKER_ISA");
    if (env != nullptr && *env != '\0') {
      if (const KernelTable* t = TableFor(env)) return t;
    }
    const KernelTable* best = &scalar::GetKernelTable();
    for (const std::string& isa : AvailableIsas()) {
      if (const KernelTable* t = TableFor(isa)) best = t;
    }
    return best;
  }()};
  return active;
}

}  // namespace

std::vector<std::string> AvailableIsas() {
  std::vector<std::string> out;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (TableFor(isa) != nullptr) out.emplace_back(isa);
  }
  return out;
}

const KernelTable& ActiveKernelTable() { return *Active().load(); }

bool ForceIsa(const std::string& name) {
  const KernelTable* t = TableFor(name);
  if (t == nullptr) return false;
  Active().store(t);
  return true;
}

void ParallelFor(int threads, int64_t n, int64_t min_grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t max_pieces = std::max<int64_t>(1, n / std::max<int64_t>(1, min_grain));
  const int pieces = static_cast<int>(std::min<int64_t>({threads, n, max_pieces}));
  if (pieces <= 1) {
    fn(0, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int p) {
    try {
      fn(n * p / pieces, n * (p + 1) / pieces);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(pieces - 1);
  try {
    for (int p = 1; p < pieces; ++p) pool.emplace_back(run, p);
  } catch (...) {
    // Could not start a thread: finish on the ones we have.
    for (int p = static_cast<int>(pool.size()) + 1; p < pieces; ++p) run(p);
  }
  run(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace mipmaker
