#!/usr/bin/env python3
"""Runs the C ResNet-18 trainer's benchmark mode and bench/torch_resnet.py
on the same network and batch, for each mode, and prints a markdown table.

    python3 bench/trainer_bench.py [--trainer build/resnet18]
        [--modes strided,spectral,diffstride] [--batch 128] [--size 32]
        [--channels 3] [--width 1.0] [--strides 1,1,2,2,2] [--threads T]
        [--steps 10] [--warmup 2] [--device cpu|cuda] [--precision fp32|tf32|bf16]

Per mode, each in its own process:
    TRAINER --benchmark STEPS --mode MODE --width W --strides S --batch B
            --data synthetic:SxSxC --threads T
whose line starting with 'benchmark ' gives mode, batch, step_ms,
images_per_s, library_ms, library_share (%), peak_rss_mb (device_mb on
CUDA: device memory the trainer added to the CUDA context's) and sizes, and
    torch_resnet.py --mode MODE (same options, --warmup W)
whose line starting with 'torch ' gives step_ms, images_per_s, peak_mem_mb
(peak_rss_mb on the CPU: the process's whole peak RSS, the measure the
memory columns compare with the trainer's) and sizes. With --device cuda both run on the GPU, at the same --precision
(tf32: TF32 tensor cores; bf16: bf16 convolutions, float32 master weights,
the pooling layers in float32). "vs strided" columns divide by the strided row of the same
program (when strided is among --modes). When the trainer is missing or
torch cannot be imported, it says so and prints the other side alone.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODES = ("strided", "spectral", "diffstride")


def parse_line(text, prefix):
    """The key=value fields of the last line of text starting with prefix
    ('benchmark ' or 'torch '), as strings; None when there is none. Items
    without '=' are skipped."""
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    if not lines:
        return None
    return dict(item.split("=", 1) for item in lines[-1][len(prefix):].split() if "=" in item)


def run(command, prefix):
    """Run a benchmark; its fields, or None after a message on stderr."""
    done = subprocess.run(command, check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    fields = parse_line(done.stdout, prefix) if done.returncode == 0 else None
    if fields is None:
        tail = "\n  ".join(done.stderr.strip().splitlines()[-3:])
        sys.stderr.write(f"trainer_bench: {' '.join(command)}: status {done.returncode}, "
                         f"no '{prefix.strip()}' line\n  {tail}\n")
    return fields


def trainer_command(args, mode):
    return [args.trainer, "--benchmark", str(args.steps), "--mode", mode,
            "--width", f"{args.width:g}", "--strides", args.strides, "--batch", str(args.batch),
            "--data", f"synthetic:{args.size}x{args.size}x{args.channels}",
            "--threads", str(args.threads), "--device", args.device,
            "--precision", args.precision]


def torch_command(args, mode):
    return [sys.executable, os.path.join(HERE, "torch_resnet.py"), "--mode", mode,
            "--batch", str(args.batch), "--size", str(args.size),
            "--channels", str(args.channels), "--width", f"{args.width:g}",
            "--strides", args.strides, "--threads", str(args.threads),
            "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--device", args.device, "--precision", args.precision]


def torch_error():
    """None when torch imports, else why not."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:  # OSError: a shared library is missing
        return str(error)
    return None


def number(fields, key):
    """fields[key] as a float ('12.5%' -> 12.5), or None when absent or not a number."""
    try:
        return float(fields[key].rstrip("%"))
    except (TypeError, KeyError, ValueError):
        return None


def ratio(a, b):
    """a / b, or None when either is unknown or b is not positive."""
    return a / b if a is not None and b is not None and b > 0 else None


