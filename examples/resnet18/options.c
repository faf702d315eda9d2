/* The trainer's flags: defaults, ranges, parsing (options.h). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

void rn_usage(FILE *f) {
  fprintf(f,
          "usage: resnet18 [options]\n"
          "  --data SPEC          fashion-mnist[:DIR] (default), cifar10:DIR, cifar100:DIR,\n"
          "                       synthetic:HxWxC[:CLASSES]\n"
          "  --mode M             strided | spectral | diffstride (default diffstride)\n"
          "  --strides S          stem,block1..block4, each in [1, 1024] (default 1,1,2,2,2)\n"
          "  --width W            width multiplier of 64,64,128,256,512, in (0, 8] (default 1)\n"
          "  --smoothness R       DiffStride's R, > 0 (default 4)\n"
          "  --epochs N           1..100000 (default 1)     --batch B  1..65536 (default 128)\n"
          "  --lr SCHEDULE        LR[,STEP:LR...] piecewise constant in optimizer steps\n"
          "                       (default 0.01,400:0.1,18000:0.01,32000:0.001)\n"
          "  --momentum M [0,1) (0.9)  --weight-decay WD >= 0 (5e-4)  --lambda L >= 0 (0; complexity)\n"
          "  --label-smoothing E [0,1) (0.2)  --mixup A >= 0 (0 = off)  --pad P 0..1024 (2)  --no-flip\n"
          "  --train-subset N     --test-subset N (first N images; 0 = all)\n"
          "  --threads T          1..1024 (default: the CPUs online)   --seed S  0..2^64-1 (default 1)\n"
          "  --out DIR            log.csv, steps.csv, checkpoint.bin, training.png (default runs/MODE)\n"
          "  --resume CKPT        continue from a checkpoint   --eval CKPT  test accuracy only\n"
          "  --benchmark N        time N (1..1000000) training steps and print one 'benchmark' line\n"
          "  --device cpu|cuda    (default cpu)\n"
          "  --precision P        fp32 (default) | tf32 | bf16: convolutions and GEMMs (cuda)\n"
          "  --progress SECONDS   when stderr is not a terminal, a progress line every\n"
          "                       SECONDS, in (0, 86400] (default 30); a terminal gets a bar\n"
          "  --quiet              no progress bar or lines\n"
          "Under mpirun -np K (docs/trainer.md): the batch is split over the K ranks.\n"
          "  --sync-bn            batch norm statistics over the global batch (cpu)\n"
          "  --check-every N      steps between parameter checksums across the ranks,\n"
          "                       0..1000000 (default 100; 0: at epoch ends only)\n");
}

static void defaults(rn_options *o) {
  *o = (rn_options){.data = "fashion-mnist", .device = "cpu", .epochs = 1, .batch = 128, .seed = 1, .progress = 30.0f,
                    .check_every = 100};
  o->cfg = (rn_config){RN_DIFFSTRIDE, 1.0f, {1, 1, 2, 2, 2}, 4.0f, 0, 0, 0, 0};
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  o->threads = cpus < 1 ? 1 : cpus > RN_MAX_THREADS ? RN_MAX_THREADS : (int)cpus;
  o->opt = (rn_sgd){0.9f, 5e-4f};
  o->aug = (rn_augment){2, 1, 0.0f, 0.2f};
  rn_schedule_parse(&o->schedule, "0.01,400:0.1,18000:0.01,32000:0.001", NULL);
}

/* A numeric flag: the int (whole) or float field its value goes to, and its
 * range; lo or hi excluded when open_lo or open_hi; hi = FLT_MAX: no bound
 * but finiteness. */
typedef struct numeric {
  int key, whole;
  size_t offset;
  double lo, hi;
  int open_lo, open_hi;
} numeric;

