/* The CUDA path's per-element steps (src/spectral_elements.h, one call per
 * kernel thread on the GPU) run here on the host around FFTW's 2-D real
 * transforms, and must give the test vectors' numbers. The inverse transforms are
 * made strictly Hermitian-assuming, like cuFFT's C2R: columns 0 and n/2 are
 * rebuilt from their upper halves by conjugate symmetry before the inverse,
 * so a missing Hermitian part would change the result. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "spectral_elements.h"
#include "util.h"

/* X (a x (b/2+1) complex) = rfft2 of the a x b real image. */
static void rfft2(int a, int b, const float *img, float *spec) {
  float *in = fftwf_alloc_real((size_t)a * b);
  fftwf_complex *out = fftwf_alloc_complex((size_t)a * (b / 2 + 1));
  fftwf_plan p = fftwf_plan_dft_r2c_2d(a, b, in, out, FFTW_ESTIMATE);
  memcpy(in, img, sizeof(float) * a * b);
  fftwf_execute(p);
  memcpy(spec, out, sizeof(float) * 2 * a * (b / 2 + 1));
  fftwf_destroy_plan(p), fftwf_free(in), fftwf_free(out);
}

/* The unnormalized inverse of a Hermitian spectrum (a x (b/2+1)), reading
 * only rows 0..a/2 of the self-mirrored columns 0 and b/2 (rows a-i are
 * taken as the conjugates of rows i), as a C2R that assumes symmetry does. */
static void strict_c2r(int a, int b, const float *spec, float *img) {
  int kb = b / 2 + 1;
  fftwf_complex *in = fftwf_alloc_complex((size_t)a * kb);
  float *out = fftwf_alloc_real((size_t)a * b);
  fftwf_plan p = fftwf_plan_dft_c2r_2d(a, b, in, out, FFTW_ESTIMATE);
  memcpy(in, spec, sizeof(float) * 2 * a * kb);
  for (int k = 0; k < kb; k += (b % 2 == 0 && k == 0 && b > 1) ? b / 2 : kb)
    for (int i = a / 2 + 1; i < a; i++) in[i * kb + k][0] = in[(a - i) * kb + k][0], in[i * kb + k][1] = -in[(a - i) * kb + k][1];
  for (int k = 0; k < kb; k += (b % 2 == 0 && k == 0 && b > 1) ? b / 2 : kb)
    for (int i = 0; i <= a / 2; i += (a % 2 == 0 && i == 0) ? a / 2 : a) in[i * kb + k][1] = 0.0f; /* self-mirrored bins */
  fftwf_execute(p);
  memcpy(img, out, sizeof(float) * a * b);
  fftwf_destroy_plan(p), fftwf_free(in), fftwf_free(out);
}

/* Forward and backward of the golden case through the element functions;
 * the gradient sums both from X (sums) and, as after
 * ds_diffstride_forward_training, from X kept at the kept bins (kept). */
static void emulate(const golden *gd, const ds_crop *g, const float *x, const float *dy, float *y, float *dx, double *sums,
                    double *kept) {
  size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->out_h * g->out_w;
  long long nx = (long long)g->h * g->kw, nz = (long long)g->out_h * g->kc;
  float *sx = malloc(sizeof(float) * 2 * nx), *sz = malloc(sizeof(float) * 2 * nz), *sy = malloc(sizeof(float) * 2 * nz);
  float *keep = malloc(sizeof(float) * 2 * nz);
  memset(sums, 0, sizeof(double) * nz), memset(kept, 0, sizeof(double) * nz);
  for (int img = 0; img < gd->n * gd->c; img++) {
    rfft2(g->h, g->w, x + img * hw, sx);
    for (long long e = 0; e < nz; e++) ds_crop_element(g, sx, sz, e);
    for (long long e = 0; e < nz; e++)
      keep[2 * e] = sx[2 * ds_kept_bin(g, e)], keep[2 * e + 1] = sx[2 * ds_kept_bin(g, e) + 1];
    strict_c2r(g->out_h, g->out_w, sz, y + img * ohw);
    rfft2(g->out_h, g->out_w, dy + img * ohw, sy);
    for (long long e = 0; e < nz; e++) sums[e] += ds_grad_element(g, sy, sx, 0, e), kept[e] += ds_grad_element(g, sy, keep, 1, e);
    for (long long e = 0; e < nx; e++) ds_uncrop_element(g, sy, sx, e);
    strict_c2r(g->h, g->w, sx, dx + img * hw);
  }
  free(sx), free(sz), free(sy), free(keep);
}

static char **paths;
static int count;

