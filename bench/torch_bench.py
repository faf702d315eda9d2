#!/usr/bin/env python3
"""Times the plain-PyTorch layers of torch_layer.py on bench.c's shapes.

    python3 bench/torch_bench.py [--device cpu|cuda] [--threads T] [--reps R]
                                 [--shapes LIST] [--csv]

Same shapes (strides (2, 2)), options, method (one warm-up call, then the
median time of R calls) and columns as bench/bench. Operations:
fwd = forward under torch.no_grad(); bwd = y.backward(dy) on a graph built
before the clock starts (dx, and the stride gradient for DiffStride);
fwd+bwd = forward with autograd then y.backward(dy). NHWC rows run the
channels-first layer on x.permute(0, 3, 1, 2) and make the result NHWC
contiguous, as a PyTorch user with channels-last data would.

--device cpu (default): wall time (time.perf_counter). --device cuda: x, dy
and the strides on the GPU, the layer's own small tensors (masks, indices)
made there too, each call timed alone with CUDA events on the current
stream after torch.cuda.synchronize(); GB/s then counts each tensor once,
as bench --device cuda does (fwd+bwd: x, y, dy, dx).
Exits with status 3 when torch cannot be imported, 4 when --device cuda is
asked and torch.cuda.is_available() is False.
"""
import argparse
import os
import re
import statistics
import sys
import time

try:
    import torch
except (ImportError, OSError) as error:  # OSError: a shared library is missing
    sys.stderr.write(f"torch_bench: torch is not importable ({error}); see bench/README.md\n")
    sys.exit(3)

from torch_layer import diffstride, spectral_pool

# (N, C, H, W, layout), as SHAPES in bench.c.
SHAPES = [
    (128, 64, 32, 32, "nchw"), (128, 64, 32, 32, "nhwc"),
    (128, 128, 16, 16, "nchw"), (128, 256, 8, 8, "nchw"),
    (32, 64, 112, 112, "nchw"), (32, 128, 56, 56, "nchw"),
    (32, 256, 28, 28, "nchw"),
]
STRIDES = (2.0, 2.0)
SHAPE_ITEM = re.compile(r"^([0-9]+)x([0-9]+)x([0-9]+)x([0-9]+)(?:/(nchw|nhwc))?$")


def dims_name(shape):
    """(N, C, H, W, layout) -> 'NxCxHxW'."""
    return "x".join(str(d) for d in shape[:4])


def selected(shapes, shape):
    """Whether the comma-separated list names the table shape (bench.c's rule)."""
    if shapes is None:
        return True
    names = {dims_name(shape), f"{dims_name(shape)}/{shape[4]}"}
    return any(item in names for item in shapes.split(","))


def extra_shapes(shapes):
    """The list's shapes that are not in the table, in list order (bench.c's
    rule: both layouts unless one is named). Raises ValueError on a bad item."""
    extra = []
    for item in shapes.split(","):
        match = SHAPE_ITEM.match(item)
        dims = tuple(int(d) for d in match.groups()[:4]) if match else ()
        if not match or min(dims) < 1:
            raise ValueError(f"'{item}' is not NxCxHxW[/nchw|/nhwc]")
        named = [dims + (match.group(5),)] if match.group(5) else [dims + ("nchw",),
                                                                    dims + ("nhwc",)]
        in_table = (named[0] in SHAPES if match.group(5)
                    else any(s[:4] == dims for s in SHAPES))
        extra += [] if in_table else [s for s in named if s not in extra]
    return extra


def select_shapes(shapes):
    """The table's selected shapes in table order, then the extra ones."""
    table = [s for s in SHAPES if selected(shapes, s)]
    return table + (extra_shapes(shapes) if shapes is not None else [])


