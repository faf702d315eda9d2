/* The library's own row and column transforms of 24 and 32 points, for
 * CPUs with AVX2 and FMA. FFTW has no SIMD code for length 24: it
 * transforms contiguous 24-point rows through a buffer with SSE2 twiddle
 * passes (0.52 us for the 24 rows of a 24 x 24 grid, the output grid of a
 * 32 x 32 image at stride 2, against 0.27 here), and its 24-point columns
 * take 0.35 us as a Good-Thomas 3 x 8 transform (0.18 here). At 32 points
 * its AVX (not FMA) codelets take 0.41 us for the columns of a 32 x 32 grid
 * (0.29 here); its 32-point rows are as fast as ours (0.43 against 0.48),
 * so they stay FFTW's.
 * Eight transforms go together, one per lane of 8-float vectors that hold
 * real and imaginary parts apart: for columns, the real and imaginary parts
 * of 8 consecutive elements of a row are split into two vectors (io); for rows,
 * 8 x 8 transposes put element e of 8 rows into the lanes. Each lane then
 * computes one DFT with plain vector arithmetic: 24 = 3 x 8 in the
 * Good-Thomas form, without twiddle factors (input n = (8 n1 + 3 n2) mod
 * 24, output k = (16 k1 + 9 k2) mod 24); 32 = 4 x 8 by Cooley-Tukey. */
#include "cpu.h"

#include "cpu_avx2.h"

#if DS_HAVE_AVX2_CODE
#include <string.h>

/* 8 lanes of complex numbers, real and imaginary parts apart. */
typedef struct cvec {
  __m256 re, im;
} cvec;

DS_AVX2_INLINE cvec cadd(cvec a, cvec b) {
  return (cvec){_mm256_add_ps(a.re, b.re), _mm256_add_ps(a.im, b.im)};
}
DS_AVX2_INLINE cvec csub(cvec a, cvec b) {
  return (cvec){_mm256_sub_ps(a.re, b.re), _mm256_sub_ps(a.im, b.im)};
}
/* a (c + i s) */
DS_AVX2_INLINE cvec cmul(cvec a, float c, float s) {
  __m256 vc = _mm256_set1_ps(c), vs = _mm256_set1_ps(s);
  return (cvec){_mm256_fmsub_ps(a.re, vc, _mm256_mul_ps(a.im, vs)), _mm256_fmadd_ps(a.re, vs, _mm256_mul_ps(a.im, vc))};
}
/* a * sign i */
DS_AVX2_INLINE cvec cmuli(cvec a, int sign) {
  __m256 z = _mm256_setzero_ps();
  return sign < 0 ? (cvec){a.im, _mm256_sub_ps(z, a.re)} : (cvec){_mm256_sub_ps(z, a.im), a.re};
}

/* The 3-point DFT of a[0..2] in place, exponent sign `sign`. */
DS_AVX2_INLINE void dft3(cvec *a, int sign) {
  cvec sum = cadd(a[1], a[2]), diff = csub(a[1], a[2]);
  __m256 half = _mm256_set1_ps(0.5f), root = _mm256_set1_ps(0.86602540378443864676f);
  cvec mid = {_mm256_fnmadd_ps(half, sum.re, a[0].re), _mm256_fnmadd_ps(half, sum.im, a[0].im)};
  cvec rot = cmuli((cvec){_mm256_mul_ps(root, diff.re), _mm256_mul_ps(root, diff.im)}, sign);
  a[0] = cadd(a[0], sum), a[1] = cadd(mid, rot), a[2] = csub(mid, rot);
}

/* The 4-point DFT of a, c, b, d (the even and odd halves' inputs) into
 * out[0], out[2], out[4], out[6] (every second output of the 8-point DFT). */
DS_AVX2_INLINE void dft4(cvec a, cvec b, cvec c, cvec d, int sign, cvec *out) {
  cvec e0 = cadd(a, c), e1 = csub(a, c), o0 = cadd(b, d), o1 = cmuli(csub(b, d), sign);
  out[0] = cadd(e0, o0), out[4] = csub(e0, o0), out[2] = cadd(e1, o1), out[6] = csub(e1, o1);
}

/* The 8-point DFT of x[0..7] into out[0..7], exponent sign `sign`
 * (radix 2 by decimation in frequency, then two 4-point DFTs). */
