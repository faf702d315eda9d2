/*
 * libdiffstride: DiffStride (learnable strides, Riad et al., ICLR 2022) and
 * fixed spectral pooling, forward and backward, on the CPU (FFTW3). The API
 * has a CUDA device for a GPU path; this build's status is in README.md.
 *
 * Conventions used by every function below:
 *   - Tensors are dense float32 arrays. A 2-D tensor of n images with c
 *     channels of h x w pixels is stored NCHW (x[((n*C + c)*H + h)*W + w]) or
 *     NHWC (x[((n*H + h)*W + w)*C + c]) as the layout argument says.
 *   - With a context created for DS_DEVICE_CUDA every tensor pointer is a
 *     device pointer; strides, effective strides, dstrides and the sizes are
 *     always host values.
 *   - Every function returns a ds_status. On failure nothing is written to
 *     any output, and a message naming the bad argument and its value can be
 *     read with ds_last_error() (the calling thread's last failure) and, for
 *     calls that take a context, ds_context_last_error(ctx).
 *   - The library's own code never prints, exits or aborts.
 *   - Threads: contexts are independent and may be used from different
 *     threads at the same time; one context is used by one thread at a time.
 *
 * The exact semantics (masks, crops, inverse-transform convention, gradient
 * conventions) are those of the paper's reference layer; docs/algorithm.md
 * writes them out. Like the reference, the library makes the discrete
 * decisions (effective strides, output sizes, kept frequencies, where the
 * stride gradient passes) in float32 arithmetic, so that both give the same
 * shapes at strides such as 1.4 on 14 pixels where double would not.
 */
#ifndef DIFFSTRIDE_H
#define DIFFSTRIDE_H

#include <stddef.h> /* size_t */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(DS_BUILDING_LIBRARY)
#define DS_API __declspec(dllexport)
#elif defined(__GNUC__)
#define DS_API __attribute__((visibility("default")))
#else
#define DS_API
#endif

#define DS_VERSION_MAJOR 0
#define DS_VERSION_MINOR 1
#define DS_VERSION_PATCH 0

/* DS_VERSION_MAJOR*10000 + DS_VERSION_MINOR*100 + DS_VERSION_PATCH of the
 * library actually linked (compare with the macros to detect a mismatch). */
DS_API unsigned ds_version(void);
/* "MAJOR.MINOR.PATCH", static storage. */
DS_API const char *ds_version_string(void);

typedef enum ds_status {
  DS_OK = 0,
  DS_ERR_INVALID_ARGUMENT = -1, /* NULL pointer, bad dimension, non-finite value, H <= R, ... */
  DS_ERR_SHAPE_MISMATCH = -2,   /* out_h/out_w differ from what the *_output_size call gives */
  DS_ERR_OUT_OF_MEMORY = -3,
  DS_ERR_UNSUPPORTED = -4,      /* e.g. CUDA not built in, or no CUDA device */
  DS_ERR_BACKEND = -5           /* FFTW / cuFFT / CUDA runtime failure */
} ds_status;

/* A short English description of a status code; never NULL, also for codes
 * that are not a ds_status ("unknown status"). Static storage. */
DS_API const char *ds_status_string(int status);

/* The message of the calling thread's most recent failed call ("" if none).
 * Thread-local storage, valid until the next failing call on this thread. */
DS_API const char *ds_last_error(void);

typedef enum ds_device { DS_DEVICE_CPU = 0, DS_DEVICE_CUDA = 1 } ds_device;
/* 2-D tensors are NCHW or NHWC; 1-D tensors (n, c, l) are NCL (the same
 * value as NCHW) or NLC (as NHWC). */
typedef enum ds_layout {
  DS_LAYOUT_NCHW = 0,
  DS_LAYOUT_NHWC = 1,
  DS_LAYOUT_NCL = 0,
  DS_LAYOUT_NLC = 1
} ds_layout;

/* Opaque: cached FFT plans, workspace, thread count, CUDA stream, last error. */
typedef struct ds_context ds_context;

