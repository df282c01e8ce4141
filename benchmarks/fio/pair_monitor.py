#!/usr/bin/env python3
"""Polls a node's admin API for one volume's replication state and writes a timeline.

Usage: pair_monitor.py ADMIN_URL TOKEN_FILE VOLUME OUT [--interval SEC] [--timeout SEC]
                       [--until synced|resyncing|disconnected|connected]

Every --interval seconds (default 0.05) appends one JSON line to OUT:
  {"t": <time.time()>, "connection": ..., "state": <resync.state>, "outOfSync": <bytes>,
   "total": <resync.totalBytes>, "done": <resync.doneBytes>, "sent": <resync.sentBytes>,
   "rate": <resync.bytesPerSecond>}

--until says when to stop (exit 0):
  synced        once a resync has been seen (state running/paused, or bytes out of sync while
                connected) and the volume is then connected with nothing out of sync
  resyncing     once it is connected and a resync runs (or bytes are out of sync)
  disconnected  once the volume's connection is not "connected"
  connected     once it is connected with nothing out of sync
Without --until it runs until killed (SIGTERM ends it cleanly). Exits 1 on --timeout.
"""
import json
import signal
import sys
import time
import urllib.request


def main(argv):
    args = {"--interval": "0.05", "--timeout": "600", "--until": ""}
    positional = []
    i = 0
    while i < len(argv):
        if argv[i] in args:
            args[argv[i]] = argv[i + 1]
            i += 2
        else:
            positional.append(argv[i])
            i += 1
    if len(positional) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    admin, token_file, volume, out = positional
    interval, timeout, until = float(args["--interval"]), float(args["--timeout"]), args["--until"]
    with open(token_file) as f:
        token = f.read().strip()
    request = urllib.request.Request(f"{admin}/api/v1/volumes/{volume}", headers={"Authorization": f"Bearer {token}"})

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    deadline = time.time() + timeout
    seen_resync = False
    with open(out, "a") as log:
        while not stopping:
            now = time.time()
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    replication = json.load(response)["replication"]
            except OSError:
                replication = None
            if replication is not None:
                resync = replication["resync"]
                sample = {"t": now, "connection": replication["connection"], "state": resync["state"],
                          "outOfSync": replication["outOfSyncBytes"], "total": resync["totalBytes"],
                          "done": resync["doneBytes"], "sent": resync["sentBytes"], "rate": resync["bytesPerSecond"]}
                log.write(json.dumps(sample) + "\n")
                log.flush()
                connected = sample["connection"] == "connected"
                if sample["state"] in ("running", "paused") or (connected and sample["outOfSync"] > 0):
                    seen_resync = True
                if until == "resyncing" and connected and seen_resync:
                    return 0
                if until == "disconnected" and not connected:
                    return 0
                if until == "connected" and connected and sample["outOfSync"] == 0:
                    return 0
                if until == "synced" and seen_resync and connected and sample["outOfSync"] == 0:
                    return 0
            if now > deadline:
                print(f"pair_monitor: timed out after {timeout:.0f} s waiting for '{until}'", file=sys.stderr)
                return 1
            time.sleep(max(0.0, interval - (time.time() - now)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
