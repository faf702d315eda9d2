/* The CPU backend's threads and plan cache: results that do not depend on
 * the thread count, contexts used from several threads at once, and the
 * FFTW plans a context keeps (reused, added, evicted least recently used),
 * and FFTW's planner shared with a host thread that plans its own.
 * Check's asserts run on the main thread only: workers record their results
 * and the main thread compares them. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "util.h"

/* One batch through one op: DiffStride forward, then backward with dx and
 * dstrides; or spectral pooling forward and backward. */
typedef struct workload {
  int pool; /* 0: DiffStride (R = 4, cropping on), 1: spectral pooling */
  int layout;
  int n, c, h, w;
  float s[2];
} workload;

/* An even batch that splits evenly, an odd one (15 images, odd sizes) that
 * does not; both ops, both layouts. */
static const workload loads[] = {
    {0, DS_LAYOUT_NCHW, 4, 6, 32, 32, {2.0f, 2.0f}}, {0, DS_LAYOUT_NHWC, 4, 6, 32, 32, {2.0f, 2.0f}},
    {0, DS_LAYOUT_NCHW, 3, 5, 17, 23, {1.7f, 2.6f}}, {0, DS_LAYOUT_NHWC, 3, 5, 17, 23, {1.7f, 2.6f}},
    {1, DS_LAYOUT_NCHW, 4, 6, 32, 32, {2.0f, 2.0f}}, {1, DS_LAYOUT_NHWC, 4, 6, 32, 32, {2.0f, 2.0f}},
    {1, DS_LAYOUT_NCHW, 3, 5, 17, 23, {1.5f, 3.0f}}, {1, DS_LAYOUT_NHWC, 3, 5, 17, 23, {1.5f, 3.0f}},
};
#define NLOADS (int)(sizeof loads / sizeof loads[0])

/* What a workload produced: y (forward), dx and, for DiffStride, dstrides.
 * st is the first failing status (DS_OK if none). */
typedef struct result {
  size_t in, out;
  float *y, *dx;
  float ds[2];
  ds_status st;
} result;

static void result_free(result *r) {
  free(r->y), free(r->dx);
  r->y = r->dx = NULL;
}

/* Runs load on ctx into r. No Check calls: it also runs on worker threads.
 * The outputs start as NaN (0xff bytes), so an element a call leaves
 * unwritten cannot match a complete result. */
static ds_status run_load(ds_context *ctx, const workload *ld, unsigned seed, result *r) {
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  d.layout = ld->layout;
  int oh, ow;
  *r = (result){.st = ld->pool ? ds_spectral_pool_output_size(ld->h, ld->w, ld->s, &oh, &ow)
                               : ds_diffstride_output_size(&d, ld->h, ld->w, ld->s, &oh, &ow)};
  if (r->st != DS_OK) return r->st;
  r->in = (size_t)ld->n * ld->c * ld->h * ld->w, r->out = (size_t)ld->n * ld->c * oh * ow;
  float *x = malloc(sizeof(float) * r->in), *dy = malloc(sizeof(float) * r->out);
  r->y = malloc(sizeof(float) * r->out), r->dx = malloc(sizeof(float) * r->in);
  if (!x || !dy || !r->y || !r->dx) {
    free(x), free(dy), result_free(r);
    return r->st = DS_ERR_OUT_OF_MEMORY;
  }
  fill_random(x, r->in, seed), fill_random(dy, r->out, seed + 1000u);
  memset(r->y, 0xff, sizeof(float) * r->out), memset(r->dx, 0xff, sizeof(float) * r->in);
  memset(r->ds, 0xff, sizeof r->ds);
  if (ld->pool) {
    r->st = ds_spectral_pool_forward(ctx, ld->layout, ld->n, ld->c, ld->h, ld->w, ld->s, x, oh, ow, r->y);
    if (r->st == DS_OK)
      r->st = ds_spectral_pool_backward(ctx, ld->layout, ld->n, ld->c, ld->h, ld->w, ld->s, oh, ow, dy, r->dx);
    r->ds[0] = r->ds[1] = 0.0f;
  } else {
    r->st = ds_diffstride_forward(ctx, &d, ld->n, ld->c, ld->h, ld->w, ld->s, x, oh, ow, r->y);
    if (r->st == DS_OK)
      r->st = ds_diffstride_backward(ctx, &d, ld->n, ld->c, ld->h, ld->w, ld->s, x, oh, ow, dy, r->dx, r->ds);
  }
  free(x), free(dy);
  return r->st;
}

