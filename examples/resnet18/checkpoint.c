/* Checkpoint file, little-endian host floats:
 *   "RN18CKPT", u32 version, the config, u64 nparams, u64 nstate, i32 npools,
 *   i32 epoch, i64 step, u64 rng[4], f32 params[nparams], f32 momentum[nparams],
 *   f32 state[nstate] (batch-norm running mean/var), per pool f32 stride[2],
 *   f32 momentum[2]; then u32 CRC-32 of everything before it.
 * Written to PATH.tmp, flushed to disk, then renamed over PATH, so a crash
 * or a failed write leaves the previous checkpoint intact. Reading checks
 * the magic and version (to name a file that is no checkpoint), verifies
 * the CRC over the whole file, and only then reads the fields, each checked
 * against its range. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "backend.h"

static const char magic[8] = {'R', 'N', '1', '8', 'C', 'K', 'P', 'T'};
enum { VERSION = 1, HEADER_BYTES = sizeof magic + 4 };

/* A file with a running CRC; ok drops to 0 at the first short read/write,
 * error keeps that failure's errno (0 at the end of the file). */
typedef struct stream {
  FILE *f;
  uLong crc;
  int ok, writing, error;
} stream;

static void io(stream *s, void *p, size_t bytes) {
  if (!s->ok) return;
  size_t done = s->writing ? fwrite(p, 1, bytes, s->f) : fread(p, 1, bytes, s->f);
  if (done != bytes) {
    s->ok = 0;
    s->error = ferror(s->f) ? errno : 0;
    return;
  }
  s->crc = crc32(s->crc, p, (uInt)bytes);
}

/* Both directions: the config as i32 mode, in_h, in_w, in_c, classes, then
 * f32 width, smoothness, strides[5]. */
static void io_config(stream *s, rn_config *c) {
  int32_t ints[5] = {(int32_t)c->mode, c->in_h, c->in_w, c->in_c, c->classes};
  float floats[2 + RN_STAGES] = {c->width, c->smoothness};
  memcpy(floats + 2, c->strides, sizeof c->strides);
  io(s, ints, sizeof ints);
  io(s, floats, sizeof floats);
  *c = (rn_config){(rn_mode)ints[0], floats[0], {0}, floats[1], ints[1], ints[2], ints[3], ints[4]};
  memcpy(c->strides, floats + 2, sizeof c->strides);
}

/* ------------------------------------------------------------- writing */

/* A device array through a host copy. */
static void write_array(stream *s, const rn_model *m, const float *dev, size_t count) {
  float *h = malloc(count * sizeof *h + 1);
  if (!h) s->ok = 0, s->error = ENOMEM;
  else if (s->ok && m->be->to_host(h, dev, count)) s->ok = 0, s->error = EIO;
  io(s, h, count * sizeof *h);
  free(h);
}

static void write_body(stream *s, const rn_trainer *t) {
  const rn_model *m = &t->model;
  uint64_t sizes[2] = {m->nparams, m->nstate}, rng[4];
  int32_t counts[2] = {m->npools, t->epoch};
  int64_t step = t->step;
  memcpy(rng, t->rng.s, sizeof rng);
  io(s, sizes, sizeof sizes);
  io(s, counts, sizeof counts);
  io(s, &step, sizeof step);
  io(s, rng, sizeof rng);
  write_array(s, m, m->params, m->nparams);
  write_array(s, m, m->mom, m->nparams);
  write_array(s, m, m->state, m->nstate);
  for (int p = 0; p < m->npools; p++) {
    float v[4] = {m->pools[p].stride[0], m->pools[p].stride[1], m->pools[p].mom[0], m->pools[p].mom[1]};
    io(s, v, sizeof v);
  }
}

