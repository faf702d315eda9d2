/*
 * libdiffstride: a header-only C++17 wrapper over the C API of diffstride.h.
 *
 *   - ds::Context owns a ds_context (RAII, move-only).
 *   - Every failure throws ds::Error (or a subclass per status), whose what()
 *     is "<ds_status_string>: <the library's message>", e.g.
 *     "invalid argument: x: NULL pointer".
 *   - Tensors are passed as views: ds::TensorView<T> (n, c, h, w) and
 *     ds::TensorView1d<T> (n, c, l): a pointer, the logical shape and the
 *     memory layout. A view does not own its data.
 *   - ds::DiffStrideOptions mirrors ds_diffstride_desc with the same defaults.
 *
 * Errors the wrapper finds itself:
 *   - a std::vector whose size is not the product of the view's shape, or
 *     penalty weights of the wrong length: std::invalid_argument;
 *   - views of one call that disagree (n or c of the output differ from the
 *     input's: DS_ERR_SHAPE_MISMATCH; a view's layout differs from the
 *     options' or from the other views': DS_ERR_INVALID_ARGUMENT): ds::Error,
 *     as the C API reports the errors it can see itself.
 * Everything else (NULL data, sizes, strides, descriptor values) is checked by
 * the library, and its message is the one carried by the exception.
 *
 * Link with -ldiffstride (or libdiffstride.a -lfftw3f -lm -lpthread).
 */
#ifndef DIFFSTRIDE_HPP
#define DIFFSTRIDE_HPP

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffstride.h"

namespace ds {

// ------------------------------------------------------------------ version

/// Version of the header compiled against (MAJOR*10000 + MINOR*100 + PATCH).
inline constexpr unsigned header_version =
    DS_VERSION_MAJOR * 10000u + DS_VERSION_MINOR * 100u + DS_VERSION_PATCH;
/// Version of the library actually linked, same encoding.
inline unsigned version() noexcept { return ds_version(); }
/// "MAJOR.MINOR.PATCH" of the linked library.
inline const char *version_string() noexcept { return ds_version_string(); }

// ------------------------------------------------------------------- errors

/// A failed library call. what() = status string + ": " + detail().
class Error : public std::runtime_error {
 public:
  Error(ds_status status, const std::string &detail) : Error(status, detail, 0) {}
  ds_status status() const noexcept { return status_; }
  /// The library's message alone ("x: NULL pointer"); "" when it gave none.
  const char *detail() const noexcept { return what() + detail_pos_; }

 private:
  static std::string compose(ds_status status, const std::string &detail) {
    std::string m = ds_status_string(static_cast<int>(status));
    if (!detail.empty()) m += ": " + detail;
    return m;
  }
  Error(ds_status status, const std::string &detail, int)
      : std::runtime_error(compose(status, detail)),
        status_(status),
        detail_pos_(std::char_traits<char>::length(what()) - detail.size()) {}
  ds_status status_;
  std::size_t detail_pos_;  // offset of the detail in what(); copies stay noexcept
};

class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string &detail) : Error(DS_ERR_INVALID_ARGUMENT, detail) {}
};
class ShapeMismatch : public Error {
 public:
  explicit ShapeMismatch(const std::string &detail) : Error(DS_ERR_SHAPE_MISMATCH, detail) {}
};
class OutOfMemory : public Error {
 public:
  explicit OutOfMemory(const std::string &detail) : Error(DS_ERR_OUT_OF_MEMORY, detail) {}
};
class Unsupported : public Error {
 public:
  explicit Unsupported(const std::string &detail) : Error(DS_ERR_UNSUPPORTED, detail) {}
};
class BackendError : public Error {
 public:
  explicit BackendError(const std::string &detail) : Error(DS_ERR_BACKEND, detail) {}
};

