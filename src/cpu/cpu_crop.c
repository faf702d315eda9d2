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
  float *fk; /* kc: forward scale of bin k, mw / (out_h*out_w) */
  float *bk; /* kc: dx scale, c_k mw / (out_h*out_w*c'_k), c' the weights of the length-w inverse */
  float *pk; /* kc: mask-gradient scale, c_k / (out_h*out_w) */
} crop_job;

typedef struct worker {
  crop_job *job;
  arena *a;
  long long first, last; /* pairs [first, last) */
  int backward;
} worker;

static long long images(const crop_job *j) { return (long long)j->b->n * j->b->c; }

/* Two images (hw pixels, every step-th float of a and of b) into the real
 * and imaginary lanes of the grid in one pass (in NHWC they are adjacent
 * channels, so each pixel is one 8-byte read); m gets their largest
 * magnitudes. */
static void load_pair(float *grid, const float *a, const float *b, int step, long long hw, float m[2]) {
  float ma[8] = {0}, mb[8] = {0}; /* running maxima: one would chain every element on the last */
  long long p = 0;
  for (; p + 8 <= hw; p += 8)
    for (int u = 0; u < 8; u++) {
      float va = a[(p + u) * step], vb = b[(p + u) * step];
      grid[2 * (p + u)] = va, grid[2 * (p + u) + 1] = vb;
      ma[u] = fabsf(va) > ma[u] ? fabsf(va) : ma[u];
      mb[u] = fabsf(vb) > mb[u] ? fabsf(vb) : mb[u];
    }
  for (; p < hw; p++) {
    float va = a[p * step], vb = b[p * step];
    grid[2 * p] = va, grid[2 * p + 1] = vb;
    ma[0] = fabsf(va) > ma[0] ? fabsf(va) : ma[0];
    mb[0] = fabsf(vb) > mb[0] ? fabsf(vb) : mb[0];
  }
  for (int u = 1; u < 8; u++) ma[0] = ma[u] > ma[0] ? ma[u] : ma[0], mb[0] = mb[u] > mb[0] ? mb[u] : mb[0];
  m[0] = ma[0], m[1] = mb[0];
}

/* How a pair was packed: the lanes holding an image (bit 0: image 2*pair,
 * bit 1: the next), the second image's scale 2^shift, and the factor each
 * image's result is scaled back by (0 for an all-zero image, so that it
 * gives exact zeros whatever its partner leaves in its lane). */
typedef struct packing {
  int lanes, shift;
  float back[2];
} packing;

/* grid (hw complex) = image 2*pair + i * 2^shift * image 2*pair+1, each
 * only if its bit is in lanes and it exists (else zeros), gathered from a
 * tensor of hw-pixel images; the shift is ds_pair_shift's. */
static packing pack_images(const crop_job *j, float *grid, const float *t, long long pair, long long hw,
                           int lanes) {
  int step = ds_pixel_step(j->b->c, j->b->nhwc);
  packing k = {lanes & (2 * pair + 1 < images(j) ? 3 : 1), 0, {1.0f, 1.0f}};
  const float *img[2];
  for (int lane = 0; lane < 2; lane++)
    img[lane] = t + ds_image_offset(2 * pair + (k.lanes & (1 << lane) ? lane : !lane), j->b->c, hw, j->b->nhwc);
  float m[2];
  load_pair(grid, img[0], img[1], step, hw, m);
  for (int lane = 0; lane < 2; lane++) { /* a lane not wanted got the other image: zeros */
    if (k.lanes & (1 << lane)) continue;
    m[lane] = 0.0f;
    for (long long p = 0; p < hw; p++) grid[2 * p + lane] = 0.0f;
  }
  k.shift = ds_pair_shift(m[0], m[1]);
  float s = ldexpf(1.0f, k.shift);
  for (long long p = 0; k.shift && p < hw; p++) grid[2 * p + 1] *= s;
  k.back[0] = m[0] != 0.0f, k.back[1] = (m[1] != 0.0f) * ldexpf(1.0f, -k.shift);
  return k;
}

/* The inverse of pack_images: real parts to one image, imaginary parts to
 * the other (only the lanes packed; both in one pass), each scaled back. */