DS_AVX2_INLINE void dft8(const cvec *x, int sign, cvec *out) {
  const float h = 0.70710678118654752440f;
  cvec s[4], d[4];
  for (int n = 0; n < 4; n++) s[n] = cadd(x[n], x[n + 4]), d[n] = csub(x[n], x[n + 4]);
  d[1] = cmul(d[1], h, (float)sign * h), d[2] = cmuli(d[2], sign), d[3] = cmul(d[3], -h, (float)sign * h);
  dft4(s[0], s[1], s[2], s[3], sign, out);
  dft4(d[0], d[1], d[2], d[3], sign, out + 1);
}

/* Where a kernel reads element i of its 8 transforms and writes output k:
 * x[i] (rows, after their transposes), or row i of a grid of columns g,
 * rows ld complex apart, split into real and imaginary parts on the way in
 * (lane order 0 1 4 5 2 3 6 7) and joined again on the way out, so that
 * the columns are read and written once, without an array between. */
typedef struct io {
  cvec *x;
  float *g;
  size_t ld;
} io;

DS_AVX2_INLINE cvec io_get(io t, int i) {
  if (t.x) return t.x[i];
  __m256 lo = _mm256_loadu_ps(t.g + 2 * t.ld * (size_t)i), hi = _mm256_loadu_ps(t.g + 2 * t.ld * (size_t)i + 8);
  return (cvec){_mm256_shuffle_ps(lo, hi, 0x88), _mm256_shuffle_ps(lo, hi, 0xDD)};
}

DS_AVX2_INLINE void io_put(io t, int i, cvec v) {
  if (t.x) {
    t.x[i] = v;
    return;
  }
  _mm256_storeu_ps(t.g + 2 * t.ld * (size_t)i, _mm256_unpacklo_ps(v.re, v.im));
  _mm256_storeu_ps(t.g + 2 * t.ld * (size_t)i + 8, _mm256_unpackhi_ps(v.re, v.im));
}

/* The 24-point DFT of x[0..23] in place (Good-Thomas 3 x 8). */
DS_AVX2_INLINE void pfa24(io x, int sign) {
  cvec y[3][8];
  for (int n2 = 0; n2 < 8; n2++) {
    cvec a[3] = {io_get(x, 3 * n2 % 24), io_get(x, (8 + 3 * n2) % 24), io_get(x, (16 + 3 * n2) % 24)};
    dft3(a, sign);
    y[0][n2] = a[0], y[1][n2] = a[1], y[2][n2] = a[2];
  }
  for (int k1 = 0; k1 < 3; k1++) {
    cvec out[8];
    dft8(y[k1], sign, out);
    for (int k2 = 0; k2 < 8; k2++) io_put(x, (16 * k1 + 9 * k2) % 24, out[k2]);
  }
}

/* The 32-point DFT of x[0..31] in place: 8 4-point DFTs over n1 of
 * x[8 n1 + n2], twiddles W32^(n2 k1), 4 8-point DFTs over n2 giving
 * X[k1 + 4 k2]. */
DS_AVX2_INLINE void ct32(io x, int sign) {
  static const float tw[22][2] = { /* cos, sin of 2 pi j / 32 */
      {1.000000000f, 0.000000000f},   {0.980785280f, 0.195090322f},   {0.923879533f, 0.382683432f},
      {0.831469612f, 0.555570233f},   {0.707106781f, 0.707106781f},   {0.555570233f, 0.831469612f},
      {0.382683432f, 0.923879533f},   {0.195090322f, 0.980785280f},   {0.000000000f, 1.000000000f},
      {-0.195090322f, 0.980785280f},  {-0.382683432f, 0.923879533f},  {-0.555570233f, 0.831469612f},
      {-0.707106781f, 0.707106781f},  {-0.831469612f, 0.555570233f},  {-0.923879533f, 0.382683432f},
      {-0.980785280f, 0.195090322f},  {-1.000000000f, 0.000000000f},  {-0.980785280f, -0.195090322f},
      {-0.923879533f, -0.382683432f}, {-0.831469612f, -0.555570233f}, {-0.707106781f, -0.707106781f},
      {-0.555570233f, -0.831469612f}};
  cvec y[4][8];
  for (int n2 = 0; n2 < 8; n2++) {
    cvec o[8]; /* the 4-point DFT at o[0], o[2], o[4], o[6] */
    dft4(io_get(x, n2), io_get(x, 8 + n2), io_get(x, 16 + n2), io_get(x, 24 + n2), sign, o);
    y[0][n2] = o[0];
    for (int k1 = 1; k1 < 4; k1++) y[k1][n2] = cmul(o[2 * k1], tw[n2 * k1][0], (float)sign * tw[n2 * k1][1]);
  }
  for (int k1 = 0; k1 < 4; k1++) {
    cvec out[8];
    dft8(y[k1], sign, out);
    for (int k2 = 0; k2 < 8; k2++) io_put(x, k1 + 4 * k2, out[k2]);
  }
}

