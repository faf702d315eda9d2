/* The CUDA backend: convolutions and batch norm through cuDNN (NHWC; float32,
 * TF32 or bf16 convolutions with float32 master weights; algorithms found
 * once per shape), the dense layer through cuBLAS, ReLU,
 * residual adds, global average pooling and the SGD update in small kernels
 * built from the shared per-element functions (elements.h), DiffStride and
 * spectral pooling through libdiffstride's CUDA path (pool.c) on the same
 * stream. Everything is queued on one stream; the host waits only where the
 * core reads something back (the logits for the loss, the strides'
 * gradients, the timing of the library calls). With several ranks (dist.h)
 * each takes the GPU of its rank on its host, and NCCL sums the gradient
 * buckets on the same stream, its communicator set up over MPI. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#ifdef RN_WITH_NCCL
#include <nccl.h>
#endif
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "dist.h"
}
#include "elements.h"

enum { BLOCK = 256, CONV_PLANS = 64, LIBRARY_EVENTS = 64 };
/* bf16 copies a convolution works on: its input, its weights, its output
 * or output gradient, and a gradient it produces. */
enum { B_X, B_W, B_Y, B_GRAD, B_COUNT };
typedef __nv_bfloat16 bf16;
static const size_t max_grid = 4096; /* blocks of a grid-stride loop */

/* One convolution shape: its cuDNN descriptors and the algorithms found for
 * it. The key is (n, h, w, cin, cout, k, stride, precision): a learned
 * stride that changes a feature-map size makes a new plan. */
typedef struct conv_plan {
  int key[8];
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
  unsigned long long used;
} conv_plan;

typedef struct cuda_exec {
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  rn_precision precision;
  conv_plan plans[CONV_PLANS];
  int nplans;
  unsigned long long clock;
  void *work; /* cuDNN workspace, the largest any plan asked for */
  size_t work_bytes;
  float *dz; /* a BN+ReLU layer's gradient through the ReLU */
  size_t dz_cap;
  bf16 *b16[B_COUNT]; /* bf16 precision: a convolution's operands */
  size_t b16_bytes[B_COUNT];
  size_t baseline; /* device bytes in use once the CUDA context exists */
  struct {          /* datasets kept on the device (training and test set) */
    const uint8_t *host;
    size_t bytes;
    uint8_t *dev;
    unsigned long long used;
  } sets[2];
  int *plan, *staged; /* a batch plan's four arrays: device, pinned host */
  size_t plan_cap;
  cudaEvent_t staged_free; /* recorded after the copy out of staged */
  cudaEvent_t library[LIBRARY_EVENTS][2]; /* around library calls not yet collected */
  int marked;
#ifdef RN_WITH_NCCL
  ncclComm_t nccl; /* several ranks: the gradients' communicator */
#endif
} cuda_exec;

static const float one = 1.0f, zero = 0.0f;
static const double bn_eps = 1e-5, bn_average = 0.1; /* running = 0.9 running + 0.1 batch */

static cuda_exec *exec_of(const rn_model *m) { return (cuda_exec *)m->exec; }
static unsigned grid(size_t count) {
  size_t g = (count + BLOCK - 1) / BLOCK;
  return (unsigned)(g < 1 ? 1 : g > max_grid ? max_grid : g);
}

static int cuda_error(rn_error *err, const char *what, cudaError_t e) {
  return rn_fail(err, "%s: %s", what, cudaGetErrorString(e));
}
static int dnn_error(rn_error *err, const char *what, cudnnStatus_t s) {
  return rn_fail(err, "%s: %s", what, cudnnGetErrorString(s));
}
static int launched(rn_error *err, const char *what) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? 0 : cuda_error(err, what, e);
}

/* ------------------------------------------------------------ kernels */

/* Grid-stride loops: any count with at most max_grid blocks. */
#define FOR_EACH(i, count) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (count); i += (size_t)gridDim.x * blockDim.x)

/* x (n, h, w, c): the planned batch, from the dataset on the device. */
__global__ void render_kernel(rn_render r, float *x, size_t count) {
  FOR_EACH(e, count) x[e] = rn_render_element(&r, e);
}

__global__ void to_bf16_kernel(const float *src, bf16 *dst, size_t count) {
  FOR_EACH(i, count) dst[i] = __float2bfloat16(src[i]);
}

/* dst = src, or dst += src when acc. */
__global__ void from_bf16_kernel(const bf16 *src, float *dst, size_t count, int acc) {
  FOR_EACH(i, count) dst[i] = (acc ? dst[i] : 0.0f) + __bfloat162float(src[i]);
}

__global__ void relu_kernel(float *y, size_t count) {
  FOR_EACH(i, count) y[i] = rn_relu(y[i]);
}

/* dz = dy where the ReLU's output y passed. */
__global__ void relu_grad_kernel(const float *y, const float *dy, float *dz, size_t count) {
  FOR_EACH(i, count) dz[i] = rn_relu_grad(y[i], dy[i]);
}

