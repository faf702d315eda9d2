/* The CUDA backend's private state: cuFFT plans cached per shape, a device
 * workspace that only grows, the stream every launch goes on. */
#ifndef DS_CUDA_H
#define DS_CUDA_H

#include <cuda_runtime.h>
#include <cufft.h>

#include "../internal.h"

#define DS_CUDA_PLAN_CACHE 32

/* A 2-D real transform of n0 x n1 images (R2C forward or C2R inverse),
 * `batch` images in one call; the real side's pixels are `stride` floats
 * apart and its images `dist` apart (NCHW: 1 and n0*n1; NHWC, per sample:
 * C and 1); the complex side is contiguous, n0 x (n1/2+1) per image. */
typedef struct cuda_plan_key {
  int inverse, n0, n1, stride, dist, batch;
} cuda_plan_key;

typedef struct cuda_state {
  cudaStream_t stream;
  struct {
    cuda_plan_key key;
    cufftHandle plan;
    size_t work; /* bytes of cuFFT work area it needs */
    unsigned long long used;
  } cache[DS_CUDA_PLAN_CACHE];
  int cached;
  unsigned long long clock;
  void *fft_work; /* shared by every plan (auto-allocation off) */
  size_t fft_work_bytes;
  void *buf; /* spectra: grown, never shrunk */
  size_t buf_bytes;
  double *sums; /* out_h x kc mask-gradient sums, device */
  double *host_sums; /* their host copy (pinned) */
  size_t sums_count;
} cuda_state;

/* The cached plan for key on the context's stream, with the shared work
 * area large enough for it; 0 on success. */
ds_status ds__cuda_plan(ds_context *ctx, cuda_plan_key key, cufftHandle *plan);
/* Grows the spectrum buffer to `bytes` and the sums to `count` doubles. */
ds_status ds__cuda_reserve(ds_context *ctx, size_t bytes, size_t count);
/* A CUDA or cuFFT failure as a recorded DS_ERR_BACKEND. */
ds_status ds__cuda_fail(ds_context *ctx, const char *what, int code);

ds_status ds__cuda_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           float *y, float *keep);
ds_status ds__cuda_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                            const float *keep, const float *dy, float *dx, double *gh, double *gw);

#endif /* DS_CUDA_H */
