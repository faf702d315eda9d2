/* Public entry points of DiffStride (plain and training calls) and spectral
 * pooling: check every argument, build the crop geometry, hand the work to
 * the context's backend. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

void ds_diffstride_desc_init(ds_diffstride_desc *desc) {
  if (!desc) return;
  *desc = (ds_diffstride_desc){.smoothness = 4.0f, .cropping = 1, .shared_stride = 0,
                               .lower_limit = 1.0f, .upper_limit = INFINITY,
                               .layout = DS_LAYOUT_NCHW};
}

ds_status ds_diffstride_effective_strides(const ds_diffstride_desc *desc, int h, int w,
                                          const float strides[2], float effective[2]) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride_geometry(NULL, desc, h, w, strides, &g, &s);
  if (st == DS_OK) st = ds__check_ptr(NULL, effective, "effective");
  if (st != DS_OK) return st;
  effective[0] = s.eff[0];
  effective[1] = s.eff[1];
  return DS_OK;
}

ds_status ds_diffstride_output_size(const ds_diffstride_desc *desc, int h, int w,
                                    const float strides[2], int *out_h, int *out_w) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride_geometry(NULL, desc, h, w, strides, &g, &s);
  if (st == DS_OK) st = ds__check_ptr(NULL, out_h, "out_h");
  if (st == DS_OK) st = ds__check_ptr(NULL, out_w, "out_w");
  if (st != DS_OK) return st;
  *out_h = g.out_h;
  *out_w = g.out_w;
  return DS_OK;
}

/* One DiffStride call (2-D or 1-D) after its shape checks: geometry,
 * strides and batch. */
typedef struct prepared {
  ds_crop g;
  ds_stride_state s;
  ds_batch b;
} prepared;

/* The checks common to every 2-D DiffStride call on a batch. */
static ds_status diffstride_prepare(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int h,
                                    int w, const float strides[2], int out_h, int out_w, prepared *p) {
  ds_status st = ds__check_context(ctx);
  if (st == DS_OK) st = ds__diffstride_geometry(ctx, desc, h, w, strides, &p->g, &p->s);
  if (st == DS_OK) st = ds__check_batch(ctx, n, c, h, w);
  if (st == DS_OK) st = ds__check_out(ctx, out_h, out_w, p->g.out_h, p->g.out_w);
  if (st == DS_OK) p->b = (ds_batch){.n = n, .c = c, .nhwc = desc->layout == DS_LAYOUT_NHWC};
  return st;
}

/* The same for the 1-D layer (a 1 x l image per signal). */
static ds_status diffstride1d_prepare(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int l,
                                      float stride, int out_l, prepared *p) {
  ds_status st = ds__check_context(ctx);
  if (st == DS_OK) st = ds__diffstride1d_geometry(ctx, desc, l, stride, &p->g, &p->s);
  if (st == DS_OK) st = ds__check_count(ctx, n, c, l);
  if (st == DS_OK && out_l != p->g.out_w)
    st = ds__fail(ctx, DS_ERR_SHAPE_MISMATCH, "out_l: %d, the output length for this stride is %d", out_l,
                  p->g.out_w);
  if (st == DS_OK) p->b = (ds_batch){.n = n, .c = c, .nhwc = desc->layout == DS_LAYOUT_NLC};
  return st;
}

/* The reserve argument of the training calls (on = 0: a plain call). The
 * reserved backward only reads through p. */
typedef struct reserve_arg {
  int on;
  void *p;
  size_t bytes;
} reserve_arg;

static const reserve_arg PLAIN = {0, NULL, 0};

static reserve_arg reserved(const void *reserve, size_t bytes) {
  return (reserve_arg){1, (void *)(uintptr_t)reserve, bytes};
}

/* The forward of a prepared call (st: the preparation's status), keeping
 * x's spectra in the reserve when r.on (training). */
static ds_status run_forward(ds_context *ctx, ds_status st, const prepared *p, const float *x, float *y,
                             reserve_arg r) {
  if (st == DS_OK) st = ds__check_ptr(ctx, x, "x");
  if (st == DS_OK) st = ds__check_ptr(ctx, y, "y");
  if (st == DS_OK && r.on) st = ds__reserve_check(ctx, &p->g, &p->b, r.p, r.bytes);
  if (st == DS_OK) st = ctx->backend->forward(ctx, &p->g, &p->b, x, y, r.on ? ds__reserve_spectra(r.p) : NULL);
  if (st == DS_OK && r.on) st = ds__reserve_seal(ctx, &p->g, &p->b, r.p);
  return st;
}

/* Backward through the backend (x's spectra from keep when it is set, else
 * from x), with the mask gradients reduced into dstrides when asked for. */
