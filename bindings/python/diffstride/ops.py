"""The library's functions on numpy arrays.

Arrays: every tensor argument is converted with
``np.ascontiguousarray(a, dtype=np.float32)`` (no copy when it already is a
C-contiguous float32 array); results are new C-contiguous float32 arrays.
The library computes in float32.

Layouts: 2-D tensors are ``'NCHW'`` (n, c, h, w) or ``'NHWC'`` (n, h, w, c);
1-D tensors ``'NCL'`` (n, c, l) or ``'NLC'`` (n, l, c). The output has the
layout of the input. Only the number of dimensions (and that x and dy agree
on n and c) is checked here; every other check is the library's, which
raises a DiffStrideError subclass carrying its message.

Options of the DiffStride functions (the reference layer's): ``smoothness``
R > 0 (the ramp width in frequency bins), ``cropping`` (drop the frequencies
the mask zeroes; without it the output is h x 2*(w//2)), ``shared_stride`` (one stride for both axes, read from
strides[0]), ``lower``/``upper`` (the limits the effective strides are
clipped to). Every DiffStride function takes all of them, so one dict of
options can be passed to each. Strides are a pair (s_h, s_w) or one number
used for both axes.

``ctx``: a Context, or None for the calling thread's default CPU context.
"""
import ctypes
import math

import numpy as np

from . import _lib
from .context import default_context

LAYOUTS_2D = {"NCHW": 0, "NHWC": 1}
LAYOUTS_1D = {"NCL": 0, "NLC": 1}
_INT_MAX = 2**31 - 1


# ------------------------------------------------------------------ helpers

def _layout(layout, table):
    """The ds_layout value of a layout name from `table`."""
    if layout not in table:
        raise ValueError(f"layout must be one of {sorted(table)}, got {layout!r}")
    return table[layout]


def _int(value, name):
    """value as an int that fits a C int."""
    value = int(value)
    if not -_INT_MAX - 1 <= value <= _INT_MAX:
        raise ValueError(f"{name}: {value} does not fit a C int")
    return value


def _array(a, ndim, name):
    """a as a C-contiguous float32 array of `ndim` dimensions."""
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    for size in arr.shape:
        _int(size, f"{name}.shape")
    return arr


def _pair(strides):
    """strides (s_h, s_w), or one number for both, as a C float[2]."""
    s = np.asarray(strides, dtype=np.float64).ravel()
    if s.size == 1:
        s = np.repeat(s, 2)
    if s.size != 2:
        raise ValueError(f"strides must be one number or a pair, got {strides!r}")
    return (ctypes.c_float * 2)(*s)


def _ctx(ctx):
    return default_context() if ctx is None else ctx


def _desc(smoothness, cropping, shared_stride, lower, upper, layout=0):
    return _lib.new_desc(smoothness, cropping, shared_stride, lower, upper, layout)


def _nchw(shape, layout):
    """(n, c, h, w) of a 4-D shape in `layout` (0 NCHW, 1 NHWC)."""
    n, a, b, d = shape
    return (n, a, b, d) if layout == 0 else (n, d, a, b)


def _shape4(n, c, h, w, layout):
    """The 4-D shape of (n, c, h, w) in `layout`."""
    return (n, c, h, w) if layout == 0 else (n, h, w, c)


def _ncl(shape, layout):
    """(n, c, l) of a 3-D shape in `layout` (0 NCL, 1 NLC)."""
    n, a, b = shape
    return (n, a, b) if layout == 0 else (n, b, a)


def _shape3(n, c, length, layout):
    """The 3-D shape of (n, c, l) in `layout`."""
    return (n, c, length) if layout == 0 else (n, length, c)


def _same_images(x_dims, dy_dims):
    """ValueError unless x and dy have the same n and c."""
    if x_dims[:2] != dy_dims[:2]:
        raise ValueError(f"x has (n, c) = {x_dims[:2]} but dy has {dy_dims[:2]}")


