/* Datasets: Fashion-MNIST (IDX, gzip or plain), CIFAR-10/100 (binary),
 * synthetic; normalization, augmentation and mixup. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
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

/* Reads exactly `count` bytes. */
static int read_exact(gzFile f, const char *path, void *buf, size_t count, rn_error *err) {
  int n = gzread(f, buf, (unsigned)count);
  if (n < 0 || (size_t)n < count)
    return rn_fail(err, "%s: truncated: %d bytes where %zu were expected", path, n < 0 ? 0 : n, count);
  return 0;
}

/* The header's sizes: the count in [1, INT_MAX], each side in [1,
 * RN_MAX_SIDE], checked before they are multiplied (total < 2^51). */
static int idx_sizes(const uint8_t *head, int ndims, uint32_t *dims, size_t *total, const char *path,
                     rn_error *err) {
  if (be32(head) != 0x800u + (uint32_t)ndims)
    return rn_fail(err, "%s: bad magic 0x%08x (an IDX file of unsigned bytes, %d dimensions, has 0x%08x)", path,
                   be32(head), ndims, 0x800u + (uint32_t)ndims);
  *total = 1;
  for (int i = 0; i < ndims; i++) {
    uint32_t max = i == 0 ? INT_MAX : RN_MAX_SIDE;
    dims[i] = be32(head + 4 + 4 * i);
    if (dims[i] < 1 || dims[i] > max)
      return rn_fail(err, "%s: header size %d is %u: expected 1 to %u", path, i, dims[i], max);
    *total *= dims[i];
  }
  return 0;
}

/* Exactly `total` bytes of data, then the end of the file. The buffer grows
 * as the bytes arrive (from 1 MiB, doubling), so a header that claims more
 * than the file holds costs no more memory than the file's contents. */
static uint8_t *read_payload(gzFile f, const char *path, size_t total, rn_error *err) {
  uint8_t *data = NULL, extra;
  size_t cap = 0, got = 0;
  int n = 1, errnum = Z_OK;
  while (got < total && n > 0) {
    if (got == cap) {
      size_t next = cap ? 2 * cap : (size_t)1 << 20;
      next = next < total ? next : total;
      uint8_t *grown = realloc(data, next);
      if (!grown) return free(data), rn_fail(err, "%s: out of memory allocating %zu bytes", path, next), NULL;
      data = grown, cap = next;
    }
    n = gzread(f, data + got, cap - got > (1u << 30) ? 1u << 30 : (unsigned)(cap - got));
    got += n > 0 ? (size_t)n : 0;
  }
  const char *why = n < 0 ? gzerror(f, &errnum) : NULL;
  if (why) rn_fail(err, "%s: read failed after %zu bytes: %s", path, got, errnum == Z_ERRNO ? strerror(errno) : why);
  else if (got < total) rn_fail(err, "%s: truncated: %zu bytes where %zu were expected", path, got, total);
  else if (gzread(f, &extra, 1) > 0) rn_fail(err, "%s: trailing bytes after the %zu expected", path, total);
  else return data;
  free(data);
  return NULL;
}

/* An IDX file with magic 0x0000080<dims>: returns its data (malloc'ed) and
 * sizes (dims[0] = count). */
