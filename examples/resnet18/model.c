/* The pre-activation ResNet-18 of docs/trainer.md as a list of
 * ops over NHWC tensors, its shapes, parameters and the passes over it. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dist.h"

static const int base_widths[RN_STAGES] = {64, 64, 128, 256, 512};

const char *rn_mode_name(rn_mode m) {
  static const char *names[] = {"strided", "spectral", "diffstride"};
  return m >= RN_STRIDED && m <= RN_DIFFSTRIDE ? names[m] : "(unknown mode)";
}

int rn_mode_parse(const char *s, rn_mode *m) {
  for (int i = RN_STRIDED; i <= RN_DIFFSTRIDE; i++)
    if (strcmp(s, rn_mode_name((rn_mode)i)) == 0) {
      *m = (rn_mode)i;
      return 0;
    }
  return -1;
}

/* ------------------------------------------------------------ graph build */

static int new_tensor(rn_model *m, int c) {
  rn_tensor *t = &m->tensors[m->ntensors];
  memset(t, 0, sizeof *t);
  t->shape.c = c;
  t->needs_grad = 1;
  return m->ntensors++;
}

static size_t take_params(rn_model *m, size_t count, int decay) {
  m->ranges[m->nranges++] = (rn_range){m->nparams, count, decay};
  m->nparams += count;
  return m->ranges[m->nranges - 1].offset;
}

/* Appends op (its output a new tensor of c channels); returns that tensor. */
static int push(rn_model *m, rn_op op, int c) {
  op.out = new_tensor(m, c);
  m->ops[m->nops++] = op;
  return op.out;
}

static int conv(rn_model *m, int in, int cout, int k, int stride) {
  int cin = m->tensors[in].shape.c;
  rn_op op = {.kind = OP_CONV, .in = in, .cout = cout, .k = k, .stride = stride};
  op.param = take_params(m, (size_t)cout * k * k * cin, 1);
  return push(m, op, cout);
}

/* Parameters gamma then beta (c each); running mean then var; batch stats. */
static int bnrelu(rn_model *m, int in) {
  int c = m->tensors[in].shape.c;
  rn_op op = {.kind = OP_BNRELU, .in = in, .state = m->nstate, .stats = m->nstats};
  op.param = take_params(m, 2 * (size_t)c, 0);
  m->nstate += 2 * (size_t)c;
  m->nstats += 2 * (size_t)c;
  return push(m, op, c);
}

static int pool(rn_model *m, int in, int p) {
  rn_op op = {.kind = OP_POOL, .in = in, .pool = p};
  return push(m, op, m->tensors[in].shape.c);
}

static int add(rn_model *m, int a, int b) {
  rn_op op = {.kind = OP_ADD, .in = a, .in2 = b};
  return push(m, op, m->tensors[a].shape.c);
}

/* Weights (classes, c) with weight decay, then the bias. */
static int dense(rn_model *m, int in, int classes) {
  int c = m->tensors[in].shape.c;
  rn_op op = {.kind = OP_DENSE, .in = in, .cout = classes};
  op.param = take_params(m, (size_t)classes * c, 1);
  take_params(m, (size_t)classes, 0);
  return push(m, op, classes);
}

/* A pre-activation residual layer. With p >= 0 the main branch pools after
 * its first conv and the shortcut pools with the same layer p. The shortcut
 * pools before its 1x1 conv: both are linear and the conv mixes channels
 * only, so pool(conv1x1(a)) == conv1x1(pool(a)) and the stride gradient is
 * the same, on cin channels instead of cout. */
static int residual(rn_model *m, int x, int cout, int stride, int p, int project) {
  int a = bnrelu(m, x);
  int h = conv(m, a, cout, 3, stride);
  if (p >= 0) h = pool(m, h, p);
  h = conv(m, bnrelu(m, h), cout, 3, 1);
  int s = x;
  if (project) s = conv(m, p >= 0 ? pool(m, a, p) : a, cout, 1, stride);
  return add(m, h, s);
}

static int new_pool(rn_model *m, float s) {
  rn_pool *p = &m->pools[m->npools];
  memset(p, 0, sizeof *p);
  p->stride[0] = p->stride[1] = s;
  return m->npools++;
}

