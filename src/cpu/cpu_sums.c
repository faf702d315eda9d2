/* The stride gradient's sums over one cropped row (cpu_crop.c,
 * accumulate_pair): at each bin, ds_pair_grad_products of the packed
 * spectra of x and dy at the bin and at its mirror, weighted by the two
 * images' scales, added to a double sum. The mirrored bins are read in
 * place, backwards (copying them into increasing order first, as earlier
 * versions did, made the sums a quarter slower). With AVX2, four bins go together, with the operations of
 * ds_pair_grad_products in its order (no FMA, no reassociation), so that
 * every bin's term is bitwise the one the function gives: the vector path,
 * its tails and CPUs without AVX2 all agree. */
#include "../elementwise.h"
#include "cpu.h"

/* Bin -k (1 <= k < width) of a row of `width` complex: index width - k. */
static const float *mirrored(const float *row, int width, int k) { return row + 2 * (width - k); }

/* sum[k] += s0 p[0] + s1 p[1] for bins from..to-1 (from >= 1). */
static void bin_sums(const row_pair *r, float s0, float s1, double *sum, int from, int to) {
  for (int k = from; k < to; k++) {
    float p[2];
    ds_pair_grad_products(r->z + 2 * k, mirrored(r->zm, r->bz, k), r->y + 2 * k, mirrored(r->ym, r->by, k), p);
    sum[k] += (double)(s0 * p[0] + s1 * p[1]);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define DS_AVX2_ONLY __attribute__((target("avx2")))

/* The four complex at p, in reverse order. */
DS_AVX2_ONLY static inline __m256 load_reversed(const float *p) {
  return _mm256_permutevar8x32_ps(_mm256_loadu_ps(p), _mm256_setr_epi32(6, 7, 4, 5, 2, 3, 0, 1));
}

/* bin_sums four bins at a time from bin 1; returns the first bin not done.
 * With interleaved complex, a = y z + ym zm and b = y zm + ym z float by
 * float; u and v of ds_pair_grad_products are then the sums and the
 * differences of their (re, im) pairs (hadd, hsub), which leave each
 * bin's term in floats 0-1 and 4-5 of the vector (two bins each). */
DS_AVX2_ONLY static int vector_sums(const row_pair *r, float s0, float s1, double *sum, int n) {
  __m256 quarter = _mm256_set1_ps(0.25f), v0 = _mm256_set1_ps(s0), v1 = _mm256_set1_ps(s1);
  int k = 1;
  for (; k + 4 <= n; k += 4) {
    __m256 z = _mm256_loadu_ps(r->z + 2 * k), y = _mm256_loadu_ps(r->y + 2 * k);
    __m256 zm = load_reversed(mirrored(r->zm, r->bz, k + 3)), ym = load_reversed(mirrored(r->ym, r->by, k + 3));
    __m256 a = _mm256_add_ps(_mm256_mul_ps(y, z), _mm256_mul_ps(ym, zm));
    __m256 b = _mm256_add_ps(_mm256_mul_ps(y, zm), _mm256_mul_ps(ym, z));
    __m256 u = _mm256_hadd_ps(a, a), v = _mm256_hsub_ps(b, b);
    __m256 p0 = _mm256_mul_ps(quarter, _mm256_add_ps(u, v)), p1 = _mm256_mul_ps(quarter, _mm256_sub_ps(u, v));
    __m256 t = _mm256_add_ps(_mm256_mul_ps(v0, p0), _mm256_mul_ps(v1, p1));
    __m128 terms = _mm256_castps256_ps128(_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0x08)));
    _mm256_storeu_pd(sum + k, _mm256_add_pd(_mm256_loadu_pd(sum + k), _mm256_cvtps_pd(terms)));
  }
  return k;
}

static int vector_bins(const row_pair *r, float s0, float s1, double *sum, int n) {
  return __builtin_cpu_supports("avx2") ? vector_sums(r, s0, s1, sum, n) : 1;
}
#else
static int vector_bins(const row_pair *r, float s0, float s1, double *sum, int n) {
  return (void)r, (void)s0, (void)s1, (void)sum, (void)n, 1;
}
#endif

void ds__cpu_row_sums(const row_pair *r, float s0, float s1, double *sum, int n) {
  if (n < 1) return;
  float p[2];
  ds_pair_grad_products(r->z, r->zm, r->y, r->ym, p);
  sum[0] += (double)(s0 * p[0] + s1 * p[1]);
  bin_sums(r, s0, s1, sum, vector_bins(r, s0, s1, sum, n), n);
}
