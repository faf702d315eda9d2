/* The crop op on the CPU. Two real images travel together as one complex
 * image a + i b (FFTW's complex transforms are vectorized, its real ones are
 * not): each thread takes a contiguous range of image pairs and runs them
 * through its cache-resident arena, so no full-size spectrum of the batch
 * ever exists. Per pair:
 *   forward:  pack x -> 2-D FFT -> mask and crop the packed spectrum ->
 *             inverse 2-D FFT -> unpack y;
 *   backward: pack dy -> 2-D FFT -> [x's spectrum -> mask gradients] ->
 *             [spectrum placed back and masked -> inverse 2-D FFT ->
 *             unpack dx]. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../elementwise.h"
#include "cpu.h"

#define DS_MAX_THREADS 256

/* One call's work. Forward: in = x, out = y, and what the gradient sums
 * read of x's spectra to keep when it is set. Backward: in = dy, out = dx
 * (NULL: not wanted), and for the mask gradients, when grad is set, x's
 * spectra from kept when it is set, else from x.
 * The per-bin factors are stored once per float of a complex number (both
 * floats of bin k get bin k's factor) so that the scaling loops are plain
 * float loops that vectorize; "r" arrays hold their factors reversed, for
 * the mirrored half of a row, which runs backwards in k. */
typedef struct crop_job {
  const ds_crop *g;
  const ds_batch *b;
  crop_plans p;
  grid_rows gin, gout; /* of the arenas' in (h x w) and out (out_h x out_w) grids */
  const float *in, *x;
  float *out;
  float *keep;       /* forward: the reserve's spectra (pair_block), written */
  const float *kept; /* backward: the same, read */
  int grad;
  int stream;    /* outputs written with non-temporal stores (ds__cpu_streams) */
  int crop_n;    /* bins 1..crop_n of a cropped row are plain copies (not self-mirrored) */
  int uncrop_n;  /* bins 1..uncrop_n of a spectrum row of dx are plain copies */
  int *crow;     /* h: ds_cropped_row of each spectrum row */
  float *mh;     /* out_h: mask of each cropped row */
  float *fk;     /* kc: forward scale of bin k, mw / (out_h*out_w) */
  float *bk;     /* kc: dx scale, c_k mw / (out_h*out_w*c'_k), c' the weights of the length-w inverse */
  float *f2, *fr2; /* 2 crop_n: fk of bins 1..crop_n, and reversed */
  float *b2, *br2; /* 2 uncrop_n: bk of bins 1..uncrop_n, and reversed */
} crop_job;

typedef struct worker {
  crop_job *job;
  arena *a;
  long long first, last; /* pairs [first, last) */
  int backward;
} worker;

static long long images(const crop_job *j) { return (long long)j->b->n * j->b->c; }

/* Whether a shared transform spread a NaN or an infinity between the two
 * images: any such input makes the DC bin (the sum of the pixels) not
 * finite. Checked on the forward transforms of a packed pair only. */
static int spread_bad_values(const packing *k, const float *dc) {
  return k->lanes == 3 && !(isfinite(dc[0]) && isfinite(dc[1]));
}

/* Bin (r, k) of a spectrum held in a grid with row orders gr. */
static size_t bin(const grid_rows *gr, int r, int k) {
  return 2 * ((size_t)gr->spectral[r] * (size_t)gr->width + (size_t)k);
}
static float *at(const grid_rows *gr, float *grid, int r, int k) { return grid + bin(gr, r, k); }
static const float *cat(const grid_rows *gr, const float *grid, int r, int k) { return grid + bin(gr, r, k); }

/* d = m * f * v over n complex numbers (f per float, see crop_job). */
static void scaled_copy(float *restrict d, const float *restrict v, const float *restrict f, float m, int n) {
  for (int e = 0; e < 2 * n; e++) d[e] = m * f[e] * v[e];
}

/* Cropped row i, its mirror im = -i, the spectrum row r = r(i) it keeps
 * and the mirror rm = -r(-i) of the row its mirror keeps. */
typedef struct crop_row {
  int i, im, r, rm;
} crop_row;

