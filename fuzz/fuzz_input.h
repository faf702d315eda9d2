/* Helpers shared by the fuzz targets: reading values from the fuzzer's
 * input, and files that hold a part of it. */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rest of an input, consumed from the front; reads past its end give
 * zeros (so every input is a valid sequence of choices). */
typedef struct fuzz_src {
  const uint8_t *p;
  size_t n;
} fuzz_src;

static inline uint8_t fuzz_u8(fuzz_src *s) {
  if (!s->n) return 0;
  s->n--;
  return *s->p++;
}

static inline uint16_t fuzz_u16(fuzz_src *s) {
  uint16_t v = fuzz_u8(s);
  return (uint16_t)(v | fuzz_u8(s) << 8);
}

static inline uint32_t fuzz_u32(fuzz_src *s) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_u8(s) << (8 * i);
  return v;
}

static inline uint64_t fuzz_u64(fuzz_src *s) {
  uint64_t lo = fuzz_u32(s);
  return lo | (uint64_t)fuzz_u32(s) << 32;
}

/* What the target is doing (the arguments of the call in progress), for
 * the report of a violation. */
static char fuzz_note[1024];

/* A contract violation: say what, then trap so that libFuzzer reports a
 * crash with this stack. */
#define FUZZ_REQUIRE(cond, ...)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "fuzz: contract violated at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                     \
      fprintf(stderr, "\n  during: %s\n", fuzz_note);                                  \
      __builtin_trap();                                                                 \
    }                                                                                   \
  } while (0)

/* ------------------------------------------------------------- files */
#ifdef FUZZ_FILES
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file in memory (memfd) whose contents each execution replaces; the
 * readers open it by its /proc/self/fd path, which gives a fresh open file
 * at offset 0 every time. */
typedef struct fuzz_file {
  int fd;
  char path[64];
} fuzz_file;

static inline void fuzz_file_init(fuzz_file *f, const char *name) {
  f->fd = memfd_create(name, 0);
  if (f->fd < 0) {
    perror("fuzz: memfd_create");
    abort();
  }
  snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_file_set(fuzz_file *f, const void *data, size_t size) {
  if (ftruncate(f->fd, 0) || (size && pwrite(f->fd, data, size, 0) != (ssize_t)size)) {
    perror("fuzz: writing the memfd");
    abort();
  }
}

/* The file's contents (malloc'ed, *size bytes). */
static inline uint8_t *fuzz_file_get(const fuzz_file *f, size_t *size) {
  struct stat st;
  if (fstat(f->fd, &st)) abort();
  *size = (size_t)st.st_size;
  uint8_t *p = malloc(*size + 1);
  if (!p || (*size && pread(f->fd, p, *size, 0) != (ssize_t)*size)) abort();
  return p;
}

/* A private directory under $TMPDIR (else /dev/shm, else /tmp: in memory
 * where possible) for readers that take a directory; the caller's cleanup
 * removes it. */
static inline void fuzz_tmpdir(char *dir, size_t size, const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !base[0]) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, size, "%s/fuzz-%s-XXXXXX", base, tag);
  if (!mkdtemp(dir)) {
    perror("fuzz: mkdtemp");
    abort();
  }
}

/* dir/name -> target (a symlink, replaced if there). */
static inline void fuzz_link(const char *dir, const char *name, const char *target) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path);
  if (symlink(target, path)) {
    perror("fuzz: symlink");
    abort();
  }
}

/* Removes dir/names[0..count) and then dir (at exit, what fuzz_tmpdir and
 * fuzz_link made). */
static inline void fuzz_rmdir(const char *dir, const char *const *names, size_t count) {
  char path[4200];
  for (size_t i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* Splits the rest of an input into `count` parts: each but the last is
 * preceded by its length (u32, clipped to what is left). */
static inline void fuzz_split(fuzz_src *s, int count, const uint8_t **part, size_t *len) {
  for (int i = 0; i < count; i++) {
    size_t n = i + 1 < count ? fuzz_u32(s) : s->n;
    if (n > s->n) n = s->n;
    part[i] = s->p, len[i] = n;
    s->p += n, s->n -= n;
  }
}
#endif

#endif
