/* The per-element functions of src/elementwise.h, which the CPU backend and
 * the CUDA kernels run, against values written out from docs/algorithm.md
 * and direct index formulas. */
#include <complex.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "elementwise.h"
#include "util.h"

/* --------------------------------------------------------- ds_position_h */

/* The spec's examples (H = 8, 7) and the smallest sizes, by hand. */
START_TEST(test_position_h_tables) {
  static const int h2[] = {0, 0}, h3[] = {1, 1, 0}, h4[] = {0, 1, 1, 0}, h5[] = {1, 2, 2, 1, 0};
  static const int h7[] = {1, 2, 3, 3, 2, 1, 0}, h8[] = {0, 1, 2, 3, 3, 2, 1, 0};
  static const struct {
    int h;
    const int *p;
  } t[] = {{2, h2}, {3, h3}, {4, h4}, {5, h5}, {7, h7}, {8, h8}};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    for (int r = 0; r < t[k].h; r++)
      ck_assert_msg(ds_position_h(r, t[k].h) == t[k].p[r], "H=%d row %d: %d, want %d", t[k].h, r,
                    ds_position_h(r, t[k].h), t[k].p[r]);
}
END_TEST

/* The reference layer's own construction, for every H in 2..65: positions
 * d = range(H/2 + H%2), the array reverse(d[H%2:]) ++ d, then fftshift
 * (a roll by H/2: out[i] = a[(i - H/2) mod H]). */
START_TEST(test_position_h_construction) {
  int h = 2 + _i, half = h / 2 + h % 2, a[80], len = 0;
  for (int k = half - 1; k >= h % 2; k--) a[len++] = k;
  for (int k = 0; k < half; k++) a[len++] = k;
  ck_assert_int_eq(len, h);
  for (int r = 0; r < h; r++) {
    int want = a[((r - h / 2) % h + h) % h];
    ck_assert_msg(ds_position_h(r, h) == want, "H=%d row %d: %d, want %d", h, r, ds_position_h(r, h), want);
  }
}
END_TEST

/* ------------------------------------------------------ ds_ramp_arg/ramp */

/* The ramp's argument c ((R + T) - p), c = f(1/R), and its clip to [0, 1]:
 * values exact in binary (inside the ramp, exactly at its ends, clipped on
 * both sides, R < 1, T_w = t_w/2 + 1), and two where the reference's float32
 * order of operations gives another float than a natural rewrite:
 * (R + T - p) / R (R = 3) and c (R + (T - p)) (T = 16 - 2^-20, where
 * R + T rounds to 20 first). */
START_TEST(test_ramp) {
  static const struct {
    float t;
    int p;
    float r, arg, ramp;
  } v[] = {
      {8.0f, 9, 4.0f, 0.75f, 0.75f},   {8.0f, 11, 4.0f, 0.25f, 0.25f},  /* inside */
      {8.0f, 12, 4.0f, 0.0f, 0.0f},    {8.0f, 8, 4.0f, 1.0f, 1.0f},     /* the ends, exactly */
      {8.0f, 13, 4.0f, -0.25f, 0.0f},  {8.0f, 40, 4.0f, -7.0f, 0.0f},   /* clipped below */
      {8.0f, 5, 4.0f, 1.75f, 1.0f},    {8.0f, 0, 4.0f, 3.0f, 1.0f},     /* clipped above */
      {2.25f, 2, 0.5f, 1.5f, 1.0f},    {2.75f, 3, 0.5f, 0.5f, 0.5f},    /* R < 1 */
      {2.25f, 3, 0.5f, -0.5f, 0.0f},   {9.5f, 10, 4.0f, 0.875f, 0.875f}, /* T_w = t_w/2 + 1 */
      {0.5f, 1, 3.0f, 0x1.aaaaacp-1f, 0x1.aaaaacp-1f},                    /* (R+T-p)/R: 0x1.aaaaaap-1 */
      {0x1.fffffep+3f, 16, 4.0f, 1.0f, 1.0f},                             /* c (R+(T-p)): 0x1.fffff8p-1 */
  };
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
    float r = v[k].r, c = (float)(1.0 / r);
    ck_assert_msg(ds_ramp_arg(v[k].t, v[k].p, r, c) == v[k].arg, "case %zu: arg %a, want %a", k,
                  (double)ds_ramp_arg(v[k].t, v[k].p, r, c), (double)v[k].arg);
    ck_assert_msg(ds_ramp(v[k].t, v[k].p, r, c) == v[k].ramp, "case %zu: ramp %a, want %a", k,
                  (double)ds_ramp(v[k].t, v[k].p, r, c), (double)v[k].ramp);
  }
}
END_TEST

