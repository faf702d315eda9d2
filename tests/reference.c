#include "reference.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>

#define DS_PI 3.14159265358979323846

/* Step 1 of the spec for one axis: raised to the minimum stride... */
static double raised(const ref_layer *l, int axis, int h, int w) {
  double min_h = h / (h - l->r), min_w = w / (w - l->r);
  return l->shared ? fmax(l->s[0], fmax(min_h, min_w)) : fmax(l->s[axis], axis ? min_w : min_h);
}

/* ...then clipped to the limits. */
static double effective(const ref_layer *l, int axis, int h, int w) {
  return fmin(fmax(raised(l, axis, h, w), l->lower), l->upper);
}

/* The reference layer's distance array along the height: built as the spec
 * lists it, as two runs. */
static int height_distance(int r, int h) {
  int half = h % 2 == 0 ? h / 2 : (h - 1) / 2;
  int first = h % 2 == 0 ? r : r + 1;
  return r < half ? first : h - 1 - r;
}

static double threshold(const ref_layer *l, int axis, int h, int w) {
  int n = axis ? w : h;
  double t = fmax(n / effective(l, axis, h, w), 2.0);
  return axis ? t / 2 + 1 : t / 2;
}

static double mask(const ref_layer *l, int axis, int pos, int h, int w) {
  if (!l->diffstride) return 1.0;
  double v = (l->r + threshold(l, axis, h, w) - pos) / l->r;
  return fmin(fmax(v, 0.0), 1.0);
}

/* Kept spectrum rows (in increasing order) and the number of kept columns. */
static int kept_rows(const ref_layer *l, int h, int w, int *rows) {
  int count = 0;
  if (!l->diffstride) {
    int oh = (int)floor(h / l->s[0]);
    oh = oh - oh % 2 < 2 ? 2 : oh - oh % 2;
    for (int r = 0; r < h; r++)
      if (r < oh / 2 || r >= h - oh / 2) rows[count++] = r;
    return count;
  }
  for (int r = 0; r < h; r++)
    if (!l->cropping || mask(l, 0, height_distance(r, h), h, w) > 0) rows[count++] = r;
  return count;
}

static int kept_cols(const ref_layer *l, int h, int w) {
  if (!l->diffstride) return (int)fmax(floor(w / l->s[1]), 2) / 2 + 1;
  int k = 0;
  while (k <= w / 2 && (!l->cropping || mask(l, 1, k, h, w) > 0)) k++;
  return k;
}

void ref_output_size(const ref_layer *l, int h, int w, int *out_h, int *out_w) {
  int *rows = malloc(sizeof(int) * (size_t)h);
  *out_h = kept_rows(l, h, w, rows);
  free(rows);
  if (!l->diffstride)
    *out_w = (int)fmax(floor(w / l->s[1]), 2);
  else
    *out_w = 2 * (kept_cols(l, h, w) - 1); /* cropping off: 2 (w/2), an odd width loses a column */
}

/* Z[i][k] = mask * X[rows[i]][k], X the full 2-D DFT computed term by term. */
static void masked_crop(const ref_layer *l, int h, int w, const double *x, const int *rows, int oh,
                        int kc, double complex *z) {
  for (int i = 0; i < oh; i++)
    for (int k = 0; k < kc; k++) {
      double complex acc = 0;
      for (int a = 0; a < h; a++)
        for (int b = 0; b < w; b++)
          acc += x[a * w + b] * cexp(-2 * DS_PI * I * ((double)rows[i] * a / h + (double)k * b / w));
      z[i * kc + k] = acc * mask(l, 0, height_distance(rows[i], h), h, w) * mask(l, 1, k, h, w);
    }
}

/* numpy's irfft2 at oh x ow: inverse DFT down the columns, then per row the
 * real inverse reading bins 0..ow/2 with weights 1, 2, ..., 2, (1 at ow/2). */
void ref_forward(const ref_layer *l, int h, int w, const double *x, double *y) {
  int oh, ow, *rows = malloc(sizeof(int) * (size_t)h);
  ref_output_size(l, h, w, &oh, &ow);
  kept_rows(l, h, w, rows);
  int kc = ow / 2 + 1;
  double complex *z = malloc(sizeof(double complex) * (size_t)(oh * kc));
  masked_crop(l, h, w, x, rows, oh, kc, z);
  for (int i = 0; i < oh; i++)
    for (int j = 0; j < ow; j++) {
      double acc = 0;
      for (int k = 0; k < kc; k++) {
        double complex col = 0;
        for (int q = 0; q < oh; q++) col += z[q * kc + k] * cexp(2 * DS_PI * I * (double)q * i / oh);
        double weight = (k == 0 || 2 * k == ow) ? 1.0 : 2.0;
        acc += weight * creal(col * cexp(2 * DS_PI * I * (double)k * j / ow));
      }
      y[i * ow + j] = acc / ((double)oh * ow);
    }
  free(z);
  free(rows);
}

/* The breakpoints in T of the ramp are T = p - R and T = p for every
 * position p; T moves by |dT/ds| per unit of stride. */
static double axis_kink(const ref_layer *l, int axis, int h, int w) {
  int n = axis ? w : h, npos = axis ? w / 2 + 1 : h;
  double s = effective(l, axis, h, w), t = threshold(l, axis, h, w), up = raised(l, axis, h, w);
  double slope = n / (2 * s * s), d = fabs(s - n / 2.0);
  d = fmin(d, fabs(l->s[l->shared ? 0 : axis] - up) > 0 ? 0 : 1e9);
  d = fmin(d, fmin(fabs(l->s[l->shared ? 0 : axis] - h / (h - l->r)), fabs(l->s[l->shared ? 0 : axis] - w / (w - l->r))));
  d = fmin(d, fmin(fabs(up - l->lower), fabs(up - l->upper)));
  for (int p = 0; p < npos; p++) {
    int pos = axis ? p : height_distance(p, h);
    d = fmin(d, fmin(fabs(t - pos + l->r), fabs(t - pos)) / slope);
  }
  return d;
}

double ref_kink_distance(const ref_layer *l, int h, int w) {
  return fmin(axis_kink(l, 0, h, w), axis_kink(l, 1, h, w));
}
