#!/usr/bin/env python3
"""The tables of benchmarks/fio/run.sh, from the results directory it fills.

Usage: report.py RESULTS_DIR [OUT_JSON]

RESULTS_DIR holds meta.json (written by run.sh), one fio JSON per job named
WORKLOAD.TARGET.ROUND.json (with WORKLOAD.TARGET.ROUND.json.perf from --perf-stat), for the
scrub workload scrub.json (scrub_rate.py), and for the resync workload resync-*.json fio results,
resync-*.timeline (pair_monitor.py) and resync-fg.window.
"""
import json
import os
import statistics
import sys


def load_fio(path):
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    if job["error"]:
        raise SystemExit(f"fio reported error {job['error']} in {os.path.basename(path)}")
    return job


def measure(path, runtime):
    job = load_fio(path)
    side = max((job["read"], job["write"]), key=lambda s: s["io_bytes"])
    lat = side["lat_ns"]
    return {
        "mib_s": side["bw_bytes"] / 2**20,
        "iops": side["iops"],
        "mean_lat_us": lat["mean"] / 1000,
        "p99_lat_us": lat.get("percentile", {}).get("99.000000", 0) / 1000,
        "server": server_cost(path + ".perf", side["total_ios"], runtime),
        "fio": job,
    }


def server_cost(path, ios, runtime):
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
        "cpu_cores": counts["task-clock"] / 1000 / runtime,
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_lat(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_ratio(values, repeat):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    text = f"{statistics.median(values):.2f}"
    if repeat > 1:
        text += f" ({min(values):.2f}–{max(values):.2f})"
    return text


def read_timeline(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def resync_window(samples):
    """(start, end, bytes): from the first connected sample after the peer came back to the first with nothing out of sync."""
    start = end = None
    pending = 0
    for s in samples:
        connected = s["connection"] == "connected"
        if start is None:
            if not connected:
                pending = s["outOfSync"]
            elif pending > 0 or s["outOfSync"] > 0:
                start = s["t"]
                pending = max(pending, s["total"], s["outOfSync"])
        elif connected and s["outOfSync"] == 0:
            end = s["t"]
            break
    return start, end, pending


def main(results, out):
    with open(os.path.join(results, "meta.json")) as f:
        meta = json.load(f)
    runtime, repeat, reference = meta["runtime"], meta["repeat"], meta["reference"]
    targets = meta["targets"]
    labels = dict(targets)
    names = [t for t, _ in targets]

    print(f"fio {runtime}s per job after {meta['ramp']}s ramp, region {meta['size']}, one job per target, "
          f"{repeat} round{'s' if repeat > 1 else ''} interleaved; figures are medians over rounds, ratios the median of "
          f"each round's ratio (range in brackets). Ratios compare MiB/s within the same round.")
    print()
    # Each layered target against the one it adds to: the node against the same node without block
    # checksums (what they cost), the pair against the single node (what replication costs), the
    # encrypted pair against the pair (what peer encryption costs), the proxy and each gateway target
    # against the pair attached directly (what one more NBD hop costs, and what the gateway costs).
    below = {t: b for t, b in (("node", "node-nosums"), ("pair", "node"), ("pair-tls", "pair"), ("proxy", "pair"),
                               ("gateway", "pair"), ("gateway-tcp", "pair"))
             if t in names and b in names}
    pair_column = bool(below)
    header = "| workload | target | MiB/s | IOPS | mean lat | p99 lat | ratio to nbdkit |" + (" vs layer below: MiB/s; mean lat |" if pair_column else "")
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|" if pair_column else ""))

    rows = []
    summary = {}
    for name, title, args in meta["workloads"]:
        if name in ("resync", "scrub"):
            continue
        rounds = [{t: measure(os.path.join(results, f"{name}.{t}.{r}.json"), runtime) for t in names} for r in range(1, repeat + 1)]
        for t in names:
            ms = [rnd[t] for rnd in rounds]
            ratios = [rnd[t]["mib_s"] / rnd[reference]["mib_s"] if reference in rnd and rnd[reference]["mib_s"] > 0 else None
                      for rnd in rounds]
            base = below.get(t)
            pair_ratios = [rnd[t]["mib_s"] / rnd[base]["mib_s"] if base and rnd[base]["mib_s"] > 0 else None
                           for rnd in rounds]
            lat_ratios = [rnd[t]["mean_lat_us"] / rnd[base]["mean_lat_us"] if base and rnd[base]["mean_lat_us"] > 0 else None
                          for rnd in rounds]
            row = {
                "workload": name, "fio_args": args, "target": t, "label": labels[t],
                "mib_s": median(m["mib_s"] for m in ms), "iops": median(m["iops"] for m in ms),
                "mean_lat_us": median(m["mean_lat_us"] for m in ms), "p99_lat_us": median(m["p99_lat_us"] for m in ms),
                "ratio": median(ratios), "ratios": ratios,
                "below": base, "pair_ratio": median(pair_ratios), "pair_ratios": pair_ratios,
                "pair_lat_ratio": median(lat_ratios), "pair_lat_ratios": lat_ratios,
                "server": [m["server"] for m in ms], "fio": [m["fio"] for m in ms],
            }
            rows.append(row)
            ratio_text = "1.00 (ref)" if t == reference else fmt_ratio(ratios, repeat)
            line = (f"| {title} | {labels[t]} | {row['mib_s']:.1f} | {row['iops']:.0f} | {fmt_lat(row['mean_lat_us'])} | "
                    f"{fmt_lat(row['p99_lat_us'])} | {ratio_text} |")
            if pair_column:
                pair_text = "—"
                if base:
                    pair_text = f"{fmt_ratio(pair_ratios, repeat)} of {base}; ×{fmt_ratio(lat_ratios, repeat)}"
                line += f" {pair_text} |"
            print(line)

    scrub = report_scrub(results) if any(w[0] == "scrub" for w in meta["workloads"]) else None
    resync = report_resync(results, meta, rows) if any(w[0] == "resync" for w in meta["workloads"]) else None

    if any(c for r in rows for c in r["server"]):
        print()
        print("Server processes during the measured seconds (perf stat, median over rounds; the pair counts both nodes):")
        print()
        print("| workload | target | CPU µs per I/O | syscalls per I/O | context switches per I/O | cores busy |")
        print("|---|---|---:|---:|---:|---:|")
        for r in rows:
            costs = [c for c in r["server"] if c]
            if costs:
                def m(key):
                    return median(c[key] for c in costs)
                print(f"| {r['workload']} | {r['label']} | {m('cpu_us_per_io'):.1f} | {m('syscalls_per_io'):.1f} | "
                      f"{m('context_switches_per_io'):.1f} | {m('cpu_cores'):.2f} |")

    print()
    print_targets(rows, resync)

    if out:
        with open(out, "w") as f:
            json.dump({"runtime_s": runtime, "ramp_s": meta["ramp"], "size": meta["size"], "repeat": repeat,
                       "reference": reference, "results": rows, "scrub": scrub, "resync": resync}, f, indent=2)
        print(f"\nresults written to {out}", file=sys.stderr)


def report_scrub(results):
    """The scrub section: how fast node a reads and checks every allocated block of an idle pair's volume."""
    with open(os.path.join(results, "scrub.json")) as f:
        scrub = json.load(f)
    cap = scrub["default_cap"]
    print()
    print("Scrub on the idle pair (node a reads and checks every allocated block of vol0, no rate cap; each node scrubs its own replica):")
    print()
    print("| measurement | value |")
    print("|---|---:|")
    print(f"| read and checked | {scrub['bytes'] / 2**20:.0f} MiB in {scrub['seconds']:.2f} s |")
    print(f"| rate, uncapped | {scrub['mib_s']:.0f} MiB/s |")
    if cap > 0:
        print(f"| default cap (scrub.rateLimit) | {cap / 2**20:.0f} MiB/s: a 1 TiB replica in {2**40 / cap / 3600:.1f} h |")
    return scrub


def report_resync(results, meta, rows):
    """The resync section: an idle pair's resync rate against its replicated 1 MiB writes, and foreground IOPS during a resync."""
    seq = next((r for r in rows if r["workload"] == "seq-write-1m" and r["target"] == "pair"), None)
    if seq is not None:
        reference_mib_s = seq["mib_s"]
    else:
        reference_mib_s = measure(os.path.join(results, "resync-reference.json"), meta["runtime"])["mib_s"]

    rounds = []
    for round_ in range(1, meta["repeat"] + 1):
        name = f"resync-idle.{round_}.timeline"
        samples = read_timeline(os.path.join(results, name))
        start, end, moved = resync_window(samples)
        if start is None or end is None:
            raise SystemExit(f"the idle resync was not seen to start and finish; see {name}")
        rounds.append({"bytes": moved, "seconds": end - start, "mib_s": moved / 2**20 / (end - start),
                       "engine_peak_mib_s": max((s["rate"] for s in samples), default=0) / 2**20})
    middle = sorted(rounds, key=lambda r: r["mib_s"])[(len(rounds) - 1) // 2]
    moved, seconds, resync_mib_s, engine_rate = middle["bytes"], middle["seconds"], middle["mib_s"], middle["engine_peak_mib_s"]

    base = measure(os.path.join(results, "resync-fg-base.json"), meta["runtime"])
    during = measure(os.path.join(results, "resync-fg.json"), meta["runtime"])
    with open(os.path.join(results, "resync-fg.window")) as f:
        window_start, window_end = (float(x) for x in f.read().split())
    fg_samples = read_timeline(os.path.join(results, "resync-fg.timeline"))
    active = [s for s in fg_samples if window_start <= s["t"] <= window_end]
    coverage = sum(1 for s in active if s["outOfSync"] > 0 and s["connection"] == "connected") / len(active) if active else 0.0
    fg_start, fg_end, fg_moved = resync_window(fg_samples)

    result = {
        "reference_seq_write_mib_s": reference_mib_s,
        "idle": {"bytes": moved, "seconds": seconds, "mib_s": resync_mib_s, "engine_peak_mib_s": engine_rate,
                 "ratio": resync_mib_s / reference_mib_s if reference_mib_s > 0 else None, "rounds": rounds},
        "foreground": {"iops_without": base["iops"], "iops_during": during["iops"],
                       "ratio": during["iops"] / base["iops"] if base["iops"] > 0 else None,
                       "resync_active_fraction": coverage,
                       "resync_bytes": fg_moved,
                       "resync_seconds": (fg_end - fg_start) if fg_start and fg_end else None,
                       "mean_lat_us_without": base["mean_lat_us"], "mean_lat_us_during": during["mean_lat_us"]},
    }

    print()
    print(f"Resync on the replicated pair (node b killed, {moved / 2**30:.2f} GiB written through node a, b restarted):")
    print()
    print("| measurement | value | reference | ratio |")
    print("|---|---:|---:|---:|")
    spread = ""
    if len(rounds) > 1 and reference_mib_s > 0:
        ratios = sorted(r["mib_s"] / reference_mib_s for r in rounds)
        spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f})"
    median = f"median of {len(rounds)}: " if len(rounds) > 1 else ""
    print(f"| resync, idle pair ({median}{moved / 2**20:.0f} MiB in {seconds:.2f} s; engine's peak {engine_rate:.0f} MiB/s) | "
          f"{resync_mib_s:.1f} MiB/s | {reference_mib_s:.1f} MiB/s (pair, seq write 1 MiB QD8) | {result['idle']['ratio']:.2f}{spread} |")
    fg = result["foreground"]
    note = "" if coverage >= 0.9 else f"; the resync ran for only {coverage:.0%} of the job"
    print(f"| rand write 4 KiB QD32 during a resync (resync active {coverage:.0%} of the job{note}) | "
          f"{fg['iops_during']:.0f} IOPS, {fmt_lat(fg['mean_lat_us_during'])} | {fg['iops_without']:.0f} IOPS, "
          f"{fmt_lat(fg['mean_lat_us_without'])} (no resync) | {fg['ratio']:.2f} |")
    return result


def print_targets(rows, resync):
    """One line per project target the run measured."""
    def row(workload, target):
        return next((r for r in rows if r["workload"] == workload and r["target"] == target), None)

    lines = []
    sums = [r for r in rows if r["target"] == "node" and r["below"] == "node-nosums" and r["pair_ratio"] is not None]
    if sums:
        costly = [f"{r['workload']} ({r['pair_ratio']:.2f})" for r in sums if r["pair_ratio"] < 0.90]
        lines.append("node with block checksums >= 0.90 × without, on every workload: "
                     + ("missed on " + ", ".join(costly) if costly else f"met on the {len(sums)} measured"))
    node_checks = [row(w, "node") for w in ("seq-write-1m", "rand-write-4k", "rand-read-4k")]
    node_checks = [r for r in node_checks if r and r["ratio"] is not None]
    if node_checks:
        missed = [f"{r['workload']} ({r['ratio']:.2f})" for r in node_checks if r["ratio"] < 0.70]
        lines.append("node >= 0.70 × nbdkit on seq-write-1m, rand-write-4k, rand-read-4k: "
                     + ("missed on " + ", ".join(missed) if missed else f"met on the {len(node_checks)} measured"))
    pair_checks = [r for r in (row("seq-write-1m", "pair"), row("rand-write-4k", "pair")) if r and r["pair_ratio"] is not None]
    if pair_checks:
        missed = [f"{r['workload']} ({r['pair_ratio']:.2f})" for r in pair_checks if r["pair_ratio"] < 0.50]
        lines.append("pair >= 0.50 × node on seq-write-1m, rand-write-4k: "
                     + ("missed on " + ", ".join(missed) if missed else f"met on the {len(pair_checks)} measured"))
    lat = row("kbench-lat", "pair")
    if lat and lat["pair_lat_ratio"] is not None:
        lines.append(f"pair 4 KiB QD1 write latency <= 2 × node: {lat['pair_lat_ratio']:.2f} × "
                     + ("(met)" if lat["pair_lat_ratio"] <= 2.0 else "(missed)"))
    for target in ("gateway", "gateway-tcp"):
        gateway = [r for r in rows if r["target"] == target and r["pair_ratio"] is not None]
        if gateway:
            slow = [f"{r['workload']} ({r['pair_ratio']:.2f})" for r in gateway if r["pair_ratio"] < 0.80]
            lines.append(f"{target} >= 0.80 × pair's throughput: " + ("missed on " + ", ".join(slow) if slow else f"met on the {len(gateway)} measured"))
            late = [f"{r['workload']} ({r['pair_lat_ratio']:.2f})" for r in gateway if r["pair_lat_ratio"] > 1.2]
            lines.append(f"{target} mean latency <= 1.2 × pair's: " + ("missed on " + ", ".join(late) if late else f"met on the {len(gateway)} measured"))
            # A miss reads differently when one more NBD hop alone costs as much on this machine.
            hops = [(r, row(r["workload"], "proxy")) for r in gateway if r["pair_ratio"] < 0.80 or r["pair_lat_ratio"] > 1.2]
            hops = [f"{r['workload']} {p['pair_ratio']:.2f}, ×{p['pair_lat_ratio']:.2f}" for r, p in hops if p and p["pair_ratio"] is not None]
            if hops:
                lines.append(f"  the reference hop (proxy) where {target} missed: " + "; ".join(hops))
    if resync:
        idle, fg = resync["idle"]["ratio"], resync["foreground"]["ratio"]
        lines.append(f"resync >= 0.80 × replicated seq write: {idle:.2f} " + ("(met)" if idle >= 0.80 else "(missed)"))
        lines.append(f"foreground IOPS during a resync >= 0.50 × without: {fg:.2f} " + ("(met)" if fg >= 0.50 else "(missed)"))
    if lines:
        print("Targets:")
        for line in lines:
            print(f"- {line}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
