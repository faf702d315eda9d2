/* 1-D DiffStride against an independent float64 implementation of
 * docs/algorithm.md section 11 written here (naive DFTs): forward, dx (the
 * reference's transpose) and dstride (central finite differences away from
 * the ramp's kinks), both layouts, the training calls against the plain
 * ones, and the error paths. */
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PI 3.14159265358979323846

typedef struct layer1d {
  double r, lower, upper, s;
  int cropping;
} layer1d;

static double eff1d(const layer1d *l, int n) { return fmin(fmax(fmax(l->s, n / (n - l->r)), l->lower), l->upper); }
static double thr1d(const layer1d *l, int n) { return fmax(n / eff1d(l, n), 2.0) / 2.0 + 1.0; }
static double mask1d(const layer1d *l, int n, int k) { return fmin(fmax((l->r + thr1d(l, n) - k) / l->r, 0.0), 1.0); }

/* Cropping off inverts at the spectrum's own length 2 (n/2). */
static int out1d(const layer1d *l, int n) {
  if (!l->cropping) return 2 * (n / 2);
  int kept = 0;
  while (kept <= n / 2 && mask1d(l, n, kept) > 0.0) kept++;
  return 2 * (kept - 1);
}

/* y (out) of one signal x (n): masked rfft bins, then numpy's irfft. */
static void ref1d(const layer1d *l, int n, const double *x, double *y) {
  int out = out1d(l, n), bins = out / 2 + 1;
  for (int j = 0; j < out; j++) {
    double acc = 0.0;
    for (int k = 0; k < bins; k++) {
      double complex z = 0.0;
      for (int t = 0; t < n; t++) z += x[t] * cexp(-2.0 * PI * I * (double)k * t / n);
      acc += ((k == 0 || 2 * k == out) ? 1.0 : 2.0) * creal(z * mask1d(l, n, k) * cexp(2.0 * PI * I * (double)k * j / out));
    }
    y[j] = acc / out;
  }
}

/* Distance of the stride from the kinks: ramp ends T = k - R and T = k, raise, limits, t = 2. */
static double kink1d(const layer1d *l, int n) {
  double s = eff1d(l, n), t = thr1d(l, n), slope = n / (2 * s * s), raised = fmax(l->s, n / (n - l->r));
  double d = fmin(fabs(s - n / 2.0), fabs(l->s - n / (n - l->r)));
  d = fmin(d, fmin(fabs(raised - l->lower), fabs(raised - l->upper)));
  if (raised != l->s) d = 0.0;
  for (int k = 0; k <= n / 2; k++) d = fmin(d, fmin(fabs(t - k + l->r), fabs(t - k)) / slope);
  return d;
}

typedef struct case1d {
  layer1d ref;
  ds_diffstride_desc desc;
  int n, c, l, out;
} case1d;

static case1d random_case(unsigned seed, double margin) {
  unsigned st = seed * 2654435761u + 7u;
  case1d k;
  do {
    ds_diffstride_desc_init(&k.desc);
    k.desc.smoothness = (float)(1 + rand_below(&st, 4));
    k.desc.cropping = rand_below(&st, 4) != 0;
    if (rand_below(&st, 3) == 0) k.desc.lower_limit = 1.5f, k.desc.upper_limit = 5.0f;
    k.l = (int)k.desc.smoothness + 2 + (int)rand_below(&st, 40);
    k.n = 1 + (int)rand_below(&st, 2), k.c = 1 + (int)rand_below(&st, 3);
    float s = 1.0f + (float)rand_below(&st, 5000) / 1000.0f;
    k.ref = (layer1d){k.desc.smoothness, k.desc.lower_limit, k.desc.upper_limit, s, k.desc.cropping};
  } while (kink1d(&k.ref, k.l) < margin);
  k.out = out1d(&k.ref, k.l);
  return k;
}

