"""Python bindings of libdiffstride (ctypes + numpy).

DiffStride (learnable strides, Riad et al., ICLR 2022) and fixed spectral
pooling, forward and backward, on numpy float32 arrays; see diffstride.ops.
With PyTorch installed, diffstride.torch has the modules DiffStride2d,
SpectralPool2d and DiffStride1d (also reachable as diffstride.DiffStride2d
etc., which imports torch on first use).

The shared library is found as described in diffstride._lib (first
$DIFFSTRIDE_LIB); ``diffstride.library_path`` says which one was loaded.
"""
from ._lib import path as library_path
from .context import Context, default_context
from .errors import (BackendError, DiffStrideError, InvalidArgumentError, OutOfMemoryError,
                     ShapeMismatchError, UnsupportedError)
from .ops import (complexity_penalty, diffstride, diffstride1d, diffstride1d_backward,
                  diffstride_backward, effective_stride1d, effective_strides, library_version,
                  output_size, output_size1d, spectral_pool, spectral_pool_backward,
                  spectral_pool_output_size, status_string, version)

__version__ = version()  # the loaded library's: one version number, in include/diffstride.h
__all__ = [
    "BackendError", "Context", "DiffStrideError", "InvalidArgumentError", "OutOfMemoryError",
    "ShapeMismatchError", "UnsupportedError", "complexity_penalty", "default_context",
    "diffstride", "diffstride1d", "diffstride1d_backward", "diffstride_backward",
    "effective_stride1d", "effective_strides", "library_path", "library_version", "output_size",
    "output_size1d", "spectral_pool", "spectral_pool_backward", "spectral_pool_output_size",
    "status_string", "version",
]

_TORCH_NAMES = ("DiffStride2d", "SpectralPool2d", "DiffStride1d")


def __getattr__(name):
    """diffstride.DiffStride2d etc.: imports diffstride.torch (and torch) on first use."""
    if name in _TORCH_NAMES:
        from . import torch as _torch_modules
        return getattr(_torch_modules, name)
    raise AttributeError(f"module 'diffstride' has no attribute {name!r}")
