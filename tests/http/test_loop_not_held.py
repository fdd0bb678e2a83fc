"""A cold Ignition render never holds the event loop that DHCP, TFTP and every other request share.

The Butane template reads a local file that is a FIFO: opening it blocks until the test writes to
it, as a slow disk or a hung network mount would. While that render waits, the same server must
keep answering other requests; once the test writes, the render completes with the file's bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path

import aiohttp

from tests.support.waiting import until

CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: slow}
spec:
  boot: {kernel: https://mirror.example/vmlinuz}
  ignition: {butane: slow.bu}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: slowpoke}
spec: {mac: "02:00:00:00:00:42", profile: slow}
"""

BUTANE = """\
variant: flatcar
version: 1.0.0
storage:
  files:
    - path: /etc/slow
      contents: {local: slow.fifo}
"""


def release(fifo: str, data: bytes) -> None:
    """Open the FIFO for writing (unblocking its reader) and write `data`."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def waiting_on_fifo(pid: int) -> bool:
    """True when a thread of process `pid` sleeps in the kernel's FIFO code (opening or reading one)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            wchan = (task / "wchan").read_text()
        except OSError:
            continue
        if "fifo" in wchan or "pipe" in wchan or "partner" in wchan:
            return True
    return False


async def test_cold_render_waiting_on_a_file_leaves_the_server_answering(serve, tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "catalog.yaml").write_text(CATALOG)
    (catalog / "slow.bu").write_text(textwrap.dedent(BUTANE))
    fifo = str(catalog / "slow.fifo")
    os.mkfifo(fifo)
    server = serve("--catalog", str(catalog), "--state", "memory://")
    released = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            ignition = asyncio.ensure_future(session.get(f"{server.url}/ignition?mac=02:00:00:00:00:42"))
            assert await until(lambda: waiting_on_fifo(server.proc.pid), timeout=10)  # the render is stuck on the file
            answered = []
            for _ in range(3):  # and meanwhile the server answers other requests
                try:
                    async with session.get(f"{server.url}/healthz", timeout=aiohttp.ClientTimeout(total=3)) as r:
                        answered.append(r.status)
                except asyncio.TimeoutError:
                    answered.append("timeout")
            assert answered == [200, 200, 200] and not ignition.done()
            await asyncio.to_thread(release, fifo, b"written late\n")
            released = True
            async with await ignition as response:
                assert response.status == 200
                config = json.loads(await response.text())
    finally:
        if not released:  # let a render still blocked on the FIFO go, so the server can stop
            await asyncio.to_thread(release, fifo, b"")
    source = config["storage"]["files"][0]["contents"]["source"]
    assert "written" in source and "late" in source