/* The reference result of a comparison: complete (finite everywhere, i.e.
 * no poison left) and not all zero, so that equality to it means something. */
static void check_reference(const result *r, const char *what) {
  ck_assert_msg(r->st == DS_OK, "%s: status %d", what, r->st);
  double ny = dot_ff(r->y, r->y, r->out), nx = dot_ff(r->dx, r->dx, r->in);
  ck_assert_msg(isfinite(ny) && ny > 0.0 && isfinite(nx) && nx > 0.0, "%s: |y|^2 %g, |dx|^2 %g", what, ny, nx);
  ck_assert_msg(isfinite(r->ds[0]) && isfinite(r->ds[1]), "%s: dstrides %g %g", what, r->ds[0], r->ds[1]);
}

/* y and dx bitwise equal; dstrides bitwise (exact_ds) or within 1e-6 relative. */
static void check_same(const result *r, const result *ref, int exact_ds, const char *what) {
  ck_assert_msg(r->st == DS_OK, "%s: status %d", what, r->st);
  ck_assert_msg(r->in == ref->in && r->out == ref->out, "%s: sizes differ", what);
  ck_assert_msg(!memcmp(r->y, ref->y, sizeof(float) * r->out), "%s: y differs", what);
  ck_assert_msg(!memcmp(r->dx, ref->dx, sizeof(float) * r->in), "%s: dx differs", what);
  if (exact_ds)
    ck_assert_msg(!memcmp(r->ds, ref->ds, sizeof r->ds), "%s: dstrides %.9g %.9g != %.9g %.9g", what,
                  r->ds[0], r->ds[1], ref->ds[0], ref->ds[1]);
  else
    ck_assert_msg(rel_error_ff(r->ds, ref->ds, 2) < 1e-6, "%s: dstrides %.9g %.9g vs %.9g %.9g", what,
                  r->ds[0], r->ds[1], ref->ds[0], ref->ds[1]);
}

/* ---------------------------------------------------------- thread counts */

/* One context, its thread count changed between runs: 1 (the reference), 2,
 * 3, one per core, 300 (more than the images: one image per thread), and 1
 * again after the arenas grew. Each image is computed by the same code on
 * whichever thread, so y and dx are bitwise equal; dstrides sums per-thread
 * partial sums in a different grouping, so it may differ in the last bits. */
START_TEST(test_thread_count_independent) {
  const workload *ld = &loads[_i];
  const int counts[] = {2, 3, 0, 300, 1};
  char what[96];
  ds_context *ctx = cpu_context(1);
  result ref, r;
  run_load(ctx, ld, 11u + (unsigned)_i, &ref);
  snprintf(what, sizeof what, "load %d, 1 thread", _i);
  check_reference(&ref, what);
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    ck_assert_int_eq(ds_context_set_threads(ctx, counts[k]), DS_OK);
    run_load(ctx, ld, 11u + (unsigned)_i, &r);
    snprintf(what, sizeof what, "load %d, %d threads", _i, counts[k]);
    check_same(&r, &ref, 0, what);
    result_free(&r);
  }
  result_free(&ref);
  ds_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------- reproducibility */

/* Runs load in a fresh child process on a reproducible context (its FFTW
 * plans made there, not inherited) and reads its result back through a pipe. */
