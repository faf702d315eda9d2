/* The ResNet-18 trainer's core: whole-network gradients against finite
 * differences (every mode, the DiffStride strides included), a run whose
 * loss must fall on synthetic data written in the CIFAR-10 format, the
 * checkpoint round trip, every checkpoint field range-checked behind its
 * CRC, the loaders' errors and bounds, and write errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "backend.h"
#include "report.h"
#include "suites.h"

/* ------------------------------------------------------------- helpers */

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/rn_test_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name) {
  static char path[2][512];
  static int which;
  which ^= 1;
  snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
  return path[which];
}

/* A tiny network: widths 4, 4, 8, 16, 32 on 16x16x2 inputs, 3 classes. */
static rn_config tiny(rn_mode mode) {
  rn_config c = {mode, 0.0625f, {1, 1, 2, 2, 2}, 4.0f, 16, 16, 2, 3};
  if (mode == RN_DIFFSTRIDE) {
    /* away from the raise-to-h/(h-R) kink (16/12) so the loss is smooth in s */
    const float s[RN_STAGES] = {1.7f, 1.0f, 2.3f, 2.2f, 2.6f};
    memcpy(c.strides, s, sizeof s);
  }
  return c;
}

static rn_trainer *new_trainer(const rn_config *cfg, uint64_t seed, int batch) {
  rn_trainer *t = calloc(1, sizeof *t);
  rn_error err = {{0}};
  ck_assert_msg(rn_trainer_init(t, cfg, &rn_cpu_backend, 2, seed, batch, &err) == 0, "%s", err.msg);
  return t;
}

static void free_trainer(rn_trainer *t) {
  rn_trainer_free(t);
  free(t);
}

/* ----------------------------------------------------------- gradients */

/* A random batch of n in t: normal images, smoothed one-hot targets. */
static void random_batch(rn_trainer *t, int n, rn_rng *rng) {
  const rn_config *c = &t->model.cfg;
  for (size_t i = 0; i < (size_t)n * c->in_h * c->in_w * c->in_c; i++)
    t->x[i] = (float)rn_rng_normal(rng);
  for (int i = 0; i < n; i++) {
    t->labels[i] = (int)rn_rng_below(rng, (uint32_t)c->classes);
    for (int k = 0; k < c->classes; k++)
      t->targets[i * c->classes + k] = (k == t->labels[i] ? 0.8f : 0.0f) + 0.2f / c->classes;
  }
}

/* L = cross-entropy + lambda J(S) of the current weights on t's batch. */
static double batch_loss(rn_trainer *t, int n) {
  rn_error err = {{0}};
  ck_assert_msg(rn_forward(&t->model, t->x, n, 1, &err) == 0, "%s", err.msg);
  return rn_loss(&t->model, t->targets, t->labels, n, n, 0, NULL) +
         rn_regularizer(&t->model, t->lambda, 0);
}

/* dL/dweights into m->grads and dL/dstrides into the pools. */
static void batch_gradient(rn_trainer *t, int n) {
  rn_error err = {{0}};
  ck_assert_msg(rn_forward(&t->model, t->x, n, 1, &err) == 0, "%s", err.msg);
  rn_loss(&t->model, t->targets, t->labels, n, n, 1, NULL);
  ck_assert_msg(rn_backward(&t->model, &err) == 0, "%s", err.msg);
  rn_regularizer(&t->model, t->lambda, 1);
}

/* Central difference of L along unit directions v of the weights against
 * g . v: v = g/|g| (where a wrong gradient shows most), then two mixes of
 * g/|g| with a random unit vector (components across g). Directions rich in
 * g keep the check above the float32 noise of a random direction and the
 * error of the few ReLU kinks a step crosses. */
static void check_weight_directions(rn_trainer *t, int n, rn_rng *rng) {
  rn_model *m = &t->model;
  size_t count = m->nparams;
  float *theta = malloc(count * sizeof *theta), *v = malloc(count * sizeof *v);
  memcpy(theta, m->params, count * sizeof *theta);
  double gnorm = 0.0;
  for (size_t i = 0; i < count; i++) gnorm += (double)m->grads[i] * m->grads[i];
  gnorm = sqrt(gnorm);
  ck_assert(gnorm > 0.0);
  for (int trial = 0; trial < 3; trial++) {
    double norm = 0.0, analytic = 0.0, eps = 2e-3, loss[2];
    for (size_t i = 0; i < count; i++) {
      v[i] = (float)(m->grads[i] / gnorm + (trial ? rn_rng_normal(rng) / sqrt((double)count) : 0.0));
      norm += (double)v[i] * v[i];
    }
    for (size_t i = 0; i < count; i++) v[i] = (float)(v[i] / sqrt(norm)), analytic += (double)m->grads[i] * v[i];
    for (int side = 0; side < 2; side++) {
      for (size_t i = 0; i < count; i++) m->params[i] = theta[i] + (float)((side ? -eps : eps) * v[i]);
      loss[side] = batch_loss(t, n);
    }
    memcpy(m->params, theta, count * sizeof *theta);
    double fd = (loss[0] - loss[1]) / (2 * eps);
    ck_assert_msg(fabs(fd - analytic) <= 0.02 * fabs(analytic),
                  "%s direction %d: finite difference %.6g, backprop %.6g",
                  rn_mode_name(m->cfg.mode), trial, fd, analytic);
  }
  free(theta);
  free(v);
}