/// Throws the Error subclass that matches status (Error itself for an
/// unknown code).
[[noreturn]] inline void throw_error(ds_status status, const std::string &detail) {
  switch (status) {
    case DS_ERR_INVALID_ARGUMENT:
      throw InvalidArgument(detail);
    case DS_ERR_SHAPE_MISMATCH:
      throw ShapeMismatch(detail);
    case DS_ERR_OUT_OF_MEMORY:
      throw OutOfMemory(detail);
    case DS_ERR_UNSUPPORTED:
      throw Unsupported(detail);
    case DS_ERR_BACKEND:
      throw BackendError(detail);
    case DS_OK:  // not an error; reported as is if asked
    default:
      throw Error(status, detail);
  }
}

/// Does nothing for DS_OK; otherwise throws with the message of the failure:
/// ds_context_last_error(ctx) for a call given ctx, else (or if that is
/// empty) the calling thread's ds_last_error(). Call it right after the call
/// that returned status, on the same thread.
inline void check(ds_status status, const ds_context *ctx = nullptr) {
  if (status == DS_OK) return;
  const char *msg = ctx ? ds_context_last_error(ctx) : nullptr;
  if (msg == nullptr || *msg == '\0') msg = ds_last_error();
  throw_error(status, msg ? msg : "");
}

// ------------------------------------------------------------------ context

/// Owns a ds_context: FFT plan cache, workspace, thread count. Move-only;
/// a moved-from Context holds no handle (get() == nullptr) and calls given it
/// throw InvalidArgument ("ctx: NULL pointer"). One thread at a time.
class Context {
 public:
  Context() : Context(DS_DEVICE_CPU) {}
  explicit Context(ds_device device) : device_(device) {
    ds_context *c = nullptr;
    check(ds_context_create(device, &c));
    ctx_ = c;
  }
  ~Context() { ds_context_destroy(ctx_); }

  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;
  Context(Context &&other) noexcept
      : ctx_(std::exchange(other.ctx_, nullptr)),
        device_(other.device_),
        threads_(other.threads_) {}
  Context &operator=(Context &&other) noexcept {
    if (this != &other) {
      ds_context_destroy(ctx_);
      ctx_ = std::exchange(other.ctx_, nullptr);
      device_ = other.device_;
      threads_ = other.threads_;
    }
    return *this;
  }
  void swap(Context &other) noexcept {
    std::swap(ctx_, other.ctx_);
    std::swap(device_, other.device_);
    std::swap(threads_, other.threads_);
  }

  /// Threads per call (CPU; >= 1, or 0 = one per online core). Chainable.
  Context &threads(int n) {
    check(ds_context_set_threads(ctx_, n), ctx_);
    threads_ = n;
    return *this;
  }
  /// The value last set with threads(int) (1 for a new context).
  int threads() const noexcept { return threads_; }
  /// CPU: bit-reproducible FFT plans across processes (FFTW_ESTIMATE) or the
  /// fastest measured ones (false, the default). Throws Unsupported for true
  /// on a CUDA context. Chainable.
  Context &reproducible(bool on) {
    check(ds_context_set_reproducible(ctx_, on ? 1 : 0), ctx_);
    return *this;
  }
  /// CUDA: the cudaStream_t to issue work on. Throws Unsupported on a CPU context.
  Context &stream(void *s) {
    check(ds_context_set_stream(ctx_, s), ctx_);
    return *this;
  }

  ds_context *get() const noexcept { return ctx_; }
  explicit operator bool() const noexcept { return ctx_ != nullptr; }
  ds_device device() const noexcept { return device_; }
  /// ds_context_last_error: the message of the last failed call on this context.
  const char *last_error() const noexcept { return ds_context_last_error(ctx_); }

 private:
  ds_context *ctx_ = nullptr;
  ds_device device_ = DS_DEVICE_CPU;
  int threads_ = 1;
};

inline void swap(Context &a, Context &b) noexcept { a.swap(b); }

// -------------------------------------------------------------------- views

