/* resnet18: trains the pre-activation ResNet-18 of docs/trainer.md with
 * strided convolutions, spectral pooling or DiffStride (libdiffstride), on
 * Fashion-MNIST (default), CIFAR-10/100 or synthetic data. docs/trainer.md
 * documents every flag. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "options.h"
#include "report.h"

/* ------------------------------------------------------------------ setup */

/* dir and its missing parents (dir is at most RN_MAX_OUT bytes). */
static int mkdir_p(const char *dir, rn_error *err) {
  char path[RN_MAX_PATH];
  if (rn_path(path, sizeof path, err, "%s", dir)) return -1;
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    struct stat st;
    int failed = mkdir(path, 0777) != 0 ? errno : 0;
    if (failed && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
      return rn_fail(err, "%s: cannot create the output directory: %s", path,
                     failed == EEXIST ? "a file of that name is in the way" : strerror(failed));
    if (!(*p = c)) return 0;
  }
}

/* The network's config: from the checkpoint when resuming or evaluating
 * (its mode, width and strides win over the flags), else from the flags. */
static int network_config(const rn_options *o, const rn_data *d, rn_config *cfg, rn_error *err) {
  const char *ckpt = o->resume ? o->resume : o->eval;
  *cfg = o->cfg;
  if (ckpt && rn_checkpoint_config(ckpt, cfg, err)) return -1;
  if (ckpt && (cfg->in_h != d->train.h || cfg->in_w != d->train.w || cfg->in_c != d->train.c ||
               cfg->classes != d->train.classes))
    return rn_fail(err, "%s: trained on %dx%dx%d images with %d classes, not on %s", ckpt,
                   cfg->in_h, cfg->in_w, cfg->in_c, cfg->classes, d->name);
  cfg->in_h = d->train.h, cfg->in_w = d->train.w, cfg->in_c = d->train.c;
  cfg->classes = d->train.classes;
  return 0;
}

/* The backend --device names, if this build has it. */
static int backend(const char *device, const rn_backend **be, rn_error *err) {
  *be = &rn_cpu_backend;
  if (!strcmp(device, "cpu")) return 0;
#ifdef RN_WITH_CUDA
  *be = &rn_cuda_backend;
  if (!strcmp(device, "cuda")) return 0;
  return rn_fail(err, "--device %s: expected cpu or cuda", device);
#else
  if (!strcmp(device, "cuda"))
    return rn_fail(err, "--device cuda: this trainer was built without the CUDA backend (nvcc and cuDNN "
                        "were not found at build time)");
  return rn_fail(err, "--device %s: expected cpu (this build has no CUDA backend)", device);
#endif
}

static int setup(const rn_options *o, rn_data *d, rn_trainer *t, rn_error *err) {
  const rn_backend *be;
  if (backend(o->device, &be, err) || rn_data_load(d, o->data, err)) return -1;
  rn_dataset_truncate(&d->train, o->train_subset);
  rn_dataset_truncate(&d->test, o->test_subset);
  rn_config cfg;
  if (network_config(o, d, &cfg, err) ||
      rn_trainer_init(t, &cfg, be, o->threads, o->seed, o->batch, err) ||
      rn_model_set_precision(&t->model, o->precision, err))
    return -1;
  t->opt = o->opt;
  t->aug = o->aug;
  t->lambda = o->lambda;
  t->schedule = o->schedule;
  const char *ckpt = o->resume ? o->resume : o->eval;
  return ckpt ? rn_checkpoint_load(t, ckpt, err) : 0;
}

/* ---------------------------------------------------------------- running */

/* DIR: --out, else runs/MODE. */
static int output_dir(const rn_options *o, const rn_trainer *t, char *dir, size_t size, rn_error *err) {
  if (o->out ? rn_path(dir, size, err, "%s", o->out)
             : rn_path(dir, size, err, "runs/%s", rn_mode_name(t->model.cfg.mode)))
    return -1;
  return mkdir_p(dir, err);
}

/* After an epoch: test accuracy, the epoch's line, the CSV row, the checkpoint. */
static int finish_epoch(const rn_options *o, const rn_data *d, rn_trainer *t, const char *dir,
                        const rn_epoch_stats *s, rn_record *r, rn_error *err) {
  double acc, loss;
  char path[RN_MAX_PATH];
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  rn_record_fill(r, t, s, acc, loss);
  rn_print_record(stdout, r, o->epochs, t->model.cfg.mode);
  if (rn_path(path, sizeof path, err, "%s/log.csv", dir) || rn_csv_append(path, r, err)) return -1;
  return rn_path(path, sizeof path, err, "%s/checkpoint.bin", dir) || rn_checkpoint_save(t, path, err) ? -1 : 0;
}

static void finish_run(const char *dir, const rn_trainer *t, const rn_record *r, int count) {
  rn_error err = {{0}};
  rn_print_summary(stdout, r, count, t->model.cfg.mode);
  int plotted = rn_plot(dir, t->model.npools, &err);
  printf("log %s/log.csv and steps.csv, checkpoint %s/checkpoint.bin", dir, dir);
  if (plotted > 0) printf(", plot %s/training.png\n", dir);
  else if (plotted == 0) printf(" (install gnuplot for the plot)\n");
  else printf("\nresnet18: no plot: %s\n", err.msg);
}

