/* The crop op on the GPU: batched 2-D real FFTs (cuFFT R2C/C2R) around
 * element-wise kernels built from the shared per-element functions
 * (elementwise.h, masks.h), everything on the context's stream.
 *   forward:  R2C(x) -> [X at the kept bins to a reserve] -> mask, crop,
 *             Hermitian part of columns 0 and out_w/2 -> C2R -> y;
 *   backward: R2C(dy) -> [R2C(x), or X from a reserve -> per-bin sums of
 *             Re(conj(Y) X), copied to the host] -> [scaled, placed back,
 *             Hermitian part of columns 0 and w/2 -> C2R -> dx].
 * cuFFT's C2R assumes a Hermitian spectrum; the Hermitian part of the two
 * self-mirrored columns is exactly the spec's inverse convention. */
#include <limits.h>

#include "../spectral_elements.h"
#include "cuda.h"

#define DS_BLOCK 256

typedef cufftComplex cplx;

static unsigned blocks(long long count) { return (unsigned)((count + DS_BLOCK - 1) / DS_BLOCK); }

/* Z (images x out_h x kc) from X (images x h x kw): ds_crop_element. */
__global__ void crop_kernel(ds_crop g, const cplx *x, cplx *z, long long count) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x, per = (long long)g.out_h * g.kc;
  if (e < count) ds_crop_element(&g, (const float *)(x + e / per * g.h * g.kw), (float *)(z + e / per * per), e % per);
}

/* K (images x out_h x kc), X at the kept bins (a reserve's spectra),
 * from X (images x h x kw): ds_kept_bin. */
__global__ void keep_kernel(ds_crop g, const cplx *x, cplx *k, long long count) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x, per = (long long)g.out_h * g.kc;
  if (e < count) k[e] = x[e / per * g.h * g.kw + ds_kept_bin(&g, e % per)];
}

/* D (images x h x kw), the spectrum of dx, from Y (images x out_h x kc):
 * ds_uncrop_element. */
__global__ void uncrop_kernel(ds_crop g, const cplx *y, cplx *d, long long count) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x, per = (long long)g.h * g.kw;
  if (e < count)
    ds_uncrop_element(&g, (const float *)(y + e / per * g.out_h * g.kc), (float *)(d + e / per * per), e % per);
}

static ds_status launched(ds_context *ctx, const char *what) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? DS_OK : ds__cuda_fail(ctx, what, (int)e);
}

/* sums[i][k] += sum over a chunk of images of Re(conj(Y[i][k]) X[r][k])
 * (X images x h x kw, or with kept images x out_h x kc):
 * x-dimension threads take the kept bins (consecutive threads read
 * consecutive bins), y-dimension blocks the chunks of `chunk` images, so the
 * batch is reduced in parallel; sums must be zero first. The atomic adds
 * make the last bits of dstrides depend on their order. */
__global__ void grad_kernel(ds_crop g, const cplx *y, const cplx *x, int kept, long long images,
                            long long chunk, double *sums) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (e >= (long long)g.out_h * g.kc) return;
  long long first = blockIdx.y * chunk, last = first + chunk < images ? first + chunk : images;
  double acc = 0.0;
  long long per = (long long)g.out_h * g.kc, xper = kept ? per : (long long)g.h * g.kw;
  for (long long img = first; img < last; img++)
    acc += ds_grad_element(&g, (const float *)(y + img * per), (const float *)(x + img * xper), kept, e);
  atomicAdd(&sums[e], acc);
}

/* The gradient sums of one chunk added to s->sums on the stream: 64
 * images a block row (at most 65535 rows). */
static ds_status reduce_gradients(ds_context *ctx, const ds_crop *g, const cplx *y, const cplx *x, int kept,
                                  long long images) {
  cuda_state *s = (cuda_state *)ctx->state;
  long long bins = (long long)g->out_h * g->kc, chunks = (images + 63) / 64;
  if (chunks > 65535) chunks = 65535;
  long long chunk = (images + chunks - 1) / chunks;
  grad_kernel<<<dim3(blocks(bins), (unsigned)chunks), DS_BLOCK, 0, s->stream>>>(*g, y, x, kept, images, chunk,
                                                                                s->sums);
  return launched(ctx, "gradient kernel");
}

/* A run of images of the batch: `count` images from image `first`, all in
 * one transform call (within one sample in NHWC). */
typedef struct chunk {
  long long first, count;
} chunk;

/* A batched real FFT between a chunk of a tensor in the batch's layout and
 * contiguous spectra (NCHW: images pixels*1 apart; NHWC: the chunk's
 * channels of one sample, pixels C apart). */
static ds_status real_fft(ds_context *ctx, const ds_batch *b, chunk ch, int inverse, int n0, int n1,
                          float *real, cplx *spec) {
  long long pixels = (long long)n0 * n1;
  cuda_plan_key key = {inverse, n0, n1, b->nhwc ? b->c : 1, b->nhwc ? 1 : (int)pixels, (int)ch.count};
  cufftHandle plan;
  ds_status st = ds__cuda_plan(ctx, key, &plan);
  if (st != DS_OK) return st;
  float *r = real + ds_image_offset(ch.first, b->c, pixels, b->nhwc);
  cufftResult res = inverse ? cufftExecC2R(plan, spec, r) : cufftExecR2C(plan, r, spec);
  if (res != CUFFT_SUCCESS) return ds__cuda_fail(ctx, inverse ? "cufftExecC2R" : "cufftExecR2C", 1000 + (int)res);
  return DS_OK;
}

/* The chunking of a call and its two spectra, sized for one chunk: the
 * input grid's (size x h x kw) then the cropped one (size x out_h x kc).
 * Spectra get half the bytes of x (at least one image's), so that they
 * and cuFFT's work area stay within the size of x (issue goal: extra
 * device memory per call at most sizeof(x)). */
