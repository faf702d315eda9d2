/*
 * Per-element math of DiffStride and spectral pooling, written once as plain
 * inline functions that compile for the host (src/cpu) and, under nvcc, for
 * the device (src/cuda). The CPU tests therefore cover what the GPU runs.
 *
 * Vocabulary shared by both backends:
 *   - the input image is H x W; its rfft2 spectrum is H x KW, KW = W/2+1;
 *   - the crop keeps OUT_H rows (ROWS_LO at the start, OUT_H-ROWS_LO at the
 *     end) and KC = OUT_W/2+1 columns, in that order: "cropped row i" and
 *     "bin k" index the OUT_H x KC cropped spectrum;
 *   - two real images a, b travel as one complex image a + i b; its full
 *     H x W spectrum F holds both, since a real image's spectrum at -k is
 *     the conjugate of that at k (a real mask keeps this symmetry, so
 *     masking and cropping the pair is moving scaled values of F);
 *   - complex numbers are interleaved (re, im) pairs of floats.
 */
#ifndef DS_ELEMENTWISE_H
#define DS_ELEMENTWISE_H

#include <math.h>

#ifdef __CUDACC__
#define DS_HD __host__ __device__ __forceinline__
#else
#define DS_HD static inline
#endif

/* The reference layer's vertical distance of spectrum row r (H rows): it
 * builds a centred distance array and fftshifts it, which gives row H-k
 * (frequency -k) the distance k-1 and, for odd H, the DC row distance 1. */
DS_HD int ds_position_h(int r, int h) {
  if (h % 2 == 0) return r < h / 2 ? r : h - 1 - r;
  return r < (h - 1) / 2 ? r + 1 : h - 1 - r;
}

/* IEEE float32 operations, one rounding each and never fused into an FMA:
 * the layer's discrete decisions (sizes, kept bins, where the stride
 * gradient passes) are made in the reference layer's float32 arithmetic
 * (docs/algorithm.md, "Discrete decisions in float32"). The device uses
 * nvcc's round-to-nearest intrinsics, which it never contracts; the host
 * code is compiled with -ffp-contract=off and FLT_EVAL_METHOD 0 (checked
 * in geometry.c). */
DS_HD float ds_f32_add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return (float)(a + b);
#endif
}

DS_HD float ds_f32_sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return (float)(a - b);
#endif
}

DS_HD float ds_f32_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return (float)(a * b);
#endif
}

DS_HD float ds_f32_div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return (float)(a / b);
#endif
}

/* The ramp's argument v = c ((R + T) - p) at position p, with c = f(1/R),
 * in float32 in the reference's order of operations. The mask is v clipped
 * to [0, 1]; a bin is kept when v > 0; the ramp passes the stride gradient
 * when 0 <= v <= 1. T = +inf (a 1-D layer's rows) gives v = +inf. */
DS_HD float ds_ramp_arg(float t, int p, float r, float c) {
  return ds_f32_mul(c, ds_f32_sub(ds_f32_add(r, t), (float)p));
}

