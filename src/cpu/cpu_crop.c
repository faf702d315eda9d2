/* The crop op on the CPU: each thread takes a contiguous range of images and
 * runs them one at a time through its cache-resident arena with batched 1-D
 * FFTW plans (rows, then only the kc kept columns), so no full-size spectrum
 * of the batch ever exists. */
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
  long long first, last; /* images [first, last) */
  int backward;
} worker;

/* count floats from src (every sstep-th) to dst (every dstep-th): gathers an
 * image out of a layout into an arena, or scatters it back. */
static void copy_strided(float *dst, int dstep, const float *src, int sstep, long long count) {
  if (dstep == 1 && sstep == 1) {
    memcpy(dst, src, sizeof(float) * (size_t)count);
    return;
  }
  for (long long i = 0; i < count; i++) dst[i * dstep] = src[i * sstep];
}

/* The tensor element offset of image img in a tensor of images hw pixels big. */
static long long image_at(const crop_job *j, long long img, long long hw) {
  return ds_image_offset(img, j->b->c, hw, j->b->nhwc);
}

/* Between the spectrum (h x kw) and the cropped spectrum (out_h x kc):
 * to_crop: crop[i][k] = spec[src(i)][k] * mh[i] * f[k];
 * else:    spec[src(i)][k] = crop[i][k] * mh[i] * f[k], other bins zero. */
static void transfer(const ds_crop *g, float *spec, float *crop, const float *mh, const float *f,
                     int to_crop) {
  if (!to_crop) memset(spec, 0, sizeof(float) * 2 * (size_t)g->h * (size_t)g->kw);
  for (int i = 0; i < g->out_h; i++) {
    float *s = spec + 2 * (size_t)ds_source_row(i, g->h, g->out_h, g->rows_lo) * (size_t)g->kw;
    float *c = crop + 2 * (size_t)i * (size_t)g->kc;
    for (int k = 0; k < g->kc; k++)
      if (to_crop)
        ds_complex_scale(c + 2 * k, s + 2 * k, mh[i] * f[k]);
      else
        ds_complex_scale(s + 2 * k, c + 2 * k, mh[i] * f[k]);
  }
}

static void drop_unpaired_imag(float *spec, int rows, int kc, int n) {
  for (int i = 0; i < rows; i++) ds_drop_unpaired_imag(spec + 2 * (size_t)i * (size_t)kc, kc, n);
}

/* x image -> its spectrum in a->spec (the kc kept columns transformed). */
static void image_spectrum(const crop_job *j, arena *a, const float *x, long long img) {
  long long hw = (long long)j->g->h * j->g->w;
  copy_strided(a->real, 1, x + image_at(j, img, hw), ds_pixel_step(j->b->c, j->b->nhwc), hw);
  fftwf_execute_dft_r2c(j->p.rows_in_r2c, a->real, (fftwf_complex *)a->spec);
  fftwf_execute_dft(j->p.cols_in[0], (fftwf_complex *)a->spec, (fftwf_complex *)a->spec);
}

static void forward_image(const crop_job *j, arena *a, long long img) {
  const ds_crop *g = j->g;
  long long ohw = (long long)g->out_h * g->out_w;
  image_spectrum(j, a, j->in, img);
  transfer(g, a->spec, a->crop, j->mh, j->fk, 1);
  fftwf_execute_dft(j->p.cols_out[1], (fftwf_complex *)a->crop, (fftwf_complex *)a->crop);
  drop_unpaired_imag(a->crop, g->out_h, g->kc, g->out_w);
  fftwf_execute_dft_c2r(j->p.rows_out_c2r, (fftwf_complex *)a->crop, a->real);
  copy_strided(j->out + image_at(j, img, ohw), ds_pixel_step(j->b->c, j->b->nhwc), a->real, 1, ohw);
}

/* gh[i] += sum_k P[i][k] mw[k], gw[k] += sum_i P[i][k] mh[i], with
 * P = Re(conj(G) X) at the kept bins; G in a->crop, X in a->spec. */
