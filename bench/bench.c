/*
 * Benchmark of libdiffstride through its public header: DiffStride and fixed
 * spectral pooling, forward, backward and forward+backward, on a table of
 * shapes with strides (2, 2); "diffstride_train" is DiffStride through the
 * training calls (ds_diffstride_forward_training keeping a reserve,
 * ds_diffstride_backward_reserved reading it instead of x). One warm-up call per operation (it builds the
 * FFT plans), then the median time of --reps calls.
 *
 *   bench [--device cpu|cuda] [--threads T] [--reps R] [--shapes LIST] [--csv]
 *
 * LIST is comma separated, each item NxCxHxW (every layout of that shape in
 * the table) or NxCxHxW/nchw, NxCxHxW/nhwc; a shape that is not in the table
 * is run too (both layouts unless one is named).
 *
 * --device cpu (default): wall time; GB/s counts the bytes of x and y for
 * forward, dy, dx (and x, read for the stride gradient) for backward, and
 * both for forward+backward.
 *
 * --device cuda (only when compiled with -DDS_BENCH_CUDA): tensors in device
 * memory, a CUDA context on its own stream, times from CUDA events on that
 * stream. Bytes are those each call must move at least once: forward x, y;
 * backward x, dy, dx for DiffStride (x for the stride gradient; that call
 * waits for the device by design) and dy, dx for spectral pooling;
 * forward+backward x, y, dy, dx. The copy bandwidth is measured in the same
 * run, per shape: cudaMemcpyAsync device to device of bytes(x) + bytes(y),
 * counted as read + write. Per row: GB/s = bytes / time, "of copy" = GB/s /
 * copy GB/s, "floor x" = time / (bytes / copy GB/s). Per layer: the peak
 * extra device memory, free bytes (cudaMemGetInfo) before the first call on
 * a fresh context minus the least free after its first forward and first
 * backward. Exit status 2: built without CUDA; 3: no usable CUDA device.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef DS_BENCH_CUDA
#include <cuda_runtime_api.h>
#endif

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
#define TABLE_SHAPES (sizeof SHAPES / sizeof SHAPES[0])
static const float STRIDES[2] = {2.0f, 2.0f};

typedef struct options {
  int threads, reps, csv, cuda;
  const char *shapes; /* NULL: all */
} options;

/* The shapes to run, in order. */
typedef struct shape_list {
  shape *items;
  size_t count;
} shape_list;

/* Buffers and sizes of one shape; out_* are the diffstride (ds_) and
 * spectral pooling (sp_) output sizes. With --device cuda the buffers are
 * device pointers. */
typedef struct bench {
  ds_context *ctx;
  ds_diffstride_desc desc;
  shape s;
  int ds_h, ds_w, sp_h, sp_w;
  float *x, *y, *dy, *dx;
  void *reserve; /* of the training calls */
  size_t reserve_bytes;
  float dstrides[2];
} bench;

/* floats: read and written as the CPU rows count them; once: what a call
 * must move at least once (the CUDA rows). They differ only for
 * DiffStride's forward+backward, where x is counted twice or once. */
