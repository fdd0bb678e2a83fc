"""`http_workers: 2`: a worker process beside the main one on the same HTTP port (SO_REUSEPORT).

Connections are spread by the kernel, so each check opens fresh connections until both
processes have answered (a keep-alive connection stays with one process: /healthz on it says
which, by pid) and asserts on every answer, whichever process gave it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time

import pytest

from bootserver.config import SettingsError, load_settings

MAC = "52:54:00:00:00:01"
TRIES = 200  # fresh connections per check; two processes: all on one has odds 2**-199


def ask(url: str, *paths: str) -> tuple[int, list[str]]:
    """On one new connection: the answering pid (/healthz), then each path's body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/healthz")
        health = json.loads(conn.getresponse().read())
        bodies = []
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            bodies.append(f"{response.status} {response.read().decode()}")
        return health["pid"], bodies
    finally:
        conn.close()


def each_process(url: str, pids: set[int], *paths: str) -> dict[int, list[list[str]]]:
    """Answers by process, over new connections until every pid in `pids` has answered."""
    seen: dict[int, list[list[str]]] = {}
    for _ in range(TRIES):
        pid, bodies = ask(url, *paths)
        seen.setdefault(pid, []).append(bodies)
        if set(seen) == pids:
            return seen
    raise AssertionError(f"not every process answered in {TRIES} connections: {set(seen)} of {pids}")


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def worker_pids(server) -> set[int]:
    found = server.wait_log(r"HTTP served by 2 processes: this one and workers (\d+)")
    return {int(found.group(1))}


def test_a_transition_and_a_reload_reach_every_process(serve, tmp_path, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", f"sqlite:///{tmp_path}/state.db", "--http-workers", "2")
    pids = {server.proc.pid} | worker_pids(server)
    ipxe = f"/ipxe?mac={MAC}&arch=i386&platform=pcbios"
    for answers in each_process(server.url, pids, ipxe).values():
        assert all(a[0].startswith("200 ") and "kernel " in a[0] for a in answers)
    _, [script] = ask(server.url, ipxe)
    events = re.search(r"bootserver\.events=\S+(/api/v1/\S+)", script).group(1)
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", events, body=json.dumps({"event": "installed"}), headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()
    for answers in each_process(server.url, pids, ipxe).values():  # the state is the store's: every process sees it
        assert all(a[0].startswith("200 ") and "sanboot --no-describe --drive 0x80" in a[0] and "kernel " not in a[0]
                   for a in answers), answers

    (catalog_dir / "more.yaml").write_text(
        "apiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: node9}\n"
        "spec: {mac: '52:54:00:00:00:09', profile: install, metadata: {hostname: node9, disk: {device: /dev/vda}}}\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # each process's watcher sees the edit within a second or so
        generations = {}
        for _ in range(TRIES):
            pid, [health] = ask(server.url, "/healthz")
            generations[pid] = json.loads(health.split(" ", 1)[1])["catalog"]["generation"]
            if set(generations) == pids:
                break
        if set(generations) == pids and min(generations.values()) > 1:
            break
        time.sleep(0.2)
    assert set(generations) == pids and min(generations.values()) > 1, generations
    for answers in each_process(server.url, pids, "/ipxe?mac=52:54:00:00:00:09&arch=i386&platform=pcbios").values():
        assert all("hostname=node9" in a[0] for a in answers), answers
    assert server.stop() == 0
    log = server.log()
    for pid in pids - {server.proc.pid}:
        assert f"HTTP worker {pid} stopped (exited with code 0)" in log
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone, and reaped by the main process


def test_metrics_in_every_process_report_every_loops_worst_block(serve, tmp_path, catalog_dir):
    """Each process runs its own loop-lag probe; /metrics, whichever process answers, names both and
    reports the worst of them as the server's figure (bootserver.loop_lag.SharedWorst)."""
    server = serve("--catalog", str(catalog_dir), "--state", f"sqlite:///{tmp_path}/state.db", "--http-workers", "2")
    pids = {server.proc.pid} | worker_pids(server)
    time.sleep(0.5)  # a few of each probe's 10 ms ticks: every slot holds some lateness
    for pid, answers in each_process(server.url, pids, "/metrics").items():
        for [metrics] in answers:
            assert metrics.startswith("200 "), metrics
            by = {name: float(value) for name, value in
                  re.findall(r'^bootserver_loop_block_process_max_seconds\{process="([^"]+)"\} (\S+)$', metrics, re.M)}
            assert set(by) == {"main", "http-worker-1"} and all(v > 0 for v in by.values()), (pid, by)
            worst = float(re.search(r"^bootserver_loop_block_max_seconds (\S+)$", metrics, re.M).group(1))
            assert worst == max(by.values()), (pid, worst, by)
    assert server.stop() == 0


def test_a_dead_worker_is_replaced_and_one_that_keeps_dying_stops_the_server(serve, tmp_path, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", f"sqlite:///{tmp_path}/state.db", "--http-workers", "2")
    [first] = worker_pids(server)
    assert parent_of(first) == server.proc.pid
    os.kill(first, signal.SIGKILL)  # a process of this test's own server
    found = server.wait_log(rf"HTTP worker (\d+) started in place of {first}", timeout=30)
    second = int(found.group(1))
    assert f"HTTP worker {first} was killed by SIGKILL; starting another" in server.log()
    each_process(server.url, {server.proc.pid, second}, "/healthz")  # the new one serves
    victim, deadline = second, time.monotonic() + 60
    while server.proc.poll() is None and time.monotonic() < deadline:  # keep killing each replacement
        if parent_of(victim) == server.proc.pid:  # still our server's worker, not a reused PID
            os.kill(victim, signal.SIGKILL)
        found = re.findall(r"HTTP worker (\d+) started in place of", server.log())
        victim = int(found[-1]) if found else victim
        time.sleep(0.1)
    assert server.proc.wait(15) == 1
    assert re.search(r"CRITICAL .*workers died within a minute: giving up", server.log())


def test_several_workers_need_a_shared_store():
    with pytest.raises(SettingsError, match="memory:// lives in one process"):
        load_settings(None, {"http_workers": 2, "state": "memory://"}, environ={})
    with pytest.raises(SettingsError, match="expected 1 to 32"):
        load_settings(None, {"http_workers": 0}, environ={})
    assert load_settings(None, {}, environ={}).http_workers == 1  # one process unless asked


def test_auto_is_one_http_process_per_core():
    cores = len(os.sched_getaffinity(0))
    assert load_settings(None, {"http_workers": "auto"}, environ={}).http_workers == min(cores, 32)
    assert load_settings(None, {}, environ={"BOOTSERVER_HTTP_WORKERS": "AUTO"}).http_workers == min(cores, 32)
    with pytest.raises(SettingsError, match="expected a whole number or auto, got 'all'"):
        load_settings(None, {"http_workers": "all"}, environ={})
    if cores > 1:  # auto counts as the processes it means: they need a shared store too
        with pytest.raises(SettingsError, match="memory:// lives in one process"):
            load_settings(None, {"http_workers": "auto", "state": "memory://"}, environ={})