#define FIELD(f) offsetof(rn_options, f)
static const numeric numerics[] = {
    {'w', 0, FIELD(cfg.width), 0, 8, 1, 0},          {'R', 0, FIELD(cfg.smoothness), 0, FLT_MAX, 1, 0},
    {'e', 1, FIELD(epochs), 1, RN_MAX_EPOCHS, 0, 0}, {'b', 1, FIELD(batch), 1, RN_MAX_BATCH, 0, 0},
    {'M', 0, FIELD(opt.momentum), 0, 1, 0, 1},       {'W', 0, FIELD(opt.weight_decay), 0, FLT_MAX, 0, 0},
    {'L', 0, FIELD(lambda), 0, FLT_MAX, 0, 0},        {'E', 0, FIELD(aug.smoothing), 0, 1, 0, 1},
    {'x', 0, FIELD(aug.mixup), 0, FLT_MAX, 0, 0},     {'p', 1, FIELD(aug.pad), 0, RN_MAX_SIDE, 0, 0},
    {'S', 1, FIELD(train_subset), 0, INT_MAX, 0, 0}, {'T', 1, FIELD(test_subset), 0, INT_MAX, 0, 0},
    {'t', 1, FIELD(threads), 1, RN_MAX_THREADS, 0, 0}, {'B', 1, FIELD(benchmark), 1, 1000000, 0, 0},
    {'g', 0, FIELD(progress), 0, 86400, 1, 0},       {'K', 1, FIELD(check_every), 0, 1000000, 0, 0},
};

/* "a number in (0, 8]", "a whole number >= 0", ... */
static const char *describe(const numeric *n, char *buf, size_t size) {
  const char *kind = n->whole ? "a whole number" : "a finite number";
  if (n->hi >= FLT_MAX) snprintf(buf, size, "%s %s %.10g", kind, n->open_lo ? ">" : ">=", n->lo);
  else snprintf(buf, size, "%s in %c%.10g, %.10g%c", kind, n->open_lo ? '(' : '[', n->lo, n->hi, n->open_hi ? ')' : ']');
  return buf;
}

/* All of v as one number (no blanks, no trailing text) in n's range. */
static int numeric_value(const numeric *n, const char *v, rn_options *o) {
  char *end;
  errno = 0;
  double x = n->whole ? (double)strtol(v, &end, 10) : strtod(v, &end);
  if (end == v || *end || errno || isspace((unsigned char)*v) || !isfinite(x) || x < n->lo || x > n->hi ||
      (n->open_lo && x == n->lo) || (n->open_hi && x == n->hi))
    return -1;
  if (n->whole) *(int *)((char *)o + n->offset) = (int)x;
  else *(float *)((char *)o + n->offset) = (float)x;
  return 0;
}

/* S0,S1,S2,S3,S4, each finite and in [1, RN_MAX_STRIDE]. */
static int parse_strides(const char *s, float *out) {
  char *end;
  for (int i = 0; i < RN_STAGES; i++) {
    double x = strtod(s, &end);
    if (end == s || isspace((unsigned char)*s) || *end != (i + 1 < RN_STAGES ? ',' : '\0') ||
        !(x >= 1.0 && x <= RN_MAX_STRIDE))
      return -1;
    out[i] = (float)x;
    s = end + 1;
  }
  return 0;
}

/* Digits only (strtoull alone would take "-1" as 2^64 - 1), below 2^64. */
static int parse_seed(const char *v, uint64_t *out) {
  char *end;
  if (!isdigit((unsigned char)*v)) return -1;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (*end || errno) return -1;
  *out = x;
  return 0;
}

/* A flag whose value is not a plain number: NULL when v is good, else what
 * is expected. */
