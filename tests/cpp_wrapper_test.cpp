// Tests of the C++17 wrapper include/diffstride.hpp: test vectors through the
// wrapper, bit-for-bit agreement with the C API, exceptions (status and
// message), Context ownership, the complexity penalty and the 1-D layer
// against a naive float64 DFT reference written here.
//
// Usage: cpp_wrapper_test [VECTOR_DIR...]   (else $DS_VECTOR_DIRS, else tests/vectors)
// Prints one line per failed check and "cpp: N passed, M failed"; exits 1 on failure.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffstride.hpp"

namespace {

int g_passed = 0;
int g_failed = 0;
std::string g_section;

void expect(bool ok, const std::string &what, int line) {
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
    std::printf("FAIL [%s] line %d: %s\n", g_section.c_str(), line, what.c_str());
  }
}
#define EXPECT(cond, what) expect((cond), (what), __LINE__)

using Vec = std::vector<float>;
const double kPi = 3.14159265358979323846;
using ds::TensorView;
using ds::TensorView1d;

// max|a - b| / max|b|
double rel_err(const float *a, const double *b, std::size_t n) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < n; i++) {
    num = std::fmax(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::fmax(den, std::fabs(b[i]));
  }
  return den > 0.0 ? num / den : num;
}
double rel_err(const Vec &a, const std::vector<double> &b) {
  return a.size() == b.size() ? rel_err(a.data(), b.data(), a.size()) : HUGE_VAL;
}

bool same_bits(const Vec &a, const Vec &b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}
bool same_bits(const std::array<float, 2> &a, const float b[2]) {
  return std::memcmp(a.data(), b, 2 * sizeof(float)) == 0;
}
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

Vec random_vec(std::size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Vec v(n);
  for (float &f : v) f = u(rng);
  return v;
}

std::size_t count(int a, int b, int c, int d = 1) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b) * static_cast<std::size_t>(c) *
         static_cast<std::size_t>(d);
}

// (n, c, h, w) NCHW -> NHWC
Vec to_nhwc(const Vec &v, int n, int c, int h, int w) {
  Vec o(v.size());
  for (int i = 0; i < n; i++)
    for (int j = 0; j < c; j++)
      for (int p = 0; p < h * w; p++)
        o[count(i * h * w + p, c, 1) + static_cast<std::size_t>(j)] =
            v[count(i * c + j, h * w, 1) + static_cast<std::size_t>(p)];
  return o;
}

// ------------------------------------------------------------- golden cases

struct Golden {
  std::string op;
  std::array<int, 4> shape{};
  float smoothness = 4.0f, lower = 1.0f, upper = INFINITY;
  int cropping = 1, shared = 0;
  std::array<float, 2> strides{}, effective{};
  std::array<int, 2> out{};
  std::map<std::string, std::vector<double>> arrays;
};

bool load_golden(const std::string &path, Golden &g, std::string &err) {
  std::ifstream in(path);
  if (!in) {
    err = "cannot open " + path;
    return false;
  }
  std::string key;
  auto num = [&in]() {
    std::string t;
    in >> t;
    return std::strtod(t.c_str(), nullptr);  // also reads "inf"
  };
  auto fnum = [&num]() { return static_cast<float>(num()); };
  while (in >> key) {
    if (key == "diffstride-golden") {
      if (num() != 1.0) {
        err = "unknown format version";
        return false;
      }
    } else if (key == "op") {
      in >> g.op;
    } else if (key == "shape") {
      in >> g.shape[0] >> g.shape[1] >> g.shape[2] >> g.shape[3];
    } else if (key == "smoothness") {
      g.smoothness = fnum();
    } else if (key == "cropping") {
      in >> g.cropping;
    } else if (key == "shared") {
      in >> g.shared;
    } else if (key == "lower") {
      g.lower = fnum();
    } else if (key == "upper") {
      g.upper = fnum();
    } else if (key == "strides") {
      g.strides = {fnum(), fnum()};
    } else if (key == "effective") {
      g.effective = {fnum(), fnum()};
    } else if (key == "out") {
      in >> g.out[0] >> g.out[1];
    } else if (key == "x" || key == "y" || key == "dy" || key == "dx" || key == "dstrides") {
      long n = -1;
      in >> n;
      if (n < 0) break;
      std::vector<double> &a = g.arrays[key];
      a.resize(static_cast<std::size_t>(n));
      for (double &v : a) v = num();
    } else {
      err = "unknown key " + key;
      return false;
    }
    if (!in) break;
  }
  if (!in.eof()) {
    err = "parse error near " + key;
    return false;
  }
  return true;
}

Vec to_float(const std::vector<double> &v) {
  Vec o(v.size());
  for (std::size_t i = 0; i < v.size(); i++) o[i] = static_cast<float>(v[i]);
  return o;
}

bool file_exists(const std::string &path) { return std::ifstream(path).good(); }

// Golden case `<op>_<k>.txt` of dir into g (and the section name); false when
// it does not exist (an error for k == 0: every op has a case 00) or does not load.
bool load_case(const std::string &dir, const char *op, int k, Golden &g) {
  char name[64];
  std::snprintf(name, sizeof name, "%s_%02d.txt", op, k);
  const std::string path = dir + "/" + name;
  if (!file_exists(path)) {
    if (k == 0)
      EXPECT(false, "test vector " + path + " not found (pass the directories as arguments or in DS_VECTOR_DIRS)");
    return false;
  }
  g_section = std::string("golden ") + name;
  std::string err;
  if (!load_golden(path, g, err)) {
    EXPECT(false, err);
    return false;
  }
  return true;
}

