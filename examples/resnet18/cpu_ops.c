/* The CPU backend: convolutions by im2col + SGEMM (OpenBLAS, one thread per
 * call, the images split between OpenMP threads so each GEMM stays in
 * cache-sized chunks), batch norm, ReLU and the small ops in OpenMP loops,
 * DiffStride and spectral pooling through libdiffstride's CPU path.
 *
 * Why im2col + SGEMM on NHWC: the GEMM is where the CPU's FLOPs are (it runs
 * OpenBLAS's AVX-512 kernels near peak), im2col on NHWC copies contiguous
 * runs of c floats, and a 1x1 convolution needs no im2col at all. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "elements.h"

enum { CHUNK_FLOATS = 1 << 20 }; /* im2col chunk target: 4 MiB */

typedef struct cpu_exec {
  int threads;
  double library_start; /* rn_seconds() when the library call in progress began */
  float **cols, **dw;   /* per thread: im2col chunk, partial weight gradient */
  size_t cols_cap, dw_cap;
} cpu_exec;

static float *cpu_alloc(size_t count) {
  size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  return aligned_alloc(64, bytes ? bytes : 64);
}

static void cpu_release(float *p) { free(p); }

static int cpu_copy(float *dst, const float *src, size_t count) {
  memcpy(dst, src, count * sizeof *dst);
  return 0;
}

/* Per-thread buffers of `need` floats each. */
static int grow_each(cpu_exec *ex, float **bufs, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  for (int t = 0; t < ex->threads; t++) {
    free(bufs[t]);
    bufs[t] = cpu_alloc(need);
    if (!bufs[t]) return *cap = 0, -1;
  }
  *cap = need;
  return 0;
}

static void cpu_fini(rn_model *m) {
  cpu_exec *ex = m->exec;
  for (int t = 0; t < ex->threads; t++) free(ex->cols[t]), free(ex->dw[t]);
  free(ex->cols);
  free(ex->dw);
  free(ex);
  ds_context_destroy(m->ds);
  m->exec = NULL, m->ds = NULL;
}

static int cpu_init(rn_model *m, int threads, rn_error *err) {
  if (threads < 1) return rn_fail(err, "threads = %d: must be >= 1", threads);
  cpu_exec *ex = calloc(1, sizeof *ex);
  if (!ex) return rn_fail(err, "out of memory");
  m->exec = ex;
  ex->threads = threads;
  ex->cols = calloc((size_t)threads, sizeof *ex->cols);
  ex->dw = calloc((size_t)threads, sizeof *ex->dw);
  if (!ex->cols || !ex->dw) return cpu_fini(m), rn_fail(err, "out of memory");
  /* reproducible: FFTW plans chosen without timing, so a seed gives the same
   * run in every process (measured plans can differ between processes) */
  if (ds_context_create(DS_DEVICE_CPU, &m->ds) != DS_OK ||
      ds_context_set_threads(m->ds, threads) != DS_OK ||
      ds_context_set_reproducible(m->ds, 1) != DS_OK)
    return cpu_fini(m), rn_fail(err, "libdiffstride CPU context: %s", ds_last_error());
  openblas_set_num_threads(1);
  return 0;
}

/* dst = src, or dst += src when acc. */
static void put(float *dst, const float *src, size_t count, int acc, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < count; i++) dst[i] = (acc ? dst[i] : 0.0f) + src[i];
}

static size_t numel(const rn_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }

/* ------------------------------------------------------------ convolution */

/* One conv op on x (n, h, w, c) -> y (n, oh, ow, cout), weights (cout, k, k,
 * c); im2col rows are (oh*ow, kk = k*k*c). Images go in chunks of per_chunk
 * so a chunk's im2col stays near CHUNK_FLOATS. */
typedef struct conv_geom {
  int n, h, w, c, oh, ow, k, stride, cout;
  size_t in_pix, out_pix, kk;
  int direct; /* 1x1 stride 1: the rows of x are the im2col rows */
  int per_chunk, chunks;
} conv_geom;

