/* The core's shared helpers: error messages, the clock, paths that are never
 * cut short, allocations whose size is checked. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rn.h"

int rn_fail(rn_error *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return -1;
}

double rn_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rn_path(char *buf, size_t size, rn_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < size) return 0;
  /* the start of the path names it; all of it would not fit the message */
  return rn_fail(err, "path too long (%d bytes, at most %zu): %.80s...", n, size - 1, buf);
}

void *rn_alloc(size_t count, size_t size, const char *what, rn_error *err) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes))
    return rn_fail(err, "out of memory: %zu x %zu bytes for %s overflow the address space", count, size, what),
           NULL;
  void *p = malloc(bytes ? bytes : 1);
  if (!p) rn_fail(err, "out of memory allocating %zu bytes for %s", bytes, what);
  return p;
}