static void accumulate_mask_grads(const crop_job *j, arena *a) {
  const ds_crop *g = j->g;
  for (int i = 0; i < g->out_h; i++) {
    const float *xs = a->spec + 2 * (size_t)ds_source_row(i, g->h, g->out_h, g->rows_lo) * (size_t)g->kw;
    const float *gs = a->crop + 2 * (size_t)i * (size_t)g->kc;
    double row = 0.0;
    for (int k = 0; k < g->kc; k++) {
      float p = ds_grad_product(gs + 2 * k, xs + 2 * k);
      row += (double)(p * j->mw[k]);
      a->gw[k] += (double)(p * j->mh[i]);
    }
    a->gh[i] += row;
  }
}

/* G = c_k rfft2(dy) / (out_h*out_w), the gradient with respect to the
 * cropped masked spectrum; then the mask gradients and dx from it. */
static void backward_image(const crop_job *j, arena *a, long long img) {
  const ds_crop *g = j->g;
  long long hw = (long long)g->h * g->w, ohw = (long long)g->out_h * g->out_w;
  int step = ds_pixel_step(j->b->c, j->b->nhwc);
  copy_strided(a->real, 1, j->in + image_at(j, img, ohw), step, ohw);
  fftwf_execute_dft_r2c(j->p.rows_out_r2c, a->real, (fftwf_complex *)a->crop);
  fftwf_execute_dft(j->p.cols_out[0], (fftwf_complex *)a->crop, (fftwf_complex *)a->crop);
  for (int i = 0; i < g->out_h; i++)
    for (int k = 0; k < g->kc; k++) {
      float *c = a->crop + 2 * ((size_t)i * (size_t)g->kc + (size_t)k);
      ds_complex_scale(c, c, j->fk[k]);
    }
  if (j->grad) {
    image_spectrum(j, a, j->x, img);
    accumulate_mask_grads(j, a);
  }
  if (!j->out) return;
  transfer(g, a->spec, a->crop, j->mh, j->dk, 0);
  fftwf_execute_dft(j->p.cols_in[1], (fftwf_complex *)a->spec, (fftwf_complex *)a->spec);
  drop_unpaired_imag(a->spec, g->h, g->kw, g->w);
  fftwf_execute_dft_c2r(j->p.rows_in_c2r, (fftwf_complex *)a->spec, a->real);
  copy_strided(j->out + image_at(j, img, hw), step, a->real, 1, hw);
}

static void *run_worker(void *arg) {
  worker *w = arg;
  const ds_crop *g = w->job->g;
  memset(w->a->gh, 0, sizeof(double) * (size_t)g->out_h);
  memset(w->a->gw, 0, sizeof(double) * (size_t)g->kc);
  for (long long img = w->first; img < w->last; img++)
    (w->backward ? backward_image : forward_image)(w->job, w->a, img);
  return NULL;
}

/* Splits the images over `threads` workers; a thread that cannot be started
 * has its share run here instead (slower, same numbers). */
static void run_parallel(crop_job *j, cpu_state *s, int threads, int backward) {
  worker w[DS_MAX_THREADS];
  pthread_t tid[DS_MAX_THREADS];
  int started[DS_MAX_THREADS] = {0};
  long long images = (long long)j->b->n * j->b->c;
  for (int t = 0; t < threads; t++)
    w[t] = (worker){j, &s->arenas[t], images * t / threads, images * (t + 1) / threads, backward};
  for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run_worker, &w[t]) == 0;
  run_worker(&w[0]);
  for (int t = 1; t < threads; t++)
    if (started[t])
      pthread_join(tid[t], NULL);
    else
      run_worker(&w[t]);
}

/* Sets up the job's plans, arenas and per-bin factors (one block, freed by
 * job_end); returns the thread count through *threads. */
static ds_status job_begin(ds_context *ctx, crop_job *j, int backward, int *threads) {
  const ds_crop *g = j->g;
  long long images = (long long)j->b->n * j->b->c;
  int t = ds__cpu_threads(ctx->state, images);
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
  for (int i = 0; i < g->out_h; i++) gh[i] = 0.0;
  for (int k = 0; k < g->kc; k++) gw[k] = 0.0;
  for (int t = 0; t < threads; t++) {
    for (int i = 0; i < g->out_h; i++) gh[i] += a[t].gh[i];
    for (int k = 0; k < g->kc; k++) gw[k] += a[t].gw[k];
  }
  return DS_OK;
}