/* The crop geometry of a case. */
static void case_geometry(const golden *gd, ds_crop *g, ds_stride_state *st) {
  const float s[2] = {(float)gd->strides[0], (float)gd->strides[1]};
  ds_diffstride_desc d = {(float)gd->smoothness, gd->cropping, gd->shared, (float)gd->lower, (float)gd->upper, 0};
  ds_status status = gd->op == GOLDEN_DIFFSTRIDE     ? ds__diffstride_geometry(NULL, &d, gd->h, gd->w, s, g, st)
                     : gd->op == GOLDEN_DIFFSTRIDE1D ? ds__diffstride1d_geometry(NULL, &d, gd->w, s[1], g, st)
                                                     : ds__spectral_geometry(NULL, gd->h, gd->w, s, g);
  ck_assert_int_eq(status, DS_OK);
}

START_TEST(test_elements_give_golden) {
  golden gd;
  char err[256];
  ck_assert_msg(golden_load(paths[_i], &gd, err, sizeof err) == 0, "%s", err);
  ds_crop g;
  ds_stride_state st;
  case_geometry(&gd, &g, &st);
  size_t in = (size_t)gd.n * gd.c * gd.h * gd.w, out = (size_t)gd.n * gd.c * gd.out_h * gd.out_w;
  float *x = to_float(gd.x, in), *dy = to_float(gd.dy, out), *y = malloc(sizeof(float) * out), *dx = malloc(sizeof(float) * in);
  double *sums = malloc(sizeof(double) * g.out_h * g.kc), *kept = malloc(sizeof(double) * g.out_h * g.kc);
  double *gh = malloc(sizeof(double) * (g.out_h + g.kc));
  emulate(&gd, &g, x, dy, y, dx, sums, kept);
  ck_assert_msg(!memcmp(sums, kept, sizeof(double) * g.out_h * g.kc), "%s: sums from the kept bins differ", gd.name);
  ck_assert_msg(rel_error_fd(y, gd.y, out) < 1e-5, "%s: y error %g", gd.name, rel_error_fd(y, gd.y, out));
  ck_assert_msg(rel_error_fd(dx, gd.dx, in) < 1e-5, "%s: dx error %g", gd.name, rel_error_fd(dx, gd.dx, in));
  if (gd.op != GOLDEN_SPECTRAL_POOL) {
    float ds[2];
    ds__mask_gradients(&g, sums, gh, gh + g.out_h);
    ds__stride_gradient(&g, &st, gh, gh + g.out_h, ds);
    double scale = fmax(fabs(gd.dstrides[0]), fabs(gd.dstrides[1]));
    for (int i = 0; i < 2; i++)
      ck_assert_msg(fabs(ds[i] - gd.dstrides[i]) <= 1e-4 * scale, "%s: dstrides[%d] %g, want %g", gd.name, i, (double)ds[i], gd.dstrides[i]);
  }
  free(x), free(dy), free(y), free(dx), free(sums), free(kept), free(gh);
  golden_free(&gd);
}
END_TEST

/* The CUDA path's batch chunks: they tile the batch in order, never cross
 * a group (an NHWC sample), fit the budget (or are one image), and split
 * each group into the fewest chunks that fit. NHWC-like (groups of c) and
 * NCHW-like (one group) batches, budgets from below one image to all. */
START_TEST(test_chunks_tile_the_batch) {
  const long long groups[] = {1, 3, 64, 1000}, counts[] = {1, 2, 5};
  const size_t per_image = 6848, budgets[] = {0, 6848, 6849, 20000, 3424000, 1u << 30};
  for (size_t gi = 0; gi < 4; gi++)
    for (size_t ci = 0; ci < 3; ci++)
      for (size_t bi = 0; bi < 6; bi++) {
        long long group = groups[gi], images = group * counts[ci];
        long long fit = (long long)(budgets[bi] / per_image), size = ds__chunk_size(group, per_image, budgets[bi]);
        if (fit < 1) fit = 1;
        ck_assert_msg(size >= 1 && size <= group && size <= fit, "group %lld budget %zu: size %lld", group, budgets[bi], size);
        long long first = 0, chunks = 0;
        while (first < images) {
          long long len = ds__chunk_length(first, images, group, size);
          ck_assert_msg(len >= 1 && len <= size, "chunk at %lld: length %lld (size %lld)", first, len, size);
          ck_assert_msg(first / group == (first + len - 1) / group, "chunk %lld+%lld crosses a group of %lld", first, len, group);
          first += len, chunks++;
        }
        ck_assert_int_eq(first, images);
        ck_assert_msg(chunks == counts[ci] * ((group + fit - 1) / fit), "group %lld budget %zu: %lld chunks", group, budgets[bi], chunks);
      }
}
END_TEST

Suite *cuda_elements_suite(void) {
  Suite *s = suite_create("cuda_elements");
  TCase *tc = tcase_create("golden");
  char err[512];
  paths = golden_paths(err, sizeof err); /* a missing directory fails in the golden suite */
  for (count = 0; paths && paths[count];) count++;
  tcase_add_loop_test(tc, test_elements_give_golden, 0, count);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  TCase *chunks = tcase_create("chunks");
  tcase_add_test(chunks, test_chunks_tile_the_batch);
  suite_add_tcase(s, chunks);
  return s;
}