__global__ void add_kernel(const float *a, const float *b, float *y, size_t count) {
  FOR_EACH(i, count) y[i] = a[i] + b[i];
}

/* dst = src, or dst += src when acc. */
__global__ void put_kernel(float *dst, const float *src, size_t count, int acc) {
  FOR_EACH(i, count) dst[i] = (acc ? dst[i] : 0.0f) + src[i];
}

__global__ void sgd_kernel(float *p, const float *g, float *v, size_t count, float lr, float momentum,
                           float wd) {
  FOR_EACH(i, count) rn_sgd_element(p + i, g[i], v + i, lr, momentum, wd);
}

/* x (n, pix, c) -> y (n, c): the mean over pix; one thread per (i, j), so
 * consecutive threads read consecutive channels. */
__global__ void gap_kernel(const float *x, float *y, int n, size_t pix, int c) {
  FOR_EACH(e, (size_t)n * c) {
    size_t i = e / c, j = e % c;
    double sum = 0.0;
    for (size_t p = 0; p < pix; p++) sum += x[(i * pix + p) * c + j];
    y[e] = (float)(sum / (double)pix);
  }
}

/* dx (n, pix, c) (+)= dy (n, c) / pix. */
__global__ void gap_grad_kernel(const float *dy, float *dx, int n, size_t pix, int c, int acc) {
  FOR_EACH(e, (size_t)n * pix * c) {
    float d = dy[e / (pix * c) * c + e % c] / (float)pix;
    dx[e] = acc ? dx[e] + d : d;
  }
}

/* y (n, k) = the bias b (k) on every row, before the GEMM adds x w^T. */
__global__ void bias_kernel(const float *b, float *y, int n, int k) {
  FOR_EACH(e, (size_t)n * k) y[e] = b[e % k];
}

/* db (k) = the sums over the n rows of dy (n, k). */
__global__ void bias_grad_kernel(const float *dy, float *db, int n, int k) {
  FOR_EACH(j, (size_t)k) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += dy[(size_t)i * k + j];
    db[j] = (float)s;
  }
}

/* ------------------------------------------------------------ memory */

static float *cuda_alloc(size_t count) {
  void *p = NULL;
  return cudaMalloc(&p, (count ? count : 1) * sizeof(float)) == cudaSuccess ? (float *)p : NULL;
}

static void cuda_release(float *p) { cudaFree(p); }

/* The core's copies are synchronous: it reads what it copied back at once,
 * and may reuse a host buffer it copied from. */
/* A failed copy is reported by the return value and cleared from the
 * runtime's last error, so that a later kernel check does not take it. */
static int copied(cudaError_t e) {
  if (e == cudaSuccess) return 0;
  cudaGetLastError();
  return -1;
}

static int cuda_to_device(float *dst, const float *src, size_t count) {
  return copied(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyHostToDevice));
}

static int cuda_to_host(float *dst, const float *src, size_t count) {
  return copied(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost));
}

/* Device buffer grown to need bytes (after the stream is done with it). */
static int grow(cuda_exec *ex, void **p, size_t *have, size_t need, rn_error *err) {
  if (need <= *have) return 0;
  cudaStreamSynchronize(ex->stream);
  cudaFree(*p);
  *p = NULL, *have = 0;
  cudaError_t e = cudaMalloc(p, need);
  if (e != cudaSuccess) return cuda_error(err, "device workspace", e);
  *have = need;
  return 0;
}

/* ------------------------------------------------------------ handles */

/* A plan's descriptors (those made: a plan can fail half way). */
static void destroy_plan(conv_plan *p) {
  if (p->x) cudnnDestroyTensorDescriptor(p->x);
  if (p->y) cudnnDestroyTensorDescriptor(p->y);
  if (p->w) cudnnDestroyFilterDescriptor(p->w);
  if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
}

static void cuda_fini(rn_model *m) {
  cuda_exec *ex = exec_of(m);
  ds_context_destroy(m->ds);
  if (ex->stream) cudaStreamSynchronize(ex->stream);
#ifdef RN_WITH_NCCL
  if (ex->nccl) ncclCommDestroy(ex->nccl);
#endif
  for (int i = 0; i < ex->nplans; i++) destroy_plan(&ex->plans[i]);
  if (ex->dnn) cudnnDestroy(ex->dnn);
  if (ex->blas) cublasDestroy(ex->blas);
  cudaFree(ex->work);
  cudaFree(ex->dz);
  for (int i = 0; i < B_COUNT; i++) cudaFree(ex->b16[i]);
  for (int i = 0; i < 2; i++) cudaFree(ex->sets[i].dev);
  cudaFree(ex->plan);
  cudaFreeHost(ex->staged);
  if (ex->staged_free) cudaEventDestroy(ex->staged_free);
  for (int i = 0; i < LIBRARY_EVENTS; i++)
    for (int k = 0; k < 2; k++)
      if (ex->library[i][k]) cudaEventDestroy(ex->library[i][k]);
  if (ex->stream) cudaStreamDestroy(ex->stream);
  free(ex);
  m->exec = NULL, m->ds = NULL;
}

