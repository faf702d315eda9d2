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
  /* Creates m->exec (workspaces, handles) and m->ds (a libdiffstride
   * context of the device) for `threads` host threads; fini frees both. */
  int (*init)(rn_model *m, int threads, rn_error *err);
  void (*fini)(rn_model *m);
  float *(*alloc)(size_t count);
  void (*release)(float *p);
  /* Copies between the host and the backend's memory; -1 on a device error. */
  int (*to_device)(float *dst, const float *src, size_t count);
  int (*to_host)(float *dst, const float *src, size_t count);
  /* Renders the planned batch into m->tensors[0] (shaped for p->n already);
   * host: a host array of the batch's size it may use on the way. */
  int (*load_batch)(rn_model *m, const rn_data *d, const rn_dataset *s, const rn_batch_plan *p, float *host,
                    rn_error *err);
  /* One SGD step over count device floats (rn_sgd_element each). */
  void (*sgd)(rn_model *m, float *p, const float *g, float *v, size_t count, float lr, float momentum,
              float wd);
  /* dst += src over count device floats. */
  void (*accumulate)(rn_model *m, float *dst, const float *src, size_t count);
  /* Returns when the work queued so far is done (for timing). */
  void (*sync)(rn_model *m);
  /* Around each libdiffstride call (end 0, then 1): its time goes into
   * m->library_seconds, on a device that queues work by the device's own
   * clock and once collect has run, with no wait here. */
  void (*library_mark)(rn_model *m, int end);
  void (*library_collect)(rn_model *m);
  /* The precision of convolutions and GEMMs (RN_FP32 until set). */
  int (*set_precision)(rn_model *m, rn_precision p, rn_error *err);
  /* Device memory the process holds (MB), or -1 where the RSS says it. */
  double (*device_mb)(rn_model *m);
  /* Data parallelism (dist.h): comm_init sets up the device's
   * communicator once m->dist is attached; allreduce sums count floats of
   * the backend's memory over the ranks, in place, after the work queued so
   * far. NULL on a device whose memory is the host's: the core's MPI sums
   * it. */
  int (*comm_init)(rn_model *m, rn_error *err);
  int (*allreduce)(rn_model *m, float *buf, size_t count, rn_error *err);
  rn_op_fn forward[OP_DENSE + 1];
  rn_op_fn backward[OP_DENSE + 1];
  /* Whose data each kind of op's backward reads (RN_READS_IN, _OUT), so
   * that the core keeps it until then; data no backward reads is
   * overwritten once the forward is past its last reader. OP_POOL's is the
   * core's (pool.c): none. */
  unsigned char backward_reads[OP_DENSE + 1];
} rn_backend;

enum { RN_READS_IN = 1, RN_READS_OUT = 2 };

extern const rn_backend rn_cpu_backend;
#ifdef RN_WITH_CUDA
extern const rn_backend rn_cuda_backend;
#endif

/* DiffStride and spectral pooling (pool.c): the same on every device, through
 * m->ds; a backend lists them in its tables. Their backward reads no data:
 * DiffStride's the reserve of its training forward (an error without one),
 * spectral pooling's only dy. */
int rn_pool_forward(rn_model *m, const rn_op *op, int train, rn_error *err);
int rn_pool_backward(rn_model *m, const rn_op *op, int train, rn_error *err);

/* *buf (*cap floats on the backend's device) grown to at least count
 * floats, its contents dropped; NULL when out of memory. */
float *rn_model_grow(rn_model *m, float **buf, size_t *cap, size_t count);
/* m->scratch grown to count floats (the buffer an op's input gradient goes
 * to when it is added, not written); NULL when out of memory. */
float *rn_model_scratch(rn_model *m, size_t count);

#endif
