#!/usr/bin/env bash
# End-to-end throughput and latency over NBD, measured with fio's nbd engine, side by side in
# one run: each workload runs against every target in turn (the reference first), so all
# targets see the same machine state. Prints a Markdown table of MiB/s, IOPS, mean and p99
# latency, each target's throughput as a ratio to the reference (nbdkit's file plugin on a file
# in the same directory as the node's pool), the node's as a ratio to the same node without
# block checksums (what they cost) and the replicated pair's as a ratio to the single node; then
# the scrub and resync measurements and the project's targets, met or missed.
#
# Usage: benchmarks/fio/run.sh [--runtime SEC] [--ramp SEC] [--size SIZE] [--repeat N]
#                              [--workloads a,b,...] [--targets a,b,...] [--resync-size SIZE]
#                              [--out FILE] [--perf-stat]
#   --runtime SEC      measured seconds per job (default 15)
#   --ramp SEC         unmeasured seconds before each job (default 2)
#   --size SIZE        size of every export and of the region fio touches (default 1G)
#   --repeat N         run every workload N times, all targets in each round; the tables show
#                      medians and each ratio's range over the rounds; the idle resync is
#                      timed once per round too (default 1)
#   --workloads LIST   subset of: seq-write-1m rand-write-4k rand-read-4k kbench-iops kbench-bw
#                      kbench-lat scrub resync (default: all; scrub and resync need the pair and
#                      run last, resync after scrub)
#   --targets LIST     subset of: nbdkit node-nosums node pair pair-tls proxy gateway gateway-tcp
#                      (default: all but pair-tls and gateway-tcp); the ratio columns need nbdkit,
#                      node-nosums for the node's (a node whose pool keeps no block checksums: what
#                      they cost), the node for the pair's, the pair for pair-tls's, the proxy's
#                      and the gateways' (they sit in front of the pair's node a, so they need the
#                      pair): gateway attaches through its Unix socket, as a host does by default,
#                      gateway-tcp through its loopback TCP export; proxy is nbdkit's NBD proxy (its
#                      nbd plugin, C) in the gateway's place, a reference for what one more NBD hop
#                      costs on this machine; pair-tls is a second pair whose peer link is
#                      encrypted (TLS 1.3) where the pair's, on loopback, is authenticated only:
#                      its ratio to the pair is what peer encryption costs
#   --resync-size SIZE what the resync workload makes node b miss (default 2G; the pair's volume
#                      is at least this big)
#   --out FILE         also write every result (and fio's own JSON per job) to FILE as JSON
#   --perf-stat        also count, with perf stat on each target's server processes during the
#                      measured seconds, CPU time, system calls and context switches per I/O
#
# Adding a target: write a function
#   start_<name> SIZE
# that starts the server in the background, registers every pid it starts with track_pid
# (they are stopped on exit), puts its files under "$work/<name>" (deleted on exit), creates
# an export of SIZE bytes, waits until it serves, sets TARGET_URI to an fio nbd URI
# (nbd://host:port/export or nbd+unix:///export?socket=PATH) and TARGET_PIDS to the pids of its
# server processes (what --perf-stat counts). Then add <name> to TARGETS and a label to
# target_label. Targets run in TARGETS order; REFERENCE names the one ratios use.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"

TARGETS=(nbdkit node-nosums node pair proxy gateway)
REFERENCE=nbdkit
WORKLOADS=(seq-write-1m rand-write-4k rand-read-4k kbench-iops kbench-bw kbench-lat scrub resync)

target_label() {
  case "$1" in
    nbdkit) echo "nbdkit file (reference)" ;;
    node-nosums) echo "replicator node, block checksums off (reference)" ;;
    node) echo "replicator node" ;;
    pair) echo "replicated pair (a → b)" ;;
    pair-tls) echo "replicated pair, peer link encrypted (a → b, TLS 1.3)" ;;
    proxy) echo "nbdkit NBD proxy → pair (reference hop)" ;;
    gateway) echo "gateway (Unix socket) → pair" ;;
    gateway-tcp) echo "gateway (TCP) → pair" ;;
    *) echo "$1" ;;
  esac
}

