"""How long the event loop was blocked: a timer due every INTERVAL seconds, and how late it fires.

DHCP, TFTP and HTTP share one loop, so any callback that holds it delays every machine; the worst
lateness since start is exported as a Prometheus gauge (and the benchmark's no-stall figure). On a
crowded machine a timer is also late when the kernel runs other processes instead of this one, so
a second gauge keeps the worst CPU time the loop's own thread spent within a late interval: a
callback that computes too long, the part of a block that is bootserver's own doing.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Gauge, Histogram

from bootserver.gc_pauses import GcPauses
from bootserver.metrics import REGISTRY

INTERVAL = 0.01  # seconds: a hundred wake-ups a second cost well under 1 % of a core

WORST = Gauge("bootserver_loop_block_max_seconds", "Longest time the event loop was blocked since start",
              registry=REGISTRY)
WORST_BUSY = Gauge("bootserver_loop_block_busy_max_seconds", "Longest block of the event loop since start, "
                   "counting only the CPU time of the loop's thread", registry=REGISTRY)
LAG = Histogram("bootserver_loop_lag_seconds", "How late the loop-lag probe's timer fired",
                buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0), registry=REGISTRY)


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
            if late > self.worst:
                self.worst = late
                WORST.set(late)
            if busy > self.worst_busy:
                self.worst_busy = busy
                WORST_BUSY.set(busy)
