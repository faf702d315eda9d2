#!/usr/bin/env python3
"""Trains a small CNN with two DiffStride2d layers on synthetic images (CPU).

    python3 examples/torch_small_cnn.py [--steps 300] [--penalty 0.5]

The data are generated: 32x32 grey images of sinusoidal gratings, 8 classes
(4 orientations x 2 spatial frequencies), random phase, plus noise. The
network learns its weights and the strides of both DiffStride layers (the
library's stride gradients), with the library's complexity penalty
lambda * J(strides) pushing the strides up (less computation). It prints the
loss, the accuracies and the learned strides; about 10-30 s on one core.

Uses the diffstride package of this checkout (bindings/python) and the
library that package finds (set DIFFSTRIDE_LIB=lib/libdiffstride.so.0.1.0
to choose it).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings",
                                "python"))
import diffstride  # noqa: E402  (after the path to the checkout's package)
from diffstride.torch import DiffStride2d  # noqa: E402

SIZE = 32
ORIENTATIONS = 4
FREQUENCIES = (2.5, 6.0)  # cycles per image
CLASSES = ORIENTATIONS * len(FREQUENCIES)


def make_images(count, generator):
    """count synthetic images: x (count, 1, 32, 32) float32, labels (count,) int64."""
    labels = torch.randint(CLASSES, (count,), generator=generator)
    angle = (labels % ORIENTATIONS).float() * math.pi / ORIENTATIONS
    angle = angle + 0.1 * torch.randn(count, generator=generator)
    freq = torch.tensor(FREQUENCIES)[labels // ORIENTATIONS]
    phase = 2 * math.pi * torch.rand(count, generator=generator)
    grid = torch.arange(SIZE, dtype=torch.float32) / SIZE
    u = (torch.cos(angle)[:, None, None] * grid[None, :, None]
         + torch.sin(angle)[:, None, None] * grid[None, None, :])
    images = torch.sin(2 * math.pi * freq[:, None, None] * u + phase[:, None, None])
    images = images + 0.8 * torch.randn(images.shape, generator=generator)
    return images[:, None], labels


class SmallCNN(nn.Module):
    """conv-BN-ReLU, DiffStride, conv-BN-ReLU, DiffStride, conv-ReLU, mean, linear.

    x (N, 1, 32, 32) -> logits (N, CLASSES); the feature maps shrink as the
    two DiffStride layers' strides grow.
    """

    def __init__(self, strides=(1.5, 1.5), width=16):
        super().__init__()
        self.pools = nn.ModuleList([DiffStride2d(strides), DiffStride2d(strides)])
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), self.pools[0],
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            self.pools[1],
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, CLASSES))

    def forward(self, x):
        return self.body(x)

    def strides(self):
        """The strides of the DiffStride layers, (layers, 2) numpy float32."""
        return np.stack([p.strides.detach().numpy() for p in self.pools])


def add_complexity_penalty(model, weight):
    """Adds weight * dJ/dstrides to the stride gradients; returns J."""
    value, grad = diffstride.complexity_penalty(model.strides())
    for pool, g in zip(model.pools, grad):
        pool.strides.grad += weight * torch.from_numpy(g)
    return value


def accuracy(model, x, labels):
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == labels).float().mean().item()
    model.train()
    return acc


def train(args):
    """Trains and prints progress every args.every steps; returns the final test accuracy."""
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    x_test, y_test = make_images(1024, gen)
    model = SmallCNN()
    strides = [p.strides for p in model.pools]
    weights = [p for n, p in model.named_parameters() if not n.endswith("strides")]
    optimizer = torch.optim.Adam([{"params": weights, "lr": args.lr},
                                  {"params": strides, "lr": args.stride_lr}])
    loss_fn = nn.CrossEntropyLoss()
    print(f"libdiffstride {diffstride.version()} ({diffstride.library_path}); "
          f"{CLASSES} classes, {args.steps} steps of {args.batch}, penalty {args.penalty}")
    for step in range(1, args.steps + 1):
        x, labels = make_images(args.batch, gen)
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, labels)
        loss.backward()
        penalty = add_complexity_penalty(model, args.penalty)
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            train_acc = (logits.argmax(1) == labels).float().mean().item()
            s = " ".join(f"({a:.2f}, {b:.2f})" for a, b in model.strides())
            print(f"step {step:4d}  loss {loss.item():.3f}  J {penalty:.3f}  "
                  f"batch acc {train_acc:.2f}  test acc {accuracy(model, x_test, y_test):.3f}  "
                  f"strides {s}")
    return accuracy(model, x_test, y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam, weights")
    parser.add_argument("--stride-lr", type=float, default=2e-2, help="Adam, strides")
    parser.add_argument("--penalty", type=float, default=0.5,
                        help="lambda of the complexity penalty lambda * J(strides)")
    parser.add_argument("--every", type=int, default=50, help="print every N steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    acc = train(args)
    print(f"final test accuracy {acc:.3f} (chance {1 / CLASSES:.3f})")


if __name__ == "__main__":
    main()
