/* Moving pixels between a batch's tensors and a thread's grids: two real
 * images packed into one complex grid and unpacked again, and the
 * streaming around it. A thread's pairs come from memory and go back to it
 * (in the headline case a pair moves 35 KB and computes for about 6 us),
 * and one core keeps only a dozen cache-line transfers in flight, so the
 * reads must overlap the transforms: at each step of the current pair
 * (each transform half, each cropped row) a few lines of the next pair are
 * prefetched. Large outputs are written with non-temporal stores where the
 * CPU has them, so that their lines are not read from memory before being
 * overwritten (ds__cpu_streams). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../elementwise.h"
#include "cpu.h"
#include "cpu_avx2.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Calls writing more than this stream their outputs. Below it the output
 * can stay in the caches for whoever reads it next, and regular stores win
 * (measured on the development VM, DiffStride training calls on
 * n x 64 x 32 x 32, 2 threads: n = 64, 17 MB of dx, 7.6 ms regular against
 * 8.0 streamed; n = 96, 12.9 against 12.0; n = 128, 18.4 against 17.3). */
#define DS_STREAM_MIN_BYTES ((size_t)16 << 20)

int ds__cpu_streams(size_t bytes) {
#if defined(__SSE2__)
  return bytes > DS_STREAM_MIN_BYTES;
#else
  return (void)bytes, 0;
#endif
}

/* Two images (hw pixels, every step-th float of a and of b) into the real
 * and imaginary lanes of the grid in one pass (in NHWC they are adjacent
 * channels, so each pixel is one 8-byte read); m is raised to their
 * largest magnitudes. The maxima are taken on the bits of |v|, whose
 * integer order is the float order (NaN above infinity), because an integer
 * maximum vectorizes and a float one does not without -ffast-math. */
static inline void load_pair_step(float *grid, const float *a, const float *b, int step, long long hw,
                                  uint32_t m[2]) {
  uint32_t ma = m[0], mb = m[1];
  for (long long p = 0; p < hw; p++) {
    float va = a[p * step], vb = b[p * step];
    uint32_t ua, ub;
    memcpy(&ua, &va, sizeof ua), memcpy(&ub, &vb, sizeof ub);
    ua &= 0x7fffffffu, ub &= 0x7fffffffu;
    ma = ua > ma ? ua : ma, mb = ub > mb ? ub : mb;
    grid[2 * p] = va, grid[2 * p + 1] = vb;
  }
  m[0] = ma, m[1] = mb;
}

/* load_pair_step with the contiguous (NCHW) case compiled on its own, so
 * that it vectorizes. */
DS_HOT_LOOP
static void load_pair(float *grid, const float *a, const float *b, int step, long long hw, uint32_t m[2]) {
  if (step == 1)
    load_pair_step(grid, a, b, 1, hw, m);
  else
    load_pair_step(grid, a, b, step, hw, m);
}

/* Rows stored in order travel as one block (the whole image), permuted
 * ones one by one. */
static int row_run(const grid_rows *gr) { return gr->split ? 1 : gr->rows; }

static long long images(const ds_batch *b) { return (long long)b->n * b->c; }

packing ds__cpu_pack(const ds_batch *b, const grid_rows *gr, float *grid, const float *t, long long pair,
                     int lanes) {
  int step = ds_pixel_step(b->c, b->nhwc), run = row_run(gr);
  long long hw = (long long)gr->rows * gr->width;
  size_t row = (size_t)gr->width * (size_t)step;
  packing k = {lanes & (2 * pair + 1 < images(b) ? 3 : 1), {1.0f, 1.0f}};
  const float *img[2];
  for (int lane = 0; lane < 2; lane++)
    img[lane] = t + ds_image_offset(2 * pair + (k.lanes & (1 << lane) ? lane : !lane), b->c, hw, b->nhwc);
  uint32_t bits[2] = {0, 0};
  for (int i = 0; i < gr->rows; i += run)
    load_pair(grid + 2 * (size_t)gr->spatial[i] * (size_t)gr->width, img[0] + i * row, img[1] + i * row, step,
              (long long)run * gr->width, bits);
  float m[2];
  memcpy(m, bits, sizeof m);
  for (int lane = 0; lane < 2; lane++) { /* a lane not wanted got the other image: zeros */
    if (k.lanes & (1 << lane)) continue;
    m[lane] = 0.0f;
    for (long long p = 0; p < hw; p++) grid[2 * p + lane] = 0.0f;
  }
  int shift[2];
  ds_pair_shifts(m[0], m[1], shift);
  for (int lane = 0; lane < 2; lane++) {
    float s = ldexpf(1.0f, shift[lane]);
    for (long long p = 0; shift[lane] && p < hw; p++) grid[2 * p + lane] *= s;
    k.back[lane] = (m[lane] != 0.0f) * ldexpf(1.0f, -shift[lane]);
  }
  return k;
}

