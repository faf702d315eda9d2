#!/usr/bin/env python3
"""Data-parallel training on one machine, and a model of it on N machines.

    python3 bench/dist_bench.py [--trainer build/resnet18] [--modes ...]
        [--batch 128] [--size 32] [--width 1.0] [--steps 3] [--threads 2]
        [--nodes 1,2,4,8,16,32]

Per mode, the trainer's benchmark mode (its 'benchmark ' line) three ways
on the same global batch:
    TRAINER --benchmark STEPS --threads T                  (1 rank x T threads)
    mpirun -np T TRAINER --benchmark STEPS --threads 1     (T ranks x 1 thread,
                                                            shared memory)
    mpirun -np T --mca btl self,tcp ... (the same over TCP on loopback)
The rank runs add comm_ms (the wait for the gradient sums each step, what
the backward did not hide), allreduce_ms (one sum of the whole gradient
alone) and busbw_gbs (its bus bandwidth, 2 (K-1)/K bytes / time).

The model: N machines like this one, one rank of T threads each, a ring
all-reduce of the gradient (S bytes) at bus bandwidth bw:
    allreduce(N) = 2 (N-1)/N * S / bw
    step(N)      = compute + allreduce(N) - hidden,  hidden in [0, backward]
with compute the 1-rank step at the per-rank batch (weak scaling: each
machine keeps --batch, the global batch grows with N). It prints the
speed-up over one machine with nothing hidden and with the all-reduce
hidden behind the backward (about 2/3 of a step) as far as it goes, for the
measured TCP bandwidth and for 10 and 100 Gb/s links.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from trainer_bench import parse_line  # noqa: E402

MODES = ("strided", "spectral", "diffstride")
BACKWARD_SHARE = 2.0 / 3.0  # of a step: the part the all-reduce can hide behind


def mpi_env():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["OMPI_MCA_btl_base_warn_component_unused"] = "0"
    return env


def run(cmd):
    """The benchmark line's fields of cmd, or exits with its output."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env())
    fields = parse_line(out.stdout, "benchmark ")
    if out.returncode or fields is None:
        sys.exit("dist_bench: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    return fields


def measure(args, mode):
    common = ["--benchmark", str(args.steps), "--mode", mode, "--width", str(args.width),
              "--batch", str(args.batch), "--data", "synthetic:%dx%dx3" % (args.size, args.size)]
    k = str(args.threads)
    mpirun = ["mpirun", "-np", k, "--bind-to", "core"]
    return {
        "one": run([args.trainer, "--threads", k] + common),
        "shm": run(mpirun + ["--mca", "btl", "self,vader", args.trainer, "--threads", "1"] + common),
        "tcp": run(mpirun + ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                             args.trainer, "--threads", "1"] + common),
    }


def print_measured(rows, args):
    print("| mode | 1 rank x %d threads img/s | %d ranks x 1 thread img/s | ratio | wait for sums ms/step "
          "(share) | gradient MB | all-reduce ms, shm (busbw GB/s) | all-reduce ms, TCP lo (busbw GB/s) |"
          % (args.threads, args.threads))
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, r in rows:
        one, shm, tcp = r["one"], r["shm"], r["tcp"]
        print("| %s | %s | %s | %.2f | %s (%s%%) | %s | %s (%s) | %s (%s) |" % (
            mode, one["images_per_s"], shm["images_per_s"],
            float(shm["images_per_s"]) / float(one["images_per_s"]), shm["comm_ms"], shm["comm_share"],
            shm["gradient_mb"], shm["allreduce_ms"], shm["busbw_gbs"], tcp["allreduce_ms"], tcp["busbw_gbs"]))


def speedup(compute_ms, gradient_mb, busbw_gbs, n, hide):
    """Images/s of n machines over one (weak scaling), the all-reduce hidden
    behind the backward when hide."""
    ar_ms = 2.0 * (n - 1) / n * gradient_mb / 1e3 / busbw_gbs * 1e3
    exposed = max(0.0, ar_ms - BACKWARD_SHARE * compute_ms) if hide else ar_ms
    return n * compute_ms / (compute_ms + exposed)


def print_model(rows, args):
    nodes = [int(n) for n in args.nodes.split(",")]
    print("\nModel: speed-up of N machines over one (each %d threads, batch %d per machine), "
          "nothing hidden / all-reduce hidden behind the backward" % (args.threads, args.batch))
    print("| mode | link (busbw GB/s) | " + " | ".join("N=%d" % n for n in nodes) + " |")
    print("|---|---|" + "---:|" * len(nodes))
    for mode, r in rows:
        compute = float(r["one"]["step_ms"])
        mb = float(r["shm"]["gradient_mb"])
        links = [("TCP lo, measured", float(r["tcp"]["busbw_gbs"])), ("10 Gb/s", 1.25), ("100 Gb/s", 12.5)]
        for name, bw in links:
            cells = ["%.1f / %.1f" % (speedup(compute, mb, bw, n, False), speedup(compute, mb, bw, n, True))
                     for n in nodes]
            print("| %s | %s (%.2f) | %s |" % (mode, name, bw, " | ".join(cells)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trainer", default=os.path.join(ROOT, "build", "resnet18"))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nodes", default="1,2,4,8,16,32")
    args = p.parse_args()
    rows = [(mode, measure(args, mode)) for mode in args.modes.split(",")]
    print_measured(rows, args)
    print_model(rows, args)


if __name__ == "__main__":
    main()
