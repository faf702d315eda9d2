/* Every bad argument of every entry point: the status, a message naming the
 * argument (per context and per thread), and outputs left untouched. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

enum { N = 1, C = 2, H = 16, W = 12 };

/* The arguments of one call, valid until a mutation spoils one of them. */
typedef struct args {
  ds_context *ctx;
  ds_diffstride_desc desc;
  const ds_diffstride_desc *pdesc;
  int layout, n, c, h, w, oh, ow;
  float s[2];
  const float *strides, *x, *dy;
  float *y, *dx, *ds, *eff;
  int *out_h, *out_w;
} args;

static float x_buf[N * C * H * W], dy_buf[N * C * H * W];
static float y_buf[N * C * H * W], dx_buf[N * C * H * W], ds_buf[2], eff_buf[2];
static int oh_buf, ow_buf;

static void poison(void) {
  memset(y_buf, 0x7f, sizeof y_buf), memset(dx_buf, 0x7f, sizeof dx_buf);
  memset(ds_buf, 0x7f, sizeof ds_buf), memset(eff_buf, 0x7f, sizeof eff_buf);
  oh_buf = ow_buf = -12345;
}

static int untouched(void) {
  unsigned char p[sizeof y_buf];
  memset(p, 0x7f, sizeof p);
  return !memcmp(y_buf, p, sizeof y_buf) && !memcmp(dx_buf, p, sizeof dx_buf) &&
         !memcmp(ds_buf, p, sizeof ds_buf) && !memcmp(eff_buf, p, sizeof eff_buf) &&
         oh_buf == -12345 && ow_buf == -12345;
}

/* Entry points, as bits of a mutation's `applies` mask. */
enum { FWD = 1, BWD = 2, SIZE = 4, EFF = 8, PFWD = 16, PBWD = 32, PSIZE = 64 };

static ds_status call(int entry, const args *a) {
  switch (entry) {
  case FWD: return ds_diffstride_forward(a->ctx, a->pdesc, a->n, a->c, a->h, a->w, a->strides, a->x, a->oh, a->ow, a->y);
  case BWD: return ds_diffstride_backward(a->ctx, a->pdesc, a->n, a->c, a->h, a->w, a->strides, a->x, a->oh, a->ow, a->dy, a->dx, a->ds);
  case SIZE: return ds_diffstride_output_size(a->pdesc, a->h, a->w, a->strides, a->out_h, a->out_w);
  case EFF: return ds_diffstride_effective_strides(a->pdesc, a->h, a->w, a->strides, a->eff);
  case PFWD: return ds_spectral_pool_forward(a->ctx, a->layout, a->n, a->c, a->h, a->w, a->strides, a->x, a->oh, a->ow, a->y);
  case PBWD: return ds_spectral_pool_backward(a->ctx, a->layout, a->n, a->c, a->h, a->w, a->strides, a->oh, a->ow, a->dy, a->dx);
  default: return ds_spectral_pool_output_size(a->h, a->w, a->strides, a->out_h, a->out_w);
  }
}

/* Valid arguments for entry (a 1x2x16x12 batch, strides 2). */
static void valid(args *a, ds_context *ctx, int entry) {
  *a = (args){.ctx = ctx, .layout = DS_LAYOUT_NCHW, .n = N, .c = C, .h = H, .w = W, .s = {2.0f, 2.0f},
              .x = x_buf, .dy = dy_buf, .y = y_buf, .dx = dx_buf, .ds = ds_buf, .eff = eff_buf,
              .out_h = &oh_buf, .out_w = &ow_buf};
  ds_diffstride_desc_init(&a->desc);
  a->pdesc = &a->desc;
  a->strides = a->s;
  if (entry >= PFWD)
    ck_assert_int_eq(ds_spectral_pool_output_size(H, W, a->s, &a->oh, &a->ow), DS_OK);
  else
    ck_assert_int_eq(ds_diffstride_output_size(&a->desc, H, W, a->s, &a->oh, &a->ow), DS_OK);
}

typedef struct bad {
  const char *what, *mention;
  int applies;
  ds_status want;
  void (*spoil)(args *);
} bad;

