/* The library's own kernels: the transforms of src/cpu/cpu_dft.c (for
 * lengths where FFTW is slow): 24-point rows, 24- and 32-point columns
 * against a float64 DFT, for every count of rows and columns up to a few
 * groups of eight (the kernels take eight at a time and pad the rest), both
 * directions; the layer taking them where they exist, with the numbers
 * FFTW's transforms give; and the gradient sums of a cropped row
 * (src/cpu/cpu_sums.c), bitwise those of the shared per-bin function. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "elementwise.h"
#include "util.h"

/* max |DFT - got| / max |DFT| over `count` transforms of n points, element
 * e of transform t at x[2 (t * tstride + e * estride)] (float64 DFT with
 * exponent sign `sign`, unnormalized). */
static double dft_error(const float *x, const float *got, int n, int count, int tstride, int estride, int sign) {
  double err = 0.0, peak = 0.0;
  for (int t = 0; t < count; t++)
    for (int k = 0; k < n; k++) {
      double re = 0.0, im = 0.0;
      for (int e = 0; e < n; e++) {
        double a = sign * 2.0 * acos(-1.0) * (double)(e * k % n) / n;
        const float *v = x + 2 * (t * tstride + e * estride);
        re += v[0] * cos(a) - v[1] * sin(a), im += v[0] * sin(a) + v[1] * cos(a);
      }
      const float *g = got + 2 * (t * tstride + k * estride);
      err = fmax(err, fmax(fabs(g[0] - re), fabs(g[1] - im)));
      peak = fmax(peak, fmax(fabs(re), fabs(im)));
    }
  return err / peak;
}

/* Whether this CPU runs the own kernels (AVX2 and FMA on x86-64). */
static int own_expected(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* Loop index: the row count 1..19 (2 full groups of 8 and a padded one). */
START_TEST(test_own_rows) {
  ds_grid_fn rows = ds__cpu_own_rows(24);
  ck_assert_int_eq(rows != NULL, own_expected());
  ck_assert(ds__cpu_own_rows(23) == NULL && ds__cpu_own_rows(32) == NULL);
  if (!rows) return;
  int n = _i;
  size_t floats = 2 * 24 * (size_t)n;
  float *x = malloc(sizeof(float) * (floats + 2)), *y = malloc(sizeof(float) * (floats + 2));
  fill_random(x, floats + 2, 40u + (unsigned)n);
  for (int sign = -1; sign <= 1; sign += 2) {
    memcpy(y, x, sizeof(float) * (floats + 2));
    rows(y, n, sign);
    double err = dft_error(x, y, 24, n, 24, 1, sign);
    ck_assert_msg(err < 1e-6, "%d rows, sign %d: error %g", n, sign, err);
    ck_assert_msg(y[floats] == x[floats] && y[floats + 1] == x[floats + 1], "wrote past the rows");
  }
  free(x), free(y);
}
END_TEST

/* Loop index: the width 1..19 of a grid of 24 rows (index < 19) or of 32
 * rows (index >= 19): its columns. */
START_TEST(test_own_cols) {
  int n = _i < 19 ? 24 : 32, w = 1 + _i % 19;
  ds_grid_fn cols = ds__cpu_own_cols(n);
  ck_assert_int_eq(cols != NULL, own_expected());
  ck_assert(ds__cpu_own_cols(25) == NULL && ds__cpu_own_cols(16) == NULL);
  if (!cols) return;
  size_t floats = 2 * (size_t)n * (size_t)w;
  float *x = malloc(sizeof(float) * (floats + 2)), *y = malloc(sizeof(float) * (floats + 2));
  fill_random(x, floats + 2, 60u + (unsigned)_i);
  for (int sign = -1; sign <= 1; sign += 2) {
    memcpy(y, x, sizeof(float) * (floats + 2));
    cols(y, w, sign);
    double err = dft_error(x, y, n, w, 1, w, sign);
    ck_assert_msg(err < 1e-6, "%d x %d, sign %d: error %g", n, w, sign, err);
    ck_assert_msg(y[floats] == x[floats] && y[floats + 1] == x[floats + 1], "wrote past the grid");
  }
  free(x), free(y);
}
END_TEST

/* DiffStride forward and backward with the own transforms on or off, on
 * 3 x 5 images of h x w: cases with 24-row output grids (32 x 32 at
 * strides 2; 30 x 60 at (2, 2.5), whose rows are not 24 points) and a
 * 24-row input grid. */
typedef struct layer_out {
  float *y, *dx, ds[2];
} layer_out;

static layer_out run_layer(int own, int h, int w, const float s[2]) {
  ds_context *ctx = cpu_context(2);
  ((cpu_state *)ctx->state)->own = own;
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  int n = 3, c = 5, oh, ow;
  ck_assert_int_eq(ds_diffstride_output_size(&d, h, w, s, &oh, &ow), DS_OK);
  size_t in = (size_t)n * c * h * w, out = (size_t)n * c * oh * ow;
  float *x = malloc(sizeof(float) * in), *dy = malloc(sizeof(float) * out);
  layer_out r = {malloc(sizeof(float) * out), malloc(sizeof(float) * in), {0.0f, 0.0f}};
  fill_random(x, in, 5u), fill_random(dy, out, 6u);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, n, c, h, w, s, x, oh, ow, r.y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, n, c, h, w, s, x, oh, ow, dy, r.dx, r.ds), DS_OK);
  const cpu_state *st = ctx->state;
  for (int i = 0; own && own_expected() && i < st->cached; i++)
    ck_assert_msg(st->cache[i].key.n != 24 && (st->cache[i].key.n != 32 || st->cache[i].key.stride == 1),
                  "an FFTW plan of length %d, stride %d, was made", st->cache[i].key.n, st->cache[i].key.stride);
  free(x), free(dy);
  ds_context_destroy(ctx);
  return r;
}

