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

/* The packing and unpacking loops, which with the gradient sums (an AVX2
 * kernel of their own, cpu_sums.c) dominate the library's own time, built
 * twice where the toolchain can dispatch at load time (GCC or Clang, x86-64, ELF ifunc): for AVX2 and for the baseline the
 * library is compiled for, the CPU picking one (measured: forward+backward
 * in cache 7-10 % faster; clones of every loop, and AVX-512 ones, were
 * slower, docs/benchmarks.md). Not under ThreadSanitizer: the clones'
 * ifunc resolvers run before its runtime is set up and crash the program. */
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__SANITIZE_THREAD__)
#define DS_HOT_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define DS_HOT_LOOP
#endif

/* The row orders of a grid of `rows` x `width` complex (ds__cpu_grid_rows):
 * image row i is stored at spatial[i], spectrum row k at spectral[k]; split
 * 0 when both are the identity. */
typedef struct grid_rows {
  int rows, width, split;
  int *spatial, *spectral;
} grid_rows;

/* How a pair was packed: the lanes holding an image (bit 0: image 2*pair,
 * bit 1: the next) and the factor each image's result is scaled back by
 * (the inverse of its ds_pair_shifts scale; 0 for an all-zero image, so that
 * it gives exact zeros whatever its partner leaves in its lane). */
typedef struct packing {
  int lanes;
  float back[2];
} packing;

/* Per-thread scratch for one pair of images, every part 64-byte aligned so
 * that all arenas have the alignment the plans were made with:
 *   in:  h x w complex, the pair (x or dx) or its packed spectrum;
 *   out: out_h x out_w complex, the pair (y or dy) or its packed spectrum;
 *   staged: a pair's block of the reserve (cpu_crop.c, pair_block),
 *        assembled here and then streamed out in whole lines;
 *   sums: out_h x kc doubles, this thread's sums of Re(conj(Y) X) per kept
 *        bin (Y of dy, X of x), the input of ds__mask_gradients. */
typedef struct arena {
  void *base;
  size_t bytes;
  float *in, *out, *staged;
  double *sums;
  /* NHWC only (cpu_crop.c, run_staged): a block of images of the input
   * (x or dy), of x in a backward, and of the output (y or dx). */
  float *stage[3];
  /* The thread's next pair: byte ranges of the tensors it streams that
   * are still to be prefetched, a few lines at a time
   * (ds__cpu_prefetch_some); the first `reads` ranges are read, the others
   * written. */
  struct {
    const char *at[4], *end[4];
    int ranges, reads, per_step;
  } next;
} arena;

