/* Context life cycle; the backend (CPU or CUDA) owns everything else. */
#include <stdlib.h>

#include "internal.h"

ds_status ds_context_create(ds_device device, ds_context **ctx) {
  if (!ctx) return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "ctx: NULL pointer");
  *ctx = NULL;
  if (device != DS_DEVICE_CPU && device != DS_DEVICE_CUDA)
    return ds__fail(NULL, DS_ERR_INVALID_ARGUMENT, "device: %d is not a ds_device", (int)device);
  ds_context *c = calloc(1, sizeof *c);
  if (!c) return ds__fail(NULL, DS_ERR_OUT_OF_MEMORY, "ds_context_create: out of memory");
  c->device = device;
  ds_status st = device == DS_DEVICE_CPU ? ds__cpu_open(c) : ds__cuda_open(c);
  if (st != DS_OK) {
    free(c);
    return st;
  }
  *ctx = c;
  return DS_OK;
}

void ds_context_destroy(ds_context *ctx) {
  if (!ctx) return;
  if (ctx->backend) ctx->backend->destroy(ctx->state);
  free(ctx);
}

ds_status ds_context_set_threads(ds_context *ctx, int threads) {
  ds_status st = ds__check_context(ctx);
  if (st != DS_OK) return st;
  if (threads < 0)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "threads: %d is negative", threads);
  return ctx->backend->set_threads(ctx, threads);
}

ds_status ds_context_set_reproducible(ds_context *ctx, int reproducible) {
  ds_status st = ds__check_context(ctx);
  if (st != DS_OK) return st;
  if (reproducible != 0 && reproducible != 1)
    return ds__fail(ctx, DS_ERR_INVALID_ARGUMENT, "reproducible: %d is neither 0 nor 1",
                    reproducible);
  return ctx->backend->set_reproducible(ctx, reproducible);
}

ds_status ds_context_set_stream(ds_context *ctx, void *stream) {
  ds_status st = ds__check_context(ctx);
  if (st != DS_OK) return st;
  return ctx->backend->set_stream(ctx, stream);
}
