#!/usr/bin/env python3
"""Cross-check of libdiffstride against the paper's reference TensorFlow layers.

Compares the library (through its Python package, bindings/python/diffstride)
with DiffStride and FixedSpectralPooling of google-research/diffstride
(diffstride/pooling.py), run by hand; not part of the test suite.

1. Random cases (always; the fixed edge points of edge_cases() first):
   output shapes, effective strides, y, dx = d sum(dy*y)/dx (relative error
   max|a-b|/max|b| <= 1e-5) and the stride gradient (<= 1e-4 relative to the
   largest of TF's gradient and its parts per image and axis: the gradient
   sums them, and TF's float32 rounding is relative to them), for DiffStride
   (all options, both layouts) and fixed spectral pooling.
2. Size sweep (--sweep, or --sweep-quick for a short run): output sizes and
   effective strides of every (size, stride, smoothness) per axis, for
   DiffStride 2-D (plain, limits, shared stride, cropping off), the 1-D layer
   (the width axis of the 2-D reference) and fixed spectral pooling.

Exit status: 0 when everything agrees, 1 on any mismatch, 2 when the
reference could not be run as this script expects. TensorFlow writes a few
lines to stderr on import that no setting silences; the report is stdout.

Usage:
    git -C <diffstride checkout> archive HEAD | tar -x -C /tmp/dsref  # or a clone
    python3 tools/tf_crosscheck.py --reference /tmp/dsref [--cases 200] [--seed 0]
    python3 tools/tf_crosscheck.py --reference /tmp/dsref --sweep        # 2-3 min
    python3 tools/tf_crosscheck.py --reference /tmp/dsref --sweep-quick  # seconds

The library is $DIFFSTRIDE_LIB, else lib/libdiffstride.so.0.1.0 of this
checkout (--lib overrides both).

Requirements: a checkout of github.com/google-research/diffstride (its
directory is --reference; nothing of it is copied here), Python >= 3.11 and
    pip install tensorflow-cpu tf-keras gin-config numpy
"""
import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LIB = REPO / "lib" / "libdiffstride.so.0.1.0"

SMOOTHNESS = (0.5, 1.0, 2.0, 4.0, 6.0)
Y_TOL, DX_TOL, DSTRIDES_TOL = 1e-5, 1e-5, 1e-4
LAYOUTS = {"channels_first": "NCHW", "channels_last": "NHWC"}
F32_MAX = float(np.finfo(np.float32).max)  # the reference's default upper limit
SWEEP_SIZES = range(5, 65)
SWEEP_STRIDES = range(100, 401)  # strides k / 100
EAGER_CHECKS = 20  # sweep configurations per (variant, R) also run eagerly

# Set by import_modules(): TensorFlow, the reference's pooling module, and the
# library's package (imported late: the environment must be set first).
tf = pooling = ds = None