void golden_diffstride(const std::string &dir) {
  int cases = 0;
  for (int k = 0; k < 100; k++) {
    Golden g;
    if (!load_case(dir, "diffstride", k, g)) continue;
    cases++;
    ds::DiffStrideOptions o;
    o.smoothness = g.smoothness;
    o.cropping = g.cropping != 0;
    o.shared_stride = g.shared != 0;
    o.lower_limit = g.lower;
    o.upper_limit = g.upper;
    const int n = g.shape[0], c = g.shape[1], h = g.shape[2], w = g.shape[3];

    const std::array<float, 2> eff = ds::effective_strides(o, h, w, g.strides);
    EXPECT(std::fabs(eff[0] - g.effective[0]) <= 1e-6f * g.effective[0] &&
               std::fabs(eff[1] - g.effective[1]) <= 1e-6f * g.effective[1],
           "effective strides " + fmt(eff[0]) + ", " + fmt(eff[1]));
    const ds::Size2d os = ds::output_size(o, h, w, g.strides);
    EXPECT(os.h == g.out[0] && os.w == g.out[1],
           "output size " + std::to_string(os.h) + " x " + std::to_string(os.w));

    ds::Context ctx;
    const Vec x = to_float(g.arrays["x"]), dy = to_float(g.arrays["dy"]);
    Vec y(count(n, c, os.h, os.w)), dx(x.size());
    ds::diffstride_forward(ctx, o, TensorView<const float>(x, {n, c, h, w}), g.strides,
                           TensorView<float>(y, {n, c, os.h, os.w}));
    const double ey = rel_err(y, g.arrays["y"]);
    EXPECT(ey < 1e-5, "y rel err " + fmt(ey));
    const std::array<float, 2> dst =
        ds::diffstride_backward(ctx, o, TensorView<const float>(x, {n, c, h, w}),
                                TensorView<const float>(dy, {n, c, os.h, os.w}), g.strides,
                                TensorView<float>(dx, {n, c, h, w}));
    const double edx = rel_err(dx, g.arrays["dx"]);
    EXPECT(edx < 1e-5, "dx rel err " + fmt(edx));
    const double eds = rel_err(dst.data(), g.arrays["dstrides"].data(), 2);
    EXPECT(g.arrays["dstrides"].size() == 2 && eds < 1e-4, "dstrides rel err " + fmt(eds));

    // NHWC views of the transposed data: the NHWC transpose of the NCHW results, bit for bit.
    ds::DiffStrideOptions on = o;
    on.layout = DS_LAYOUT_NHWC;
    const Vec xt = to_nhwc(x, n, c, h, w), dyt = to_nhwc(dy, n, c, os.h, os.w);
    Vec yt(y.size()), dxt(dx.size());
    ds::diffstride_forward(ctx, on, TensorView<const float>(xt, {n, c, h, w}, DS_LAYOUT_NHWC),
                           g.strides, TensorView<float>(yt, {n, c, os.h, os.w}, DS_LAYOUT_NHWC));
    const std::array<float, 2> dst_t =
        ds::diffstride_backward(ctx, on, TensorView<const float>(xt, {n, c, h, w}, DS_LAYOUT_NHWC),
                                TensorView<const float>(dyt, {n, c, os.h, os.w}, DS_LAYOUT_NHWC),
                                g.strides, TensorView<float>(dxt, {n, c, h, w}, DS_LAYOUT_NHWC));
    EXPECT(same_bits(yt, to_nhwc(y, n, c, os.h, os.w)), "NHWC y is not the transposed NCHW y");
    EXPECT(same_bits(dxt, to_nhwc(dx, n, c, h, w)), "NHWC dx is not the transposed NCHW dx");
    EXPECT(same_bits(dst_t, dst.data()), "NHWC dstrides differ from NCHW");
  }
  g_section = "golden diffstride";
  EXPECT(cases > 0, "no diffstride golden case ran");
}

void golden_spectral_pool(const std::string &dir) {
  int cases = 0;
  for (int k = 0; k < 100; k++) {
    Golden g;
    if (!load_case(dir, "spectral_pool", k, g)) continue;
    cases++;
    const int n = g.shape[0], c = g.shape[1], h = g.shape[2], w = g.shape[3];
    const ds::Size2d os = ds::spectral_pool_output_size(h, w, g.strides);
    EXPECT(os == (ds::Size2d{g.out[0], g.out[1]}),
           "output size " + std::to_string(os.h) + " x " + std::to_string(os.w));
    ds::Context ctx;
    const Vec x = to_float(g.arrays["x"]), dy = to_float(g.arrays["dy"]);
    Vec y(count(n, c, os.h, os.w)), dx(x.size());
    ds::spectral_pool_forward(ctx, TensorView<const float>(x, {n, c, h, w}), g.strides,
                              TensorView<float>(y, {n, c, os.h, os.w}));
    const double ey = rel_err(y, g.arrays["y"]);
    EXPECT(ey < 1e-5, "y rel err " + fmt(ey));
    ds::spectral_pool_backward(ctx, TensorView<const float>(dy, {n, c, os.h, os.w}), g.strides,
                               TensorView<float>(dx, {n, c, h, w}));
    const double edx = rel_err(dx, g.arrays["dx"]);
    EXPECT(edx < 1e-5, "dx rel err " + fmt(edx));
    EXPECT(same_bits(ds::spectral_pool(ctx, x.data(), n, c, h, w, g.strides), y),
           "spectral_pool() differs from spectral_pool_forward");
  }
  g_section = "golden spectral_pool";
  EXPECT(cases > 0, "no spectral_pool golden case ran");
}

// ---------------------------------------------- wrapper == C API, bitwise

struct Config {
  int n, c, h, w;
  std::array<float, 2> strides;
  bool cropping, shared;
  ds_layout layout;
  int threads;
};

