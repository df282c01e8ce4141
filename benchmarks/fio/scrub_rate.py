#!/usr/bin/env python3
"""Times one scrub pass of a volume on a node, with no rate cap, and writes what it found.

Usage: scrub_rate.py ADMIN_URL TOKEN_FILE VOLUME OUT_JSON [--timeout SEC]

Sets the volume's scrub cap to none (PUT /api/v1/volumes/VOLUME/scrub/settings), starts a pass
(POST .../scrub/start), polls GET .../scrub every 0.05 s until the pass has ended, then puts the
cap back. OUT_JSON gets {"bytes": <bytes the pass read>, "seconds": ..., "mib_s": ...,
"default_cap": <the cap before, bytes/s>, "found": <damaged blocks>}. Exits 1 on --timeout.
"""
import json
import sys
import time
import urllib.request


def call(admin, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{admin}/api/v1{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main(argv):
    timeout = 600.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    admin, token_file, volume, out = argv
    with open(token_file) as f:
        token = f.read().strip()
    path = f"/volumes/{volume}/scrub"
    before = call(admin, token, "GET", path)
    cap = before["rateLimit"]
    call(admin, token, "PUT", f"{path}/settings", {"rateLimit": "0"})
    try:
        started = time.time()
        call(admin, token, "POST", f"{path}/start")
        deadline = started + timeout
        while True:
            now = call(admin, token, "GET", path)
            if now["state"] == "idle" and now["lastCompleted"] != before["lastCompleted"]:
                ended = time.time()
                break
            if time.time() > deadline:
                print(f"the scrub of {volume} did not finish within {timeout} s: {now}", file=sys.stderr)
                return 1
            time.sleep(0.05)
    finally:
        call(admin, token, "PUT", f"{path}/settings", {"rateLimit": str(cap)})
    scanned = now["lastPass"]["scannedBytes"]
    seconds = ended - started
    with open(out, "w") as f:
        json.dump({"bytes": scanned, "seconds": seconds, "mib_s": scanned / 2**20 / seconds if seconds > 0 else None,
                   "default_cap": cap, "found": now["lastPass"]["detected"]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
