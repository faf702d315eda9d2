/* Learns a DiffStride stride by gradient descent through the public API.
 *
 * A 32x32 test image x goes through DiffStride with cropping off (so the
 * output keeps the input's size whatever the stride) at hidden strides
 * (2.5, 1.6); the result is the target. Starting from strides (1.2, 3.5),
 * gradient descent (Adam) on L = 1/2 |y(s) - target|^2 recovers the hidden strides
 * using only ds_diffstride_backward's dstrides, storing the effective strides
 * back after each step as the reference layer does. Every few steps it
 * prints the loss, the strides and the output size the layer would have
 * with cropping on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffstride.h"

enum { H = 32, W = 32, STEPS = 200 };

#define CHECK(call)                                                                     \
  do {                                                                                  \
    ds_status st_ = (call);                                                             \
    if (st_ != DS_OK) {                                                                 \
      fprintf(stderr, "%s: %s (%s)\n", #call, ds_status_string(st_), ds_last_error()); \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

/* x is (1,1,H,W): two gratings and a blob, so every frequency band counts. */
static void test_image(float *x) {
  for (int a = 0; a < H; a++)
    for (int b = 0; b < W; b++) {
      double blob = exp(-((a - 12.0) * (a - 12.0) + (b - 19.0) * (b - 19.0)) / 18.0);
      x[a * W + b] = (float)(sin(0.9 * a) + 0.7 * cos(1.7 * b + 0.4 * a) + 2.0 * blob);
    }
}

/* One Adam step (lr 0.05, betas 0.9/0.999) on the two strides. */
static void adam(float s[2], const float g[2], double m[2], double v[2], int t) {
  for (int i = 0; i < 2; i++) {
    m[i] = 0.9 * m[i] + 0.1 * g[i];
    v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * g[i];
    double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
    s[i] -= (float)(0.05 * mh / (sqrt(vh) + 1e-8));
  }
}

static double loss_and_grad(const float *y, const float *target, float *dy) {
  double l = 0.0;
  for (int i = 0; i < H * W; i++) {
    dy[i] = y[i] - target[i];
    l += 0.5 * (double)dy[i] * dy[i];
  }
  return l;
}

int main(void) {
  static float x[H * W], y[H * W], target[H * W], dy[H * W];
  const float hidden[2] = {2.5f, 1.6f};
  float s[2] = {1.2f, 3.5f}, ds[2];
  double m[2] = {0, 0}, v[2] = {0, 0};
  ds_context *ctx;
  ds_diffstride_desc d;
  ds_diffstride_desc_init(&d);
  d.cropping = 0;
  test_image(x);
  CHECK(ds_context_create(DS_DEVICE_CPU, &ctx));
  CHECK(ds_diffstride_forward(ctx, &d, 1, 1, H, W, hidden, x, H, W, target));
  printf("libdiffstride %s: learning the strides of a DiffStride layer\n", ds_version_string());
  printf("hidden strides (%.2f, %.2f); start (%.2f, %.2f)\n\n", (double)hidden[0], (double)hidden[1],
         (double)s[0], (double)s[1]);
  printf("%5s %12s %9s %9s %14s\n", "step", "loss", "s_h", "s_w", "cropped size");
  for (int step = 0; step <= STEPS; step++) {
    CHECK(ds_diffstride_forward(ctx, &d, 1, 1, H, W, s, x, H, W, y));
    double l = loss_and_grad(y, target, dy);
    CHECK(ds_diffstride_backward(ctx, &d, 1, 1, H, W, s, x, H, W, dy, NULL, ds));
    ds_diffstride_desc cropped = d;
    cropped.cropping = 1;
    int oh, ow;
    CHECK(ds_diffstride_output_size(&cropped, H, W, s, &oh, &ow));
    if (step % 20 == 0) printf("%5d %12.6f %9.4f %9.4f %8d x %-4d\n", step, l, (double)s[0], (double)s[1], oh, ow);
    adam(s, ds, m, v, step + 1);
    CHECK(ds_diffstride_effective_strides(&d, H, W, s, s));
  }
  int ok = fabsf(s[0] - hidden[0]) < 0.05f && fabsf(s[1] - hidden[1]) < 0.05f;
  printf("\nlearned strides (%.3f, %.3f), hidden (%.2f, %.2f): %s\n", (double)s[0], (double)s[1],
         (double)hidden[0], (double)hidden[1], ok ? "recovered" : "NOT recovered");
  ds_context_destroy(ctx);
  return ok ? 0 : 1;
}
