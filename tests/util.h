/* Helpers shared by the test files. */
#ifndef DS_TEST_UTIL_H
#define DS_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

#include "diffstride.h"

/* max|a - b| / max|b| over count values (b == 0 everywhere: max|a|). */
double rel_error_fd(const float *a, const double *b, size_t count);
double rel_error_ff(const float *a, const float *b, size_t count);
/* Deterministic uniform values in [-1, 1) from a seed. */
void fill_random(float *v, size_t count, unsigned seed);
unsigned rand_below(unsigned *state, unsigned bound);
/* NCHW (n,c,h,w) <-> NHWC (n,h,w,c). */
void to_nhwc(const float *src, float *dst, int n, int c, int h, int w);
void to_nchw(const float *src, float *dst, int n, int c, int h, int w);
/* float copies of double arrays; malloc'ed. */
float *to_float(const double *v, size_t count);
double dot_ff(const float *a, const float *b, size_t count);
/* A fresh CPU context with `threads` threads; fails the test if impossible. */
ds_context *cpu_context(int threads);

/* Suites, one per feature (each in its own file). */
Suite *golden_suite(void);
Suite *gradient_suite(void);
Suite *property_suite(void);
Suite *error_suite(void);
Suite *threading_suite(void);
Suite *elementwise_suite(void);
Suite *penalty_suite(void);
Suite *diffstride1d_suite(void);
Suite *cuda_elements_suite(void);
Suite *reserve_suite(void);
Suite *own_transforms_suite(void);
Suite *geometry_suite(void);

#endif
