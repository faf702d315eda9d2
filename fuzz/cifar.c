/* Fuzz target `cifar`: the trainer's CIFAR-10/100 binary reader
 * (examples/resnet18/data.c, rn_load_cifar) on one to three files taken from
 * the input, its writer (rn_write_cifar) on what it loaded, and the
 * directory loader the trainer calls (rn_data_load "cifar10:DIR" /
 * "cifar100:DIR", with the per-channel moments).
 *
 * Input: a flags byte, then the files (each but the last preceded by its
 * length, u32 little-endian). Flags: bit 0 CIFAR-100 (2 label bytes, 100
 * classes) instead of CIFAR-10; bits 1-2 the number of files, 1 + (bits % 3);
 * bit 3 also rn_data_load on a directory whose every file is the first one.
 *
 * A load either succeeds with count = bytes / record size, 32x32x3 images and
 * every label < classes, or fails with a message and nothing allocated. A
 * single CIFAR-10 file loaded and written back gives the same bytes. */
#define FUZZ_FILES
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "rn.h"

static fuzz_file g_files[3], g_out;
static char g_dir[4096];
static const char *g_names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                "data_batch_5.bin", "test_batch.bin",   "train.bin",        "test.bin"};

static void cleanup(void) { fuzz_rmdir(g_dir, g_names, sizeof g_names / sizeof *g_names); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  for (int i = 0; i < 3; i++) fuzz_file_init(&g_files[i], "cifar");
  fuzz_file_init(&g_out, "cifar-out");
  fuzz_tmpdir(g_dir, sizeof g_dir, "cifar");
  for (size_t i = 0; i < sizeof g_names / sizeof *g_names; i++) fuzz_link(g_dir, g_names[i], g_files[0].path);
  atexit(cleanup);
  return 0;
}

static void check_set(const rn_dataset *s, int classes, size_t bytes, size_t rec) {
  FUZZ_REQUIRE(s->h == 32 && s->w == 32 && s->c == 3 && s->classes == classes, "a %dx%dx%d set of %d classes",
               s->h, s->w, s->c, s->classes);
  FUZZ_REQUIRE(bytes % rec == 0 && (size_t)s->count == bytes / rec && s->count > 0,
               "%d records loaded from %zu bytes of %zu-byte records", s->count, bytes, rec);
  for (int i = 0; i < s->count; i++)
    FUZZ_REQUIRE(s->labels[i] < classes, "label %d of record %d is out of range", s->labels[i], i);
  volatile uint8_t sum = s->images[(size_t)s->count * 3072 - 1];
  (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_src s = {data, size};
  uint8_t flags = fuzz_u8(&s);
  int hundred = flags & 1, nfiles = 1 + ((flags >> 1) & 3) % 3;
  int label_bytes = hundred ? 2 : 1, classes = hundred ? 100 : 10;
  size_t rec = (size_t)label_bytes + 3072;
  const uint8_t *part[3];
  size_t len[3], total = 0;
  const char *paths[3];
  fuzz_split(&s, nfiles, part, len);
  for (int i = 0; i < nfiles; i++) {
    fuzz_file_set(&g_files[i], part[i], len[i]);
    paths[i] = g_files[i].path;
    total += len[i];
  }

  rn_dataset set;
  rn_error err = {{0}};
  memset(&set, 0xA5, sizeof set);
  if (rn_load_cifar(&set, paths, nfiles, label_bytes, classes, &err) == 0) {
    int whole = 1;
    for (int i = 0; i < nfiles; i++) whole &= len[i] > 0 && len[i] % rec == 0;
    FUZZ_REQUIRE(whole, "rn_load_cifar accepted a file that is not whole records");
    check_set(&set, classes, total, rec);
    if (!hundred && nfiles == 1) { /* written back: the same bytes */
      err.msg[0] = '\0';
      FUZZ_REQUIRE(rn_write_cifar(&set, g_out.path, &err) == 0, "rn_write_cifar failed: %s", err.msg);
      size_t n;
      uint8_t *back = fuzz_file_get(&g_out, &n);
      FUZZ_REQUIRE(n == len[0] && memcmp(back, part[0], n) == 0, "rn_write_cifar: %zu bytes differ from the %zu read",
                   n, len[0]);
      free(back);
    }
    free(set.images);
    free(set.labels);
  } else {
    FUZZ_REQUIRE(err.msg[0], "rn_load_cifar failed without a message");
    FUZZ_REQUIRE(!set.images && !set.labels, "rn_load_cifar failed but kept its arrays");
  }

  if (flags & 8) {
    char spec[4200];
    snprintf(spec, sizeof spec, "%s:%s", hundred ? "cifar100" : "cifar10", g_dir);
    rn_data d;
    err.msg[0] = '\0';
    if (rn_data_load(&d, spec, &err) == 0) {
      check_set(&d.train, classes, (hundred ? 1 : 5) * len[0], rec);
      check_set(&d.test, classes, len[0], rec);
      for (int ch = 0; ch < 3; ch++)
        FUZZ_REQUIRE(isfinite(d.mean[ch]) && isfinite(d.std[ch]) && d.std[ch] > 0.0f, "channel %d moments %g, %g", ch,
                     (double)d.mean[ch], (double)d.std[ch]);
      rn_data_free(&d);
    } else {
      FUZZ_REQUIRE(err.msg[0], "rn_data_load failed without a message");
    }
  }
  return 0;
}