/* Creates a context for the device. DS_ERR_UNSUPPORTED when the device is
 * CUDA and the library was built without CUDA or no device is present.
 * On failure *ctx is set to NULL. */
DS_API ds_status ds_context_create(ds_device device, ds_context **ctx);
/* Frees the context, its plans and workspace. NULL is a no-op. */
DS_API void ds_context_destroy(ds_context *ctx);
/* CPU: number of threads each call uses (default 1; 0 = one per online
 * core). Images of a batch are split between the threads. A CUDA context
 * accepts and ignores it. */
DS_API ds_status ds_context_set_threads(ds_context *ctx, int threads);
/* CUDA: the cudaStream_t every kernel and cuFFT call of this context is
 * issued on (NULL = the legacy default stream). DS_ERR_UNSUPPORTED on a CPU
 * context. */
DS_API ds_status ds_context_set_stream(ds_context *ctx, void *stream);
/* Bit-reproducible results across processes (reproducible = 1) or the
 * fastest plans (0, the default). By default the CPU path plans its FFTs
 * with FFTW_MEASURE, which picks algorithms by timing them: two processes
 * may pick different ones and round differently, so a training run cannot be
 * repeated bit for bit. With 1 the context plans with FFTW_ESTIMATE (no
 * timing; possibly slower transforms): every process running the same FFTW
 * build on the same machine computes the same bits, provided nothing in the
 * process plans the same transforms with FFTW_MEASURE first (FFTW reuses
 * such wisdom). Plans already made are kept for the other setting.
 * DS_ERR_INVALID_ARGUMENT unless 0 or 1; DS_ERR_UNSUPPORTED for 1 on a CUDA
 * context (its stride gradients are summed with atomics, in no fixed order). */
DS_API ds_status ds_context_set_reproducible(ds_context *ctx, int reproducible);
/* The message of the last failure of a call on ctx, "" if none (a later
 * successful call does not clear it). Never NULL, also for ctx == NULL. */
DS_API const char *ds_context_last_error(const ds_context *ctx);

/* ---------------------------------------------------------------- DiffStride */

typedef struct ds_diffstride_desc {
  float smoothness;  /* R > 0 with 1/R a finite float (R >= 2.94e-39), default 4 */
  int cropping;      /* default 1; 0 keeps the spectrum whole (mask only): h x 2*(w/2) */
  int shared_stride; /* default 0; when 1 only strides[0] is read */
  float lower_limit; /* default 1; > 0 */
  float upper_limit; /* default +INFINITY */
  int layout;        /* a ds_layout, default DS_LAYOUT_NCHW */
} ds_diffstride_desc;

/* Fills desc with the defaults above. */
DS_API void ds_diffstride_desc_init(ds_diffstride_desc *desc);

/* The strides the layer computes with for an h x w input: raised to
 * h/(h-R) and w/(w-R) (with shared_stride, both to the larger of the two),
 * then clipped to [lower_limit, upper_limit]. The reference layer writes these
 * back into its stride variable after each call; callers should do the same.
 * With shared_stride, effective[0] == effective[1]. */
DS_API ds_status ds_diffstride_effective_strides(const ds_diffstride_desc *desc, int h, int w,
                                                 const float strides[2], float effective[2]);

/* Output image size for an h x w input (cropping on: the frequencies whose
 * mask is positive; cropping off: h x 2*(w/2), so an odd width loses its last
 * column, as the reference's irfft2d at the spectrum's own lengths does).
 * Requires h > R, w > R, h, w >= 2. */
DS_API ds_status ds_diffstride_output_size(const ds_diffstride_desc *desc, int h, int w,
                                           const float strides[2], int *out_h, int *out_w);

/* y (n, c, out_h, out_w in desc->layout) = DiffStride(x (n, c, h, w)).
 * out_h/out_w must equal ds_diffstride_output_size's (else
 * DS_ERR_SHAPE_MISMATCH). */
