"""Library calls on PyTorch tensors: the code both paths of diffstride.torch share.

diffstride.torch runs the layers either as PyTorch custom operators
(diffstride.torch_ops, PyTorch >= 2.4) or through a torch.autograd.Function
(older PyTorch); both call the library through the _Call classes below, so
both compute the same bits.

- Memory format: a 2-D input (N,C,H,W) whose storage is NCHW-contiguous or
  channels-last (NHWC) is passed to the library as it is, with the matching
  layout, and the output (and the input gradient) comes in the same memory
  format; a 1-D input (N,C,L) likewise as NCL or NLC. Any other strides are
  made NCHW (NCL) contiguous first.
- Devices: CPU tensors go through a CPU context private to the calling
  thread; CUDA tensors through a CUDA context (one per thread and device) on
  PyTorch's current stream, or RuntimeError when the library cannot create
  one. Tensors are never copied between devices.
"""
import contextlib
import ctypes
import threading

import torch

from . import _lib
from .context import Context, default_context
from .errors import UnsupportedError

_INT_MAX = 2**31 - 1
RESERVE_HEADER = 64  # bytes of the training reserve's header
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

def channels_last(x):
    """True when x (N,C,H,W) is dense NHWC, or x (N,C,L) is dense NLC."""
    if x.dim() == 4:
        return x.is_contiguous(memory_format=torch.channels_last)
    return x.transpose(1, 2).is_contiguous()


def dense(t, nhwc):
    """t with dense NCHW/NCL storage, or NHWC/NLC when nhwc; t itself when it
    already is."""
    if not nhwc:
        return t.contiguous()
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def empty(shape, device, nhwc):
    """An uninitialised float32 tensor of logical shape (N,C,H,W) or (N,C,L)
    on `device`, with the storage order dense() gives."""
    options = {"dtype": torch.float32, "device": device}
    if not nhwc:
        return torch.empty(shape, **options)
    if len(shape) == 4:
        return torch.empty(shape, memory_format=torch.channels_last, **options)
    n, c, length = shape
    return torch.empty((n, length, c), **options).transpose(1, 2)


def library_input(x, ndim, layer):
    """x as float32 in the storage the library reads: x itself when it already
    is dense NCHW/NHWC (NCL/NLC) float32. Checks it is a floating tensor of
    `ndim` dims."""
    if x.dim() != ndim:
        raise ValueError(f"{layer} expects a {ndim}-D input, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{layer} expects a floating-point input, got {x.dtype}")
    x = x.to(torch.float32)
    return dense(x, channels_last(x))


# ------------------------------------------------------------- one call

class Call:
    """One forward call on an input of shape `in_shape` (N,C,H,W or N,C,L),
    stored NHWC/NLC when `nhwc`, on `device`; its backward.

    Built from the input's description rather than from the input, so that a
    backward can be described without keeping x. Subclasses set `out_shape`
    and implement forward(x) -> y and backward(kept, dy, need_dx,
    need_dstrides) -> (dx or None, dstrides or None), where x and dy are
    dense in the call's layout and kept is what forward_keeping(x) kept for
    the stride gradient (x itself unless a subclass keeps less) or None when
    it is not wanted.
    """

    def __init__(self, in_shape, nhwc, device):
        if max(in_shape) > _INT_MAX:
            raise ValueError(f"a dimension of {tuple(in_shape)} does not fit a C int")
        self.channels_last = nhwc
        self.layout = int(nhwc)  # DS_LAYOUT_NHWC / NLC, else NCHW / NCL
        self.in_shape, self.device = tuple(in_shape), device

    @classmethod
    def on(cls, x, *args):
        """The call of this class on the library input x (library_input)."""
        return cls(x.shape, channels_last(x), x.device, *args)

    def forward_keeping(self, x):
        """y, and what the stride gradient needs of x."""
        return self.forward(x), x

    def new_reserve(self, size_function, *args):
        """A uint8 tensor on the call's device of the size the library's
        `size_function` gives for this call's reserve (the training forward
        writes all of it)."""
        size = ctypes.c_size_t()
        _lib.call(size_function, *args, ctypes.byref(size))
        return torch.empty(size.value, dtype=torch.uint8, device=self.device)

    def new(self, shape):
        return empty(shape, self.device, self.channels_last)

    def dense(self, t):
        return dense(t, self.channels_last)

    @staticmethod
    def run(t, name, *args):
        """Calls the library function `name` with t's device context first."""
        with _on_device(t):
            _context_for(t).call(name, *args)


def _addr(t):
    """A tensor's data address, or None (NULL)."""
    return None if t is None else t.data_ptr()


def _host_floats(strides):
    """The values of a stride tensor (1,) or (2,) as a C float[2] (a single
    stride is repeated). A host read: a device sync for a CUDA tensor."""
    values = strides.detach().cpu().tolist()
    return (ctypes.c_float * 2)(values[0], values[-1])


def _as_strides(values, like):
    """Host floats as a tensor like the stride tensor `like`."""
    return torch.tensor(values[: like.numel()], dtype=like.dtype, device=like.device)


# ------------------------------------------------------------- DiffStride

class DiffStride2dCall(Call):
    """DiffStride on (N,C,H,W) at the strides tensor's values (read on the host)."""

    def __init__(self, in_shape, nhwc, device, strides, desc):
        super().__init__(in_shape, nhwc, device)
        desc.layout = self.layout
        self.desc, self.strides, self.like = desc, _host_floats(strides), strides
        self.n, self.c, self.h, self.w = self.in_shape
        out_h, out_w = ctypes.c_int(), ctypes.c_int()
        _lib.call("ds_diffstride_output_size", ctypes.byref(desc), self.h, self.w, self.strides,
                  ctypes.byref(out_h), ctypes.byref(out_w))
        self.out_shape = (self.n, self.c, out_h.value, out_w.value)

    def effective(self):
        """The effective strides, shaped like the strides tensor."""
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


class DiffStride1dCall(Call):
    """1-D DiffStride on (N,C,L) at the value of the stride tensor (1,)."""

    def __init__(self, in_shape, nhwc, device, stride, desc):
        super().__init__(in_shape, nhwc, device)
        desc.layout = self.layout
        self.desc, self.stride, self.like = desc, float(stride.detach().cpu()[0]), stride
        self.n, self.c, self.l = self.in_shape
        out_l = ctypes.c_int()
        _lib.call("ds_diffstride1d_output_size", ctypes.byref(desc), self.l, self.stride,
                  ctypes.byref(out_l))
        self.out_shape = (self.n, self.c, out_l.value)

    def effective(self):
        """The effective stride, shaped like the stride tensor (1,)."""
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


# -------------------------------------------------------- spectral pooling

class SpectralPoolCall(Call):
    """Spectral pooling on (N,C,H,W) at fixed strides (s_h, s_w), host floats."""

    def __init__(self, in_shape, nhwc, device, strides):
        super().__init__(in_shape, nhwc, device)
        self.strides = (ctypes.c_float * 2)(*strides)
        self.n, self.c, self.h, self.w = self.in_shape
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
        """dx (always: the library has no other output), no stride gradient."""
        dx = self.new(self.in_shape)
        self.run(dy, "ds_spectral_pool_backward", self.layout, self.n, self.c, self.h, self.w,
                 self.strides, self.out_shape[2], self.out_shape[3], _addr(dy), _addr(dx))
        return dx, None
