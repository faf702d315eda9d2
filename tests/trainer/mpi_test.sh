#!/usr/bin/env bash
# The trainer's data parallelism under mpirun (docs/trainer.md, "Several
# processes"), on small synthetic data:
#   - 2 ranks with --sync-bn end where one process with the same global batch
#     ends (loss, weights, momenta, statistics, strides), and without
#     --sync-bn they do not (the option is what makes them equal);
#   - a checkpoint written by 2 ranks resumes on 1, and one written by 1 on 2,
#     both ending where 2 epochs in one process end;
#   - a rank killed mid-epoch ends the job within a bounded time, mpirun
#     naming the rank and the signal; a rank that fails ends it with its
#     message; the last checkpoint stays loadable and --resume continues;
#   - ranks given different learning rates (mpirun's MPMD form) are caught
#     by the parameter checksum, which names the rank;
#   - two ranks as two hosts over TCP (mpi_netns_test.sh).
# Usage: tests/trainer/mpi_test.sh TRAINER CKPT_COMPARE
# Skipped, with a line saying why, where the trainer was built without MPI.
set -euo pipefail
trainer=$1 compare=$2
here=$(dirname "$0")

if ! command -v mpirun >/dev/null || ! ldd "$trainer" | grep -q libmpi; then
  echo "mpi_test: skipped: $trainer was built without MPI or mpirun is missing (Debian: libopenmpi-dev openmpi-bin)"
  exit 0
fi
[ -x "$compare" ] || { echo "mpi_test: FAIL: no checkpoint comparer at $compare"; exit 1; }
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Loopback and shared memory only; no warnings about missing fabrics.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_btl_base_warn_component_unused=0 OMPI_MCA_rmaps_base_oversubscribe=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tol=3e-4
plain=(--data synthetic:16x16x3 --width 0.125 --batch 16 --train-subset 64 --test-subset 32 --quiet
       --lr 0.05 --threads 1)
run=("${plain[@]}" --sync-bn)
failures=0

fail() { echo "mpi_test: FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "mpi_test: $*: ok"; }

# Runs the trainer as one process started alone (N = 1) or under mpirun -np N.
trainer_np() {
  local np=$1; shift
  if [ "$np" = 1 ]; then timeout 120 "$trainer" "$@"
  else timeout 120 mpirun -np "$np" "$trainer" "$@"; fi
}

# The train_loss column of the last row of DIR/log.csv.
last_loss() { tail -n 1 "$1/log.csv" | cut -d, -f4; }

same_run() { # WHAT DIR_A DIR_B: checkpoints within tol, losses within 1e-5
  local what=$1 a=$2 b=$3
  if ! "$compare" "$a/checkpoint.bin" "$b/checkpoint.bin" "$tol" >"$tmp/compare.txt"; then
    fail "$what: the checkpoints differ"; cat "$tmp/compare.txt"; return
  fi
  local la lb
  la=$(last_loss "$a") lb=$(last_loss "$b")
  if awk -v x="$la" -v y="$lb" 'BEGIN { d = x - y; exit !(d < 1e-5 && d > -1e-5) }'; then
    ok "$what (losses $la, $lb)"
  else
    fail "$what: losses $la and $lb"
  fi
}

equivalence() {
  trainer_np 1 "${run[@]}" --epochs 1 --out "$tmp/one" >/dev/null
  trainer_np 2 "${run[@]}" --epochs 1 --out "$tmp/two" >"$tmp/two.txt"
  grep -q "2 ranks (synchronized batch norm)" "$tmp/two.txt" || fail "the 2-rank run's header names no ranks"
  same_run "2 ranks with --sync-bn against one process, 4 steps" "$tmp/one" "$tmp/two"
  trainer_np 2 "${plain[@]}" --epochs 1 --out "$tmp/plain" >/dev/null
  local status=0
  "$compare" "$tmp/one/checkpoint.bin" "$tmp/plain/checkpoint.bin" "$tol" >/dev/null || status=$?
  case $status in
    0) fail "2 ranks without --sync-bn match one process: the test cannot tell synchronized statistics" ;;
    1) ok "2 ranks without --sync-bn differ from one process (per-rank statistics)" ;;
    *) fail "comparing the checkpoints failed (status $status)" ;;
  esac
}

