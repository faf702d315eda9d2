/* Batch norm fused with the ReLU after it, on the CPU by oneDNN (one pass
 * over x for the statistics and one for y; the backward reads the ReLU's
 * mask from a workspace of the forward). x and y are (n, h, w, c) nhwc;
 * m->stats holds the batch mean, then the batch variance (biased), per
 * channel; m->state the running mean, then the running variance
 * (unbiased), the checkpoint's form.
 *
 * With --sync-bn (m->dist->sync_bn, set before the first step) the
 * statistics are the global batch's: the ranks' own means and variances
 * are gathered and combined, the forward runs on them as given statistics,
 * and the backward adds the terms through the statistics that oneDNN's
 * given-statistics backward leaves out, from the gradients of gamma and
 * beta summed over the ranks. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "dist.h"

static const float bn_eps = 1e-5f;
static const double bn_momentum = 0.9;
enum { SCALED = dnnl_use_scale | dnnl_use_shift | dnnl_fuse_norm_relu };

static dnnl_memory_desc_t data_md(const rn_tensor *x) {
  return cpu_md(x->shape.n, x->shape.c, x->shape.h, x->shape.w, dnnl_nhwc);
}

/* One value per channel: the scale, shift, mean and variance arrays. */
static dnnl_memory_desc_t channel_md(int c) {
  dnnl_memory_desc_t md;
  dnnl_dims_t dims = {c};
  dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a);
  return md;
}

static int synced(const rn_model *m) { return m->dist && m->dist->sync_bn; }

/* The rank's own statistics (sync BN): mean and variance, y normalized. */
static int make_stats(cpu_exec *ex, const dnnl_memory_desc_t *md, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, md, bn_eps, 0);
  p->stats = cpu_primitive(cpu_pd(ex, &bd, NULL, "batch norm statistics", err), 0, "batch norm statistics", err);
  return p->stats ? 0 : -1;
}

/* The training forward (kept as the backward's hint) and its workspace. */
static int make_forward(cpu_exec *ex, const dnnl_memory_desc_t *md, unsigned flags, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, md, bn_eps, flags);
  if (!(p->fwd_pd = cpu_pd(ex, &bd, NULL, "batch norm forward", err))) return -1;
  p->ws_md = *dnnl_primitive_desc_query_md(p->fwd_pd, dnnl_query_workspace_md, 0);
  if (!(p->ws = cpu_aligned(dnnl_memory_desc_get_size(&p->ws_md))))
    return rn_fail(err, "out of memory for a batch norm's ReLU mask");
  return (p->fwd = cpu_primitive(p->fwd_pd, 1, "batch norm forward", err)) ? 0 : -1;
}

static int make_inference(cpu_exec *ex, const dnnl_memory_desc_t *md, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference, md, bn_eps,
                                             SCALED | dnnl_use_global_stats);
  p->infer = cpu_primitive(cpu_pd(ex, &bd, NULL, "batch norm inference", err), 0, "batch norm inference", err);
  return p->infer ? 0 : -1;
}

static int make_backward(cpu_exec *ex, const dnnl_memory_desc_t *md, unsigned flags, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, md, md, bn_eps, flags);
  dnnl_primitive_desc_t pd = cpu_pd(ex, &bd, p->fwd_pd, "batch norm backward", err);
  return (p->bwd_data = cpu_primitive(pd, 0, "batch norm backward", err)) ? 0 : -1;
}

/* running = momentum * running + (1 - momentum) * batch, the variance made
 * unbiased (rows = n*h*w values per channel). */
static void update_running(float *running, const float *stats, int c, size_t rows) {
  double unbias = rows > 1 ? (double)rows / (double)(rows - 1) : 1.0;
  for (int j = 0; j < c; j++) {
    running[j] = (float)(bn_momentum * running[j] + (1 - bn_momentum) * stats[j]);
    running[c + j] = (float)(bn_momentum * running[c + j] + (1 - bn_momentum) * stats[c + j] * unbias);
  }
}

