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
#include "dist.h"
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

/* Gradient buckets of about 4 MB: large enough for the all-reduce's
 * bandwidth, small enough that the first starts early in the backward. */
enum { BUCKET_FLOATS = 1 << 20 };

/* The ranks' settings, and d attached to the model. */
static int join(const rn_options *o, rn_dist *dist, rn_trainer *t, rn_error *err) {
  if (dist->size > o->batch)
    return rn_fail(err, "--batch %d over %d ranks: every rank needs at least one image of a batch", o->batch, dist->size);
  dist->sync_bn = o->sync_bn;
  dist->check_every = o->check_every;
  return rn_dist_attach(dist, &t->model, BUCKET_FLOATS, err);
}

static int setup(const rn_options *o, rn_data *d, rn_trainer *t, rn_dist *dist, rn_error *err) {
  const rn_backend *be;
  if (backend(o->device, &be, err)) return -1;
  if (o->sync_bn && be != &rn_cpu_backend)
    return rn_fail(err, "--sync-bn: synchronized batch norm is implemented on the cpu device only");
  if (rn_data_load(d, o->data, err)) return -1;
  rn_dataset_truncate(&d->train, o->train_subset);
  rn_dataset_truncate(&d->test, o->test_subset);
  rn_config cfg;
  if (network_config(o, d, &cfg, err) ||
      rn_trainer_init(t, &cfg, be, o->threads, o->seed, o->batch, err) ||
      rn_model_set_precision(&t->model, o->precision, err) || join(o, dist, t, err))
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

/* Rank 0 alone shows and writes what a run makes. */
static int leader(const rn_trainer *t) { return !t->model.dist || t->model.dist->rank == 0; }

/* After an epoch: test accuracy (every rank), then on rank 0 the epoch's
 * line, the CSV row, the checkpoint. */
static int finish_epoch(const rn_options *o, const rn_data *d, rn_trainer *t, const char *dir,
                        const rn_epoch_stats *s, rn_record *r, rn_error *err) {
  double acc, loss;
  char path[RN_MAX_PATH];
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  if (!leader(t)) return 0;
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

static void print_header(const rn_options *o, const rn_data *d, const rn_trainer *t) {
  const rn_dist *dist = t->model.dist;
  printf("resnet18 %s on %s: %d train / %d test images %dx%dx%d, width %g, %zu parameters, %d threads",
         rn_mode_name(t->model.cfg.mode), d->name, d->train.count, d->test.count, d->train.h,
         d->train.w, d->train.c, (double)t->model.cfg.width, t->model.nparams, o->threads);
  if (dist->size > 1)
    printf(" per rank, %d ranks (%s batch norm)", dist->size, dist->sync_bn ? "synchronized" : "per-rank");
  printf("\n");
}

static int train(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  char dir[RN_MAX_PATH] = "";
  int lead = leader(t);
  if (lead && output_dir(o, t, dir, sizeof dir, err)) return -1;
  if (t->epoch >= o->epochs) {
    if (lead) printf("resnet18: nothing to train: the checkpoint has %d epochs done, --epochs is %d\n", t->epoch,
                     o->epochs);
    return 0;
  }
  if (lead) print_header(o, d, t);
  rn_record *records = rn_alloc((size_t)(o->epochs - t->epoch), sizeof *records, "the per-epoch records", err);
  rn_progress_style style = o->quiet || !lead ? RN_PROGRESS_NONE : isatty(2) ? RN_PROGRESS_BAR : RN_PROGRESS_LINES;
  rn_progress bar = {style, 10, rn_seconds(), o->progress, t, NULL, ""};
  int count = 0, rc = !records || (lead && rn_steps_open(&bar, dir, t->model.npools, err)) ||
                      train_epochs(o, d, t, dir, &bar, records, &count, err);
  rn_error close_err;
  if (rn_steps_close(&bar, &close_err) && !rc) rc = -1, *err = close_err;
  if (!rc && lead) finish_run(dir, t, records, count);
  free(records);
  return rc ? -1 : 0;
}

static int evaluate_only(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  double acc, loss;
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  if (leader(t))
    printf("%s: epoch %d, %s, test accuracy %.2f%% (loss %.4f) on %d images\n", o->eval, t->epoch,
           rn_mode_name(t->model.cfg.mode), 100 * acc, loss, d->test.count);
  return 0;
}

/* With several ranks: the communication the steps waited for (comm_ms per
 * step, from comm0 seconds before them) and one sum of the whole gradient
 * alone (allreduce_ms, and its bus bandwidth 2 (K-1)/K bytes / time). */
static int print_comm(rn_model *m, int steps, double comm0, double step_ms, rn_error *err) {
  rn_dist *dist = m->dist;
  if (dist->size == 1) return 0;
  double comm_ms = 1e3 * (dist->comm_seconds - comm0) / steps, sum_s;
  if (rn_dist_time_sum(m, 5, &sum_s, err)) return -1;
  double bytes = (double)m->nparams * sizeof(float), k = dist->size;
  if (dist->rank == 0)
    printf("ranks=%d comm_ms=%.2f comm_share=%.2f allreduce_ms=%.2f gradient_mb=%.1f busbw_gbs=%.3f ", dist->size,
           comm_ms, 100.0 * comm_ms / step_ms, 1e3 * sum_s, bytes / 1e6, 2 * (k - 1) / k * bytes / sum_s / 1e9);
  return 0;
}

/* Times o->benchmark training steps (after 2 warm-up steps) on full batches. */
static int benchmark(const rn_options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  int n = o->batch, *idx = rn_alloc((size_t)n, sizeof(int), "the indices of a batch", err), correct;
  double loss, t0 = 0.0, lib0 = 0.0, comm0 = 0.0;
  if (!idx) return -1;
  for (int i = 0; i < n; i++) idx[i] = i % d->train.count;
  for (int step = 0; step < 2 + o->benchmark; step++) {
    if (step == 2) t0 = rn_seconds(), lib0 = rn_library_seconds(&t->model), comm0 = t->model.dist->comm_seconds;
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
  if (!leader(t)) return print_comm(m, o->benchmark, comm0, step_ms, err);
  printf("benchmark mode=%s device=%s batch=%d threads=%d step_ms=%.2f images_per_s=%.1f library_ms=%.2f "
         "library_share=%.2f peak_rss_mb=%.1f ",
         rn_mode_name(m->cfg.mode), m->be->name, n, o->threads, step_ms, 1e3 * n / step_ms, lib_ms,
         100.0 * lib_ms / step_ms, ru.ru_maxrss / 1024.0);
  if (device_mb >= 0.0) printf("device_mb=%.1f ", device_mb);
  if (print_comm(m, o->benchmark, comm0, step_ms, err)) return -1;
  printf("sizes=");
  for (int p = 0; p < m->npools; p++) printf("%s%dx%d", p ? "," : "", m->pools[p].out_h, m->pools[p].out_w);
  printf("\n");
  return 0;
}

/* The run's error: on stderr, with the rank when there are several, whose
 * failure then ends them all (mpirun reports which rank aborted). */
static void report_failure(const rn_dist *dist, const rn_error *err) {
  if (dist->size > 1) fprintf(stderr, "resnet18: rank %d of %d: %s\n", dist->rank, dist->size, err->msg);
  else fprintf(stderr, "resnet18: %s\n", err->msg);
  fflush(stderr);
  rn_dist_abort(dist, 1);
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
  rn_dist dist;
  if (rn_dist_init(&dist, &argc, &argv, &err)) return fprintf(stderr, "resnet18: %s\n", err.msg), 1;
  rn_data d;
  rn_trainer t;
  memset(&d, 0, sizeof d);
  memset(&t, 0, sizeof t);
  int rc = setup(&o, &d, &t, &dist, &err);
  if (!rc) rc = o.eval ? evaluate_only(&o, &d, &t, &err)
                : o.benchmark ? benchmark(&o, &d, &t, &err)
                              : train(&o, &d, &t, &err);
  fflush(stdout);
  if (rc) report_failure(&dist, &err);
  rn_trainer_free(&t);
  rn_data_free(&d);
  rn_dist_finalize(&dist);
  return rc ? 1 : 0;
}