/* The n-point DFT (24 or 32) of x in place. */
DS_AVX2_INLINE void dft(io x, int n, int sign) {
  if (n == 24)
    pfa24(x, sign);
  else
    ct32(x, sign);
}

/* Rows 0..7 of g (n interleaved complex each, consecutive) in place. */
DS_AVX2_INLINE void rows8(float *g, int n, int sign) {
  cvec x[32];
  for (int b = 0; b < n / 4; b++) { /* complex elements 4b..4b+3 of each row */
    __m256 v[8];
    for (int r = 0; r < 8; r++) v[r] = _mm256_loadu_ps(g + 2 * n * r + 8 * b);
    transpose8(v);
    for (int e = 0; e < 4; e++) x[4 * b + e] = (cvec){v[2 * e], v[2 * e + 1]};
  }
  dft((io){x, NULL, 0}, n, sign);
  for (int b = 0; b < n / 4; b++) {
    __m256 v[8];
    for (int e = 0; e < 4; e++) v[2 * e] = x[4 * b + e].re, v[2 * e + 1] = x[4 * b + e].im;
    transpose8(v);
    for (int r = 0; r < 8; r++) _mm256_storeu_ps(g + 2 * n * r + 8 * b, v[r]);
  }
}

/* Columns 0..7 of an n-row grid g (rows ld complex apart) in place. */
DS_AVX2_INLINE void cols8(float *g, size_t ld, int n, int sign) { dft((io){NULL, g, ld}, n, sign); }

/* The n-point transforms of `rows` consecutive rows. */
DS_AVX2_INLINE void rows_of(float *grid, int rows, int n, int sign) {
  int whole = rows - rows % 8;
  for (int r = 0; r < whole; r += 8) rows8(grid + 2 * (size_t)n * (size_t)r, n, sign);
  if (whole == rows) return;
  float last[8 * 64] = {0}; /* the remaining rows, padded to eight */
  size_t bytes = sizeof(float) * 2 * (size_t)n * (size_t)(rows - whole);
  memcpy(last, grid + 2 * (size_t)n * (size_t)whole, bytes);
  rows8(last, n, sign);
  memcpy(grid + 2 * (size_t)n * (size_t)whole, last, bytes);
}

/* The n-point transforms of all `width` columns of an n x width grid. */
DS_AVX2_INLINE void cols_of(float *grid, int width, int n, int sign) {
  int whole = width - width % 8;
  for (int c = 0; c < whole; c += 8) cols8(grid + 2 * (size_t)c, (size_t)width, n, sign);
  if (whole == width) return;
  float last[32 * 16] = {0}; /* the remaining columns, padded to eight */
  size_t bytes = sizeof(float) * 2 * (size_t)(width - whole), at = (size_t)whole;
  for (int i = 0; i < n; i++) memcpy(last + 16 * i, grid + 2 * ((size_t)i * (size_t)width + at), bytes);
  cols8(last, 8, n, sign);
  for (int i = 0; i < n; i++) memcpy(grid + 2 * ((size_t)i * (size_t)width + at), last + 16 * i, bytes);
}

DS_AVX2 static void rows24(float *grid, int rows, int sign) { rows_of(grid, rows, 24, sign); }
DS_AVX2 static void cols24(float *grid, int width, int sign) { cols_of(grid, width, 24, sign); }
DS_AVX2 static void cols32(float *grid, int width, int sign) { cols_of(grid, width, 32, sign); }

static int have_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

ds_grid_fn ds__cpu_own_rows(int length) { return length == 24 && have_avx2() ? rows24 : NULL; }

ds_grid_fn ds__cpu_own_cols(int length) {
  if (!have_avx2()) return NULL;
  return length == 24 ? cols24 : length == 32 ? cols32 : NULL;
}
#else
ds_grid_fn ds__cpu_own_rows(int length) { return (void)length, NULL; }

ds_grid_fn ds__cpu_own_cols(int length) { return (void)length, NULL; }
#endif
