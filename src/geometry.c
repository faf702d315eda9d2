/* Geometry of the crop (effective strides, thresholds, kept rows and bins),
 * the masks, and the stride gradient: host code shared by both backends. */
#include <float.h>
#include <math.h>

#include "masks.h"

/* Every discrete decision below is float32 arithmetic with one rounding per
 * operation (the ds_f32_* operations), as the reference layer makes it: an
 * evaluation in a wider type would move sizes and kept bins. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "libdiffstride needs float arithmetic evaluated in float (FLT_EVAL_METHOD 0; on 32-bit x86: -msse2 -mfpmath=sse)"
#endif

static ds_status check_strides(ds_context *ctx, const float strides[2], int count, double min) {
  if (!strides) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "strides: NULL pointer");
  for (int i = 0; i < count; i++)
    if (!isfinite(strides[i]) || strides[i] < min)
      return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "strides[%d]: %g, must be finite%s", i,
                      (double)strides[i], min > -INFINITY ? " and >= 1" : "");
  return DS_OK;
}

/* The smallest stride of an axis of n pixels, f(n / f(n - R)): the target
 * size plus the ramp's width then fits in the axis. */
static float min_stride(int n, float r) { return ds_f32_div((float)n, ds_f32_sub((float)n, r)); }

/* The target size max(f(n / s'), 2) of an axis of n pixels. */
static float target_size(int n, float eff) { return fmaxf(ds_f32_div((float)n, eff), 2.0f); }

/* The stride of one axis clipped to the limits, given it raised to the
 * minimum stride; records whether the clip lets the gradient through
 * (closed interval). */
static void clip_stride(const ds_diffstride_desc *d, float raised, int axis, ds_stride_state *s) {
  if (raised >= d->lower_limit && raised <= d->upper_limit) s->in_limits |= 1 << axis;
  s->eff[axis] = fminf(fmaxf(raised, d->lower_limit), d->upper_limit);
}

/* Step 1: raise to the minimum stride, then clip to the limits. */
static void effective_strides(const ds_diffstride_desc *d, int h, int w, const float strides[2],
                              ds_stride_state *s) {
  float min_h = min_stride(h, d->smoothness), min_w = min_stride(w, d->smoothness);
  *s = (ds_stride_state){.shared = d->shared_stride};
  float shared = fmaxf(strides[0], fmaxf(min_h, min_w));
  clip_stride(d, d->shared_stride ? shared : fmaxf(strides[0], min_h), 0, s);
  clip_stride(d, d->shared_stride ? shared : fmaxf(strides[1], min_w), 1, s);
}

/* A DiffStride crop of an h x w image before its thresholds and size. */
static ds_crop masked_crop(int h, int w, float r) {
  return (ds_crop){.h = h, .w = w, .kw = w / 2 + 1, .masked = 1, .r = r, .rinv = (float)(1.0 / r)};
}

/* How many of the positions offset, offset + 1, ..., offset + n - 1 have a
 * positive ramp argument: a prefix of them (v falls as p grows, and float32
 * rounding keeps that order), found by bisection, so that the sizes take
 * O(log n) steps for any image size (the checks of the batch come later). */
static int kept_prefix(const ds_crop *g, float t, int offset, int n) {
  int lo = 0, hi = n; /* the first position with v <= 0 is at an index in [lo, hi] */
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (ds_ramp_arg(t, offset + mid, g->r, g->rinv) > 0.0f)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Cropping on: the rows and bins whose ramp argument is positive. The rows
 * r < h/2 have positions r + h%2 (increasing), the rows h-1-q positions q,
 * so the kept rows form a block at each end of the spectrum. Cropping off:
 * every row and bin, inverted at the spectrum's own length 2 (kw - 1) as
 * the reference's irfft2d does (an odd width loses a column). */
static void crop_to_mask(ds_crop *g, int cropping) {
  int lo = g->h, hi = 0, kc = g->kw;
  if (cropping) {
    lo = kept_prefix(g, g->t_h, g->h % 2, g->h / 2);
    hi = kept_prefix(g, g->t_h, 0, g->h - g->h / 2);
    kc = kept_prefix(g, g->t_w, 0, g->kw);
  }
  g->rows_lo = lo;
  g->out_h = lo + hi;
  g->kc = kc;
  g->out_w = 2 * (kc - 1);
}

ds_status ds__diffstride_geometry(ds_context *ctx, const ds_diffstride_desc *d, int h, int w,
                                  const float strides[2], ds_crop *g, ds_stride_state *s) {
  ds_status st = ds__check_desc(ctx, d);
  if (st == DS_OK) st = ds__check_image(ctx, h, w);
  if (st == DS_OK) st = check_strides(ctx, strides, d->shared_stride ? 1 : 2, -INFINITY);
  if (st != DS_OK) return st;
  if (h <= d->smoothness || w <= d->smoothness)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT,
                    "h x w: %d x %d, both must exceed desc->smoothness (%g)", h, w,
                    (double)d->smoothness);
  effective_strides(d, h, w, strides, s);
  *g = masked_crop(h, w, d->smoothness);
  g->t_h = ds_f32_div(target_size(h, s->eff[0]), 2.0f);
  g->t_w = ds_f32_add(ds_f32_div(target_size(w, s->eff[1]), 2.0f), 1.0f);
  crop_to_mask(g, d->cropping);
  return DS_OK;
}

