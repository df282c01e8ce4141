#!/usr/bin/env bash
# End-to-end throughput and latency over NBD, measured with fio's nbd engine, side by side in
# one run: each workload runs against every target in turn (the reference first), so all
# targets see the same machine state. Prints a Markdown table of MiB/s, IOPS, mean and p99
# latency, and each target's throughput as a ratio to the reference (nbdkit's file plugin on
# a file in the same directory as the node's pool).
#
# Usage: benchmarks/fio/run.sh [--runtime SEC] [--ramp SEC] [--size SIZE]
#                              [--workloads a,b,...] [--targets a,b,...] [--out FILE]
#   --runtime SEC      measured seconds per job (default 15)
#   --ramp SEC         unmeasured seconds before each job (default 2)
#   --size SIZE        size of every export and of the region fio touches (default 1G)
#   --workloads LIST   subset of: seq-write-1m rand-write-4k rand-read-4k
#                      kbench-iops kbench-bw kbench-lat (default: all)
#   --targets LIST     subset of the targets below (default: all); the ratio column needs nbdkit
#   --out FILE         also write every result (and fio's own JSON per job) to FILE as JSON
#   --perf-stat        also count, with perf stat on each target's server processes during the
#                      measured seconds, CPU time, system calls and context switches per I/O
#
# Adding a target (the replicated pair, the gateway, ...): write a function
#   start_<name> SIZE
# that starts the server in the background, registers every pid it starts with track_pid
# (they are stopped on exit), puts its files under "$work/<name>" (deleted on exit), creates
# an export of SIZE bytes, waits until it serves, sets TARGET_URI to an fio nbd URI
# (nbd://host:port/export or nbd+unix:///export?socket=PATH) and TARGET_PIDS to the pids of its
# server processes (what --perf-stat counts). Then add <name> to TARGETS and a label to
# target_label. Targets run in TARGETS order; REFERENCE names the one ratios use.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"

TARGETS=(nbdkit node)
REFERENCE=nbdkit
WORKLOADS=(seq-write-1m rand-write-4k rand-read-4k kbench-iops kbench-bw kbench-lat)

target_label() {
  case "$1" in
    nbdkit) echo "nbdkit file (reference)" ;;
    node) echo "replicator node" ;;
    *) echo "$1" ;;
  esac
}

# fio options of each workload. The first three are the project's targets (>= 70% of nbdkit);
# the kbench ones are the workloads of Longhorn's kbench, so figures compare with published ones.
workload_args() {
  case "$1" in
    seq-write-1m) echo "--rw=write --bs=1M --iodepth=8" ;;
    rand-write-4k) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    rand-read-4k) echo "--rw=randread --bs=4k --iodepth=32" ;;
    kbench-iops) echo "--rw=randwrite --bs=4k --iodepth=64" ;;
    kbench-bw) echo "--rw=write --bs=128k --iodepth=64" ;;
    kbench-lat) echo "--rw=randwrite --bs=4k --iodepth=1" ;;
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
  esac
}

# Workloads that read: the region is written once on every target before the first of them.
needs_prefill() { [[ "$1" == rand-read-4k ]]; }

runtime=15
ramp=2
size=1G
out=""
perf_stat=""
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runtime) runtime="$2"; shift 2 ;;
    --ramp) ramp="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --workloads) IFS=, read -r -a WORKLOADS <<<"$2"; shift 2 ;;
    --targets) IFS=, read -r -a TARGETS <<<"$2"; shift 2 ;;
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --perf-stat) perf_stat=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

for tool in fio nbdkit python3 flock; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh needs '$tool' on PATH (Debian: apt-get install fio nbdkit python3 util-linux)" >&2
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

work="$(mktemp -d "${TMPDIR:-/tmp}/replicator-fio.XXXXXX")"
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
  local pid=$!
  TARGET_PIDS="$pid"
  for _ in $(seq 100); do
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' \
        "$port" 2>/dev/null; then
      TARGET_URI="nbd://127.0.0.1:$port/"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "nbdkit exited; its log:" >&2; cat "$dir/nbdkit.log" >&2; return 1; }
    sleep 0.1
  done
  echo "nbdkit did not start listening on port $port" >&2
  return 1
}

# One replicator node on a fresh directory, with one volume.
start_node() {
  local dir="$work/node"
  mkdir -p "$dir"
  "$root/replicator" node run --dir "$dir" --nbd-listen 127.0.0.1:0 --pool-size 8G >"$dir/node.log" 2>&1 &
  track_pid $!
  TARGET_PIDS=$!
  wait_for_text "$dir/node.log" " ready" 60 $!
  "$root/replicator" volume create bench --size "$1" --dir "$dir" >/dev/null
  local listen
  listen="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["nbdListen"])' "$dir/node.json")"
  TARGET_URI="nbd://$listen/bench"
}

# Runs one fio job; its JSON goes to $3.
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

mkdir -p "$work/results"
declare -A PREFILLED
for w in "${WORKLOADS[@]}"; do
  read -r -a args <<<"$(workload_args "$w")"
  if needs_prefill "$w"; then
    for t in "${TARGETS[@]}"; do
      [[ -n "${PREFILLED[$t]:-}" ]] && continue
      log "prefilling $size on $t"
      run_fio "${URI[$t]}" prefill "$work/results/prefill.$t.json" --rw=write --bs=1M --iodepth=8
      PREFILLED[$t]=1
    done
  fi
  for t in "${TARGETS[@]}"; do
    log "$w on $t (${ramp}s ramp + ${runtime}s)"
    PROFILE_PIDS="${SERVER_PIDS[$t]}"
    run_measured "${URI[$t]}" "$w" "$work/results/$w.$t.json" "${args[@]}" \
      --time_based=1 --ramp_time="$ramp" --runtime="$runtime"
  done
