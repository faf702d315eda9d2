"""Side-by-side speed of DiffStride2d (the library, through the Python
package) and the plain PyTorch reference layer (bench/torch_layer.py):
forward and forward+backward through autograd, the same shapes, threads and
strides. Prints one row per shape and memory format.

    DIFFSTRIDE_LIB=lib/libdiffstride.so.0.1.0 python3 bench/module_bench.py --threads 2
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))
import torch_layer  # noqa: E402
from diffstride.torch import DiffStride2d  # noqa: E402

SHAPES = [(128, 64, 32, 32), (128, 128, 16, 16), (32, 64, 56, 56)]


def timed(fn, reps):
    """Median wall time of fn() in ms over reps calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def step(layer, x, dy, backward):
    """One forward (and backward of sum(dy * y)) of layer on x; x is (N,C,H,W)."""
    if not backward:
        with torch.no_grad():
            return layer(x)
    x.grad = None
    y = layer(x)
    y.backward(dy)
    return y


def row(shape, channels_last, reps):
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    lib, ref = DiffStride2d((2.0, 2.0)), torch_layer.DiffStride((2.0, 2.0))
    dy = torch.randn(lib(x).shape)
    result = []
    for backward in (False, True):
        t_lib = timed(lambda: step(lib, x, dy, backward), reps)
        t_ref = timed(lambda: step(ref, x, dy, backward), reps)
        result.append((t_lib, t_ref))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the modules' library calls follow it
    print(f"threads {args.threads}, median of {args.reps} reps, strides (2, 2), torch {torch.__version__}")
    print(f"{'shape':16} {'format':13} {'op':8} {'DiffStride2d ms':>15} {'torch ms':>9} {'ratio':>6}")
    for shape in SHAPES:
        for channels_last in (False, True):
            fmt = "channels_last" if channels_last else "contiguous"
            for op, (t_lib, t_ref) in zip(("fwd", "fwd+bwd"), row(shape, channels_last, args.reps)):
                name = "x".join(map(str, shape))
                print(f"{name:16} {fmt:13} {op:8} {t_lib:15.3f} {t_ref:9.3f} {t_ref / t_lib:6.2f}")


if __name__ == "__main__":
    main()
