"""Repeated identical answers fold into the timeline entry before them.

A machine that asks a rendered endpoint again (`/ipxe`, `/ignition`, the GRUB config) and gets the
same answer, from the same address, within `REPEAT_WINDOW` seconds of the last such entry recorded
for it, adds nothing to its timeline: the repeat is counted
(`bootserver_timeline_repeats_folded_total{kind}`) instead of written, and the next identical entry
that is recorded carries `repeats`, how many were folded since the one before it. A booting machine
asks each of these once; only a machine in a loop (or a load test) asks again within a second, and
without folding it would write one row per request and push its real history out of the bounded
timeline. Every request still has its access-log line. Per process: with HTTP workers each process
records its own first answer in a window.

Pure bookkeeping, no I/O; only events that never change a machine's state are offered to it.
"""

from __future__ import annotations

import dataclasses

from prometheus_client import Counter

from bootserver.boot.machine import Event
from bootserver.metrics import REGISTRY

FOLDABLE = frozenset({"http.ipxe", "http.ignition", "http.ignition.foreign", "grub.config"})
REPEAT_WINDOW = 1.0  # seconds after a recorded entry in which an identical one folds into it
MAX_MACHINES = 65536  # machines remembered; past that the memory starts over (a few repeats get written)

FOLDED = Counter("bootserver_timeline_repeats_folded_total",
                 "Timeline entries not written: the same answer to the same machine within a second", ["kind"],
                 registry=REGISTRY)


class RepeatFolder:
    def __init__(self, window: float = REPEAT_WINDOW, limit: int = MAX_MACHINES) -> None:
        self.window = window
        self.limit = limit
        self._last: dict[str, list] = {}  # MAC -> [kind, source, detail, recorded at, folded since]
        self._counters: dict[str, object] = {}  # kind -> its labelled counter

    def fold(self, event: Event) -> Event | None:
        """The event to record (with `repeats` when some were folded before it), or None when it
        repeats the machine's last recorded entry within the window."""
        kind = event.kind
        if kind not in FOLDABLE:
            return event
        last = self._last.get(event.mac)
        if last is not None and last[0] == kind and last[1] == event.source and last[2] == event.detail:
            if 0 <= event.at - last[3] < self.window:
                last[4] += 1
                counter = self._counters.get(kind)
                if counter is None:  # bounded: FOLDABLE is fixed
                    counter = self._counters[kind] = FOLDED.labels(kind)
                counter.inc()
                return None
            if last[4]:
                recorded = dataclasses.replace(event, detail={**event.detail, "repeats": last[4]})
                last[3], last[4] = event.at, 0
                return recorded
            last[3] = event.at
            return event
        if len(self._last) >= self.limit:
            self._last.clear()
        self._last[event.mac] = [kind, event.source, event.detail, event.at, 0]
        return event

    def forget(self, mac: str) -> None:
        """The machine moved or was changed: its next answer is written whatever it is."""
        self._last.pop(mac, None)
