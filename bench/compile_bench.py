"""Eager against torch.compile (CPU) for a small CNN with each layer of
diffstride.torch: conv -> layer -> conv -> global average pool -> linear,
forward and backward of mean(y^2) per step. Prints a markdown table.

    DIFFSTRIDE_LIB=lib/libdiffstride.so.0.1.0 python3 bench/compile_bench.py --threads 2

Per model: the median time of --steps steps after --warmup steps, eager and
compiled (default backend, inductor), the two timed in alternation so that
a load on the machine weighs on both alike; the compile time (the first
compiled step, which traces and compiles forward and backward, less an
eager step; inductor's cache starts empty, so it is a cold compile); and
the graphs and graph breaks torch._dynamo.explain reports. The strides
stay fixed (no optimizer step), so the compiled model does not recompile.
The "nn.Sequential" row is the 2-D DiffStride model written as an
nn.Sequential: a graph break inside Sequential's loop makes dynamo run the
whole loop eagerly. Two control rows put 2x2 average pooling in the layer's
place: PyTorch's own (inductor sees through it) and the same inside a
torch.library custom operator (opaque, as the library's operators are).
Needs PyTorch >= 2.4 (the custom operators).
"""
import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings",
                                "python"))
from diffstride.torch import DiffStride1d, DiffStride2d, SpectralPool2d  # noqa: E402

WIDTH = 16


class SmallCNN(torch.nn.Module):
    """conv -> layer -> conv -> global average pool -> linear (x: N,3,H,W or
    N,3,L); an explicit forward, so that a break at the layer splits the
    graph there only."""

    def __init__(self, layer, ndim):
        super().__init__()
        conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv1d
        self.conv1, self.layer = conv(3, WIDTH, 3, padding=1), layer
        self.conv2 = conv(WIDTH, WIDTH, 3, padding=1)
        self.fc = torch.nn.Linear(WIDTH, 10)

    def forward(self, x):
        y = self.conv2(self.layer(self.conv1(x)))
        return self.fc(y.mean(tuple(range(2, y.dim()))))


@torch.library.custom_op("compile_bench::avg_pool2d", mutates_args=())
def opaque_avg_pool2d(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling as an opaque operator (the control row)."""
    return torch.nn.functional.avg_pool2d(x, 2)


@opaque_avg_pool2d.register_fake
def _(x):
    return torch.nn.functional.avg_pool2d(x, 2)


@torch.library.custom_op("compile_bench::avg_pool2d_backward", mutates_args=())
def opaque_avg_pool2d_backward(dy: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(dy, scale_factor=2.0) / 4


@opaque_avg_pool2d_backward.register_fake
def _(dy):
    return torch.nn.functional.interpolate(dy, scale_factor=2.0)


opaque_avg_pool2d.register_autograd(lambda ctx, dy: opaque_avg_pool2d_backward(dy))


class Pool(torch.nn.Module):
    """2x2 average pooling, PyTorch's or opaque."""

    def __init__(self, opaque):
        super().__init__()
        self.opaque = opaque

    def forward(self, x):
        return opaque_avg_pool2d(x) if self.opaque else torch.nn.functional.avg_pool2d(x, 2)


def sequential(layer):
    """The 2-D SmallCNN as an nn.Sequential."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, WIDTH, 3, padding=1), layer,
        torch.nn.Conv2d(WIDTH, WIDTH, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(WIDTH, 10))


def models(batch):
    """(name, model, input shape) of each row."""
    image, signal = (batch, 3, 64, 64), (batch, 3, 1024)
    return [
        ("DiffStride2d", SmallCNN(DiffStride2d((2.0, 2.0)), 2), image),
        ("DiffStride2d, nn.Sequential", sequential(DiffStride2d((2.0, 2.0))), image),
        ("SpectralPool2d", SmallCNN(SpectralPool2d((2.0, 2.0)), 2), image),
        ("DiffStride1d", SmallCNN(DiffStride1d(2.0), 1), signal),
        ("control: avg_pool2d", SmallCNN(Pool(opaque=False), 2), image),
        ("control: avg_pool2d as a custom op", SmallCNN(Pool(opaque=True), 2), image),
    ]


def step(model, run, x):
    """Forward and backward of mean(run(x)^2)."""
    model.zero_grad(set_to_none=True)
    run(x).square().mean().backward()


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(fns, warmup, steps):
    """The median ms of each of fns, called in turn `steps` times after warmup."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[timed(fn) for fn in fns] for _ in range(steps)]
    return [1e3 * statistics.median(column) for column in zip(*times)]


def row(name, model, shape, warmup, steps):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    eager = copy.deepcopy(model)
    step(eager, eager, x)  # the library's FFT plans, made once per thread and size
    torch._dynamo.reset()
    explained = torch._dynamo.explain(copy.deepcopy(model))(x)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    first_s = timed(lambda: step(model, compiled, x))
    eager_ms, compiled_ms = median_ms([lambda: step(eager, eager, x),
                                       lambda: step(model, compiled, x)], warmup, steps)
    dims = "x".join(map(str, shape))
    return (f"| {name} | {dims} | {eager_ms:.1f} | {compiled_ms:.1f} | "
            f"{eager_ms / compiled_ms:.2f} | {first_s - eager_ms / 1e3:.1f} | "
            f"{explained.graph_count} / {explained.graph_break_count} |")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the library calls follow it
    print(f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}, "
          f"median of {args.steps} steps after {args.warmup}\n")
    print("| model | input | eager ms/step | compiled ms/step | speedup | compile s "
          "| graphs / breaks |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # compile times from scratch
        for name, model, shape in models(args.batch):
            print(row(name, model, shape, args.warmup, args.steps), flush=True)


if __name__ == "__main__":
    main()
