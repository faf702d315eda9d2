/* The CUDA path against the golden cases and against the CPU path, with
 * poisoned outputs, streams, concurrent contexts and allocation reuse.
 * Without a usable CUDA device it reports itself skipped and exits 0, unless
 * DS_REQUIRE_GPU=1 (make check-gpu), which makes that a failure. */
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../golden.h"
#include "../util.h"

/* A device copy of count floats of host (NULL: poisoned, every byte 0xff = NaN). */
static float *device(const float *host, size_t count) {
  float *d = NULL;
  ck_assert_int_eq(cudaMalloc((void **)&d, sizeof(float) * (count ? count : 1)), cudaSuccess);
  if (host)
    ck_assert_int_eq(cudaMemcpy(d, host, sizeof(float) * count, cudaMemcpyHostToDevice), cudaSuccess);
  else
    ck_assert_int_eq(cudaMemset(d, 0xff, sizeof(float) * (count ? count : 1)), cudaSuccess);
  return d;
}

static float *host(const float *d, size_t count) {
  float *h = malloc(sizeof(float) * (count ? count : 1));
  ck_assert_int_eq(cudaMemcpy(h, d, sizeof(float) * count, cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

static ds_context *gpu_context(void) {
  ds_context *ctx = NULL;
  ck_assert_msg(ds_context_create(DS_DEVICE_CUDA, &ctx) == DS_OK, "%s", ds_last_error());
  return ctx;
}

/* One layer call on both devices. */
typedef struct call {
  int op; /* 0 DiffStride, 1 spectral pooling, 2 DiffStride 1-D, 3 and 4: 0 and 2 by the training calls */
  ds_diffstride_desc d;
  int n, c, h, w, oh, ow;
  float s[2];
} call;

/* The training calls (forward keeping a reserve, backward reading it) in
 * the context's memory: 2-D (op 3) or 1-D (op 4). */
static void run_training(ds_context *ctx, int gpu, const call *k, const float *x, const float *dy, float *y, float *dx,
                         float *ds, ds_status st[2]) {
  size_t bytes = 0;
  ck_assert_int_eq(k->op == 3 ? ds_diffstride_reserve_size(&k->d, k->n, k->c, k->h, k->w, k->s, &bytes)
                              : ds_diffstride1d_reserve_size(&k->d, k->n, k->c, k->w, k->s[1], &bytes),
                   DS_OK);
  void *reserve = NULL;
  if (gpu)
    ck_assert_int_eq(cudaMalloc(&reserve, bytes), cudaSuccess);
  else
    reserve = malloc(bytes);
  if (k->op == 3) {
    st[0] = ds_diffstride_forward_training(ctx, &k->d, k->n, k->c, k->h, k->w, k->s, x, k->oh, k->ow, y, reserve,
                                           bytes);
    st[1] = ds_diffstride_backward_reserved(ctx, &k->d, k->n, k->c, k->h, k->w, k->s, reserve, bytes, k->oh, k->ow,
                                            dy, dx, ds);
  } else {
    st[0] = ds_diffstride1d_forward_training(ctx, &k->d, k->n, k->c, k->w, k->s[1], x, k->ow, y, reserve, bytes);
    st[1] = ds_diffstride1d_backward_reserved(ctx, &k->d, k->n, k->c, k->w, k->s[1], reserve, bytes, k->ow, dy, dx,
                                              ds + 1);
  }
  if (gpu)
    cudaFree(reserve);
  else
    free(reserve);
}

/* y, dx, dstrides of the call on ctx; tensors are host arrays copied in and out. */
static void run(ds_context *ctx, int gpu, const call *k, const float *x, const float *dy, float *y, float *dx, float *ds) {
  size_t in = (size_t)k->n * k->c * k->h * k->w, out = (size_t)k->n * k->c * k->oh * k->ow;
  const float *xi = gpu ? device(x, in) : x, *dyi = gpu ? device(dy, out) : dy;
  float *yo = gpu ? device(NULL, out) : y, *dxo = gpu ? device(NULL, in) : dx;
  ds_status a, b;
  if (k->op == 0) {
    a = ds_diffstride_forward(ctx, &k->d, k->n, k->c, k->h, k->w, k->s, xi, k->oh, k->ow, yo);
    b = ds_diffstride_backward(ctx, &k->d, k->n, k->c, k->h, k->w, k->s, xi, k->oh, k->ow, dyi, dxo, ds);
  } else if (k->op == 1) {
    a = ds_spectral_pool_forward(ctx, k->d.layout, k->n, k->c, k->h, k->w, k->s, xi, k->oh, k->ow, yo);
    b = ds_spectral_pool_backward(ctx, k->d.layout, k->n, k->c, k->h, k->w, k->s, k->oh, k->ow, dyi, dxo);
  } else if (k->op == 2) {
    a = ds_diffstride1d_forward(ctx, &k->d, k->n, k->c, k->w, k->s[1], xi, k->ow, yo);
    b = ds_diffstride1d_backward(ctx, &k->d, k->n, k->c, k->w, k->s[1], xi, k->ow, dyi, dxo, ds + 1);
  } else { /* 3, 4 */
    ds_status st[2];
    run_training(ctx, gpu, k, xi, dyi, yo, dxo, ds, st);
    a = st[0], b = st[1];
  }
  ck_assert_msg(a == DS_OK && b == DS_OK, "%s", ds_context_last_error(ctx));
  if (!gpu) return;
  float *yh = host(yo, out), *dxh = host(dxo, in);
  memcpy(y, yh, sizeof(float) * out), memcpy(dx, dxh, sizeof(float) * in);
  free(yh), free(dxh);
  cudaFree((void *)xi), cudaFree((void *)dyi), cudaFree(yo), cudaFree(dxo);
}

static void expect_close(const float *a, const float *b, size_t count, double tol, const char *what, int seed) {
  double err = rel_error_ff(a, b, count);
  ck_assert_msg(err < tol, "case %d: %s GPU vs CPU relative error %g >= %g", seed, what, err, tol);
}

/* A random call: odd and even sizes, both layouts, cropping off, shared
 * strides, limits, all four ops. */
static call random_call(unsigned seed) {
  unsigned st = seed * 2246822519u + 3u;
  call k;
  ds_diffstride_desc_init(&k.d);
  k.op = (int)rand_below(&st, 5);
  k.d.layout = (int)rand_below(&st, 2);
  k.d.cropping = rand_below(&st, 4) != 0;
  k.d.shared_stride = (k.op == 0 || k.op == 3) && rand_below(&st, 4) == 0;
  k.n = 1 + (int)rand_below(&st, 4), k.c = 1 + (int)rand_below(&st, 6);
  k.h = k.op == 2 || k.op == 4 ? 1 : 6 + (int)rand_below(&st, 60);
  k.w = 6 + (int)rand_below(&st, 60);
  k.s[0] = 1.0f + (float)rand_below(&st, 3000) / 1000.0f, k.s[1] = 1.0f + (float)rand_below(&st, 3000) / 1000.0f;
  if (k.op == 0 || k.op == 3) ck_assert_int_eq(ds_diffstride_output_size(&k.d, k.h, k.w, k.s, &k.oh, &k.ow), DS_OK);
  if (k.op == 1) ck_assert_int_eq(ds_spectral_pool_output_size(k.h, k.w, k.s, &k.oh, &k.ow), DS_OK);
  if (k.op == 2 || k.op == 4) ck_assert_int_eq(ds_diffstride1d_output_size(&k.d, k.w, k.s[1], &k.ow), DS_OK);
  if (k.op == 2 || k.op == 4) k.oh = 1;
  return k;
}

START_TEST(test_random_against_cpu) {
  call k = random_call((unsigned)_i);
  size_t in = (size_t)k.n * k.c * k.h * k.w, out = (size_t)k.n * k.c * k.oh * k.ow;
  float *x = malloc(sizeof(float) * in), *dy = malloc(sizeof(float) * out);
  float *y[2] = {malloc(sizeof(float) * out), malloc(sizeof(float) * out)};
  float *dx[2] = {malloc(sizeof(float) * in), malloc(sizeof(float) * in)}, ds[2][2] = {{0, 0}, {0, 0}};
  fill_random(x, in, (unsigned)_i), fill_random(dy, out, (unsigned)_i + 5u);
  ds_context *cpu = cpu_context(2), *gpu = gpu_context();
  run(cpu, 0, &k, x, dy, y[0], dx[0], ds[0]);
  run(gpu, 1, &k, x, dy, y[1], dx[1], ds[1]);
  expect_close(y[1], y[0], out, 1e-5, "y", _i);
  expect_close(dx[1], dx[0], in, 1e-5, "dx", _i);
  if (k.op != 1) expect_close(ds[1], ds[0], 2, 1e-4, "dstrides", _i);
  ds_context_destroy(cpu), ds_context_destroy(gpu);
  free(x), free(dy), free(y[0]), free(y[1]), free(dx[0]), free(dx[1]);
}
END_TEST

/* Every test vector on the GPU, both layouts, DiffStride 2-D and 1-D also
 * through the training calls (case _i / 4, layout _i % 2, training
 * _i / 2 % 2): y, dx and dstrides against the files. */
static char **paths;
static char paths_error[512];
static int ncases;

START_TEST(test_golden_on_gpu) {
  golden g;
  char err[256];
  ck_assert_msg(golden_load(paths[_i / 4], &g, err, sizeof err) == 0, "%s", err);
  int training = _i / 2 % 2;
  int op = g.op == GOLDEN_DIFFSTRIDE ? (training ? 3 : 0) : g.op == GOLDEN_DIFFSTRIDE1D ? (training ? 4 : 2) : 1;
  call k = {.op = op, .n = g.n, .c = g.c, .h = g.h, .w = g.w, .oh = g.out_h, .ow = g.out_w,
            .s = {(float)g.strides[0], (float)g.strides[1]}};
  k.d = (ds_diffstride_desc){(float)g.smoothness, g.cropping, g.shared, (float)g.lower, (float)g.upper, _i % 2};
  size_t in = (size_t)g.n * g.c * g.h * g.w, out = (size_t)g.n * g.c * g.out_h * g.out_w;
  float *x = to_float(g.x, in), *dy = to_float(g.dy, out), *y = malloc(sizeof(float) * out);
  float *dx = malloc(sizeof(float) * in), *t = malloc(sizeof(float) * (in > out ? in : out)), ds[2] = {0, 0};
  if (k.d.layout) to_nhwc(x, t, g.n, g.c, g.h, g.w), memcpy(x, t, sizeof(float) * in);
  if (k.d.layout) to_nhwc(dy, t, g.n, g.c, g.out_h, g.out_w), memcpy(dy, t, sizeof(float) * out);
  ds_context *gpu = gpu_context();
  run(gpu, 1, &k, x, dy, y, dx, ds);
  if (k.d.layout) to_nchw(y, t, g.n, g.c, g.out_h, g.out_w), memcpy(y, t, sizeof(float) * out);
  if (k.d.layout) to_nchw(dx, t, g.n, g.c, g.h, g.w), memcpy(dx, t, sizeof(float) * in);
  ck_assert_double_lt(rel_error_fd(y, g.y, out), 1e-5);
  ck_assert_double_lt(rel_error_fd(dx, g.dx, in), 1e-5);
  double scale = fmax(fabs(g.dstrides[0]), fabs(g.dstrides[1]));
  for (int i = 0; g.op != GOLDEN_SPECTRAL_POOL && i < 2; i++) ck_assert_double_le(fabs(ds[i] - g.dstrides[i]), 1e-4 * scale);
  ds_context_destroy(gpu);
  free(x), free(dy), free(y), free(dx), free(t);
  golden_free(&g);
}
END_TEST

/* Two host threads, each with its own context on its own stream, run the
 * same calls at once; each result equals the one of a lone context. */
typedef struct stream_job {
  call k;
  const float *x, *dy;
  float *y, *dx, ds[2];
  int ok;
} stream_job;

static void *stream_worker(void *arg) {
  stream_job *j = arg;
  cudaStream_t stream;
  ds_context *ctx = NULL;
  j->ok = cudaStreamCreate(&stream) == cudaSuccess && ds_context_create(DS_DEVICE_CUDA, &ctx) == DS_OK &&
          ds_context_set_stream(ctx, stream) == DS_OK;
  for (int rep = 0; j->ok && rep < 3; rep++) run(ctx, 1, &j->k, j->x, j->dy, j->y, j->dx, j->ds);
  ds_context_destroy(ctx);
  cudaStreamDestroy(stream);
  return NULL;
}

START_TEST(test_streams_and_contexts) {
  call k = random_call(1000u + (unsigned)_i);
  size_t in = (size_t)k.n * k.c * k.h * k.w, out = (size_t)k.n * k.c * k.oh * k.ow;
  float *x = malloc(sizeof(float) * in), *dy = malloc(sizeof(float) * out), ds[2] = {0, 0};
  float *y = malloc(sizeof(float) * out), *dx = malloc(sizeof(float) * in);
  fill_random(x, in, 3), fill_random(dy, out, 4);
  ds_context *lone = gpu_context();
  run(lone, 1, &k, x, dy, y, dx, ds);
  ds_context_destroy(lone);
  stream_job jobs[2];
  pthread_t tid[2];
  for (int t = 0; t < 2; t++) {
    jobs[t] = (stream_job){.k = k, .x = x, .dy = dy, .y = malloc(sizeof(float) * out), .dx = malloc(sizeof(float) * in)};
    ck_assert_int_eq(pthread_create(&tid[t], NULL, stream_worker, &jobs[t]), 0);
  }
  for (int t = 0; t < 2; t++) {
    pthread_join(tid[t], NULL);
    ck_assert_msg(jobs[t].ok, "thread %d could not set up its stream and context", t);
    expect_close(jobs[t].y, y, out, 1e-6, "y on a stream", _i);
    expect_close(jobs[t].dx, dx, in, 1e-6, "dx on a stream", _i);
    free(jobs[t].y), free(jobs[t].dx);
  }
  free(x), free(dy), free(y), free(dx);
}
END_TEST

/* A DiffStride call on device buffers of n x c x 32 x 32, strides 2. */
typedef struct mem_case {
  ds_diffstride_desc d;
  int n, c, oh, ow;
  float s[2], ds[2];
  size_t in;
  float *x, *y, *dx;
} mem_case;

static mem_case mem_setup(int n, int c) {
  mem_case k = {.n = n, .c = c, .s = {2.0f, 2.0f}};
  ds_diffstride_desc_init(&k.d);
  ck_assert_int_eq(ds_diffstride_output_size(&k.d, 32, 32, k.s, &k.oh, &k.ow), DS_OK);
  k.in = (size_t)n * c * 32 * 32;
  k.x = device(NULL, k.in), k.y = device(NULL, (size_t)n * c * k.oh * k.ow), k.dx = device(NULL, k.in);
  ck_assert_int_eq(cudaMemset(k.x, 0, sizeof(float) * k.in), cudaSuccess);
  ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
  return k;
}

/* A forward and a backward (dx and dstrides), then the device's free memory. */
static size_t mem_run(ds_context *ctx, mem_case *k) {
  size_t free_bytes, total;
  ck_assert_int_eq(ds_diffstride_forward(ctx, &k->d, k->n, k->c, 32, 32, k->s, k->x, k->oh, k->ow, k->y), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &k->d, k->n, k->c, 32, 32, k->s, k->x, k->oh, k->ow, k->y, k->dx, k->ds),
                   DS_OK);
  ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
  ck_assert_int_eq(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  return free_bytes;
}

static void mem_free(mem_case *k) { cudaFree(k->x), cudaFree(k->y), cudaFree(k->dx); }

/* After the first call on a shape, repeating it allocates no device memory. */
START_TEST(test_no_allocation_on_repeat) {
  mem_case k = mem_setup(8, 16);
  ds_context *ctx = gpu_context();
  size_t before = mem_run(ctx, &k), after = before;
  for (int rep = 0; rep < 5; rep++) after = mem_run(ctx, &k);
  ck_assert_msg(after == before, "free device memory went from %zu to %zu bytes", before, after);
  ds_context_destroy(ctx);
  mem_free(&k);
}
END_TEST

/* The memory goal: a forward and a backward on [128,64,32,32]
 * (strides 2) take at most the size of x in extra device memory, context,
 * plans, work areas and spectra together (free memory measured before the
 * context exists and after the calls). */
START_TEST(test_extra_memory_within_x) {
  mem_case k = mem_setup(128, 64);
  size_t before, total, x_bytes = sizeof(float) * k.in;
  ck_assert_int_eq(cudaMemGetInfo(&before, &total), cudaSuccess);
  ds_context *ctx = gpu_context();
  size_t after = mem_run(ctx, &k), extra = before > after ? before - after : 0;
  printf("extra device memory of a [128,64,32,32] forward+backward: %zu bytes (%.2f x sizeof(x))\n", extra,
         (double)extra / (double)x_bytes);
  ck_assert_msg(extra <= x_bytes, "extra device memory %zu bytes > sizeof(x) = %zu", extra, x_bytes);
  ds_context_destroy(ctx);
  mem_free(&k);
}
END_TEST

/* A CUDA context cannot promise bit-reproducible stride gradients (atomic
 * sums); it says so and stays usable; 0 is accepted. */
/* A reserve in device memory is checked on the device's copy of its
 * header: one written for another batch, or never written, is refused. */
START_TEST(test_reserve_header_on_gpu) {
  call k = {.op = 3, .n = 2, .c = 3, .h = 32, .w = 32, .s = {2.0f, 2.0f}};
  ds_diffstride_desc_init(&k.d);
  ck_assert_int_eq(ds_diffstride_output_size(&k.d, k.h, k.w, k.s, &k.oh, &k.ow), DS_OK);
  size_t in = (size_t)k.n * k.c * k.h * k.w, out = (size_t)k.n * k.c * k.oh * k.ow, bytes = 0;
  float *hx = malloc(sizeof(float) * in), ds[2] = {7.0f, 7.0f};
  fill_random(hx, in, 3u);
  float *x = device(hx, in), *y = device(NULL, out), *dy = device(hx, out), *dx = device(NULL, in);
  ck_assert_int_eq(ds_diffstride_reserve_size(&k.d, k.n, k.c, k.h, k.w, k.s, &bytes), DS_OK);
  void *reserve = NULL;
  ck_assert_int_eq(cudaMalloc(&reserve, bytes), cudaSuccess);
  ck_assert_int_eq(cudaMemset(reserve, 0, bytes), cudaSuccess);
  ds_context *ctx = gpu_context();
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, &k.d, k.n, k.c, k.h, k.w, k.s, reserve, bytes, k.oh, k.ow, dy,
                                                   dx, ds), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_context_last_error(ctx), "reserve: not written by a training forward");
  ck_assert_int_eq(ds_diffstride_forward_training(ctx, &k.d, k.n, k.c, k.h, k.w, k.s, x, k.oh, k.ow, y, reserve,
                                                  bytes), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, &k.d, 1, k.c, k.h, k.w, k.s, reserve, bytes, k.oh, k.ow, dy,
                                                   dx, ds), DS_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(ds_context_last_error(ctx),
                   "reserve: written for 6 images of 32x32 -> 24x24 (CUDA), this call has 3 of 32x32 -> 24x24 (CUDA)");
  ck_assert(ds[0] == 7.0f && ds[1] == 7.0f);
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, &k.d, k.n, k.c, k.h, k.w, k.s, reserve, bytes, k.oh, k.ow, dy,
                                                   dx, ds), DS_OK);
  ck_assert(isfinite(ds[0]) && isfinite(ds[1]));
  ds_context_destroy(ctx);
  cudaFree(reserve), cudaFree(x), cudaFree(y), cudaFree(dy), cudaFree(dx), free(hx);
}
END_TEST

