#!/usr/bin/env python3
"""Times training steps of a pre-activation ResNet-18 in plain PyTorch, with
strided convolutions, spectral pooling or DiffStride (bench/torch_layer.py).

    python3 bench/torch_resnet.py [--mode strided|spectral|diffstride|all]
        [--batch 128] [--size 32] [--channels 3] [--classes 10] [--width 1.0]
        [--strides 1,1,2,2,2] [--threads T] [--steps 10] [--warmup 2]
        [--device cpu|cuda] [--precision fp32|tf32|bf16] [--channels-last]
        [--profile] [--csv]

The network of docs/trainer.md, "The network" (as the C trainer in
examples/resnet18 builds it), NCHW, trained on one random batch (fixed seed):
softmax cross-entropy with label smoothing 0.2, SGD lr 0.1, momentum 0.9,
weight decay 5e-4 on the conv and linear weights only. After --warmup steps,
--steps steps (forward, loss, backward, optimizer step) are timed as a whole.
One line per mode:

    torch mode=M batch=B size=S width=W threads=T step_ms=... images_per_s=...
          peak_mem_mb=... [peak_rss_mb=...] [pool_ms=... pool_share=...] sizes=HxW,...

sizes: the feature maps after the stem and after each of the 4 blocks (of the
last step). peak_mem_mb (MiB): on CUDA torch.cuda.max_memory_allocated over
the warm-up and timed steps (model, batch and optimizer state included); on
the CPU how much those steps raised the process's peak RSS (ru_maxrss), so
--mode all runs each mode in a fresh process of this script. peak_rss_mb
(CPU only): the process's whole peak RSS, as the C trainer reports its own,
for comparing the two. --profile then
runs --steps more steps with the pooling layers timed (forward, and backward
with the stride gradient; the device synchronized around each) and adds
pool_ms per step and pool_share = pool_ms / step_ms in percent.
Exits with status 3 when torch cannot be imported, 4 when --device cuda is
asked and torch.cuda.is_available() is False.
"""
import argparse
import contextlib
import csv
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch
    from torch import nn
    import torch.nn.functional as F
except (ImportError, OSError) as error:  # OSError: a shared library is missing
    sys.stderr.write(f"torch_resnet: torch is not importable ({error}); see bench/README.md\n")
    sys.exit(3)

from torch_layer import DiffStride, spectral_pool  # noqa: E402

MODES = ("strided", "spectral", "diffstride")
BASE_WIDTHS = (64, 64, 128, 256, 512)  # stem, blocks 1..4
LR, MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING = 0.1, 0.9, 5e-4, 0.2


# ------------------------------------------------------------------ timing

