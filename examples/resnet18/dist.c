/* Data parallelism over MPI (dist.h). Every function works in a job of one
 * without MPI; with RN_WITH_MPI the collectives go over MPI_COMM_WORLD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "backend.h"
#include "dist.h"

#ifdef RN_WITH_MPI
#include <mpi.h>

/* -1 with "MPI_xxx failed: reason" when rc is not MPI_SUCCESS. */
static int mpi_check(int rc, const char *call, rn_error *err) {
  if (rc == MPI_SUCCESS) return 0;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return rn_fail(err, "%s failed: %.*s", call, len, text);
}

/* mpirun (Open MPI, MPICH, PMIx launchers) says so in the environment; a
 * process started alone stays out of MPI. */
static int launched_by_mpirun(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}
#endif

int rn_dist_init(rn_dist *d, int *argc, char ***argv, rn_error *err) {
  memset(d, 0, sizeof *d);
  d->size = 1;
#ifdef RN_WITH_MPI
  if (!launched_by_mpirun()) return 0;
  int provided;
  /* MPI is called from the main thread only (OpenMP threads compute) */
  if (mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread", err)) return -1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->size);
#else
  (void)argc, (void)argv, (void)err;
#endif
  return 0;
}

void rn_dist_finalize(rn_dist *d) {
  free(d->requests);
  d->requests = NULL;
#ifdef RN_WITH_MPI
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (up && !down) MPI_Finalize();
#endif
}

void rn_dist_abort(const rn_dist *d, int code) {
#ifdef RN_WITH_MPI
  if (d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
  (void)d, (void)code;
#endif
}

int rn_dist_local_rank(void) {
#ifdef RN_WITH_MPI
  int up = 0, rank = 0;
  MPI_Initialized(&up);
  if (!up) return 0;
  MPI_Comm local;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) != MPI_SUCCESS) return 0;
  MPI_Comm_rank(local, &rank);
  MPI_Comm_free(&local);
  return rank;
#else
  return 0;
#endif
}

void rn_dist_shard(const rn_dist *d, int n, int *first, int *count) {
  long lo = (long)n * d->rank / d->size, hi = (long)n * (d->rank + 1) / d->size;
  *first = (int)lo;
  *count = (int)(hi - lo);
}