START_TEST(test_reproducible_unsupported) {
  ds_context *ctx = gpu_context();
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 1), DS_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(ds_context_last_error(ctx), "atomics"));
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 0), DS_OK);
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 3), DS_ERR_INVALID_ARGUMENT);
  ds_context_destroy(ctx);
}
END_TEST

START_TEST(test_vectors_found) {
  ck_assert_msg(paths, "%s", paths_error);
}
END_TEST

static Suite *gpu_suite(void) {
  Suite *s = suite_create("gpu");
  TCase *tc = tcase_create("cuda");
  paths = golden_paths(paths_error, sizeof paths_error);
  for (ncases = 0; paths && paths[ncases];) ncases++;
  tcase_add_test(tc, test_vectors_found);
  tcase_add_loop_test(tc, test_golden_on_gpu, 0, 4 * ncases);
  tcase_add_loop_test(tc, test_random_against_cpu, 0, 48);
  tcase_add_loop_test(tc, test_streams_and_contexts, 0, 4);
  tcase_add_test(tc, test_no_allocation_on_repeat);
  tcase_add_test(tc, test_extra_memory_within_x);
  tcase_add_test(tc, test_reproducible_unsupported);
  tcase_add_test(tc, test_reserve_header_on_gpu);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  const char *require = getenv("DS_REQUIRE_GPU");
  ds_context *probe = NULL;
  if (ds_context_create(DS_DEVICE_CUDA, &probe) != DS_OK) {
    printf("gpu: GPU suite skipped: %s\n", ds_last_error());
    return require && !strcmp(require, "1") ? EXIT_FAILURE : EXIT_SUCCESS;
  }
  ds_context_destroy(probe);
  SRunner *sr = srunner_create(gpu_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed || ncases < 15 ? EXIT_FAILURE : EXIT_SUCCESS;
}