/* The global batch's mean and variance from every rank's rows, mean and
 * variance (Chan et al.'s combination, in rank order: the same numbers on
 * every rank), into stats (mean, then variance; c each); p->rows = N. */
static int combine_stats(rn_model *m, cpu_prims *p, float *stats, int c, double rows, rn_error *err) {
  const rn_dist *d = m->dist;
  size_t per = 1 + 2 * (size_t)c;
  double *mine = rn_alloc(per * (d->size + 1), sizeof *mine, "the batch norm statistics of the ranks", err);
  if (!mine) return -1;
  double *all = mine + per;
  mine[0] = rows;
  for (int j = 0; j < 2 * c; j++) mine[1 + j] = stats[j];
  if (rn_dist_gather(d, mine, (int)per, all, err)) return free(mine), -1;
  p->rows = 0.0;
  for (int r = 0; r < d->size; r++) p->rows += all[r * per];
  for (int j = 0; j < c; j++) {
    double mean = 0.0, m2 = 0.0;
    for (int r = 0; r < d->size; r++) mean += all[r * per] * all[r * per + 1 + j];
    mean /= p->rows;
    for (int r = 0; r < d->size; r++) {
      double dm = all[r * per + 1 + j] - mean;
      m2 += all[r * per] * (all[r * per + 1 + c + j] + dm * dm);
    }
    stats[j] = (float)mean, stats[c + j] = (float)(m2 / p->rows);
  }
  free(mine);
  return 0;
}

/* Sync BN: the rank's statistics into stats, then the global batch's. */
static int global_stats(rn_model *m, cpu_prims *p, const dnnl_memory_desc_t *md, const rn_tensor *x, float *y,
                        float *stats, rn_error *err) {
  cpu_exec *ex = m->exec;
  const int c = x->shape.c;
  dnnl_memory_desc_t cmd = channel_md(c);
  if (!p->stats && make_stats(ex, md, p, err)) return -1;
  cpu_arg args[] = {{DNNL_ARG_SRC, md, x->data}, {DNNL_ARG_DST, md, y},
                    {DNNL_ARG_MEAN, &cmd, stats}, {DNNL_ARG_VARIANCE, &cmd, stats + c}};
  if (cpu_execute(ex, p->stats, 4, args, "batch norm statistics", err)) return -1;
  return combine_stats(m, p, stats, c, (double)x->shape.n * x->shape.h * x->shape.w, err);
}

/* y = max(0, gamma * (x - mean) / sqrt(var + eps) + beta) with the batch
 * statistics (train) or the running ones (evaluation). */
int cpu_bnrelu_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  cpu_exec *ex = m->exec;
  const rn_tensor *x = &m->tensors[op->in];
  const int c = x->shape.c, sync = synced(m);
  float *y = m->tensors[op->out].data;
  dnnl_memory_desc_t md = data_md(x), cmd = channel_md(c);
  cpu_prims *p = cpu_prims_for(ex, m, op);
  unsigned flags = SCALED | (sync ? dnnl_use_global_stats : 0);
  if ((train && !p->fwd && make_forward(ex, &md, flags, p, err)) ||
      (!train && !p->infer && make_inference(ex, &md, p, err)))
    return cpu_prims_free(p), -1;
  const float *gamma = m->params + op->param;
  float *stats = train ? m->stats + op->stats : m->state + op->state;
  if (train && sync && global_stats(m, p, &md, x, y, stats, err)) return -1;
  cpu_arg args[] = {{DNNL_ARG_SRC, &md, x->data},           {DNNL_ARG_DST, &md, y},
                    {DNNL_ARG_SCALE, &cmd, gamma},          {DNNL_ARG_SHIFT, &cmd, gamma + c},
                    {DNNL_ARG_MEAN, &cmd, stats},           {DNNL_ARG_VARIANCE, &cmd, stats + c},
                    {DNNL_ARG_WORKSPACE, &p->ws_md, p->ws}};
  if (cpu_execute(ex, train ? p->fwd : p->infer, train ? 7 : 6, args, "batch norm forward", err)) return -1;
  size_t rows = sync ? (size_t)p->rows : (size_t)x->shape.n * x->shape.h * x->shape.w;
  if (train) update_running(m->state + op->state, stats, c, rows);
  return 0;
}