# fio options of each workload. The first three are the project's targets (>= 70% of nbdkit);
# the kbench ones are the workloads of Longhorn's kbench, so figures compare with published ones.
# resync is not one fio job: see run_resync.
workload_args() {
  case "$1" in
    seq-write-1m) echo "--rw=write --bs=1M --iodepth=8" ;;
    rand-write-4k) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    rand-read-4k) echo "--rw=randread --bs=4k --iodepth=32" ;;
    kbench-iops) echo "--rw=randwrite --bs=4k --iodepth=64" ;;
    kbench-bw) echo "--rw=write --bs=128k --iodepth=64" ;;
    kbench-lat) echo "--rw=randwrite --bs=4k --iodepth=1" ;;
    scrub) echo "" ;;
    resync) echo "" ;;
    *) return 1 ;;
  esac
}

workload_title() {
  case "$1" in
    seq-write-1m) echo "seq write 1 MiB, QD8" ;;
    rand-write-4k) echo "rand write 4 KiB, QD32" ;;
    rand-read-4k) echo "rand read 4 KiB, QD32" ;;
    kbench-iops) echo "kbench IOPS: rand write 4 KiB, QD64" ;;
    kbench-bw) echo "kbench bandwidth: seq write 128 KiB, QD64" ;;
    kbench-lat) echo "kbench latency: rand write 4 KiB, QD1" ;;
    scrub) echo "scrub" ;;
    resync) echo "resync" ;;
  esac
}

# Every target's region is written once before the first job, so no workload measures first
# writes: thin allocation, the file system's block allocation, and on the pair the activity log's
# first durable record of each extent are costs of a new volume, not of the serving path (and
# reads then hit no hole).
prefill() {
  local t="$1"
  log "prefilling $size on $t"
  run_fio "${URI[$t]}" prefill "$results/prefill.$t.json" --rw=write --bs=1M --iodepth=8
}

runtime=15
ramp=2
size=1G
repeat=1
resync_size=2G
out=""
perf_stat=""
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runtime) runtime="$2"; shift 2 ;;
    --ramp) ramp="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --workloads) IFS=, read -r -a WORKLOADS <<<"$2"; shift 2 ;;
    --targets) IFS=, read -r -a TARGETS <<<"$2"; shift 2 ;;
    --resync-size) resync_size="$2"; shift 2 ;;
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --perf-stat) perf_stat=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

for tool in fio nbdkit python3 flock numfmt; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh needs '$tool' on PATH (Debian: apt-get install fio nbdkit python3 util-linux coreutils)" >&2
    exit 69
  fi
done
if [[ -n "$perf_stat" ]] && ! command -v perf >/dev/null; then
  echo "--perf-stat needs 'perf' on PATH (Debian: apt-get install linux-perf)" >&2
  exit 69
fi
if ! fio --enghelp=nbd >/dev/null 2>&1; then
  echo "this fio has no nbd engine (Debian's fio package has it)" >&2
  exit 69
fi
for w in "${WORKLOADS[@]}"; do
  workload_args "$w" >/dev/null || { echo "unknown workload '$w'" >&2; exit 2; }
done
# The scrub reads what the other workloads wrote; the resync workload kills and restarts node b.
# So they run last, in that order.
last=()
for w in scrub resync; do
  if [[ " ${WORKLOADS[*]} " == *" $w "* ]]; then
    if [[ " ${TARGETS[*]} " != *" pair "* ]]; then
      echo "the $w workload needs the pair target" >&2
      exit 2
    fi
    last+=("$w")
  fi
done
others=()
for w in "${WORKLOADS[@]}"; do
  if [[ "$w" != resync && "$w" != scrub ]]; then others+=("$w"); fi
done
WORKLOADS=("${others[@]}" "${last[@]}")

work="$(mktemp -d "${TMPDIR:-/tmp}/replicator-fio.XXXXXX")"
results="$work/results"
mkdir -p "$results"
PIDS=()
track_pid() { PIDS+=("$1"); }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "[run.sh] $*" >&2; }

bytes_of() { numfmt --from=iec "${1%B}"; }

