/* The convolution algorithms the trainer's CPU backend chooses between
 * (examples/resnet18/cpu_conv.c): one 3x3 convolution of c channels in and
 * out on (n, c, h, w), forward + input gradient + weight gradient through
 * oneDNN, direct or Winograd, on NHWC or on the blocked layout oneDNN
 * picks. Prints the oneDNN kernels and the median of `reps` timed calls of
 * each (one untimed call first), in ms; reorders are not included.
 *
 *   build/conv_bench C H W [N=128] [STRIDE=1] [direct|winograd] [nhwc|blocked] [REPS=5]
 *
 * Threads: OMP_NUM_THREADS. Exit status 2 on bad arguments, 3 when oneDNN
 * has no kernel for the combination (Winograd needs blocked data and, in
 * oneDNN 2.6, AVX-512). */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median ms of reps runs of the primitive of pd on fresh buffers of its
 * three arguments (args[k], described by queries q[k]). */
static double time_primitive(dnnl_engine_t e, dnnl_stream_t s, dnnl_primitive_desc_t pd, const int *args,
                             const dnnl_query_t *q, int reps, const char **impl) {
  dnnl_primitive_t p;
  dnnl_exec_arg_t ea[3];
  double t[64];
  dnnl_primitive_create(&p, pd);
  for (int i = 0; i < 3; i++) {
    ea[i].arg = args[i];
    dnnl_memory_create(&ea[i].memory, dnnl_primitive_desc_query_md(pd, q[i], 0), e, DNNL_MEMORY_ALLOCATE);
  }
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl);
  for (int r = -1; r < reps; r++) {
    double t0 = now();
    dnnl_primitive_execute(p, s, 3, ea);
    dnnl_stream_wait(s);
    if (r >= 0) t[r] = (now() - t0) * 1e3;
  }
  for (int i = 0; i < 3; i++) dnnl_memory_destroy(ea[i].memory);
  dnnl_primitive_destroy(p);
  qsort(t, (size_t)reps, sizeof *t, compare);
  return t[reps / 2];
}

typedef struct conv_case {
  int c, h, w, n, stride, wino, blocked, reps;
} conv_case;

/* The forward, input-gradient and weight-gradient descriptors of k; 3 when
 * oneDNN has no kernel for one. */
static int describe(dnnl_engine_t e, const conv_case *k, dnnl_primitive_desc_t pd[3]) {
  int oh = (k->h - 1) / k->stride + 1, ow = (k->w - 1) / k->stride + 1;
  dnnl_memory_desc_t src, dst, wt;
  dnnl_dims_t sd = {k->n, k->c, k->h, k->w}, dd = {k->n, k->c, oh, ow}, wd = {k->c, k->c, 3, 3};
  dnnl_dims_t st = {k->stride, k->stride}, pl = {1, 1};
  dnnl_dims_t pr = {(oh - 1) * k->stride + 2 - k->h > 0 ? (oh - 1) * k->stride + 2 - k->h : 0,
                    (ow - 1) * k->stride + 2 - k->w > 0 ? (ow - 1) * k->stride + 2 - k->w : 0};
  dnnl_format_tag_t tag = k->blocked ? dnnl_format_tag_any : dnnl_nhwc;
  dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, tag);
  dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, tag);
  dnnl_memory_desc_init_by_tag(&wt, 4, wd, dnnl_f32, dnnl_format_tag_any);
  dnnl_alg_kind_t alg = k->wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
  dnnl_convolution_desc_t cd[3];
  dnnl_convolution_forward_desc_init(&cd[0], dnnl_forward_training, alg, &src, &wt, NULL, &dst, st, pl, pr);
  if (dnnl_primitive_desc_create(&pd[0], &cd[0], NULL, e, NULL) != dnnl_success) return 3;
  const dnnl_memory_desc_t *s_md = dnnl_primitive_desc_query_md(pd[0], dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *d_md = dnnl_primitive_desc_query_md(pd[0], dnnl_query_dst_md, 0);
  dnnl_convolution_backward_data_desc_init(&cd[1], alg, s_md, &wt, d_md, st, pl, pr);
  dnnl_convolution_backward_weights_desc_init(&cd[2], alg, s_md, &wt, NULL, d_md, st, pl, pr);
  if (dnnl_primitive_desc_create(&pd[1], &cd[1], NULL, e, pd[0]) != dnnl_success ||
      dnnl_primitive_desc_create(&pd[2], &cd[2], NULL, e, pd[0]) != dnnl_success)
    return 3;
  return 0;
}

static int parse(int argc, char **argv, conv_case *k) {
  if (argc < 4) return -1;
  *k = (conv_case){atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 128,
                   argc > 5 ? atoi(argv[5]) : 1, argc > 6 && strcmp(argv[6], "winograd") == 0,
                   argc > 7 && strcmp(argv[7], "blocked") == 0, argc > 8 ? atoi(argv[8]) : 5};
  return k->c >= 1 && k->h >= 1 && k->w >= 1 && k->n >= 1 && k->stride >= 1 && k->reps >= 1 && k->reps <= 64 ? 0 : -1;
}

int main(int argc, char **argv) {
  conv_case k;
  if (parse(argc, argv, &k))
    return fprintf(stderr, "usage: conv_bench C H W [N] [STRIDE] [direct|winograd] [nhwc|blocked] [REPS <= 64]\n"), 2;
  dnnl_engine_t e;
  dnnl_stream_t s;
  dnnl_primitive_desc_t pd[3] = {NULL, NULL, NULL};
  dnnl_engine_create(&e, dnnl_cpu, 0);
  dnnl_stream_create(&s, e, dnnl_stream_default_flags);
  if (describe(e, &k, pd)) return fprintf(stderr, "conv_bench: oneDNN has no such convolution here\n"), 3;
  static const char *names[3] = {"forward", "input gradient", "weight gradient"};
  const int args[3][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                          {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
                          {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST}};
  const dnnl_query_t q[3][3] = {{dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
                                {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
                                {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md}};
  double total = 0.0;
  for (int i = 0; i < 3; i++) {
    const char *impl = "";
    double ms = time_primitive(e, s, pd[i], args[i], q[i], k.reps, &impl);
    printf("%-16s %-26s %9.2f ms\n", names[i], impl, ms);
    total += ms;
    dnnl_primitive_desc_destroy(pd[i]);
  }
  printf("conv c=%d %dx%d n=%d stride=%d %s %s: %.2f ms\n", k.c, k.h, k.w, k.n, k.stride,
         k.wino ? "winograd" : "direct", k.blocked ? "blocked" : "nhwc", total);
  dnnl_stream_destroy(s);
  dnnl_engine_destroy(e);
  return 0;
}
