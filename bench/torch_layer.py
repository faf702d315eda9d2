#!/usr/bin/env python3
"""Plain-PyTorch port of the DiffStride and fixed spectral pooling layers.

A port of the paper's reference layers (google-research/diffstride, TensorFlow
/Keras, channels-first) as a PyTorch user would write them, following
docs/algorithm.md: forward with torch.fft, backward by autograd, the
geometry on float32 tensors in the reference's order of operations.
Tensors are (N, C, H, W) float32.

    python3 bench/torch_layer.py --check [--vectors DIR ...]

checks both layers against every 2-D test vector (y, dx and dstrides) of
tests/vectors (and the directories given).
"""
import argparse
import glob
import math
import os
import sys

import torch

# --------------------------------------------------------------- DiffStride

def clip(x, lower, upper):
    """clip(x, lower, upper) whose gradient passes on the closed interval.

    TensorFlow's clip_by_value (and the spec) pass the gradient where
    lower <= x <= upper; torch.clamp's is zero at the bounds, which matters at
    integer thresholds (e.g. stride 2 on 32x32). Same shape as x.
    """
    inside = (x >= lower) & (x <= upper)
    return torch.where(inside, x, torch.clamp(x, lower, upper).detach())


def effective_strides(strides, h, w, smoothness, shared, lower, upper):
    """strides (2,) -> (s_h', s_w') (2,), per spec step 1.

    The raise to h/(h-R), w/(w-R) changes only the value (the reference
    assigns it to its variable), so it is applied through detach(); the clip
    to [lower, upper] is differentiated on the closed interval. With `shared`
    only strides[0] is read.
    """
    size = torch.tensor([h, w], dtype=torch.float32, device=strides.device)
    mins = size / (size - smoothness)  # float32, as the reference's f(H / f(H - R))
    if shared:
        s = strides[0:1].expand(2)
        floor = mins.max().expand(2)
    else:
        s = strides
        floor = mins
    raised = s + (torch.maximum(s, floor) - s).detach()
    return clip(raised, lower, upper)


def ramp(threshold, positions, smoothness):
    """Reference compute_adaptive_span_mask: clip((1/R) * ((R + T) - p), 0, 1).

    threshold: scalar tensor, positions: (P,) -> (P,), float32 in this order.
    """
    return clip((1.0 / smoothness) * ((smoothness + threshold) - positions), 0.0, 1.0)