static conv_geom geometry(const rn_model *m, const rn_op *op, int threads) {
  const rn_shape *x = &m->tensors[op->in].shape, *y = &m->tensors[op->out].shape;
  conv_geom g = {x->n, x->h, x->w, x->c, y->h, y->w, op->k, op->stride, op->cout, 0, 0, 0, 0, 0, 0};
  g.in_pix = (size_t)g.h * g.w;
  g.out_pix = (size_t)g.oh * g.ow;
  g.kk = (size_t)g.k * g.k * g.c;
  g.direct = g.k == 1 && g.stride == 1;
  int fair = (g.n + threads - 1) / threads;
  size_t fit = CHUNK_FLOATS / (g.out_pix * g.kk);
  g.per_chunk = g.direct || fit >= (size_t)fair ? fair : fit < 1 ? 1 : (int)fit;
  g.chunks = (g.n + g.per_chunk - 1) / g.per_chunk;
  return g;
}

/* Between one image x (h, w, c) and its im2col rows cols (oh*ow, kk), zero
 * padding k/2: gather (cols = patches of x) or scatter (x += cols). */
static void im2col_walk(float *x, const conv_geom *g, float *cols, int scatter) {
  const int pad = g->k / 2;
  const size_t c = (size_t)g->c;
  for (int oy = 0; oy < g->oh; oy++)
    for (int ox = 0; ox < g->ow; ox++) {
      float *row = cols + ((size_t)oy * g->ow + ox) * g->kk;
      for (int ky = 0; ky < g->k; ky++)
        for (int kx = 0, iy = oy * g->stride + ky - pad; kx < g->k; kx++, row += c) {
          int ix = ox * g->stride + kx - pad;
          int inside = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w;
          float *px = inside ? x + ((size_t)iy * g->w + ix) * c : NULL; /* no address outside the image */
          if (scatter && inside)
            for (size_t j = 0; j < c; j++) px[j] += row[j];
          else if (!scatter && inside)
            memcpy(row, px, c * sizeof *row);
          else if (!scatter)
            memset(row, 0, c * sizeof *row);
        }
    }
}

/* The GEMM operand of images [i0, i1): x's rows or their im2col in cols. */
static const float *patches(const conv_geom *g, const float *x, float *cols, int i0, int i1) {
  if (g->direct) return x + (size_t)i0 * g->in_pix * g->c;
  for (int i = i0; i < i1; i++)
    im2col_walk((float *)x + (size_t)i * g->in_pix * g->c, g,
                cols + (size_t)(i - i0) * g->out_pix * g->kk, 0);
  return cols;
}

/* y rows (M, cout) = patches (M, kk) * w^T, M = images * out_pix. */
static void conv_forward_chunk(const conv_geom *g, const float *x, const float *w, float *y,
                               float *cols, int i0, int i1) {
  const float *a = patches(g, x, cols, i0, i1);
  int rows = (i1 - i0) * (int)g->out_pix;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, g->cout, (int)g->kk, 1.0f, a,
              (int)g->kk, w, (int)g->kk, 0.0f, y + (size_t)i0 * g->out_pix * g->cout, g->cout);
}

/* dw += dy^T (cout, M) * patches (M, kk); dpatches (M, kk) = dy * w, into
 * dx directly (direct) or through cols and a scatter. dx NULL: input needs
 * no gradient. */
static void conv_backward_chunk(const conv_geom *g, const float *x, const float *w,
                                const float *dy, float *dx, int acc, float *dw, float *cols,
                                int i0, int i1) {
  const float *a = patches(g, x, cols, i0, i1);
  int rows = (i1 - i0) * (int)g->out_pix, kk = (int)g->kk;
  const float *dyc = dy + (size_t)i0 * g->out_pix * g->cout;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->cout, kk, rows, 1.0f, dyc, g->cout, a,
              kk, 1.0f, dw, kk);
  if (!dx) return;
  float *dxc = dx + (size_t)i0 * g->in_pix * g->c;
  float *target = g->direct ? dxc : cols;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, kk, g->cout, 1.0f, dyc, g->cout, w,
              kk, g->direct && acc ? 1.0f : 0.0f, target, kk);
  if (g->direct) return;
  if (!acc) memset(dxc, 0, (size_t)(i1 - i0) * g->in_pix * g->c * sizeof *dxc);
  for (int i = i0; i < i1; i++)
    im2col_walk(dxc + (size_t)(i - i0) * g->in_pix * g->c, g,
                cols + (size_t)(i - i0) * g->out_pix * g->kk, 1);
}

static int conv_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  conv_geom g = geometry(m, op, ex->threads);
  if (!g.direct && grow_each(ex, ex->cols, &ex->cols_cap, (size_t)g.per_chunk * g.out_pix * g.kk))
    return rn_fail(err, "out of memory for im2col");
  const float *x = m->tensors[op->in].data, *w = m->params + op->param;
  float *y = m->tensors[op->out].data;
