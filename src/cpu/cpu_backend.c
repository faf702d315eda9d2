/* CPU backend state: thread count, per-thread arenas and the FFTW plan cache. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../elementwise.h"
#include "cpu.h"

/* FFTW's planner is not thread-safe by itself: fftwf_make_planner_thread_safe
 * (libfftw3f_threads) makes every plan creation and destruction in the
 * process, the library's and any other FFTW user's, take FFTW's own lock.
 * Called once, at the first CPU context; this flag is the library's only
 * global state. */
static pthread_once_t planner_safe = PTHREAD_ONCE_INIT;

static size_t pad64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* Places the parts of an arena for g, with stages of stage_floats floats,
 * in its block; returns the bytes needed. */
static size_t arena_layout(arena *a, const ds_crop *g, size_t stage_floats) {
  size_t in = pad64(sizeof(float) * 2 * (size_t)g->h * (size_t)g->w);
  size_t out = pad64(sizeof(float) * 2 * (size_t)g->out_h * (size_t)g->out_w);
  size_t staged = pad64(sizeof(float) * (2 + 4 * (size_t)g->out_h * (size_t)g->kc));
  size_t stage = pad64(sizeof(float) * stage_floats);
  size_t sizes[7] = {in, out, pad64(sizeof(double) * (size_t)g->out_h * (size_t)g->kc), staged, stage, stage, stage};
  size_t at[8] = {0};
  for (int i = 0; i < 7; i++) at[i + 1] = at[i] + sizes[i];
  char *p = a->base;
  if (p) {
    a->in = (float *)p, a->out = (float *)(p + at[1]);
    a->sums = (double *)(p + at[2]);
    a->staged = (float *)(p + at[3]);
    for (int i = 0; i < 3; i++) a->stage[i] = (float *)(p + at[4 + i]);
  }
  return at[7];
}

static int arena_fit(arena *a, const ds_crop *g, size_t stage_floats) {
  size_t need = arena_layout(&(arena){0}, g, stage_floats);
  if (need > a->bytes) {
    free(a->base);
    a->base = aligned_alloc(64, need);
    a->bytes = a->base ? need : 0;
    if (!a->base) return 0;
  }
  arena_layout(a, g, stage_floats);
  return 1;
}

static int arenas_fit(cpu_state *s, const ds_crop *g, int count, size_t stage_floats) {
  if (count > s->narenas) {
    arena *more = realloc(s->arenas, sizeof(arena) * (size_t)count);
    if (!more) return 0;
    memset(more + s->narenas, 0, sizeof(arena) * (size_t)(count - s->narenas));
    s->arenas = more;
    s->narenas = count;
  }
  for (int i = 0; i < count; i++)
    if (!arena_fit(&s->arenas[i], g, stage_floats)) return 0;
  return 1;
}

/* Makes the in-place plan for key on buf with the given split (FFTW_MEASURE:
 * planning may overwrite buf; FFTW_ESTIMATE: chosen without timing, so the
 * same in every process). */