def _empty(shape):
    return np.empty(shape, dtype=np.float32)


def _addr(arr):
    """Address of an array's data, or None (NULL) for None."""
    return None if arr is None else arr.ctypes.data


# ------------------------------------------------------------------ version

def version():
    """The loaded library's version string, e.g. "0.1.0"."""
    return _lib.text(_lib.FUNCTIONS["ds_version_string"]())


def library_version():
    """The loaded library's (major, minor, patch), from ds_version()."""
    v = _lib.FUNCTIONS["ds_version"]()
    return v // 10000, v // 100 % 100, v % 100


def status_string(status):
    """The library's short description of a status code."""
    return _lib.text(_lib.FUNCTIONS["ds_status_string"](status))


# --------------------------------------------------------------- DiffStride

def effective_strides(h, w, strides, *, smoothness=4.0, cropping=True, shared_stride=False,
                      lower=1.0, upper=math.inf):
    """The strides (s_h', s_w') the layer computes with for an h x w input:
    raised to h/(h-R), w/(w-R) and clipped to [lower, upper]. A reference
    layer stores them back into its stride variable after each call."""
    desc = _desc(smoothness, cropping, shared_stride, lower, upper)
    eff = (ctypes.c_float * 2)()
    _lib.call("ds_diffstride_effective_strides", ctypes.byref(desc),
              _int(h, "h"), _int(w, "w"), _pair(strides), eff)
    return eff[0], eff[1]


def _output_size(desc, h, w, strides):
    out_h, out_w = ctypes.c_int(), ctypes.c_int()
    _lib.call("ds_diffstride_output_size", ctypes.byref(desc), h, w, strides,
              ctypes.byref(out_h), ctypes.byref(out_w))
    return out_h.value, out_w.value


def output_size(h, w, strides, *, smoothness=4.0, cropping=True, shared_stride=False,
                lower=1.0, upper=math.inf):
    """(out_h, out_w) of DiffStride on an h x w input (h x 2*(w//2) without cropping)."""
    desc = _desc(smoothness, cropping, shared_stride, lower, upper)
    return _output_size(desc, _int(h, "h"), _int(w, "w"), _pair(strides))


def diffstride(x, strides, *, smoothness=4.0, cropping=True, shared_stride=False,
               lower=1.0, upper=math.inf, layout="NCHW", ctx=None):
    """y = DiffStride(x).

    x is (N,C,H,W) float32 for layout 'NCHW', (N,H,W,C) for 'NHWC'; y is
    (N,C,out_h,out_w), resp. (N,out_h,out_w,C), with (out_h, out_w) =
    output_size(H, W, strides, ...).
    """
    code = _layout(layout, LAYOUTS_2D)
    x = _array(x, 4, "x")
    desc = _desc(smoothness, cropping, shared_stride, lower, upper, code)
    s = _pair(strides)
    n, c, h, w = _nchw(x.shape, code)
    out_h, out_w = _output_size(desc, h, w, s)
    y = _empty(_shape4(n, c, out_h, out_w, code))
    _ctx(ctx).call("ds_diffstride_forward", ctypes.byref(desc), n, c, h, w, s, _addr(x),
                   out_h, out_w, _addr(y))
    return y