#pragma omp parallel for num_threads(ex->threads) schedule(static)
  for (int ch = 0; ch < g.chunks; ch++) {
    int i0 = ch * g.per_chunk, i1 = i0 + g.per_chunk < g.n ? i0 + g.per_chunk : g.n;
    conv_forward_chunk(&g, x, w, y, ex->cols[omp_get_thread_num()], i0, i1);
  }
  return 0;
}

/* Each thread sums its chunks' weight gradients in its own buffer; the
 * buffers are added in thread order, so results do not depend on timing. */
static int conv_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  conv_geom g = geometry(m, op, ex->threads);
  size_t wsize = (size_t)g.cout * g.kk;
  if (grow_each(ex, ex->cols, &ex->cols_cap, (size_t)g.per_chunk * g.out_pix * g.kk) ||
      grow_each(ex, ex->dw, &ex->dw_cap, wsize))
    return rn_fail(err, "out of memory for the convolution's gradient");
  const rn_tensor *in = &m->tensors[op->in];
  const float *w = m->params + op->param, *dy = m->tensors[op->out].grad;
  float *dx = in->needs_grad ? in->grad : NULL;
  int team = 1;
#pragma omp parallel num_threads(ex->threads)
  {
    int t = omp_get_thread_num();
#pragma omp single
    team = omp_get_num_threads();
    memset(ex->dw[t], 0, wsize * sizeof(float));
#pragma omp for schedule(static)
    for (int ch = 0; ch < g.chunks; ch++) {
      int i0 = ch * g.per_chunk, i1 = i0 + g.per_chunk < g.n ? i0 + g.per_chunk : g.n;
      conv_backward_chunk(&g, in->data, w, dy, dx, op->acc_in, ex->dw[t], ex->cols[t], i0, i1);
    }
  }
  float *grad = m->grads + op->param;
#pragma omp parallel for num_threads(ex->threads) schedule(static)
  for (size_t j = 0; j < wsize; j++) {
    float s = 0.0f;
    for (int t = 0; t < team; t++) s += ex->dw[t][j];
    grad[j] = s;
  }
  return 0;
}

/* ------------------------------------------------------- batch norm + ReLU */

static const double bn_eps = 1e-5, bn_momentum = 0.9;

/* An (rows, c) NHWC array walked flat: element i has channel i % c. Loops
 * go over blocks of `wide` elements (a multiple of c, at least 64) with
 * per-channel coefficients tiled to that width, so the inner loops
 * vectorize even for the few channels of a narrow network. */
typedef struct bn_args {
  const float *x, *dy;
  float *out;          /* y (forward) or dx (backward) */
  const float *coef;   /* tiled per-channel coefficients, `ncoef` rows of wide */
  size_t n;            /* rows * c */
  int wide, acc;       /* acc: dx is added to */
} bn_args;

static int tile_width(int c) { return c >= 64 ? c : (64 + c - 1) / c * c; }

/* coef (rows of wide) from per-channel rows src (rows of c). */
static float *tiled(const float *src, int rows, int c, int wide) {
  float *t = malloc((size_t)rows * wide * sizeof *t);
  for (int r = 0; t && r < rows; r++)
    for (int k = 0; k < wide; k++) t[(size_t)r * wide + k] = src[(size_t)r * c + k % c];
  return t;
}

typedef void (*flat_kernel)(const bn_args *a, size_t i0, size_t i1, double *acc);

/* Runs kernel over [0, n) split between threads at block boundaries; with
 * out (2 * c doubles) the threads' accumulators (2 rows of wide) are added
 * in thread order and folded to channels. */
static int run_flat(int threads, const bn_args *a, int c, flat_kernel kernel, double *out) {
  size_t blocks = (a->n + a->wide - 1) / a->wide, row = 2 * (size_t)a->wide;
  double *acc = out ? calloc((size_t)threads * row, sizeof *acc) : NULL;
  if (out && !acc) return -1;
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), team = omp_get_num_threads();
    size_t i0 = blocks * t / team * a->wide, i1 = blocks * (t + 1) / team * a->wide;
    kernel(a, i0, i1 < a->n ? i1 : a->n, acc ? acc + (size_t)t * row : NULL);
  }
  if (!out) return 0;
  memset(out, 0, 2 * (size_t)c * sizeof *out);
  for (int t = 0; t < threads; t++)
    for (size_t k = 0; k < row; k++)
      out[(k / a->wide) * c + k % a->wide % c] += acc[(size_t)t * row + k];
  free(acc);
  return 0;
}