/* Over a sweep of thresholds and positions the ramp is 1 up to T, falls
 * linearly (slope -1/R) to 0 at T + R, and stays 0. */
START_TEST(test_ramp_shape) {
  const float r = 3.0f, c = (float)(1.0 / 3.0);
  for (int j = 0; j <= 40; j++)
    for (int p = 0; p <= 30; p++) {
      float t = 2.0f + 0.25f * (float)j;
      double m = ds_ramp(t, p, r, c), d = p - (double)t;
      double want = d <= 0.0 ? 1.0 : (d >= r ? 0.0 : 1.0 - d / r);
      ck_assert_msg(fabs(m - want) < 1e-6, "T=%g p=%d: %.9g, want %.9g", (double)t, p, m, want);
    }
}
END_TEST

/* The float32 operations round once each and are not fused: a*b + c
 * through them is (a*b rounded) + c, which differs from fma(a, b, c) for
 * a = b = 1 + 2^-12, c = -(1 + 2^-11) (a*b = 1 + 2^-11 + 2^-24 rounds to
 * 1 + 2^-11: the sum is 0; fused it is 2^-24). Volatile operands keep the
 * compiler from folding the expression at compile time. */
START_TEST(test_f32_not_fused) {
  volatile float a = 1.0f + 0x1p-12f, c = -(1.0f + 0x1p-11f);
  ck_assert_msg(ds_f32_add(ds_f32_mul(a, a), c) == 0.0f, "fused: %a", (double)ds_f32_add(ds_f32_mul(a, a), c));
  ck_assert(fmaf(a, a, c) == 0x1p-24f);
  volatile float n = 14.0f, s = 1.4f;
  ck_assert_msg(ds_f32_div(n, s) == 10.0f, "14 / 1.4f = %a, want exactly 10 in float32", (double)ds_f32_div(n, s));
  ck_assert(FLT_EVAL_METHOD == 0);
}
END_TEST

/* --------------------------------------------------------- ds_source_row */

/* 32 rows cropped to 24 with 12 low rows: cropped rows 0..11 are spectrum
 * rows 0..11, cropped rows 12..23 are spectrum rows 20..31. */
START_TEST(test_source_row) {
  for (int i = 0; i < 24; i++) {
    int want = i < 12 ? i : 20 + (i - 12);
    ck_assert_int_eq(ds_source_row(i, 32, 24, 12), want);
  }
  ck_assert_int_eq(ds_source_row(11, 32, 24, 12), 11);
  ck_assert_int_eq(ds_source_row(12, 32, 24, 12), 20);
  ck_assert_int_eq(ds_source_row(23, 32, 24, 12), 31);
  /* Odd: 17 rows, 9 kept, 5 low: rows 0..4 then 13..16. */
  static const int odd[] = {0, 1, 2, 3, 4, 13, 14, 15, 16};
  for (int i = 0; i < 9; i++) ck_assert_int_eq(ds_source_row(i, 17, 9, 5), odd[i]);
  /* No crop (rows_lo == out_h == h): the identity. */
  for (int h = 2; h <= 9; h++)
    for (int i = 0; i < h; i++) ck_assert_int_eq(ds_source_row(i, h, h, h), i);
  /* No low rows except DC, only high ones: 8 rows, 3 kept, 1 low: 0, 6, 7. */
  ck_assert_int_eq(ds_source_row(0, 8, 3, 1), 0);
  ck_assert_int_eq(ds_source_row(1, 8, 3, 1), 6);
  ck_assert_int_eq(ds_source_row(2, 8, 3, 1), 7);
}
END_TEST

