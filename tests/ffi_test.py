#!/usr/bin/env python3
"""Checks the shared library through its C ABI alone, from Python's ctypes.

Usage: python3 tests/ffi_test.py LIB.so VECTOR_DIR...

Pure standard library. Loads LIB.so, declares the prototypes it calls (and
ds_diffstride_desc), then checks the version, the status strings, and in
each VECTOR_DIR (tests/vectors and the like) the first DiffStride case and
the first spectral pooling case (forward and backward, at the tolerances of
tests/vectors/README.md), and one error path. Prints a line per check and
"ffi: N passed, M failed"; exits 1 on any failure, or when the library or a
vector directory cannot be used.
"""
import ctypes
import math
import os
import re
import sys

DS_OK = 0
DS_ERR_INVALID_ARGUMENT = -1
STATUS_CODES = (0, -1, -2, -3, -4, -5)
UNKNOWN_CODES = (1, -6, 12345, -2147483648)
DS_DEVICE_CPU = 0
DS_LAYOUT_NCHW = 0

TOL_Y_DX = 1e-5
TOL_DSTRIDES = 1e-4


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


F2 = ctypes.c_float * 2
FP = ctypes.POINTER(ctypes.c_float)
IP = ctypes.POINTER(ctypes.c_int)
DESCP = ctypes.POINTER(Desc)
CTX = ctypes.c_void_p  # ds_context * (opaque)
I = ctypes.c_int

PROTOTYPES = {
    "ds_version": (ctypes.c_uint, []),
    "ds_version_string": (ctypes.c_char_p, []),
    "ds_status_string": (ctypes.c_char_p, [I]),
    "ds_last_error": (ctypes.c_char_p, []),
    "ds_context_create": (I, [I, ctypes.POINTER(CTX)]),
    "ds_context_destroy": (None, [CTX]),
    "ds_context_last_error": (ctypes.c_char_p, [CTX]),
    "ds_diffstride_desc_init": (None, [DESCP]),
    "ds_diffstride_effective_strides": (I, [DESCP, I, I, FP, FP]),
    "ds_diffstride_output_size": (I, [DESCP, I, I, FP, IP, IP]),
    "ds_diffstride_forward": (I, [CTX, DESCP, I, I, I, I, FP, FP, I, I, FP]),
    "ds_diffstride_backward": (I, [CTX, DESCP, I, I, I, I, FP, FP, I, I, FP, FP, FP]),
    "ds_spectral_pool_output_size": (I, [I, I, FP, IP, IP]),
    "ds_spectral_pool_forward": (I, [CTX, I, I, I, I, I, FP, FP, I, I, FP]),
    "ds_spectral_pool_backward": (I, [CTX, I, I, I, I, I, FP, I, I, FP, FP]),
}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s%s" % (what, (": " + detail) if detail else ""))
        else:
            self.failed += 1
            print("FAIL %s%s" % (what, (": " + detail) if detail else ""))
        return ok


def die(msg):
    print("ffi: error: %s" % msg)
    print("ffi: 0 passed, 1 failed")
    sys.exit(1)


def load_library(path):
    if not os.path.isfile(path):
        die("library %s not found (run make)" % path)
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
    except OSError as e:
        die("cannot load %s: %s" % (path, e))
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            die("%s does not export %s" % (path, name))
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def load_golden(path):
    """Parses one golden case (format: GOLDEN_DIR/README.md)."""
    try:
        with open(path) as f:
            tokens = [line.split() for line in f]
    except OSError as e:
        die("cannot read golden case %s: %s" % (path, e))
    arrays = ("x", "y", "dy", "dx", "dstrides")
    case = {}
    i = 0
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if not t:
            continue
        key = t[0]
        if key in arrays:
            count = int(t[1])
            vals = []
            while len(vals) < count and i < len(tokens):
                vals.extend(float(v) for v in tokens[i])
                i += 1
            if len(vals) != count:
                die("%s: array %s has %d values, header says %d" % (path, key, len(vals), count))
            case[key] = vals
        else:
            case[key] = t[1:]
    if case.get("diffstride-golden") != ["1"]:
        die("%s: not a diffstride-golden 1 file" % path)
    for key in ("op", "shape", "strides", "out", "x", "y", "dy", "dx"):
        if key not in case:
            die("%s: no %s" % (path, key))
    return case


def floats(values):
    return (ctypes.c_float * len(values))(*values)


def rel_error(got, want):
    """max|a - b| / max|b| (the absolute error when b is all zero)."""
    if len(got) != len(want):
        return math.inf
    num = max((abs(a - b) for a, b in zip(got, want)), default=0.0)
    den = max((abs(b) for b in want), default=0.0)
    if any(math.isnan(a) for a in got):
        return math.inf
    return num / den if den > 0 else num


