/* Checkpoint file, little-endian host floats:
 *   "RN18CKPT", u32 version, the config, u64 nparams, u64 nstate, i32 npools,
 *   i32 epoch, i64 step, u64 rng[4], f32 params[nparams], f32 momentum[nparams],
 *   f32 state[nstate] (batch-norm running mean/var), per pool f32 stride[2],
 *   f32 momentum[2]; then u32 CRC-32 of everything before it.
 * Written to PATH.tmp, flushed to disk, then renamed over PATH, so a crash
 * leaves the previous checkpoint intact. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "backend.h"

static const char magic[8] = {'R', 'N', '1', '8', 'C', 'K', 'P', 'T'};
enum { VERSION = 1 };

/* A file with a running CRC; ok drops to 0 at the first short read/write. */
typedef struct stream {
  FILE *f;
  uLong crc;
  int ok, writing;
} stream;

static void io(stream *s, void *p, size_t bytes) {
  if (!s->ok) return;
  size_t done = s->writing ? fwrite(p, 1, bytes, s->f) : fread(p, 1, bytes, s->f);
  s->ok = done == bytes;
  if (s->ok) s->crc = crc32(s->crc, p, (uInt)bytes);
}

/* Device arrays through a host copy. */
static void io_device(stream *s, const rn_model *m, float *dev, size_t count) {
  float *h = malloc(count * sizeof *h + 1);
  if (!h) {
    s->ok = 0;
    return;
  }
  if (s->writing && m->be->to_host(h, dev, count)) s->ok = 0;
  io(s, h, count * sizeof *h);
  if (!s->writing && s->ok && m->be->to_device(dev, h, count)) s->ok = 0;
  free(h);
}

static void io_config(stream *s, rn_config *c) {
  int32_t ints[5] = {(int32_t)c->mode, c->in_h, c->in_w, c->in_c, c->classes};
  float floats[2 + RN_STAGES] = {c->width, c->smoothness};
  memcpy(floats + 2, c->strides, sizeof c->strides);
  io(s, ints, sizeof ints);
  io(s, floats, sizeof floats);
  *c = (rn_config){(rn_mode)ints[0], floats[0], {0}, floats[1], ints[1], ints[2], ints[3], ints[4]};
  memcpy(c->strides, floats + 2, sizeof c->strides);
}

/* Everything after the config, in either direction. */
static void io_body(stream *s, rn_trainer *t) {
  rn_model *m = &t->model;
  uint64_t sizes[2] = {m->nparams, m->nstate};
  int32_t counts[2] = {m->npools, t->epoch};
  int64_t step = t->step;
  io(s, sizes, sizeof sizes);
  io(s, counts, sizeof counts);
  if (!s->writing && (sizes[0] != m->nparams || sizes[1] != m->nstate || counts[0] != m->npools))
    s->ok = 0;
  io(s, &step, sizeof step);
  io(s, t->rng.s, sizeof t->rng.s);
  io_device(s, m, m->params, m->nparams);
  io_device(s, m, m->mom, m->nparams);
  io_device(s, m, m->state, m->nstate);
  for (int p = 0; p < m->npools; p++) {
    io(s, m->pools[p].stride, sizeof m->pools[p].stride);
    io(s, m->pools[p].mom, sizeof m->pools[p].mom);
  }
  t->epoch = counts[1];
  t->step = step;
}

int rn_checkpoint_save(const rn_trainer *t, const char *path, rn_error *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  stream s = {fopen(tmp, "wb"), crc32(0, NULL, 0), 1, 1};
  if (!s.f) return rn_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
  uint32_t version = VERSION;
  rn_config cfg = t->model.cfg;
  io(&s, (void *)magic, sizeof magic);
  io(&s, &version, sizeof version);
  io_config(&s, &cfg);
  io_body(&s, (rn_trainer *)t);
  uint32_t crc = (uint32_t)s.crc;
  io(&s, &crc, sizeof crc);
  int ok = s.ok && fflush(s.f) == 0 && fsync(fileno(s.f)) == 0;
  ok = fclose(s.f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return rn_fail(err, "%s: write failed: %s", path, strerror(errno));
  }
  return 0;
}

/* Opens path and reads the header; the stream is left after the config. */
static int open_checkpoint(stream *s, const char *path, rn_config *cfg, rn_error *err) {
  *s = (stream){fopen(path, "rb"), crc32(0, NULL, 0), 1, 0};
  if (!s->f) return rn_fail(err, "%s: cannot open: %s", path, strerror(errno));
  char m[8];
  uint32_t version = 0;
  io(s, m, sizeof m);
  io(s, &version, sizeof version);
  if (!s->ok || memcmp(m, magic, sizeof m) != 0 || version != VERSION)
    return fclose(s->f), rn_fail(err, "%s: not a version-%d trainer checkpoint", path, VERSION);
  io_config(s, cfg);
  return s->ok ? 0 : (fclose(s->f), rn_fail(err, "%s: truncated header", path));
}

int rn_checkpoint_config(const char *path, rn_config *cfg, rn_error *err) {
  stream s;
  if (open_checkpoint(&s, path, cfg, err)) return -1;
  fclose(s.f);
  return 0;
}

int rn_checkpoint_load(rn_trainer *t, const char *path, rn_error *err) {
  stream s;
  rn_config cfg;
  if (open_checkpoint(&s, path, &cfg, err)) return -1;
  if (memcmp(&cfg, &t->model.cfg, sizeof cfg) != 0)
    return fclose(s.f), rn_fail(err, "%s: written for another network (mode, width, strides or input)", path);
  io_body(&s, t);
  uint32_t expect = (uint32_t)s.crc, crc = 0;
  io(&s, &crc, sizeof crc);
  int extra = fgetc(s.f) != EOF;
  fclose(s.f);
  if (!s.ok || crc != expect || extra)
    return rn_fail(err, "%s: truncated or corrupt (sizes or checksum do not match)", path);
  return 0;
}
