/* Properties that hold whatever the numbers: layouts agree, the forward map
 * is linear, backward is its adjoint, optional outputs do not change each
 * other, and the sizes of the spec's own examples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct shape {
  int n, c, h, w, cropping, shared;
  float r, s[2];
} shape;

/* Odd and even sizes, cropping off, shared strides, R < 1; in NHWC, blocks
 * of 16 channels (moved in 8 x 8 tiles) with pixels left over (7 x 9),
 * blocks spanning two samples (c = 20) and ending the batch early. */
static const shape shapes[] = {
    {2, 3, 32, 32, 1, 0, 4, {2.0f, 2.0f}},  {1, 5, 19, 24, 1, 0, 4, {1.7f, 2.6f}},
    {3, 2, 15, 9, 0, 0, 3, {2.2f, 1.4f}},   {2, 4, 28, 21, 1, 1, 2, {2.5f, 9.0f}},
    {1, 3, 8, 33, 1, 0, 0.5f, {3.1f, 4.2f}}, {2, 2, 12, 12, 0, 1, 4, {1.2f, 1.2f}},
    {2, 20, 7, 9, 1, 0, 2, {1.6f, 1.3f}},    {1, 32, 32, 32, 1, 0, 4, {2.0f, 2.0f}},
    {3, 9, 10, 12, 1, 0, 3, {2.1f, 1.8f}},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

typedef struct run {
  ds_diffstride_desc d;
  int oh, ow;
  size_t in, out;
} run;

static run setup(const shape *s, int layout) {
  run r;
  ds_diffstride_desc_init(&r.d);
  r.d.smoothness = s->r, r.d.cropping = s->cropping, r.d.shared_stride = s->shared, r.d.layout = layout;
  ck_assert_int_eq(ds_diffstride_output_size(&r.d, s->h, s->w, s->s, &r.oh, &r.ow), DS_OK);
  r.in = (size_t)s->n * s->c * s->h * s->w, r.out = (size_t)s->n * s->c * r.oh * r.ow;
  return r;
}

static float *buffer(size_t count, unsigned seed) {
  float *v = malloc(sizeof(float) * count);
  ck_assert_ptr_nonnull(v);
  fill_random(v, count, seed);
  return v;
}

START_TEST(test_nhwc_equals_nchw) {
  const shape *s = &shapes[_i];
  run a = setup(s, DS_LAYOUT_NCHW), b = setup(s, DS_LAYOUT_NHWC);
  float *x = buffer(a.in, 1), *dy = buffer(a.out, 2), *xt = buffer(a.in, 0), *dyt = buffer(a.out, 0);
  float *y = buffer(a.out, 0), *yt = buffer(a.out, 0), *dx = buffer(a.in, 0), *dxt = buffer(a.in, 0);
  float *back = buffer(a.in > a.out ? a.in : a.out, 0), ds[2], dst[2];
  to_nhwc(x, xt, s->n, s->c, s->h, s->w), to_nhwc(dy, dyt, s->n, s->c, a.oh, a.ow);
  ds_context *ctx = cpu_context(2);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, x, a.oh, a.ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &b.d, s->n, s->c, s->h, s->w, s->s, xt, a.oh, a.ow, yt), DS_OK);
  to_nchw(yt, back, s->n, s->c, a.oh, a.ow);
  ck_assert_int_eq(memcmp(back, y, sizeof(float) * a.out), 0);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, x, a.oh, a.ow, dy, dx, ds), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &b.d, s->n, s->c, s->h, s->w, s->s, xt, a.oh, a.ow, dyt, dxt, dst), DS_OK);
  to_nchw(dxt, back, s->n, s->c, s->h, s->w);
  ck_assert_int_eq(memcmp(back, dx, sizeof(float) * a.in), 0);
  ck_assert_float_eq(ds[0], dst[0]);
  ck_assert_float_eq(ds[1], dst[1]);
  ds_context_destroy(ctx);
  free(x), free(dy), free(xt), free(dyt), free(y), free(yt), free(dx), free(dxt), free(back);
}
END_TEST

