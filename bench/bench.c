/*
 * Benchmark of libdiffstride through its public header: DiffStride and fixed
 * spectral pooling, forward, backward and forward+backward, on a table of
 * shapes with strides (2, 2). One warm-up call per operation (it builds the
 * FFT plans), then the median wall time of --reps calls.
 *
 *   bench [--threads T] [--reps R] [--shapes LIST] [--csv]
 *
 * LIST is comma separated, each item NxCxHxW (every layout of that shape) or
 * NxCxHxW/nchw, NxCxHxW/nhwc. GB/s counts the bytes of x and y for forward,
 * dy, dx (and x, read for the stride gradient) for backward, and both for
 * forward+backward.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diffstride.h"

typedef struct shape {
  int n, c, h, w;
  ds_layout layout;
} shape;

static const shape SHAPES[] = {
    {128, 64, 32, 32, DS_LAYOUT_NCHW},  {128, 64, 32, 32, DS_LAYOUT_NHWC},
    {128, 128, 16, 16, DS_LAYOUT_NCHW}, {128, 256, 8, 8, DS_LAYOUT_NCHW},
    {32, 64, 112, 112, DS_LAYOUT_NCHW}, {32, 128, 56, 56, DS_LAYOUT_NCHW},
    {32, 256, 28, 28, DS_LAYOUT_NCHW},
};
static const float STRIDES[2] = {2.0f, 2.0f};

typedef struct options {
  int threads, reps, csv;
  const char *shapes; /* NULL: all */
} options;

/* Buffers and sizes of one shape; out_* are the diffstride (ds_) and
 * spectral pooling (sp_) output sizes. */
typedef struct bench {
  ds_context *ctx;
  ds_diffstride_desc desc;
  shape s;
  int ds_h, ds_w, sp_h, sp_w;
  float *x, *y, *dy, *dx;
  float dstrides[2];
} bench;

typedef struct op {
  const char *layer, *name;
  void (*run)(bench *);
  size_t (*floats)(const bench *); /* floats read and written */
} op;

static void die(const char *what, ds_status status) {
  fprintf(stderr, "bench: %s failed: %s (%s)\n", what, ds_status_string(status), ds_last_error());
  exit(EXIT_FAILURE);
}

static void check(ds_status status, const char *what) {
  if (status != DS_OK) die(what, status);
}

static size_t in_floats(const bench *b) {
  return (size_t)b->s.n * (size_t)b->s.c * (size_t)b->s.h * (size_t)b->s.w;
}

static size_t ds_out_floats(const bench *b) {
  return (size_t)b->s.n * (size_t)b->s.c * (size_t)b->ds_h * (size_t)b->ds_w;
}

static size_t sp_out_floats(const bench *b) {
  return (size_t)b->s.n * (size_t)b->s.c * (size_t)b->sp_h * (size_t)b->sp_w;
}

/* ---------------------------------------------------------------- operations */

static void ds_fwd(bench *b) {
  check(ds_diffstride_forward(b->ctx, &b->desc, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES, b->x,
                              b->ds_h, b->ds_w, b->y),
        "ds_diffstride_forward");
}

static void ds_bwd(bench *b) {
  check(ds_diffstride_backward(b->ctx, &b->desc, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES, b->x,
                               b->ds_h, b->ds_w, b->dy, b->dx, b->dstrides),
        "ds_diffstride_backward");
}

static void ds_fwdbwd(bench *b) {
  ds_fwd(b);
  ds_bwd(b);
}

static void sp_fwd(bench *b) {
  check(ds_spectral_pool_forward(b->ctx, (int)b->s.layout, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES,
                                 b->x, b->sp_h, b->sp_w, b->y),
        "ds_spectral_pool_forward");
}

static void sp_bwd(bench *b) {
  check(ds_spectral_pool_backward(b->ctx, (int)b->s.layout, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES,
                                  b->sp_h, b->sp_w, b->dy, b->dx),
        "ds_spectral_pool_backward");
}