static ds_status crop_backward(ds_context *ctx, const prepared *p, const float *x, const float *keep,
                               const float *dy, float *dx, float *dstrides) {
  const ds_crop *g = &p->g;
  if (!dstrides) return dx ? ctx->backend->backward(ctx, g, &p->b, NULL, NULL, dy, dx, NULL, NULL) : DS_OK;
  double *gm = malloc(sizeof(double) * (size_t)(g->out_h + g->kc));
  if (!gm) return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "backward: out of memory");
  ds_status st = ctx->backend->backward(ctx, g, &p->b, x, keep, dy, dx, gm, gm + g->out_h);
  if (st == DS_OK) ds__stride_gradient(g, &p->s, gm, gm + g->out_h, dstrides);
  free(gm);
  return st;
}

/* The backward of a prepared call (st: the preparation's status): x's part
 * from x, or with r.on from the reserve (read only for dstrides); `grad`
 * names the stride-gradient argument in messages. */
static ds_status run_backward(ds_context *ctx, ds_status st, const prepared *p, const float *x, reserve_arg r,
                              const float *dy, float *dx, float *dstrides, const char *grad) {
  if (st == DS_OK) st = ds__check_ptr(ctx, dy, "dy");
  if (st == DS_OK && dstrides && r.on) st = ds__reserve_check(ctx, &p->g, &p->b, r.p, r.bytes);
  if (st == DS_OK && dstrides && r.on) st = ds__reserve_open(ctx, &p->g, &p->b, r.p);
  if (st == DS_OK && dstrides && !r.on && !x)
    st = ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "x: NULL pointer, needed for %s", grad);
  if (st != DS_OK) return st;
  return crop_backward(ctx, p, r.on ? NULL : x, dstrides && r.on ? ds__reserve_spectra(r.p) : NULL, dy, dx,
                       dstrides);
}

ds_status ds_diffstride_forward(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int h, int w,
                                const float strides[2], const float *x, int out_h, int out_w, float *y) {
  prepared p;
  ds_status st = diffstride_prepare(ctx, desc, n, c, h, w, strides, out_h, out_w, &p);
  return run_forward(ctx, st, &p, x, y, PLAIN);
}

ds_status ds_diffstride_forward_training(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int h,
                                         int w, const float strides[2], const float *x, int out_h, int out_w,
                                         float *y, void *reserve, size_t reserve_bytes) {
  prepared p;
  ds_status st = diffstride_prepare(ctx, desc, n, c, h, w, strides, out_h, out_w, &p);
  return run_forward(ctx, st, &p, x, y, reserved(reserve, reserve_bytes));
}

ds_status ds_diffstride_backward(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int h, int w,
                                 const float strides[2], const float *x, int out_h, int out_w, const float *dy,
                                 float *dx, float dstrides[2]) {
  prepared p;
  ds_status st = diffstride_prepare(ctx, desc, n, c, h, w, strides, out_h, out_w, &p);
  return run_backward(ctx, st, &p, x, PLAIN, dy, dx, dstrides, "dstrides");
}

ds_status ds_diffstride_backward_reserved(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int h,
                                          int w, const float strides[2], const void *reserve,
                                          size_t reserve_bytes, int out_h, int out_w, const float *dy, float *dx,
                                          float dstrides[2]) {
  prepared p;
  ds_status st = diffstride_prepare(ctx, desc, n, c, h, w, strides, out_h, out_w, &p);
  return run_backward(ctx, st, &p, NULL, reserved(reserve, reserve_bytes), dy, dx, dstrides, "dstrides");
}

ds_status ds_diffstride_reserve_size(const ds_diffstride_desc *desc, int n, int c, int h, int w,
                                     const float strides[2], size_t *bytes) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride_geometry(NULL, desc, h, w, strides, &g, &s);
  if (st == DS_OK) st = ds__check_batch(NULL, n, c, h, w);
  if (st == DS_OK) st = ds__check_ptr(NULL, bytes, "bytes");
  if (st == DS_OK) *bytes = ds__reserve_bytes(&g, &(ds_batch){.n = n, .c = c});
  return st;
}

ds_status ds_diffstride1d_effective_stride(const ds_diffstride_desc *desc, int l, float stride,
                                           float *effective) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride1d_geometry(NULL, desc, l, stride, &g, &s);
  if (st == DS_OK) st = ds__check_ptr(NULL, effective, "effective");
  if (st == DS_OK) *effective = s.eff[1];
  return st;
}

ds_status ds_diffstride1d_output_size(const ds_diffstride_desc *desc, int l, float stride,
                                      int *out_l) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride1d_geometry(NULL, desc, l, stride, &g, &s);
  if (st == DS_OK) st = ds__check_ptr(NULL, out_l, "out_l");
  if (st == DS_OK) *out_l = g.out_w;
  return st;
}

/* The checks common to every 1-D call: signals are 1 x l images. */
ds_status ds_diffstride1d_forward(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int l,
                                  float stride, const float *x, int out_l, float *y) {
  prepared p;
  ds_status st = diffstride1d_prepare(ctx, desc, n, c, l, stride, out_l, &p);
  return run_forward(ctx, st, &p, x, y, PLAIN);
}