static const char *apply_text(rn_options *o, int key, const char *v) {
  switch (key) {
    case 'd': return *v ? (o->data = v, NULL) : "a data set";
    case 'm': return rn_mode_parse(v, &o->cfg.mode) ? "strided, spectral or diffstride" : NULL;
    case 's': return parse_strides(v, o->cfg.strides) ? "five numbers S0,S1,S2,S3,S4, each in [1, 1024]" : NULL;
    case 'l':
      return rn_schedule_parse(&o->schedule, v, NULL)
                 ? "LR[,STEP:LR...]: at most 16 rates, finite and >= 0, from increasing steps"
                 : NULL;
    case 'r': return parse_seed(v, &o->seed) ? "a whole number in [0, 18446744073709551615]" : NULL;
    case 'o': return *v ? (o->out = v, NULL) : "a directory";
    case 'c': return *v ? (o->resume = v, NULL) : "a checkpoint file";
    case 'v': return *v ? (o->eval = v, NULL) : "a checkpoint file";
    case 'D': return o->device = v, NULL;
    case 'P': return rn_precision_parse(v, &o->precision) ? "fp32, tf32 or bf16" : NULL;
    default: return "no value";
  }
}

/* One flag and its value (NULL for the flags that take none). */
static int apply(rn_options *o, const struct option *flag, const char *v, rn_error *err) {
  char buf[96];
  const char *expect = NULL;
  if (flag->val == 'F') o->aug.flip = 0;
  else if (flag->val == 'q') o->quiet = 1;
  else if (flag->val == 'Y') o->sync_bn = 1;
  else if (flag->val == 'o' && strlen(v) > RN_MAX_OUT)
    return rn_fail(err, "--out: a directory name of %zu bytes: at most %d", strlen(v), RN_MAX_OUT);
  else {
    size_t i = 0, count = sizeof numerics / sizeof *numerics;
    while (i < count && numerics[i].key != flag->val) i++;
    if (i < count) expect = numeric_value(&numerics[i], v, o) ? describe(&numerics[i], buf, sizeof buf) : NULL;
    else expect = apply_text(o, flag->val, v);
  }
  return expect ? rn_fail(err, "--%s: bad value '%s': expected %s", flag->name, v, expect) : 0;
}

static const struct option longs[] = {
    {"data", 1, 0, 'd'}, {"mode", 1, 0, 'm'}, {"strides", 1, 0, 's'}, {"width", 1, 0, 'w'},
    {"smoothness", 1, 0, 'R'}, {"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},
    {"momentum", 1, 0, 'M'}, {"weight-decay", 1, 0, 'W'}, {"lambda", 1, 0, 'L'},
    {"label-smoothing", 1, 0, 'E'}, {"mixup", 1, 0, 'x'}, {"pad", 1, 0, 'p'},
    {"no-flip", 0, 0, 'F'}, {"train-subset", 1, 0, 'S'}, {"test-subset", 1, 0, 'T'},
    {"threads", 1, 0, 't'}, {"seed", 1, 0, 'r'}, {"out", 1, 0, 'o'}, {"resume", 1, 0, 'c'},
    {"eval", 1, 0, 'v'}, {"benchmark", 1, 0, 'B'}, {"device", 1, 0, 'D'},
    {"quiet", 0, 0, 'q'}, {"progress", 1, 0, 'g'}, {"precision", 1, 0, 'P'}, {"sync-bn", 0, 0, 'Y'},
    {"check-every", 1, 0, 'K'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};

int rn_options_parse(rn_options *o, int argc, char **argv, rn_error *err) {
  defaults(o);
  opterr = 0; /* the messages are ours */
  optind = 0; /* GNU: a fresh scan, also on a second call */
  int key, index;
  while ((key = getopt_long(argc, argv, ":", longs, &index)) != -1) {
    if (key == '?')
      return rn_fail(err, "unrecognized option '%s' (resnet18 --help lists the flags)", argv[optind - 1]);
    if (key == ':') return rn_fail(err, "option '%s' needs a value", argv[optind - 1]);
    if (key == 'h') return 1;
    if (apply(o, &longs[index], optarg, err)) return -1;
  }
  if (optind < argc) return rn_fail(err, "unexpected argument '%s'", argv[optind]);
  return 0;
}