/* Epochs until o->epochs are done, each recorded for the summary. */
static int train_epochs(const rn_options *o, const rn_data *d, rn_trainer *t, const char *dir, rn_progress *bar,
                        rn_record *records, int *count, rn_error *err) {
  while (t->epoch < o->epochs) {
    rn_epoch_stats s;
    if (rn_train_epoch(t, d, rn_progress_bar, bar, &s, err) ||
        finish_epoch(o, d, t, dir, &s, &records[(*count)++], err))
      return -1;
  }
  return 0;
}

static int train(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  char dir[RN_MAX_PATH];
  if (output_dir(o, t, dir, sizeof dir, err)) return -1;
  if (t->epoch >= o->epochs)
    return printf("resnet18: nothing to train: the checkpoint has %d epochs done, --epochs is %d\n", t->epoch,
                  o->epochs), 0;
  printf("resnet18 %s on %s: %d train / %d test images %dx%dx%d, width %g, %zu parameters, %d threads\n",
         rn_mode_name(t->model.cfg.mode), d->name, d->train.count, d->test.count, d->train.h,
         d->train.w, d->train.c, (double)t->model.cfg.width, t->model.nparams, o->threads);
  rn_record *records = rn_alloc((size_t)(o->epochs - t->epoch), sizeof *records, "the per-epoch records", err);
  rn_progress_style style = o->quiet ? RN_PROGRESS_NONE : isatty(2) ? RN_PROGRESS_BAR : RN_PROGRESS_LINES;
  rn_progress bar = {style, 10, rn_seconds(), o->progress, t, NULL, ""};
  int count = 0, rc = !records || rn_steps_open(&bar, dir, t->model.npools, err) ||
                      train_epochs(o, d, t, dir, &bar, records, &count, err);
  rn_error close_err;
  if (rn_steps_close(&bar, &close_err) && !rc) rc = -1, *err = close_err;
  if (!rc) finish_run(dir, t, records, count);
  free(records);
  return rc ? -1 : 0;
}

static int evaluate_only(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  double acc, loss;
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  printf("%s: epoch %d, %s, test accuracy %.2f%% (loss %.4f) on %d images\n", o->eval, t->epoch,
         rn_mode_name(t->model.cfg.mode), 100 * acc, loss, d->test.count);
  return 0;
}

/* Times o->benchmark training steps (after 2 warm-up steps) on full batches. */
static int benchmark(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  int n = o->batch, *idx = rn_alloc((size_t)n, sizeof(int), "the indices of a batch", err), correct;
  double loss, t0 = 0.0, lib0 = 0.0;
  if (!idx) return -1;
  for (int i = 0; i < n; i++) idx[i] = i % d->train.count;
  for (int step = 0; step < 2 + o->benchmark; step++) {
    if (step == 2) t0 = rn_seconds(), lib0 = rn_library_seconds(&t->model);
    if (rn_load_batch(t, d, &d->train, idx, n, 1, err) || rn_train_step(t, n, &loss, &correct, err))
      return free(idx), -1;
  }
  free(idx);
  rn_model *m = &t->model;
  m->be->sync(m); /* the last step's update may still be queued on a device */
  double step_ms = 1e3 * (rn_seconds() - t0) / o->benchmark;
  double lib_ms = 1e3 * (rn_library_seconds(m) - lib0) / o->benchmark, device_mb = m->be->device_mb(m);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("benchmark mode=%s device=%s batch=%d threads=%d step_ms=%.2f images_per_s=%.1f library_ms=%.2f "
         "library_share=%.2f peak_rss_mb=%.1f ",
         rn_mode_name(m->cfg.mode), m->be->name, n, o->threads, step_ms, 1e3 * n / step_ms, lib_ms,
         100.0 * lib_ms / step_ms, ru.ru_maxrss / 1024.0);
  if (device_mb >= 0.0) printf("device_mb=%.1f ", device_mb);
  printf("sizes=");
  for (int p = 0; p < m->npools; p++) printf("%s%dx%d", p ? "," : "", m->pools[p].out_h, m->pools[p].out_w);
  printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  rn_options o;
  rn_error err = {{0}};
  int parsed = rn_options_parse(&o, argc, argv, &err);
  if (parsed) {
    if (parsed > 0) rn_usage(stdout);
    else fprintf(stderr, "resnet18: %s\n", err.msg);
    return parsed > 0 ? 0 : 2;
  }
  /* past a file size limit (ulimit -f) a write fails with EFBIG and is
   * reported like any write error, where SIGXFSZ would kill the run */
  signal(SIGXFSZ, SIG_IGN);
  rn_data d;
  rn_trainer t;
  memset(&d, 0, sizeof d);
  memset(&t, 0, sizeof t);
  int rc = setup(&o, &d, &t, &err);
  if (!rc) rc = o.eval ? evaluate_only(&o, &d, &t, &err)
                : o.benchmark ? benchmark(&o, &d, &t, &err)
                              : train(&o, &d, &t, &err);
  fflush(stdout);
  if (rc) fprintf(stderr, "resnet18: %s\n", err.msg);
  rn_trainer_free(&t);
  rn_data_free(&d);
  return rc ? 1 : 0;
}