def diffstride_backward(x, dy, strides, *, smoothness=4.0, cropping=True, shared_stride=False,
                        lower=1.0, upper=math.inf, layout="NCHW", need_dx=True,
                        need_dstrides=True, ctx=None):
    """Gradients of L = sum(dy * diffstride(x, strides, ...)).

    x is (N,C,H,W) float32 and dy (N,C,out_h,out_w) in `layout` (NHWC:
    (N,H,W,C) and (N,out_h,out_w,C)); x's values are read only for dstrides.
    Returns (dx, dstrides): dx like x, dstrides a (2,) float32 array with
    respect to the strides as given (with shared_stride: [total, 0]); each
    None when not asked for.
    """
    code = _layout(layout, LAYOUTS_2D)
    x, dy = _array(x, 4, "x"), _array(dy, 4, "dy")
    desc = _desc(smoothness, cropping, shared_stride, lower, upper, code)
    n, c, h, w = _nchw(x.shape, code)
    dy_dims = _nchw(dy.shape, code)
    _same_images((n, c), dy_dims)
    dx = _empty(x.shape) if need_dx else None
    ds = np.empty(2, dtype=np.float32) if need_dstrides else None
    _ctx(ctx).call("ds_diffstride_backward", ctypes.byref(desc), n, c, h, w, _pair(strides),
                   _addr(x), dy_dims[2], dy_dims[3], _addr(dy), _addr(dx),
                   None if ds is None else ds.ctypes.data_as(_lib.FP))
    return dx, ds


# ------------------------------------------------------------ 1-D DiffStride

def effective_stride1d(length, stride, *, smoothness=4.0, cropping=True, shared_stride=False,
                       lower=1.0, upper=math.inf):
    """The stride the 1-D layer computes with for signals of `length`:
    raised to l/(l-R) and clipped to [lower, upper]. shared_stride is unused."""
    desc = _desc(smoothness, cropping, shared_stride, lower, upper)
    eff = ctypes.c_float()
    _lib.call("ds_diffstride1d_effective_stride", ctypes.byref(desc), _int(length, "l"),
              float(stride), ctypes.byref(eff))
    return eff.value


def _output_size1d(desc, length, stride):
    out = ctypes.c_int()
    _lib.call("ds_diffstride1d_output_size", ctypes.byref(desc), length, stride,
              ctypes.byref(out))
    return out.value


def output_size1d(length, stride, *, smoothness=4.0, cropping=True, shared_stride=False,
                  lower=1.0, upper=math.inf):
    """out_l of the 1-D layer on signals of `length` (length without cropping)."""
    desc = _desc(smoothness, cropping, shared_stride, lower, upper)
    return _output_size1d(desc, _int(length, "l"), float(stride))


def diffstride1d(x, stride, *, smoothness=4.0, cropping=True, shared_stride=False,
                 lower=1.0, upper=math.inf, layout="NCL", ctx=None):
    """y = DiffStride1d(x).

    x is (N,C,L) float32 for layout 'NCL', (N,L,C) for 'NLC'; y is
    (N,C,out_l), resp. (N,out_l,C), with out_l = output_size1d(L, stride, ...).
    """
    code = _layout(layout, LAYOUTS_1D)
    x = _array(x, 3, "x")
    desc = _desc(smoothness, cropping, shared_stride, lower, upper, code)
    n, c, length = _ncl(x.shape, code)
    stride = float(stride)
    out_l = _output_size1d(desc, length, stride)
    y = _empty(_shape3(n, c, out_l, code))
    _ctx(ctx).call("ds_diffstride1d_forward", ctypes.byref(desc), n, c, length, stride,
                   _addr(x), out_l, _addr(y))
    return y


def diffstride1d_backward(x, dy, stride, *, smoothness=4.0, cropping=True, shared_stride=False,
                          lower=1.0, upper=math.inf, layout="NCL", need_dx=True,
                          need_dstride=True, ctx=None):
    """Gradients of L = sum(dy * diffstride1d(x, stride, ...)).

    x is (N,C,L) float32 and dy (N,C,out_l) in `layout` (NLC: (N,L,C) and
    (N,out_l,C)); x's values are read only for dstride. Returns (dx, dstride):
    dx like x, dstride a float; each None when not asked for.
    """
    code = _layout(layout, LAYOUTS_1D)
    x, dy = _array(x, 3, "x"), _array(dy, 3, "dy")
    desc = _desc(smoothness, cropping, shared_stride, lower, upper, code)
    n, c, length = _ncl(x.shape, code)
    dy_dims = _ncl(dy.shape, code)
    _same_images((n, c), dy_dims)
    dx = _empty(x.shape) if need_dx else None
    ds = ctypes.c_float() if need_dstride else None
    _ctx(ctx).call("ds_diffstride1d_backward", ctypes.byref(desc), n, c, length, float(stride),
                   _addr(x), dy_dims[2], _addr(dy), _addr(dx),
                   None if ds is None else ctypes.byref(ds))
    return dx, None if ds is None else ds.value


