/* The CPU backend's layer ops against naive loops written here from their
 * definitions (double sums): convolutions (3x3 and 1x1, strides 1 and 2,
 * odd sizes, direct and Winograd, primitives made again for a new shape)
 * forward, input and weight gradients; batch norm + ReLU with
 * batch statistics (training, running averages) and running statistics
 * (evaluation), and its gradients; input gradients written and added to.
 * Also the sharing of buffers: no two tensors' data, nor two gradients,
 * alive at once share one. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "suites.h"

typedef struct fixture {
  rn_model m;
  rn_rng rng;
} fixture;

/* A small strided network (widths 8..64, 2 images of 11x9): odd sizes, a
 * 3x3 stride-2 and a 1x1 stride-2 convolution. */
static fixture *make(void) {
  fixture *f = calloc(1, sizeof *f);
  rn_config c = {RN_STRIDED, 0.125f, {1, 1, 2, 2, 2}, 4.0f, 11, 9, 3, 4};
  rn_error err = {{0}};
  rn_rng_seed(&f->rng, 7);
  ck_assert_msg(rn_model_create(&f->m, &c, &rn_cpu_backend, 2, &f->rng, &err) == 0, "%s", err.msg);
  ck_assert_msg(rn_model_shapes(&f->m, 2, &err) == 0, "%s", err.msg);
  return f;
}

static void destroy(fixture *f) {
  rn_model_destroy(&f->m);
  free(f);
}

static size_t numel(rn_shape s) { return (size_t)s.n * s.h * s.w * s.c; }

static void fill(float *p, size_t count, rn_rng *rng) {
  for (size_t i = 0; i < count; i++) p[i] = (float)rn_rng_normal(rng);
}

static void expect_close(const float *got, const double *want, size_t count, double tol, const char *what) {
  double scale = 0.0;
  for (size_t i = 0; i < count; i++) scale = fmax(scale, fabs(want[i]));
  for (size_t i = 0; i < count; i++)
    ck_assert_msg(fabs(got[i] - want[i]) <= tol * (scale + 1e-30), "%s[%zu] = %.9g, expected %.9g (scale %g)", what,
                  i, (double)got[i], want[i], scale);
}

/* The first op of kind with (k, stride) (k = 0: any) and at least
 * min_c input channels whose input needs a gradient. */
static rn_op *find_wide(rn_model *m, rn_op_kind kind, int k, int stride, int min_c) {
  for (int i = 0; i < m->nops; i++) {
    rn_op *op = &m->ops[i];
    const rn_tensor *x = &m->tensors[op->in];
    if (op->kind == kind && (!k || (op->k == k && op->stride == stride)) && x->needs_grad && x->shape.c >= min_c)
      return op;
  }
  ck_abort_msg("no op of kind %d, k %d, stride %d, %d channels or more", (int)kind, k, stride, min_c);
  return NULL;
}

static rn_op *find(rn_model *m, rn_op_kind kind, int k, int stride) { return find_wide(m, kind, k, stride, 1); }

/* ---------------------------------------------------------- convolution */

/* Index of x (n, h, w, c) at (i, y, x, ch), or -1 outside (zero padding). */
static long at(rn_shape s, int i, int y, int x, int ch) {
  if (y < 0 || y >= s.h || x < 0 || x >= s.w) return -1;
  return (((long)i * s.h + y) * s.w + x) * s.c + ch;
}

/* y, dx (added to dx0), dw of the convolution by its sums. */
static void naive_conv(const rn_op *op, rn_shape xs, rn_shape ys, const float *x, const float *w, const float *dy,
                       double *y, double *dx, double *dw) {
  const int k = op->k, pad = k / 2;
  for (int i = 0; i < ys.n; i++)
    for (int oy = 0; oy < ys.h; oy++)
      for (int ox = 0; ox < ys.w; ox++)
        for (int co = 0; co < ys.c; co++) {
          long yi = at(ys, i, oy, ox, co);
          for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
              for (int ci = 0; ci < xs.c; ci++) {
                long xi = at(xs, i, oy * op->stride + ky - pad, ox * op->stride + kx - pad, ci);
                long wi = (((long)co * k + ky) * k + kx) * xs.c + ci;
                if (xi < 0) continue;
                y[yi] += (double)x[xi] * w[wi];
                dx[xi] += (double)dy[yi] * w[wi];
                dw[wi] += (double)dy[yi] * x[xi];
              }
        }
}