#define SPOIL(name, body) static void name(args *a) { body; }
SPOIL(no_ctx, a->ctx = NULL)
SPOIL(no_desc, a->pdesc = NULL)
SPOIL(zero_r, a->desc.smoothness = 0)
SPOIL(nan_r, a->desc.smoothness = NAN)
SPOIL(inf_r, a->desc.smoothness = INFINITY)
SPOIL(tiny_r, a->desc.smoothness = 1e-39f) /* 1/R overflows float: the ramp would be inf * 0 */
SPOIL(bad_crop, a->desc.cropping = 2)
SPOIL(bad_shared, a->desc.shared_stride = -1)
SPOIL(nan_lower, a->desc.lower_limit = NAN)
SPOIL(inf_lower, a->desc.lower_limit = INFINITY)
SPOIL(zero_lower, a->desc.lower_limit = 0.0f)
SPOIL(nan_upper, a->desc.upper_limit = NAN)
SPOIL(upper_below, a->desc.upper_limit = 0.5f)
SPOIL(bad_desc_layout, a->desc.layout = 2)
SPOIL(bad_layout, a->layout = -1)
SPOIL(zero_n, a->n = 0)
SPOIL(neg_c, a->c = -3)
SPOIL(small_h, a->h = 1)
SPOIL(zero_w, a->w = 0)
SPOIL(h_not_above_r, a->h = 4)
SPOIL(w_not_above_r, a->desc.smoothness = 12.0f)
SPOIL(overflow, a->n = INT32_MAX; a->c = INT32_MAX)
SPOIL(no_strides, a->strides = NULL)
SPOIL(nan_stride, a->s[0] = NAN)
SPOIL(inf_stride, a->s[1] = INFINITY)
SPOIL(pool_stride_below_1, a->s[1] = 0.5f)
SPOIL(no_x, a->x = NULL)
SPOIL(no_y, a->y = NULL)
SPOIL(no_dy, a->dy = NULL)
SPOIL(no_dx, a->dx = NULL)
SPOIL(no_out_h, a->out_h = NULL)
SPOIL(no_out_w, a->out_w = NULL)
SPOIL(no_eff, a->eff = NULL)
SPOIL(wrong_oh, a->oh += 2)
SPOIL(wrong_ow, a->ow -= 1)