/* acc = (sum x, sum (x - mean)^2), coef row 0 = mean (NULL: first pass). */
static void moments_kernel(const bn_args *a, size_t i0, size_t i1, double *restrict acc) {
  const size_t w = (size_t)a->wide;
  const float *restrict x = a->x, *restrict mean = a->coef;
  for (size_t b = i0; b < i1; b += w) {
    size_t len = i1 - b < w ? i1 - b : w;
    if (!mean)
      for (size_t k = 0; k < len; k++) acc[k] += x[b + k];
    else
      for (size_t k = 0; k < len; k++) {
        double d = (double)x[b + k] - mean[k];
        acc[w + k] += d * d;
      }
  }
}

/* y = max(0, x * scale + shift); coef rows: scale, shift. */
static void apply_kernel(const bn_args *a, size_t i0, size_t i1, double *acc) {
  (void)acc;
  const size_t w = (size_t)a->wide;
  const float *restrict x = a->x, *restrict scale = a->coef, *restrict shift = a->coef + w;
  float *restrict y = a->out;
  for (size_t b = i0; b < i1; b += w) {
    size_t len = i1 - b < w ? i1 - b : w;
    for (size_t k = 0; k < len; k++) {
      y[b + k] = rn_relu(x[b + k] * scale[k] + shift[k]);
    }
  }
}

/* acc = (sum dz, sum dz * x), dz = dy where the ReLU passed. */
static void grad_sums_kernel(const bn_args *a, size_t i0, size_t i1, double *restrict acc) {
  const size_t w = (size_t)a->wide;
  const float *restrict x = a->x, *restrict dy = a->dy, *restrict scale = a->coef,
                        *restrict shift = a->coef + w;
  double *restrict sdz = acc, *restrict sdzx = acc + w;
  for (size_t b = i0; b < i1; b += w) {
    size_t len = i1 - b < w ? i1 - b : w;
    for (size_t k = 0; k < len; k++) {
      float xv = x[b + k], dz = rn_relu_grad(xv * scale[k] + shift[k], dy[b + k]);
      sdz[k] += dz;
      sdzx[k] += dz * xv;
    }
  }
}

/* dx (+)= k1 dz + k2 x + k3 on [i0, i1); coef rows: scale, shift, k1, k2,
 * k3. acc is a constant at each call, so each call site gets its own loop. */
static inline void grad_apply_span(const bn_args *a, size_t i0, size_t i1, const int acc) {
  const size_t w = (size_t)a->wide;
  const float *restrict x = a->x, *restrict dy = a->dy, *restrict co = a->coef;
  float *restrict dx = a->out;
  for (size_t b = i0; b < i1; b += w) {
    size_t len = i1 - b < w ? i1 - b : w;
    for (size_t k = 0; k < len; k++) {
      float xv = x[b + k], dz = rn_relu_grad(xv * co[k] + co[w + k], dy[b + k]);
      float d = co[2 * w + k] * dz + co[3 * w + k] * xv + co[4 * w + k];
      dx[b + k] = acc ? dx[b + k] + d : d;
    }
  }
}

static void grad_apply_kernel(const bn_args *a, size_t i0, size_t i1, double *acc) {
  (void)acc;
  if (a->acc) grad_apply_span(a, i0, i1, 1);
  else grad_apply_span(a, i0, i1, 0);
}

/* Batch statistics into stats (mean, 1/std) and the running averages. */
static int batch_stats(cpu_exec *ex, const rn_tensor *x, float *stats, float *running) {
  const int c = x->shape.c, wide = tile_width(c);
  size_t n = numel(&x->shape), rows = n / c;
  double sums[2 * RN_MAX_CHANNELS];
  if (c > RN_MAX_CHANNELS) return -1;
  bn_args a = {.x = x->data, .n = n, .wide = wide};
  if (run_flat(ex->threads, &a, c, moments_kernel, sums)) return -1;
  for (int j = 0; j < c; j++) stats[j] = (float)(sums[j] / rows);
  float *mean = tiled(stats, 1, c, wide);
  a.coef = mean;
  int rc = !mean || run_flat(ex->threads, &a, c, moments_kernel, sums);
  for (int j = 0; !rc && j < c; j++) {
    double var = sums[c + j] / rows;
    stats[c + j] = (float)(1.0 / sqrt(var + bn_eps));
    running[j] = (float)(bn_momentum * running[j] + (1 - bn_momentum) * stats[j]);
    running[c + j] = (float)(bn_momentum * running[c + j] +
                             (1 - bn_momentum) * var * rows / (rows > 1 ? rows - 1 : 1));
  }
  free(mean);
  return rc ? -1 : 0;
}

