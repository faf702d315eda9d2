/* Fuzz target `idx`: the trainer's IDX reader (examples/resnet18/data.c,
 * rn_load_idx_pair: gzip'ed or plain, through zlib's gzread) on an images
 * file and a labels file taken from the input, and what the trainer does
 * next with a loaded set (rn_data_load "fashion-mnist:DIR" with its
 * per-channel moments; an augmented, mixed batch rendered from it).
 *
 * Input: a flags byte, then the images file (preceded by its length, u32
 * little-endian) and the labels file (the rest). Flag bits 0 and 1 gzip the
 * images / labels file here first (so that mutations of the IDX structure
 * reach the parser under the gzip layer; unflagged parts are read as they
 * are, gzip or plain); bit 2 loads through rn_data_load as well.
 *
 * A load either succeeds with a consistent dataset (sizes > 0, every label
 * < classes) or fails with a message and nothing allocated (ASan's leak
 * check); it never crashes. Allocations beyond what the input can justify
 * are caught by libFuzzer's -malloc_limit_mb (fuzz.mk sets it). */
#define FUZZ_FILES
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_input.h"
#include "rn.h"

static fuzz_file g_images, g_labels;
static char g_dir[4096];

/* Images, then labels, of the training and the test set. */
static const char *g_names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

static void cleanup(void) { fuzz_rmdir(g_dir, g_names, sizeof g_names / sizeof *g_names); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_file_init(&g_images, "idx-images");
  fuzz_file_init(&g_labels, "idx-labels");
  /* fashion-mnist:DIR: the train and test files are the same two memfds. */
  fuzz_tmpdir(g_dir, sizeof g_dir, "idx");
  for (size_t i = 0; i < sizeof g_names / sizeof *g_names; i++)
    fuzz_link(g_dir, g_names[i], i % 2 ? g_labels.path : g_images.path);
  atexit(cleanup);
  return 0;
}

/* The file's contents, gzip'ed here when asked. */
static void put(fuzz_file *f, const uint8_t *data, size_t size, int gzip) {
  if (!gzip) {
    fuzz_file_set(f, data, size);
    return;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  uLong cap = deflateBound(&z, (uLong)size) + 64;
  uint8_t *out = malloc(cap);
  if (!out) abort();
  z.next_in = (Bytef *)(uintptr_t)data, z.avail_in = (uInt)size;
  z.next_out = out, z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
  fuzz_file_set(f, out, cap - z.avail_out);
  deflateEnd(&z);
  free(out);
}

static void check_set(const rn_dataset *s, int classes) {
  FUZZ_REQUIRE(s->count > 0 && s->h > 0 && s->w > 0 && s->c == 1 && s->classes == classes && s->images &&
                   s->labels,
               "loaded an inconsistent set: %d images %dx%dx%d, %d classes", s->count, s->h, s->w, s->c,
               s->classes);
  for (int i = 0; i < s->count; i++)
    FUZZ_REQUIRE(s->labels[i] < classes, "label %d of image %d is out of range", s->labels[i], i);
  /* Every image byte is addressable (ASan checks the reads). */
  size_t bytes = (size_t)s->count * (size_t)s->h * (size_t)s->w * (size_t)s->c;
  volatile uint8_t sum = 0;
  sum ^= s->images[0];
  sum ^= s->images[bytes - 1];
  (void)sum;
}

/* What training does with the set next: a batch of up to 4 images,
 * augmented (shifts, flips, label smoothing) and mixed. */
static void batch(const rn_data *d, const rn_dataset *s, uint8_t flags) {
  int n = s->count < 4 ? s->count : 4, idx[4], labels[4];
  size_t pixels = (size_t)s->h * s->w * s->c;
  if (pixels > (1u << 20)) return; /* the reader's business ends before */
  float *x = malloc(sizeof(float) * (size_t)n * pixels), *targets = malloc(sizeof(float) * (size_t)n * s->classes);
  if (!x || !targets) abort();
  for (int i = 0; i < n; i++) idx[i] = s->count - 1 - i;
  rn_augment aug = {flags & 8 ? 2 : 0, !!(flags & 16), flags & 32 ? 0.4f : 0.0f, 0.1f};
  rn_rng rng;
  rn_rng_seed(&rng, flags);
  FUZZ_REQUIRE(rn_make_batch(d, s, idx, n, &aug, &rng, x, targets, labels) == 0, "rn_make_batch failed");
  for (size_t e = 0; e < (size_t)n * pixels; e++)
    FUZZ_REQUIRE(isfinite(x[e]), "batch element %zu is %g", e, (double)x[e]);
  free(x);
  free(targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_src s = {data, size};
  uint8_t flags = fuzz_u8(&s);
  const uint8_t *part[2];
  size_t len[2];
  fuzz_split(&s, 2, part, len);
  put(&g_images, part[0], len[0], flags & 1);
  put(&g_labels, part[1], len[1], flags & 2);

  rn_dataset set;
  rn_error err = {{0}};
  memset(&set, 0xA5, sizeof set);
  if (rn_load_idx_pair(&set, g_images.path, g_labels.path, 10, &err) == 0) {
    check_set(&set, 10);
    rn_data d;
    memset(&d, 0, sizeof d);
    d.train = set;
    d.mean[0] = 0.5f, d.std[0] = 0.25f;
    batch(&d, &set, flags);
    free(set.images);
    free(set.labels);
  } else {
    FUZZ_REQUIRE(err.msg[0], "rn_load_idx_pair failed without a message");
    FUZZ_REQUIRE(!set.images && !set.labels, "rn_load_idx_pair failed but kept its arrays");
  }

  if (flags & 4) {
    char spec[4200];
    snprintf(spec, sizeof spec, "fashion-mnist:%s", g_dir);
    rn_data d;
    err.msg[0] = '\0';
    if (rn_data_load(&d, spec, &err) == 0) {
      check_set(&d.train, 10);
      check_set(&d.test, 10);
      FUZZ_REQUIRE(isfinite(d.mean[0]) && isfinite(d.std[0]) && d.std[0] > 0.0f, "channel moments %g, %g",
                   (double)d.mean[0], (double)d.std[0]);
      batch(&d, &d.train, flags);
      rn_data_free(&d);
    } else {
      FUZZ_REQUIRE(err.msg[0], "rn_data_load failed without a message");
    }
  }
  return 0;
}