static void sp_fwdbwd(bench *b) {
  sp_fwd(b);
  sp_bwd(b);
}

static size_t ds_fwd_floats(const bench *b) { return in_floats(b) + ds_out_floats(b); }
static size_t ds_bwd_floats(const bench *b) { return 2 * in_floats(b) + ds_out_floats(b); }
static size_t ds_all_floats(const bench *b) { return ds_fwd_floats(b) + ds_bwd_floats(b); }
static size_t sp_floats(const bench *b) { return in_floats(b) + sp_out_floats(b); }
static size_t sp_all_floats(const bench *b) { return 2 * sp_floats(b); }

static const op OPS[] = {
    {"diffstride", "fwd", ds_fwd, ds_fwd_floats},
    {"diffstride", "bwd", ds_bwd, ds_bwd_floats},
    {"diffstride", "fwd+bwd", ds_fwdbwd, ds_all_floats},
    {"spectral_pool", "fwd", sp_fwd, sp_floats},
    {"spectral_pool", "bwd", sp_bwd, sp_floats},
    {"spectral_pool", "fwd+bwd", sp_fwdbwd, sp_all_floats},
};

/* ------------------------------------------------------------------- timing */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median wall time in ms of reps calls after one warm-up call. */
static double time_op(const op *o, bench *b, int reps, double *times) {
  o->run(b);
  for (int i = 0; i < reps; i++) {
    double t0 = now_ms();
    o->run(b);
    times[i] = now_ms() - t0;
  }
  qsort(times, (size_t)reps, sizeof *times, cmp_double);
  return reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
}

/* ------------------------------------------------------------------ buffers */

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes);
  if (!p) {
    fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
    exit(EXIT_FAILURE);
  }
  return p;
}

static float *alloc_floats(size_t count) { return xmalloc(count * sizeof(float)); }

/* Uniform values in [-1, 1) from a fixed linear congruential sequence. */
static void fill(float *p, size_t count, unsigned seed) {
  unsigned long long state = seed;
  for (size_t i = 0; i < count; i++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    p[i] = (float)(state >> 40) / (float)(1ULL << 23) - 1.0f;
  }
}

static void bench_init(bench *b, ds_context *ctx, shape s) {
  b->ctx = ctx;
  b->s = s;
  ds_diffstride_desc_init(&b->desc);
  b->desc.layout = (int)s.layout;
  check(ds_diffstride_output_size(&b->desc, s.h, s.w, STRIDES, &b->ds_h, &b->ds_w),
        "ds_diffstride_output_size");
  check(ds_spectral_pool_output_size(s.h, s.w, STRIDES, &b->sp_h, &b->sp_w),
        "ds_spectral_pool_output_size");
  size_t out = ds_out_floats(b) > sp_out_floats(b) ? ds_out_floats(b) : sp_out_floats(b);
  b->x = alloc_floats(in_floats(b));
  b->dx = alloc_floats(in_floats(b));
  b->y = alloc_floats(out);
  b->dy = alloc_floats(out);
  fill(b->x, in_floats(b), 1u);
  fill(b->dy, out, 2u);
}

static void bench_free(bench *b) {
  free(b->x);
  free(b->dx);
  free(b->y);
  free(b->dy);
}

/* ------------------------------------------------------------------- output */

static const char *layout_name(ds_layout layout) {
  return layout == DS_LAYOUT_NHWC ? "nhwc" : "nchw";
}

static void print_header(const options *opt) {
  if (opt->csv) {
    printf("shape,layout,layer,op,ms,gb_s\n");
    return;
  }
  printf("libdiffstride %s, %d thread(s), median of %d reps, strides (2, 2)\n", ds_version_string(),
         opt->threads, opt->reps);
  printf("%-16s %-6s %-14s %-8s %10s %8s\n", "shape", "layout", "layer", "op", "ms", "GB/s");
}