static uint8_t *read_idx(const char *path, int ndims, uint32_t *dims, rn_error *err) {
  errno = 0;
  gzFile f = gzopen(path, "rb");
  if (!f) return rn_fail(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory"), NULL;
  uint8_t head[16], *data = NULL;
  size_t total = 0;
  if (!read_exact(f, path, head, 4 + 4 * (size_t)ndims, err) && !idx_sizes(head, ndims, dims, &total, path, err))
    data = read_payload(f, path, total, err);
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

/* Room for `more` records after the s->count already held. */
static int cifar_grow(rn_dataset *s, size_t more, const char *path, rn_error *err) {
  size_t count = (size_t)s->count + more;
  uint8_t *img = realloc(s->images, count * CIFAR_PIXELS);
  if (img) s->images = img;
  uint8_t *lab = img ? realloc(s->labels, count) : NULL;
  if (lab) s->labels = lab;
  return lab ? 0 : rn_fail(err, "%s: out of memory allocating %zu bytes for %zu images", path, count * (CIFAR_PIXELS + 1),
                           count);
}

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
  size_t records = (size_t)st.st_size / rec;
  if (records > (size_t)(INT_MAX - s->count))
    return fclose(f), rn_fail(err, "%s: %zu records: more than %d images in all", path, records, INT_MAX);
  int count = (int)records, got = 0;
  uint8_t buf[1 + 1 + CIFAR_PIXELS];
  if (cifar_grow(s, records, path, err)) return fclose(f), -1;
  for (; got < count && fread(buf, 1, rec, f) == rec; got++) {
    uint8_t *dst = s->images + (size_t)(s->count + got) * CIFAR_PIXELS;
    for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
      for (int ch = 0; ch < 3; ch++) dst[p * 3 + ch] = buf[label_bytes + ch * 1024 + p];
    s->labels[s->count + got] = buf[label_bytes - 1];
  }
  int failed = ferror(f) ? errno : 0;
  fclose(f);
  if (got < count)
    return rn_fail(err, "%s: read failed at record %d: %s", path, got, failed ? strerror(failed) : "the file shrank");
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
    if (fwrite(rec, 1, sizeof rec, f) != sizeof rec) break;
  }
  int failed = ferror(f) ? errno : 0;
  if (fclose(f) && !failed) failed = errno;
  return failed ? rn_fail(err, "write %s: %s", path, strerror(failed)) : 0;
}

/* ------------------------------------------------------------ synthetic */

/* Each class is a smooth template (a few random sinusoids per channel,
 * tpl: classes * c * WAVES * 4 numbers); images are their template plus
 * noise, so a network can learn them. */
enum { WAVES = 3 };

/* count images of h x w x c (at most 3 * 2^20 bytes each: int indices). */
static int synthetic(rn_dataset *s, int count, int h, int w, int c, int classes, const double *tpl,
                     rn_rng *rng, rn_error *err) {
  int pixels = h * w * c;
  *s = (rn_dataset){count, h, w, c, classes, rn_alloc((size_t)count, (size_t)pixels, "synthetic images", err), NULL};
  if (!s->images || !(s->labels = rn_alloc((size_t)count, 1, "synthetic labels", err))) return -1;
  for (int i = 0; i < count; i++) {
    int k = (int)rn_rng_below(rng, (uint32_t)classes);
    s->labels[i] = (uint8_t)k;
    for (int p = 0; p < pixels; p++) {
      int y = p / (w * c), x = p / c % w, ch = p % c;
      double v = 0.0;
      for (int q = 0; q < WAVES; q++) {
        const double *t = tpl + (((size_t)k * c + ch) * WAVES + q) * 4;
        v += t[0] * cos(6.0 * t[1] * y / h + 6.0 * t[2] * x / w + 6.3 * t[3]);
      }
      double px = 128.0 + 40.0 * v + 30.0 * rn_rng_normal(rng);
      s->images[(size_t)i * pixels + p] = (uint8_t)(px < 0 ? 0 : px > 255 ? 255 : px);
    }
  }
  return 0;
}

/* ------------------------------------------------------------- datasets */

