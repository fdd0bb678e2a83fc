"""Rendered configs kept per machine and catalog generation, least recently used dropped."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Callable

from .metrics import CACHE, CACHE_BYTES


class RenderCache:
    """Rendered configs by (machine, catalog generation, context digest), least recently used dropped.

    The same config is often fetched twice in a row (Ignition retries, the installer and the OS);
    a catalog reload changes the generation, so stale renders are never served. The context digest
    keeps two requests that differ in what the template can see apart; callers pass only the parts
    of the context the template reads, so unique queries do not make unique entries. Bounded both in
    entries and in bytes.
    """

    def __init__(self, size: int = 4096, max_bytes: int = 64 << 20):
        self.size = size
        self.max_bytes = max_bytes  # what bounds memory: configs can be megabytes each
        self.bytes = 0
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(machine: str, generation: Any, context: dict, extra: Any = None) -> tuple:
        digest = hashlib.blake2b(json.dumps(context, sort_keys=True, default=str).encode(), digest_size=16)
        return machine, generation, extra, digest.hexdigest()

    def get(self, key: tuple) -> Any | None:
        """The cached value (a hit), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            CACHE.labels("hit").inc()
            return self._items[key]

    def get_or_render(self, key: tuple, render: Callable[[], Any]) -> Any:
        value = self.get(key)
        if value is not None:
            return value
        value = render()  # errors are not cached: the next request tries again
        CACHE.labels("miss").inc()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.bytes += _size(value)
            while self._items and (len(self._items) > self.size or self.bytes > self.max_bytes):
                self.bytes -= _size(self._items.popitem(last=False)[1])
            CACHE_BYTES.set(self.bytes)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
            CACHE_BYTES.set(0)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, str)) else 0
