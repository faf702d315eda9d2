#!/bin/sh
# The six Fashion-MNIST runs of docs/trainer.md: the three downsampling modes
# with strides 1,1,2,2,2 and with the poor initialization 1,1,3,2,3, the same
# budget for all six, then a markdown table of the final test accuracies and
# the strides each run ends with. Two runs at a time, one thread each (on 2
# cores that is more images/s in total than one run on two threads).
# Usage: bench/trainer_runs.sh [OUTDIR] [extra trainer flags...]
set -eu
out=${1:-runs/six}
[ $# -gt 0 ] && shift
extra="$*"
trainer=${TRAINER:-build/resnet18}
budget="--width 0.125 --epochs 10 --train-subset 10000 --lr 0.02,30:0.1,480:0.02,640:0.004
        --label-smoothing 0 --threads 1 --quiet"

run() { # mode strides
  dir="$out/$1-$(echo "$2" | tr , -)"
  $trainer --mode "$1" --strides "$2" --out "$dir" $budget $extra > "$dir.log" 2>&1 || {
    echo "trainer_runs: $1 $2 failed:"; cat "$dir.log"; return 1; }
}

mkdir -p "$out"
run diffstride 1,1,2,2,2 & run diffstride 1,1,3,2,3 & wait
run strided 1,1,2,2,2 & run strided 1,1,3,2,3 & wait
run spectral 1,1,2,2,2 & run spectral 1,1,3,2,3 & wait

echo "| mode | strides | test accuracy | train time (s) | final strides -> sizes |"
echo "|---|---|---:|---:|---|"
for log in "$out"/*.log; do
  name=$(basename "$log" .log)
  acc=$(sed -n 's/^final test accuracy \([0-9.]*%\).*/\1/p' "$log")
  secs=$(sed -n 's/^final test accuracy .*, \([0-9.]*\) s of training/\1/p' "$log")
  strides=$(grep -E "strides -> sizes:" "$log" | tail -1 | sed 's/.*sizes://')
  echo "| ${name%%-*} | $(echo "${name#*-}" | tr - ,) | $acc | $secs |${strides:- (none)} |"
done
