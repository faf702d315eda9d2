/* The complexity penalty J(S) = sum_l c_l prod_{i<=l} 1/(s_h^i s_w^i) and
 * its gradient: hand-computed values, the optional arguments, central
 * finite differences of an independent float64 implementation, and every
 * bad argument. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

/* J in float64, straight from the definition (each product rebuilt). */
static double ref_penalty(int layers, const double *s, const double *w) {
  double j = 0.0;
  for (int l = 0; l < layers; l++) {
    double prod = 1.0;
    for (int i = 0; i <= l; i++) prod /= s[2 * i] * s[2 * i + 1];
    j += (w ? w[l] : 1.0) * prod;
  }
  return j;
}

static void check_close(double got, double want, double rel, const char *what) {
  ck_assert_msg(fabs(got - want) <= rel * fabs(want), "%s: %.9g, want %.9g", what, got, want);
}

/* One layer, strides (2, 4): J = 1/8, dJ/ds_h = -1/(s_h^2 s_w) = -1/16,
 * dJ/ds_w = -1/(s_h s_w^2) = -1/32 (all exact in float). */
START_TEST(test_one_layer) {
  float value = -1.0f, grad[2] = {0, 0};
  ck_assert_int_eq(ds_complexity_penalty(1, (float[]){2, 4}, NULL, &value, grad), DS_OK);
  ck_assert(value == 0.125f);
  ck_assert(grad[0] == -0.0625f && grad[1] == -0.03125f);
}
END_TEST

/* Two layers, strides (a, b) = (2, 2), (c, d) = (3, 1):
 * J = 1/(ab) + 1/(abcd) = 1/4 + 1/12 = 1/3;
 * dJ/da = dJ/db = -1/8 - 1/24 = -1/6, dJ/dc = -1/36, dJ/dd = -1/12.
 * Weights {2, 5}: J = 2/4 + 5/12 = 11/12;
 * dJ/da = dJ/db = -2/8 - 5/24 = -11/24, dJ/dc = -5/36, dJ/dd = -5/12. */
START_TEST(test_two_layers) {
  const float s[4] = {2, 2, 3, 1};
  const double want_g[4] = {-1.0 / 6, -1.0 / 6, -1.0 / 36, -1.0 / 12};
  const double want_gw[4] = {-11.0 / 24, -11.0 / 24, -5.0 / 36, -5.0 / 12};
  float value, grad[4];
  ck_assert_int_eq(ds_complexity_penalty(2, s, NULL, &value, grad), DS_OK);
  check_close(value, 1.0 / 4 + 1.0 / 12, 1e-7, "J");
  for (int i = 0; i < 4; i++) check_close(grad[i], want_g[i], 1e-7, "dJ");
  ck_assert_int_eq(ds_complexity_penalty(2, s, (float[]){2, 5}, &value, grad), DS_OK);
  check_close(value, 2.0 / 4 + 5.0 / 12, 1e-7, "weighted J");
  for (int i = 0; i < 4; i++) check_close(grad[i], want_gw[i], 1e-7, "weighted dJ");
}
END_TEST

/* weights == NULL is all ones; grad == NULL gives the same value; grad gets
 * exactly 2*layers floats; floats past 2*layers strides and layers weights
 * are not read (NaN there is fine). */
START_TEST(test_optional_arguments) {
  enum { L = 5 };
  float s[2 * L + 1], ones[L + 1], v1, v2, v3, g1[2 * L + 4], g2[2 * L + 4];
  fill_random(s, 2 * L, 21);
  for (int i = 0; i < 2 * L; i++) s[i] = 2.5f + 1.5f * s[i]; /* [1, 4) */
  for (int l = 0; l < L; l++) ones[l] = 1.0f;
  s[2 * L] = NAN, ones[L] = NAN;
  memset(g1, 0x5a, sizeof g1), memset(g2, 0x5a, sizeof g2);
  const float *tail = g1 + 2 * L;
  ck_assert_int_eq(ds_complexity_penalty(L, s, NULL, &v1, g1), DS_OK);
  ck_assert_int_eq(ds_complexity_penalty(L, s, ones, &v2, g2), DS_OK);
  ck_assert_int_eq(ds_complexity_penalty(L, s, NULL, &v3, NULL), DS_OK);
  ck_assert(v1 == v2 && v1 == v3);
  ck_assert_int_eq(memcmp(g1, g2, sizeof g1), 0);
  unsigned char poison[4 * sizeof(float)];
  memset(poison, 0x5a, sizeof poison);
  ck_assert_int_eq(memcmp(tail, poison, sizeof poison), 0);
  double sd[2 * L];
  for (int i = 0; i < 2 * L; i++) sd[i] = s[i];
  check_close(v1, ref_penalty(L, sd, NULL), 1e-6, "J, weights NULL");
}
END_TEST

/* layers == 0: J = 0 and no gradient written; strides and weights may then
 * be NULL. */
START_TEST(test_no_layers) {
  float value = 7.0f, grad[2] = {3.0f, 4.0f};
  ck_assert_int_eq(ds_complexity_penalty(0, NULL, NULL, &value, grad), DS_OK);
  ck_assert(value == 0.0f);
  ck_assert(grad[0] == 3.0f && grad[1] == 4.0f);
  value = 7.0f;
  ck_assert_int_eq(ds_complexity_penalty(0, (float[]){2, 2}, (float[]){3}, &value, grad), DS_OK);
  ck_assert(value == 0.0f);
  ck_assert(grad[0] == 3.0f && grad[1] == 4.0f);
  ck_assert_int_eq(ds_complexity_penalty(0, NULL, NULL, &value, NULL), DS_OK);
}
END_TEST