/* --------------------------------------------------------- ds_bin_weight */

/* c_k for a length-n real inverse: 1 for k = 0 and, n even, for k = n/2;
 * 2 for every other bin 0 < k <= n/2. Written out for n = 2, 7, 8, then
 * every n up to 40. */
START_TEST(test_bin_weight) {
  ck_assert_float_eq(ds_bin_weight(0, 2), 1.0f);
  ck_assert_float_eq(ds_bin_weight(1, 2), 1.0f);
  static const float w7[] = {1, 2, 2, 2}, w8[] = {1, 2, 2, 2, 1};
  for (int k = 0; k < 4; k++) ck_assert_float_eq(ds_bin_weight(k, 7), w7[k]);
  for (int k = 0; k < 5; k++) ck_assert_float_eq(ds_bin_weight(k, 8), w8[k]);
  for (int n = 2; n <= 40; n++) {
    float sum = 0.0f;
    for (int k = 0; k <= n / 2; k++) {
      float want = k == 0 ? 1.0f : (n % 2 == 0 && k == n / 2 ? 1.0f : 2.0f);
      ck_assert_msg(ds_bin_weight(k, n) == want, "n=%d k=%d: %g, want %g", n, k, ds_bin_weight(k, n), want);
      sum += ds_bin_weight(k, n);
    }
    /* Each of the n bins of the full spectrum is counted once. */
    ck_assert_float_eq(sum, (float)n);
  }
}
END_TEST

/* -------------------------------------------------------- ds_cropped_row */

/* The inverse of ds_source_row, -1 for the rows the crop drops: 32 rows to
 * 24 with 12 low ones keeps 0..11 (cropped rows 0..11) and 20..31 (cropped
 * 12..23); 17 to 9 with 5 low keeps 0..4 and 13..16; no crop is the
 * identity. Then, for every crop of 2..20 rows, each cropped row round-trips
 * through ds_source_row and exactly out_h rows are kept. */
START_TEST(test_cropped_row) {
  for (int r = 0; r < 32; r++) {
    int want = r < 12 ? r : (r < 20 ? -1 : r - 8);
    ck_assert_msg(ds_cropped_row(r, 32, 24, 12) == want, "32/24/12 row %d: %d, want %d", r,
                  ds_cropped_row(r, 32, 24, 12), want);
  }
  static const int odd[17] = {0, 1, 2, 3, 4, -1, -1, -1, -1, -1, -1, -1, -1, 5, 6, 7, 8};
  for (int r = 0; r < 17; r++) ck_assert_int_eq(ds_cropped_row(r, 17, 9, 5), odd[r]);
  for (int r = 0; r < 9; r++) ck_assert_int_eq(ds_cropped_row(r, 9, 9, 9), r);
  for (int h = 2; h <= 20; h++)
    for (int oh = 1; oh <= h; oh++)
      for (int lo = 0; lo <= oh; lo++) {
        int kept = 0;
        for (int r = 0; r < h; r++) kept += ds_cropped_row(r, h, oh, lo) >= 0;
        ck_assert_msg(kept == oh, "h=%d out_h=%d lo=%d: %d rows kept", h, oh, lo, kept);
        for (int i = 0; i < oh; i++)
          ck_assert_msg(ds_cropped_row(ds_source_row(i, h, oh, lo), h, oh, lo) == i, "h=%d out_h=%d lo=%d row %d",
                        h, oh, lo, i);
      }
}
END_TEST

/* ------------------------------------------------------------- ds_mirror */

/* Bin of frequency -i on n bins: 0 stays 0, i goes to n - i. Written out for
 * n = 8 and 7, then (n - i) mod n and the involution for every n <= 40. */