# --------------------------------------------------------- spectral pooling

def _pool_size(h, w, strides):
    out_h, out_w = ctypes.c_int(), ctypes.c_int()
    _lib.call("ds_spectral_pool_output_size", h, w, strides, ctypes.byref(out_h),
              ctypes.byref(out_w))
    return out_h.value, out_w.value


def spectral_pool_output_size(h, w, strides):
    """(out_h, out_w) of fixed spectral pooling: out_h = max(floor(h/s_h)
    rounded down to even, 2), out_w = max(floor(w/s_w), 2); strides >= 1."""
    return _pool_size(_int(h, "h"), _int(w, "w"), _pair(strides))


def spectral_pool(x, strides, *, layout="NCHW", ctx=None):
    """Fixed spectral pooling. x is (N,C,H,W) float32 ('NHWC': (N,H,W,C));
    y is (N,C,out_h,out_w) (resp. (N,out_h,out_w,C))."""
    code = _layout(layout, LAYOUTS_2D)
    x = _array(x, 4, "x")
    s = _pair(strides)
    n, c, h, w = _nchw(x.shape, code)
    out_h, out_w = _pool_size(h, w, s)
    y = _empty(_shape4(n, c, out_h, out_w, code))
    _ctx(ctx).call("ds_spectral_pool_forward", code, n, c, h, w, s, _addr(x), out_h, out_w,
                   _addr(y))
    return y


def spectral_pool_backward(dy, strides, input_size, *, layout="NCHW", ctx=None):
    """dx = the adjoint of spectral pooling applied to dy.

    dy is (N,C,out_h,out_w) float32 ('NHWC': (N,out_h,out_w,C)),
    input_size = (H, W) of the pooled input; dx is (N,C,H,W) (resp. (N,H,W,C)).
    """
    code = _layout(layout, LAYOUTS_2D)
    dy = _array(dy, 4, "dy")
    h, w = (_int(v, "input_size") for v in input_size)
    n, c, out_h, out_w = _nchw(dy.shape, code)
    dx = _empty(_shape4(n, c, h, w, code))
    _ctx(ctx).call("ds_spectral_pool_backward", code, n, c, h, w, _pair(strides), out_h,
                   out_w, _addr(dy), _addr(dx))
    return dx


# ------------------------------------------------------- complexity penalty

def complexity_penalty(strides, weights=None):
    """J(S) = sum_l weights[l] * prod_{i<=l} 1/(s_h^i s_w^i) and its gradient.

    strides is (L, 2) (or flat (2L,)) float32, one (s_h, s_w) per
    downsampling layer in network order; weights is (L,) or None (all 1).
    Returns (J as a float, dJ/dstrides shaped like strides, float32).
    """
    s = np.ascontiguousarray(strides, dtype=np.float32)
    if s.ndim not in (1, 2) or s.size % 2 or (s.ndim == 2 and s.shape[1] != 2):
        raise ValueError(f"strides must be (L, 2) or (2L,), got shape {s.shape}")
    layers = s.size // 2
    wts = None if weights is None else _array(weights, 1, "weights")
    if wts is not None and wts.size != layers:
        raise ValueError(f"weights has {wts.size} values for {layers} layers")
    value = ctypes.c_float()
    grad = np.empty_like(s)
    _lib.call("ds_complexity_penalty", layers, s.ctypes.data_as(_lib.FP),
              None if wts is None else wts.ctypes.data_as(_lib.FP), ctypes.byref(value),
              grad.ctypes.data_as(_lib.FP))
    return value.value, grad