/* The op's forward, weight and input gradients against naive_conv on the
 * model's current shapes. */
static void check_conv_op(fixture *f, rn_op *op, int acc) {
  rn_model *m = &f->m;
  op->acc_in = acc;
  rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  size_t nx = numel(x->shape), ny = numel(y->shape), nw = (size_t)op->cout * op->k * op->k * x->shape.c;
  rn_error err = {{0}};
  fill(x->data, nx, &f->rng);
  fill(m->params + op->param, nw, &f->rng);
  fill(y->grad, ny, &f->rng);
  fill(x->grad, nx, &f->rng);
  double *want_y = calloc(ny, sizeof *want_y), *want_dx = calloc(nx, sizeof *want_dx),
         *want_dw = calloc(nw, sizeof *want_dw);
  for (size_t i = 0; acc && i < nx; i++) want_dx[i] = x->grad[i];
  naive_conv(op, x->shape, y->shape, x->data, m->params + op->param, y->grad, want_y, want_dx, want_dw);
  ck_assert_msg(m->be->forward[OP_CONV](m, op, 1, &err) == 0, "%s", err.msg);
  expect_close(y->data, want_y, ny, 1e-5, "y");
  ck_assert_msg(m->be->backward[OP_CONV](m, op, 1, &err) == 0, "%s", err.msg);
  expect_close(m->grads + op->param, want_dw, nw, 1e-5, "dw");
  expect_close(x->grad, want_dx, nx, 1e-5, "dx");
  free(want_y), free(want_dx), free(want_dw);
}

static void check_conv(int k, int stride, int acc) {
  fixture *f = make();
  check_conv_op(f, find(&f->m, OP_CONV, k, stride), acc);
  destroy(f);
}

START_TEST(conv_3x3_stride_1) { check_conv(3, 1, 0); }
END_TEST
START_TEST(conv_3x3_stride_2) { check_conv(3, 2, 0); }
END_TEST
START_TEST(conv_1x1_stride_2_added) { check_conv(1, 2, 1); }
END_TEST
START_TEST(conv_3x3_stride_1_added) { check_conv(3, 1, 1); }
END_TEST

/* 3x3 stride-1 convolutions of 32 channels and more go through Winograd on
 * blocked copies (where oneDNN has it: AVX-512), the added gradient through
 * a reorder that adds. */
START_TEST(conv_3x3_wide) {
  fixture *f = make();
  check_conv_op(f, find_wide(&f->m, OP_CONV, 3, 1, 32), 0);
  check_conv_op(f, find_wide(&f->m, OP_CONV, 3, 1, 64), 1);
  destroy(f);
}
END_TEST

/* The primitives made for one batch size are made again for another (as
 * when a learned stride changes a feature map's size), and compute it. */
START_TEST(conv_follows_shape_changes) {
  fixture *f = make();
  rn_error err = {{0}};
  rn_op *op = find(&f->m, OP_CONV, 3, 1);
  check_conv_op(f, op, 0);
  ck_assert_msg(rn_model_shapes(&f->m, 3, &err) == 0, "%s", err.msg);
  check_conv_op(f, op, 0);
  ck_assert_msg(rn_model_shapes(&f->m, 1, &err) == 0, "%s", err.msg);
  check_conv_op(f, op, 1);
  destroy(f);
}
END_TEST

/* ------------------------------------------------------- batch norm + ReLU */

/* Per channel of x (rows, c): the mean and the biased variance. */
static void moments(const float *x, size_t rows, int c, double *mean, double *var) {
  for (int j = 0; j < c; j++) {
    double s = 0.0, q = 0.0;
    for (size_t r = 0; r < rows; r++) s += x[r * c + j];
    mean[j] = s / rows;
    for (size_t r = 0; r < rows; r++) q += (x[r * c + j] - mean[j]) * (x[r * c + j] - mean[j]);
    var[j] = q / rows;
  }
}

/* y = relu(gamma xhat + beta); with dy, dx (added to what dx holds) and
 * dgamma, dbeta (2c) through the batch statistics mean, var. */
