"""How long the garbage collector held the process, by generation: the collector runs inside
whatever callback allocated last, so a long full collection is a loop block with no culprit in
the code. The worst pause per generation is a Prometheus gauge beside the loop-lag probe's."""

from __future__ import annotations

import gc
import time

from prometheus_client import Gauge

from bootserver.metrics import REGISTRY

WORST = Gauge("bootserver_gc_pause_max_seconds", "Longest garbage collection since start, by generation",
              ["generation"], registry=REGISTRY)


class GcPauses:
    def __init__(self) -> None:
        self.worst = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took, generation = time.perf_counter() - self._started, info["generation"]
        self.collections[generation] += 1
        if took > self.worst[generation]:
            self.worst[generation] = took
            WORST.labels(str(generation)).set(took)
