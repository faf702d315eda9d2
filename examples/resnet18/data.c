/* Datasets: Fashion-MNIST (IDX, gzip or plain), CIFAR-10/100 (binary),
 * synthetic; normalization, augmentation and mixup. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "elements.h"
#include "rn.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------ IDX */

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads exactly `count` bytes (file then holds no more when `last`). */
static int read_exact(gzFile f, const char *path, void *buf, size_t count, int last,
                      rn_error *err) {
  size_t got = 0;
  while (got < count) {
    unsigned chunk = count - got > (1u << 30) ? 1u << 30 : (unsigned)(count - got);
    int n = gzread(f, (uint8_t *)buf + got, chunk);
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got < count)
    return rn_fail(err, "%s: truncated: %zu bytes where %zu were expected", path, got, count);
  uint8_t extra;
  if (last && gzread(f, &extra, 1) > 0)
    return rn_fail(err, "%s: trailing bytes after the %zu expected", path, count);
  return 0;
}

/* An IDX file with magic 0x0000080<dims>: returns its data (malloc'ed) and
 * sizes (dims[0] = count). */
static uint8_t *read_idx(const char *path, int ndims, uint32_t *dims, rn_error *err) {
  gzFile f = gzopen(path, "rb");
  if (!f) return rn_fail(err, "%s: cannot open: %s", path, strerror(errno)), NULL;
  uint8_t head[16];
  uint8_t *data = NULL;
  if (read_exact(f, path, head, 4 + 4 * (size_t)ndims, 0, err)) goto done;
  if (be32(head) != 0x800u + (uint32_t)ndims) {
    rn_fail(err, "%s: bad magic 0x%08x (an IDX file of unsigned bytes, %d dimensions, has 0x%08x)",
            path, be32(head), ndims, 0x800u + (uint32_t)ndims);
    goto done;
  }
  size_t total = 1;
  for (int i = 0; i < ndims; i++) total *= dims[i] = be32(head + 4 + 4 * i);
  if (total == 0 || total > ((size_t)1 << 32)) {
    rn_fail(err, "%s: implausible sizes (%zu bytes of data)", path, total);
    goto done;
  }
  data = malloc(total);
  if (!data || read_exact(f, path, data, total, 1, err)) free(data), data = NULL;
done:
  gzclose(f);
  return data;
}

static int check_labels(const uint8_t *labels, int count, int classes, const char *path,
                        rn_error *err) {
  for (int i = 0; i < count; i++)
    if (labels[i] >= classes)
      return rn_fail(err, "%s: label %d of record %d is out of range [0, %d)", path, labels[i], i,
                     classes);
  return 0;
}

static void drop(rn_dataset *s) {
  free(s->images);
  free(s->labels);
  memset(s, 0, sizeof *s);
}

int rn_load_idx_pair(rn_dataset *s, const char *images, const char *labels, int classes,
                     rn_error *err) {
  uint32_t di[3], dl[1];
  memset(s, 0, sizeof *s);
  s->images = read_idx(images, 3, di, err);
  if (!s->images) return -1;
  s->labels = read_idx(labels, 1, dl, err);
  if (!s->labels) return free(s->images), s->images = NULL, -1;
  *s = (rn_dataset){(int)di[0], (int)di[1], (int)di[2], 1, classes, s->images, s->labels};
  if (dl[0] != di[0]) {
    rn_fail(err, "%s has %u labels for the %u images of %s", labels, dl[0], di[0], images);
    return drop(s), -1;
  }
  if (check_labels(s->labels, s->count, classes, labels, err)) return drop(s), -1;
  return 0;
}

/* ---------------------------------------------------------------- CIFAR */

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * 32 * 32 };

/* Appends the records of one CIFAR binary file: label_bytes label bytes (the
 * last one is the label) then R, G, B planes of 32x32; stored as HWC. */
