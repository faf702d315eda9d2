/* Training steps, epochs and evaluation on any backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

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

int rn_load_batch(rn_trainer *t, const rn_data *d, const rn_dataset *s, const int *idx, int n, int augment,
                  rn_error *err) {
  rn_model *m = &t->model;
  t->loaded = 0;
  if (n > t->batch) return rn_fail(err, "a batch of %d images: the trainer holds %d", n, t->batch);
  if (s->h != m->cfg.in_h || s->w != m->cfg.in_w || s->c != m->cfg.in_c)
    return rn_fail(err, "%dx%dx%d images: the network takes %dx%dx%d", s->h, s->w, s->c, m->cfg.in_h,
                   m->cfg.in_w, m->cfg.in_c);
  rn_plan_batch(s, idx, n, augment ? &t->aug : NULL, &t->rng, &t->plan, t->targets, t->labels);
  if (rn_model_shapes(m, n, err) || m->be->load_batch(m, d, s, &t->plan, t->x, err)) return -1;
  t->loaded = n;
  return 0;
}

int rn_train_step(rn_trainer *t, int n, double *loss, int *correct, rn_error *err) {
  rn_model *m = &t->model;
  int loaded = t->loaded == n;
  t->loaded = 0;
  if (rn_forward(m, loaded ? NULL : t->x, n, 1, err)) return -1;
  double l = rn_loss(m, t->targets, t->labels, n, 1, correct);
  if (rn_backward(m, err)) return -1;
  l += rn_regularizer(m, t->lambda, 1);
  if (!isfinite(l))
    return rn_fail(err, "the loss is %g at step %ld: training diverged (or reading the logits from the %s device failed)",
                   l, t->step, m->be->name);
  rn_sgd_step(m, &t->opt, rn_schedule_lr(&t->schedule, t->step));
  rn_store_effective_strides(m);
  t->step++;
  *loss = l;
  return 0;
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
  int hits = 0;
  for (int done = 0; done < s->count;) {
    int n = s->count - done < t->batch ? s->count - done : t->batch, correct = 0;
    double loss;
    if (rn_load_batch(t, d, s, t->order + done, n, 1, err) || rn_train_step(t, n, &loss, &correct, err))
      return -1;
    done += n;
    sum += loss * n;
    hits += correct;
    if (progress && progress(user, done, s->count, sum / done, done / (rn_seconds() - start), err)) return -1;
  }
  t->epoch++;
  double elapsed = rn_seconds() - start;
  *out = (rn_epoch_stats){sum / s->count, (double)hits / s->count, elapsed, s->count / elapsed,
                          rn_library_seconds(&t->model) - lib0, s->count};
  return 0;
}

int rn_evaluate(rn_trainer *t, const rn_data *d, const rn_dataset *s, double *accuracy,
                double *loss, rn_error *err) {
  int hits = 0;
  double sum = 0.0;
  int *idx = rn_alloc((size_t)t->batch, sizeof(int), "the indices of a batch", err);
  if (!idx) return -1;
  for (int done = 0; done < s->count;) {
    int n = s->count - done < t->batch ? s->count - done : t->batch, correct = 0;
    for (int i = 0; i < n; i++) idx[i] = done + i;
    int rc = rn_load_batch(t, d, s, idx, n, 0, err) || rn_forward(&t->model, NULL, n, 0, err);
    t->loaded = 0; /* used: a later step must not take it again */
    if (rc) return free(idx), -1;
    double l = rn_loss(&t->model, t->targets, t->labels, n, 0, &correct);
    if (!isfinite(l))
      return free(idx), rn_fail(err, "evaluation: the loss is %g (the weights diverged, or reading the logits from the %s device failed)",
                                l, t->model.be->name);
    sum += l * n;
    hits += correct;
    done += n;
  }
  free(idx);
  *accuracy = s->count ? (double)hits / s->count : 0.0;
  if (loss) *loss = s->count ? sum / s->count : 0.0;
  return 0;
}