def horizontal_mask(w, stride, smoothness):
    """Mask over the rfft columns k = 0..w//2: (w//2+1,). T_w = t_w/2 + 1."""
    target = clip(w / stride, 2.0, math.inf)  # t_w = max(W/s', 2)
    positions = torch.arange(w // 2 + 1, dtype=torch.float32, device=stride.device)
    return ramp(target / 2 + 1, positions, smoothness)


def vertical_mask(h, stride, smoothness):
    """Mask over the rfft rows r = 0..h-1: (h,). T_h = t_h/2.

    As the reference: distances [v[h%2:] reversed, v] with v = 0..ceil(h/2)-1,
    ramp, then fftshift (which gives its even/odd-H position quirk).
    """
    target = clip(h / stride, 2.0, math.inf)  # t_h = max(H/s', 2)
    half = torch.arange(h // 2 + h % 2, dtype=torch.float32, device=stride.device)
    positions = torch.cat([torch.flip(half[h % 2:], dims=[0]), half])
    return torch.fft.fftshift(ramp(target / 2, positions, smoothness))


def kept_indices(mask):
    """Indices where mask > 0 (stop-gradient on the selection): (K,) int64."""
    return torch.nonzero(mask.detach() > 0).squeeze(1)


def diffstride(x, strides, smoothness=4.0, cropping=True, shared=False,
               lower=1.0, upper=math.inf):
    """DiffStride forward. x (N,C,H,W) float32, strides (2,) -> y (N,C,h',w')."""
    h, w = x.shape[-2], x.shape[-1]
    s_h, s_w = effective_strides(strides, h, w, smoothness, shared, lower, upper)
    m_h = vertical_mask(h, s_h, smoothness)    # (H,)
    m_w = horizontal_mask(w, s_w, smoothness)  # (W//2+1,)
    spectrum = torch.fft.rfft2(x)              # (N,C,H,W//2+1) complex64
    masked = spectrum * (m_h[:, None] * m_w[None, :])
    if not cropping:  # the spectrum's own lengths: h x 2*(w//2)
        return torch.fft.irfft2(masked)
    rows, cols = kept_indices(m_h), kept_indices(m_w)
    cropped = masked.index_select(-2, rows).index_select(-1, cols)
    return torch.fft.irfft2(cropped, s=(rows.numel(), 2 * (cols.numel() - 1)))


class DiffStride(torch.nn.Module):
    """The layer with its learnable stride parameter (2,) or (1,) if shared."""

    def __init__(self, strides=(2.0, 2.0), smoothness=4.0, cropping=True,
                 shared=False, lower=1.0, upper=math.inf):
        super().__init__()
        init = strides[:1] if shared else strides
        self.strides = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
        self.options = {"smoothness": smoothness, "cropping": cropping,
                        "shared": shared, "lower": lower, "upper": upper}

    def forward(self, x):
        """x (N,C,H,W) -> y (N,C,h',w'); stores the effective strides back."""
        strides = self.strides.expand(2) if self.options["shared"] else self.strides
        y = diffstride(x, strides, **self.options)
        with torch.no_grad():  # the reference's write-back of the raised strides
            eff = effective_strides(strides, x.shape[-2], x.shape[-1],
                                    self.options["smoothness"], self.options["shared"],
                                    self.options["lower"], self.options["upper"])
            self.strides.copy_(eff[: self.strides.numel()])
        return y


# --------------------------------------------------------- spectral pooling

def spectral_pool_size(h, w, strides):
    """(h', w'): h' = max(even floor(H/s_h), 2), w' = max(floor(W/s_w), 2),
    the quotients in float32 as the reference's."""
    size = torch.tensor([h, w], dtype=torch.float32)
    out_h, out_w = (int(v) for v in torch.floor(size / torch.tensor(strides, dtype=torch.float32)))
    return max(out_h - out_h % 2, 2), max(out_w, 2)


def spectral_pool(x, strides):
    """Fixed spectral pooling. x (N,C,H,W), strides (s_h, s_w) floats -> (N,C,h',w')."""
    h, w = x.shape[-2], x.shape[-1]
    out_h, out_w = spectral_pool_size(h, w, strides)
    spectrum = torch.fft.rfft2(x)  # (N,C,H,W//2+1)
    half = out_h // 2
    rows = torch.cat([spectrum[..., :half, :], spectrum[..., h - half:, :]], dim=-2)
    return torch.fft.irfft2(rows[..., : out_w // 2 + 1], s=(out_h, out_w))


# ------------------------------------------------------- test-vector check

def read_golden(path):
    """Parse a test vector into {key: list of str} (scalars) and float64 arrays."""
    with open(path) as f:
        lines = f.read().split("\n")
    case, i = {}, 1
    arrays = ("x", "y", "dy", "dx", "dstrides")
    while i < len(lines):
        parts = lines[i].split()
        i += 1
        if not parts:
            continue
        if parts[0] in arrays:
            count, values = int(parts[1]), []
            while len(values) < count:
                values.extend(float(v) for v in lines[i].split())
                i += 1
            case[parts[0]] = torch.tensor(values, dtype=torch.float64)
        else:
            case[parts[0]] = parts[1:]
    return case


def rel_err(a, b):
    """max|a - b| / max|b| in float64 (b all zero: max|a|)."""
    a, b = a.double().flatten(), b.flatten()
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def run_case(case):
    """Run one test vector in float32: {name: (relative error, tolerance)}."""
    shape = [int(v) for v in case["shape"]]
    x = case["x"].float().reshape(shape).requires_grad_(True)
    strides_in = [float(v) for v in case["strides"]]
    if case["op"][0] == "diffstride":
        strides = torch.tensor(strides_in, requires_grad=True)
        y = diffstride(x, strides, smoothness=float(case["smoothness"][0]),
                       cropping=case["cropping"][0] == "1", shared=case["shared"][0] == "1",
                       lower=float(case["lower"][0]), upper=float(case["upper"][0]))
    else:
        strides = None
        y = spectral_pool(x, strides_in)
    out = [int(v) for v in case["out"]]
    assert list(y.shape[-2:]) == out, f"output {list(y.shape[-2:])} != {out}"
    y.backward(case["dy"].float().reshape(y.shape))
    errs = {"y": (rel_err(y.detach(), case["y"]), 1e-5),
            "dx": (rel_err(x.grad, case["dx"]), 1e-5)}
    if strides is not None:
        errs["dstrides"] = (rel_err(strides.grad, case["dstrides"]), 1e-4)
    return errs


def check_irfft2_convention():
    """Spec step 9: irfft2 == inverse c2c down columns, then c2r along rows.

    On a non-Hermitian column 0 (as the masked spectrum has). Returns rel err.
    """
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 10, 7, dtype=torch.complex64, generator=gen)
    ref = torch.fft.irfft(torch.fft.ifft(z.cdouble(), dim=-2), n=12, dim=-1)
    return rel_err(torch.fft.irfft2(z, s=(10, 12)), ref)


def check(vector_dirs):
    """Check every 2-D test vector; returns the process exit status."""
    conv = check_irfft2_convention()
    ok = conv < 1e-5
    print(f"irfft2 convention (spec step 9, non-Hermitian input): rel err {conv:.2e}"
          f" {'ok' if ok else 'FAIL'}")
    paths = [p for d in vector_dirs for op in ("diffstride_", "spectral_pool_")
             for p in sorted(glob.glob(os.path.join(d, op + "*.txt")))]
    for path in paths:
        errs = run_case(read_golden(path))
        bad = [k for k, (e, tol) in errs.items() if not e < tol]
        ok = ok and not bad
        cols = "  ".join(f"{k} {e:.2e}" for k, (e, _) in errs.items())
        print(f"{os.path.basename(path):24s} {cols}  {'FAIL ' + ','.join(bad) if bad else 'ok'}")
    print(f"{len(paths)} test vectors: {'all passed' if ok and paths else 'FAILED'}")
    return 0 if ok and paths else 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="verify against the test vectors")
    parser.add_argument("--vectors", nargs="*", default=[],
                        help="more directories of test vectors (tests/vectors is always read)")
    args = parser.parse_args()
    if not args.check:
        parser.print_help()
        return 0
    return check([os.path.join(here, "..", "tests", "vectors")] + args.vectors)


if __name__ == "__main__":
    sys.exit(main())