/* fp32: strict float32 everywhere; tf32: tensor-core math in cuDNN and
 * cuBLAS; bf16: convolutions on bf16 copies of their operands (tensor
 * cores, float32 accumulation), the dense layer in float32. */
static int cuda_set_precision(rn_model *m, rn_precision p, rn_error *err) {
  cuda_exec *ex = exec_of(m);
  ex->precision = p; /* plans are keyed by precision: new ones get found */
  cublasStatus_t s = cublasSetMathMode(ex->blas, p == RN_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  return s == CUBLAS_STATUS_SUCCESS ? 0 : rn_fail(err, "cublasSetMathMode failed (%d)", (int)s);
}

static int cuda_init(rn_model *m, int threads, rn_error *err) {
  (void)threads;
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    return rn_fail(err, "--device cuda: no usable CUDA device (%s)",
                   e != cudaSuccess ? cudaGetErrorString(e) : "none found");
  int device = rn_dist_local_rank() % devices; /* one GPU per rank of a host */
  if ((e = cudaSetDevice(device)) != cudaSuccess) return cuda_error(err, "selecting the rank's GPU", e);
  cuda_exec *ex = (cuda_exec *)calloc(1, sizeof *ex);
  if (!ex) return rn_fail(err, "out of memory");
  m->exec = ex;
  if ((e = cudaStreamCreate(&ex->stream)) != cudaSuccess ||
      (e = cudaEventCreateWithFlags(&ex->staged_free, cudaEventDisableTiming)) != cudaSuccess)
    return cuda_fini(m), cuda_error(err, "CUDA stream and event", e);
  for (int i = 0; i < LIBRARY_EVENTS; i++)
    for (int k = 0; k < 2; k++)
      if ((e = cudaEventCreate(&ex->library[i][k])) != cudaSuccess) return cuda_fini(m), cuda_error(err, "CUDA events", e);
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) ex->baseline = total - free_bytes;
  cudnnStatus_t s = cudnnCreate(&ex->dnn);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(ex->dnn, ex->stream);
  if (s != CUDNN_STATUS_SUCCESS) return cuda_fini(m), dnn_error(err, "cuDNN", s);
  if (cublasCreate(&ex->blas) != CUBLAS_STATUS_SUCCESS ||
      cublasSetStream(ex->blas, ex->stream) != CUBLAS_STATUS_SUCCESS)
    return cuda_fini(m), rn_fail(err, "cuBLAS could not be initialized");
  if (ds_context_create(DS_DEVICE_CUDA, &m->ds) != DS_OK ||
      ds_context_set_stream(m->ds, ex->stream) != DS_OK)
    return cuda_fini(m), rn_fail(err, "libdiffstride CUDA context: %s", ds_last_error());
  if (cuda_set_precision(m, RN_FP32, err)) return cuda_fini(m), -1;
  return 0;
}

static void cuda_sync(rn_model *m) { cudaStreamSynchronize(exec_of(m)->stream); }

/* The device time between each pair of marks, into m->library_seconds
 * (waits for the last pair's end, which the caller's reads have usually
 * waited for already). */
static void cuda_library_collect(rn_model *m) {
  cuda_exec *ex = exec_of(m);
  for (int i = 0; i < ex->marked; i++) {
    float ms = 0.0f;
    if (cudaEventSynchronize(ex->library[i][1]) == cudaSuccess &&
        cudaEventElapsedTime(&ms, ex->library[i][0], ex->library[i][1]) == cudaSuccess)
      m->library_seconds += ms / 1e3;
  }
  ex->marked = 0;
}

/* Events on the stream around a library call: no wait for the device. */
static void cuda_library_mark(rn_model *m, int end) {
  cuda_exec *ex = exec_of(m);
  if (!end && ex->marked == LIBRARY_EVENTS) cuda_library_collect(m);
  cudaEventRecord(ex->library[ex->marked][end], ex->stream);
  if (end) ex->marked++;
}

/* What the trainer added to the device's memory in use since its context
 * was made: tensors, parameters, workspaces, cuDNN's, cuBLAS's and
 * libdiffstride's (buffers only grow, so after a step this is the peak). */
static double cuda_device_mb(rn_model *m) {
  size_t free_bytes = 0, total = 0;
  cuda_sync(m);
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return -1.0;
  size_t used = total - free_bytes, base = exec_of(m)->baseline;
  return (double)(used > base ? used - base : 0) / (1024.0 * 1024.0);
}

/* ------------------------------------------------------------ convolution */

