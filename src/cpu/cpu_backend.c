/* CPU backend state: thread count, per-thread arenas and the FFTW plan cache. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"

/* FFTW's planner is not thread-safe: every plan creation and destruction in
 * the library goes through this lock. It is the library's only global state. */
static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t pad64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* Places the parts of an arena for g in its block; returns the bytes needed. */
static size_t arena_layout(arena *a, const ds_crop *g) {
  size_t hw = (size_t)g->h * (size_t)g->w, out = (size_t)g->out_h * (size_t)g->out_w;
  size_t sizes[5] = {pad64(sizeof(float) * (hw > out ? hw : out)),
                     pad64(sizeof(float) * 2 * (size_t)g->h * (size_t)g->kw),
                     pad64(sizeof(float) * 2 * (size_t)g->out_h * (size_t)g->kc),
                     pad64(sizeof(double) * (size_t)g->out_h), pad64(sizeof(double) * (size_t)g->kc)};
  char *p = a->base;
  if (p) {
    a->real = (float *)p;
    a->spec = (float *)(p + sizes[0]);
    a->crop = (float *)(p + sizes[0] + sizes[1]);
    a->gh = (double *)(p + sizes[0] + sizes[1] + sizes[2]);
    a->gw = (double *)(p + sizes[0] + sizes[1] + sizes[2] + sizes[3]);
  }
  return sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
}

static int arena_fit(arena *a, const ds_crop *g) {
  size_t need = arena_layout(&(arena){0}, g);
  if (need > a->bytes) {
    free(a->base);
    a->base = aligned_alloc(64, need);
    a->bytes = a->base ? need : 0;
    if (!a->base) return 0;
  }
  arena_layout(a, g);
  return 1;
}

static int arenas_fit(cpu_state *s, const ds_crop *g, int count) {
  if (count > s->narenas) {
    arena *more = realloc(s->arenas, sizeof(arena) * (size_t)count);
    if (!more) return 0;
    memset(more + s->narenas, 0, sizeof(arena) * (size_t)(count - s->narenas));
    s->arenas = more;
    s->narenas = count;
  }
  for (int i = 0; i < count; i++)
    if (!arena_fit(&s->arenas[i], g)) return 0;
  return 1;
}

/* Makes the plan for key on the buffers in/out (FFTW_MEASURE: planning may
 * overwrite them). */
static fftwf_plan plan_make(const plan_key *k, float *in, float *out) {
  const int n[1] = {k->n};
  unsigned flags = FFTW_MEASURE;
  switch (k->kind) {
  case PLAN_R2C:
    return fftwf_plan_many_dft_r2c(1, n, k->howmany, in, NULL, k->stride, k->idist,
                                   (fftwf_complex *)out, NULL, k->stride, k->odist, flags);
  case PLAN_C2R:
    return fftwf_plan_many_dft_c2r(1, n, k->howmany, (fftwf_complex *)in, NULL, k->stride,
                                   k->idist, out, NULL, k->stride, k->odist, flags);
  default:
    return fftwf_plan_many_dft(1, n, k->howmany, (fftwf_complex *)in, NULL, k->stride, k->idist,
                               (fftwf_complex *)out, NULL, k->stride, k->odist,
                               k->kind == PLAN_C2C_FORWARD ? FFTW_FORWARD : FFTW_BACKWARD, flags);
  }
}

/* The cached plan for key, made on first use. When the cache is full the
 * least recently used plan goes (learned strides change shapes during
 * training); the plans of the call in progress are the most recent, so a
 * call never loses a plan it holds. */
static fftwf_plan plan_get(cpu_state *s, plan_key k, float *in, float *out) {
  for (int i = 0; i < s->cached; i++)
    if (memcmp(&s->cache[i].key, &k, sizeof k) == 0) {
      s->cache[i].used = ++s->clock;
      return s->cache[i].plan;
    }
  int slot = s->cached;
  if (slot == DS_PLAN_CACHE) {
    slot = 0;
    for (int i = 1; i < DS_PLAN_CACHE; i++)
      if (s->cache[i].used < s->cache[slot].used) slot = i;
  }
  pthread_mutex_lock(&planner_lock);
  fftwf_plan p = plan_make(&k, in, out);
  if (p && slot < s->cached) fftwf_destroy_plan(s->cache[slot].plan);
  pthread_mutex_unlock(&planner_lock);
  if (!p) return NULL;
  if (slot == s->cached) s->cached++;
  s->cache[slot].key = k;
  s->cache[slot].plan = p;
  s->cache[slot].used = ++s->clock;
  return p;
}

