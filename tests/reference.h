/* An independent float64 implementation of docs/algorithm.md for the
 * tests: naive DFTs over the full spectrum, no FFT library, none of the
 * library's code. One image at a time. Its discrete decisions (sizes, kept
 * bins) are evaluated in double: the tests use it away from the strides
 * where the layer is not differentiable (ref_kink_distance), where float32
 * and double decide alike; tests/vectors pins the float32 decisions. */
#ifndef DS_TEST_REFERENCE_H
#define DS_TEST_REFERENCE_H

typedef struct ref_layer {
  int diffstride; /* 1: DiffStride, 0: spectral pooling */
  double r;       /* smoothness (DiffStride) */
  int cropping, shared;
  double lower, upper;
  double s[2]; /* strides as given */
} ref_layer;

/* Output size of the layer on an h x w image. */
void ref_output_size(const ref_layer *l, int h, int w, int *out_h, int *out_w);
/* y (out_h x out_w) of one h x w image x. */
void ref_forward(const ref_layer *l, int h, int w, const double *x, double *y);
/* How far the strides are from any point where the layer is not
 * differentiable (crop edges, ramp ends, t = 2, minimum stride, limits), in
 * stride units; finite differences with steps well below it are valid. */
double ref_kink_distance(const ref_layer *l, int h, int w);

#endif