def die(message):
    """Stops with exit status 2: the cross-check itself could not run."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------- imports

def import_modules(reference, lib):
    """Imports TensorFlow, <reference>/diffstride/pooling.py and the library's
    package. Both packages are named `diffstride`: the reference's is imported
    first, then dropped from sys.modules (pooling.py imports only gin and
    tensorflow), so that `import diffstride` finds bindings/python."""
    global tf, pooling, ds
    if not (Path(reference) / "diffstride" / "pooling.py").is_file():
        die(f"--reference {reference}: no diffstride/pooling.py there "
            "(export a checkout of google-research/diffstride)")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the reference uses tf.keras (Keras 2) layers
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ["DIFFSTRIDE_LIB"] = str(lib)
    import tensorflow
    tensorflow.get_logger().setLevel("ERROR")
    tf = tensorflow

    sys.path.insert(0, str(reference))
    from diffstride import pooling as reference_pooling
    pooling = reference_pooling
    sys.path.remove(str(reference))
    for name in [m for m in sys.modules if m == "diffstride" or m.startswith("diffstride.")]:
        del sys.modules[name]

    sys.path.insert(0, str(REPO / "bindings" / "python"))
    import diffstride
    ds = diffstride


# ------------------------------------------------------------------ cases

@dataclass(frozen=True)
class Case:
    """One configuration: DiffStride (kind 'diffstride') or fixed spectral
    pooling (kind 'pool'); x is (n, c, h, w) in channels_first terms."""
    kind: str
    n: int
    c: int
    h: int
    w: int
    strides: tuple
    data_format: str = "channels_first"
    smoothness: float = 4.0
    cropping: bool = True
    shared: bool = False
    lower: float | None = None
    upper: float | None = None

    def describe(self):
        text = (f"{self.kind} {self.n}x{self.c}x{self.h}x{self.w} {LAYOUTS[self.data_format]} "
                f"strides {self.strides[0]:g},{self.strides[1]:g}")
        if self.kind == "diffstride":
            text += f" R {self.smoothness:g}"
            text += "" if self.cropping else " no-crop"
            text += " shared" if self.shared else ""
            if self.lower is not None or self.upper is not None:
                text += f" limits [{self.lower}, {self.upper}]"
        return text

    def lib_options(self):
        """The library's DiffStride options; no limit is [1, inf) there."""
        return dict(smoothness=self.smoothness, cropping=self.cropping, shared_stride=self.shared,
                    lower=1.0 if self.lower is None else self.lower,
                    upper=math.inf if self.upper is None else self.upper)

    def clip(self, strides):
        """strides (float32) clipped to the limits as the reference's
        StrideConstraint does (none: [1, float32 max])."""
        lower = 1.0 if self.lower is None else self.lower
        upper = F32_MAX if self.upper is None else self.upper
        return np.clip(strides, np.float32(lower), np.float32(upper)).astype(np.float32)


def edge_cases():
    """Points where a float32 decision (H/s an even integer in decimal, a
    threshold on a bin) or cropping off (odd widths) is easy to get wrong;
    each in both layouts."""
    d, p = "diffstride", "pool"
    points = [
        Case(d, 2, 3, 14, 14, (1.4, 1.4), smoothness=1.0),
        Case(d, 2, 3, 36, 36, (1.8, 1.8), smoothness=4.0),
        Case(d, 2, 3, 36, 36, (1.8, 1.8), smoothness=4.0, cropping=False),
        Case(d, 2, 3, 26, 30, (2.6, 1.5), smoothness=4.0),
        Case(d, 2, 3, 6, 5, (2.0, 2.0), smoothness=1.0, cropping=False),
        Case(d, 2, 3, 21, 35, (2.1, 3.5), smoothness=4.0, cropping=False),
        Case(d, 2, 3, 28, 42, (1.4, 1.4), smoothness=2.0, shared=True),
        Case(d, 2, 3, 26, 36, (3.1, 1.8), smoothness=4.0, lower=1.8, upper=2.6),
        Case(d, 2, 3, 26, 26, (1.1, 1.1), smoothness=4.0),
        Case(d, 2, 3, 53, 20, (1.06, 2.0), smoothness=1.0),
        Case(p, 2, 3, 16, 16, (1.6, 1.6)),
        Case(p, 2, 3, 33, 33, (1.1, 1.1)),
        Case(p, 2, 3, 8, 8, (1.6, 1.6)),
        Case(p, 2, 3, 32, 32, (1.6, 2.0)),
    ]
    return [Case(**{**vars(c), "data_format": f}) for c in points for f in LAYOUTS]


def random_stride(rng):
    """Uniform in [1, 4]: 2 decimals, or 1 decimal (1.4, 2.6, ...) 30% of the time."""
    s = rng.uniform(1.0, 4.0)
    return round(s, 1) if rng.random() < 0.3 else round(s, 2)