static void run_in_child(const workload *ld, unsigned seed, result *r) {
  int fd[2];
  ck_assert_int_eq(pipe(fd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    ds_context *ctx = NULL;
    result c = {.st = ds_context_create(DS_DEVICE_CPU, &ctx)};
    if (c.st == DS_OK) c.st = ds_context_set_reproducible(ctx, 1);
    if (c.st == DS_OK) run_load(ctx, ld, seed, &c);
    ssize_t ok = write(fd[1], &c, sizeof c) == (ssize_t)sizeof c;
    if (ok && c.st == DS_OK)
      ok = write(fd[1], c.y, sizeof(float) * c.out) == (ssize_t)(sizeof(float) * c.out) &&
           write(fd[1], c.dx, sizeof(float) * c.in) == (ssize_t)(sizeof(float) * c.in);
    _exit(ok ? 0 : 1);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "rb");
  ck_assert_uint_eq(fread(r, sizeof *r, 1, f), 1);
  r->y = malloc(sizeof(float) * r->out), r->dx = malloc(sizeof(float) * r->in);
  if (r->st == DS_OK) {
    ck_assert_uint_eq(fread(r->y, sizeof(float), r->out, f), r->out);
    ck_assert_uint_eq(fread(r->dx, sizeof(float), r->in, f), r->in);
  }
  fclose(f);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
}

/* Two processes with reproducible contexts compute the same bits; the
 * result agrees with the default (measured plans) to rounding; switching back
 * uses the measured plans kept in the cache, bit for bit. (Not compared bit
 * for bit in this process: after measured planning FFTW's wisdom makes the
 * estimated plans the measured ones, as the header says.) */
START_TEST(test_reproducible_across_processes) {
  const workload *ld = &loads[_i];
  result a, b, measured, again, estimated;
  run_in_child(ld, 5u, &a);
  run_in_child(ld, 5u, &b);
  check_reference(&a, "first process");
  check_same(&b, &a, 1, "second process");
  ds_context *ctx = cpu_context(2);
  run_load(ctx, ld, 5u, &measured);
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 1), DS_OK);
  run_load(ctx, ld, 5u, &estimated);
  check_reference(&estimated, "reproducible context in the test process");
  ck_assert_msg(rel_error_ff(a.y, measured.y, a.out) < 1e-5, "y: estimated vs measured plans");
  ck_assert_msg(rel_error_ff(a.dx, measured.dx, a.in) < 1e-5, "dx: estimated vs measured plans");
  ck_assert_msg(rel_error_ff(estimated.y, measured.y, a.out) < 1e-5, "y after switching");
  ck_assert_int_eq(ds_context_set_reproducible(ctx, 0), DS_OK);
  run_load(ctx, ld, 5u, &again);
  check_same(&again, &measured, 1, "measured plans again");
  result *all[] = {&a, &b, &measured, &again, &estimated};
  for (size_t k = 0; k < sizeof all / sizeof *all; k++) result_free(all[k]);
  ds_context_destroy(ctx);
}
END_TEST

/* -------------------------------------------------- concurrent contexts */

enum { WORKERS = 4, REPEATS = 3 };

/* A thread with its own context (threads: 1 or 2 per call) running every
 * workload REPEATS times, starting at a different workload than the other
 * workers so that different shapes are planned at the same time. */
typedef struct worker {
  int threads, first;
  pthread_barrier_t *start;
  ds_status st; /* context creation and set_threads */
  result res[REPEATS][NLOADS];
} worker;

static void *work(void *arg) {
  worker *wk = arg;
  ds_context *ctx = NULL;
  wk->st = ds_context_create(DS_DEVICE_CPU, &ctx);
  if (wk->st == DS_OK) wk->st = ds_context_set_threads(ctx, wk->threads);
  pthread_barrier_wait(wk->start);
  for (int rep = 0; wk->st == DS_OK && rep < REPEATS; rep++)
    for (int k = 0; k < NLOADS; k++) {
      int l = (wk->first + k) % NLOADS;
      run_load(ctx, &loads[l], 11u + (unsigned)l, &wk->res[rep][l]);
    }
  ds_context_destroy(ctx);
  return NULL;
}

/* The references come from one context on the main thread, first with 1
 * thread, then with 2; a worker's results must equal those of its thread
 * count bitwise, dstrides included (the same split of the batch between
 * threads, so the same partial sums). */
START_TEST(test_concurrent_contexts) {
  static result ref[2][NLOADS];
  static worker wk[WORKERS];
  char what[96];
  ds_context *ctx = cpu_context(1);
  for (int t = 0; t < 2; t++) {
    ck_assert_int_eq(ds_context_set_threads(ctx, t + 1), DS_OK);
    for (int l = 0; l < NLOADS; l++) {
      run_load(ctx, &loads[l], 11u + (unsigned)l, &ref[t][l]);
      snprintf(what, sizeof what, "reference, load %d, %d threads", l, t + 1);
      check_reference(&ref[t][l], what);
    }
  }
  ds_context_destroy(ctx);

  pthread_barrier_t start;
  ck_assert_int_eq(pthread_barrier_init(&start, NULL, WORKERS), 0);
  pthread_t tid[WORKERS];
  memset(wk, 0, sizeof wk);
  for (int i = 0; i < WORKERS; i++) {
    wk[i].threads = 1 + i % 2, wk[i].first = (i * NLOADS) / WORKERS + i % 2, wk[i].start = &start;
    ck_assert_int_eq(pthread_create(&tid[i], NULL, work, &wk[i]), 0);
  }
  for (int i = 0; i < WORKERS; i++) ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
  pthread_barrier_destroy(&start);

  for (int i = 0; i < WORKERS; i++) {
    ck_assert_msg(wk[i].st == DS_OK, "worker %d: context status %d", i, wk[i].st);
    for (int rep = 0; rep < REPEATS; rep++)
      for (int l = 0; l < NLOADS; l++) {
        snprintf(what, sizeof what, "worker %d (%d threads), repeat %d, load %d", i, wk[i].threads, rep, l);
        check_same(&wk[i].res[rep][l], &ref[wk[i].threads - 1][l], 1, what);
        result_free(&wk[i].res[rep][l]);
      }
  }
  for (int t = 0; t < 2; t++)
    for (int l = 0; l < NLOADS; l++) result_free(&ref[t][l]);
}
END_TEST

