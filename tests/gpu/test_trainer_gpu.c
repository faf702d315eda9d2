/* The trainer's CUDA backend against its CPU backend: one training step
 * from the same checkpoint gives the same augmented batch (rendered on the
 * GPU from the dataset kept there), loss, gradients, weights, batch-norm
 * running statistics and strides on both devices (float32
 * tolerances; TF32 off), in every downsampling mode; and a short run on the
 * GPU learns. Without a usable CUDA device the suite says it is skipped and
 * passes, unless DS_REQUIRE_GPU=1 (make check-gpu). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

/* A small network on 16x16x3 inputs, 4 classes, width 0.125 (8..64
 * channels); DiffStride's strides away from the raise-to-minimum kink. */
static rn_config small(rn_mode mode) {
  rn_config c = {mode, 0.125f, {1, 1, 2, 2, 2}, 4.0f, 16, 16, 3, 4};
  if (mode == RN_DIFFSTRIDE) {
    const float s[RN_STAGES] = {1.7f, 1.0f, 2.3f, 2.2f, 2.6f};
    memcpy(c.strides, s, sizeof s);
  }
  return c;
}

static rn_trainer *new_trainer(const rn_config *cfg, const rn_backend *be, int batch) {
  rn_trainer *t = calloc(1, sizeof *t);
  rn_error err = {{0}};
  ck_assert_msg(rn_trainer_init(t, cfg, be, 2, 5, batch, &err) == 0, "%s: %s", be->name, err.msg);
  ck_assert_int_eq(rn_schedule_parse(&t->schedule, "0.05", &err), 0);
  t->aug = (rn_augment){2, 1, 0.3f, 0.1f};
  return t;
}

static void free_trainer(rn_trainer *t) {
  rn_trainer_free(t);
  free(t);
}

/* count floats of a backend's array, on the host (caller frees). */
static float *host_copy(const rn_model *m, const float *p, size_t count) {
  float *h = malloc((count ? count : 1) * sizeof *h);
  ck_assert_int_eq(m->be->to_host(h, p, count), 0);
  return h;
}

