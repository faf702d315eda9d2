/* Per-element math of the trainer, written once and compiled for the host
 * (the core and the CPU backend) and for the device (the CUDA backend), so
 * that the CPU tests cover what the GPU runs. */
#ifndef RN_ELEMENTS_H
#define RN_ELEMENTS_H

#ifdef __CUDACC__
#define RN_HD static __host__ __device__ __forceinline__
#else
#define RN_HD static inline
#endif

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