int rn_checkpoint_save(const rn_trainer *t, const char *path, rn_error *err) {
  char tmp[RN_MAX_PATH];
  if (rn_path(tmp, sizeof tmp, err, "%s.tmp", path)) return -1;
  stream s = {fopen(tmp, "wb"), crc32(0, NULL, 0), 1, 1, 0};
  if (!s.f) return rn_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
  uint32_t version = VERSION;
  rn_config cfg = t->model.cfg;
  io(&s, (void *)magic, sizeof magic);
  io(&s, &version, sizeof version);
  io_config(&s, &cfg);
  write_body(&s, t);
  uint32_t crc = (uint32_t)s.crc;
  io(&s, &crc, sizeof crc);
  if (s.ok && (fflush(s.f) != 0 || fsync(fileno(s.f)) != 0)) s.ok = 0, s.error = errno;
  if (fclose(s.f) != 0 && s.ok) s.ok = 0, s.error = errno;
  if (!s.ok) {
    remove(tmp);
    return rn_fail(err, "write %s: %s (%s is left as it was)", tmp, strerror(s.error ? s.error : EIO), path);
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return rn_fail(err, "rename %s to %s: %s", tmp, path, strerror(e));
  }
  return 0;
}

/* ------------------------------------------------------------- reading */

static int truncated(const char *path, rn_error *err) {
  return rn_fail(err, "%s: truncated or corrupt (sizes or checksum do not match)", path);
}

/* The CRC-32 of all but the file's last 4 bytes against those bytes; the
 * file is left after the magic and version. */
static int verify_crc(FILE *f, const char *path, rn_error *err) {
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || st.st_size < HEADER_BYTES + 4) return truncated(path, err);
  unsigned char buf[1 << 16];
  uLong crc = crc32(0, NULL, 0);
  off_t left = st.st_size - 4;
  rewind(f);
  while (left > 0) {
    size_t n = left < (off_t)sizeof buf ? (size_t)left : sizeof buf;
    if (fread(buf, 1, n, f) != n)
      return ferror(f) ? rn_fail(err, "%s: read failed: %s", path, strerror(errno)) : truncated(path, err);
    crc = crc32(crc, buf, (uInt)n);
    left -= (off_t)n;
  }
  uint32_t stored;
  if (fread(&stored, sizeof stored, 1, f) != 1 || stored != (uint32_t)crc) return truncated(path, err);
  return fseek(f, HEADER_BYTES, SEEK_SET) ? rn_fail(err, "%s: cannot seek: %s", path, strerror(errno)) : 0;
}

/* Opens path, checks magic, version and CRC, reads and checks the config;
 * the stream is left after the config. */
static int open_checkpoint(stream *s, const char *path, rn_config *cfg, rn_error *err) {
  *s = (stream){fopen(path, "rb"), crc32(0, NULL, 0), 1, 0, 0};
  if (!s->f) return rn_fail(err, "%s: cannot open: %s", path, strerror(errno));
  char m[8];
  uint32_t version = 0;
  io(s, m, sizeof m);
  io(s, &version, sizeof version);
  if (!s->ok || memcmp(m, magic, sizeof m) != 0 || version != VERSION)
    return fclose(s->f), rn_fail(err, "%s: not a version-%d trainer checkpoint", path, VERSION);
  if (verify_crc(s->f, path, err)) return fclose(s->f), -1;
  io_config(s, cfg);
  rn_error why;
  if (!s->ok) return fclose(s->f), truncated(path, err);
  if (rn_config_check(cfg, &why)) return fclose(s->f), rn_fail(err, "%s: bad checkpoint field: %s", path, why.msg);
  return 0;
}

int rn_checkpoint_config(const char *path, rn_config *cfg, rn_error *err) {
  stream s;
  if (open_checkpoint(&s, path, cfg, err)) return -1;
  fclose(s.f);
  return 0;
}

/* Sizes and pool count must be this network's; the epoch and step in range;
 * the RNG state not all zero (xoshiro would give zeros forever). */
