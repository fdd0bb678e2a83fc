"""The sendfile pool's threads run below the event loop's priority (bootserver.http.sendfile.NICE steps
lower, relative to the thread that started them), so a body's copy yields a core to DHCP, TFTP and
every answer; the loop's own thread keeps its priority. In a fresh process started at nice 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bootserver.http.sendfile import NICE

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import json, os, threading
from bootserver.http import sendfile
me = lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
pool = [sendfile._POOL.submit(me).result(timeout=10) for _ in range(3)]
print(json.dumps({"loop": me(), "pool": pool}))
"""


def test_pool_threads_run_below_the_loop_thread():
    out = subprocess.run(["nice", "-n", "3", sys.executable, "-c", CHECK], capture_output=True, text=True,
                         timeout=60, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    found = json.loads(out.strip().splitlines()[-1])
    base = os.getpriority(os.PRIO_PROCESS, 0) + 3
    assert found["loop"] == base
    assert found["pool"] == [min(19, base + NICE)] * 3
