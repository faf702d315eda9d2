/* The training calls (ds_diffstride_forward_training keeping a reserve,
 * ds_diffstride_backward_reserved reading it): the reserve's size, the
 * same numbers as the plain calls over shapes, layouts, thread counts and
 * odd image counts, strides changed between the two calls, non-finite
 * inputs, and every misuse named in the error message. The golden cases
 * run through them in test_golden.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One batch: shape, layout, strides, options. */
typedef struct batch {
  int n, c, h, w, layout, cropping, shared;
  float s[2];
} batch;

static const batch batches[] = {
    {2, 3, 32, 32, DS_LAYOUT_NCHW, 1, 0, {2.0f, 2.0f}},  {2, 3, 32, 32, DS_LAYOUT_NHWC, 1, 0, {2.0f, 2.0f}},
    {1, 5, 17, 23, DS_LAYOUT_NCHW, 1, 0, {1.7f, 2.6f}},  {3, 1, 17, 23, DS_LAYOUT_NHWC, 1, 0, {1.7f, 2.6f}},
    {1, 1, 9, 12, DS_LAYOUT_NCHW, 1, 0, {3.1f, 1.3f}},   {2, 2, 24, 20, DS_LAYOUT_NCHW, 0, 0, {2.5f, 1.5f}},
    {3, 3, 28, 28, DS_LAYOUT_NCHW, 1, 1, {2.2f, 9.0f}},  {5, 7, 12, 16, DS_LAYOUT_NHWC, 1, 0, {1.2f, 2.9f}},
};
#define NBATCHES (int)(sizeof batches / sizeof batches[0])

static ds_diffstride_desc desc_of(const batch *b) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  d.layout = b->layout, d.cropping = b->cropping, d.shared_stride = b->shared;
  return d;
}

/* Buffers of one batch: x, dy random; the rest outputs. */
typedef struct run {
  ds_diffstride_desc d;
  int oh, ow;
  size_t in, out, bytes;
  float *x, *dy, *y, *dx;
  unsigned char *reserve;
} run;

static run run_new(const batch *b, unsigned seed) {
  run r = {.d = desc_of(b)};
  ck_assert_int_eq(ds_diffstride_output_size(&r.d, b->h, b->w, b->s, &r.oh, &r.ow), DS_OK);
  ck_assert_int_eq(ds_diffstride_reserve_size(&r.d, b->n, b->c, b->h, b->w, b->s, &r.bytes), DS_OK);
  r.in = (size_t)b->n * b->c * b->h * b->w, r.out = (size_t)b->n * b->c * r.oh * r.ow;
  r.x = malloc(sizeof(float) * r.in), r.dx = malloc(sizeof(float) * r.in);
  r.dy = malloc(sizeof(float) * r.out), r.y = malloc(sizeof(float) * r.out);
  r.reserve = malloc(r.bytes);
  fill_random(r.x, r.in, seed), fill_random(r.dy, r.out, seed + 1u);
  return r;
}

static void run_free(run *r) { free(r->x), free(r->dx), free(r->dy), free(r->y), free(r->reserve); }

static ds_status train_forward(ds_context *ctx, const batch *b, run *r) {
  return ds_diffstride_forward_training(ctx, &r->d, b->n, b->c, b->h, b->w, b->s, r->x, r->oh, r->ow, r->y,
                                        r->reserve, r->bytes);
}

static ds_status train_backward(ds_context *ctx, const batch *b, run *r, float ds[2]) {
  return ds_diffstride_backward_reserved(ctx, &r->d, b->n, b->c, b->h, b->w, b->s, r->reserve, r->bytes, r->oh,
                                         r->ow, r->dy, r->dx, ds);
}

/* ------------------------------------------------------------------ size */

/* 64 header bytes, then per pair of images 8 bytes and out_h x 2 K
 * complex floats, K = out_w/2 + 1. */
