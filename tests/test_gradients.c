/* Random shapes and strides against the independent float64 reference
 * (reference.c): forward, dx (the reference's transpose, built column by
 * column) and dstrides (central finite differences of the reference, at
 * strides away from the layer's kinks). Odd and even sizes, cropping on and
 * off, shared strides, stride limits, spectral pooling. */
#include <math.h>
#include <stdlib.h>

#include "reference.h"
#include "util.h"

typedef struct config {
  ref_layer ref;
  ds_diffstride_desc desc;
  int n, c, h, w, oh, ow;
  float s[2];
} config;

/* A random DiffStride configuration at least `margin` away from any kink. */
static config random_config(unsigned seed, int max_side, double margin) {
  unsigned st = seed * 7919u + 17u;
  config k;
  do {
    ds_diffstride_desc_init(&k.desc);
    k.desc.smoothness = (float)(1 + rand_below(&st, 4));
    k.desc.cropping = rand_below(&st, 4) != 0;
    k.desc.shared_stride = rand_below(&st, 4) == 0;
    if (rand_below(&st, 3) == 0) k.desc.lower_limit = 1.25f, k.desc.upper_limit = 3.0f;
    int min_side = (int)k.desc.smoothness + 2;
    k.h = min_side + (int)rand_below(&st, (unsigned)(max_side - min_side));
    k.w = min_side + (int)rand_below(&st, (unsigned)(max_side - min_side));
    k.n = 1 + (int)rand_below(&st, 2), k.c = 1 + (int)rand_below(&st, 3);
    for (int i = 0; i < 2; i++) k.s[i] = 1.0f + (float)rand_below(&st, 3000) / 1000.0f;
    k.ref = (ref_layer){1, k.desc.smoothness, k.desc.cropping, k.desc.shared_stride,
                        k.desc.lower_limit, k.desc.upper_limit, {k.s[0], k.s[1]}};
  } while (ref_kink_distance(&k.ref, k.h, k.w) < margin);
  ref_output_size(&k.ref, k.h, k.w, &k.oh, &k.ow);
  return k;
}

/* Random spectral pooling configuration (no kinks: strides are fixed). */
static config random_pool_config(unsigned seed) {
  unsigned st = seed * 104729u + 3u;
  config k = {.n = 1 + (int)rand_below(&st, 2), .c = 1 + (int)rand_below(&st, 3)};
  k.h = 2 + (int)rand_below(&st, 20), k.w = 2 + (int)rand_below(&st, 20);
  for (int i = 0; i < 2; i++) k.s[i] = 1.0f + (float)rand_below(&st, 3000) / 1000.0f;
  k.ref = (ref_layer){.diffstride = 0, .s = {k.s[0], k.s[1]}};
  ref_output_size(&k.ref, k.h, k.w, &k.oh, &k.ow);
  return k;
}

static void forward(ds_context *ctx, const config *k, const float *x, float *y) {
  if (k->ref.diffstride)
    ck_assert_int_eq(ds_diffstride_forward(ctx, &k->desc, k->n, k->c, k->h, k->w, k->s, x, k->oh, k->ow, y), DS_OK);
  else
    ck_assert_int_eq(ds_spectral_pool_forward(ctx, 0, k->n, k->c, k->h, k->w, k->s, x, k->oh, k->ow, y), DS_OK);
}

static void backward(ds_context *ctx, const config *k, const float *x, const float *dy, float *dx, float *ds) {
  if (k->ref.diffstride)
    ck_assert_int_eq(ds_diffstride_backward(ctx, &k->desc, k->n, k->c, k->h, k->w, k->s, x, k->oh, k->ow, dy, dx, ds), DS_OK);
  else
    ck_assert_int_eq(ds_spectral_pool_backward(ctx, 0, k->n, k->c, k->h, k->w, k->s, k->oh, k->ow, dy, dx), DS_OK);
}

/* The library's forward against the reference, image by image. */
static void check_forward(const config *k, unsigned seed) {
  size_t hw = (size_t)k->h * k->w, ohw = (size_t)k->oh * k->ow, imgs = (size_t)k->n * k->c;
  float *x = malloc(sizeof(float) * hw * imgs), *y = malloc(sizeof(float) * ohw * imgs);
  double *xd = malloc(sizeof(double) * hw * imgs), *yd = malloc(sizeof(double) * ohw * imgs);
  fill_random(x, hw * imgs, seed);
  for (size_t i = 0; i < hw * imgs; i++) xd[i] = x[i];
  for (size_t i = 0; i < imgs; i++) ref_forward(&k->ref, k->h, k->w, xd + i * hw, yd + i * ohw);
  ds_context *ctx = cpu_context(1);
  forward(ctx, k, x, y);
  double err = rel_error_fd(y, yd, ohw * imgs);
  ck_assert_msg(err < 1e-5, "seed %u (%dx%d -> %dx%d): forward error %g", seed, k->h, k->w, k->oh, k->ow, err);
  ds_context_destroy(ctx);
  free(x), free(y), free(xd), free(yd);
}