/* Every learned stride against its central difference. */
static void check_strides(rn_trainer *t, int n) {
  rn_model *m = &t->model;
  for (int p = 0; p < m->npools; p++)
    for (int d = 0; d < 2; d++) {
      double analytic = m->pools[p].grad[d], eps = 1e-3, loss[2];
      float s = m->pools[p].stride[d];
      for (int side = 0; side < 2; side++) {
        m->pools[p].stride[d] = s + (float)(side ? -eps : eps);
        loss[side] = batch_loss(t, n);
      }
      m->pools[p].stride[d] = s;
      double fd = (loss[0] - loss[1]) / (2 * eps);
      ck_assert_msg(fabs(fd - analytic) <= 0.05 * fabs(analytic) + 2e-4,
                    "pooling layer %d stride %d: finite difference %.6g, backprop %.6g", p, d, fd,
                    analytic);
    }
}

static void check_mode(rn_mode mode) {
  rn_config cfg = tiny(mode);
  enum { N = 4 };
  rn_trainer *t = new_trainer(&cfg, 7, N);
  rn_rng rng;
  rn_rng_seed(&rng, 11);
  random_batch(t, N, &rng);
  t->lambda = mode == RN_DIFFSTRIDE ? 0.05f : 0.0f;
  batch_gradient(t, N);
  check_weight_directions(t, N, &rng);
  if (mode == RN_DIFFSTRIDE) {
    ck_assert_int_eq(t->model.npools, 4);
    check_strides(t, N);
  }
  free_trainer(t);
}

START_TEST(gradients_strided) { check_mode(RN_STRIDED); }
END_TEST

START_TEST(gradients_spectral) { check_mode(RN_SPECTRAL); }
END_TEST

START_TEST(gradients_diffstride) { check_mode(RN_DIFFSTRIDE); }
END_TEST

/* The model's shapes: DiffStride after the stem and in blocks 2-4, sizes
 * from the library; strided convolutions halve; spectral pooling as the spec. */
START_TEST(shapes_follow_the_strides) {
  rn_config cfg = {RN_DIFFSTRIDE, 0.0625f, {1, 1, 2, 2, 2}, 4.0f, 28, 28, 1, 10};
  rn_trainer *t = new_trainer(&cfg, 1, 2);
  const int expect[4] = {28, 22, 20, 18};
  ck_assert_int_eq(t->model.npools, 4);
  for (int p = 0; p < 4; p++) ck_assert_int_eq(t->model.pools[p].out_h, expect[p]);
  free_trainer(t);
  cfg.mode = RN_SPECTRAL;
  t = new_trainer(&cfg, 1, 2);
  ck_assert_int_eq(t->model.npools, 3);
  ck_assert_int_eq(t->model.pools[1].out_h, 6);
  ck_assert_int_eq(t->model.pools[1].out_w, 7);
  free_trainer(t);
}
END_TEST

/* ------------------------------------------------------------ training */

/* A synthetic 4-class set written as CIFAR-10 binary files (5 training
 * batches and a test batch) in tmpdir, loaded back by the cifar10 loader. */