/* An NHWC tensor descriptor of shape s and element type t. */
static cudnnStatus_t nhwc(cudnnTensorDescriptor_t *d, const rn_shape *s, cudnnDataType_t t) {
  cudnnStatus_t st = cudnnCreateTensorDescriptor(d);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NHWC, t, s->n, s->c, s->h, s->w);
}

/* Descriptors of op: x (n, h, w, cin), w (cout, k, k, cin) as KRSC, pad k/2;
 * float32 or bf16 data, float32 arithmetic. */
static cudnnStatus_t describe(const rn_model *m, const rn_op *op, rn_precision precision, conv_plan *p) {
  const rn_shape *x = &m->tensors[op->in].shape, *y = &m->tensors[op->out].shape;
  cudnnDataType_t t = precision == RN_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  cudnnStatus_t st = nhwc(&p->x, x, t);
  if (st == CUDNN_STATUS_SUCCESS) st = nhwc(&p->y, y, t);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateFilterDescriptor(&p->w);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnSetFilter4dDescriptor(p->w, t, CUDNN_TENSOR_NHWC, op->cout, x->c, op->k, op->k);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateConvolutionDescriptor(&p->conv);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnSetConvolution2dDescriptor(p->conv, op->k / 2, op->k / 2, op->stride, op->stride, 1, 1,
                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
  return st;
}

/* The fastest algorithm of each pass that cuDNN finds (it times them), and
 * the workspace the three need. fp32 keeps to FMA math (no tensor cores). */
static cudnnStatus_t find_algorithms(cuda_exec *ex, conv_plan *p, size_t *work) {
  cudnnConvolutionFwdAlgoPerf_t f[8];
  cudnnConvolutionBwdDataAlgoPerf_t d[8];
  cudnnConvolutionBwdFilterAlgoPerf_t w[8];
  int nf = 0, nd = 0, nw = 0;
  cudnnStatus_t st =
      cudnnSetConvolutionMathType(p->conv, ex->precision == RN_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnFindConvolutionForwardAlgorithm(ex->dnn, p->x, p->w, p->conv, p->y, 8, &nf, f);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnFindConvolutionBackwardDataAlgorithm(ex->dnn, p->w, p->y, p->conv, p->x, 8, &nd, d);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnFindConvolutionBackwardFilterAlgorithm(ex->dnn, p->x, p->y, p->conv, p->w, 8, &nw, w);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  int i = 0, j = 0, k = 0; /* results come fastest first; skip failed ones */
  while (i < nf && f[i].status != CUDNN_STATUS_SUCCESS) i++;
  while (j < nd && d[j].status != CUDNN_STATUS_SUCCESS) j++;
  while (k < nw && w[k].status != CUDNN_STATUS_SUCCESS) k++;
  if (i == nf || j == nd || k == nw) return CUDNN_STATUS_NOT_SUPPORTED;
  p->fwd = f[i].algo, p->bwd_data = d[j].algo, p->bwd_filter = w[k].algo;
  *work = f[i].memory > d[j].memory ? f[i].memory : d[j].memory;
  *work = *work > w[k].memory ? *work : w[k].memory;
  return CUDNN_STATUS_SUCCESS;
}

/* The plan of op's current shape: cached, else made in the least recently
 * used slot. */
static conv_plan *plan_for(rn_model *m, const rn_op *op, rn_error *err) {
  cuda_exec *ex = exec_of(m);
  const rn_shape *x = &m->tensors[op->in].shape;
  int key[8] = {x->n, x->h, x->w, x->c, op->cout, op->k, op->stride, (int)ex->precision}, slot = 0;
  for (int i = 0; i < ex->nplans; i++)
    if (!memcmp(ex->plans[i].key, key, sizeof key)) return ex->plans[i].used = ++ex->clock, &ex->plans[i];
  if (ex->nplans < CONV_PLANS) slot = ex->nplans++;
  else
    for (int i = 1; i < CONV_PLANS; i++) slot = ex->plans[i].used < ex->plans[slot].used ? i : slot;
  conv_plan *p = &ex->plans[slot];
  destroy_plan(p);
  memset(p, 0, sizeof *p);
  size_t work = 0;
  cudnnStatus_t st = describe(m, op, ex->precision, p);
  if (st == CUDNN_STATUS_SUCCESS) st = find_algorithms(ex, p, &work);
  if (st != CUDNN_STATUS_SUCCESS) return p->key[0] = -1, dnn_error(err, "convolution plan", st), (conv_plan *)NULL;
  if (grow(ex, &ex->work, &ex->work_bytes, work, err)) return p->key[0] = -1, (conv_plan *)NULL;
  memcpy(p->key, key, sizeof key);
  p->used = ++ex->clock;
  return p;
}

/* bf16 buffer `slot`, grown to count elements; NULL after an error. */
static bf16 *b16_buffer(cuda_exec *ex, int slot, size_t count, rn_error *err) {
  if (grow(ex, (void **)&ex->b16[slot], &ex->b16_bytes[slot], count * sizeof(bf16), err)) return NULL;
  return ex->b16[slot];
}

/* src (count floats) rounded to bf16 in buffer `slot`. */
static const bf16 *b16_copy(cuda_exec *ex, int slot, const float *src, size_t count, rn_error *err) {
  bf16 *dst = b16_buffer(ex, slot, count, err);
  if (!dst) return NULL;
  to_bf16_kernel<<<grid(count), BLOCK, 0, ex->stream>>>(src, dst, count);
  return launched(err, "bf16 copy") ? NULL : dst;
}

/* dst = src (or dst += src with acc), from bf16 to float. */
static int from_b16(cuda_exec *ex, const bf16 *src, float *dst, size_t count, int acc, rn_error *err) {
  from_bf16_kernel<<<grid(count), BLOCK, 0, ex->stream>>>(src, dst, count, acc);
  return launched(err, "bf16 result");
}

/* A convolution's operands in the plan's precision: the float32 tensors
 * themselves, or (bf16) copies of x, w and y or dy. */
typedef struct conv_args {
  const void *x, *w, *y_in; /* y_in: dy (backward) */
  void *y_out;              /* forward output */
  size_t nx, nw, ny;
  int half;
} conv_args;

static int conv_operands(rn_model *m, const rn_op *op, int backward, conv_args *a, rn_error *err) {
  cuda_exec *ex = exec_of(m);
  const rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  a->nx = rn_numel(&x->shape), a->ny = rn_numel(&y->shape);
  a->nw = (size_t)op->cout * op->k * op->k * x->shape.c;
  a->half = ex->precision == RN_BF16;
  a->x = x->data, a->w = m->params + op->param, a->y_in = y->grad, a->y_out = y->data;
  if (!a->half) return 0;
  a->x = b16_copy(ex, B_X, x->data, a->nx, err);
  a->w = a->x ? b16_copy(ex, B_W, m->params + op->param, a->nw, err) : NULL;
  if (backward) a->y_in = a->w ? b16_copy(ex, B_Y, y->grad, a->ny, err) : NULL;
  else a->y_out = a->w ? b16_buffer(ex, B_Y, a->ny, err) : NULL;
  return (backward ? a->y_in : a->y_out) ? 0 : -1;
}

static int conv_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cuda_exec *ex = exec_of(m);
  conv_plan *p = plan_for(m, op, err);
  conv_args a;
  if (!p || conv_operands(m, op, 0, &a, err)) return -1;
  cudnnStatus_t st = cudnnConvolutionForward(ex->dnn, &one, p->x, a.x, p->w, a.w, p->conv, p->fwd, ex->work,
                                             ex->work_bytes, &zero, p->y, a.y_out);
  if (st != CUDNN_STATUS_SUCCESS) return dnn_error(err, "convolution forward", st);
  return a.half ? from_b16(ex, (const bf16 *)a.y_out, m->tensors[op->out].data, a.ny, 0, err) : 0;
}

/* dw into the gradients; dx written or added (acc_in) when x needs it. In
 * bf16 both come out in bf16 and are converted (added) to float32. */
static int conv_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cuda_exec *ex = exec_of(m);
  conv_plan *p = plan_for(m, op, err);
  conv_args a;
  if (!p || conv_operands(m, op, 1, &a, err)) return -1;
  const rn_tensor *x = &m->tensors[op->in];
  void *grad = a.half ? (void *)b16_buffer(ex, B_GRAD, a.nx > a.nw ? a.nx : a.nw, err) : NULL;
  if (a.half && !grad) return -1;
  cudnnStatus_t st = cudnnConvolutionBackwardFilter(ex->dnn, &one, p->x, a.x, p->y, a.y_in, p->conv, p->bwd_filter,
                                                    ex->work, ex->work_bytes, &zero, p->w,
                                                    a.half ? grad : (void *)(m->grads + op->param));
  if (st != CUDNN_STATUS_SUCCESS) return dnn_error(err, "convolution filter gradient", st);
  if (a.half && from_b16(ex, (const bf16 *)grad, m->grads + op->param, a.nw, 0, err)) return -1;
  if (!x->needs_grad) return 0;
  st = cudnnConvolutionBackwardData(ex->dnn, &one, p->w, a.w, p->y, a.y_in, p->conv, p->bwd_data, ex->work,
                                    ex->work_bytes, op->acc_in && !a.half ? &one : &zero, p->x,
                                    a.half ? grad : (void *)x->grad);
  if (st != CUDNN_STATUS_SUCCESS) return dnn_error(err, "convolution data gradient", st);
  return a.half ? from_b16(ex, (const bf16 *)grad, x->grad, a.nx, op->acc_in, err) : 0;
}