static void print_row(const options *opt, const bench *b, const op *o, double ms) {
  char dims[64];
  snprintf(dims, sizeof dims, "%dx%dx%dx%d", b->s.n, b->s.c, b->s.h, b->s.w);
  double gbs = (double)(o->floats(b) * sizeof(float)) / (ms * 1e6);
  const char *fmt = opt->csv ? "%s,%s,%s,%s,%.4f,%.3f\n" : "%-16s %-6s %-14s %-8s %10.3f %8.2f\n";
  printf(fmt, dims, layout_name(b->s.layout), o->layer, o->name, ms, gbs);
  fflush(stdout);
}

/* ------------------------------------------------------------------ options */

/* Whether the comma-separated list names the shape ("NxCxHxW" or
 * "NxCxHxW/layout"); a NULL list selects every shape. */
static int selected(const char *list, const shape *s) {
  if (!list) return 1;
  char dims[64], full[72];
  snprintf(dims, sizeof dims, "%dx%dx%dx%d", s->n, s->c, s->h, s->w);
  snprintf(full, sizeof full, "%s/%s", dims, layout_name(s->layout));
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    if ((len == strlen(dims) && !strncmp(p, dims, len)) ||
        (len == strlen(full) && !strncmp(p, full, len)))
      return 1;
    p += len + (p[len] == ',');
  }
  return 0;
}

static int parse_int(const char *flag, const char *text, int min) {
  char *end;
  errno = 0;
  long v = text ? strtol(text, &end, 10) : 0;
  if (!text || errno || *end || v < min || v > 1000000) {
    fprintf(stderr, "bench: %s needs an integer >= %d, got '%s'\n", flag, min,
            text ? text : "(nothing)");
    exit(EXIT_FAILURE);
  }
  return (int)v;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench [--threads T] [--reps R] [--shapes NxCxHxW[/nchw|/nhwc],...] "
          "[--csv]\n");
}

static options parse_options(int argc, char **argv) {
  options opt = {1, 9, 0, NULL};
  for (int i = 1; i < argc; i++) {
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--threads")) {
      opt.threads = parse_int("--threads", next, 0);
      i++;
    } else if (!strcmp(argv[i], "--reps")) {
      opt.reps = parse_int("--reps", next, 1);
      i++;
    } else if (!strcmp(argv[i], "--shapes") && next) {
      opt.shapes = argv[++i];
    } else if (!strcmp(argv[i], "--csv")) {
      opt.csv = 1;
    } else {
      usage(strcmp(argv[i], "--help") ? stderr : stdout);
      exit(strcmp(argv[i], "--help") ? EXIT_FAILURE : EXIT_SUCCESS);
    }
  }
  return opt;
}

/* --------------------------------------------------------------------- main */

static void bench_shape(const options *opt, ds_context *ctx, shape s, double *times) {
  bench b;
  bench_init(&b, ctx, s);
  for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
    print_row(opt, &b, &OPS[i], time_op(&OPS[i], &b, opt->reps, times));
  bench_free(&b);
}

static size_t count_selected(const char *list) {
  size_t count = 0;
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    count += (size_t)selected(list, &SHAPES[i]);
  return count;
}

int main(int argc, char **argv) {
  options opt = parse_options(argc, argv);
  if (!count_selected(opt.shapes)) {
    fprintf(stderr, "bench: no shape matches '%s'\n", opt.shapes);
    return EXIT_FAILURE;
  }
  ds_context *ctx = NULL;
  check(ds_context_create(DS_DEVICE_CPU, &ctx), "ds_context_create");
  check(ds_context_set_threads(ctx, opt.threads), "ds_context_set_threads");
  double *times = xmalloc((size_t)opt.reps * sizeof *times);
  print_header(&opt);
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    if (selected(opt.shapes, &SHAPES[i])) bench_shape(&opt, ctx, SHAPES[i], times);
  free(times);
  ds_context_destroy(ctx);
  return EXIT_SUCCESS;
}
