#!/usr/bin/env python3
"""Runs bench/bench (libdiffstride) and bench/torch_bench.py (plain PyTorch)
with the same device, threads, reps and shapes and prints them side by side.

    python3 bench/compare.py [--device cpu|cuda] [--threads T] [--reps R]
                             [--shapes LIST] [--bench PATH]

ratio = torch ms / library ms (above 1: the library is faster); the
library's "diffstride_train" rows (its training calls) are set against
PyTorch's DiffStride rows, the same layer with autograd. When torch
cannot be imported (or, with --device cuda, cannot use the GPU) it says so
and prints the library's timings alone.

--device cuda adds the library's achieved GB/s, its fraction of the copy
bandwidth measured in the same run, the floor ratio (time over bytes / copy
bandwidth), the copy bandwidth per shape, the peak extra device memory per
layer, the device's name, and the issue's three goals on 128x64x32x32 NCHW
DiffStride fwd+bwd. The bench binary must then be built with
-DDS_BENCH_CUDA (make bench-gpu); its exit status 2 (built without CUDA) or
3 (no usable device) is passed on.
"""
import argparse
import csv
import io
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = ("cc -O2 -std=c11 -Iinclude bench/bench.c lib/libdiffstride.a "
         "-lfftw3f -lm -lpthread -o bench/bench")
TORCH_INSTALL = (
    "python3 -m pip install --no-deps torch==2.15.0 nvidia-cufile==1.17.1.22 "
    "nvidia-cusparselt-cu13==0.8.1 nvidia-nvshmem-cu13==3.7.2 nvidia-nccl-cu13==2.30.7 "
    "filelock typing-extensions sympy mpmath networkx jinja2 MarkupSafe fsspec\n"
    "  (the rest of torch's CUDA libraries come from the CUDA 13 toolkit under /usr/local;\n"
    "  without it: python3 -m pip install torch, which pulls several GB; see bench/README.md)")
# The PyTorch layer each library layer is compared with.
PEER_LAYER = {"diffstride_train": "diffstride"}
# The goals, checked on this row (when it was run).
GOAL_ROW = ("128x64x32x32", "nchw", "diffstride", "fwd+bwd")
GOAL_FLOOR, GOAL_SPEEDUP, GOAL_EXTRA_X = 2.0, 5.0, 1.0


def run_csv(command, required=True):
    """Run a benchmark with --csv: {(shape, layout, layer, op): row dict}.
    On failure: exits with its status when required, else returns None."""
    result = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        message = f"compare: {' '.join(command)} failed with status {result.returncode}"
        if required:
            print(message, file=sys.stderr)
            sys.exit(result.returncode)
        print(message + "; showing the library alone", flush=True)
        return None
    rows = csv.DictReader(io.StringIO(result.stdout))
    return {(r["shape"], r["layout"], r["layer"], r["op"]): r for r in rows}


def torch_error(device):
    """None when torch imports (and, for cuda, sees a GPU), else the message
    to print."""
    try:
        import torch
    except (ImportError, OSError) as error:
        return (f"torch is not importable ({error}); timing the library only.\n"
                f"To install torch:\n  {TORCH_INSTALL}")
    if device == "cuda" and not torch.cuda.is_available():
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) cannot use a "
                f"GPU here (torch.cuda.is_available() is False); timing the library only.")
    return None


def torch_device_name():
    """torch's name for the current CUDA device."""
    import torch
    return torch.cuda.get_device_name(torch.cuda.current_device())


def common_args(args):
    """The options both benchmarks take."""
    extra = ["--device", "cuda"] if args.device == "cuda" else []
    extra += ["--threads", str(args.threads), "--reps", str(args.reps), "--csv"]
    return extra + (["--shapes", args.shapes] if args.shapes else [])


def peer(key):
    """The torch row key for a library row key."""
    return key[:2] + (PEER_LAYER.get(key[2], key[2]),) + key[3:]


def print_table(lib, torch_rows):
    """Side-by-side table; torch_rows is None when torch is missing."""
    head = f"{'shape':16s} {'layout':6s} {'layer':14s} {'op':8s} {'library ms':>11s}"
    print(head + (f" {'torch ms':>10s} {'torch/lib':>9s}" if torch_rows is not None else ""))
    for key, row in lib.items():
        ms = float(row["ms"])
        line = f"{key[0]:16s} {key[1]:6s} {key[2]:14s} {key[3]:8s} {ms:11.3f}"
        if torch_rows is not None and peer(key) in torch_rows:
            torch_ms = float(torch_rows[peer(key)]["ms"])
            line += f" {torch_ms:10.3f} {torch_ms / ms:9.2f}"
        print(line)