static fftwf_plan plan_make(const plan_key *k, int split, float *buf) {
  int n2 = split ? k->n / split : k->n;
  fftwf_iodim dims[2] = {{split, n2 * k->stride, n2 * k->stride}, {n2, k->stride, k->stride}};
  fftwf_iodim loops[2] = {{k->outer_count, k->outer_dist, k->outer_dist},
                          {k->inner_count, k->inner_dist, k->inner_dist}};
  fftwf_complex *c = (fftwf_complex *)buf;
  return fftwf_plan_guru_dft(split ? 2 : 1, dims + !split, 2, loops, c, c, k->sign, (unsigned)k->flags);
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* At most this many Good-Thomas splits are planned for one length (a
 * length with many prime factors has many; 30 has 3, 210 has 7). */
#define DS_MAX_SPLITS 8

/* The plain plan and the Good-Thomas splits n1 < n2 of k->n (the smallest
 * DS_MAX_SPLITS n1), keeping the one FFTW's cost model rates cheapest
 * (fftwf_estimate_cost: it ranked the measured times right for every length
 * from 6 to 120 we timed, and unlike the measured fftwf_cost it is also
 * there for plans made from wisdom, so every context of a process chooses
 * alike); *split gets its split. */
static fftwf_plan plan_best(const plan_key *k, float *buf, int *split) {
  fftwf_plan best = plan_make(k, 0, buf);
  *split = 0;
  for (int n1 = 2, tried = 0; best && n1 * n1 < k->n && tried < DS_MAX_SPLITS; n1++) {
    if (k->n % n1 || gcd(n1, k->n / n1) != 1) continue;
    tried++;
    fftwf_plan p = plan_make(k, n1, buf);
    if (p && fftwf_estimate_cost(p) < fftwf_estimate_cost(best)) {
      fftwf_destroy_plan(best);
      best = p, *split = n1;
    } else if (p) {
      fftwf_destroy_plan(p);
    }
  }
  return best;
}

/* The cached plan for key, made on first use; *split (when not NULL) gets
 * the split it uses. When the cache is full the least recently used plan
 * goes (learned strides change shapes during training); the plans of the
 * call in progress are the most recent, so a call never loses a plan it
 * holds. */
static fftwf_plan plan_get(cpu_state *s, plan_key k, float *buf, int *split) {
  int slot = 0;
  while (slot < s->cached && memcmp(&s->cache[slot].key, &k, sizeof k) != 0) slot++;
  if (slot == s->cached) {
    if (slot == DS_PLAN_CACHE)
      for (int i = slot = 0; i < DS_PLAN_CACHE; i++)
        if (s->cache[i].used < s->cache[slot].used) slot = i;
    int chosen = k.split;
    fftwf_plan p = k.split == DS_SPLIT_BEST ? plan_best(&k, buf, &chosen) : plan_make(&k, k.split, buf);
    if (p && slot < s->cached) fftwf_destroy_plan(s->cache[slot].plan);
    if (!p) return NULL;
    if (slot == s->cached) s->cached++;
    s->cache[slot].key = k, s->cache[slot].plan = p, s->cache[slot].split = chosen;
  }
  s->cache[slot].used = ++s->clock;
  if (split) *split = s->cache[slot].split;
  return s->cache[slot].plan;
}

/* The transforms of an a x b grid in buf: the library's own where it has
 * them for this CPU, else FFTW plans of all b columns (contiguous, so FFTW
 * vectorizes across them; transforming only the kept columns and their
 * mirrors measured slower, its strided loops run narrower SIMD codelets)
 * and of the rows, [0, low) and [high, a) only (FFTW's columns must then
 * not be split, which stores the rows permuted). The inverse columns use
 * the split chosen for the forward ones, so that both agree on the grid's
 * row orders. */
static int grid_make(cpu_state *s, int a, int b, float *buf, grid_plans *p, int low, int high) {
  int f = s->plan_flags;
  *p = (grid_plans){.own_rows = s->own ? ds__cpu_own_rows(b) : NULL, .own_cols = s->own ? ds__cpu_own_cols(a) : NULL,
                    .a = a, .b = b, .low = a, .high = a};
  if (!p->own_cols) {
    p->cols[0] = plan_get(s, (plan_key){f, FFTW_FORWARD, a, b, 1, 0, b, 1, DS_SPLIT_BEST}, buf, &p->split);
    if (!p->cols[0]) return 0;
    p->cols[1] = plan_get(s, (plan_key){f, FFTW_BACKWARD, a, b, 1, 0, b, 1, p->split}, buf, NULL);
    if (!p->cols[1]) return 0;
  }
  if (p->own_rows) return 1;
  if (!p->split) p->low = low, p->high = high;
  for (int i = 0; i < 2; i++) {
    int sign = i ? FFTW_BACKWARD : FFTW_FORWARD;
    if (!(p->rows[i] = plan_get(s, (plan_key){f, sign, b, 1, 1, 0, p->low, b, 0}, buf, NULL))) return 0;
    if (p->high < a && !(p->high_rows[i] = plan_get(s, (plan_key){f, sign, b, 1, 1, 0, a - p->high, b, 0}, buf, NULL)))
      return 0;
  }
  return 1;
}

/* The rows of the input grid's spectrum that the crop reads (each kept row
 * r(i) and its mirror -r(i); in dx's spectrum the others are zero): the
 * first *low and the rows from *high on, or all of them (*low = *high = h)
 * when that saves nothing. FFTW transforms rows fast in fours (13 rows take
 * it as long as 24), so both blocks are rounded up to multiples of 4; the
 * second must start 64 bytes into the grid's alignment, as FFTW planned it
 * (32 x 32 cropped to 24 rows: rows 0..15 and 20..31, 0.37 us against
 * 0.43 for all 32). */
static void live_rows(const ds_crop *g, int *low, int *high) {
  int lo = 0, hi = g->h;
  for (int i = 0; i < g->out_h; i++) {
    int r = ds_source_row(i, g->h, g->out_h, g->rows_lo), rows[2] = {r, ds_mirror(r, g->h)};
    for (int t = 0; t < 2; t++)
      if (2 * rows[t] < g->h)
        lo = lo > rows[t] + 1 ? lo : rows[t] + 1;
      else
        hi = hi < rows[t] ? hi : rows[t];
  }
  lo = (lo + 3) / 4 * 4, hi = g->h - (g->h - hi + 3) / 4 * 4;
  int aligned = (long long)hi * g->w % 8 == 0;
  *low = *high = g->h;
  if (lo < hi && aligned) *low = lo, *high = hi;
}

/* b^-1 mod m, for coprime b < m (or m = 1). */
static int inverse_mod(int b, int m) {
  long long t = 1;
  while ((long long)b * t % m != 1 % m) t++;
  return (int)t;
}

void ds__cpu_grid_rows(int n, int split, int *spatial, int *spectral) {
  long long n1 = split ? split : 1, n2 = n / n1;
  long long t2 = inverse_mod((int)(n2 % n1), (int)n1), t1 = inverse_mod((int)(n1 % n2), (int)n2);
  for (long long i1 = 0; i1 < n1; i1++)
    for (long long i2 = 0; i2 < n2; i2++) {
      spatial[(n2 * i1 + n1 * i2) % n] = (int)(i1 * n2 + i2);
      spectral[(n2 * t2 % n * i1 + n1 * t1 % n * i2) % n] = (int)(i1 * n2 + i2);
    }
}

ds_status ds__cpu_prepare(ds_context *ctx, const ds_crop *g, int count, size_t stage_floats, crop_plans *p) {
  cpu_state *s = ctx->state;
  if (!arenas_fit(s, g, count, stage_floats))
    return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "workspace for %d threads: out of memory", count);
  int low, high;
  live_rows(g, &low, &high);
  if (!grid_make(s, g->h, g->w, s->arenas[0].in, &p->in, low, high) ||
      !grid_make(s, g->out_h, g->out_w, s->arenas[0].out, &p->out, g->out_h, g->out_h))
    return ds__fail(ctx, DS_ERR_BACKEND, "FFTW could not plan the transforms of %d x %d -> %d x %d",
                    g->h, g->w, g->out_h, g->out_w);
  return DS_OK;
}