/* ------------------------------------------------- FFTW beside the host */

/* A host thread that plans and destroys FFTW transforms of its own until
 * stopped. */
typedef struct host_planner {
  atomic_int stop, plans;
} host_planner;

static void *plan_loop(void *arg) {
  host_planner *hp = arg;
  fftwf_complex *buf = fftwf_alloc_complex(72 * 76);
  for (int i = 0; buf && !atomic_load(&hp->stop); i++) {
    fftwf_plan p = fftwf_plan_dft_2d(8 + i % 64, 8 + i % 68, buf, buf, FFTW_FORWARD, FFTW_ESTIMATE);
    if (p) fftwf_destroy_plan(p), atomic_fetch_add(&hp->plans, 1);
  }
  fftwf_free(buf);
  return NULL;
}

/* FFTW's planner is one per process: while a host thread plans its own
 * transforms, fresh contexts plan theirs for a dozen shapes (two threads
 * each), and every result equals the one computed before the host thread
 * ran (reproducible plans: bitwise). Without the library making the planner
 * thread-safe for all its users this crashes, hangs or races (TSan). The
 * first context exists before the host thread starts (the library installs
 * FFTW's lock when it creates its first CPU context). */
START_TEST(test_host_thread_plans_fftw) {
  enum { SHAPES = 12 };
  static result ref[SHAPES], got;
  workload ld[SHAPES];
  char what[96];
  for (int i = 0; i < SHAPES; i++) {
    ld[i] = (workload){i % 3 == 2, i % 2, 2, 3, 12 + 5 * i, 40 - 2 * i, {1.5f + 0.1f * (float)i, 2.2f}};
    ds_context *ctx = cpu_context(2);
    ck_assert_int_eq(ds_context_set_reproducible(ctx, 1), DS_OK);
    run_load(ctx, &ld[i], 70u + (unsigned)i, &ref[i]);
    snprintf(what, sizeof what, "shape %d alone", i);
    check_reference(&ref[i], what);
    ds_context_destroy(ctx);
  }
  host_planner hp = {0, 0};
  pthread_t host;
  ck_assert_int_eq(pthread_create(&host, NULL, plan_loop, &hp), 0);
  for (int rep = 0; rep < 3; rep++)
    for (int i = 0; i < SHAPES; i++) {
      ds_context *ctx = cpu_context(2);
      ck_assert_int_eq(ds_context_set_reproducible(ctx, 1), DS_OK);
      run_load(ctx, &ld[i], 70u + (unsigned)i, &got);
      ds_context_destroy(ctx);
      snprintf(what, sizeof what, "shape %d beside a planning host thread, repeat %d", i, rep);
      check_same(&got, &ref[i], 1, what);
      result_free(&got);
    }
  atomic_store(&hp.stop, 1);
  ck_assert_int_eq(pthread_join(host, NULL), 0);
  ck_assert_msg(atomic_load(&hp.plans) > 0, "the host thread made no plan");
  for (int i = 0; i < SHAPES; i++) result_free(&ref[i]);
}
END_TEST

/* ------------------------------------------------------------ plan cache */

/* The plan cache of a CPU context as it stands. */
typedef struct snapshot {
  int cached;
  plan_key key[DS_PLAN_CACHE];
  fftwf_plan plan[DS_PLAN_CACHE];
} snapshot;