/* ------------------------------------------------------- batch norm + ReLU */

/* x's descriptor and the per-channel one cuDNN derives from it (either may
 * be left NULL on failure; destroy_descriptors takes both). */
static cudnnStatus_t bn_descriptors(const rn_shape *s, cudnnTensorDescriptor_t *x, cudnnTensorDescriptor_t *c) {
  *x = NULL, *c = NULL;
  cudnnStatus_t st = nhwc(x, s, CUDNN_DATA_FLOAT);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateTensorDescriptor(c);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnDeriveBNTensorDescriptor(*c, *x, CUDNN_BATCHNORM_SPATIAL);
  return st;
}

static void destroy_descriptors(cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t c) {
  if (x) cudnnDestroyTensorDescriptor(x);
  if (c) cudnnDestroyTensorDescriptor(c);
}

/* y = max(0, gamma (x - mean) invstd + beta): batch statistics into
 * m->stats (mean, invstd) and the running averages (train), or the running
 * statistics (evaluation). */
static int bnrelu_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  cuda_exec *ex = exec_of(m);
  const rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  int c = x->shape.c;
  float *gamma = m->params + op->param, *run = m->state + op->state, *st = m->stats + op->stats;
  cudnnTensorDescriptor_t xd, cd;
  cudnnStatus_t s = bn_descriptors(&x->shape, &xd, &cd);
  if (s == CUDNN_STATUS_SUCCESS && train)
    s = cudnnBatchNormalizationForwardTraining(ex->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x->data, xd,
                                               y->data, cd, gamma, gamma + c, bn_average, run, run + c, bn_eps,
                                               st, st + c);
  else if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBatchNormalizationForwardInference(ex->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x->data, xd,
                                                y->data, cd, gamma, gamma + c, run, run + c, bn_eps);
  destroy_descriptors(xd, cd);
  if (s != CUDNN_STATUS_SUCCESS) return dnn_error(err, "batch norm forward", s);
  size_t count = rn_numel(&x->shape);
  relu_kernel<<<grid(count), BLOCK, 0, ex->stream>>>(y->data, count);
  return launched(err, "ReLU");
}

