/* Fuzz target `checkpoint`: the trainer's checkpoint reader
 * (examples/resnet18/checkpoint.c) on the input as a checkpoint file, the
 * way the trainer's --eval and --resume use it (main.c: setup), and what
 * they do next with what it loaded.
 *
 * The format (checkpoint.c): "RN18CKPT", u32 version, the config (5 i32,
 * 7 f32), u64 nparams, u64 nstate, i32 npools, i32 epoch, i64 step,
 * u64 rng[4], the parameter, momentum and batch-norm arrays, per pool 2
 * strides and 2 momenta, then the CRC-32 (zlib's crc32) of everything before
 * it. The last 4 bytes of the input are replaced by the CRC of the bytes
 * before them, so that mutations get past the checksum.
 *
 * Steps, as the trainer takes them: rn_checkpoint_config; the network built
 * from that config (rn_trainer_init, CPU backend, one thread) when the
 * config names an input the size of a small dataset (at most 32x32x3, 2 to
 * 100 classes: the trainer refuses a checkpoint whose input differs from
 * its data) and a width of at most 1/16 (wider valid networks are skipped
 * as too slow to build per execution; every invalid width is tried);
 * rn_checkpoint_load; then the mode's name (printed by the trainer), an
 * evaluation and one training step on two images of the config's shape.
 * Each step either succeeds or fails with a message. A checkpoint that
 * loads, saved again at once, gives the same bytes.
 *
 * Two input forms. An input starting with 'R' (as "RN18CKPT" does) is the
 * file itself. Any other input is a list of edits to one of three valid
 * checkpoints the target writes at start-up with the trainer's own writer
 * (rn_checkpoint_save; tiny networks in each mode): a byte choosing the
 * base, then edits, each a kind byte and its operands: overwrite bytes in
 * the first 160 (magic, version, config, sizes, counters, RNG state and
 * the first weights), overwrite bytes anywhere, truncate, or append. A
 * checkpoint is 24 KB of which the header is 0.5%: random mutations of the
 * file rarely reach the fields that matter, edits reach them at once. */
#define FUZZ_FILES
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "backend.h"
#include "fuzz_input.h"

static fuzz_file g_ckpt;
static char g_dir[4096], g_save[4200];

/* The bases of the edit form: checkpoints of tiny networks in each mode. */
enum { NBASES = 3, HEAD_SPAN = 160 };
static uint8_t *g_base[NBASES];
static size_t g_base_size[NBASES];

static void make_base(int i, const rn_config *cfg) {
  rn_trainer t;
  rn_error err = {{0}};
  if (rn_trainer_init(&t, cfg, &rn_cpu_backend, 1, 7 + (uint64_t)i, 2, &err) ||
      rn_checkpoint_save(&t, g_save, &err)) {
    fprintf(stderr, "fuzz checkpoint: cannot write base %d: %s\n", i, err.msg);
    abort();
  }
  rn_trainer_free(&t);
  FILE *f = fopen(g_save, "rb");
  if (!f || fseek(f, 0, SEEK_END)) abort();
  long n = ftell(f);
  rewind(f);
  g_base[i] = malloc((size_t)n);
  if (n <= 0 || !g_base[i] || fread(g_base[i], 1, (size_t)n, f) != (size_t)n) abort();
  g_base_size[i] = (size_t)n;
  fclose(f);
  unlink(g_save);
}

/* The edit form: one of the bases with the input's edits applied
 * (malloc'ed, *size bytes). */
static uint8_t *edited(const uint8_t *data, size_t size, size_t *out) {
  fuzz_src s = {data, size};
  int b = fuzz_u8(&s) % NBASES;
  size_t n = g_base_size[b], cap = n + 4096;
  uint8_t *buf = malloc(cap);
  if (!buf) abort();
  memcpy(buf, g_base[b], n);
  for (int edits = 0; s.n && edits < 32; edits++) {
    uint8_t kind = fuzz_u8(&s), len = (uint8_t)(1 + fuzz_u8(&s) % 8);
    size_t at;
    switch (kind % 4) {
    case 0: /* overwrite in the header */
    case 1: /* overwrite anywhere */
      at = kind % 4 == 0 ? fuzz_u8(&s) % HEAD_SPAN : fuzz_u32(&s) % (n ? n : 1);
      for (int i = 0; i < len && at + (size_t)i < n; i++) buf[at + (size_t)i] = fuzz_u8(&s);
      break;
    case 2: /* truncate */
      n = fuzz_u32(&s) % (n + 1);
      break;
    default: /* append */
      for (int i = 0; i < len && n < cap; i++) buf[n++] = fuzz_u8(&s);
    }
  }
  *out = n;
  return buf;
}