int rn_dist_sum(const rn_dist *d, double *v, int count, rn_error *err) {
#ifdef RN_WITH_MPI
  if (d->size > 1)
    return mpi_check(MPI_Allreduce(MPI_IN_PLACE, v, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", err);
#else
  (void)d, (void)v, (void)count, (void)err;
#endif
  return 0;
}

int rn_dist_gather(const rn_dist *d, const double *mine, int count, double *all, rn_error *err) {
#ifdef RN_WITH_MPI
  if (d->size > 1)
    return mpi_check(MPI_Allgather(mine, count, MPI_DOUBLE, all, count, MPI_DOUBLE, MPI_COMM_WORLD),
                     "MPI_Allgather", err);
#else
  (void)d, (void)err;
#endif
  memcpy(all, mine, (size_t)count * sizeof *all);
  return 0;
}

int rn_dist_broadcast(const rn_dist *d, void *buf, size_t bytes, rn_error *err) {
#ifdef RN_WITH_MPI
  if (d->size > 1) return mpi_check(MPI_Bcast(buf, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast", err);
#else
  (void)d, (void)buf, (void)bytes, (void)err;
#endif
  return 0;
}

/* ------------------------------------------------------------ gradients */

/* Buckets in backward order: from the end of m->grads down, a bucket closes
 * at the first op (going back) that brings it to bucket_floats, and at op 0. */
static void plan_buckets(rn_dist *d, const rn_model *m, size_t bucket_floats) {
  size_t hi = m->nparams;
  d->nbuckets = 0;
  for (int i = m->nops - 1; i >= 0; i--) {
    const rn_op *op = &m->ops[i];
    int has_params = op->kind == OP_CONV || op->kind == OP_BNRELU || op->kind == OP_DENSE;
    if (!has_params || (hi - op->param < bucket_floats && op->param > 0)) continue;
    d->bucket[d->nbuckets++] = (rn_bucket){op->param, hi, i};
    hi = op->param;
  }
}

int rn_dist_attach(rn_dist *d, rn_model *m, size_t bucket_floats, rn_error *err) {
  m->dist = d;
  plan_buckets(d, m, bucket_floats ? bucket_floats : 1);
#ifdef RN_WITH_MPI
  free(d->requests);
  d->requests = rn_alloc((size_t)d->nbuckets, sizeof(MPI_Request), "the gradient buckets' requests", err);
  if (!d->requests) return -1;
#endif
  return d->size > 1 && m->be->comm_init ? m->be->comm_init(m, err) : 0;
}

/* Starts bucket b: the backend's collective on its device, else MPI's
 * non-blocking sum over host memory. */
static int start_bucket(rn_model *m, int b, rn_error *err) {
  rn_dist *d = m->dist;
  const rn_bucket *k = &d->bucket[b];
  float *g = m->grads + k->lo;
  if (m->be->allreduce) return m->be->allreduce(m, g, k->hi - k->lo, err);
#ifdef RN_WITH_MPI
  MPI_Request *r = (MPI_Request *)d->requests + b;
  return mpi_check(MPI_Iallreduce(MPI_IN_PLACE, g, (int)(k->hi - k->lo), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r),
                   "MPI_Iallreduce", err);
#else
  (void)err;
  return 0;
#endif
}

int rn_dist_grads_ready(rn_model *m, int op, rn_error *err) {
  rn_dist *d = m->dist;
  if (!d || d->size == 1) return 0;
  while (d->started < d->nbuckets && d->bucket[d->started].op >= op) {
    if (start_bucket(m, d->started, err)) return -1;
    d->started++;
  }
#ifdef RN_WITH_MPI
  int done; /* MPI moves a non-blocking collective on only inside its calls */
  if (!m->be->allreduce && d->started)
    return mpi_check(MPI_Testall(d->started, d->requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall", err);
#endif
  return 0;
}

int rn_dist_grads_finish(rn_model *m, double *extra, int nextra, rn_error *err) {
  rn_dist *d = m->dist;
  if (!d || d->size == 1) return 0;
  double t0 = rn_seconds(), v[2 * RN_MAX_POOLS + 8];
  if (rn_dist_grads_ready(m, 0, err)) return -1;
  d->started = 0;
#ifdef RN_WITH_MPI
  if (!m->be->allreduce &&
      mpi_check(MPI_Waitall(d->nbuckets, d->requests, MPI_STATUSES_IGNORE), "MPI_Waitall", err))
    return -1;
#endif
  int count = 0;
  for (int p = 0; p < m->npools; p++) v[count++] = m->pools[p].grad[0], v[count++] = m->pools[p].grad[1];
  for (int i = 0; i < nextra; i++) v[count++] = extra[i];
  if (rn_dist_sum(d, v, count, err)) return -1;
  for (int p = 0; p < m->npools; p++) m->pools[p].grad[0] = (float)v[2 * p], m->pools[p].grad[1] = (float)v[2 * p + 1];
  for (int i = 0; i < nextra; i++) extra[i] = v[2 * m->npools + i];
  d->comm_seconds += rn_seconds() - t0;
  return 0;
}

int rn_dist_time_sum(rn_model *m, int reps, double *seconds, rn_error *err) {
  double total = 0.0, comm = m->dist->comm_seconds;
  for (int i = 0; i < reps; i++) {
#ifdef RN_WITH_MPI
    if (mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", err)) return -1;
#endif
    double t0 = rn_seconds();
    if (rn_dist_grads_finish(m, NULL, 0, err)) return -1;
    m->be->sync(m);
    total += rn_seconds() - t0;
  }
  m->dist->comm_seconds = comm;
  *seconds = total / reps;
  return 0;
}

/* ------------------------------------------------- state and checksums */

int rn_dist_average_state(rn_model *m, rn_error *err) {
  const rn_dist *d = m->dist;
  if (!d || d->size == 1 || d->sync_bn) return 0;
  float *f = rn_alloc(m->nstate, sizeof *f, "the batch norm statistics", err);
  double *v = f ? rn_alloc(m->nstate, sizeof *v, "the batch norm statistics", err) : NULL;
  int rc = v ? 0 : -1;
  if (v && m->be->to_host(f, m->state, m->nstate))
    rc = rn_fail(err, "copying the batch norm statistics from the %s device failed", m->be->name);
  for (size_t i = 0; !rc && i < m->nstate; i++) v[i] = f[i];
  if (!rc && !(rc = rn_dist_sum(d, v, (int)m->nstate, err))) {
    for (size_t i = 0; i < m->nstate; i++) f[i] = (float)(v[i] / d->size);
    if (m->be->to_device(m->state, f, m->nstate))
      rc = rn_fail(err, "copying the averaged batch norm statistics to the %s device failed", m->be->name);
  }
  free(f);
  free(v);
  return rc;
}

int rn_dist_compare(const uint32_t *sums, int size, long step, rn_error *err) {
  char ranks[256] = "";
  int differ = 0;
  for (int r = 1; r < size; r++) {
    if (sums[r] == sums[0]) continue;
    size_t used = strlen(ranks);
    if (used + 16 < sizeof ranks) snprintf(ranks + used, sizeof ranks - used, "%s%d", differ ? ", " : "", r);
    differ++;
  }
  if (!differ) return 0;
  return rn_fail(err, "the ranks diverged at step %ld: the parameters of rank%s %s differ from rank 0's "
                 "(checksum %08x): a rank computed a different update", step, differ > 1 ? "s" : "", ranks, sums[0]);
}

/* CRC-32 of count device floats, through a host copy. */
static int device_crc(rn_model *m, const float *x, size_t count, uLong *crc) {
  float *h = malloc(count * sizeof *h + 1);
  int rc = !h || m->be->to_host(h, x, count) ? -1 : 0;
  for (size_t done = 0; !rc && done < count;) {
    size_t part = count - done < (1u << 28) ? count - done : (1u << 28);
    *crc = crc32(*crc, (const Bytef *)(h + done), (uInt)(part * sizeof *h));
    done += part;
  }
  free(h);
  return rc;
}

int rn_dist_check(rn_model *m, long step, rn_error *err) {
  const rn_dist *d = m->dist;
  if (!d || d->size == 1) return 0;
  uLong crc = crc32(0, NULL, 0);
  if (device_crc(m, m->params, m->nparams, &crc) || device_crc(m, m->mom, m->nparams, &crc))
    return rn_fail(err, "the parameter checksum: out of memory or a device copy failed");
  for (int p = 0; p < m->npools; p++) crc = crc32(crc, (const Bytef *)m->pools[p].stride, sizeof m->pools[p].stride);
  double mine = (double)(uint32_t)crc, *all = rn_alloc((size_t)d->size, sizeof *all, "the checksums", err);
  uint32_t *sums = all ? rn_alloc((size_t)d->size, sizeof *sums, "the checksums", err) : NULL;
  int rc = !sums || rn_dist_gather(d, &mine, 1, all, err) ? -1 : 0;
  for (int r = 0; !rc && r < d->size; r++) sums[r] = (uint32_t)all[r];
  if (!rc) rc = rn_dist_compare(sums, d->size, step, err);
  free(all);
  free(sums);
  return rc;
}