def random_case(rng):
    """80% DiffStride, 20% spectral pooling; N, C in 1..3, H, W in 5..40."""
    n, c = (int(v) for v in rng.integers(1, 4, size=2))
    h, w = (int(v) for v in rng.integers(5, 41, size=2))
    data_format = str(rng.choice(list(LAYOUTS)))
    strides = (random_stride(rng), random_stride(rng))
    if rng.random() < 0.2:
        return Case("pool", n, c, h, w, strides, data_format)
    smoothness = float(rng.choice([r for r in SMOOTHNESS if r < min(h, w)]))
    shared = bool(rng.random() < 0.25)
    if shared:  # the reference requires equal initial strides
        strides = (strides[0], strides[0])
    lower = upper = None
    if rng.random() < 0.3:  # limits around the strides: some clip, some do not
        lower = round(rng.uniform(1.0, max(strides)), 2)
        upper = round(rng.uniform(max(lower, min(strides)), 4.5), 2)
    return Case("diffstride", n, c, h, w, strides, data_format, smoothness,
                cropping=bool(rng.random() >= 0.25), shared=shared, lower=lower, upper=upper)


# ------------------------------------------------------- one random case

def rel_err(a, b):
    """max|a - b| / max|b| (the absolute error where b is all zeros)."""
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b)))
    scale = float(np.max(np.abs(b)))
    return diff / scale if scale > 0 else diff


def x_shape(case):
    """x's shape in the case's data format."""
    if case.data_format == "channels_first":
        return (case.n, case.c, case.h, case.w)
    return (case.n, case.h, case.w, case.c)


