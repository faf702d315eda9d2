/* Fuzz target `api`: the whole public API of include/diffstride.h, driven
 * by the input bytes, against the contract of the header and docs/api.md:
 *
 *   - a call that fails returns one of the ds_status error codes, writes
 *     nothing to any output (every output, the reserve of a training forward
 *     included, is filled with a sentinel before the call and compared
 *     after), and leaves a new, non-empty message in ds_last_error() and, for
 *     a call with a context, in ds_context_last_error(ctx);
 *   - a call that succeeds writes finite outputs where its inputs are finite
 *     and moderate (|v| <= 1e3), image by image (a NaN or an infinity in one
 *     image does not reach another, an all-zero image gives exact zeros);
 *   - sizes agree between calls (the reserve size formula, output sizes no
 *     larger than the input, effective strides idempotent: storing them back
 *     does not change the output size);
 *   - a few documented equalities: NHWC = NCHW on transposed data bit for
 *     bit, the 1-D reserved backward = the plain backward bit for bit, a
 *     reserved backward never writes its reserve, a reserve just written for
 *     the same call is accepted.
 *
 * Every tensor buffer is allocated exactly as large as the call's arguments
 * claim (so ASan reports any access past it); tensors are allocated and
 * computed on only when each buffer is at most FUZZ_BUF_LIMIT bytes, and
 * otherwise the call still runs with NULL inputs (it must then fail). The
 * size functions run with any value up to INT_MAX. Violations trap. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffstride.h"
#include "fuzz_input.h"

#ifndef FUZZ_BUF_LIMIT
#define FUZZ_BUF_LIMIT (2u << 20) /* bytes per tensor buffer */
#endif
#define MARK_THREADS (-1234567) /* a failing call that writes a known message */
#define SENTINEL 0xFF           /* as a float: NaN, so a missed output element shows */
#define MAX_OPS 12

static ds_context *g_ctx; /* created once: its plan cache lives across inputs */
static char g_mark[256];

/* ------------------------------------------------------------ allocations */

/* Everything one op allocates, freed at its end. */
static void *g_allocs[64];
static int g_nallocs;

static void *track(void *p) {
  if (!p) abort(); /* our own allocation: the sizes are bounded */
  if (g_nallocs == (int)(sizeof g_allocs / sizeof *g_allocs)) abort();
  g_allocs[g_nallocs++] = p;
  return p;
}

/* Exactly `bytes` bytes (malloc(0) included: ASan reports any access). */
static void *alloc_exact(size_t bytes) {
  void *p = malloc(bytes);
  return track(p || bytes ? p : malloc(1));
}

static void free_all(void) {
  while (g_nallocs) free(g_allocs[--g_nallocs]);
}

/* Elements of a tensor a call describes: 0 when a dimension is not
 * positive, a double so that nothing overflows. */
static double elems(double a, double b, double c, double d) {
  return (a <= 0 || b <= 0 || c <= 0 || d <= 0) ? 0.0 : a * b * c * d;
}

static int fits(double count) { return count * sizeof(float) <= FUZZ_BUF_LIMIT; }

/* --------------------------------------------------------------- outputs */

typedef struct out_buf {
  const void *p;
  size_t bytes;
} out_buf;
static out_buf g_outs[8];
static int g_nouts;

static void outs_reset(void) { g_nouts = 0; }

/* Registers an output (NULL: none) and fills it with the sentinel. */
static void out_add(void *p, size_t bytes) {
  if (!p) return;
  memset(p, SENTINEL, bytes);
  g_outs[g_nouts++] = (out_buf){p, bytes};
}

static int all_bytes(const void *p, size_t bytes, uint8_t v) {
  const uint8_t *b = p;
  for (size_t i = 0; i < bytes; i++)
    if (b[i] != v) return 0;
  return 1;
}

/* ------------------------------------------------------- the error contract */

/* Before a checked call: a known message in the thread's slot and in ctx's. */
static void arm(ds_context *ctx) {
  ds_context_set_threads(g_ctx, MARK_THREADS);
  if (ctx && ctx != g_ctx) ds_context_set_threads(ctx, MARK_THREADS);
}

static int is_error(int st) {
  return st == DS_ERR_INVALID_ARGUMENT || st == DS_ERR_SHAPE_MISMATCH || st == DS_ERR_OUT_OF_MEMORY ||
         st == DS_ERR_UNSUPPORTED || st == DS_ERR_BACKEND;
}

/* After a checked call: a failure wrote nothing and left its messages. */
static void settle(const char *call, ds_status st, const ds_context *ctx) {
  int nouts = g_nouts;
  g_nouts = 0; /* the outputs registered are this call's only */
  FUZZ_REQUIRE(st == DS_OK || is_error(st), "%s returned %d", call, (int)st);
  if (st == DS_OK) return;
  const char *msg = ds_last_error();
  FUZZ_REQUIRE(msg && msg[0] && strcmp(msg, g_mark) != 0, "%s failed (%d) without a message in ds_last_error()",
               call, (int)st);
  if (ctx) {
    const char *cm = ds_context_last_error(ctx);
    FUZZ_REQUIRE(cm && cm[0] && strcmp(cm, g_mark) != 0,
                 "%s failed (%d: %s) without a message in ds_context_last_error(ctx)", call, (int)st, msg);
  }
  for (int i = 0; i < nouts; i++)
    FUZZ_REQUIRE(all_bytes(g_outs[i].p, g_outs[i].bytes, SENTINEL),
                 "%s failed (%d: %s) but wrote output %d (%zu bytes)", call, (int)st, msg, i, g_outs[i].bytes);
}

/* --------------------------------------------------------------- values */

static const float special_floats[] = {
    0.0f,     -0.0f,      1.0f,         -1.0f,       2.0f,       0.5f,        4.0f,       1.5f,
    1.4f,     3.0f,       3.9999998f,   4.0000005f,  NAN,        -NAN,        INFINITY,   -INFINITY,
    FLT_MIN,  1e-45f,     1e-40f,       FLT_MAX,     -FLT_MAX,   1e30f,       16777216.0f, 16777217.0f,
    0.999999f, 1.0000001f, 2.5f,        1e-3f,       8.0f,       100.0f,      2.0000002f, 1e-38f};

