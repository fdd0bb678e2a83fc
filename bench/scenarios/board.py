"""The board's fleet page with 10,000 machines: how long the page takes, on the server and in a browser.

A SQLite state store is filled with 10,000 machines (a few timeline events each, states spread
over the lifecycle), then `bootserver serve` on loopback answers the board. Measured per rep:
the first page right after start (every row's last step read from the timeline: cold), the same
page again (warm), a search, a state filter, the last page, and a full load in headless Chromium
(navigation start to the load event, the SSE stream connected). No peer: the figure is absolute.
Bounded: 10,000 machines, a handful of requests per rep.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, result, scenario_main, stop, wait_for
from bootserver.state import Event, connect_store

MACHINES = 10_000
STATES = ("ready", "installing", "installed", "installed", "failed", "discovered")
KINDS = ("dhcp.offer", "tftp.transfer", "http.ipxe", "http.kernel", "http.ignition")
CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec: {boot: {kernel: "http://mirror.example/vmlinuz"}}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack}
spec: {selector: {mac_prefix: "52:54:00"}, profile: install}
"""


async def fill(url: str) -> None:
    store = await connect_store(url)
    try:
        async def machine(n: int) -> None:
            mac = f"52:54:00:{n // 65536:02x}:{n // 256 % 256:02x}:{n % 256:02x}"
            await store.ensure(mac, state=STATES[n % len(STATES)], profile="install", arch="x86_64-efi",
                               client_ip=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
            for kind in KINDS[: 1 + n % len(KINDS)]:
                await store.record(Event(mac, kind, "10.0.0.1", {"file": "ipxe.efi"}))

        for start in range(0, MACHINES, 500):
            await asyncio.gather(*(machine(n) for n in range(start, min(start + 500, MACHINES))))
    finally:
        await store.close()


def timed_get(url: str) -> float:
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url],
                          capture_output=True, text=True, timeout=60)
    code, seconds = done.stdout.split()
    assert code == "200", (url, done.stdout)
    return float(seconds) * 1000


def browser_load_ms(url: str) -> float | None:
    """Navigation start to the load event of the fleet page in headless Chromium (None without it)."""
    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bsbe-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        return driver.execute_script("const t = performance.getEntriesByType('navigation')[0];"
                                     "return t.loadEventEnd - t.startTime;")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run(reps: int = 3) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bsbe-board-"))
    try:
        (work / "catalog").mkdir()
        (work / "catalog" / "catalog.yaml").write_text(CATALOG)
        state = f"sqlite:///{work / 'state.db'}"
        asyncio.run(fill(state))
        series: dict[str, list[float]] = {}
        for _rep in range(reps):
            log = work / "serve.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "bootserver", "serve", "--catalog", str(work / "catalog"),
                                         "--state", state, "--http", "127.0.0.1:0"],
                                        stdout=out, stderr=subprocess.STDOUT, cwd=work,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})
            try:
                wait_for(lambda: "HTTP listening" in log.read_text() or proc.poll() is not None, 30, "bootserver")
                port = re.search(r"HTTP listening on [^ ]+:(\d+)", log.read_text()).group(1)
                base = f"http://127.0.0.1:{port}/ui/"
                for name, url in (("first page, cold (fresh start)", base), ("first page, warm", base),
                                  ("search 'ff:3'", base + "?q=ff:3"), ("state filter 'failed'", base + "?state=failed"),
                                  ("last page (100)", base + "?page=100")):
                    series.setdefault(name, []).append(timed_get(url))
                loaded = browser_load_ms(base)
                if loaded is not None:
                    series.setdefault("Chromium load event", []).append(loaded)
            finally:
                stop(proc)
        return [result("board", f"fleet page, {MACHINES:,} machines: {name}", "ms", values, "", [], False,
                       target={"max": 1000} if name.startswith("Chromium") else None)
                for name, values in series.items()]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    scenario_main(run)