/* Sync BN: dx (from oneDNN, gamma / sigma * dy through the ReLU) minus
 * gamma / (sigma N) * (dbeta + (x - mean) / sigma * dgamma), dgamma and
 * dbeta summed over the ranks; x and dx (rows, c). */
static int sync_correction(rn_model *m, const rn_op *op, const cpu_prims *p, const float *x, float *dx,
                           size_t rows, rn_error *err) {
  const int c = m->tensors[op->in].shape.c;
  const float *gamma = m->params + op->param, *st = m->stats + op->stats, *grad = m->grads + op->param;
  double *v = rn_alloc(4 * (size_t)c, sizeof *v, "the batch norm gradient sums", err);
  if (!v) return -1;
  for (int j = 0; j < 2 * c; j++) v[j] = grad[j]; /* dgamma, dbeta */
  if (rn_dist_sum(m->dist, v, 2 * c, err)) return free(v), -1;
  for (int j = 0; j < c; j++) { /* dx -= k1 + k2 x */
    double sigma = sqrt((double)st[c + j] + bn_eps), g = gamma[j] / (sigma * p->rows);
    v[2 * c + j] = g * (v[c + j] - st[j] * v[j] / sigma);
    v[3 * c + j] = g * v[j] / sigma;
  }
  const double *k1 = v + 2 * c, *k2 = v + 3 * c;
#pragma omp parallel for num_threads(((cpu_exec *)m->exec)->threads) schedule(static)
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) dx[r * c + j] -= (float)(k1[j] + k2[j] * x[r * c + j]);
  free(v);
  return 0;
}

/* dx from dy through the ReLU's mask and the batch statistics; dgamma and
 * dbeta into m->grads at op->param. An added dx goes first over dy (in
 * place: dy dies here), then a reorder adds it to x's gradient. */
int cpu_bnrelu_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  rn_tensor *x = &m->tensors[op->in];
  const int c = x->shape.c;
  dnnl_memory_desc_t md = data_md(x), cmd = channel_md(c);
  cpu_prims *p = cpu_prims_for(ex, m, op);
  unsigned flags = SCALED | (synced(m) ? dnnl_use_global_stats : 0);
  if (!p->fwd || (!p->bwd_data && make_backward(ex, &md, flags, p, err)))
    return p->fwd ? (cpu_prims_free(p), -1) : rn_fail(err, "batch norm backward before its training forward");
  float *dy = m->tensors[op->out].grad, *dx = op->acc_in ? dy : x->grad, *grad = m->grads + op->param;
  const float *st = m->stats + op->stats;
  cpu_arg args[] = {{DNNL_ARG_SRC, &md, x->data},        {DNNL_ARG_MEAN, &cmd, st},
                    {DNNL_ARG_VARIANCE, &cmd, st + c},   {DNNL_ARG_DIFF_DST, &md, dy},
                    {DNNL_ARG_SCALE, &cmd, m->params + op->param}, {DNNL_ARG_SHIFT, &cmd, m->params + op->param + c},
                    {DNNL_ARG_WORKSPACE, &p->ws_md, p->ws},
                    {DNNL_ARG_DIFF_SRC, &md, dx},        {DNNL_ARG_DIFF_SCALE, &cmd, grad},
                    {DNNL_ARG_DIFF_SHIFT, &cmd, grad + c}};
  if (cpu_execute(ex, p->bwd_data, 10, args, "batch norm backward", err)) return -1;
  size_t rows = (size_t)x->shape.n * x->shape.h * x->shape.w;
  if (synced(m) && sync_correction(m, op, p, x->data, dx, rows, err)) return -1;
  return op->acc_in ? cpu_reorder(ex, &md, dx, &md, x->grad, 1, err) : 0;
}