void bitwise_vs_c() {
  std::mt19937 rng(12345);
  const Config configs[] = {
      {2, 3, 32, 32, {2.3f, 2.7f}, true, false, DS_LAYOUT_NCHW, 1},
      {3, 1, 17, 24, {1.5f, 3.1f}, true, true, DS_LAYOUT_NHWC, 2},
      {1, 3, 20, 20, {2.6f, 1.9f}, false, false, DS_LAYOUT_NCHW, 3},
      {4, 5, 16, 40, {3.3f, 0.5f}, true, false, DS_LAYOUT_NHWC, 0},
  };
  int k = 0;
  for (const Config &cf : configs) {
    g_section = "bitwise vs C, config " + std::to_string(k++);
    ds::DiffStrideOptions o;
    o.cropping = cf.cropping;
    o.shared_stride = cf.shared;
    o.layout = cf.layout;
    const ds_diffstride_desc d = o.desc();
    ds::Context ctx;
    ctx.threads(cf.threads);
    EXPECT(ctx.threads() == cf.threads, "threads() does not return the value set");

    int oh = 0, ow = 0;
    EXPECT(ds_diffstride_output_size(&d, cf.h, cf.w, cf.strides.data(), &oh, &ow) == DS_OK,
           "C output size");
    EXPECT(ds::output_size(o, cf.h, cf.w, cf.strides) == (ds::Size2d{oh, ow}), "output_size");
    float eff[2];
    EXPECT(ds_diffstride_effective_strides(&d, cf.h, cf.w, cf.strides.data(), eff) == DS_OK,
           "C effective");
    EXPECT(same_bits(ds::effective_strides(o, cf.h, cf.w, cf.strides), eff), "effective_strides");

    const std::array<int, 4> in{cf.n, cf.c, cf.h, cf.w}, out{cf.n, cf.c, oh, ow};
    const Vec x = random_vec(count(cf.n, cf.c, cf.h, cf.w), rng);
    const Vec dy = random_vec(count(cf.n, cf.c, oh, ow), rng);

    Vec y_c(dy.size()), y_w(dy.size());
    EXPECT(ds_diffstride_forward(ctx.get(), &d, cf.n, cf.c, cf.h, cf.w, cf.strides.data(), x.data(),
                                 oh, ow, y_c.data()) == DS_OK,
           "C forward");
    ds::diffstride_forward(ctx, o, TensorView<const float>(x, in, cf.layout), cf.strides,
                           TensorView<float>(y_w, out, cf.layout));
    EXPECT(same_bits(y_w, y_c), "diffstride_forward differs from the C API");
    EXPECT(same_bits(ds::diffstride(ctx, o, x.data(), cf.n, cf.c, cf.h, cf.w, cf.strides), y_c),
           "diffstride() differs from the C API");

    Vec dx_c(x.size()), dx_w(x.size()), dx_w2(x.size());
    float ds_c[2];
    EXPECT(ds_diffstride_backward(ctx.get(), &d, cf.n, cf.c, cf.h, cf.w, cf.strides.data(),
                                  x.data(), oh, ow, dy.data(), dx_c.data(), ds_c) == DS_OK,
           "C backward");
    const TensorView<const float> xv(x, in, cf.layout), dyv(dy, out, cf.layout);
    std::array<float, 2> ds_w = ds::diffstride_backward(ctx, o, xv, dyv, cf.strides,
                                                        TensorView<float>(dx_w, in, cf.layout));
    EXPECT(same_bits(dx_w, dx_c), "diffstride_backward dx differs from the C API");
    EXPECT(same_bits(ds_w, ds_c), "diffstride_backward dstrides differ from the C API");
    EXPECT(!cf.shared || ds_w[1] == 0.0f, "shared stride: dstrides[1] must be 0");

    // dx only, without x (the C API with x = NULL, dstrides = NULL)
    Vec dx_c2(x.size());
    EXPECT(ds_diffstride_backward(ctx.get(), &d, cf.n, cf.c, cf.h, cf.w, cf.strides.data(), nullptr,
                                  oh, ow, dy.data(), dx_c2.data(), nullptr) == DS_OK,
           "C backward, dx only");
    ds_w = ds::diffstride_backward(ctx, o, TensorView<const float>(nullptr, in, cf.layout), dyv,
                                   cf.strides, dx_w2.data(), false);
    EXPECT(same_bits(dx_w2, dx_c2), "dx-only backward differs from the C API");
    EXPECT(ds_w[0] == 0.0f && ds_w[1] == 0.0f, "dx-only backward returns {0, 0}");
    // dstrides only
    ds_w = ds::diffstride_backward(ctx, o, xv, dyv, cf.strides, nullptr);
    EXPECT(same_bits(ds_w, ds_c), "dstrides-only backward differs from the C API");

    // training calls: the same bits as the plain ones
    const std::size_t bytes = ds::reserve_size(o, cf.n, cf.c, cf.h, cf.w, cf.strides);
    std::size_t bytes_c = 0;
    EXPECT(ds_diffstride_reserve_size(&d, cf.n, cf.c, cf.h, cf.w, cf.strides.data(), &bytes_c) == DS_OK &&
               bytes == bytes_c,
           "reserve_size differs from the C API");
    std::vector<std::uint64_t> reserve((bytes + 7) / 8);
    Vec y_t(dy.size()), dx_t(x.size());
    ds::diffstride_forward_training(ctx, o, xv, cf.strides, TensorView<float>(y_t, out, cf.layout),
                                    reserve.data(), bytes);
    EXPECT(same_bits(y_t, y_c), "diffstride_forward_training y differs from the C forward");
    ds_w = ds::diffstride_backward_reserved(ctx, o, ds::Size2d{cf.h, cf.w}, dyv, cf.strides,
                                            reserve.data(), bytes, dx_t.data());
    EXPECT(same_bits(dx_t, dx_c) && same_bits(ds_w, ds_c),
           "diffstride_backward_reserved differs from the C backward");

    const ds::Gradients gr =
        ds::diffstride_grad(ctx, o, x.data(), dy.data(), cf.n, cf.c, cf.h, cf.w, cf.strides);
    EXPECT(same_bits(gr.dx, dx_c) && same_bits(gr.dstrides, ds_c),
           "diffstride_grad differs from the C API");

    // spectral pooling (strides >= 1)
    const std::array<float, 2> ps{std::fmax(cf.strides[0], 1.0f), std::fmax(cf.strides[1], 1.0f)};
    int ph = 0, pw = 0;
    EXPECT(ds_spectral_pool_output_size(cf.h, cf.w, ps.data(), &ph, &pw) == DS_OK, "C pool size");
    EXPECT(ds::spectral_pool_output_size(cf.h, cf.w, ps) == (ds::Size2d{ph, pw}),
           "spectral_pool_output_size");
    Vec py_c(count(cf.n, cf.c, ph, pw)), py_w(py_c.size()), pdx_c(x.size()), pdx_w(x.size());
    const Vec pdy = random_vec(py_c.size(), rng);
    const int lay = static_cast<int>(cf.layout);
    EXPECT(ds_spectral_pool_forward(ctx.get(), lay, cf.n, cf.c, cf.h, cf.w, ps.data(), x.data(), ph,
                                    pw, py_c.data()) == DS_OK,
           "C pool forward");
    ds::spectral_pool_forward(ctx, xv, ps,
                              TensorView<float>(py_w, {cf.n, cf.c, ph, pw}, cf.layout));
    EXPECT(same_bits(py_w, py_c), "spectral_pool_forward differs from the C API");
    EXPECT(same_bits(ds::spectral_pool(ctx, x.data(), cf.n, cf.c, cf.h, cf.w, ps, cf.layout), py_c),
           "spectral_pool() differs from the C API");
    EXPECT(ds_spectral_pool_backward(ctx.get(), lay, cf.n, cf.c, cf.h, cf.w, ps.data(), ph, pw,
                                     pdy.data(), pdx_c.data()) == DS_OK,
           "C pool backward");
    ds::spectral_pool_backward(ctx, TensorView<const float>(pdy, {cf.n, cf.c, ph, pw}, cf.layout),
                               ps, TensorView<float>(pdx_w, in, cf.layout));
    EXPECT(same_bits(pdx_w, pdx_c), "spectral_pool_backward differs from the C API");
  }
}