#define DS (FWD | BWD | SIZE | EFF)
#define POOL (PFWD | PBWD | PSIZE)
#define BATCH (FWD | BWD | PFWD | PBWD)
static const bad cases[] = {
    {"ctx NULL", "ctx", FWD | BWD | PFWD | PBWD, DS_ERR_INVALID_ARGUMENT, no_ctx},
    {"desc NULL", "desc", DS, DS_ERR_INVALID_ARGUMENT, no_desc},
    {"R = 0", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, zero_r},
    {"R NaN", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, nan_r},
    {"R inf", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, inf_r},
    {"R below 1/FLT_MAX", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, tiny_r},
    {"cropping 2", "cropping", DS, DS_ERR_INVALID_ARGUMENT, bad_crop},
    {"shared -1", "shared_stride", DS, DS_ERR_INVALID_ARGUMENT, bad_shared},
    {"lower NaN", "lower_limit", DS, DS_ERR_INVALID_ARGUMENT, nan_lower},
    {"lower inf", "lower_limit", DS, DS_ERR_INVALID_ARGUMENT, inf_lower},
    {"lower 0", "lower_limit", DS, DS_ERR_INVALID_ARGUMENT, zero_lower},
    {"upper NaN", "upper_limit", DS, DS_ERR_INVALID_ARGUMENT, nan_upper},
    {"upper < lower", "upper_limit", DS, DS_ERR_INVALID_ARGUMENT, upper_below},
    {"desc layout 2", "desc->layout", DS, DS_ERR_INVALID_ARGUMENT, bad_desc_layout},
    {"layout -1", "layout", PFWD | PBWD, DS_ERR_INVALID_ARGUMENT, bad_layout},
    {"n = 0", "n:", BATCH, DS_ERR_INVALID_ARGUMENT, zero_n},
    {"c < 0", "c:", BATCH, DS_ERR_INVALID_ARGUMENT, neg_c},
    {"h = 1", "h:", DS | POOL, DS_ERR_INVALID_ARGUMENT, small_h},
    {"w = 0", "w:", DS | POOL, DS_ERR_INVALID_ARGUMENT, zero_w},
    {"h <= R", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, h_not_above_r},
    {"w <= R", "smoothness", DS, DS_ERR_INVALID_ARGUMENT, w_not_above_r},
    {"n*c*h*w overflow", "overflow", BATCH, DS_ERR_INVALID_ARGUMENT, overflow},
    {"strides NULL", "strides", DS | POOL, DS_ERR_INVALID_ARGUMENT, no_strides},
    {"stride NaN", "strides[0]", DS | POOL, DS_ERR_INVALID_ARGUMENT, nan_stride},
    {"stride inf", "strides[1]", DS | POOL, DS_ERR_INVALID_ARGUMENT, inf_stride},
    {"pool stride < 1", "strides[1]", POOL, DS_ERR_INVALID_ARGUMENT, pool_stride_below_1},
    {"x NULL", "x:", FWD | BWD | PFWD, DS_ERR_INVALID_ARGUMENT, no_x},
    {"y NULL", "y:", FWD | PFWD, DS_ERR_INVALID_ARGUMENT, no_y},
    {"dy NULL", "dy", BWD | PBWD, DS_ERR_INVALID_ARGUMENT, no_dy},
    {"dx NULL", "dx", PBWD, DS_ERR_INVALID_ARGUMENT, no_dx},
    {"out_h NULL", "out_h", SIZE | PSIZE, DS_ERR_INVALID_ARGUMENT, no_out_h},
    {"out_w NULL", "out_w", SIZE | PSIZE, DS_ERR_INVALID_ARGUMENT, no_out_w},
    {"effective NULL", "effective", EFF, DS_ERR_INVALID_ARGUMENT, no_eff},
    {"out_h wrong", "out_h", BATCH, DS_ERR_SHAPE_MISMATCH, wrong_oh},
    {"out_w wrong", "out_w", BATCH, DS_ERR_SHAPE_MISMATCH, wrong_ow},
};

START_TEST(test_bad_argument) {
  const bad *b = &cases[_i];
  ds_context *ctx = cpu_context(1);
  for (int entry = FWD; entry <= PSIZE; entry <<= 1) {
    if (!(b->applies & entry)) continue;
    args a;
    valid(&a, ctx, entry);
    poison();
    ck_assert_int_eq(call(entry, &a), DS_OK);
    poison();
    b->spoil(&a);
    ds_status st = call(entry, &a);
    ck_assert_msg(st == b->want, "%s (entry %d): status %d, want %d", b->what, entry, st, b->want);
    ck_assert_msg(strstr(ds_last_error(), b->mention), "%s (entry %d): message '%s' does not name '%s'",
                  b->what, entry, ds_last_error(), b->mention);
    if (a.ctx && entry != SIZE && entry != EFF && entry != PSIZE)
      ck_assert_str_eq(ds_context_last_error(ctx), ds_last_error());
    ck_assert_msg(untouched(), "%s (entry %d): an output was written", b->what, entry);
  }
  ds_context_destroy(ctx);
}
END_TEST

/* dx and dstrides are optional; x is needed only for dstrides. */
START_TEST(test_backward_optional_outputs) {
  ds_context *ctx = cpu_context(1);
  args a;
  valid(&a, ctx, BWD);
  poison();
  a.x = NULL, a.ds = NULL;
  ck_assert_int_eq(call(BWD, &a), DS_OK);
  a.dx = NULL;
  ck_assert_int_eq(call(BWD, &a), DS_OK);
  a.ds = ds_buf;
  ck_assert_int_eq(call(BWD, &a), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "x: NULL"));
  ds_context_destroy(ctx);
}
END_TEST