START_TEST(test_layer_takes_own) {
  static const struct { int h, w; float s[2]; } cases[] = {
      {32, 32, {2.0f, 2.0f}}, {30, 60, {2.0f, 2.5f}}, {24, 24, {1.5f, 2.0f}}};
  for (int i = 0; i < 3; i++) {
    layer_out a = run_layer(1, cases[i].h, cases[i].w, cases[i].s), b = run_layer(0, cases[i].h, cases[i].w, cases[i].s);
    int oh, ow;
    ds_diffstride_desc d;
    ds_diffstride_desc_init(&d);
    ck_assert_int_eq(ds_diffstride_output_size(&d, cases[i].h, cases[i].w, cases[i].s, &oh, &ow), DS_OK);
    ck_assert(oh == 24 || cases[i].h == 24);
    ck_assert_double_lt(rel_error_ff(a.y, b.y, (size_t)15 * oh * ow), 1e-5);
    ck_assert_double_lt(rel_error_ff(a.dx, b.dx, (size_t)15 * cases[i].h * cases[i].w), 1e-5);
    ck_assert_double_lt(rel_error_ff(a.ds, b.ds, 2), 1e-4);
    free(a.y), free(a.dx), free(b.y), free(b.dx);
  }
}
END_TEST

/* Loop index: the row's bin count n = 1..19, with mirrored rows as wide as
 * n (a reserve's) or wider (a grid's). Every buffer has its exact size, so
 * that the sanitizer build catches a read outside it. */
START_TEST(test_row_sums) {
  int n = 1 + _i, bz = n + _i % 3, by = n + 2 * (_i % 2);
  float *z = malloc(sizeof(float) * 2 * n), *y = malloc(sizeof(float) * 2 * n);
  float *zm = malloc(sizeof(float) * 2 * bz), *ym = malloc(sizeof(float) * 2 * by);
  double sum[20], want[20];
  fill_random(z, 2 * (size_t)n, 80u + (unsigned)n), fill_random(y, 2 * (size_t)n, 81u + (unsigned)n);
  fill_random(zm, 2 * (size_t)bz, 82u + (unsigned)n), fill_random(ym, 2 * (size_t)by, 83u + (unsigned)n);
  for (int k = 0; k < 20; k++) sum[k] = want[k] = 0.125 * k - 1.0;
  float s0 = 0.75f, s1 = 0.0625f;
  for (int k = 0; k < n; k++) {
    float p[2];
    ds_pair_grad_products(z + 2 * k, k ? zm + 2 * (bz - k) : zm, y + 2 * k, k ? ym + 2 * (by - k) : ym, p);
    want[k] += (double)(s0 * p[0] + s1 * p[1]);
  }
  row_pair r = {z, zm, y, ym, bz, by};
  ds__cpu_row_sums(&r, s0, s1, sum, n);
  for (int k = 0; k < 20; k++) ck_assert_msg(sum[k] == want[k], "n=%d bin %d: %.17g, want %.17g", n, k, sum[k], want[k]);
  free(z), free(y), free(zm), free(ym);
}
END_TEST

Suite *own_transforms_suite(void) {
  Suite *s = suite_create("own_transforms");
  TCase *tc = tcase_create("dft");
  tcase_add_loop_test(tc, test_own_rows, 1, 20);
  tcase_add_loop_test(tc, test_own_cols, 0, 38);
  tcase_add_test(tc, test_layer_takes_own);
  suite_add_tcase(s, tc);
  TCase *sums = tcase_create("row_sums");
  tcase_add_loop_test(sums, test_row_sums, 0, 19);
  suite_add_tcase(s, sums);
  return s;
}
