/* DiffStride and spectral pooling in the network, on any device: the
 * backend's libdiffstride context (m->ds) takes tensors where the backend
 * keeps them, NHWC. A training forward of DiffStride keeps the op's
 * reserve (the library's training calls), which its backward reads instead
 * of transforming x again. The library calls alone are timed
 * (library_mark). */
#include "backend.h"

static int library_error(rn_error *err, const rn_op *op, const char *what) {
  return rn_fail(err, "pooling layer %d %s: %s", op->pool, what, ds_last_error());
}

/* The op's reserve grown to the size the library asks for this batch
 * (*bytes); NULL with a message. */
static void *reserve(rn_model *m, const rn_op *op, const rn_shape *s, size_t *bytes, rn_error *err) {
  int i = (int)(op - m->ops);
  if (ds_diffstride_reserve_size(&m->desc, s->n, s->c, s->h, s->w, m->pools[op->pool].stride, bytes) != DS_OK)
    return library_error(err, op, "reserve size"), NULL;
  void *r = rn_model_grow(m, &m->reserve[i], &m->reserve_cap[i], (*bytes + sizeof(float) - 1) / sizeof(float));
  if (!r) rn_fail(err, "pooling layer %d: out of memory for a %zu-byte reserve", op->pool, *bytes);
  return r;
}

/* x (n, h, w, c) -> y (n, oh, ow, c). */
int rn_pool_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  const rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  const rn_pool *p = &m->pools[op->pool];
  rn_shape s = x->shape;
  int i = (int)(op - m->ops), keep = train && m->cfg.mode == RN_DIFFSTRIDE;
  size_t bytes = 0;
  void *r = keep ? reserve(m, op, &s, &bytes, err) : NULL;
  if (keep && !r) return -1;
  m->reserve_filled[i] = 0;
  m->be->library_mark(m, 0);
  ds_status st =
      keep ? ds_diffstride_forward_training(m->ds, &m->desc, s.n, s.c, s.h, s.w, p->stride, x->data, y->shape.h,
                                            y->shape.w, y->data, r, bytes)
      : m->cfg.mode == RN_DIFFSTRIDE
          ? ds_diffstride_forward(m->ds, &m->desc, s.n, s.c, s.h, s.w, p->stride, x->data, y->shape.h, y->shape.w,
                                  y->data)
          : ds_spectral_pool_forward(m->ds, DS_LAYOUT_NHWC, s.n, s.c, s.h, s.w, p->stride, x->data, y->shape.h,
                                     y->shape.w, y->data);
  m->be->library_mark(m, 1);
  m->reserve_filled[i] = keep && st == DS_OK;
  return st == DS_OK ? 0 : library_error(err, op, "forward");
}

/* The library's backward: DiffStride from the reserve its training forward
 * filled, or spectral pooling (neither reads x, whose buffer may hold
 * another tensor by now). */
static ds_status pool_backward_call(rn_model *m, const rn_op *op, const rn_shape *s, float *dx, float ds[2]) {
  const rn_tensor *y = &m->tensors[op->out];
  const rn_pool *p = &m->pools[op->pool];
  int i = (int)(op - m->ops);
  if (m->cfg.mode != RN_DIFFSTRIDE)
    return ds_spectral_pool_backward(m->ds, DS_LAYOUT_NHWC, s->n, s->c, s->h, s->w, p->stride, y->shape.h,
                                     y->shape.w, y->grad, dx);
  return ds_diffstride_backward_reserved(m->ds, &m->desc, s->n, s->c, s->h, s->w, p->stride, m->reserve[i],
                                         m->reserve_cap[i] * sizeof(float), y->shape.h, y->shape.w, y->grad, dx, ds);
}

/* dx by the library; the DiffStride stride gradient is added to the
 * layer's (the main branch and the shortcut both use it). */
int rn_pool_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  rn_tensor *x = &m->tensors[op->in];
  rn_pool *p = &m->pools[op->pool];
  rn_shape s = x->shape;
  if (m->cfg.mode == RN_DIFFSTRIDE && !m->reserve_filled[op - m->ops])
    return rn_fail(err, "pooling layer %d backward: its last forward was not a training one", op->pool);
  float *dx = op->acc_in ? rn_model_scratch(m, rn_numel(&s)) : x->grad, ds[2] = {0.0f, 0.0f};
  if (!dx) return rn_fail(err, "out of memory for a pooling layer's gradient");
  m->be->library_mark(m, 0);
  ds_status st = pool_backward_call(m, op, &s, dx, ds);
  m->be->library_mark(m, 1);
  if (st != DS_OK) return library_error(err, op, "backward");
  p->grad[0] += ds[0];
  p->grad[1] += ds[1];
  if (op->acc_in) m->be->accumulate(m, x->grad, dx, rn_numel(&s));
  return 0;
}