static int cifar_file(rn_dataset *s, const char *path, int label_bytes, rn_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return rn_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  size_t rec = (size_t)label_bytes + CIFAR_PIXELS;
  if (fstat(fileno(f), &st) || st.st_size <= 0 || (size_t)st.st_size % rec)
    return fclose(f), rn_fail(err, "%s: %lld bytes is not a whole number of %zu-byte records (truncated or not CIFAR%s)",
                              path, (long long)st.st_size, rec, label_bytes == 1 ? "-10" : "-100");
  int count = (int)((size_t)st.st_size / rec);
  uint8_t *img = realloc(s->images, (size_t)(s->count + count) * CIFAR_PIXELS);
  uint8_t *lab = img ? realloc(s->labels, (size_t)(s->count + count)) : NULL;
  uint8_t *buf = malloc(rec);
  if (img) s->images = img;
  if (lab) s->labels = lab;
  int got = 0;
  for (int i = 0; img && lab && buf && i < count && fread(buf, 1, rec, f) == rec; i++, got++) {
    uint8_t *dst = s->images + (size_t)(s->count + i) * CIFAR_PIXELS;
    for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
      for (int ch = 0; ch < 3; ch++) dst[p * 3 + ch] = buf[label_bytes + ch * 1024 + p];
    s->labels[s->count + i] = buf[label_bytes - 1];
  }
  int ok = got == count;
  free(buf);
  fclose(f);
  if (!ok) return rn_fail(err, "%s: read failed or out of memory", path);
  int first = s->count;
  s->count += count;
  return check_labels(s->labels + first, count, s->classes, path, err);
}

int rn_load_cifar(rn_dataset *s, const char *const *files, int nfiles, int label_bytes,
                  int classes, rn_error *err) {
  *s = (rn_dataset){0, CIFAR_SIDE, CIFAR_SIDE, 3, classes, NULL, NULL};
  for (int i = 0; i < nfiles; i++)
    if (cifar_file(s, files[i], label_bytes, err)) return drop(s), -1;
  return 0;
}

int rn_write_cifar(const rn_dataset *s, const char *path, rn_error *err) {
  if (s->h != CIFAR_SIDE || s->w != CIFAR_SIDE || s->c != 3)
    return rn_fail(err, "%s: CIFAR records are 32x32x3, not %dx%dx%d", path, s->h, s->w, s->c);
  FILE *f = fopen(path, "wb");
  if (!f) return rn_fail(err, "%s: cannot create: %s", path, strerror(errno));
  uint8_t rec[1 + CIFAR_PIXELS];
  for (int i = 0; i < s->count; i++) {
    const uint8_t *src = s->images + (size_t)i * CIFAR_PIXELS;
    rec[0] = s->labels[i];
    for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
      for (int ch = 0; ch < 3; ch++) rec[1 + ch * 1024 + p] = src[p * 3 + ch];
    fwrite(rec, 1, sizeof rec, f);
  }
  return fclose(f) ? rn_fail(err, "%s: write failed: %s", path, strerror(errno)) : 0;
}

/* ------------------------------------------------------------ synthetic */

/* Each class is a smooth template (a few random sinusoids per channel,
 * tpl: classes * c * WAVES * 4 numbers); images are their template plus
 * noise, so a network can learn them. */
enum { WAVES = 3 };

static void synthetic(rn_dataset *s, int count, int h, int w, int c, int classes,
                      const double *tpl, rn_rng *rng) {
  *s = (rn_dataset){count, h, w, c, classes, malloc((size_t)count * h * w * c), malloc((size_t)count)};
  for (int i = 0; i < count; i++) {
    int k = (int)rn_rng_below(rng, (uint32_t)classes);
    s->labels[i] = (uint8_t)k;
    for (int p = 0; p < h * w * c; p++) {
      int y = p / (w * c), x = p / c % w, ch = p % c;
      double v = 0.0;
      for (int q = 0; q < WAVES; q++) {
        const double *t = tpl + (((size_t)k * c + ch) * WAVES + q) * 4;
        v += t[0] * cos(6.0 * t[1] * y / h + 6.0 * t[2] * x / w + 6.3 * t[3]);
      }
      double px = 128.0 + 40.0 * v + 30.0 * rn_rng_normal(rng);
      s->images[(size_t)i * h * w * c + p] = (uint8_t)(px < 0 ? 0 : px > 255 ? 255 : px);
    }
  }
}

/* ------------------------------------------------------------- datasets */