START_TEST(test_forward_reference) { check_forward((config[]){random_config(_i, 24, 0.0)}, _i); }
END_TEST

START_TEST(test_pool_forward_reference) { check_forward((config[]){random_pool_config(_i)}, _i); }
END_TEST

/* dx of one image against the reference's transpose: dx[p] = <dy, F(e_p)>. */
static void check_dx(const config *k, unsigned seed) {
  size_t hw = (size_t)k->h * k->w, ohw = (size_t)k->oh * k->ow;
  config one = *k;
  one.n = one.c = 1;
  float *dy = malloc(sizeof(float) * ohw), *dx = malloc(sizeof(float) * hw);
  double *e = calloc(hw, sizeof(double)), *col = malloc(sizeof(double) * ohw), *want = malloc(sizeof(double) * hw);
  fill_random(dy, ohw, seed);
  for (size_t p = 0; p < hw; p++) {
    e[p] = 1.0;
    ref_forward(&k->ref, k->h, k->w, e, col);
    e[p] = 0.0;
    want[p] = 0.0;
    for (size_t q = 0; q < ohw; q++) want[p] += col[q] * dy[q];
  }
  ds_context *ctx = cpu_context(1);
  backward(ctx, &one, NULL, dy, dx, NULL);
  double err = rel_error_fd(dx, want, hw);
  ck_assert_msg(err < 1e-5, "seed %u (%dx%d -> %dx%d): dx error %g", seed, k->h, k->w, k->oh, k->ow, err);
  ds_context_destroy(ctx);
  free(dy), free(dx), free(e), free(col), free(want);
}

START_TEST(test_dx_reference) { check_dx((config[]){random_config(_i, 14, 0.0)}, _i); }
END_TEST

START_TEST(test_pool_dx_reference) { check_dx((config[]){random_pool_config(_i)}, _i); }
END_TEST

/* L(s) = sum(dy * y(s)) over the batch, by the reference. */
static double loss(const config *k, const double *x, const float *dy, const double s[2]) {
  size_t hw = (size_t)k->h * k->w, ohw = (size_t)k->oh * k->ow;
  ref_layer l = k->ref;
  l.s[0] = s[0], l.s[1] = s[1];
  double *y = malloc(sizeof(double) * ohw), total = 0.0;
  for (int i = 0; i < k->n * k->c; i++) {
    ref_forward(&l, k->h, k->w, x + i * hw, y);
    for (size_t q = 0; q < ohw; q++) total += y[q] * dy[i * ohw + q];
  }
  free(y);
  return total;
}

START_TEST(test_dstrides_finite_differences) {
  const double step = 1e-4;
  config k = random_config(_i + 1000, 20, 20 * step);
  size_t in = (size_t)k.n * k.c * k.h * k.w, out = (size_t)k.n * k.c * k.oh * k.ow;
  float *x = malloc(sizeof(float) * in), *dy = malloc(sizeof(float) * out), ds[2];
  double *xd = malloc(sizeof(double) * in), fd[2] = {0, 0};
  fill_random(x, in, _i), fill_random(dy, out, _i + 77);
  for (size_t i = 0; i < in; i++) xd[i] = x[i];
  for (int a = 0; a < (k.desc.shared_stride ? 1 : 2); a++) {
    double hi[2] = {k.s[0], k.s[1]}, lo[2] = {k.s[0], k.s[1]};
    hi[a] += step, lo[a] -= step;
    fd[a] = (loss(&k, xd, dy, hi) - loss(&k, xd, dy, lo)) / (2 * step);
  }
  ds_context *ctx = cpu_context(2);
  backward(ctx, &k, x, dy, NULL, ds);
  double scale = fmax(fmax(fabs(fd[0]), fabs(fd[1])), 1e-3);
  for (int a = 0; a < 2; a++)
    ck_assert_msg(fabs(ds[a] - fd[a]) < 2e-4 * scale, "seed %d (%dx%d R=%g crop %d shared %d s=%g,%g): dstrides[%d] %.7g, fd %.7g",
                  _i, k.h, k.w, (double)k.desc.smoothness, k.desc.cropping, k.desc.shared_stride,
                  (double)k.s[0], (double)k.s[1], a, (double)ds[a], fd[a]);
  ds_context_destroy(ctx);
  free(x), free(dy), free(xd);
}
END_TEST

Suite *gradient_suite(void) {
  Suite *s = suite_create("reference");
  TCase *tc = tcase_create("random");
  tcase_add_loop_test(tc, test_forward_reference, 0, 24);
  tcase_add_loop_test(tc, test_pool_forward_reference, 0, 16);
  tcase_add_loop_test(tc, test_dx_reference, 0, 16);
  tcase_add_loop_test(tc, test_pool_dx_reference, 0, 12);
  tcase_add_loop_test(tc, test_dstrides_finite_differences, 0, 24);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return s;
}