DS_API ds_status ds_diffstride_forward(ds_context *ctx, const ds_diffstride_desc *desc, int n,
                                       int c, int h, int w, const float strides[2], const float *x,
                                       int out_h, int out_w, float *y);

/* Gradients of L = sum(dy * y) for y = forward(x):
 *   dx (n, c, h, w)  = dL/dx, the adjoint of the forward map applied to dy;
 *   dstrides[2]      = dL/dstrides summed over the batch and channels (with
 *                      shared_stride: {total, 0}).
 * dx and dstrides are each optional (NULL skips that output); x is read only
 * for dstrides and may be NULL when dstrides is NULL. Outputs are
 * overwritten, not accumulated. On a CUDA context a non-NULL dstrides makes
 * the call wait for the device (the two floats come back to the host). */
DS_API ds_status ds_diffstride_backward(ds_context *ctx, const ds_diffstride_desc *desc, int n,
                                        int c, int h, int w, const float strides[2],
                                        const float *x, int out_h, int out_w, const float *dy,
                                        float *dx, float dstrides[2]);

/* Training calls: a forward that keeps, in a reserve buffer the caller
 * owns, what the stride gradient needs from x (each image's spectrum at the
 * kept frequencies), and a backward that reads it from there instead of
 * transforming x again (as cuDNN's training calls share a reserve space).
 * Same numbers as ds_diffstride_forward / ds_diffstride_backward up to
 * float rounding; on the CPU the backward with dstrides is about a third
 * faster (docs/benchmarks.md), and x need not be kept for the backward.
 * On the CPU, y, dx and dstrides are bitwise those of the plain calls for
 * finite x (with a NaN or an infinity in x the plain backward computes that
 * image's pair one image at a time, and dx may differ in its last bits).
 *
 * *bytes = the reserve size for this batch and geometry:
 * 64 + ceil(n*c/2) * (8 + 16*out_h*K) bytes, K = out_w/2 + 1 (for
 * [128,64,32,32] at strides 2, 19.5 MiB, 0.61x the size of x). */
DS_API ds_status ds_diffstride_reserve_size(const ds_diffstride_desc *desc, int n, int c, int h,
                                            int w, const float strides[2], size_t *bytes);
/* ds_diffstride_forward, and the reserve (reserve_bytes at least
 * ds_diffstride_reserve_size's, 8-byte aligned; a device pointer on a CUDA
 * context) filled for ds_diffstride_backward_reserved. */
DS_API ds_status ds_diffstride_forward_training(ds_context *ctx, const ds_diffstride_desc *desc,
                                                int n, int c, int h, int w,
                                                const float strides[2], const float *x, int out_h,
                                                int out_w, float *y, void *reserve,
                                                size_t reserve_bytes);
/* ds_diffstride_backward with x's part taken from a reserve that
 * ds_diffstride_forward_training filled for the same batch size and
 * geometry (input and output size; DS_ERR_INVALID_ARGUMENT, naming what it
 * was written for, otherwise). The reserve is read only for dstrides and
 * may be NULL when dstrides is NULL. The spectra it holds are not masked,
 * so strides that changed since the forward but give the same output size
 * use the same reserve. On a CUDA context a non-NULL dstrides also makes the
 * call wait for the device once at its start (to read the reserve's
 * header). */
DS_API ds_status ds_diffstride_backward_reserved(ds_context *ctx, const ds_diffstride_desc *desc,
                                                 int n, int c, int h, int w,
                                                 const float strides[2], const void *reserve,
                                                 size_t reserve_bytes, int out_h, int out_w,
                                                 const float *dy, float *dx, float dstrides[2]);

/* ------------------------------------------------------------- 1-D DiffStride */

/* The horizontal half of the 2-D layer, for signals x (n, c, l) in
 * desc->layout (DS_LAYOUT_NCL or DS_LAYOUT_NLC): one stride, raised to
 * l/(l-R) and clipped to the limits; the mask m(T, k) with T = max(l/s', 2)/2
 * + 1 on the rfft bins k = 0..l/2; cropping keeps the K bins with m > 0 and
 * gives length 2(K-1), cropping off gives 2*(l/2) (an odd length loses its
 * last sample). desc->shared_stride is not
 * used. Requires l > R and l >= 2. */