START_TEST(test_mirror) {
  static const int m8[] = {0, 7, 6, 5, 4, 3, 2, 1}, m7[] = {0, 6, 5, 4, 3, 2, 1};
  for (int i = 0; i < 8; i++) ck_assert_int_eq(ds_mirror(i, 8), m8[i]);
  for (int i = 0; i < 7; i++) ck_assert_int_eq(ds_mirror(i, 7), m7[i]);
  ck_assert_int_eq(ds_mirror(0, 1), 0);
  ck_assert_int_eq(ds_mirror(1, 2), 1); /* the Nyquist bin is its own mirror */
  for (int n = 1; n <= 40; n++)
    for (int i = 0; i < n; i++) {
      ck_assert_int_eq(ds_mirror(i, n), (n - i) % n);
      ck_assert_int_eq(ds_mirror(ds_mirror(i, n), n), i);
    }
}
END_TEST

/* ---------------------------------------------------- ds_complex_combine */

/* dst = sa a + sb b: 2 (1 + 2i) + 0.5 (3 - 4i) = 3.5 + 2i; a zero scale
 * leaves its operand unread (a NaN there does not reach dst); dst may be a
 * or b; random values against the formula in double. */
START_TEST(test_complex_combine) {
  const float a[2] = {1, 2}, b[2] = {3, -4}, nan2[2] = {NAN, NAN};
  float d[2] = {99, 99};
  ds_complex_combine(d, a, 2.0f, b, 0.5f);
  ck_assert(d[0] == 3.5f && d[1] == 2.0f);
  ds_complex_combine(d, nan2, 0.0f, b, 0.5f);
  ck_assert(d[0] == 1.5f && d[1] == -2.0f);
  ds_complex_combine(d, a, -1.0f, nan2, 0.0f);
  ck_assert(d[0] == -1.0f && d[1] == -2.0f);
  ds_complex_combine(d, nan2, 0.0f, nan2, 0.0f);
  ck_assert(d[0] == 0.0f && d[1] == 0.0f);
  float x[2] = {1, 2}, y[2] = {3, -4};
  ds_complex_combine(x, x, 2.0f, y, 0.5f); /* into a */
  ck_assert(x[0] == 3.5f && x[1] == 2.0f);
  float u[2] = {1, 2}, v[2] = {3, -4};
  ds_complex_combine(v, u, 2.0f, v, 0.5f); /* into b */
  ck_assert(v[0] == 3.5f && v[1] == 2.0f);
  float r[6 * 50];
  fill_random(r, 6 * 50, 31);
  for (int i = 0; i < 50; i++) {
    const float *p = r + 6 * i, *q = p + 2;
    float sa = 2.0f * p[4], sb = 3.0f * p[5], out[2];
    ds_complex_combine(out, p, sa, q, sb);
    for (int c = 0; c < 2; c++) {
      double want = (double)sa * p[c] + (double)sb * q[c];
      ck_assert_msg(fabs(out[c] - want) < 1e-6, "case %d part %d: %.9g, want %.9g", i, c, out[c], want);
    }
  }
}
END_TEST

/* Naive DFT in double of n complex values (sign -1 forward, +1 inverse,
 * unnormalised), interleaved (re, im). */
static void dft(const double *in, double *out, int n, int sign) {
  const double pi = 3.14159265358979323846;
  for (int k = 0; k < n; k++) {
    double complex s = 0.0;
    for (int i = 0; i < n; i++) s += (in[2 * i] + in[2 * i + 1] * I) * cexp(sign * 2.0 * pi * (double)(k * i % n) / n * I);
    out[2 * k] = creal(s), out[2 * k + 1] = cimag(s);
  }
}

/* The spec's step 9 with these functions: the Hermitian part of a column,
 * h[i] = combine(z[i], 1/2, conj(z[mirror(i)]), 1/2), has a real inverse
 * DFT equal to the real part of the column's inverse DFT (what numpy's
 * irfft2 reads from columns 0 and n/2). n = 1..16. */
