/* CUDA backend state: stream, cuFFT plan cache with one shared work area,
 * and a device workspace that only grows (no allocation per call once the
 * largest shape has been seen). */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

ds_status ds__cuda_fail(ds_context *ctx, const char *what, int code) {
  return ds__fail(ctx, DS_ERR_BACKEND, "%s failed (code %d%s%s)", what, code,
                  code < 1000 ? ": " : "", code < 1000 ? cudaGetErrorString((cudaError_t)code) : "");
}

/* Device memory grown to `need` bytes; the old contents are not kept. */
static ds_status grow(ds_context *ctx, void **p, size_t *have, size_t need, const char *what) {
  if (need <= *have) return DS_OK;
  cudaStreamSynchronize(((cuda_state *)ctx->state)->stream); /* the old buffer may be in use */
  cudaFree(*p);
  *p = NULL;
  *have = 0;
  if (cudaMalloc(p, need) != cudaSuccess)
    return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes on the device", what, need);
  *have = need;
  return DS_OK;
}

ds_status ds__cuda_reserve(ds_context *ctx, size_t bytes, size_t count) {
  cuda_state *s = (cuda_state *)ctx->state;
  ds_status st = grow(ctx, &s->buf, &s->buf_bytes, bytes, "spectrum workspace");
  if (st != DS_OK || count <= s->sums_count) return st;
  size_t have = s->sums_count * sizeof(double);
  s->sums_count = 0; /* until both arrays have the new size: a failure leaves none */
  st = grow(ctx, (void **)&s->sums, &have, count * sizeof(double), "gradient sums");
  if (st != DS_OK) return st;
  cudaFreeHost(s->host_sums);
  s->host_sums = NULL;
  if (cudaMallocHost((void **)&s->host_sums, count * sizeof(double)) != cudaSuccess)
    return ds__fail(ctx, DS_ERR_OUT_OF_MEMORY, "gradient sums: cannot allocate %zu pinned bytes",
                    count * sizeof(double));
  s->sums_count = count;
  return DS_OK;
}

/* A rank-2 plan, or rank 1 for 1 x n images (the 1-D layer), where a
 * degenerate first dimension is not something to rely on cuFFT for. */
static ds_status plan_make(ds_context *ctx, const cuda_plan_key *k, cufftHandle *plan, size_t *work) {
  int rank = k->n0 == 1 ? 1 : 2, kb = k->n1 / 2 + 1;
  int n[2] = {k->n0, k->n1}, real_embed[2] = {k->n0, k->n1}, cplx_embed[2] = {k->n0, kb};
  int *nn = n + 2 - rank, *re = real_embed + 2 - rank, *ce = cplx_embed + 2 - rank;
  cufftResult r = cufftCreate(plan);
  if (r == CUFFT_SUCCESS) r = cufftSetAutoAllocation(*plan, 0);
  if (r == CUFFT_SUCCESS && !k->inverse)
    r = cufftMakePlanMany(*plan, rank, nn, re, k->stride, k->dist, ce, 1, k->n0 * kb, CUFFT_R2C, k->batch, work);
  else if (r == CUFFT_SUCCESS)
    r = cufftMakePlanMany(*plan, rank, nn, ce, 1, k->n0 * kb, re, k->stride, k->dist, CUFFT_C2R, k->batch, work);
  if (r != CUFFT_SUCCESS) return ds__cuda_fail(ctx, "cufftMakePlanMany", 1000 + (int)r);
  return DS_OK;
}

/* The least recently used slot (the plans of the call in progress are the
 * most recent, so a call never loses a plan it holds). */
static int lru_slot(const cuda_state *s) {
  if (s->cached < DS_CUDA_PLAN_CACHE) return s->cached;
  int slot = 0;
  for (int i = 1; i < DS_CUDA_PLAN_CACHE; i++)
    if (s->cache[i].used < s->cache[slot].used) slot = i;
  return slot;
}

