"""Poll GET /healthz every INTERVAL while a storm runs; on SIGTERM (or at --seconds) print one JSON
line: {"count": n, "failures": n, "max_ms": worst answer time, "p99_ms": …}.

    python -m bench.healthz_probe http://10.66.0.1:8080/healthz --seconds 200
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import time
import urllib.parse

INTERVAL = 0.02  # seconds between polls: fine enough to catch any stall of 50 ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=200.0, help="stop polling after this long")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    times: list[float] = []
    failures = 0
    conn = None
    end = time.monotonic() + args.seconds
    while not stopping and time.monotonic() < end:
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=2)
            conn.request("GET", url.path)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                failures += 1
            times.append((time.perf_counter() - started) * 1000)
        except (OSError, http.client.HTTPException):
            failures += 1
            conn = None
        time.sleep(INTERVAL)
    times.sort()
    print(json.dumps({"count": len(times), "failures": failures, "max_ms": times[-1] if times else None,
                      "p99_ms": times[int(len(times) * 0.99)] if times else None}), flush=True)


if __name__ == "__main__":
    main()