def tf_forward_backward(layer, x, rng):
    """y = layer(x), a random dy shaped like y, and the gradients of
    sum(dy * y) with respect to x and to the layer's trainable weights."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        loss = tf.reduce_sum(tf.constant(dy) * y)
    dx, *dweights = tape.gradient(loss, [xt, *layer.trainable_weights])
    return y.numpy(), dy, dx.numpy(), [g.numpy() for g in dweights]


def tf_stride_gradient_parts(case, raised, x, dy):
    """TF's stride gradient split into its parts, (N*C, 2): one row per image
    (n, c), one column per axis, from a non-shared layer at the raised
    strides (2,) (a shared stride's gradient is the sum of both axes'). The
    stride gradient sums these parts, and float32 rounding is relative to
    them: random x and dy can make the sum hundreds of times smaller."""
    layer = pooling.DiffStride(
        strides=tuple(float(s) for s in raised), smoothness_factor=case.smoothness,
        cropping=case.cropping, lower_limit_stride=case.lower, upper_limit_stride=case.upper)
    if case.data_format == "channels_last":  # to (N, C, H, W)
        x, dy = x.transpose(0, 3, 1, 2), dy.transpose(0, 3, 1, 2)
    images = tf.constant(x.reshape(-1, 1, case.h, case.w))  # (N*C, 1, H, W)
    with tf.GradientTape(persistent=True) as tape:
        y = layer(images)
        losses = tf.unstack(tf.reduce_sum(dy.reshape(y.shape) * y, axis=[1, 2, 3]))
    return np.array([tape.gradient(loss, layer.strides).numpy() for loss in losses])


def check_diffstride(case, x, rng):
    """Problems (list of str) and errors (name: value) of one DiffStride case."""
    layer = pooling.DiffStride(
        strides=case.strides, smoothness_factor=case.smoothness, cropping=case.cropping,
        shared_stride=case.shared, lower_limit_stride=case.lower,
        upper_limit_stride=case.upper, data_format=case.data_format)
    y_ref, dy, dx_ref, (dstrides_ref,) = tf_forward_backward(layer, x, rng)
    # The layer stored its raised strides ((2,), or (1,) shared) in its
    # variable; it computes with them clipped to the limits.
    raised = np.broadcast_to(layer.strides.numpy(), (2,))
    eff_ref = case.clip(raised)
    # The library's stride gradient is (2,), with shared_stride [total, 0].
    dstrides_ref = np.array([dstrides_ref[0], 0.0] if case.shared else dstrides_ref, np.float32)

    opts = case.lib_options()
    layout = LAYOUTS[case.data_format]
    eff = np.array(ds.effective_strides(case.h, case.w, case.strides, **opts), np.float32)
    y = ds.diffstride(x, case.strides, layout=layout, **opts)
    problems = []
    if not np.array_equal(eff, eff_ref):
        problems.append(f"effective strides: library {fmt(eff)}, TF {fmt(eff_ref)}")
    if y.shape != y_ref.shape:
        problems.append(f"output shape: library {y.shape}, TF {y_ref.shape}")
        return problems, {}
    dx, dstrides = ds.diffstride_backward(x, dy, case.strides, layout=layout, **opts)
    parts = tf_stride_gradient_parts(case, raised, x, dy)
    diff = float(np.max(np.abs(dstrides.astype(np.float64) - dstrides_ref)))
    scale = max(float(np.max(np.abs(dstrides_ref))), float(np.max(np.abs(parts))))
    errors = {"y": rel_err(y, y_ref), "dx": rel_err(dx, dx_ref),
              "dstrides": diff / scale if scale > 0 else diff,
              "dstrides/TF": rel_err(dstrides, dstrides_ref)}
    if not errors["dstrides"] <= DSTRIDES_TOL:  # NaN fails too
        problems.append(f"dstrides: library {fmt(dstrides)}, TF {fmt(dstrides_ref)}, "
                        f"parts up to {scale:.3g}")
    return problems, errors


def check_pool(case, x, rng):
    """Problems and errors of one fixed spectral pooling case."""
    layer = pooling.FixedSpectralPooling(strides=case.strides, data_format=case.data_format)
    y_ref, dy, dx_ref, _ = tf_forward_backward(layer, x, rng)
    layout = LAYOUTS[case.data_format]
    y = ds.spectral_pool(x, case.strides, layout=layout)
    if y.shape != y_ref.shape:
        return [f"output shape: library {y.shape}, TF {y_ref.shape}"], {}
    dx = ds.spectral_pool_backward(dy, case.strides, (case.h, case.w), layout=layout)
    return [], {"y": rel_err(y, y_ref), "dx": rel_err(dx, dx_ref)}


def fmt(values):
    return "(" + ", ".join(f"{float(v):.9g}" for v in np.ravel(values)) + ")"


def check_case(case, rng):
    """Problems of one case (a library error is one) and its errors."""
    x = rng.standard_normal(x_shape(case)).astype(np.float32)
    try:
        check = check_diffstride if case.kind == "diffstride" else check_pool
        problems, errors = check(case, x, rng)
    except ds.DiffStrideError as e:
        return [f"library error: {e}"], {}
    for name, tol in (("y", Y_TOL), ("dx", DX_TOL)):
        if not errors.get(name, 0.0) <= tol:  # NaN fails too
            problems.append(f"{name} relative error {errors[name]:.3g} > {tol:g}")
    return problems, errors


def run_cases(cases, rng, verbose):
    """Checks the cases; prints failures and the worst errors. Returns the
    number of failing cases."""
    worst = {}  # name: (error, case)
    failed = 0
    start = time.perf_counter()
    for case in cases:
        problems, errors = check_case(case, rng)
        for name, value in errors.items():
            if value >= worst.get(name, (-1.0, None))[0]:
                worst[name] = (value, case)
        if problems:
            failed += 1
            print(f"FAIL {case.describe()}")
            for problem in problems:
                print(f"     {problem}")
        elif verbose:
            print(f"ok   {case.describe()}  " +
                  " ".join(f"{k} {v:.2g}" for k, v in errors.items()))
    seconds = time.perf_counter() - start
    kinds = {k: sum(c.kind == k for c in cases) for k in ("diffstride", "pool")}
    print(f"cases: {len(cases)} (diffstride {kinds['diffstride']}, pool {kinds['pool']}), "
          f"{failed} failing, {seconds:.1f} s")
    for name, tol in (("y", Y_TOL), ("dx", DX_TOL), ("dstrides", DSTRIDES_TOL),
                      ("dstrides/TF", None)):
        if name in worst:
            value, case = worst[name]
            limit = f"tolerance {tol:g}" if tol else "not a criterion"
            print(f"  worst {name:11s} {value:.3g} ({limit}) at {case.describe()}")
    return failed


# ------------------------------------------------------------------ sweep

@dataclass(frozen=True)
class Variant:
    """DiffStride options of one sweep; with_1d: also check the library's
    1-D layer against the width axis of each call."""
    name: str
    cropping: bool = True
    shared: bool = False
    lower: float | None = None
    upper: float | None = None
    with_1d: bool = False

    def case(self, smoothness):
        """A Case carrying these options (for lib_options and clip)."""
        return Case("diffstride", 1, 1, 0, 0, (1.0, 1.0), smoothness=smoothness,
                    cropping=self.cropping, shared=self.shared, lower=self.lower, upper=self.upper)


VARIANTS = (
    Variant("2d", with_1d=True),
    Variant("2d-limits[1.5,3]", lower=1.5, upper=3.0, with_1d=True),
    Variant("2d-shared", shared=True),
    Variant("2d-nocrop", cropping=False, with_1d=True),
)


class Tally:
    """Counts and the first mismatches of one checked quantity."""

    def __init__(self, name, show):
        self.name, self.show = name, show
        self.checked = self.mismatched = 0
        self.examples = []

    def add(self, agree, describe):
        self.checked += 1
        if not agree:
            self.mismatched += 1
            if len(self.examples) < self.show:
                self.examples.append(describe())

    def report(self, what):
        print(f"  {self.name}: {self.checked} {what}, {self.mismatched} mismatches")
        for example in self.examples:
            print(f"    {example}")


def paired_grid(sizes, ks, smoothness, shared):
    """(M, 2) sizes (H, W) and strides k/100 (s_h, s_w) covering every
    (size > R, stride) once for the height axis and once for the width axis.
    out_h depends only on H, s_h (and R, limits) and out_w only on W, s_w,
    so each row checks one height and one width configuration: widths use
    the sizes rotated by a third (W != H, mixed parity) and the strides
    reversed (shared stride: the same stride, both axes read it)."""
    sizes = [n for n in sizes if n > smoothness]
    shift = len(sizes) // 3 + 1
    widths = sizes[shift:] + sizes[:shift]
    ks_w = ks if shared else ks[::-1]
    hw = [(h, w) for h, w in zip(sizes, widths) for _ in ks]
    kk = [(k, k_w) for _ in sizes for k, k_w in zip(ks, ks_w)]
    return np.array(hw, np.int32), (np.array(kk, np.float64) / 100).astype(np.float32)


def batch_runner(layer, shared):
    """A tf.function running `layer` on zeros (1, 1, H, W) for each row of
    sizes (M, 2) after assigning its stride variable from strides (M, 2):
    returns the output sizes (M, 2) and the variable after each call (M, 1
    or 2). About 0.2 ms per row, against 13 ms for an eager call and 1.4 ms
    for a tf.function call per row. Grappler is switched off (see sweep())
    so that the graph runs eager's ops."""
    dims = 1 if shared else 2

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int32),
                                  tf.TensorSpec([None, 2], tf.float32)])
    def run(sizes, strides):
        count = tf.shape(sizes)[0]
        outs = tf.TensorArray(tf.int32, size=count)
        variables = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            layer.strides.assign(strides[i, :dims])
            y = layer(tf.zeros(tf.concat([[1, 1], sizes[i]], axis=0)))
            outs = outs.write(i, tf.shape(y)[2:])
            variables = variables.write(i, layer.strides.read_value())
        return outs.stack(), variables.stack()

    return run


