"""PyTorch modules on top of the library: DiffStride2d, SpectralPool2d, DiffStride1d.

Each module calls the library through one autograd Function: the forward
and the input/stride gradients are the library's (float32; the stride
gradient follows the reference layer's conventions, see docs/algorithm.md).

- Inputs of any floating dtype are computed in float32 and the output is
  converted back to the input's dtype.
- Memory format: a 2-D input (N,C,H,W) whose storage is NCHW-contiguous or
  channels-last (``torch.channels_last``, NHWC) is passed to the library as
  it is, with the matching layout, and the output (and the input gradient)
  comes in the same memory format; a 1-D input (N,C,L) likewise as NCL or
  NLC (``x.transpose(1, 2).is_contiguous()``). Any other strides are made
  NCHW (NCL) contiguous first.
- Devices: CPU tensors go through a CPU context private to the calling
  thread. CUDA tensors go through a CUDA context (one per thread and device)
  on PyTorch's current stream; when the library cannot create one (built
  without the CUDA path, or no usable device) they raise RuntimeError. They
  are never copied to the CPU behind the caller's back.
- DiffStride2d and DiffStride1d hold the strides as a learnable parameter
  and, like the reference layer, store the effective strides (raised to the
  minimum stride, clipped to the limits) back into it after each forward.
"""
import contextlib
import ctypes
import math
import threading

import torch

from . import _lib
from .context import Context, default_context
from .errors import UnsupportedError

__all__ = ["DiffStride2d", "SpectralPool2d", "DiffStride1d"]

_INT_MAX = 2**31 - 1
_cuda_contexts = threading.local()


# ---------------------------------------------------------- device contexts

def _cuda_context(device):
    """The calling thread's CUDA context for `device`, on torch's current stream.

    RuntimeError when the library cannot create a CUDA context.
    """
    contexts = _cuda_contexts.__dict__.setdefault("by_index", {})
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in contexts:
        try:
            with torch.cuda.device(index):
                contexts[index] = Context("cuda")
        except UnsupportedError as exc:
            raise RuntimeError(
                f"diffstride: CUDA tensors need the library's CUDA path, which {_lib.path} "
                f"cannot provide ({exc.function}: {exc.message}). Build libdiffstride where "
                "nvcc is found and run on a machine with a CUDA device, or move the tensors "
                "to the CPU yourself (.cpu()).") from exc
    ctx = contexts[index]
    ctx.set_stream(torch.cuda.current_stream(index).cuda_stream)
    return ctx


def _context_for(t):
    """The library context for t's device, for the calling thread; on the CPU
    it uses as many threads as PyTorch (torch.get_num_threads())."""
    if t.device.type == "cpu":
        ctx = default_context()
        if ctx.threads != torch.get_num_threads():
            ctx.threads = torch.get_num_threads()
        return ctx
    if t.device.type == "cuda":
        return _cuda_context(t.device)
    raise RuntimeError(f"diffstride: tensors on {t.device} are not supported (CPU or CUDA)")