/* The library on the case's batch in a layout: y and optionally dx, dstride. */
static void run(const case1d *k, int layout, const float *x, const float *dy, float *y, float *dx, float *ds) {
  ds_diffstride_desc d = k->desc;
  d.layout = layout;
  size_t in = (size_t)k->n * k->c * k->l, out = (size_t)k->n * k->c * k->out;
  float *xt = malloc(sizeof(float) * in), *dyt = malloc(sizeof(float) * out), *yt = malloc(sizeof(float) * out), *dxt = malloc(sizeof(float) * in);
  if (layout == DS_LAYOUT_NLC) to_nhwc(x, xt, k->n, k->c, 1, k->l), to_nhwc(dy, dyt, k->n, k->c, 1, k->out);
  else memcpy(xt, x, sizeof(float) * in), memcpy(dyt, dy, sizeof(float) * out);
  ds_context *ctx = cpu_context(2);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, k->n, k->c, k->l, (float)k->ref.s, xt, k->out, yt), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, k->n, k->c, k->l, (float)k->ref.s, xt, k->out, dyt, dxt, ds), DS_OK);
  if (layout == DS_LAYOUT_NLC) to_nchw(yt, y, k->n, k->c, 1, k->out), to_nchw(dxt, dx, k->n, k->c, 1, k->l);
  else memcpy(y, yt, sizeof(float) * out), memcpy(dx, dxt, sizeof(float) * in);
  ds_context_destroy(ctx);
  free(xt), free(dyt), free(yt), free(dxt);
}

/* L(s) = sum(dy * y(s)) by the reference. */
static double loss1d(const case1d *k, const float *x, const float *dy, double s) {
  layer1d l = k->ref;
  l.s = s;
  double *xd = malloc(sizeof(double) * k->l), *y = malloc(sizeof(double) * k->out), total = 0.0;
  for (int i = 0; i < k->n * k->c; i++) {
    for (int t = 0; t < k->l; t++) xd[t] = x[i * k->l + t];
    ref1d(&l, k->l, xd, y);
    for (int j = 0; j < k->out; j++) total += y[j] * dy[i * k->out + j];
  }
  free(xd), free(y);
  return total;
}

/* Forward, dx (by the reference's transpose) and dstride (finite differences). */
START_TEST(test_against_reference) {
  case1d k = random_case((unsigned)_i, 2e-3);
  int layout = _i % 2, imgs = k.n * k.c, out_l;
  ck_assert_int_eq(ds_diffstride1d_output_size(&k.desc, k.l, (float)k.ref.s, &out_l), DS_OK);
  ck_assert_int_eq(out_l, k.out);
  float *x = malloc(sizeof(float) * imgs * k.l), *dy = malloc(sizeof(float) * imgs * k.out), ds;
  float *y = malloc(sizeof(float) * imgs * k.out), *dx = malloc(sizeof(float) * imgs * k.l);
  double *want = malloc(sizeof(double) * imgs * (k.l + k.out)), *e = calloc((size_t)k.l, sizeof(double));
  double *col = malloc(sizeof(double) * k.out), *wdx = want + imgs * k.out;
  fill_random(x, (size_t)imgs * k.l, _i), fill_random(dy, (size_t)imgs * k.out, _i + 99);
  run(&k, layout, x, dy, y, dx, &ds);
  for (int i = 0; i < imgs; i++) {
    double *xd = wdx + i * k.l; /* borrowed as input first */
    for (int t = 0; t < k.l; t++) xd[t] = x[i * k.l + t];
    ref1d(&k.ref, k.l, xd, want + i * k.out);
    for (int t = 0; t < k.l; t++) {
      e[t] = 1.0, ref1d(&k.ref, k.l, e, col), e[t] = 0.0;
      xd[t] = 0.0;
      for (int j = 0; j < k.out; j++) xd[t] += col[j] * dy[i * k.out + j];
    }
  }
  ck_assert_double_lt(rel_error_fd(y, want, (size_t)imgs * k.out), 1e-5);
  ck_assert_double_lt(rel_error_fd(dx, wdx, (size_t)imgs * k.l), 1e-5);
  double step = 1e-4, fd = (loss1d(&k, x, dy, k.ref.s + step) - loss1d(&k, x, dy, k.ref.s - step)) / (2 * step);
  ck_assert_msg(fabs(ds - fd) < 2e-4 * fmax(fabs(fd), 1e-2), "case %d (l=%d s=%g R=%g crop %d): dstride %.7g, fd %.7g",
                _i, k.l, k.ref.s, k.ref.r, k.ref.cropping, (double)ds, fd);
  free(x), free(dy), free(y), free(dx), free(want), free(e), free(col);
}
END_TEST

