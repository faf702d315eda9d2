/* resnet18: trains the pre-activation ResNet-18 of docs/trainer.md with
 * strided convolutions, spectral pooling or DiffStride (libdiffstride), on
 * Fashion-MNIST (default), CIFAR-10/100 or synthetic data. docs/trainer.md
 * documents every flag. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "report.h"

typedef struct options {
  const char *data, *lr, *out, *resume, *eval, *device;
  rn_config cfg;
  int epochs, batch, threads, train_subset, test_subset, benchmark, quiet;
  rn_precision precision;
  uint64_t seed;
  rn_sgd opt;
  rn_augment aug;
  float lambda;
} options;

static void usage(FILE *f) {
  fprintf(f,
          "usage: resnet18 [options]\n"
          "  --data SPEC          fashion-mnist[:DIR] (default), cifar10:DIR, cifar100:DIR,\n"
          "                       synthetic:HxWxC[:CLASSES]\n"
          "  --mode M             strided | spectral | diffstride (default diffstride)\n"
          "  --strides S          stem,block1..block4 (default 1,1,2,2,2)\n"
          "  --width W            width multiplier of 64,64,128,256,512 (default 1)\n"
          "  --smoothness R       DiffStride's R (default 4)\n"
          "  --epochs N           (default 1)     --batch B (default 128)\n"
          "  --lr SCHEDULE        LR[,STEP:LR...] piecewise constant in optimizer steps\n"
          "                       (default 0.01,400:0.1,18000:0.01,32000:0.001)\n"
          "  --momentum M (0.9)   --weight-decay WD (5e-4)   --lambda L (0; complexity)\n"
          "  --label-smoothing E (0.2)  --mixup A (0 = off)  --pad P (2)  --no-flip\n"
          "  --train-subset N     --test-subset N (first N images; 0 = all)\n"
          "  --threads T          (default: the CPUs online)   --seed S (default 1)\n"
          "  --out DIR            log.csv, steps.csv, checkpoint.bin, training.png (default runs/MODE)\n"
          "  --resume CKPT        continue from a checkpoint   --eval CKPT  test accuracy only\n"
          "  --benchmark N        time N training steps and print one 'benchmark' line\n"
          "  --device cpu|cuda    (default cpu)\n"
          "  --precision P        fp32 (default) | tf32 | bf16: convolutions and GEMMs (cuda)\n"
          "  --quiet              no progress bar\n");
}

static int parse_strides(const char *s, float *out) {
  char *end;
  for (int i = 0; i < RN_STAGES; i++) {
    out[i] = strtof(s, &end);
    if (end == s || *end != (i + 1 < RN_STAGES ? ',' : '\0')) return -1;
    s = end + 1;
  }
  return 0;
}

static void defaults(options *o) {
  *o = (options){.data = "fashion-mnist", .lr = "0.01,400:0.1,18000:0.01,32000:0.001",
                 .device = "cpu", .epochs = 1, .batch = 128, .seed = 1};
  o->cfg = (rn_config){RN_DIFFSTRIDE, 1.0f, {1, 1, 2, 2, 2}, 4.0f, 0, 0, 0, 0};
  o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  o->opt = (rn_sgd){0.9f, 5e-4f};
  o->aug = (rn_augment){2, 1, 0.0f, 0.2f};
}

/* Whole-string numbers: -1 unless all of v parses. */
static int to_float(const char *v, float *out) {
  char *end;
  *out = strtof(v, &end);
  return end != v && *end == '\0' && isfinite(*out) ? 0 : -1;
}

static int to_int(const char *v, int *out, int min) {
  char *end;
  long x = strtol(v, &end, 10);
  *out = (int)x;
  return end != v && *end == '\0' && x >= min && x <= 1000000000L ? 0 : -1;
}

/* One option; -1 on a bad value. */
static int apply(options *o, int key, const char *v) {
  float f;
  switch (key) {
    case 'd': o->data = v; return 0;
    case 'm': return rn_mode_parse(v, &o->cfg.mode);
    case 's': return parse_strides(v, o->cfg.strides);
    case 'w': return to_float(v, &o->cfg.width);
    case 'R': return to_float(v, &o->cfg.smoothness);
    case 'e': return to_int(v, &o->epochs, 1);
    case 'b': return to_int(v, &o->batch, 1);
    case 'l': o->lr = v; return 0;
    case 'M': return to_float(v, &o->opt.momentum);
    case 'W': return to_float(v, &o->opt.weight_decay);
    case 'L': return to_float(v, &o->lambda);
    case 'E': return to_float(v, &f) || !(f >= 0 && f < 1) ? -1 : (o->aug.smoothing = f, 0);
    case 'x': return to_float(v, &f) || f < 0 ? -1 : (o->aug.mixup = f, 0);
    case 'p': return to_int(v, &o->aug.pad, 0);
    case 'F': o->aug.flip = 0; return 0;
    case 'S': return to_int(v, &o->train_subset, 0);
    case 'T': return to_int(v, &o->test_subset, 0);
    case 't': return to_int(v, &o->threads, 1);
    case 'r': o->seed = strtoull(v, NULL, 10); return 0;
    case 'o': o->out = v; return 0;
    case 'c': o->resume = v; return 0;
    case 'v': o->eval = v; return 0;
    case 'B': return to_int(v, &o->benchmark, 1);
    case 'D': o->device = v; return 0;
    case 'q': o->quiet = 1; return 0;
    case 'P': return rn_precision_parse(v, &o->precision);
    default: return -1;
  }
}