def _on_device(t):
    """Makes t's CUDA device current (the library launches on the current device)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


# ---------------------------------------------------------- memory formats

def _channels_last(x):
    """True when x (N,C,H,W) is dense NHWC, or x (N,C,L) is dense NLC."""
    if x.dim() == 4:
        return x.is_contiguous(memory_format=torch.channels_last)
    return x.transpose(1, 2).is_contiguous()


def _dense(t, channels_last):
    """t with dense NCHW/NCL storage, or NHWC/NLC when channels_last; t itself
    when it already is."""
    if not channels_last:
        return t.contiguous()
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def _empty(shape, device, channels_last):
    """An uninitialised float32 tensor of logical shape (N,C,H,W) or (N,C,L)
    on `device`, with the storage order _dense gives."""
    options = {"dtype": torch.float32, "device": device}
    if not channels_last:
        return torch.empty(shape, **options)
    if len(shape) == 4:
        return torch.empty(shape, memory_format=torch.channels_last, **options)
    n, c, length = shape
    return torch.empty((n, length, c), **options).transpose(1, 2)


def _library_input(x, ndim, layer):
    """x as float32 in the storage the library reads: x itself when it already
    is dense NCHW/NHWC (NCL/NLC) float32. Checks it is a floating tensor of
    `ndim` dims."""
    if x.dim() != ndim:
        raise ValueError(f"{layer} expects a {ndim}-D input, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{layer} expects a floating-point input, got {x.dtype}")
    x = x.to(torch.float32)
    return _dense(x, _channels_last(x))


# --------------------------------------------------- one call, one Function

class _Call:
    """One forward call on x (from _library_input): its layout and shape.

    Subclasses set `out_shape` and implement forward(x) -> y and
    backward(kept, dy, need_dx, need_dstrides) -> (dx, dstrides or None),
    where kept is what forward_keeping(x) kept for the stride gradient (x
    itself unless a subclass keeps less) or None when it is not wanted.
    """

    def __init__(self, x):
        if max(x.shape) > _INT_MAX:
            raise ValueError(f"a dimension of {tuple(x.shape)} does not fit a C int")
        self.channels_last = _channels_last(x)
        self.layout = int(self.channels_last)  # DS_LAYOUT_NHWC / NLC, else NCHW / NCL
        self.in_shape, self.device = tuple(x.shape), x.device

    def forward_keeping(self, x):
        """y, and what the stride gradient needs of x."""
        return self.forward(x), x

    def new_reserve(self, size_function, *args):
        """An uninitialised uint8 tensor on x's device of the size the
        library's `size_function` gives for this call's reserve."""
        size = ctypes.c_size_t()
        _lib.call(size_function, *args, ctypes.byref(size))
        return torch.empty(size.value, dtype=torch.uint8, device=self.device)

    def new(self, shape):
        return _empty(shape, self.device, self.channels_last)

    def dense(self, t):
        return _dense(t, self.channels_last)

    @staticmethod
    def run(t, name, *args):
        """Calls the library function `name` with t's device context first."""
        with _on_device(t):
            _context_for(t).call(name, *args)


def _addr(t):
    """A tensor's data address, or None (NULL)."""
    return None if t is None else t.data_ptr()


class _LibraryFunction(torch.autograd.Function):
    """y = call.forward(x); the gradients of x and of the strides tensor from
    call.backward. `strides` is the stride parameter (or None): it is an input
    only so that autograd delivers its gradient."""

    @staticmethod
    def forward(ctx, x, strides, call):
        ctx.call = call
        if not ctx.needs_input_grad[1]:
            return call.forward(x)
        y, kept = call.forward_keeping(x)
        ctx.save_for_backward(kept)
        return y

    @staticmethod
    def backward(ctx, dy):
        need_dx, need_dstrides = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        kept = ctx.saved_tensors[0] if need_dstrides else None
        dx, dstrides = ctx.call.backward(kept, ctx.call.dense(dy), need_dx, need_dstrides)
        return dx, dstrides, None


# ------------------------------------------------------------- DiffStride

def _pair(strides):
    """(s_h, s_w) as floats from a pair, or from one number (alone or in a
    sequence) used for both."""
    values = tuple(strides) if isinstance(strides, (tuple, list)) else (strides,)
    if len(values) not in (1, 2):
        raise ValueError(f"strides must be one number or a pair, got {strides!r}")
    return tuple(float(s) for s in values * (3 - len(values)))


def _host_floats(strides):
    """The values of a stride parameter (1,) or (2,) as a C float[2] (a single
    stride is repeated)."""
    values = strides.detach().cpu().tolist()
    return (ctypes.c_float * 2)(values[0], values[-1])


def _as_strides(values, like):
    """Host floats as a tensor like the stride parameter `like`."""
    return torch.tensor(values[: like.numel()], dtype=like.dtype, device=like.device)


