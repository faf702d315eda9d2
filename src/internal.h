/*
 * Internal interface shared by the front end (the .c files of src/) and the backends
 * (src/cpu, src/cuda). Nothing here is exported from the shared library.
 */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include <stddef.h>

#include "diffstride.h"

#ifdef __cplusplus
extern "C" { /* also compiled into the CUDA backend (C++) */
#endif

#define DS_ERROR_LEN 256
#define DS_COPY_MAX 64

/* The whole geometry of one crop operation: DiffStride and spectral pooling
 * are both "rfft2, multiply by a separable mask, keep a block of rows and the
 * first kc bins, irfft2 at the cropped size". Built on the host by
 * geometry.c, read by both backends. */
typedef struct ds_crop {
  int h, w;         /* input image */
  int out_h, out_w; /* output image */
  int kw;           /* w/2 + 1 bins of the input's rfft */
  int kc;           /* out_w/2 + 1 kept bins */
  int rows_lo;      /* kept rows 0..rows_lo-1, then h-(out_h-rows_lo)..h-1 */
  int masked;       /* 0 for spectral pooling: the mask is all ones */
  float r, rinv;    /* smoothness R and f(1/R) */
  float t_h, t_w;   /* ramp thresholds T_h, T_w (float32, as the reference's) */
} ds_crop;

/* The strides, as the gradient needs them (DiffStride only). */
typedef struct ds_stride_state {
  float eff[2];    /* effective strides s' */
  int in_limits;   /* the stride-limit clip passes the gradient (per axis bits 1, 2) */
  int shared;      /* shared_stride */
} ds_stride_state;

/* A batch of n*c images in a layout. */
typedef struct ds_batch {
  int n, c;
  int nhwc;
} ds_batch;

/* What a backend implements: the crop op forward, and backward into dx and
 * the mask gradients gh[out_h] = dL/dm_h(cropped row), gw[kc] = dL/dm_w(bin),
 * summed over the batch (gh, gw NULL: not wanted; x and keep are then
 * unused). keep, when not NULL, is a reserve's spectra (n*c x out_h x kc
 * complex, in the context's memory): the forward stores there each image's
 * X = rfft2(x) at the kept bins (ds_kept_bin), and the backward reads X
 * from there instead of transforming x (x is then unused). copy moves
 * `bytes` (at most DS_COPY_MAX: a reserve's header) between the host and
 * the context's memory (to it when upload). */
typedef struct ds_backend {
  ds_status (*forward)(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                       float *y, float *keep);
  ds_status (*backward)(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                        const float *keep, const float *dy, float *dx, double *gh, double *gw);
  ds_status (*copy)(ds_context *ctx, void *dst, const void *src, size_t bytes, int upload);
  ds_status (*set_threads)(ds_context *ctx, int threads);
  ds_status (*set_stream)(ds_context *ctx, void *stream);
  ds_status (*set_reproducible)(ds_context *ctx, int reproducible);
  void (*destroy)(void *state);
} ds_backend;

struct ds_context {
  ds_device device;
  const ds_backend *backend;
  void *state; /* the backend's own */
  char error[DS_ERROR_LEN];
};

/* Records a failure (thread-local and, when ctx is not NULL, in ctx) and
 * returns status, so that checks read `return ds__fail(...)`. */
ds_status ds__fail(ds_context *ctx, ds_status status, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Argument checks (checks.c): each returns DS_OK or a recorded failure. */
ds_status ds__check_desc(ds_context *ctx, const ds_diffstride_desc *desc);
ds_status ds__check_image(ds_context *ctx, int h, int w);
ds_status ds__check_batch(ds_context *ctx, int n, int c, int h, int w);
ds_status ds__check_count(ds_context *ctx, int n, int c, double pixels);
ds_status ds__check_ptr(ds_context *ctx, const void *p, const char *name);
ds_status ds__check_layout(ds_context *ctx, int layout);
ds_status ds__check_out(ds_context *ctx, int out_h, int out_w, int want_h, int want_w);
ds_status ds__check_context(ds_context *ctx);

/* Geometry (geometry.c). */
ds_status ds__diffstride_geometry(ds_context *ctx, const ds_diffstride_desc *desc, int h, int w,
                                  const float strides[2], ds_crop *g, ds_stride_state *s);
ds_status ds__diffstride1d_geometry(ds_context *ctx, const ds_diffstride_desc *desc, int l,
                                    float stride, ds_crop *g, ds_stride_state *s);
ds_status ds__spectral_geometry(ds_context *ctx, int h, int w, const float strides[2],
                                ds_crop *g);
/* Masks of the cropped spectrum: mh[out_h] per cropped row, mw[kc] per bin. */
void ds__crop_masks(const ds_crop *g, float *mh, float *mw);
/* gh[out_h], gw[kc], the mask gradients, from sums[out_h*kc] of
 * Re(conj(Y) X) over the batch at each kept bin (Y = rfft2(dy), X = rfft2(x)):
 * P = c_k / (out_h out_w) * sums, gh[i] = sum_k P m_w(k), gw[k] = sum_i P m_h(i). */
void ds__mask_gradients(const ds_crop *g, const double *sums, double *gh, double *gw);
/* Batch chunks of the CUDA path, host code shared so that the CPU tests
 * cover it. A call's spectra take per_image bytes per image and must fit
 * in `budget` bytes (at least one image is always allowed); only `group`
 * consecutive images can share one transform call (NHWC: the C channels of
 * a sample; NCHW: the whole batch). ds__chunk_size gives the images per
 * chunk, balanced so that each group splits into the fewest chunks of at
 * most two sizes; ds__chunk_length the length of the chunk starting at
 * image `first`: `size`, or less where its group or the batch ends. */
long long ds__chunk_size(long long group, size_t per_image, size_t budget);
long long ds__chunk_length(long long first, long long images, long long group, long long size);
/* The reserve of the training calls (reserve.c): its size for a checked
 * batch; the caller's pointer, alignment and size checked for this call;
 * its header written after a training forward (seal) and checked before a
 * reserved backward (open: written by a training forward of this geometry
 * and device); and where its spectra start (the ds_backend keep argument;
 * like strchr, a pointer into the caller's buffer, writable only for the
 * forward). */
size_t ds__reserve_bytes(const ds_crop *g, const ds_batch *b);
ds_status ds__reserve_check(ds_context *ctx, const ds_crop *g, const ds_batch *b, const void *reserve,
                            size_t bytes);
ds_status ds__reserve_seal(ds_context *ctx, const ds_crop *g, const ds_batch *b, void *reserve);
ds_status ds__reserve_open(ds_context *ctx, const ds_crop *g, const ds_batch *b, const void *reserve);
float *ds__reserve_spectra(const void *reserve);
/* dL/dstrides from the mask gradients of the backend. */
void ds__stride_gradient(const ds_crop *g, const ds_stride_state *s, const double *gh,
                         const double *gw, float dstrides[2]);

/* Backends. ds__cpu_backend is always built; ds__cuda_open fails with
 * DS_ERR_UNSUPPORTED when CUDA is not compiled in or no device is present. */
extern const ds_backend ds__cpu_backend;
ds_status ds__cpu_open(ds_context *ctx);
ds_status ds__cuda_open(ds_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* DS_INTERNAL_H */