int ds__cpu_threads(const cpu_state *s, long long pairs) {
  long long t = s->threads;
  if (t == 0) t = sysconf(_SC_NPROCESSORS_ONLN);
  if (t < 1) t = 1;
  return (int)(t < pairs ? t : pairs);
}

static ds_status cpu_set_threads(ds_context *ctx, int threads) {
  ((cpu_state *)ctx->state)->threads = threads;
  return DS_OK;
}

static ds_status cpu_set_stream(ds_context *ctx, void *stream) {
  (void)stream;
  return ds__fail(ctx, DS_ERR_UNSUPPORTED, "ds_context_set_stream: a CPU context has no stream");
}

static ds_status cpu_set_reproducible(ds_context *ctx, int reproducible) {
  ((cpu_state *)ctx->state)->plan_flags = reproducible ? FFTW_ESTIMATE : FFTW_MEASURE;
  return DS_OK;
}

static ds_status cpu_copy(ds_context *ctx, void *dst, const void *src, size_t bytes, int upload) {
  (void)ctx, (void)upload;
  memcpy(dst, src, bytes);
  return DS_OK;
}

static void cpu_destroy(void *state) {
  cpu_state *s = state;
  for (int i = 0; i < s->cached; i++) fftwf_destroy_plan(s->cache[i].plan);
  for (int i = 0; i < s->narenas; i++) free(s->arenas[i].base);
  free(s->arenas);
  free(s);
}

const ds_backend ds__cpu_backend = {ds__cpu_forward, ds__cpu_backward,     cpu_copy,   cpu_set_threads,
                                    cpu_set_stream,  cpu_set_reproducible, cpu_destroy};

ds_status ds__cpu_open(ds_context *ctx) {
  pthread_once(&planner_safe, fftwf_make_planner_thread_safe);
  cpu_state *s = calloc(1, sizeof *s);
  if (!s) return ds__fail(NULL, DS_ERR_OUT_OF_MEMORY, "ds_context_create: out of memory");
  s->threads = 1;
  s->own = 1;
  s->plan_flags = FFTW_MEASURE;
  ctx->state = s;
  ctx->backend = &ds__cpu_backend;
  return DS_OK;
}