namespace detail {
// Number of elements of a shape; 0 when a dimension is < 1 or the product
// would exceed what the library accepts (PTRDIFF_MAX / 16), so that callers
// that allocate never ask for absurd sizes and the library reports the error.
template <std::size_t Rank>
inline std::size_t element_count(const std::array<int, Rank> &shape) noexcept {
  const std::uintmax_t limit = static_cast<std::uintmax_t>(PTRDIFF_MAX) / 16u;
  std::uintmax_t total = 1;
  for (int d : shape) {
    if (d < 1) return 0;
    total *= static_cast<std::uintmax_t>(d);
    if (total > limit) return 0;
  }
  return static_cast<std::size_t>(total);
}

template <std::size_t Rank>
inline std::string shape_string(const std::array<int, Rank> &shape) {
  std::string s;
  for (std::size_t i = 0; i < Rank; i++) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}
}  // namespace detail

/// A non-owning view of a dense float tensor: data, logical shape (n, c, h, w)
/// or (n, c, l), and the memory layout (NCHW/NHWC, NCL/NLC). T is float or
/// const float; a view of float converts to a view of const float.
template <class T, std::size_t Rank>
class BasicTensorView {
  static_assert(std::is_same<std::remove_const_t<T>, float>::value, "tensors are float32");

 public:
  using value_type = T;
  using shape_type = std::array<int, Rank>;
  using vector_type =
      std::conditional_t<std::is_const<T>::value, const std::vector<float>, std::vector<float>>;

  BasicTensorView() noexcept = default;
  /// No check: the data may even be nullptr (the library then reports it).
  BasicTensorView(T *data, const shape_type &shape, ds_layout layout = DS_LAYOUT_NCHW) noexcept
      : data_(data), shape_(shape), layout_(layout) {}
  /// Throws std::invalid_argument unless v.size() is the product of shape.
  BasicTensorView(vector_type &v, const shape_type &shape, ds_layout layout = DS_LAYOUT_NCHW)
      : data_(v.data()), shape_(shape), layout_(layout) {
    bool ok = v.size() == detail::element_count(shape);
    for (int d : shape) ok = ok && d >= 1;
    if (!ok)
      throw std::invalid_argument("TensorView: a std::vector of " + std::to_string(v.size()) +
                                  " floats for shape " + detail::shape_string(shape));
  }
  /// A view of a temporary would dangle.
  BasicTensorView(std::vector<float> &&, const shape_type &, ds_layout = DS_LAYOUT_NCHW) = delete;
  /// float -> const float.
  template <class U,
            std::enable_if_t<std::is_const<T>::value && std::is_same<U, float>::value, int> = 0>
  BasicTensorView(const BasicTensorView<U, Rank> &o) noexcept  // NOLINT: implicit on purpose
      : data_(o.data()), shape_(o.shape()), layout_(o.layout()) {}

  T *data() const noexcept { return data_; }
  const shape_type &shape() const noexcept { return shape_; }
  int dim(std::size_t i) const { return shape_.at(i); }
  ds_layout layout() const noexcept { return layout_; }
  /// Product of the dimensions (0 if one is < 1).
  std::size_t size() const noexcept { return detail::element_count(shape_); }

  int n() const noexcept { return shape_[0]; }
  int c() const noexcept { return shape_[1]; }
  template <std::size_t R = Rank, std::enable_if_t<R == 4, int> = 0>
  int h() const noexcept {
    return shape_[2];
  }
  template <std::size_t R = Rank, std::enable_if_t<R == 4, int> = 0>
  int w() const noexcept {
    return shape_[3];
  }
  template <std::size_t R = Rank, std::enable_if_t<R == 3, int> = 0>
  int l() const noexcept {
    return shape_[2];
  }

 private:
  T *data_ = nullptr;
  shape_type shape_{};
  ds_layout layout_ = DS_LAYOUT_NCHW;
};