# FROM_NP TO_NP: epoch 1 on FROM_NP ranks, epoch 2 resumed on TO_NP.
resume_across() {
  local from=$1 to=$2 dir="$tmp/resume$1$2"
  trainer_np "$from" "${run[@]}" --epochs 1 --out "$dir" >/dev/null
  cp "$dir/checkpoint.bin" "$tmp/start.bin"
  trainer_np "$to" "${run[@]}" --epochs 2 --resume "$tmp/start.bin" --out "$dir" >/dev/null
  same_run "epoch 1 on $from rank(s), epoch 2 resumed on $to, against 2 epochs in one process" "$tmp/straight" "$dir"
}

# The pid of rank RANK among the children of mpirun MPIRUN_PID.
rank_pid() {
  local pid
  for pid in $(pgrep -P "$1"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$pid"; return
    fi
  done
}

kill_rank() {
  local dir="$tmp/kill"
  local long=(--data synthetic:16x16x3 --width 0.125 --batch 16 --train-subset 512 --test-subset 32 --quiet
              --lr 0.05 --threads 1 --out "$dir")
  mpirun -np 2 "$trainer" "${long[@]}" --epochs 50 >"$tmp/kill.txt" 2>&1 &
  local job=$! waited=0
  while [ ! -s "$dir/checkpoint.bin" ] && [ $waited -lt 600 ]; do sleep 0.2; waited=$((waited + 1)); done
  local victim
  victim=$(rank_pid "$job" 1)
  [ -n "$victim" ] || { fail "no rank 1 under mpirun $job"; kill "$job"; return; }
  local start=$SECONDS gone=0
  kill -9 "$victim"
  for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || { gone=1; break; }; sleep 0.1; done
  local took=$((SECONDS - start))
  if [ $gone = 0 ]; then fail "the job still runs 30 s after rank 1 was killed"; kill -9 "$job"; return; fi
  wait "$job" && fail "the job ended with status 0 after rank 1 was killed"
  if grep -q "rank 1" "$tmp/kill.txt" && grep -qi "signal 9\|killed" "$tmp/kill.txt"; then
    ok "rank 1 killed by SIGKILL: the job ended in ${took} s (bound 30 s), naming the rank and the signal"
  else
    fail "the killed job's output names neither the rank nor the signal:"; cat "$tmp/kill.txt"
  fi
  "$trainer" --eval "$dir/checkpoint.bin" --data synthetic:16x16x3 --test-subset 32 >"$tmp/eval.txt" ||
    { fail "the last checkpoint does not load after the kill"; return; }
  local epoch
  epoch=$(sed -n 's/.*: epoch \([0-9]*\),.*/\1/p' "$tmp/eval.txt")
  if trainer_np 2 "${long[@]}" --epochs $((epoch + 1)) --resume "$dir/checkpoint.bin" >/dev/null; then
    ok "the checkpoint of epoch $epoch loads and --resume on 2 ranks trains epoch $((epoch + 1))"
  else
    fail "--resume from the checkpoint left by the killed job failed"
  fi
}

failing_rank() {
  local start=$SECONDS
  if timeout 60 mpirun -np 2 "$trainer" "${run[@]}" --resume "$tmp/missing.bin" >"$tmp/fail.txt" 2>&1; then
    fail "a run resuming from a missing checkpoint succeeded"
  elif grep -q "resnet18: rank [01] of 2: .*missing.bin" "$tmp/fail.txt"; then
    ok "a failing rank ends the job in $((SECONDS - start)) s with 'rank R of 2' and its message"
  else
    fail "a failing rank's message is missing:"; cat "$tmp/fail.txt"
  fi
}

# Rank 1 steps with another learning rate: its weights leave rank 0's at the
# first update, and the checksum every 2 steps must stop the job.
diverging_ranks() {
  if timeout 60 mpirun -np 1 "$trainer" "${run[@]}" --check-every 2 --out "$tmp/div" : \
       -np 1 "$trainer" "${run[@]}" --check-every 2 --lr 0.06 --out "$tmp/div" >"$tmp/div.txt" 2>&1; then
    fail "ranks with different learning rates trained to the end"
  elif grep -q "the ranks diverged at step 2: the parameters of rank 1 differ from rank 0's" "$tmp/div.txt"; then
    ok "ranks that compute different updates are stopped at the first checksum, naming rank 1"
  else
    fail "diverging ranks: no divergence message:"; cat "$tmp/div.txt"
  fi
}

equivalence
trainer_np 1 "${run[@]}" --epochs 2 --out "$tmp/straight" >/dev/null
resume_across 2 1
resume_across 1 2
kill_rank
failing_rank
diverging_ranks
"$here/mpi_netns_test.sh" "$trainer" "$compare" || failures=$((failures + 1))
[ $failures = 0 ] || { echo "mpi_test: $failures failure(s)"; exit 1; }
echo "mpi_test: all passed"