/* Rows of an image (stride 1) and columns of a spectrum (stride = row
 * length, in place). */
static plan_key rows_key(plan_kind kind, int n, int rows, int real_dist, int complex_dist) {
  int r2c = kind == PLAN_R2C;
  return (plan_key){kind, n, rows, 1, r2c ? real_dist : complex_dist,
                    r2c ? complex_dist : real_dist};
}

static plan_key cols_key(plan_kind kind, int n, int cols, int row_len) {
  return (plan_key){kind, n, cols, row_len, 1, 1};
}

static int plans_make(cpu_state *s, const ds_crop *g, crop_plans *p) {
  arena *a = &s->arenas[0];
  int kw = g->kw, kc = g->kc, oh = g->out_h, ow = g->out_w;
  p->rows_in_r2c = plan_get(s, rows_key(PLAN_R2C, g->w, g->h, g->w, kw), a->real, a->spec);
  p->rows_in_c2r = plan_get(s, rows_key(PLAN_C2R, g->w, g->h, g->w, kw), a->spec, a->real);
  p->rows_out_r2c = plan_get(s, rows_key(PLAN_R2C, ow, oh, ow, kc), a->real, a->crop);
  p->rows_out_c2r = plan_get(s, rows_key(PLAN_C2R, ow, oh, ow, kc), a->crop, a->real);
  for (int d = 0; d < 2; d++) {
    plan_kind kind = d ? PLAN_C2C_BACKWARD : PLAN_C2C_FORWARD;
    p->cols_in[d] = plan_get(s, cols_key(kind, g->h, kc, kw), a->spec, a->spec);
    p->cols_out[d] = plan_get(s, cols_key(kind, oh, kc, kc), a->crop, a->crop);
  }
  return p->rows_in_r2c && p->rows_in_c2r && p->rows_out_r2c && p->rows_out_c2r &&
         p->cols_in[0] && p->cols_in[1] && p->cols_out[0] && p->cols_out[1];
}

ds_status ds__cpu_prepare(ds_context *ctx, const ds_crop *g, int count, crop_plans *p) {
  cpu_state *s = ctx->state;
  if (!arenas_fit(s, g, count))
    return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "workspace for %d threads: out of memory", count);
  if (!plans_make(s, g, p))
    return ds__fail(ctx, DS_ERR_BACKEND, "FFTW could not plan the transforms of %d x %d -> %d x %d",
                    g->h, g->w, g->out_h, g->out_w);
  return DS_OK;
}

int ds__cpu_threads(const cpu_state *s, long long images) {
  long long t = s->threads;
  if (t == 0) t = sysconf(_SC_NPROCESSORS_ONLN);
  if (t < 1) t = 1;
  return (int)(t < images ? t : images);
}

static ds_status cpu_set_threads(ds_context *ctx, int threads) {
  ((cpu_state *)ctx->state)->threads = threads;
  return DS_OK;
}

static ds_status cpu_set_stream(ds_context *ctx, void *stream) {
  (void)stream;
  return ds__fail(ctx, DS_ERR_UNSUPPORTED, "ds_context_set_stream: a CPU context has no stream");
}

static void cpu_destroy(void *state) {
  cpu_state *s = state;
  pthread_mutex_lock(&planner_lock);
  for (int i = 0; i < s->cached; i++) fftwf_destroy_plan(s->cache[i].plan);
  pthread_mutex_unlock(&planner_lock);
  for (int i = 0; i < s->narenas; i++) free(s->arenas[i].base);
  free(s->arenas);
  free(s);
}

const ds_backend ds__cpu_backend = {ds__cpu_forward, ds__cpu_backward, cpu_set_threads,
                                    cpu_set_stream, cpu_destroy};

ds_status ds__cpu_open(ds_context *ctx) {
  cpu_state *s = calloc(1, sizeof *s);
  if (!s) return ds__fail(NULL, DS_ERR_OUT_OF_MEMORY, "ds_context_create: out of memory");
  s->threads = 1;
  ctx->state = s;
  ctx->backend = &ds__cpu_backend;
  return DS_OK;
}