/// (n, c, h, w) in NCHW or NHWC.
template <class T>
using TensorView = BasicTensorView<T, 4>;
/// (n, c, l) in NCL or NLC.
template <class T>
using TensorView1d = BasicTensorView<T, 3>;

// ------------------------------------------------------------------ options

/// ds_diffstride_desc with the library's defaults.
struct DiffStrideOptions {
  float smoothness = 4.0f;  // R > 0
  bool cropping = true;     // false: mask only, the output is h x 2*(w/2)
  bool shared_stride = false;
  float lower_limit = 1.0f;
  float upper_limit = std::numeric_limits<float>::infinity();
  ds_layout layout = DS_LAYOUT_NCHW;  // of every tensor of a call (NCL/NLC for 1-D)

  /// ds_diffstride_desc_init, then these fields.
  ds_diffstride_desc desc() const noexcept {
    ds_diffstride_desc d;
    ds_diffstride_desc_init(&d);
    d.smoothness = smoothness;
    d.cropping = cropping ? 1 : 0;
    d.shared_stride = shared_stride ? 1 : 0;
    d.lower_limit = lower_limit;
    d.upper_limit = upper_limit;
    d.layout = static_cast<int>(layout);
    return d;
  }
  explicit operator ds_diffstride_desc() const noexcept { return desc(); }
};

struct Size2d {
  int h;
  int w;
};
inline bool operator==(const Size2d &a, const Size2d &b) noexcept {
  return a.h == b.h && a.w == b.w;
}
inline bool operator!=(const Size2d &a, const Size2d &b) noexcept { return !(a == b); }

namespace detail {
template <class A, class B>
inline void same_layout(const char *name, const A &view, const char *other, B layout) {
  if (view.layout() != static_cast<ds_layout>(layout))
    throw InvalidArgument(
        std::string(name) + ".layout: " + std::to_string(static_cast<int>(view.layout())) +
        ", differs from " + other + " (" + std::to_string(static_cast<int>(layout)) + ")");
}
template <class A, class B>
inline void same_batch(const char *name, const A &view, const char *other, const B &ref) {
  if (view.n() != ref.n() || view.c() != ref.c())
    throw ShapeMismatch(std::string(name) + ": n x c = " + std::to_string(view.n()) + " x " +
                        std::to_string(view.c()) + ", must equal " + other + "'s " +
                        std::to_string(ref.n()) + " x " + std::to_string(ref.c()));
}
template <class A, class B>
inline void same_shape(const char *name, const A &view, const char *other, const B &ref) {
  if (view.shape() != ref.shape())
    throw ShapeMismatch(std::string(name) + ": " + shape_string(view.shape()) + ", must equal " +
                        other + "'s " + shape_string(ref.shape()));
}
}  // namespace detail

// --------------------------------------------------------------- DiffStride

/// The strides the layer computes with for an h x w input (store them back
/// into the trainable strides after each update).
inline std::array<float, 2> effective_strides(const DiffStrideOptions &opts, int h, int w,
                                              std::array<float, 2> strides) {
  const ds_diffstride_desc d = opts.desc();
  std::array<float, 2> eff{};
  check(ds_diffstride_effective_strides(&d, h, w, strides.data(), eff.data()));
  return eff;
}

/// Output image size for an h x w input.
inline Size2d output_size(const DiffStrideOptions &opts, int h, int w,
                          std::array<float, 2> strides) {
  const ds_diffstride_desc d = opts.desc();
  Size2d s{0, 0};
  check(ds_diffstride_output_size(&d, h, w, strides.data(), &s.h, &s.w));
  return s;
}