/* dz = dy through the ReLU, then cuDNN's batch-norm backward with the saved
 * statistics: dgamma, dbeta into the gradients, dx written or added. */
static int bnrelu_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cuda_exec *ex = exec_of(m);
  const rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  int c = x->shape.c;
  size_t count = rn_numel(&x->shape);
  if (grow(ex, (void **)&ex->dz, &ex->dz_cap, count * sizeof(float), err)) return -1;
  relu_grad_kernel<<<grid(count), BLOCK, 0, ex->stream>>>(y->data, y->grad, ex->dz, count);
  if (launched(err, "ReLU gradient")) return -1;
  const float *gamma = m->params + op->param, *st = m->stats + op->stats;
  float *dgamma = m->grads + op->param;
  cudnnTensorDescriptor_t xd, cd;
  cudnnStatus_t s = bn_descriptors(&x->shape, &xd, &cd);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBatchNormalizationBackward(ex->dnn, CUDNN_BATCHNORM_SPATIAL, &one, op->acc_in ? &one : &zero, &one,
                                        &zero, xd, x->data, xd, ex->dz, xd, x->grad, cd, gamma, dgamma,
                                        dgamma + c, bn_eps, st, st + c);
  destroy_descriptors(xd, cd);
  return s == CUDNN_STATUS_SUCCESS ? 0 : dnn_error(err, "batch norm backward", s);
}

/* ------------------------------------------------------------ small ops */

static int add_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  size_t count = rn_numel(&m->tensors[op->out].shape);
  add_kernel<<<grid(count), BLOCK, 0, exec_of(m)->stream>>>(m->tensors[op->in].data, m->tensors[op->in2].data,
                                                            m->tensors[op->out].data, count);
  return launched(err, "add");
}

static int add_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cudaStream_t s = exec_of(m)->stream;
  const rn_tensor *y = &m->tensors[op->out];
  size_t count = rn_numel(&y->shape);
  put_kernel<<<grid(count), BLOCK, 0, s>>>(m->tensors[op->in].grad, y->grad, count, op->acc_in);
  put_kernel<<<grid(count), BLOCK, 0, s>>>(m->tensors[op->in2].grad, y->grad, count, op->acc_in2);
  return launched(err, "add gradient");
}

static int gap_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  rn_shape s = m->tensors[op->in].shape;
  gap_kernel<<<grid((size_t)s.n * s.c), BLOCK, 0, exec_of(m)->stream>>>(
      m->tensors[op->in].data, m->tensors[op->out].data, s.n, (size_t)s.h * s.w, s.c);
  return launched(err, "global average pool");
}

static int gap_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  rn_shape s = m->tensors[op->in].shape;
  gap_grad_kernel<<<grid(rn_numel(&s)), BLOCK, 0, exec_of(m)->stream>>>(
      m->tensors[op->out].grad, m->tensors[op->in].grad, s.n, (size_t)s.h * s.w, s.c, op->acc_in);
  return launched(err, "global average pool gradient");
}