/* y(a x1 + b x2) = a y(x1) + b y(x2), and <y(x), dy> = <x, dx(dy)>. */
START_TEST(test_linear_and_adjoint) {
  const shape *s = &shapes[_i];
  run a = setup(s, DS_LAYOUT_NCHW);
  float *x1 = buffer(a.in, 3), *x2 = buffer(a.in, 4), *mix = buffer(a.in, 0), *dy = buffer(a.out, 5);
  float *y1 = buffer(a.out, 0), *y2 = buffer(a.out, 0), *ym = buffer(a.out, 0), *dx = buffer(a.in, 0);
  for (size_t i = 0; i < a.in; i++) mix[i] = 0.75f * x1[i] - 1.5f * x2[i];
  ds_context *ctx = cpu_context(1);
  const float *in[3] = {x1, x2, mix};
  float *out[3] = {y1, y2, ym};
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(ds_diffstride_forward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, in[k], a.oh, a.ow, out[k]), DS_OK);
  for (size_t i = 0; i < a.out; i++) y1[i] = 0.75f * y1[i] - 1.5f * y2[i];
  ck_assert_double_lt(rel_error_ff(ym, y1, a.out), 1e-5);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, NULL, a.oh, a.ow, dy, dx, NULL), DS_OK);
  double lhs = dot_ff(ym, dy, a.out), rhs = dot_ff(mix, dx, a.in);
  double scale = sqrt(dot_ff(ym, ym, a.out) * dot_ff(dy, dy, a.out));
  ck_assert_msg(fabs(lhs - rhs) < 1e-5 * scale, "<Fx,dy> %.9g != <x,F^T dy> %.9g", lhs, rhs);
  ds_context_destroy(ctx);
  free(x1), free(x2), free(mix), free(dy), free(y1), free(y2), free(ym), free(dx);
}
END_TEST

/* <P x, y> = <x, P^T y> for spectral pooling, both layouts. */
START_TEST(test_spectral_pool_adjoint) {
  const int hs[] = {32, 17, 9, 64, 6, 2}, ws[] = {32, 12, 31, 20, 7, 2};
  const float strides[][2] = {{2, 2}, {1.5f, 3}, {3.3f, 1}, {2, 4}, {1, 1}, {1, 7}};
  int h = hs[_i], w = ws[_i], n = 2, c = 3, oh, ow;
  ck_assert_int_eq(ds_spectral_pool_output_size(h, w, strides[_i], &oh, &ow), DS_OK);
  size_t in = (size_t)n * c * h * w, out = (size_t)n * c * oh * ow;
  float *x = buffer(in, 6), *dy = buffer(out, 7), *y = buffer(out, 0), *dx = buffer(in, 0);
  ds_context *ctx = cpu_context(2);
  for (int layout = 0; layout < 2; layout++) {
    ck_assert_int_eq(ds_spectral_pool_forward(ctx, layout, n, c, h, w, strides[_i], x, oh, ow, y), DS_OK);
    ck_assert_int_eq(ds_spectral_pool_backward(ctx, layout, n, c, h, w, strides[_i], oh, ow, dy, dx), DS_OK);
    double lhs = dot_ff(y, dy, out), rhs = dot_ff(x, dx, in);
    double scale = sqrt(dot_ff(y, y, out) * dot_ff(dy, dy, out));
    ck_assert_msg(fabs(lhs - rhs) < 1e-5 * scale, "%dx%d layout %d: %.9g != %.9g", h, w, layout, lhs, rhs);
  }
  ds_context_destroy(ctx);
  free(x), free(dy), free(y), free(dx);
}
END_TEST

