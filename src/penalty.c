/* The complexity regularizer J(S) = sum_l c_l prod_{i<=l} 1/(s_h^i s_w^i). */
#include <math.h>

#include "internal.h"

static ds_status check_penalty(int layers, const float *strides, const float *weights,
                               const float *value) {
  if (layers < 0)
    return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "layers: %d is negative", layers);
  if (!value) return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "value: NULL pointer");
  if (layers > 0 && !strides)
    return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "strides: NULL pointer");
  for (int i = 0; i < 2 * layers; i++)
    if (!isfinite(strides[i]) || strides[i] <= 0.0f)
      return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "strides[%d]: %g, must be finite and > 0",
                      i, (double)strides[i]);
  for (int l = 0; weights && l < layers; l++)
    if (!isfinite(weights[l]))
      return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "weights[%d]: %g, must be finite", l,
                      (double)weights[l]);
  return DS_OK;
}

/* With q_l = c_l prod_{i<=l} 1/(s_h^i s_w^i), J = sum_l q_l and, since every
 * q_l with l >= j holds 1/s^j once, dJ/ds^j = -(sum_{l>=j} q_l) / s^j. The
 * backward pass rebuilds each product from the last one instead of storing
 * them. */
static double weight(const float *weights, int l) { return weights ? weights[l] : 1.0; }

ds_status ds_complexity_penalty(int layers, const float *strides, const float *weights,
                                float *value, float *grad) {
  ds_status st = check_penalty(layers, strides, weights, value);
  if (st != DS_OK) return st;
  double prod = 1.0, total = 0.0;
  for (int l = 0; l < layers; l++) {
    prod /= (double)strides[2 * l] * (double)strides[2 * l + 1];
    total += weight(weights, l) * prod;
  }
  double suffix = 0.0;
  for (int l = layers - 1; grad && l >= 0; l--) {
    suffix += weight(weights, l) * prod;
    grad[2 * l] = (float)(-suffix / strides[2 * l]);
    grad[2 * l + 1] = (float)(-suffix / strides[2 * l + 1]);
    prod *= (double)strides[2 * l] * (double)strides[2 * l + 1];
  }
  *value = (float)total;
  return DS_OK;
}
