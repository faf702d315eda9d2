/* Batch norm fused with the ReLU after it, on the CPU by oneDNN (one pass
 * over x for the statistics and one for y; the backward reads the ReLU's
 * mask from a workspace of the forward). x and y are (n, h, w, c) nhwc;
 * m->stats holds the batch mean, then the batch variance (biased), per
 * channel; m->state the running mean, then the running variance
 * (unbiased), the checkpoint's form. */
#include <stdlib.h>

#include "cpu.h"

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

/* The training forward (kept as the backward's hint) and its workspace. */
static int make_forward(cpu_exec *ex, const dnnl_memory_desc_t *md, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, md, bn_eps, SCALED);
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

static int make_backward(cpu_exec *ex, const dnnl_memory_desc_t *md, cpu_prims *p, rn_error *err) {
  dnnl_batch_normalization_desc_t bd;
  dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, md, md, bn_eps, SCALED);
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

/* y = max(0, gamma * (x - mean) / sqrt(var + eps) + beta) with the batch
 * statistics (train) or the running ones (evaluation). */
int cpu_bnrelu_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  cpu_exec *ex = m->exec;
  const rn_tensor *x = &m->tensors[op->in];
  const int c = x->shape.c;
  dnnl_memory_desc_t md = data_md(x), cmd = channel_md(c);
  cpu_prims *p = cpu_prims_for(ex, m, op);
  if ((train && !p->fwd && make_forward(ex, &md, p, err)) || (!train && !p->infer && make_inference(ex, &md, p, err)))
    return cpu_prims_free(p), -1;
  const float *gamma = m->params + op->param;
  float *stats = train ? m->stats + op->stats : m->state + op->state;
  cpu_arg args[] = {{DNNL_ARG_SRC, &md, x->data},           {DNNL_ARG_DST, &md, m->tensors[op->out].data},
                    {DNNL_ARG_SCALE, &cmd, gamma},          {DNNL_ARG_SHIFT, &cmd, gamma + c},
                    {DNNL_ARG_MEAN, &cmd, stats},           {DNNL_ARG_VARIANCE, &cmd, stats + c},
                    {DNNL_ARG_WORKSPACE, &p->ws_md, p->ws}};
  if (cpu_execute(ex, train ? p->fwd : p->infer, train ? 7 : 6, args, "batch norm forward", err)) return -1;
  if (train) update_running(m->state + op->state, stats, c, (size_t)x->shape.n * x->shape.h * x->shape.w);
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
  if (!p->fwd || (!p->bwd_data && make_backward(ex, &md, p, err)))
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
  return op->acc_in ? cpu_reorder(ex, &md, dx, &md, x->grad, 1, err) : 0;
}