/* Where the spec puts a pooling layer: DiffStride after the stem always and
 * in blocks 2-4 (learned strides start anywhere, 1 included); spectral
 * pooling wherever the stride is not 1; strided convolutions never. */
static int stage_pools(const rn_config *c, int stage) {
  if (c->mode == RN_STRIDED) return 0;
  if (c->mode == RN_DIFFSTRIDE && (stage == 0 || stage >= 2)) return 1;
  return c->strides[stage] != 1.0f;
}

static int stage_width(const rn_config *c, int stage) {
  long w = lround(c->width * base_widths[stage]);
  return w < 1 ? 1 : (int)w;
}

/* Each input gradient is written by the first op (in backward order) that
 * reaches it and added to by the others. */
static void mark_accumulation(rn_model *m) {
  int written[RN_MAX_TENSORS] = {0};
  for (int i = m->nops - 1; i >= 0; i--) {
    rn_op *op = &m->ops[i];
    op->acc_in = written[op->in];
    written[op->in] = 1;
    if (op->kind == OP_ADD) {
      op->acc_in2 = written[op->in2];
      written[op->in2] = 1;
    }
  }
}

/* The passes as one timeline: op i's forward at time i, the loss at nops,
 * op i's backward at 2 nops - i. A tensor's data lives from its producer's
 * forward (the input's from before the first op) to its last use: a
 * forward that reads it, the loss (the logits), or a backward that reads it
 * (the backend's backward_reads). Its gradient lives from the backward of
 * its last reader (the logits': the loss) to that of its producer. */
static void lifetimes(const rn_model *m, int *born, int *dies, int *gborn, int *gdies) {
  const int n = m->nops;
  for (int t = 0; t < m->ntensors; t++) born[t] = dies[t] = -1, gborn[t] = 2 * n + 1, gdies[t] = 2 * n;
  dies[m->logits] = gborn[m->logits] = n;
  for (int i = 0; i < n; i++) {
    const rn_op *op = &m->ops[i];
    unsigned reads = m->be->backward_reads[op->kind];
    int ins[2] = {op->in, op->kind == OP_ADD ? op->in2 : op->in};
    born[op->out] = i;
    gdies[op->out] = 2 * n - i;
    if (reads & RN_READS_OUT) dies[op->out] = 2 * n - i;
    for (int k = 0; k < 2; k++) {
      int t = ins[k], last = reads & RN_READS_IN ? 2 * n - i : i;
      dies[t] = last > dies[t] ? last : dies[t];
      gborn[t] = 2 * n - i < gborn[t] ? 2 * n - i : gborn[t];
    }
  }
}

/* Buffers for the lives [born, dies] of the tensors t with use[t]: in the
 * order of birth, a tensor takes the first buffer whose last tenant died
 * before it was born. Returns the number of buffers. */
static int share(const rn_model *m, const int *use, const int *born, const int *dies, int *slot) {
  int count = 0, free_after[RN_MAX_TENSORS];
  for (int time = -1; time <= 2 * m->nops; time++)
    for (int t = 0; t < m->ntensors; t++) {
      if (!use[t] || born[t] != time) continue;
      int s = 0;
      while (s < count && free_after[s] >= time) s++;
      count += s == count;
      free_after[s] = dies[t];
      slot[t] = s;
    }
  return count;
}

static void assign_buffers(rn_model *m) {
  int born[RN_MAX_TENSORS], dies[RN_MAX_TENSORS], gborn[RN_MAX_TENSORS], gdies[RN_MAX_TENSORS];
  int all[RN_MAX_TENSORS], grads[RN_MAX_TENSORS], dslot[RN_MAX_TENSORS], gslot[RN_MAX_TENSORS];
  lifetimes(m, born, dies, gborn, gdies);
  for (int t = 0; t < m->ntensors; t++) all[t] = 1, grads[t] = m->tensors[t].needs_grad;
  m->data_bufs.count = share(m, all, born, dies, dslot);
  m->grad_bufs.count = share(m, grads, gborn, gdies, gslot);
  for (int t = 0; t < m->ntensors; t++) m->tensors[t].data_slot = dslot[t], m->tensors[t].grad_slot = gslot[t];
}