/// y (n, c, out_h, out_w) = DiffStride(x (n, c, h, w)); both in opts.layout.
inline void diffstride_forward(Context &ctx, const DiffStrideOptions &opts,
                               TensorView<const float> x, std::array<float, 2> strides,
                               TensorView<float> y) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("y", y, "opts.layout", opts.layout);
  detail::same_batch("y", y, "x", x);
  const ds_diffstride_desc d = opts.desc();
  check(ds_diffstride_forward(ctx.get(), &d, x.n(), x.c(), x.h(), x.w(), strides.data(), x.data(),
                              y.h(), y.w(), y.data()),
        ctx.get());
}

/// Gradients of L = sum(dy * y). x gives the input shape; its data is read
/// only for the stride gradient and may be nullptr when want_dstrides is
/// false. dx: n*c*h*w floats in opts.layout, or nullptr to skip it. Returns
/// dL/dstrides ({total, 0} with shared_stride), or {0, 0} when not wanted.
inline std::array<float, 2> diffstride_backward(Context &ctx, const DiffStrideOptions &opts,
                                                TensorView<const float> x,
                                                TensorView<const float> dy,
                                                std::array<float, 2> strides, float *dx,
                                                bool want_dstrides = true) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("dy", dy, "opts.layout", opts.layout);
  detail::same_batch("dy", dy, "x", x);
  const ds_diffstride_desc d = opts.desc();
  std::array<float, 2> grad{0.0f, 0.0f};
  check(
      ds_diffstride_backward(ctx.get(), &d, x.n(), x.c(), x.h(), x.w(), strides.data(), x.data(),
                             dy.h(), dy.w(), dy.data(), dx, want_dstrides ? grad.data() : nullptr),
      ctx.get());
  return grad;
}

/// As above with dx a view, which must have x's shape and layout.
inline std::array<float, 2> diffstride_backward(Context &ctx, const DiffStrideOptions &opts,
                                                TensorView<const float> x,
                                                TensorView<const float> dy,
                                                std::array<float, 2> strides, TensorView<float> dx,
                                                bool want_dstrides = true) {
  detail::same_layout("dx", dx, "opts.layout", opts.layout);
  detail::same_shape("dx", dx, "x", x);
  return diffstride_backward(ctx, opts, x, dy, strides, dx.data(), want_dstrides);
}

/// Allocating forward: x is (n, c, h, w) in opts.layout; returns y.
inline std::vector<float> diffstride(Context &ctx, const DiffStrideOptions &opts, const float *x,
                                     int n, int c, int h, int w, std::array<float, 2> strides) {
  const Size2d o = output_size(opts, h, w, strides);
  std::vector<float> y(detail::element_count(std::array<int, 4>{n, c, o.h, o.w}));
  diffstride_forward(
      ctx, opts, TensorView<const float>(x, {n, c, h, w}, opts.layout), strides,
      TensorView<float>(y.empty() ? nullptr : y.data(), {n, c, o.h, o.w}, opts.layout));
  return y;
}

struct Gradients {
  std::vector<float> dx;          // (n, c, h, w)
  std::array<float, 2> dstrides;  // dL/dstrides
};

/// Allocating backward: x (n, c, h, w) and dy (n, c, out_h, out_w) in opts.layout.
inline Gradients diffstride_grad(Context &ctx, const DiffStrideOptions &opts, const float *x,
                                 const float *dy, int n, int c, int h, int w,
                                 std::array<float, 2> strides) {
  const Size2d o = output_size(opts, h, w, strides);
  Gradients g{std::vector<float>(detail::element_count(std::array<int, 4>{n, c, h, w})),
              {0.0f, 0.0f}};
  g.dstrides = diffstride_backward(ctx, opts, TensorView<const float>(x, {n, c, h, w}, opts.layout),
                                   TensorView<const float>(dy, {n, c, o.h, o.w}, opts.layout),
                                   strides, g.dx.empty() ? nullptr : g.dx.data());
  return g;
}

// ----------------------------------------------------- training calls