def cell(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


# (header, side, key, kind, digits). side: whose fields ("c", "torch"; "both"
# for the C/torch ratio); kind: "value", "vs strided" (divided by the same
# side's strided row) or "c/torch".
def columns_for(device):
    """The table's columns; memory is the whole process's peak RSS on the
    CPU (both programs) and the device memory allocated on CUDA."""
    memory = "device_mb" if device == "cuda" else "peak_rss_mb"
    torch_memory = "peak_mem_mb" if device == "cuda" else "peak_rss_mb"
    return [
        ("C trainer img/s", "c", "images_per_s", "value", 1),
        ("PyTorch img/s", "torch", "images_per_s", "value", 1),
        ("ratio (C/torch)", "both", "images_per_s", "c/torch", 2),
        ("C step ms", "c", "step_ms", "value", 1),
        ("library share of step (%)", "c", "library_share", "value", 1),
        ("C peak MB", "c", memory, "value", 1),
        ("PyTorch peak MB", "torch", torch_memory, "value", 1),
        ("memory (C/torch)", "both", (memory, torch_memory), "c/torch", 2),
        ("time vs strided (C)", "c", "step_ms", "vs strided", 2),
        ("memory vs strided (C)", "c", memory, "vs strided", 2),
        ("time vs strided (torch)", "torch", "step_ms", "vs strided", 2),
        ("memory vs strided (torch)", "torch", torch_memory, "vs strided", 2),
    ]


def column_value(column, row, strided):
    """One cell's number; row, strided: {"c": fields, "torch": fields} of
    the mode and of strided (fields None when that run is missing)."""
    _, side, key, kind, _ = column
    if kind == "c/torch":
        c_key, torch_key = key if isinstance(key, tuple) else (key, key)
        return ratio(number(row["c"], c_key), number(row["torch"], torch_key))
    value = number(row[side], key)
    return ratio(value, number(strided[side], key)) if kind == "vs strided" else value


def print_table(modes, c_rows, t_rows, device):
    """The markdown table; c_rows / t_rows: {mode: fields or None}, or None
    when that program was not run (its columns are left out)."""
    sides = {"c"} if c_rows is not None else set()
    sides |= {"torch"} if t_rows is not None else set()
    columns = [col for col in columns_for(device)
               if col[1] in sides or (col[1] == "both" and len(sides) == 2)]
    c_rows, t_rows = c_rows or {}, t_rows or {}
    strided = {"c": c_rows.get("strided"), "torch": t_rows.get("strided")}
    print("| mode | " + " | ".join(col[0] for col in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for mode in modes:
        row = {"c": c_rows.get(mode), "torch": t_rows.get(mode)}
        print(f"| {mode} | " + " | ".join(cell(column_value(col, row, strided), col[4])
                                         for col in columns) + " |")


def print_details(modes, c_rows, t_rows):
    """Each run's own line (the trainer's sizes are its pooling layers' outputs,
    torch's the maps after the stem and each block)."""
    print()
    for mode in modes:
        c, t = (c_rows or {}).get(mode), (t_rows or {}).get(mode)
        if c:
            print("    benchmark " + " ".join(f"{k}={v}" for k, v in c.items()))
        if t:
            print("    torch " + " ".join(f"{k}={v}" for k, v in t.items()))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trainer", default=os.path.join(ROOT, "build", "resnet18"),
                        help="the C trainer binary (default: build/resnet18)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32, help="H = W of the input")
    parser.add_argument("--channels", type=int, default=3, help="input channels")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier")
    parser.add_argument("--strides", default="1,1,2,2,2", help="s0,..,s4: stem, blocks 1..4")
    parser.add_argument("--threads", type=int, default=0, help="threads for both (0: cores)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (torch)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                        help="tf32, bf16: CUDA only")
    args = parser.parse_args()
    if args.precision != "fp32" and args.device != "cuda":
        parser.error(f"--precision {args.precision} is a CUDA setting")
    args.modes = args.modes.split(",")
    if any(mode not in MODES for mode in args.modes):
        parser.error(f"--modes: each of {', '.join(MODES)}")
    args.threads = args.threads or os.cpu_count()
    return args


def main():
    args = parse_args()
    have_c = os.path.isfile(args.trainer) and os.access(args.trainer, os.X_OK)
    if not have_c:
        print(f"trainer_bench: C trainer {args.trainer} not found (build it first)")
    error = torch_error()
    if error:
        print(f"trainer_bench: torch is not importable ({error}); see bench/README.md")
    if not have_c and error:
        return 1
    if not have_c or error:
        print(f"trainer_bench: showing {'the C trainer' if error else 'PyTorch'} alone")
    print(f"batch {args.batch}, input {args.size}x{args.size}x{args.channels}, "
          f"width {args.width:g}, strides {args.strides}, {args.threads} thread(s), "
          f"{args.steps} timed steps (torch after {args.warmup} warm-up steps), "
          f"{args.device}, {args.precision}\n", flush=True)
    c_rows = ({m: run(trainer_command(args, m), "benchmark ") for m in args.modes}
              if have_c else None)
    t_rows = ({m: run(torch_command(args, m), "torch ") for m in args.modes}
              if not error else None)
    print_table(args.modes, c_rows, t_rows, args.device)
    print_details(args.modes, c_rows, t_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