class Clock:
    """Sums the wall time of `with clock:` blocks; on CUDA the device is
    synchronized at both ends so that the queued work is counted."""

    def __init__(self, device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.seconds = 0.0

    def __enter__(self):
        self.sync()
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.sync()
        self.seconds += time.perf_counter() - self.start


class TimedPool(torch.autograd.Function):
    """layer(x) as one autograd node, so that the clock times its forward and
    its whole backward (dx and the layer's parameter gradients) each as one
    block. x (N,C,H,W) -> y (N,C,h',w'); params: the layer's parameters."""

    @staticmethod
    def forward(ctx, x, layer, clock, *params):
        inner = x.detach().requires_grad_()
        with torch.enable_grad(), clock:
            y = layer(inner)
        ctx.graph, ctx.clock = (inner, y, params), clock
        return y.detach()

    @staticmethod
    def backward(ctx, dy):
        inner, y, params = ctx.graph
        del ctx.graph
        with ctx.clock:
            grads = torch.autograd.grad(y, (inner,) + params, dy)
        return (grads[0], None, None) + grads[1:]


# ----------------------------------------------------------------- network

def widths(w):
    """Channels (c0..c4) of the stem and the 4 blocks for width multiplier w."""
    return [max(1, round(w * c)) for c in BASE_WIDTHS]


def conv3x3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def conv1x1(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class SpectralPool(nn.Module):
    """Fixed spectral pooling by (s, s): (N,C,H,W) -> (N,C,h',w')."""

    def __init__(self, stride):
        super().__init__()
        self.strides = (float(stride), float(stride))

    def forward(self, x):
        return spectral_pool(x, self.strides)


class Pool(nn.Module):
    """A pooling layer run in float32 outside autocast: (N,C,H,W) ->
    (N,C,h',w') float32. With a Clock in self.clock (--profile) its forward
    and backward are timed."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.clock = None

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            if self.clock is None:
                return self.layer(x.float())
            return TimedPool.apply(x.float(), self.layer, self.clock, *self.layer.parameters())


def make_pool(mode, stride):
    """The pooling layer of mode ('spectral' or 'diffstride') for stride s."""
    if mode == "diffstride":
        return Pool(DiffStride((float(stride), float(stride)), smoothness=4.0, cropping=True,
                               shared=False, lower=1.0))
    return Pool(SpectralPool(stride))


class PreActLayer(nn.Module):
    """One pre-activation residual layer: (N,c_in,H,W) -> (N,c_out,H',W').

    project: the shortcut is a 1x1 conv (else the identity, with c_in ==
    c_out and stride 1); conv_stride: the stride of the first conv and of the
    shortcut conv (strided mode); pool (projecting layers only): one pooling
    layer applied after the first conv and after the shortcut conv."""

    def __init__(self, c_in, c_out, project, conv_stride=1, pool=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv3x3(c_in, c_out, conv_stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.shortcut = conv1x1(c_in, c_out, conv_stride) if project else None
        self.pool = pool

    def pooled(self, x):
        return x if self.pool is None else self.pool(x)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        main = self.conv2(F.relu(self.bn2(self.pooled(self.conv1(a)))))
        skip = x if self.shortcut is None else self.pooled(self.shortcut(a))
        return main + skip


def block(mode, b, c_in, c_out, stride):
    """Block b (1..4): two residual layers, (N,c_in,H,W) -> (N,c_out,H',W')."""
    project = b >= 2 or stride != 1 or c_in != c_out
    pools = ((mode == "diffstride" and (b >= 2 or stride != 1))
             or (mode == "spectral" and stride != 1))
    conv_stride = int(stride) if mode == "strided" else 1
    first = PreActLayer(c_in, c_out, project, conv_stride,
                        make_pool(mode, stride) if pools else None)
    return nn.Sequential(first, PreActLayer(c_out, c_out, project=False))


class PreActResNet18(nn.Module):
    """(N,channels,H,W) -> logits (N,classes). strides: (s0, .., s4) for the
    stem and the 4 blocks; self.sizes: the (h, w) after the stem and after
    each block in the last forward."""

    def __init__(self, mode, width, strides, channels, classes):
        super().__init__()
        c = widths(width)
        self.stem = conv3x3(channels, c[0], int(strides[0]) if mode == "strided" else 1)
        pools = mode == "diffstride" or (mode == "spectral" and strides[0] != 1)
        self.stem_pool = make_pool(mode, strides[0]) if pools else nn.Identity()
        self.blocks = nn.ModuleList(block(mode, b, c[b - 1], c[b], strides[b])
                                    for b in range(1, 5))
        self.bn = nn.BatchNorm2d(c[4])
        self.fc = nn.Linear(c[4], classes)
        self.sizes = []

    def forward(self, x):
        x = self.stem_pool(self.stem(x))
        self.sizes = [tuple(x.shape[-2:])]
        for layers in self.blocks:
            x = layers(x)
            self.sizes.append(tuple(x.shape[-2:]))
        return self.fc(F.relu(self.bn(x)).mean(dim=(2, 3)))  # (N,c4) -> (N,classes)


# ----------------------------------------------------------------- training

def make_optimizer(model):
    """SGD; weight decay on the conv and linear weights only (not BatchNorm,
    biases or strides)."""
    decay = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    decay_ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    return torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY},
                            {"params": rest, "weight_decay": 0.0}], lr=LR, momentum=MOMENTUM)


def precision_context(device, precision):
    """bf16: autocast (the convs and the linear layer in bfloat16; Pool keeps
    the pooling layers in float32); else no context."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(model, optimizer, x, labels, device, precision):
    """A function running one training step on x (N,C,H,W), labels (N,)."""
    def step():
        optimizer.zero_grad(set_to_none=True)
        with precision_context(device, precision):
            loss = F.cross_entropy(model(x), labels, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        optimizer.step()
    return step


def synthetic_batch(args, device):
    """Random inputs (N,C,S,S) and labels (N,), fixed seed."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.channels, args.size, args.size, generator=gen)
    labels = torch.randint(args.classes, (args.batch,), generator=gen)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(device), labels.to(device)


def memory_mark(device):
    """Start of the memory measurement: CUDA: resets the peak; CPU: the peak
    RSS so far (KiB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_mem_mb(device, mark):
    """MiB: CUDA: the peak allocated since the mark; CPU: the rise of the
    peak RSS since the mark."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - mark) / 1024


def pool_ms(model, step, steps, device):
    """Mean ms per step in the pooling layers' forward and backward, over
    `steps` more steps with their clock on (0 without pooling layers)."""
    pools = [m for m in model.modules() if isinstance(m, Pool)]
    if not pools:
        return 0.0
    clock = Clock(device)
    for pool in pools:
        pool.clock = clock
    for _ in range(steps):
        step()
    for pool in pools:
        pool.clock = None
    return clock.seconds * 1e3 / steps


def run_mode(args, mode, device):
    """Build, warm up and time one mode; returns the result line's fields."""
    torch.manual_seed(0)
    model = PreActResNet18(mode, args.width, args.strides, args.channels, args.classes)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    step = make_step(model, make_optimizer(model), *synthetic_batch(args, device),
                     device, args.precision)
    mark = memory_mark(device)
    for _ in range(args.warmup):
        step()
    clock = Clock(device)
    with clock:
        for _ in range(args.steps):
            step()
    step_ms = clock.seconds * 1e3 / args.steps
    result = {"mode": mode, "batch": args.batch, "size": args.size, "width": f"{args.width:g}",
              "threads": torch.get_num_threads(), "step_ms": f"{step_ms:.1f}",
              "images_per_s": f"{args.batch * 1e3 / step_ms:.1f}",
              "peak_mem_mb": f"{peak_mem_mb(device, mark):.1f}"}
    if device.type == "cpu":
        result["peak_rss_mb"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}"
    if args.profile:
        pool = pool_ms(model, step, args.steps, device)
        result.update(pool_ms=f"{pool:.1f}", pool_share=f"{100 * pool / step_ms:.1f}")
    result["sizes"] = ",".join(f"{h}x{w}" for h, w in model.sizes)
    return result


# ---------------------------------------------------------------- driver

def parse_line(text):
    """The fields of the last line of text that starts with 'torch ', or None."""
    lines = [line for line in text.splitlines() if line.startswith("torch ")]
    return dict(item.split("=", 1) for item in lines[-1].split()[1:]) if lines else None


def run_child(mode):
    """Run this script for one mode in a fresh process (same options but
    --csv); returns its fields, or None after a message."""
    argv = [a for a in sys.argv[1:] if a != "--csv"] + ["--mode", mode]
    child = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv, check=False,
                           stdout=subprocess.PIPE, text=True)
    result = parse_line(child.stdout) if child.returncode == 0 else None
    if result is None:
        sys.stderr.write(f"torch_resnet: mode {mode} failed (status {child.returncode})\n")
    return result


def make_printer(as_csv):
    """emit(fields): key=value lines, or CSV with a header before the first."""
    writer = csv.writer(sys.stdout) if as_csv else None
    header = []

    def emit(fields):
        if writer is None:
            print("torch " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
            return
        if not header:
            header.extend(fields)
            writer.writerow(header)
        writer.writerow(fields.values())
        sys.stdout.flush()
    return emit


def parse_strides(text):
    """'1,1,2,2,2' -> [1.0, 1.0, 2.0, 2.0, 2.0]; ValueError unless 5 numbers >= 1."""
    strides = [float(s) for s in text.split(",")]
    if len(strides) != 5 or min(strides) < 1:
        raise ValueError("--strides needs 5 numbers >= 1 (stem, blocks 1..4)")
    return strides


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--mode", choices=MODES + ("all",), default="all")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32, help="H = W of the input")
    parser.add_argument("--channels", type=int, default=3, help="input channels")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier")
    parser.add_argument("--strides", default="1,1,2,2,2", help="s0,..,s4: stem, blocks 1..4")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: cores)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                        help="tf32: CUDA only; bf16: autocast (pooling layers in float32)")
    parser.add_argument("--channels-last", action="store_true",
                        help="model and input in torch.channels_last")
    parser.add_argument("--profile", action="store_true", help="also time the pooling layers")
    parser.add_argument("--csv", action="store_true", help="CSV instead of key=value lines")
    args = parser.parse_args()
    try:
        args.strides = parse_strides(args.strides)
    except ValueError as error:
        parser.error(str(error))
    if args.mode in ("strided", "all") and any(s != int(s) for s in args.strides):
        parser.error("strided mode needs integer strides (use --mode spectral or diffstride)")
    if min(args.batch, args.size, args.channels, args.classes, args.steps) < 1 or args.width <= 0:
        parser.error("--batch, --size, --channels, --classes, --steps and --width must be > 0")
    if args.precision == "tf32" and args.device != "cuda":
        parser.error("--precision tf32 is a CUDA setting")
    return args


def open_device(args):
    """torch.device for --device, with --precision's TF32 switches set; None
    (after a message) when CUDA is asked and unusable."""
    if args.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        sys.stderr.write(f"torch_resnet: --device cuda, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})\n")
        return None
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    return torch.device("cuda")


def main():
    args = parse_args()
    emit = make_printer(args.csv)
    if args.mode == "all":
        failed = 0
        for mode in MODES:
            result = run_child(mode)
            failed += result is None
            if result is not None:
                emit(result)
        return 1 if failed else 0
    device = open_device(args)
    if device is None:
        return 4
    torch.set_num_threads(args.threads or os.cpu_count())
    emit(run_mode(args, args.mode, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
