#!/usr/bin/env python3
"""Test vectors for libdiffstride, computed by an independent numpy model.

This script implements the layers as docs/algorithm.md states them (Notation,
sections 1-8, "Discrete decisions in float32", 10 fixed spectral pooling and
11 1-D DiffStride), written from that page and not from the C code under
src/: every discrete decision (effective strides, thresholds, kept rows and
bins, where the stride gradient passes a clip or a max) in IEEE float32 with
one rounding per operation in the documented order, every value
(transforms, masks, outputs, gradients) in float64.

It writes the repository's test vectors, tests/vectors/:
  <op>_<NN>.txt   one case per file (op = diffstride, spectral_pool,
                  diffstride1d): parameters, x, y, dy, dx, dstrides
  geometry.txt    the float32 geometry of many configurations, bit for bit
  README.md       the format, the cases and the tolerances

Usage (any Python 3 with numpy):
  python3 tools/make_vectors.py                  write tests/vectors/
  python3 tools/make_vectors.py --out DIR        write into DIR instead
  python3 tools/make_vectors.py --check DIR...   recompute every case file
                                                 in the DIRs and compare
  python3 tools/make_vectors.py --check-geometry FILE
                                                 recompute a geometry table
                                                 and compare exactly
  python3 tools/make_vectors.py --selftest       adjoint identity and finite
                                                 differences of dstrides

The output is deterministic (fixed seeds): rerunning writes the same files.
"""

import argparse
import glob
import os
import sys

import numpy as np

F32, F64 = np.float32, np.float64
SEED = 20240611
SMOOTHNESS = (0.5, 1, 2, 4, 6)          # the R values of the sweeps
SWEEP_SIZES = range(5, 65)             # H = W (and L) of the sweeps
SWEEP_STRIDES = [k / 100 for k in range(100, 401)]
CHECK_TOL = 1e-7                       # --check: this model against a file
CASE_KEYS = ("op", "shape", "smoothness", "cropping", "shared", "lower",
             "upper", "strides", "effective", "out")
ARRAY_KEYS = ("x", "y", "dy", "dx", "dstrides")


# ---------------------------------------------------------------------------
# Discrete decisions ("Discrete decisions in float32"). `ft` is the arithmetic:
# F32 (the semantics) or F64 (the same operations in double, used only to find
# where the two differ). Every operand is converted to ft first, so each numpy
# operation below is one rounding in ft; nothing is fused.
# ---------------------------------------------------------------------------