# Waits (at most $3 seconds) until file $1 contains $2, or fails if process $4 has died.
wait_for_text() {
  local file="$1" text="$2" seconds="$3" pid="$4"
  for _ in $(seq $((seconds * 10))); do
    grep -q -- "$text" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; its log:" >&2; cat "$file" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out after ${seconds}s waiting for '$text' in $file:" >&2
  cat "$file" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nbdkit's file plugin on a sparse file: the unreplicated reference.
start_nbdkit() {
  local dir="$work/nbdkit" port
  mkdir -p "$dir"
  truncate -s "$1" "$dir/disk.img"
  port="$(free_port)"
  nbdkit --exit-with-parent -f -i 127.0.0.1 -p "$port" file "$dir/disk.img" >"$dir/nbdkit.log" 2>&1 &
  track_pid $!
  TARGET_PIDS=$!
  await_nbdkit $! "$dir" "nbd://127.0.0.1:$port/" \
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$port"
}

# Waits (10 s at most) until the nbdkit with pid $1, logging to $2/nbdkit.log, serves, which the
# command after $3 tells, then sets TARGET_URI to $3.
await_nbdkit() {
  local pid="$1" dir="$2" uri="$3"
  shift 3
  for _ in $(seq 100); do
    if "$@" 2>/dev/null; then
      TARGET_URI="$uri"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "nbdkit exited; its log:" >&2; cat "$dir/nbdkit.log" >&2; return 1; }
    sleep 0.1
  done
  echo "nbdkit did not start serving $uri" >&2
  return 1
}

# One replicator node on a fresh directory, with one volume ($2: more options of node run): plain NBD
# on loopback (--nbd-tls off; it has no cluster and so no certificates), as the nbdkit reference serves.
start_node() {
  local dir="$work/node${2:+-nosums}"
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # $2 is a list of options
  "$root/replicator" node run --dir "$dir" --nbd-listen 127.0.0.1:0 --nbd-tls off --pool-size 8G ${2:-} >"$dir/node.log" 2>&1 &
  track_pid $!
  TARGET_PIDS=$!
  wait_for_text "$dir/node.log" " ready" 60 $!
  "$root/replicator" volume create bench --size "$1" --dir "$dir" >/dev/null
  local listen
  listen="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["nbdListen"])' "$dir/node.json")"
  TARGET_URI="nbd://$listen/bench"
}

# The same node without block checksums (a measurement option, never for data that matters): the
# node's ratio to it is what storing and checking a checksum per 4 KiB block costs.
start_node-nosums() {
  start_node "$1" "--block-checksums false"
}

# The TCP exports of a cluster's nodes and gateway require TLS and a client certificate, which fio's
# nbd engine cannot present (libnbd takes no certificate directory in its URI). The benchmark's
# clusters, on loopback, serve plain NBD there instead, by the explicit choice node.json and
# gateway.json allow on loopback (nbd.tls "off"), so the targets measure what they always did.
# What TLS costs an NBD client is not measured here.
plain_nbd_on_loopback() {
  local file
  for file in "$1/a/node.json" "$1/b/node.json" "$1/gateway.json"; do
    python3 -c '
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config.setdefault("nbd", {})["tls"] = "off"
json.dump(config, open(path, "w"), indent=2)' "$file"
  done
}

# The replicated pair as `cluster up` runs it: two nodes on loopback and vol0, whose writes node
# a orders. fio goes through node a, which applies every write on both replicas before it
# answers (protocol C).
start_pair() {
  local dir="$work/pair" volume_size
  mkdir -p "$dir"
  volume_size=$(bytes_of "$1")
  if (( $(bytes_of "$resync_size") > volume_size )); then volume_size=$(bytes_of "$resync_size"); fi
  "$root/replicator" cluster init --dir "$dir/cluster" --pool-size 8G >/dev/null
  plain_nbd_on_loopback "$dir/cluster"
  "$root/replicator" cluster up --dir "$dir/cluster" --volume-size "$volume_size" --pool-size 8G >"$dir/cluster.log" 2>&1 &
  track_pid $!
  wait_for_text "$dir/cluster.log" "Press Ctrl-C" 120 $!
  read -r PAIR_NBD PAIR_A_SOCKET PAIR_ADMIN PAIR_TOKEN_FILE PAIR_A_PID PAIR_B_PID PAIR_B_DIR < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
a, b = (next(n for n in m["nodes"] if n["name"] == name) for name in ("a", "b"))
print(a["nbd"], a["nbdSocket"], a["admin"], m["adminTokenFile"], a["pid"], b["pid"], b["dataDir"])' "$dir/cluster/cluster.json")
  pair_monitor "$dir/startup.timeline" --until connected --timeout 60
  TARGET_URI="$PAIR_NBD/vol0"
  TARGET_PIDS="$PAIR_A_PID $PAIR_B_PID"
}