START_TEST(test_reserve_size) {
  for (int i = 0; i < NBATCHES; i++) {
    const batch *b = &batches[i];
    ds_diffstride_desc d = desc_of(b);
    int oh, ow;
    size_t bytes = 0;
    ck_assert_int_eq(ds_diffstride_output_size(&d, b->h, b->w, b->s, &oh, &ow), DS_OK);
    ck_assert_int_eq(ds_diffstride_reserve_size(&d, b->n, b->c, b->h, b->w, b->s, &bytes), DS_OK);
    ck_assert_uint_eq(bytes, 64 + ((size_t)b->n * b->c + 1) / 2 * (8 + 16 * (size_t)oh * (ow / 2 + 1)));
  }
  ds_diffstride_desc d = desc_of(&batches[0]);
  size_t bytes;
  ck_assert_int_eq(ds_diffstride_reserve_size(&d, 2, 3, 32, 32, batches[0].s, NULL), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_last_error(), "bytes: NULL pointer");
  ck_assert_int_eq(ds_diffstride_reserve_size(&d, 0, 3, 32, 32, batches[0].s, &bytes), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride_reserve_size(NULL, 2, 3, 32, 32, batches[0].s, &bytes), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_diffstride_reserve_size(&d, 2, 3, 4, 32, batches[0].s, &bytes), DS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---------------------------------------------------------------- numbers */

/* Against the plain calls on one context, with 1 and 2 threads: y, dx and
 * dstrides bitwise (the same transforms and sums; only where x's spectra
 * come from differs); bytes of the reserve past its size are left alone. */
START_TEST(test_same_as_plain) {
  const batch *b = &batches[_i / 2];
  ds_context *ctx = cpu_context(1 + _i % 2);
  run r = run_new(b, 40u + (unsigned)_i);
  float *y = malloc(sizeof(float) * r.out), *dx = malloc(sizeof(float) * r.in), ds[2], want[2];
  ck_assert_int_eq(ds_diffstride_forward(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, r.x, r.oh, r.ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, r.x, r.oh, r.ow, r.dy, dx, want),
                   DS_OK);
  unsigned char *big = malloc(r.bytes + 64);
  memset(big, 0xa5, r.bytes + 64);
  free(r.reserve), r.reserve = big;
  ck_assert_int_eq(train_forward(ctx, b, &r), DS_OK);
  for (size_t i = r.bytes; i < r.bytes + 64; i++) ck_assert_uint_eq(big[i], 0xa5);
  memset(r.x, 0xff, sizeof(float) * r.in); /* x is not read again */
  ck_assert_int_eq(train_backward(ctx, b, &r, ds), DS_OK);
  ck_assert_msg(!memcmp(r.y, y, sizeof(float) * r.out), "batch %d: y differs", _i / 2);
  ck_assert_msg(!memcmp(r.dx, dx, sizeof(float) * r.in), "batch %d: dx differs", _i / 2);
  ck_assert_msg(isfinite(want[0]) && !memcmp(ds, want, sizeof ds), "batch %d: dstrides %.9g %.9g, want %.9g %.9g",
                _i / 2, (double)ds[0], (double)ds[1], (double)want[0], (double)want[1]);
  run_free(&r), free(y), free(dx);
  ds_context_destroy(ctx);
}
END_TEST

/* dx alone needs no reserve (NULL is fine) and equals the plain dx. */
START_TEST(test_dx_without_reserve) {
  const batch *b = &batches[2];
  ds_context *ctx = cpu_context(2);
  run r = run_new(b, 7u);
  float *dx = malloc(sizeof(float) * r.in);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, NULL, r.oh, r.ow, r.dy, dx, NULL),
                   DS_OK);
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, NULL, 0, r.oh, r.ow, r.dy,
                                                   r.dx, NULL), DS_OK);
  ck_assert(!memcmp(r.dx, dx, sizeof(float) * r.in));
  run_free(&r), free(dx);
  ds_context_destroy(ctx);
}
END_TEST

/* The reserve holds unmasked spectra: a backward at strides that changed
 * since the forward but keep the output size uses it, and gives the plain
 * backward's numbers at the new strides. */
START_TEST(test_strides_changed_same_size) {
  batch b = batches[0];
  ds_context *ctx = cpu_context(1);
  run r = run_new(&b, 9u);
  ck_assert_int_eq(train_forward(ctx, &b, &r), DS_OK);
  b.s[0] = 2.01f, b.s[1] = 2.02f;
  int oh, ow;
  ck_assert_int_eq(ds_diffstride_output_size(&r.d, b.h, b.w, b.s, &oh, &ow), DS_OK);
  ck_assert_int_eq(oh, r.oh);
  ck_assert_int_eq(ow, r.ow);
  float ds[2], want[2], *dx = malloc(sizeof(float) * r.in);
  ck_assert_int_eq(train_backward(ctx, &b, &r, ds), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &r.d, b.n, b.c, b.h, b.w, b.s, r.x, r.oh, r.ow, r.dy, dx, want), DS_OK);
  ck_assert(!memcmp(r.dx, dx, sizeof(float) * r.in));
  ck_assert_msg(!memcmp(ds, want, sizeof ds), "dstrides %.9g %.9g, want %.9g %.9g", (double)ds[0], (double)ds[1],
                (double)want[0], (double)want[1]);
  run_free(&r), free(dx);
  ds_context_destroy(ctx);
}
END_TEST

/* A NaN in one image: the other images' y are the plain forward's (each
 * image alone in its transforms), dstrides is not finite, dx is the plain
 * dx (it does not depend on x). */
START_TEST(test_non_finite_input) {
  const batch *b = &batches[0];
  ds_context *ctx = cpu_context(1);
  run r = run_new(b, 11u);
  size_t hw = (size_t)b->h * b->w, ohw = (size_t)r.oh * r.ow;
  r.x[2 * hw + 5] = NAN; /* image 2, the first of pair 1 */
  float *y = malloc(sizeof(float) * r.out), *dx = malloc(sizeof(float) * r.in), ds[2];
  ck_assert_int_eq(ds_diffstride_forward(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, r.x, r.oh, r.ow, y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &r.d, b->n, b->c, b->h, b->w, b->s, NULL, r.oh, r.ow, r.dy, dx, NULL),
                   DS_OK);
  ck_assert_int_eq(train_forward(ctx, b, &r), DS_OK);
  ck_assert_int_eq(train_backward(ctx, b, &r, ds), DS_OK);
  for (size_t img = 0; img < (size_t)b->n * b->c; img++)
    if (img != 2) ck_assert_msg(!memcmp(r.y + img * ohw, y + img * ohw, sizeof(float) * ohw), "image %zu: y", img);
  ck_assert(!isfinite(ds[0]) && !isfinite(ds[1]));
  ck_assert(!memcmp(r.dx, dx, sizeof(float) * r.in));
  run_free(&r), free(y), free(dx);
  ds_context_destroy(ctx);
}
END_TEST