/* The stride raised to l/(l-R), then clipped; sizes of the spec's rule. */
START_TEST(test_effective_and_sizes) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  float eff;
  int out;
  ck_assert_int_eq(ds_diffstride1d_effective_stride(&d, 16, 0.5f, &eff), DS_OK);
  ck_assert_float_eq_tol(eff, 16.0f / 12.0f, 1e-6f);
  d.upper_limit = 3.0f;
  ck_assert_int_eq(ds_diffstride1d_effective_stride(&d, 64, 7.0f, &eff), DS_OK);
  ck_assert_float_eq(eff, 3.0f);
  ds_diffstride_desc_init(&d);
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 64, 2.0f, &out), DS_OK); /* T = 17: bins 0..20 */
  ck_assert_int_eq(out, 40);
  d.cropping = 0;
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 63, 2.0f, &out), DS_OK); /* odd: one sample lost */
  ck_assert_int_eq(out, 62);
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 64, 2.0f, &out), DS_OK);
  ck_assert_int_eq(out, 64);
}
END_TEST

/* Bad arguments: status, the argument named, outputs untouched. */
START_TEST(test_errors) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  ds_context *ctx = cpu_context(1);
  float x[64] = {0}, y[64], dx[64], ds = 7.0f, eff = 7.0f;
  int out = -1;
  memset(y, 0x7f, sizeof y);
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 4, 2.0f, &out), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_last_error(), "l: 4"));
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 64, NAN, &out), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_last_error(), "stride"));
  ck_assert_int_eq(ds_diffstride1d_effective_stride(&d, 64, 2.0f, NULL), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride1d_effective_stride(NULL, 64, 2.0f, &eff), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(out, -1);
  ck_assert_float_eq(eff, 7.0f);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, 1, 1, 64, 2.0f, x, 38, y), DS_ERR_SHAPE_MISMATCH);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "out_l: 38"));
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, 0, 1, 64, 2.0f, x, 40, y), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, INT32_MAX, INT32_MAX, 64, 2.0f, x, 40, y), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_last_error(), "overflow"));
  ck_assert_int_eq(ds_diffstride1d_forward(NULL, &d, 1, 1, 64, 2.0f, x, 40, y), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, 1, 1, 64, 2.0f, NULL, 40, y), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, 1, 1, 64, 2.0f, NULL, 40, y, dx, &ds), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "x: NULL"));
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, 1, 1, 64, 2.0f, x, 40, NULL, dx, &ds), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "dy"));
  ck_assert_float_eq(ds, 7.0f);
  unsigned char poison[sizeof y];
  memset(poison, 0x7f, sizeof poison);
  ck_assert_int_eq(memcmp(y, poison, sizeof y), 0);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, 1, 1, 64, 2.0f, NULL, 40, y, NULL, NULL), DS_OK);
  ds_context_destroy(ctx);
}
END_TEST

/* The training calls against the plain ones, in the case's layout: y, dx
 * and dstride bitwise; the reserve's size by its formula. */
