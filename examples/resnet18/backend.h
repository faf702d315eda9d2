/* The layer compute of one device. The core (model.c) owns the graph, the
 * shapes and the flat parameter arrays; a backend runs one op at a time on
 * the tensors the op names. Forward ops write op->out; backward ops read the
 * output's gradient and write (or, with op->acc_in, add to) the input's, and
 * write their parameters' gradients into m->grads at op->param. */
#ifndef RN_BACKEND_H
#define RN_BACKEND_H

#include "rn.h"

typedef int (*rn_op_fn)(rn_model *m, const rn_op *op, int train, rn_error *err);

typedef struct rn_backend {
  const char *name;
  /* Creates m->exec (workspaces, library context) for `threads` threads. */
  int (*init)(rn_model *m, int threads, rn_error *err);
  void (*fini)(rn_model *m);
  float *(*alloc)(size_t count);
  void (*release)(float *p);
  void (*to_device)(float *dst, const float *src, size_t count);
  void (*to_host)(float *dst, const float *src, size_t count);
  rn_op_fn forward[OP_DENSE + 1];
  rn_op_fn backward[OP_DENSE + 1];
} rn_backend;

extern const rn_backend rn_cpu_backend;

#endif
