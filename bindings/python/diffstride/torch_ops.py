"""The library calls as PyTorch custom operators (torch.library, PyTorch >= 2.4).

Each library call is one opaque operator, which torch.compile and
torch.export keep as it is (nothing traces into ctypes). Namespace
``diffstride``; desc stands for (smoothness, cropping, shared_stride,
lower_limit, upper_limit), the fields of ds_diffstride_desc:

    diffstride2d(x, strides, *desc, keep_reserve) -> (y, reserve, effective)
    diffstride2d_backward(dy, reserve, strides, h, w, *desc, nhwc, need_dx, need_dstrides)
        -> (dx, dstrides)
    diffstride1d, diffstride1d_backward: the same on (N,C,L), a stride (1,), l
    spectral_pool2d(x, strides) -> y                  (strides: two floats)
    spectral_pool2d_backward(dy, h, w, strides, nhwc) -> dx

x is float32 (another floating dtype is converted); y, dx and the reserve
are on x's device, and y and dx in x's memory format (NHWC / NLC when x is,
see _torch_calls); nhwc says which for a backward. `reserve` is what the
stride gradient needs (the library's training reserve, uint8), empty unless
keep_reserve; `effective` holds the effective strides (raised to the minimum
stride, clipped to the limits) for the caller to store in its parameter. A
gradient the backward is not asked for comes back as an empty tensor and is
not computed.

Output sizes, as the fake (meta) implementations give them:
- spectral pooling: static ints, the library's size function of H, W and
  the fixed strides (a symbolic H or W is specialised to its value: the
  sizes are the library's float32 arithmetic, not a formula of symbols);
- DiffStride with cropping: unbacked symbolic sizes (2 <= out_h <= H,
  2 <= out_w <= 2*(W//2), out_w even), since they depend on the strides'
  values, which only the real kernel reads (on the host). torch.export and
  torch.compile(fullgraph=True) (or capture_dynamic_output_shape_ops) put
  the operator in the graph with them; a plain torch.compile breaks the
  graph at the operator instead and the graph after it sees concrete sizes
  (docs/bindings.md, "torch.compile and torch.export", says why);
- DiffStride without cropping: static (H, 2*(W//2)), whatever the strides.
"""
from typing import Sequence, Tuple

import torch

from . import _lib
from ._torch_calls import (RESERVE_HEADER, DiffStride1dCall, DiffStride2dCall, SpectralPoolCall,
                           channels_last, empty, library_input)
from .ops import spectral_pool_output_size

Tensor = torch.Tensor


def _desc(smoothness, cropping, shared_stride, lower_limit, upper_limit):
    """The ds_diffstride_desc of the operator arguments (the call sets the layout)."""
    return _lib.new_desc(smoothness, cropping, shared_stride, lower_limit, upper_limit, 0)


def _not_computed(device):
    """The empty tensor that stands for an output not asked for."""
    return torch.empty(0, device=device)


def _like(strides):
    """A new tensor of the strides tensor's shape, dtype and device."""
    return torch.empty(strides.shape, dtype=strides.dtype, device=strides.device)


# ------------------------------------------------ DiffStride, real kernels

def _run_learned(call_type, x, strides, desc, keep_reserve):
    """(y, reserve or empty, effective strides) of a DiffStride call on x, a
    library input (library_input)."""
    call = call_type.on(x, strides, desc)
    if keep_reserve:
        y, reserve = call.forward_keeping(x)
    else:
        y, reserve = call.forward(x), torch.empty(0, dtype=torch.uint8, device=x.device)
    return y, reserve, call.effective()


def _run_learned_backward(call, reserve, dy, need_dx, need_dstrides):
    """(dx, dstrides) of `call`, an empty tensor for each one not asked for."""
    dx, dstrides = call.backward(reserve if need_dstrides else None, call.dense(dy), need_dx,
                                 need_dstrides)
    return (_not_computed(dy.device) if dx is None else dx,
            _not_computed(dy.device) if dstrides is None else dstrides)


@torch.library.custom_op("diffstride::diffstride2d", mutates_args=())
def diffstride2d(x: Tensor, strides: Tensor, smoothness: float, cropping: bool,
                 shared_stride: bool, lower_limit: float, upper_limit: float,
                 keep_reserve: bool) -> Tuple[Tensor, Tensor, Tensor]:
    x = library_input(x, 4, "diffstride2d")
    desc = _desc(smoothness, cropping, shared_stride, lower_limit, upper_limit)
    return _run_learned(DiffStride2dCall, x, strides, desc, keep_reserve)