/* coef (rows of c): scale = gamma * invstd, shift = beta - mean * scale,
 * then (backward) k1, k2, k3 left for the caller. */
static void bn_affine(const rn_model *m, const rn_op *op, int c, float *coef) {
  const float *st = m->stats + op->stats, *gamma = m->params + op->param, *beta = gamma + c;
  for (int j = 0; j < c; j++) {
    coef[j] = gamma[j] * st[c + j];
    coef[c + j] = beta[j] - st[j] * coef[j];
  }
}

/* y = max(0, gamma * (x - mean) * invstd + beta) with the batch statistics
 * (train) or the running ones (evaluation). */
static int bnrelu_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  cpu_exec *ex = m->exec;
  const rn_tensor *x = &m->tensors[op->in];
  const int c = x->shape.c, wide = tile_width(c);
  float *stats = m->stats + op->stats, *running = m->state + op->state;
  if (train && batch_stats(ex, x, stats, running)) return rn_fail(err, "out of memory");
  if (!train)
    for (int j = 0; j < c; j++)
      stats[j] = running[j], stats[c + j] = (float)(1.0 / sqrt(running[c + j] + bn_eps));
  float coef[2 * RN_MAX_CHANNELS], *tiles;
  bn_affine(m, op, c, coef);
  if (!(tiles = tiled(coef, 2, c, wide))) return rn_fail(err, "out of memory");
  bn_args a = {x->data, NULL, m->tensors[op->out].data, tiles, numel(&x->shape), wide, 0};
  run_flat(ex->threads, &a, c, apply_kernel, NULL);
  free(tiles);
  return 0;
}

/* dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)) = k1 dz +
 * k2 x + k3 per channel, as sum(dz xhat) = invstd (sum(dz x) - mean sum(dz)). */
static int bnrelu_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  const rn_tensor *x = &m->tensors[op->in];
  const int c = x->shape.c, wide = tile_width(c);
  size_t n = numel(&x->shape), rows = n / c;
  const float *st = m->stats + op->stats, *gamma = m->params + op->param;
  float coef[5 * RN_MAX_CHANNELS], *tiles = NULL;
  double sums[2 * RN_MAX_CHANNELS];
  bn_affine(m, op, c, coef);
  bn_args a = {x->data, m->tensors[op->out].grad, x->grad, NULL, n, wide, op->acc_in};
  if (!(a.coef = tiles = tiled(coef, 2, c, wide)) || run_flat(ex->threads, &a, c, grad_sums_kernel, sums))
    return free(tiles), rn_fail(err, "out of memory");
  float *grad = m->grads + op->param, *k = coef + 2 * c;
  for (int j = 0; j < c; j++) {
    double sdz = sums[j], sdzx = st[c + j] * (sums[c + j] - st[j] * sdz);
    grad[j] = (float)sdzx, grad[c + j] = (float)sdz;
    k[j] = gamma[j] * st[c + j];
    k[c + j] = (float)(-k[j] * st[c + j] * sdzx / rows);
    k[2 * c + j] = (float)(-k[j] * sdz / rows - k[c + j] * st[j]);
  }
  free(tiles);
  if (!(a.coef = tiles = tiled(coef, 5, c, wide))) return rn_fail(err, "out of memory");
  run_flat(ex->threads, &a, c, grad_apply_kernel, NULL);
  free(tiles);
  return 0;
}

/* ------------------------------------------------------------ small ops */

static int add_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  cpu_exec *ex = m->exec;
  const float *a = m->tensors[op->in].data, *b = m->tensors[op->in2].data;
  float *y = m->tensors[op->out].data;
  size_t count = numel(&m->tensors[op->out].shape);
#pragma omp parallel for num_threads(ex->threads) schedule(static)
  for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
  return 0;
}

static int add_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  cpu_exec *ex = m->exec;
  const rn_tensor *y = &m->tensors[op->out];
  size_t count = numel(&y->shape);
  put(m->tensors[op->in].grad, y->grad, count, op->acc_in, ex->threads);
  put(m->tensors[op->in2].grad, y->grad, count, op->acc_in2, ex->threads);
  return 0;
}

