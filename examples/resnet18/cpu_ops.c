/* The CPU backend: convolutions and batch norm + ReLU by oneDNN (cpu_conv.c,
 * cpu_bnrelu.c), the dense layer by oneDNN's SGEMM, the add, the global
 * average pooling and the optimizer in OpenMP loops, DiffStride and
 * spectral pooling through libdiffstride's CPU path. oneDNN and the loops
 * run on the model's `threads` OpenMP threads. */
#include <dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "elements.h"

static float *cpu_alloc(size_t count) {
  return count <= SIZE_MAX / sizeof(float) ? cpu_aligned(count * sizeof(float)) : NULL;
}

static void cpu_release(float *p) { free(p); }

static int cpu_copy(float *dst, const float *src, size_t count) {
  memcpy(dst, src, count * sizeof *dst);
  return 0;
}

static void cpu_fini(rn_model *m) {
  cpu_exec *ex = m->exec;
  for (int i = 0; i < RN_MAX_OPS; i++) cpu_prims_free(&ex->prims[i]);
  if (ex->stream) dnnl_stream_destroy(ex->stream);
  if (ex->engine) dnnl_engine_destroy(ex->engine);
  for (int i = 0; i < CPU_BUFFERS; i++) free(ex->buf[i]);
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
  omp_set_num_threads(threads); /* oneDNN's OpenMP runtime runs on the caller's team size */
  if (dnnl_engine_create(&ex->engine, dnnl_cpu, 0) != dnnl_success ||
      dnnl_stream_create(&ex->stream, ex->engine, dnnl_stream_default_flags) != dnnl_success)
    return cpu_fini(m), rn_fail(err, "oneDNN: cannot create a CPU engine and stream");
  /* reproducible: FFTW plans chosen without timing, so a seed gives the same
   * run in every process (measured plans can differ between processes) */
  if (ds_context_create(DS_DEVICE_CPU, &m->ds) != DS_OK ||
      ds_context_set_threads(m->ds, threads) != DS_OK ||
      ds_context_set_reproducible(m->ds, 1) != DS_OK)
    return cpu_fini(m), rn_fail(err, "libdiffstride CPU context: %s", ds_last_error());
  return 0;
}

/* dst = src, or dst += src when acc. */
static void put(float *dst, const float *src, size_t count, int acc, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < count; i++) dst[i] = (acc ? dst[i] : 0.0f) + src[i];
}

/* ------------------------------------------------------------ small ops */

static int add_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  cpu_exec *ex = m->exec;
  const float *a = m->tensors[op->in].data, *b = m->tensors[op->in2].data;
  float *y = m->tensors[op->out].data;
  size_t count = rn_numel(&m->tensors[op->out].shape);
#pragma omp parallel for num_threads(ex->threads) schedule(static)
  for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
  return 0;
}

static int add_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train, (void)err;
  cpu_exec *ex = m->exec;
  const rn_tensor *y = &m->tensors[op->out];
  size_t count = rn_numel(&y->shape);
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
  (void)train;
  const rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param, *b = w + (size_t)k * c;
  float *y = m->tensors[op->out].data;
  for (int i = 0; i < n; i++) memcpy(y + (size_t)i * k, b, (size_t)k * sizeof *y);
  dnnl_status_t st = dnnl_sgemm('N', 'T', n, k, c, 1.0f, x->data, c, w, c, 1.0f, y, k);
  return st == dnnl_success ? 0 : rn_fail(err, "oneDNN SGEMM of the dense layer failed");
}

static int dense_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param, *dy = m->tensors[op->out].grad;
  float *dw = m->grads + op->param, *db = dw + (size_t)k * c;
  dnnl_status_t st = dnnl_sgemm('T', 'N', k, c, n, 1.0f, dy, k, x->data, c, 0.0f, dw, c);
  for (int j = 0; j < k; j++) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += dy[(size_t)i * k + j];
    db[j] = (float)s;
  }
  if (st == dnnl_success)
    st = dnnl_sgemm('N', 'N', n, c, k, 1.0f, dy, k, w, c, op->acc_in ? 1.0f : 0.0f, x->grad, c);
  return st == dnnl_success ? 0 : rn_fail(err, "oneDNN SGEMM of the dense layer's gradient failed");
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
    NULL, /* host memory: the core's MPI sums the gradients */
    NULL,
    {cpu_conv_forward, cpu_bnrelu_forward, rn_pool_forward, add_forward, gap_forward, dense_forward},
    {cpu_conv_backward, cpu_bnrelu_backward, rn_pool_backward, add_backward, gap_backward, dense_backward},
    {RN_READS_IN, RN_READS_IN, 0, 0, 0, RN_READS_IN},
};