static int load_fashion(rn_data *d, const char *dir, rn_error *err) {
  char a[RN_MAX_PATH], b[RN_MAX_PATH];
  const char *parts[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                             {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
  rn_dataset *sets[2] = {&d->train, &d->test};
  for (int i = 0; i < 2; i++) {
    if (rn_path(a, sizeof a, err, "%s/%s", dir, parts[i][0]) || rn_path(b, sizeof b, err, "%s/%s", dir, parts[i][1]))
      return -1;
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

/* dir/sub when it holds `probe`, else dir. */
static int cifar_dir(char *out, size_t size, const char *dir, const char *sub, const char *probe, rn_error *err) {
  struct stat st;
  if (rn_path(out, size, err, "%s/%s/%s", dir, sub, probe)) return -1;
  if (stat(out, &st) == 0) return rn_path(out, size, err, "%s/%s", dir, sub);
  return rn_path(out, size, err, "%s", dir);
}

/* CIFAR-10: data_batch_1..5.bin and test_batch.bin; CIFAR-100: train.bin
 * and test.bin (names[0..ntrain) training files, names[5] the test file). */
static int load_cifar_dir(rn_data *d, const char *dir, int hundred, rn_error *err) {
  char base[RN_MAX_PATH], names[6][RN_MAX_PATH];
  const char *files[6];
  int ntrain = hundred ? 1 : 5, lb = hundred ? 2 : 1, classes = hundred ? 100 : 10;
  if (cifar_dir(base, sizeof base, dir, hundred ? "cifar-100-binary" : "cifar-10-batches-bin",
                hundred ? "train.bin" : "data_batch_1.bin", err))
    return -1;
  for (int i = 0; i < 6; i++) {
    int rc = i == 5    ? rn_path(names[i], sizeof names[i], err, "%s/%s", base, hundred ? "test.bin" : "test_batch.bin")
             : hundred ? rn_path(names[i], sizeof names[i], err, "%s/train.bin", base)
                       : rn_path(names[i], sizeof names[i], err, "%s/data_batch_%d.bin", base, i + 1);
    if (rc) return -1;
    files[i] = names[i];
  }
  if (rn_load_cifar(&d->train, files, ntrain, lb, classes, err)) return -1;
  return rn_load_cifar(&d->test, files + 5, 1, lb, classes, err);
}

/* A decimal number of `text` up to the separator sep, which it steps over. */
static int spec_number(const char **text, char sep, long *out) {
  char *end;
  if (!isdigit((unsigned char)**text)) return -1;
  errno = 0;
  *out = strtol(*text, &end, 10);
  if (errno || *end != sep) return -1;
  *text = sep ? end + 1 : end;
  return 0;
}

/* "HxWxC[:CLASSES]": H and W in [2, RN_MAX_SIDE], C in [1, 3], CLASSES in
 * [2, RN_MAX_CLASSES] (default 10). */
static int synthetic_spec(const char *arg, int v[4], rn_error *err) {
  long h, w, c, classes = 10;
  const char *p = arg;
  int ok = !spec_number(&p, 'x', &h) && !spec_number(&p, 'x', &w) &&
           (!spec_number(&p, '\0', &c) || (!spec_number(&p, ':', &c) && !spec_number(&p, '\0', &classes)));
  if (ok && (h > RN_MAX_SIDE || w > RN_MAX_SIDE))
    return rn_fail(err, "synthetic:%s: images of %ldx%ld are too large: expected H and W in [2, %d]", arg, h, w,
                   RN_MAX_SIDE);
  if (!ok || h < 2 || w < 2 || c < 1 || c > 3 || classes < 2 || classes > RN_MAX_CLASSES)
    return rn_fail(err, "synthetic:%s: expected synthetic:HxWxC[:CLASSES], H and W in [2, %d], C in [1, 3], "
                        "CLASSES in [2, %d]", arg, RN_MAX_SIDE, RN_MAX_CLASSES);
  v[0] = (int)h, v[1] = (int)w, v[2] = (int)c, v[3] = (int)classes;
  return 0;
}

static int load_synthetic(rn_data *d, const char *arg, rn_error *err) {
  int v[4] = {0};
  if (synthetic_spec(arg, v, err)) return -1;
  rn_rng rng;
  rn_rng_seed(&rng, 20221);
  size_t ntpl = (size_t)v[3] * v[2] * WAVES * 4;
  double *tpl = rn_alloc(ntpl, sizeof *tpl, "the synthetic class templates", err);
  if (!tpl) return -1;
  for (size_t i = 0; i < ntpl; i++) tpl[i] = rn_rng_uniform(&rng);
  int rc = synthetic(&d->train, 2048, v[0], v[1], v[2], v[3], tpl, &rng, err) ||
           synthetic(&d->test, 512, v[0], v[1], v[2], v[3], tpl, &rng, err);
  free(tpl);
  return rc ? -1 : 0;
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
  p->n = p->count = n;
  p->first = 0;
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
  rn_render r = {s->images, p->idx, p->dy, p->dx, p->flip, p->n, p->first, s->h, s->w, s->c, p->mix, p->lam,
                 {d->mean[0], d->mean[1], d->mean[2]}, {d->std[0], d->std[1], d->std[2]}};
  size_t count = (size_t)p->count * s->h * s->w * s->c;
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
