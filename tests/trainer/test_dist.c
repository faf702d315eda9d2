/* Data parallelism's pieces that run in one process (dist.h): shards,
 * gradient buckets, the checksum comparison, a shard's rendering, and
 * synchronized batch norm on one rank, which must give the plain batch
 * norm's numbers. Several ranks: tests/trainer/mpi_test.sh. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dist.h"
#include "suites.h"

/* Shards are consecutive, cover the batch, and differ by at most one. */
START_TEST(shards_cover_the_batch) {
  const int sizes[] = {1, 2, 3, 7, 8, 128, 1000};
  for (int k = 1; k <= 8; k++)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      int n = sizes[i], next = 0, lo = n, hi = 0;
      for (int r = 0; r < k; r++) {
        rn_dist d = {.rank = r, .size = k};
        int first, count;
        rn_dist_shard(&d, n, &first, &count);
        ck_assert_int_eq(first, next);
        next += count;
        lo = count < lo ? count : lo, hi = count > hi ? count : hi;
      }
      ck_assert_int_eq(next, n);
      ck_assert_int_le(hi - lo, 1);
    }
}
END_TEST

START_TEST(checksums_name_the_ranks_that_differ) {
  rn_error err = {{0}};
  const uint32_t same[4] = {7, 7, 7, 7}, two[4] = {7, 8, 7, 9}, one[2] = {7, 6};
  ck_assert_int_eq(rn_dist_compare(same, 4, 10, &err), 0);
  ck_assert_int_eq(rn_dist_compare(two, 4, 10, &err), -1);
  ck_assert_msg(strstr(err.msg, "step 10") && strstr(err.msg, "ranks 1, 3 differ from rank 0"), "%s", err.msg);
  ck_assert_int_eq(rn_dist_compare(one, 2, 3, &err), -1);
  ck_assert_msg(strstr(err.msg, "rank 1 differ"), "%s", err.msg);
}
END_TEST

static rn_trainer *tiny_trainer(uint64_t seed) {
  rn_config c = {RN_DIFFSTRIDE, 0.0625f, {1.7f, 1.0f, 2.3f, 2.2f, 2.6f}, 4.0f, 16, 16, 2, 3};
  rn_trainer *t = calloc(1, sizeof *t);
  rn_error err = {{0}};
  ck_assert_msg(rn_trainer_init(t, &c, &rn_cpu_backend, 2, seed, 8, &err) == 0, "%s", err.msg);
  return t;
}

static void free_trainer(rn_trainer *t) {
  rn_trainer_free(t);
  free(t);
}

/* Buckets tile m->grads from the end down, each closed at the op whose
 * parameters start it, each but the last at least the size asked for. */
START_TEST(buckets_tile_the_gradient) {
  rn_trainer *t = tiny_trainer(1);
  rn_model *m = &t->model;
  const size_t sizes[] = {1, 500, 5000, (size_t)1 << 30};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    rn_dist d = {.rank = 0, .size = 1};
    rn_error err = {{0}};
    ck_assert_msg(rn_dist_attach(&d, m, sizes[s], &err) == 0, "%s", err.msg);
    ck_assert_ptr_eq(m->dist, &d);
    size_t hi = m->nparams;
    for (int b = 0; b < d.nbuckets; b++) {
      const rn_bucket *k = &d.bucket[b];
      ck_assert_uint_eq(k->hi, hi);
      ck_assert_uint_lt(k->lo, k->hi);
      ck_assert_uint_eq(m->ops[k->op].param, k->lo);
      if (b + 1 < d.nbuckets) ck_assert_uint_ge(k->hi - k->lo, sizes[s]);
      hi = k->lo;
    }
    ck_assert_uint_eq(hi, 0);
    ck_assert_int_eq(d.nbuckets > 1, sizes[s] < m->nparams / 2);
    rn_dist_finalize(&d);
  }
  m->dist = NULL;
  free_trainer(t);
}
END_TEST

/* A rank's shard of a planned batch (mixup on: images mix with images of
 * other shards) renders as the same rows of the whole batch. */