static void unpack_images(const crop_job *j, const float *grid, float *t, long long pair, long long hw,
                          const packing *k) {
  int step = ds_pixel_step(j->b->c, j->b->nhwc), only = k->lanes == 2;
  float *a = t + ds_image_offset(2 * pair + only, j->b->c, hw, j->b->nhwc), sa = k->back[only];
  if (k->lanes != 3) {
    for (long long p = 0; p < hw; p++) a[p * step] = sa * grid[2 * p + only];
    return;
  }
  float *b = t + ds_image_offset(2 * pair + 1, j->b->c, hw, j->b->nhwc), sb = k->back[1];
  for (long long p = 0; p < hw; p++) a[p * step] = sa * grid[2 * p], b[p * step] = sb * grid[2 * p + 1];
}

/* Whether a shared transform spread a NaN or an infinity between the two
 * images: any such input makes the DC bin (the sum of the pixels) not
 * finite. Checked on the forward transforms of a packed pair only. */
static int spread_bad_values(const packing *k, const float *spectrum) {
  return k->lanes == 3 && !(isfinite(spectrum[0]) && isfinite(spectrum[1]));
}

/* A 2-D FFT of the grid: forward rows then columns, backward the reverse. */
static void grid_fft(const grid_plans *p, float *grid, int backward) {
  fftwf_complex *c = (fftwf_complex *)grid;
  fftwf_execute_dft(backward ? p->cols[1] : p->rows[0], c, c);
  fftwf_execute_dft(backward ? p->rows[1] : p->cols[0], c, c);
}

/* Element (r, k) of a grid of width b. */
static float *at(float *grid, int b, int r, int k) { return grid + 2 * ((size_t)r * (size_t)b + (size_t)k); }
static const float *cat(const float *grid, int b, int r, int k) {
  return grid + 2 * ((size_t)r * (size_t)b + (size_t)k);
}

/* Bins 0 and out_w/2 of cropped row i are their own mirrors: the Hermitian
 * part along the height, (Z[i] + conj(Z[-i])) / 2, from F at (r, k) and at
 * the mirror (-r', -k) of the spectrum row r' of cropped row -i. */
static void crop_self_mirror(const crop_job *j, const float *f, float *p, int i, int k) {
  const ds_crop *g = j->g;
  int im = ds_mirror(i, g->out_h), km = ds_mirror(k, g->w);
  int r = ds_source_row(i, g->h, g->out_h, g->rows_lo);
  int rim = ds_mirror(ds_source_row(im, g->h, g->out_h, g->rows_lo), g->h);
  ds_complex_combine(at(p, g->out_w, i, k), cat(f, g->w, r, k), 0.5f * j->mh[i] * j->fk[k],
                     cat(f, g->w, rim, km), 0.5f * j->mh[im] * j->fk[k]);
}

/* Forward: the packed spectrum F (h x w, in) masked and cropped into P
 * (out_h x out_w, out), every element written. With s = mh[i] * fk[k]:
 * P[i][k] = s F[r][k] and, mirrored, P[-i][-k] = s F[-r][-k] (r the spectrum
 * row of cropped row i). The inner loop is plain strided copies so that it
 * vectorizes. */
static void crop_spectrum(const crop_job *j, const float *f, float *p) {
  const ds_crop *g = j->g;
  int oh = g->out_h, ow = g->out_w, plain_end = 2 * (g->kc - 1) == ow ? g->kc - 1 : g->kc;
  for (int i = 0; i < oh; i++) {
    int r = ds_source_row(i, g->h, oh, g->rows_lo);
    const float *v = cat(f, g->w, r, 0), *vm = cat(f, g->w, ds_mirror(r, g->h), 0);
    float *d = at(p, ow, i, 0), *dm = at(p, ow, ds_mirror(i, oh), 0), mh = j->mh[i];
    for (int k = 1; k < plain_end; k++) {
      float s = mh * j->fk[k];
      d[2 * k] = s * v[2 * k], d[2 * k + 1] = s * v[2 * k + 1];
      dm[2 * (ow - k)] = s * vm[2 * (g->w - k)], dm[2 * (ow - k) + 1] = s * vm[2 * (g->w - k) + 1];
    }
    crop_self_mirror(j, f, p, i, 0);
    if (plain_end < g->kc) crop_self_mirror(j, f, p, i, g->kc - 1);
  }
}

