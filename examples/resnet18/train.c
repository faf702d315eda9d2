/* Training steps, epochs and evaluation on any backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dist.h"

/* The host copies of one batch: x (batch, h, w, c), targets (batch,
 * classes), labels and the batch plan. */
static int batch_buffers(rn_trainer *t, const rn_config *cfg, int batch, rn_error *err) {
  size_t pixels = (size_t)cfg->in_h * cfg->in_w * cfg->in_c; /* <= 3 * 2^20 */
  t->x = rn_alloc((size_t)batch * pixels, sizeof(float), "the host copy of a batch", err);
  t->targets = t->x ? rn_alloc((size_t)batch * cfg->classes, sizeof(float), "a batch's targets", err) : NULL;
  t->labels = t->targets ? rn_alloc((size_t)batch, sizeof(int), "a batch's labels", err) : NULL;
  if (!t->labels) return -1;
  if (rn_batch_plan_init(&t->plan, batch))
    return rn_fail(err, "out of memory allocating the plan of a batch of %d", batch);
  return 0;
}

int rn_trainer_init(rn_trainer *t, const rn_config *cfg, const rn_backend *be, int threads,
                    uint64_t seed, int batch, rn_error *err) {
  memset(t, 0, sizeof *t);
  if (batch < 1 || batch > RN_MAX_BATCH)
    return rn_fail(err, "batch size %d: expected 1 to %d", batch, RN_MAX_BATCH);
  rn_rng_seed(&t->rng, seed);
  if (rn_model_create(&t->model, cfg, be, threads, &t->rng, err)) return -1;
  t->batch = batch;
  t->opt = (rn_sgd){0.9f, 5e-4f};
  t->aug = (rn_augment){0, 0, 0.0f, 0.0f};
  rn_schedule_parse(&t->schedule, "0.1", err);
  if (batch_buffers(t, cfg, batch, err)) {
    rn_trainer_free(t);
    return -1;
  }
  return 0;
}

void rn_trainer_free(rn_trainer *t) {
  rn_model_destroy(&t->model);
  free(t->x);
  free(t->targets);
  free(t->labels);
  free(t->order);
  rn_batch_plan_free(&t->plan);
  memset(t, 0, sizeof *t);
}

/* The ranks training t's model (1: one process). */
static int ranks(const rn_trainer *t) { return t->model.dist ? t->model.dist->size : 1; }

/* This process's images of a batch of n: a shard with several ranks. */
static void shard(const rn_trainer *t, int n, int *first, int *count) {
  if (t->model.dist) rn_dist_shard(t->model.dist, n, first, count);
  else *first = 0, *count = n;
}

/* Plans the n images idx[0..n), renders [first, first + count) of them. */
static int load(rn_trainer *t, const rn_data *d, const rn_dataset *s, const int *idx, int n, int augment,
                int first, int count, rn_error *err) {
  rn_model *m = &t->model;
  t->loaded = 0;
  if (n > t->batch) return rn_fail(err, "a batch of %d images: the trainer holds %d", n, t->batch);
  if (s->h != m->cfg.in_h || s->w != m->cfg.in_w || s->c != m->cfg.in_c)
    return rn_fail(err, "%dx%dx%d images: the network takes %dx%dx%d", s->h, s->w, s->c, m->cfg.in_h,
                   m->cfg.in_w, m->cfg.in_c);
  rn_plan_batch(s, idx, n, augment ? &t->aug : NULL, &t->rng, &t->plan, t->targets, t->labels);
  t->plan.first = first, t->plan.count = count;
  if (rn_model_shapes(m, count, err) || m->be->load_batch(m, d, s, &t->plan, t->x, err)) return -1;
  t->loaded = n;
  return 0;
}

int rn_load_batch(rn_trainer *t, const rn_data *d, const rn_dataset *s, const int *idx, int n, int augment,
                  rn_error *err) {
  int first, count;
  shard(t, n, &first, &count);
  if (count < 1)
    return rn_fail(err, "a batch of %d images over %d ranks: every rank needs one", n, ranks(t));
  return load(t, d, s, idx, n, augment, first, count, err);
}