/* x (n, h, w, c) -> y (n, c): the mean over h*w. */
static int gap_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  const rn_tensor *x = &m->tensors[op->in];
  rn_shape s = x->shape;
  size_t pix = (size_t)s.h * s.w;
  float *y = m->tensors[op->out].data;
  for (int i = 0; i < s.n; i++)
    for (int j = 0; j < s.c; j++) {
      double sum = 0.0;
      for (size_t p = 0; p < pix; p++) sum += x->data[((size_t)i * pix + p) * s.c + j];
      y[(size_t)i * s.c + j] = (float)(sum / pix);
    }
  return 0;
}

static int gap_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  rn_tensor *x = &m->tensors[op->in];
  rn_shape s = x->shape;
  size_t pix = (size_t)s.h * s.w;
  const float *dy = m->tensors[op->out].grad;
  for (int i = 0; i < s.n; i++)
    for (size_t p = 0; p < pix; p++) {
      float *dx = x->grad + ((size_t)i * pix + p) * s.c;
      for (int j = 0; j < s.c; j++) {
        float d = dy[(size_t)i * s.c + j] / (float)pix;
        dx[j] = op->acc_in ? dx[j] + d : d;
      }
    }
  return 0;
}

/* y (n, k) = x (n, c) w^T + b, w (k, c). */
static int dense_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  const rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param, *b = w + (size_t)k * c;
  float *y = m->tensors[op->out].data;
  for (int i = 0; i < n; i++) memcpy(y + (size_t)i * k, b, (size_t)k * sizeof *y);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, k, c, 1.0f, x->data, c, w, c, 1.0f, y,
              k);
  return 0;
}

static int dense_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param, *dy = m->tensors[op->out].grad;
  float *dw = m->grads + op->param, *db = dw + (size_t)k * c;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, c, n, 1.0f, dy, k, x->data, c, 0.0f, dw,
              c);
  for (int j = 0; j < k; j++) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += dy[(size_t)i * k + j];
    db[j] = (float)s;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c, k, 1.0f, dy, k, w, c,
              op->acc_in ? 1.0f : 0.0f, x->grad, c);
  return 0;
}

/* ------------------------------------------------------------ the rest */

static int cpu_load_batch(rn_model *m, const rn_data *d, const rn_dataset *s, const rn_batch_plan *p, float *host,
                          rn_error *err) {
  (void)host, (void)err;
  rn_render_batch(d, s, p, m->tensors[0].data);
  return 0;
}

static void cpu_sgd(rn_model *m, float *p, const float *g, float *v, size_t count, float lr,
                    float momentum, float wd) {
  cpu_exec *ex = m->exec;
#pragma omp parallel for num_threads(ex->threads) schedule(static)
  for (size_t i = 0; i < count; i++) rn_sgd_element(p + i, g[i], v + i, lr, momentum, wd);
}

static void cpu_accumulate(rn_model *m, float *dst, const float *src, size_t count) {
  put(dst, src, count, 1, ((cpu_exec *)m->exec)->threads);
}

static void cpu_sync(rn_model *m) { (void)m; }

static void cpu_library_mark(rn_model *m, int end) {
  cpu_exec *ex = m->exec;
  if (end) m->library_seconds += rn_seconds() - ex->library_start;
  else ex->library_start = rn_seconds();
}

static void cpu_library_collect(rn_model *m) { (void)m; }

static int cpu_set_precision(rn_model *m, rn_precision p, rn_error *err) {
  (void)m;
  return p == RN_FP32 ? 0 : rn_fail(err, "--precision %s: the CPU backend computes in fp32 only", rn_precision_name(p));
}

static double cpu_device_mb(rn_model *m) {
  (void)m;
  return -1.0;
}

const rn_backend rn_cpu_backend = {
    "cpu",
    cpu_init,
    cpu_fini,
    cpu_alloc,
    cpu_release,
    cpu_copy,
    cpu_copy,
    cpu_load_batch,
    cpu_sgd,
    cpu_accumulate,
    cpu_sync,
    cpu_library_mark,
    cpu_library_collect,
    cpu_set_precision,
    cpu_device_mb,
    {conv_forward, bnrelu_forward, rn_pool_forward, add_forward, gap_forward, dense_forward},
    {conv_backward, bnrelu_backward, rn_pool_backward, add_backward, gap_backward, dense_backward},
};
