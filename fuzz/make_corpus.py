#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/NAME/), small
valid inputs that reach each entry point / each reader path:

  api    one input per operation of fuzz/api.c, encoded as its decoder reads
         them (valid small calls, a few with NHWC, threads, a training pair);
  idx    tiny IDX image/label pairs, plain and gzip'ed;
  cifar  one- and two-record CIFAR-10 / CIFAR-100 files;
  cli    typical command lines of the trainer;
  checkpoint  edits of the target's built-in checkpoints, and checkpoints
         written by the trainer itself (--checkpoint NAME=FILE copies one in
         as NAME; docs/fuzzing.md has the trainer commands that wrote the
         committed ones).

Usage: fuzz/make_corpus.py [--checkpoint NAME=FILE]... [OUTDIR (default fuzz/corpus)]
"""
import gzip
import os
import struct
import sys


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- api
# Encoders mirroring fuzz/api.c's decoders.
def dim(v):  # gen_dim: 2..33 from one byte
    assert 2 <= v <= 33
    return bytes([8 * (v - 2) + 3])


def count(v):  # gen_count: 1..5
    assert 1 <= v <= 5
    return bytes([8 * (v - 1) + 2])


def flt(x):  # gen_float: 1 + j/8 for j in 0..31 from one byte, else raw bits
    j = (x - 1.0) * 8
    if j == int(j) and 0 <= j <= 31:
        j = int(j)
        for k in range(8 * j, 8 * j + 8):
            if k % 6 >= 4:
                return bytes([k])
    return bytes([1]) + struct.pack("<f", x)


def enum(v):  # gen_enum: 0 or 1 from one byte, else an int8
    if v in (0, 1):
        return bytes([11 if v else 3])
    return bytes([2, v & 0xFF])


def desc(R=None, cropping=None, shared=None, lower=None, upper=None, layout=None, null=False):
    # gen_desc: a flag byte (bit k: field k follows), then the fields in order
    fields = ((R, flt), (cropping, enum), (shared, enum), (lower, flt), (upper, flt), (layout, enum))
    f, out = 0, b""
    for bit, (value, encode) in enumerate(fields):
        if value is not None:
            f |= 1 << bit
            out += encode(value)
    if null:
        f |= 0xC0
    return bytes([f]) + out


def strides(*v):
    return b"\0" + b"".join(flt(x) for x in v)


RIGHT = b"\0"  # gen_out: the right output size


def ctx(threads=None, fresh=False):
    k = 6 if fresh else 0
    tail = b""
    if threads is not None:
        k |= 0x10
        tail = bytes([1, threads])
    return bytes([k]) + tail


def fill(mode=0x00, seed=1):
    return bytes([mode]) + struct.pack("<I", seed)


def api_seeds():
    s = {}
    call = lambda d, n, c, h, w, st: d + count(n) + count(c) + dim(h) + dim(w) + st + RIGHT
    s["sizes2d"] = b"\x00" + call(desc(), 1, 1, 16, 16, strides(2, 2)) + ctx() + b"\0\0"
    s["sizes2d_shared"] = b"\x00" + call(desc(shared=1, R=2.0), 2, 3, 14, 14, strides(1.5)) + ctx() + b"\0\0"
    s["forward2d"] = b"\x01" + call(desc(), 2, 2, 16, 16, strides(2, 2)) + ctx() + b"\x04" + fill(0x00, 7)
    s["forward2d_nhwc"] = (b"\x01" + call(desc(layout=1), 2, 3, 16, 12, strides(2, 1.5)) + ctx(threads=2) + b"\x04"
                           + fill(0x03, 9))
    s["forward2d_nocrop"] = b"\x01" + call(desc(cropping=0, R=3.0), 1, 1, 9, 11, strides(1.5, 2)) + ctx() + b"\x00" + fill(0x10, 3)
    s["backward2d"] = (b"\x02" + call(desc(), 2, 2, 16, 16, strides(2, 2)) + ctx(threads=2) + b"\x10"
                       + fill(0x00, 5) + fill(0x00, 6))
    s["backward2d_nhwc_limits"] = (b"\x02" + call(desc(layout=1, lower=1.5, upper=3.0), 1, 3, 20, 18, strides(2.5, 1.25))
                                   + ctx() + b"\x00" + fill(0x01, 5) + fill(0x02, 6))
    s["training2d"] = (b"\x03" + call(desc(), 2, 2, 16, 16, strides(2, 2)) + ctx() + b"\x00" + b"\x04" + fill(0x00, 11)
                       + b"\x00" + fill(0x00, 12) + b"\x00")
    s["training2d_changed"] = (b"\x03" + call(desc(layout=1), 1, 3, 12, 12, strides(2, 2)) + ctx() + b"\x00" + b"\x04"
                               + fill(0x00, 11) + b"\x09" + call(desc(), 1, 1, 12, 12, strides(3, 3)) + ctx()
                               + fill(0x00, 12) + b"\x00")
    s["training2d_forged"] = (b"\x03" + call(desc(), 1, 2, 10, 10, strides(2, 2)) + ctx() + b"\x00" + b"\x04"
                              + fill(0x00, 1) + b"\x40\x01\x08\x00\x07" + fill(0x00, 2) + b"\x00")
    call1 = lambda d, n, c, l, st: d + count(n) + count(c) + dim(l) + b"\x00" + flt(st) + RIGHT
    s["sizes1d"] = b"\x04" + call1(desc(), 2, 2, 32, 2.0) + ctx() + b"\0\0"
    s["forward1d"] = b"\x05" + call1(desc(layout=1), 2, 3, 30, 2.5) + ctx() + b"\x00" + fill(0x00, 4)
    s["backward1d"] = b"\x06" + call1(desc(), 2, 2, 24, 2.0) + ctx() + b"\x00" + fill(0x00, 4) + fill(0x00, 5)
    s["training1d"] = (b"\x06" + call1(desc(), 3, 1, 24, 2.0) + ctx() + b"\x10" + fill(0x00, 4) + fill(0x00, 5)
                       + b"\x04")
    # spectral: f, h, w, n, c, layout, strides, then the size, ctx, tensors
    spec = lambda f, h, w, n, c, lay, sh, sw: (bytes([f]) + dim(h) + dim(w) + count(n) + count(c) + bytes([0, lay])
                                             + b"\x00" + flt(sh) + flt(sw) + RIGHT)
    s["spectral_forward"] = b"\x07" + spec(0x02, 16, 16, 2, 2, 0, 2, 2) + ctx() + fill(0x00, 3)
    s["spectral_backward_nhwc"] = b"\x07" + spec(0x00, 15, 17, 1, 3, 1, 1.5, 2.5) + ctx() + fill(0x00, 3)
    s["penalty"] = b"\x08\x08\x04" + b"".join(flt(x) for x in (2, 2, 1.5, 1.5, 2, 3, 1, 1)) + b"".join(
        flt(x) for x in (1, 2, 0.5 + 0.5, 4))
    s["penalty_none"] = b"\x08\x00\x00"
    s["context"] = b"\x09\x00" + b"\0\0\0\0" + enum(2) + enum(0) + b"\x00\x00\x00\x00"
    s["context_cuda"] = b"\x09\x01" + b"\1\0\0\0" + enum(0) + enum(1) + b"\xfb\xff\xff\xff"
    # several operations in one input
    s["sequence"] = s["forward2d"] + s["training1d"] + s["penalty"]
    return s


# ---------------------------------------------------------------- idx
def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 37) & 255 for i in range(n * h * w))


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_input(flags, images, labels):
    return bytes([flags]) + struct.pack("<I", len(images)) + images + labels


def idx_seeds():
    img, lab = idx_images(3, 4, 5), idx_labels([0, 9, 3])
    return {
        "plain": idx_input(0x00, img, lab),
        "gzip_files": idx_input(0x00, gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)),
        "gzip_here_dataload": idx_input(0x07 | 0x08 | 0x10 | 0x20, img, lab),
        "one_image": idx_input(0x04, idx_images(1, 2, 2), idx_labels([1])),
    }


# --------------------------------------------------------------- cifar
def cifar_record(label_bytes, label, seed):  # the last label byte is the label
    return bytes(label_bytes - 1) + bytes([label]) + bytes((i * seed + 3) & 255 for i in range(3072))


def cifar_seeds():
    r10a, r10b = cifar_record(1, 3, 7), cifar_record(1, 9, 11)
    r100 = cifar_record(2, 42, 5)
    return {
        "cifar10_one": b"\x00" + r10a,
        "cifar10_two_files_dataload": b"\x0a" + struct.pack("<I", len(r10a)) + r10a + r10b,
        "cifar100_one_dataload": b"\x09" + r100,
    }


# ----------------------------------------------------------------- cli
def cli_seeds():
    lines = {
        "default": [],
        "demo": ["--mode", "diffstride", "--width", "0.125", "--epochs", "2", "--train-subset", "50000",
                 "--lr", "0.02,30:0.1,550:0.02,700:0.004", "--pad", "0", "--no-flip", "--label-smoothing", "0",
                 "--out", "runs/demo"],
        "synthetic": ["--data", "synthetic:8x8x1:4", "--mode", "spectral", "--strides", "1,1,2,2,2",
                      "--batch", "16", "--threads", "2", "--seed", "7", "--quiet"],
        "eval": ["--eval", "runs/demo/checkpoint.bin", "--device", "cpu", "--precision", "fp32"],
        "resume_equals": ["--resume=ckpt.bin", "--mixup=0.2", "--lambda=0.01", "--momentum=0.9",
                          "--weight-decay=5e-4", "--smoothness=4", "--benchmark=3", "--test-subset=100"],
        "help": ["--help"],
    }
    return {k: b"\n".join(a.encode() for a in v) for k, v in lines.items()}


# ---------------------------------------------------------- checkpoint
def checkpoint_edit_seeds():
    """The edit form of fuzz/checkpoint.c: a base (0 diffstride, 1 spectral,
    2 strided), then edits (kind, length - 1, operands)."""
    return {
        "edit_diffstride": b"\x00",
        "edit_spectral_mode_field": b"\x01" + bytes([0, 0, 12, 1]),   # header byte 12 (the mode) := 1
        "edit_strided_append": b"\x02" + bytes([3, 3, 1, 2, 3, 4]),   # 4 bytes appended
    }


def main():
    args = sys.argv[1:]
    ckpts = []
    while args[:1] == ["--checkpoint"]:
        ckpts.append(args[1].split("=", 1))
        args = args[2:]
    out = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    for name, data in api_seeds().items():
        write(os.path.join(out, "api"), name, data)
    for name, data in idx_seeds().items():
        write(os.path.join(out, "idx"), name, data)
    for name, data in cifar_seeds().items():
        write(os.path.join(out, "cifar"), name, data)
    for name, data in cli_seeds().items():
        write(os.path.join(out, "cli"), name, data)
    for name, data in checkpoint_edit_seeds().items():
        write(os.path.join(out, "checkpoint"), name, data)
    for name, path in ckpts:
        with open(path, "rb") as f:
            write(os.path.join(out, "checkpoint"), name, f.read())


if __name__ == "__main__":
    main()