static int blas_status(rn_error *err, const char *what, cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? 0 : rn_fail(err, "%s: cuBLAS status %d", what, (int)s);
}

/* y (n, k) = x (n, c) w^T + b with w (k, c), all row-major: in cuBLAS's
 * column-major terms y^T (k x n) = w (k x c, stored as c x k) x^T. */
static int dense_forward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cuda_exec *ex = exec_of(m);
  const rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param;
  float *y = m->tensors[op->out].data;
  bias_kernel<<<grid((size_t)n * k), BLOCK, 0, ex->stream>>>(w + (size_t)k * c, y, n, k);
  if (launched(err, "dense bias")) return -1;
  return blas_status(err, "dense forward",
                     cublasSgemm(ex->blas, CUBLAS_OP_T, CUBLAS_OP_N, k, n, c, &one, w, c, x->data, c, &one, y, k));
}

/* dw (k, c) = dy^T x, i.e. dw^T (c x k) = x^T dy; db = column sums of dy;
 * dx (n, c) (+)= dy w, i.e. dx^T (c x n) = w^T dy^T. */
static int dense_backward(rn_model *m, const rn_op *op, int train, rn_error *err) {
  (void)train;
  cuda_exec *ex = exec_of(m);
  const rn_tensor *x = &m->tensors[op->in];
  int n = x->shape.n, c = x->shape.c, k = op->cout;
  const float *w = m->params + op->param, *dy = m->tensors[op->out].grad;
  float *dw = m->grads + op->param;
  if (blas_status(err, "dense weight gradient",
                  cublasSgemm(ex->blas, CUBLAS_OP_N, CUBLAS_OP_T, c, k, n, &one, x->data, c, dy, k, &zero, dw, c)))
    return -1;
  bias_grad_kernel<<<grid((size_t)k), BLOCK, 0, ex->stream>>>(dy, dw + (size_t)k * c, n, k);
  if (launched(err, "dense bias gradient")) return -1;
  return blas_status(err, "dense input gradient",
                     cublasSgemm(ex->blas, CUBLAS_OP_N, CUBLAS_OP_N, c, n, k, &one, w, c, dy, k,
                                 op->acc_in ? &one : &zero, x->grad, c));
}

/* ------------------------------------------------------------ batches */

/* s's images on the device: uploaded once and kept (two sets, the least
 * recently used replaced) when they take at most a quarter of the free
 * memory, the replaced set's counted as free (the rest is left for
 * workspaces the first steps allocate); NULL when they do not fit (the cached set
 * stays). Sets are known by their host array and size: the trainer loads
 * its data once and keeps it. */
static const uint8_t *device_images(cuda_exec *ex, const rn_dataset *s) {
  size_t bytes = (size_t)s->count * s->h * s->w * s->c, free_bytes = 0, total = 0;
  for (int i = 0; i < 2; i++)
    if (ex->sets[i].host == s->images && ex->sets[i].bytes == bytes) return ex->sets[i].used = ++ex->clock, ex->sets[i].dev;
  int slot = ex->sets[0].used <= ex->sets[1].used ? 0 : 1;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess || bytes > (free_bytes + ex->sets[slot].bytes) / 4)
    return NULL;
  cudaStreamSynchronize(ex->stream);
  cudaFree(ex->sets[slot].dev);
  memset(&ex->sets[slot], 0, sizeof ex->sets[slot]);
  void *p = NULL;
  if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemcpy(p, s->images, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
    cudaFree(p);
    cudaGetLastError(); /* not an error: the batch is then made on the host */
    return NULL;
  }
  ex->sets[slot].host = s->images, ex->sets[slot].bytes = bytes;
  ex->sets[slot].dev = (uint8_t *)p, ex->sets[slot].used = ++ex->clock;
  return ex->sets[slot].dev;
}

/* The plan's arrays to the device through pinned memory, on the stream; the
 * staging buffer is written once the previous copy out of it is done (in a
 * training loop it is: the host has waited for the loss since). */
static int upload_plan(cuda_exec *ex, const rn_batch_plan *p, rn_error *err) {
  size_t count = 4 * (size_t)p->n;
  if (count > ex->plan_cap) {
    cudaStreamSynchronize(ex->stream);
    cudaFree(ex->plan), cudaFreeHost(ex->staged);
    ex->plan = NULL, ex->staged = NULL, ex->plan_cap = 0;
    cudaError_t e = cudaMalloc((void **)&ex->plan, count * sizeof(int));
    if (e == cudaSuccess) e = cudaMallocHost((void **)&ex->staged, count * sizeof(int));
    if (e != cudaSuccess) return cuda_error(err, "batch plan buffers", e);
    ex->plan_cap = count;
  }
  const int *arrays[4] = {p->idx, p->dy, p->dx, p->flip};
  cudaEventSynchronize(ex->staged_free);
  for (int a = 0; a < 4; a++) memcpy(ex->staged + (size_t)a * p->n, arrays[a], (size_t)p->n * sizeof(int));
  cudaError_t e = cudaMemcpyAsync(ex->plan, ex->staged, count * sizeof(int), cudaMemcpyHostToDevice, ex->stream);
  if (e == cudaSuccess) e = cudaEventRecord(ex->staged_free, ex->stream);
  return e == cudaSuccess ? 0 : cuda_error(err, "copying the batch plan", e);
}

