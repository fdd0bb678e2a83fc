"""How long the event loop was blocked: a timer due every INTERVAL seconds, and how late it fires.

DHCP, TFTP and HTTP share one loop, so any callback that holds it delays every machine; the worst
lateness since start is exported as a Prometheus gauge (and the benchmark's no-stall figure). On a
crowded machine a timer is also late when the kernel runs other processes instead of this one, so
a second gauge keeps the worst CPU time the loop's own thread spent within a late interval: a
callback that computes too long, the part of a block that is bootserver's own doing.

With HTTP workers (bootserver.http_workers) every process runs a loop of its own, and /metrics is
answered by whichever process the kernel gave the connection. So the processes keep their worst
figures in one small shared memory file (SharedWorst: a slot per process, each written only by its
owner), and every process's /metrics reports the worst over all of them, and each one's by name.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import time

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from bootserver.gc_pauses import GcPauses
from bootserver.metrics import REGISTRY

INTERVAL = 0.01  # seconds: a hundred wake-ups a second cost well under 1 % of a core
SLOT = struct.Struct("dd")  # worst lateness, worst CPU time of the loop's thread within it (seconds)

LAG = Histogram("bootserver_loop_lag_seconds", "How late the loop-lag probe's timer fired (this process)",
                buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0), registry=REGISTRY)


def process_name(slot: int) -> str:
    return "main" if slot == 0 else f"http-worker-{slot}"


class SharedWorst:
    """The worst block of every process of one server: slot 0 the main process, slot k HTTP worker k.

    A memfd the main process creates and passes to its workers (`fd`, kept open across exec); each
    process writes only its own slot, with aligned 8-byte stores, and anyone may read them all.
    """

    def __init__(self, slots: int | None = None, fd: int | None = None) -> None:
        if fd is None:
            fd = os.memfd_create("bootserver-loop-lag")
            os.ftruncate(fd, SLOT.size * slots)
        self.fd = fd
        self.slots = os.fstat(fd).st_size // SLOT.size
        self._map = mmap.mmap(fd, SLOT.size * self.slots)

    def read(self, slot: int) -> tuple[float, float]:
        return SLOT.unpack_from(self._map, slot * SLOT.size)

    def raise_to(self, slot: int, worst: float, busy: float) -> tuple[float, float]:
        """Keep the larger of what the slot holds (a replaced worker's) and these; returns them."""
        old = self.read(slot)
        new = (max(old[0], worst), max(old[1], busy))
        if new != old:
            SLOT.pack_into(self._map, slot * SLOT.size, *new)
        return new

    def all(self) -> list[tuple[float, float]]:
        return [self.read(slot) for slot in range(self.slots)]

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class _Figures:
    """This process's worst figures (over every probe it ran) and, once shared, the other processes'."""

    def __init__(self) -> None:
        self.worst = self.busy = 0.0
        self.shared: SharedWorst | None = None
        self.slot = 0

    def raise_to(self, worst: float, busy: float) -> None:
        self.worst, self.busy = max(self.worst, worst), max(self.busy, busy)
        if self.shared is not None:
            self.shared.raise_to(self.slot, self.worst, self.busy)

    def by_process(self) -> list[tuple[str, float, float]]:
        if self.shared is None:
            return [(process_name(self.slot), self.worst, self.busy)]
        return [(process_name(slot), worst, busy) for slot, (worst, busy) in enumerate(self.shared.all())]

    def collect(self):
        rows = self.by_process()
        yield GaugeMetricFamily("bootserver_loop_block_max_seconds", "Longest time an event loop of this server was "
                                "blocked since start (the worst of the main process and any HTTP workers)",
                                value=max(row[1] for row in rows))
        yield GaugeMetricFamily("bootserver_loop_block_busy_max_seconds", "Longest block of an event loop of this "
                                "server since start, counting only the CPU time of the loop's thread (the worst of "
                                "every process)", value=max(row[2] for row in rows))
        by = GaugeMetricFamily("bootserver_loop_block_process_max_seconds", "Longest block of each process's event "
                               "loop since start (main: proxyDHCP, TFTP, state; http-worker-N: HTTP)",
                               labels=["process"])
        busy = GaugeMetricFamily("bootserver_loop_block_process_busy_max_seconds", "Longest block of each "
                                 "process's event loop since start, CPU time of its loop thread only",
                                 labels=["process"])
        for name, worst, on_cpu in rows:
            by.add_metric([name], worst)
            busy.add_metric([name], on_cpu)
        yield by
        yield busy


FIGURES = _Figures()
REGISTRY.register(FIGURES)


def share(shared: SharedWorst, slot: int) -> None:
    """From now on keep this process's worst figures in `slot` of `shared`, and report every slot's."""
    FIGURES.shared, FIGURES.slot = shared, slot
    FIGURES.raise_to(0.0, 0.0)


class LoopLagProbe:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.worst = self.worst_busy = 0.0
        self._task: asyncio.Task | None = None
        self.gc = GcPauses()  # the collector's share of the blocks

    async def start(self) -> None:
        self.gc.start()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        self.gc.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, cpu = loop.time() + self.interval, time.thread_time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - due)
            busy = min(late, time.thread_time() - cpu)
            LAG.observe(late)
            if late > self.worst or busy > self.worst_busy:
                self.worst, self.worst_busy = max(late, self.worst), max(busy, self.worst_busy)
                FIGURES.raise_to(self.worst, self.worst_busy)