static crop_row crop_row_of(const ds_crop *g, int i) {
  int im = ds_mirror(i, g->out_h);
  return (crop_row){i, im, ds_source_row(i, g->h, g->out_h, g->rows_lo),
                    ds_mirror(ds_source_row(im, g->h, g->out_h, g->rows_lo), g->h)};
}

/* Bins 0 and out_w/2 of cropped row i are their own mirrors: the Hermitian
 * part along the height, (Z[i] + conj(Z[-i])) / 2, from F at (r, k) and at
 * (rm, -k). */
static void crop_self_mirror(const crop_job *j, const float *f, float *p, crop_row c, int k) {
  ds_complex_combine(at(&j->gout, p, c.i, k), cat(&j->gin, f, c.r, k), 0.5f * j->mh[c.i] * j->fk[k],
                     cat(&j->gin, f, c.rm, ds_mirror(k, j->g->w)), 0.5f * j->mh[c.im] * j->fk[k]);
}

/* Forward: the packed spectrum F (h x w, in) masked and cropped into P
 * (out_h x out_w, out), every element written. Cropped row i holds bins
 * 1..n of spectrum row r = r(i), scaled by mh[i] fk[k], and the mirrored
 * bins out_w-n..out_w-1 from w-n..w-1 of the spectrum row -r(-i) (the
 * mirror image of what row -i keeps), scaled by mh[-i] fk[-k]. */
static void crop_spectrum(const crop_job *j, arena *a, const float *f, float *p) {
  const ds_crop *g = j->g;
  int ow = g->out_w, n = j->crop_n;
  for (int i = 0; i < g->out_h; i++) {
    ds__cpu_prefetch_some(a);
    crop_row c = crop_row_of(g, i);
    scaled_copy(at(&j->gout, p, i, 1), cat(&j->gin, f, c.r, 1), j->f2, j->mh[i], n);
    scaled_copy(at(&j->gout, p, i, ow - n), cat(&j->gin, f, c.rm, g->w - n), j->fr2, j->mh[c.im], n);
    crop_self_mirror(j, f, p, c, 0);
    if (n + 1 < g->kc) crop_self_mirror(j, f, p, c, g->kc - 1);
  }
}

/* Columns 0 and w/2 of the spectrum of dx take the Hermitian part along the
 * height of what the kept rows give them. */
static void uncrop_self_mirror(const crop_job *j, const float *d, float *f, int k) {
  const ds_crop *g = j->g;
  int oh = g->out_h, ow = g->out_w;
  for (int r = 0; r < g->h; r++) {
    int i = j->crow[r], mi = j->crow[ds_mirror(r, g->h)];
    if (i < 0 && mi < 0) continue; /* zero, as uncrop_spectrum left it */
    float t = i < 0 ? 0.0f : 0.5f * j->mh[i] * j->bk[k], tm = mi < 0 ? 0.0f : 0.5f * j->mh[mi] * j->bk[k];
    ds_complex_combine(at(&j->gin, f, r, k), cat(&j->gout, d, i < 0 ? 0 : i, k), t,
                       cat(&j->gout, d, ds_mirror(mi < 0 ? 0 : mi, oh), ds_mirror(k, ow)), tm);
  }
}

/* Backward: the packed spectrum D of dy (out_h x out_w, out) placed back on
 * the input grid (in) as the spectrum of dx. Kept row i (spectrum row r)
 * gets bins 1..n of D's row i scaled by mh[i] bk[k], and row -r gets the
 * mirrored bins w-n..w-1 from out_w-n..out_w-1 of D's row -i, same scale;
 * everything else is zero but columns 0 and w/2 (uncrop_self_mirror). */
static void uncrop_spectrum(const crop_job *j, arena *a, const float *d, float *f) {
  const ds_crop *g = j->g;
  int oh = g->out_h, ow = g->out_w, n = j->uncrop_n;
  memset(f, 0, sizeof(float) * 2 * (size_t)g->h * (size_t)g->w);
  for (int i = 0; i < oh; i++) {
    ds__cpu_prefetch_some(a);
    int r = ds_source_row(i, g->h, oh, g->rows_lo);
    scaled_copy(at(&j->gin, f, r, 1), cat(&j->gout, d, i, 1), j->b2, j->mh[i], n);
    scaled_copy(at(&j->gin, f, ds_mirror(r, g->h), g->w - n), cat(&j->gout, d, ds_mirror(i, oh), ow - n), j->br2,
                j->mh[i], n);
  }
  uncrop_self_mirror(j, d, f, 0);
  if (g->w % 2 == 0 && g->w / 2 < g->kc) uncrop_self_mirror(j, d, f, g->w / 2);
}

