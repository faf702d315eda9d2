"""Tests of the numpy API of the diffstride package (standard library unittest).

From the repository root:

    DIFFSTRIDE_LIB=lib/libdiffstride.so.0.1.0 \\
        python3 -m unittest discover -s bindings/python/tests -t bindings/python -v

The test vectors are read from the directories listed in $DS_VECTOR_DIRS
(separated by spaces), else the repository's tests/vectors. Tolerances are
those of tests/vectors/README.md: relative error max|a - b| / max|b| below
1e-5 on y and dx, 1e-4 on dstrides.
"""
import glob
import math
import os
import re
import threading
import unittest
from unittest import mock

import numpy as np

import diffstride as ds
from diffstride import _lib

TOL = 1e-5
TOL_STRIDES = 1e-4
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VECTOR_DIRS = (os.environ.get("DS_VECTOR_DIRS") or os.path.join(REPO, "tests", "vectors")).split()


def rel_err(got, want):
    """max|got - want| / max|want| in float64 (the absolute error when want is 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return diff / scale if scale > 0 else diff


def to_nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def to_nchw(a):
    return a.transpose(0, 3, 1, 2)


# ----------------------------------------------------------------- golden

def read_golden(path):
    """One golden case: scalar fields as lists of str, arrays as float64 arrays."""
    with open(path) as f:
        lines = [line.split() for line in f]
    case, i = {}, 0
    while i < len(lines):
        fields = lines[i]
        i += 1
        if fields and fields[0] in ("x", "y", "dy", "dx", "dstrides"):
            values = []
            while len(values) < int(fields[1]):
                values.extend(float(v) for v in lines[i])
                i += 1
            case[fields[0]] = np.array(values)
        elif fields:
            case[fields[0]] = fields[1:]
    return case


def golden_cases(op):
    """(path, case) of every test vector of `op` in VECTOR_DIRS; fails when there is none."""
    paths = [p for d in VECTOR_DIRS for p in sorted(glob.glob(os.path.join(d, op + "_*.txt")))]
    if not paths:
        raise AssertionError(f"no {op}_*.txt test vector in {VECTOR_DIRS} (set DS_VECTOR_DIRS)")
    return [(p, read_golden(p)) for p in paths]


def golden_options(case):
    """The DiffStride keyword options of a golden case."""
    return {"smoothness": float(case["smoothness"][0]), "cropping": case["cropping"][0] == "1",
            "shared_stride": case.get("shared", ["0"])[0] == "1", "lower": float(case["lower"][0]),
            "upper": float(case["upper"][0])}


def golden_arrays(case):
    """x, dy as float32 NCHW arrays and y, dx as float64 NCHW arrays."""
    n, c, h, w = (int(v) for v in case["shape"])
    out_h, out_w = (int(v) for v in case["out"])
    big, small = (n, c, h, w), (n, c, out_h, out_w)
    return (case["x"].reshape(big).astype(np.float32), case["dy"].reshape(small).astype(np.float32),
            case["y"].reshape(small), case["dx"].reshape(big))


class GoldenDiffStrideTest(unittest.TestCase):
    """ds.diffstride / ds.diffstride_backward against every golden case, NCHW and NHWC."""

    def check_case(self, case, layout):
        x, dy, y_want, dx_want = golden_arrays(case)
        strides = [float(v) for v in case["strides"]]
        opts = golden_options(case)
        if layout == "NHWC":
            y = to_nchw(ds.diffstride(to_nhwc(x), strides, layout=layout, **opts))
            dx, dstrides = ds.diffstride_backward(to_nhwc(x), to_nhwc(dy), strides, layout=layout,
                                                  **opts)
            dx = to_nchw(dx)
        else:
            y = ds.diffstride(x, strides, **opts)
            dx, dstrides = ds.diffstride_backward(x, dy, strides, **opts)
        self.assertLess(rel_err(y, y_want), TOL)
        self.assertLess(rel_err(dx, dx_want), TOL)
        self.assertLess(rel_err(dstrides, case["dstrides"]), TOL_STRIDES)

    def test_golden_both_layouts(self):
        for name, case in golden_cases("diffstride"):
            for layout in ("NCHW", "NHWC"):
                with self.subTest(case=name, layout=layout):
                    self.check_case(case, layout)

    def test_golden_sizes_and_effective_strides(self):
        for name, case in golden_cases("diffstride"):
            with self.subTest(case=name):
                h, w = (int(v) for v in case["shape"][2:])
                strides = [float(v) for v in case["strides"]]
                opts = golden_options(case)
                self.assertEqual(ds.output_size(h, w, strides, **opts),
                                 tuple(int(v) for v in case["out"]))
                np.testing.assert_allclose(ds.effective_strides(h, w, strides, **opts),
                                           [float(v) for v in case["effective"]], rtol=1e-6)


class GoldenDiffStride1dTest(unittest.TestCase):
    """ds.diffstride1d / ds.diffstride1d_backward against every 1-D test vector, NCL and NLC."""

    def test_golden_both_layouts(self):
        for name, case in golden_cases("diffstride1d"):
            n, c, length = (int(v) for v in case["shape"])
            out = int(case["out"][0])
            x = case["x"].reshape(n, c, length).astype(np.float32)
            dy = case["dy"].reshape(n, c, out).astype(np.float32)
            stride = float(case["strides"][0])
            opts = {k: v for k, v in golden_options(case).items() if k != "shared_stride"}
            self.assertEqual(ds.output_size1d(length, stride, **opts), out)
            self.assertEqual(np.float32(ds.effective_stride1d(length, stride, **opts)),
                             np.float32(case["effective"][0]))
            for layout, t in (("NCL", lambda a: a), ("NLC", lambda a: np.ascontiguousarray(a.transpose(0, 2, 1)))):
                with self.subTest(case=name, layout=layout):
                    y = t(ds.diffstride1d(t(x), stride, layout=layout, **opts))
                    dx, dstride = ds.diffstride1d_backward(t(x), t(dy), stride, layout=layout, **opts)
                    self.assertLess(rel_err(y, case["y"].reshape(n, c, out)), TOL)
                    self.assertLess(rel_err(t(dx), case["dx"].reshape(n, c, length)), TOL)
                    self.assertLess(rel_err([dstride], case["dstrides"]), TOL_STRIDES)


class GoldenSpectralPoolTest(unittest.TestCase):
    """ds.spectral_pool / ds.spectral_pool_backward against every golden case."""

    def test_golden_both_layouts(self):
        for name, case in golden_cases("spectral_pool"):
            x, dy, y_want, dx_want = golden_arrays(case)
            strides = [float(v) for v in case["strides"]]
            size = x.shape[2:]
            self.assertEqual(ds.spectral_pool_output_size(*size, strides), y_want.shape[2:])
            with self.subTest(case=name, layout="NCHW"):
                self.assertLess(rel_err(ds.spectral_pool(x, strides), y_want), TOL)
                self.assertLess(rel_err(ds.spectral_pool_backward(dy, strides, size), dx_want),
                                TOL)
            with self.subTest(case=name, layout="NHWC"):
                y = ds.spectral_pool(to_nhwc(x), strides, layout="NHWC")
                dx = ds.spectral_pool_backward(to_nhwc(dy), strides, size, layout="NHWC")
                self.assertLess(rel_err(to_nchw(y), y_want), TOL)
                self.assertLess(rel_err(to_nchw(dx), dx_want), TOL)


# ------------------------------------------------------- loading, prototypes

class LibraryTest(unittest.TestCase):

    def test_every_header_function_is_declared_and_exported(self):
        with open(os.path.join(REPO, "include", "diffstride.h")) as f:
            declared = set(re.findall(r"DS_API[^;{(]*?\b(ds_\w+)\s*\(", f.read()))
        self.assertEqual(declared, set(_lib.PROTOTYPES))
        for name in sorted(declared):
            with self.subTest(function=name):
                self.assertTrue(hasattr(_lib.lib, name), f"{_lib.path} does not export {name}")
                self.assertEqual(list(_lib.FUNCTIONS[name].argtypes), _lib.PROTOTYPES[name][1])

    def test_search_order(self):
        with mock.patch.dict(os.environ, {"DIFFSTRIDE_LIB": "/nowhere/libx.so"}):
            self.assertEqual(_lib.candidates(), ["/nowhere/libx.so"])
        with mock.patch.dict(os.environ, {"DIFFSTRIDE_LIB": ""}):
            found = _lib.candidates()
        checkout = os.path.join(REPO, "lib", "libdiffstride.so.0")
        if os.path.exists(checkout):
            self.assertIn(checkout, found)
        # The package's own directory (where pip install puts its library) comes first.
        with mock.patch.dict(os.environ, {"DIFFSTRIDE_LIB": ""}), \
                mock.patch("os.path.exists", return_value=True):
            first = _lib.candidates()[0]
        self.assertEqual(os.path.dirname(first), os.path.dirname(os.path.abspath(_lib.__file__)))


# ---------------------------------------------------------------- errors

class ErrorTest(unittest.TestCase):
    """Failures raise the status's exception class with the library's message."""

    def test_invalid_argument(self):
        with self.assertRaises(ds.InvalidArgumentError) as cm:
            ds.diffstride(np.zeros((1, 1, 4, 8)), (2, 2))
        err = cm.exception
        self.assertIsInstance(err, ValueError)
        self.assertEqual(err.status, -1)
        self.assertEqual(err.message, "h x w: 4 x 8, both must exceed desc->smoothness (4)")
        self.assertEqual(err.function, "ds_diffstride_output_size")
        self.assertIn(err.message, str(err))

    def test_shape_mismatch_carries_the_context_message(self):
        x = np.zeros((2, 3, 32, 32))
        with ds.Context() as ctx:
            with self.assertRaises(ds.ShapeMismatchError) as cm:
                ds.diffstride_backward(x, np.zeros((2, 3, 3, 3)), (2, 2), ctx=ctx)
            self.assertEqual(cm.exception.status, -2)
            self.assertEqual(cm.exception.message,
                             "out_h x out_w: 3 x 3, the output size for these strides is 24 x 24")
            self.assertEqual(ctx.last_error, cm.exception.message)

    def test_unsupported(self):
        with ds.Context() as ctx, self.assertRaises(ds.UnsupportedError) as cm:
            ctx.set_stream(None)
        self.assertEqual(cm.exception.status, -4)
        self.assertIn("no stream", cm.exception.message)

    def test_reproducible_plans(self):
        x = np.random.default_rng(3).standard_normal((2, 3, 20, 20), dtype=np.float32)
        with ds.Context() as ctx:
            y0 = ds.diffstride(x, (2, 2), ctx=ctx)
            ctx.set_reproducible(True)
            y1 = ds.diffstride(x, (2, 2), ctx=ctx)
            ctx.set_reproducible(False)
        np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5 * np.abs(y0).max())
        with ds.Context() as ctx, self.assertRaises(ds.InvalidArgumentError) as cm:
            ctx.call("ds_context_set_reproducible", 2)
        self.assertIn("reproducible: 2", cm.exception.message)

    def test_cuda_context_without_cuda(self):
        try:
            ds.Context("cuda").close()
        except ds.UnsupportedError as exc:
            self.assertEqual(exc.status, -4)
            self.assertIn("CUDA", exc.message)
        else:
            self.skipTest("this library has a usable CUDA path")

    def test_messages_name_the_argument(self):
        cases = [
            (lambda: ds.complexity_penalty([[2.0, -1.0]]), "strides[1]: -1"),
            (lambda: ds.spectral_pool(np.zeros((1, 1, 8, 8)), 0.5), "strides[0]: 0.5"),
            (lambda: ds.diffstride(np.zeros((1, 1, 8, 8)), (2, math.nan)), "strides[1]: nan"),
            (lambda: ds.output_size(32, 32, 2, lower=0.0), "desc->lower_limit: 0"),
            (lambda: ds.diffstride1d(np.zeros((1, 1, 4)), 2.0), "l: 4"),
            (lambda: ds.Context(threads=-1), "threads: -1"),
        ]
        for fn, start in cases:
            with self.subTest(expected=start), self.assertRaises(ds.InvalidArgumentError) as cm:
                fn()
            self.assertTrue(cm.exception.message.startswith(start), cm.exception.message)

    def test_wrong_ndim_is_checked_before_the_call(self):
        calls = [
            lambda: ds.diffstride(np.zeros((3, 32, 32)), 2),
            lambda: ds.diffstride_backward(np.zeros((1, 3, 32, 32)), np.zeros((24, 24)), 2),
            lambda: ds.diffstride1d(np.zeros((3, 32, 1, 1)), 2),
            lambda: ds.spectral_pool(np.zeros((32, 32)), 2),
            lambda: ds.spectral_pool_backward(np.zeros((1, 16, 16)), 2, (32, 32)),
            lambda: ds.complexity_penalty(np.ones((2, 3))),
            lambda: ds.diffstride_backward(np.zeros((1, 3, 32, 32)), np.zeros((1, 2, 24, 24)), 2),
        ]
        for i, fn in enumerate(calls):
            with self.subTest(call=i), self.assertRaises(ValueError) as cm:
                fn()
            self.assertNotIsInstance(cm.exception, ds.DiffStrideError)

    def test_bad_layout_and_strides(self):
        with self.assertRaises(ValueError):
            ds.diffstride(np.zeros((1, 1, 8, 8)), 2, layout="NCL")
        with self.assertRaises(ValueError):
            ds.diffstride(np.zeros((1, 1, 8, 8)), (2, 2, 2))

    def test_status_strings(self):
        self.assertEqual(ds.status_string(0), "success")
        self.assertEqual(ds.status_string(-2), "output shape mismatch")
        self.assertEqual(ds.status_string(7), "unknown status")

    def test_unknown_status_and_missing_function(self):
        self.assertIs(type(ds.errors.error_for(-99, "f", "m")), ds.DiffStrideError)
        with self.assertRaises(ds.UnsupportedError) as cm:
            _lib._missing("ds_not_exported")()
        self.assertIn("not exported", cm.exception.message)

    def test_version(self):
        self.assertEqual(ds.version(), "%d.%d.%d" % ds.library_version())
        self.assertEqual(ds.__version__, ds.version())


# ------------------------------------------------- sizes, strides, penalty

def effective_reference(h, w, strides, r, shared, lower, upper):
    """Spec step 1 in float64."""
    s_h, s_w = strides
    if shared:
        raised = [max(s_h, h / (h - r), w / (w - r))] * 2
    else:
        raised = [max(s_h, h / (h - r)), max(s_w, w / (w - r))]
    return [min(max(s, lower), upper) for s in raised]


def penalty_reference(strides, weights):
    """J and dJ/dstrides of the complexity penalty in float64, by the product rule."""
    s = np.asarray(strides, np.float64).reshape(-1, 2)
    c = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64)
    q = np.cumprod(1.0 / (s[:, 0] * s[:, 1]))          # q_l = prod_{i<=l} 1/(s_h s_w)
    suffix = np.cumsum((c * q)[::-1])[::-1]             # sum_{l>=m} c_l q_l
    return float((c * q).sum()), -suffix[:, None] / s


class GeometryTest(unittest.TestCase):

    def test_effective_strides(self):
        cases = [(32, 32, (0.5, 7.0), 4, False, 1.0, math.inf),
                 (28, 24, (0.2, 9.0), 4, True, 1.0, math.inf),
                 (24, 20, (1.2, 5.0), 1, False, 1.5, 4.0),
                 (17, 31, (2.5, 2.5), 3, True, 1.0, 2.0)]
        for h, w, strides, r, shared, lower, upper in cases:
            with self.subTest(h=h, w=w, strides=strides, shared=shared):
                got = ds.effective_strides(h, w, strides, smoothness=r, shared_stride=shared,
                                           lower=lower, upper=upper)
                want = effective_reference(h, w, strides, r, shared, lower, upper)
                np.testing.assert_allclose(got, want, rtol=1e-6)

    def test_documented_sizes(self):
        self.assertEqual(ds.output_size(32, 32, 2), (24, 24))
        self.assertEqual(ds.output_size(64, 64, (2, 4)), (40, 24))
        self.assertEqual(ds.output_size(33, 33, (2, 2)), (25, 26))
        self.assertEqual(ds.output_size(8, 8, (2, 2)), (8, 8))
        self.assertEqual(ds.output_size(31, 17, (3, 3), cropping=False), (31, 16))
        self.assertEqual(ds.output_size(14, 14, 1.4, smoothness=1.0), (12, 12))  # float32: 14 / 1.4f = 10
        self.assertEqual(ds.spectral_pool_output_size(64, 64, (2, 4)), (32, 16))

    def test_complexity_penalty(self):
        rng = np.random.default_rng(1)
        strides = rng.uniform(0.8, 3.0, size=(4, 2)).astype(np.float32)
        for weights in (None, np.array([1.0, 0.5, -2.0, 3.0], np.float32)):
            with self.subTest(weights=weights):
                value, grad = ds.complexity_penalty(strides, weights)
                want_value, want_grad = penalty_reference(strides, weights)
                self.assertAlmostEqual(value, want_value, delta=1e-6 * abs(want_value))
                self.assertEqual(grad.shape, strides.shape)
                self.assertLess(rel_err(grad, want_grad), 1e-6)

    def test_complexity_penalty_documented_and_empty(self):
        value, grad = ds.complexity_penalty([2, 2, 2, 1])
        self.assertEqual(value, 0.375)
        np.testing.assert_array_equal(grad, [-0.1875, -0.1875, -0.0625, -0.125])
        value, grad = ds.complexity_penalty(np.zeros((0, 2)))
        self.assertEqual((value, grad.shape), (0.0, (0, 2)))


# ------------------------------------------------------------------- 1-D

def ramp(threshold, positions, r):
    """Mask m(T, p) = clip((R + T - p) / R, 0, 1) and the in-ramp indicator."""
    v = (r + threshold - positions) / r
    return np.clip(v, 0.0, 1.0), ((v >= 0) & (v <= 1)).astype(np.float64)


def diffstride1d_reference(x, dy, stride, r=4.0, cropping=True, lower=1.0, upper=math.inf):
    """Naive float64 1-D DiffStride with explicit DFT matrices.

    x (N,C,L), dy (N,C,out_l) or None. Returns (y, dx, dstride) where
    y = x @ A, dx = dy @ A^T, and dstride = sum(dy * (x @ dA/dT)) * dT/ds
    under the spec's conventions (raise not differentiated, closed clips).
    """
    length = x.shape[-1]
    raised = max(stride, length / (length - r))
    s = min(max(raised, lower), upper)
    t = max(length / s, 2.0)
    k = np.arange(length // 2 + 1)
    mask, in_ramp = ramp(t / 2 + 1, k, r)
    kept = int((mask > 0).sum()) if cropping else k.size
    out_l = 2 * (kept - 1) if cropping else 2 * (length // 2)  # cropping off: an odd L loses a sample
    k, mask, in_ramp = k[:kept], mask[:kept], in_ramp[:kept]
    forward = np.exp(-2j * np.pi * np.outer(np.arange(length), k) / length)       # (L, K)
    weight = np.where((k == 0) | (2 * k == out_l), 1.0, 2.0)
    inverse = weight[:, None] * np.exp(2j * np.pi * np.outer(k, np.arange(out_l)) / out_l) / out_l
    a = ((forward * mask) @ inverse).real                                            # (L, out_l)
    y = x @ a
    if dy is None:
        return y, None, None
    da_dt = ((forward * (in_ramp / r)) @ inverse).real
    dt_ds = 0.5 * (-length / s**2) if length / s >= 2 else 0.0
    passes = lower <= raised <= upper
    dstride = float((dy * (x @ da_dt)).sum()) * dt_ds * passes
    return y, dy @ a.T, dstride


class DiffStride1dTest(unittest.TestCase):
    """ds.diffstride1d* against the naive reference, NCL and NLC."""

    CASES = [(40, 2.3, {}), (33, 3.1, {}), (32, 2.0, {}), (41, 2.6, {"cropping": False}),
             (30, 0.5, {}), (24, 3.0, {"smoothness": 2.0, "lower": 1.5, "upper": 2.0}),
             (24, 1.6, {"smoothness": 1.0, "lower": 1.5, "upper": 4.0})]

    def test_against_naive_reference(self):
        rng = np.random.default_rng(2)
        for length, stride, opts in self.CASES:
            ref_opts = {"r": opts.get("smoothness", 4.0), "cropping": opts.get("cropping", True),
                        "lower": opts.get("lower", 1.0), "upper": opts.get("upper", math.inf)}
            x = rng.standard_normal((2, 3, length)).astype(np.float32)
            y_want, _, _ = diffstride1d_reference(x.astype(np.float64), None, stride, **ref_opts)
            dy = rng.standard_normal(y_want.shape).astype(np.float32)
            _, dx_want, ds_want = diffstride1d_reference(x.astype(np.float64), dy, stride,
                                                         **ref_opts)
            for layout in ("NCL", "NLC"):
                with self.subTest(length=length, stride=stride, opts=opts, layout=layout):
                    tr = (lambda a: np.ascontiguousarray(a.transpose(0, 2, 1))) \
                        if layout == "NLC" else (lambda a: a)
                    y = tr(ds.diffstride1d(tr(x), stride, layout=layout, **opts))
                    dx, dstride = ds.diffstride1d_backward(tr(x), tr(dy), stride, layout=layout,
                                                           **opts)
                    self.assertLess(rel_err(y, y_want), TOL)
                    self.assertLess(rel_err(tr(dx), dx_want), TOL)
                    self.assertLess(rel_err(dstride, ds_want), TOL_STRIDES)
                    self.assertEqual(ds.output_size1d(length, stride, **opts), y_want.shape[-1])

    def test_effective_stride(self):
        self.assertAlmostEqual(ds.effective_stride1d(32, 0.5), 32 / 28, places=6)
        self.assertAlmostEqual(ds.effective_stride1d(32, 5.0, upper=3.0), 3.0, places=6)
        self.assertAlmostEqual(ds.effective_stride1d(32, 1.2, lower=1.5), 1.5, places=6)

    def test_optional_outputs(self):
        x = np.ones((1, 2, 32), np.float32)
        dy = np.ones((1, 2, ds.output_size1d(32, 2.5)), np.float32)
        dx, dstride = ds.diffstride1d_backward(x, dy, 2.5, need_dstride=False)
        self.assertEqual((dx.shape, dstride), ((1, 2, 32), None))
        dx, dstride = ds.diffstride1d_backward(x, dy, 2.5, need_dx=False)
        self.assertIsNone(dx)
        self.assertIsInstance(dstride, float)


# ----------------------------------------------------- adjoints, threads

def inner(a, b):
    return float(np.dot(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)))


class AdjointTest(unittest.TestCase):
    """sum(dy * forward(x)) == sum(x * backward(dy)): the backward is the adjoint."""

    def test_spectral_pool(self):
        rng = np.random.default_rng(3)
        for shape, strides in (((2, 3, 31, 17), (3.0, 1.5)), ((1, 2, 32, 32), (2.0, 2.0))):
            for layout in ("NCHW", "NHWC"):
                with self.subTest(shape=shape, layout=layout):
                    x = rng.standard_normal(shape).astype(np.float32)
                    x = to_nhwc(x) if layout == "NHWC" else x
                    y = ds.spectral_pool(x, strides, layout=layout)
                    dy = rng.standard_normal(y.shape).astype(np.float32)
                    dx = ds.spectral_pool_backward(dy, strides, shape[2:], layout=layout)
                    self.assertAlmostEqual(inner(dy, y), inner(x, dx),
                                           delta=1e-5 * np.abs(dy).sum() * np.abs(y).max())

    def test_diffstride(self):
        rng = np.random.default_rng(4)
        x = rng.standard_normal((2, 3, 31, 20)).astype(np.float32)
        y = ds.diffstride(x, (2.3, 1.7))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, _ = ds.diffstride_backward(x, dy, (2.3, 1.7), need_dstrides=False)
        self.assertAlmostEqual(inner(dy, y), inner(x, dx),
                               delta=1e-5 * np.abs(dy).sum() * np.abs(y).max())


class ContextTest(unittest.TestCase):

    def setUp(self):
        rng = np.random.default_rng(5)
        self.x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
        self.dy = rng.standard_normal((4, 3, 22, 20)).astype(np.float32)

    def run_on(self, ctx):
        y = ds.diffstride(self.x, (2.3, 2.7), ctx=ctx)
        dx, _ = ds.diffstride_backward(self.x, self.dy, (2.3, 2.7), ctx=ctx)
        return y, dx

    def test_threads_do_not_change_y_and_dx(self):
        with ds.Context() as one, ds.Context(threads=3) as three:
            self.assertEqual(three.threads, 3)
            for a, b in zip(self.run_on(one), self.run_on(three)):
                np.testing.assert_array_equal(a, b)

    def test_closed_context(self):
        with ds.Context() as ctx:
            pass
        with self.assertRaises(ValueError):
            ds.diffstride(self.x, 2, ctx=ctx)
        ctx.close()  # idempotent

    def test_python_threads_use_their_own_contexts(self):
        want = self.run_on(None)
        results, contexts, messages = {}, {}, {}

        def work(i):
            contexts[i] = ds.default_context()
            results[i] = self.run_on(None)
            try:
                ds.diffstride(np.zeros((1, 1, 4, 4 + i)), 2)
            except ds.InvalidArgumentError as exc:
                messages[i] = exc.message

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len({id(c) for c in contexts.values()}), 4)
        for i in range(4):
            self.assertTrue(messages[i].startswith(f"h x w: 4 x {4 + i},"), messages[i])
            for got, ref in zip(results[i], want):
                self.assertLess(rel_err(got, ref), 1e-6)


if __name__ == "__main__":
    unittest.main()