static int load_fashion(rn_data *d, const char *dir, rn_error *err) {
  char a[4096], b[4096];
  const char *parts[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                             {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
  rn_dataset *sets[2] = {&d->train, &d->test};
  for (int i = 0; i < 2; i++) {
    snprintf(a, sizeof a, "%s/%s", dir, parts[i][0]);
    snprintf(b, sizeof b, "%s/%s", dir, parts[i][1]);
    if (rn_load_idx_pair(sets[i], a, b, 10, err)) {
      struct stat st;
      if (strcmp(dir, FASHION_DIR) == 0 && stat(dir, &st) != 0)
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                 " (Debian package dataset-fashion-mnist: apt-get install dataset-fashion-mnist)");
      return -1;
    }
  }
  return 0;
}

/* dir or dir/sub, whichever holds `probe`. */
static void cifar_dir(char *out, size_t size, const char *dir, const char *sub, const char *probe) {
  struct stat st;
  snprintf(out, size, "%s/%s/%s", dir, sub, probe);
  if (stat(out, &st) == 0) snprintf(out, size, "%s/%s", dir, sub);
  else snprintf(out, size, "%s", dir);
}

static int load_cifar_dir(rn_data *d, const char *dir, int hundred, rn_error *err) {
  char base[3000], names[7][4096];
  const char *train[5], *test[1];
  cifar_dir(base, sizeof base, dir, hundred ? "cifar-100-binary" : "cifar-10-batches-bin",
            hundred ? "train.bin" : "data_batch_1.bin");
  int ntrain = hundred ? 1 : 5;
  for (int i = 0; i < ntrain; i++) {
    if (hundred) snprintf(names[i], sizeof names[i], "%s/train.bin", base);
    else snprintf(names[i], sizeof names[i], "%s/data_batch_%d.bin", base, i + 1);
    train[i] = names[i];
  }
  snprintf(names[6], sizeof names[6], "%s/%s", base, hundred ? "test.bin" : "test_batch.bin");
  test[0] = names[6];
  int lb = hundred ? 2 : 1, classes = hundred ? 100 : 10;
  if (rn_load_cifar(&d->train, train, ntrain, lb, classes, err)) return -1;
  return rn_load_cifar(&d->test, test, 1, lb, classes, err);
}

static int load_synthetic(rn_data *d, const char *arg, rn_error *err) {
  int h, w, c, classes = 10, used = 0;
  if (sscanf(arg, "%dx%dx%d%n", &h, &w, &c, &used) != 3 || (arg[used] && sscanf(arg + used, ":%d", &classes) != 1) ||
      h < 2 || w < 2 || c < 1 || c > 3 || classes < 2 || classes > 256)
    return rn_fail(err, "synthetic:%s: expected synthetic:HxWxC[:CLASSES] with C in 1..3", arg);
  rn_rng rng;
  rn_rng_seed(&rng, 20221);
  double *tpl = malloc(sizeof(double) * (size_t)classes * c * WAVES * 4);
  if (!tpl) return rn_fail(err, "out of memory");
  for (int i = 0; i < classes * c * WAVES * 4; i++) tpl[i] = rn_rng_uniform(&rng);
  synthetic(&d->train, 2048, h, w, c, classes, tpl, &rng);
  synthetic(&d->test, 512, h, w, c, classes, tpl, &rng);
  free(tpl);
  return 0;
}

/* Per-channel mean and standard deviation of the training images in [0, 1]. */
static void channel_moments(rn_data *d) {
  const rn_dataset *s = &d->train;
  size_t pix = (size_t)s->count * s->h * s->w;
  for (int ch = 0; ch < s->c; ch++) {
    double sum = 0.0, sq = 0.0;
    for (size_t p = 0; p < pix; p++) {
      double v = s->images[p * s->c + ch] / 255.0;
      sum += v, sq += v * v;
    }
    double mean = sum / pix, var = sq / pix - mean * mean;
    d->mean[ch] = (float)mean;
    d->std[ch] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
  }
}

int rn_data_load(rn_data *d, const char *spec, rn_error *err) {
  memset(d, 0, sizeof *d);
  const char *colon = strchr(spec, ':'), *arg = colon ? colon + 1 : NULL;
  size_t kind = colon ? (size_t)(colon - spec) : strlen(spec);
  int rc;
  if (kind == 13 && strncmp(spec, "fashion-mnist", kind) == 0) rc = load_fashion(d, arg ? arg : FASHION_DIR, err);
  else if (arg && kind == 7 && strncmp(spec, "cifar10", kind) == 0) rc = load_cifar_dir(d, arg, 0, err);
  else if (arg && kind == 8 && strncmp(spec, "cifar100", kind) == 0) rc = load_cifar_dir(d, arg, 1, err);
  else if (arg && kind == 9 && strncmp(spec, "synthetic", kind) == 0) rc = load_synthetic(d, arg, err);
  else rc = rn_fail(err, "--data %s: expected fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR or synthetic:HxWxC[:CLASSES]", spec);
  if (rc) return rn_data_free(d), -1;
  snprintf(d->name, sizeof d->name, "%.*s", (int)kind, spec);
  channel_moments(d);
  return 0;
}

void rn_data_free(rn_data *d) {
  drop(&d->train);
  drop(&d->test);
}

void rn_dataset_truncate(rn_dataset *s, int count) {
  if (count > 0 && count < s->count) s->count = count;
}

/* ---------------------------------------------------------------- batches */

int rn_batch_plan_init(rn_batch_plan *p, int cap) {
  memset(p, 0, sizeof *p);
  p->idx = malloc(4 * sizeof(int) * (size_t)(cap > 0 ? cap : 1));
  if (!p->idx) return -1;
  p->dy = p->idx + cap, p->dx = p->dy + cap, p->flip = p->dx + cap;
  p->cap = cap;
  return 0;
}

void rn_batch_plan_free(rn_batch_plan *p) {
  free(p->idx);
  memset(p, 0, sizeof *p);
}

/* Rows i and n-1-i of targets (n, classes) mixed with lam, both from the
 * unmixed values. */
static void mix_targets(float *targets, int n, int classes, float lam) {
  for (int i = 0; i <= n - 1 - i; i++) {
    float *a = targets + (size_t)i * classes, *b = targets + (size_t)(n - 1 - i) * classes;
    for (int k = 0; k < classes; k++) {
      float u = a[k], v = b[k];
      a[k] = lam * u + (1 - lam) * v;
      b[k] = lam * v + (1 - lam) * u;
    }
  }
}

void rn_plan_batch(const rn_dataset *s, const int *idx, int n, const rn_augment *aug, rn_rng *rng,
                   rn_batch_plan *p, float *targets, int *labels) {
  float eps = aug ? aug->smoothing : 0.0f;
  p->n = n;
  for (int i = 0; i < n; i++) {
    p->idx[i] = idx[i], p->dy[i] = p->dx[i] = p->flip[i] = 0;
    if (aug && aug->pad > 0) {
      p->dy[i] = (int)rn_rng_below(rng, 2u * aug->pad + 1) - aug->pad;
      p->dx[i] = (int)rn_rng_below(rng, 2u * aug->pad + 1) - aug->pad;
    }
    if (aug && aug->flip) p->flip[i] = (int)rn_rng_below(rng, 2);
    labels[i] = s->labels[idx[i]];
    for (int k = 0; k < s->classes; k++)
      targets[(size_t)i * s->classes + k] = (k == labels[i] ? 1.0f - eps : 0.0f) + eps / s->classes;
  }
  p->mix = aug && aug->mixup > 0.0f && n > 1;
  p->lam = p->mix ? (float)rn_rng_beta(rng, aug->mixup) : 1.0f;
  if (p->mix) mix_targets(targets, n, s->classes, p->lam);
}

void rn_render_batch(const rn_data *d, const rn_dataset *s, const rn_batch_plan *p, float *x) {
  rn_render r = {s->images, p->idx, p->dy, p->dx, p->flip, p->n, s->h, s->w, s->c, p->mix, p->lam,
                 {d->mean[0], d->mean[1], d->mean[2]}, {d->std[0], d->std[1], d->std[2]}};
  size_t count = (size_t)p->n * s->h * s->w * s->c;
  for (size_t e = 0; e < count; e++) x[e] = rn_render_element(&r, e);
}

int rn_make_batch(const rn_data *d, const rn_dataset *s, const int *idx, int n, const rn_augment *aug,
                  rn_rng *rng, float *x, float *targets, int *labels) {
  rn_batch_plan p;
  if (rn_batch_plan_init(&p, n)) return -1;
  rn_plan_batch(s, idx, n, aug, rng, &p, targets, labels);
  rn_render_batch(d, s, &p, x);
  rn_batch_plan_free(&p);
  return 0;
}
