/* Version, status strings and the error messages of failed calls. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define DS_STR2(x) #x
#define DS_STR(x) DS_STR2(x)

/* The calling thread's last failure: threads never share it. */
static _Thread_local char tls_error[DS_ERROR_LEN];

unsigned ds_version(void) {
  return DS_VERSION_MAJOR * 10000u + DS_VERSION_MINOR * 100u + DS_VERSION_PATCH;
}

const char *ds_version_string(void) {
  return DS_STR(DS_VERSION_MAJOR) "." DS_STR(DS_VERSION_MINOR) "." DS_STR(DS_VERSION_PATCH);
}

const char *ds_status_string(int status) {
  switch (status) {
  case DS_OK: return "success";
  case DS_ERR_INVALID_ARGUMENT: return "invalid argument";
  case DS_ERR_SHAPE_MISMATCH: return "output shape mismatch";
  case DS_ERR_OUT_OF_MEMORY: return "out of memory";
  case DS_ERR_UNSUPPORTED: return "unsupported";
  case DS_ERR_BACKEND: return "backend failure";
  default: return "unknown status";
  }
}

const char *ds_last_error(void) { return tls_error; }

const char *ds_context_last_error(const ds_context *ctx) { return ctx ? ctx->error : ""; }

ds_status ds__fail(ds_context *ctx, ds_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tls_error, sizeof tls_error, fmt, ap);
  va_end(ap);
  if (ctx) memcpy(ctx->error, tls_error, sizeof tls_error);
  return status;
}