static snapshot take_snapshot(ds_context *ctx) {
  const cpu_state *s = ctx->state;
  snapshot sn = {.cached = s->cached};
  ck_assert_int_ge(sn.cached, 0);
  ck_assert_int_le(sn.cached, DS_PLAN_CACHE);
  for (int i = 0; i < sn.cached; i++) sn.key[i] = s->cache[i].key, sn.plan[i] = s->cache[i].plan;
  return sn;
}

/* The first `count` entries of a and b hold the same keys and plans. */
static int same_entries(const snapshot *a, const snapshot *b, int count) {
  for (int i = 0; i < count; i++)
    if (memcmp(&a->key[i], &b->key[i], sizeof a->key[i]) || a->plan[i] != b->plan[i]) return 0;
  return 1;
}

static int has_key(const snapshot *sn, const plan_key *k) {
  for (int i = 0; i < sn->cached; i++)
    if (!memcmp(&sn->key[i], k, sizeof *k)) return 1;
  return 0;
}

/* The first forward + backward of a shape plans; the same calls again reuse
 * every plan (same count, same plan pointers) and give the same numbers; a
 * second shape adds plans and keeps the first shape's. */
START_TEST(test_plans_reused) {
  ds_context *ctx = cpu_context(2);
  ck_assert_int_eq(take_snapshot(ctx).cached, 0);
  result first, again, other;
  ck_assert_int_eq(run_load(ctx, &loads[0], 5u, &first), DS_OK);
  snapshot s1 = take_snapshot(ctx);
  ck_assert_int_gt(s1.cached, 0);
  for (int rep = 0; rep < 2; rep++) {
    ck_assert_int_eq(run_load(ctx, &loads[0], 5u, &again), DS_OK);
    snapshot s2 = take_snapshot(ctx);
    ck_assert_int_eq(s2.cached, s1.cached);
    ck_assert_msg(same_entries(&s2, &s1, s1.cached), "repeat %d: a cached plan changed", rep);
    check_same(&again, &first, 1, "repeated call");
    result_free(&again);
  }
  ck_assert_int_eq(run_load(ctx, &loads[2], 6u, &other), DS_OK); /* 17 x 23: a new shape */
  snapshot s3 = take_snapshot(ctx);
  ck_assert_int_gt(s3.cached, s1.cached);
  ck_assert_msg(same_entries(&s3, &s1, s1.cached), "the first shape's plans changed");
  result_free(&first), result_free(&other);
  ds_context_destroy(ctx);
}
END_TEST

/* More distinct shapes than the cache holds plans (each shape needs several):
 * the cache stays within DS_PLAN_CACHE, the first shape's plans are evicted,
 * and both the last shape and the first one (planned again) give the numbers
 * of a fresh context. */
enum { SHAPES = DS_PLAN_CACHE + 2 };

static workload nth_shape(int i) {
  /* Distinct heights 6..71 (so distinct plans), widths 8..16. */
  return (workload){0, DS_LAYOUT_NCHW, 1, 2, 6 + i, 8 + (i * 5) % 9, {2.0f, 1.5f}};
}

static void check_fresh(const workload *ld, unsigned seed, const result *r, const char *what) {
  ds_context *fresh = cpu_context(1);
  result want;
  ck_assert_int_eq(run_load(fresh, ld, seed, &want), DS_OK);
  check_reference(&want, what);
  check_same(r, &want, 1, what);
  result_free(&want);
  ds_context_destroy(fresh);
}

START_TEST(test_plan_cache_eviction) {
  ds_context *ctx = cpu_context(1);
  snapshot first = {0};
  result last = {0}, again;
  for (int i = 0; i < SHAPES; i++) {
    workload ld = nth_shape(i);
    result r;
    ck_assert_msg(run_load(ctx, &ld, 100u + (unsigned)i, &r) == DS_OK, "shape %d: status %d", i, r.st);
    snapshot sn = take_snapshot(ctx); /* checks cached <= DS_PLAN_CACHE */
    if (i == 0) first = sn;
    if (i == SHAPES - 1)
      last = r;
    else
      result_free(&r);
  }
  snapshot full = take_snapshot(ctx);
  ck_assert_int_eq(full.cached, DS_PLAN_CACHE);
  int evicted = 0;
  for (int i = 0; i < first.cached; i++) evicted += !has_key(&full, &first.key[i]);
  ck_assert_msg(evicted > 0, "none of the first shape's %d plans was evicted", first.cached);

  workload ld_last = nth_shape(SHAPES - 1), ld_first = nth_shape(0);
  check_fresh(&ld_last, 100u + SHAPES - 1, &last, "last shape");
  ck_assert_int_eq(run_load(ctx, &ld_first, 100u, &again), DS_OK);
  snapshot after = take_snapshot(ctx);
  for (int i = 0; i < first.cached; i++)
    ck_assert_msg(has_key(&after, &first.key[i]), "first shape's plan %d not planned again", i);
  check_fresh(&ld_first, 100u, &again, "first shape, planned again");
  result_free(&last), result_free(&again);
  ds_context_destroy(ctx);
}
END_TEST

