/* The CPU backend's private state: FFTW plans cached per shape, one scratch
 * arena per thread. */
#ifndef DS_CPU_H
#define DS_CPU_H

#include <fftw3.h>

#include "../internal.h"

#define DS_PLAN_CACHE 64

/* One in-place complex FFTW plan (guru interface): transforms of length n,
 * elements `stride` apart, repeated over two nested loops (outer_count
 * times outer_dist, inner_count times inner_dist), all in complex elements.
 * split: 0 for a plain transform; n1 > 1 for the Good-Thomas (prime
 * factor) form of n = n1 n2 with n1, n2 coprime, a 2-D n1 x n2 transform
 * without twiddle factors whose input and output are in permuted order
 * (ds__cpu_grid_rows); DS_SPLIT_BEST for whichever of these FFTW rates
 * cheapest (the cache remembers which). */
typedef struct plan_key {
  int flags; /* FFTW_MEASURE or FFTW_ESTIMATE */
  int sign, n, stride;
  int outer_count, outer_dist, inner_count, inner_dist;
  int split;
} plan_key;

#define DS_SPLIT_BEST (-1)

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
  /* The thread's next pair: byte ranges of the tensors it streams that are
   * still to be prefetched (read, then written), a few lines at a time
   * (cpu_crop.c, prefetch_some). */
  struct {
    const char *at[4], *end[4];
    int ranges, reads, per_step;
  } next;
} arena;

typedef struct cpu_state {
  int threads; /* as set; 0 = one per core */
  int plan_flags; /* FFTW_MEASURE, or FFTW_ESTIMATE when reproducible */
  struct {
    plan_key key;
    fftwf_plan plan;
    int split; /* the split the plan uses (key.split unless DS_SPLIT_BEST) */
    unsigned long long used; /* clock value of the last use */
  } cache[DS_PLAN_CACHE];
  int cached;
  unsigned long long clock;
  arena *arenas;
  int narenas;
} cpu_state;

/* A 2-D complex FFT of an a x b grid done as rows then columns. Index [0]
 * forward, [1] backward. The column transforms use the Good-Thomas split
 * `split` of a when FFTW rates it cheaper (FFTW has SIMD code for few
 * lengths: a 24-point column transform of a 24 x 24 grid takes 0.77 us
 * plain and 0.36 us as 3 x 8), and the grid's rows are then stored in the
 * permuted orders of ds__cpu_grid_rows. */
typedef struct grid_plans {
  fftwf_plan rows[2], cols[2];
  int split;
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
                          float *y, float *keep);
ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *keep, const float *dy, float *dx, double *gh, double *gw);
/* Where the rows of an n-row grid are stored when its column transforms
 * use split (0: plain, each row in place): image row i at spatial[i],
 * spectrum row k at spectral[k]. With n = n1 n2, the Good-Thomas input
 * order puts row (n2 i1 + n1 i2) mod n at i1 n2 + i2 and the output order
 * row (n2 t2 k1 + n1 t1 k2) mod n at k1 n2 + k2 (t2 = n2^-1 mod n1,
 * t1 = n1^-1 mod n2); since e^(2 pi i jk/n) is symmetric in j and k, the
 * inverse transform maps spectral order back to spatial order. */
void ds__cpu_grid_rows(int n, int split, int *spatial, int *spectral);
/* Threads a call on `pairs` pairs of images uses. */
int ds__cpu_threads(const cpu_state *s, long long pairs);

#endif /* DS_CPU_H */