/* Asking for dx alone, dstrides alone or both gives the same numbers. */
START_TEST(test_optional_outputs_independent) {
  const shape *s = &shapes[_i];
  run a = setup(s, DS_LAYOUT_NCHW);
  float *x = buffer(a.in, 8), *dy = buffer(a.out, 9), *dx1 = buffer(a.in, 0), *dx2 = buffer(a.in, 0);
  float ds1[2], ds2[2];
  ds_context *ctx = cpu_context(2);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, x, a.oh, a.ow, dy, dx1, ds1), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, NULL, a.oh, a.ow, dy, dx2, NULL), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &a.d, s->n, s->c, s->h, s->w, s->s, x, a.oh, a.ow, dy, NULL, ds2), DS_OK);
  ck_assert_int_eq(memcmp(dx1, dx2, sizeof(float) * a.in), 0);
  ck_assert_float_eq(ds1[0], ds2[0]);
  ck_assert_float_eq(ds1[1], ds2[1]);
  if (s->shared) ck_assert_float_eq(ds1[1], 0.0f);
  ds_context_destroy(ctx);
  free(x), free(dy), free(dx1), free(dx2);
}
END_TEST

/* Images of a batch travel through the FFTs in pairs; each image's result
 * must still be accurate relative to its own size: an image next to one
 * 10^4 times larger (or 10^-4) gives what it gives alone, and an all-zero
 * image gives exact zeros (y and dx). */
START_TEST(test_pairs_do_not_leak) {
  const float scale[] = {1e4f, 1e-4f, 0.0f};
  int h = 20, w = 20, oh, ow, n = 1, c = 2;
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  ck_assert_int_eq(ds_diffstride_output_size(&d, h, w, (float[]){2.2f, 1.7f}, &oh, &ow), DS_OK);
  float *x = buffer((size_t)c * h * w, 11), *y = buffer((size_t)c * oh * ow, 0), *alone = buffer((size_t)oh * ow, 0);
  float *dy = buffer((size_t)c * oh * ow, 12), *dx = buffer((size_t)c * h * w, 0), *dx_alone = buffer((size_t)h * w, 0);
  ds_context *ctx = cpu_context(1);
  const float *s = (float[]){2.2f, 1.7f};
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, 1, 1, h, w, s, x + h * w, oh, ow, alone), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, 1, 1, h, w, s, NULL, oh, ow, dy + oh * ow, dx_alone, NULL), DS_OK);
  for (int i = 0; i < h * w; i++) x[i] *= scale[_i];
  for (int i = 0; i < oh * ow; i++) dy[i] *= scale[_i];
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, n, c, h, w, s, x, oh, ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, n, c, h, w, s, NULL, oh, ow, dy, dx, NULL), DS_OK);
  ck_assert_double_lt(rel_error_ff(y + oh * ow, alone, (size_t)(oh * ow)), 2e-6);
  ck_assert_double_lt(rel_error_ff(dx + h * w, dx_alone, (size_t)(h * w)), 2e-6);
  for (int i = 0; scale[_i] == 0.0f && i < oh * ow; i++) ck_assert_float_eq(y[i], 0.0f);
  for (int i = 0; scale[_i] == 0.0f && i < h * w; i++) ck_assert_float_eq(dx[i], 0.0f);
  ds_context_destroy(ctx);
  free(x), free(y), free(alone), free(dy), free(dx), free(dx_alone);
}
END_TEST

/* Magnitudes near FLT_MAX (and near the smallest normal floats): the layer
 * is linear in x (y, dstrides) and in dy (dx, dstrides), so an image 2^k
 * times a moderate one must give 2^k times its results wherever those are
 * floats, alone (n*c = 1, 3) or beside a moderate image in either lane of
 * the pair: case 0 an image of values near 10^38, case 1 one pixel at
 * FLT_MAX / 4 in zeros (dy scaled down so that dstrides is a float), case 2
 * values near 10^-35. */
static void scale_by(float *v, size_t count, float s) {
  for (size_t i = 0; i < count; i++) v[i] *= s;
}