def cuda_cells(key, row, torch_rows):
    """One GPU table line's cells after the key."""
    ms = float(row["ms"])
    torch_ms = float(torch_rows[peer(key)]["ms"]) if torch_rows and peer(key) in torch_rows else None
    cells = [f"{ms:11.4f}",
             f"{torch_ms:10.4f}" if torch_ms is not None else f"{'-':>10s}",
             f"{torch_ms / ms:9.2f}" if torch_ms is not None else f"{'-':>9s}",
             f"{float(row['gb_s']):9.1f}", f"{float(row['copy_frac']):8.3f}",
             f"{float(row['floor_ratio']):8.2f}"]
    return " ".join(cells)


def print_cuda_table(lib, torch_rows):
    """The GPU table: times, ratio, and the library's bandwidth columns."""
    print(f"{'shape':16s} {'layout':6s} {'layer':14s} {'op':8s} {'library ms':>11s} "
          f"{'torch ms':>10s} {'torch/lib':>9s} {'lib GB/s':>9s} {'of copy':>8s} {'floor x':>8s}")
    for key, row in lib.items():
        print(f"{key[0]:16s} {key[1]:6s} {key[2]:14s} {key[3]:8s} "
              + cuda_cells(key, row, torch_rows))


def print_cuda_extras(lib):
    """Copy bandwidth per shape and peak extra device memory per layer."""
    print("\ncopy bandwidth (cudaMemcpyAsync device to device of bytes(x)+bytes(y), "
          "read + write counted), per shape:")
    seen = {}
    for key, row in lib.items():
        seen.setdefault(key[:2], row["copy_gb_s"])
    for (shape, layout), gbs in seen.items():
        print(f"  {shape:16s} {layout:6s} {float(gbs):9.1f} GB/s")
    print("peak extra device memory of the layer (first forward and backward on a fresh "
          "context):")
    layers = {}
    for key, row in lib.items():
        layers.setdefault(key[:3], (int(row["extra_bytes"]), float(row["extra_x"])))
    for (shape, layout, layer), (extra, times_x) in layers.items():
        print(f"  {shape:16s} {layout:6s} {layer:14s} {extra / 1e6:10.2f} MB = "
              f"{times_x:5.2f} x sizeof(x)")


def verdict(ok):
    return "met" if ok else "NOT met"


def print_goals(lib, torch_rows):
    """The issue's goals on GOAL_ROW, when that row was run."""
    row = lib.get(GOAL_ROW)
    if row is None:
        return
    floor, extra_x = float(row["floor_ratio"]), float(row["extra_x"])
    print(f"\ngoals on {' '.join(GOAL_ROW)}:")
    print(f"  time / memory-traffic floor {floor:.2f} (goal <= {GOAL_FLOOR:g}): "
          f"{verdict(floor <= GOAL_FLOOR)}")
    if torch_rows is not None and GOAL_ROW in torch_rows:
        speedup = float(torch_rows[GOAL_ROW]["ms"]) / float(row["ms"])
        print(f"  torch CUDA ms / library ms {speedup:.2f} (goal >= {GOAL_SPEEDUP:g}): "
              f"{verdict(speedup >= GOAL_SPEEDUP)}")
    else:
        print("  torch CUDA ms / library ms: no torch timing")
    print(f"  peak extra device memory {extra_x:.2f} x sizeof(x) (goal <= {GOAL_EXTRA_X:g}): "
          f"{verdict(extra_x <= GOAL_EXTRA_X)}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both run (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="threads for both (0: cores)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per operation")
    parser.add_argument("--shapes", help="NxCxHxW[/nchw|/nhwc],... (default: all)")
    parser.add_argument("--bench", default=os.path.join(HERE, "bench"),
                        help="the C benchmark binary (default: bench/bench)")
    return parser.parse_args()


def run_torch(args, error):
    """torch_bench.py's rows, or None when torch is unusable or fails."""
    if error:
        return None
    return run_csv([sys.executable, os.path.join(HERE, "torch_bench.py")] + common_args(args),
                   required=False)


def main():
    args = parse_args()
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"compare: {args.bench} not found; build it from the repository root with\n"
                 f"  {BUILD}" + ("\n  (for --device cuda: make bench-gpu)"
                                 if args.device == "cuda" else ""))
    error = torch_error(args.device)
    if error:
        print(f"compare: {error}", flush=True)
    if args.device == "cpu":
        print(f"threads {args.threads}, median of {args.reps} reps, strides (2, 2)", flush=True)
    lib = run_csv([args.bench] + common_args(args))
    if args.device == "cpu":
        print_table(lib, run_torch(args, error))
        return 0
    name = next(iter(lib.values()))["device"] if lib else "?"
    print(f"device: {name} (library, cudaGetDeviceProperties)"
          + ("" if error else f"; torch sees: {torch_device_name()}"))
    print(f"median of {args.reps} reps (CUDA events), strides (2, 2); GB/s counts x, y for fwd, "
          f"x, dy, dx for bwd (spectral_pool: dy, dx), x, y, dy, dx for fwd+bwd, each once",
          flush=True)
    torch_rows = run_torch(args, error)
    print_cuda_table(lib, torch_rows)
    print_cuda_extras(lib)
    print_goals(lib, torch_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