DS_HD float ds_ramp(float t, int p, float r, float c) {
  float v = ds_ramp_arg(t, p, r, c);
  return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

/* Spectrum row (0..H-1) of cropped row i: the first rows_lo cropped rows are
 * the low positive frequencies, the rest the highest rows (negative ones). */
DS_HD int ds_source_row(int i, int h, int out_h, int rows_lo) {
  return i < rows_lo ? i : h - out_h + i;
}

/* Weight c_k of bin k in a real inverse transform of length n: bins 0 and
 * (for even n) n/2 appear once in the full spectrum, the others twice. */
DS_HD float ds_bin_weight(int k, int n) { return (k == 0 || 2 * k == n) ? 1.0f : 2.0f; }

/* The cropped row holding spectrum row r, or -1 when r is not kept (the
 * inverse of ds_source_row). */
DS_HD int ds_cropped_row(int r, int h, int out_h, int rows_lo) {
  if (r < rows_lo) return r;
  return r >= h - (out_h - rows_lo) ? r - (h - out_h) : -1;
}

/* Index of the frequency -i on an axis of n bins (no division: it runs in
 * inner loops). */
DS_HD int ds_mirror(int i, int n) { return i ? n - i : 0; }

/* dst = sa * a + sb * b for complex a, b (either scale may be 0, and then
 * its operand is not read). Columns 0 and n/2 of a spectrum are their own
 * mirrors: there the spec's convention (numpy's irfft2 reads only the real
 * part of those bins after the inverse down the columns) is the Hermitian
 * part along the height, (z[i] + conj(z[-i])) / 2, which on a packed pair
 * of images is this with sa = sb = 1/2 and b the packed value at -i. */
DS_HD void ds_complex_combine(float *dst, const float *a, float sa, const float *b, float sb) {
  float re = 0.0f, im = 0.0f;
  if (sa != 0.0f) re = sa * a[0], im = sa * a[1];
  if (sb != 0.0f) re += sb * b[0], im += sb * b[1];
  dst[0] = re, dst[1] = im;
}

/* The mask-gradient terms of the two images of a packed pair at one bin,
 * without unpacking their spectra: with Z = A + iB the packed spectrum of
 * x's two images and Y = C + iD that of dy's, z and y their values at the
 * bin and zm, ym at its mirror (-r, -k), p[0] = Re(conj(C) A) and
 * p[1] = Re(conj(D) B). (A = (Z + conj(Zm)) / 2, B = (Z - conj(Zm)) / 2i
 * and the same for C, D; the cross terms cancel.) The terms are grouped
 * by real and imaginary parts, as the CPU's vector loop adds them
 * (cpu_sums.c). */
DS_HD void ds_pair_grad_products(const float *z, const float *zm, const float *y, const float *ym,
                                 float p[2]) {
  float u = (y[0] * z[0] + ym[0] * zm[0]) + (y[1] * z[1] + ym[1] * zm[1]);
  float v = (y[0] * zm[0] + ym[0] * z[0]) - (y[1] * zm[1] + ym[1] * z[1]);
  p[0] = 0.25f * (u + v), p[1] = 0.25f * (u - v);
}

/* 2^e within a normal float's exponent range for both e and -e. */
DS_HD int ds_clamp_shift(int e) { return e < -125 ? -125 : (e > 126 ? 126 : e); }

/* The binary exponents, as powers of two, that the two images of a pair are
 * scaled by (exactly) before their shared transform, from their largest
 * magnitudes m0, m1 (each image's result is scaled back):
 *   - the first image keeps its scale while its exponent lies in
 *     [-DS_SAFE_EXPONENT, DS_SAFE_EXPONENT]; outside, it is brought to
 *     exponent 0, so that transforms of up to 2^31 points stay finite and
 *     normal however close to FLT_MAX or to 0 the image is;
 *   - the second is brought to the first's (scaled) exponent: each adds
 *     rounding error to the other in proportion to the other's size, so
 *     equal sizes keep each image's error relative to its own size; alone
 *     (the first all zeros) it follows the first's rule.
 * No scaling for NaN or infinite maxima (the result is not finite anyway).
 * Clamped so that 2^s and 2^-s are normal floats. */
#define DS_SAFE_EXPONENT 32
DS_HD void ds_pair_shifts(float m0, float m1, int shift[2]) {
  int e0 = 0, e1 = 0;
  shift[0] = shift[1] = 0;
  if (!(m0 <= 3.4028235e38f && m1 <= 3.4028235e38f)) return;
  frexpf(m0, &e0);
  frexpf(m1, &e1);
  if (m0 > 0.0f && (e0 > DS_SAFE_EXPONENT || e0 < -DS_SAFE_EXPONENT)) shift[0] = ds_clamp_shift(-e0);
  if (m1 > 0.0f && m0 > 0.0f) shift[1] = ds_clamp_shift(e0 + shift[0] - e1);
  if (m1 > 0.0f && m0 == 0.0f && (e1 > DS_SAFE_EXPONENT || e1 < -DS_SAFE_EXPONENT)) shift[1] = ds_clamp_shift(-e1);
}

/* Pixel offset of image `img` (= n*C + c) in a tensor of C channels and hw
 * pixels per image; pixel p of that image is at offset + p * ds_pixel_step. */
DS_HD long long ds_image_offset(long long img, int c, long long hw, int nhwc) {
  return nhwc ? (img / c) * hw * c + img % c : img * hw;
}

DS_HD int ds_pixel_step(int c, int nhwc) { return nhwc ? c : 1; }

/* dst = src * s for one complex number. */
DS_HD void ds_complex_scale(float *dst, const float *src, float s) {
  float re = src[0] * s, im = src[1] * s;
  dst[0] = re, dst[1] = im;
}

/* Re(conj(g) * x): one image's contribution to dL/dmask at a kept bin. */
DS_HD float ds_grad_product(const float *g, const float *x) { return g[0] * x[0] + g[1] * x[1]; }

#endif /* DS_ELEMENTWISE_H */
