// DiffStride forward and backward through the C++ wrapper (include/diffstride.hpp).
#include <cmath>
#include <cstdio>
#include <vector>

#include "diffstride.hpp"

int main() {
  const int n = 1, c = 2, h = 32, w = 32;
  std::vector<float> x(static_cast<std::size_t>(n * c * h * w));
  for (std::size_t i = 0; i < x.size(); i++) x[i] = std::sin(0.37f * static_cast<float>(i));

  ds::Context ctx;             // CPU context, freed at the end of scope
  ds::DiffStrideOptions opts;  // R = 4, cropping, NCHW
  const std::array<float, 2> strides{2.5f, 1.1f};

  const std::array<float, 2> eff = ds::effective_strides(opts, h, w, strides);
  const ds::Size2d out = ds::output_size(opts, h, w, strides);
  std::vector<float> y(static_cast<std::size_t>(n * c * out.h * out.w));
  ds::diffstride_forward(ctx, opts, ds::TensorView<const float>(x, {n, c, h, w}), strides,
                         ds::TensorView<float>(y, {n, c, out.h, out.w}));

  // L = sum(y^2) / 2: dL/dy = y
  std::vector<float> dx(x.size());
  const std::array<float, 2> dstrides =
      ds::diffstride_backward(ctx, opts, ds::TensorView<const float>(x, {n, c, h, w}),
                              ds::TensorView<const float>(y, {n, c, out.h, out.w}), strides,
                              ds::TensorView<float>(dx, {n, c, h, w}));

  std::printf("libdiffstride %s\n", ds::version_string());
  std::printf("input %d x %d x %d x %d -> output %d x %d x %d x %d\n", n, c, h, w, n, c, out.h,
              out.w);
  std::printf("strides (%.2f, %.2f), effective (%.4f, %.4f)\n", double(strides[0]),
              double(strides[1]), double(eff[0]), double(eff[1]));
  std::printf("dL/dstrides (%.4f, %.4f)\n", double(dstrides[0]), double(dstrides[1]));

  try {  // a y of the wrong size: the library names the argument
    std::vector<float> small(static_cast<std::size_t>(n * c * 8 * 8));
    ds::diffstride_forward(ctx, opts, ds::TensorView<const float>(x, {n, c, h, w}), strides,
                           ds::TensorView<float>(small, {n, c, 8, 8}));
  } catch (const ds::Error &e) {
    std::printf("caught ds::Error (status %d): %s\n", static_cast<int>(e.status()), e.what());
  }
  return 0;
}
