/* Built when the library is compiled without its CUDA path. */
#include "internal.h"

ds_status ds__cuda_open(ds_context *ctx) {
  (void)ctx;
  return ds__fail(NULL, DS_ERR_UNSUPPORTED,
                  "device: DS_DEVICE_CUDA, but this libdiffstride was built without CUDA");
}
