#!/usr/bin/env bash
# Two ranks as two hosts: each rank runs in its own network namespace, the
# two joined by a veth pair, and the ranks' messages may go only over TCP
# on that pair (no shared memory). mpirun runs in the first namespace and
# starts the second rank through a launch agent that stands in for ssh. The
# 2-rank run with --sync-bn must end where one process ends (checkpoints
# within 3e-4) and its header must name 2 ranks.
# Usage: tests/trainer/mpi_netns_test.sh TRAINER CKPT_COMPARE
# Skipped, with a line saying why, where namespaces cannot be made (not
# root, no ip, no CAP_SYS_ADMIN) or the trainer has no MPI.
set -euo pipefail
trainer=$1 compare=$2
me=mpi_netns_test

skip() { echo "$me: skipped: $*"; exit 0; }
fail() { echo "$me: FAIL: $*"; exit 1; }

# Unique per run, so parallel runs and leftovers of a killed run never clash.
ns_a=dsA$$ ns_b=dsB$$
veth_a=vdsA$$ veth_b=vdsB$$ # at most 15 characters, the kernel's limit
subnet=10.213.0.0/24 addr_a=10.213.0.1 addr_b=10.213.0.2
tol=3e-4
run=(--data synthetic:16x16x3 --width 0.125 --batch 16 --train-subset 64 --test-subset 32 --epochs 1
     --quiet --lr 0.05 --sync-bn --threads 1)

check_prerequisites() {
  if ! command -v mpirun >/dev/null || ! ldd "$trainer" 2>/dev/null | grep libmpi >/dev/null; then
    skip "$trainer was built without MPI or mpirun is missing"
  fi
  [ "$(id -u)" = 0 ] || skip "not root (ip netns needs CAP_SYS_ADMIN)"
  command -v ip >/dev/null || skip "no ip command (Debian: iproute2)"
}

# Runs "$@" for at most 120 s. In the background, so that a signal to the
# test is handled at once (bash defers traps until a foreground command ends,
# and timeout's own process group does not get the terminal's Ctrl-C).
bounded() {
  timeout -k 10 120 "$@" &
  job=$!
  wait "$job"
}

# Ends the running job before cleanup removes its namespaces and files.
on_signal() {
  trap - INT TERM
  if [ -n "${job:-}" ]; then kill "$job" 2>/dev/null || true; wait "$job" || true; fi
  exit "$1"
}

cleanup() {
  # Deleting a namespace also deletes its end of the veth pair, and so both.
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  rm -rf "$tmp"
}

# Two namespaces, each with lo and one end of the veth pair, up and
# addressed. lo is needed: each rank reaches its local Open MPI daemon over
# TCP on 127.0.0.1 (PMIx); with lo down the launch hangs.
make_network() {
  ip netns add "$ns_a" 2>"$tmp/ip.txt" || skip "ip netns add failed: $(head -n 1 "$tmp/ip.txt")"
  ip netns add "$ns_b"
  ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b" 2>"$tmp/ip.txt" ||
    skip "no veth pair: $(head -n 1 "$tmp/ip.txt")"
  ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
  ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
  ip -n "$ns_a" link set lo up
  ip -n "$ns_b" link set lo up
  ip -n "$ns_a" link set "$veth_a" up
  ip -n "$ns_b" link set "$veth_b" up
}

# mpirun's launch agent in place of ssh: called as "HOST word...", it runs
# the words as one shell command line (as ssh does) in the namespace that
# owns HOST, and notes the host so the test can tell a remote launch happened.
write_agent() {
  cat >"$tmp/agent" <<EOF
#!/bin/sh
host=\$1; shift
case \$host in
  $addr_a) ns=$ns_a ;;
  $addr_b) ns=$ns_b ;;
  *) echo "$me agent: unknown host \$host" >&2; exit 255 ;;
esac
echo "\$host" >>"$tmp/agent.log"
exec ip netns exec "\$ns" /bin/sh -c "\$*"
EOF
  chmod +x "$tmp/agent"
  printf '%s slots=1\n%s slots=1\n' "$addr_a" "$addr_b" >"$tmp/hosts"
}

# The 2-rank run: rank 0 beside mpirun in namespace A (its address is
# local there), rank 1 in B (one slot per host). Open MPI's defaults would
# choose the same here; the options say so, so that no other path counts:
#   plm_rsh_agent         the agent above, not ssh
#   btl tcp,self          no shared memory between the ranks (they share
#                         /dev/shm and a hostname, only the network differs)
#   *_if_include SUBNET   MPI messages and mpirun's control channel to the
#                         daemon in B over the veth pair only
run_two_hosts() {
  bounded ip netns exec "$ns_a" mpirun -np 2 --hostfile "$tmp/hosts" \
    --mca plm_rsh_agent "$tmp/agent" \
    --mca btl tcp,self --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
    "$trainer" "$@"
}

check_prerequisites
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 # root, checked above
# The caller's settings (mpi_test.sh: loopback only) would contradict these.
unset "${!OMPI_MCA_@}"
tmp=$(mktemp -d)
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trainer=$(realpath "$trainer") # the same path in every namespace, whatever the directory

make_network
write_agent
run_two_hosts "${run[@]}" --out "$tmp/two" >"$tmp/two.txt" 2>&1 ||
  { cat "$tmp/two.txt"; fail "the 2-rank run failed"; }
grep -qx "$addr_b" "$tmp/agent.log" 2>/dev/null ||
  { cat "$tmp/two.txt"; fail "mpirun did not start a rank in $ns_b through the agent"; }
grep -q "2 ranks (synchronized batch norm)" "$tmp/two.txt" ||
  { cat "$tmp/two.txt"; fail "the 2-rank run's header names no 2 ranks"; }
bounded "$trainer" "${run[@]}" --out "$tmp/one" >/dev/null
"$compare" "$tmp/one/checkpoint.bin" "$tmp/two/checkpoint.bin" "$tol" >"$tmp/compare.txt" ||
  { cat "$tmp/compare.txt"; fail "2 ranks over TCP and one process end in different checkpoints"; }
echo "$me: 2 ranks in 2 network namespaces over TCP (veth) match one process: ok"
