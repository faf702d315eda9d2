/* Data-parallel training (docs/trainer.md, "Several processes"): K
 * processes started by mpirun, the ranks, train one model. Each renders its
 * shard of every global batch from the plan all of them draw alike; the
 * gradients (weights and strides) are summed over the ranks by MPI
 * (non-blocking, in buckets started while the backward pass goes on) or, on
 * a GPU, by the backend's collective (NCCL); every rank then applies the
 * same update. Built without MPI (RN_WITH_MPI undefined), or started
 * without mpirun, the process is the one rank of a job of one and every
 * collective here is a no-op.
 *
 * The loss's gradient is divided by the global batch (rn_loss's total), so
 * that the sum over the ranks is the global batch's mean gradient. */
#ifndef RN_DIST_H
#define RN_DIST_H

#include <stdint.h>

#include "rn.h"

/* A range [lo, hi) of m->grads, complete once the backward of op `op`
 * (the range's first op in forward order) has run. */
typedef struct rn_bucket {
  size_t lo, hi;
  int op;
} rn_bucket;

typedef struct rn_dist {
  int rank, size;
  int sync_bn;     /* batch norm statistics over the global batch (the CPU's bnrelu) */
  int check_every; /* optimizer steps between parameter checksums; 0: at epoch ends only */
  int nbuckets, started;
  rn_bucket bucket[RN_MAX_OPS]; /* in backward order */
  void *requests;               /* the buckets' MPI requests (host memory) */
  double comm_seconds;          /* waiting on gradient sums, summed (the exposed communication) */
} rn_dist;

/* Joins the job mpirun started (MPI_Init), or makes d the one rank of a
 * job of one; -1 when MPI fails to start. */
int rn_dist_init(rn_dist *d, int *argc, char ***argv, rn_error *err);
/* MPI_Finalize after a clean run. */
void rn_dist_finalize(rn_dist *d);
/* Ends every rank of the job at once (MPI_Abort) after this one failed;
 * returns in a job of one. */
void rn_dist_abort(const rn_dist *d, int code);
/* This process's rank among the ranks of its host (0 in a job of one): a
 * GPU's index. */
int rn_dist_local_rank(void);

/* Images [first, first + count) of a batch of n are this rank's: the
 * ranks take consecutive shards whose sizes differ by at most one. */
void rn_dist_shard(const rn_dist *d, int n, int *first, int *count);
/* v[0..count) summed over the ranks, in place (blocking). */
int rn_dist_sum(const rn_dist *d, double *v, int count, rn_error *err);
/* all[r * count + i] = rank r's mine[i] (blocking). */
int rn_dist_gather(const rn_dist *d, const double *mine, int count, double *all, rn_error *err);
/* bytes of buf from rank 0 to every rank. */
int rn_dist_broadcast(const rn_dist *d, void *buf, size_t bytes, rn_error *err);

/* Attaches d to m (m->dist) and cuts m->grads into buckets of about
 * bucket_floats, and sets up the backend's communicator where it has one. */
int rn_dist_attach(rn_dist *d, rn_model *m, size_t bucket_floats, rn_error *err);
/* After op i's backward: starts the buckets it completed; lets MPI progress
 * the ones in flight. */
int rn_dist_grads_ready(rn_model *m, int op, rn_error *err);
/* After the backward: waits for the buckets, then sums the strides'
 * gradients and extra[0..nextra) (host values: the loss, the hits; nextra
 * at most 8) over the ranks. */
int rn_dist_grads_finish(rn_model *m, double *extra, int nextra, rn_error *err);
/* Seconds one sum of the whole gradient takes over the ranks (every bucket
 * started at once), the mean of reps after a barrier each; the gradient's
 * values are lost (for benchmarks). */
int rn_dist_time_sum(rn_model *m, int reps, double *seconds, rn_error *err);
/* The batch norm running statistics averaged over the ranks (without
 * --sync-bn each rank's follow its own shards). */
int rn_dist_average_state(rn_model *m, rn_error *err);
/* Compares a checksum of the parameters, momenta and strides across the
 * ranks; -1 naming the ranks that differ from rank 0. */
int rn_dist_check(rn_model *m, long step, rn_error *err);
/* The message for checksums sums[0..size): 0 when all equal rank 0's, else
 * -1 with "... ranks 1, 3 differ from rank 0 ..." in err. */
int rn_dist_compare(const uint32_t *sums, int size, long step, rn_error *err);

#endif