static int parse(options *o, int argc, char **argv) {
  static const struct option longs[] = {
      {"data", 1, 0, 'd'}, {"mode", 1, 0, 'm'}, {"strides", 1, 0, 's'}, {"width", 1, 0, 'w'},
      {"smoothness", 1, 0, 'R'}, {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},
      {"momentum", 1, 0, 'M'}, {"weight-decay", 1, 0, 'W'}, {"lambda", 1, 0, 'L'},
      {"label-smoothing", 1, 0, 'E'}, {"mixup", 1, 0, 'x'}, {"pad", 1, 0, 'p'},
      {"no-flip", 0, 0, 'F'}, {"train-subset", 1, 0, 'S'}, {"test-subset", 1, 0, 'T'},
      {"threads", 1, 0, 't'}, {"seed", 1, 0, 'r'}, {"out", 1, 0, 'o'}, {"resume", 1, 0, 'c'},
      {"eval", 1, 0, 'v'}, {"benchmark", 1, 0, 'B'}, {"device", 1, 0, 'D'},
      {"quiet", 0, 0, 'q'}, {"precision", 1, 0, 'P'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  defaults(o);
  int key;
  while ((key = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    if (key == 'h') return usage(stdout), exit(0), 0;
    if (key == '?') return usage(stderr), -1;
    if (apply(o, key, optarg)) {
      const struct option *l = longs;
      while (l->val != key) l++;
      return fprintf(stderr, "resnet18: --%s: bad value '%s'\n", l->name, optarg), -1;
    }
  }
  if (optind < argc) return fprintf(stderr, "resnet18: unexpected argument '%s'\n", argv[optind]), -1;
  return 0;
}

/* ------------------------------------------------------------------ setup */

static int mkdir_p(const char *dir, rn_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    struct stat st;
    if (mkdir(path, 0777) != 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
      return rn_fail(err, "%s: cannot create the output directory", path);
    if (!(*p = c)) return 0;
  }
}

/* The network's config: from the checkpoint when resuming or evaluating
 * (its mode, width and strides win over the flags), else from the flags. */
static int network_config(const options *o, const rn_data *d, rn_config *cfg, rn_error *err) {
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

static int setup(const options *o, rn_data *d, rn_trainer *t, rn_error *err) {
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
  if (rn_schedule_parse(&t->schedule, o->lr, err)) return -1;
  const char *ckpt = o->resume ? o->resume : o->eval;
  return ckpt ? rn_checkpoint_load(t, ckpt, err) : 0;
}

/* ---------------------------------------------------------------- running */

/* DIR: --out, else runs/MODE. */
static int output_dir(const options *o, const rn_trainer *t, char *dir, size_t size, rn_error *err) {
  if (o->out) snprintf(dir, size, "%s", o->out);
  else snprintf(dir, size, "runs/%s", rn_mode_name(t->model.cfg.mode));
  return mkdir_p(dir, err);
}

/* After an epoch: test accuracy, the epoch's line, the CSV row, the checkpoint. */
static int finish_epoch(const options *o, const rn_data *d, rn_trainer *t, const char *dir,
                        const rn_epoch_stats *s, rn_record *r, rn_error *err) {
  double acc, loss;
  char path[4096];
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  rn_record_fill(r, t, s, acc, loss);
  rn_print_record(stdout, r, o->epochs, t->model.cfg.mode);
  snprintf(path, sizeof path, "%s/log.csv", dir);
  if (rn_csv_append(path, r, err)) return -1;
  snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
  return rn_checkpoint_save(t, path, err);
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

static int train(const options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  char dir[3000];
  if (output_dir(o, t, dir, sizeof dir, err)) return -1;
  printf("resnet18 %s on %s: %d train / %d test images %dx%dx%d, width %g, %zu parameters, %d threads\n",
         rn_mode_name(t->model.cfg.mode), d->name, d->train.count, d->test.count, d->train.h,
         d->train.w, d->train.c, (double)t->model.cfg.width, t->model.nparams, o->threads);
  rn_record *records = calloc((size_t)o->epochs, sizeof *records);
  rn_progress bar = {!o->quiet && isatty(2), 10, 0.0, t, rn_steps_open(dir, t->model.npools)};
  int count = 0, rc = records && bar.steps ? 0 : rn_fail(err, "%s/steps.csv: cannot open", dir);
  while (!rc && t->epoch < o->epochs) {
    rn_epoch_stats s;
    rc = rn_train_epoch(t, d, rn_progress_bar, &bar, &s, err) ||
         finish_epoch(o, d, t, dir, &s, &records[count++], err);
  }
  if (bar.steps) fclose(bar.steps);
  if (!rc) finish_run(dir, t, records, count);
  free(records);
  return rc ? -1 : 0;
}

static int evaluate_only(const options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  double acc, loss;
  if (rn_evaluate(t, d, &d->test, &acc, &loss, err)) return -1;
  printf("%s: epoch %d, %s, test accuracy %.2f%% (loss %.4f) on %d images\n", o->eval, t->epoch,
         rn_mode_name(t->model.cfg.mode), 100 * acc, loss, d->test.count);
  return 0;
}

/* Times o->benchmark training steps (after 2 warm-up steps) on full batches. */
static int benchmark(const options *o, const rn_data *d, rn_trainer *t, rn_error *err) {
  int n = o->batch, *idx = malloc(sizeof(int) * (size_t)n), correct;
  double loss, t0 = 0.0, lib0 = 0.0;
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
  options o;
  if (parse(&o, argc, argv)) return 2;
  rn_data d;
  rn_trainer t;
  rn_error err = {{0}};
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