/* A reserve's spectra on the CPU, per pair: the two packing scales of x
 * (back[0], back[1]; NaN when x's images went through the transforms one by
 * one), then per cropped row i the kc bins of row r(i) of the packed
 * spectrum F and bins 0, w-kc+1, ..., w-1 of row -r(i) (what the gradient
 * sums read of F). This is the pair's offset in floats. */
static size_t pair_block(const crop_job *j, long long pair) {
  return (size_t)pair * (2 + 4 * (size_t)j->g->out_h * (size_t)j->g->kc);
}

/* The pair's block from F (in) to the reserve, assembled in the arena and
 * streamed out in whole lines (written piecewise, a row's 4 kc floats at
 * a time, the lines would be read from memory first, or with non-temporal
 * stores written half full); split: only the NaN scales (and zeros). */
static void keep_pair(const crop_job *j, const arena *a, long long pair, const packing *k, int split) {
  const ds_crop *g = j->g;
  size_t kc = (size_t)g->kc;
  float *block = a->staged;
  block[0] = split ? NAN : k->back[0], block[1] = split ? NAN : k->back[1];
  for (int i = 0; i < g->out_h; i++) {
    float *row = block + 2 + 4 * kc * (size_t)i;
    int r = ds_source_row(i, g->h, g->out_h, g->rows_lo), rm = ds_mirror(r, g->h);
    if (split) {
      memset(row, 0, sizeof(float) * 4 * kc);
      continue;
    }
    memcpy(row, cat(&j->gin, a->in, r, 0), sizeof(float) * 2 * kc);
    memcpy(row + 2 * kc, cat(&j->gin, a->in, rm, 0), sizeof(float) * 2);
    memcpy(row + 2 * kc + 2, cat(&j->gin, a->in, rm, g->w - g->kc + 1), sizeof(float) * 2 * (kc - 1));
  }
  ds__cpu_copy_out(j->keep + pair_block(j, pair), block, pair_block(j, 1), j->stream);
}

/* Cropped row i of the packed spectra of x, from F (in) or from the pair's
 * reserve block, and of dy (out), with the rows of their mirrors. */
static row_pair row_of(const crop_job *j, const arena *a, const float *block, int i) {
  const ds_crop *g = j->g;
  row_pair p = {.y = cat(&j->gout, a->out, i, 0), .ym = cat(&j->gout, a->out, ds_mirror(i, g->out_h), 0),
                .by = g->out_w};
  if (block) {
    p.z = block + 2 + 4 * (size_t)g->kc * (size_t)i, p.zm = p.z + 2 * g->kc, p.bz = g->kc;
  } else {
    int r = ds_source_row(i, g->h, g->out_h, g->rows_lo);
    p.z = cat(&j->gin, a->in, r, 0), p.zm = cat(&j->gin, a->in, ds_mirror(r, g->h), 0), p.bz = g->w;
  }
  return p;
}

/* sums[i][k] += s0 Re(conj(Y0) X0) + s1 Re(conj(Y1) X1) over the kept bins,
 * for the two images of the pair, from the packed spectra of dy (out) and
 * x (in, or the reserve block); s0, s1 undo the packings' scales. */
static void accumulate_pair(const crop_job *j, arena *a, const packing *ky, const packing *kx,
                            const float *block) {
  const ds_crop *g = j->g;
  float s0 = ky->back[0] * kx->back[0], s1 = ky->back[1] * kx->back[1];
  for (int i = 0; i < g->out_h; i++) {
    ds__cpu_prefetch_some(a);
    row_pair p = row_of(j, a, block, i);
    ds__cpu_row_sums(&p, s0, s1, a->sums + (size_t)i * (size_t)g->kc, g->kc);
  }
}

