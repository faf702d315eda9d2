/* The crop op on the GPU: batched 2-D real FFTs (cuFFT R2C/C2R) around
 * element-wise kernels built from the shared per-element functions
 * (elementwise.h, masks.h), everything on the context's stream.
 *   forward:  R2C(x) -> mask, crop, Hermitian part of columns 0 and out_w/2
 *             -> C2R -> y;
 *   backward: R2C(dy) -> [R2C(x) -> per-bin sums of Re(conj(Y) X), copied
 *             to the host] -> [scaled, placed back, Hermitian part of
 *             columns 0 and w/2 -> C2R -> dx].
 * cuFFT's C2R assumes a Hermitian spectrum; the Hermitian part of the two
 * self-mirrored columns is exactly the spec's inverse convention. */
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

/* sums[i][k] += sum over a chunk of images of Re(conj(Y[i][k]) X[r][k]):
 * x-dimension threads take the kept bins (consecutive threads read
 * consecutive bins), y-dimension blocks the chunks of `chunk` images, so the
 * batch is reduced in parallel; sums must be zero first. The atomic adds
 * make the last bits of dstrides depend on their order. */
__global__ void grad_kernel(ds_crop g, const cplx *y, const cplx *x, long long images, long long chunk,
                            double *sums) {
  long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (e >= (long long)g.out_h * g.kc) return;
  long long first = blockIdx.y * chunk, last = first + chunk < images ? first + chunk : images;
  double acc = 0.0;
  for (long long img = first; img < last; img++)
    acc += ds_grad_element(&g, (const float *)(y + img * g.out_h * g.kc), (const float *)(x + img * g.h * g.kw), e);
  atomicAdd(&sums[e], acc);
}

/* The gradient sums over the batch, on the stream: 64 images a block row
 * (at most 65535 rows). */
static ds_status reduce_gradients(ds_context *ctx, const ds_crop *g, const cplx *y, const cplx *x,
                                  long long images) {
  cuda_state *s = (cuda_state *)ctx->state;
  long long bins = (long long)g->out_h * g->kc, chunks = (images + 63) / 64;
  if (chunks > 65535) chunks = 65535;
  long long chunk = (images + chunks - 1) / chunks;
  if (cudaMemsetAsync(s->sums, 0, sizeof(double) * (size_t)bins, s->stream) != cudaSuccess)
    return ds__cuda_fail(ctx, "clearing the gradient sums", (int)cudaGetLastError());
  grad_kernel<<<dim3(blocks(bins), (unsigned)chunks), DS_BLOCK, 0, s->stream>>>(*g, y, x, images, chunk, s->sums);
  return launched(ctx, "gradient kernel");
}

/* A batched real FFT between a tensor in the batch's layout and contiguous
 * spectra: NCHW in one call, NHWC one call per sample (C images with
 * pixels C apart). */
static ds_status real_fft(ds_context *ctx, const ds_batch *b, int inverse, int n0, int n1, float *real,
                          cplx *spec) {
  long long pixels = (long long)n0 * n1, bins = (long long)n0 * (n1 / 2 + 1);
  int calls = b->nhwc ? b->n : 1, batch = b->nhwc ? b->c : b->n * b->c;
  cuda_plan_key key = {inverse, n0, n1, b->nhwc ? b->c : 1, b->nhwc ? 1 : (int)pixels, batch};
  cufftHandle plan;
  ds_status st = ds__cuda_plan(ctx, key, &plan);
  for (int n = 0; st == DS_OK && n < calls; n++) {
    float *r = real + (long long)n * pixels * batch;
    cplx *c = spec + (long long)n * bins * batch;
    cufftResult res = inverse ? cufftExecC2R(plan, c, r) : cufftExecR2C(plan, r, c);
    if (res != CUFFT_SUCCESS) st = ds__cuda_fail(ctx, inverse ? "cufftExecC2R" : "cufftExecR2C", 1000 + (int)res);
  }
  return st;
}


/* The two spectra of a call: the input grid's (images x h x kw) then the
 * cropped one (images x out_h x kc). */
static ds_status spectra(ds_context *ctx, const ds_crop *g, long long images, cplx **in, cplx **out) {
  long long a = images * g->h * g->kw, c = images * g->out_h * g->kc;
  ds_status st = ds__cuda_reserve(ctx, sizeof(cplx) * (size_t)(a + c), (size_t)g->out_h * g->kc);
  *in = (cplx *)((cuda_state *)ctx->state)->buf;
  *out = *in + a;
  return st;
}

ds_status ds__cuda_forward(ds_context *ctx, const ds_crop *g, const ds_batch *b,
                                      const float *x, float *y) {
  cudaStream_t stream = ((cuda_state *)ctx->state)->stream;
  long long images = (long long)b->n * b->c, count = images * g->out_h * g->kc;
  cplx *sx, *sz;
  ds_status st = spectra(ctx, g, images, &sx, &sz);
  if (st == DS_OK) st = real_fft(ctx, b, 0, g->h, g->w, (float *)x, sx);
  if (st == DS_OK) crop_kernel<<<blocks(count), DS_BLOCK, 0, stream>>>(*g, sx, sz, count);
  if (st == DS_OK) st = launched(ctx, "crop kernel");
  if (st == DS_OK) st = real_fft(ctx, b, 1, g->out_h, g->out_w, y, sz);
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

ds_status ds__cuda_backward(ds_context *ctx, const ds_crop *g, const ds_batch *b,
                                       const float *x, const float *dy, float *dx, double *gh, double *gw) {
  cuda_state *s = (cuda_state *)ctx->state;
  long long images = (long long)b->n * b->c;
  cplx *sx, *sy;
  ds_status st = spectra(ctx, g, images, &sx, &sy);
  if (st == DS_OK) st = real_fft(ctx, b, 0, g->out_h, g->out_w, (float *)dy, sy);
  if (st == DS_OK && gh) st = real_fft(ctx, b, 0, g->h, g->w, (float *)x, sx);
  if (st == DS_OK && gh) st = reduce_gradients(ctx, g, sy, sx, images);
  if (st == DS_OK && gh) st = mask_gradients(ctx, g, gh, gw);
  if (st != DS_OK || !dx) return st;
  long long count = images * g->h * g->kw;
  uncrop_kernel<<<blocks(count), DS_BLOCK, 0, s->stream>>>(*g, sy, sx, count);
  st = launched(ctx, "uncrop kernel");
  return st == DS_OK ? real_fft(ctx, b, 1, g->h, g->w, dx, sx) : st;
}