START_TEST(test_context_errors) {
  ds_context *ctx = (ds_context *)&ctx;
  ck_assert_int_eq(ds_context_create(DS_DEVICE_CPU, NULL), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_context_create((ds_device)7, &ctx), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(ctx);
  ck_assert_ptr_nonnull(strstr(ds_last_error(), "device"));
  ck_assert_int_eq(ds_context_create(DS_DEVICE_CUDA, &ctx), DS_ERR_UNSUPPORTED);
  ck_assert_ptr_null(ctx);
  ck_assert_ptr_nonnull(strstr(ds_last_error(), "CUDA"));
  ck_assert_int_eq(ds_context_set_threads(NULL, 1), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_context_set_stream(NULL, NULL), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_context_set_reproducible(NULL, 1), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_context_last_error(NULL), "");
  ds_context_destroy(NULL);
  ctx = cpu_context(1);
  ck_assert_str_eq(ds_context_last_error(ctx), "");
  ck_assert_int_eq(ds_context_set_threads(ctx, -1), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "threads"));
  ck_assert_int_eq(ds_context_set_stream(ctx, NULL), DS_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "stream"));
  ck_assert_int_eq(ds_context_set_threads(ctx, 0), DS_OK);
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 2), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "reproducible: 2"));
  ck_assert_int_eq(ds_context_set_reproducible(ctx, -1), DS_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 1), DS_OK);
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 0), DS_OK);
  ds_context_destroy(ctx);
}
END_TEST

START_TEST(test_status_strings) {
  for (int s = -6; s <= 1; s++) ck_assert_ptr_nonnull(ds_status_string(s));
  ck_assert_str_eq(ds_status_string(DS_OK), "success");
  ck_assert_str_eq(ds_status_string(DS_ERR_SHAPE_MISMATCH), "output shape mismatch");
  ck_assert_str_eq(ds_status_string(42), "unknown status");
  ck_assert_str_eq(ds_status_string(INT32_MIN), "unknown status");
  ck_assert_uint_eq(ds_version(), DS_VERSION_MAJOR * 10000u + DS_VERSION_MINOR * 100u + DS_VERSION_PATCH);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", DS_VERSION_MAJOR, DS_VERSION_MINOR, DS_VERSION_PATCH);
  ck_assert_str_eq(ds_version_string(), want);
  ds_diffstride_desc_init(NULL);
}
END_TEST

/* The size functions bisect the kept rows and bins instead of visiting
 * every row: sizes near INT_MAX are answered at once, and a call on such a
 * batch fails its overflow check at once (visiting 2^31 rows took 8-13 s,
 * far past this case's timeout). */
START_TEST(test_huge_sizes_answer_at_once) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  const float s[2] = {2.0f, 2.0f};
  int oh = 0, ow = 0, l = 0;
  for (int rep = 0; rep < 50; rep++) {
    ck_assert_int_eq(ds_diffstride_output_size(&d, INT_MAX, INT_MAX, s, &oh, &ow), DS_OK);
    ck_assert_int_eq(ds_diffstride_output_size(&d, INT_MAX, 8, s, &oh, &ow), DS_OK);
    ck_assert_int_eq(ds_diffstride1d_output_size(&d, INT_MAX, 2.0f, &l), DS_OK);
  }
  ck_assert_int_eq(oh % 2, 1); /* odd h: the DC row's block is one row shorter */
  ck_assert(oh > INT_MAX / 4 && oh < INT_MAX / 2 + 16);
  ck_assert(l > INT_MAX / 4 && l % 2 == 0);
  ds_context *ctx = cpu_context(1);
  float x = 0.0f, y = 0.0f;
  ck_assert_int_eq(ds_diffstride_output_size(&d, INT_MAX, INT_MAX, s, &oh, &ow), DS_OK);
  ck_assert_int_eq(ds_diffstride_forward(ctx, &d, 1, 1, INT_MAX, INT_MAX, s, &x, oh, ow, &y), DS_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "overflows"));
  ds_context_destroy(ctx);
}
END_TEST

Suite *error_suite(void) {
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("arguments");
  tcase_add_loop_test(tc, test_bad_argument, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_backward_optional_outputs);
  tcase_add_test(tc, test_context_errors);
  tcase_add_test(tc, test_status_strings);
  suite_add_tcase(s, tc);
  TCase *huge = tcase_create("huge sizes");
  tcase_add_test(huge, test_huge_sizes_answer_at_once);
  tcase_set_timeout(huge, 3);
  suite_add_tcase(s, huge);
  return s;
}
