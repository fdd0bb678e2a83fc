"""Extra HTTP processes on the server's port (`http_workers: N`), started and watched by the main one.

One Python process serves HTTP on one core. With `http_workers: N` the main process (proxyDHCP,
TFTP and HTTP, as always) is joined by N - 1 worker processes (bootserver.http_worker) that listen
on the same address with SO_REUSEPORT, so the kernel spreads connections over them. Every worker
has its own catalog, answer caches and store connection; all state goes through the store (SQLite
in WAL mode or PostgreSQL), which every request reads, so a transition made by one process is seen
by the next request anywhere. Each worker watches the catalog itself, and SIGHUP is passed on.
Every process keeps its worst event-loop block in a slot of one shared memory file (SharedWorst),
so /metrics, whichever process answers it, reports the worst of them all and each one's.

The main process keeps serving HTTP beside its workers. Leaving HTTP to N workers alone (the main
process holding the port bound but not listening) was measured in the 1,000-machine storm: no
shorter worst block (46 ms either way), one more process (about 60 MB), and proxyDHCP's and TFTP's
metrics and live board events would have had no HTTP process to show them.

A worker that dies is started again; if workers keep dying (more than RESTARTS_PER_MINUTE a
minute) the server gives up and exits with a clear message instead of limping on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Callable

from bootserver.config import Settings, split_hostport
from bootserver.loop_lag import SharedWorst

log = logging.getLogger("bootserver.http")

READY = b"ready\n"  # what a worker prints on stdout once it listens
START_TIMEOUT = 60.0  # seconds for a worker to load the catalog and listen
STOP_TIMEOUT = 5.0  # seconds a worker gets to finish after SIGTERM before SIGKILL
RESTARTS_PER_MINUTE = 5
WATCH_INTERVAL = 0.5


class WorkerError(RuntimeError):
    """A worker did not start, or workers keep dying."""


class HTTPWorkers:
    def __init__(self, settings: Settings, port: int, on_give_up: Callable[[str], None]) -> None:
        host, _ = split_hostport(settings.http)
        bracketed = f"[{host}]" if ":" in host else host
        # the workers bind the port the main process got (it may have asked for port 0)
        self.settings = dataclasses.replace(settings, http=f"{bracketed}:{port}", dhcp=(), tftp="off")
        self.count = settings.http_workers - 1
        self.lag = SharedWorst(self.count + 1)  # every process's worst loop block: bootserver.loop_lag
        self.on_give_up = on_give_up
        self.procs: list[subprocess.Popen] = []
        self._deaths: list[float] = []
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def start(self) -> None:
        for slot in range(1, self.count + 1):
            self.procs.append(await self._spawn(slot))
        log.info("HTTP served by %d processes: this one and workers %s", self.count + 1,
                 ", ".join(map(str, self.pids)))
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _spawn(self, slot: int) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "bootserver.http_worker", str(os.getpid()), str(self.lag.fd),
                                 str(slot)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(self.lag.fd,))
        try:
            proc.stdin.write(pickle.dumps(self.settings))  # our own child: the settings this process uses
            proc.stdin.close()
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), START_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            line = b""
        if line != READY:
            await asyncio.to_thread(_end, proc)
            raise WorkerError(f"HTTP worker {proc.pid} did not start (exit code {proc.returncode}); see its log "
                              "lines above")
        proc.stdout.close()
        return proc

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(WATCH_INTERVAL)
            for i, proc in enumerate(self.procs):
                if self._stopping or proc.poll() is None:
                    continue
                now = time.monotonic()
                self._deaths = [t for t in self._deaths if now - t < 60] + [now]
                why = _exit_reason(proc.returncode)
                if len(self._deaths) > RESTARTS_PER_MINUTE:
                    self.on_give_up(f"HTTP worker {proc.pid} {why}; {len(self._deaths)} workers died within a "
                                    "minute: giving up")
                    return
                log.error("HTTP worker %d %s; starting another", proc.pid, why)
                try:
                    self.procs[i] = await self._spawn(i + 1)
                except WorkerError as exc:
                    self.on_give_up(str(exc))
                    return
                log.info("HTTP worker %d started in place of %d", self.procs[i].pid, proc.pid)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def signal_all(self, sig: int) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    async def stop(self) -> None:
        """SIGTERM every worker by PID, wait for them (SIGKILL after STOP_TIMEOUT)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.signal_all(signal.SIGTERM)
        await asyncio.gather(*(asyncio.to_thread(_end, p) for p in self.procs))
        for proc in self.procs:
            log.info("HTTP worker %d stopped (%s)", proc.pid, _exit_reason(proc.returncode))
        self.procs.clear()


def _end(proc: subprocess.Popen) -> None:
    """Wait for our own worker to go; SIGKILL it after STOP_TIMEOUT."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
