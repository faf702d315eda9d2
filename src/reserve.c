/* The reserve of the DiffStride training calls (api.c): the forward keeps
 * there what the backward would otherwise recompute from x (x's spectra at
 * the kept bins). A header saying what it was written for, then the
 * backend's spectra:
 *   bytes [0, 64):   reserve_header;
 *   bytes [64, ...): CPU: per pair of images, 2 packing scales and
 *                    out_h x 2*kc complex floats (cpu_crop.c, pair_block);
 *                    CUDA: per image, out_h x kc complex floats
 *                    (ds_kept_bin).
 * The size is the larger, the CPU's. It lives in the context's memory (a
 * device pointer on a CUDA context), and the header names the device. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define RESERVE_MAGIC 0x3156525344ull /* "DSRV1" */
#define RESERVE_HEADER 64

typedef struct reserve_header {
  uint64_t magic;
  int64_t images;
  int32_t h, w, out_h, out_w, rows_lo, kc, device, unused;
} reserve_header;

_Static_assert(sizeof(reserve_header) <= DS_COPY_MAX && DS_COPY_MAX <= RESERVE_HEADER,
               "a header travels in one small copy and fits before the spectra");

static reserve_header header_of(const ds_context *ctx, const ds_crop *g, const ds_batch *b) {
  return (reserve_header){RESERVE_MAGIC, (int64_t)b->n * b->c, g->h,       g->w, g->out_h,
                          g->out_w,      g->rows_lo,             g->kc,      (int32_t)ctx->device, 0};
}

/* Bytes of the reserve of a checked batch: 64 + ceil(n*c/2) pairs of
 * 8 + 16*out_h*kc (n*c*h*w*16 fits a ptrdiff_t, and this is at most about
 * half of that). */
size_t ds__reserve_bytes(const ds_crop *g, const ds_batch *b) {
  size_t pairs = ((size_t)b->n * (size_t)b->c + 1) / 2;
  return RESERVE_HEADER + pairs * (2 + 4 * (size_t)g->out_h * (size_t)g->kc) * sizeof(float);
}

ds_status ds__reserve_check(ds_context *ctx, const ds_crop *g, const ds_batch *b, const void *reserve,
                            size_t bytes) {
  ds_status st = ds__check_ptr(ctx, reserve, "reserve");
  if (st != DS_OK) return st;
  if ((uintptr_t)reserve % 8 != 0)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "reserve: %p is not 8-byte aligned", reserve);
  if (bytes < ds__reserve_bytes(g, b))
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "reserve_bytes: %zu, this call needs %zu", bytes,
                    ds__reserve_bytes(g, b));
  return DS_OK;
}

static const char *device_name(int32_t device) { return device == DS_DEVICE_CUDA ? "CUDA" : "CPU"; }

ds_status ds__reserve_open(ds_context *ctx, const ds_crop *g, const ds_batch *b, const void *reserve) {
  reserve_header have, want = header_of(ctx, g, b);
  ds_status st = ctx->backend->copy(ctx, &have, reserve, sizeof have, 0);
  if (st != DS_OK) return st;
  if (have.magic != RESERVE_MAGIC)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "reserve: not written by a training forward");
  if (memcmp(&have, &want, sizeof have) != 0)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT,
                    "reserve: written for %lld images of %dx%d -> %dx%d (%s), this call has %lld of "
                    "%dx%d -> %dx%d (%s)",
                    (long long)have.images, have.h, have.w, have.out_h, have.out_w, device_name(have.device),
                    (long long)want.images, want.h, want.w, want.out_h, want.out_w, device_name(want.device));
  return DS_OK;
}

/* The whole RESERVE_HEADER bytes are written, the header and zeros after
 * it, so that a reserve's content is a function of the call alone. */
ds_status ds__reserve_seal(ds_context *ctx, const ds_crop *g, const ds_batch *b, void *reserve) {
  unsigned char bytes[RESERVE_HEADER] = {0};
  reserve_header hd = header_of(ctx, g, b);
  memcpy(bytes, &hd, sizeof hd);
  return ctx->backend->copy(ctx, reserve, bytes, sizeof bytes, 1);
}

float *ds__reserve_spectra(const void *reserve) { return (float *)((uintptr_t)reserve + RESERVE_HEADER); }