typedef struct chunking {
  long long images, group, size;
  cplx *in, *out;
} chunking;

static ds_status spectra(ds_context *ctx, const ds_crop *g, const ds_batch *b, chunking *c) {
  long long a = (long long)g->h * g->kw, z = (long long)g->out_h * g->kc;
  c->images = (long long)b->n * b->c;
  c->group = b->nhwc ? b->c : c->images;
  size_t x_bytes = sizeof(float) * (size_t)c->images * (size_t)g->h * (size_t)g->w;
  size_t per_image = sizeof(cplx) * (size_t)(a + z), budget = x_bytes / 2;
  if (budget / per_image > INT_MAX) budget = per_image * INT_MAX; /* cuFFT counts a batch in an int */
  c->size = ds__chunk_size(c->group, per_image, budget);
  ds_status st = ds__cuda_reserve(ctx, sizeof(cplx) * (size_t)(c->size * (a + z)), (size_t)z);
  c->in = (cplx *)((cuda_state *)ctx->state)->buf;
  c->out = c->in + c->size * a;
  return st;
}

static chunk chunk_at(const chunking *c, long long first) {
  return (chunk){first, ds__chunk_length(first, c->images, c->group, c->size)};
}

static ds_status forward_chunk(ds_context *ctx, const ds_crop *g, const ds_batch *b, const chunking *c,
                               chunk ch, const float *x, float *y, cplx *keep) {
  long long per = (long long)g->out_h * g->kc, count = ch.count * per;
  cudaStream_t stream = ((cuda_state *)ctx->state)->stream;
  ds_status st = real_fft(ctx, b, ch, 0, g->h, g->w, (float *)x, c->in);
  if (st != DS_OK) return st;
  if (keep) keep_kernel<<<blocks(count), DS_BLOCK, 0, stream>>>(*g, c->in, keep + ch.first * per, count);
  crop_kernel<<<blocks(count), DS_BLOCK, 0, stream>>>(*g, c->in, c->out, count);
  st = launched(ctx, "crop kernel");
  return st == DS_OK ? real_fft(ctx, b, ch, 1, g->out_h, g->out_w, y, c->out) : st;
}

ds_status ds__cuda_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                           float *y, float *keep) {
  chunking c;
  ds_status st = spectra(ctx, g, b, &c);
  for (chunk ch = chunk_at(&c, 0); st == DS_OK && ch.first < c.images; ch = chunk_at(&c, ch.first + ch.count))
    st = forward_chunk(ctx, g, b, &c, ch, x, y, (cplx *)keep);
  return st;
}

/* The per-bin sums to the host (the one synchronization of the API), then
 * the mask gradients from them (ds__mask_gradients). */
static ds_status mask_gradients(ds_context *ctx, const ds_crop *g, double *gh, double *gw) {
  cuda_state *s = (cuda_state *)ctx->state;
  size_t count = (size_t)g->out_h * g->kc;
  if (cudaMemcpyAsync(s->host_sums, s->sums, count * sizeof(double), cudaMemcpyDeviceToHost, s->stream) !=
          cudaSuccess ||
      cudaStreamSynchronize(s->stream) != cudaSuccess)
    return ds__cuda_fail(ctx, "copying the gradient sums", (int)cudaGetLastError());
  ds__mask_gradients(g, s->host_sums, gh, gw);
  return DS_OK;
}

/* One chunk of the backward: Y = R2C(dy) (out); with grad, X = R2C(x) (in)
 * or the reserve's X (keep), and its sums added; with dx, the spectrum of dx
 * (in) and its C2R. */
static ds_status backward_chunk(ds_context *ctx, const ds_crop *g, const ds_batch *b, const chunking *c,
                                chunk ch, const float *x, const cplx *keep, const float *dy, float *dx, int grad) {
  const cplx *xs = keep ? keep + ch.first * g->out_h * g->kc : c->in;
  ds_status st = real_fft(ctx, b, ch, 0, g->out_h, g->out_w, (float *)dy, c->out);
  if (st == DS_OK && grad && !keep) st = real_fft(ctx, b, ch, 0, g->h, g->w, (float *)x, c->in);
  if (st == DS_OK && grad) st = reduce_gradients(ctx, g, c->out, xs, keep != NULL, ch.count);
  if (st != DS_OK || !dx) return st;
  long long count = ch.count * g->h * g->kw;
  uncrop_kernel<<<blocks(count), DS_BLOCK, 0, ((cuda_state *)ctx->state)->stream>>>(*g, c->out, c->in, count);
  st = launched(ctx, "uncrop kernel");
  return st == DS_OK ? real_fft(ctx, b, ch, 1, g->h, g->w, dx, c->in) : st;
}

ds_status ds__cuda_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b, const float *x,
                            const float *keep, const float *dy, float *dx, double *gh, double *gw) {
  cuda_state *s = (cuda_state *)ctx->state;
  chunking c;
  ds_status st = spectra(ctx, g, b, &c);
  if (st == DS_OK && gh &&
      cudaMemsetAsync(s->sums, 0, sizeof(double) * (size_t)g->out_h * g->kc, s->stream) != cudaSuccess)
    st = ds__cuda_fail(ctx, "clearing the gradient sums", (int)cudaGetLastError());
  for (chunk ch = chunk_at(&c, 0); st == DS_OK && ch.first < c.images; ch = chunk_at(&c, ch.first + ch.count))
    st = backward_chunk(ctx, g, b, &c, ch, x, (const cplx *)keep, dy, dx, gh != NULL);
  if (st == DS_OK && gh) st = mask_gradients(ctx, g, gh, gw);
  return st;
}