START_TEST(a_shard_renders_its_rows_of_the_batch) {
  rn_data d;
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(&d, "synthetic:8x8x3:4", &err) == 0, "%s", err.msg);
  enum { N = 10 };
  int idx[N];
  for (int i = 0; i < N; i++) idx[i] = 3 * i;
  rn_batch_plan p;
  ck_assert_int_eq(rn_batch_plan_init(&p, N), 0);
  rn_augment aug = {2, 1, 0.4f, 0.1f};
  rn_rng rng;
  rn_rng_seed(&rng, 3);
  float targets[N * 4], whole[N * 8 * 8 * 3], part[N * 8 * 8 * 3];
  int labels[N];
  rn_plan_batch(&d.train, idx, N, &aug, &rng, &p, targets, labels);
  ck_assert_int_eq(p.mix, 1);
  rn_render_batch(&d, &d.train, &p, whole);
  p.first = 3, p.count = 4;
  rn_render_batch(&d, &d.train, &p, part);
  ck_assert_mem_eq(part, whole + 3 * 8 * 8 * 3, 4 * 8 * 8 * 3 * sizeof(float));
  rn_batch_plan_free(&p);
  rn_data_free(&d);
}
END_TEST

/* dL/dweights and the batch statistics of t's model on a random batch. */
static void gradient(rn_trainer *t, int n, uint64_t seed) {
  rn_rng rng;
  rn_rng_seed(&rng, seed);
  const rn_config *c = &t->model.cfg;
  for (size_t i = 0; i < (size_t)n * c->in_h * c->in_w * c->in_c; i++) t->x[i] = (float)rn_rng_normal(&rng);
  for (int i = 0; i < n; i++) {
    t->labels[i] = (int)rn_rng_below(&rng, (uint32_t)c->classes);
    for (int k = 0; k < c->classes; k++) t->targets[i * c->classes + k] = k == t->labels[i];
  }
  rn_error err = {{0}};
  ck_assert_msg(rn_forward(&t->model, t->x, n, 1, &err) == 0, "%s", err.msg);
  rn_loss(&t->model, t->targets, t->labels, n, n, 1, NULL);
  ck_assert_msg(rn_backward(&t->model, &err) == 0, "%s", err.msg);
}

/* The largest |a - b| / (1 + |b|) over count floats. */
static double worst(const float *a, const float *b, size_t count) {
  double w = 0.0;
  for (size_t i = 0; i < count; i++) {
    double e = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
    w = e > w || isnan(e) ? e : w;
  }
  return w;
}

/* On one rank the global batch is the rank's: the synchronized path
 * (statistics combined, given to oneDNN, the backward's missing terms
 * added) must give what oneDNN's own batch norm gives. */
START_TEST(sync_bn_on_one_rank_is_batch_norm) {
  rn_trainer *plain = tiny_trainer(5), *synced = tiny_trainer(5);
  rn_dist d = {.rank = 0, .size = 1, .sync_bn = 1};
  rn_error err = {{0}};
  ck_assert_msg(rn_dist_attach(&d, &synced->model, 1 << 20, &err) == 0, "%s", err.msg);
  gradient(plain, 8, 9);
  gradient(synced, 8, 9);
  const rn_model *a = &synced->model, *b = &plain->model;
  double gw = worst(a->grads, b->grads, a->nparams), sw = worst(a->stats, b->stats, a->nstats);
  double rw = worst(a->state, b->state, a->nstate);
  ck_assert_msg(gw < 1e-4 && sw < 1e-5 && rw < 1e-5, "gradients %g, batch statistics %g, running %g", gw, sw, rw);
  for (int p = 0; p < a->npools; p++)
    ck_assert_msg(worst(a->pools[p].grad, b->pools[p].grad, 2) < 1e-4, "stride gradient of layer %d", p);
  rn_dist_finalize(&d);
  free_trainer(plain);
  free_trainer(synced);
}
END_TEST

TCase *dist_tcase(void) {
  TCase *tc = tcase_create("dist");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, shards_cover_the_batch);
  tcase_add_test(tc, checksums_name_the_ranks_that_differ);
  tcase_add_test(tc, buckets_tile_the_gradient);
  tcase_add_test(tc, a_shard_renders_its_rows_of_the_batch);
  tcase_add_test(tc, sync_bn_on_one_rank_is_batch_norm);
  return tc;
}