def check_close(ck, what, got, want, tol):
    err = rel_error(list(got), want)
    ck.check(err < tol, what, "relative error %.3g (tolerance %g)" % (err, tol))


def s(b):
    return b.decode("utf-8", "replace") if b is not None else None


def check_version(ck, lib):
    vs = s(lib.ds_version_string())
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", vs or "")
    if ck.check(m is not None, "ds_version_string", repr(vs)):
        want = 10000 * int(m.group(1)) + 100 * int(m.group(2)) + int(m.group(3))
        got = lib.ds_version()
        ck.check(got == want, "ds_version", "%d, want %d from %r" % (got, want, vs))


def check_status_strings(ck, lib):
    for code in STATUS_CODES:
        msg = s(lib.ds_status_string(code))
        ck.check(msg is not None and msg != "" and msg != "unknown status",
                 "ds_status_string(%d)" % code, repr(msg))
    for code in UNKNOWN_CODES:
        msg = s(lib.ds_status_string(code))
        ck.check(msg == "unknown status", "ds_status_string(%d)" % code, repr(msg))


def check_diffstride(ck, lib, ctx, g):
    n, c, h, w = (int(v) for v in g["shape"])
    desc = Desc()
    lib.ds_diffstride_desc_init(ctypes.byref(desc))
    ck.check(desc.smoothness == 4.0 and desc.cropping == 1 and desc.shared_stride == 0
             and desc.lower_limit == 1.0 and math.isinf(desc.upper_limit)
             and desc.layout == DS_LAYOUT_NCHW, "ds_diffstride_desc_init defaults")
    # desc_init writes the whole struct and nothing past it (the layout matches).
    size = ctypes.sizeof(Desc)
    buf = (ctypes.c_ubyte * (size + 16))(*([0xAB] * (size + 16)))
    lib.ds_diffstride_desc_init(ctypes.cast(buf, DESCP))
    ck.check(size == 24 and all(b == 0xAB for b in buf[size:]),
             "ds_diffstride_desc_init writes %d bytes (sizeof ds_diffstride_desc)" % size)
    desc.smoothness = float(g["smoothness"][0])
    desc.cropping = int(g["cropping"][0])
    desc.shared_stride = int(g["shared"][0])
    desc.lower_limit = float(g["lower"][0])
    desc.upper_limit = float(g["upper"][0])  # float("inf") parses "inf"
    desc.layout = DS_LAYOUT_NCHW
    strides = F2(*(float(v) for v in g["strides"]))
    want_eff = [float(v) for v in g["effective"]]
    want_oh, want_ow = (int(v) for v in g["out"])
    name = "diffstride_00"

    eff = F2(-1.0, -1.0)
    st = lib.ds_diffstride_effective_strides(ctypes.byref(desc), h, w, strides, eff)
    ok = st == DS_OK and all(abs(eff[i] - want_eff[i]) <= 1e-6 * abs(want_eff[i]) for i in range(2))
    ck.check(ok, "%s effective strides" % name,
             "status %d, %s, want %s" % (st, [eff[0], eff[1]], want_eff))

    oh, ow = I(-1), I(-1)
    st = lib.ds_diffstride_output_size(ctypes.byref(desc), h, w, strides,
                                       ctypes.byref(oh), ctypes.byref(ow))
    ck.check(st == DS_OK and (oh.value, ow.value) == (want_oh, want_ow),
             "%s output size" % name,
             "status %d, %dx%d, want %dx%d" % (st, oh.value, ow.value, want_oh, want_ow))

    x = floats(g["x"])
    dy = floats(g["dy"])
    y = (ctypes.c_float * (n * c * want_oh * want_ow))()
    dx = (ctypes.c_float * (n * c * h * w))()
    dstrides = F2(math.nan, math.nan)
    st = lib.ds_diffstride_forward(ctx, ctypes.byref(desc), n, c, h, w, strides, x,
                                   want_oh, want_ow, y)
    if ck.check(st == DS_OK, "%s forward status" % name, "%d" % st):
        check_close(ck, "%s forward y" % name, y, g["y"], TOL_Y_DX)
    st = lib.ds_diffstride_backward(ctx, ctypes.byref(desc), n, c, h, w, strides, x,
                                    want_oh, want_ow, dy, dx, dstrides)
    if ck.check(st == DS_OK, "%s backward status" % name, "%d" % st):
        check_close(ck, "%s backward dx" % name, dx, g["dx"], TOL_Y_DX)
        check_close(ck, "%s backward dstrides" % name, dstrides, g["dstrides"], TOL_DSTRIDES)
    return desc, strides