START_TEST(test_hermitian_part) {
  const int n = 1 + _i;
  float z[2 * 16];
  double orig[2 * 16] = {0}, herm[2 * 16] = {0}, io[2 * 16], ih[2 * 16];
  fill_random(z, 2 * (size_t)n, 50u + (unsigned)_i);
  for (int i = 0; i < n; i++) {
    const float *zm = z + 2 * ds_mirror(i, n);
    float conj_m[2] = {zm[0], -zm[1]}, h[2];
    ds_complex_combine(h, z + 2 * i, 0.5f, conj_m, 0.5f);
    orig[2 * i] = z[2 * i], orig[2 * i + 1] = z[2 * i + 1], herm[2 * i] = h[0], herm[2 * i + 1] = h[1];
  }
  dft(orig, io, n, 1), dft(herm, ih, n, 1);
  double scale = 0.0;
  for (int i = 0; i < 2 * n; i++) scale = fmax(scale, fabs(io[i]));
  for (int i = 0; i < n; i++) {
    ck_assert_msg(fabs(ih[2 * i + 1]) < 1e-6 * scale, "n=%d: inverse not real at %d (%g)", n, i, ih[2 * i + 1]);
    ck_assert_msg(fabs(ih[2 * i] - io[2 * i]) < 1e-6 * scale, "n=%d: %g != Re %g at %d", n, ih[2 * i], io[2 * i], i);
  }
}
END_TEST

/* --------------------------------------------------- ds_pair_grad_products */

/* Two pairs of real sequences packed as a + i b (x) and c + i d (dy): the
 * products at every bin equal Re(conj(C) A) and Re(conj(D) B) of the
 * sequences' own DFTs. n = 1..16. */
START_TEST(test_pair_grad_products) {
  const int n = 1 + _i;
  float s[4][16], z[2 * 16], y[2 * 16];
  double one[4][2 * 16], spec[4][2 * 16], pz[2 * 16], py[2 * 16], fz[2 * 16], fy[2 * 16];
  for (int q = 0; q < 4; q++) {
    fill_random(s[q], (size_t)n, 70u + 20u * (unsigned)q + (unsigned)_i);
    for (int i = 0; i < n; i++) one[q][2 * i] = s[q][i], one[q][2 * i + 1] = 0.0;
    dft(one[q], spec[q], n, -1);
  }
  for (int i = 0; i < n; i++) pz[2 * i] = s[0][i], pz[2 * i + 1] = s[1][i], py[2 * i] = s[2][i], py[2 * i + 1] = s[3][i];
  dft(pz, fz, n, -1), dft(py, fy, n, -1);
  for (int i = 0; i < 2 * n; i++) z[i] = (float)fz[i], y[i] = (float)fy[i];
  for (int k = 0; k < n; k++) {
    int km = ds_mirror(k, n);
    float p[2];
    ds_pair_grad_products(z + 2 * k, z + 2 * km, y + 2 * k, y + 2 * km, p);
    for (int img = 0; img < 2; img++) {
      const double *a = spec[img] + 2 * k, *c = spec[img + 2] + 2 * k;
      double want = c[0] * a[0] + c[1] * a[1];
      ck_assert_msg(fabs(p[img] - want) < 1e-5 * n * n, "n=%d k=%d image %d: %g, want %g", n, k, img, (double)p[img], want);
    }
  }
}
END_TEST

/* ---------------------------------------------------------- ds_pair_shifts */

static int shift_of(float m0, float m1, int lane) {
  int s[2];
  ds_pair_shifts(m0, m1, s);
  return s[lane];
}

/* The second image is brought to the first's binary exponent, exactly; the
 * first keeps its scale inside [2^-32, 2^32] and is brought to exponent 0
 * outside it; an image alone follows the first's rule. */