// ------------------------------------------------------------------ errors

// Runs f; it must throw a ds::Error of type E with the given status whose
// detail contains needle and is the library's last message.
template <class E, class F>
void expect_error(const std::string &what, ds_status status, const char *needle, F &&f, int line,
                  const ds::Context *ctx = nullptr, bool from_library = true) {
  try {
    f();
    expect(false, what + ": no exception", line);
  } catch (const E &e) {
    const std::string detail = e.detail();
    const std::string full =
        std::string(ds_status_string(status)) + (detail.empty() ? "" : ": " + detail);
    expect(e.status() == status, what + ": status " + std::to_string(static_cast<int>(e.status())),
           line);
    expect(detail.find(needle) != std::string::npos,
           what + ": detail \"" + detail + "\" lacks \"" + needle + "\"", line);
    expect(full == e.what(), what + ": what() is \"" + e.what() + "\"", line);
    if (from_library) {
      expect(detail == ds_last_error(), what + ": detail differs from ds_last_error()", line);
      if (ctx && ctx->get())
        expect(detail == ctx->last_error(), what + ": detail differs from ds_context_last_error",
               line);
    }
  } catch (const std::exception &e) {
    expect(false, what + ": wrong exception type: " + e.what(), line);
  }
}
#define EXPECT_ERROR(E, status, needle, ...) \
  expect_error<E>(                           \
      #E " " needle, status, needle, [&]() { __VA_ARGS__; }, __LINE__)
#define EXPECT_CTX_ERROR(E, status, needle, ctx, ...) \
  expect_error<E>(                                    \
      #E " " needle, status, needle, [&]() { __VA_ARGS__; }, __LINE__, &(ctx))
#define EXPECT_WRAPPER_ERROR(E, status, needle, ...) \
  expect_error<E>(                                   \
      #E " " needle, status, needle, [&]() { __VA_ARGS__; }, __LINE__, nullptr, false)

template <class F>
bool throws_invalid_argument(F &&f) {
  try {
    f();
  } catch (const std::invalid_argument &) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

void errors() {
  g_section = "errors";
  static_assert(std::is_base_of<std::runtime_error, ds::Error>::value, "Error is a runtime_error");
  static_assert(std::is_base_of<ds::Error, ds::ShapeMismatch>::value,
                "subclasses derive from Error");
  static_assert(std::is_nothrow_copy_constructible<ds::Error>::value,
                "Error copies without throwing");

  ds::Context ctx;
  ds::DiffStrideOptions o;
  const std::array<float, 2> s2{2.0f, 2.0f};
  Vec x(count(1, 2, 32, 32), 0.5f), y(count(1, 2, 24, 24), -7.0f), dy(y.size(), 1.0f), dx(x.size());
  const TensorView<const float> xv(x, {1, 2, 32, 32});
  const TensorView<float> yv(y, {1, 2, 24, 24});

  EXPECT_CTX_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "x: NULL pointer", ctx,
      ds::diffstride_forward(ctx, o, TensorView<const float>(nullptr, {1, 2, 32, 32}), s2, yv));
  EXPECT(y[0] == -7.0f && y.back() == -7.0f, "a failed call wrote to y");
  EXPECT_CTX_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "y: NULL pointer", ctx,
      ds::diffstride_forward(ctx, o, xv, s2, TensorView<float>(nullptr, {1, 2, 24, 24})));
  Vec small(count(1, 2, 3, 3));
  EXPECT_CTX_ERROR(ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH, "out_h x out_w: 3 x 3", ctx,
                   ds::diffstride_forward(ctx, o, xv, s2, TensorView<float>(small, {1, 2, 3, 3})));
  EXPECT_CTX_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "x: NULL pointer, needed for dstrides", ctx,
      ds::diffstride_backward(ctx, o, TensorView<const float>(nullptr, {1, 2, 32, 32}),
                              TensorView<const float>(dy, {1, 2, 24, 24}), s2, dx.data()));
  EXPECT_CTX_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "dy: NULL pointer", ctx,
      ds::diffstride_backward(ctx, o, xv, TensorView<const float>(nullptr, {1, 2, 24, 24}), s2,
                              dx.data()));
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "n: 0, must be >= 1", ctx,
                   ds::diffstride(ctx, o, x.data(), 0, 2, 32, 32, s2));
  std::vector<std::uint64_t> reserve((ds::reserve_size(o, 1, 2, 32, 32, s2) + 7) / 8);
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "reserve_bytes: 64", ctx,
                   ds::diffstride_forward_training(ctx, o, xv, s2, yv, reserve.data(), 64));
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT,
                   "reserve: not written by a training forward", ctx,
                   ds::diffstride_backward_reserved(ctx, o, ds::Size2d{32, 32},
                                                    TensorView<const float>(dy, {1, 2, 24, 24}), s2,
                                                    reserve.data(), 8 * reserve.size(), dx.data()));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "n: 0",
               ds::reserve_size(o, 0, 2, 32, 32, s2));
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "strides[0]: nan", ctx,
                   ds::diffstride_forward(ctx, o, xv, {NAN, 2.0f}, yv));

  ds::DiffStrideOptions bad = o;
  bad.smoothness = 0.0f;
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "desc->smoothness",
               ds::output_size(bad, 32, 32, s2));
  bad = o;
  bad.lower_limit = 0.0f;
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "desc->lower_limit",
               ds::effective_strides(bad, 32, 32, s2));
  bad = o;
  bad.upper_limit = 0.5f;
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "desc->upper_limit",
               ds::output_size(bad, 32, 32, s2));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "h x w: 4 x 8",
               ds::output_size(o, 4, 8, s2));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "strides[0]",
               ds::spectral_pool_output_size(32, 32, {0.5f, 2.0f}));
  EXPECT_CTX_ERROR(ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH, "out_h", ctx,
                   ds::spectral_pool_forward(ctx, xv, s2, TensorView<float>(small, {1, 2, 3, 3})));
  EXPECT_CTX_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "dx: NULL pointer", ctx,
      ds::spectral_pool_backward(ctx, TensorView<const float>(dy.data(), {1, 2, 16, 16}), s2,
                                 TensorView<float>(nullptr, {1, 2, 32, 32})));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "strides[1]: 0",
               ds::complexity_penalty({{2.0f, 0.0f}}));

  // Errors the wrapper finds in views that disagree.
  EXPECT_WRAPPER_ERROR(
      ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH, "y: n x c = 2 x 2, must equal x's 1 x 2",
      ds::diffstride_forward(ctx, o, xv, s2, TensorView<float>(y.data(), {2, 2, 24, 24})));
  EXPECT_WRAPPER_ERROR(
      ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "y.layout: 1",
      ds::diffstride_forward(ctx, o, xv, s2, TensorView<float>(y, {1, 2, 24, 24}, DS_LAYOUT_NHWC)));
  EXPECT_WRAPPER_ERROR(
      ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH, "dx: 1 x 2 x 32 x 31",
      ds::diffstride_backward(ctx, o, xv, TensorView<const float>(dy, {1, 2, 24, 24}), s2,
                              TensorView<float>(dx.data(), {1, 2, 32, 31})));
  EXPECT(throws_invalid_argument([&] {
           TensorView<float> v(y, {1, 2, 24, 25});
           (void)v;
         }),
         "a vector of the wrong size must throw std::invalid_argument");
  EXPECT(throws_invalid_argument([&] {
           TensorView1d<const float> v(y, {-1, -2, 288});
           (void)v;
         }),
         "negative dimensions must throw std::invalid_argument");
  const std::vector<float> w1{1.0f};
  EXPECT(throws_invalid_argument([&] {
           ds::complexity_penalty({{2.0f, 2.0f}, {2.0f, 2.0f}}, &w1);
         }),
         "penalty weights of the wrong length must throw std::invalid_argument");

  // Context errors.
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "threads", ctx, ctx.threads(-1));
  EXPECT_CTX_ERROR(ds::Unsupported, DS_ERR_UNSUPPORTED, "", ctx, ctx.stream(nullptr));
  ctx.reproducible(true).reproducible(false);  // a CPU context takes both
  try {
    ds::Context gpu(DS_DEVICE_CUDA);  // a CUDA build with a GPU may succeed
    EXPECT(gpu.get() != nullptr && gpu.device() == DS_DEVICE_CUDA, "CUDA context");
  } catch (const ds::Error &e) {
    EXPECT(e.status() == DS_ERR_UNSUPPORTED, std::string("CUDA context: ") + e.what());
  }

  // check() and throw_error() directly.
  bool threw = false;
  try {
    ds::check(DS_OK);
  } catch (...) {
    threw = true;
  }
  EXPECT(!threw, "check(DS_OK) threw");
  EXPECT_WRAPPER_ERROR(ds::Error, static_cast<ds_status>(-7), "some detail",
                       ds::throw_error(static_cast<ds_status>(-7), "some detail"));
  EXPECT_WRAPPER_ERROR(ds::BackendError, DS_ERR_BACKEND, "plan",
                       ds::throw_error(DS_ERR_BACKEND, "plan"));
  EXPECT_WRAPPER_ERROR(ds::OutOfMemory, DS_ERR_OUT_OF_MEMORY, "",
                       ds::throw_error(DS_ERR_OUT_OF_MEMORY, ""));
  try {
    ds::throw_error(DS_ERR_OUT_OF_MEMORY, "");
  } catch (const ds::Error &e) {
    EXPECT(std::string(e.what()) == "out of memory" && *e.detail() == '\0',
           "empty detail: what() is the status only");
  }
  // Catchable as std::runtime_error; the message names the argument.
  try {
    ds::output_size(o, 32, 32, {INFINITY, 1.0f});
    EXPECT(false, "no exception for an infinite stride");
  } catch (const std::runtime_error &e) {
    EXPECT(std::string(e.what()).rfind("invalid argument: strides[0]", 0) == 0,
           std::string("message: ") + e.what());
  }
}