done

# The table, and the JSON results file when asked for.
targets_spec=""
for t in "${TARGETS[@]}"; do targets_spec+="$t=$(target_label "$t");"; done
workloads_spec=""
for w in "${WORKLOADS[@]}"; do workloads_spec+="$w=$(workload_title "$w") [$(workload_args "$w")];"; done
python3 - "$work/results" "$REFERENCE" "$targets_spec" "$workloads_spec" "$runtime" "$ramp" "$size" "$out" <<'EOF'
import json, os, sys

results_dir, reference, targets_spec, workloads_spec, runtime, ramp, size, out = sys.argv[1:9]
targets = [tuple(x.split("=", 1)) for x in targets_spec.split(";") if x]
workloads = [tuple(x.split("=", 1)) for x in workloads_spec.split(";") if x]

def measure(path):
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    if job["error"]:
        raise SystemExit(f"fio reported error {job['error']} in {os.path.basename(path)}")
    side = max((job["read"], job["write"]), key=lambda s: s["io_bytes"])
    lat = side["lat_ns"]
    return {
        "mib_s": side["bw_bytes"] / 2**20,
        "iops": side["iops"],
        "mean_lat_us": lat["mean"] / 1000,
        "p99_lat_us": lat.get("percentile", {}).get("99.000000", 0) / 1000,
        "server": server_cost(path + ".perf", side["total_ios"]),
        "fio": job,
    }

def server_cost(path, ios):
    """perf stat's counts over the measured seconds (--perf-stat), per I/O of the job."""
    if not os.path.exists(path) or ios <= 0:
        return None
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and not line.startswith("#") and fields[0].replace(".", "", 1).isdigit():
                counts[fields[2]] = float(fields[0])
    if "task-clock" not in counts:
        return None
    return {
        "cpu_us_per_io": counts["task-clock"] * 1000 / ios,
        "syscalls_per_io": counts.get("raw_syscalls:sys_enter", 0) / ios,
        "context_switches_per_io": counts.get("context-switches", 0) / ios,
        "cpu_cores": counts["task-clock"] / 1000 / int(runtime),
    }

def fmt_lat(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"

rows = []
print(f"fio {runtime}s per job after {ramp}s ramp, region {size}, one job per target; ratio = MiB/s over the reference's in the same run.")
print()
print("| workload | target | MiB/s | IOPS | mean lat | p99 lat | ratio to nbdkit |")
print("|---|---|---:|---:|---:|---:|---:|")
for name, title in workloads:
    measured = {t: measure(os.path.join(results_dir, f"{name}.{t}.json")) for t, _ in targets}
    ref = measured.get(reference)
    for t, label in targets:
        m = measured[t]
        ratio = m["mib_s"] / ref["mib_s"] if ref and ref["mib_s"] > 0 else None
        ratio_text = "—" if ratio is None else ("1.00 (ref)" if t == reference else f"{ratio:.2f}")
        print(f"| {title.split(' [')[0]} | {label} | {m['mib_s']:.1f} | {m['iops']:.0f} | "
              f"{fmt_lat(m['mean_lat_us'])} | {fmt_lat(m['p99_lat_us'])} | {ratio_text} |")
        rows.append({"workload": name, "fio_args": title.split(" [", 1)[1].rstrip("]"), "target": t, "label": label,
                     "mib_s": m["mib_s"], "iops": m["iops"], "mean_lat_us": m["mean_lat_us"],
                     "p99_lat_us": m["p99_lat_us"], "ratio": ratio, "server": m["server"], "fio": m["fio"]})

# With --perf-stat: what each I/O cost the target's server processes (not fio, not the kernel's other work).
if any(r["server"] for r in rows):
    print()
    print("Server processes during the measured seconds (perf stat; the pair counts both nodes):")
    print()
    print("| workload | target | CPU µs per I/O | syscalls per I/O | context switches per I/O | cores busy |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        c = r["server"]
        if c:
            print(f"| {r['workload']} | {r['label']} | {c['cpu_us_per_io']:.1f} | {c['syscalls_per_io']:.1f} | "
                  f"{c['context_switches_per_io']:.1f} | {c['cpu_cores']:.2f} |")

# The project's target: the node at >= 70% of nbdkit's throughput on each of the three main workloads.
main = {"seq-write-1m", "rand-write-4k", "rand-read-4k"}
checked = [r for r in rows if r["target"] == "node" and r["workload"] in main and r["ratio"] is not None]
if checked:
    missed = [f"{r['workload']} ({r['ratio']:.3f})" for r in checked if r["ratio"] < 0.70]
    print()
    print("Target (node >= 0.70 x nbdkit on seq-write-1m, rand-write-4k, rand-read-4k): "
          + ("missed on " + ", ".join(missed) if missed else f"met on the {len(checked)} measured"))

if out:
    with open(out, "w") as f:
        json.dump({"runtime_s": int(runtime), "ramp_s": int(ramp), "size": size, "reference": reference,
                   "results": rows}, f, indent=2)
    print(f"\nresults written to {out}", file=sys.stderr)
EOF
