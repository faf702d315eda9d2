/* The CPU backend's state, shared by its files: oneDNN's engine and stream
 * and, for each op of the graph, the oneDNN primitives made for the op's
 * current shapes (made again when a learned stride changes a shape).
 *
 * Activations stay NHWC (oneDNN's nhwc), the layout libdiffstride, the add
 * and the pooling ops read, so no reorder sits between two ops; the weights
 * are reordered from the core's (cout, k, k, cin) (oneDNN's ohwi) to the
 * blocked format each convolution primitive asks for. */
#ifndef RN_CPU_H
#define RN_CPU_H

#include <dnnl.h>

#include "backend.h"

/* One op's primitives. Convolutions: fwd, bwd_data (NULL where the input
 * needs no gradient), bwd_weights; the weights in the formats of the
 * forward (w_md) and of the backward data (wb_md), the weight gradient in
 * bwd_weights's (dw_md): where one is not the core's ohwi, the data goes
 * through the exec's buffers. src_md and dst_md are nhwc, or (blocked:
 * Winograd) the blocked formats the primitives chose, whose data also goes
 * through the exec's buffers. Batch norm + ReLU: fwd (training), infer
 * (running statistics), bwd_data (the backward), and the fused ReLU's
 * workspace; with --sync-bn, fwd and bwd_data take the global batch's
 * statistics as given, `stats` computes the rank's own and `rows` is the
 * global batch's count of values per channel. */
typedef struct cpu_prims {
  rn_shape in, out; /* the shapes they were made for (n = 0: none made) */
  dnnl_primitive_desc_t fwd_pd;
  dnnl_primitive_t fwd, infer, bwd_data, bwd_weights, stats;
  dnnl_memory_desc_t w_md, wb_md, dw_md, ws_md, src_md, dst_md;
  int blocked;
  void *ws;
  double rows;
} cpu_prims;

/* The exec's buffers, shared by every op (an op's data in them is used
 * only within its call), 64-byte aligned. */
typedef enum cpu_buffer { CPU_SRC, CPU_DST, CPU_WEIGHTS, CPU_DWEIGHTS, CPU_BUFFERS } cpu_buffer;

typedef struct cpu_exec {
  int threads;
  double library_start; /* rn_seconds() when the library call in progress began */
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  cpu_prims prims[RN_MAX_OPS]; /* by op index */
  void *buf[CPU_BUFFERS];
  size_t buf_cap[CPU_BUFFERS]; /* bytes */
} cpu_exec;

/* One argument of a primitive: its oneDNN index (DNNL_ARG_*), descriptor and
 * data. */
typedef struct cpu_arg {
  int arg;
  const dnnl_memory_desc_t *md;
  const void *data;
} cpu_arg;

/* bytes of memory on a 64-byte boundary (oneDNN's JIT kernels may use
 * aligned loads on their buffers); free() releases it. */
void *cpu_aligned(size_t bytes);
/* Runs p on args and waits for it; -1 with a message naming what. */
int cpu_execute(cpu_exec *ex, dnnl_primitive_t p, int nargs, const cpu_arg *args, const char *what,
                rn_error *err);
/* The primitive of pd (pd is destroyed unless keep); NULL with a message. */
dnnl_primitive_t cpu_primitive(dnnl_primitive_desc_t pd, int keep, const char *what, rn_error *err);
/* A primitive of pd's kind from an op descriptor, or NULL with a message. */
dnnl_primitive_desc_t cpu_pd(cpu_exec *ex, const void *op_desc, dnnl_primitive_desc_t hint, const char *what,
                             rn_error *err);
/* The exec's buffer `which`, at least bytes; NULL with a message. */
void *cpu_buffer_get(cpu_exec *ex, cpu_buffer which, size_t bytes, rn_error *err);
/* Reorders src (src_md) into dst (dst_md), or adds it there (add). */
int cpu_reorder(cpu_exec *ex, const dnnl_memory_desc_t *src_md, const void *src, const dnnl_memory_desc_t *dst_md,
                void *dst, int add, rn_error *err);
/* An (n, c, h, w) descriptor in the format tag (nhwc for activations). */
dnnl_memory_desc_t cpu_md(int n, int c, int h, int w, dnnl_format_tag_t tag);
/* The op's primitives for its tensors' current shapes: those made before,
 * or none (all freed) when a shape changed. Each user makes what is NULL,
 * and frees them all (cpu_prims_free) when making one fails. */
cpu_prims *cpu_prims_for(cpu_exec *ex, const rn_model *m, const rn_op *op);
void cpu_prims_free(cpu_prims *p);
int cpu_conv_forward(rn_model *m, const rn_op *op, int train, rn_error *err);
int cpu_conv_backward(rn_model *m, const rn_op *op, int train, rn_error *err);
int cpu_bnrelu_forward(rn_model *m, const rn_op *op, int train, rn_error *err);
int cpu_bnrelu_backward(rn_model *m, const rn_op *op, int train, rn_error *err);

#endif