def check_spectral(ck, lib, ctx, g):
    n, c, h, w = (int(v) for v in g["shape"])
    strides = F2(*(float(v) for v in g["strides"]))
    want_oh, want_ow = (int(v) for v in g["out"])
    name = "spectral_pool_00"
    oh, ow = I(-1), I(-1)
    st = lib.ds_spectral_pool_output_size(h, w, strides, ctypes.byref(oh), ctypes.byref(ow))
    ck.check(st == DS_OK and (oh.value, ow.value) == (want_oh, want_ow),
             "%s output size" % name,
             "status %d, %dx%d, want %dx%d" % (st, oh.value, ow.value, want_oh, want_ow))
    x = floats(g["x"])
    dy = floats(g["dy"])
    y = (ctypes.c_float * (n * c * want_oh * want_ow))()
    dx = (ctypes.c_float * (n * c * h * w))()
    st = lib.ds_spectral_pool_forward(ctx, DS_LAYOUT_NCHW, n, c, h, w, strides, x,
                                      want_oh, want_ow, y)
    if ck.check(st == DS_OK, "%s forward status" % name, "%d" % st):
        check_close(ck, "%s forward y" % name, y, g["y"], TOL_Y_DX)
    st = lib.ds_spectral_pool_backward(ctx, DS_LAYOUT_NCHW, n, c, h, w, strides,
                                       want_oh, want_ow, dy, dx)
    if ck.check(st == DS_OK, "%s backward status" % name, "%d" % st):
        check_close(ck, "%s backward dx" % name, dx, g["dx"], TOL_Y_DX)


def names_x(msg):
    """True when the message names the argument x (as a word, e.g. "x: NULL pointer")."""
    return msg is not None and re.search(r"(?<![A-Za-z0-9_>.])x(?![A-Za-z0-9_])", msg) is not None


def check_null_x(ck, lib, ctx, desc, strides, g):
    n, c, h, w = (int(v) for v in g["shape"])
    oh, ow = (int(v) for v in g["out"])
    sentinel = 12345.0
    y = (ctypes.c_float * (n * c * oh * ow))(*([sentinel] * (n * c * oh * ow)))
    st = lib.ds_diffstride_forward(ctx, ctypes.byref(desc), n, c, h, w, strides, None, oh, ow, y)
    ck.check(st == DS_ERR_INVALID_ARGUMENT, "forward with x == NULL returns DS_ERR_INVALID_ARGUMENT",
             "status %d" % st)
    ck.check(all(v == sentinel for v in y), "forward with x == NULL leaves y untouched")
    msg = s(lib.ds_context_last_error(ctx))
    ck.check(names_x(msg), "ds_context_last_error names x", repr(msg))
    msg = s(lib.ds_last_error())
    ck.check(names_x(msg), "ds_last_error names x", repr(msg))


def main(argv):
    if len(argv) < 3:
        print("usage: %s LIB.so VECTOR_DIR..." % argv[0])
        sys.exit(2)
    lib_path, vector_dirs = argv[1], argv[2:]
    cases = []
    for d in vector_dirs:
        if not os.path.isdir(d):
            die("vector directory %s not found" % d)
        g_ds = load_golden(os.path.join(d, "diffstride_00.txt"))
        g_sp = load_golden(os.path.join(d, "spectral_pool_00.txt"))
        if g_ds["op"] != ["diffstride"] or g_sp["op"] != ["spectral_pool"]:
            die("unexpected op in the cases of %s" % d)
        cases.append((g_ds, g_sp))
    lib = load_library(lib_path)

    ck = Checker()
    check_version(ck, lib)
    check_status_strings(ck, lib)

    ctx = CTX()
    st = lib.ds_context_create(DS_DEVICE_CPU, ctypes.byref(ctx))
    if not ck.check(st == DS_OK and ctx.value is not None, "ds_context_create(CPU)", "status %d" % st):
        print("ffi: %d passed, %d failed" % (ck.passed, ck.failed))
        sys.exit(1)
    try:
        for g_ds, g_sp in cases:
            desc, strides = check_diffstride(ck, lib, ctx, g_ds)
            check_spectral(ck, lib, ctx, g_sp)
        check_null_x(ck, lib, ctx, desc, strides, g_ds)
    finally:
        lib.ds_context_destroy(ctx)
    print("ffi: %d passed, %d failed" % (ck.passed, ck.failed))
    sys.exit(1 if ck.failed else 0)


if __name__ == "__main__":
    main(sys.argv)