ds_status ds_diffstride1d_forward_training(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int l,
                                           float stride, const float *x, int out_l, float *y, void *reserve,
                                           size_t reserve_bytes) {
  prepared p;
  ds_status st = diffstride1d_prepare(ctx, desc, n, c, l, stride, out_l, &p);
  return run_forward(ctx, st, &p, x, y, reserved(reserve, reserve_bytes));
}

/* The 1-D backward: the stride gradient is the w axis's of the 2-D one. */
static ds_status backward1d(ds_context *ctx, ds_status st, const prepared *p, const float *x, reserve_arg r,
                            const float *dy, float *dx, float *dstride) {
  float both[2];
  st = run_backward(ctx, st, p, x, r, dy, dx, dstride ? both : NULL, "dstride");
  if (st == DS_OK && dstride) *dstride = both[1];
  return st;
}

ds_status ds_diffstride1d_backward(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c, int l,
                                   float stride, const float *x, int out_l, const float *dy, float *dx,
                                   float *dstride) {
  prepared p;
  ds_status st = diffstride1d_prepare(ctx, desc, n, c, l, stride, out_l, &p);
  return backward1d(ctx, st, &p, x, PLAIN, dy, dx, dstride);
}

ds_status ds_diffstride1d_backward_reserved(ds_context *ctx, const ds_diffstride_desc *desc, int n, int c,
                                            int l, float stride, const void *reserve, size_t reserve_bytes,
                                            int out_l, const float *dy, float *dx, float *dstride) {
  prepared p;
  ds_status st = diffstride1d_prepare(ctx, desc, n, c, l, stride, out_l, &p);
  return backward1d(ctx, st, &p, NULL, reserved(reserve, reserve_bytes), dy, dx, dstride);
}

ds_status ds_diffstride1d_reserve_size(const ds_diffstride_desc *desc, int n, int c, int l, float stride,
                                       size_t *bytes) {
  ds_crop g;
  ds_stride_state s;
  ds_status st = ds__diffstride1d_geometry(NULL, desc, l, stride, &g, &s);
  if (st == DS_OK) st = ds__check_count(NULL, n, c, l);
  if (st == DS_OK) st = ds__check_ptr(NULL, bytes, "bytes");
  if (st == DS_OK) *bytes = ds__reserve_bytes(&g, &(ds_batch){.n = n, .c = c});
  return st;
}

ds_status ds_spectral_pool_output_size(int h, int w, const float strides[2], int *out_h,
                                       int *out_w) {
  ds_crop g;
  ds_status st = ds__spectral_geometry(NULL, h, w, strides, &g);
  if (st == DS_OK) st = ds__check_ptr(NULL, out_h, "out_h");
  if (st == DS_OK) st = ds__check_ptr(NULL, out_w, "out_w");
  if (st != DS_OK) return st;
  *out_h = g.out_h;
  *out_w = g.out_w;
  return DS_OK;
}

/* The checks common to every spectral pooling call; `in` and `out` are the
 * input and output tensors of the direction (x, y forward; dy, dx backward). */
static ds_status spectral_prepare(ds_context *ctx, int layout, int n, int c, int h, int w,
                                  const float strides[2], int out_h, int out_w, const char *in_name,
                                  const float *in, const char *out_name, const float *out,
                                  ds_crop *g, ds_batch *b) {
  ds_status st = ds__check_context(ctx);
  if (st == DS_OK) st = ds__check_layout(ctx, layout);
  if (st == DS_OK) st = ds__check_batch(ctx, n, c, h, w);
  if (st == DS_OK) st = ds__spectral_geometry(ctx, h, w, strides, g);
  if (st == DS_OK) st = ds__check_out(ctx, out_h, out_w, g->out_h, g->out_w);
  if (st == DS_OK) st = ds__check_ptr(ctx, in, in_name);
  if (st == DS_OK) st = ds__check_ptr(ctx, out, out_name);
  if (st == DS_OK) *b = (ds_batch){.n = n, .c = c, .nhwc = layout == DS_LAYOUT_NHWC};
  return st;
}

ds_status ds_spectral_pool_forward(ds_context *ctx, int layout, int n, int c, int h, int w,
                                   const float strides[2], const float *x, int out_h, int out_w,
                                   float *y) {
  ds_crop g;
  ds_batch b;
  ds_status st =
      spectral_prepare(ctx, layout, n, c, h, w, strides, out_h, out_w, "x", x, "y", y, &g, &b);
  return st != DS_OK ? st : ctx->backend->forward(ctx, &g, &b, x, y, NULL);
}

ds_status ds_spectral_pool_backward(ds_context *ctx, int layout, int n, int c, int h, int w,
                                    const float strides[2], int out_h, int out_w,
                                    const float *dy, float *dx) {
  ds_crop g;
  ds_batch b;
  ds_status st =
      spectral_prepare(ctx, layout, n, c, h, w, strides, out_h, out_w, "dy", dy, "dx", dx, &g, &b);
  return st != DS_OK ? st : ctx->backend->backward(ctx, &g, &b, NULL, NULL, dy, dx, NULL, NULL);
}
