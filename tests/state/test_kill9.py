"""SIGKILL during a burst of events loses nothing that was acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bootserver.state import connect_store

WRITER = Path(__file__).with_name("burst_writer.py")
KILL_AFTER = 3000  # acknowledged events seen before the kill (of 100,000 planned)


async def test_acknowledged_events_survive_sigkill(sql_url):
    if sql_url.startswith("sqlite"):
        Path(sql_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, str(WRITER), sql_url], stdout=subprocess.PIPE, text=True,
                             cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    acked: list[str] = []
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(acked) < KILL_AFTER and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(line)
        os.kill(child.pid, signal.SIGKILL)
        acked.extend(child.stdout.readlines())  # printed before the kill: acknowledged too
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    complete = [line.split() for line in acked if line.endswith("\n")]
    assert len(complete) >= KILL_AFTER
    store = await connect_store(sql_url, retention=100_000)
    try:
        by_mac: dict[str, set[int]] = {}
        for mac, i in complete:
            by_mac.setdefault(mac, set()).add(int(i))
        for mac, wanted in by_mac.items():
            stored = {e.detail["i"] for e in await store.events(mac, limit=1000)}
            missing = wanted - stored
            assert not missing, f"{mac}: acknowledged events {sorted(missing)[:10]} lost"
    finally:
        await store.close()
