"""Finds and loads libdiffstride, declares the prototypes of its public API.

Search order (the first that loads wins):

1. ``$DIFFSTRIDE_LIB``, a path to the shared library (when set, nothing else
   is tried: a bad value is an error, not a fallback);
2. the package's own directory, where ``pip install .`` puts the library it
   built (so an installed package always uses its own copy);
3. near the package: ``<repo>/lib/`` when the package is run from a
   checkout (``bindings/python/diffstride``), and ``<prefix>/lib/`` when it
   sits under ``<prefix>/lib/python3*/site-packages``;
4. ``ctypes.util.find_library('diffstride')`` (the dynamic linker's cache,
   ``LD_LIBRARY_PATH``);
5. common prefixes: /usr/local/lib, /usr/lib and their multiarch and lib64
   variants.

Every function of include/diffstride.h gets its argtypes and restype. Tensor
pointers are declared ``c_void_p`` so that numpy addresses
(``array.ctypes.data``) and PyTorch addresses (``tensor.data_ptr()``) pass
as plain ints (``None`` is NULL); the small host arrays (strides, effective
strides, dstrides, penalty values) are ``POINTER(c_float)``. A function that
the loaded library does not export (a library older than the header) raises
UnsupportedError when called.
"""
import ctypes
import ctypes.util
import os
import sysconfig

from .errors import DS_ERR_UNSUPPORTED, DS_OK, UnsupportedError, error_for

_NAMES = ("libdiffstride.so.0", "libdiffstride.so")


class Desc(ctypes.Structure):
    """struct ds_diffstride_desc, field for field."""
    _fields_ = [
        ("smoothness", ctypes.c_float),
        ("cropping", ctypes.c_int),
        ("shared_stride", ctypes.c_int),
        ("lower_limit", ctypes.c_float),
        ("upper_limit", ctypes.c_float),
        ("layout", ctypes.c_int),
    ]


INT = ctypes.c_int
F = ctypes.c_float
FP = ctypes.POINTER(ctypes.c_float)
IP = ctypes.POINTER(ctypes.c_int)
VP = ctypes.c_void_p  # a tensor (float *) or the opaque ds_context *
DESCP = ctypes.POINTER(Desc)
STR = ctypes.c_char_p

# name: (restype, argtypes), in the header's order.
PROTOTYPES = {
    "ds_version": (ctypes.c_uint, []),
    "ds_version_string": (STR, []),
    "ds_status_string": (STR, [INT]),
    "ds_last_error": (STR, []),
    "ds_context_create": (INT, [INT, ctypes.POINTER(VP)]),
    "ds_context_destroy": (None, [VP]),
    "ds_context_set_threads": (INT, [VP, INT]),
    "ds_context_set_stream": (INT, [VP, VP]),
    "ds_context_set_reproducible": (INT, [VP, INT]),
    "ds_context_last_error": (STR, [VP]),
    "ds_diffstride_desc_init": (None, [DESCP]),
    "ds_diffstride_effective_strides": (INT, [DESCP, INT, INT, FP, FP]),
    "ds_diffstride_output_size": (INT, [DESCP, INT, INT, FP, IP, IP]),
    "ds_diffstride_forward": (INT, [VP, DESCP, INT, INT, INT, INT, FP, VP, INT, INT, VP]),
    "ds_diffstride_backward": (INT, [VP, DESCP, INT, INT, INT, INT, FP, VP, INT, INT, VP, VP, FP]),
    "ds_diffstride_reserve_size": (INT, [DESCP, INT, INT, INT, INT, FP, ctypes.POINTER(ctypes.c_size_t)]),
    "ds_diffstride_forward_training": (INT, [VP, DESCP, INT, INT, INT, INT, FP, VP, INT, INT, VP, VP,
                                             ctypes.c_size_t]),
    "ds_diffstride_backward_reserved": (INT, [VP, DESCP, INT, INT, INT, INT, FP, VP, ctypes.c_size_t, INT,
                                              INT, VP, VP, FP]),
    "ds_diffstride1d_effective_stride": (INT, [DESCP, INT, F, FP]),
    "ds_diffstride1d_output_size": (INT, [DESCP, INT, F, IP]),
    "ds_diffstride1d_forward": (INT, [VP, DESCP, INT, INT, INT, F, VP, INT, VP]),
    "ds_diffstride1d_backward": (INT, [VP, DESCP, INT, INT, INT, F, VP, INT, VP, VP, FP]),
    "ds_diffstride1d_reserve_size": (INT, [DESCP, INT, INT, INT, F, ctypes.POINTER(ctypes.c_size_t)]),
    "ds_diffstride1d_forward_training": (INT, [VP, DESCP, INT, INT, INT, F, VP, INT, VP, VP,
                                               ctypes.c_size_t]),
    "ds_diffstride1d_backward_reserved": (INT, [VP, DESCP, INT, INT, INT, F, VP, ctypes.c_size_t, INT,
                                                VP, VP, FP]),
    "ds_spectral_pool_output_size": (INT, [INT, INT, FP, IP, IP]),
    "ds_spectral_pool_forward": (INT, [VP, INT, INT, INT, INT, INT, FP, VP, INT, INT, VP]),
    "ds_spectral_pool_backward": (INT, [VP, INT, INT, INT, INT, INT, FP, INT, INT, VP, VP]),
    "ds_complexity_penalty": (INT, [INT, FP, FP, FP, FP]),
}