def layer_fn(layer, layout, device):
    """A function x -> y for x in the layout; returns (fn, stride tensor or None)."""
    strides = (torch.tensor(STRIDES, device=device, requires_grad=True)
               if layer == "diffstride" else None)

    def core(x):  # (N,C,H,W) -> (N,C,h',w')
        return diffstride(x, strides) if strides is not None else spectral_pool(x, STRIDES)

    def channels_last(x):  # (N,H,W,C) -> (N,h',w',C), contiguous
        return core(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()

    return (core if layout == "nchw" else channels_last), strides


def median_ms(run, reps, prepare=lambda: None):
    """Median wall time in ms of run() over reps calls after one warm-up;
    prepare() runs before each call, outside the clock."""
    prepare()
    run()
    times = []
    for _ in range(reps):
        prepare()
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cuda_median_ms(run, reps, prepare=lambda: None):
    """median_ms on the GPU: each call alone between two CUDA events on the
    current stream, after prepare()'s work has finished."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    prepare()
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        prepare()
        torch.cuda.synchronize()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def time_layer(layer, x, dy, layout, reps):
    """{op: ms} for fwd, bwd and fwd+bwd of one layer. x, dy in the layout."""
    fn, strides = layer_fn(layer, layout, x.device)
    timer = cuda_median_ms if x.is_cuda else median_ms
    leaves = [x] + ([strides] if strides is not None else [])
    graph = {}

    def clear_grads():
        for t in leaves:
            t.grad = None

    def build():  # the forward whose backward "bwd" times
        clear_grads()
        graph["y"] = fn(x)

    def forward_no_grad():
        with torch.no_grad():
            fn(x)

    def forward_backward():
        fn(x).backward(dy)

    return {"fwd": timer(forward_no_grad, reps),
            "bwd": timer(lambda: graph["y"].backward(dy), reps, build),
            "fwd+bwd": timer(forward_backward, reps, clear_grads)}


def layer_floats(layer, op, n_in, n_out, once=False):
    """Floats read and written, as bench.c counts them; once: each tensor
    counted once (bench --device cuda), so fwd+bwd is x, y, dy, dx."""
    fwd = n_in + n_out
    bwd = 2 * n_in + n_out if layer == "diffstride" else n_in + n_out
    both = 2 * (n_in + n_out) if once else fwd + bwd
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": both}[op]


def bench_shape(shape, reps, device, emit):
    """Time both layers on one shape; emit(shape, layer, op, ms, floats)."""
    n, c, h, w, layout = shape
    gen = torch.Generator().manual_seed(1)
    x_nchw = torch.rand(n, c, h, w, generator=gen) * 2 - 1
    x = (x_nchw if layout == "nchw" else x_nchw.permute(0, 2, 3, 1).contiguous()).to(device)
    x.requires_grad_(True)
    for layer in ("diffstride", "spectral_pool"):
        fn, _ = layer_fn(layer, layout, device)
        with torch.no_grad():
            y_shape = fn(x).shape
        dy = (torch.rand(y_shape, generator=gen) * 2 - 1).to(device)
        for op, ms in time_layer(layer, x, dy, layout, reps).items():
            emit(shape, layer, op, ms,
                 layer_floats(layer, op, x.numel(), dy.numel(), once=device.type == "cuda"))


def make_emitter(csv):
    """Print the header; return emit(shape, layer, op, ms, floats) for the rows."""
    fmt = "{},{},{},{},{:.4f},{:.3f}" if csv else "{:16s} {:6s} {:14s} {:8s} {:10.3f} {:8.2f}"
    if csv:
        print("shape,layout,layer,op,ms,gb_s")
    else:
        print(f"{'shape':16s} {'layout':6s} {'layer':14s} {'op':8s} {'ms':>10s} {'GB/s':>8s}")

    def emit(shape, layer, op, ms, floats):
        print(fmt.format(dims_name(shape), shape[4], layer, op, ms, floats * 4 / (ms * 1e6)),
              flush=True)
    return emit


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the tensors live (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: cores)")
    parser.add_argument("--reps", type=int, default=9, help="timed calls per operation")
    parser.add_argument("--shapes", help="NxCxHxW[/nchw|/nhwc],... (default: all)")
    parser.add_argument("--csv", action="store_true", help="CSV output")
    args = parser.parse_args()
    if args.threads < 0 or args.reps < 1:
        parser.error("--threads must be >= 0 and --reps >= 1")
    return args


def open_device(name):
    """torch.device(name); None (after a message) when CUDA is asked and
    torch cannot use it. (torch_layer creates its masks on the strides'
    device.)"""
    if name == "cuda" and not torch.cuda.is_available():
        sys.stderr.write(f"torch_bench: --device cuda, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                         f"no usable GPU or driver for this torch\n")
        return None
    return torch.device(name)


def header(args, device):
    """The text header's first line."""
    if device.type == "cuda":
        return (f"torch {torch.__version__} on CUDA ({torch.cuda.get_device_name(device)}), "
                f"median of {args.reps} reps (CUDA events), strides (2, 2)")
    return (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"median of {args.reps} reps, strides (2, 2)")


def main():
    args = parse_args()
    try:
        shapes = select_shapes(args.shapes)
    except ValueError as error:
        sys.stderr.write(f"torch_bench: --shapes: {error}\n")
        return 1
    if not shapes:
        sys.stderr.write(f"torch_bench: no shape matches '{args.shapes}'\n")
        return 1
    device = open_device(args.device)
    if device is None:
        return 4
    torch.set_num_threads(args.threads or os.cpu_count())
    if not args.csv:
        print(header(args, device))
    emit = make_emitter(args.csv)
    for shape in shapes:
        bench_shape(shape, args.reps, device, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