/// Bytes of the reserve the training calls share for an (n, c, h, w) input.
inline std::size_t reserve_size(const DiffStrideOptions &opts, int n, int c, int h, int w,
                                std::array<float, 2> strides) {
  const ds_diffstride_desc d = opts.desc();
  std::size_t bytes = 0;
  check(ds_diffstride_reserve_size(&d, n, c, h, w, strides.data(), &bytes));
  return bytes;
}

/// diffstride_forward that also fills the reserve (reserve_bytes bytes,
/// 8-byte aligned; device memory on a CUDA context) for
/// diffstride_backward_reserved.
inline void diffstride_forward_training(Context &ctx, const DiffStrideOptions &opts,
                                        TensorView<const float> x, std::array<float, 2> strides,
                                        TensorView<float> y, void *reserve,
                                        std::size_t reserve_bytes) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("y", y, "opts.layout", opts.layout);
  detail::same_batch("y", y, "x", x);
  const ds_diffstride_desc d = opts.desc();
  check(ds_diffstride_forward_training(ctx.get(), &d, x.n(), x.c(), x.h(), x.w(), strides.data(),
                                       x.data(), y.h(), y.w(), y.data(), reserve, reserve_bytes),
        ctx.get());
}

/// diffstride_backward with x's part read from a reserve that
/// diffstride_forward_training filled: in is the input image size, dy
/// gives n, c and the output size; dx as in diffstride_backward.
inline std::array<float, 2> diffstride_backward_reserved(Context &ctx, const DiffStrideOptions &opts,
                                                         Size2d in, TensorView<const float> dy,
                                                         std::array<float, 2> strides,
                                                         const void *reserve,
                                                         std::size_t reserve_bytes, float *dx,
                                                         bool want_dstrides = true) {
  detail::same_layout("dy", dy, "opts.layout", opts.layout);
  const ds_diffstride_desc d = opts.desc();
  std::array<float, 2> grad{0.0f, 0.0f};
  check(ds_diffstride_backward_reserved(ctx.get(), &d, dy.n(), dy.c(), in.h, in.w, strides.data(),
                                        reserve, reserve_bytes, dy.h(), dy.w(), dy.data(), dx,
                                        want_dstrides ? grad.data() : nullptr),
        ctx.get());
  return grad;
}

// ---------------------------------------------------------- 1-D DiffStride

inline float effective_stride1d(const DiffStrideOptions &opts, int l, float stride) {
  const ds_diffstride_desc d = opts.desc();
  float eff = 0.0f;
  check(ds_diffstride1d_effective_stride(&d, l, stride, &eff));
  return eff;
}

inline int output_size1d(const DiffStrideOptions &opts, int l, float stride) {
  const ds_diffstride_desc d = opts.desc();
  int out = 0;
  check(ds_diffstride1d_output_size(&d, l, stride, &out));
  return out;
}

/// y (n, c, out_l) = DiffStride1d(x (n, c, l)); both in opts.layout (NCL/NLC).
inline void diffstride1d_forward(Context &ctx, const DiffStrideOptions &opts,
                                 TensorView1d<const float> x, float stride, TensorView1d<float> y) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("y", y, "opts.layout", opts.layout);
  detail::same_batch("y", y, "x", x);
  const ds_diffstride_desc d = opts.desc();
  check(ds_diffstride1d_forward(ctx.get(), &d, x.n(), x.c(), x.l(), stride, x.data(), y.l(),
                                y.data()),
        ctx.get());
}

/// As diffstride_backward, for one stride: returns dL/dstride (0 when not wanted).
inline float diffstride1d_backward(Context &ctx, const DiffStrideOptions &opts,
                                   TensorView1d<const float> x, TensorView1d<const float> dy,
                                   float stride, float *dx, bool want_dstride = true) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("dy", dy, "opts.layout", opts.layout);
  detail::same_batch("dy", dy, "x", x);
  const ds_diffstride_desc d = opts.desc();
  float grad = 0.0f;
  check(ds_diffstride1d_backward(ctx.get(), &d, x.n(), x.c(), x.l(), stride, x.data(), dy.l(),
                                 dy.data(), dx, want_dstride ? &grad : nullptr),
        ctx.get());
  return grad;
}

