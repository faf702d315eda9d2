/* Convolutions on the CPU by oneDNN: x (n, h, w, cin) -> y (n, oh, ow,
 * cout), nhwc, weights (cout, k, k, cin) in the core (ohwi), zero padding
 * k/2, no bias (batch norm follows every convolution).
 *
 * 3x3 stride-1 convolutions of at least 32 channels (in and out, whole
 * blocks of 16) use Winograd (F(4x4, 3x3)) where oneDNN has it for the
 * CPU, on copies of x and y in the blocked format it requires; the others
 * (and every one on CPUs without it) are direct on nhwc. Measured on an
 * AVX-512 Xeon, batch 128, forward + both gradients, 2 threads (make
 * bench-conv): 64 channels at 20x20 24 ms against 46 ms direct, 32 at 22x22
 * 13 against 15, 16 at 24x24 5.7 against 5.5 (before Winograd's reorders),
 * 8 at 28x28 7.0 against 4.5 (docs/benchmarks.md). */
#include <stdlib.h>

#include "cpu.h"

/* The descriptors of one convolution; the weights as the core keeps them
 * (plain) and in the format a primitive may choose (any). */
typedef struct conv_desc {
  dnnl_memory_desc_t src, dst, w_any, w_plain;
  dnnl_dims_t strides, pad_l, pad_r;
} conv_desc;

/* pad_r is what reaches the last output pixel, at least 0: oneDNN sizes
 * the output as (i - k + pad_l + pad_r) / stride + 1, rounding down. */
static conv_desc describe(const rn_model *m, const rn_op *op) {
  rn_shape x = m->tensors[op->in].shape, y = m->tensors[op->out].shape;
  conv_desc d;
  d.src = cpu_md(x.n, x.c, x.h, x.w, dnnl_nhwc);
  d.dst = cpu_md(y.n, y.c, y.h, y.w, dnnl_nhwc);
  d.w_any = cpu_md(op->cout, x.c, op->k, op->k, dnnl_format_tag_any);
  d.w_plain = cpu_md(op->cout, x.c, op->k, op->k, dnnl_ohwi);
  int in[2] = {x.h, x.w}, out[2] = {y.h, y.w};
  for (int i = 0; i < 2; i++) {
    int r = (out[i] - 1) * op->stride + op->k - in[i] - op->k / 2;
    d.strides[i] = op->stride, d.pad_l[i] = op->k / 2, d.pad_r[i] = r > 0 ? r : 0;
  }
  return d;
}

static dnnl_alg_kind_t algorithm(const cpu_prims *p) {
  return p->blocked ? dnnl_convolution_winograd : dnnl_convolution_direct;
}

/* The forward primitive descriptor: Winograd on blocked data where oneDNN
 * offers it for a 3x3 stride-1 convolution, else direct on nhwc. */
static dnnl_primitive_desc_t forward_pd(cpu_exec *ex, const rn_op *op, const conv_desc *d, cpu_prims *p,
                                        rn_error *err) {
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  const int cin = (int)d->src.dims[1], cout = (int)d->dst.dims[1];
  if (op->k == 3 && op->stride == 1 && cin >= 32 && cout >= 32 && cin % 16 == 0 && cout % 16 == 0) {
    dnnl_memory_desc_t src = d->src, dst = d->dst;
    src.format_kind = dst.format_kind = dnnl_format_kind_any;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_winograd, &src, &d->w_any,
                                           NULL, &dst, d->strides, d->pad_l, d->pad_r) == dnnl_success &&
        dnnl_primitive_desc_create(&pd, &cd, NULL, ex->engine, NULL) == dnnl_success) {
      p->blocked = 1;
      p->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
      p->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
      return pd;
    }
  }
  p->blocked = 0, p->src_md = d->src, p->dst_md = d->dst;
  dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &d->src, &d->w_any, NULL,
                                     &d->dst, d->strides, d->pad_l, d->pad_r);
  return cpu_pd(ex, &cd, NULL, "convolution forward", err);
}

static int make_forward(cpu_exec *ex, const rn_op *op, const conv_desc *d, cpu_prims *p, rn_error *err) {
  if (!(p->fwd_pd = forward_pd(ex, op, d, p, err))) return -1;
  p->w_md = *dnnl_primitive_desc_query_md(p->fwd_pd, dnnl_query_weights_md, 0);
  return (p->fwd = cpu_primitive(p->fwd_pd, 1, "convolution forward", err)) ? 0 : -1;
}

/* The weight gradient's primitive and, where the input needs a gradient,
 * the input gradient's, with the forward's algorithm and formats. */
static int make_backward(cpu_exec *ex, const conv_desc *d, int data, cpu_prims *p, rn_error *err) {
  dnnl_convolution_desc_t cd;
  dnnl_convolution_backward_weights_desc_init(&cd, algorithm(p), &p->src_md, &d->w_any, NULL, &p->dst_md,
                                              d->strides, d->pad_l, d->pad_r);
  dnnl_primitive_desc_t pd = cpu_pd(ex, &cd, p->fwd_pd, "convolution backward weights", err);
  if (!pd) return -1;
  p->dw_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
  if (!(p->bwd_weights = cpu_primitive(pd, 0, "convolution backward weights", err))) return -1;
  if (!data) return 0;
  dnnl_convolution_backward_data_desc_init(&cd, algorithm(p), &p->src_md, &d->w_any, &p->dst_md, d->strides,
                                           d->pad_l, d->pad_r);
  if (!(pd = cpu_pd(ex, &cd, p->fwd_pd, "convolution backward data", err))) return -1;
  p->wb_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  return (p->bwd_data = cpu_primitive(pd, 0, "convolution backward data", err)) ? 0 : -1;
}