DS_API ds_status ds_diffstride1d_effective_stride(const ds_diffstride_desc *desc, int l,
                                                  float stride, float *effective);
DS_API ds_status ds_diffstride1d_output_size(const ds_diffstride_desc *desc, int l, float stride,
                                             int *out_l);
/* y (n, c, out_l) = DiffStride1d(x (n, c, l)). */
DS_API ds_status ds_diffstride1d_forward(ds_context *ctx, const ds_diffstride_desc *desc, int n,
                                         int c, int l, float stride, const float *x, int out_l,
                                         float *y);
/* dx (n, c, l) and dstride (one float) of L = sum(dy * y), as the 2-D
 * backward: each optional, x read only for dstride. */
DS_API ds_status ds_diffstride1d_backward(ds_context *ctx, const ds_diffstride_desc *desc, int n,
                                          int c, int l, float stride, const float *x, int out_l,
                                          const float *dy, float *dx, float *dstride);
/* The training calls of the 1-D layer, as the 2-D ones: the reserve size
 * (64 + ceil(n*c/2) * (8 + 16*K) bytes, K = out_l/2 + 1), a forward that
 * fills it, a backward that reads x's part from it (the reserve read only
 * for dstride; bitwise the plain backward's results on the CPU for finite x,
 * as the 2-D calls). */
DS_API ds_status ds_diffstride1d_reserve_size(const ds_diffstride_desc *desc, int n, int c, int l,
                                              float stride, size_t *bytes);
DS_API ds_status ds_diffstride1d_forward_training(ds_context *ctx, const ds_diffstride_desc *desc,
                                                  int n, int c, int l, float stride, const float *x,
                                                  int out_l, float *y, void *reserve,
                                                  size_t reserve_bytes);
DS_API ds_status ds_diffstride1d_backward_reserved(ds_context *ctx, const ds_diffstride_desc *desc,
                                                   int n, int c, int l, float stride,
                                                   const void *reserve, size_t reserve_bytes,
                                                   int out_l, const float *dy, float *dx,
                                                   float *dstride);

/* ---------------------------------------------------------- spectral pooling */

/* Output size of fixed spectral pooling with strides >= 1:
 * out_h = max(floor(h/s_h) rounded down to even, 2), out_w = max(floor(w/s_w), 2),
 * each quotient a float32 division as in the reference. */
DS_API ds_status ds_spectral_pool_output_size(int h, int w, const float strides[2], int *out_h,
                                              int *out_w);

/* y (n, c, out_h, out_w) = spectral pooling of x (n, c, h, w) in the given
 * layout (a ds_layout). */
DS_API ds_status ds_spectral_pool_forward(ds_context *ctx, int layout, int n, int c, int h, int w,
                                          const float strides[2], const float *x, int out_h,
                                          int out_w, float *y);

/* dx (n, c, h, w) = adjoint of spectral pooling applied to dy (n, c, out_h, out_w). */
DS_API ds_status ds_spectral_pool_backward(ds_context *ctx, int layout, int n, int c, int h,
                                           int w, const float strides[2], int out_h, int out_w,
                                           const float *dy, float *dx);

/* ------------------------------------------------------ complexity penalty */

/* J(S) = sum_l weights[l] * prod_{i<=l} 1 / (s_h^i * s_w^i) over `layers`
 * downsampling layers in network order; strides holds (s_h, s_w) per layer
 * (2*layers floats, each finite and > 0). weights == NULL means all 1.
 * *value receives J; grad (2*layers floats, may be NULL) receives dJ/dstrides.
 * layers == 0 gives J = 0. */
DS_API ds_status ds_complexity_penalty(int layers, const float *strides, const float *weights,
                                       float *value, float *grad);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSTRIDE_H */