START_TEST(test_pair_shifts) {
  ck_assert_int_eq(shift_of(3.0f, 0.1f, 1), 5); /* 3 = 0.75 * 2^2, 0.1 = 0.8 * 2^-3 */
  ck_assert_int_eq(shift_of(0.1f, 3.0f, 1), -5);
  ck_assert_int_eq(shift_of(1.0f, 1.5f, 1), 0); /* same exponent: no scaling at all */
  ck_assert_int_eq(shift_of(3.0f, 0.1f, 0), 0); /* a moderate first image keeps its scale */
  ck_assert_int_eq(shift_of(0x1.fffffep31f, 1.0f, 0), 0); /* below 2^32: exponent 32 */
  ck_assert_int_eq(shift_of(0x1p33f, 1.0f, 0), -34); /* 2^33 = 0.5 * 2^34 */
  ck_assert_int_eq(shift_of(0x1p33f, 1.0f, 1), -1);  /* to the first's new exponent 0 */
  ck_assert_int_eq(shift_of(0x1p-40f, 0.0f, 0), 39);
  ck_assert_int_eq(shift_of(0.0f, 7.0f, 1), 0); /* alone and moderate */
  ck_assert_int_eq(shift_of(0.0f, 1e38f, 1), -125); /* clamped: 2^125 is a normal float */
  ck_assert_int_eq(shift_of(1e38f, 0.0f, 0), -125);
  ck_assert_int_eq(shift_of(7.0f, 0.0f, 1), 0);
  ck_assert_int_eq(shift_of(INFINITY, 1.0f, 1), 0);
  ck_assert_int_eq(shift_of(1.0f, NAN, 0), 0);
  ck_assert_int_eq(shift_of(3.4028235e38f, 0.0f, 0), -125);
  ck_assert_int_eq(shift_of(1.0f, 1e-44f, 1), 126);
  for (int e = -60; e <= 60; e += 7) {
    float m1 = ldexpf(0.7f, e), m0 = 5.0f;
    float scaled = ldexpf(m1, shift_of(m0, m1, 1));
    ck_assert_msg(scaled >= 2.0f && scaled < 8.0f, "2^%d: scaled max %g not in 5's octave", e, (double)scaled);
    float alone = ldexpf(m1, shift_of(m1, 0.0f, 0));
    ck_assert_msg(alone > 0x1p-33f && alone < 0x1p33f, "2^%d alone: scaled max %g", e, (double)alone);
  }
}
END_TEST

/* --------------------------------------- ds_image_offset / ds_pixel_step */

/* Every element of a 2 x 3 x 4 x 5 tensor: offset(image n*C + c) + p * step
 * equals the NCHW index ((n*C + c)*H + h)*W + w and the NHWC index
 * ((n*H + h)*W + w)*C + c, and (checked by counting) every index of the
 * tensor is reached exactly once. Also C = 1, where both layouts agree. */
START_TEST(test_image_offset) {
  const int cs[] = {3, 1};
  for (int ci = 0; ci < 2; ci++) {
    const int N_ = 2, C_ = cs[ci], H_ = 4, W_ = 5;
    const long long hw = H_ * W_;
    for (int nhwc = 0; nhwc < 2; nhwc++) {
      int seen[2 * 3 * 4 * 5] = {0};
      ck_assert_int_eq(ds_pixel_step(C_, nhwc), (nhwc ? C_ : 1));
      for (int n = 0; n < N_; n++)
        for (int c = 0; c < C_; c++)
          for (int h = 0; h < H_; h++)
            for (int w = 0; w < W_; w++) {
              long long img = (long long)n * C_ + c, p = (long long)h * W_ + w;
              long long got = ds_image_offset(img, C_, hw, nhwc) + p * ds_pixel_step(C_, nhwc);
              long long want = nhwc ? (((long long)n * H_ + h) * W_ + w) * C_ + c
                                    : (((long long)n * C_ + c) * H_ + h) * W_ + w;
              ck_assert_msg(got == want, "C=%d nhwc=%d (%d,%d,%d,%d): %lld, want %lld", C_, nhwc, n, c, h, w,
                            got, want);
              seen[got]++;
            }
      for (int i = 0; i < N_ * C_ * H_ * W_; i++) ck_assert_int_eq(seen[i], 1);
    }
  }
}
END_TEST

/* Offsets past 2^31 (large batches): computed in 64 bits. */
START_TEST(test_image_offset_large) {
  const int c = 7;
  const long long hw = 1LL << 20, img = (1LL << 14) * c + 5; /* n = 2^14, channel 5 */
  ck_assert(ds_image_offset(img, c, hw, 0) == img * hw);
  ck_assert(ds_image_offset(img, c, hw, 0) > 0x7fffffffLL);
  ck_assert(ds_image_offset(img, c, hw, 1) == (1LL << 14) * hw * c + 5);
  /* The last pixel of the last image (n = 2^14, channel 6) of an NHWC tensor
   * of 2^14 + 1 images is the tensor's last element. */
  long long last = ds_image_offset(img + 1, c, hw, 1) + (hw - 1) * ds_pixel_step(c, 1);
  ck_assert(last == ((1LL << 14) + 1) * hw * c - 1);
}
END_TEST