/* Adds the pair's images of tensor t (per_image floats each; both images,
 * or one where the batch ends) to the ranges. */
static void next_range(arena *a, const crop_job *j, const float *t, long long pair, long long per_image) {
  long long count = 2 * pair + 1 < images(j) ? 2 : 1;
  const char *start = (const char *)(t + 2 * pair * per_image);
  a->next.at[a->next.ranges] = start, a->next.end[a->next.ranges] = start + sizeof(float) * count * per_image;
  a->next.ranges++;
}

/* Adds the pair's block of a reserve's spectra to the ranges. */
static void block_range(arena *a, const crop_job *j, const float *spectra, long long pair) {
  const char *start = (const char *)(spectra + pair_block(j, pair));
  a->next.at[a->next.ranges] = start, a->next.end[a->next.ranges] = start + sizeof(float) * pair_block(j, 1);
  a->next.ranges++;
}

/* The prefetching steps of a pair (ds__cpu_prefetch_some): each
 * transform half, and each cropped row of the crop, the gradient sums and
 * the uncrop. */
static int pair_steps(const crop_job *j, int backward) {
  int oh = j->g->out_h;
  return backward ? 2 + j->grad * (oh + 2 * !j->kept) + (j->out != NULL) * (oh + 2) : 4 + oh;
}

/* Plans the prefetches of pair `pair` (none when it is past the worker's
 * last), spread over the steps of the pair before it: each transform and
 * each cropped row of the crop, the gradient sums and the uncrop. */
static void plan_prefetch(const crop_job *j, arena *a, long long pair, long long last, int backward) {
  const ds_crop *g = j->g;
  long long in = (long long)g->h * g->w, out = (long long)g->out_h * g->out_w;
  a->next.ranges = 0;
  if (pair >= last) return;
  next_range(a, j, j->in, pair, backward ? out : in);
  if (backward && j->grad && j->kept) {
    block_range(a, j, j->kept, pair);
  } else if (backward && j->grad) {
    next_range(a, j, j->x, pair, in);
  }
  a->next.reads = a->next.ranges;
  if (j->out && !j->stream) next_range(a, j, j->out, pair, backward ? in : out);
  if (j->keep && !j->stream) block_range(a, j, j->keep, pair);
  long long lines = 0, steps = pair_steps(j, backward);
  for (int r = 0; r < a->next.ranges; r++) lines += (a->next.end[r] - a->next.at[r] + 63) / 64;
  a->next.per_step = (int)((lines + steps - 1) / steps);
}

/* The row (cols 0) or column (cols 1) transforms of a grid: the
 * library's own where there are, else FFTW's (of the live rows only when
 * the rows are pruned). */
static void axis_fft(const grid_plans *p, float *grid, int cols, int backward) {
  ds_grid_fn own = cols ? p->own_cols : p->own_rows;
  fftwf_complex *c = (fftwf_complex *)grid;
  if (own) {
    own(grid, cols ? p->b : p->a, backward ? 1 : -1);
  } else if (cols) {
    fftwf_execute_dft(p->cols[backward], c, c);
  } else {
    fftwf_execute_dft(p->rows[backward], c, c);
    if (p->high < p->a) fftwf_execute_dft(p->high_rows[backward], c + (size_t)p->high * p->b, c + (size_t)p->high * p->b);
  }
}

/* A 2-D FFT of the grid: forward rows then columns, backward the reverse
 * (the other way round when the rows are pruned); some of the next pair's
 * prefetches before each half. */
static void grid_fft(arena *a, const grid_plans *p, float *grid, int backward) {
  int cols_first = p->high < p->a;
  for (int half = 0; half < 2; half++) {
    ds__cpu_prefetch_some(a);
    axis_fft(p, grid, (half != backward) != cols_first, backward);
  }
}

/* The pair's forward over `lanes`; 0 (nothing written) when both images
 * were packed and one holds a NaN or an infinity, which the shared
 * transform would spread to its partner: the caller then runs them one by
 * one, so that each image's result depends on that image alone. */