def positions_h(H):
    """Vertical positions p_h(r) of rows r = 0..H-1 (section 3): int (H,)."""
    r = np.arange(H)
    if H % 2 == 0:
        return np.where(r < H // 2, r, H - 1 - r)
    return np.where(r < (H - 1) // 2, r + 1, H - 1 - r)


def as_array(values, ft):
    """values (a scalar or a sequence) as a 1-D array of type ft."""
    return np.atleast_1d(np.asarray(values, dtype=ft))


def min_stride(n, R, ft):
    """min = f(n / f(n - R)) (section 1), a scalar of type ft."""
    return ft(n) / (ft(n) - ft(R))


class Axis:
    """Decisions along one axis for S configurations (arrays of length S).

    raised, eff: s'' and s'; q: f(n / s'); T: threshold; v (S, P): ramp
    arguments at the P positions; kept, passes (S, P): kept positions and
    kept positions whose ramp passes stride gradient (0 <= v <= 1);
    tmin: q >= 2 (max(., 2) passes); clip: lower <= s'' <= upper.
    """

    def __init__(self, n, positions, R, raised, lower, upper, horizontal,
                 cropping, ft):
        R, lower, upper, two = ft(R), ft(lower), ft(upper), ft(2)
        self.raised = raised
        self.eff = np.minimum(np.maximum(raised, lower), upper)
        self.q = ft(n) / self.eff
        self.T = np.maximum(self.q, two) / two
        if horizontal:
            self.T = self.T + ft(1)
        c = ft(1.0 / F64(R))                       # quotient in double, rounded once
        self.v = c * ((R + self.T)[:, None] - as_array(positions, ft)[None, :])
        self.kept = self.v > 0 if cropping else np.ones(self.v.shape, bool)
        self.passes = self.kept & (self.v >= 0) & (self.v <= 1)
        self.tmin = self.q >= two
        self.clip = (lower <= raised) & (raised <= upper)


def geometry_2d(H, W, R, cropping, shared, lower, upper, s_h, s_w, ft=F32):
    """Sections 1-4 for strides s_h, s_w (arrays (S,)): (vertical, horizontal) Axis.

    Vertical positions are the H rows, horizontal ones the W//2+1 bins.
    """
    s_h, s_w = as_array(s_h, ft), as_array(s_w, ft)
    min_h, min_w = min_stride(H, R, ft), min_stride(W, R, ft)
    if shared:
        raised_h = raised_w = np.maximum(s_h, np.maximum(min_h, min_w))
    else:
        raised_h, raised_w = np.maximum(s_h, min_h), np.maximum(s_w, min_w)
    vert = Axis(H, positions_h(H), R, raised_h, lower, upper, False, cropping, ft)
    horz = Axis(W, np.arange(W // 2 + 1), R, raised_w, lower, upper, True,
                cropping, ft)
    return vert, horz


def geometry_1d(L, R, cropping, lower, upper, s, ft=F32):
    """Section 11: the horizontal rules for a length-L signal; one Axis over L//2+1 bins."""
    raised = np.maximum(as_array(s, ft), min_stride(L, R, ft))
    return Axis(L, np.arange(L // 2 + 1), R, raised, lower, upper, True,
                cropping, ft)


def spectral_sizes(H, W, s_h, s_w, ft=F32):
    """Section 10 sizes for strides s_h, s_w (arrays (S,)): (out_h, out_w) int (S,)."""
    h = np.floor(ft(H) / as_array(s_h, ft)).astype(np.int64)
    w = np.floor(ft(W) / as_array(s_w, ft)).astype(np.int64)
    return np.maximum(h - h % 2, 2), np.maximum(w, 2)


def columns_2d(H, cropping, vert, horz):
    """The integer columns of a geometry line, each int (S,), in table order:
    out_h out_w rows_lo kc pass_h pass_w tmin_h tmin_w clip_h clip_w."""
    kc = horz.kept.sum(1)
    rows_lo = (vert.kept[:, :H // 2].sum(1) if cropping
               else np.full(kc.shape, H))
    return [vert.kept.sum(1), 2 * (kc - 1), rows_lo, kc,
            vert.passes.sum(1), horz.passes.sum(1),
            vert.tmin.astype(int), horz.tmin.astype(int),
            vert.clip.astype(int), horz.clip.astype(int)]


def columns_1d(axis):
    """Integer columns of a 1-D geometry line, int (S,): out kc pass tmin clip."""
    kc = axis.kept.sum(1)
    return [2 * (kc - 1), kc, axis.passes.sum(1), axis.tmin.astype(int),
            axis.clip.astype(int)]


# ---------------------------------------------------------------------------
# Values in float64 (sections 3-8, 10, 11). A Plan holds one configuration's
# crop, masks and stride-gradient factors; the 1-D layer is the 2-D crop of a
# 1 x L image whose single row has mask 1 and no stride gradient.
# ---------------------------------------------------------------------------

def ramp64(R, T, p):
    """Mask values m = clip((R + T - p) / R, 0, 1) in float64 from the float32 T: (P,)."""
    return np.clip((F64(R) + F64(T) - p) / F64(R), 0.0, 1.0)


class Plan:
    """One configuration for the value computations.

    rows (out_h,): kept spectrum rows, increasing; K: kept
    bins 0..K-1; out_h, out_w: output size; mh (H,), mw (W//2+1,): float64
    masks; pass_h (H,), pass_w (W//2+1,): positions whose ramp passes stride
    gradient; gain_h, gain_w: dstride = gain * (sum of dL/dm over those kept
    positions), gain = [clip][tmin] (1/R) (1/2) (-n / s'^2), or 0.
    """

    def __init__(self, rows, K, out_w, mh, mw, pass_h, pass_w,
                 gain_h=0.0, gain_w=0.0):
        self.rows, self.K = np.asarray(rows), K
        self.out_h, self.out_w = len(self.rows), out_w
        self.mh, self.mw, self.pass_h, self.pass_w = mh, mw, pass_h, pass_w
        self.gain_h, self.gain_w = gain_h, gain_w


def gain(n, R, axis, eff):
    """Stride-gradient factor of one axis (section 8 steps 2-5); eff is s' (float64)."""
    if not (axis.tmin[0] and axis.clip[0]):
        return 0.0
    return (1.0 / F64(R)) * 0.5 * (-F64(n) / (F64(eff) * F64(eff)))


def plan_2d(H, W, R, cropping, vert, horz, T=None, eff=None):
    """Plan of a DiffStride configuration from its float32 decisions (one config).

    T, eff: optional float64 (T_h, T_w) and (s_h', s_w') replacing the
    float32 ones in the values (finite differences), decisions unchanged.
    """
    T = (vert.T[0], horz.T[0]) if T is None else T
    eff = (vert.eff[0], horz.eff[0]) if eff is None else eff
    rows = np.nonzero(vert.kept[0])[0]
    K = int(horz.kept[0].sum())
    return Plan(rows, K, 2 * (K - 1),
                ramp64(R, T[0], positions_h(H)), ramp64(R, T[1], np.arange(W // 2 + 1)),
                vert.passes[0], horz.passes[0],
                gain(H, R, vert, eff[0]), gain(W, R, horz, eff[1]))


def plan_1d(L, R, axis, T=None, eff=None):
    """Plan of a 1-D configuration: a 1 x L image whose row has mask 1 and no gradient."""
    T = axis.T[0] if T is None else T
    eff = axis.eff[0] if eff is None else eff
    K = int(axis.kept[0].sum())
    return Plan([0], K, 2 * (K - 1), np.ones(1),
                ramp64(R, T, np.arange(L // 2 + 1)), np.zeros(1, bool),
                axis.passes[0], 0.0, gain(L, R, axis, eff))


def plan_spectral(H, W, out_h, out_w):
    """Plan of fixed spectral pooling (section 10): masks 1, rows_lo = out_h/2."""
    half = out_h // 2
    rows = np.concatenate([np.arange(half), np.arange(H - half, H)])
    KW = W // 2 + 1
    return Plan(rows, out_w // 2 + 1, out_w, np.ones(H), np.ones(KW),
                np.zeros(H, bool), np.zeros(KW, bool))


def bin_weights(K, out_w):
    """c_k of section 5 for bins 0..K-1 of a length-out_w real inverse: (K,)."""
    c = np.full(K, 2.0)
    c[0] = 1.0
    if out_w % 2 == 0:
        c[out_w // 2] = 1.0
    return c


def forward(plan, x):
    """Sections 3-5: x (B, H, W) -> y (B, out_h, out_w)."""
    X = np.fft.rfft2(x)                                        # (B, H, W//2+1)
    Zc = (X[:, plan.rows, :plan.K] * plan.mh[plan.rows, None]
          * plan.mw[:plan.K])                                   # (B, out_h, K)
    V = np.fft.ifft(Zc, axis=1)                                 # column inverses, 1/out_h
    V[:, :, 0] = V[:, :, 0].real                                # real part of bin 0 ...
    if plan.out_w % 2 == 0:
        V[:, :, plan.out_w // 2] = V[:, :, plan.out_w // 2].real  # ... and of the Nyquist bin
    return np.fft.irfft(V, n=plan.out_w, axis=2)               # rows, 1/out_w


def backward(plan, x, dy):
    """Sections 6-8: x (B, H, W), dy (B, out_h, out_w) -> dx (B, H, W), dL/dT sums.

    Returns dx and (gh, gw): the sums of dL/dm_h over the kept rows and of
    dL/dm_w over the kept bins whose ramp passes stride gradient.
    """
    B, H, W = x.shape
    G = (bin_weights(plan.K, plan.out_w) * np.fft.rfft2(dy)
         / (plan.out_h * plan.out_w))                           # (B, out_h, K)
    mh, mw = plan.mh[plan.rows], plan.mw[:plan.K]               # (out_h,), (K,)
    Gx = np.zeros((B, H, W), complex)                           # not Hermitian-extended
    Gx[:, plan.rows, :plan.K] = G * mh[:, None] * mw
    dx = H * W * np.fft.ifft2(Gx).real
    P = (np.conj(G) * np.fft.rfft2(x)[:, plan.rows, :plan.K]).real.sum(0)  # (out_h, K)
    dm_h, dm_w = P @ mw, mh @ P                                 # (out_h,), (K,)
    gh = dm_h[plan.pass_h[plan.rows]].sum()
    gw = dm_w[plan.pass_w[:plan.K]].sum()
    return dx, (gh, gw)


def run_case(op, params, x, dy):
    """Forward and backward of one case: (y, dx, dstrides) from parameters and arrays.

    x (B, H, W), dy (B, out_h, out_w) (1-D: H = 1); dstrides (2,) or (1,).
    """
    plan, how = build_plan(op, params)
    y = forward(plan, x)
    dx, (gh, gw) = backward(plan, x, dy)
    ds_h, ds_w = plan.gain_h * gh, plan.gain_w * gw
    dstrides = {"sep": [ds_h, ds_w], "shared": [ds_h + ds_w, 0.0],
                "1d": [ds_w], "none": []}[how]
    return y, dx, np.array(dstrides, dtype=F64)


def build_plan(op, p):
    """(Plan, dstrides kind) of a case's parameters p (see case_params)."""
    if op == "diffstride":
        vert, horz = geometry_2d(p["H"], p["W"], p["R"], p["cropping"], p["shared"],
                                 p["lower"], p["upper"], p["s"][0], p["s"][1])
        plan = plan_2d(p["H"], p["W"], p["R"], p["cropping"], vert, horz)
        return plan, "shared" if p["shared"] else "sep"
    if op == "diffstride1d":
        axis = geometry_1d(p["W"], p["R"], p["cropping"], p["lower"], p["upper"], p["s"][0])
        return plan_1d(p["W"], p["R"], axis), "1d"
    out_h, out_w = spectral_sizes(p["H"], p["W"], p["s"][0], p["s"][1])
    return plan_spectral(p["H"], p["W"], int(out_h[0]), int(out_w[0])), "none"


def effective(op, p):
    """The effective strides a case file records (float32 array) or None."""
    if op == "diffstride":
        vert, horz = geometry_2d(p["H"], p["W"], p["R"], p["cropping"], p["shared"],
                                 p["lower"], p["upper"], p["s"][0], p["s"][1])
        return np.array([vert.eff[0], horz.eff[0]], F32)
    if op == "diffstride1d":
        axis = geometry_1d(p["W"], p["R"], p["cropping"], p["lower"], p["upper"], p["s"][0])
        return np.array([axis.eff[0]], F32)
    return None


# ---------------------------------------------------------------------------
# Case files.
# ---------------------------------------------------------------------------

def f32_text(v):
    """Shortest decimal that reads back (as float32) as the float32 value v."""
    v = F32(v)
    if np.isinf(v):
        return "inf"
    s = np.format_float_positional(v, unique=True, trim="-")
    assert F32(float(s)) == v
    return s


def case_params(spec):
    """Parameters of a case spec (a dict as in CASES): H, W, B, R, limits, strides as float32."""
    shape = spec["shape"]
    H, W = (1, shape[2]) if spec["op"] == "diffstride1d" else shape[2:]
    return {"H": H, "W": W, "B": shape[0] * shape[1], "R": F32(spec.get("R", 4)),
            "cropping": spec.get("cropping", 1), "shared": spec.get("shared", 0),
            "lower": F32(spec.get("lower", 1)), "upper": F32(spec.get("upper", np.inf)),
            "s": [F32(s) for s in spec["s"]]}


def write_case(path, spec, p, x, y, dy, dx, dstrides):
    """Write one case file (format in the README); arrays in the file's shapes (N, C, ...)."""
    op, shape = spec["op"], spec["shape"]
    lines = ["diffstride-golden 1", "op " + op, "shape " + " ".join(map(str, shape))]
    if op != "spectral_pool":
        lines += ["smoothness " + f32_text(p["R"]), "cropping %d" % p["cropping"]]
        if op == "diffstride":
            lines.append("shared %d" % p["shared"])
        lines += ["lower " + f32_text(p["lower"]), "upper " + f32_text(p["upper"])]
    lines.append("strides " + " ".join(f32_text(s) for s in p["s"]))
    eff = effective(op, p)
    if eff is not None:
        lines.append("effective " + " ".join(f32_text(e) for e in eff))
    lines.append("out " + " ".join(map(str, y.shape[2:])))
    arrays = [("x", x), ("y", y), ("dy", dy), ("dx", dx)]
    if op != "spectral_pool":
        arrays.append(("dstrides", dstrides))
    for name, a in arrays:
        flat = np.asarray(a, F64).ravel() + 0.0          # no negative zeros
        lines.append("%s %d" % (name, flat.size))
        for i in range(0, flat.size, 8):
            lines.append(" ".join("%.9g" % v for v in flat[i:i + 8]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_case(path):
    """Parse a case file: (fields {key: [tokens]}, arrays {name: float64 (count,)})."""
    with open(path) as f:
        lines = [l.split() for l in f if l.strip()]
    if lines[0] != ["diffstride-golden", "1"]:
        raise ValueError("%s: not a diffstride-golden 1 file" % path)
    fields, arrays, i = {}, {}, 1
    while i < len(lines):
        key, rest = lines[i][0], lines[i][1:]
        i += 1
        if key in ARRAY_KEYS:
            count, values = int(rest[0]), rest[1:]
            while len(values) < count:
                values += lines[i]
                i += 1
            arrays[key] = np.array(values, dtype=F64)
        elif key in CASE_KEYS:
            fields[key] = rest
        else:
            raise ValueError("%s: unknown key %r" % (path, key))
    return fields, arrays


def params_from_fields(fields):
    """Case parameters (as case_params returns) from a parsed file's fields."""
    op = fields["op"][0]
    shape = [int(t) for t in fields["shape"]]
    spec = {"op": op, "shape": shape, "s": [float(t) for t in fields["strides"]]}
    if op != "spectral_pool":
        spec.update(R=float(fields["smoothness"][0]),
                    cropping=int(fields["cropping"][0]),
                    lower=float(fields["lower"][0]), upper=float(fields["upper"][0]))
    if op == "diffstride":
        spec["shared"] = int(fields["shared"][0])
    return op, case_params(spec)


def rel_err(a, b):
    """max|a - b| / max|b| of two arrays (absolute when b is all zero; inf
    when their sizes differ)."""
    a, b = np.ravel(a), np.ravel(b)
    if a.size != b.size:
        return np.inf
    if not b.size:
        return 0.0
    scale, diff = np.max(np.abs(b)), np.max(np.abs(a - b))
    return diff / scale if scale > 0 else diff


def check_file(path, tol):
    """Recompute one case file; returns (ok, message, {array: relative error})."""
    fields, arrays = read_case(path)
    op, p = params_from_fields(fields)
    plan, _ = build_plan(op, p)
    out = [plan.out_w] if op == "diffstride1d" else [plan.out_h, plan.out_w]
    out_text = "x".join(map(str, out))
    if [int(t) for t in fields["out"]] != out:
        return False, "out %s, recomputed %s" % ("x".join(fields["out"]), out_text), {}
    problems = []
    eff = effective(op, p)
    if eff is not None:
        given = np.array([F32(float(t)) for t in fields["effective"]], F32)
        if not np.array_equal(given, eff):
            problems.append("effective %s != %s" % (" ".join(fields["effective"]),
                                                    " ".join(f32_text(e) for e in eff)))
    x = arrays["x"].reshape(p["B"], p["H"], p["W"])
    dy = arrays["dy"].reshape(p["B"], plan.out_h, plan.out_w)
    y, dx, ds = run_case(op, p, x, dy)
    errs = {"y": rel_err(y, arrays["y"]), "dx": rel_err(dx, arrays["dx"])}
    if op != "spectral_pool":
        errs["dstrides"] = rel_err(ds, arrays["dstrides"])
    problems += ["%s %.2e" % (k, e) for k, e in errs.items() if not e <= tol]
    text = "out %s  " % out_text + "  ".join(
        "%s %.1e" % (k, e) for k, e in errs.items())
    return not problems, text + ("  FAIL: " + ", ".join(problems) if problems else ""), errs


def check_dirs(dirs, tol):
    """--check: every *.txt case file in dirs (geometry.txt excluded). Returns exit code."""
    failures, total, worst = 0, 0, {}
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.txt"))):
            if os.path.basename(path) == "geometry.txt":
                continue
            try:
                ok, text, errs = check_file(path, tol)
            except (ValueError, KeyError, IndexError) as e:
                ok, text, errs = False, "cannot read: %s" % e, {}
            for k, e in errs.items():
                worst[k] = max(worst.get(k, 0.0), e)
            total += 1
            failures += not ok
            print("%-4s %s  %s" % ("ok" if ok else "FAIL", path, text))
    print("%d files, %d failed; worst relative error: %s" % (
        total, failures, ", ".join("%s %.2e" % kv for kv in sorted(worst.items()))))
    return 1 if failures or not total else 0


# ---------------------------------------------------------------------------
# The cases. Strides, R and limits are decimals; the layer gets their float32
# values; "why" says what a case covers (the README lists it).
# ---------------------------------------------------------------------------

def ds(shape, s, why, **kw):
    """A diffstride case spec."""
    return dict(op="diffstride", shape=shape, s=s, why=why, **kw)


def sp(shape, s, why):
    """A spectral_pool case spec."""
    return dict(op="spectral_pool", shape=shape, s=s, why=why)


def d1(shape, s, why, **kw):
    """A diffstride1d case spec."""
    return dict(op="diffstride1d", shape=shape, s=(s,), why=why, **kw)


CASES = [
    ds((1, 2, 24, 24), (2, 2), "even square, integer stride: two row blocks, ramp on both axes", R=2),
    ds((3, 1, 17, 17), (2, 2), "odd size, odd image count: odd H's DC row at distance 1", R=4),
    ds((2, 1, 20, 28), (1.5, 2.5), "non-square, fractional strides", R=2),
    ds((1, 1, 15, 22), (2.3, 1.7), "odd H, even W, fractional strides, R 1", R=1),
    ds((1, 2, 20, 20), (2.7, 2.7), "R 0.5: a ramp narrower than one bin, with a row and a bin on it", R=0.5),
    ds((1, 1, 25, 19), (2.2, 2.7), "R 6, odd H and W", R=6),
    ds((1, 2, 16, 16), (2.5, 1.5), "cropping off, even W: output keeps the input size", R=4, cropping=0),
    ds((1, 3, 12, 13), (2, 3), "cropping off, odd W: the last column is lost (12x12 out)", R=2, cropping=0),
    ds((1, 2, 20, 24), (2.5, 7), "shared stride: strides[1] (7) is not read; dstrides = [sum, 0]", R=2, shared=1),
    ds((1, 1, 20, 20), (1.5, 3), "lower limit 2 clips s_h from below: dstrides[0] = 0", R=4, lower=2),
    ds((2, 1, 24, 16), (3.2, 2), "upper limit 2.5 clips s_h from above: dstrides[0] = 0", R=2, upper=2.5),
    ds((1, 2, 12, 12), (1, 1.2), "strides below the minimum 12/8: raised to 1.5, gradient still passed", R=4),
    ds((1, 1, 16, 16), (20, 3), "huge s_h: H/s' < 2, t_h at its minimum 2, dstrides[0] = 0", R=4),
    ds((1, 2, 14, 14), (1.4, 1.4), "float32 edge: f(14/1.4) = 10 exactly, row and bin at v = 0 dropped", R=1),
    ds((1, 2, 36, 36), (1.8, 1.8), "float32 edge: f(36/1.8) = 20 exactly", R=4),
    ds((1, 2, 36, 36), (1.8, 1.8), "float32 edge, cropping off: only the stride-gradient bins move", R=4, cropping=0),
    ds((2, 1, 26, 30), (2.6, 1.5), "float32 edge on the vertical axis only", R=4),
    ds((2, 2, 6, 5), (2, 2), "cropping off with odd W: 6x5 in, 6x4 out", R=1, cropping=0),
    ds((1, 2, 21, 35), (2.1, 3.5), "float32 edge, cropping off, odd W: gradient bins move", R=4, cropping=0),
    ds((1, 2, 28, 42), (1.4, 1.4), "float32 edge with a shared stride", R=2, shared=1),
    ds((1, 2, 26, 36), (3.1, 1.8), "float32 edge at the limits [1.8, 2.6]: s_h clipped above, s_w at the lower limit",
       R=4, lower=1.8, upper=2.6),
    ds((1, 2, 26, 26), (1.1, 1.1), "raised to the float32 minimum 26/22: H/s' = 22 exactly puts v = 1 on a row",
       R=4),
    ds((1, 1, 53, 20), (1.06, 2), "float32 stride 1.06 below the decimal: 53x12 (decimal stride in double: 51x12)",
       R=1),
    ds((1, 1, 9, 9), (1.2, 1.2), "odd H with every row kept (raised to 9/5)", R=4),
    ds((1, 2, 18, 15), (2.8, 9), "shared, cropping off, limits [1.2, 3.5] that pass the gradient", R=1,
       shared=1, cropping=0, lower=1.2, upper=3.5),
    ds((4, 1, 10, 12), (1.7, 2.1), "four images, small sizes, R 1", R=1),
    ds((1, 1, 14, 30), (1, 1), "shared, raised to max(min_h, min_w) = 14/8 with R 6", R=6, shared=1),
    sp((1, 2, 16, 16), (2, 2), "even square, integer stride"),
    sp((1, 3, 17, 15), (2, 2), "odd sizes, odd out_w (7): no Nyquist bin"),
    sp((1, 1, 20, 20), (1, 1), "stride 1, even: every row and bin kept"),
    sp((1, 2, 19, 21), (1, 1), "stride 1, odd: out_h made even (18), out_w 21"),
    sp((2, 1, 24, 18), (2.5, 1.5), "fractional strides"),
    sp((1, 1, 9, 12), (5, 7), "sizes falling to the minimum 2x2"),
    sp((3, 1, 10, 14), (1.7, 2.3), "three images, fractional strides"),
    sp((1, 1, 6, 40), (3.9, 3.1), "out_h at the minimum 2, out_w 12"),
    sp((1, 2, 16, 16), (1.6, 1.6), "float32 edge: f(16/1.6) = 10"),
    sp((1, 1, 33, 33), (1.1, 1.1), "float32 edge: f(33/1.1) = 30"),
    sp((2, 2, 8, 8), (1.6, 1.6), "float32 edge: f(8/1.6) = 5, odd out_w"),
    sp((1, 1, 32, 32), (1.6, 2), "float32 edge on the vertical axis"),
    d1((1, 2, 32), 2, "even L, integer stride", R=4),
    d1((1, 3, 33), 2.5, "odd L, odd image count, fractional stride", R=2),
    d1((1, 1, 31), 2, "cropping off, odd L: the last sample is lost (30 out)", R=4, cropping=0),
    d1((2, 1, 24), 3, "cropping off, even L", R=1, cropping=0),
    d1((1, 2, 40), 3.5, "upper limit 3 clips from above: dstrides = 0", R=2, lower=2, upper=3),
    d1((1, 1, 30), 1.7, "lower limit 2.5 clips from below: dstrides = 0", R=4, lower=2.5),
    d1((4, 1, 28), 2.5, "limits [1.5, 3] that pass the gradient, R 0.5", R=0.5, lower=1.5, upper=3),
    d1((1, 2, 20), 1.3, "R 0.5, fractional stride", R=0.5),
    d1((1, 1, 40), 1.1, "raised to the minimum 40/34 with R 6", R=6),
    d1((1, 1, 16), 12, "huge stride: t at its minimum 2, dstrides = 0", R=1),
    d1((1, 2, 14), 1.4, "float32 edge: f(14/1.4) = 10, the bin at v = 0 dropped", R=1),
    d1((1, 1, 13), 1.3, "float32 edge: a bin at v = 1 passes the gradient only in float32", R=2),
    d1((1, 1, 18), 1.8, "float32 edge: the gradient bins differ, the size does not", R=4),
]


def case_names():
    """File names of CASES, numbered per op: [diffstride_00.txt, ...]."""
    counts, names = {}, []
    for spec in CASES:
        n = counts.get(spec["op"], 0)
        counts[spec["op"]] = n + 1
        names.append("%s_%02d.txt" % (spec["op"], n))
    return names


def case_data(spec, index):
    """Inputs of one case: x (B, H, W) and dy (B, out_h, out_w), multiples of 1/16 in [-2, 2]."""
    p = case_params(spec)
    plan, _ = build_plan(spec["op"], p)
    rng = np.random.default_rng([SEED, index])
    x = rng.integers(-32, 33, size=(p["B"], p["H"], p["W"])) / 16.0
    dy = rng.integers(-32, 33, size=(p["B"], plan.out_h, plan.out_w)) / 16.0
    return p, x, dy


def double_differences(spec):
    """What the same case gives with the decisions in double: text, '' when alike."""
    p = case_params(spec)
    if spec["op"] == "spectral_pool":
        a = spectral_sizes(p["H"], p["W"], p["s"][0], p["s"][1])
        b = spectral_sizes(p["H"], p["W"], p["s"][0], p["s"][1], F64)
        same = a[0][0] == b[0][0] and a[1][0] == b[1][0]
        return "" if same else "out %dx%d (not %dx%d)" % (b[0][0], b[1][0], a[0][0], a[1][0])
    if spec["op"] == "diffstride":
        args = (p["H"], p["W"], p["R"], p["cropping"], p["shared"], p["lower"],
                p["upper"], p["s"][0], p["s"][1])
        names = GEOMETRY_INT_COLUMNS["diffstride"]
        a, b = [columns_2d(p["H"], p["cropping"], *geometry_2d(*args, ft=ft))
                for ft in (F32, F64)]
    else:
        args = (p["W"], p["R"], p["cropping"], p["lower"], p["upper"], p["s"][0])
        names = GEOMETRY_INT_COLUMNS["diffstride1d"]
        a, b = [columns_1d(geometry_1d(*args, ft=ft)) for ft in (F32, F64)]
    return ", ".join("%s %d (not %d)" % (n, v[0], u[0])
                     for n, u, v in zip(names, a, b) if u[0] != v[0])


def write_cases(out_dir):
    """Write every case file into out_dir; returns the README table rows
    (file name, spec, output size, what double decisions would give)."""
    rows = []
    for index, (spec, name) in enumerate(zip(CASES, case_names())):
        p, x, dy = case_data(spec, index)
        y, dx, dstrides = run_case(spec["op"], p, x, dy)
        nc = tuple(spec["shape"][:2])
        dims = y.shape[1:] if spec["op"] != "diffstride1d" else y.shape[2:]
        write_case(os.path.join(out_dir, name), spec, p, x.reshape(spec["shape"]),
                   y.reshape(nc + dims), dy.reshape(nc + dims),
                   dx.reshape(spec["shape"]), dstrides)
        rows.append((name, spec, dims, double_differences(spec)))
    return rows


# ---------------------------------------------------------------------------
# The geometry table: one configuration per line, floats as C99 hex floats.
# ---------------------------------------------------------------------------

GEOMETRY_INT_COLUMNS = {
    "diffstride": "out_h out_w rows_lo kc pass_h pass_w tmin_h tmin_w clip_h clip_w".split(),
    "diffstride1d": "out kc pass tmin clip".split(),
    "spectral_pool": "out_h out_w".split(),
}
# Columns after the op name: (name, 'i' integer | 'f' float32); the first
# GEOMETRY_PARAMS[op] are the parameters, the rest what they give.
GEOMETRY_COLUMNS = {
    "diffstride": [("H", "i"), ("W", "i"), ("R", "f"), ("cropping", "i"), ("shared", "i"),
                   ("lower", "f"), ("upper", "f"), ("s_h", "f"), ("s_w", "f"),
                   ("eff_h", "f"), ("eff_w", "f"), ("T_h", "f"), ("T_w", "f")]
                  + [(n, "i") for n in GEOMETRY_INT_COLUMNS["diffstride"]],
    "diffstride1d": [("L", "i"), ("R", "f"), ("cropping", "i"), ("lower", "f"), ("upper", "f"),
                     ("s", "f"), ("eff", "f"), ("T", "f")]
                    + [(n, "i") for n in GEOMETRY_INT_COLUMNS["diffstride1d"]],
    "spectral_pool": [("H", "i"), ("W", "i"), ("s_h", "f"), ("s_w", "f")]
                     + [(n, "i") for n in GEOMETRY_INT_COLUMNS["spectral_pool"]],
}
GEOMETRY_PARAMS = {"diffstride": 9, "diffstride1d": 6, "spectral_pool": 4}


def hex32(v):
    """C99 hex float of the float32 value v, trailing zero digits dropped ('inf' for +inf)."""
    v = float(F32(v))
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    mantissa, exponent = v.hex().split("p")
    return mantissa.rstrip("0").rstrip(".") + "p" + exponent


def geometry_entries(op, params, s_h, s_w=None):
    """Columns of S configurations that share all parameters but the strides.

    params: the op's parameters before the strides (diffstride: H W R cropping
    shared lower upper; diffstride1d: L R cropping lower upper; spectral_pool:
    H W); s_h, s_w: float32 arrays (S,) (s_w unused for 1-D). Returns
    (cols, decide, value): cols maps every column name to an array (S,) of
    the float32 results; decide (S,) is true where an integer column or an
    effective stride differs when the same operations run in double, value
    (S,) where only a threshold T does (by an ulp or so).
    """
    S = len(s_h)
    cols = {name: np.full(S, v) for (name, _), v in zip(GEOMETRY_COLUMNS[op], params)}
    if op == "spectral_pool":
        cols.update(s_h=s_h, s_w=s_w)
        a, b = spectral_sizes(*params, s_h, s_w), spectral_sizes(*params, s_h, s_w, F64)
        cols.update(out_h=a[0], out_w=a[1])
        return cols, (a[0] != b[0]) | (a[1] != b[1]), np.zeros(S, bool)
    if op == "diffstride":
        H, W, R, cropping, shared, lower, upper = params
        cols.update(s_h=s_h, s_w=s_w)
        g32, g64 = [geometry_2d(*params, s_h, s_w, ft=ft) for ft in (F32, F64)]
        i32, i64 = columns_2d(H, cropping, *g32), columns_2d(H, cropping, *g64)
        cols.update(eff_h=g32[0].eff, eff_w=g32[1].eff, T_h=g32[0].T, T_w=g32[1].T)
        pairs = list(zip(g32, g64))
    else:
        L, R, cropping, lower, upper = params
        cols.update(s=s_h)
        g32, g64 = [geometry_1d(*params, s_h, ft=ft) for ft in (F32, F64)]
        i32, i64 = columns_1d(g32), columns_1d(g64)
        cols.update(eff=g32.eff, T=g32.T)
        pairs = [(g32, g64)]
    cols.update(zip(GEOMETRY_INT_COLUMNS[op], i32))
    decide = np.zeros(S, bool)
    for u, v in zip(i32, i64):
        decide |= u != v
    value = np.zeros(S, bool)
    for a, b in pairs:
        decide |= a.eff != F32(b.eff)
        value |= a.T != F32(b.T)
    return cols, decide, value & ~decide


def format_line(op, cols, i):
    """Line i of a geometry block (cols as geometry_entries returns)."""
    return " ".join([op] + [hex32(cols[n][i]) if kind == "f" else str(int(cols[n][i]))
                            for n, kind in GEOMETRY_COLUMNS[op]])


def sweep(op):
    """The documented sweep of op: (lines where decisions differ in double,
    lines where only a threshold differs: the first such stride per size and
    R, the number of configurations where only a threshold differs)."""
    strides = F32(np.array(SWEEP_STRIDES))
    decided, valued, value_count = [], [], 0
    for n in SWEEP_SIZES:
        if op == "spectral_pool":
            configs = [((n, n), strides)]
        elif op == "diffstride":
            configs = [((n, n, F32(R), 1, 0, F32(1), F32(np.inf)), strides)
                       for R in SMOOTHNESS if n > R]
        else:
            configs = [((n, F32(R), 1, F32(1), F32(np.inf)), strides)
                       for R in SMOOTHNESS if n > R]
        for params, s in configs:
            cols, decide, value = geometry_entries(op, params, s, s)
            decided += [format_line(op, cols, i) for i in np.nonzero(decide)[0]]
            valued += [format_line(op, cols, i) for i in np.nonzero(value)[0][:1]]
            value_count += int(value.sum())
    return decided, valued, value_count


def random_stride(rng, low, high):
    """A float32 stride: half the time a decimal k/100, else a random float32."""
    if rng.random() < 0.5:
        return F32(rng.integers(int(low * 100), int(high * 100) + 1) / 100)
    return F32(rng.uniform(low, high))


def random_lines(op, rng, count):
    """count random configurations of op where float32 and double agree on every column."""
    low, high = (1, 6) if op == "spectral_pool" else (0.5, 8)     # stride range
    lines = []
    while len(lines) < count:
        H, W = (int(v) for v in rng.integers(5, 65, size=2))
        R = F32(rng.choice([0.5, 1, 1.5, 2, 3, 4, 6]))
        lower = F32(rng.choice([1, 1, 1.25, 1.5, 2]))
        upper = F32(rng.choice([np.inf, np.inf, 2.5, 3, 4.5]))
        cropping = int(rng.random() < 0.7)
        s_h, s_w = random_stride(rng, low, high), random_stride(rng, low, high)
        if op == "spectral_pool":
            params = (H, W)
        elif op == "diffstride":
            params = (H, W, R, cropping, int(rng.random() < 0.3), lower, upper)
        else:
            params = (W, R, cropping, lower, upper)
        if op != "spectral_pool" and not (H > R and W > R):
            continue
        cols, decide, value = geometry_entries(op, params, np.array([s_h]), np.array([s_w]))
        if not (decide[0] or value[0]):
            lines.append(format_line(op, cols, 0))
    return lines


GEOMETRY_HEADER = """\
# libdiffstride geometry table, written by tools/make_vectors.py: the float32
# decisions of docs/algorithm.md ("Discrete decisions in float32"), bit for bit.
# One configuration per line; floats are C99 hex floats of float32 values
# (strtod reads them exactly), upper limit 'inf'; '#' lines are comments.
#
# diffstride H W R cropping shared lower upper s_h s_w eff_h eff_w T_h T_w out_h out_w rows_lo kc pass_h pass_w tmin_h tmin_w clip_h clip_w
# diffstride1d L R cropping lower upper s eff T out kc pass tmin clip
# spectral_pool H W s_h s_w out_h out_w
#
# eff = s' (section 1), T = T_h, T_w (1-D: f(f(t/2)+1)); out_h, out_w: output
# size; rows_lo: kept rows in the first block (rows r < H/2, integer division;
# cropping off: H); kc: kept bins K; pass_h, pass_w: kept rows, kept bins whose
# ramp argument v satisfies 0 <= v <= 1 (cropping off: all rows, all bins);
# tmin: f(n/s') >= 2; clip: lower <= s'' <= upper (shared: the shared s'').
# With shared = 1 only s_h is read. The sweep is H = W (and L) in 5..64,
# strides float32(k/100) for k = 100..400 on both axes, R in 0.5 1 2 4 6
# (n > R), cropping on, not shared, no limits.
"""


def write_geometry(path):
    """Write the geometry table; returns {section: line count} for the README."""
    rng = np.random.default_rng([SEED, 1000])
    sections, counts = [], {}
    for op in ("diffstride", "diffstride1d", "spectral_pool"):
        decided, valued, value_count = sweep(op)
        sections.append(("sweep, %s: a decision differs in double" % op, decided))
        if valued:
            sections.append(("sweep, %s: only T differs in double (of %d such "
                             "configurations, the first stride per size and R)"
                             % (op, value_count), valued))
    for op, count in (("diffstride", 300), ("diffstride1d", 150), ("spectral_pool", 150)):
        sections.append(("random, %s: float32 and double agree" % op,
                         random_lines(op, rng, count)))
    with open(path, "w") as f:
        f.write(GEOMETRY_HEADER)
        for title, lines in sections:
            f.write("#\n# %s (%d lines)\n" % (title, len(lines)))
            f.write("".join(l + "\n" for l in lines))
            counts[title] = len(lines)
    return counts


def parse_geometry_value(token, kind):
    """A geometry column: int, or float32 from a hex float / 'inf'."""
    return int(token) if kind == "i" else F32(float.fromhex(token) if "x" in token
                                                else float(token))


def check_geometry(path):
    """--check-geometry: recompute every line of a geometry table; returns exit code."""
    failures = total = 0
    with open(path) as f:
        for number, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            op, columns = tokens[0], GEOMETRY_COLUMNS.get(tokens[0])
            if columns is None or len(tokens) != len(columns) + 1:
                print("FAIL line %d: cannot parse: %s" % (number, line.strip()))
                failures += 1
                continue
            given = [parse_geometry_value(t, kind) for t, (_, kind) in zip(tokens[1:], columns)]
            k = GEOMETRY_PARAMS[op]
            n_strides = 1 if op == "diffstride1d" else 2
            strides = ([np.array([v], F32) for v in given[k - n_strides:k]]
                       + [None] * (2 - n_strides))
            cols, _, _ = geometry_entries(op, given[:k - n_strides], *strides)
            bad = [name for (name, kind), v in zip(columns[k:], given[k:])
                   if not (F32(cols[name][0]) == v if kind == "f" else int(cols[name][0]) == v)]
            total += 1
            if bad:
                failures += 1
                print("FAIL line %d (%s): %s" % (number, ", ".join(bad), line.strip()))
    print("%s: %d lines, %d failed" % (path, total, failures))
    return 1 if failures or not total else 0


# ---------------------------------------------------------------------------
# README of the vectors directory.
# ---------------------------------------------------------------------------

README_HEAD = """\
# Test vectors

Reference numbers for the library's three layers (DiffStride, fixed spectral
pooling, 1-D DiffStride), written by `tools/make_vectors.py`: a numpy
implementation of [docs/algorithm.md](../../docs/algorithm.md) written from
that page, independently of the C code. Every discrete decision (effective
strides, thresholds, output size, kept rows and bins, where the stride
gradient passes a clip or a max) is made in IEEE float32, one rounding per
operation in the order of "Discrete decisions in float32"; every value
(transforms, masks, outputs, gradients) is float64. The masks are
`clip((R + T - p) / R, 0, 1)` evaluated in float64 from the float32
threshold `T`; the stride gradient's factor `(1/R) (1/2) (-n / s'^2)` is
float64 from the float32 `s'`.

Regenerate from the repository root (any Python 3 with numpy). The output
is deterministic: with the same numpy every run writes the same files
(another numpy version may move values that are zero up to rounding, about
1e-16, far below the tolerances). `make check` runs the two `--check` forms
below, so the committed files always agree with the generator.

    python3 tools/make_vectors.py                   # writes tests/vectors/
    python3 tools/make_vectors.py --out DIR         # writes into DIR instead
    python3 tools/make_vectors.py --check tests/vectors [DIR...]
                                                    # recompute every case file and compare
    python3 tools/make_vectors.py --check-geometry tests/vectors/geometry.txt
                                                    # recompute the table, compare bit for bit
    python3 tools/make_vectors.py --selftest        # adjoint identity, finite differences

`--check` compares output sizes exactly, effective strides exactly (as
float32) and `y`, `dx`, `dstrides` by relative error, below `--tol`
(default 1e-7; the 9-digit printing alone gives about 5e-9); it prints one
line per file and exits with 1 on any failure. `--selftest` checks
`sum(dy * y) = sum(x * dx)` to 1e-12 and `dstrides` against central finite
differences of `sum(dy * y)` in float64 at random configurations (float32
decisions; configurations where a step would change a decision are skipped).

## Case files

`<op>_<NN>.txt`, one case per file:

    diffstride-golden 1
    op diffstride | spectral_pool | diffstride1d
    shape N C H W            (diffstride1d: shape N C L)
    smoothness R             (diffstride, diffstride1d)
    cropping 0|1             (diffstride, diffstride1d)
    shared 0|1               (diffstride only; when 1 only strides[0] is read)
    lower L                  (diffstride, diffstride1d)
    upper U | inf            (diffstride, diffstride1d)
    strides s_h s_w          (as given to the layer; diffstride1d: strides s)
    effective s_h' s_w'      (diffstride: the strides used; diffstride1d: effective s')
    out h_out w_out          (diffstride1d: out l_out)
    x  COUNT                 then COUNT numbers (N*C*H*W, row-major NCHW; 1-D NCL)
    y  COUNT                 (N*C*h_out*w_out)
    dy COUNT                 (the upstream gradient, same shape as y)
    dx COUNT                 (gradient of sum(dy * y) with respect to x)
    dstrides 2               (diffstride; with shared, [total, 0]); diffstride1d: dstrides 1

Numbers are whitespace separated, 8 per line. `x` and `dy` are multiples of
1/16 in [-2, 2], exact in float32. `y`, `dx` and `dstrides` are printed with
9 significant digits. The scalar fields are the shortest decimals that read
back (as float32, e.g. `strtof`, or `strtod` then a conversion to float) as
the float32 values the layer uses: `strides 1.4` is `float32(1.4)`, and
`effective 1.4` says that `s'` is that same float32 value.

## Tolerances

A float32 implementation should reach a relative error
`max|a - b| / max|b|` below 1e-5 on `y` and `dx`, and below 1e-4 on
`dstrides`, with exactly the listed output size and effective strides.

## Cases

"double" lists what the same configuration gives when the decisions are
made with the same operations in double (from the float32 strides and R):
those cases catch a library that computes its geometry in double. Column
names as in `geometry.txt` below.
"""

README_GEOMETRY = """
## geometry.txt

The float32 geometry of many configurations, to be compared bit for bit.
One configuration per line; `#` lines are comments. Floats are C99 hex
floats of float32 values (Python's `float.hex` with trailing zero digits
dropped), which `strtod` reads exactly; an infinite upper limit is `inf`.

    diffstride H W R cropping shared lower upper s_h s_w  eff_h eff_w T_h T_w out_h out_w rows_lo kc pass_h pass_w tmin_h tmin_w clip_h clip_w
    diffstride1d L R cropping lower upper s  eff T out kc pass tmin clip
    spectral_pool H W s_h s_w  out_h out_w

`eff` is `s'` (section 1), `T` the thresholds (`T_w`, and the 1-D `T`, are
`f(f(t/2) + 1)`); `rows_lo` the number of kept rows in the first block, the
kept rows with `r < H/2` (integer division; `H` with cropping off); `kc` the
number of kept bins `K`; `pass_h`, `pass_w` the kept rows and bins whose ramp
argument satisfies `0 <= v <= 1` (with cropping off, over all rows and
bins); `tmin` is 1 when `f(n / s') >= 2`; `clip` is 1 when
`lower <= s'' <= upper` (shared: both axes test the shared `s''`). With
`shared = 1` only `s_h` is read.

The sweep: `H = W` (and `L`) in 5..64, strides `float32(k/100)` for
k = 100..400 on both axes, R in {0.5, 1, 2, 4, 6} with `n > R`, cropping on,
not shared, no limits. Of its configurations, the table holds every one
where an integer column or an effective stride differs when the same
operations run in double (with the float32 strides and R): the lines that
catch a library deciding in double. Where only a threshold `T` differs (by
an ulp, mostly `T_w = f(f(t/2) + 1)` against `t/2 + 1` rounded once), it
holds the first such stride of each size and R. Then random configurations (non-square,
odd sizes, shared, limits, cropping off, decimal and arbitrary float32
strides) where float32 and double agree on every column.

| section | lines |
|---|---|
"""


def case_summary(spec, p):
    """Short parameter text of a case for the README table."""
    parts = ["x".join(map(str, spec["shape"]))]
    parts.append("s " + ", ".join(f32_text(s) for s in p["s"]))
    if spec["op"] != "spectral_pool":
        parts.append("R " + f32_text(p["R"]))
        if not p["cropping"]:
            parts.append("cropping off")
        if p["shared"]:
            parts.append("shared")
        if p["lower"] != 1 or not np.isinf(p["upper"]):
            parts.append("limits [%s, %s]" % (f32_text(p["lower"]), f32_text(p["upper"])))
    return ", ".join(parts)


def write_readme(path, rows, geometry_counts):
    """Write the README: format, tolerances, the case table, the table's line counts."""
    text = [README_HEAD, "| file | case | out | double | why |", "|---|---|---|---|---|"]
    for name, spec, dims, double in rows:
        p = case_params(spec)
        text.append("| %s | %s | %s | %s | %s |" % (
            name[:-4], case_summary(spec, p), "x".join(map(str, dims)),
            double or "same", spec["why"]))
    text.append("\n%d case files: %s." % (len(rows), ", ".join(
        "%d %s" % (sum(r[1]["op"] == op for r in rows), op)
        for op in ("diffstride", "spectral_pool", "diffstride1d"))))
    text.append(README_GEOMETRY.rstrip("\n"))
    text += ["| %s | %d |" % kv for kv in geometry_counts.items()]
    text.append("| total | %d |" % sum(geometry_counts.values()))
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")


# ---------------------------------------------------------------------------
# Self-test: adjoint identity and finite differences.
# ---------------------------------------------------------------------------

def random_spec(rng, op):
    """A random case spec of op with arbitrary float32 strides (away from decimal edges)."""
    n = [int(v) for v in rng.integers(5, 33, size=2)]
    spec = {"op": op, "s": tuple(float(F32(v)) for v in rng.uniform(0.7, 5, size=2))}
    B = int(rng.integers(1, 4))
    if op == "spectral_pool":
        spec["s"] = tuple(float(F32(v)) for v in rng.uniform(1, 5, size=2))
        return dict(spec, shape=(B, 1, n[0], n[1]))
    spec.update(R=float(rng.choice([r for r in SMOOTHNESS if r < min(n)])),
                cropping=int(rng.random() < 0.7),
                lower=float(rng.choice([1, 1, 1.5, 2])),
                upper=float(rng.choice([np.inf, np.inf, 2.5, 3.5])))
    if op == "diffstride1d":
        return dict(spec, shape=(B, 1, n[1]), s=spec["s"][:1])
    return dict(spec, shape=(B, 1, n[0], n[1]), shared=int(rng.random() < 0.3))


def axes_of(op, p):
    """(float32 Axis, n, positions, horizontal) of each axis of a DiffStride configuration."""
    if op == "diffstride1d":
        a = geometry_1d(p["W"], p["R"], p["cropping"], p["lower"], p["upper"], p["s"][0])
        return [(a, p["W"], np.arange(p["W"] // 2 + 1), True)]
    vert, horz = geometry_2d(p["H"], p["W"], p["R"], p["cropping"], p["shared"],
                             p["lower"], p["upper"], p["s"][0], p["s"][1])
    return [(vert, p["H"], positions_h(p["H"]), False),
            (horz, p["W"], np.arange(p["W"] // 2 + 1), True)]


def stride_derivatives(op, p, x, dy, rel_step=1e-5):
    """Analytic dstrides and central differences of sum(dy * y) in float64.

    Both use the float32 decisions and float64 thresholds computed from s''
    (so that s'' can move by less than a float32 ulp); the raise to the
    minimum passes the gradient, so the difference is taken in s''. Returns
    (analytic, numeric) arrays (k,), or None when a step changes a decision.
    """
    axes = axes_of(op, p)
    cont = []                                   # float64 Axis over s'' - h, s'', s'' + h
    for a, n, positions, horizontal in axes:
        raised = F64(a.raised[0])
        steps = raised + np.array([-1.0, 0.0, 1.0]) * rel_step * raised
        c = Axis(n, positions, p["R"], steps, p["lower"], p["upper"], horizontal,
                 p["cropping"], F64)
        for j in range(3):
            if not (np.array_equal(c.kept[j], a.kept[0])
                    and np.array_equal(c.passes[j], a.passes[0])
                    and c.tmin[j] == a.tmin[0] and c.clip[j] == a.clip[0]):
                return None
        cont.append((a, c, rel_step * raised))

    def plan_at(js):
        """Plan with each axis at step js[axis] (0: -h, 1: centre, 2: +h)."""
        if op == "diffstride1d":
            a, c, _ = cont[0]
            return plan_1d(p["W"], p["R"], a, T=c.T[js[0]], eff=c.eff[js[0]])
        (v, cv, _), (h, ch, _) = cont
        return plan_2d(p["H"], p["W"], p["R"], p["cropping"], v, h,
                       T=(cv.T[js[0]], ch.T[js[1]]), eff=(cv.eff[js[0]], ch.eff[js[1]]))

    def loss(js):
        return np.sum(dy * forward(plan_at(js), x))

    centre = plan_at([1] * len(cont))
    _, (gh, gw) = backward(centre, x, dy)
    if op == "diffstride1d":
        analytic = [centre.gain_w * gw]
        moves = [[0], [2]]
    elif p["shared"]:
        analytic = [centre.gain_h * gh + centre.gain_w * gw]
        moves = [[0, 0], [2, 2]]
    else:
        analytic = [centre.gain_h * gh, centre.gain_w * gw]
        moves = None
    if moves is not None:
        numeric = [(loss(moves[1]) - loss(moves[0])) / (2 * cont[0][2])]
    else:
        numeric = [(loss([2, 1]) - loss([0, 1])) / (2 * cont[0][2]),
                   (loss([1, 2]) - loss([1, 0])) / (2 * cont[1][2])]
    return np.array(analytic), np.array(numeric)


def selftest(trials=300):
    """--selftest: adjoint identity (1e-12) and finite differences (1e-6); returns exit code."""
    rng = np.random.default_rng([SEED, 2000])
    worst_adj = worst_fd = 0.0
    done = skipped = failures = 0
    for trial in range(trials):
        op = ("diffstride", "diffstride1d", "spectral_pool")[trial % 3]
        spec = random_spec(rng, op)
        p = case_params(spec)
        plan, _ = build_plan(op, p)
        x = rng.standard_normal((p["B"], p["H"], p["W"]))
        dy = rng.standard_normal((p["B"], plan.out_h, plan.out_w))
        y, dx, _ = run_case(op, p, x, dy)
        adj = abs(np.sum(dy * y) - np.sum(x * dx)) / np.sum(np.abs(dy * y))
        worst_adj = max(worst_adj, adj)
        failures += adj > 1e-12
        if op == "spectral_pool":
            continue
        result = stride_derivatives(op, p, x, dy)
        if result is None:
            skipped += 1
            continue
        analytic, numeric = result
        scale = max(np.max(np.abs(analytic)), 1e-8 * np.sum(np.abs(dy * y)))
        err = np.max(np.abs(analytic - numeric)) / scale
        worst_fd = max(worst_fd, err)
        failures += err > 1e-6
        done += 1
        if err > 1e-6:
            print("FAIL finite difference %s: analytic %s numeric %s" % (spec, analytic, numeric))
    print("selftest: %d configurations, adjoint worst %.1e; finite differences on %d "
          "(%d skipped at a decision), worst %.1e; %d failed"
          % (trials, worst_adj, done, skipped, worst_fd, failures))
    return 1 if failures else 0


# ---------------------------------------------------------------------------

def generate(out_dir):
    """Write the case files, geometry.txt and README.md into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    for op in ("diffstride", "spectral_pool", "diffstride1d"):
        for old in glob.glob(os.path.join(out_dir, op + "_[0-9][0-9].txt")):
            os.remove(old)
    rows = write_cases(out_dir)
    counts = write_geometry(os.path.join(out_dir, "geometry.txt"))
    write_readme(os.path.join(out_dir, "README.md"), rows, counts)
    print("wrote %d case files, geometry.txt (%d lines) and README.md into %s"
          % (len(rows), sum(counts.values()), out_dir))


def main(argv=None):
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors")
    parser = argparse.ArgumentParser(
        description="Write or check libdiffstride's test vectors (see the module docstring).")
    parser.add_argument("--out", default=os.path.normpath(default_out), metavar="DIR",
                        help="directory to write (default: tests/vectors)")
    parser.add_argument("--check", nargs="+", metavar="DIR",
                        help="recompute the case files in each DIR and compare")
    parser.add_argument("--check-geometry", metavar="FILE",
                        help="recompute a geometry table and compare exactly")
    parser.add_argument("--selftest", action="store_true",
                        help="adjoint identity and finite differences")
    parser.add_argument("--tol", type=float, default=CHECK_TOL,
                        help="relative tolerance of --check (default %(default)g)")
    args = parser.parse_args(argv)
    if args.check or args.check_geometry or args.selftest:
        status = 0
        if args.check:
            status |= check_dirs(args.check, args.tol)
        if args.check_geometry:
            status |= check_geometry(args.check_geometry)
        if args.selftest:
            status |= selftest()
        return status
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