@torch.library.custom_op("diffstride::diffstride2d_backward", mutates_args=())
def diffstride2d_backward(dy: Tensor, reserve: Tensor, strides: Tensor, h: int, w: int,
                          smoothness: float, cropping: bool, shared_stride: bool,
                          lower_limit: float, upper_limit: float, nhwc: bool, need_dx: bool,
                          need_dstrides: bool) -> Tuple[Tensor, Tensor]:
    desc = _desc(smoothness, cropping, shared_stride, lower_limit, upper_limit)
    n, c = dy.shape[:2]
    call = DiffStride2dCall((n, c, h, w), nhwc, dy.device, strides, desc)
    return _run_learned_backward(call, reserve, dy, need_dx, need_dstrides)


@torch.library.custom_op("diffstride::diffstride1d", mutates_args=())
def diffstride1d(x: Tensor, stride: Tensor, smoothness: float, cropping: bool,
                 shared_stride: bool, lower_limit: float, upper_limit: float,
                 keep_reserve: bool) -> Tuple[Tensor, Tensor, Tensor]:
    x = library_input(x, 3, "diffstride1d")
    desc = _desc(smoothness, cropping, shared_stride, lower_limit, upper_limit)
    return _run_learned(DiffStride1dCall, x, stride, desc, keep_reserve)


@torch.library.custom_op("diffstride::diffstride1d_backward", mutates_args=())
def diffstride1d_backward(dy: Tensor, reserve: Tensor, stride: Tensor, length: int,
                          smoothness: float, cropping: bool, shared_stride: bool,
                          lower_limit: float, upper_limit: float, nhwc: bool, need_dx: bool,
                          need_dstrides: bool) -> Tuple[Tensor, Tensor]:
    desc = _desc(smoothness, cropping, shared_stride, lower_limit, upper_limit)
    n, c = dy.shape[:2]
    call = DiffStride1dCall((n, c, length), nhwc, dy.device, stride, desc)
    return _run_learned_backward(call, reserve, dy, need_dx, need_dstrides)


# -------------------------------------------------- DiffStride, fake kernels

def _unbacked_size(upper, even=False):
    """An output size that the strides' values decide, known to the graph
    only when the operator has run: 2 <= size <= upper (a crop keeps at least
    the DC row or bin and the next one, at most the whole axis), even for a
    width (2 * (kept bins - 1)). `upper` may itself be symbolic."""
    size = torch.library.get_ctx().new_dynamic_size(
        min=2, max=upper if isinstance(upper, int) else None)
    torch._check(size <= upper)
    if even:
        torch._check(size % 2 == 0)
    return size


def _fake_learned(x, strides, out_sizes, keep_reserve):
    """(y, reserve, effective) of a DiffStride operator; out_sizes: the sizes
    of y's last axes (after N and C)."""
    y = empty((*x.shape[:2], *out_sizes), x.device, channels_last(x))
    reserve_bytes = (torch.library.get_ctx().new_dynamic_size(min=RESERVE_HEADER)
                     if keep_reserve else 0)  # the strides decide it too
    return y, torch.empty(reserve_bytes, dtype=torch.uint8, device=x.device), _like(strides)