static void build(rn_model *m) {
  const rn_config *c = &m->cfg;
  int strided = c->mode == RN_STRIDED;
  int x = new_tensor(m, c->in_c);
  m->tensors[x].needs_grad = 0;
  int t = conv(m, x, stage_width(c, 0), 3, strided ? (int)c->strides[0] : 1);
  if (stage_pools(c, 0)) t = pool(m, t, new_pool(m, c->strides[0]));
  for (int b = 1; b < RN_STAGES; b++) {
    int w = stage_width(c, b), p = stage_pools(c, b) ? new_pool(m, c->strides[b]) : -1;
    int stride = strided ? (int)c->strides[b] : 1;
    int project = b >= 2 || c->strides[b] != 1.0f || m->tensors[t].shape.c != w;
    t = residual(m, t, w, stride, p, project);
    t = residual(m, t, w, 1, -1, 0);
  }
  rn_op gap = {.kind = OP_GAP, .in = bnrelu(m, t)};
  m->logits = dense(m, push(m, gap, m->tensors[t].shape.c), c->classes);
  mark_accumulation(m);
  assign_buffers(m);
}

/* ------------------------------------------------------- config, params */

static int check_input(const rn_config *c, rn_error *err) {
  if (c->in_h < 2 || c->in_h > RN_MAX_SIDE || c->in_w < 2 || c->in_w > RN_MAX_SIDE || c->in_c < 1 ||
      c->in_c > 3 || c->classes < 2 || c->classes > RN_MAX_CLASSES)
    return rn_fail(err, "input %dx%dx%d with %d classes: need h and w in [2, %d], c in [1, 3], classes in [2, %d]",
                   c->in_h, c->in_w, c->in_c, c->classes, RN_MAX_SIDE, RN_MAX_CLASSES);
  return 0;
}

/* Strides are checked before anything converts one to an int. */
static int check_strides(const rn_config *c, rn_error *err) {
  for (int i = 0; i < RN_STAGES; i++) {
    float s = c->strides[i];
    if (!isfinite(s) || s < 1.0f || s > RN_MAX_STRIDE)
      return rn_fail(err, "stride %d = %g: strides must be finite and in [1, %d]", i, (double)s, RN_MAX_STRIDE);
    if (c->mode == RN_STRIDED && s != floorf(s))
      return rn_fail(err, "stride %d = %g: strided convolutions need whole strides", i, (double)s);
  }
  return 0;
}

int rn_config_check(const rn_config *c, rn_error *err) {
  if (c->mode < RN_STRIDED || c->mode > RN_DIFFSTRIDE)
    return rn_fail(err, "mode %d: expected 0 (strided), 1 (spectral) or 2 (diffstride)", (int)c->mode);
  if (!(c->width > 0.0f && c->width <= 8.0f))
    return rn_fail(err, "width multiplier %g: must be in (0, 8]", (double)c->width);
  if (!(c->smoothness > 0.0f) || !isfinite(c->smoothness))
    return rn_fail(err, "smoothness R = %g: must be finite and > 0", (double)c->smoothness);
  return check_input(c, err) || check_strides(c, err) ? -1 : 0;
}

/* He-normal convolutions, unit/zero batch norm, uniform(+-1/sqrt(c)) dense;
 * -1 when out of memory or the copy to the device fails. */
