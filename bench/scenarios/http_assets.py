"""HTTP /assets against nginx on the same files: a 256 MB single stream and 50 concurrent 16 MB
downloads, with curl as the client for both, inside a namespace of our own (loopback).

For the single stream the server is pinned to CPU 0 and curl to CPU 1 (both servers alike): on
loopback the receiver's TCP work is charged to whichever process happens to share its CPU, which
otherwise makes the CPU-per-GB figure jump between two modes from one run to the next. The 50
concurrent downloads run unpinned, so nginx uses both of its workers as it would in real use.
"""

from __future__ import annotations

import os
import time

from bench.common import (Bootserver, Netns, Nginx, alternate, pin, random_file, result, scenario_main,
                          tree_cpu_seconds, wait_http, workdir)

BIG, SMALL, CONCURRENT = 256 << 20, 16 << 20, 50
STREAMS_PER_REP = 4  # one 256 MB stream lasts ~0.1 s: four per repetition steady the CPU figure
ROUNDS_PER_REP = 2  # likewise for the 50 concurrent downloads (0.8 GB a round)


def single_stream(ns: Netns, pid: int, url: str) -> tuple[float, float]:
    """(MB/s, server CPU s/GB) over STREAMS_PER_REP sequential 256 MB downloads."""
    pinned = (os.cpu_count() or 1) >= 2
    client = ["taskset", "-c", "1"] if pinned else []
    if pinned:
        pin(pid, {0})
    try:
        cpu0, seconds = tree_cpu_seconds(pid), 0.0
        for _ in range(STREAMS_PER_REP):
            out = ns.run([*client, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                          url])
            code, size, took = out.stdout.split()
            if code != "200" or int(size) != BIG:
                raise RuntimeError(f"{url}: HTTP {code}, {size} bytes")
            seconds += float(took)
        cpu = tree_cpu_seconds(pid) - cpu0
    finally:
        if pinned:
            pin(pid, None)
    gb = STREAMS_PER_REP * BIG / 1e9
    return STREAMS_PER_REP * BIG / 1e6 / seconds, cpu / gb


def concurrent(ns: Netns, pid: int, url: str) -> tuple[float, float]:
    """(aggregate MB/s, server CPU s/GB) for 50 simultaneous 16 MB downloads (curl --parallel),
    ROUNDS_PER_REP rounds of them."""
    args = ["curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", str(CONCURRENT),
            "-w", "%{http_code} %{size_download}\n"]
    for _ in range(CONCURRENT):
        args += ["-o", "/dev/null", url]
    cpu0, seconds = tree_cpu_seconds(pid), 0.0
    for _ in range(ROUNDS_PER_REP):
        t0 = time.perf_counter()
        out = ns.run(args)
        seconds += time.perf_counter() - t0
        ok = sum(line == f"200 {SMALL}" for line in out.stdout.split("\n"))
        if ok != CONCURRENT:
            raise RuntimeError(f"{url}: only {ok} of {CONCURRENT} downloads complete: {out.stdout[:300]}")
    cpu = tree_cpu_seconds(pid) - cpu0
    total = ROUNDS_PER_REP * CONCURRENT * SMALL
    return total / 1e6 / seconds, cpu / (total / 1e9)


def run(reps: int = 3) -> list[dict]:
    with workdir("http-assets") as wd, Netns("http-assets") as ns:
        assets = wd / "assets"
        assets.mkdir()
        random_file(assets / "big.img", BIG)
        random_file(assets / "medium.img", SMALL)
        (wd / "catalog").mkdir()
        ours = Bootserver(ns, wd, "--http", "127.0.0.1:8080", "--assets", str(assets), "--catalog",
                          str(wd / "catalog"), "--state", f"sqlite:///{wd}/state.db")
        nginx = Nginx(ns, wd, "127.0.0.1:8081", assets)
        try:
            for port in (8080, 8081):
                wait_http(ns, f"http://127.0.0.1:{port}/assets/medium.img")
                ns.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/assets/big.img"])  # page cache
            big_ours, big_nginx, many_ours, many_nginx = alternate(
                reps,
                lambda: single_stream(ns, ours.pid, "http://127.0.0.1:8080/assets/big.img"),
                lambda: single_stream(ns, nginx.pid, "http://127.0.0.1:8081/assets/big.img"),
                lambda: concurrent(ns, ours.pid, "http://127.0.0.1:8080/assets/medium.img"),
                lambda: concurrent(ns, nginx.pid, "http://127.0.0.1:8081/assets/medium.img"))
        finally:
            ours.stop()
            nginx.stop()
    name = "http assets"
    return [
        result(name, "256 MB single stream", "MB/s", [r[0] for r in big_ours], "nginx", [r[0] for r in big_nginx],
               True, {"ratio": 0.6}),
        result(name, "256 MB single stream: server CPU", "s/GB", [r[1] for r in big_ours], "nginx",
               [r[1] for r in big_nginx], False, {"ratio": 1.1}),
        result(name, "50 × 16 MB concurrent", "MB/s", [r[0] for r in many_ours], "nginx",
               [r[0] for r in many_nginx], True, {"ratio": 0.8}),
        result(name, "50 × 16 MB concurrent: server CPU", "s/GB", [r[1] for r in many_ours], "nginx",
               [r[1] for r in many_nginx], False,
               note="nginx runs Debian's worker_processes auto (2 workers here); bootserver is one process"),
    ]


if __name__ == "__main__":
    scenario_main(run)
