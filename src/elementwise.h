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
 *   - complex numbers are interleaved (re, im) pairs of floats.
 */
#ifndef DS_ELEMENTWISE_H
#define DS_ELEMENTWISE_H

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

/* Value of the ramp's argument (R + T - p) / R; the mask is it clipped to [0, 1]. */
DS_HD double ds_ramp_arg(double t, double p, double r) { return (r + t - p) / r; }

DS_HD double ds_ramp(double t, double p, double r) {
  double v = ds_ramp_arg(t, p, r);
  return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
}

/* Spectrum row (0..H-1) of cropped row i: the first rows_lo cropped rows are
 * the low positive frequencies, the rest the highest rows (negative ones). */
DS_HD int ds_source_row(int i, int h, int out_h, int rows_lo) {
  return i < rows_lo ? i : h - out_h + i;
}

/* Weight c_k of bin k in a real inverse transform of length n: bins 0 and
 * (for even n) n/2 appear once in the full spectrum, the others twice. */
DS_HD float ds_bin_weight(int k, int n) { return (k == 0 || 2 * k == n) ? 1.0f : 2.0f; }

/* Two real images travel through one complex FFT as a + i b. Given the
 * packed spectrum F at bin (r, k) and at its mirror (-r, -k), the spectra
 * of the two images at (r, k) are A = (F + conj(Fm)) / 2 and
 * B = (F - conj(Fm)) / (2i). */
DS_HD void ds_unpack_pair(const float *f, const float *fm, float *a, float *b) {
  float fr = f[0], fi = f[1], mr = fm[0], mi = fm[1];
  a[0] = 0.5f * (fr + mr), a[1] = 0.5f * (fi - mi);
  b[0] = 0.5f * (fi + mi), b[1] = 0.5f * (mr - fr);
}

/* The packed value a + i b of two spectra at one bin. */
DS_HD void ds_pack_pair(float *p, const float *a, const float *b) {
  float ar = a[0], ai = a[1], br = b[0], bi = b[1];
  p[0] = ar - bi, p[1] = ai + br;
}

/* numpy's irfft2 reads only the real part of bins 0 and n/2 of each row
 * after the inverse down the columns; for the column that is the Hermitian
 * part along the height, (z[i] + conj(z[-i])) / 2. Applied to the pair of
 * rows i and -i of such a column (the same element when i == -i), it makes
 * the spectrum Hermitian, so a full complex inverse (cuFFT's c2r, or the
 * packed pair) computes the convention. */
DS_HD void ds_hermitian_pair(float *z, float *zm) {
  float re = 0.5f * (z[0] + zm[0]), im = z == zm ? 0.0f : 0.5f * (z[1] - zm[1]);
  z[0] = re, z[1] = im;
  zm[0] = re, zm[1] = -im;
}

/* Pixel offset of image `img` (= n*C + c) in a tensor of C channels and hw
 * pixels per image; pixel p of that image is at offset + p * ds_pixel_step. */
DS_HD long long ds_image_offset(long long img, int c, long long hw, int nhwc) {
  return nhwc ? (img / c) * hw * c + img % c : img * hw;
}

DS_HD int ds_pixel_step(int c, int nhwc) { return nhwc ? c : 1; }

/* dst = src * s for one complex number. */
DS_HD void ds_complex_scale(float *dst, const float *src, float s) {
  dst[0] = src[0] * s;
  dst[1] = src[1] * s;
}

/* Re(conj(g) * x): one image's contribution to dL/dmask at a kept bin. */
DS_HD float ds_grad_product(const float *g, const float *x) { return g[0] * x[0] + g[1] * x[1]; }

#endif /* DS_ELEMENTWISE_H */
