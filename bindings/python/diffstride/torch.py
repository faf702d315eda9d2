"""PyTorch modules on top of the library: DiffStride2d, SpectralPool2d, DiffStride1d.

The forward and the input/stride gradients are the library's (float32; the
stride gradient follows the reference layer's conventions, see
docs/algorithm.md). Two paths reach the library, chosen at import by
PyTorch's version, with the same library calls (diffstride._torch_calls) and
so the same results:

- PyTorch >= 2.4: custom operators (diffstride.torch_ops), opaque calls
  for torch.compile and torch.export (docs/bindings.md, "torch.compile and
  torch.export": the graphs, the output sizes, what they cost);
- older PyTorch: one torch.autograd.Function per call (eager only).

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
import math

import torch

from . import _lib
from ._torch_calls import DiffStride1dCall, DiffStride2dCall, SpectralPoolCall, library_input

__all__ = ["DiffStride2d", "SpectralPool2d", "DiffStride1d"]

# torch.library.custom_op, register_fake and register_autograd: PyTorch 2.4.
_CUSTOM_OPS = torch.__version__ >= (2, 4)
if _CUSTOM_OPS:
    from . import torch_ops as _ops


# ------------------------------------- the older path: an autograd Function

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


def _learned_forward(x, ndim, layer, param, desc):
    """y of a layer whose stride parameter is learned; x has ndim dimensions,
    desc is (smoothness, cropping, shared_stride, lower_limit, upper_limit).
    Like the reference layer, the parameter then holds the effective strides."""
    x32 = library_input(x, ndim, layer)
    if _CUSTOM_OPS:
        op = _ops.diffstride2d if ndim == 4 else _ops.diffstride1d
        # The reserve for the stride gradient is kept when autograd will ask
        # for it. The operator gets a copy of the strides, which it keeps for
        # its backward: the parameter itself is overwritten below (autograd
        # refuses a saved tensor modified in place); the gradient flows
        # through the copy.
        keep_reserve = torch.is_grad_enabled() and param.requires_grad
        y, _, effective = op(x32, param.clone(), *desc, keep_reserve)
    else:
        call = (DiffStride2dCall if ndim == 4 else DiffStride1dCall).on(
            x32, param, _lib.new_desc(*desc, 0))
        y, effective = _LibraryFunction.apply(x32, param, call), call.effective()
    # An in-place copy that torch.compile and torch.export trace (a mutation
    # of the parameter, applied after the graph); autograd does not record it.
    with torch.no_grad():
        param.copy_(effective)
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

    def forward(self, x):
        desc = (self.smoothness, self.cropping, self.shared_stride, self.lower_limit,
                self.upper_limit)
        return _learned_forward(x, 4, "DiffStride2d", self.strides, desc)

    def extra_repr(self):
        return (f"strides={self.strides.tolist()}, smoothness={self.smoothness}, "
                f"cropping={self.cropping}, shared_stride={self.shared_stride}, "
                f"lower_limit={self.lower_limit}, upper_limit={self.upper_limit}")


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
        desc = (self.smoothness, self.cropping, False, self.lower_limit, self.upper_limit)
        return _learned_forward(x, 3, "DiffStride1d", self.stride, desc)

    def extra_repr(self):
        return (f"stride={self.stride.item()}, smoothness={self.smoothness}, "
                f"cropping={self.cropping}, lower_limit={self.lower_limit}, "
                f"upper_limit={self.upper_limit}")


# -------------------------------------------------------- spectral pooling

class SpectralPool2d(torch.nn.Module):
    """Fixed spectral pooling: x (N,C,H,W) -> y (N,C,out_h,out_w) with
    out_h = max(floor(H/s_h) rounded down to even, 2), out_w = max(floor(W/s_w), 2).
    `strides` (s_h, s_w) >= 1, or one number for both; not learned."""

    def __init__(self, strides=(2.0, 2.0)):
        super().__init__()
        self.strides = _pair(strides)

    def forward(self, x):
        x32 = library_input(x, 4, "SpectralPool2d")
        if _CUSTOM_OPS:
            y = _ops.spectral_pool2d(x32, list(self.strides))
        else:
            y = _LibraryFunction.apply(x32, None, SpectralPoolCall.on(x32, self.strides))
        return y.to(x.dtype)

    def extra_repr(self):
        return f"strides={self.strides}"
