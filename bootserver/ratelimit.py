"""Token buckets by key, with a hard cap on how many keys are remembered.

Used where a client can make bootserver do work or keep state: new machine records (one bucket for
all), and HTTP boot endpoints (one bucket per client address). The least recently seen key is
forgotten once `max_keys` are tracked, so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Hashable


class Buckets:
    def __init__(self, rate: float, burst: float, max_keys: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst and max_keys >= 1")
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> (tokens, time)

    def allow(self, key: Hashable = None) -> bool:
        """Take one token from `key`'s bucket; False when it is empty."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: Hashable = None) -> int:
        """Whole seconds until `key` has a token again (for a Retry-After header)."""
        tokens, _last = self._buckets.get(key, (self.burst, 0.0))
        return max(1, int((1.0 - tokens) / self.rate + 0.999))
