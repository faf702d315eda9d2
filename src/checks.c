/* Argument checks shared by every entry point: each names the argument and
 * its value in the message, and runs before any memory is touched. */
#include <math.h>
#include <stdint.h>

#include "internal.h"

ds_status ds__check_context(ds_context *ctx) {
  if (!ctx) return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "ctx: NULL pointer");
  return DS_OK;
}

ds_status ds__check_ptr(ds_context *ctx, const void *p, const char *name) {
  if (!p) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "%s: NULL pointer", name);
  return DS_OK;
}

ds_status ds__check_layout(ds_context *ctx, int layout) {
  if (layout != DS_LAYOUT_NCHW && layout != DS_LAYOUT_NHWC)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "layout: %d is not a ds_layout", layout);
  return DS_OK;
}

ds_status ds__check_image(ds_context *ctx, int h, int w) {
  if (h < 2) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "h: %d, must be >= 2", h);
  if (w < 2) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "w: %d, must be >= 2", w);
  return DS_OK;
}

/* n*c images of `pixels` elements (and the complex workspace derived from
 * them) must be addressable: the product is checked against PTRDIFF_MAX / 16. */
ds_status ds__check_count(ds_context *ctx, int n, int c, double pixels) {
  if (n < 1) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "n: %d, must be >= 1", n);
  if (c < 1) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "c: %d, must be >= 1", c);
  if ((double)n * (double)c * pixels > (double)(PTRDIFF_MAX / 16))
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT,
                    "n*c*pixels: %d*%d*%.0f overflows the address space", n, c, pixels);
  return DS_OK;
}

ds_status ds__check_batch(ds_context *ctx, int n, int c, int h, int w) {
  ds_status st = ds__check_image(ctx, h, w);
  return st != DS_OK ? st : ds__check_count(ctx, n, c, (double)h * (double)w);
}

ds_status ds__check_desc(ds_context *ctx, const ds_diffstride_desc *d) {
  if (!d) return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "desc: NULL pointer");
  /* The ramp is f(1/R) ((R + T) - p): with 1/R infinite, inf * 0 is NaN. */
  if (!isfinite(d->smoothness) || d->smoothness <= 0.0f || !isfinite((float)(1.0 / d->smoothness)))
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT,
                    "desc->smoothness: %g, must be finite and > 0 with 1/R a finite float (R >= 2.94e-39)",
                    (double)d->smoothness);
  if (d->cropping != 0 && d->cropping != 1)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "desc->cropping: %d, must be 0 or 1",
                    d->cropping);
  if (d->shared_stride != 0 && d->shared_stride != 1)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "desc->shared_stride: %d, must be 0 or 1",
                    d->shared_stride);
  if (!isfinite(d->lower_limit) || d->lower_limit <= 0.0f)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "desc->lower_limit: %g, must be finite and > 0",
                    (double)d->lower_limit);
  if (isnan(d->upper_limit) || d->upper_limit < d->lower_limit)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT,
                    "desc->upper_limit: %g, must be >= lower_limit (%g)", (double)d->upper_limit,
                    (double)d->lower_limit);
  if (d->layout != DS_LAYOUT_NCHW && d->layout != DS_LAYOUT_NHWC)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "desc->layout: %d is not a ds_layout", d->layout);
  return DS_OK;
}

ds_status ds__check_out(ds_context *ctx, int out_h, int out_w, int want_h, int want_w) {
  if (out_h != want_h || out_w != want_w)
    return ds__fail(ctx, DS_ERR_SHAPE_MISMATCH,
                    "out_h x out_w: %d x %d, the output size for these strides is %d x %d", out_h,
                    out_w, want_h, want_w);
  return DS_OK;
}