/* 1-D: the horizontal half of the layer, as a crop of a 1 x l image whose
 * rows are never masked (T_h infinite: the ramp's argument is +inf, so the
 * mask is 1 and the row passes no gradient) and whose stride is eff[1]. */
ds_status ds__diffstride1d_geometry(ds_context *ctx, const ds_diffstride_desc *d, int l,
                                    float stride, ds_crop *g, ds_stride_state *s) {
  ds_status st = ds__check_desc(ctx, d);
  if (st != DS_OK) return st;
  if (l < 2 || l <= d->smoothness)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "l: %d, must be >= 2 and exceed desc->smoothness (%g)",
                    l, (double)d->smoothness);
  if (!isfinite(stride))
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "stride: %g, must be finite", (double)stride);
  *s = (ds_stride_state){.eff = {1.0f, 1.0f}};
  clip_stride(d, fmaxf(stride, min_stride(l, d->smoothness)), 1, s);
  *g = masked_crop(1, l, d->smoothness);
  g->t_h = INFINITY;
  g->t_w = ds_f32_add(ds_f32_div(target_size(l, s->eff[1]), 2.0f), 1.0f);
  crop_to_mask(g, d->cropping);
  return DS_OK;
}

/* floor(f(n / s)) for a stride s >= 1; n where f(n) rounded above n
 * (n > 2^24), so that the size stays an int. */
static int pooled_size(int n, float s) {
  float q = floorf(ds_f32_div((float)n, s));
  return q < (float)n ? (int)q : n;
}

ds_status ds__spectral_geometry(ds_context *ctx, int h, int w, const float strides[2],
                                ds_crop *g) {
  ds_status st = ds__check_image(ctx, h, w);
  if (st == DS_OK) st = check_strides(ctx, strides, 2, 1.0);
  if (st != DS_OK) return st;
  int oh = pooled_size(h, strides[0]), ow = pooled_size(w, strides[1]);
  oh -= oh % 2;
  *g = (ds_crop){.h = h, .w = w, .kw = w / 2 + 1, .masked = 0};
  g->out_h = oh < 2 ? 2 : oh;
  g->out_w = ow < 2 ? 2 : ow;
  g->rows_lo = g->out_h / 2;
  g->kc = g->out_w / 2 + 1;
  return DS_OK;
}

/* Position of cropped row i (axis 0) or of bin i (axis 1). */
static int crop_position(const ds_crop *g, int axis, int i) {
  return axis ? i : ds_position_h(ds_source_row(i, g->h, g->out_h, g->rows_lo), g->h);
}

void ds__crop_masks(const ds_crop *g, float *mh, float *mw) {
  for (int i = 0; i < g->out_h; i++) mh[i] = ds_mask_row(g, i);
  for (int k = 0; k < g->kc; k++) mw[k] = ds_mask_bin(g, k);
}

void ds__mask_gradients(const ds_crop *g, const double *sums, double *gh, double *gw) {
  double area = (double)g->out_h * g->out_w;
  for (int i = 0; i < g->out_h; i++) gh[i] = 0.0;
  for (int k = 0; k < g->kc; k++) gw[k] = 0.0;
  for (int i = 0; i < g->out_h; i++)
    for (int k = 0; k < g->kc; k++) {
      double p = ds_bin_weight(k, g->out_w) / area * sums[(size_t)i * g->kc + k];
      gh[i] += p * ds_mask_bin(g, k);
      gw[k] += p * ds_mask_row(g, i);
    }
}

/* dL/dT = (1/R) * sum of dL/dm over the positions where the ramp's argument
 * lies in [0, 1]; T = max(f(n/s'), 2)/2 (+1), so dT/ds' = -n/(2 s'^2) when
 * f(n/s') >= 2, else 0. gm is gh (axis 0) or gw (axis 1). */
static double axis_gradient(const ds_crop *g, int axis, const double *gm, float eff) {
  float t = axis ? g->t_w : g->t_h;
  int count = axis ? g->kc : g->out_h, n = axis ? g->w : g->h;
  double dt = 0.0;
  for (int i = 0; i < count; i++) {
    float v = ds_ramp_arg(t, crop_position(g, axis, i), g->r, g->rinv);
    if (v >= 0.0f && v <= 1.0f) dt += gm[i];
  }
  if (ds_f32_div((float)n, eff) < 2.0f) return 0.0;
  return dt / g->r * 0.5 * (-n / ((double)eff * eff));
}

void ds__stride_gradient(const ds_crop *g, const ds_stride_state *s, const double *gh,
                         const double *gw, float dstrides[2]) {
  double d[2] = {axis_gradient(g, 0, gh, s->eff[0]), axis_gradient(g, 1, gw, s->eff[1])};
  for (int i = 0; i < 2; i++)
    if (!(s->in_limits & (1 << i))) d[i] = 0.0;
  dstrides[0] = (float)(s->shared ? d[0] + d[1] : d[0]);
  dstrides[1] = (float)(s->shared ? 0.0 : d[1]);
}

long long ds__chunk_size(long long group, size_t per_image, size_t budget) {
  long long fit = per_image ? (long long)(budget / per_image) : group;
  if (fit < 1) fit = 1;
  if (fit >= group) return group;
  long long chunks = (group + fit - 1) / fit;
  return (group + chunks - 1) / chunks;
}

long long ds__chunk_length(long long first, long long images, long long group, long long size) {
  long long left_in_group = group - first % group, left = images - first;
  long long len = size < left_in_group ? size : left_in_group;
  return len < left ? len : left;
}
