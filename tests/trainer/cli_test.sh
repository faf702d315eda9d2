#!/bin/sh
# The trainer's command line: a short run writes its log, step log,
# checkpoint and summary; a second process with the same seed repeats it bit
# for bit; --resume continues to the next epoch; --eval
# reads the checkpoint back; --benchmark prints its line; bad flags and
# missing files stop it with a message naming them and exit status != 0;
# --device cuda runs or says why not. A run of 2 steps plots; a deep --out
# is used whole; gnuplot runs in --out with no shell, whatever its name;
# past a file size limit the run stops with the reason and keeps the last
# good checkpoint. Under a pipe or a log (stderr not a terminal) the run
# prints plain progress lines every --progress seconds, and none with --quiet.
# Usage: tests/trainer/cli_test.sh build/resnet18
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # absolute: some tests run elsewhere
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 count=0
ok() { count=$((count + 1)); if "$@"; then :; else fails=$((fails + 1)); echo "FAIL: $*"; fi; }
has() { grep -qF -- "$2" "$1" || { echo "  '$2' not in $1:"; sed 's/^/    /' "$1"; return 1; }; }
lacks() { ! grep -qF -- "$2" "$1" || { echo "  '$2' in $1:"; sed 's/^/    /' "$1"; return 1; }; }
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

# Past a file size limit (ulimit -f, in 512- or 1024-byte blocks: below
# the checkpoint's 350 KB either way) writing the checkpoint fails with
# EFBIG: the run says so and stops with status 1, not killed by SIGXFSZ,
# and the previous checkpoint stays as it was.
size_limit_keeps_checkpoint() {
  cp -r "$dir/run" "$dir/limit" && cp "$dir/run/checkpoint.bin" "$dir/saved.bin" || return 1
  (ulimit -f 100; "$bin" $quick --epochs 3 --resume "$dir/limit/checkpoint.bin" --out "$dir/limit" \
    > "$dir/limit.txt" 2>&1; echo $? > "$dir/limit.rc")
  [ "$(cat "$dir/limit.rc")" = 1 ] || { echo "  exit status $(cat "$dir/limit.rc"), not 1"; return 1; }
  has "$dir/limit.txt" "write $dir/limit/checkpoint.bin.tmp: File too large" &&
    cmp "$dir/saved.bin" "$dir/limit/checkpoint.bin" && test ! -e "$dir/limit/checkpoint.bin.tmp"
}

# gnuplot, faked: it records where it ran and its arguments. The trainer
# must spawn it in the output directory on plot.gp, with no shell: a name
# with quotes and semicolons runs nothing.
gnuplot_gets_no_shell() {
  mkdir "$dir/bin" "$dir/work" || return 1
  printf '#!/bin/sh\n{ pwd -P; echo "$@"; } > gnuplot.called\n' > "$dir/bin/gnuplot" && chmod +x "$dir/bin/gnuplot"
  evil="x';touch PWNED;'"
  (cd "$dir/work" && PATH="$dir/bin:$PATH" "$bin" $quick --out "$evil" > "$dir/evil.txt" 2>&1)
  test ! -e "$dir/work/PWNED" || { echo "  the output directory's name ran a command"; return 1; }
  called=$(cat "$dir/work/$evil/gnuplot.called") || return 1
  test "$called" = "$(cd "$dir/work/$evil" && pwd -P)
plot.gp" || { echo "  gnuplot ran as: $called"; return 1; }
  lacks "$dir/work/$evil/plot.gp" "PWNED" && has "$dir/evil.txt" "plot x';touch PWNED;'/training.png"
}

# A path longer than the trainer can use is refused, not cut short.
long_out_refused() { fails_with "--out: a directory name of 5000 bytes: at most 4032" --out "$(printf '%05000d' 0)"; }

# A run of 2 steps into a directory 3500 bytes deep: every output there (the
# path used whole), a step row after each step to plot, and the plot where
# gnuplot is installed.
short_deep_run_plots() {
  deep=$dir
  while [ ${#deep} -lt 3500 ]; do deep=$deep/ddddddddddddddddddddddddddddddddddddddddddddddddd; done
  "$bin" $quick --out "$deep" > "$dir/short.txt" 2>&1 || { sed 's/^/    /' "$dir/short.txt"; return 1; }
  test -s "$deep/checkpoint.bin" || { echo "  no checkpoint.bin in the 3500-byte --out"; return 1; }
  rows=$(($(wc -l < "$deep/steps.csv") - 1))
  test "$rows" -eq 2 || { echo "  $rows rows in steps.csv after 2 steps"; return 1; }
  command -v gnuplot > /dev/null || { echo "  (gnuplot not installed: the plot itself not checked)"; return 0; }
  test -s "$deep/training.png" && lacks "$dir/short.txt" "no plot"
}

common="--data synthetic:16x16x2:3 --width 0.0625 --strides 1.7,1,2.3,2.2,2.6 --batch 64 --lr 0.05 --threads 2 --train-subset 640 --out $dir/run"
quick="--data synthetic:16x16x2:3 --width 0.0625 --batch 32 --train-subset 64 --test-subset 64 --threads 2 --quiet"
ok "$bin" $common --epochs 1 --progress 0.001 > "$dir/train.txt" 2> "$dir/progress.txt"
ok has "$dir/train.txt" "epoch 1/1"
ok has "$dir/progress.txt" "epoch 1: 128/640 images, loss "
ok has "$dir/progress.txt" "epoch 1: 576/640 images, loss "
ok lacks "$dir/progress.txt" "[==="
ok has "$dir/train.txt" "learned strides -> sizes:"
ok has "$dir/train.txt" "final test accuracy"
ok test -s "$dir/run/checkpoint.bin"
ok test ! -e "$dir/run/checkpoint.bin.tmp"
ok has "$dir/run/log.csv" "epoch,step,lr,train_loss"
ok test "$(wc -l < "$dir/run/log.csv")" -eq 2
ok has "$dir/run/steps.csv" "step,loss,stride0_h"
ok size_limit_keeps_checkpoint
# a second process with the same seed: the same run (timings aside)
ok "$bin" $common --epochs 1 --out "$dir/again" --quiet > /dev/null 2> "$dir/quiet.txt"
ok test ! -s "$dir/quiet.txt"
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
ok fails_with "--lr: bad value '0.1,5'" $common --lr 0.1,5
# every numeric flag whole, finite and in range
for v in abc -1 nan 1x 18446744073709551616; do ok fails_with "--seed: bad value '$v'" --seed "$v"; done
ok fails_with "--lr: bad value 'inf'" --lr inf
ok fails_with "--progress: bad value '0': expected a finite number in (0, 86400]" --progress 0
ok fails_with "--momentum: bad value '-0.5': expected a finite number in [0, 1)" --momentum -0.5
ok fails_with "--lambda: bad value '-1': expected a finite number >= 0" --lambda -1
ok fails_with "--threads: bad value '100000': expected a whole number in [1, 1024]" --threads 100000
ok fails_with "--check-every: bad value '-1': expected a whole number in [0, 1000000]" --check-every -1
ok fails_with "--epochs: bad value '1000000000': expected a whole number in [1, 100000]" --epochs 1000000000
ok fails_with "--strides: bad value '1,1e10,2,2,2'" --mode strided --strides 1,1e10,2,2,2
ok fails_with "synthetic:3000x3000x3: images of 3000x3000 are too large" --data synthetic:3000x3000x3
ok long_out_refused
ok short_deep_run_plots
ok gnuplot_gets_no_shell
echo "cli_test: $((count - fails))/$count passed"
[ "$fails" -eq 0 ]