START_TEST(test_extreme_magnitudes) {
  const float up[] = {0x1p126f, 0x1p125f, 0x1p-116f}, dy_scale[] = {0x1p-110f, 0x1p-100f, 0x1p100f};
  enum { H = 20, W = 18 };
  const float s[2] = {1.8f, 2.3f};
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  int oh, ow;
  ck_assert_int_eq(ds_diffstride_output_size(&d, H, W, s, &oh, &ow), DS_OK);
  size_t in = H * W, out = (size_t)oh * ow;
  float *x = buffer(3 * in, 31), *dy = buffer(3 * out, 32), *y = buffer(3 * out, 0), *want = buffer(out, 0), ds[2], ds_want[2];
  if (_i == 1) memset(x, 0, sizeof(float) * in), x[7 * W + 5] = 1.0f;
  ds_context *ctx = cpu_context(1);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, 1, 1, H, W, s, x, oh, ow, want), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, 1, 1, H, W, s, x, oh, ow, dy, NULL, ds_want), DS_OK);
  scale_by(want, out, up[_i]), scale_by(ds_want, 2, up[_i] * dy_scale[_i]);
  scale_by(x, in, up[_i]), scale_by(dy, out, dy_scale[_i]);
  for (int slot = 0; slot < 3; slot++) { /* the extreme image alone, then in lane 0 and lane 1 of a pair */
    float *xs = buffer(3 * in, 33), *dys = calloc(3 * out, sizeof(float)); /* the other images: dy = 0 */
    int images = slot == 0 ? 1 : 3, at = slot == 2 ? 1 : 0;
    memcpy(xs + at * in, x, sizeof(float) * in), memcpy(dys + at * out, dy, sizeof(float) * out);
    ck_assert_int_eq(ds_diffstride_forward(ctx, &d, 1, images, H, W, s, xs, oh, ow, y), DS_OK);
    ck_assert_int_eq(ds_diffstride_backward(ctx, &d, 1, images, H, W, s, xs, oh, ow, dys, NULL, ds), DS_OK);
    for (size_t i = 0; i < out; i++) ck_assert_msg(isfinite(y[at * out + i]), "case %d slot %d: y[%zu] = %g", _i, slot, i, y[at * out + i]);
    ck_assert_msg(rel_error_ff(y + at * out, want, out) < 2e-6, "case %d slot %d: y off by %g", _i, slot,
                  rel_error_ff(y + at * out, want, out));
    ck_assert_msg(isfinite(ds[0]) && isfinite(ds[1]) && rel_error_ff(ds, ds_want, 2) < 1e-5,
                  "case %d slot %d: dstrides %g %g, want %g %g", _i, slot, ds[0], ds[1], ds_want[0], ds_want[1]);
    free(xs), free(dys);
  }
  ds_context_destroy(ctx);
  free(x), free(dy), free(y), free(want);
}
END_TEST

/* A NaN or an infinity in one image stays in that image: its partner in
 * the shared transform gives what it gives alone (forward and dx), and the
 * bad image's own result is not finite. */