static void cifar_fixture(rn_data *d) {
  rn_data src;
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(&src, "synthetic:32x32x3:4", &err) == 0, "%s", err.msg);
  rn_dataset part = src.train;
  part.count = 80;
  for (int b = 0; b < 5; b++, part.images += (size_t)80 * 3072, part.labels += 80) {
    char name[32];
    snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
    ck_assert_msg(rn_write_cifar(&part, tmp_path(name), &err) == 0, "%s", err.msg);
  }
  rn_dataset test = src.test;
  test.count = 100;
  ck_assert_msg(rn_write_cifar(&test, tmp_path("test_batch.bin"), &err) == 0, "%s", err.msg);
  char spec[300];
  snprintf(spec, sizeof spec, "cifar10:%s", tmpdir);
  ck_assert_msg(rn_data_load(d, spec, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(d->train.count, 400);
  ck_assert_int_eq(d->test.count, 100);
  ck_assert_mem_eq(d->train.images, src.train.images, (size_t)400 * 3072);
  ck_assert_mem_eq(d->train.labels, src.train.labels, 400);
  rn_data_free(&src);
}

START_TEST(loss_falls_on_cifar_format_data) {
  make_tmpdir();
  rn_data d;
  cifar_fixture(&d);
  rn_config cfg = {RN_DIFFSTRIDE, 0.0625f, {1, 1, 2, 2, 2}, 4.0f, 32, 32, 3, 10};
  rn_trainer *t = new_trainer(&cfg, 3, 32);
  rn_error err = {{0}};
  ck_assert_int_eq(rn_schedule_parse(&t->schedule, "0.05", &err), 0);
  t->aug = (rn_augment){2, 1, 0.0f, 0.0f};
  float s0 = t->model.pools[2].stride[0];
  double first = 0.0, last = 0.0;
  for (int epoch = 0; epoch < 4; epoch++) {
    rn_epoch_stats s;
    ck_assert_msg(rn_train_epoch(t, &d, NULL, NULL, &s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s.images, 400);
    if (epoch == 0) first = s.loss;
    last = s.loss;
  }
  double acc;
  ck_assert_int_eq(rn_evaluate(t, &d, &d.test, &acc, NULL, &err), 0);
  ck_assert_msg(last < 0.6 * first, "loss %.4f -> %.4f", first, last);
  ck_assert_msg(acc > 0.5, "test accuracy %.3f on 4 classes", acc);
  ck_assert_float_ne(t->model.pools[2].stride[0], s0);
  free_trainer(t);
  rn_data_free(&d);
  remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------- checkpoints */

/* Trains one epoch on d and returns the epoch's loss. */
static double one_epoch(rn_trainer *t, const rn_data *d) {
  rn_epoch_stats s;
  rn_error err = {{0}};
  ck_assert_msg(rn_train_epoch(t, d, NULL, NULL, &s, &err) == 0, "%s", err.msg);
  return s.loss;
}

static void load_small(rn_data *d) {
  rn_error err = {{0}};
  ck_assert_msg(rn_data_load(d, "synthetic:16x16x2:3", &err) == 0, "%s", err.msg);
  rn_dataset_truncate(&d->train, 48);
}

START_TEST(checkpoint_resumes_identically) {
  make_tmpdir();
  rn_data d;
  load_small(&d);
  rn_config cfg = tiny(RN_DIFFSTRIDE);
  rn_error err = {{0}};
  rn_trainer *a = new_trainer(&cfg, 5, 16);
  a->aug = (rn_augment){1, 1, 0.2f, 0.1f};
  one_epoch(a, &d);
  ck_assert_msg(rn_checkpoint_save(a, tmp_path("ck.bin"), &err) == 0, "%s", err.msg);
  ck_assert_int_ne(access(tmp_path("ck.bin.tmp"), F_OK), 0);
  double expect = one_epoch(a, &d);
  rn_config read;
  ck_assert_int_eq(rn_checkpoint_config(tmp_path("ck.bin"), &read, &err), 0);
  ck_assert_mem_eq(&read, &cfg, sizeof cfg);
  rn_trainer *b = new_trainer(&cfg, 99, 16);
  b->aug = a->aug;
  ck_assert_msg(rn_checkpoint_load(b, tmp_path("ck.bin"), &err) == 0, "%s", err.msg);
  ck_assert_int_eq(b->epoch, 1);
  ck_assert_int_eq(b->step, 3);
  double got = one_epoch(b, &d);
  ck_assert_msg(got == expect, "loss after resuming %.9g, uninterrupted %.9g", got, expect);
  ck_assert_int_eq(a->step, b->step);
  ck_assert_mem_eq(a->model.params, b->model.params, a->model.nparams * sizeof(float));
  ck_assert_mem_eq(a->model.mom, b->model.mom, a->model.nparams * sizeof(float));
  ck_assert_mem_eq(a->model.state, b->model.state, a->model.nstate * sizeof(float));
  for (int p = 0; p < a->model.npools; p++)
    ck_assert_mem_eq(a->model.pools[p].stride, b->model.pools[p].stride, sizeof(float[2]));
  free_trainer(a);
  free_trainer(b);
  rn_data_free(&d);
  remove_tmpdir();
}
END_TEST

/* The same seed gives the same run, bit for bit; another seed does not. */
START_TEST(same_seed_same_run) {
  rn_data d;
  load_small(&d);
  rn_config cfg = tiny(RN_DIFFSTRIDE);
  rn_trainer *a = new_trainer(&cfg, 21, 16), *b = new_trainer(&cfg, 21, 16), *c = new_trainer(&cfg, 22, 16);
  rn_augment aug = {2, 1, 0.3f, 0.1f};
  a->aug = b->aug = c->aug = aug;
  double la = one_epoch(a, &d), lb = one_epoch(b, &d), lc = one_epoch(c, &d);
  ck_assert_msg(la == lb, "same seed: losses %.9g and %.9g", la, lb);
  ck_assert_mem_eq(a->model.params, b->model.params, a->model.nparams * sizeof(float));
  ck_assert_msg(la != lc, "another seed gave the same loss %.9g", lc);
  free_trainer(a);
  free_trainer(b);
  free_trainer(c);
  rn_data_free(&d);
}
END_TEST

/* Cuts `path` to `keep` bytes. */
static void truncate_file(const char *path, long keep) {
  ck_assert_int_eq(truncate(path, keep), 0);
}

START_TEST(checkpoint_errors) {
  make_tmpdir();
  rn_config cfg = tiny(RN_SPECTRAL), other = tiny(RN_STRIDED);
  rn_error err = {{0}};
  rn_trainer *a = new_trainer(&cfg, 5, 4);
  ck_assert_int_eq(rn_checkpoint_load(a, tmp_path("missing.bin"), &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "cannot open"));
  ck_assert_int_eq(rn_checkpoint_save(a, tmp_path("ck.bin"), &err), 0);
  rn_trainer *b = new_trainer(&other, 5, 4);
  ck_assert_int_eq(rn_checkpoint_load(b, tmp_path("ck.bin"), &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "another network"));
  truncate_file(tmp_path("ck.bin"), 4000);
  ck_assert_int_eq(rn_checkpoint_load(a, tmp_path("ck.bin"), &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "truncated or corrupt"));
  FILE *f = fopen(tmp_path("junk.bin"), "wb");
  fputs("not a checkpoint at all", f);
  fclose(f);
  ck_assert_int_eq(rn_checkpoint_load(a, tmp_path("junk.bin"), &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "not a version-1 trainer checkpoint"));
  ck_assert_int_eq(rn_checkpoint_save(a, "/nonexistent-dir/ck.bin", &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "cannot create"));
  free_trainer(a);
  free_trainer(b);
  remove_tmpdir();
}
END_TEST

/* Byte offsets of fields in a version-1 checkpoint (checkpoint.c): magic,
 * version, i32 mode at 12, f32 strides at 40, i32 epoch at 80, u64 rng at
 * 92, f32 params from 124; the pools' strides end 4 bytes before the CRC. */
enum { AT_MODE = 12, AT_STRIDES = 40, AT_EPOCH = 80, AT_RNG = 92, AT_PARAMS = 124 };

/* Writes n bytes at offset (from the end when offset < 0) of the file and,
 * when fix_crc, a CRC that matches again. */
static void patch(const char *path, long offset, const void *bytes, size_t n, int fix_crc) {
  FILE *f = fopen(path, "r+b");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  long size = ftell(f);
  unsigned char *all = malloc((size_t)size);
  rewind(f);
  ck_assert_int_eq(fread(all, 1, (size_t)size, f), size);
  memcpy(all + (offset < 0 ? size + offset : offset), bytes, n);
  uint32_t crc = (uint32_t)crc32(0, all, (uInt)(size - 4));
  if (fix_crc) memcpy(all + size - 4, &crc, 4);
  rewind(f);
  ck_assert_int_eq(fwrite(all, 1, (size_t)size, f), size);
  fclose(f);
  free(all);
}

/* Saves t's checkpoint, patches it and expects both readers to refuse it
 * with `needle` in the message (the config reader only for the config). */
static void expect_refused(rn_trainer *t, long offset, const void *bytes, size_t n, int fix_crc,
                           int in_config, const char *needle) {
  rn_error err = {{0}};
  rn_config cfg;
  ck_assert_int_eq(rn_checkpoint_save(t, tmp_path("ck.bin"), &err), 0);
  patch(tmp_path("ck.bin"), offset, bytes, n, fix_crc);
  if (in_config) {
    ck_assert_int_eq(rn_checkpoint_config(tmp_path("ck.bin"), &cfg, &err), -1);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "config: '%s' lacks '%s'", err.msg, needle);
  }
  ck_assert_int_eq(rn_checkpoint_load(t, tmp_path("ck.bin"), &err), -1);
  ck_assert_msg(strstr(err.msg, needle) != NULL, "load: '%s' lacks '%s'", err.msg, needle);
}

/* Fields out of range behind a valid CRC are refused by name, before the
 * trainer uses them; without a valid CRC nothing is read at all. */
START_TEST(checkpoint_fields_checked) {
  make_tmpdir();
  rn_config cfg = tiny(RN_STRIDED), spec = tiny(RN_SPECTRAL);
  rn_trainer *a = new_trainer(&cfg, 5, 4), *b = new_trainer(&spec, 5, 4);
  const int32_t mode = 7, epoch = -3;
  const float huge = 2147483648.0f, nan = NAN, half = 0.5f;
  const uint64_t zeros[4] = {0};
  expect_refused(a, AT_MODE, &mode, 4, 0, 1, "checksum");
  expect_refused(a, AT_MODE, &mode, 4, 1, 1, "mode 7");
  expect_refused(a, AT_STRIDES + 4, &huge, 4, 1, 1, "stride 1 = 2.14748e+09");
  expect_refused(a, AT_EPOCH, &epoch, 4, 1, 0, "epoch -3");
  expect_refused(a, AT_RNG, zeros, sizeof zeros, 1, 0, "RNG state is all zero");
  expect_refused(a, AT_PARAMS + 8, &nan, 4, 1, 0, "weights[2] = nan is not finite");
  expect_refused(b, -4 - 16 * b->model.npools, &half, 4, 1, 0, "pooling layer 0 stride 0.5");
  free_trainer(a);
  free_trainer(b);
  remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------- loaders */

/* An IDX file (gzip'ed) of `count` items of `dims` bytes after a header
 * with `magic` and the given sizes; bytes are i % 7 (labels) or i. */
static void write_idx(const char *path, uint32_t magic, const uint32_t *sizes, int nsizes,
                      size_t bytes, int extra) {
  gzFile f = gzopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  uint32_t words[4] = {magic};
  for (int i = 0; i < nsizes; i++) words[i + 1] = sizes[i];
  for (int i = 0; i <= nsizes; i++) {
    uint8_t be[4] = {(uint8_t)(words[i] >> 24), (uint8_t)(words[i] >> 16), (uint8_t)(words[i] >> 8), (uint8_t)words[i]};
    gzwrite(f, be, 4);
  }
  for (size_t i = 0; i < bytes + (size_t)extra; i++) {
    uint8_t b = (uint8_t)(nsizes == 1 ? i % 7 : i);
    gzwrite(f, &b, 1);
  }
  gzclose(f);
}

/* Loads the pair and expects failure with `needle` in the message. */
static void expect_idx_error(const char *images, const char *labels, const char *needle) {
  rn_dataset s;
  rn_error err = {{0}};
  ck_assert_int_eq(rn_load_idx_pair(&s, images, labels, 7, &err), -1);
  ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(idx_loader) {
  make_tmpdir();
  const uint32_t img[3] = {5, 4, 3}, lab[1] = {5}, lab6[1] = {6};
  write_idx(tmp_path("img"), 0x803, img, 3, 60, 0);
  write_idx(tmp_path("lab"), 0x801, lab, 1, 5, 0);
  rn_dataset s;
  rn_error err = {{0}};
  ck_assert_msg(rn_load_idx_pair(&s, tmp_path("img"), tmp_path("lab"), 7, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(s.count, 5);
  ck_assert_int_eq(s.h, 4);
  ck_assert_int_eq(s.w, 3);
  ck_assert_int_eq(s.images[59], 59);
  ck_assert_int_eq(s.labels[4], 4);
  free(s.images);
  free(s.labels);
  write_idx(tmp_path("bad_magic"), 0x802, img, 3, 60, 0);
  expect_idx_error(tmp_path("bad_magic"), tmp_path("lab"), "bad magic");
  write_idx(tmp_path("short"), 0x803, img, 3, 59, 0);
  expect_idx_error(tmp_path("short"), tmp_path("lab"), "truncated");
  write_idx(tmp_path("long"), 0x803, img, 3, 60, 1);
  expect_idx_error(tmp_path("long"), tmp_path("lab"), "trailing bytes");
  write_idx(tmp_path("lab6"), 0x801, lab6, 1, 6, 0);
  expect_idx_error(tmp_path("img"), tmp_path("lab6"), "6 labels for the 5 images");
  expect_idx_error(tmp_path("img"), tmp_path("nothing"), "cannot open");
  rn_dataset t;
  ck_assert_int_eq(rn_load_idx_pair(&t, tmp_path("img"), tmp_path("lab"), 4, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "label 4 of record 4 is out of range [0, 4)"));
  remove_tmpdir();
}
END_TEST

/* Caps the address space 256 MiB above what the process uses now
 * (/proc/self/statm) and returns the limit to restore; a no-op under ASan,
 * whose shadow memory does not fit under such a cap. */
static struct rlimit cap_address_space(void) {
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
#ifndef __SANITIZE_ADDRESS__
  unsigned long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
  fclose(f);
  struct rlimit capped = old;
  capped.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &capped), 0);
#endif
  return old;
}

/* Header sizes are bounded before they are multiplied, and a header that
 * claims more than the file holds costs no more memory than the file: with
 * the address space capped 256 MiB above its use, a 784 MB claim over 100
 * bytes is "truncated", not an allocation (under ASan only the message is
 * checked). */
START_TEST(idx_sizes_bounded) {
  make_tmpdir();
  const uint32_t huge_count[3] = {0x80000000u, 2, 2}, wide[3] = {5, 2000, 3}, claim[3] = {1000000, 28, 28};
  write_idx(tmp_path("count"), 0x803, huge_count, 3, 8, 0);
  expect_idx_error(tmp_path("count"), tmp_path("count"), "header size 0 is 2147483648: expected 1 to 2147483647");
  write_idx(tmp_path("wide"), 0x803, wide, 3, 8, 0);
  expect_idx_error(tmp_path("wide"), tmp_path("wide"), "header size 1 is 2000: expected 1 to 1024");
  write_idx(tmp_path("claim"), 0x803, claim, 3, 100, 0);
  struct rlimit old = cap_address_space();
  expect_idx_error(tmp_path("claim"), tmp_path("claim"), "truncated: 100 bytes where 784000000 were expected");
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
  remove_tmpdir();
}
END_TEST

/* Records of a label byte then plane ch, pixel p = (100 ch + p) & 0xff. */
static void write_bytes(const char *path, size_t count, uint8_t label) {
  FILE *f = fopen(path, "wb");
  for (size_t i = 0; i < count; i++) {
    size_t k = i % 3073;
    fputc(k == 0 ? label : (int)((100 * ((k - 1) / 1024) + (k - 1) % 1024) & 0xff), f);
  }
  fclose(f);
}

START_TEST(cifar_loader) {
  make_tmpdir();
  rn_dataset s;
  rn_error err = {{0}};
  const char *file[1] = {tmp_path("a.bin")};
  write_bytes(file[0], 2 * 3073, 9);
  ck_assert_msg(rn_load_cifar(&s, file, 1, 1, 10, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(s.count, 2);
  ck_assert_int_eq(s.labels[1], 9);
  ck_assert_int_eq(s.images[5 * 3 + 2], 205); /* HWC: pixel 5, blue */
  ck_assert_int_eq(s.images[300 * 3 + 1], (100 + 300) & 0xff);
  free(s.images);
  free(s.labels);
  write_bytes(file[0], 2 * 3073 - 5, 1);
  ck_assert_int_eq(rn_load_cifar(&s, file, 1, 1, 10, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "not a whole number of 3073-byte records"));
  write_bytes(file[0], 3073, 10);
  ck_assert_int_eq(rn_load_cifar(&s, file, 1, 1, 10, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "out of range [0, 10)"));
  const char *missing[1] = {tmp_path("none.bin")};
  ck_assert_int_eq(rn_load_cifar(&s, missing, 1, 1, 10, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "cannot open"));
  remove_tmpdir();
}
END_TEST

START_TEST(data_specs) {
  rn_data d;
  rn_error err = {{0}};
  const char *bad[] = {"mnist", "cifar10", "synthetic:8x8", "synthetic:8x8x4", "synthetic:1x8x3",
                       "synthetic:8x8x3:", "synthetic:8x8x3:257", "synthetic:-8x8x3", "synthetic:8x8x3x",
                       "synthetic:99999999999999999999x8x3"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_int_eq(rn_data_load(&d, bad[i], &err), -1);
    ck_assert_msg(strstr(err.msg, "expected") != NULL, "%s: %s", bad[i], err.msg);
  }
  ck_assert_int_eq(rn_data_load(&d, "synthetic:3000x3000x3", &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "images of 3000x3000 are too large"));
  ck_assert_int_eq(rn_data_load(&d, "fashion-mnist:/nonexistent", &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/train-images-idx3-ubyte.gz: cannot open"));
}
END_TEST

/* --------------------------------------------------- batches, schedule */

START_TEST(batches_normalize_smooth_and_mix) {
  rn_data d;
  rn_error err = {{0}};
  ck_assert_int_eq(rn_data_load(&d, "synthetic:6x5x2:4", &err), 0);
  enum { N = 4, PIX = 6 * 5 * 2 };
  int idx[N] = {3, 0, 7, 1}, labels[N];
  float x[N * PIX], t[N * 4];
  rn_make_batch(&d, &d.train, idx, N, NULL, NULL, x, t, labels);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(labels[i], d.train.labels[idx[i]]);
    ck_assert_float_eq(t[i * 4 + labels[i]], 1.0f);
    for (int p = 0; p < PIX; p++) {
      float want = (d.train.images[idx[i] * PIX + p] / 255.0f - d.mean[p % 2]) / d.std[p % 2];
      ck_assert_float_eq_tol(x[i * PIX + p], want, 1e-5);
    }
  }
  rn_augment aug = {1, 1, 0.4f, 0.2f};
  rn_rng rng;
  rn_rng_seed(&rng, 2);
  rn_make_batch(&d, &d.train, idx, N, &aug, &rng, x, t, labels);
  for (int i = 0; i < N; i++) {
    float sum = 0.0f;
    for (int k = 0; k < 4; k++) sum += t[i * 4 + k], ck_assert(t[i * 4 + k] >= 0.05f - 1e-6f);
    ck_assert_float_eq_tol(sum, 1.0f, 1e-5);
  }
  rn_data_free(&d);
}
END_TEST

/* The pixel a plan asks for, written out independently: image idx[i]
 * shifted by (dy, dx) with zeros outside, mirrored, normalized. */
static float planned_pixel(const rn_data *d, const rn_batch_plan *p, int i, int y, int x, int ch) {
  const rn_dataset *s = &d->train;
  int sx = p->flip[i] ? s->w - 1 - x : x;
  sx += p->dx[i];
  int sy = y + p->dy[i];
  if (sy < 0 || sy >= s->h || sx < 0 || sx >= s->w) return 0.0f;
  int v = s->images[(((size_t)p->idx[i] * s->h + sy) * s->w + sx) * s->c + ch];
  return (v / 255.0f - d->mean[ch]) / d->std[ch];
}

/* Crops, flips and mixup as planned; the CPU backend's rn_load_batch puts
 * the same batch in the model's input as rn_make_batch makes on the host. */
START_TEST(planned_batches_render_the_plan) {
  rn_data d;
  rn_error err = {{0}};
  ck_assert_int_eq(rn_data_load(&d, "synthetic:16x16x2:3", &err), 0);
  enum { N = 5, PIX = 16 * 16 * 2 };
  int idx[N] = {3, 0, 7, 1, 9}, labels[N], flips = 0, shifts = 0;
  float x[N * PIX], t[N * 3];
  rn_augment aug = {2, 1, 0.4f, 0.1f};
  rn_rng rng;
  rn_rng_seed(&rng, 4);
  rn_batch_plan p;
  ck_assert_int_eq(rn_batch_plan_init(&p, N), 0);
  rn_plan_batch(&d.train, idx, N, &aug, &rng, &p, t, labels);
  rn_render_batch(&d, &d.train, &p, x);
  ck_assert(p.mix && p.lam > 0.0f && p.lam < 1.0f);
  for (int i = 0; i < N; i++) {
    flips += p.flip[i], shifts += p.dy[i] != 0 || p.dx[i] != 0;
    for (int e = 0; e < PIX; e++) {
      int ch = e % 2, xx = e / 2 % 16, y = e / 32;
      float want = p.lam * planned_pixel(&d, &p, i, y, xx, ch) + (1 - p.lam) * planned_pixel(&d, &p, N - 1 - i, y, xx, ch);
      ck_assert_msg(fabsf(x[i * PIX + e] - want) <= 1e-5f * (1 + fabsf(want)), "image %d element %d", i, e);
    }
  }
  ck_assert(flips > 0 && flips < N && shifts > 0);
  rn_config cfg = tiny(RN_STRIDED);
  rn_trainer *tr = new_trainer(&cfg, 1, N);
  tr->aug = aug;
  rn_rng_seed(&tr->rng, 4);
  ck_assert_msg(rn_load_batch(tr, &d, &d.train, idx, N, 1, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(tr->loaded, N);
  ck_assert_mem_eq(tr->model.tensors[0].data, x, sizeof x);
  ck_assert_mem_eq(tr->targets, t, sizeof t);
  ck_assert_int_eq(rn_load_batch(tr, &d, &d.train, idx, N + 1, 1, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "holds 5"));
  rn_data other;
  ck_assert_int_eq(rn_data_load(&other, "synthetic:8x8x2:3", &err), 0);
  ck_assert_int_eq(rn_load_batch(tr, &other, &other.train, idx, N, 1, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "8x8x2 images: the network takes 16x16x2"));
  ck_assert_int_eq(tr->loaded, 0);
  rn_data_free(&other);
  free_trainer(tr);
  rn_batch_plan_free(&p);
  rn_data_free(&d);
}
END_TEST

START_TEST(schedule) {
  rn_schedule s;
  rn_error err = {{0}};
  ck_assert_int_eq(rn_schedule_parse(&s, "0.01,400:0.1,18000:0.01,32000:0.001", &err), 0);
  ck_assert_float_eq(rn_schedule_lr(&s, 0), 0.01f);
  ck_assert_float_eq(rn_schedule_lr(&s, 399), 0.01f);
  ck_assert_float_eq(rn_schedule_lr(&s, 400), 0.1f);
  ck_assert_float_eq(rn_schedule_lr(&s, 20000), 0.01f);
  ck_assert_float_eq(rn_schedule_lr(&s, 1000000), 0.001f);
  const char *bad[] = {"", "x", "0.1,5", "0.1,400:0.2,300:0.1", "0.1,400:", "-1", "inf", "nan", "1e39",
                       "0.1,99999999999999999999:0.2"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_msg(rn_schedule_parse(&s, bad[i], &err) == -1, "'%s' accepted", bad[i]);
}
END_TEST

/* rn_model_create refuses c on `threads` threads with a message holding
 * needle. */
static void expect_config_error(rn_config c, int threads, const char *needle) {
  rn_model m;
  rn_rng rng;
  rn_error err = {{0}};
  rn_rng_seed(&rng, 1);
  ck_assert_int_eq(rn_model_create(&m, &c, &rn_cpu_backend, threads, &rng, &err), -1);
  ck_assert_msg(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
}

START_TEST(config_errors) {
  rn_config c = tiny(RN_STRIDED);
  c.strides[2] = 1.5f;
  expect_config_error(c, 1, "whole strides");
  c = tiny(RN_DIFFSTRIDE);
  c.strides[0] = 0.5f;
  expect_config_error(c, 1, "stride 0 = 0.5");
  c = tiny(RN_DIFFSTRIDE);
  c.in_h = c.in_w = 4; /* DiffStride needs maps larger than R */
  expect_config_error(c, 1, "pooling layer 0 on 4x4");
  c = tiny(RN_SPECTRAL);
  c.width = 0.0f;
  expect_config_error(c, 1, "width multiplier");
  c = tiny(RN_STRIDED); /* checked before the stride becomes an int */
  c.strides[1] = 2147483648.0f;
  expect_config_error(c, 1, "stride 1 = 2.14748e+09: strides must be finite and in [1, 1024]");
  c = tiny(RN_STRIDED);
  c.mode = (rn_mode)7;
  expect_config_error(c, 1, "mode 7");
  c = tiny(RN_STRIDED);
  c.in_c = 4;
  expect_config_error(c, 1, "c in [1, 3]");
  expect_config_error(tiny(RN_STRIDED), 100000, "100000 threads: expected 1 to 1024");
}
END_TEST

/* A row of steps.csv or log.csv that cannot be written stops the run with
 * the system's reason (here a full device). */
START_TEST(write_errors_are_reported) {
  rn_config cfg = tiny(RN_STRIDED);
  rn_trainer *t = new_trainer(&cfg, 1, 2);
  rn_progress p = {RN_PROGRESS_NONE, 10, 0.0, 0.0, t, fopen("/dev/full", "w"), "/dev/full"};
  rn_error err = {{0}};
  ck_assert_ptr_nonnull(p.steps);
  t->step = 10;
  ck_assert_int_eq(rn_progress_bar(&p, 1, 2, 0.5, 1.0, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "write /dev/full: No space left on device"));
  rn_steps_close(&p, &err);
  rn_record r;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(rn_csv_append("/dev/full", &r, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "write /dev/full: No space left on device"));
  free_trainer(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("trainer");
  TCase *grad = tcase_create("gradients"), *train = tcase_create("training"),
        *ckpt = tcase_create("checkpoints"), *data = tcase_create("data"),
        *misc = tcase_create("model");
  tcase_set_timeout(grad, 300);
  tcase_set_timeout(train, 300);
  tcase_set_timeout(ckpt, 300);
  tcase_add_test(grad, gradients_strided);
  tcase_add_test(grad, gradients_spectral);
  tcase_add_test(grad, gradients_diffstride);
  tcase_add_test(train, loss_falls_on_cifar_format_data);
  tcase_add_test(ckpt, checkpoint_resumes_identically);
  tcase_add_test(ckpt, checkpoint_errors);
  tcase_add_test(ckpt, checkpoint_fields_checked);
  tcase_add_test(ckpt, write_errors_are_reported);
  tcase_add_test(ckpt, same_seed_same_run);
  tcase_add_test(data, idx_loader);
  tcase_add_test(data, idx_sizes_bounded);
  tcase_add_test(data, cifar_loader);
  tcase_add_test(data, data_specs);
  tcase_add_test(data, batches_normalize_smooth_and_mix);
  tcase_add_test(data, planned_batches_render_the_plan);
  tcase_add_test(misc, schedule);
  tcase_add_test(misc, config_errors);
  tcase_add_test(misc, shapes_follow_the_strides);
  TCase *cases[] = {grad, train, ckpt, data, misc, ops_tcase(), dist_tcase()};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) suite_add_tcase(s, cases[i]);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