# The pair again, in a cluster of its own whose nodes ask for an encrypted peer link (peer.encryption
# "tls" in both node.json): the pair target's link, on loopback, is mutually authenticated but not
# encrypted (the default there), so the ratio of this target to the pair is what encryption costs.
start_pair-tls() {
  local dir="$work/pair-tls" admin token a_pid b_pid
  mkdir -p "$dir"
  "$root/replicator" cluster init --dir "$dir/cluster" --pool-size 8G >/dev/null
  plain_nbd_on_loopback "$dir/cluster"
  for node in a b; do
    python3 -c '
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["peer"]["encryption"] = "tls"
json.dump(config, open(path, "w"), indent=2)' "$dir/cluster/$node/node.json"
  done
  "$root/replicator" cluster up --dir "$dir/cluster" --volume-size "$1" --pool-size 8G >"$dir/cluster.log" 2>&1 &
  track_pid $!
  wait_for_text "$dir/cluster.log" "Press Ctrl-C" 120 $!
  read -r TARGET_URI admin token a_pid b_pid < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
a, b = (next(n for n in m["nodes"] if n["name"] == name) for name in ("a", "b"))
print(a["nbd"] + "/vol0", a["admin"], m["adminTokenFile"], a["pid"], b["pid"])' "$dir/cluster/cluster.json")
  python3 "$root/benchmarks/fio/pair_monitor.py" "$admin" "$token" vol0 "$dir/startup.timeline" --until connected --timeout 60
  if ! grep -q "encrypted (TLS 1.3)" "$dir/cluster/a/node.log"; then
    echo "the pair-tls target's peer link is not encrypted; see $dir/cluster/a/node.log" >&2
    return 1
  fi
  TARGET_PIDS="$a_pid $b_pid"
}

# nbdkit's nbd plugin, a C NBD proxy built on libnbd, where the gateway sits: fio → nbdkit (Unix
# socket) → node a (its Unix socket, as the gateway reaches it) → b. No failover: it measures what
# one more NBD hop costs on this machine, so the gateway's cost has a reference. Needs the pair.
start_proxy() {
  if [[ -z "${PAIR_NBD:-}" ]]; then
    echo "the proxy target needs the pair target before it in --targets" >&2
    return 1
  fi
  local dir="$work/proxy"
  mkdir -p "$dir"
  nbdkit --exit-with-parent -f --unix "$dir/nbd.sock" nbd socket="$PAIR_A_SOCKET" export=vol0 >"$dir/nbdkit.log" 2>&1 &
  track_pid $!
  TARGET_PIDS="$! $PAIR_A_PID $PAIR_B_PID"
  await_nbdkit $! "$dir" "nbd+unix:///?socket=$dir/nbd.sock" test -S "$dir/nbd.sock"
}

# The pair's own gateway, as a hypervisor host attaches: fio → gateway (its Unix socket, or with
# $1 = tcp its loopback TCP export) → node a (its Unix socket) → b. Same volume, same nodes as the
# pair target, so the ratio to it is what the gateway costs. Needs the pair target started first.
start_gateway() {
  if [[ -z "${PAIR_NBD:-}" ]]; then
    echo "a gateway target needs the pair target before it in --targets" >&2
    return 1
  fi
  local gateway_nbd gateway_socket gateway_pid
  read -r gateway_nbd gateway_socket gateway_pid < <(python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))["gateway"]