static int forward_pair(const crop_job *j, arena *a, long long pair, int lanes) {
  packing k = ds__cpu_pack(j->b, &j->gin, a->in, j->in, pair, lanes);
  grid_fft(a, &j->p.in, a->in, 0);
  if (spread_bad_values(&k, cat(&j->gin, a->in, 0, 0))) return 0;
  if (j->keep) keep_pair(j, a, pair, &k, lanes != 3);
  crop_spectrum(j, a, a->in, a->out);
  grid_fft(a, &j->p.out, a->out, 1);
  ds__cpu_unpack(j->b, &j->gout, a->out, j->out, pair, &k, j->stream);
  return 1;
}

/* The gradient with respect to the cropped masked spectrum is
 * G = c_k rfft2(dy) / (out_h*out_w); the mask gradients (from the sums,
 * ds__mask_gradients) and dx follow from it (bk holds c_k and the scale).
 * Returns 0 as forward_pair, before anything is accumulated or written. */
static int backward_pair(const crop_job *j, arena *a, long long pair, int lanes) {
  packing ky = ds__cpu_pack(j->b, &j->gout, a->out, j->in, pair, lanes), kx = ky;
  grid_fft(a, &j->p.out, a->out, 0);
  if (spread_bad_values(&ky, cat(&j->gout, a->out, 0, 0))) return 0;
  if (j->grad && j->kept) {
    const float *block = j->kept + pair_block(j, pair);
    kx = (packing){3, {block[0], block[1]}};
    accumulate_pair(j, a, &ky, &kx, block);
  } else if (j->grad) {
    kx = ds__cpu_pack(j->b, &j->gin, a->in, j->x, pair, lanes);
    grid_fft(a, &j->p.in, a->in, 0);
    if (spread_bad_values(&kx, cat(&j->gin, a->in, 0, 0))) return 0;
    accumulate_pair(j, a, &ky, &kx, NULL);
  }
  if (!j->out) return 1;
  uncrop_spectrum(j, a, a->out, a->in);
  grid_fft(a, &j->p.in, a->in, 1);
  ds__cpu_unpack(j->b, &j->gin, a->in, j->out, pair, &ky, j->stream);
  return 1;
}

/* A pair, or its two images one by one (forward_pair). */
static void run_pair(const worker *w, long long pair) {
  int (*step)(const crop_job *, arena *, long long, int) = w->backward ? backward_pair : forward_pair;
  if (step(w->job, w->a, pair, 3)) return;
  step(w->job, w->a, pair, 1);
  step(w->job, w->a, pair, 2);
}

/* Pixels of the larger of the job's two grids. */
static size_t larger_grid(const ds_crop *g) {
  return (size_t)(g->h * g->w > g->out_h * g->out_w ? g->h * g->w : g->out_h * g->out_w);
}

/* Images per NHWC block (run_staged): 16 (a 64-byte line of channels, so
 * that each line of x is read once per block), fewer only where 16 images
 * of the larger grid would pass 4 MB; even, so that blocks hold whole
 * pairs. (Smaller blocks cost more than they save in cache: 32x64x112x112,
 * blocks of 10 images within 512 KB, 186 ms for forward+backward, of 16
 * images 108 ms.) */
static int stage_images(const ds_crop *g) {
  size_t fit = ((size_t)4 << 20) / (sizeof(float) * larger_grid(g));
  return fit >= DS_STAGE_IMAGES ? DS_STAGE_IMAGES : fit < 2 ? 2 : (int)fit / 2 * 2;
}

/* The job on a block of count images from image 2*first in the arena's
 * stages: an NCHW batch of one sample of count channels, its reserve
 * offset to the block's pairs, its output not streamed (the stage is read
 * again at once). */
static crop_job staged_job(const crop_job *j, const arena *a, const ds_batch *block, long long first) {
  crop_job v = *j;
  v.b = block, v.in = a->stage[0], v.x = j->x ? a->stage[1] : NULL, v.out = j->out ? a->stage[2] : NULL;
  v.keep = j->keep ? j->keep + pair_block(j, first) : NULL;
  v.kept = j->kept ? j->kept + pair_block(j, first) : NULL;
  v.stream = 0;
  return v;
}

