/* One element of each element-wise step of the CUDA path, as plain
 * functions of the crop geometry compiled for the device (the kernels in
 * src/cuda are one call each) and for the host (tests/test_cuda_elements.c
 * runs them around FFTW's 2-D real transforms, which assume a Hermitian
 * spectrum as cuFFT's do, and checks the results against the golden cases).
 * Spectra are one image's rfft2 half spectra, complex as (re, im) floats:
 * X is h x kw, Z and Y are out_h x kc. */
#ifndef DS_SPECTRAL_ELEMENTS_H
#define DS_SPECTRAL_ELEMENTS_H

#include "masks.h"

/* Z[i][k] (bin e = i*kc + k) from X: s X[r][k] with
 * s = m_h(i) m_w(k) / (out_h out_w), or on the self-mirrored bins (0 and
 * out_w/2) the Hermitian part (s X[r][k] + conj(s' X[r'][k])) / 2, r' the
 * spectrum row of cropped row -i. */
DS_HD void ds_crop_element(const ds_crop *g, const float *x, float *z, long long e) {
  int k = (int)(e % g->kc), i = (int)(e / g->kc), im = ds_mirror(i, g->out_h);
  float area = (float)g->out_h * (float)g->out_w, s = ds_mask_row(g, i) * ds_mask_bin(g, k) / area;
  const float *v = x + 2 * ((long long)ds_source_row(i, g->h, g->out_h, g->rows_lo) * g->kw + k);
  if (k != 0 && 2 * k != g->out_w) {
    ds_complex_scale(z + 2 * e, v, s);
    return;
  }
  const float *vm = x + 2 * ((long long)ds_source_row(im, g->h, g->out_h, g->rows_lo) * g->kw + k);
  float conj_vm[2] = {vm[0], -vm[1]}, sm = ds_mask_row(g, im) * ds_mask_bin(g, k) / area;
  ds_complex_combine(z + 2 * e, v, 0.5f * s, conj_vm, 0.5f * sm);
}

/* D[r][k] (element e = r*kw + k of the h x kw spectrum of dx) from
 * Y = rfft2(dy): t(i, k) Y[i][k] at kept rows and bins, with
 * t = c_k m_h m_w / (out_h out_w c'_k); on columns 0 and w/2 the Hermitian
 * part along the height; zero elsewhere. */
DS_HD void ds_uncrop_element(const ds_crop *g, const float *y, float *d, long long e) {
  int k = (int)(e % g->kw), r = (int)(e / g->kw);
  float out[2] = {0.0f, 0.0f};
  if (k < g->kc) {
    float area = (float)g->out_h * (float)g->out_w;
    float base = ds_bin_weight(k, g->out_w) * ds_mask_bin(g, k) / (area * ds_bin_weight(k, g->w));
    int i = ds_cropped_row(r, g->h, g->out_h, g->rows_lo), self = k == 0 || 2 * k == g->w;
    int mi = self ? ds_cropped_row(ds_mirror(r, g->h), g->h, g->out_h, g->rows_lo) : -1;
    float t = i < 0 ? 0.0f : base * ds_mask_row(g, i) * (self ? 0.5f : 1.0f);
    float tm = mi < 0 ? 0.0f : 0.5f * base * ds_mask_row(g, mi);
    const float *a = y + 2 * ((long long)(i < 0 ? 0 : i) * g->kc + k);
    const float *b = y + 2 * ((long long)(mi < 0 ? 0 : mi) * g->kc + k);
    float conj_b[2] = {b[0], -b[1]};
    ds_complex_combine(out, a, t, conj_b, tm);
  }
  d[2 * e] = out[0], d[2 * e + 1] = out[1];
}

/* Where kept bin e = i*kc + k (cropped row i, bin k) lies in X (h x kw):
 * r*kw + k, r the spectrum row of cropped row i. A reserve
 * (ds_diffstride_forward_training) holds X at the kept bins, element e at e. */
DS_HD long long ds_kept_bin(const ds_crop *g, long long e) {
  int k = (int)(e % g->kc), i = (int)(e / g->kc);
  return (long long)ds_source_row(i, g->h, g->out_h, g->rows_lo) * g->kw + k;
}

/* Re(conj(Y[i][k]) X[r][k]) for kept bin e = i*kc + k of one image: its
 * term of the per-bin sums the stride gradient is formed from
 * (ds__mask_gradients). x is X (h x kw), or with kept the image's X at the
 * kept bins only (out_h x kc, a reserve's). */
DS_HD double ds_grad_element(const ds_crop *g, const float *y, const float *x, int kept, long long e) {
  return ds_grad_product(y + 2 * e, x + 2 * (kept ? e : ds_kept_bin(g, e)));
}

#endif /* DS_SPECTRAL_ELEMENTS_H */