/* Backward: the packed spectrum D of dy (out_h x out_w, out) placed back on
 * the input grid (in) as the spectrum of dx: with t = mh[i] * bk[k], the
 * kept bins get t D[i][k] and their mirrors t D[-i][-k]; columns 0 and w/2
 * of the input grid take the Hermitian part along the height. */
static void uncrop_spectrum(const crop_job *j, const float *d, float *f) {
  const ds_crop *g = j->g;
  int oh = g->out_h, ow = g->out_w;
  memset(f, 0, sizeof(float) * 2 * (size_t)g->h * (size_t)g->w);
  for (int i = 0; i < oh; i++) {
    int r = ds_source_row(i, g->h, oh, g->rows_lo), im = ds_mirror(i, oh);
    for (int k = 1; k < g->kc; k++) {
      if (2 * k == g->w) continue;
      float t = j->mh[i] * j->bk[k];
      ds_complex_scale(at(f, g->w, r, k), cat(d, ow, i, k), t);
      ds_complex_scale(at(f, g->w, ds_mirror(r, g->h), g->w - k), cat(d, ow, im, ds_mirror(k, ow)), t);
    }
  }
  for (int k = 0; k < g->kc; k = (k == 0 && g->w % 2 == 0) ? g->w / 2 : g->kc) /* 0, w/2 */
    for (int r = 0; r < g->h; r++) {
      int i = ds_cropped_row(r, g->h, oh, g->rows_lo);
      int mi = ds_cropped_row(ds_mirror(r, g->h), g->h, oh, g->rows_lo);
      float t = i < 0 ? 0.0f : 0.5f * j->mh[i] * j->bk[k], tm = mi < 0 ? 0.0f : 0.5f * j->mh[mi] * j->bk[k];
      ds_complex_combine(at(f, g->w, r, k), cat(d, ow, i < 0 ? 0 : i, k), t,
                         cat(d, ow, ds_mirror(mi < 0 ? 0 : mi, oh), ds_mirror(k, ow)), tm);
    }
}

/* gh[i] += sum_k P[i][k] mw[k], gw[k] += sum_i P[i][k] mh[i], with P the
 * pair's Re(conj(G) X) at kept bin (i, k), each image's spectra unpacked
 * from the packed ones, D of dy (out) and F of x (in), and scaled back:
 * P = pk[k] sum_j by_j bx_j Re(conj(Y_j) X_j). */
static void accumulate_pair(const crop_job *j, arena *a, const packing *ky, const packing *kx) {
  const ds_crop *g = j->g;
  int oh = g->out_h, ow = g->out_w;
  double s0 = (double)ky->back[0] * kx->back[0], s1 = (double)ky->back[1] * kx->back[1];
  for (int i = 0; i < oh; i++) {
    int r = ds_source_row(i, g->h, oh, g->rows_lo), im = ds_mirror(i, oh), rm = ds_mirror(r, g->h);
    double sum = 0.0;
    for (int k = 0; k < g->kc; k++) {
      float x0[2], x1[2], y0[2], y1[2];
      ds_unpack_pair(cat(a->in, g->w, r, k), cat(a->in, g->w, rm, ds_mirror(k, g->w)), x0, x1);
      ds_unpack_pair(cat(a->out, ow, i, k), cat(a->out, ow, im, ds_mirror(k, ow)), y0, y1);
      double p = j->pk[k] * (s0 * ds_grad_product(y0, x0) + s1 * ds_grad_product(y1, x1));
      sum += p * j->mw[k];
      a->gw[k] += p * j->mh[i];
    }
    a->gh[i] += sum;
  }
}

/* The pair's forward over `lanes`; 0 (nothing written) when both images
 * were packed and one holds a NaN or an infinity, which the shared
 * transform would spread to its partner: the caller then runs them one by
 * one, so that each image's result depends on that image alone. */