/* Least recently used, not oldest: a hot shape run between every two new
 * shapes keeps all its plans (same plan pointers) while the new shapes push
 * more than DS_PLAN_CACHE plans through the cache and evict the first new
 * shape's. */
START_TEST(test_plan_cache_lru) {
  ds_context *ctx = cpu_context(1);
  const workload hot = {1, DS_LAYOUT_NCHW, 1, 3, 20, 18, {2.0f, 2.0f}}; /* spectral pooling */
  result r;
  ck_assert_int_eq(run_load(ctx, &hot, 7u, &r), DS_OK);
  result_free(&r);
  snapshot h = take_snapshot(ctx), cold0 = {0};
  for (int i = 0; i < SHAPES; i++) {
    workload ld = nth_shape(i);
    snapshot before = take_snapshot(ctx);
    ck_assert_int_eq(run_load(ctx, &ld, 100u + (unsigned)i, &r), DS_OK);
    result_free(&r);
    if (i == 0) { /* the entries this shape added */
      cold0.cached = take_snapshot(ctx).cached - before.cached;
      snapshot after = take_snapshot(ctx);
      for (int k = 0; k < cold0.cached; k++) cold0.key[k] = after.key[before.cached + k];
    }
    ck_assert_int_eq(run_load(ctx, &hot, 7u, &r), DS_OK);
    result_free(&r);
    snapshot now = take_snapshot(ctx);
    for (int k = 0; k < h.cached; k++) {
      int found = 0;
      for (int e = 0; e < now.cached; e++)
        found |= !memcmp(&now.key[e], &h.key[k], sizeof h.key[k]) && now.plan[e] == h.plan[k];
      ck_assert_msg(found, "after new shape %d: hot plan %d was evicted or replaced", i, k);
    }
  }
  ck_assert_int_eq(take_snapshot(ctx).cached, DS_PLAN_CACHE);
  ck_assert_int_gt(cold0.cached, 0);
  snapshot end = take_snapshot(ctx);
  int evicted = 0; /* (a later shape may share a plan with it, e.g. an output grid) */
  for (int k = 0; k < cold0.cached; k++) evicted += !has_key(&end, &cold0.key[k]);
  ck_assert_msg(evicted > 0, "none of the first new shape's %d plans was evicted", cold0.cached);
  ds_context_destroy(ctx);
}
END_TEST

/* ----------------------------------------------------------- Good-Thomas */

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* Whether t[0..n) is a permutation of 0..n-1. */
static int is_permutation(const int *t, int n) {
  char seen[256] = {0};
  for (int i = 0; i < n; i++) {
    if (t[i] < 0 || t[i] >= n || seen[t[i]]) return 0;
    seen[t[i]] = 1;
  }
  return 1;
}

/* For every length n and every split (0 and each coprime n1 < n2): the row
 * orders are permutations, and FFTW's 2-D n1 x n2 transform of x stored in
 * spatial order gives the length-n DFT of x (a float64 sum) in spectral
 * order, and its inverse takes that spectrum back to n x in spatial order,
 * which is how the CPU path uses them. */