static int init_params(rn_model *m, rn_rng *rng) {
  float *p = malloc(m->nparams * sizeof *p + 1), *state = malloc(m->nstate * sizeof *state + 1);
  for (int i = 0; p && state && i < m->nops; i++) {
    const rn_op *op = &m->ops[i];
    int cin = m->tensors[op->in].shape.c;
    float *w = p + op->param;
    if (op->kind == OP_CONV) {
      size_t fan_in = (size_t)op->k * op->k * cin, count = fan_in * op->cout;
      for (size_t j = 0; j < count; j++) w[j] = (float)(rn_rng_normal(rng) * sqrt(2.0 / fan_in));
    } else if (op->kind == OP_BNRELU) {
      for (int j = 0; j < cin; j++) w[j] = 1.0f, w[cin + j] = 0.0f;
      for (int j = 0; j < cin; j++) state[op->state + j] = 0.0f, state[op->state + cin + j] = 1.0f;
    } else if (op->kind == OP_DENSE) {
      for (int j = 0; j < op->cout * cin; j++)
        w[j] = (float)((2.0 * rn_rng_uniform(rng) - 1.0) / sqrt(cin));
      memset(w + op->cout * cin, 0, (size_t)op->cout * sizeof *w);
    }
  }
  int rc = p && state && !m->be->to_device(m->params, p, m->nparams) &&
                   !m->be->to_device(m->state, state, m->nstate)
               ? 0
               : -1;
  free(p);
  free(state);
  return rc;
}

/* count zeros in the backend's memory; NULL when that fails. */
static float *device_zeros(const rn_backend *be, size_t count) {
  float *d = be->alloc(count ? count : 1), *z = calloc(count ? count : 1, sizeof *z);
  if (d && (!z || be->to_device(d, z, count ? count : 1))) be->release(d), d = NULL;
  free(z);
  return d;
}

int rn_model_create(rn_model *m, const rn_config *cfg, const rn_backend *be, int threads,
                    rn_rng *rng, rn_error *err) {
  memset(m, 0, sizeof *m);
  if (threads < 1 || threads > RN_MAX_THREADS)
    return rn_fail(err, "%d threads: expected 1 to %d", threads, RN_MAX_THREADS);
  if (rn_config_check(cfg, err)) return -1;
  m->cfg = *cfg;
  m->be = be;
  ds_diffstride_desc_init(&m->desc);
  m->desc.smoothness = cfg->smoothness;
  m->desc.layout = DS_LAYOUT_NHWC;
  build(m);
  if (be->init(m, threads, err)) { /* first: it says when the device is missing */
    rn_model_destroy(m);
    return -1;
  }
  m->params = device_zeros(be, m->nparams);
  m->grads = device_zeros(be, m->nparams);
  m->mom = device_zeros(be, m->nparams);
  m->state = device_zeros(be, m->nstate);
  m->stats = device_zeros(be, m->nstats);
  if (!m->params || !m->grads || !m->mom || !m->state || !m->stats || init_params(m, rng)) {
    rn_model_destroy(m);
    return rn_fail(err, "cannot allocate or initialize %zu parameters on the %s device", m->nparams, be->name);
  }
  if (rn_model_shapes(m, 1, err)) {
    rn_model_destroy(m);
    return -1;
  }
  rn_store_effective_strides(m);
  return 0;
}

void rn_model_destroy(rn_model *m) {
  if (!m->be) return;
  if (m->exec) m->be->fini(m);
  for (int i = 0; i < m->data_bufs.count; i++) m->be->release(m->data_bufs.buf[i]);
  for (int i = 0; i < m->grad_bufs.count; i++) m->be->release(m->grad_bufs.buf[i]);
  for (int i = 0; i < m->nops; i++) m->be->release(m->reserve[i]);
  float *arrays[] = {m->params, m->grads, m->mom, m->state, m->stats, m->scratch};
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) m->be->release(arrays[i]);
  memset(m, 0, sizeof *m);
}


/* ------------------------------------------------------------- shapes */

static int pool_shape(rn_model *m, const rn_op *op, rn_shape in, rn_shape *out, rn_error *err) {
  rn_pool *p = &m->pools[op->pool];
  int oh, ow;
  ds_status st = m->cfg.mode == RN_DIFFSTRIDE
                     ? ds_diffstride_output_size(&m->desc, in.h, in.w, p->stride, &oh, &ow)
                     : ds_spectral_pool_output_size(in.h, in.w, p->stride, &oh, &ow);
  if (st != DS_OK)
    return rn_fail(err, "pooling layer %d on %dx%d feature maps, strides (%g, %g): %s", op->pool,
                   in.h, in.w, (double)p->stride[0], (double)p->stride[1], ds_last_error());
  *p = (rn_pool){{p->stride[0], p->stride[1]}, {p->grad[0], p->grad[1]},
                 {p->mom[0], p->mom[1]}, in.h, in.w, oh, ow};
  *out = (rn_shape){in.n, oh, ow, in.c};
  return 0;
}