typedef struct cpu_state {
  int threads; /* as set; 0 = one per core */
  int own; /* 1: transforms of our own where there are (ds__cpu_own_rows); tests set 0 */
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

/* In-place DFTs along one axis of a grid of interleaved complex, exponent
 * sign `sign` (-1 forward, +1 backward, unnormalized as FFTW's): of its
 * `count` rows (consecutive), or of all its columns (`count` complex a
 * row). */
typedef void (*ds_grid_fn)(float *grid, int count, int sign);

/* The library's own transforms of `length`-point rows, or columns, for
 * this CPU; NULL where there are none (cpu_dft.c: 24-point rows, 24- and
 * 32-point columns, with AVX2 and FMA, where FFTW is slow). */
ds_grid_fn ds__cpu_own_rows(int length);
ds_grid_fn ds__cpu_own_cols(int length);

/* A 2-D complex FFT of an a x b grid done as rows then columns (columns
 * first when the rows are pruned, so that the forward transforms only the
 * rows that are read and the inverse only those that are not zero). Index
 * [0] forward, [1] backward. The column transforms use the Good-Thomas split
 * `split` of a when FFTW rates it cheaper (FFTW has SIMD code for few
 * lengths: a 24-point column transform of a 24 x 24 grid takes 0.77 us
 * plain and 0.36 us as 3 x 8), and the grid's rows are then stored in the
 * permuted orders of ds__cpu_grid_rows. */
typedef struct grid_plans {
  fftwf_plan rows[2], cols[2];
  int split;
  ds_grid_fn own_rows, own_cols; /* when not NULL, used instead of rows[], cols[] */
  int a, b;
  /* Rows pruned to the ones the crop reads (cpu_backend.c, live_rows):
   * rows[] transform rows [0, low), high_rows[] rows [high, a); low = high
   * = a when all rows are transformed. */
  int low, high;
  fftwf_plan high_rows[2];
} grid_plans;

/* The plans of one crop geometry: the input grid (h x w) and the output
 * grid (out_h x out_w). */
typedef struct crop_plans {
  grid_plans in, out;
} crop_plans;

/* Sizes the first `count` arenas for g (with three stages of stage_floats
 * floats each, 0 but in NHWC) and makes the plans (planning uses arena 0, so
 * that every arena matches the plans' alignment). */
ds_status ds__cpu_prepare(ds_context *ctx, const ds_crop *g, int count, size_t stage_floats, crop_plans *p);
/* The crop op on the CPU (cpu_crop.c), as ds_backend's forward/backward. */
ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y, float *keep);
ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *keep, const float *dy, float *dx, double *gh, double *gw);
/* One cropped row of the packed spectra of x (z) and dy (y), bins 0..n-1,
 * and the rows holding their mirrors: bin 0 at zm[0], bin -k (k >= 1) at
 * index bz - k of zm (by - k of ym), bz and by their rows' widths. */
typedef struct row_pair {
  const float *z, *zm, *y, *ym;
  int bz, by;
} row_pair;

/* sum[k] += s0 p[0] + s1 p[1] of ds_pair_grad_products at bins 0..n-1 of
 * the row (cpu_sums.c). */
void ds__cpu_row_sums(const row_pair *r, float s0, float s1, double *sum, int n);

/* Packing, unpacking and streaming (cpu_pack.c). */
/* grid (gr's rows in spatial order) = 2^s0 * image 2*pair + i * 2^s1 *
 * image 2*pair+1 of tensor t (images of gr's size in b's layout), each only
 * if its bit is in lanes and it exists (else zeros); s0, s1 are
 * ds_pair_shifts'. */
packing ds__cpu_pack(const ds_batch *b, const grid_rows *gr, float *grid, const float *t, long long pair,
                     int lanes);
/* Whether a call writing `bytes` of output streams it: writes it with
 * non-temporal stores, whose lines go to memory without being read first
 * (where the CPU has them, and for outputs too large to stay cached). */
int ds__cpu_streams(size_t bytes);
/* The inverse of ds__cpu_pack: real parts to one image of t, imaginary
 * parts to the other (only the lanes packed), each scaled back; contiguous
 * images streamed when `stream` is set. */
void ds__cpu_unpack(const ds_batch *b, const grid_rows *gr, const float *grid, float *t, long long pair,
                    const packing *k, int stream);
/* NHWC (channels last) blocks of consecutive images: the images first ..
 * first+count-1 (count <= DS_STAGE_IMAGES) of the NHWC tensor t, hw pixels
 * each, copied image by image into stage (count x hw floats, as in NCHW),
 * and back. A pixel's channels share cache lines, so a block is moved one
 * pixel (one run of channels) at a time. */
#define DS_STAGE_IMAGES 16
void ds__cpu_stage_in(const ds_batch *b, long long first, int count, long long hw, const float *t, float *stage);
void ds__cpu_stage_out(const ds_batch *b, long long first, int count, long long hw, const float *stage, float *t);
/* dst = src (n floats), streamed when `stream` is set. */
void ds__cpu_copy_out(float *dst, const float *src, size_t n, int stream);
/* Orders the thread's non-temporal stores before what it does next
 * (another thread reading its output). */
void ds__cpu_stream_fence(void);
/* Some of the next pair's prefetches (arena.next), at each step of the
 * pair in progress. */
void ds__cpu_prefetch_some(arena *a);

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