int rn_train_step(rn_trainer *t, int n, double *loss, int *correct, rn_error *err) {
  rn_model *m = &t->model;
  const rn_config *c = &m->cfg;
  int loaded = t->loaded == n, first, count;
  shard(t, n, &first, &count);
  t->loaded = 0;
  const float *x = loaded ? NULL : t->x + (size_t)first * c->in_h * c->in_w * c->in_c;
  if (rn_forward(m, x, count, 1, err)) return -1;
  int hits = 0;
  double sums[2] = {rn_loss(m, t->targets + (size_t)first * c->classes, t->labels + first, count, n, 1, &hits), 0};
  sums[1] = hits;
  if (rn_backward(m, err) || rn_dist_grads_finish(m, sums, 2, err)) return -1;
  double l = sums[0] + rn_regularizer(m, t->lambda, 1);
  if (!isfinite(l))
    return rn_fail(err, "the loss is %g at step %ld: training diverged (or reading the logits from the %s device failed)",
                   l, t->step, m->be->name);
  rn_sgd_step(m, &t->opt, rn_schedule_lr(&t->schedule, t->step));
  rn_store_effective_strides(m);
  t->step++;
  *loss = l;
  *correct = (int)sums[1];
  const rn_dist *dist = m->dist;
  return dist && dist->check_every && t->step % dist->check_every == 0 ? rn_dist_check(m, t->step, err) : 0;
}

/* A fresh random permutation of 0..count-1 (Fisher-Yates). */
static int shuffle(rn_trainer *t, int count) {
  free(t->order);
  t->order = malloc(sizeof(int) * (size_t)(count > 0 ? count : 1));
  if (!t->order) return -1;
  for (int i = 0; i < count; i++) t->order[i] = i;
  for (int i = count - 1; i > 0; i--) {
    int j = (int)rn_rng_below(&t->rng, (uint32_t)i + 1), tmp = t->order[i];
    t->order[i] = t->order[j], t->order[j] = tmp;
  }
  return 0;
}

int rn_train_epoch(rn_trainer *t, const rn_data *d, rn_progress_fn progress, void *user,
                   rn_epoch_stats *out, rn_error *err) {
  const rn_dataset *s = &d->train;
  if (shuffle(t, s->count))
    return rn_fail(err, "out of memory allocating %zu bytes for the order of %d images", sizeof(int) * (size_t)s->count,
                   s->count);
  double start = rn_seconds(), lib0 = rn_library_seconds(&t->model), sum = 0.0;
  /* a last batch smaller than the ranks is left out: every rank needs an image */
  int tail = s->count % t->batch, total = s->count - (tail < ranks(t) ? tail : 0), hits = 0;
  for (int done = 0; done < total;) {
    int n = total - done < t->batch ? total - done : t->batch, correct = 0;
    double loss;
    if (rn_load_batch(t, d, s, t->order + done, n, 1, err) || rn_train_step(t, n, &loss, &correct, err))
      return -1;
    done += n;
    sum += loss * n;
    hits += correct;
    if (progress && progress(user, done, total, sum / done, done / (rn_seconds() - start), err)) return -1;
  }
  t->epoch++;
  double elapsed = rn_seconds() - start;
  *out = (rn_epoch_stats){total ? sum / total : 0.0, total ? (double)hits / total : 0.0, elapsed, total / elapsed,
                          rn_library_seconds(&t->model) - lib0, total};
  return rn_dist_average_state(&t->model, err) || rn_dist_check(&t->model, t->step, err) ? -1 : 0;
}

/* The ranks evaluate consecutive shards of s, each in batches of its share
 * of t->batch; the hits and the summed loss are then summed over the ranks. */
int rn_evaluate(rn_trainer *t, const rn_data *d, const rn_dataset *s, double *accuracy,
                double *loss, rn_error *err) {
  int batch = (t->batch + ranks(t) - 1) / ranks(t), first, count;
  shard(t, s->count, &first, &count);
  double sums[2] = {0.0, 0.0}; /* summed loss, hits */
  int *idx = rn_alloc((size_t)batch, sizeof(int), "the indices of a batch", err);
  if (!idx) return -1;
  for (int done = 0; done < count;) {
    int n = count - done < batch ? count - done : batch, correct = 0;
    for (int i = 0; i < n; i++) idx[i] = first + done + i;
    int rc = load(t, d, s, idx, n, 0, 0, n, err) || rn_forward(&t->model, NULL, n, 0, err);
    t->loaded = 0; /* used: a later step must not take it again */
    if (rc) return free(idx), -1;
    double l = rn_loss(&t->model, t->targets, t->labels, n, n, 0, &correct);
    if (!isfinite(l))
      return free(idx), rn_fail(err, "evaluation: the loss is %g (the weights diverged, or reading the logits from the %s device failed)",
                                l, t->model.be->name);
    sums[0] += l * n;
    sums[1] += correct;
    done += n;
  }
  free(idx);
  if (t->model.dist && rn_dist_sum(t->model.dist, sums, 2, err)) return -1;
  *accuracy = s->count ? sums[1] / s->count : 0.0;
  if (loss) *loss = s->count ? sums[0] / s->count : 0.0;
  return 0;
}