print(g["nbd"], g["nbdSocket"], g["pid"])' "$work/pair/cluster/cluster.json")
  if [[ "${1:-}" == tcp ]]; then
    TARGET_URI="$gateway_nbd/vol0"
  else
    TARGET_URI="nbd+unix:///vol0?socket=$gateway_socket"
  fi
  TARGET_PIDS="$gateway_pid $PAIR_A_PID $PAIR_B_PID"
}

start_gateway-tcp() {
  start_gateway tcp
}

# Polls vol0's replication state on node a into the timeline $1 (see pair_monitor.py).
pair_monitor() {
  local timeline="$1"
  shift
  python3 "$root/benchmarks/fio/pair_monitor.py" "$PAIR_ADMIN" "$PAIR_TOKEN_FILE" vol0 "$timeline" "$@"
}

# Runs one fio job; its JSON goes to $3. Later options override earlier ones (--size too).
run_fio() {
  local uri="$1" name="$2" json="$3"
  shift 3
  fio --name="$name" --ioengine=nbd --uri="$uri" --size="$size" --numjobs=1 --group_reporting=1 \
    --lat_percentiles=1 --output-format=json --output="$json" "$@" >/dev/null
}

# Runs one measured fio job (run_fio's arguments); with --perf-stat, counts the target's server
# processes ($PROFILE_PIDS, comma-separated) over the measured seconds into $3.perf.
run_measured() {
  if [[ -z "$perf_stat" ]]; then
    run_fio "$@"
    return
  fi
  local json="$3"
  run_fio "$@" &
  local fio_pid=$!
  sleep "$ramp"
  perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$PROFILE_PIDS" \
    -o "$json.perf" -- sleep "$runtime" 2>/dev/null || true
  wait "$fio_pid"
}

# The scrub workload, on the pair: node a reads and checks every allocated block of vol0 (what the
# prefill and the other workloads wrote) as its background scrub does, with no rate cap, and the
# time it takes gives the rate an idle pair scrubs at; the default cap is restored after.
run_scrub() {
  log "scrub: node a scrubs vol0 with no rate cap"
  python3 "$root/benchmarks/fio/scrub_rate.py" "$PAIR_ADMIN" "$PAIR_TOKEN_FILE" vol0 "$results/scrub.json"
}

# Kills node b (SIGKILL) and writes $resync_size sequentially through node a alone, so b misses it.
degrade_pair() {
  log "resync: killing node b (pid $PAIR_B_PID), writing $resync_size through node a alone"
  kill -KILL "$PAIR_B_PID"
  pair_monitor "$results/resync-$1.degrade.timeline" --until disconnected --timeout 60
  run_fio "${URI[pair]}" "resync-$1-write" "$results/resync-$1-write.json" --rw=write --bs=1M --iodepth=8 --size="$resync_size"
}

restart_b() {
  "$root/replicator" node run --dir "$PAIR_B_DIR" >>"$PAIR_B_DIR/restarted.log" 2>&1 &
  track_pid $!
  PAIR_B_PID=$!
}

