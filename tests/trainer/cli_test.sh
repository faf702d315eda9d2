#!/bin/sh
# The trainer's command line: a short run writes its log, step log,
# checkpoint and summary; a second process with the same seed repeats it bit
# for bit; --resume continues to the next epoch; --eval
# reads the checkpoint back; --benchmark prints its line; bad flags and
# missing files stop it with a message naming them and exit status != 0;
# --device cuda runs or says why not.
# Usage: tests/trainer/cli_test.sh build/resnet18
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 count=0
ok() { count=$((count + 1)); if "$@"; then :; else fails=$((fails + 1)); echo "FAIL: $*"; fi; }
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in $1:"; sed 's/^/    /' "$1"; return 1; }; }
fails_with() { # message args...
  msg=$1; shift
  if "$bin" "$@" > "$dir/out" 2>&1; then echo "  '$*' succeeded"; return 1; fi
  has "$dir/out" "$msg"
}

# --device cuda: runs where there is a GPU and a CUDA backend, else says why.
cuda_runs_or_says_why() {
  if "$bin" $common --benchmark 1 --device cuda > "$dir/out" 2>&1; then has "$dir/out" "device=cuda"
  else has "$dir/out" "--device cuda: "; fi
}

common="--data synthetic:16x16x2:3 --width 0.0625 --strides 1.7,1,2.3,2.2,2.6 --batch 64 --lr 0.05 --threads 2 --out $dir/run"
ok "$bin" $common --epochs 1 > "$dir/train.txt" 2>&1
ok has "$dir/train.txt" "epoch 1/1"
ok has "$dir/train.txt" "learned strides -> sizes:"
ok has "$dir/train.txt" "final test accuracy"
ok test -s "$dir/run/checkpoint.bin"
ok test ! -e "$dir/run/checkpoint.bin.tmp"
ok has "$dir/run/log.csv" "epoch,step,lr,train_loss"
ok test "$(wc -l < "$dir/run/log.csv")" -eq 2
ok has "$dir/run/steps.csv" "step,loss,stride0_h"
# a second process with the same seed: the same run (timings aside)
ok "$bin" $common --epochs 1 --out "$dir/again" > /dev/null 2>&1
ok cmp "$dir/run/steps.csv" "$dir/again/steps.csv"
ok test "$(cut -d, -f1-7,11- "$dir/run/log.csv")" = "$(cut -d, -f1-7,11- "$dir/again/log.csv")"
ok cmp "$dir/run/checkpoint.bin" "$dir/again/checkpoint.bin"
ok "$bin" $common --epochs 2 --resume "$dir/run/checkpoint.bin" > "$dir/resume.txt" 2>&1
ok has "$dir/resume.txt" "epoch 2/2"
ok test "$(wc -l < "$dir/run/log.csv")" -eq 3
ok "$bin" --data synthetic:16x16x2:3 --eval "$dir/run/checkpoint.bin" > "$dir/eval.txt" 2>&1
ok has "$dir/eval.txt" "epoch 2, diffstride, test accuracy"
ok "$bin" $common --benchmark 1 > "$dir/bench.txt" 2>&1
ok has "$dir/bench.txt" "benchmark mode=diffstride device=cpu batch=64"
ok fails_with "--width: bad value 'x'" --width x
ok fails_with "--mode: bad value 'pool'" --mode pool
ok fails_with "--strides: bad value '1,2'" --strides 1,2
ok fails_with "unrecognized option" --nonsense
ok fails_with "whole strides" $common --mode strided --strides 1,1,1.5,2,2
ok fails_with "cannot open" --data cifar10:"$dir/none"
ok fails_with "trained on 16x16x2 images with 3 classes, not on synthetic" --data synthetic:32x32x3 --eval "$dir/run/checkpoint.bin"
ok fails_with "--device tpu: expected cpu" --device tpu
ok fails_with "--precision tf32: the CPU backend computes in fp32 only" $common --precision tf32
ok fails_with "--precision: bad value 'fp16'" --precision fp16
ok cuda_runs_or_says_why
ok fails_with "learning-rate schedule" $common --lr 0.1,5
echo "cli_test: $((count - fails))/$count passed"
[ "$fails" -eq 0 ]