/* NHWC: a pair's images are adjacent channels, 8 bytes of each pixel's
 * cache line, so packing pairs one by one read every line of a sample
 * once per pair (half the time of an NHWC call went there). The worker's
 * pairs go in blocks of stage_images() images instead: copied into the
 * arena a run of channels at a time, run as an NCHW batch, and the block's
 * output copied back the same way. */
static void run_staged(const worker *w) {
  const crop_job *j = w->job;
  const ds_crop *g = j->g;
  long long in = w->backward ? (long long)g->out_h * g->out_w : (long long)g->h * g->w;
  long long out = w->backward ? (long long)g->h * g->w : (long long)g->out_h * g->out_w;
  int per = stage_images(g) / 2;
  w->a->next.ranges = 0;
  for (long long first = w->first; first < w->last; first += per) {
    long long last = first + per < w->last ? first + per : w->last, end = 2 * last < images(j) ? 2 * last : images(j);
    int count = (int)(end - 2 * first);
    ds_batch block = {1, count, 0};
    crop_job v = staged_job(j, w->a, &block, first);
    ds__cpu_stage_in(j->b, 2 * first, count, in, j->in, w->a->stage[0]);
    if (j->grad && !j->kept) ds__cpu_stage_in(j->b, 2 * first, count, (long long)g->h * g->w, j->x, w->a->stage[1]);
    worker vw = {&v, w->a, 0, last - first, w->backward};
    for (long long pair = 0; pair < last - first; pair++) run_pair(&vw, pair);
    if (j->out) ds__cpu_stage_out(j->b, 2 * first, count, out, w->a->stage[2], j->out);
  }
}

static void *run_worker(void *arg) {
  worker *w = arg;
  const ds_crop *g = w->job->g;
  memset(w->a->sums, 0, sizeof(double) * (size_t)g->out_h * (size_t)g->kc);
  if (w->job->b->nhwc)
    run_staged(w);
  else
    for (long long pair = w->first; pair < w->last; pair++) {
      plan_prefetch(w->job, w->a, pair + 1, w->last, w->backward);
      run_pair(w, pair);
    }
  ds__cpu_stream_fence();
  return NULL;
}

/* The bytes the call writes: y and the reserve's spectra, or dx. */
static size_t output_bytes(const crop_job *j, int backward) {
  const ds_crop *g = j->g;
  size_t pixels = backward ? (size_t)g->h * (size_t)g->w : (size_t)g->out_h * (size_t)g->out_w;
  size_t bytes = j->out ? sizeof(float) * pixels * (size_t)images(j) : 0;
  return bytes + (j->keep ? sizeof(float) * pair_block(j, (images(j) + 1) / 2) : 0);
}

/* Splits the pairs over `threads` workers; a thread that cannot be started
 * has its share run here instead (slower, same numbers). */
static void run_parallel(crop_job *j, cpu_state *s, int threads, int backward) {
  worker w[DS_MAX_THREADS];
  pthread_t tid[DS_MAX_THREADS];
  int started[DS_MAX_THREADS] = {0};
  long long pairs = (images(j) + 1) / 2;
  j->stream = ds__cpu_streams(output_bytes(j, backward));
  for (int t = 0; t < threads; t++)
    w[t] = (worker){j, &s->arenas[t], pairs * t / threads, pairs * (t + 1) / threads, backward};
  for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run_worker, &w[t]) == 0;
  run_worker(&w[0]);
  for (int t = 1; t < threads; t++)
    if (started[t])
      pthread_join(tid[t], NULL);
    else
      run_worker(&w[t]);
}

/* factor[k] of bins 1..n into per-float form (see crop_job), forwards into
 * f2 and reversed into fr2. */
static void spread_factors(const float *factor, int n, float *f2, float *fr2) {
  for (int t = 0; t < n; t++) {
    f2[2 * t] = f2[2 * t + 1] = factor[1 + t];
    fr2[2 * t] = fr2[2 * t + 1] = factor[n - t];
  }
}

