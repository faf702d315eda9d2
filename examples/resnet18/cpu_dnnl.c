/* The CPU backend's use of oneDNN: descriptors, primitives, their
 * execution, and the per-op cache of primitives (cpu.h). */
#include <dnnl_debug.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

static int dnnl_fail(rn_error *err, dnnl_status_t st, const char *what) {
  return rn_fail(err, "oneDNN %s: %s", what, dnnl_status2str(st));
}

void *cpu_aligned(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  return rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
}

dnnl_memory_desc_t cpu_md(int n, int c, int h, int w, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  dnnl_dims_t dims = {n, c, h, w};
  dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, tag);
  return md;
}

/* Memory objects over the arguments' data (no copy), the run, the wait. */
int cpu_execute(cpu_exec *ex, dnnl_primitive_t p, int nargs, const cpu_arg *args, const char *what,
                rn_error *err) {
  enum { MAX_ARGS = 12 };
  dnnl_exec_arg_t ea[MAX_ARGS] = {{0, NULL}};
  dnnl_status_t st = nargs <= MAX_ARGS ? dnnl_success : dnnl_invalid_arguments;
  int made = 0;
  for (; st == dnnl_success && made < nargs; made++) {
    ea[made].arg = args[made].arg;
    st = dnnl_memory_create(&ea[made].memory, args[made].md, ex->engine, (void *)args[made].data);
    if (st != dnnl_success) break;
  }
  if (st == dnnl_success) st = dnnl_primitive_execute(p, ex->stream, nargs, ea);
  if (st == dnnl_success) st = dnnl_stream_wait(ex->stream);
  for (int i = 0; i < made; i++) dnnl_memory_destroy(ea[i].memory);
  return st == dnnl_success ? 0 : dnnl_fail(err, st, what);
}

dnnl_primitive_desc_t cpu_pd(cpu_exec *ex, const void *op_desc, dnnl_primitive_desc_t hint, const char *what,
                             rn_error *err) {
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_primitive_desc_create(&pd, op_desc, NULL, ex->engine, hint);
  if (st != dnnl_success) return dnnl_fail(err, st, what), NULL;
  return pd;
}

dnnl_primitive_t cpu_primitive(dnnl_primitive_desc_t pd, int keep, const char *what, rn_error *err) {
  dnnl_primitive_t p = NULL;
  dnnl_status_t st = pd ? dnnl_primitive_create(&p, pd) : dnnl_invalid_arguments;
  if (pd && !keep) dnnl_primitive_desc_destroy(pd);
  if (st != dnnl_success) return dnnl_fail(err, st, what), NULL;
  return p;
}

/* The attributes of a reorder that adds to dst (a sum post-op), or NULL. */
static dnnl_primitive_attr_t adding(int add) {
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t ops = NULL;
  if (!add) return NULL;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  if (dnnl_post_ops_create(&ops) != dnnl_success || dnnl_post_ops_append_sum(ops, 1.0f) != dnnl_success ||
      dnnl_primitive_attr_set_post_ops(attr, ops) != dnnl_success)
    dnnl_primitive_attr_destroy(attr), attr = NULL;
  dnnl_post_ops_destroy(ops);
  return attr;
}

int cpu_reorder(cpu_exec *ex, const dnnl_memory_desc_t *src_md, const void *src, const dnnl_memory_desc_t *dst_md,
                void *dst, int add, rn_error *err) {
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = adding(add);
  dnnl_status_t st = add && !attr ? dnnl_out_of_memory
                                  : dnnl_reorder_primitive_desc_create(&pd, src_md, ex->engine, dst_md, ex->engine, attr);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return dnnl_fail(err, st, "reorder");
  dnnl_primitive_t p = cpu_primitive(pd, 0, "reorder", err);
  if (!p) return -1;
  cpu_arg args[] = {{DNNL_ARG_SRC, src_md, src}, {DNNL_ARG_DST, dst_md, dst}};
  int rc = cpu_execute(ex, p, 2, args, "reorder", err);
  dnnl_primitive_destroy(p);
  return rc;
}

void cpu_prims_free(cpu_prims *p) {
  dnnl_primitive_desc_destroy(p->fwd_pd);
  dnnl_primitive_t prims[] = {p->fwd, p->infer, p->bwd_data, p->bwd_weights, p->stats};
  for (size_t i = 0; i < sizeof prims / sizeof *prims; i++) dnnl_primitive_destroy(prims[i]);
  free(p->ws);
  memset(p, 0, sizeof *p);
}

void *cpu_buffer_get(cpu_exec *ex, cpu_buffer which, size_t bytes, rn_error *err) {
  if (bytes <= ex->buf_cap[which]) return ex->buf[which];
  free(ex->buf[which]);
  ex->buf[which] = cpu_aligned(bytes);
  ex->buf_cap[which] = ex->buf[which] ? bytes : 0;
  if (!ex->buf[which]) rn_fail(err, "out of memory for %zu bytes of a convolution's reordered data", bytes);
  return ex->buf[which];
}

static int same_shape(rn_shape a, rn_shape b) { return a.n == b.n && a.h == b.h && a.w == b.w && a.c == b.c; }

cpu_prims *cpu_prims_for(cpu_exec *ex, const rn_model *m, const rn_op *op) {
  cpu_prims *p = &ex->prims[op - m->ops];
  rn_shape in = m->tensors[op->in].shape, out = m->tensors[op->out].shape;
  if (same_shape(p->in, in) && same_shape(p->out, out)) return p;
  cpu_prims_free(p);
  p->in = in, p->out = out;
  return p;
}