# The resync workload, on the pair: (1) how fast an idle pair resyncs what b missed, against the
# pair's replicated 1 MiB sequential writes; (2) 4 KiB random-write IOPS while a resync runs,
# against the same job on the pair without one. Timed from node a's admin API (pair_monitor.py).
run_resync() {
  local fg=(--rw=randwrite --bs=4k --iodepth=32 --time_based=1 --runtime="$runtime")
  if [[ " ${WORKLOADS[*]} " != *" seq-write-1m "* ]]; then
    log "resync: replicated seq write 1 MiB QD8, the reference (${ramp}s ramp + ${runtime}s)"
    run_fio "${URI[pair]}" resync-reference "$results/resync-reference.json" --rw=write --bs=1M --iodepth=8 \
      --time_based=1 --ramp_time="$ramp" --runtime="$runtime"
  fi
  if (( $(bytes_of "$resync_size") > $(bytes_of "$size") )); then
    # The region b misses must be allocated on both nodes, as the reference's region is: a resync
    # after an outage rewrites what the target already holds; first writes cost the same either way.
    log "resync: prefilling $resync_size of the pair"
    run_fio "${URI[pair]}" resync-prefill "$results/resync-prefill.json" --rw=write --bs=1M --iodepth=8 --size="$resync_size"
  fi
  log "resync: rand write 4 KiB QD32 without a resync (${ramp}s ramp + ${runtime}s)"
  run_fio "${URI[pair]}" resync-fg-base "$results/resync-fg-base.json" "${fg[@]}" --ramp_time="$ramp"

  # One resync of a couple of seconds is at the mercy of whatever else the machine does then, so
  # the idle one is timed once per round, and the report takes the median.
  for round in $(seq "$repeat"); do
    degrade_pair "idle-$round"
    # Idle means idle: the kernel is still writing back what node a just took alone (and b's last
    # writes before the kill), which would compete with the resync for the disk and count as its cost.
    log "resync: waiting for the page cache to be written back (sync)"
    sync
    log "resync: restarting node b, timing its resync on an idle pair (round $round of $repeat)"
    restart_b
    pair_monitor "$results/resync-idle.$round.timeline" --until synced --timeout 900
  done

  degrade_pair fg
  log "resync: restarting node b, rand write 4 KiB QD32 once its resync runs (${runtime}s)"
  restart_b
  pair_monitor "$results/resync-fg.timeline" --until resyncing --timeout 300
  pair_monitor "$results/resync-fg.timeline" --until synced --timeout 900 &
  local monitor=$!
  local started ended
  started=$(date +%s.%N)
  run_fio "${URI[pair]}" resync-fg "$results/resync-fg.json" "${fg[@]}"
  ended=$(date +%s.%N)
  echo "$started $ended" >"$results/resync-fg.window"
  wait "$monitor"
}

log "building the replicator CLI (Release) if needed"
"$root/replicator" --help >/dev/null

for t in "${TARGETS[@]}"; do
  declare -F "start_$t" >/dev/null || { echo "unknown target '$t' (no start_$t function)" >&2; exit 2; }
done

declare -A URI SERVER_PIDS
for t in "${TARGETS[@]}"; do
  TARGET_URI=""
  TARGET_PIDS=""
  log "starting $(target_label "$t")"
  "start_$t" "$size"
  URI[$t]="$TARGET_URI"
  SERVER_PIDS[$t]="${TARGET_PIDS// /,}"
  log "  $t: $TARGET_URI (pids ${TARGET_PIDS})"
done

for t in "${TARGETS[@]}"; do
  prefill "$t"
done

for w in "${WORKLOADS[@]}"; do
  if [[ "$w" == resync ]]; then
    run_resync
    continue
  fi
  if [[ "$w" == scrub ]]; then
    run_scrub
    continue
  fi
  read -r -a args <<<"$(workload_args "$w")"
  for round in $(seq "$repeat"); do
    for t in "${TARGETS[@]}"; do
      log "$w on $t, round $round of $repeat (${ramp}s ramp + ${runtime}s)"
      PROFILE_PIDS="${SERVER_PIDS[$t]}"
      run_measured "${URI[$t]}" "$w" "$results/$w.$t.$round.json" "${args[@]}" \
        --time_based=1 --ramp_time="$ramp" --runtime="$runtime"
    done
  done
done

# What the report needs to know about the run, then the tables (and the JSON file when asked for).
{
  for t in "${TARGETS[@]}"; do printf 'target\t%s\t%s\n' "$t" "$(target_label "$t")"; done
  for w in "${WORKLOADS[@]}"; do printf 'workload\t%s\t%s\t%s\n' "$w" "$(workload_title "$w")" "$(workload_args "$w")"; done
} | python3 -c '
import json, sys
runtime, ramp, size, repeat, reference, path = sys.argv[1:7]
rows = [line.rstrip("\n").split("\t") for line in sys.stdin]
json.dump({"runtime": int(runtime), "ramp": int(ramp), "size": size, "repeat": int(repeat), "reference": reference,
           "targets": [r[1:] for r in rows if r[0] == "target"],
           "workloads": [r[1:] for r in rows if r[0] == "workload"]}, open(path, "w"))' \
  "$runtime" "$ramp" "$size" "$repeat" "$REFERENCE" "$results/meta.json"
python3 "$root/benchmarks/fio/report.py" "$results" "$out"