/* max |a - b| / max |b| over count floats. */
static double rel_error(const float *a, const float *b, size_t count) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < count; i++) {
    diff = fmax(diff, fabs((double)a[i] - b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

static void expect_same(const rn_model *gpu, const float *g, const rn_model *cpu, const float *c, size_t count,
                        double tol, const char *what) {
  float *a = host_copy(gpu, g, count), *b = host_copy(cpu, c, count);
  double e = rel_error(a, b, count);
  ck_assert_msg(e < tol, "%s mode: %s differ between GPU and CPU, relative error %g >= %g",
                rn_mode_name(cpu->cfg.mode), what, e, tol);
  free(a), free(b);
}

/* Everything of `from` into `to` through a checkpoint file. */
static void transfer(const rn_trainer *from, rn_trainer *to) {
  char path[] = "/tmp/rn_gpu_ckpt_XXXXXX";
  rn_error err = {{0}};
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_msg(rn_checkpoint_save(from, path, &err) == 0, "%s", err.msg);
  ck_assert_msg(rn_checkpoint_load(to, path, &err) == 0, "%s", err.msg);
  unlink(path);
}

/* One step on each device from one checkpoint (taken after a CPU step, so
 * that momentum and running statistics are not at their initial values),
 * on the same batch (the RNG is in the checkpoint). */
START_TEST(gpu_step_equals_cpu_step) {
  rn_config cfg = small((rn_mode)_i);
  rn_data d;
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(&d, "synthetic:16x16x3:4", &err) == 0, "%s", err.msg);
  rn_trainer *cpu = new_trainer(&cfg, &rn_cpu_backend, 16), *gpu = new_trainer(&cfg, &rn_cuda_backend, 16);
  int idx[16], correct;
  for (int i = 0; i < 16; i++) idx[i] = 3 * i;
  double loss[2];
  rn_make_batch(&d, &d.train, idx, 16, &cpu->aug, &cpu->rng, cpu->x, cpu->targets, cpu->labels);
  ck_assert_msg(rn_train_step(cpu, 16, &loss[0], &correct, &err) == 0, "%s", err.msg);
  transfer(cpu, gpu);
  rn_trainer *both[2] = {cpu, gpu};
  for (int k = 0; k < 2; k++) /* the GPU renders its batch from the dataset it keeps */
    ck_assert_msg(rn_load_batch(both[k], &d, &d.train, idx, 16, 1, &err) == 0, "%s", err.msg);
  size_t in = (size_t)16 * cfg.in_h * cfg.in_w * cfg.in_c;
  expect_same(&gpu->model, gpu->model.tensors[0].data, &cpu->model, cpu->model.tensors[0].data, in, 1e-6,
              "augmented batches");
  for (int k = 0; k < 2; k++)
    ck_assert_msg(rn_train_step(both[k], 16, &loss[k], &correct, &err) == 0, "%s", err.msg);
  ck_assert_msg(fabs(loss[1] - loss[0]) < 1e-4 * fabs(loss[0]), "loss %.8f on the GPU, %.8f on the CPU", loss[1],
                loss[0]);
  rn_model *g = &gpu->model, *c = &cpu->model;
  expect_same(g, g->grads, c, c->grads, c->nparams, 2e-3, "gradients");
  expect_same(g, g->params, c, c->params, c->nparams, 1e-4, "weights after the step");
  expect_same(g, g->mom, c, c->mom, c->nparams, 2e-3, "momenta");
  expect_same(g, g->state, c, c->state, c->nstate, 1e-4, "batch-norm running statistics");
  for (int p = 0; p < c->npools; p++)
    for (int a = 0; a < 2; a++) {
      double gs = g->pools[p].grad[a], cs = c->pools[p].grad[a];
      ck_assert_msg(fabs(gs - cs) <= 2e-3 * fmax(fabs(cs), 1e-3), "pool %d axis %d: stride gradient %g (GPU) vs %g",
                    p, a, gs, cs);
      ck_assert_msg(fabs(g->pools[p].stride[a] - c->pools[p].stride[a]) < 1e-5, "pool %d axis %d: stride", p, a);
    }
  free_trainer(cpu), free_trainer(gpu);
  rn_data_free(&d);
}
END_TEST

/* TF32 and bf16 (loop index 0, 1): one GPU step from the CPU's checkpoint
 * stays close to the CPU's float32 step (the tolerances of 10- and 8-bit
 * mantissas through a network); the layers' float32 parts (batch norm,
 * pooling) keep the strides' gradients close too. */
START_TEST(reduced_precision_step_is_close) {
  rn_precision prec = _i ? RN_BF16 : RN_TF32;
  double tol_loss = _i ? 3e-2 : 1e-2, tol_grad = _i ? 0.15 : 5e-2;
  rn_config cfg = small(RN_DIFFSTRIDE);
  rn_data d;
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(&d, "synthetic:16x16x3:4", &err) == 0, "%s", err.msg);
  rn_trainer *cpu = new_trainer(&cfg, &rn_cpu_backend, 16), *gpu = new_trainer(&cfg, &rn_cuda_backend, 16);
  ck_assert_msg(rn_model_set_precision(&gpu->model, prec, &err) == 0, "%s", err.msg);
  int idx[16], correct;
  transfer(cpu, gpu);
  for (int i = 0; i < 16; i++) idx[i] = 5 * i;
  rn_trainer *both[2] = {cpu, gpu};
  double loss[2];
  for (int k = 0; k < 2; k++)
    ck_assert_msg(rn_load_batch(both[k], &d, &d.train, idx, 16, 1, &err) == 0 &&
                      rn_train_step(both[k], 16, &loss[k], &correct, &err) == 0,
                  "%s", err.msg);
  ck_assert_msg(fabs(loss[1] - loss[0]) < tol_loss * fabs(loss[0]), "%s: loss %.6f, float32 CPU %.6f",
                rn_precision_name(prec), loss[1], loss[0]);
  expect_same(&gpu->model, gpu->model.grads, &cpu->model, cpu->model.grads, cpu->model.nparams, tol_grad,
              rn_precision_name(prec));
  free_trainer(cpu), free_trainer(gpu);
  rn_data_free(&d);
}
END_TEST

/* Four epochs of 512 synthetic images on the GPU: the loss falls. */
START_TEST(gpu_run_learns) {
  rn_config cfg = small(RN_DIFFSTRIDE);
  rn_data d;
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(&d, "synthetic:16x16x3:4", &err) == 0, "%s", err.msg);
  rn_dataset_truncate(&d.train, 512);
  rn_trainer *t = new_trainer(&cfg, &rn_cuda_backend, 32);
  double first = 0.0, last = 0.0;
  for (int epoch = 0; epoch < 4; epoch++) {
    rn_epoch_stats s;
    ck_assert_msg(rn_train_epoch(t, &d, NULL, NULL, &s, &err) == 0, "%s", err.msg);
    if (epoch == 0) first = s.loss;
    last = s.loss;
  }
  ck_assert_msg(last < 0.6 * first, "GPU training loss %.4f -> %.4f", first, last);
  free_trainer(t);
  rn_data_free(&d);
}
END_TEST

int main(void) {
  const char *require = getenv("DS_REQUIRE_GPU");
  ds_context *probe = NULL;
  if (ds_context_create(DS_DEVICE_CUDA, &probe) != DS_OK) {
    printf("trainer_gpu: GPU trainer suite skipped: %s\n", ds_last_error());
    return require && !strcmp(require, "1") ? EXIT_FAILURE : EXIT_SUCCESS;
  }
  ds_context_destroy(probe);
  Suite *s = suite_create("trainer_gpu");
  TCase *tc = tcase_create("cuda");
  tcase_add_loop_test(tc, gpu_step_equals_cpu_step, RN_STRIDED, RN_DIFFSTRIDE + 1);
  tcase_add_loop_test(tc, reduced_precision_step_is_close, 0, 2);
  tcase_add_test(tc, gpu_run_learns);
  tcase_set_timeout(tc, 300);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