class _DiffStride2dCall(_Call):
    def __init__(self, x, strides, desc):
        super().__init__(x)
        desc.layout = self.layout
        self.desc, self.strides, self.like = desc, _host_floats(strides), strides
        self.n, self.c, self.h, self.w = x.shape
        out_h, out_w = ctypes.c_int(), ctypes.c_int()
        _lib.call("ds_diffstride_output_size", ctypes.byref(desc), self.h, self.w, self.strides,
                  ctypes.byref(out_h), ctypes.byref(out_w))
        self.out_shape = (self.n, self.c, out_h.value, out_w.value)

    def effective(self):
        """The effective strides, shaped like the parameter."""
        eff = (ctypes.c_float * 2)()
        _lib.call("ds_diffstride_effective_strides", ctypes.byref(self.desc), self.h, self.w,
                  self.strides, eff)
        return _as_strides(list(eff), self.like)

    def forward(self, x):
        y = self.new(self.out_shape)
        self.run(x, "ds_diffstride_forward", ctypes.byref(self.desc), self.n, self.c, self.h,
                 self.w, self.strides, _addr(x), self.out_shape[2], self.out_shape[3], _addr(y))
        return y

    def forward_keeping(self, x):
        """y, and the reserve of the library's training calls (x's spectra at
        the kept frequencies, 0.6x the size of x for stride 2), so that x
        itself need not be kept."""
        reserve = self.new_reserve("ds_diffstride_reserve_size", ctypes.byref(self.desc), self.n,
                                   self.c, self.h, self.w, self.strides)
        y = self.new(self.out_shape)
        self.run(x, "ds_diffstride_forward_training", ctypes.byref(self.desc), self.n, self.c,
                 self.h, self.w, self.strides, _addr(x), self.out_shape[2], self.out_shape[3],
                 _addr(y), _addr(reserve), reserve.numel())
        return y, reserve

    def backward(self, reserve, dy, need_dx, need_dstrides):
        dx = self.new(self.in_shape) if need_dx else None
        ds = (ctypes.c_float * 2)() if need_dstrides else None
        self.run(dy, "ds_diffstride_backward_reserved", ctypes.byref(self.desc), self.n, self.c,
                 self.h, self.w, self.strides, _addr(reserve), 0 if reserve is None else reserve.numel(),
                 self.out_shape[2], self.out_shape[3], _addr(dy), _addr(dx), ds)
        return dx, None if ds is None else _as_strides(list(ds), self.like)


def _learned_forward(x, ndim, layer, param, call_type, desc):
    """y of a layer whose stride parameter is learned; x has ndim dimensions.
    Like the reference layer, the parameter then holds the effective strides."""
    x32 = _library_input(x, ndim, layer)
    call = call_type(x32, param, desc)
    y = _LibraryFunction.apply(x32, param, call)
    with torch.no_grad():
        param.copy_(call.effective())
    return y.to(x.dtype)


class DiffStride2d(torch.nn.Module):
    """DiffStride: spectral downsampling with learnable strides.

    x (N,C,H,W) -> y (N,C,out_h,out_w), (out_h, out_w) following the strides
    (diffstride.output_size). Options as the reference layer: smoothness R
    (ramp width, H and W must exceed it), cropping, shared_stride (one stride
    for both axes: the parameter has shape (1,)), lower_limit and
    upper_limit (the effective strides are clipped to them). `strides` is a
    float32 nn.Parameter of shape (2,) (or (1,)); after each forward it holds
    the effective strides.
    """

    def __init__(self, strides=(2.0, 2.0), smoothness=4.0, cropping=True, shared_stride=False,
                 lower_limit=1.0, upper_limit=math.inf):
        super().__init__()
        init = _pair(strides)
        self.strides = torch.nn.Parameter(torch.tensor(init[:1] if shared_stride else init))
        self.smoothness, self.cropping, self.shared_stride = smoothness, cropping, shared_stride
        self.lower_limit, self.upper_limit = lower_limit, upper_limit

    def _desc(self):
        return _lib.new_desc(self.smoothness, self.cropping, self.shared_stride,
                             self.lower_limit, self.upper_limit, 0)

    def forward(self, x):
        return _learned_forward(x, 4, "DiffStride2d", self.strides, _DiffStride2dCall, self._desc())

    def extra_repr(self):
        return (f"strides={self.strides.tolist()}, smoothness={self.smoothness}, "
                f"cropping={self.cropping}, shared_stride={self.shared_stride}, "
                f"lower_limit={self.lower_limit}, upper_limit={self.upper_limit}")


# ---------------------------------------------------------- 1-D DiffStride

