/* The masks of a crop, per cropped row and per kept bin: plain functions of
 * the crop geometry compiled for the host (geometry.c) and the device (the
 * CUDA kernels compute them in place instead of reading tables). */
#ifndef DS_MASKS_H
#define DS_MASKS_H

#include "elementwise.h"
#include "internal.h"

/* m_h of cropped row i: the ramp at the reference layer's vertical
 * distance of its spectrum row (1 for spectral pooling). */
DS_HD float ds_mask_row(const ds_crop *g, int i) {
  if (!g->masked) return 1.0f;
  int r = ds_source_row(i, g->h, g->out_h, g->rows_lo);
  return ds_ramp(g->t_h, ds_position_h(r, g->h), g->r, g->rinv);
}

/* m_w of bin k (1 for spectral pooling). */
DS_HD float ds_mask_bin(const ds_crop *g, int k) {
  return g->masked ? ds_ramp(g->t_w, k, g->r, g->rinv) : 1.0f;
}

#endif /* DS_MASKS_H */
