/* Every test vector (tests/vectors and the directories of $DS_VECTOR_DIRS),
 * in both layouts: output size, effective strides, forward, dx and dstrides
 * at the tolerances of tests/vectors/README.md, through the plain calls and
 * (DiffStride 2-D and 1-D) the training calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "util.h"

static char **paths;
static int count;
static char paths_error[512];

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

/* dstrides within 1e-4 of the case's largest stride gradient. */
static void expect_dstrides(const float ds[2], const golden *g, int layout, const char *how) {
  double scale = fmax(fabs(g->dstrides[0]), fabs(g->dstrides[1]));
  for (int i = 0; i < 2; i++)
    ck_assert_msg(fabs(ds[i] - g->dstrides[i]) <= 1e-4 * scale, "%s layout %d: %sdstrides[%d] %.9g, want %.9g",
                  g->name, layout, how, i, (double)ds[i], g->dstrides[i]);
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
  expect_dstrides(ds, g, d->layout, "reserved ");
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
  for (int i = 0; i < 2; i++)
    ck_assert_msg(eff[i] == (float)g->effective[i], "%s: effective stride %d %a, want %a", g->name, i, (double)eff[i],
                  (double)(float)g->effective[i]);
  ck_assert_int_eq(ds_diffstride_output_size(&d, g->h, g->w, s, &oh, &ow), DS_OK);
  ck_assert_int_eq(oh, g->out_h);
  ck_assert_int_eq(ow, g->out_w);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, g->n, g->c, g->h, g->w, s, x, oh, ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, g->n, g->c, g->h, g->w, s, x, oh, ow, dy, dx, ds), DS_OK);
  expect_dstrides(ds, g, layout, "");
  check_training(ctx, g, &d, s, x, dy, y, dx);
}

/* The 1-D layer: the plain calls, then the training calls (y and dx
 * bitwise the plain ones). */
static void check_diffstride1d(ds_context *ctx, const golden *g, int layout, const float *x,
                               const float *dy, float *y, float *dx) {
  ds_diffstride_desc d = {(float)g->smoothness, g->cropping, 0, (float)g->lower, (float)g->upper, layout};
  float s = (float)g->strides[1], eff, ds[2] = {0.0f, 0.0f};
  int out;
  ck_assert_int_eq(ds_diffstride1d_effective_stride(&d, g->w, s, &eff), DS_OK);
  ck_assert_msg(eff == (float)g->effective[1], "%s: effective stride %a, want %a", g->name, (double)eff,
                (double)(float)g->effective[1]);
  ck_assert_int_eq(ds_diffstride1d_output_size(&d, g->w, s, &out), DS_OK);
  ck_assert_int_eq(out, g->out_w);
  ck_assert_int_eq(ds_diffstride1d_forward(ctx, &d, g->n, g->c, g->w, s, x, out, y), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward(ctx, &d, g->n, g->c, g->w, s, x, out, dy, dx, &ds[1]), DS_OK);
  expect_dstrides(ds, g, layout, "");
  size_t bytes, in = (size_t)g->n * g->c * g->w, outs = (size_t)g->n * g->c * out;
  ck_assert_int_eq(ds_diffstride1d_reserve_size(&d, g->n, g->c, g->w, s, &bytes), DS_OK);
  void *reserve = malloc(bytes);
  float *y2 = malloc(sizeof(float) * outs), *dx2 = malloc(sizeof(float) * in);
  ck_assert_int_eq(ds_diffstride1d_forward_training(ctx, &d, g->n, g->c, g->w, s, x, out, y2, reserve, bytes), DS_OK);
  ck_assert_int_eq(ds_diffstride1d_backward_reserved(ctx, &d, g->n, g->c, g->w, s, reserve, bytes, out, dy, dx2, &ds[1]),
                   DS_OK);
  ck_assert_msg(!memcmp(y2, y, sizeof(float) * outs), "%s: training forward y differs", g->name);
  ck_assert_msg(!memcmp(dx2, dx, sizeof(float) * in), "%s: reserved backward dx differs", g->name);
  expect_dstrides(ds, g, layout, "reserved ");
  free(reserve), free(y2), free(dx2);
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
  ck_assert_msg(golden_load(paths[_i / 2], &g, err, sizeof err) == 0, "%s", err);
  float *x = input(g.x, &g, g.h, g.w, layout), *dy = input(g.dy, &g, g.out_h, g.out_w, layout);
  float *y = malloc(sizeof(float) * (size_t)g.n * g.c * g.out_h * g.out_w);
  float *dx = malloc(sizeof(float) * (size_t)g.n * g.c * g.h * g.w);
  ds_context *ctx = cpu_context(2);
  if (g.op == GOLDEN_DIFFSTRIDE)
    check_diffstride(ctx, &g, layout, x, dy, y, dx);
  else if (g.op == GOLDEN_DIFFSTRIDE1D)
    check_diffstride1d(ctx, &g, layout, x, dy, y, dx);
  else
    check_spectral(ctx, &g, layout, x, dy, y, dx);
  expect_close(y, g.y, &g, g.out_h, g.out_w, layout, 1e-5, "y");
  expect_close(dx, g.dx, &g, g.h, g.w, layout, 1e-5, "dx");
  ds_context_destroy(ctx);
  free(x), free(dy), free(y), free(dx);
  golden_free(&g);
}
END_TEST

/* Every directory holds cases (a mistyped directory fails here), and the
 * repository's own set covers the three ops. */
START_TEST(test_golden_present) {
  ck_assert_msg(paths, "%s (directories: %s)", paths_error, golden_dirs());
  int ops[3] = {0, 0, 0};
  for (int i = 0; i < count; i++) {
    const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
    ops[!strncmp(base, "spectral_pool_", 14) ? 1 : !strncmp(base, "diffstride1d_", 13) ? 2 : 0]++;
  }
  ck_assert_msg(ops[0] && ops[1] && ops[2], "cases in %s: %d diffstride, %d spectral_pool, %d diffstride1d",
                golden_dirs(), ops[0], ops[1], ops[2]);
}
END_TEST

Suite *golden_suite(void) {
  Suite *s = suite_create("golden");
  TCase *tc = tcase_create("cases");
  paths = golden_paths(paths_error, sizeof paths_error);
  for (count = 0; paths && paths[count];) count++;
  tcase_add_test(tc, test_golden_present);
  tcase_add_loop_test(tc, test_golden_case, 0, 2 * count);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