START_TEST(test_good_thomas_rows) {
  int n = _i;
  fftwf_complex *a = fftwf_malloc(sizeof(fftwf_complex) * (size_t)n);
  float xs[2 * 72];
  fill_random(xs, 2 * (size_t)n, (unsigned)n);
  for (int n1 = 0; n1 * n1 < n; n1 += n1 ? 1 : 2) {
    if (n1 && (n % n1 || gcd(n1, n / n1) != 1)) continue;
    int sp[72], fr[72], n2 = n1 ? n / n1 : n;
    ds__cpu_grid_rows(n, n1, sp, fr);
    ck_assert_msg(is_permutation(sp, n) && is_permutation(fr, n), "n %d split %d: not permutations", n, n1);
    fftwf_iodim dims[2] = {{n1 ? n1 : 1, n2, n2}, {n2, 1, 1}};
    fftwf_plan f = fftwf_plan_guru_dft(2, dims, 0, NULL, a, a, FFTW_FORWARD, FFTW_ESTIMATE);
    fftwf_plan b = fftwf_plan_guru_dft(2, dims, 0, NULL, a, a, FFTW_BACKWARD, FFTW_ESTIMATE);
    for (int i = 0; i < n; i++) a[sp[i]][0] = xs[2 * i], a[sp[i]][1] = xs[2 * i + 1];
    fftwf_execute(f);
    double err = 0.0;
    for (int k = 0; k < n; k++) {
      double re = 0.0, im = 0.0;
      for (int i = 0; i < n; i++) {
        double t = -2.0 * acos(-1.0) * (double)((long)i * k % n) / n;
        re += xs[2 * i] * cos(t) - xs[2 * i + 1] * sin(t), im += xs[2 * i] * sin(t) + xs[2 * i + 1] * cos(t);
      }
      err = fmax(err, fmax(fabs(a[fr[k]][0] - re), fabs(a[fr[k]][1] - im)));
    }
    fftwf_execute(b);
    for (int i = 0; i < n; i++)
      err = fmax(err, fmax(fabs((double)a[sp[i]][0] / n - xs[2 * i]), fabs((double)a[sp[i]][1] / n - xs[2 * i + 1])));
    fftwf_destroy_plan(f), fftwf_destroy_plan(b);
    ck_assert_msg(err < 1e-4 * n, "n %d split %d: error %g", n, n1, err);
  }
  fftwf_free(a);
}
END_TEST

/* Without the library's own 24-point transforms (a CPU without AVX2; set
 * off here), a 24-row grid runs its columns through FFTW's Good-Thomas
 * form (3 x 8: FFTW rates it 7x cheaper than its plain 24-point columns),
 * with the rows stored in permuted orders. */
START_TEST(test_good_thomas_chosen) {
  ds_context *ctx = cpu_context(1);
  ((cpu_state *)ctx->state)->own = 0;
  result r;
  ck_assert_int_eq(run_load(ctx, &loads[0], 3u, &r), DS_OK);
  const cpu_state *st = ctx->state;
  int split = -2;
  for (int i = 0; i < st->cached; i++)
    if (st->cache[i].key.n == 24 && st->cache[i].key.stride == 24 && st->cache[i].key.split == DS_SPLIT_BEST)
      split = st->cache[i].split;
  ck_assert_int_eq(split, 3);
  result_free(&r);
  ds_context_destroy(ctx);
}
END_TEST

/* The input grid's rows are transformed only where the crop reads them
 * (cpu_backend.c, live_rows): 32 x 32 cropped to 24 rows keeps rows
 * r(i) and -r(i), 0..12 and 20..31, in blocks of four: plans of 16 and 12
 * rows of 32 points, none of all 32 rows. The goldens and the reference
 * tests run through them. */
START_TEST(test_rows_pruned) {
  ds_context *ctx = cpu_context(1);
  result r;
  ck_assert_int_eq(run_load(ctx, &loads[0], 3u, &r), DS_OK);
  const cpu_state *st = ctx->state;
  int counts[33] = {0};
  for (int i = 0; i < st->cached; i++)
    if (st->cache[i].key.n == 32 && st->cache[i].key.stride == 1) counts[st->cache[i].key.inner_count]++;
  ck_assert_int_eq(counts[16], 2);
  ck_assert_int_eq(counts[12], 2);
  ck_assert_int_eq(counts[32], 0);
  result_free(&r);
  ds_context_destroy(ctx);
}
END_TEST

/* Outputs of more than 16 MiB a call are written with non-temporal stores
 * (ds__cpu_streams): [66,64,32,32] streams y and the reserve (20 MB) and
 * dx (17 MB), where the same images in calls of 6 samples do not. Both must
 * give the same floats (and the streamed reserve the plain call's stride
 * gradient), also with every tensor 4 bytes off its alignment
 * (the reserve 8, its minimum), which exercises the scalar heads and tails
 * around the vector stores. Loop index: 0 aligned, 1 offset. */
typedef struct big {
  int n, c, h, oh;
  float s[2];
  ds_diffstride_desc d;
  size_t in, out, bytes;
} big;