/* The batch rendered on the device from the dataset kept there, or on the
 * host (into `host`) and copied when the dataset does not fit. */
static int cuda_load_batch(rn_model *m, const rn_data *d, const rn_dataset *s, const rn_batch_plan *p, float *host,
                           rn_error *err) {
  cuda_exec *ex = exec_of(m);
  float *x = m->tensors[0].data;
  size_t count = (size_t)p->count * s->h * s->w * s->c;
  const uint8_t *images = device_images(ex, s);
  if (!images) {
    rn_render_batch(d, s, p, host);
    return cuda_to_device(x, host, count) ? rn_fail(err, "copying a batch to the device failed") : 0;
  }
  if (upload_plan(ex, p, err)) return -1;
  const int *q = ex->plan;
  rn_render r = {images, q, q + p->n, q + 2 * p->n, q + 3 * p->n, p->n, p->first, s->h, s->w, s->c, p->mix, p->lam,
                 {d->mean[0], d->mean[1], d->mean[2]}, {d->std[0], d->std[1], d->std[2]}};
  render_kernel<<<grid(count), BLOCK, 0, ex->stream>>>(r, x, count);
  return launched(err, "batch rendering");
}

/* ------------------------------------------------------ several ranks */

#ifdef RN_WITH_NCCL
static int nccl_error(rn_error *err, const char *what, ncclResult_t r) {
  return rn_fail(err, "%s: %s", what, ncclGetErrorString(r));
}

/* NCCL's communicator over the job's ranks: rank 0 makes the unique id,
 * MPI hands it to the others. */
static int cuda_comm_init(rn_model *m, rn_error *err) {
  const rn_dist *d = m->dist;
  ncclUniqueId id;
  ncclResult_t r = d->rank == 0 ? ncclGetUniqueId(&id) : ncclSuccess;
  if (r != ncclSuccess) return nccl_error(err, "ncclGetUniqueId", r);
  if (rn_dist_broadcast(d, &id, sizeof id, err)) return -1;
  r = ncclCommInitRank(&exec_of(m)->nccl, d->size, id, d->rank);
  return r == ncclSuccess ? 0 : nccl_error(err, "ncclCommInitRank", r);
}

/* buf summed over the ranks in place, queued on the trainer's stream. */
static int cuda_allreduce(rn_model *m, float *buf, size_t count, rn_error *err) {
  cuda_exec *ex = exec_of(m);
  ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat, ncclSum, ex->nccl, ex->stream);
  return r == ncclSuccess ? 0 : nccl_error(err, "ncclAllReduce of a gradient bucket", r);
}
#else
static int cuda_comm_init(rn_model *m, rn_error *err) {
  (void)m;
  return rn_fail(err, "--device cuda with several ranks: this trainer was built without NCCL (nccl.h was not "
                      "found beside nvcc)");
}

static int cuda_allreduce(rn_model *m, float *buf, size_t count, rn_error *err) {
  (void)m, (void)buf, (void)count;
  return rn_fail(err, "no NCCL in this build");
}
#endif

/* ------------------------------------------------------------ the rest */

static void cuda_sgd(rn_model *m, float *p, const float *g, float *v, size_t count, float lr, float momentum,
                     float wd) {
  sgd_kernel<<<grid(count), BLOCK, 0, exec_of(m)->stream>>>(p, g, v, count, lr, momentum, wd);
}

static void cuda_accumulate(rn_model *m, float *dst, const float *src, size_t count) {
  put_kernel<<<grid(count), BLOCK, 0, exec_of(m)->stream>>>(dst, src, count, 1);
}

extern "C" const rn_backend rn_cuda_backend = {
    "cuda",
    cuda_init,
    cuda_fini,
    cuda_alloc,
    cuda_release,
    cuda_to_device,
    cuda_to_host,
    cuda_load_batch,
    cuda_sgd,
    cuda_accumulate,
    cuda_sync,
    cuda_library_mark,
    cuda_library_collect,
    cuda_set_precision,
    cuda_device_mb,
    cuda_comm_init,
    cuda_allreduce,
    {conv_forward, bnrelu_forward, rn_pool_forward, add_forward, gap_forward, dense_forward},
    {conv_backward, bnrelu_backward, rn_pool_backward, add_backward, gap_backward, dense_backward},
    {RN_READS_IN, RN_READS_IN | RN_READS_OUT, 0, 0, 0, RN_READS_IN}, /* the ReLU's gradient reads y */
};