/* The job's per-row and per-bin factors, in one block freed by job_end. */
static int job_factors(crop_job *j) {
  const ds_crop *g = j->g;
  int kc = g->kc;
  j->crop_n = 2 * (kc - 1) == g->out_w ? kc - 2 : kc - 1;
  j->uncrop_n = g->w % 2 == 0 && g->w / 2 < kc ? g->w / 2 - 1 : kc - 1;
  j->mh = malloc(sizeof(float) * (size_t)(g->out_h + 3 * kc + 4 * j->crop_n + 4 * j->uncrop_n));
  if (!j->mh) return 0;
  float *mw = j->mh + g->out_h;
  j->fk = mw + kc, j->bk = j->fk + kc;
  j->f2 = j->bk + kc, j->fr2 = j->f2 + 2 * j->crop_n;
  j->b2 = j->fr2 + 2 * j->crop_n, j->br2 = j->b2 + 2 * j->uncrop_n;
  ds__crop_masks(g, j->mh, mw);
  float area = (float)g->out_h * (float)g->out_w;
  for (int k = 0; k < kc; k++) {
    j->fk[k] = mw[k] / area;
    j->bk[k] = ds_bin_weight(k, g->out_w) * mw[k] / (area * ds_bin_weight(k, g->w));
  }
  spread_factors(j->fk, j->crop_n, j->f2, j->fr2);
  spread_factors(j->bk, j->uncrop_n, j->b2, j->br2);
  return 1;
}

/* The row orders of the job's two grids and the cropped row of each
 * spectrum row (crow), in one block freed by job_end. */
static int job_rows(crop_job *j) {
  const ds_crop *g = j->g;
  int *block = malloc(sizeof(int) * (3 * (size_t)g->h + 2 * (size_t)g->out_h));
  if (!block) return 0;
  j->crow = block + 2 * (g->h + g->out_h);
  for (int r = 0; r < g->h; r++) j->crow[r] = ds_cropped_row(r, g->h, g->out_h, g->rows_lo);
  j->gin = (grid_rows){g->h, g->w, j->p.in.split, block, block + g->h};
  j->gout = (grid_rows){g->out_h, g->out_w, j->p.out.split, block + 2 * g->h, block + 2 * g->h + g->out_h};
  ds__cpu_grid_rows(g->h, j->gin.split, j->gin.spatial, j->gin.spectral);
  ds__cpu_grid_rows(g->out_h, j->gout.split, j->gout.spatial, j->gout.spectral);
  return 1;
}

/* Sets up the job's plans, arenas, row orders and factors; returns the
 * thread count through *threads. */
static ds_status job_begin(ds_context *ctx, crop_job *j, int *threads) {
  int t = ds__cpu_threads(ctx->state, (images(j) + 1) / 2);
  *threads = t < DS_MAX_THREADS ? t : DS_MAX_THREADS;
  size_t stage = j->b->nhwc ? larger_grid(j->g) * (size_t)stage_images(j->g) : 0;
  ds_status st = ds__cpu_prepare(ctx, j->g, *threads, stage, &j->p);
  if (st != DS_OK) return st;
  if (!job_rows(j) || !job_factors(j)) return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "mask factors: out of memory");
  return DS_OK;
}

static void job_end(crop_job *j) {
  free(j->mh);
  free(j->gin.spatial);
}

ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y, float *keep) {
  crop_job j = {.g = g, .b = b, .in = x, .out = y, .keep = keep};
  int threads;
  ds_status st = job_begin(ctx, &j, &threads);
  if (st == DS_OK) run_parallel(&j, ctx->state, threads, 0);
  job_end(&j);
  return st;
}

ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *keep, const float *dy, float *dx, double *gh, double *gw) {
  crop_job j = {.g = g, .b = b, .in = dy, .x = x, .out = dx, .kept = keep, .grad = gh != NULL};
  int threads;
  ds_status st = job_begin(ctx, &j, &threads);
  if (st == DS_OK) run_parallel(&j, ctx->state, threads, 1);
  job_end(&j);
  if (st != DS_OK || !gh) return st;
  arena *a = ((cpu_state *)ctx->state)->arenas;
  size_t bins = (size_t)g->out_h * (size_t)g->kc;
  for (int t = 1; t < threads; t++)
    for (size_t e = 0; e < bins; e++) a[0].sums[e] += a[t].sums[e];
  ds__mask_gradients(g, a[0].sums, gh, gw);
  return DS_OK;
}