// ---------------------------------------------------------------- context

static_assert(!std::is_copy_constructible<ds::Context>::value, "Context is not copyable");
static_assert(!std::is_copy_assignable<ds::Context>::value, "Context is not copy-assignable");
static_assert(std::is_nothrow_move_constructible<ds::Context>::value, "Context moves");
static_assert(std::is_nothrow_move_assignable<ds::Context>::value, "Context move-assigns");
static_assert(std::is_nothrow_destructible<ds::Context>::value, "Context destructor");
static_assert(std::is_nothrow_swappable<ds::Context>::value, "Context swaps");
static_assert(std::is_convertible<TensorView<float>, TensorView<const float>>::value,
              "float view -> const view");
static_assert(!std::is_convertible<TensorView<const float>, TensorView<float>>::value,
              "no const -> mutable");
static_assert(!std::is_constructible<TensorView<const float>, std::vector<float> &&,
                                     std::array<int, 4>>::value,
              "no view of a temporary vector");

void context() {
  g_section = "context";
  ds::DiffStrideOptions o;
  Vec x(count(1, 1, 16, 16), 1.0f);
  ds::Context a;
  EXPECT(
      static_cast<bool>(a) && a.get() != nullptr && a.device() == DS_DEVICE_CPU && a.threads() == 1,
      "new context");
  ds_context *raw = a.get();
  ds::Context b(std::move(a));
  EXPECT(a.get() == nullptr && !a && b.get() == raw, "move construction transfers the handle");
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "ctx: NULL pointer",
               ds::diffstride(a, o, x.data(), 1, 1, 16, 16, {2.0f, 2.0f}));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "ctx: NULL pointer", a.threads(2));
  ds::Context c;
  c.threads(2);
  c = std::move(b);  // destroys c's own context (ASan/valgrind: no leak)
  EXPECT(b.get() == nullptr && c.get() == raw && c.threads() == 1,
         "move assignment transfers the handle");
  ds::Context &alias = c;
  c = std::move(alias);
  EXPECT(c.get() == raw, "self move-assignment keeps the handle");
  a = std::move(c);  // into a moved-from context
  EXPECT(a.get() == raw && c.get() == nullptr, "move assignment into a moved-from context");
  ds::Context d;
  ds_context *raw_d = d.get();
  swap(a, d);
  EXPECT(a.get() == raw_d && d.get() == raw, "swap");
  std::vector<ds::Context> many;
  for (int i = 0; i < 9; i++) many.emplace_back();  // reallocations move contexts
  bool distinct = true;
  for (std::size_t i = 0; i < many.size(); i++)
    for (std::size_t j = 0; j < i; j++)
      distinct = distinct && many[i].get() && many[i].get() != many[j].get();
  EXPECT(distinct, "contexts in a vector keep distinct handles");
  const Vec y = ds::diffstride(many.back().threads(0), o, x.data(), 1, 1, 16, 16, {2.0f, 2.0f});
  const ds::Size2d os = ds::output_size(o, 16, 16, {2.0f, 2.0f});
  EXPECT(y.size() == count(1, 1, os.h, os.w) && y[0] != 0.0f, "a moved context still works");
  // Everything above is destroyed once at scope exit; a double free would
  // abort here (and is reported by the SANITIZE=1 build).
}