typedef struct op {
  const char *layer, *name;
  void (*run)(bench *);
  size_t (*floats)(const bench *);
  size_t (*once)(const bench *);
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

static size_t out_floats(const bench *b) {
  return ds_out_floats(b) > sp_out_floats(b) ? ds_out_floats(b) : sp_out_floats(b);
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

static void tr_fwd(bench *b) {
  check(ds_diffstride_forward_training(b->ctx, &b->desc, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES, b->x,
                                       b->ds_h, b->ds_w, b->y, b->reserve, b->reserve_bytes),
        "ds_diffstride_forward_training");
}

static void tr_bwd(bench *b) {
  check(ds_diffstride_backward_reserved(b->ctx, &b->desc, b->s.n, b->s.c, b->s.h, b->s.w, STRIDES,
                                        b->reserve, b->reserve_bytes, b->ds_h, b->ds_w, b->dy, b->dx,
                                        b->dstrides),
        "ds_diffstride_backward_reserved");
}

static void tr_fwdbwd(bench *b) {
  tr_fwd(b);
  tr_bwd(b);
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
static size_t ds_all_once(const bench *b) { return 2 * ds_fwd_floats(b); }
static size_t reserve_floats(const bench *b) { return b->reserve_bytes / sizeof(float); }
static size_t tr_fwd_floats(const bench *b) { return ds_fwd_floats(b) + reserve_floats(b); }
static size_t tr_bwd_floats(const bench *b) { return in_floats(b) + ds_out_floats(b) + reserve_floats(b); }
static size_t tr_all_floats(const bench *b) { return tr_fwd_floats(b) + tr_bwd_floats(b); }
static size_t sp_floats(const bench *b) { return in_floats(b) + sp_out_floats(b); }
static size_t sp_all_floats(const bench *b) { return 2 * sp_floats(b); }

/* Each layer's fwd, bwd and fwd+bwd, in that order. */
#define LAYER_OPS 3
static const op OPS[] = {
    {"diffstride", "fwd", ds_fwd, ds_fwd_floats, ds_fwd_floats},
    {"diffstride", "bwd", ds_bwd, ds_bwd_floats, ds_bwd_floats},
    {"diffstride", "fwd+bwd", ds_fwdbwd, ds_all_floats, ds_all_once},
    {"diffstride_train", "fwd", tr_fwd, tr_fwd_floats, tr_fwd_floats},
    {"diffstride_train", "bwd", tr_bwd, tr_bwd_floats, tr_bwd_floats},
    {"diffstride_train", "fwd+bwd", tr_fwdbwd, tr_all_floats, tr_all_floats},
    {"spectral_pool", "fwd", sp_fwd, sp_floats, sp_floats},
    {"spectral_pool", "bwd", sp_bwd, sp_floats, sp_floats},
    {"spectral_pool", "fwd+bwd", sp_fwdbwd, sp_all_floats, sp_all_floats},
};
#define NUM_OPS (sizeof OPS / sizeof OPS[0])

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

/* The median of count values (sorts them). */
static double median(double *times, int count) {
  qsort(times, (size_t)count, sizeof *times, cmp_double);
  return count % 2 ? times[count / 2] : 0.5 * (times[count / 2 - 1] + times[count / 2]);
}

/* Median wall time in ms of reps calls after one warm-up call. */
static double time_op(const op *o, bench *b, int reps, double *times) {
  o->run(b);
  for (int i = 0; i < reps; i++) {
    double t0 = now_ms();
    o->run(b);
    times[i] = now_ms() - t0;
  }
  return median(times, reps);
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

/* Descriptor and output sizes of shape s; no buffers yet. */
static void bench_sizes(bench *b, ds_context *ctx, shape s) {
  b->ctx = ctx;
  b->s = s;
  ds_diffstride_desc_init(&b->desc);
  b->desc.layout = (int)s.layout;
  check(ds_diffstride_output_size(&b->desc, s.h, s.w, STRIDES, &b->ds_h, &b->ds_w),
        "ds_diffstride_output_size");
  check(ds_spectral_pool_output_size(s.h, s.w, STRIDES, &b->sp_h, &b->sp_w),
        "ds_spectral_pool_output_size");
  check(ds_diffstride_reserve_size(&b->desc, s.n, s.c, s.h, s.w, STRIDES, &b->reserve_bytes),
        "ds_diffstride_reserve_size");
}

static void bench_init(bench *b, ds_context *ctx, shape s) {
  bench_sizes(b, ctx, s);
  b->x = alloc_floats(in_floats(b));
  b->dx = alloc_floats(in_floats(b));
  b->y = alloc_floats(out_floats(b));
  b->dy = alloc_floats(out_floats(b));
  b->reserve = xmalloc(b->reserve_bytes);
  fill(b->x, in_floats(b), 1u);
  fill(b->dy, out_floats(b), 2u);
}

static void bench_free(bench *b) {
  free(b->x);
  free(b->dx);
  free(b->y);
  free(b->dy);
  free(b->reserve);
}

/* ------------------------------------------------------------------- output */

static const char *layout_name(ds_layout layout) {
  return layout == DS_LAYOUT_NHWC ? "nhwc" : "nchw";
}

static void dims_name(const shape *s, char *dims, size_t size) {
  snprintf(dims, size, "%dx%dx%dx%d", s->n, s->c, s->h, s->w);
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
  dims_name(&b->s, dims, sizeof dims);
  double gbs = (double)(o->floats(b) * sizeof(float)) / (ms * 1e6);
  const char *fmt = opt->csv ? "%s,%s,%s,%s,%.4f,%.3f\n" : "%-16s %-6s %-14s %-8s %10.3f %8.2f\n";
  printf(fmt, dims, layout_name(b->s.layout), o->layer, o->name, ms, gbs);
  fflush(stdout);
}

/* --------------------------------------------------------------------- CUDA */

#ifdef DS_BENCH_CUDA

#define COPY_REPS_MIN 11 /* the copy bandwidth is the median of at least this many copies */

/* The stream every call and copy goes on, its timing events, the device. */
typedef struct gpu {
  cudaStream_t stream;
  cudaEvent_t start, stop;
  char name[256];
} gpu;

/* One shape's measurements shared by its rows. */
typedef struct gpu_shape {
  double copy_gbs;  /* measured copy bandwidth, read + write */
  size_t extra;     /* peak extra device memory of the layer in progress */
} gpu_shape;

static void cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return;
  fprintf(stderr, "bench: %s failed: %s (%s)\n", what, cudaGetErrorName(e), cudaGetErrorString(e));
  exit(EXIT_FAILURE);
}

static float *device_floats(size_t count) {
  void *p = NULL;
  cuda_check(cudaMalloc(&p, count * sizeof(float)), "cudaMalloc");
  return p;
}

/* A device buffer holding fill(count, seed). */
static float *device_filled(size_t count, unsigned seed) {
  float *host = alloc_floats(count), *dev = device_floats(count);
  fill(host, count, seed);
  cuda_check(cudaMemcpy(dev, host, count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
  free(host);
  return dev;
}

static void gpu_bench_init(bench *b, shape s) {
  bench_sizes(b, NULL, s);
  b->x = device_filled(in_floats(b), 1u);
  b->dy = device_filled(out_floats(b), 2u);
  b->dx = device_floats(in_floats(b));
  b->y = device_floats(out_floats(b));
  b->reserve = device_floats(reserve_floats(b));
}

static void gpu_bench_free(bench *b) {
  cuda_check(cudaFree(b->x), "cudaFree");
  cuda_check(cudaFree(b->dx), "cudaFree");
  cuda_check(cudaFree(b->y), "cudaFree");
  cuda_check(cudaFree(b->dy), "cudaFree");
  cuda_check(cudaFree(b->reserve), "cudaFree");
}

/* A CUDA context on the stream; NULL (with ds_last_error() set) when
 * none can be created. */
static ds_context *gpu_context(const gpu *g) {
  ds_context *ctx = NULL;
  if (ds_context_create(DS_DEVICE_CUDA, &ctx) != DS_OK) return NULL;
  check(ds_context_set_stream(ctx, g->stream), "ds_context_set_stream");
  return ctx;
}

static void gpu_open(gpu *g) {
  int device = 0;
  struct cudaDeviceProp prop;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  snprintf(g->name, sizeof g->name, "%s", prop.name);
  for (char *p = g->name; *p; p++)
    if (*p == ',') *p = ' '; /* the name is a CSV field */
  cuda_check(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda_check(cudaEventCreate(&g->start), "cudaEventCreate");
  cuda_check(cudaEventCreate(&g->stop), "cudaEventCreate");
}

static void gpu_close(gpu *g) {
  cuda_check(cudaEventDestroy(g->start), "cudaEventDestroy");
  cuda_check(cudaEventDestroy(g->stop), "cudaEventDestroy");
  cuda_check(cudaStreamDestroy(g->stream), "cudaStreamDestroy");
}

/* ms between the start and stop events, once stop has completed. */
static double event_ms(const gpu *g) {
  float ms = 0.0f;
  cuda_check(cudaEventSynchronize(g->stop), "cudaEventSynchronize (a kernel or copy failed)");
  cuda_check(cudaEventElapsedTime(&ms, g->start, g->stop), "cudaEventElapsedTime");
  return (double)ms;
}

/* Median ms of reps calls after one warm-up call, each call alone between
 * two events on the stream (the host waits for each before the next). */
static double gpu_time_op(const op *o, bench *b, const gpu *g, int reps, double *times) {
  o->run(b);
  cuda_check(cudaStreamSynchronize(g->stream), "cudaStreamSynchronize (warm-up call)");
  for (int i = 0; i < reps; i++) {
    cuda_check(cudaEventRecord(g->start, g->stream), "cudaEventRecord");
    o->run(b);
    cuda_check(cudaEventRecord(g->stop, g->stream), "cudaEventRecord");
    times[i] = event_ms(g);
  }
  return median(times, reps);
}

/* Copy bandwidth in GB/s (read + write) of cudaMemcpyAsync device to
 * device of `bytes`: median of reps copies after one warm-up copy. */
static double copy_gbs(const gpu *g, size_t bytes, int reps, double *times) {
  void *src = NULL, *dst = NULL;
  cuda_check(cudaMalloc(&src, bytes), "cudaMalloc");
  cuda_check(cudaMalloc(&dst, bytes), "cudaMalloc");
  cuda_check(cudaMemsetAsync(src, 0, bytes, g->stream), "cudaMemsetAsync");
  for (int i = -1; i < reps; i++) {
    cuda_check(cudaEventRecord(g->start, g->stream), "cudaEventRecord");
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream),
               "cudaMemcpyAsync");
    cuda_check(cudaEventRecord(g->stop, g->stream), "cudaEventRecord");
    double ms = event_ms(g);
    if (i >= 0) times[i] = ms;
  }
  cuda_check(cudaFree(src), "cudaFree");
  cuda_check(cudaFree(dst), "cudaFree");
  return 2.0 * (double)bytes / (median(times, reps) * 1e6);
}

static size_t free_device_bytes(const gpu *g) {
  size_t free_bytes = 0, total = 0;
  cuda_check(cudaStreamSynchronize(g->stream), "cudaStreamSynchronize");
  cuda_check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
  return free_bytes;
}

/* Peak extra device memory of a layer (ops: its fwd, bwd): free bytes
 * before its first call on b->ctx (fresh) minus the least free after the
 * first forward and after the first backward. */
static size_t first_calls_extra(bench *b, const op *ops, const gpu *g) {
  size_t before = free_device_bytes(g);
  ops[0].run(b);
  size_t least = free_device_bytes(g);
  ops[1].run(b);
  size_t after_bwd = free_device_bytes(g);
  if (after_bwd < least) least = after_bwd;
  return before > least ? before - least : 0;
}

static void gpu_header(const options *opt, const gpu *g) {
  if (opt->csv) {
    printf("device,shape,layout,layer,op,ms,gb_s,copy_gb_s,copy_frac,floor_ratio,extra_bytes,"
           "extra_x\n");
    return;
  }
  printf("libdiffstride %s on CUDA (%s), median of %d reps (CUDA events), strides (2, 2)\n",
         ds_version_string(), g->name, opt->reps);
  printf("bytes: fwd x+y; bwd x+dy+dx (spectral_pool dy+dx); fwd+bwd x+y+dy+dx; each once\n");
  printf("copy: cudaMemcpyAsync device to device of bytes(x)+bytes(y), read+write counted\n");
  printf("%-16s %-6s %-14s %-8s %10s %8s %8s %8s\n", "shape", "layout", "layer", "op", "ms", "GB/s",
         "of copy", "floor x");
}

static void gpu_row(const options *opt, const gpu *g, const bench *b, const op *o, double ms,
                    const gpu_shape *m) {
  char dims[64];
  dims_name(&b->s, dims, sizeof dims);
  double bytes = (double)(o->once(b) * sizeof(float)), gbs = bytes / (ms * 1e6);
  double floor_ratio = ms / (bytes / (m->copy_gbs * 1e6));
  if (opt->csv)
    printf("%s,%s,%s,%s,%s,%.4f,%.3f,%.3f,%.4f,%.4f,%zu,%.4f\n", g->name, dims,
           layout_name(b->s.layout), o->layer, o->name, ms, gbs, m->copy_gbs, gbs / m->copy_gbs,
           floor_ratio, m->extra, (double)m->extra / (double)(in_floats(b) * sizeof(float)));
  else
    printf("%-16s %-6s %-14s %-8s %10.3f %8.1f %8.3f %8.2f\n", dims, layout_name(b->s.layout),
           o->layer, o->name, ms, gbs, gbs / m->copy_gbs, floor_ratio);
  fflush(stdout);
}

/* "NxCxHxW layout " before a text line of its own. */
static void gpu_line_start(const bench *b) {
  char dims[64];
  dims_name(&b->s, dims, sizeof dims);
  printf("%-16s %-6s ", dims, layout_name(b->s.layout));
}

static void gpu_copy_line(const options *opt, const bench *b, size_t bytes, double gbs) {
  if (opt->csv) return;
  gpu_line_start(b);
  printf("copy bandwidth %.1f GB/s (%.1f MB copied, read + write counted)\n", gbs,
         (double)bytes / 1e6);
}

static void gpu_memory_line(const options *opt, const bench *b, const char *layer, size_t extra) {
  if (opt->csv) return;
  gpu_line_start(b);
  printf("%-14s peak extra device memory %.2f MB = %.2f x sizeof(x)\n", layer, (double)extra / 1e6,
         (double)extra / (double)(in_floats(b) * sizeof(float)));
}

/* A fresh CUDA context for b; exits if none can be created. */
static void gpu_fresh_context(bench *b, const gpu *g) {
  b->ctx = gpu_context(g);
  if (!b->ctx) die("ds_context_create(DS_DEVICE_CUDA)", DS_ERR_UNSUPPORTED);
}

/* One layer (ops: its fwd, bwd, fwd+bwd) on one shape: a throw-away
 * context first (its calls load the kernels and cuFFT's code for this
 * shape), then a fresh one for the memory measurement and the timings. */
static void gpu_bench_layer(const options *opt, const gpu *g, bench *b, const op *ops,
                            gpu_shape *m, double *times) {
  gpu_fresh_context(b, g);
  ops[0].run(b);
  ops[1].run(b);
  ds_context_destroy(b->ctx);
  gpu_fresh_context(b, g);
  m->extra = first_calls_extra(b, ops, g);
  for (int i = 0; i < LAYER_OPS; i++)
    gpu_row(opt, g, b, &ops[i], gpu_time_op(&ops[i], b, g, opt->reps, times), m);
  ds_context_destroy(b->ctx);
  b->ctx = NULL;
  gpu_memory_line(opt, b, ops[0].layer, m->extra);
}

static void gpu_bench_shape(const options *opt, const gpu *g, shape s, double *times) {
  bench b;
  gpu_shape m = {0.0, 0};
  gpu_bench_init(&b, s);
  int copy_reps = opt->reps > COPY_REPS_MIN ? opt->reps : COPY_REPS_MIN;
  size_t copy_bytes = (in_floats(&b) + ds_out_floats(&b)) * sizeof(float);
  m.copy_gbs = copy_gbs(g, copy_bytes, copy_reps, times);
  gpu_copy_line(opt, &b, copy_bytes, m.copy_gbs);
  for (size_t i = 0; i < NUM_OPS; i += LAYER_OPS) gpu_bench_layer(opt, g, &b, &OPS[i], &m, times);
  gpu_bench_free(&b);
}

static int gpu_main(const options *opt, const shape_list *shapes) {
  ds_context *probe = NULL;
  if (ds_context_create(DS_DEVICE_CUDA, &probe) != DS_OK) {
    fprintf(stderr, "bench: --device cuda: no usable CUDA device: %s\n", ds_last_error());
    return 3;
  }
  ds_context_destroy(probe);
  gpu g;
  gpu_open(&g);
  int slots = opt->reps > COPY_REPS_MIN ? opt->reps : COPY_REPS_MIN;
  double *times = xmalloc((size_t)slots * sizeof *times);
  gpu_header(opt, &g);
  for (size_t i = 0; i < shapes->count; i++) gpu_bench_shape(opt, &g, shapes->items[i], times);
  free(times);
  gpu_close(&g);
  return EXIT_SUCCESS;
}

#else

static int gpu_main(const options *opt, const shape_list *shapes) {
  (void)opt, (void)shapes;
  fprintf(stderr,
          "bench: --device cuda: this bench was built without CUDA support; build it with "
          "-DDS_BENCH_CUDA -I$CUDA_HOME/include against a libdiffstride with the CUDA path "
          "(make bench-gpu does both)\n");
  return 2;
}

#endif /* DS_BENCH_CUDA */

/* ------------------------------------------------------------------ options */

/* Whether the comma-separated list names the table shape ("NxCxHxW" or
 * "NxCxHxW/layout"); a NULL list selects every shape. */
static int selected(const char *list, const shape *s) {
  if (!list) return 1;
  char dims[64], full[72];
  dims_name(s, dims, sizeof dims);
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

/* The shapes item (len chars) names: 1 with a layout suffix, 2 (NCHW, NHWC)
 * without; 0 when it is not NxCxHxW[/nchw|/nhwc] with positive sizes. */
static int parse_item(const char *item, size_t len, shape out[2]) {
  char text[80];
  int n, c, h, w, used = 0;
  if (len >= sizeof text) return 0;
  memcpy(text, item, len);
  text[len] = '\0';
  if (sscanf(text, "%dx%dx%dx%d%n", &n, &c, &h, &w, &used) != 4 || n < 1 || c < 1 || h < 1 ||
      w < 1 || text[0] < '0' || text[0] > '9')
    return 0;
  shape s = {n, c, h, w, DS_LAYOUT_NCHW};
  out[0] = out[1] = s;
  out[1].layout = DS_LAYOUT_NHWC;
  if (!text[used]) return 2;
  if (!strcmp(text + used, "/nhwc")) out[0] = out[1];
  return !strcmp(text + used, "/nchw") || !strcmp(text + used, "/nhwc") ? 1 : 0;
}

static int same_shape(const shape *a, const shape *b) {
  return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->layout == b->layout;
}

/* Whether the table holds s (with any layout when any_layout). */
static int in_table(const shape *s, int any_layout) {
  for (size_t i = 0; i < TABLE_SHAPES; i++) {
    shape t = SHAPES[i];
    if (any_layout) t.layout = s->layout;
    if (same_shape(&t, s)) return 1;
  }
  return 0;
}

static void add_shape(shape_list *l, const shape *s) {
  for (size_t i = 0; i < l->count; i++)
    if (same_shape(&l->items[i], s)) return;
  l->items[l->count++] = *s;
}

/* The shapes of the list not in the table, appended to l; exits on an
 * item that is not a shape. */
static void add_extra_shapes(shape_list *l, const char *list) {
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    shape s[2];
    int count = parse_item(p, len, s);
    if (!count) {
      fprintf(stderr, "bench: --shapes: '%.*s' is not NxCxHxW[/nchw|/nhwc]\n", (int)len, p);
      exit(EXIT_FAILURE);
    }
    if (!in_table(&s[0], count == 2))
      for (int i = 0; i < count; i++) add_shape(l, &s[i]);
    p += len + (p[len] == ',');
  }
}

/* The table's shapes the list selects, in table order, then the list's
 * shapes that are not in the table, in list order. */
static shape_list select_shapes(const char *list) {
  size_t items = 1;
  for (const char *p = list; p && *p; p++) items += *p == ',';
  shape_list l = {xmalloc((TABLE_SHAPES + 2 * items) * sizeof(shape)), 0};
  for (size_t i = 0; i < TABLE_SHAPES; i++)
    if (selected(list, &SHAPES[i])) add_shape(&l, &SHAPES[i]);
  if (list) add_extra_shapes(&l, list);
  return l;
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
          "usage: bench [--device cpu|cuda] [--threads T] [--reps R] "
          "[--shapes NxCxHxW[/nchw|/nhwc],...] [--csv]\n");
}

/* 1 for "cuda", 0 for "cpu"; exits on anything else. */
static int parse_device(const char *text) {
  if (text && !strcmp(text, "cpu")) return 0;
  if (text && !strcmp(text, "cuda")) return 1;
  fprintf(stderr, "bench: --device needs cpu or cuda, got '%s'\n", text ? text : "(nothing)");
  exit(EXIT_FAILURE);
}

static options parse_options(int argc, char **argv) {
  options opt = {1, 9, 0, 0, NULL};
  for (int i = 1; i < argc; i++) {
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--threads")) {
      opt.threads = parse_int("--threads", next, 0);
      i++;
    } else if (!strcmp(argv[i], "--reps")) {
      opt.reps = parse_int("--reps", next, 1);
      i++;
    } else if (!strcmp(argv[i], "--device")) {
      opt.cuda = parse_device(next);
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
  for (size_t i = 0; i < NUM_OPS; i++)
    print_row(opt, &b, &OPS[i], time_op(&OPS[i], &b, opt->reps, times));
  bench_free(&b);
}

static int cpu_main(const options *opt, const shape_list *shapes) {
  ds_context *ctx = NULL;
  check(ds_context_create(DS_DEVICE_CPU, &ctx), "ds_context_create");
  check(ds_context_set_threads(ctx, opt->threads), "ds_context_set_threads");
  double *times = xmalloc((size_t)opt->reps * sizeof *times);
  print_header(opt);
  for (size_t i = 0; i < shapes->count; i++) bench_shape(opt, ctx, shapes->items[i], times);
  free(times);
  ds_context_destroy(ctx);
  return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
  options opt = parse_options(argc, argv);
  shape_list shapes = select_shapes(opt.shapes);
  if (!shapes.count) {
    fprintf(stderr, "bench: no shape matches '%s'\n", opt.shapes);
    free(shapes.items);
    return EXIT_FAILURE;
  }
  int status = opt.cuda ? gpu_main(&opt, &shapes) : cpu_main(&opt, &shapes);
  free(shapes.items);
  return status;
}