def _beside_package():
    """The package's directory, then <repo>/lib (checkout) and <prefix>/lib
    (installed), from this file."""
    here = os.path.dirname(os.path.abspath(__file__))
    up3 = os.path.abspath(os.path.join(here, "..", "..", ".."))
    return [here, os.path.join(up3, "lib"), up3]


def _common_dirs():
    """/usr/local/lib, /usr/lib, with multiarch and lib64 variants."""
    multiarch = sysconfig.get_config_var("MULTIARCH")
    dirs = []
    for prefix in ("/usr/local", "/usr"):
        dirs.append(prefix + "/lib")
        if multiarch:
            dirs.append(f"{prefix}/lib/{multiarch}")
        dirs.append(prefix + "/lib64")
    return dirs


def candidates():
    """Paths or names to try, in order (see the module docstring)."""
    env = os.environ.get("DIFFSTRIDE_LIB")
    if env:
        return [env]
    names = []
    for directory in _beside_package():
        names.extend(os.path.join(directory, n) for n in _NAMES
                     if os.path.exists(os.path.join(directory, n)))
    found = ctypes.util.find_library("diffstride")
    names += [found] if found else []
    for directory in _common_dirs():
        names.extend(os.path.join(directory, n) for n in _NAMES
                     if os.path.exists(os.path.join(directory, n)))
    return names


def _load():
    """(CDLL, the path or name it was loaded from); OSError naming what was tried."""
    tried = candidates()
    errors = []
    for name in tried:
        try:
            return ctypes.CDLL(name), name
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    if os.environ.get("DIFFSTRIDE_LIB"):
        raise OSError(f"DIFFSTRIDE_LIB={os.environ['DIFFSTRIDE_LIB']} cannot be loaded: "
                      + "; ".join(errors))
    raise OSError("libdiffstride not found (tried find_library('diffstride'), "
                  f"{', '.join(_beside_package() + _common_dirs())}"
                  + (f"; failed: {'; '.join(errors)}" if errors else "")
                  + "); build it with make, install it, or set DIFFSTRIDE_LIB to its path")


def _missing(name):
    """Stand-in for a function the loaded library does not export."""
    def missing(*_args):
        raise UnsupportedError(DS_ERR_UNSUPPORTED, name,
                               f"not exported by {path} (a library older than the bindings)")
    return missing


def _declare(cdll):
    """{name: foreign function with argtypes and restype set} for every prototype."""
    functions = {}
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            functions[name] = _missing(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
        functions[name] = fn
    return functions


lib, path = _load()
FUNCTIONS = _declare(lib)


def text(raw):
    """A char * result as str ("" for NULL)."""
    return raw.decode("utf-8", "replace") if raw else ""


def message(context=None):
    """The failure message: ds_context_last_error(context) when a context
    handle is given, else the calling thread's ds_last_error()."""
    if context:
        msg = text(FUNCTIONS["ds_context_last_error"](context))
        if msg:
            return msg
    return text(FUNCTIONS["ds_last_error"]())


def call(name, *args, context=None):
    """Calls the ds_status function `name`; raises its DiffStrideError subclass
    with the library's message on failure. `context` is the raw ds_context
    handle among args, if any (its message is then read)."""
    status = FUNCTIONS[name](*args)
    if status != DS_OK:
        raise error_for(status, name, message(context))


def new_desc(smoothness, cropping, shared_stride, lower, upper, layout):
    """A Desc: ds_diffstride_desc_init's defaults, then the given fields."""
    desc = Desc()
    FUNCTIONS["ds_diffstride_desc_init"](ctypes.byref(desc))
    desc.smoothness = smoothness
    desc.cropping = int(bool(cropping))
    desc.shared_stride = int(bool(shared_stride))
    desc.lower_limit = lower
    desc.upper_limit = upper
    desc.layout = layout
    return desc
