/* The crop op on the CPU. Two real images travel together as one complex
 * image a + i b (FFTW's complex transforms are vectorized, its real ones are
 * not): each thread takes a contiguous range of image pairs and runs them
 * through its cache-resident arena, so no full-size spectrum of the batch
 * ever exists. Per pair:
 *   forward:  pack x -> 2-D FFT (kept columns) -> split, mask, crop into two
 *             half spectra -> full Hermitian spectra, packed -> inverse 2-D
 *             FFT -> unpack y;
 *   backward: pack dy -> 2-D FFT -> G (two half spectra) -> [x's spectrum ->
 *             mask gradients] -> [masked G placed back, full Hermitian,
 *             packed -> inverse 2-D FFT -> unpack dx]. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../elementwise.h"
#include "cpu.h"

#define DS_MAX_THREADS 256

/* One call's work. Forward: in = x, out = y. Backward: in = dy, out = dx
 * (NULL: not wanted), x read for the mask gradients when grad is set. */
typedef struct crop_job {
  const ds_crop *g;
  const ds_batch *b;
  crop_plans p;
  const float *in, *x;
  float *out;
  int grad;
  float *mh; /* out_h: mask of each cropped row */
  float *mw; /* kc: mask of each bin */
  float *fk; /* kc: forward, mw / (out_h*out_w); backward, c_k / (out_h*out_w) */
  float *dk; /* kc: backward, mw / c'_k, c' the weights of the length-w inverse */
} crop_job;

typedef struct worker {
  crop_job *job;
  arena *a;
  long long first, last; /* pairs [first, last) */
  int backward;
} worker;

/* Rows of a half spectrum on a grid: half row i is grid row
 * ds_source_row(i, a, rows, lo) (identity when rows == lo == a). */
typedef struct placement {
  int a, b, rows, lo, kc;
} placement;

static int grid_row(const placement *pl, int i) { return ds_source_row(i, pl->a, pl->rows, pl->lo); }

static long long images(const crop_job *j) { return (long long)j->b->n * j->b->c; }

/* grid (hw complex) = image 2*pair + i * image 2*pair+1 (zero when the
 * batch has an odd count), gathered from a tensor of hw-pixel images. */
static void pack_images(const crop_job *j, float *grid, const float *t, long long pair, long long hw) {
  int step = ds_pixel_step(j->b->c, j->b->nhwc);
  const float *re = t + ds_image_offset(2 * pair, j->b->c, hw, j->b->nhwc);
  for (long long p = 0; p < hw; p++) grid[2 * p] = re[p * step];
  if (2 * pair + 1 >= images(j)) {
    for (long long p = 0; p < hw; p++) grid[2 * p + 1] = 0.0f;
    return;
  }
  const float *im = t + ds_image_offset(2 * pair + 1, j->b->c, hw, j->b->nhwc);
  for (long long p = 0; p < hw; p++) grid[2 * p + 1] = im[p * step];
}

/* The inverse of pack_images: real parts to one image, imaginary to the other. */
static void unpack_images(const crop_job *j, const float *grid, float *t, long long pair, long long hw) {
  int step = ds_pixel_step(j->b->c, j->b->nhwc);
  float *re = t + ds_image_offset(2 * pair, j->b->c, hw, j->b->nhwc);
  for (long long p = 0; p < hw; p++) re[p * step] = grid[2 * p];
  if (2 * pair + 1 >= images(j)) return;
  float *im = t + ds_image_offset(2 * pair + 1, j->b->c, hw, j->b->nhwc);
  for (long long p = 0; p < hw; p++) im[p * step] = grid[2 * p + 1];
}

/* A 2-D FFT of the grid: forward rows then columns, backward the reverse
 * (the column plans skip the columns that are zero or not needed). */
static void grid_fft(const grid_plans *p, float *grid, int backward) {
  fftwf_complex *c = (fftwf_complex *)grid;
  fftwf_execute_dft(backward ? p->cols[1] : p->rows[0], c, c);
  fftwf_execute_dft(backward ? p->rows[1] : p->cols[0], c, c);
}

/* Grid row r and its mirror -r, as complex pointers to their starts. */
static const float *grid_at(const placement *pl, const float *grid, int r) {
  return grid + 2 * (size_t)r * (size_t)pl->b;
}

/* Bin k's mirror column -k of a width-b grid (no division in inner loops). */
static int mirror_col(int k, int b) { return k ? b - k : 0; }

/* The two half spectra (pl.rows x kc each, in half) of the packed spectrum
 * on the grid, scaled by row[i] * col[k] (row NULL: 1). */