// ------------------------------------------------------- options, penalty

void options_and_penalty() {
  g_section = "options";
  ds_diffstride_desc ref;
  ds_diffstride_desc_init(&ref);
  const ds_diffstride_desc d = ds::DiffStrideOptions{}.desc();
  EXPECT(d.smoothness == ref.smoothness && d.cropping == ref.cropping &&
             d.shared_stride == ref.shared_stride && d.lower_limit == ref.lower_limit &&
             d.upper_limit == ref.upper_limit && d.layout == ref.layout,
         "DiffStrideOptions defaults differ from ds_diffstride_desc_init");
  ds::DiffStrideOptions o;
  o.smoothness = 2.5f;
  o.cropping = false;
  o.shared_stride = true;
  o.lower_limit = 1.5f;
  o.upper_limit = 6.0f;
  o.layout = DS_LAYOUT_NHWC;
  const ds_diffstride_desc e = static_cast<ds_diffstride_desc>(o);
  EXPECT(e.smoothness == 2.5f && e.cropping == 0 && e.shared_stride == 1 && e.lower_limit == 1.5f &&
             e.upper_limit == 6.0f && e.layout == DS_LAYOUT_NHWC,
         "DiffStrideOptions -> ds_diffstride_desc");
  EXPECT(ds::version() == ds::header_version, "linked library version differs from the header's");
  EXPECT(std::string(ds::version_string()) == std::to_string(DS_VERSION_MAJOR) + "." +
                                                  std::to_string(DS_VERSION_MINOR) + "." +
                                                  std::to_string(DS_VERSION_PATCH),
         "version_string");

  g_section = "penalty";
  // api.md: strides {2,2},{2,1}, no weights: J = 1/4 + 1/8, grad {-0.1875, -0.1875, -0.0625,
  // -0.125}
  ds::Penalty p = ds::complexity_penalty({{2.0f, 2.0f}, {2.0f, 1.0f}});
  EXPECT(p.value == 0.375f && p.grads.size() == 2 && p.grads[0][0] == -0.1875f &&
             p.grads[0][1] == -0.1875f && p.grads[1][0] == -0.0625f && p.grads[1][1] == -0.125f,
         "penalty without weights: " + fmt(p.value));
  // weights {1, 2}: J = 1/4 + 2/8 = 0.5; dJ/ds^0 = -(0.25 + 0.25)/2, dJ/ds_h^1 = -0.25/2, dJ/ds_w^1
  // = -0.25/1
  const std::vector<float> w{1.0f, 2.0f};
  p = ds::complexity_penalty({{2.0f, 2.0f}, {2.0f, 1.0f}}, &w);
  EXPECT(p.value == 0.5f && p.grads[0][0] == -0.25f && p.grads[0][1] == -0.25f &&
             p.grads[1][0] == -0.125f && p.grads[1][1] == -0.25f,
         "penalty with weights: " + fmt(p.value));
  p = ds::complexity_penalty({});
  EXPECT(p.value == 0.0f && p.grads.empty(), "penalty of no layers");
}

// -------------------------------------------------------------------- 1-D

