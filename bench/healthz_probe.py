"""Poll GET /healthz every INTERVAL while a storm runs; on SIGTERM (or at --seconds) print one JSON
line: {"count": n, "failures": n, "max_ms": worst answer time, "p99_ms": …, "by_pid": {pid: worst}}.

Each poll is a new connection, as a monitoring check or a new client would make: with HTTP workers
(SO_REUSEPORT) the kernel hands each connection to one of the processes, so every process gets
polled (a kept-alive connection would stay with one); the time counts the connect too. The answer
names the process that gave it (its pid), so the worst time is kept per process as well.

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


def poll(host: str, port: int, path: str) -> int | None:
    """One GET on a new connection: the answering pid (None if it said anything but 200)."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            return None
        try:
            return int(json.loads(body).get("pid", 0))
        except (ValueError, AttributeError, TypeError):
            return 0
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=200.0, help="stop polling after this long")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    times: list[float] = []
    by_pid: dict[str, float] = {}
    failures = 0
    end = time.monotonic() + args.seconds
    while not stopping and time.monotonic() < end:
        started = time.perf_counter()
        try:
            pid = poll(url.hostname, url.port or 80, url.path)
        except (OSError, http.client.HTTPException):
            pid = None
        took = (time.perf_counter() - started) * 1000
        if pid is None:
            failures += 1
        else:
            times.append(took)
            by_pid[str(pid)] = max(by_pid.get(str(pid), 0.0), took)
        time.sleep(INTERVAL)
    times.sort()
    print(json.dumps({"count": len(times), "failures": failures, "max_ms": times[-1] if times else None,
                      "p99_ms": times[int(len(times) * 0.99)] if times else None,
                      "by_pid": by_pid}), flush=True)


if __name__ == "__main__":
    main()