/* One lane of the grid (every second float from `lane`) to an image
 * (every step-th float of dst), scaled by s. */
static inline void store_lane_step(const float *lane, float *dst, int step, long long hw, float s) {
  for (long long p = 0; p < hw; p++) dst[p * step] = s * lane[2 * p];
}

/* Both lanes in one pass (in NHWC the two images share cache lines). */
static inline void store_pair_step(const float *grid, float *a, float *b, int step, long long hw, float sa,
                                   float sb) {
  for (long long p = 0; p < hw; p++) a[p * step] = sa * grid[2 * p], b[p * step] = sb * grid[2 * p + 1];
}

#if defined(__SSE2__)
/* *dst = v with a 4-byte non-temporal store: the scalar heads and tails of
 * streamed runs are streamed too, since a regular store to a line that is
 * being written non-temporally flushes its write-combining buffer half
 * full (measured: 3x slower on rows of 22 floats). */
static inline void stream_float(float *dst, float v) {
  int bits;
  memcpy(&bits, &v, sizeof bits);
  _mm_stream_si32((int *)dst, bits);
}

/* store_pair_step for contiguous images with non-temporal stores, for a
 * and b at the same offset from a 16-byte boundary (the same products, so
 * the same floats). */
static inline void store_pair_stream(const float *grid, float *a, float *b, long long n, float sa, float sb) {
  long long p = 0;
  for (; p < n && (uintptr_t)(a + p) % 16; p++)
    stream_float(a + p, sa * grid[2 * p]), stream_float(b + p, sb * grid[2 * p + 1]);
  __m128 va = _mm_set1_ps(sa), vb = _mm_set1_ps(sb);
  for (; p + 4 <= n; p += 4) {
    __m128 lo = _mm_loadu_ps(grid + 2 * p), hi = _mm_loadu_ps(grid + 2 * p + 4);
    _mm_stream_ps(a + p, _mm_mul_ps(va, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))));
    _mm_stream_ps(b + p, _mm_mul_ps(vb, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))));
  }
  for (; p < n; p++) stream_float(a + p, sa * grid[2 * p]), stream_float(b + p, sb * grid[2 * p + 1]);
}

/* dst = src (n floats) with non-temporal stores. */
static void stream_copy(float *dst, const float *src, size_t n) {
  size_t e = 0;
  for (; e < n && (uintptr_t)(dst + e) % 16; e++) stream_float(dst + e, src[e]);
  for (; e + 4 <= n; e += 4) _mm_stream_ps(dst + e, _mm_loadu_ps(src + e));
  for (; e < n; e++) stream_float(dst + e, src[e]);
}

static int same_offset16(const float *a, const float *b) { return (uintptr_t)a % 16 == (uintptr_t)b % 16; }
#else
#define store_pair_stream(grid, a, b, n, sa, sb) store_pair_step(grid, a, b, 1, n, sa, sb)
#define stream_copy(dst, src, n) memcpy(dst, src, sizeof(float) * (n))
#define same_offset16(a, b) 1
#endif

/* Pixels [0, n) of the grid's lanes to images a and b (ds__cpu_unpack); the
 * contiguous (NCHW) case compiled on its own so that it vectorizes. */
DS_HOT_LOOP
static void store_lanes(const float *grid, float *a, float *b, int step, long long n, const packing *k,
                        int stream) {
  int only = k->lanes == 2;
  float sa = k->back[only], sb = k->back[1];
  if (k->lanes != 3 && step == 1)
    store_lane_step(grid + only, a, 1, n, sa);
  else if (k->lanes != 3)
    store_lane_step(grid + only, a, step, n, sa);
  else if (step == 1 && stream && same_offset16(a, b))
    store_pair_stream(grid, a, b, n, sa, sb);
  else if (step == 1)
    store_pair_step(grid, a, b, 1, n, sa, sb);
  else
    store_pair_step(grid, a, b, step, n, sa, sb);
}

void ds__cpu_unpack(const ds_batch *b, const grid_rows *gr, const float *grid, float *t, long long pair,
                    const packing *k, int stream) {
  int step = ds_pixel_step(b->c, b->nhwc), run = row_run(gr), only = k->lanes == 2;
  long long hw = (long long)gr->rows * gr->width;
  size_t row = (size_t)gr->width * (size_t)step;
  float *ia = t + ds_image_offset(2 * pair + only, b->c, hw, b->nhwc);
  float *ib = t + ds_image_offset(2 * pair + 1, b->c, hw, b->nhwc);
  for (int i = 0; i < gr->rows; i += run)
    store_lanes(grid + 2 * (size_t)gr->spatial[i] * (size_t)gr->width, ia + i * row, ib + i * row, step,
                (long long)run * gr->width, k, stream);
}

/* Where the images of a stage (ds__cpu_stage_in) start in their tensor;
 * whether they are consecutive channels of one sample. */