@diffstride2d.register_fake
def _(x, strides, smoothness, cropping, shared_stride, lower_limit, upper_limit, keep_reserve):
    h, w = x.shape[2:]
    if not cropping:  # the whole spectrum, inverted at its own length
        return _fake_learned(x, strides, (h, 2 * (w // 2)), keep_reserve)
    return _fake_learned(x, strides, (_unbacked_size(h), _unbacked_size(2 * (w // 2), even=True)),
                         keep_reserve)


@diffstride1d.register_fake
def _(x, stride, smoothness, cropping, shared_stride, lower_limit, upper_limit, keep_reserve):
    length = x.shape[2]
    out_l = _unbacked_size(2 * (length // 2), even=True) if cropping else 2 * (length // 2)
    return _fake_learned(x, stride, (out_l,), keep_reserve)


def _fake_learned_backward(dy, strides, in_sizes, nhwc, need_dx, need_dstrides):
    """(dx, dstrides); in_sizes: the sizes of x's last axes."""
    dx = empty((*dy.shape[:2], *in_sizes), dy.device, nhwc) if need_dx else _not_computed(dy.device)
    return dx, _like(strides) if need_dstrides else _not_computed(dy.device)


@diffstride2d_backward.register_fake
def _(dy, reserve, strides, h, w, smoothness, cropping, shared_stride, lower_limit, upper_limit,
      nhwc, need_dx, need_dstrides):
    return _fake_learned_backward(dy, strides, (h, w), nhwc, need_dx, need_dstrides)


@diffstride1d_backward.register_fake
def _(dy, reserve, stride, length, smoothness, cropping, shared_stride, lower_limit, upper_limit,
      nhwc, need_dx, need_dstrides):
    return _fake_learned_backward(dy, stride, (length,), nhwc, need_dx, need_dstrides)


# ------------------------------------------------------ DiffStride, autograd

def _setup_learned(ctx, inputs, output):
    """Keeps what the backward operator needs: the reserve, the strides (as
    the forward read them: the modules pass a copy of their parameter, which
    they then overwrite with the effective strides), and x's last sizes and
    memory format, not x."""
    x, strides, *desc, keep_reserve = inputs
    _, reserve, effective = output
    ctx.mark_non_differentiable(reserve, effective)
    ctx.save_for_backward(reserve, strides)
    ctx.desc, ctx.keep_reserve = desc, keep_reserve
    ctx.in_sizes, ctx.nhwc = tuple(x.shape[2:]), channels_last(x)


def _learned_autograd(backward_op):
    """The autograd backward of a DiffStride operator, through backward_op."""

    def backward(ctx, dy, _dreserve, _deffective):
        need_dx, need_dstrides = ctx.needs_input_grad[:2]
        if need_dstrides and not ctx.keep_reserve:
            raise RuntimeError("diffstride: the stride gradient needs the reserve of a "
                               "forward called with keep_reserve=True")
        reserve, strides = ctx.saved_tensors
        dx, dstrides = backward_op(dy, reserve, strides, *ctx.in_sizes, *ctx.desc, ctx.nhwc,
                                   need_dx, need_dstrides)
        # No gradient for the 6 non-tensor arguments (desc, keep_reserve).
        return (dx if need_dx else None, dstrides if need_dstrides else None) + (None,) * 6

    return backward


diffstride2d.register_autograd(_learned_autograd(diffstride2d_backward),
                               setup_context=_setup_learned)
diffstride1d.register_autograd(_learned_autograd(diffstride1d_backward),
                               setup_context=_setup_learned)


# --------------------------------------------------------- spectral pooling

@torch.library.custom_op("diffstride::spectral_pool2d", mutates_args=())
def spectral_pool2d(x: Tensor, strides: Sequence[float]) -> Tensor:
    x = library_input(x, 4, "spectral_pool2d")
    return SpectralPoolCall.on(x, strides).forward(x)


@torch.library.custom_op("diffstride::spectral_pool2d_backward", mutates_args=())
def spectral_pool2d_backward(dy: Tensor, h: int, w: int, strides: Sequence[float],
                             nhwc: bool) -> Tensor:
    n, c = dy.shape[:2]
    call = SpectralPoolCall((n, c, h, w), nhwc, dy.device, strides)
    return call.backward(None, call.dense(dy), True, False)[0]


@spectral_pool2d.register_fake
def _(x, strides):
    out_h, out_w = spectral_pool_output_size(int(x.shape[2]), int(x.shape[3]), strides)
    return empty((*x.shape[:2], out_h, out_w), x.device, channels_last(x))


@spectral_pool2d_backward.register_fake
def _(dy, h, w, strides, nhwc):
    return empty((*dy.shape[:2], h, w), dy.device, nhwc)


def _setup_pool(ctx, inputs, output):
    x, strides = inputs
    ctx.in_sizes, ctx.strides, ctx.nhwc = tuple(x.shape[2:]), strides, channels_last(x)


def _pool_backward(ctx, dy):
    """dx (x is the only tensor input, so it is wanted); no stride gradient."""
    return spectral_pool2d_backward(dy, *ctx.in_sizes, ctx.strides, ctx.nhwc), None


spectral_pool2d.register_autograd(_pool_backward, setup_context=_setup_pool)