START_TEST(test_training_calls) {
  case1d k = random_case(300u + (unsigned)_i, 0.0);
  k.desc.layout = _i % 2 ? DS_LAYOUT_NLC : DS_LAYOUT_NCL;
  size_t in = (size_t)k.n * k.c * k.l, out = (size_t)k.n * k.c * k.out, bytes = 0;
  float s = (float)k.ref.s, *x = malloc(sizeof(float) * in), *dy = malloc(sizeof(float) * out);
  float *y[2] = {malloc(sizeof(float) * out), malloc(sizeof(float) * out)};
  float *dx[2] = {malloc(sizeof(float) * in), malloc(sizeof(float) * in)}, ds[2];
  fill_random(x, in, 70u + (unsigned)_i), fill_random(dy, out, 90u + (unsigned)_i);
  ck_assert_int_eq(ds_diffstride1d_reserve_size(&k.desc, k.n, k.c, k.l, s, &bytes), DS_OK);
  ck_assert_uint_eq(bytes, 64 + ((size_t)k.n * k.c + 1) / 2 * (8 + 16 * (size_t)(k.out / 2 + 1)));
  void *reserve = malloc(bytes);
  ds_context *ctx = cpu_context(2);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &k.desc, k.n, k.c, k.l, s, x, k.out, y[0]), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &k.desc, k.n, k.c, k.l, s, x, k.out, dy, dx[0], &ds[0]), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_forward_training(ctx, &k.desc, k.n, k.c, k.l, s, x, k.out, y[1], reserve, bytes),
                   DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward_reserved(ctx, &k.desc, k.n, k.c, k.l, s, reserve, bytes, k.out, dy, dx[1],
                                                     &ds[1]), DS_OK);
  ck_assert(!memcmp(y[0], y[1], sizeof(float) * out) && !memcmp(dx[0], dx[1], sizeof(float) * in));
  ck_assert_msg(ds[0] == ds[1] && isfinite(ds[0]), "dstride %.9g, plain %.9g", (double)ds[1], (double)ds[0]);
  ds_context_destroy(ctx);
  free(x), free(dy), free(y[0]), free(y[1]), free(dx[0]), free(dx[1]), free(reserve);
}
END_TEST

/* Misuse of the 1-D training calls, named in the message. */
START_TEST(test_training_errors) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  size_t bytes = 0;
  float x[2 * 64] = {0}, y[2 * 64], dy[2 * 64] = {0}, dx[2 * 64], ds = 0.0f;
  int out = 0;
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, 64, 2.0f, &out), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_reserve_size(&d, 2, 1, 64, 2.0f, NULL), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_last_error(), "bytes: NULL pointer");
  ck_assert_int_eq(ds_diffstride1d_reserve_size(&d, 2, 1, 64, 2.0f, &bytes), DS_OK);
  void *reserve = malloc(bytes);
  ds_context *ctx = cpu_context(1);
  ck_assert_int_eq(ds_diffstride1d_forward_training(ctx, &d, 2, 1, 64, 2.0f, x, out, y, reserve, bytes - 8),
                   DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "reserve_bytes"));
  ck_assert_int_eq(ds_diffstride1d_forward_training(ctx, &d, 2, 1, 64, 2.0f, x, out, y, reserve, bytes), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward_reserved(ctx, &d, 1, 1, 64, 2.0f, reserve, bytes, out, dy, dx, &ds),
                   DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "written for 2 images of 1x64"));
  ck_assert_int_eq(ds_diffstride1d_backward_reserved(ctx, &d, 2, 1, 64, 2.0f, NULL, 0, out, dy, dx, &ds),
                   DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_context_last_error(ctx), "reserve: NULL pointer");
  ck_assert_int_eq(ds_diffstride1d_backward_reserved(ctx, &d, 2, 1, 64, 2.0f, NULL, 0, out, dy, dx, NULL), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, 2, 1, 64, 2.0f, NULL, out, dy, dx, &ds), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_context_last_error(ctx), "x: NULL pointer, needed for dstride");
  ds_context_destroy(ctx);
  free(reserve);
}
END_TEST

Suite *diffstride1d_suite(void) {
  Suite *s = suite_create("diffstride1d");
  TCase *tc = tcase_create("1d");
  tcase_add_loop_test(tc, test_against_reference, 0, 32);
  tcase_add_test(tc, test_effective_and_sizes);
  tcase_add_test(tc, test_errors);
  tcase_add_loop_test(tc, test_training_calls, 0, 16);
  tcase_add_test(tc, test_training_errors);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