/* ----------------------------------------------------- ds_complex_scale */

START_TEST(test_complex_scale) {
  float src[2] = {1.5f, -2.25f}, dst[2] = {99.0f, 99.0f};
  ds_complex_scale(dst, src, 2.0f);
  ck_assert(dst[0] == 3.0f && dst[1] == -4.5f);
  ck_assert(src[0] == 1.5f && src[1] == -2.25f); /* the source is not written */
  ds_complex_scale(dst, src, -0.5f);
  ck_assert(dst[0] == -0.75f && dst[1] == 1.125f);
  ds_complex_scale(dst, src, 0.0f);
  ck_assert(dst[0] == 0.0f && dst[1] == 0.0f);
  /* In place (dst == src), as the backward pass scales the cropped spectrum. */
  ds_complex_scale(src, src, 4.0f);
  ck_assert(src[0] == 6.0f && src[1] == -9.0f);
  /* Only the two floats of one complex number are written. */
  float three[4] = {1.0f, 2.0f, 7.0f, 8.0f};
  ds_complex_scale(three, three, 3.0f);
  ck_assert(three[0] == 3.0f && three[1] == 6.0f && three[2] == 7.0f && three[3] == 8.0f);
}
END_TEST

/* ------------------------------------------------------ ds_grad_product */

/* Re(conj(g) * x): (1 - 2i)(3 + 4i) = 11 - 2i, so 11 (Re(g x) would be -5);
 * purely imaginary and real pairs; then random values against C's complex
 * arithmetic in double. */
START_TEST(test_grad_product) {
  ck_assert_float_eq(ds_grad_product((float[]){1, 2}, (float[]){3, 4}), 11.0f);
  ck_assert_float_eq(ds_grad_product((float[]){0, 2}, (float[]){0, -3}), -6.0f);
  ck_assert_float_eq(ds_grad_product((float[]){0, 2}, (float[]){5, 0}), 0.0f);
  ck_assert_float_eq(ds_grad_product((float[]){-1.5f, 0}, (float[]){2, 7}), -3.0f);
  float v[4 * 100];
  fill_random(v, 4 * 100, 77);
  for (int i = 0; i < 100; i++) {
    const float *g = v + 4 * i, *x = g + 2;
    double complex gc = g[0] + g[1] * I, xc = x[0] + x[1] * I;
    double want = creal(conj(gc) * xc), got = ds_grad_product(g, x);
    ck_assert_msg(fabs(got - want) <= 1e-6 * (fabs(g[0] * x[0]) + fabs(g[1] * x[1])) + 1e-30,
                  "pair %d: %.9g, want %.9g", i, got, want);
  }
}
END_TEST

Suite *elementwise_suite(void) {
  Suite *s = suite_create("elementwise");
  TCase *tc = tcase_create("elementwise");
  tcase_add_test(tc, test_position_h_tables);
  tcase_add_loop_test(tc, test_position_h_construction, 0, 64);
  tcase_add_test(tc, test_ramp);
  tcase_add_test(tc, test_ramp_shape);
  tcase_add_test(tc, test_f32_not_fused);
  tcase_add_test(tc, test_source_row);
  tcase_add_test(tc, test_bin_weight);
  tcase_add_test(tc, test_cropped_row);
  tcase_add_test(tc, test_mirror);
  tcase_add_test(tc, test_complex_combine);
  tcase_add_loop_test(tc, test_hermitian_part, 0, 16);
  tcase_add_loop_test(tc, test_pair_grad_products, 0, 16);
  tcase_add_test(tc, test_pair_shifts);
  tcase_add_test(tc, test_image_offset);
  tcase_add_test(tc, test_image_offset_large);
  tcase_add_test(tc, test_complex_scale);
  tcase_add_test(tc, test_grad_product);
  suite_add_tcase(s, tc);
  return s;
}