static rn_shape op_shape(const rn_model *m, const rn_op *op, rn_shape in) {
  switch (op->kind) {
    case OP_CONV:
      return (rn_shape){in.n, (in.h - 1) / op->stride + 1, (in.w - 1) / op->stride + 1, op->cout};
    case OP_GAP:
      return (rn_shape){in.n, 1, 1, in.c};
    case OP_DENSE:
      return (rn_shape){in.n, 1, 1, m->cfg.classes};
    default:
      return in;
  }
}

/* A tensor stays below 2^31 elements: the backends and GEMMs count rows
 * and elements in int. */
static int check_size(const rn_shape *s, rn_error *err) {
  size_t count = rn_numel(s); /* < 2^48 within rn.h's limits */
  if (count <= INT_MAX) return 0;
  return rn_fail(err, "a %dx%dx%dx%d tensor has %zu elements, more than 2^31 - 1: use a smaller --batch", s->n,
                 s->h, s->w, s->c, count);
}

/* The data (grad = 0) or gradient buffers grown to their largest tenant,
 * then handed to the tensors. */
static int grow_buffers(rn_model *m, int grad, rn_error *err) {
  rn_buffers *b = grad ? &m->grad_bufs : &m->data_bufs;
  size_t need[RN_MAX_TENSORS] = {0};
  for (int t = 0; t < m->ntensors; t++) {
    const rn_tensor *x = &m->tensors[t];
    int s = grad ? x->grad_slot : x->data_slot;
    if ((!grad || x->needs_grad) && rn_numel(&x->shape) > need[s]) need[s] = rn_numel(&x->shape);
  }
  for (int s = 0; s < b->count; s++)
    if (need[s] && !rn_model_grow(m, &b->buf[s], &b->cap[s], need[s]))
      return rn_fail(err, "out of memory allocating %zu bytes for %s", need[s] * sizeof(float),
                     grad ? "gradients" : "activations");
  for (int t = 0; t < m->ntensors; t++) {
    rn_tensor *x = &m->tensors[t];
    if (grad) x->grad = x->needs_grad ? b->buf[x->grad_slot] : NULL;
    else x->data = b->buf[x->data_slot];
  }
  return 0;
}

float *rn_model_grow(rn_model *m, float **buf, size_t *cap, size_t count) {
  if (count <= *cap) return *buf;
  m->be->release(*buf);
  *buf = m->be->alloc(count);
  *cap = *buf ? count : 0;
  return *buf;
}

float *rn_model_scratch(rn_model *m, size_t count) { return rn_model_grow(m, &m->scratch, &m->scratch_cap, count); }

int rn_model_shapes(rn_model *m, int n, rn_error *err) {
  rn_tensor *x = &m->tensors[0];
  x->shape = (rn_shape){n, m->cfg.in_h, m->cfg.in_w, m->cfg.in_c};
  if (check_size(&x->shape, err)) return -1;
  for (int i = 0; i < m->nops; i++) {
    const rn_op *op = &m->ops[i];
    rn_shape in = m->tensors[op->in].shape, out;
    if (op->kind == OP_POOL) {
      if (pool_shape(m, op, in, &out, err)) return -1;
    } else {
      out = op_shape(m, op, in);
    }
    m->tensors[op->out].shape = out;
    if (check_size(&out, err)) return -1;
  }
  return grow_buffers(m, 0, err) || grow_buffers(m, 1, err) ? -1 : 0;
}

/* ------------------------------------------------------------- passes */

double rn_library_seconds(rn_model *m) {
  m->be->library_collect(m);
  return m->library_seconds;
}

int rn_forward(rn_model *m, const float *x, int n, int train, rn_error *err) {
  if (rn_model_shapes(m, n, err)) return -1;
  rn_tensor *in = &m->tensors[0];
  if (x && m->be->to_device(in->data, x, (size_t)n * in->shape.h * in->shape.w * in->shape.c))
    return rn_fail(err, "copying a batch of %d images to the %s device failed", n, m->be->name);
  for (int i = 0; i < m->nops; i++)
    if (m->be->forward[m->ops[i].kind](m, &m->ops[i], train, err)) return -1;
  return 0;
}