static void split_pair(const placement *pl, const float *grid, float *half, const float *row,
                       const float *col) {
  float *second = half + 2 * (size_t)pl->rows * (size_t)pl->kc;
  for (int i = 0; i < pl->rows; i++) {
    int r = grid_row(pl, i);
    const float *f = grid_at(pl, grid, r), *fm = grid_at(pl, grid, (pl->a - r) % pl->a);
    float *h1 = half + 2 * (size_t)i * (size_t)pl->kc, *h2 = second + 2 * (size_t)i * (size_t)pl->kc;
    float ri = row ? row[i] : 1.0f;
    for (int k = 0; k < pl->kc; k++) {
      float v1[2], v2[2]; /* locals: the halves may alias the grid for the compiler */
      ds_unpack_pair(f + 2 * k, fm + 2 * mirror_col(k, pl->b), v1, v2);
      ds_complex_scale(h1 + 2 * k, v1, ri * col[k]);
      ds_complex_scale(h2 + 2 * k, v2, ri * col[k]);
    }
  }
}

/* Column k (0 or the Nyquist bin, its own mirror) of both half spectra,
 * scaled, spread over the a grid rows, made Hermitian along the height and
 * written packed. col holds 2 x a complex. */
static void self_mirror_column(const placement *pl, const float *half, float *grid, float *col,
                               int k, const float *row, const float *colf) {
  float *c1 = col, *c2 = col + 2 * (size_t)pl->a;
  const float *second = half + 2 * (size_t)pl->rows * (size_t)pl->kc;
  memset(col, 0, sizeof(float) * 4 * (size_t)pl->a);
  for (int i = 0; i < pl->rows; i++) {
    size_t at = 2 * ((size_t)i * (size_t)pl->kc + (size_t)k), r = 2 * (size_t)grid_row(pl, i);
    float s = (row ? row[i] : 1.0f) * (colf ? colf[k] : 1.0f);
    ds_complex_scale(c1 + r, half + at, s);
    ds_complex_scale(c2 + r, second + at, s);
  }
  for (int r = 0; r <= pl->a / 2; r++) {
    size_t rm = 2 * (size_t)((pl->a - r) % pl->a);
    ds_hermitian_pair(c1 + 2 * r, c1 + rm);
    ds_hermitian_pair(c2 + 2 * r, c2 + rm);
  }
  for (int r = 0; r < pl->a; r++)
    ds_pack_pair(grid + 2 * ((size_t)r * (size_t)pl->b + (size_t)k), c1 + 2 * r, c2 + 2 * r);
}

/* The packed full spectra of two real images on the grid from their half
 * spectra scaled by row[i] * colf[k] (NULL: 1): bin (r, k) and, mirrored,
 * (-r, -k) = conj; columns 0 and b/2 made Hermitian first. */
static void expand_pair(const placement *pl, const float *half, float *grid, float *col,
                        const float *row, const float *colf) {
  const float *second = half + 2 * (size_t)pl->rows * (size_t)pl->kc;
  memset(grid, 0, sizeof(float) * 2 * (size_t)pl->a * (size_t)pl->b);
  for (int k = 0; k < pl->kc; k++) {
    if (k == 0 || 2 * k == pl->b) {
      self_mirror_column(pl, half, grid, col, k, row, colf);
      continue;
    }
    for (int i = 0; i < pl->rows; i++) {
      size_t at = 2 * ((size_t)i * (size_t)pl->kc + (size_t)k);
      int r = grid_row(pl, i), rm = (pl->a - r) % pl->a;
      float s = (row ? row[i] : 1.0f) * (colf ? colf[k] : 1.0f), v1[2], v2[2];
      ds_complex_scale(v1, half + at, s);
      ds_complex_scale(v2, second + at, s);
      ds_pack_pair(grid + 2 * ((size_t)r * (size_t)pl->b + (size_t)k), v1, v2);
      v1[1] = -v1[1], v2[1] = -v2[1];
      ds_pack_pair(grid + 2 * ((size_t)rm * (size_t)pl->b + (size_t)(pl->b - k)), v1, v2);
    }
  }
}

/* gh[i] += sum_k P[i][k] mw[k], gw[k] += sum_i P[i][k] mh[i], with
 * P = Re(conj(G) X) summed over the pair: G in a->half, the packed
 * spectrum of x on a->grid. */
static void accumulate_pair(const crop_job *j, const placement *pl, arena *a) {
  const float *g2 = a->half + 2 * (size_t)pl->rows * (size_t)pl->kc;
  for (int i = 0; i < pl->rows; i++) {
    int r = grid_row(pl, i);
    const float *f = grid_at(pl, a->grid, r), *fm = grid_at(pl, a->grid, (pl->a - r) % pl->a);
    const float *h1 = a->half + 2 * (size_t)i * (size_t)pl->kc, *h2 = g2 + 2 * (size_t)i * (size_t)pl->kc;
    double sum = 0.0;
    for (int k = 0; k < pl->kc; k++) {
      float x1[2], x2[2];
      ds_unpack_pair(f + 2 * k, fm + 2 * mirror_col(k, pl->b), x1, x2);
      float p = ds_grad_product(h1 + 2 * k, x1) + ds_grad_product(h2 + 2 * k, x2);
      sum += (double)(p * j->mw[k]);
      a->gw[k] += (double)(p * j->mh[i]);
    }
    a->gh[i] += sum;
  }
}

/* The input grid (h x w, kept rows) and the output grid (out_h x out_w, all rows). */
static placement in_grid(const ds_crop *g) { return (placement){g->h, g->w, g->out_h, g->rows_lo, g->kc}; }
static placement out_grid(const ds_crop *g) {
  return (placement){g->out_h, g->out_w, g->out_h, g->out_h, g->kc};
}