/* Random strides in [1, 4], 1..6 layers, weights NULL or random in [-1, 3):
 * the value against ref_penalty and the gradient against its central
 * differences (step 1e-5 * s: truncation ~1e-10, rounding ~1e-11 relative). */
START_TEST(test_gradient_finite_differences) {
  enum { MAXL = 6 };
  unsigned st = 1000u + (unsigned)_i;
  int layers = 1 + _i % MAXL;
  float s[2 * MAXL], w[MAXL], value, grad[2 * MAXL];
  double sd[2 * MAXL], wd[MAXL], fd[2 * MAXL];
  const int weighted = _i % 3 != 0;
  for (int i = 0; i < 2 * layers; i++) s[i] = 1.0f + (float)rand_below(&st, 30001) / 10000.0f, sd[i] = s[i];
  for (int l = 0; l < layers; l++) w[l] = -1.0f + (float)rand_below(&st, 4000) / 1000.0f, wd[l] = w[l];
  ck_assert_int_eq(ds_complexity_penalty(layers, s, weighted ? w : NULL, &value, grad), DS_OK);
  const double *wp = weighted ? wd : NULL;
  double j = ref_penalty(layers, sd, wp);
  ck_assert_msg(fabs(value - j) <= 1e-6 * fabs(j), "layers %d: J %.9g, want %.9g", layers, value, j);
  for (int i = 0; i < 2 * layers; i++) {
    double keep = sd[i], eps = 1e-5 * keep;
    sd[i] = keep + eps;
    double up = ref_penalty(layers, sd, wp);
    sd[i] = keep - eps;
    double down = ref_penalty(layers, sd, wp);
    sd[i] = keep;
    fd[i] = (up - down) / (2.0 * eps);
  }
  double err = rel_error_fd(grad, fd, (size_t)(2 * layers));
  ck_assert_msg(err < 1e-5, "layers %d, weighted %d: gradient relative error %.3g", layers, weighted, err);
}
END_TEST

/* ------------------------------------------------------- bad arguments */

enum { BL = 3 }; /* layers of the valid call */

typedef struct bad {
  const char *what, *mention;
  int layers;          /* BL unless changed */
  int null_strides, null_value;
  int stride_at;       /* -1: none */
  float stride;
  int weight_at;       /* -1: none */
  float weight;
} bad;

static const bad cases[] = {
    {"layers -1", "layers", -1, 0, 0, -1, 0, -1, 0},
    {"layers INT_MIN", "layers", INT32_MIN, 0, 0, -1, 0, -1, 0},
    {"value NULL", "value", BL, 0, 1, -1, 0, -1, 0},
    {"strides NULL", "strides", BL, 1, 0, -1, 0, -1, 0},
    {"stride 0", "strides[3]", BL, 0, 0, 3, 0.0f, -1, 0},
    {"stride -0", "strides[4]", BL, 0, 0, 4, -0.0f, -1, 0},
    {"stride negative", "strides[0]", BL, 0, 0, 0, -2.0f, -1, 0},
    {"stride NaN", "strides[2]", BL, 0, 0, 2, NAN, -1, 0},
    {"stride inf", "strides[5]", BL, 0, 0, 5, INFINITY, -1, 0},
    {"stride -inf", "strides[1]", BL, 0, 0, 1, -INFINITY, -1, 0},
    {"weight NaN", "weights[1]", BL, 0, 0, -1, 0, 1, NAN},
    {"weight inf", "weights[2]", BL, 0, 0, -1, 0, 2, INFINITY},
    {"weight -inf", "weights[0]", BL, 0, 0, -1, 0, 0, -INFINITY},
};

/* A valid call succeeds; the spoiled one fails with
 * DS_ERR_INVALID_ARGUMENT, a message naming the argument, and value and
 * grad as they were. */
START_TEST(test_bad_argument) {
  const bad *b = &cases[_i];
  float s[2 * BL] = {2, 1.5f, 3, 1, 1.25f, 2}, w[BL] = {1, 4, 0.5f}, value, grad[2 * BL];
  ck_assert_int_eq(ds_complexity_penalty(BL, s, w, &value, grad), DS_OK);
  if (b->stride_at >= 0) s[b->stride_at] = b->stride;
  if (b->weight_at >= 0) w[b->weight_at] = b->weight;
  memset(&value, 0x7f, sizeof value), memset(grad, 0x7f, sizeof grad);
  ds_status st = ds_complexity_penalty(b->layers, b->null_strides ? NULL : s, w, b->null_value ? NULL : &value, grad);
  ck_assert_msg(st == DS_ERR_INVALID_ARGUMENT, "%s: status %d", b->what, st);
  ck_assert_msg(strstr(ds_last_error(), b->mention), "%s: message '%s' does not name '%s'", b->what,
                ds_last_error(), b->mention);
  unsigned char poison[sizeof grad];
  memset(poison, 0x7f, sizeof poison);
  ck_assert_msg(!memcmp(&value, poison, sizeof value) && !memcmp(grad, poison, sizeof grad),
                "%s: an output was written", b->what);
}
END_TEST

Suite *penalty_suite(void) {
  Suite *s = suite_create("penalty");
  TCase *tc = tcase_create("penalty");
  tcase_add_test(tc, test_one_layer);
  tcase_add_test(tc, test_two_layers);
  tcase_add_test(tc, test_optional_arguments);
  tcase_add_test(tc, test_no_layers);
  tcase_add_loop_test(tc, test_gradient_finite_differences, 0, 24);
  tcase_add_loop_test(tc, test_bad_argument, 0, (int)(sizeof cases / sizeof cases[0]));
  suite_add_tcase(s, tc);
  return s;
}
