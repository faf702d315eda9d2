/* Pieces of the CPU path's AVX2 kernels (cpu_dft.c, cpu_pack.c): built
 * where GCC or Clang targets x86-64, and called only once the CPU was found
 * to have AVX2 (and FMA, for the transforms) with __builtin_cpu_supports. */
#ifndef DS_CPU_AVX2_H
#define DS_CPU_AVX2_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DS_HAVE_AVX2_CODE 1
#include <immintrin.h>

#define DS_AVX2 __attribute__((target("avx2,fma")))
/* The kernels' pieces, inlined so that their vectors stay in registers. */
#define DS_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* The 8 x 8 transpose of the floats of v[0..7]. */
DS_AVX2_INLINE void transpose8(__m256 *v) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    v[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

#else
#define DS_HAVE_AVX2_CODE 0
#endif

#endif /* DS_CPU_AVX2_H */
