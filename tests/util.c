#include "util.h"

#include <math.h>
#include <stdlib.h>

double rel_error_fd(const float *a, const double *b, size_t count) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < count; i++) {
    diff = fmax(diff, fabs((double)a[i] - b[i]));
    scale = fmax(scale, fabs(b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

double rel_error_ff(const float *a, const float *b, size_t count) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < count; i++) {
    diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

unsigned rand_below(unsigned *state, unsigned bound) {
  *state = *state * 1664525u + 1013904223u;
  return (*state >> 8) % bound;
}

void fill_random(float *v, size_t count, unsigned seed) {
  unsigned s = seed * 2654435761u + 1u;
  for (size_t i = 0; i < count; i++) v[i] = (float)rand_below(&s, 1u << 20) / (float)(1 << 19) - 1.0f;
}

/* One transposition serves both directions: dst[j] = src[i] with the NCHW
 * index i and the NHWC index j of the same element. */
static void transpose(const float *src, float *dst, int n, int c, int h, int w, int to_hwc) {
  for (int b = 0; b < n; b++)
    for (int ch = 0; ch < c; ch++)
      for (int p = 0; p < h * w; p++) {
        size_t nchw = ((size_t)b * c + ch) * (size_t)(h * w) + p;
        size_t nhwc = ((size_t)b * (size_t)(h * w) + p) * c + ch;
        if (to_hwc)
          dst[nhwc] = src[nchw];
        else
          dst[nchw] = src[nhwc];
      }
}

void to_nhwc(const float *src, float *dst, int n, int c, int h, int w) { transpose(src, dst, n, c, h, w, 1); }
void to_nchw(const float *src, float *dst, int n, int c, int h, int w) { transpose(src, dst, n, c, h, w, 0); }

float *to_float(const double *v, size_t count) {
  float *f = malloc(sizeof(float) * (count ? count : 1));
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < count; i++) f[i] = (float)v[i];
  return f;
}

double dot_ff(const float *a, const float *b, size_t count) {
  double s = 0.0;
  for (size_t i = 0; i < count; i++) s += (double)a[i] * (double)b[i];
  return s;
}

ds_context *cpu_context(int threads) {
  ds_context *ctx = NULL;
  ck_assert_int_eq(ds_context_create(DS_DEVICE_CPU, &ctx), DS_OK);
  ck_assert_ptr_nonnull(ctx);
  ck_assert_int_eq(ds_context_set_threads(ctx, threads), DS_OK);
  return ctx;
}