inline float diffstride1d_backward(Context &ctx, const DiffStrideOptions &opts,
                                   TensorView1d<const float> x, TensorView1d<const float> dy,
                                   float stride, TensorView1d<float> dx, bool want_dstride = true) {
  detail::same_layout("dx", dx, "opts.layout", opts.layout);
  detail::same_shape("dx", dx, "x", x);
  return diffstride1d_backward(ctx, opts, x, dy, stride, dx.data(), want_dstride);
}

/// Bytes of the reserve the 1-D training calls share for an (n, c, l) input.
inline std::size_t reserve_size1d(const DiffStrideOptions &opts, int n, int c, int l, float stride) {
  const ds_diffstride_desc d = opts.desc();
  std::size_t bytes = 0;
  check(ds_diffstride1d_reserve_size(&d, n, c, l, stride, &bytes));
  return bytes;
}

/// diffstride1d_forward that also fills the reserve (as diffstride_forward_training).
inline void diffstride1d_forward_training(Context &ctx, const DiffStrideOptions &opts,
                                          TensorView1d<const float> x, float stride,
                                          TensorView1d<float> y, void *reserve,
                                          std::size_t reserve_bytes) {
  detail::same_layout("x", x, "opts.layout", opts.layout);
  detail::same_layout("y", y, "opts.layout", opts.layout);
  detail::same_batch("y", y, "x", x);
  const ds_diffstride_desc d = opts.desc();
  check(ds_diffstride1d_forward_training(ctx.get(), &d, x.n(), x.c(), x.l(), stride, x.data(), y.l(),
                                         y.data(), reserve, reserve_bytes),
        ctx.get());
}

/// diffstride1d_backward with x's part from the reserve: l is the input
/// length, dy gives n, c and the output length.
inline float diffstride1d_backward_reserved(Context &ctx, const DiffStrideOptions &opts, int l,
                                            TensorView1d<const float> dy, float stride,
                                            const void *reserve, std::size_t reserve_bytes,
                                            float *dx, bool want_dstride = true) {
  detail::same_layout("dy", dy, "opts.layout", opts.layout);
  const ds_diffstride_desc d = opts.desc();
  float grad = 0.0f;
  check(ds_diffstride1d_backward_reserved(ctx.get(), &d, dy.n(), dy.c(), l, stride, reserve,
                                          reserve_bytes, dy.l(), dy.data(), dx,
                                          want_dstride ? &grad : nullptr),
        ctx.get());
  return grad;
}

inline std::vector<float> diffstride1d(Context &ctx, const DiffStrideOptions &opts, const float *x,
                                       int n, int c, int l, float stride) {
  const int out = output_size1d(opts, l, stride);
  std::vector<float> y(detail::element_count(std::array<int, 3>{n, c, out}));
  diffstride1d_forward(
      ctx, opts, TensorView1d<const float>(x, {n, c, l}, opts.layout), stride,
      TensorView1d<float>(y.empty() ? nullptr : y.data(), {n, c, out}, opts.layout));
  return y;
}

struct Gradients1d {
  std::vector<float> dx;  // (n, c, l)
  float dstride;
};

inline Gradients1d diffstride1d_grad(Context &ctx, const DiffStrideOptions &opts, const float *x,
                                     const float *dy, int n, int c, int l, float stride) {
  const int out = output_size1d(opts, l, stride);
  Gradients1d g{std::vector<float>(detail::element_count(std::array<int, 3>{n, c, l})), 0.0f};
  g.dstride = diffstride1d_backward(ctx, opts, TensorView1d<const float>(x, {n, c, l}, opts.layout),
                                    TensorView1d<const float>(dy, {n, c, out}, opts.layout), stride,
                                    g.dx.empty() ? nullptr : g.dx.data());
  return g;
}