/* ----------------------------------------------------------------- errors */

/* The training calls on r's batch b with the given x, dy and reserve. */
static ds_status forward_with(ds_context *ctx, const batch *b, run *r, const float *x, void *reserve, size_t bytes) {
  return ds_diffstride_forward_training(ctx, &r->d, b->n, b->c, b->h, b->w, b->s, x, r->oh, r->ow, r->y, reserve,
                                        bytes);
}

static ds_status backward_with(ds_context *ctx, const batch *b, run *r, const void *reserve, size_t bytes,
                               const float *dy, float ds[2]) {
  return ds_diffstride_backward_reserved(ctx, &r->d, b->n, b->c, b->h, b->w, b->s, reserve, bytes, r->oh, r->ow, dy,
                                         r->dx, ds);
}

/* The last failure on ctx was DS_ERR_INVALID_ARGUMENT with `want` in its
 * message. */
static void expect_refused(ds_context *ctx, ds_status st, const char *want) {
  ck_assert_int_eq(st, DS_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(ds_context_last_error(ctx), want), "message '%s' lacks '%s'", ds_context_last_error(ctx),
                want);
}

/* Each misuse fails with DS_ERR_INVALID_ARGUMENT and a message naming it,
 * before anything is written. */
START_TEST(test_misuse) {
  batch b = batches[0];
  ds_context *ctx = cpu_context(1);
  run r = run_new(&b, 13u);
  float ds[2] = {7.0f, 7.0f};
  expect_refused(ctx, forward_with(ctx, &b, &r, r.x, NULL, r.bytes), "reserve: NULL pointer");
  expect_refused(ctx, forward_with(ctx, &b, &r, r.x, r.reserve, r.bytes - 1), "reserve_bytes");
  expect_refused(ctx, forward_with(ctx, &b, &r, r.x, r.reserve + 4, r.bytes - 4), "not 8-byte aligned");
  expect_refused(ctx, forward_with(ctx, &b, &r, NULL, r.reserve, r.bytes), "x: NULL pointer");
  memset(r.reserve, 0, r.bytes); /* never written by a training forward */
  expect_refused(ctx, backward_with(ctx, &b, &r, r.reserve, r.bytes, r.dy, ds),
                 "reserve: not written by a training forward");
  expect_refused(ctx, backward_with(ctx, &b, &r, NULL, r.bytes, r.dy, ds), "reserve: NULL pointer");
  ck_assert(ds[0] == 7.0f && ds[1] == 7.0f);
  ck_assert_int_eq(train_forward(ctx, &b, &r), DS_OK);
  expect_refused(ctx, backward_with(ctx, &b, &r, r.reserve, r.bytes, NULL, ds), "dy: NULL pointer");
  run_free(&r);
  ds_context_destroy(ctx);
}
END_TEST

/* A reserve written for another batch or geometry is refused, naming both;
 * a larger stride (smaller output) is a different geometry. */
START_TEST(test_wrong_reserve) {
  batch b = batches[0];
  ds_context *ctx = cpu_context(1);
  run r = run_new(&b, 17u);
  float ds[2];
  ck_assert_int_eq(train_forward(ctx, &b, &r), DS_OK);
  batch other = b;
  other.n = 1;
  expect_refused(ctx, backward_with(ctx, &other, &r, r.reserve, r.bytes, r.dy, ds),
                 "reserve: written for 6 images of 32x32 -> 24x24 (CPU), this call has 3 of 32x32 -> 24x24 (CPU)");
  other = b;
  other.s[0] = other.s[1] = 3.0f;
  ck_assert_int_eq(ds_diffstride_output_size(&r.d, b.h, b.w, other.s, &r.oh, &r.ow), DS_OK);
  expect_refused(ctx, backward_with(ctx, &other, &r, r.reserve, r.bytes, r.dy, ds),
                 "written for 6 images of 32x32 -> 24x24 (CPU), this call has 6 of 32x32 -> 20x20");
  run_free(&r);
  ds_context_destroy(ctx);
}
END_TEST

Suite *reserve_suite(void) {
  Suite *s = suite_create("reserve");
  TCase *tc = tcase_create("reserve");
  tcase_add_test(tc, test_reserve_size);
  tcase_add_loop_test(tc, test_same_as_plain, 0, 2 * NBATCHES);
  tcase_add_test(tc, test_dx_without_reserve);
  tcase_add_test(tc, test_strides_changed_same_size);
  tcase_add_test(tc, test_non_finite_input);
  tcase_add_test(tc, test_misuse);
  tcase_add_test(tc, test_wrong_reserve);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