int rn_backward(rn_model *m, rn_error *err) {
  for (int p = 0; p < m->npools; p++) m->pools[p].grad[0] = m->pools[p].grad[1] = 0.0f;
  for (int i = m->nops - 1; i >= 0; i--)
    if (m->be->backward[m->ops[i].kind](m, &m->ops[i], 1, err) || rn_dist_grads_ready(m, i, err)) return -1;
  return 0;
}

/* Softmax cross-entropy per row of the host logits (n, k) against soft
 * targets, summed over the rows and divided by total; the gradient
 * (softmax - target) / total replaces the logits. */
static double softmax_xent(float *z, const float *t, const int *labels, int n, int total, int k, int grad,
                           int *correct) {
  double sum_loss = 0.0;
  for (int i = 0; i < n; i++) {
    float *row = z + (size_t)i * k;
    int best = 0;
    for (int j = 1; j < k; j++) best = row[j] > row[best] ? j : best;
    *correct += labels && best == labels[i];
    double sum = 0.0, mx = row[best];
    for (int j = 0; j < k; j++) sum += exp(row[j] - mx);
    double lse = mx + log(sum);
    for (int j = 0; j < k; j++) {
      const float tj = t[(size_t)i * k + j];
      sum_loss -= tj * (row[j] - lse);
      if (grad) row[j] = (float)((exp(row[j] - lse) - tj) / total);
    }
  }
  return sum_loss / total;
}

double rn_loss(rn_model *m, const float *targets, const int *labels, int n, int total, int grad,
               int *correct) {
  rn_tensor *t = &m->tensors[m->logits];
  size_t count = (size_t)n * m->cfg.classes;
  float *z = malloc(count * sizeof *z);
  if (!z || m->be->to_host(z, t->data, count)) return free(z), NAN;
  int hits = 0;
  double loss = softmax_xent(z, targets, labels, n, total, m->cfg.classes, grad, &hits);
  if (grad && m->be->to_device(t->grad, z, count)) loss = NAN;
  if (correct) *correct = hits;
  free(z);
  return loss;
}

double rn_regularizer(rn_model *m, float lambda, int grad) {
  if (m->cfg.mode != RN_DIFFSTRIDE || lambda == 0.0f || m->npools == 0) return 0.0;
  float s[2 * RN_MAX_POOLS], g[2 * RN_MAX_POOLS], j = 0.0f;
  for (int p = 0; p < m->npools; p++) s[2 * p] = m->pools[p].stride[0], s[2 * p + 1] = m->pools[p].stride[1];
  if (ds_complexity_penalty(m->npools, s, NULL, &j, g) != DS_OK) return NAN;
  for (int p = 0; grad && p < m->npools; p++) {
    m->pools[p].grad[0] += lambda * g[2 * p];
    m->pools[p].grad[1] += lambda * g[2 * p + 1];
  }
  return (double)lambda * j;
}

const char *rn_precision_name(rn_precision p) {
  static const char *names[] = {"fp32", "tf32", "bf16"};
  return p >= RN_FP32 && p <= RN_BF16 ? names[p] : "(unknown precision)";
}

int rn_precision_parse(const char *s, rn_precision *p) {
  for (int i = RN_FP32; i <= RN_BF16; i++)
    if (strcmp(s, rn_precision_name((rn_precision)i)) == 0) return *p = (rn_precision)i, 0;
  return -1;
}

int rn_model_set_precision(rn_model *m, rn_precision p, rn_error *err) { return m->be->set_precision(m, p, err); }

void rn_store_effective_strides(rn_model *m) {
  if (m->cfg.mode != RN_DIFFSTRIDE) return;
  for (int p = 0; p < m->npools; p++) {
    rn_pool *q = &m->pools[p];
    float e[2];
    if (ds_diffstride_effective_strides(&m->desc, q->in_h, q->in_w, q->stride, e) == DS_OK)
      q->stride[0] = e[0], q->stride[1] = e[1];
  }
}