/* Data in the core's plain format (plain) as a primitive reads it (md):
 * itself, or its copy in the exec's buffer `which`. */
static const void *staged(cpu_exec *ex, const dnnl_memory_desc_t *plain, const void *data,
                          const dnnl_memory_desc_t *md, cpu_buffer which, rn_error *err) {
  if (dnnl_memory_desc_equal(plain, md)) return data;
  void *b = cpu_buffer_get(ex, which, dnnl_memory_desc_get_size(md), err);
  return b && !cpu_reorder(ex, plain, data, md, b, 0, err) ? b : NULL;
}

/* Where a primitive writes what ends in the plain array out (written, or
 * added to with add): out itself, or the exec's buffer `which`, then
 * reordered into out by unstage. */
static void *stage_out(cpu_exec *ex, const dnnl_memory_desc_t *plain, void *out, const dnnl_memory_desc_t *md,
                       int add, cpu_buffer which, rn_error *err) {
  if (!add && dnnl_memory_desc_equal(plain, md)) return out;
  return cpu_buffer_get(ex, which, dnnl_memory_desc_get_size(md), err);
}

static int unstage(cpu_exec *ex, const dnnl_memory_desc_t *plain, void *out, const dnnl_memory_desc_t *md,
                   const void *staged_out, int add, rn_error *err) {
  return staged_out == out ? 0 : cpu_reorder(ex, md, staged_out, plain, out, add, err);
}

int cpu_conv_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  cpu_prims *p = cpu_prims_for(ex, m, op);
  conv_desc d = describe(m, op);
  if (!p->fwd && make_forward(ex, op, &d, p, err)) return cpu_prims_free(p), -1;
  float *y = m->tensors[op->out].data;
  const void *x = staged(ex, &d.src, m->tensors[op->in].data, &p->src_md, CPU_SRC, err);
  const void *w = x ? staged(ex, &d.w_plain, m->params + op->param, &p->w_md, CPU_WEIGHTS, err) : NULL;
  void *out = w ? stage_out(ex, &d.dst, y, &p->dst_md, 0, CPU_DST, err) : NULL;
  if (!out) return -1;
  cpu_arg args[] = {{DNNL_ARG_SRC, &p->src_md, x}, {DNNL_ARG_WEIGHTS, &p->w_md, w}, {DNNL_ARG_DST, &p->dst_md, out}};
  if (cpu_execute(ex, p->fwd, 3, args, "convolution forward", err)) return -1;
  return unstage(ex, &d.dst, y, &p->dst_md, out, 0, err);
}

/* dx (written or added, as op->acc_in says) by the backward-data primitive
 * from dy (as it reads it), through the source buffer when blocked or
 * added (a reorder adds it). */
static int input_gradient(rn_model *m, const rn_op *op, const conv_desc *d, cpu_prims *p, const void *dy,
                          rn_error *err) {
  cpu_exec *ex = m->exec;
  float *dx = m->tensors[op->in].grad;
  void *out = stage_out(ex, &d->src, dx, &p->src_md, op->acc_in, CPU_SRC, err);
  const void *w = out ? staged(ex, &d->w_plain, m->params + op->param, &p->wb_md, CPU_WEIGHTS, err) : NULL;
  if (!w) return -1;
  cpu_arg args[] = {{DNNL_ARG_DIFF_DST, &p->dst_md, dy}, {DNNL_ARG_WEIGHTS, &p->wb_md, w},
                    {DNNL_ARG_DIFF_SRC, &p->src_md, out}};
  if (cpu_execute(ex, p->bwd_data, 3, args, "convolution backward data", err)) return -1;
  return unstage(ex, &d->src, dx, &p->src_md, out, op->acc_in, err);
}

/* dW (into m->grads at op->param), then dx where the input needs it. */
int cpu_conv_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cpu_exec *ex = m->exec;
  rn_tensor *x = &m->tensors[op->in];
  cpu_prims *p = cpu_prims_for(ex, m, op);
  conv_desc d = describe(m, op);
  if ((!p->fwd && make_forward(ex, op, &d, p, err)) ||
      (!p->bwd_weights && make_backward(ex, &d, x->needs_grad, p, err)))
    return cpu_prims_free(p), -1;
  float *dw = m->grads + op->param;
  const void *xs = staged(ex, &d.src, x->data, &p->src_md, CPU_SRC, err);
  const void *dy = xs ? staged(ex, &d.dst, m->tensors[op->out].grad, &p->dst_md, CPU_DST, err) : NULL;
  void *dws = dy ? stage_out(ex, &d.w_plain, dw, &p->dw_md, 0, CPU_DWEIGHTS, err) : NULL;
  if (!dws) return -1;
  cpu_arg args[] = {{DNNL_ARG_SRC, &p->src_md, xs}, {DNNL_ARG_DIFF_DST, &p->dst_md, dy},
                    {DNNL_ARG_DIFF_WEIGHTS, &p->dw_md, dws}};
  if (cpu_execute(ex, p->bwd_weights, 3, args, "convolution backward weights", err) ||
      unstage(ex, &d.w_plain, dw, &p->dw_md, dws, 0, err))
    return -1;
  return x->needs_grad ? input_gradient(m, op, &d, p, dy, err) : 0;
}
