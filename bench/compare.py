#!/usr/bin/env python3
"""Runs bench/bench (libdiffstride) and bench/torch_bench.py (plain PyTorch)
with the same threads, reps and shapes and prints them side by side.

    python3 bench/compare.py [--threads T] [--reps R] [--shapes LIST] [--bench PATH]

ratio = torch ms / library ms (above 1: the library is faster). When torch
cannot be imported it says so, with how to install it, and prints the
library's timings alone.
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


def run_csv(command):
    """Run a benchmark with --csv: {(shape, layout, layer, op): ms}. Exits on failure."""
    result = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"compare: {' '.join(command)} failed with status {result.returncode}")
    rows = csv.DictReader(io.StringIO(result.stdout))
    return {(r["shape"], r["layout"], r["layer"], r["op"]): float(r["ms"]) for r in rows}


def torch_error():
    """None when torch imports, else the reason."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:
        return str(error)
    return None


def common_args(args):
    """The options both benchmarks take."""
    extra = ["--threads", str(args.threads), "--reps", str(args.reps), "--csv"]
    return extra + (["--shapes", args.shapes] if args.shapes else [])


def print_table(lib, torch_ms):
    """Side-by-side table; torch_ms is None when torch is missing."""
    head = f"{'shape':16s} {'layout':6s} {'layer':14s} {'op':8s} {'library ms':>11s}"
    print(head + (f" {'torch ms':>10s} {'torch/lib':>9s}" if torch_ms is not None else ""))
    for key, ms in lib.items():
        line = f"{key[0]:16s} {key[1]:6s} {key[2]:14s} {key[3]:8s} {ms:11.3f}"
        if torch_ms is not None and key in torch_ms:
            line += f" {torch_ms[key]:10.3f} {torch_ms[key] / ms:9.2f}"
        print(line)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both (0: cores)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per operation")
    parser.add_argument("--shapes", help="NxCxHxW[/nchw|/nhwc],... (default: all)")
    parser.add_argument("--bench", default=os.path.join(HERE, "bench"),
                        help="the C benchmark binary (default: bench/bench)")
    return parser.parse_args()


def main():
    args = parse_args()
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"compare: {args.bench} not found; build it from the repository root with\n"
                 f"  {BUILD}")
    error = torch_error()
    if error:
        print(f"compare: torch is not importable ({error}); timing the library only.\n"
              f"To install torch:\n  {TORCH_INSTALL}")
    print(f"threads {args.threads}, median of {args.reps} reps, strides (2, 2)", flush=True)
    lib = run_csv([args.bench] + common_args(args))
    torch_ms = None
    if not error:
        torch_ms = run_csv([sys.executable, os.path.join(HERE, "torch_bench.py")]
                           + common_args(args))
    print_table(lib, torch_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