START_TEST(test_non_finite_stays_in_its_image) {
  const float bad[] = {NAN, INFINITY, -INFINITY};
  int h = 16, w = 14, oh, ow;
  const float s[2] = {2.0f, 1.6f};
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  d.layout = _i == 2 ? DS_LAYOUT_NHWC : DS_LAYOUT_NCHW; /* NHWC: adjacent channels share a transform */
  ck_assert_int_eq(ds_diffstride_output_size(&d, h, w, s, &oh, &ow), DS_OK);
  float *x = buffer((size_t)2 * h * w, 21), *y = buffer((size_t)2 * oh * ow, 0), *alone = buffer((size_t)oh * ow, 0);
  float *dy = buffer((size_t)2 * oh * ow, 22), *dx = buffer((size_t)2 * h * w, 0), *dx_alone = buffer((size_t)h * w, 0);
  ds_context *ctx = cpu_context(1);
  ds_diffstride_desc one = d;
  one.layout = DS_LAYOUT_NCHW;
  float *x1 = buffer((size_t)h * w, 0), *dy1 = buffer((size_t)oh * ow, 0);
  for (int p = 0; p < h * w; p++) x1[p] = d.layout ? x[2 * p + 1] : x[h * w + p];
  for (int p = 0; p < oh * ow; p++) dy1[p] = d.layout ? dy[2 * p + 1] : dy[oh * ow + p];
  ck_assert_int_eq(ds_diffstride_forward(ctx, &one, 1, 1, h, w, s, x1, oh, ow, alone), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &one, 1, 1, h, w, s, NULL, oh, ow, dy1, dx_alone, NULL), DS_OK);
  x[d.layout ? 2 * 37 : 37] = bad[_i], dy[d.layout ? 2 * 5 : 5] = bad[_i]; /* image 0 only */
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, 1, 2, h, w, s, x, oh, ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &d, 1, 2, h, w, s, NULL, oh, ow, dy, dx, NULL), DS_OK);
  int y_bad = 0, dx_bad = 0;
  for (int p = 0; p < oh * ow; p++) {
    ck_assert_float_eq(d.layout ? y[2 * p + 1] : y[oh * ow + p], alone[p]);
    y_bad |= !isfinite(d.layout ? y[2 * p] : y[p]);
  }
  for (int p = 0; p < h * w; p++) {
    ck_assert_float_eq(d.layout ? dx[2 * p + 1] : dx[h * w + p], dx_alone[p]);
    dx_bad |= !isfinite(d.layout ? dx[2 * p] : dx[p]);
  }
  ck_assert(y_bad && dx_bad);
  ds_context_destroy(ctx);
  free(x), free(y), free(alone), free(dy), free(dx), free(dx_alone), free(x1), free(dy1);
}
END_TEST

/* The spec's examples, and effective strides as a fixed point (storing them
 * back, as the reference layer does, changes nothing). */
START_TEST(test_spec_sizes) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  int oh, ow;
  ck_assert_int_eq(ds_diffstride_output_size(&d, 64, 64, (float[]){2, 4}, &oh, &ow), DS_OK);
  ck_assert(oh == 40 && ow == 24);
  ck_assert_int_eq(ds_diffstride_output_size(&d, 32, 32, (float[]){2, 2}, &oh, &ow), DS_OK);
  ck_assert(oh == 24 && ow == 24);
  ck_assert_int_eq(ds_spectral_pool_output_size(64, 64, (float[]){2, 4}, &oh, &ow), DS_OK);
  ck_assert(oh == 32 && ow == 16);
  float eff[2], again[2];
  d.shared_stride = 1;
  ck_assert_int_eq(ds_diffstride_effective_strides(&d, 28, 10, (float[]){0.5f, 99}, eff), DS_OK);
  ck_assert_float_eq_tol(eff[0], 10.0f / 6.0f, 1e-6f);
  ck_assert_float_eq(eff[0], eff[1]);
  d.shared_stride = 0, d.lower_limit = 1.5f, d.upper_limit = 3.0f;
  ck_assert_int_eq(ds_diffstride_effective_strides(&d, 32, 32, (float[]){-4, 7}, eff), DS_OK);
  ck_assert(eff[0] == 1.5f && eff[1] == 3.0f);
  ck_assert_int_eq(ds_diffstride_effective_strides(&d, 32, 32, eff, again), DS_OK);
  ck_assert(again[0] == eff[0] && again[1] == eff[1]);
}
END_TEST

Suite *property_suite(void) {
  Suite *s = suite_create("properties");
  TCase *tc = tcase_create("properties");
  tcase_add_loop_test(tc, test_nhwc_equals_nchw, 0, NSHAPES);
  tcase_add_loop_test(tc, test_linear_and_adjoint, 0, NSHAPES);
  tcase_add_loop_test(tc, test_spectral_pool_adjoint, 0, 6);
  tcase_add_loop_test(tc, test_optional_outputs_independent, 0, NSHAPES);
  tcase_add_test(tc, test_spec_sizes);
  tcase_add_loop_test(tc, test_pairs_do_not_leak, 0, 3);
  tcase_add_loop_test(tc, test_non_finite_stays_in_its_image, 0, 3);
  tcase_add_loop_test(tc, test_extreme_magnitudes, 0, 3);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