static void naive_bnrelu(const float *x, size_t rows, int c, const float *gb, const double *mean, const double *var,
                         const float *dy, double *y, double *dx, double *dgb) {
  for (int j = 0; j < c; j++) {
    double inv = 1.0 / sqrt(var[j] + 1e-5), sdz = 0.0, sdzx = 0.0;
    for (size_t r = 0; r < rows; r++) {
      double xh = (x[r * c + j] - mean[j]) * inv, z = gb[j] * xh + gb[c + j];
      y[r * c + j] = z > 0 ? z : 0.0;
      double dz = z > 0 && dy ? dy[r * c + j] : 0.0;
      sdz += dz, sdzx += dz * xh;
    }
    dgb[j] = sdzx, dgb[c + j] = sdz;
    for (size_t r = 0; dy && r < rows; r++) {
      double xh = (x[r * c + j] - mean[j]) * inv, z = gb[j] * xh + gb[c + j], dz = z > 0 ? dy[r * c + j] : 0.0;
      dx[r * c + j] += gb[j] * inv * (dz - sdz / rows - xh * sdzx / rows);
    }
  }
}

static void check_bnrelu(int acc) {
  fixture *f = make();
  rn_model *m = &f->m;
  rn_op *op = find(m, OP_BNRELU, 0, 0);
  op->acc_in = acc;
  rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  const int c = x->shape.c;
  size_t n = numel(x->shape), rows = n / c;
  rn_error err = {{0}};
  fill(x->data, n, &f->rng);
  for (size_t i = 0; i < n; i++) x->data[i] = x->data[i] * (1.0f + (float)(i % c)) + 0.5f * (float)(i % c);
  float *gb = m->params + op->param, *run = m->state + op->state, old[2 * 64];
  for (int j = 0; j < c; j++) gb[j] = 0.5f + 0.25f * j, gb[c + j] = 0.1f * j - 0.2f;
  fill(run, 2 * (size_t)c, &f->rng);
  for (int j = 0; j < c; j++) run[c + j] = 1.0f + fabsf(run[c + j]), old[j] = run[j], old[c + j] = run[c + j];
  fill(y->grad, n, &f->rng);
  fill(x->grad, n, &f->rng);
  double mean[64], var[64], dgb[128], *want_y = calloc(n, sizeof *want_y), *want_dx = calloc(n, sizeof *want_dx);
  ck_assert_int_le(c, 64);
  for (size_t i = 0; acc && i < n; i++) want_dx[i] = x->grad[i];
  moments(x->data, rows, c, mean, var);
  naive_bnrelu(x->data, rows, c, gb, mean, var, y->grad, want_y, want_dx, dgb);
  ck_assert_msg(m->be->forward[OP_BNRELU](m, op, 1, &err) == 0, "%s", err.msg);
  expect_close(y->data, want_y, n, 1e-5, "y (training)");
  for (int j = 0; j < c; j++) {
    ck_assert_msg(fabs(run[j] - (0.9 * old[j] + 0.1 * mean[j])) < 1e-5, "running mean %d", j);
    ck_assert_msg(fabs(run[c + j] - (0.9 * old[c + j] + 0.1 * var[j] * rows / (rows - 1))) < 1e-5 * (1 + var[j]),
                  "running variance %d", j);
  }
  ck_assert_msg(m->be->backward[OP_BNRELU](m, op, 1, &err) == 0, "%s", err.msg);
  expect_close(x->grad, want_dx, n, 2e-5, "dx");
  expect_close(m->grads + op->param, dgb, 2 * (size_t)c, 2e-5, "dgamma, dbeta");
  free(want_y), free(want_dx);
  destroy(f);
}

START_TEST(bnrelu_training) { check_bnrelu(0); }
END_TEST
START_TEST(bnrelu_training_added) { check_bnrelu(1); }
END_TEST

/* Evaluation normalizes with the running statistics and leaves them. */
START_TEST(bnrelu_evaluation) {
  fixture *f = make();
  rn_model *m = &f->m;
  rn_op *op = find(m, OP_BNRELU, 0, 0);
  rn_tensor *x = &m->tensors[op->in], *y = &m->tensors[op->out];
  const int c = x->shape.c;
  size_t n = numel(x->shape);
  rn_error err = {{0}};
  fill(x->data, n, &f->rng);
  float *gb = m->params + op->param, *run = m->state + op->state;
  double mean[64], var[64], dgb[128], *want = calloc(n, sizeof *want);
  for (int j = 0; j < c; j++)
    gb[j] = 1.5f, gb[c + j] = 0.25f, run[j] = 0.1f * j, run[c + j] = 0.5f + j, mean[j] = run[j], var[j] = run[c + j];
  naive_bnrelu(x->data, n / c, c, gb, mean, var, NULL, want, NULL, dgb);
  ck_assert_msg(m->be->forward[OP_BNRELU](m, op, 0, &err) == 0, "%s", err.msg);
  expect_close(y->data, want, n, 1e-5, "y (evaluation)");
  for (int j = 0; j < c; j++) ck_assert(run[j] == (float)mean[j] && run[c + j] == (float)var[j]);
  free(want);
  destroy(f);
}
END_TEST

