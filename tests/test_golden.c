/* Every golden case, in both layouts: output size, effective strides,
 * forward, dx and dstrides at the tolerances of the golden README, through
 * the plain calls and (DiffStride) the training calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "util.h"

static char **names;
static int count;

/* The case's input in the layout under test (NHWC: transposed). */
static float *input(const double *v, const golden *g, int h, int w, int layout) {
  size_t size = (size_t)g->n * g->c * h * w;
  float *f = to_float(v, size);
  if (layout == DS_LAYOUT_NCHW) return f;
  float *t = malloc(sizeof(float) * size);
  to_nhwc(f, t, g->n, g->c, h, w);
  free(f);
  return t;
}

/* Compares a result in the layout under test with the NCHW golden array. */
static void expect_close(const float *got, const double *want, const golden *g, int h, int w,
                         int layout, double tol, const char *what) {
  size_t size = (size_t)g->n * g->c * h * w;
  float *nchw = malloc(sizeof(float) * size);
  if (layout == DS_LAYOUT_NHWC)
    to_nchw(got, nchw, g->n, g->c, h, w);
  else
    for (size_t i = 0; i < size; i++) nchw[i] = got[i];
  double err = rel_error_fd(nchw, want, size);
  free(nchw);
  ck_assert_msg(err < tol, "%s layout %d: %s relative error %g >= %g", g->name, layout, what, err, tol);
}

/* The training calls (forward keeping a reserve, backward reading it) on
 * the same case: y and dx bitwise those of the plain calls (the same
 * transforms), dstrides the golden's. */
static void check_training(ds_context *ctx, const golden *g, const ds_diffstride_desc *d, const float s[2],
                           const float *x, const float *dy, const float *y, const float *dx) {
  size_t in = (size_t)g->n * g->c * g->h * g->w, out = (size_t)g->n * g->c * g->out_h * g->out_w, bytes;
  ck_assert_int_eq(ds_diffstride_reserve_size(d, g->n, g->c, g->h, g->w, s, &bytes), DS_OK);
  void *reserve = malloc(bytes);
  float *y2 = malloc(sizeof(float) * out), *dx2 = malloc(sizeof(float) * in), ds[2];
  ck_assert_int_eq(ds_diffstride_forward_training(ctx, d, g->n, g->c, g->h, g->w, s, x, g->out_h, g->out_w, y2,
                                                  reserve, bytes), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, d, g->n, g->c, g->h, g->w, s, reserve, bytes, g->out_h,
                                                   g->out_w, dy, dx2, ds), DS_OK);
  ck_assert_msg(!memcmp(y2, y, sizeof(float) * out), "%s: training forward y differs", g->name);
  ck_assert_msg(!memcmp(dx2, dx, sizeof(float) * in), "%s: reserved backward dx differs", g->name);
  double scale = fmax(fabs(g->dstrides[0]), fabs(g->dstrides[1]));
  for (int i = 0; i < 2; i++)
    ck_assert_msg(fabs(ds[i] - g->dstrides[i]) <= 1e-4 * scale, "%s layout %d: reserved dstrides[%d] %.9g, want %.9g",
                  g->name, d->layout, i, (double)ds[i], g->dstrides[i]);
  free(reserve), free(y2), free(dx2);
}

static void check_diffstride(ds_context *ctx, const golden *g, int layout, const float *x,
                             const float *dy, float *y, float *dx) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  d = (ds_diffstride_desc){(float)g->smoothness, g->cropping, g->shared, (float)g->lower,
                           (float)g->upper, layout};
  const float s[2] = {(float)g->strides[0], (float)g->strides[1]};
  float eff[2], ds[2];
  int oh, ow;
  ck_assert_int_eq(ds_diffstride_effective_strides(&d, g->h, g->w, s, eff), DS_OK);
  for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(eff[i], g->effective[i], 1e-6 * g->effective[i]);
  ck_assert_int_eq(ds_diffstride_output_size(&d, g->h, g->w, s, &oh, &ow), DS_OK);
  ck_assert_int_eq(oh, g->out_h);
  ck_assert_int_eq(ow, g->out_w);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, g->n, g->c, g->h, g->w, s, x, oh, ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, g->n, g->c, g->h, g->w, s, x, oh, ow, dy, dx, ds), DS_OK);
  double scale = fmax(fabs(g->dstrides[0]), fabs(g->dstrides[1]));
  for (int i = 0; i < 2; i++)
    ck_assert_msg(fabs(ds[i] - g->dstrides[i]) <= 1e-4 * scale, "%s layout %d: dstrides[%d] %.9g, want %.9g",
                  g->name, layout, i, (double)ds[i], g->dstrides[i]);
  check_training(ctx, g, &d, s, x, dy, y, dx);
}

static void check_spectral(ds_context *ctx, const golden *g, int layout, const float *x,
                           const float *dy, float *y, float *dx) {
  const float s[2] = {(float)g->strides[0], (float)g->strides[1]};
  int oh, ow;
  ck_assert_int_eq(ds_spectral_pool_output_size(g->h, g->w, s, &oh, &ow), DS_OK);
  ck_assert_int_eq(oh, g->out_h);
  ck_assert_int_eq(ow, g->out_w);
  ck_assert_int_eq(ds_spectral_pool_forward(ctx, layout, g->n, g->c, g->h, g->w, s, x, oh, ow, y), DS_OK);
  ck_assert_int_eq(ds_spectral_pool_backward(ctx, layout, g->n, g->c, g->h, g->w, s, oh, ow, dy, dx), DS_OK);
}

START_TEST(test_golden_case) {
  golden g;
  char err[256];
  int layout = _i % 2;
  ck_assert_msg(golden_load(golden_dir(), names[_i / 2], &g, err, sizeof err) == 0, "%s", err);
  float *x = input(g.x, &g, g.h, g.w, layout), *dy = input(g.dy, &g, g.out_h, g.out_w, layout);
  float *y = malloc(sizeof(float) * (size_t)g.n * g.c * g.out_h * g.out_w);
  float *dx = malloc(sizeof(float) * (size_t)g.n * g.c * g.h * g.w);
  ds_context *ctx = cpu_context(2);
  if (g.diffstride)
    check_diffstride(ctx, &g, layout, x, dy, y, dx);
  else
    check_spectral(ctx, &g, layout, x, dy, y, dx);
  expect_close(y, g.y, &g, g.out_h, g.out_w, layout, 1e-5, "y");
  expect_close(dx, g.dx, &g, g.h, g.w, layout, 1e-5, "dx");
  ds_context_destroy(ctx);
  free(x), free(dy), free(y), free(dx);
  golden_free(&g);
}
END_TEST

START_TEST(test_golden_present) {
  ck_assert_msg(count >= 15, "%d golden cases in %s (set DS_GOLDEN_DIR)", count, golden_dir());
}
END_TEST

Suite *golden_suite(void) {
  Suite *s = suite_create("golden");
  TCase *tc = tcase_create("cases");
  names = golden_names(golden_dir());
  for (count = 0; names && names[count];) count++;
  tcase_add_test(tc, test_golden_present);
  tcase_add_loop_test(tc, test_golden_case, 0, 2 * count);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