static int forward_pair(const crop_job *j, arena *a, long long pair, int lanes) {
  const ds_crop *g = j->g;
  packing k = pack_images(j, a->in, j->in, pair, (long long)g->h * g->w, lanes);
  grid_fft(&j->p.in, a->in, 0);
  if (spread_bad_values(&k, a->in)) return 0;
  crop_spectrum(j, a->in, a->out);
  grid_fft(&j->p.out, a->out, 1);
  unpack_images(j, a->out, j->out, pair, (long long)g->out_h * g->out_w, &k);
  return 1;
}

/* The gradient with respect to the cropped masked spectrum is
 * G = c_k rfft2(dy) / (out_h*out_w); the mask gradients and dx follow from
 * it (the factors pk and bk hold c_k and the scale). Returns 0 as
 * forward_pair, before anything is accumulated or written. */
static int backward_pair(const crop_job *j, arena *a, long long pair, int lanes) {
  const ds_crop *g = j->g;
  packing ky = pack_images(j, a->out, j->in, pair, (long long)g->out_h * g->out_w, lanes), kx = ky;
  grid_fft(&j->p.out, a->out, 0);
  if (spread_bad_values(&ky, a->out)) return 0;
  if (j->grad) {
    kx = pack_images(j, a->in, j->x, pair, (long long)g->h * g->w, lanes);
    grid_fft(&j->p.in, a->in, 0);
    if (spread_bad_values(&kx, a->in)) return 0;
    accumulate_pair(j, a, &ky, &kx);
  }
  if (!j->out) return 1;
  uncrop_spectrum(j, a->out, a->in);
  grid_fft(&j->p.in, a->in, 1);
  unpack_images(j, a->in, j->out, pair, (long long)g->h * g->w, &ky);
  return 1;
}

/* A pair, or its two images one by one (forward_pair). */
static void run_pair(const worker *w, long long pair) {
  int (*step)(const crop_job *, arena *, long long, int) = w->backward ? backward_pair : forward_pair;
  if (step(w->job, w->a, pair, 3)) return;
  step(w->job, w->a, pair, 1);
  step(w->job, w->a, pair, 2);
}

static void *run_worker(void *arg) {
  worker *w = arg;
  const ds_crop *g = w->job->g;
  memset(w->a->gh, 0, sizeof(double) * (size_t)g->out_h);
  memset(w->a->gw, 0, sizeof(double) * (size_t)g->kc);
  for (long long pair = w->first; pair < w->last; pair++)
    run_pair(w, pair);
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
static ds_status job_begin(ds_context *ctx, crop_job *j, int *threads) {
  const ds_crop *g = j->g;
  int t = ds__cpu_threads(ctx->state, (images(j) + 1) / 2);
  *threads = t < DS_MAX_THREADS ? t : DS_MAX_THREADS;
  ds_status st = ds__cpu_prepare(ctx, g, *threads, &j->p);
  if (st != DS_OK) return st;
  j->mh = malloc(sizeof(float) * (size_t)(g->out_h + 4 * g->kc));
  if (!j->mh) return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "mask factors: out of memory");
  j->mw = j->mh + g->out_h;
  j->fk = j->mw + g->kc;
  j->bk = j->fk + g->kc;
  j->pk = j->bk + g->kc;
  ds__crop_masks(g, j->mh, j->mw);
  float area = (float)g->out_h * (float)g->out_w;
  for (int k = 0; k < g->kc; k++) {
    float c = ds_bin_weight(k, g->out_w);
    j->fk[k] = j->mw[k] / area;
    j->bk[k] = c * j->mw[k] / (area * ds_bin_weight(k, g->w));
    j->pk[k] = c / area;
  }
  return DS_OK;
}

ds_status ds__cpu_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                          float *y) {
  crop_job j = {.g = g, .b = b, .in = x, .out = y};
  int threads;
  ds_status st = job_begin(ctx, &j, &threads);
  if (st == DS_OK) run_parallel(&j, ctx->state, threads, 0);
  free(j.mh);
  return st;
}

ds_status ds__cpu_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           const float *dy, float *dx, double *gh, double *gw) {
  crop_job j = {.g = g, .b = b, .in = dy, .x = x, .out = dx, .grad = gh != NULL};
  int threads;
  ds_status st = job_begin(ctx, &j, &threads);
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