static float gen_float(fuzz_src *s) {
  uint8_t k = fuzz_u8(s);
  switch (k % 6) {
  case 0: return special_floats[fuzz_u8(s) % (sizeof special_floats / sizeof *special_floats)];
  case 1: {
    uint32_t bits = fuzz_u32(s);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  case 2: return 1.0f + fuzz_u8(s) / 16.0f;
  case 3: return (int8_t)fuzz_u8(s) / 8.0f;
  default: return 1.0f + (float)(k >> 3) / 8.0f;
  }
}

static const int special_ints[] = {0,     1,       2,       3,        -1,          -2,
                                   INT_MIN, INT_MAX, INT_MAX - 1, 46341,  65536,       1 << 24,
                                   (1 << 24) + 1, 1 << 30, -INT_MAX, 5,   4,           2048};

static int gen_special_int(fuzz_src *s) {
  return special_ints[fuzz_u8(s) % (sizeof special_ints / sizeof *special_ints)];
}

/* An image dimension or a length: mostly small, sometimes anything. */
static int gen_dim(fuzz_src *s) {
  uint8_t k = fuzz_u8(s);
  switch (k % 8) {
  case 0: return gen_special_int(s);
  case 1: return (int)fuzz_u32(s);
  case 2: return fuzz_u16(s) % 2048;
  default: return 2 + (k >> 3);
  }
}

/* A batch size or channel count: mostly 1..4. */
static int gen_count(fuzz_src *s) {
  uint8_t k = fuzz_u8(s);
  switch (k % 8) {
  case 0: return gen_special_int(s);
  case 1: return (int)fuzz_u32(s);
  default: return 1 + (k >> 3) % 5;
  }
}

/* An enum or flag: mostly 0 or 1. */
static int gen_enum(fuzz_src *s) {
  uint8_t k = fuzz_u8(s);
  switch (k % 6) {
  case 0: return gen_special_int(s);
  case 1: return (int)fuzz_u32(s);
  case 2: return (int8_t)fuzz_u8(s);
  default: return k & 8 ? 1 : 0;
  }
}

/* Descriptor: the defaults with some fields replaced, or NULL. */
static const ds_diffstride_desc *gen_desc(fuzz_src *s, ds_diffstride_desc *d) {
  uint8_t f = fuzz_u8(s);
  ds_diffstride_desc_init(d);
  if (f & 1) d->smoothness = gen_float(s);
  if (f & 2) d->cropping = gen_enum(s);
  if (f & 4) d->shared_stride = gen_enum(s);
  if (f & 8) d->lower_limit = gen_float(s);
  if (f & 16) d->upper_limit = gen_float(s);
  if (f & 32) d->layout = gen_enum(s);
  return (f & 0xC0) == 0xC0 ? NULL : d;
}

/* `count` strides in an array of exactly that many floats, or NULL. */
static float *gen_strides(fuzz_src *s, int count) {
  if (fuzz_u8(s) % 16 == 15) return NULL;
  float *p = alloc_exact(sizeof(float) * (size_t)count);
  for (int i = 0; i < count; i++) p[i] = gen_float(s);
  return p;
}

/* Strides a 2-D DiffStride call reads: only strides[0] with shared_stride. */
static int strides_read(const ds_diffstride_desc *d) { return d && d->shared_stride == 1 ? 1 : 2; }

/* A context: the long-lived one (mostly), a fresh one, or NULL; the thread
 * count and planning mode possibly changed through checked calls (threads
 * above 4 and FFTW_MEASURE on large images are taken back before computing,
 * to keep the executions fast). *fresh is set when the caller must destroy
 * it. */
static char g_ctx_note[96];

static ds_context *gen_ctx(fuzz_src *s, int small, int *fresh) {
  uint8_t k = fuzz_u8(s);
  *fresh = 0;
  snprintf(g_ctx_note, sizeof g_ctx_note, "%s", k % 8 == 7 ? "NULL" : k % 8 == 6 ? "fresh" : "global");
  if (k % 8 == 7) return NULL;
  ds_context *ctx = g_ctx;
  if (k % 8 == 6) {
    ctx = NULL;
    ds_status st = ds_context_create(DS_DEVICE_CPU, &ctx);
    FUZZ_REQUIRE(st == DS_OK && ctx, "ds_context_create(CPU) failed: %s", ds_last_error());
    ds_context_set_reproducible(ctx, 1);
    *fresh = 1;
  }
  if (k & 0x10) {
    int t = fuzz_u8(s) % 4 == 0 ? gen_enum(s) : fuzz_u8(s) % 5;
    if (t == MARK_THREADS) t = 0;
    arm(ctx);
    ds_status st = ds_context_set_threads(ctx, t);
    settle("ds_context_set_threads", st, ctx);
    FUZZ_REQUIRE((st == DS_OK) == (t >= 0), "ds_context_set_threads(%d) returned %d", t, (int)st);
    if (t > 4) ds_context_set_threads(ctx, 4);
    snprintf(g_ctx_note + strlen(g_ctx_note), sizeof g_ctx_note - strlen(g_ctx_note), " threads %d", t);
  }
  if (k & 0x20) {
    int r = gen_enum(s);
    arm(ctx);
    ds_status st = ds_context_set_reproducible(ctx, r);
    settle("ds_context_set_reproducible", st, ctx);
    FUZZ_REQUIRE((st == DS_OK) == (r == 0 || r == 1), "ds_context_set_reproducible(%d) returned %d", r,
                 (int)st);
    if (!small) ds_context_set_reproducible(ctx, 1);
    snprintf(g_ctx_note + strlen(g_ctx_note), sizeof g_ctx_note - strlen(g_ctx_note), " reproducible %d%s", r,
             small ? "" : " (then 1)");
  }
  return ctx;
}

static void ctx_done(ds_context *ctx, int fresh) {
  if (fresh) ds_context_destroy(ctx);
  ds_context_set_threads(g_ctx, 1);
  ds_context_set_reproducible(g_ctx, 1);
}

/* -------------------------------------------------------------- tensors */

/* A tiny PRNG for tensor contents (xorshift32). */
static uint32_t g_rng = 1;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
static float uniform(float scale) { return scale * ((float)(rnd() >> 8) / 8388608.0f - 1.0f); }

/* The planes (image, channel) of a tensor of `planes` planes of `hw`
 * elements in a layout (nhwc: channels innermost). */
typedef struct tensor {
  float *p;
  int n, c, nhwc;
  size_t hw;
} tensor;

static size_t at(const tensor *t, int plane, size_t k) {
  int i = plane / t->c, j = plane % t->c;
  return t->nhwc ? ((size_t)i * t->hw + k) * (size_t)t->c + (size_t)j : (size_t)plane * t->hw + k;
}

/* Fills a tensor: zeros, uniform at several scales, raw input bytes, with
 * possibly one plane NaN or infinite and one plane zero. */
static char g_fill_note[128];

static void fill(fuzz_src *s, const tensor *t) {
  size_t count = (size_t)t->n * (size_t)t->c * t->hw;
  uint8_t mode = fuzz_u8(s);
  g_rng = fuzz_u32(s) | 1;
  snprintf(g_fill_note + strlen(g_fill_note), sizeof g_fill_note - strlen(g_fill_note), " [mode 0x%02x seed %u]",
           mode, g_rng);
  static const float scales[] = {1.0f, 1e3f, 1e-39f, 0.0f, 1e-20f, 30.0f};
  float scale = scales[(mode >> 4) % (sizeof scales / sizeof *scales)];
  if ((mode & 7) == 7) { /* raw bits from the input */
    for (size_t e = 0; e < count; e++) {
      uint32_t b = s->n >= 4 ? fuzz_u32(s) : rnd();
      memcpy(&t->p[e], &b, sizeof b);
    }
    return;
  }
  for (size_t e = 0; e < count; e++) t->p[e] = uniform(scale);
  int planes = t->n * t->c;
  if (planes && (mode & 1)) { /* one plane zero */
    int z = (int)(rnd() % (uint32_t)planes);
    for (size_t k = 0; k < t->hw; k++) t->p[at(t, z, k)] = 0.0f;
  }
  if (planes && (mode & 2)) { /* one plane with a non-finite element */
    int z = (int)(rnd() % (uint32_t)planes);
    static const float bad[] = {NAN, INFINITY, -INFINITY, FLT_MAX};
    t->p[at(t, z, rnd() % t->hw)] = bad[rnd() % 4];
  }
  if (planes && (mode & 4)) { /* one plane entirely non-finite */
    int z = (int)(rnd() % (uint32_t)planes);
    for (size_t k = 0; k < t->hw; k++) t->p[at(t, z, k)] = NAN;
  }
}

enum { PLANE_MODERATE = 0, PLANE_ZERO = 1, PLANE_WILD = 2 };

static int plane_kind(const tensor *t, int plane) {
  int zero = 1;
  for (size_t k = 0; k < t->hw; k++) {
    float v = t->p[at(t, plane, k)];
    if (!isfinite(v) || fabsf(v) > 1e3f) return PLANE_WILD;
    if (v != 0.0f) zero = 0;
  }
  return zero ? PLANE_ZERO : PLANE_MODERATE;
}

/* 1 when every plane of t is moderate or zero. */
static int all_tame(const tensor *t) {
  for (int p = 0; p < t->n * t->c; p++)
    if (plane_kind(t, p) == PLANE_WILD) return 0;
  return 1;
}

/* The stride gradient carries the ramp's slope 1/R: for a ramp narrower
 * than 1e-3 bins it may exceed the float range for moderate x and dy (a
 * true value beyond FLT_MAX, docs/api.md), so only wider ramps must give
 * a finite one. */
static int tame_ramp(const ds_diffstride_desc *d) { return d && d->smoothness >= 1e-3f; }

/* 1 when every element of t is finite. */
static int all_finite(const tensor *t) {
  for (size_t e = 0; e < (size_t)t->n * t->c * t->hw; e++)
    if (!isfinite(t->p[e])) return 0;
  return 1;
}

/* Output planes against the input planes they come from: finite where the
 * input is moderate, exact zeros where it is zero. */
static void check_planes(const char *call, const tensor *in, const tensor *out) {
  for (int p = 0; p < in->n * in->c; p++) {
    int kind = plane_kind(in, p);
    if (kind == PLANE_WILD) continue;
    for (size_t k = 0; k < out->hw; k++) {
      float v = out->p[at(out, p, k)];
      FUZZ_REQUIRE(isfinite(v), "%s: output plane %d (of %d) element %zu is %g for a finite, moderate input plane",
                   call, p, in->n * in->c, k, (double)v);
      FUZZ_REQUIRE(kind != PLANE_ZERO || v == 0.0f,
                   "%s: output plane %d element %zu is %g for an all-zero input plane", call, p, k, (double)v);
    }
  }
}

/* dst = src in the other layout. */
static void transpose(const tensor *src, const tensor *dst) {
  for (int p = 0; p < src->n * src->c; p++)
    for (size_t k = 0; k < src->hw; k++) dst->p[at(dst, p, k)] = src->p[at(src, p, k)];
}

/* Planes of a and b (same shape, any layouts) equal bit for bit where the
 * input plane is not wild. */
static void check_same(const char *call, const tensor *in, const tensor *a, const tensor *b) {
  for (int p = 0; p < a->n * a->c; p++) {
    if (plane_kind(in, p) == PLANE_WILD) continue;
    for (size_t k = 0; k < a->hw; k++) {
      float u = a->p[at(a, p, k)], v = b->p[at(b, p, k)];
      FUZZ_REQUIRE(memcmp(&u, &v, sizeof u) == 0, "%s: plane %d element %zu: %.9g here, %.9g there; fills%s", call,
                   p, k, (double)u, (double)v, g_fill_note);
    }
  }
}

/* A tensor of n*c planes of hw elements in a buffer of exactly that size,
 * filled from the input; NULL data when it is larger than the limit. */
static tensor make_tensor(fuzz_src *s, int n, int c, double hw, int nhwc, int input) {
  tensor t = {NULL, n, c, nhwc, 0};
  double count = elems(n, c, hw, 1);
  if (!fits(count)) return t;
  t.hw = count > 0 ? (size_t)hw : 0;
  if (count <= 0) t.n = t.c = 0;
  t.p = alloc_exact(sizeof(float) * (size_t)count);
  if (input && count > 0) fill(s, &t);
  return t;
}

/* A small output buffer for calls that must fail (their tensors are too
 * large to allocate): any write into it is an error. */
static float *dummy(void) { return alloc_exact(64); }

/* ------------------------------------------------------- 2-D DiffStride */

typedef struct call2d {
  ds_context *ctx;
  int fresh;
  ds_diffstride_desc desc;
  const ds_diffstride_desc *pdesc;
  int n, c, h, w, out_h, out_w, nhwc;
  float *strides;
  int size_ok; /* output_size succeeded (out_h/out_w may still be wrong) */
  int right;   /* out_h/out_w are output_size's */
} call2d;

/* The output size of a call, right or wrong. */
static void gen_out(fuzz_src *s, int ok, int true_h, int true_w, int *oh, int *ow) {
  uint8_t k = fuzz_u8(s);
  if (ok && k % 4 != 3) {
    *oh = true_h, *ow = true_w;
    return;
  }
  if (ok && (k & 4)) { /* off by up to 2 (sizes near INT_MAX stay ints) */
    long long h = (long long)true_h + fuzz_u8(s) % 5 - 2, w = (long long)true_w + fuzz_u8(s) % 5 - 2;
    *oh = h > INT_MAX ? INT_MAX : (int)h;
    *ow = w > INT_MAX ? INT_MAX : (int)w;
    return;
  }
  *oh = gen_dim(s), *ow = gen_dim(s);
}

/* Checked ds_diffstride_output_size and its invariants. */
static ds_status output_size2d(const ds_diffstride_desc *d, int h, int w, const float *strides, int *oh, int *ow) {
  int *ph = alloc_exact(sizeof(int)), *pw = alloc_exact(sizeof(int));
  outs_reset();
  out_add(ph, sizeof *ph);
  out_add(pw, sizeof *pw);
  arm(NULL);
  ds_status st = ds_diffstride_output_size(d, h, w, strides, ph, pw);
  settle("ds_diffstride_output_size", st, NULL);
  if (st != DS_OK) return st;
  *oh = *ph, *ow = *pw;
  FUZZ_REQUIRE(*oh >= 1 && *oh <= h && *ow >= 2 && *ow <= w && *ow % 2 == 0,
               "ds_diffstride_output_size(%d x %d, strides %g, %g, R %g, cropping %d) = %d x %d", h, w,
               (double)strides[0], (double)strides[strides_read(d) - 1], (double)d->smoothness, d->cropping, *oh,
               *ow);
  return st;
}

static void gen_call2d(fuzz_src *s, call2d *a) {
  memset(a, 0, sizeof *a);
  a->pdesc = gen_desc(s, &a->desc);
  a->n = gen_count(s), a->c = gen_count(s);
  a->h = gen_dim(s), a->w = gen_dim(s);
  a->strides = gen_strides(s, strides_read(a->pdesc));
  a->nhwc = a->pdesc && a->pdesc->layout == DS_LAYOUT_NHWC;
  int th = 0, tw = 0;
  a->size_ok = output_size2d(a->pdesc, a->h, a->w, a->strides, &th, &tw) == DS_OK;
  gen_out(s, a->size_ok, th, tw, &a->out_h, &a->out_w);
  a->right = a->size_ok && a->out_h == th && a->out_w == tw;
  a->ctx = gen_ctx(s, a->h <= 16 && a->w <= 16, &a->fresh);
  const ds_diffstride_desc *d = a->pdesc;
  snprintf(fuzz_note, sizeof fuzz_note,
           "2-D call: desc %s {R %g, cropping %d, shared %d, limits [%g, %g], layout %d}, n %d c %d h %d w %d, "
           "strides %s {%g, %g}, out %d x %d (%s), ctx %s",
           d ? "" : "NULL", d ? (double)d->smoothness : 0.0, d ? d->cropping : 0, d ? d->shared_stride : 0,
           d ? (double)d->lower_limit : 0.0, d ? (double)d->upper_limit : 0.0, d ? d->layout : 0, a->n, a->c, a->h,
           a->w, a->strides ? "" : "NULL", a->strides ? (double)a->strides[0] : 0.0,
           a->strides ? (double)a->strides[strides_read(d) - 1] : 0.0, a->out_h, a->out_w,
           a->right ? "right" : "wrong", g_ctx_note);
}

/* The size functions with any values: effective strides, output size,
 * reserve size, and how they agree. */
static void op_sizes2d(fuzz_src *s) {
  call2d a;
  gen_call2d(s, &a);
  ctx_done(a.ctx, a.fresh);
  /* Effective strides. */
  float *eff = fuzz_u8(s) % 16 == 15 ? NULL : alloc_exact(2 * sizeof(float));
  outs_reset();
  out_add(eff, 2 * sizeof(float));
  arm(NULL);
  ds_status st = ds_diffstride_effective_strides(a.pdesc, a.h, a.w, a.strides, eff);
  settle("ds_diffstride_effective_strides", st, NULL);
  FUZZ_REQUIRE(st != DS_OK || a.size_ok, "effective_strides succeeds where output_size fails");
  if (st == DS_OK) {
    const ds_diffstride_desc *d = a.pdesc;
    for (int i = 0; i < 2; i++)
      FUZZ_REQUIRE(isfinite(eff[i]) && eff[i] >= d->lower_limit && eff[i] <= d->upper_limit,
                   "effective stride %d = %g outside [%g, %g]", i, (double)eff[i], (double)d->lower_limit,
                   (double)d->upper_limit);
    FUZZ_REQUIRE(!d->shared_stride || eff[0] == eff[1], "shared_stride: effective strides %g, %g differ",
                 (double)eff[0], (double)eff[1]);
    /* Storing the effective strides back changes nothing. */
    float again[2], s2[2] = {eff[0], eff[1]};
    int oh1 = 0, ow1 = 0, oh2 = 0, ow2 = 0;
    FUZZ_REQUIRE(ds_diffstride_effective_strides(d, a.h, a.w, s2, again) == DS_OK, "effective strides of effective strides fail: %s",
                 ds_last_error());
    FUZZ_REQUIRE(memcmp(again, eff, sizeof again) == 0, "effective strides not idempotent: %g,%g -> %g,%g",
                 (double)eff[0], (double)eff[1], (double)again[0], (double)again[1]);
    FUZZ_REQUIRE(ds_diffstride_output_size(d, a.h, a.w, a.strides, &oh1, &ow1) == DS_OK &&
                     ds_diffstride_output_size(d, a.h, a.w, s2, &oh2, &ow2) == DS_OK && oh1 == oh2 && ow1 == ow2,
                 "output size %dx%d at the strides, %dx%d at their effective strides", oh1, ow1, oh2, ow2);
  }
  /* Reserve size. */
  size_t *bytes = fuzz_u8(s) % 16 == 15 ? NULL : alloc_exact(sizeof(size_t));
  outs_reset();
  out_add(bytes, sizeof(size_t));
  arm(NULL);
  st = ds_diffstride_reserve_size(a.pdesc, a.n, a.c, a.h, a.w, a.strides, bytes);
  settle("ds_diffstride_reserve_size", st, NULL);
  if (st == DS_OK) {
    int oh = 0, ow = 0;
    FUZZ_REQUIRE(ds_diffstride_output_size(a.pdesc, a.h, a.w, a.strides, &oh, &ow) == DS_OK,
                 "reserve_size succeeds where output_size fails");
    size_t pairs = ((size_t)a.n * (size_t)a.c + 1) / 2, k = (size_t)ow / 2 + 1;
    size_t want = 64 + pairs * (8 + 16 * (size_t)oh * k);
    FUZZ_REQUIRE(*bytes == want, "reserve_size %zu for n*c = %d*%d, %dx%d -> %dx%d; expected %zu", *bytes, a.n, a.c,
                 a.h, a.w, oh, ow, want);
  }
}

/* Forward, and with NHWC the same on the transposed batch (bit for bit). */
static void op_forward2d(fuzz_src *s) {
  call2d a;
  gen_call2d(s, &a);
  uint8_t f = fuzz_u8(s);
  tensor x = make_tensor(s, a.n, a.c, (double)a.h * a.w, a.nhwc, 1);
  tensor y = make_tensor(s, a.n, a.c, elems(a.out_h, a.out_w, 1, 1), a.nhwc, 0);
  int big = !x.p || !y.p;
  const float *xp = big || (f & 1) ? NULL : x.p;
  float *yp = big ? dummy() : (f & 2) ? NULL : y.p;
  outs_reset();
  out_add(yp, big ? 64 : sizeof(float) * (size_t)y.n * y.c * y.hw);
  arm(a.ctx);
  ds_status st = ds_diffstride_forward(a.ctx, a.pdesc, a.n, a.c, a.h, a.w, a.strides, xp, a.out_h, a.out_w, yp);
  settle("ds_diffstride_forward", st, a.ctx);
  if (st == DS_OK) {
    FUZZ_REQUIRE(!big && a.right && xp && yp, "ds_diffstride_forward succeeded with a bad argument");
    check_planes("ds_diffstride_forward", &x, &y);
    if (f & 4) { /* the other layout on the transposed batch */
      ds_diffstride_desc d2 = *a.pdesc;
      d2.layout = !a.nhwc;
      tensor x2 = make_tensor(s, a.n, a.c, (double)a.h * a.w, !a.nhwc, 0);
      tensor y2 = make_tensor(s, a.n, a.c, elems(a.out_h, a.out_w, 1, 1), !a.nhwc, 0);
      transpose(&x, &x2);
      st = ds_diffstride_forward(a.ctx, &d2, a.n, a.c, a.h, a.w, a.strides, x2.p, a.out_h, a.out_w, y2.p);
      FUZZ_REQUIRE(st == DS_OK, "forward in the other layout failed: %s", ds_last_error());
      check_same("ds_diffstride_forward NCHW vs NHWC", &x, &y, &y2);
    }
  }
  ctx_done(a.ctx, a.fresh);
}

static void op_backward2d(fuzz_src *s) {
  call2d a;
  gen_call2d(s, &a);
  uint8_t f = fuzz_u8(s);
  tensor x = make_tensor(s, a.n, a.c, (double)a.h * a.w, a.nhwc, 1);
  tensor dy = make_tensor(s, a.n, a.c, elems(a.out_h, a.out_w, 1, 1), a.nhwc, 1);
  tensor dx = make_tensor(s, a.n, a.c, (double)a.h * a.w, a.nhwc, 0);
  int big = !x.p || !dy.p || !dx.p;
  const float *xp = big || (f & 1) ? NULL : x.p;
  const float *dyp = big || (f & 2) ? NULL : dy.p;
  float *dxp = (f & 4) ? NULL : big ? dummy() : dx.p;
  float *ds = (f & 8) ? NULL : alloc_exact(2 * sizeof(float));
  outs_reset();
  out_add(dxp, big ? 64 : sizeof(float) * (size_t)dx.n * dx.c * dx.hw);
  out_add(ds, 2 * sizeof(float));
  arm(a.ctx);
  ds_status st = ds_diffstride_backward(a.ctx, a.pdesc, a.n, a.c, a.h, a.w, a.strides, xp, a.out_h, a.out_w, dyp,
                                        dxp, ds);
  settle("ds_diffstride_backward", st, a.ctx);
  if (st == DS_OK) {
    FUZZ_REQUIRE(!big && a.right && dyp && (xp || !ds), "ds_diffstride_backward succeeded with a bad argument");
    if (dxp) check_planes("ds_diffstride_backward (dx)", &dy, &dx);
    if (ds && tame_ramp(a.pdesc) && all_tame(&x) && all_tame(&dy))
      FUZZ_REQUIRE(isfinite(ds[0]) && isfinite(ds[1]), "dstrides = %g, %g for finite, moderate x and dy",
                   (double)ds[0], (double)ds[1]);
    if (ds && a.pdesc->shared_stride) FUZZ_REQUIRE(ds[1] == 0.0f, "shared_stride: dstrides[1] = %g", (double)ds[1]);
    if (dxp && (f & 16)) { /* the other layout on the transposed batch */
      ds_diffstride_desc d2 = *a.pdesc;
      d2.layout = !a.nhwc;
      /* The same arguments: which pairs are computed one image at a time
       * (a pair whose x holds a NaN, for dstrides) changes dx's rounding. */
      tensor x2 = make_tensor(s, a.n, a.c, (double)a.h * a.w, !a.nhwc, 0);
      tensor dy2 = make_tensor(s, a.n, a.c, elems(a.out_h, a.out_w, 1, 1), !a.nhwc, 0);
      tensor dx2 = make_tensor(s, a.n, a.c, (double)a.h * a.w, !a.nhwc, 0);
      float ds2[2];
      transpose(&x, &x2);
      transpose(&dy, &dy2);
      st = ds_diffstride_backward(a.ctx, &d2, a.n, a.c, a.h, a.w, a.strides, xp ? x2.p : NULL, a.out_h, a.out_w,
                                  dy2.p, dx2.p, ds ? ds2 : NULL);
      FUZZ_REQUIRE(st == DS_OK, "backward in the other layout failed: %s", ds_last_error());
      check_same("ds_diffstride_backward NCHW vs NHWC", &dy, &dx, &dx2);
      if (ds && all_tame(&x) && all_tame(&dy))
        FUZZ_REQUIRE(memcmp(ds, ds2, sizeof ds2) == 0, "dstrides NCHW %.9g, %.9g; NHWC %.9g, %.9g", (double)ds[0],
                     (double)ds[1], (double)ds2[0], (double)ds2[1]);
    }
  }
  ctx_done(a.ctx, a.fresh);
}

/* A reserve buffer for a call that needs `need` bytes (0: unknown): right,
 * short, long, misaligned or NULL; *claim gets the reserve_bytes argument,
 * always the bytes allocated from the returned pointer on. */
static void *gen_reserve(fuzz_src *s, size_t need, size_t *claim) {
  uint8_t k = fuzz_u8(s);
  if (need == 0 || need > 4 * (size_t)FUZZ_BUF_LIMIT) need = 64;
  switch (k % 8) {
  case 0: *claim = 0; return NULL;
  case 1: *claim = need > 1 ? need - 1 - fuzz_u8(s) % (need - 1) : 0; return alloc_exact(*claim);
  case 2: *claim = need + fuzz_u8(s); return alloc_exact(*claim);
  case 3: { /* misaligned */
    size_t off = 1 + fuzz_u8(s) % 7;
    uint8_t *p = alloc_exact(need + off);
    *claim = need;
    return p + off;
  }
  default: *claim = need; return alloc_exact(need);
  }
}

/* The training pair: forward_training, then backward_reserved with the same
 * reserve, a changed call, or a reserve never written or corrupted. */
static void op_training2d(fuzz_src *s) {
  call2d a;
  gen_call2d(s, &a);
  uint8_t f = fuzz_u8(s);
  size_t need = 0;
  if (ds_diffstride_reserve_size(a.pdesc, a.n, a.c, a.h, a.w, a.strides, &need) != DS_OK) need = 0;
  size_t claim;
  uint8_t *reserve = gen_reserve(s, need, &claim);
  tensor x = make_tensor(s, a.n, a.c, (double)a.h * a.w, a.nhwc, 1);
  tensor y = make_tensor(s, a.n, a.c, elems(a.out_h, a.out_w, 1, 1), a.nhwc, 0);
  int big = !x.p || !y.p;
  const float *xp = big || (f & 1) ? NULL : x.p;
  float *yp = big ? dummy() : (f & 2) ? NULL : y.p;
  outs_reset();
  out_add(yp, big ? 64 : sizeof(float) * (size_t)y.n * y.c * y.hw);
  out_add(reserve, claim);
  arm(a.ctx);
  ds_status st = ds_diffstride_forward_training(a.ctx, a.pdesc, a.n, a.c, a.h, a.w, a.strides, xp, a.out_h,
                                                a.out_w, yp, reserve, claim);
  settle("ds_diffstride_forward_training", st, a.ctx);
  int written = st == DS_OK;
  if (written) {
    FUZZ_REQUIRE(!big && a.right && xp && yp && reserve && claim >= need && (uintptr_t)reserve % 8 == 0,
                 "ds_diffstride_forward_training succeeded with a bad argument (reserve %zu of %zu bytes at %p)",
                 claim, need, (void *)reserve);
    check_planes("ds_diffstride_forward_training", &x, &y);
  }
  /* The backward: the same call, or one changed. */
  call2d b = a;
  uint8_t g = fuzz_u8(s);
  if (g & 1) { /* another call */
    call2d c2;
    gen_call2d(s, &c2);
    ctx_done(c2.ctx, c2.fresh);
    if (g & 2) b.n = c2.n;
    if (g & 4) b.h = c2.h, b.w = c2.w;
    if (g & 8) b.strides = c2.strides;
    if (g & 16) b.out_h = c2.out_h, b.out_w = c2.out_w;
    if (g & 32) b.desc = c2.desc, b.pdesc = c2.pdesc ? &b.desc : NULL;
    b.nhwc = b.pdesc && b.pdesc->layout == DS_LAYOUT_NHWC;
    if (b.strides && strides_read(b.pdesc) > strides_read(g & 8 ? c2.pdesc : a.pdesc)) {
      float *two = alloc_exact(2 * sizeof(float)); /* the call now reads two */
      two[0] = two[1] = b.strides[0];
      b.strides = two;
    }
  }
  const uint8_t *rb = reserve;
  size_t rclaim = claim;
  int forged = 0, never = !written; /* a failed forward left the sentinel */
  if (g & 64) { /* a reserve never written by a forward, or a corrupted copy */
    uint8_t *r2 = rclaim ? alloc_exact(rclaim) : NULL;
    uint8_t how = fuzz_u8(s);
    if (r2 && reserve && (how & 1)) {
      memcpy(r2, reserve, rclaim);
      r2[fuzz_u16(s) % rclaim] ^= (uint8_t)(1 + fuzz_u8(s) % 255);
      forged = 1;
    } else if (r2) {
      memset(r2, how & 2 ? 0 : SENTINEL, rclaim);
      never = 1;
    }
    if (r2) rb = r2;
    written = 0;
  }
  uint8_t *copy = rb && rclaim ? alloc_exact(rclaim) : NULL;
  if (copy) memcpy(copy, rb, rclaim);
  tensor dy = make_tensor(s, b.n, b.c, elems(b.out_h, b.out_w, 1, 1), b.nhwc, 1);
  tensor dx = make_tensor(s, b.n, b.c, (double)b.h * b.w, b.nhwc, 0);
  int bbig = !dy.p || !dx.p;
  uint8_t h = fuzz_u8(s);
  const float *dyp = bbig || (h & 1) ? NULL : dy.p;
  float *dxp = (h & 2) ? NULL : bbig ? dummy() : dx.p;
  float *ds = (h & 4) ? NULL : alloc_exact(2 * sizeof(float));
  outs_reset();
  out_add(dxp, bbig ? 64 : sizeof(float) * (size_t)dx.n * dx.c * dx.hw);
  out_add(ds, 2 * sizeof(float));
  arm(b.ctx);
  st = ds_diffstride_backward_reserved(b.ctx, b.pdesc, b.n, b.c, b.h, b.w, b.strides, rb, rclaim, b.out_h, b.out_w,
                                       dyp, dxp, ds);
  settle("ds_diffstride_backward_reserved", st, b.ctx);
  if (copy) FUZZ_REQUIRE(memcmp(copy, rb, rclaim) == 0, "ds_diffstride_backward_reserved wrote its reserve");
  if (written && !(g & 1) && dyp)
    FUZZ_REQUIRE(st == DS_OK, "backward_reserved refused the reserve its forward just wrote: %s", ds_last_error());
  if (st == DS_OK) {
    FUZZ_REQUIRE(dyp, "ds_diffstride_backward_reserved succeeded without dy");
    FUZZ_REQUIRE(!ds || !rb || forged || !never, "ds_diffstride_backward_reserved accepted a reserve no forward wrote");
    if (dxp) check_planes("ds_diffstride_backward_reserved (dx)", &dy, &dx);
    if (ds && written && tame_ramp(a.pdesc) && all_tame(&x) && all_tame(&dy))
      FUZZ_REQUIRE(isfinite(ds[0]) && isfinite(ds[1]), "reserved dstrides = %g, %g for finite, moderate x and dy",
                   (double)ds[0], (double)ds[1]);
  }
  ctx_done(a.ctx, a.fresh);
}

/* ------------------------------------------------------- 1-D DiffStride */

typedef struct call1d {
  ds_context *ctx;
  int fresh;
  ds_diffstride_desc desc;
  const ds_diffstride_desc *pdesc;
  int n, c, l, out_l, nlc, size_ok, right;
  float stride;
} call1d;

static void gen_call1d(fuzz_src *s, call1d *a) {
  memset(a, 0, sizeof *a);
  a->pdesc = gen_desc(s, &a->desc);
  a->n = gen_count(s), a->c = gen_count(s);
  a->l = gen_dim(s);
  if ((fuzz_u8(s) & 1) && a->l > 0 && a->l < (1 << 20)) a->l = a->l * 8 + 3; /* longer signals */
  a->stride = gen_float(s);
  a->nlc = a->pdesc && a->pdesc->layout == DS_LAYOUT_NLC;
  int *pl = alloc_exact(sizeof(int)), ol = 0;
  outs_reset();
  out_add(pl, sizeof(int));
  arm(NULL);
  ds_status st = ds_diffstride1d_output_size(a->pdesc, a->l, a->stride, pl);
  settle("ds_diffstride1d_output_size", st, NULL);
  if (st == DS_OK) {
    ol = *pl;
    FUZZ_REQUIRE(ol >= 2 && ol <= a->l && ol % 2 == 0, "ds_diffstride1d_output_size(%d, %g) = %d", a->l,
                 (double)a->stride, ol);
  }
  a->size_ok = st == DS_OK;
  int dummy_h;
  gen_out(s, a->size_ok, 1, ol, &dummy_h, &a->out_l);
  a->right = a->size_ok && a->out_l == ol;
  a->ctx = gen_ctx(s, a->l <= 64, &a->fresh);
  const ds_diffstride_desc *d = a->pdesc;
  snprintf(fuzz_note, sizeof fuzz_note,
           "1-D call: desc %s {R %g, cropping %d, limits [%g, %g], layout %d}, n %d c %d l %d, stride %g, out_l %d "
           "(%s), ctx %s",
           d ? "" : "NULL", d ? (double)d->smoothness : 0.0, d ? d->cropping : 0, d ? (double)d->lower_limit : 0.0,
           d ? (double)d->upper_limit : 0.0, d ? d->layout : 0, a->n, a->c, a->l, (double)a->stride, a->out_l,
           a->right ? "right" : "wrong", g_ctx_note);
}

static void op_sizes1d(fuzz_src *s) {
  call1d a;
  gen_call1d(s, &a);
  ctx_done(a.ctx, a.fresh);
  float *eff = fuzz_u8(s) % 16 == 15 ? NULL : alloc_exact(sizeof(float));
  outs_reset();
  out_add(eff, sizeof(float));
  arm(NULL);
  ds_status st = ds_diffstride1d_effective_stride(a.pdesc, a.l, a.stride, eff);
  settle("ds_diffstride1d_effective_stride", st, NULL);
  if (st == DS_OK) {
    FUZZ_REQUIRE(a.size_ok, "1-D effective_stride succeeds where output_size fails");
    FUZZ_REQUIRE(isfinite(*eff) && *eff >= a.pdesc->lower_limit && *eff <= a.pdesc->upper_limit,
                 "1-D effective stride %g outside the limits", (double)*eff);
    float again = 0;
    int o1 = 0, o2 = 0;
    FUZZ_REQUIRE(ds_diffstride1d_effective_stride(a.pdesc, a.l, *eff, &again) == DS_OK && again == *eff,
                 "1-D effective stride not idempotent: %g -> %g", (double)*eff, (double)again);
    FUZZ_REQUIRE(ds_diffstride1d_output_size(a.pdesc, a.l, a.stride, &o1) == DS_OK &&
                     ds_diffstride1d_output_size(a.pdesc, a.l, *eff, &o2) == DS_OK && o1 == o2,
                 "1-D output length %d at the stride, %d at its effective stride", o1, o2);
  }
  size_t *bytes = fuzz_u8(s) % 16 == 15 ? NULL : alloc_exact(sizeof(size_t));
  outs_reset();
  out_add(bytes, sizeof(size_t));
  arm(NULL);
  st = ds_diffstride1d_reserve_size(a.pdesc, a.n, a.c, a.l, a.stride, bytes);
  settle("ds_diffstride1d_reserve_size", st, NULL);
  if (st == DS_OK) {
    int ol = 0;
    FUZZ_REQUIRE(ds_diffstride1d_output_size(a.pdesc, a.l, a.stride, &ol) == DS_OK,
                 "1-D reserve_size succeeds where output_size fails");
    size_t want = 64 + ((size_t)a.n * (size_t)a.c + 1) / 2 * (8 + 16 * ((size_t)ol / 2 + 1));
    FUZZ_REQUIRE(*bytes == want, "1-D reserve_size %zu, the header's formula gives %zu", *bytes, want);
  }
}

static void op_forward1d(fuzz_src *s) {
  call1d a;
  gen_call1d(s, &a);
  uint8_t f = fuzz_u8(s);
  tensor x = make_tensor(s, a.n, a.c, a.l, a.nlc, 1);
  tensor y = make_tensor(s, a.n, a.c, elems(a.out_l, 1, 1, 1), a.nlc, 0);
  int big = !x.p || !y.p;
  const float *xp = big || (f & 1) ? NULL : x.p;
  float *yp = big ? dummy() : (f & 2) ? NULL : y.p;
  outs_reset();
  out_add(yp, big ? 64 : sizeof(float) * (size_t)y.n * y.c * y.hw);
  arm(a.ctx);
  ds_status st = ds_diffstride1d_forward(a.ctx, a.pdesc, a.n, a.c, a.l, a.stride, xp, a.out_l, yp);
  settle("ds_diffstride1d_forward", st, a.ctx);
  if (st == DS_OK) {
    FUZZ_REQUIRE(!big && a.right && xp && yp, "ds_diffstride1d_forward succeeded with a bad argument");
    check_planes("ds_diffstride1d_forward", &x, &y);
  }
  ctx_done(a.ctx, a.fresh);
}

/* Backward, plain or from a reserve (then also compared with the plain
 * one: the header promises the same bits on the CPU). */
static void op_backward1d(fuzz_src *s) {
  call1d a;
  gen_call1d(s, &a);
  uint8_t f = fuzz_u8(s);
  tensor x = make_tensor(s, a.n, a.c, a.l, a.nlc, 1);
  tensor dy = make_tensor(s, a.n, a.c, elems(a.out_l, 1, 1, 1), a.nlc, 1);
  tensor dx = make_tensor(s, a.n, a.c, a.l, a.nlc, 0);
  int big = !x.p || !dy.p || !dx.p;
  const float *xp = big || (f & 1) ? NULL : x.p;
  const float *dyp = big || (f & 2) ? NULL : dy.p;
  float *dxp = (f & 4) ? NULL : big ? dummy() : dx.p;
  float *ds = (f & 8) ? NULL : alloc_exact(sizeof(float));
  ds_status st;
  if (!(f & 16)) {
    outs_reset();
    out_add(dxp, big ? 64 : sizeof(float) * (size_t)dx.n * dx.c * dx.hw);
    out_add(ds, sizeof(float));
    arm(a.ctx);
    st = ds_diffstride1d_backward(a.ctx, a.pdesc, a.n, a.c, a.l, a.stride, xp, a.out_l, dyp, dxp, ds);
    settle("ds_diffstride1d_backward", st, a.ctx);
    if (st == DS_OK) {
      FUZZ_REQUIRE(!big && a.right && dyp && (xp || !ds), "ds_diffstride1d_backward succeeded with a bad argument");
      if (dxp) check_planes("ds_diffstride1d_backward (dx)", &dy, &dx);
      if (ds && tame_ramp(a.pdesc) && all_tame(&x) && all_tame(&dy))
        FUZZ_REQUIRE(isfinite(*ds), "1-D dstride = %g for finite, moderate x and dy", (double)*ds);
    }
    ctx_done(a.ctx, a.fresh);
    return;
  }
  /* Training pair. */
  size_t need = 0, claim;
  if (ds_diffstride1d_reserve_size(a.pdesc, a.n, a.c, a.l, a.stride, &need) != DS_OK) need = 0;
  uint8_t *reserve = gen_reserve(s, need, &claim);
  tensor y = make_tensor(s, a.n, a.c, elems(a.out_l, 1, 1, 1), a.nlc, 0);
  float *yp = big || !y.p ? dummy() : y.p;
  if (!y.p) xp = NULL; /* y too large to allocate: the call must fail */
  outs_reset();
  out_add(yp, big || !y.p ? 64 : sizeof(float) * (size_t)y.n * y.c * y.hw);
  out_add(reserve, claim);
  arm(a.ctx);
  st = ds_diffstride1d_forward_training(a.ctx, a.pdesc, a.n, a.c, a.l, a.stride, xp, a.out_l, yp, reserve, claim);
  settle("ds_diffstride1d_forward_training", st, a.ctx);
  int written = st == DS_OK;
  if (written) {
    FUZZ_REQUIRE(!big && a.right && xp && reserve && claim >= need && (uintptr_t)reserve % 8 == 0,
                 "ds_diffstride1d_forward_training succeeded with a bad argument");
    check_planes("ds_diffstride1d_forward_training", &x, &y);
  }
  const uint8_t *rb = reserve;
  int never = !written; /* a failed forward left the sentinel */
  if (f & 32) { /* a reserve never written */
    uint8_t *r2 = claim ? alloc_exact(claim) : NULL;
    if (r2) memset(r2, f & 64 ? 0 : SENTINEL, claim);
    rb = r2;
    written = 0, never = 1;
  }
  uint8_t *copy = rb && claim ? alloc_exact(claim) : NULL;
  if (copy) memcpy(copy, rb, claim);
  outs_reset();
  out_add(dxp, big ? 64 : sizeof(float) * (size_t)dx.n * dx.c * dx.hw);
  out_add(ds, sizeof(float));
  arm(a.ctx);
  st = ds_diffstride1d_backward_reserved(a.ctx, a.pdesc, a.n, a.c, a.l, a.stride, rb, claim, a.out_l, dyp, dxp, ds);
  settle("ds_diffstride1d_backward_reserved", st, a.ctx);
  if (copy) FUZZ_REQUIRE(memcmp(copy, rb, claim) == 0, "ds_diffstride1d_backward_reserved wrote its reserve");
  if (written && dyp)
    FUZZ_REQUIRE(st == DS_OK, "1-D backward_reserved refused the reserve its forward just wrote: %s", ds_last_error());
  FUZZ_REQUIRE(st != DS_OK || !ds || !rb || !never,
               "ds_diffstride1d_backward_reserved accepted a reserve no forward wrote");
  /* The plain backward gives the same bits, where x is finite: with a NaN
   * or an infinity in x the plain backward computes that image's pair one
   * image at a time, and the rounding of dx changes in the last bits (a
   * finding reported in docs/fuzzing.md; the header says "bitwise" without
   * that condition). */
  if (st == DS_OK && written && xp && !big && all_finite(&x)) {
    tensor dx2 = make_tensor(s, a.n, a.c, a.l, a.nlc, 0);
    float ds2 = 0.0f;
    ds_status st2 = ds_diffstride1d_backward(a.ctx, a.pdesc, a.n, a.c, a.l, a.stride, xp, a.out_l, dyp,
                                             dxp ? dx2.p : NULL, ds ? &ds2 : NULL);
    FUZZ_REQUIRE(st2 == DS_OK, "1-D plain backward failed after the reserved one: %s", ds_last_error());
    if (dxp) check_same("ds_diffstride1d_backward_reserved vs backward (dx)", &dy, &dx, &dx2);
    if (ds && all_tame(&x) && all_tame(&dy))
      FUZZ_REQUIRE(memcmp(ds, &ds2, sizeof ds2) == 0, "1-D dstride: reserved %.9g, plain %.9g", (double)*ds,
                   (double)ds2);
  }
  ctx_done(a.ctx, a.fresh);
}

/* ------------------------------------------------------ spectral pooling */

typedef struct spectral_geometry {
  int layout, n, c, h, w, out_h, out_w, right;
  const float *strides;
} spectral_geometry;

/* One forward (f & 2: x of h*w -> y of out_h*out_w) or backward (dy ->
 * dx) call, its input drawn first, both exactly as large as the call
 * claims; f & 4 passes a NULL input, f & 8 a NULL output. */
static void spectral_call(fuzz_src *s, ds_context *ctx, int f, const spectral_geometry *g) {
  const int fwd = f & 2, nhwc = g->layout == DS_LAYOUT_NHWC;
  const double full = (double)g->h * g->w, pooled = elems(g->out_h, g->out_w, 1, 1);
  const char *call = fwd ? "ds_spectral_pool_forward" : "ds_spectral_pool_backward";
  tensor in = make_tensor(s, g->n, g->c, fwd ? full : pooled, nhwc, 1);
  tensor out = make_tensor(s, g->n, g->c, fwd ? pooled : full, nhwc, 0);
  int big = !in.p || !out.p;
  const float *ip = big || (f & 4) ? NULL : in.p;
  float *op = big ? dummy() : (f & 8) ? NULL : out.p;
  outs_reset();
  out_add(op, big ? 64 : sizeof(float) * (size_t)out.n * out.c * out.hw);
  arm(ctx);
  ds_status st = fwd ? ds_spectral_pool_forward(ctx, g->layout, g->n, g->c, g->h, g->w, g->strides, ip, g->out_h,
                                                g->out_w, op)
                     : ds_spectral_pool_backward(ctx, g->layout, g->n, g->c, g->h, g->w, g->strides, g->out_h,
                                                 g->out_w, ip, op);
  settle(call, st, ctx);
  if (st != DS_OK) return;
  FUZZ_REQUIRE(!big && g->right && ip && op && (g->layout == 0 || g->layout == 1), "%s succeeded with a bad argument",
               call);
  check_planes(call, &in, &out);
}

static void op_spectral(fuzz_src *s) {
  uint8_t f = fuzz_u8(s);
  int h = gen_dim(s), w = gen_dim(s), n = gen_count(s), c = gen_count(s);
  int layout = fuzz_u8(s) % 4 == 3 ? gen_enum(s) : fuzz_u8(s) & 1;
  float *strides = fuzz_u8(s) % 16 == 15 ? NULL : alloc_exact(2 * sizeof(float));
  if (strides) strides[0] = gen_float(s), strides[1] = gen_float(s);
  int *ph = (f & 1) ? NULL : alloc_exact(sizeof(int)), *pw = alloc_exact(sizeof(int));
  outs_reset();
  out_add(ph, sizeof(int));
  out_add(pw, sizeof(int));
  arm(NULL);
  ds_status st = ds_spectral_pool_output_size(h, w, strides, ph, pw);
  settle("ds_spectral_pool_output_size", st, NULL);
  int oh = 0, ow = 0, ok = st == DS_OK;
  if (!ph && strides) ok = ds_spectral_pool_output_size(h, w, strides, &oh, &ow) == DS_OK;
  if (ok && ph) oh = *ph, ow = *pw;
  if (ok) {
    FUZZ_REQUIRE(oh >= 2 && ow >= 2 && oh % 2 == 0 && oh <= h && ow <= w,
                 "ds_spectral_pool_output_size(%d x %d, %g, %g) = %d x %d", h, w, (double)strides[0],
                 (double)strides[1], oh, ow);
  }
  int out_h, out_w;
  gen_out(s, ok, oh, ow, &out_h, &out_w);
  int right = ok && out_h == oh && out_w == ow, fresh;
  ds_context *ctx = gen_ctx(s, h <= 16 && w <= 16, &fresh);
  snprintf(fuzz_note, sizeof fuzz_note,
           "spectral pooling %s: layout %d, n %d c %d h %d w %d, strides %s {%g, %g}, out %d x %d (%s), ctx %s",
           f & 2 ? "forward" : "backward", layout, n, c, h, w, strides ? "" : "NULL",
           strides ? (double)strides[0] : 0.0, strides ? (double)strides[1] : 0.0, out_h, out_w,
           right ? "right" : "wrong", g_ctx_note);
  spectral_geometry g = {layout, n, c, h, w, out_h, out_w, right, strides};
  spectral_call(s, ctx, f, &g);
  ctx_done(ctx, fresh);
}

/* --------------------------------------------------- complexity penalty */

static void op_penalty(fuzz_src *s) {
  uint8_t f = fuzz_u8(s);
  int layers = (f & 3) == 3 ? gen_enum(s) : fuzz_u8(s) % 9;
  int bounded = layers >= 0 && layers <= 64;
  float *strides = NULL, *weights = NULL, *grad = NULL, *value = NULL;
  size_t grad_bytes = 0;
  if (bounded) { /* arrays of exactly the lengths the call reads */
    if (!(f & 4)) {
      strides = alloc_exact(sizeof(float) * 2 * (size_t)layers);
      for (int i = 0; i < 2 * layers; i++) strides[i] = gen_float(s);
    }
    if (f & 8) {
      weights = alloc_exact(sizeof(float) * (size_t)layers);
      for (int i = 0; i < layers; i++) weights[i] = gen_float(s);
    }
    if (!(f & 16)) grad = alloc_exact(grad_bytes = sizeof(float) * 2 * (size_t)layers);
    if (!(f & 32)) value = alloc_exact(sizeof(float));
  } else { /* no arrays that long: the call must fail before reading any */
    grad = dummy(), grad_bytes = 64;
    if (!(f & 64)) value = alloc_exact(sizeof(float));
  }
  snprintf(fuzz_note, sizeof fuzz_note, "ds_complexity_penalty: layers %d, strides %s, weights %s, value %s, grad %s",
           layers, strides ? "set" : "NULL", weights ? "set" : "NULL", value ? "set" : "NULL", grad ? "set" : "NULL");
  outs_reset();
  out_add(value, sizeof(float));
  out_add(grad, grad_bytes);
  arm(NULL);
  ds_status st = ds_complexity_penalty(layers, strides, weights, value, grad);
  settle("ds_complexity_penalty", st, NULL);
  if (st != DS_OK) return;
  FUZZ_REQUIRE(value && bounded && (layers == 0 || strides), "ds_complexity_penalty succeeded with a bad argument");
  int tame = 1;
  for (int i = 0; i < 2 * layers; i++) tame &= strides[i] >= 1.0f && strides[i] <= 1e3f;
  for (int i = 0; weights && i < layers; i++) tame &= fabsf(weights[i]) <= 1e3f;
  if (layers == 0) FUZZ_REQUIRE(*value == 0.0f, "penalty of 0 layers = %g", (double)*value);
  if (tame) {
    FUZZ_REQUIRE(isfinite(*value), "penalty %g for strides in [1, 1e3]", (double)*value);
    for (int i = 0; grad && i < 2 * layers; i++)
      FUZZ_REQUIRE(isfinite(grad[i]), "penalty gradient %d = %g for strides in [1, 1e3]", i, (double)grad[i]);
  }
}

/* ------------------------------------------- contexts, version, status */

static void op_context(fuzz_src *s) {
  uint8_t f = fuzz_u8(s);
  int device = (f & 3) == 3 ? gen_enum(s) : f & 1;
  snprintf(fuzz_note, sizeof fuzz_note, "contexts: device %d", device);
  ds_context *ctx = (ds_context *)(uintptr_t)0x10, **pctx = (f & 4) ? NULL : &ctx;
  arm(NULL);
  ds_status st = ds_context_create((ds_device)device, pctx);
  outs_reset();
  settle("ds_context_create", st, NULL);
  ds_status want = !pctx ? DS_ERR_INVALID_ARGUMENT
                   : device == DS_DEVICE_CPU ? DS_OK
                   : device == DS_DEVICE_CUDA ? DS_ERR_UNSUPPORTED /* this build has no CUDA path */
                                              : DS_ERR_INVALID_ARGUMENT;
  FUZZ_REQUIRE(st == want, "ds_context_create(%d, %s) returned %d, expected %d", device, pctx ? "&ctx" : "NULL",
               (int)st, (int)want);
  if (st != DS_OK) {
    FUZZ_REQUIRE(!pctx || ctx == NULL, "ds_context_create failed but left *ctx = %p", (void *)ctx);
  } else {
    FUZZ_REQUIRE(pctx && device == DS_DEVICE_CPU && ctx, "ds_context_create(%d) succeeded", device);
  }
  if (st != DS_OK) ctx = (f & 8) ? NULL : g_ctx;
  /* Stream: unsupported on a CPU context, invalid without one. */
  arm(ctx);
  st = ds_context_set_stream(ctx, (void *)(uintptr_t)fuzz_u32(s));
  settle("ds_context_set_stream", st, ctx);
  FUZZ_REQUIRE(st == (ctx ? DS_ERR_UNSUPPORTED : DS_ERR_INVALID_ARGUMENT), "ds_context_set_stream returned %d",
               (int)st);
  int t = gen_enum(s);
  if (t == MARK_THREADS) t = 0;
  arm(ctx);
  st = ds_context_set_threads(ctx, t);
  settle("ds_context_set_threads", st, ctx);
  FUZZ_REQUIRE((st == DS_OK) == (ctx && t >= 0), "ds_context_set_threads(%d) returned %d", t, (int)st);
  int r = gen_enum(s);
  arm(ctx);
  st = ds_context_set_reproducible(ctx, r);
  settle("ds_context_set_reproducible", st, ctx);
  FUZZ_REQUIRE((st == DS_OK) == (ctx && (r == 0 || r == 1)), "ds_context_set_reproducible(%d) returned %d", r,
               (int)st);
  const char *m = ds_context_last_error(NULL);
  FUZZ_REQUIRE(m && !m[0], "ds_context_last_error(NULL) is not \"\"");
  if (ctx && ctx != g_ctx) {
    m = ds_context_last_error(ctx);
    FUZZ_REQUIRE(m != NULL, "ds_context_last_error is NULL");
    ds_context_destroy(ctx);
  }
  ctx_done(NULL, 0);
  ds_context_destroy(NULL);
  /* Status strings and version. */
  int code = (int)fuzz_u32(s);
  const char *str = ds_status_string(code);
  FUZZ_REQUIRE(str && str[0], "ds_status_string(%d) is empty", code);
  FUZZ_REQUIRE(is_error(code) || code == DS_OK || strcmp(str, "unknown status") == 0, "ds_status_string(%d) = %s",
               code, str);
  FUZZ_REQUIRE(ds_version() == DS_VERSION_MAJOR * 10000u + DS_VERSION_MINOR * 100u + DS_VERSION_PATCH,
               "ds_version() = %u", ds_version());
  str = ds_version_string();
  char vs[32];
  snprintf(vs, sizeof vs, "%d.%d.%d", DS_VERSION_MAJOR, DS_VERSION_MINOR, DS_VERSION_PATCH);
  FUZZ_REQUIRE(str && strcmp(str, vs) == 0, "ds_version_string() = %s", str ? str : "(null)");
  ds_diffstride_desc_init(NULL);
  ds_diffstride_desc d;
  memset(&d, 0xA5, sizeof d);
  ds_diffstride_desc_init(&d);
  FUZZ_REQUIRE(d.smoothness == 4.0f && d.cropping == 1 && d.shared_stride == 0 && d.lower_limit == 1.0f &&
                   isinf(d.upper_limit) && d.upper_limit > 0 && d.layout == DS_LAYOUT_NCHW,
               "ds_diffstride_desc_init: not the documented defaults");
}

/* ------------------------------------------------------------- driver */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (ds_context_create(DS_DEVICE_CPU, &g_ctx) != DS_OK || ds_context_set_reproducible(g_ctx, 1) != DS_OK) {
    fprintf(stderr, "fuzz api: cannot create a CPU context: %s\n", ds_last_error());
    abort();
  }
  ds_context_set_threads(g_ctx, MARK_THREADS);
  snprintf(g_mark, sizeof g_mark, "%s", ds_last_error());
  if (!g_mark[0] || strcmp(g_mark, ds_context_last_error(g_ctx)) != 0) {
    fprintf(stderr, "fuzz api: the marker message is not recorded\n");
    abort();
  }
  return 0;
}

typedef void (*op_fn)(fuzz_src *s);
static const op_fn ops[] = {op_sizes2d,   op_forward2d, op_backward2d, op_training2d, op_sizes1d,
                            op_forward1d, op_backward1d, op_spectral,  op_penalty,    op_context};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int trace = -1; /* FUZZ_TRACE=1: each operation's arguments on stderr */
  if (trace < 0) trace = getenv("FUZZ_TRACE") != NULL;
  fuzz_src s = {data, size};
  for (int i = 0; i < MAX_OPS && s.n; i++) {
    int k = fuzz_u8(&s) % (int)(sizeof ops / sizeof *ops);
    g_fill_note[0] = fuzz_note[0] = '\0';
    ops[k](&s);
    if (trace) fprintf(stderr, "fuzz api: op %d: %s; fills%s; last error: %s\n", k, fuzz_note, g_fill_note, ds_last_error());
    free_all();
  }
  return 0;
}