def eager_check(layer, shared, sizes, strides, outs, variables, rng):
    """Reruns EAGER_CHECKS random rows eagerly; exits 2 if the graph loop
    disagrees (the sweep would then not be the reference's numbers)."""
    for i in rng.choice(len(sizes), size=min(EAGER_CHECKS, len(sizes)), replace=False):
        layer.strides.assign(strides[i, :1] if shared else strides[i])
        y = layer(tf.zeros((1, 1, *sizes[i])))
        if tuple(y.shape[2:]) != tuple(outs[i]) or not np.array_equal(layer.strides.numpy(),
                                                                      variables[i]):
            die(f"the graph loop and an eager call disagree at {sizes[i]} {strides[i]}")


def sweep_variant(variant, sizes, ks, show, rng):
    """Sizes and effective strides of one variant (and its 1-D layer) for
    every R; prints the tallies."""
    tallies = {k: Tally(k, show) for k in ("out_h", "out_w", "effective strides")}
    tallies_1d = {k: Tally(k, show) for k in ("out_l", "effective stride")}
    calls, tf_seconds, lib_seconds = 0, 0.0, 0.0
    for smoothness in SMOOTHNESS:
        case = variant.case(smoothness)
        opts = case.lib_options()
        opts_1d = {**opts, "shared_stride": False}
        layer = pooling.DiffStride(
            smoothness_factor=smoothness, cropping=variant.cropping, shared_stride=variant.shared,
            lower_limit_stride=variant.lower, upper_limit_stride=variant.upper)
        layer.build((1, 1, None, None))
        run = batch_runner(layer, variant.shared)
        hw, strides = paired_grid(sizes, ks, smoothness, variant.shared)
        start = time.perf_counter()
        outs, variables = (t.numpy() for t in run(hw, strides))  # (M, 2), (M, 1 or 2)
        tf_seconds += time.perf_counter() - start
        eager_check(layer, variant.shared, hw, strides, outs, variables, rng)
        eff_ref = np.broadcast_to(case.clip(variables), (len(hw), 2))
        calls += len(hw)

        start = time.perf_counter()
        for (h, w), s, out_ref, e_ref in zip(hw, strides, outs.tolist(), eff_ref):
            h, w, s, out_ref = int(h), int(w), tuple(float(v) for v in s), tuple(out_ref)
            out = ds.output_size(h, w, s, **opts)
            eff = np.array(ds.effective_strides(h, w, s, **opts), np.float32)
            label = f"{h}x{w} strides {s[0]:.7g},{s[1]:.7g} R {smoothness:g}"
            tallies["out_h"].add(out[0] == out_ref[0],
                                 lambda: f"{label}: library {out}, TF {out_ref}")
            tallies["out_w"].add(out[1] == out_ref[1],
                                 lambda: f"{label}: library {out}, TF {out_ref}")
            tallies["effective strides"].add(
                np.array_equal(eff, e_ref),
                lambda: f"{label}: library {fmt(eff)}, TF {fmt(e_ref)}")
            if variant.with_1d:  # the 1-D layer is the width axis: L = W, stride s_w
                out_l = ds.output_size1d(w, s[1], **opts_1d)
                eff_l = np.float32(ds.effective_stride1d(w, s[1], **opts_1d))
                label_1d = f"L {w} stride {s[1]:.7g} R {smoothness:g}"
                tallies_1d["out_l"].add(out_l == out_ref[1],
                                        lambda: f"{label_1d}: library {out_l}, TF {out_ref[1]}")
                tallies_1d["effective stride"].add(
                    eff_l == e_ref[1],
                    lambda: f"{label_1d}: library {eff_l:.9g}, TF {e_ref[1]:.9g}")
        lib_seconds += time.perf_counter() - start

    r_values = ", ".join(f"{r:g}" for r in SMOOTHNESS)
    print(f"{variant.name}: {calls} reference calls (R {r_values}), TF {tf_seconds:.1f} s "
          f"({tf_seconds / calls * 1e3:.2f} ms/call), library {lib_seconds:.1f} s")
    for tally in tallies.values():
        tally.report("(size, stride, R) configurations" if tally.name.startswith("out")
                     else "calls")
    mismatches = sum(t.mismatched for t in tallies.values())
    if variant.with_1d:
        print(f"1d (width axis of {variant.name}):")
        for tally in tallies_1d.values():
            tally.report("(L, stride, R) configurations")
        mismatches += sum(t.mismatched for t in tallies_1d.values())
    return mismatches


