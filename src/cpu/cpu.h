/* The CPU backend's private state: FFTW plans cached per shape, one scratch
 * arena per thread. */
#ifndef DS_CPU_H
#define DS_CPU_H

#include <fftw3.h>

#include "../internal.h"

#define DS_PLAN_CACHE 64

/* One 1-D batched FFTW plan: `howmany` transforms of length n, elements
 * `stride` apart, transforms `idist`/`odist` apart (in elements of the
 * input and output type). */
typedef enum plan_kind { PLAN_R2C, PLAN_C2R, PLAN_C2C_FORWARD, PLAN_C2C_BACKWARD } plan_kind;
typedef struct plan_key {
  plan_kind kind;
  int n, howmany, stride, idist, odist;
} plan_key;

/* Per-thread scratch for one image, all parts 64-byte aligned so that every
 * arena has the alignment the plans were made with:
 *   real: max(h*w, out_h*out_w) floats, an image in or out (row-major);
 *   spec: h x kw complex, the input's spectrum;
 *   crop: out_h x kc complex, the cropped spectrum;
 *   gh, gw: out_h and kc doubles, this thread's mask gradients. */
typedef struct arena {
  void *base;
  size_t bytes;
  float *real, *spec, *crop;
  double *gh, *gw;
} arena;

typedef struct cpu_state {
  int threads; /* as set; 0 = one per core */
  struct {
    plan_key key;
    fftwf_plan plan;
    unsigned long long used; /* clock value of the last use */
  } cache[DS_PLAN_CACHE];
  int cached;
  unsigned long long clock;
  arena *arenas;
  int narenas;
} cpu_state;

/* The plans of one crop geometry. */
typedef struct crop_plans {
  fftwf_plan rows_in_r2c;  /* h rows of length w -> spec */
  fftwf_plan rows_in_c2r;  /* spec -> h rows of length w */
  fftwf_plan cols_in[2];   /* kc columns of length h in spec: [0] forward, [1] backward */
  fftwf_plan rows_out_r2c; /* out_h rows of length out_w -> crop */
  fftwf_plan rows_out_c2r; /* crop -> out_h rows of length out_w */
  fftwf_plan cols_out[2];  /* kc columns of length out_h in crop */
} crop_plans;

/* Sizes the first `count` arenas for g and makes the plans (planning uses
 * arena 0, so that every arena matches the plans' alignment). */
ds_status ds__cpu_prepare(ds_context *ctx, const ds_crop *g, int count, crop_plans *p);
/* The crop op on the CPU (cpu_crop.c), as ds_backend's forward/backward. */
ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y);
ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *dy, float *dx, double *gh, double *gw);
/* Threads a call on `images` images uses. */
int ds__cpu_threads(const cpu_state *s, long long images);

#endif /* DS_CPU_H */