static void big_forward_backward(ds_context *ctx, const big *b, int n, const float *x, const float *dy, float *y,
                                 float *dx, unsigned char *reserve, size_t bytes) {
  ck_assert_int_eq(ds_diffstride_forward_training(ctx, &b->d, n, b->c, b->h, b->h, b->s, x, b->oh, b->oh, y,
                                                  reserve, bytes), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward(ctx, &b->d, n, b->c, b->h, b->h, b->s, x, b->oh, b->oh, dy, dx, NULL),
                   DS_OK);
}

START_TEST(test_streamed_outputs) {
  big b = {.n = 66, .c = 64, .h = 32, .oh = 24, .s = {2.0f, 2.0f}};
  ds_diffstride_desc_init(&b.d);
  b.in = (size_t)b.n * b.c * b.h * b.h, b.out = (size_t)b.n * b.c * b.oh * b.oh;
  ck_assert_int_eq(ds_diffstride_reserve_size(&b.d, b.n, b.c, b.h, b.h, b.s, &b.bytes), DS_OK);
#if defined(__SSE2__)
  ck_assert(ds__cpu_streams(sizeof(float) * b.in) && !ds__cpu_streams(sizeof(float) * b.in * 6 / 66));
#endif
  int off = _i;
  float *x = malloc(sizeof(float) * (b.in + 1)), *dy = malloc(sizeof(float) * (b.out + 1));
  float *y[2] = {malloc(sizeof(float) * (b.out + 1)), malloc(sizeof(float) * b.out)};
  float *dx[2] = {malloc(sizeof(float) * (b.in + 1)), malloc(sizeof(float) * b.in)};
  unsigned char *reserve = malloc(b.bytes + 8);
  fill_random(x + off, b.in, 21u), fill_random(dy + off, b.out, 22u);
  ds_context *ctx = cpu_context(2);
  big_forward_backward(ctx, &b, b.n, x + off, dy + off, y[0] + off, dx[0] + off, reserve + 8 * off, b.bytes);
  float ds[2][2];
  ck_assert_int_eq(ds_diffstride_backward(ctx, &b.d, b.n, b.c, b.h, b.h, b.s, x + off, b.oh, b.oh, dy + off, NULL,
                                          ds[0]), DS_OK);
  ck_assert_int_eq(ds_diffstride_backward_reserved(ctx, &b.d, b.n, b.c, b.h, b.h, b.s, reserve + 8 * off, b.bytes,
                                                   b.oh, b.oh, dy + off, NULL, ds[1]), DS_OK);
  ck_assert_mem_eq(ds[0], ds[1], sizeof ds[0]);
  for (int n0 = 0; n0 < b.n; n0 += 6) {
    size_t bytes;
    ck_assert_int_eq(ds_diffstride_reserve_size(&b.d, 6, b.c, b.h, b.h, b.s, &bytes), DS_OK);
    size_t at_in = (size_t)n0 * b.c * b.h * b.h, at_out = (size_t)n0 * b.c * b.oh * b.oh;
    big_forward_backward(ctx, &b, 6, x + off + at_in, dy + off + at_out, y[1] + at_out, dx[1] + at_in, reserve,
                         bytes);
  }
  ck_assert_mem_eq(y[0] + off, y[1], sizeof(float) * b.out);
  ck_assert_mem_eq(dx[0] + off, dx[1], sizeof(float) * b.in);
  ds_context_destroy(ctx);
  free(x), free(dy), free(y[0]), free(y[1]), free(dx[0]), free(dx[1]), free(reserve);
}
END_TEST

Suite *threading_suite(void) {
  Suite *s = suite_create("threading");
  TCase *tc = tcase_create("threading");
  tcase_add_loop_test(tc, test_thread_count_independent, 0, NLOADS);
  tcase_add_loop_test(tc, test_reproducible_across_processes, 0, NLOADS);
  tcase_add_test(tc, test_concurrent_contexts);
  tcase_add_test(tc, test_host_thread_plans_fftw);
  tcase_add_test(tc, test_plans_reused);
  tcase_add_test(tc, test_plan_cache_eviction);
  tcase_add_test(tc, test_plan_cache_lru);
  tcase_add_loop_test(tc, test_good_thomas_rows, 1, 73);
  tcase_add_test(tc, test_good_thomas_chosen);
  tcase_add_test(tc, test_rows_pruned);
  tcase_add_loop_test(tc, test_streamed_outputs, 0, 2);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return s;
}
