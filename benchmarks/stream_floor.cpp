// What one core can do against compare.py's bandwidth bound, without
// mipmaker: a kernel that reads 256 MiB once as a single sequential stream
// and writes 1/k of it into fresh memory (each output vector the max of k
// input vectors), and u8 2x2x1 means over 2048-wide rows read two ways:
// both block rows together, step by step, or one after the other (in turn).
//
//   g++ -O2 -mavx2 benchmarks/stream_floor.cpp -o /tmp/stream_floor && /tmp/stream_floor [rounds]
//
// R and W are measured as compare.py does (best read-only max over the
// input; memset of a fresh mapping, which includes the kernel's zeroing of
// its pages), interleaved with the kernels, best of `rounds` (default 15).
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Fresh anonymous memory with huge pages, as NumPy allocates large arrays.
uint8_t* Map(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::exit(1);
  madvise(p, n, MADV_HUGEPAGE);
  return static_cast<uint8_t*>(p);
}

__attribute__((noinline)) int ReadMax(const uint8_t* in, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i < n; i += 128) {
    a = _mm256_max_epu8(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i)));
    b = _mm256_max_epu8(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i + 32)));
    c = _mm256_max_epu8(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i + 64)));
    d = _mm256_max_epu8(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i + 96)));
  }
  return _mm256_extract_epi8(_mm256_max_epu8(_mm256_max_epu8(a, b), _mm256_max_epu8(c, d)), 5);
}

// The floor: one input stream, one output stream, next to no arithmetic.
__attribute__((noinline)) void Reduce(const uint8_t* in, uint8_t* out, size_t n, int k) {
  for (size_t i = 0, o = 0; i < n; i += 32 * k, o += 32) {
    __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i));
    for (int j = 1; j < k; ++j) m = _mm256_max_epu8(m, _mm256_load_si256(reinterpret_cast<const __m256i*>(in + i + 32 * j)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + o), m);
  }
}

__m256i PairSums(const uint8_t* p) {
  return _mm256_maddubs_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), _mm256_set1_epi8(1));
}

void Store(uint8_t* o, __m256i lo, __m256i hi) {
  const __m128i s = _mm_cvtsi32_si128(2);
  const __m256i packed = _mm256_packus_epi16(_mm256_srl_epi16(lo, s), _mm256_srl_epi16(hi, s));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_permute4x64_epi64(packed, 0xD8));
}

// u8 2x2x1 truncated means of rows nx wide (Fortran order, 2 rows a block).
template <bool kInTurn>
__attribute__((noinline)) void Means(const uint8_t* in, uint8_t* out, size_t n, int64_t nx) {
  alignas(32) static __m256i buf[4096];
  const int64_t m = nx / 2;
  for (size_t y = 0; y < n / (2 * nx); ++y) {
    const uint8_t* r0 = in + 2 * y * nx;
    const uint8_t* r1 = r0 + nx;
    uint8_t* o = out + y * m;
    if (kInTurn) {
      for (int64_t i = 0, k = 0; i < m; i += 32, k += 2) {
        buf[k] = PairSums(r0 + 2 * i);
        buf[k + 1] = PairSums(r0 + 2 * i + 32);
      }
      for (int64_t i = 0, k = 0; i < m; i += 32, k += 2) {
        Store(o + i, _mm256_add_epi16(buf[k], PairSums(r1 + 2 * i)), _mm256_add_epi16(buf[k + 1], PairSums(r1 + 2 * i + 32)));
      }
    } else {
      for (int64_t i = 0; i < m; i += 32) {
        Store(o + i, _mm256_add_epi16(PairSums(r0 + 2 * i), PairSums(r1 + 2 * i)),
              _mm256_add_epi16(PairSums(r0 + 2 * i + 32), PairSums(r1 + 2 * i + 32)));
      }
    }
  }
}

double Best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

}  // namespace

int main(int argc, char** argv) {
  const size_t n = size_t{256} << 20;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 15;
  uint8_t* in = Map(n);
  for (size_t i = 0; i < n; ++i) in[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  const int ks[] = {2, 4, 8, 16};
  std::vector<double> read, write[4], floor[4], together, in_turn;
  for (int r = 0; r < rounds; ++r) {
    double t = Now();
    volatile int sink = ReadMax(in, n);
    (void)sink;
    read.push_back(Now() - t);
    for (int j = 0; j < 4; ++j) {
      const size_t m = n / ks[j];
      uint8_t* o = Map(m);
      t = Now();
      std::memset(o, 1, m);
      write[j].push_back(Now() - t);
      munmap(o, m);
      o = Map(m);
      t = Now();
      Reduce(in, o, n, ks[j]);
      floor[j].push_back(Now() - t);
      munmap(o, m);
    }
    for (int v = 0; v < 2; ++v) {
      uint8_t* o = Map(n / 4);
      t = Now();
      if (v == 0) Means<false>(in, o, n, 2048); else Means<true>(in, o, n, 2048);
      (v == 0 ? together : in_turn).push_back(Now() - t);
      munmap(o, n / 4);
    }
  }
  std::printf("R = %.1f GB/s (best of %d)\n\n", n / Best(read) / 1e9, rounds);
  std::printf("| kernel | W GB/s | best ms | bound ms | %% of bound |\n|:---|---:|---:|---:|---:|\n");
  for (int j = 0; j < 4; ++j) {
    const double bound = Best(read) + Best(write[j]);
    std::printf("| single stream, %d to 1 | %.1f | %.2f | %.2f | %.0f%% |\n", ks[j], n / ks[j] / Best(write[j]) / 1e9,
                Best(floor[j]) * 1e3, bound * 1e3, 100 * bound / Best(floor[j]));
  }
  const double bound = Best(read) + Best(write[1]);
  std::printf("| u8 2x2x1 means, rows 2048 apart, together | | %.2f | %.2f | %.0f%% |\n", Best(together) * 1e3,
              bound * 1e3, 100 * bound / Best(together));
  std::printf("| u8 2x2x1 means, rows 2048 apart, in turn | | %.2f | %.2f | %.0f%% |\n", Best(in_turn) * 1e3,
              bound * 1e3, 100 * bound / Best(in_turn));
}