def sweep_pool(sizes, ks, show):
    """Fixed spectral pooling sizes, every (size, stride) per axis. The
    reference computes them in build(), so one layer is built per pair."""
    hw, strides = paired_grid(sizes, ks, 0.0, shared=False)
    tallies = {k: Tally(k, show) for k in ("out_h", "out_w")}
    start = time.perf_counter()
    for (h, w), s in zip(hw, strides):
        layer = pooling.FixedSpectralPooling(strides=tuple(float(v) for v in s))
        layer.build((1, 1, int(h), int(w)))
        out_ref = tuple(layer._output_shape)
        out = ds.spectral_pool_output_size(int(h), int(w), tuple(float(v) for v in s))
        label = f"{h}x{w} strides {s[0]:.7g},{s[1]:.7g}"
        tallies["out_h"].add(out[0] == out_ref[0], lambda: f"{label}: library {out}, TF {out_ref}")
        tallies["out_w"].add(out[1] == out_ref[1], lambda: f"{label}: library {out}, TF {out_ref}")
    seconds = time.perf_counter() - start
    print(f"pool: {len(hw)} reference builds, {seconds:.1f} s "
          f"({seconds / len(hw) * 1e3:.2f} ms/build, library included)")
    for tally in tallies.values():
        tally.report("(size, stride) configurations")
    return sum(t.mismatched for t in tallies.values())


