/* The float32 geometry, bit for bit: every line of tests/vectors/geometry.txt
 * (written by tools/make_vectors.py from numpy's float32 arithmetic) gives
 * the effective strides, thresholds, sizes, kept rows and bins, and which
 * rows and bins pass the stride gradient. Most lines are configurations
 * where the same formulas in double decide otherwise, so a geometry
 * evaluated in double, fused or reordered fails here. Format: the header
 * of geometry.txt. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "masks.h"
#include "util.h"

#define TABLE "tests/vectors/geometry.txt"

/* One diffstride or diffstride1d line's expected values. */
typedef struct expected {
  double eff[2], t[2];
  int out_h, out_w, rows_lo, kc, pass[2], tmin[2], clip[2];
} expected;

/* Rows (axis 0) or bins (axis 1) of g whose ramp argument lies in [0, 1]. */
static int passing(const ds_crop *g, int axis) {
  int count = 0;
  for (int i = 0; i < (axis ? g->kc : g->out_h); i++) {
    int p = axis ? i : ds_position_h(ds_source_row(i, g->h, g->out_h, g->rows_lo), g->h);
    float v = ds_ramp_arg(axis ? g->t_w : g->t_h, p, g->r, g->rinv);
    count += v >= 0.0f && v <= 1.0f;
  }
  return count;
}

/* The library's stride gradient with every mask gradient 1 against
 * pass * tmin * clip * (1/R) (1/2) (-n / s'^2) per axis. */
static int gradient_agrees(const ds_crop *g, const ds_stride_state *st, const expected *e) {
  double ones[1024];
  for (int i = 0; i < 1024; i++) ones[i] = 1.0;
  if (g->out_h > 1024 || g->kc > 1024) return 0;
  float ds[2];
  ds__stride_gradient(g, st, ones, ones, ds);
  double want[2];
  for (int a = 0; a < 2; a++) {
    int n = a ? g->w : g->h;
    want[a] = e->pass[a] * e->tmin[a] * e->clip[a] / (double)g->r * 0.5 * (-n / (e->eff[a] * e->eff[a]));
  }
  if (st->shared) want[0] += want[1], want[1] = 0.0;
  return ds[0] == (float)want[0] && ds[1] == (float)want[1];
}

static int crop_agrees(const ds_crop *g, const ds_stride_state *st, const expected *e) {
  return (float)e->eff[0] == st->eff[0] && (float)e->eff[1] == st->eff[1] && (float)e->t[0] == g->t_h &&
         (float)e->t[1] == g->t_w && e->out_h == g->out_h && e->out_w == g->out_w && e->rows_lo == g->rows_lo &&
         e->kc == g->kc && e->pass[0] == passing(g, 0) && e->pass[1] == passing(g, 1) && gradient_agrees(g, st, e);
}

/* "H W R cropping shared lower upper s_h s_w | eff_h eff_w T_h T_w out_h
 * out_w rows_lo kc pass_h pass_w tmin_h tmin_w clip_h clip_w". */
static int diffstride_line(FILE *f) {
  int h, w;
  double r, lower, upper, s[2];
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  expected e;
  if (fscanf(f, "%d %d %lf %d %d %lf %lf %lf %lf", &h, &w, &r, &d.cropping, &d.shared_stride, &lower, &upper, &s[0],
             &s[1]) != 9 ||
      fscanf(f, "%lf %lf %lf %lf %d %d %d %d %d %d %d %d %d %d", &e.eff[0], &e.eff[1], &e.t[0], &e.t[1], &e.out_h,
             &e.out_w, &e.rows_lo, &e.kc, &e.pass[0], &e.pass[1], &e.tmin[0], &e.tmin[1], &e.clip[0], &e.clip[1]) != 14)
    return -1;
  d.smoothness = (float)r, d.lower_limit = (float)lower, d.upper_limit = (float)upper;
  const float strides[2] = {(float)s[0], (float)s[1]};
  ds_crop g;
  ds_stride_state st;
  return ds__diffstride_geometry(NULL, &d, h, w, strides, &g, &st) == DS_OK && crop_agrees(&g, &st, &e);
}

/* "L R cropping lower upper s | eff T out kc pass tmin clip": the 1-D
 * crop's vertical axis is the fixed single row (T infinite, no gradient). */
static int diffstride1d_line(FILE *f) {
  int l;
  double r, lower, upper, s;
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  expected e = {.eff = {1.0, 0.0}, .t = {INFINITY, 0.0}, .out_h = 1, .pass = {0, 0}, .tmin = {0, 0}, .clip = {0, 0}};
  if (fscanf(f, "%d %lf %d %lf %lf %lf", &l, &r, &d.cropping, &lower, &upper, &s) != 6 ||
      fscanf(f, "%lf %lf %d %d %d %d %d", &e.eff[1], &e.t[1], &e.out_w, &e.kc, &e.pass[1], &e.tmin[1], &e.clip[1]) != 7)
    return -1;
  d.smoothness = (float)r, d.lower_limit = (float)lower, d.upper_limit = (float)upper;
  ds_crop g;
  ds_stride_state st;
  if (ds__diffstride1d_geometry(NULL, &d, l, (float)s, &g, &st) != DS_OK) return 0;
  e.rows_lo = g.rows_lo; /* the single row's block is a convention of the crop, not a decision */
  return crop_agrees(&g, &st, &e);
}

/* "H W s_h s_w | out_h out_w". */
static int spectral_line(FILE *f) {
  int h, w, oh, ow;
  double s[2];
  if (fscanf(f, "%d %d %lf %lf %d %d", &h, &w, &s[0], &s[1], &oh, &ow) != 6) return -1;
  const float strides[2] = {(float)s[0], (float)s[1]};
  ds_crop g;
  return ds__spectral_geometry(NULL, h, w, strides, &g) == DS_OK && g.out_h == oh && g.out_w == ow;
}

START_TEST(test_geometry_table) {
  FILE *f = fopen(TABLE, "r");
  ck_assert_msg(f, "cannot open %s (run from the repository root)", TABLE);
  char word[64];
  int lines[3] = {0, 0, 0}, wrong = 0, first_wrong = 0, line = 0;
  while (fscanf(f, "%63s", word) == 1) {
    if (word[0] == '#') {
      ck_assert(fscanf(f, "%*[^\n]") >= 0);
      continue;
    }
    int kind = !strcmp(word, "diffstride") ? 0 : !strcmp(word, "diffstride1d") ? 1 : !strcmp(word, "spectral_pool") ? 2 : -1;
    ck_assert_msg(kind >= 0, "%s: line %d: unknown op '%s'", TABLE, line + 1, word);
    int ok = kind == 0 ? diffstride_line(f) : kind == 1 ? diffstride1d_line(f) : spectral_line(f);
    ck_assert_msg(ok >= 0, "%s: entry %d: cannot parse its %s line", TABLE, line + 1, word);
    line++, lines[kind]++;
    if (!ok && !wrong++) first_wrong = line;
  }
  fclose(f);
  ck_assert_msg(!wrong, "%s: %d of %d configurations differ, the first is entry %d", TABLE, wrong, line, first_wrong);
  ck_assert_msg(lines[0] >= 100 && lines[1] >= 20 && lines[2] >= 20, "%s: only %d diffstride, %d diffstride1d, %d spectral_pool lines",
                TABLE, lines[0], lines[1], lines[2]);
}
END_TEST

Suite *geometry_suite(void) {
  Suite *s = suite_create("geometry");
  TCase *tc = tcase_create("float32");
  tcase_add_test(tc, test_geometry_table);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