// --------------------------------------------------------- spectral pooling

inline Size2d spectral_pool_output_size(int h, int w, std::array<float, 2> strides) {
  Size2d s{0, 0};
  check(ds_spectral_pool_output_size(h, w, strides.data(), &s.h, &s.w));
  return s;
}

/// y (n, c, out_h, out_w) = spectral pooling of x (n, c, h, w), in x's layout.
inline void spectral_pool_forward(Context &ctx, TensorView<const float> x,
                                  std::array<float, 2> strides, TensorView<float> y) {
  detail::same_layout("y", y, "x.layout", x.layout());
  detail::same_batch("y", y, "x", x);
  check(ds_spectral_pool_forward(ctx.get(), static_cast<int>(x.layout()), x.n(), x.c(), x.h(),
                                 x.w(), strides.data(), x.data(), y.h(), y.w(), y.data()),
        ctx.get());
}

/// dx (n, c, h, w) = adjoint of spectral pooling applied to dy (n, c, out_h, out_w).
inline void spectral_pool_backward(Context &ctx, TensorView<const float> dy,
                                   std::array<float, 2> strides, TensorView<float> dx) {
  detail::same_layout("dy", dy, "dx.layout", dx.layout());
  detail::same_batch("dy", dy, "dx", dx);
  check(ds_spectral_pool_backward(ctx.get(), static_cast<int>(dx.layout()), dx.n(), dx.c(), dx.h(),
                                  dx.w(), strides.data(), dy.h(), dy.w(), dy.data(), dx.data()),
        ctx.get());
}

inline std::vector<float> spectral_pool(Context &ctx, const float *x, int n, int c, int h, int w,
                                        std::array<float, 2> strides,
                                        ds_layout layout = DS_LAYOUT_NCHW) {
  const Size2d o = spectral_pool_output_size(h, w, strides);
  std::vector<float> y(detail::element_count(std::array<int, 4>{n, c, o.h, o.w}));
  spectral_pool_forward(
      ctx, TensorView<const float>(x, {n, c, h, w}, layout), strides,
      TensorView<float>(y.empty() ? nullptr : y.data(), {n, c, o.h, o.w}, layout));
  return y;
}

// ------------------------------------------------------- complexity penalty

struct Penalty {
  float value;                              // J(S)
  std::vector<std::array<float, 2>> grads;  // dJ/d(s_h, s_w) per layer
};

/// J(S) over the layers' (s_h, s_w) in network order; weights: one per layer,
/// or nullptr for all 1 (std::invalid_argument if the lengths differ).
inline Penalty complexity_penalty(const std::vector<std::array<float, 2>> &strides,
                                  const std::vector<float> *weights = nullptr) {
  if (strides.size() > static_cast<std::size_t>(INT_MAX / 2))
    throw std::invalid_argument("complexity_penalty: too many layers");
  if (weights && weights->size() != strides.size())
    throw std::invalid_argument("complexity_penalty: " + std::to_string(weights->size()) +
                                " weights for " + std::to_string(strides.size()) + " layers");
  const int layers = static_cast<int>(strides.size());
  std::vector<float> flat, grad(2 * strides.size());
  flat.reserve(2 * strides.size());
  for (const auto &s : strides) flat.insert(flat.end(), s.begin(), s.end());
  Penalty p{0.0f, std::vector<std::array<float, 2>>(strides.size())};
  check(ds_complexity_penalty(layers, flat.empty() ? nullptr : flat.data(),
                              weights && !weights->empty() ? weights->data() : nullptr, &p.value,
                              grad.empty() ? nullptr : grad.data()));
  for (std::size_t l = 0; l < strides.size(); l++) p.grads[l] = {grad[2 * l], grad[2 * l + 1]};
  return p;
}

}  // namespace ds

#endif  // DIFFSTRIDE_HPP