static int image_offsets(const ds_batch *b, long long first, int count, long long hw, long long *at) {
  for (int i = 0; i < count; i++) at[i] = ds_image_offset(first + i, b->c, hw, 1);
  return count > 0 && at[count - 1] - at[0] == count - 1;
}

/* Images [i0, i1), pixels [p0, p1) between the NHWC tensor t (image i's
 * pixel p at at[i] + p * c) and the stage (at i * hw + p). */
static void stage_rect(const long long *at, long long c, long long hw, float *t, float *stage, int out, int i0,
                       int i1, long long p0, long long p1) {
  for (int i = i0; i < i1; i++)
    for (long long p = p0; p < p1; p++)
      if (out)
        t[at[i] + p * c] = stage[i * hw + p];
      else
        stage[i * hw + p] = t[at[i] + p * c];
}

#if DS_HAVE_AVX2_CODE
/* An 8 x 8 block: 8 rows of 8 floats, ld_src apart, to 8 columns, ld_dst
 * apart (8 pixels of 8 channels to 8 runs of one channel each, or back). */
DS_AVX2_INLINE void block8(const float *src, long long ld_src, float *dst, long long ld_dst) {
  __m256 v[8];
  for (int k = 0; k < 8; k++) v[k] = _mm256_loadu_ps(src + k * ld_src);
  transpose8(v);
  for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + k * ld_dst, v[k]);
}

/* The images [0, 8 i8) and pixels [0, 8 p8) of a stage of consecutive
 * channels (t from the first one) in 8 x 8 blocks. The stage's images lie
 * hw floats apart, often a multiple of 4 KB, so that their rows share cache
 * sets: the pixels go in tiles of 64, whose lines of channels stay in L1
 * while each group of 8 images takes its runs. */
DS_AVX2 static void stage_blocks(float *t, long long c, long long hw, float *stage, int out, int i8, long long p8) {
  for (long long p0 = 0; p0 < 8 * p8; p0 += 64) {
    for (int i = 0; i < 8 * i8; i += 8)
      for (long long p = p0; p < p0 + 64 && p < 8 * p8; p += 8)
        if (out)
          block8(stage + i * hw + p, hw, t + p * c + i, c);
        else
          block8(t + p * c + i, c, stage + i * hw + p, hw);
  }
}

/* The part of a stage done in blocks: images [0, *i8 * 8), pixels [0, *p8 * 8). */
static void stage_fast(float *t, long long c, long long hw, float *stage, int out, int count, int *i8, long long *p8) {
  *i8 = __builtin_cpu_supports("avx2") ? count / 8 : 0, *p8 = *i8 ? hw / 8 : 0;
  if (*p8) stage_blocks(t, c, hw, stage, out, *i8, *p8);
}
#else
static void stage_fast(float *t, long long c, long long hw, float *stage, int out, int count, int *i8, long long *p8) {
  (void)t, (void)c, (void)hw, (void)stage, (void)out, (void)count;
  *i8 = 0, *p8 = 0;
}
#endif

/* Both directions of the stage: blocks where the images are consecutive
 * channels, single floats elsewhere. */
static void stage_copy(const ds_batch *b, long long first, int count, long long hw, float *t, float *stage, int out) {
  long long at[DS_STAGE_IMAGES], p8 = 0;
  int i8 = 0;
  if (image_offsets(b, first, count, hw, at)) stage_fast(t + at[0], b->c, hw, stage, out, count, &i8, &p8);
  stage_rect(at, b->c, hw, t, stage, out, 0, 8 * i8, 8 * p8, hw);
  stage_rect(at, b->c, hw, t, stage, out, 8 * i8, count, 0, hw);
}

void ds__cpu_stage_in(const ds_batch *b, long long first, int count, long long hw, const float *t, float *stage) {
  stage_copy(b, first, count, hw, (float *)t, stage, 0);
}

void ds__cpu_stage_out(const ds_batch *b, long long first, int count, long long hw, const float *stage, float *t) {
  stage_copy(b, first, count, hw, t, (float *)stage, 1);
}

void ds__cpu_copy_out(float *dst, const float *src, size_t n, int stream) {
  if (stream)
    stream_copy(dst, src, n);
  else
    memcpy(dst, src, sizeof(float) * n);
}

void ds__cpu_stream_fence(void) {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

/* Some of the next pair's prefetches: the hardware prefetchers stop at
 * each 4 KB page, and a pair's images are a page or two each, so without
 * help every pack waits on its first lines; prefetching a whole pair at
 * once queues behind the line fill buffers. */
void ds__cpu_prefetch_some(arena *a) {
  for (int n = a->next.per_step, r = 0; n > 0 && r < a->next.ranges; r++)
    for (; n > 0 && a->next.at[r] < a->next.end[r]; n--, a->next.at[r] += 64) {
      if (r < a->next.reads)
        __builtin_prefetch(a->next.at[r], 0, 3);
      else
        __builtin_prefetch(a->next.at[r], 1, 3);
    }
}