class _DiffStride1dCall(_Call):
    def __init__(self, x, stride, desc):
        super().__init__(x)
        desc.layout = self.layout
        self.desc, self.stride, self.like = desc, float(stride.detach().cpu()[0]), stride
        self.n, self.c, self.l = x.shape
        out_l = ctypes.c_int()
        _lib.call("ds_diffstride1d_output_size", ctypes.byref(desc), self.l, self.stride,
                  ctypes.byref(out_l))
        self.out_shape = (self.n, self.c, out_l.value)

    def effective(self):
        """The effective stride, shaped like the parameter (1,)."""
        eff = ctypes.c_float()
        _lib.call("ds_diffstride1d_effective_stride", ctypes.byref(self.desc), self.l,
                  self.stride, ctypes.byref(eff))
        return _as_strides([eff.value], self.like)

    def forward(self, x):
        y = self.new(self.out_shape)
        self.run(x, "ds_diffstride1d_forward", ctypes.byref(self.desc), self.n, self.c, self.l,
                 self.stride, _addr(x), self.out_shape[2], _addr(y))
        return y

    def forward_keeping(self, x):
        """y, and the reserve of the library's training calls instead of x."""
        reserve = self.new_reserve("ds_diffstride1d_reserve_size", ctypes.byref(self.desc), self.n,
                                   self.c, self.l, self.stride)
        y = self.new(self.out_shape)
        self.run(x, "ds_diffstride1d_forward_training", ctypes.byref(self.desc), self.n, self.c,
                 self.l, self.stride, _addr(x), self.out_shape[2], _addr(y), _addr(reserve),
                 reserve.numel())
        return y, reserve

    def backward(self, reserve, dy, need_dx, need_dstrides):
        dx = self.new(self.in_shape) if need_dx else None
        ds = ctypes.c_float() if need_dstrides else None
        self.run(dy, "ds_diffstride1d_backward_reserved", ctypes.byref(self.desc), self.n, self.c,
                 self.l, self.stride, _addr(reserve), 0 if reserve is None else reserve.numel(),
                 self.out_shape[2], _addr(dy), _addr(dx), None if ds is None else ctypes.byref(ds))
        return dx, None if ds is None else _as_strides([ds.value], self.like)


class DiffStride1d(torch.nn.Module):
    """1-D DiffStride (the horizontal half of the 2-D layer), for signals.

    x (N,C,L) -> y (N,C,out_l), out_l following the stride
    (diffstride.output_size1d). Options as DiffStride2d (no shared_stride).
    `stride` is a float32 nn.Parameter of shape (1,); after each forward it
    holds the effective stride.
    """

    def __init__(self, stride=2.0, smoothness=4.0, cropping=True, lower_limit=1.0,
                 upper_limit=math.inf):
        super().__init__()
        self.stride = torch.nn.Parameter(torch.tensor([float(stride)]))
        self.smoothness, self.cropping = smoothness, cropping
        self.lower_limit, self.upper_limit = lower_limit, upper_limit

    def forward(self, x):
        desc = _lib.new_desc(self.smoothness, self.cropping, False, self.lower_limit,
                             self.upper_limit, 0)
        return _learned_forward(x, 3, "DiffStride1d", self.stride, _DiffStride1dCall, desc)

    def extra_repr(self):
        return (f"stride={self.stride.item()}, smoothness={self.smoothness}, "
                f"cropping={self.cropping}, lower_limit={self.lower_limit}, "
                f"upper_limit={self.upper_limit}")


# -------------------------------------------------------- spectral pooling

class _SpectralPoolCall(_Call):
    def __init__(self, x, strides):
        super().__init__(x)
        self.strides = (ctypes.c_float * 2)(*strides)
        self.n, self.c, self.h, self.w = x.shape
        out_h, out_w = ctypes.c_int(), ctypes.c_int()
        _lib.call("ds_spectral_pool_output_size", self.h, self.w, self.strides,
                  ctypes.byref(out_h), ctypes.byref(out_w))
        self.out_shape = (self.n, self.c, out_h.value, out_w.value)

    def forward(self, x):
        y = self.new(self.out_shape)
        self.run(x, "ds_spectral_pool_forward", self.layout, self.n, self.c, self.h, self.w,
                 self.strides, _addr(x), self.out_shape[2], self.out_shape[3], _addr(y))
        return y

    def backward(self, x, dy, need_dx, need_dstrides):
        dx = self.new(self.in_shape)
        self.run(dy, "ds_spectral_pool_backward", self.layout, self.n, self.c, self.h, self.w,
                 self.strides, self.out_shape[2], self.out_shape[3], _addr(dy), _addr(dx))
        return dx, None


class SpectralPool2d(torch.nn.Module):
    """Fixed spectral pooling: x (N,C,H,W) -> y (N,C,out_h,out_w) with
    out_h = max(floor(H/s_h) rounded down to even, 2), out_w = max(floor(W/s_w), 2).
    `strides` (s_h, s_w) >= 1, or one number for both; not learned."""

    def __init__(self, strides=(2.0, 2.0)):
        super().__init__()
        self.strides = _pair(strides)

    def forward(self, x):
        x32 = _library_input(x, 4, "SpectralPool2d")
        call = _SpectralPoolCall(x32, self.strides)
        return _LibraryFunction.apply(x32, None, call).to(x.dtype)

    def extra_repr(self):
        return f"strides={self.strides}"