/* -------------------------------------------------------- shared buffers */

/* Lives recomputed from the graph, as docs/trainer.md states them: op i's
 * forward at time i, the loss at nops, op i's backward at 2 nops - i; data
 * from its producer to its last reader (forward, loss, or a backward that
 * reads it), a gradient from its last reader's backward to its producer's. */
static void lives(const rn_model *m, int *from, int *to, int *gfrom, int *gto) {
  const int n = m->nops;
  for (int t = 0; t < m->ntensors; t++) from[t] = to[t] = -1, gfrom[t] = 2 * n + 1, gto[t] = 2 * n;
  to[m->logits] = gfrom[m->logits] = n;
  for (int i = 0; i < n; i++) {
    const rn_op *op = &m->ops[i];
    int reads = m->be->backward_reads[op->kind];
    from[op->out] = i, gto[op->out] = 2 * n - i;
    if (reads & RN_READS_OUT) to[op->out] = 2 * n - i;
    const int ins[2] = {op->in, op->kind == OP_ADD ? op->in2 : op->in};
    for (int k = 0; k < 2; k++) {
      to[ins[k]] = (int)fmax(to[ins[k]], reads & RN_READS_IN ? 2 * n - i : i);
      gfrom[ins[k]] = (int)fmin(gfrom[ins[k]], 2 * n - i);
    }
  }
}

/* Two tensors on one buffer never live at once, and sharing saves buffers:
 * gradients, 3 buffers for the whole network; data, in the pooling modes,
 * fewer buffers than tensors (a pooling layer's input is dropped after its
 * forward). */
START_TEST(buffers_shared) {
  const rn_mode modes[] = {RN_STRIDED, RN_SPECTRAL, RN_DIFFSTRIDE};
  for (int k = 0; k < 3; k++) {
    rn_model m;
    rn_rng rng;
    rn_error err = {{0}};
    rn_config c = {modes[k], 0.125f, {1, 1, 2, 2, 2}, 4.0f, 16, 16, 1, 4};
    rn_rng_seed(&rng, 1);
    ck_assert_msg(rn_model_create(&m, &c, &rn_cpu_backend, 1, &rng, &err) == 0, "%s", err.msg);
    int from[RN_MAX_TENSORS], to[RN_MAX_TENSORS], gfrom[RN_MAX_TENSORS], gto[RN_MAX_TENSORS];
    lives(&m, from, to, gfrom, gto);
    for (int a = 0; a < m.ntensors; a++)
      for (int b = a + 1; b < m.ntensors; b++) {
        const rn_tensor *x = &m.tensors[a], *y = &m.tensors[b];
        ck_assert_msg(x->data != y->data || to[a] < from[b] || to[b] < from[a], "data of %d and %d meet", a, b);
        ck_assert_msg(!x->needs_grad || !y->needs_grad || x->grad != y->grad || gto[a] < gfrom[b] ||
                          gto[b] < gfrom[a],
                      "gradients of %d and %d meet", a, b);
      }
    ck_assert_msg(m.grad_bufs.count == 3, "%s: %d gradient buffers", rn_mode_name(modes[k]), m.grad_bufs.count);
    ck_assert_msg(modes[k] == RN_STRIDED || m.data_bufs.count < m.ntensors, "%s: %d data buffers for %d tensors",
                  rn_mode_name(modes[k]), m.data_bufs.count, m.ntensors);
    rn_model_destroy(&m);
  }
}
END_TEST

TCase *ops_tcase(void) {
  TCase *tc = tcase_create("cpu ops");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, conv_3x3_stride_1);
  tcase_add_test(tc, conv_3x3_stride_2);
  tcase_add_test(tc, conv_1x1_stride_2_added);
  tcase_add_test(tc, conv_3x3_stride_1_added);
  tcase_add_test(tc, conv_3x3_wide);
  tcase_add_test(tc, conv_follows_shape_changes);
  tcase_add_test(tc, bnrelu_training);
  tcase_add_test(tc, bnrelu_training_added);
  tcase_add_test(tc, bnrelu_evaluation);
  tcase_add_test(tc, buffers_shared);
  return tc;
}