static void cleanup(void) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", g_save);
  unlink(tmp);
  unlink(g_save);
  rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_file_init(&g_ckpt, "checkpoint");
  fuzz_tmpdir(g_dir, sizeof g_dir, "checkpoint");
  snprintf(g_save, sizeof g_save, "%s/checkpoint.bin", g_dir);
  atexit(cleanup);
  /* DiffStride on 8x8x1 (4 pools), spectral pooling on 8x8x2 with a
   * fractional stride (4 pools), strided convolutions on 6x6x3 (none); all
   * of width 1/64 (stage widths 1, 1, 2, 4, 8). */
  const rn_config cfgs[NBASES] = {{RN_DIFFSTRIDE, 1.0f / 64, {1, 1, 2, 2, 2}, 4.0f, 8, 8, 1, 4},
                                  {RN_SPECTRAL, 1.0f / 64, {1, 1.5f, 2, 2, 2}, 4.0f, 8, 8, 2, 3},
                                  {RN_STRIDED, 1.0f / 64, {1, 1, 2, 2, 2}, 4.0f, 6, 6, 3, 2}};
  for (int i = 0; i < NBASES; i++) make_base(i, &cfgs[i]);
  return 0;
}

#define NEED(cond, what)                                                                   \
  do {                                                                                     \
    if (cond) {                                                                            \
      FUZZ_REQUIRE(err.msg[0], "%s failed without a message", what);                      \
      goto done;                                                                           \
    }                                                                                      \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf;
  if (size && data[0] == 'R') { /* the file itself */
    buf = malloc(size + 1);
    if (!buf) abort();
    memcpy(buf, data, size);
  } else {
    buf = edited(data, size, &size);
  }
  if (size >= 4) {
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), buf, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) buf[size - 4 + i] = (uint8_t)(crc >> (8 * i)); /* little-endian */
  }
  fuzz_file_set(&g_ckpt, buf, size);

  rn_config cfg;
  rn_error err = {{0}};
  rn_trainer t;
  memset(&t, 0, sizeof t);
  uint8_t *images = NULL;
  if (rn_checkpoint_config(g_ckpt.path, &cfg, &err)) {
    FUZZ_REQUIRE(err.msg[0], "rn_checkpoint_config failed without a message");
    goto done;
  }
  /* The trainer takes the input size and classes from its data and refuses
   * a checkpoint that differs: only small data sets are simulated. */
  if (cfg.in_h < 2 || cfg.in_h > 32 || cfg.in_w < 2 || cfg.in_w > 32 || cfg.in_c < 1 || cfg.in_c > 3 ||
      cfg.classes < 2 || cfg.classes > 100)
    goto done;
  if (cfg.width > 1.0f / 16 && cfg.width <= 8.0f) goto done;

  NEED(rn_trainer_init(&t, &cfg, &rn_cpu_backend, 1, 1, 2, &err), "rn_trainer_init");
  NEED(rn_model_set_precision(&t.model, RN_FP32, &err), "rn_model_set_precision");
  NEED(rn_checkpoint_load(&t, g_ckpt.path, &err), "rn_checkpoint_load");

  /* Saved again at once: the same bytes. */
  FUZZ_REQUIRE(rn_checkpoint_save(&t, g_save, &err) == 0, "rn_checkpoint_save failed: %s", err.msg);
  FILE *f = fopen(g_save, "rb");
  FUZZ_REQUIRE(f, "cannot read back %s", g_save);
  uint8_t *back = malloc(size + 1);
  size_t got = back ? fread(back, 1, size + 1, f) : 0;
  fclose(f);
  unlink(g_save);
  FUZZ_REQUIRE(got == size && memcmp(back, buf, size) == 0, "the checkpoint saved after loading differs (%zu bytes, read %zu)",
               got, size);
  free(back);

  /* The trainer prints the mode's name, then evaluates or trains. */
  const char *mode = rn_mode_name(t.model.cfg.mode);
  FUZZ_REQUIRE(mode && strlen(mode) > 0, "rn_mode_name(%d) is empty", (int)t.model.cfg.mode);
  size_t pixels = (size_t)cfg.in_h * cfg.in_w * cfg.in_c;
  images = malloc(2 * pixels);
  if (!images) abort();
  for (size_t i = 0; i < 2 * pixels; i++) images[i] = (uint8_t)(i * 37 + 11);
  uint8_t labels[2] = {0, 1};
  rn_data d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "fuzz");
  d.train = d.test = (rn_dataset){2, cfg.in_h, cfg.in_w, cfg.in_c, cfg.classes, images, labels};
  for (int ch = 0; ch < 3; ch++) d.mean[ch] = 0.5f, d.std[ch] = 0.25f;
  double acc = 0, loss = 0;
  err.msg[0] = '\0';
  if (rn_evaluate(&t, &d, &d.test, &acc, &loss, &err) == 0)
    FUZZ_REQUIRE(acc >= 0 && acc <= 1, "accuracy %g", acc);
  else
    FUZZ_REQUIRE(err.msg[0], "rn_evaluate failed without a message");
  int idx[2] = {0, 1}, correct = 0;
  err.msg[0] = '\0';
  if (rn_load_batch(&t, &d, &d.train, idx, 2, 1, &err) || rn_train_step(&t, 2, &loss, &correct, &err))
    FUZZ_REQUIRE(err.msg[0], "a training step failed without a message");

done:
  if (getenv("FUZZ_TRACE")) /* FUZZ_TRACE=1: how far each input got */
    fprintf(stderr, "fuzz checkpoint: %zu bytes: %s\n", size, t.model.be == NULL ? err.msg : err.msg[0] ? err.msg : "loaded, evaluated, trained");
  rn_trainer_free(&t);
  free(images);
  free(buf);
  return 0;
}
