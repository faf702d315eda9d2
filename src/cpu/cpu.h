/* The CPU backend's private state: FFTW plans cached per shape, one scratch
 * arena per thread. */
#ifndef DS_CPU_H
#define DS_CPU_H

#include <fftw3.h>

#include "../internal.h"

#define DS_PLAN_CACHE 64

/* One in-place complex FFTW plan (guru interface): transforms of length n,
 * elements `stride` apart, repeated over two nested loops (outer_count
 * times outer_dist, inner_count times inner_dist), all in complex elements. */
typedef struct plan_key {
  int flags; /* FFTW_MEASURE or FFTW_ESTIMATE */
  int sign, n, stride;
  int outer_count, outer_dist, inner_count, inner_dist;
} plan_key;

/* Per-thread scratch for one pair of images, every part 64-byte aligned so
 * that all arenas have the alignment the plans were made with:
 *   in:  h x w complex, the pair (x or dx) or its packed spectrum;
 *   out: out_h x out_w complex, the pair (y or dy) or its packed spectrum;
 *   zm, ym: kc complex each, one cropped row's mirrored bins of the two
 *        spectra, reversed so that the gradient loop reads them in order;
 *   sums: out_h x kc doubles, this thread's sums of Re(conj(Y) X) per kept
 *        bin (Y of dy, X of x), the input of ds__mask_gradients. */
typedef struct arena {
  void *base;
  size_t bytes;
  float *in, *out, *zm, *ym;
  double *sums;
} arena;

typedef struct cpu_state {
  int threads; /* as set; 0 = one per core */
  int plan_flags; /* FFTW_MEASURE, or FFTW_ESTIMATE when reproducible */
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

/* A 2-D complex FFT of an a x b grid done as rows then columns. Index [0]
 * forward, [1] backward. */
typedef struct grid_plans {
  fftwf_plan rows[2], cols[2];
} grid_plans;

/* The plans of one crop geometry: the input grid (h x w) and the output
 * grid (out_h x out_w). */
typedef struct crop_plans {
  grid_plans in, out;
} crop_plans;

/* Sizes the first `count` arenas for g and makes the plans (planning uses
 * arena 0, so that every arena matches the plans' alignment). */
ds_status ds__cpu_prepare(ds_context *ctx, const ds_crop *g, int count, crop_plans *p);
/* The crop op on the CPU (cpu_crop.c), as ds_backend's forward/backward. */
ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y);
ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *dy, float *dx, double *gh, double *gw);
/* Threads a call on `pairs` pairs of images uses. */
int ds__cpu_threads(const cpu_state *s, long long pairs);

#endif /* DS_CPU_H */