ds_status ds__cuda_plan(ds_context *ctx, cuda_plan_key key, cufftHandle *plan) {
  cuda_state *s = (cuda_state *)ctx->state;
  int slot = -1;
  for (int i = 0; i < s->cached && slot < 0; i++)
    if (memcmp(&s->cache[i].key, &key, sizeof key) == 0) slot = i;
  if (slot < 0) {
    cufftHandle p;
    size_t work = 0;
    ds_status st = plan_make(ctx, &key, &p, &work);
    if (st != DS_OK) return st;
    slot = lru_slot(s);
    if (slot < s->cached) { /* the evicted plan may have work queued from a call not synchronized */
      cudaStreamSynchronize(s->stream);
      cufftDestroy(s->cache[slot].plan);
    }
    if (slot == s->cached) s->cached++;
    s->cache[slot].key = key, s->cache[slot].plan = p, s->cache[slot].work = work;
  }
  s->cache[slot].used = ++s->clock;
  ds_status st = grow(ctx, &s->fft_work, &s->fft_work_bytes, s->cache[slot].work, "cuFFT work area");
  if (st != DS_OK) return st;
  cufftResult r = cufftSetWorkArea(s->cache[slot].plan, s->fft_work);
  if (r == CUFFT_SUCCESS) r = cufftSetStream(s->cache[slot].plan, s->stream);
  if (r != CUFFT_SUCCESS) return ds__cuda_fail(ctx, "cufftSetStream", 1000 + (int)r);
  *plan = s->cache[slot].plan;
  return DS_OK;
}

static ds_status cuda_set_threads(ds_context *ctx, int threads) {
  (void)ctx, (void)threads;
  return DS_OK;
}

static ds_status cuda_set_stream(ds_context *ctx, void *stream) {
  ((cuda_state *)ctx->state)->stream = (cudaStream_t)stream;
  return DS_OK;
}

static ds_status cuda_set_reproducible(ds_context *ctx, int reproducible) {
  if (!reproducible) return DS_OK;
  return ds__fail(ctx, DS_ERR_UNSUPPORTED,
                  "reproducible: the CUDA path sums stride gradients with atomics, in no fixed "
                  "order; use a CPU context for bit-reproducible runs");
}

/* A few bytes passed by value, so that an upload needs neither a host
 * buffer that outlives the call nor a wait (a copy from pageable memory
 * would wait for the stream). */
typedef struct small_bytes {
  unsigned char b[DS_COPY_MAX];
} small_bytes;

__global__ void put_bytes(small_bytes v, unsigned char *dst, int n) {
  if ((int)threadIdx.x < n) dst[threadIdx.x] = v.b[threadIdx.x];
}

/* Uploads on the stream; downloads wait for it (the caller reads at once). */
static ds_status cuda_copy(ds_context *ctx, void *dst, const void *src, size_t bytes, int upload) {
  cuda_state *s = (cuda_state *)ctx->state;
  if (upload) {
    small_bytes v = {{0}};
    memcpy(v.b, src, bytes);
    put_bytes<<<1, DS_COPY_MAX, 0, s->stream>>>(v, (unsigned char *)dst, (int)bytes);
  } else if (cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream) == cudaSuccess) {
    cudaStreamSynchronize(s->stream);
  }
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? DS_OK : ds__cuda_fail(ctx, upload ? "writing a reserve header" : "reading a reserve header", (int)e);
}

static void cuda_destroy(void *state) {
  cuda_state *s = (cuda_state *)state;
  cudaStreamSynchronize(s->stream);
  for (int i = 0; i < s->cached; i++) cufftDestroy(s->cache[i].plan);
  cudaFree(s->fft_work);
  cudaFree(s->buf);
  cudaFree(s->sums);
  cudaFreeHost(s->host_sums);
  free(s);
}

static const ds_backend cuda_backend = {ds__cuda_forward, ds__cuda_backward,     cuda_copy,   cuda_set_threads,
                                        cuda_set_stream,  cuda_set_reproducible, cuda_destroy};

ds_status ds__cuda_open(ds_context *ctx) {
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    return ds__fail(NULL, DS_ERR_UNSUPPORTED, "device: DS_DEVICE_CUDA, but no CUDA device is usable (%s)",
                    e != cudaSuccess ? cudaGetErrorString(e) : "no device");
  cuda_state *s = (cuda_state *)calloc(1, sizeof *s);
  if (!s) return ds__fail(NULL, DS_ERR_OUT_OF_MEMORY, "ds_context_create: out of memory");
  ctx->state = s;
  ctx->backend = &cuda_backend;
  return DS_OK;
}
