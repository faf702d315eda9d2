"""Context: a ds_context (FFT plan cache, workspace, thread count, stream).

Threads: a context may be used by one thread at a time; different contexts
may run at the same time on different threads (the calls release the GIL).
Functions given ``ctx=None`` use default_context(), a CPU context private to
the calling thread, so they are safe to call from several threads at once.
"""
import ctypes
import threading

from . import _lib

DEVICES = {"cpu": 0, "cuda": 1}


class Context:
    """A library context for 'cpu' or 'cuda'.

    Use as a context manager, or call close(); a context left open is closed
    when it is garbage collected. ``threads`` (CPU): threads per call, 1 by
    default, 0 for one per online core. Creating a 'cuda' context raises
    UnsupportedError from a library built without a CUDA path.
    """

    def __init__(self, device="cpu", threads=1):
        self._handle = None
        if device not in DEVICES:
            raise ValueError(f"device must be one of {sorted(DEVICES)}, got {device!r}")
        self.device = device
        handle = ctypes.c_void_p()
        _lib.call("ds_context_create", DEVICES[device], ctypes.byref(handle))
        self._handle = handle
        self._threads = 1
        if threads != 1:
            self.threads = threads

    @property
    def handle(self):
        """The ds_context * (c_void_p); ValueError once closed."""
        if self._handle is None:
            raise ValueError("the context is closed")
        return self._handle

    @property
    def threads(self):
        """Threads each call uses (CPU context; 0 = one per online core)."""
        return self._threads

    @threads.setter
    def threads(self, count):
        self.call("ds_context_set_threads", count)
        self._threads = count

    def set_reproducible(self, on=True):
        """CPU context: FFT plans chosen without timing, so every process
        computes the same bits (True), or the fastest measured plans (False,
        the default). UnsupportedError for True on a CUDA context."""
        self.call("ds_context_set_reproducible", 1 if on else 0)

    def set_stream(self, stream):
        """CUDA context: issue the work on `stream` (a cudaStream_t as an int,
        None for the legacy default stream). UnsupportedError on a CPU context."""
        self.call("ds_context_set_stream", stream)

    @property
    def last_error(self):
        """Message of the last failed call on this context ("" if none)."""
        return _lib.text(_lib.FUNCTIONS["ds_context_last_error"](self.handle))

    def call(self, name, *args):
        """Calls `name` with this context as first argument; raises on failure
        with the context's message."""
        handle = self.handle
        _lib.call(name, handle, *args, context=handle)

    def close(self):
        """Destroys the context (plans, workspace). Idempotent."""
        if self._handle is not None:
            _lib.FUNCTIONS["ds_context_destroy"](self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        state = "closed" if self._handle is None else f"threads={self._threads}"
        return f"Context({self.device!r}, {state})"


_local = threading.local()


def default_context():
    """The calling thread's own CPU context, created on first use."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = Context("cpu")
    return ctx