// Naive float64 1-D DiffStride of one signal of length l (algorithm.md, the
// horizontal axis): y, and for dy, dx and the signal's part of dL/dT.
struct Ref1d {
  int l = 0, out = 0, K = 0;
  double R = 4, T = 0;
  std::vector<double> m;  // mask on bins 0..K-1
  double ck(int k) const { return (k == 0 || 2 * k == out) ? 1.0 : 2.0; }
  static std::vector<std::array<double, 2>> dft(const float *v, int len, int bins) {
    std::vector<std::array<double, 2>> X(static_cast<std::size_t>(bins));
    for (int k = 0; k < bins; k++)
      for (int b = 0; b < len; b++) {
        const double a = -2.0 * kPi * k * b / len;
        X[static_cast<std::size_t>(k)][0] += v[b] * std::cos(a);
        X[static_cast<std::size_t>(k)][1] += v[b] * std::sin(a);
      }
    return X;
  }
  void forward(const float *x, double *y) const {
    const auto X = dft(x, l, K);
    for (int b = 0; b < out; b++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        const double a = 2.0 * kPi * k * b / out, mk = m[static_cast<std::size_t>(k)];
        s += ck(k) * mk *
             (X[static_cast<std::size_t>(k)][0] * std::cos(a) -
              X[static_cast<std::size_t>(k)][1] * std::sin(a));
      }
      y[b] = s / out;
    }
  }
  // returns dL/dT of this signal; writes dx
  double backward(const float *x, const float *dy, double *dx) const {
    const auto X = dft(x, l, K), Y = dft(dy, out, K);
    double dT = 0;
    for (int b = 0; b < l; b++) dx[b] = 0;
    for (int k = 0; k < K; k++) {
      const std::size_t u = static_cast<std::size_t>(k);
      const double G0 = ck(k) * Y[u][0] / out, G1 = ck(k) * Y[u][1] / out;
      for (int b = 0; b < l; b++) {
        const double a = 2.0 * kPi * k * b / l;
        dx[b] += m[u] * (G0 * std::cos(a) - G1 * std::sin(a));
      }
      const double v = (R + T - k) / R;
      if (v >= 0.0 && v <= 1.0) dT += (G0 * X[u][0] + G1 * X[u][1]) / R;
    }
    return dT;
  }
};

