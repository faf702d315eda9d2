"""Exceptions raised for the library's failure statuses.

Every failing library call raises the subclass of DiffStrideError that matches
its ds_status. The exception carries the status code (``status``), the C
function that failed (``function``) and the library's own message
(``message``, e.g. ``"h x w: 4 x 8, both must exceed desc->smoothness (4)"``),
read from ds_context_last_error() for calls that take a context and from
ds_last_error() otherwise.
"""

DS_OK = 0
DS_ERR_INVALID_ARGUMENT = -1
DS_ERR_SHAPE_MISMATCH = -2
DS_ERR_OUT_OF_MEMORY = -3
DS_ERR_UNSUPPORTED = -4
DS_ERR_BACKEND = -5


class DiffStrideError(Exception):
    """A library call returned a status other than DS_OK.

    Attributes: status (int, a ds_status), function (str, the C function),
    message (str, the library's message naming the bad argument).
    """

    def __init__(self, status, function, message):
        self.status = status
        self.function = function
        self.message = message
        super().__init__(f"{function}: {message} (status {status})")


class InvalidArgumentError(DiffStrideError, ValueError):
    """DS_ERR_INVALID_ARGUMENT: a bad pointer, dimension, value or enum."""


class ShapeMismatchError(DiffStrideError, ValueError):
    """DS_ERR_SHAPE_MISMATCH: out_h/out_w differ from the *_output_size result."""


class OutOfMemoryError(DiffStrideError, MemoryError):
    """DS_ERR_OUT_OF_MEMORY: a context, workspace or temporary allocation failed."""


class UnsupportedError(DiffStrideError, NotImplementedError):
    """DS_ERR_UNSUPPORTED: e.g. a CUDA context from a library without a CUDA path,
    or a function this build of the library does not export."""


class BackendError(DiffStrideError, RuntimeError):
    """DS_ERR_BACKEND: FFTW (or cuFFT / the CUDA runtime) failed."""


_BY_STATUS = {
    DS_ERR_INVALID_ARGUMENT: InvalidArgumentError,
    DS_ERR_SHAPE_MISMATCH: ShapeMismatchError,
    DS_ERR_OUT_OF_MEMORY: OutOfMemoryError,
    DS_ERR_UNSUPPORTED: UnsupportedError,
    DS_ERR_BACKEND: BackendError,
}


def error_for(status, function, message):
    """The exception for a failed call: the status's subclass, or DiffStrideError
    itself for a status this version of the bindings does not know."""
    return _BY_STATUS.get(status, DiffStrideError)(status, function, message)
