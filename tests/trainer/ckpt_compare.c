/* ckpt_compare A B TOL: exits 0 when the trainer checkpoints A and B hold
 * the same run state: the same config, epoch, step and RNG state, and
 * parameters, batch norm statistics and strides that agree within TOL
 * (|a - b| <= TOL * (1 + |a|) each), momenta within 10 TOL (they are sums
 * of gradients, whose small entries carry the float32 noise of the order
 * of summation: one process on 1 or 2 threads differs as much); else prints
 * what differs and exits 1. For mpi_test.sh: K ranks against one process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static int load(rn_trainer *t, const char *path, rn_error *err) {
  rn_config cfg;
  return rn_checkpoint_config(path, &cfg, err) || rn_trainer_init(t, &cfg, &rn_cpu_backend, 1, 1, 1, err) ||
                 rn_checkpoint_load(t, path, err)
             ? -1
             : 0;
}

/* The largest |a - b| / (1 + |a|) over count floats; its index in *at. */
static double worst(const float *a, const float *b, size_t count, size_t *at) {
  double w = 0.0;
  for (size_t i = 0; i < count; i++) {
    double e = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)a[i]));
    if (!(e <= w)) w = e, *at = i; /* a NaN is the worst */
  }
  return w;
}

static int compare(const rn_trainer *a, const rn_trainer *b, double tol) {
  const rn_model *ma = &a->model, *mb = &b->model;
  if (memcmp(&ma->cfg, &mb->cfg, sizeof ma->cfg) || a->epoch != b->epoch || a->step != b->step ||
      memcmp(&a->rng, &b->rng, sizeof a->rng))
    return printf("config, epoch (%d, %d), step (%ld, %ld) or RNG state differ\n", a->epoch, b->epoch, a->step,
                  b->step), 1;
  struct { const char *name; const float *x, *y; size_t count; double tol; } fields[] = {
      {"parameter", ma->params, mb->params, ma->nparams, tol},
      {"momentum", ma->mom, mb->mom, ma->nparams, 10 * tol},
      {"batch norm statistic", ma->state, mb->state, ma->nstate, tol}};
  int bad = 0;
  for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
    size_t at = 0;
    double w = worst(fields[f].x, fields[f].y, fields[f].count, &at);
    printf("%-21s max relative difference %.3g (%zu values)\n", fields[f].name, w, fields[f].count);
    if (!(w <= fields[f].tol)) bad = printf("  %s %zu: %.9g against %.9g\n", fields[f].name, at, (double)fields[f].x[at],
                                  (double)fields[f].y[at]);
  }
  for (int p = 0; p < ma->npools; p++) {
    size_t at = 0;
    double w = worst(ma->pools[p].stride, mb->pools[p].stride, 2, &at);
    if (!(w <= tol)) bad = printf("stride %d: %.9g against %.9g\n", p, (double)ma->pools[p].stride[at],
                                  (double)mb->pools[p].stride[at]);
  }
  return bad ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 4) return fprintf(stderr, "usage: ckpt_compare A B TOL\n"), 2;
  rn_trainer a, b;
  rn_error err = {{0}};
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
  int rc = load(&a, argv[1], &err) || load(&b, argv[2], &err) ? 2 : compare(&a, &b, atof(argv[3]));
  if (rc == 2) fprintf(stderr, "ckpt_compare: %s\n", err.msg);
  rn_trainer_free(&a);
  rn_trainer_free(&b);
  return rc;
}