void diffstride1d() {
  g_section = "1-D";
  std::mt19937 rng(777);
  struct Case {
    int n, c, l;
    float stride;
    bool cropping;
    float lower, upper;
  };
  const Case cases[] = {{1, 3, 20, 2.3f, true, 1.0f, INFINITY},
                        {2, 2, 37, 3.7f, true, 1.0f, INFINITY},
                        {1, 2, 24, 2.6f, false, 1.0f, INFINITY},
                        {3, 1, 33, 5.3f, true, 1.0f, 4.6f}};
  for (const Case &cs : cases) {
    g_section = "1-D l=" + std::to_string(cs.l) + " stride " + fmt(cs.stride);
    ds::DiffStrideOptions o;
    o.cropping = cs.cropping;
    o.lower_limit = cs.lower;
    o.upper_limit = cs.upper;
    const double R = o.smoothness;
    // effective stride and output size from the definitions
    const double s2 = std::fmax(cs.stride, cs.l / (cs.l - R));
    const double se = std::fmin(std::fmax(s2, cs.lower), cs.upper);
    Ref1d ref;
    ref.l = cs.l;
    ref.R = R;
    ref.T = std::fmax(cs.l / se, 2.0) / 2.0 + 1.0;
    int K = 0;
    for (int k = 0; k <= cs.l / 2; k++)
      if (R + ref.T - k > 0) K++;
    ref.out = cs.cropping ? 2 * (K - 1) : cs.l;
    ref.K = ref.out / 2 + 1;
    for (int k = 0; k < ref.K; k++)
      ref.m.push_back(std::fmin(std::fmax((R + ref.T - k) / R, 0.0), 1.0));

    const float eff = ds::effective_stride1d(o, cs.l, cs.stride);
    EXPECT(std::fabs(eff - se) <= 1e-6 * se,
           "effective_stride1d " + fmt(eff) + ", expected " + fmt(se));
    const int out = ds::output_size1d(o, cs.l, cs.stride);
    EXPECT(out == ref.out,
           "output_size1d " + std::to_string(out) + ", expected " + std::to_string(ref.out));
    if (out != ref.out) continue;

    const std::array<int, 3> in{cs.n, cs.c, cs.l}, os{cs.n, cs.c, out};
    const Vec x = random_vec(count(cs.n, cs.c, cs.l), rng),
              dy = random_vec(count(cs.n, cs.c, out), rng);
    ds::Context ctx;
    Vec y(dy.size()), dx(x.size());
    ds::diffstride1d_forward(ctx, o, TensorView1d<const float>(x, in), cs.stride,
                             TensorView1d<float>(y, os));
    const float dstride = ds::diffstride1d_backward(ctx, o, TensorView1d<const float>(x, in),
                                                    TensorView1d<const float>(dy, os), cs.stride,
                                                    TensorView1d<float>(dx, in));
    std::vector<double> y_ref(y.size()), dx_ref(x.size());
    double dT = 0;
    for (int i = 0; i < cs.n * cs.c; i++) {
      const std::size_t xi = count(i, cs.l, 1), yi = count(i, out, 1);
      ref.forward(x.data() + xi, y_ref.data() + yi);
      dT += ref.backward(x.data() + xi, dy.data() + yi, dx_ref.data() + xi);
    }
    const bool passes = cs.lower <= s2 && s2 <= cs.upper && cs.l / se >= 2.0;
    const double ds_ref = passes ? dT * 0.5 * (-cs.l / (se * se)) : 0.0;
    const double ey = rel_err(y, y_ref), edx = rel_err(dx, dx_ref);
    EXPECT(ey < 1e-5, "y vs naive DFT, rel err " + fmt(ey));
    EXPECT(edx < 1e-5, "dx vs naive DFT, rel err " + fmt(edx));
    EXPECT(!passes || std::fabs(ds_ref) > 1e-3, "degenerate case: the stride gradient is ~0");
    EXPECT(std::fabs(dstride - ds_ref) <= 1e-4 * std::fmax(std::fabs(ds_ref), 1e-3),
           "dstride " + fmt(dstride) + ", expected " + fmt(ds_ref));

    // the C API, bitwise; the allocating overloads; NLC = transposed NCL
    const ds_diffstride_desc d = o.desc();
    Vec y_c(y.size()), dx_c(x.size());
    float ds_c = 0;
    EXPECT(ds_diffstride1d_forward(ctx.get(), &d, cs.n, cs.c, cs.l, cs.stride, x.data(), out,
                                   y_c.data()) == DS_OK &&
               ds_diffstride1d_backward(ctx.get(), &d, cs.n, cs.c, cs.l, cs.stride, x.data(), out,
                                        dy.data(), dx_c.data(), &ds_c) == DS_OK,
           "C 1-D calls");
    EXPECT(same_bits(y, y_c) && same_bits(dx, dx_c) && same_bits(dstride, ds_c),
           "1-D wrapper differs from the C API");
    EXPECT(same_bits(ds::diffstride1d(ctx, o, x.data(), cs.n, cs.c, cs.l, cs.stride), y_c),
           "diffstride1d()");
    const ds::Gradients1d g =
        ds::diffstride1d_grad(ctx, o, x.data(), dy.data(), cs.n, cs.c, cs.l, cs.stride);
    EXPECT(same_bits(g.dx, dx_c) && same_bits(g.dstride, ds_c), "diffstride1d_grad()");
    Vec dx_only(x.size());
    const float zero = ds::diffstride1d_backward(ctx, o, TensorView1d<const float>(nullptr, in),
                                                 TensorView1d<const float>(dy, os), cs.stride,
                                                 dx_only.data(), false);
    EXPECT(same_bits(dx_only, dx_c) && zero == 0.0f, "1-D dx-only backward");
    const std::size_t bytes = ds::reserve_size1d(o, cs.n, cs.c, cs.l, cs.stride);
    std::vector<std::uint64_t> reserve((bytes + 7) / 8);
    Vec y_t(y.size()), dx_t(x.size());
    ds::diffstride1d_forward_training(ctx, o, TensorView1d<const float>(x, in), cs.stride,
                                      TensorView1d<float>(y_t, os), reserve.data(), bytes);
    const float ds_t = ds::diffstride1d_backward_reserved(ctx, o, cs.l, TensorView1d<const float>(dy, os),
                                                          cs.stride, reserve.data(), bytes, dx_t.data());
    EXPECT(same_bits(y_t, y_c) && same_bits(dx_t, dx_c) && same_bits(ds_t, ds_c),
           "1-D training calls differ from the plain C calls");

    ds::DiffStrideOptions on = o;
    on.layout = DS_LAYOUT_NLC;
    const Vec xt = to_nhwc(x, cs.n, cs.c, 1, cs.l), dyt = to_nhwc(dy, cs.n, cs.c, 1, out);
    Vec yt(y.size()), dxt(x.size());
    ds::diffstride1d_forward(ctx, on, TensorView1d<const float>(xt, in, DS_LAYOUT_NLC), cs.stride,
                             TensorView1d<float>(yt, os, DS_LAYOUT_NLC));
    const float dst =
        ds::diffstride1d_backward(ctx, on, TensorView1d<const float>(xt, in, DS_LAYOUT_NLC),
                                  TensorView1d<const float>(dyt, os, DS_LAYOUT_NLC), cs.stride,
                                  TensorView1d<float>(dxt, in, DS_LAYOUT_NLC));
    EXPECT(same_bits(yt, to_nhwc(y, cs.n, cs.c, 1, out)) &&
               same_bits(dxt, to_nhwc(dx, cs.n, cs.c, 1, cs.l)) && same_bits(dst, dstride),
           "NLC results are not the transposed NCL results");
  }

  g_section = "1-D errors";
  ds::Context ctx;
  ds::DiffStrideOptions o;
  Vec x(count(1, 2, 20, 1), 1.0f), y(count(1, 2, 5, 1));
  EXPECT_CTX_ERROR(ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH, "out_l: 5", ctx,
                   ds::diffstride1d_forward(ctx, o, TensorView1d<const float>(x, {1, 2, 20}), 2.0f,
                                            TensorView1d<float>(y, {1, 2, 5})));
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "x: NULL pointer", ctx,
                   ds::diffstride1d(ctx, o, nullptr, 1, 2, 20, 2.0f));
  EXPECT_CTX_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT,
                   "x: NULL pointer, needed for dstride", ctx,
                   ds::diffstride1d_grad(ctx, o, nullptr, y.data(), 1, 2, 20, 2.0f));
  EXPECT_ERROR(ds::InvalidArgument, DS_ERR_INVALID_ARGUMENT, "l: 4", ds::output_size1d(o, 4, 2.0f));
  EXPECT_WRAPPER_ERROR(ds::ShapeMismatch, DS_ERR_SHAPE_MISMATCH,
                       "y: n x c = 1 x 1, must equal x's 1 x 2",
                       ds::diffstride1d_forward(ctx, o, TensorView1d<const float>(x, {1, 2, 20}),
                                                2.0f, TensorView1d<float>(y.data(), {1, 1, 12})));
}

}  // namespace

int main(int argc, char **argv) {
  // The test vectors' directories: the arguments, else $DS_VECTOR_DIRS
  // (separated by spaces), else tests/vectors.
  std::vector<std::string> dirs(argv + 1, argv + argc);
  if (dirs.empty()) {
    const char *env = std::getenv("DS_VECTOR_DIRS");
    std::istringstream listed(env && *env ? env : "tests/vectors");
    for (std::string d; listed >> d;) dirs.push_back(d);
  }
  const std::pair<const char *, void (*)()> suites[] = {
      {"options and penalty", options_and_penalty},
      {"bitwise vs C", bitwise_vs_c},
      {"errors", errors},
      {"context", context},
      {"1-D", diffstride1d}};
  try {
    for (const std::string &dir : dirs) {
      golden_diffstride(dir);
      golden_spectral_pool(dir);
    }
  } catch (const std::exception &e) {
    expect(false, std::string("unexpected exception: ") + e.what(), __LINE__);
  }
  for (const auto &s : suites) {
    try {
      s.second();
    } catch (const std::exception &e) {
      expect(false, std::string(s.first) + ": unexpected exception: " + e.what(), __LINE__);
    }
  }
  std::printf("cpp: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