static void forward_pair(const crop_job *j, arena *a, long long pair) {
  const ds_crop *g = j->g;
  placement in = in_grid(g), out = out_grid(g);
  pack_images(j, a->grid, j->in, pair, (long long)g->h * g->w);
  grid_fft(&j->p.in, a->grid, 0);
  split_pair(&in, a->grid, a->half, j->mh, j->fk);
  expand_pair(&out, a->half, a->grid, a->col, NULL, NULL);
  grid_fft(&j->p.out, a->grid, 1);
  unpack_images(j, a->grid, j->out, pair, (long long)g->out_h * g->out_w);
}

/* G = c_k rfft2(dy) / (out_h*out_w), the gradient with respect to the
 * cropped masked spectrum; then the mask gradients and dx from it. */
static void backward_pair(const crop_job *j, arena *a, long long pair) {
  const ds_crop *g = j->g;
  placement in = in_grid(g), out = out_grid(g);
  pack_images(j, a->grid, j->in, pair, (long long)g->out_h * g->out_w);
  grid_fft(&j->p.out, a->grid, 0);
  split_pair(&out, a->grid, a->half, NULL, j->fk);
  if (j->grad) {
    pack_images(j, a->grid, j->x, pair, (long long)g->h * g->w);
    grid_fft(&j->p.in, a->grid, 0);
    accumulate_pair(j, &in, a);
  }
  if (!j->out) return;
  expand_pair(&in, a->half, a->grid, a->col, j->mh, j->dk);
  grid_fft(&j->p.in, a->grid, 1);
  unpack_images(j, a->grid, j->out, pair, (long long)g->h * g->w);
}

static void *run_worker(void *arg) {
  worker *w = arg;
  const ds_crop *g = w->job->g;
  memset(w->a->gh, 0, sizeof(double) * (size_t)g->out_h);
  memset(w->a->gw, 0, sizeof(double) * (size_t)g->kc);
  for (long long pair = w->first; pair < w->last; pair++)
    (w->backward ? backward_pair : forward_pair)(w->job, w->a, pair);
  return NULL;
}

/* Splits the pairs over `threads` workers; a thread that cannot be started
 * has its share run here instead (slower, same numbers). */
static void run_parallel(crop_job *j, cpu_state *s, int threads, int backward) {
  worker w[DS_MAX_THREADS];
  pthread_t tid[DS_MAX_THREADS];
  int started[DS_MAX_THREADS] = {0};
  long long pairs = (images(j) + 1) / 2;
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

/* Sets up the job's plans, arenas and per-bin factors (one block, freed by
 * the caller); returns the thread count through *threads. */
static ds_status job_begin(ds_context *ctx, crop_job *j, int backward, int *threads) {
  const ds_crop *g = j->g;
  int t = ds__cpu_threads(ctx->state, (images(j) + 1) / 2);
  *threads = t < DS_MAX_THREADS ? t : DS_MAX_THREADS;
  ds_status st = ds__cpu_prepare(ctx, g, *threads, &j->p);
  if (st != DS_OK) return st;
  j->mh = malloc(sizeof(float) * (size_t)(g->out_h + 3 * g->kc));
  if (!j->mh) return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "mask factors: out of memory");
  j->mw = j->mh + g->out_h;
  j->fk = j->mw + g->kc;
  j->dk = j->fk + g->kc;
  ds__crop_masks(g, j->mh, j->mw);
  float area = (float)g->out_h * (float)g->out_w;
  for (int k = 0; k < g->kc; k++) {
    j->fk[k] = backward ? ds_bin_weight(k, g->out_w) / area : j->mw[k] / area;
    j->dk[k] = j->mw[k] / ds_bin_weight(k, g->w);
  }
  return DS_OK;
}

ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y) {
  crop_job j = {.g = g, .b = b, .in = x, .out = y};
  int threads;
  ds_status st = job_begin(ctx, &j, 0, &threads);
  if (st == DS_OK) run_parallel(&j, ctx->state, threads, 0);
  free(j.mh);
  return st;
}

ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *dy, float *dx, double *gh, double *gw) {
  crop_job j = {.g = g, .b = b, .in = dy, .x = x, .out = dx, .grad = gh != NULL};
  int threads;
  ds_status st = job_begin(ctx, &j, 1, &threads);
  if (st == DS_OK) run_parallel(&j, ctx->state, threads, 1);
  free(j.mh);
  if (st != DS_OK || !gh) return st;
  const arena *a = ((cpu_state *)ctx->state)->arenas;
  memset(gh, 0, sizeof(double) * (size_t)g->out_h);
  memset(gw, 0, sizeof(double) * (size_t)g->kc);
  for (int t = 0; t < threads; t++) {
    for (int i = 0; i < g->out_h; i++) gh[i] += a[t].gh[i];
    for (int k = 0; k < g->kc; k++) gw[k] += a[t].gw[k];
  }
  return DS_OK;
}
