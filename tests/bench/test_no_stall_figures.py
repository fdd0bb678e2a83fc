"""The storm's no-stall figures: the /healthz probe polls every process (a new connection each time) and
keeps the worst answer per process; the loop-lag figures the storm reads from /metrics are the ones the
server exposes, the worst of every process and each one's by name."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest

from bench.common import REPO
from bench.scenarios.storm import by_process, loop_figures
from bootserver.loop_lag import FIGURES, REGISTRY, SharedWorst, share


def test_the_probe_polls_on_new_connections_and_keeps_the_worst_per_process():
    seen = {"requests": 0, "connections": 0}

    class Health(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

        def setup(self):
            super().setup()
            seen["connections"] += 1

        def do_GET(self):
            seen["requests"] += 1
            n = seen["requests"]
            status = 503 if n % 5 == 0 else 200  # every fifth poll: a failure
            body = json.dumps({"status": "ok", "pid": 101 + n % 2}).encode()  # two "processes" take turns
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = subprocess.run([sys.executable, "-m", "bench.healthz_probe",
                              f"http://127.0.0.1:{server.server_address[1]}/healthz", "--seconds", "1"],
                             cwd=REPO, capture_output=True, text=True, timeout=30, check=True).stdout
    finally:
        server.shutdown()
        server.server_close()
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["count"] + figures["failures"] == seen["requests"] >= 10
    assert figures["failures"] == seen["requests"] // 5
    assert seen["connections"] == seen["requests"]  # one poll, one connection
    assert set(figures["by_pid"]) == {"101", "102"}
    assert figures["max_ms"] >= max(figures["by_pid"].values()) > 0


def test_the_storm_reads_the_worst_block_of_every_process_from_any_metrics_answer():
    saved = (FIGURES.shared, FIGURES.slot, FIGURES.worst, FIGURES.busy)
    shared = SharedWorst(3)
    try:
        FIGURES.worst = FIGURES.busy = 0.0
        share(shared, 0)
        FIGURES.raise_to(0.012, 0.004)
        shared.raise_to(1, 0.031, 0.009)  # what two workers wrote in their slots
        shared.raise_to(2, 0.018, 0.015)
        figures = loop_figures(generate_latest(REGISTRY).decode())
    finally:
        FIGURES.shared, FIGURES.slot, FIGURES.worst, FIGURES.busy = saved
        shared.close()
    assert round(figures["loop_block_ms"], 6) == 31.0 and round(figures["loop_busy_ms"], 6) == 15.0
    assert {k: round(v, 6) for k, v in figures["loop_block_by_process"].items()} == {
        "main": 12.0, "http-worker-1": 31.0, "http-worker-2": 18.0}
    assert by_process([figures], "loop_busy_by_process") == "main 4 ms, http-worker-1 9 ms, http-worker-2 15 ms"
    assert loop_figures("")["loop_block_by_process"] == {}  # a server without the gauges: nothing made up