static int read_counters(stream *s, rn_trainer *t, const char *path, rn_error *err) {
  const rn_model *m = &t->model;
  uint64_t sizes[2], rng[4];
  int32_t counts[2];
  int64_t step;
  io(s, sizes, sizeof sizes);
  io(s, counts, sizeof counts);
  io(s, &step, sizeof step);
  io(s, rng, sizeof rng);
  if (!s->ok || sizes[0] != m->nparams || sizes[1] != m->nstate || counts[0] != m->npools)
    return truncated(path, err);
  if (counts[1] < 0 || counts[1] > RN_MAX_EPOCHS)
    return rn_fail(err, "%s: bad checkpoint field: epoch %d (expected 0 to %d)", path, counts[1], RN_MAX_EPOCHS);
  if (step < 0) return rn_fail(err, "%s: bad checkpoint field: step %lld (expected >= 0)", path, (long long)step);
  if (!(rng[0] | rng[1] | rng[2] | rng[3])) return rn_fail(err, "%s: bad checkpoint field: the RNG state is all zero", path);
  t->epoch = counts[1];
  t->step = (long)step;
  memcpy(t->rng.s, rng, sizeof rng);
  return 0;
}

/* count floats, each finite, into the device array dev. */
static int read_array(stream *s, const rn_model *m, float *dev, size_t count, const char *what,
                      const char *path, rn_error *err) {
  float *h = rn_alloc(count ? count : 1, sizeof *h, what, err);
  if (!h) return -1;
  io(s, h, count * sizeof *h);
  size_t i = 0;
  while (s->ok && i < count && isfinite(h[i])) i++;
  int rc = !s->ok      ? truncated(path, err)
           : i < count ? rn_fail(err, "%s: bad checkpoint field: %s[%zu] = %g is not finite", path, what, i, (double)h[i])
           : m->be->to_device(dev, h, count) ? rn_fail(err, "%s: copying the %s to the %s device failed", path, what, m->be->name)
                                             : 0;
  free(h);
  return rc;
}

/* Per pool: stride h, w (finite, in [1, RN_MAX_STRIDE]), momentum h, w (finite). */
static int read_pools(stream *s, rn_model *m, const char *path, rn_error *err) {
  for (int p = 0; p < m->npools; p++) {
    float v[4];
    io(s, v, sizeof v);
    if (!s->ok) return truncated(path, err);
    for (int a = 0; a < 4; a++)
      if (!isfinite(v[a]) || (a < 2 && !(v[a] >= 1.0f && v[a] <= RN_MAX_STRIDE)))
        return rn_fail(err, "%s: bad checkpoint field: pooling layer %d %s %g (strides are finite, in [1, %d])", path,
                       p, a < 2 ? "stride" : "stride momentum", (double)v[a], RN_MAX_STRIDE);
    m->pools[p] = (rn_pool){{v[0], v[1]}, {0.0f, 0.0f}, {v[2], v[3]}, m->pools[p].in_h, m->pools[p].in_w,
                            m->pools[p].out_h, m->pools[p].out_w};
  }
  return 0;
}

static int read_body(stream *s, rn_trainer *t, const char *path, rn_error *err) {
  rn_model *m = &t->model;
  if (read_counters(s, t, path, err) || read_array(s, m, m->params, m->nparams, "weights", path, err) ||
      read_array(s, m, m->mom, m->nparams, "momentum", path, err) ||
      read_array(s, m, m->state, m->nstate, "batch-norm statistics", path, err) || read_pools(s, m, path, err))
    return -1;
  uint32_t expect = (uint32_t)s->crc, crc = 0;
  io(s, &crc, sizeof crc); /* again: the file may have changed since it was verified */
  return !s->ok || crc != expect || fgetc(s->f) != EOF ? truncated(path, err) : 0;
}

int rn_checkpoint_load(rn_trainer *t, const char *path, rn_error *err) {
  stream s;
  rn_config cfg;
  if (open_checkpoint(&s, path, &cfg, err)) return -1;
  int rc = memcmp(&cfg, &t->model.cfg, sizeof cfg) != 0
               ? rn_fail(err, "%s: written for another network (mode, width, strides or input)", path)
               : read_body(&s, t, path, err);
  fclose(s.f);
  return rc;
}
