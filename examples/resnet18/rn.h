/* The ResNet-18 trainer's core, shared by every device: the model
 * description, the data pipeline, the optimizer and the checkpoints. Only the
 * layer compute (rn_backend) differs between devices.
 *
 * Activations are NHWC (n, h, w, c) float32 throughout: a 1x1 convolution is
 * then one GEMM, im2col copies runs of c floats, and libdiffstride takes NHWC
 * directly (DS_LAYOUT_NHWC). Convolution weights are (cout, k, k, cin), so a
 * row of the weight matrix matches a row of im2col. Functions that can fail
 * return 0 on success and -1 with a message in the rn_error they are given;
 * nothing in the core prints or exits. */
#ifndef RN_H
#define RN_H

#include <stddef.h>
#include <stdint.h>

#include "diffstride.h"

typedef struct rn_error {
  char msg[512];
} rn_error;
int rn_fail(rn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Seconds on the monotonic clock (for intervals). */
double rn_seconds(void);
/* Formats a path into buf; -1 with a message when it does not fit (a path
 * is never cut short). */
int rn_path(char *buf, size_t size, rn_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* malloc of count * size bytes, the product checked; NULL with "out of
 * memory allocating N bytes for WHAT" on failure. */
void *rn_alloc(size_t count, size_t size, const char *what, rn_error *err);

/* What the trainer accepts from flags, data files and checkpoints. Beyond
 * these, sizes would overflow the int arithmetic of the backends and of
 * BLAS (every tensor also stays below 2^31 elements), or mean nothing for
 * this network (labels are bytes; images larger than 1024 pixels a side, a
 * stride larger than the largest image). More threads than 1024 only add
 * overhead, and OpenMP fails to start tens of thousands. */
enum {
  RN_MAX_SIDE = 1024,     /* image height and width */
  RN_MAX_STRIDE = 1024,   /* every stride, learned ones included */
  RN_MAX_CLASSES = 256,
  RN_MAX_THREADS = 1024,
  RN_MAX_BATCH = 65536,
  RN_MAX_EPOCHS = 100000,
  RN_MAX_PATH = 4096      /* bytes of a path with its terminating zero (PATH_MAX) */
};

/* ------------------------------------------------------------------ rng */

/* xoshiro256** seeded by splitmix64: the whole state goes into checkpoints. */
typedef struct rn_rng {
  uint64_t s[4];
} rn_rng;
void rn_rng_seed(rn_rng *r, uint64_t seed);
uint64_t rn_rng_next(rn_rng *r);
double rn_rng_uniform(rn_rng *r);           /* [0, 1) */
uint32_t rn_rng_below(rn_rng *r, uint32_t n); /* [0, n) */
double rn_rng_normal(rn_rng *r);
double rn_rng_beta(rn_rng *r, double a);    /* Beta(a, a), a > 0 */

/* ------------------------------------------------------------------ data */

/* Images are uint8 (count, h, w, c); labels in [0, classes). */
typedef struct rn_dataset {
  int count, h, w, c, classes;
  uint8_t *images;
  uint8_t *labels;
} rn_dataset;

typedef struct rn_data {
  char name[64];
  rn_dataset train, test;
  float mean[3], std[3]; /* per channel, from the training images */
} rn_data;

/* spec: "fashion-mnist[:DIR]", "cifar10:DIR", "cifar100:DIR" or
 * "synthetic:HxWxC[:CLASSES]" (random images whose classes a network can
 * learn; for benchmarks and tests). */
int rn_data_load(rn_data *d, const char *spec, rn_error *err);
void rn_data_free(rn_data *d);
/* Keeps the first `count` images (count <= 0 or >= size: all). */
void rn_dataset_truncate(rn_dataset *s, int count);
int rn_load_idx_pair(rn_dataset *s, const char *images, const char *labels, int classes,
                     rn_error *err);
int rn_load_cifar(rn_dataset *s, const char *const *files, int nfiles, int label_bytes,
                  int classes, rn_error *err);
/* Writes s in the CIFAR-10 binary format (label byte + 3 planes of h*w). */
int rn_write_cifar(const rn_dataset *s, const char *path, rn_error *err);

typedef struct rn_augment {
  int pad;     /* random crop from the image zero-padded by pad pixels */
  int flip;    /* random horizontal flips */
  float mixup; /* Beta(mixup, mixup) mixing of image pairs; 0 = off */
  float smoothing; /* label smoothing */
} rn_augment;

/* A batch's random choices, drawn on the host so that every device makes
 * the same batch: image idx[i] shifted by (dy[i], dx[i]) (zero padding),
 * mirrored when flip[i]; with mix, image i becomes lam * itself +
 * (1 - lam) * image n-1-i. The arrays hold `cap` entries. */
typedef struct rn_batch_plan {
  int n, cap, mix;
  float lam;
  int *idx, *dy, *dx, *flip;
  int first, count; /* the images this process renders: [first, first + count) of n */
} rn_batch_plan;
int rn_batch_plan_init(rn_batch_plan *p, int cap);
void rn_batch_plan_free(rn_batch_plan *p);

/* Plans the batch of images idx[0..n) (n <= p->cap), all of them to render
 * (first 0, count n), and fills targets (n,
 * classes) soft labels and labels (n, each image's own label). With aug ==
 * NULL: no augmentation, no mixup, no smoothing (evaluation). */
void rn_plan_batch(const rn_dataset *s, const int *idx, int n, const rn_augment *aug, rn_rng *rng,
                   rn_batch_plan *p, float *targets, int *labels);
/* x (count, h, w, c) on the host: images [first, first + count) of a plan
 * (elements.h's rn_render_element). */
void rn_render_batch(const rn_data *d, const rn_dataset *s, const rn_batch_plan *p, float *x);
/* Plan and render in one call, on the host; -1 when out of memory. */
int rn_make_batch(const rn_data *d, const rn_dataset *s, const int *idx, int n, const rn_augment *aug,
                  rn_rng *rng, float *x, float *targets, int *labels);

/* ------------------------------------------------------------------ model */

typedef enum rn_mode { RN_STRIDED = 0, RN_SPECTRAL = 1, RN_DIFFSTRIDE = 2 } rn_mode;
const char *rn_mode_name(rn_mode m);
int rn_mode_parse(const char *s, rn_mode *m);

enum { RN_STAGES = 5, RN_MAX_POOLS = RN_STAGES, RN_MAX_CHANNELS = 4096 };

typedef struct rn_config {
  rn_mode mode;
  float width;              /* (0, 8]: multiplies the widths 64, 64, 128, 256, 512 */
  float strides[RN_STAGES]; /* stem, block1..block4: [1, RN_MAX_STRIDE] */
  float smoothness;         /* DiffStride's R: finite, > 0 */
  int in_h, in_w, in_c, classes; /* [2, RN_MAX_SIDE], [1, 3], [2, RN_MAX_CLASSES] */
} rn_config;
/* -1 with a message naming the first field out of range (the checkpoint
 * reader checks its config with it too). */
int rn_config_check(const rn_config *c, rn_error *err);

typedef struct rn_shape {
  int n, h, w, c;
} rn_shape;

/* n * h * w * c (< 2^48 within the limits above). */
static inline size_t rn_numel(const rn_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }

typedef enum rn_op_kind { OP_CONV, OP_BNRELU, OP_POOL, OP_ADD, OP_GAP, OP_DENSE } rn_op_kind;

typedef struct rn_op {
  rn_op_kind kind;
  int in, in2, out;     /* tensor indices; in2 only for OP_ADD */
  int acc_in, acc_in2;  /* backward adds into the input gradient (written before) */
  int cout, k, stride;  /* OP_CONV: out channels, kernel (1 or 3), stride; OP_DENSE: cout */
  int pool;             /* OP_POOL: index into model->pools */
  size_t param;         /* offset of the op's parameters in the flat arrays */
  size_t state;         /* OP_BNRELU: offset of running mean, then var, in model->state */
  size_t stats;         /* OP_BNRELU: offset of the batch mean, then the backend's spread
                           (1/std on CUDA, the variance on the CPU), in model->stats */
} rn_op;

/* data and grad are buffers of the model (rn_buffers), each shared with
 * the tensors whose lives do not meet it: data lives from the producer's
 * forward to its last reader, forward or backward; a gradient from the
 * backward of the tensor's last reader to that of its producer (model.c,
 * lifetimes). */
typedef struct rn_tensor {
  rn_shape shape;
  float *data, *grad; /* on the backend's device */
  int needs_grad, data_slot, grad_slot;
} rn_tensor;


/* One downsampling layer's learned (DiffStride) or fixed (spectral) strides.
 * grad is dL/dstrides summed over its uses (main branch and shortcut). */
typedef struct rn_pool {
  float stride[2], grad[2], mom[2];
  int in_h, in_w, out_h, out_w;
} rn_pool;

/* A range of the flat parameter array and whether weight decay applies. */
typedef struct rn_range {
  size_t offset, count;
  int decay;
} rn_range;

struct rn_backend;
struct rn_dist;

enum { RN_MAX_OPS = 96, RN_MAX_TENSORS = 96, RN_MAX_RANGES = 96 };

/* Buffers on the backend's device shared by tensors (rn_tensor). */
typedef struct rn_buffers {
  int count;
  float *buf[RN_MAX_TENSORS];
  size_t cap[RN_MAX_TENSORS]; /* floats */
} rn_buffers;

typedef struct rn_model {
  rn_config cfg;
  const struct rn_backend *be;
  void *exec; /* the backend's workspace */
  int nops, ntensors, npools, nranges;
  rn_op ops[RN_MAX_OPS];
  rn_tensor tensors[RN_MAX_TENSORS];
  rn_pool pools[RN_MAX_POOLS];
  rn_range ranges[RN_MAX_RANGES];
  size_t nparams, nstate, nstats;
  float *params, *grads, *mom; /* host copies are the truth between steps */
  float *state, *stats;        /* BN running mean/var; BN batch statistics */
  ds_diffstride_desc desc;     /* R, cropping on, layout NHWC */
  ds_context *ds;              /* the backend's libdiffstride context */
  float *scratch;              /* an op's dx when it is added, not written (rn_model_scratch) */
  size_t scratch_cap;
  rn_buffers data_bufs, grad_bufs; /* rn_tensor.data_slot, grad_slot */
  /* By op index, the DiffStride layers' reserves for
   * ds_diffstride_backward_reserved; filled when the op's last forward
   * was a training one. */
  float *reserve[RN_MAX_OPS];
  size_t reserve_cap[RN_MAX_OPS]; /* floats */
  unsigned char reserve_filled[RN_MAX_OPS];
  double library_seconds;      /* time in libdiffstride calls, summed (read it with rn_library_seconds) */
  int logits;                  /* tensor index of the logits */
  struct rn_dist *dist;        /* the ranks training this model (dist.h); NULL: one process */
} rn_model;

/* Builds the graph, allocates and initializes the parameters (He normal
 * convolutions, from rng). threads: for the backend. */
int rn_model_create(rn_model *m, const rn_config *cfg, const struct rn_backend *be, int threads,
                    rn_rng *rng, rn_error *err);
void rn_model_destroy(rn_model *m);
/* Sizes of every tensor for a batch of n from the current strides. */
int rn_model_shapes(rn_model *m, int n, rn_error *err);
/* Runs the network on x (n, in_h, in_w, in_c), a host array, or with x NULL
 * on the batch already in m->tensors[0] (rn_load_batch); logits in
 * m->tensors[m->logits]. */
int rn_forward(rn_model *m, const float *x, int n, int train, rn_error *err);
/* Softmax cross-entropy of the n rows of logits against soft targets (n,
 * classes), summed and divided by total (the global batch: n itself in one
 * process); writes dL/dlogits of that when grad is set; *correct counts
 * argmax == labels. */
double rn_loss(rn_model *m, const float *targets, const int *labels, int n, int total, int grad,
               int *correct);
/* Seconds spent in libdiffstride calls so far (on a GPU: device time of the
 * calls finished). */
double rn_library_seconds(rn_model *m);
/* Backpropagates the logits' gradient: m->grads and every pool's grad
 * (with m->dist, handed to it bucket by bucket as they are complete). */
int rn_backward(rn_model *m, rn_error *err);
/* lambda * J(S) over the DiffStride layers, its gradient added to the pools'. */
double rn_regularizer(rn_model *m, float lambda, int grad);
/* The arithmetic of convolutions and GEMMs: float32 (the default, and the
 * CPU's only one), TF32 tensor cores, or bf16 convolutions with float32
 * master weights (batch norm, pooling and the loss stay float32). */
typedef enum rn_precision { RN_FP32 = 0, RN_TF32 = 1, RN_BF16 = 2 } rn_precision;
const char *rn_precision_name(rn_precision p);
int rn_precision_parse(const char *s, rn_precision *p);
int rn_model_set_precision(rn_model *m, rn_precision p, rn_error *err);
/* Strides of the DiffStride layers raised/clipped as the layer computes with
 * them (the reference stores these back after each step). */
void rn_store_effective_strides(rn_model *m);

/* ------------------------------------------------------------ optimizer */

enum { RN_MAX_LR_STEPS = 16 };
typedef struct rn_schedule {
  int count;
  long step[RN_MAX_LR_STEPS]; /* step[0] = 0 */
  float lr[RN_MAX_LR_STEPS];
} rn_schedule;
/* "0.01,400:0.1,18000:0.01" = 0.01 from step 0, 0.1 from step 400, ... */
int rn_schedule_parse(rn_schedule *s, const char *text, rn_error *err);
float rn_schedule_lr(const rn_schedule *s, long step);

typedef struct rn_sgd {
  float momentum, weight_decay;
} rn_sgd;
/* p -= lr * v, v = momentum * v + g (+ weight_decay * p where it applies),
 * for the parameters and the learned strides. */
void rn_sgd_step(rn_model *m, const rn_sgd *opt, float lr);

/* ------------------------------------------------------------ training */

typedef struct rn_trainer {
  rn_model model;
  rn_sgd opt;
  rn_schedule schedule;
  rn_augment aug;
  float lambda; /* complexity regularizer weight */
  int batch;
  int epoch;    /* epochs completed */
  long step;    /* optimizer steps done */
  rn_rng rng;
  float *x, *targets; /* one batch, host */
  int *labels, *order;
  rn_batch_plan plan;
  int loaded;         /* images of the batch rn_load_batch put on the device (0: use x) */
} rn_trainer;

typedef struct rn_epoch_stats {
  double loss, accuracy, seconds, images_per_s, library_seconds;
  int images;
} rn_epoch_stats;

/* Called after each step; a nonzero return (its message in err) stops the
 * epoch with an error. */
typedef int (*rn_progress_fn)(void *user, int done, int total, double loss, double images_per_s,
                              rn_error *err);

int rn_trainer_init(rn_trainer *t, const rn_config *cfg, const struct rn_backend *be,
                    int threads, uint64_t seed, int batch, rn_error *err);
void rn_trainer_free(rn_trainer *t);
/* The batch of images idx[0..n) of s, augmented with t->aug when augment,
 * rendered straight into the model's input by the backend (the dataset kept
 * on the device where it fits); targets and labels in t. */
int rn_load_batch(rn_trainer *t, const rn_data *d, const rn_dataset *s, const int *idx, int n, int augment,
                  rn_error *err);
/* One optimizer step on the loaded batch, or else on t->x, with
 * t->targets/t->labels (n images). */
int rn_train_step(rn_trainer *t, int n, double *loss, int *correct, rn_error *err);
int rn_train_epoch(rn_trainer *t, const rn_data *d, rn_progress_fn progress, void *user,
                   rn_epoch_stats *out, rn_error *err);
int rn_evaluate(rn_trainer *t, const rn_data *d, const rn_dataset *s, double *accuracy,
                double *loss, rn_error *err);

/* Checkpoints: config, weights, optimizer state, strides, epoch, step, RNG;
 * written to path.tmp then renamed over path. */
int rn_checkpoint_save(const rn_trainer *t, const char *path, rn_error *err);
/* Loads into an initialized trainer whose config must match the file's
 * (rn_checkpoint_config reads the config first). Both verify the CRC before
 * they use any field, then range-check every field. After a failed load
 * the trainer's weights are unspecified: free it. */
int rn_checkpoint_load(rn_trainer *t, const char *path, rn_error *err);
int rn_checkpoint_config(const char *path, rn_config *cfg, rn_error *err);

#endif
