/* DiffStride and spectral pooling in the network, on any device: the
 * backend's libdiffstride context (m->ds) takes tensors where the backend
 * keeps them, NHWC. The library calls alone are timed (library_mark). */
#include "backend.h"

static int library_error(rn_error *err, const rn_op *op, const char *what) {
  return rn_fail(err, "pooling layer %d %s: %s", op->pool, what, ds_last_error());
}

static size_t numel(const rn_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }

/* x (n, h, w, c) -> y (n, oh, ow, c). */
int rn_pool_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  const rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  const rn_pool *p = &m->pools[op->pool];
  rn_shape s = x->shape;
  m->be->library_mark(m, 0);
  ds_status st =
      m->cfg.mode == RN_DIFFSTRIDE
          ? ds_diffstride_forward(m->ds, &m->desc, s.n, s.c, s.h, s.w, p->stride, x->data, y->shape.h,
                                  y->shape.w, y->data)
          : ds_spectral_pool_forward(m->ds, DS_LAYOUT_NHWC, s.n, s.c, s.h, s.w, p->stride, x->data,
                                     y->shape.h, y->shape.w, y->data);
  m->be->library_mark(m, 1);
  return st == DS_OK ? 0 : library_error(err, op, "forward");
}

/* The buffer dx goes to when it is added to x's gradient, not written. */
static float *scratch(rn_model *m, size_t count) {
  if (count <= m->scratch_cap) return m->scratch;
  m->be->release(m->scratch);
  m->scratch = m->be->alloc(count);
  m->scratch_cap = m->scratch ? count : 0;
  return m->scratch;
}

/* dx by the library; the DiffStride stride gradient is added to the
 * layer's (the main branch and the shortcut both use it). */
int rn_pool_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  rn_tensor *x = &m->tensors[op->in];
  const rn_tensor *y = &m->tensors[op->out];
  rn_pool *p = &m->pools[op->pool];
  rn_shape s = x->shape;
  float *dx = op->acc_in ? scratch(m, numel(&s)) : x->grad, ds[2] = {0.0f, 0.0f};
  if (!dx) return rn_fail(err, "out of memory for a pooling layer's gradient");
  m->be->library_mark(m, 0);
  ds_status st =
      m->cfg.mode == RN_DIFFSTRIDE
          ? ds_diffstride_backward(m->ds, &m->desc, s.n, s.c, s.h, s.w, p->stride, x->data, y->shape.h,
                                   y->shape.w, y->grad, dx, ds)
          : ds_spectral_pool_backward(m->ds, DS_LAYOUT_NHWC, s.n, s.c, s.h, s.w, p->stride, y->shape.h,
                                      y->shape.w, y->grad, dx);
  m->be->library_mark(m, 1);
  if (st != DS_OK) return library_error(err, op, "backward");
  p->grad[0] += ds[0];
  p->grad[1] += ds[1];
  if (op->acc_in) m->be->accumulate(m, x->grad, dx, numel(&s));
  return 0;
}