def sweep(size_step, stride_step, show, rng):
    """Every variant; returns the number of mismatches."""
    # Graph-level rewrites could change float32 results: run the graphs as
    # written, like eager (checked by eager_check).
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    sizes, ks = list(SWEEP_SIZES[::size_step]), list(SWEEP_STRIDES[::stride_step])
    print(f"sweep: sizes {sizes[0]}..{sizes[-1]} step {size_step} ({len(sizes)}), strides "
          f"{ks[0] / 100:.2f}..{ks[-1] / 100:.2f} step {stride_step / 100:g} ({len(ks)}), "
          f"only sizes > R")
    start = time.perf_counter()
    mismatches = sum(sweep_variant(v, sizes, ks, show, rng) for v in VARIANTS)
    mismatches += sweep_pool(sizes, ks, show)
    print(f"sweep: {mismatches} mismatches, {time.perf_counter() - start:.0f} s")
    return mismatches


# ------------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True,
                        help="directory holding a google-research/diffstride tree")
    parser.add_argument("--lib", default=os.environ.get("DIFFSTRIDE_LIB", str(DEFAULT_LIB)),
                        help="the shared library (default $DIFFSTRIDE_LIB, else %(default)s)")
    parser.add_argument("--cases", type=int, default=200,
                        help="random cases after the edge points (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="run the size sweep")
    parser.add_argument("--sweep-quick", action="store_true",
                        help="a short sweep: --size-step 7 --stride-step 13")
    parser.add_argument("--size-step", type=int, default=1, help="sweep every n-th size")
    parser.add_argument("--stride-step", type=int, default=1,
                        help="sweep every n-th stride (in hundredths)")
    parser.add_argument("--show", type=int, default=10,
                        help="mismatches listed per quantity (default 10)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args()
    if args.sweep_quick:
        args.sweep, args.size_step, args.stride_step = True, 7, 13
    return args


def main():
    args = parse_args()
    import_modules(args.reference, args.lib)
    print(f"library {ds.version()} at {ds.library_path}")
    print(f"reference {Path(args.reference) / 'diffstride' / 'pooling.py'}, "
          f"TensorFlow {tf.__version__}")
    rng = np.random.default_rng(args.seed)
    cases = edge_cases() + [random_case(rng) for _ in range(args.cases)]
    failed = run_cases(cases, rng, args.verbose)
    mismatches = sweep(args.size_step, args.stride_step, args.show, rng) if args.sweep else 0
    agree = failed == 0 and mismatches == 0
    print("all agree" if agree
          else f"MISMATCH: {failed} failing cases, {mismatches} sweep mismatches")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
