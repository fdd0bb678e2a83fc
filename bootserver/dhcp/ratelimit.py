"""Per-client token buckets with a hard cap on how many clients are remembered.

The proxy keys a bucket by (MAC, transaction id, relay), not by MAC alone: a MAC is trivially spoofed,
and a bucket per MAC would let anyone on the LAN drain a victim's answers. A client that retransmits
one transaction is limited; a flood of new transactions is bounded like a flood of new MACs (the
cap below and the proxy's limit on requests in flight).

A misbehaving client (a boot loop, a flood with one MAC) must not fill the log and the store, and a
flood of distinct MACs must not grow memory: the least recently seen MAC is forgotten once
`max_macs` are tracked, so memory stays at a few MB whatever arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Hashable


class MacRateLimiter:
    def __init__(self, rate: float = 1.0, burst: int = 12, max_macs: int = 32768,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_macs < 1:
            raise ValueError("rate must be > 0, burst and max_macs >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_macs = max_macs
        self._clock = clock
        # mac -> (tokens left, time of last refill, packets dropped since the last one allowed)
        self._buckets: OrderedDict[Hashable, tuple[float, float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, mac: Hashable) -> tuple[bool, int]:
        """(allowed, drops so far in this run of drops). drops == 1 marks the first drop of a run."""
        now = self._clock()
        buckets = self._buckets
        entry = buckets.get(mac)
        if entry is None:
            if len(buckets) >= self.max_macs:
                buckets.popitem(last=False)
            buckets[mac] = (self.burst - 1.0, now, 0)
            return True, 0
        tokens, last, dropped = entry
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        buckets.move_to_end(mac)
        if tokens >= 1.0:
            buckets[mac] = (tokens - 1.0, now, 0)
            return True, 0
        buckets[mac] = (tokens, now, dropped + 1)
        return False, dropped + 1
