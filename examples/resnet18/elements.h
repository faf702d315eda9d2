/* Per-element math of the trainer, written once and compiled for the host
 * (the core and the CPU backend) and for the device (the CUDA backend), so
 * that the CPU tests cover what the GPU runs. */
#ifndef RN_ELEMENTS_H
#define RN_ELEMENTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define RN_HD static __host__ __device__ __forceinline__
#else
#define RN_HD static inline
#endif

/* What rendering a planned batch reads (rn_batch_plan, rn.h), as pointers
 * on the device that renders it. */
typedef struct rn_render {
  const uint8_t *images;           /* the dataset: count x h x w x c bytes */
  const int *idx, *dy, *dx, *flip; /* the plan's choices, n each */
  int n, first, h, w, c, mix;      /* rendered: images first, first + 1, ... */
  float lam, mean[3], std[3];
} rn_render;

/* Channel ch at (y, x) of batch image i before mixing: its source image
 * shifted by (dy, dx), mirrored when flip, normalized; 0 (the mean) where
 * the shift leaves the image. */
RN_HD float rn_render_pixel(const rn_render *r, int i, int y, int x, int ch) {
  int sy = y + r->dy[i], sx = (r->flip[i] ? r->w - 1 - x : x) + r->dx[i];
  if (sy < 0 || sy >= r->h || sx < 0 || sx >= r->w) return 0.0f;
  const uint8_t *img = r->images + (size_t)r->idx[i] * r->h * r->w * r->c;
  return (img[((size_t)sy * r->w + sx) * r->c + ch] / 255.0f - r->mean[ch]) / r->std[ch];
}

/* Element e of x (count, h, w, c), whose image k is the plan's image i =
 * first + k; with mix, image i is lam * itself + (1 - lam) * image n-1-i. */
RN_HD float rn_render_element(const rn_render *r, size_t e) {
  int ch = (int)(e % r->c);
  size_t p = e / r->c;
  int x = (int)(p % r->w), y = (int)(p / r->w % r->h), i = r->first + (int)(p / r->w / r->h);
  float v = rn_render_pixel(r, i, y, x, ch);
  return r->mix ? r->lam * v + (1 - r->lam) * rn_render_pixel(r, r->n - 1 - i, y, x, ch) : v;
}

/* One momentum-SGD update: v = momentum * v + g + wd * p, then p -= lr * v. */
RN_HD void rn_sgd_element(float *p, float g, float *v, float lr, float momentum, float wd) {
  float nv = momentum * *v + g + wd * *p;
  *v = nv;
  *p -= lr * nv;
}

RN_HD float rn_relu(float z) { return z > 0.0f ? z : 0.0f; }

/* The gradient through a ReLU, from its input or its output (both are > 0
 * exactly where it passes). */
RN_HD float rn_relu_grad(float z, float dy) { return z > 0.0f ? dy : 0.0f; }

#endif
