"""Answers already worked out for the catalog being served (matches, /ipxe scripts, Ignition bytes),
least recently used dropped.

Everything kept here is a pure function of the catalog and of what the machine asked (its request's
fields, its token, the address it reached us at): the machine's state is not cached, it is read per
request and only selects which answer applies. A new catalog object (a reload) empties the cache,
so a stale answer is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable

from prometheus_client import Counter

from bootserver.boot.request import BootRequest


MISSING = object()


def request_key(request: BootRequest) -> tuple:
    """Every field of the request a match or a template can see, as a hashable key (plain strings, so
    the garbage collector stops tracking it)."""
    return (request.mac, request.arch, request.stage.value, request.uuid, request.client_ip, request.relay_ip,
            request.interface, tuple(request.labels.items()))


class AnswerCache:
    def __init__(self, metric: Counter, size: int = 32768, count_misses: bool = True) -> None:
        """`metric` counts lookups by result; `count_misses=False` when a cache behind this one counts them."""
        self.size = size
        self._catalog: Any = None
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # `bootserver render` and threads may share one Runtime
        self._hits, self._misses = metric.labels("hit"), metric.labels("miss") if count_misses else None

    def get(self, catalog: Any, key: Hashable) -> Any:
        """The answer kept for `key` under `catalog`, or MISSING."""
        with self._lock:
            if catalog is not self._catalog:
                return MISSING
            value = self._items.get(key, MISSING)
            if value is not MISSING:
                self._items.move_to_end(key)
                self._hits.inc()
            return value

    def put(self, catalog: Any, key: Hashable, value: Any) -> Any:
        with self._lock:
            if catalog is not self._catalog:
                self._catalog = catalog
                self._items.clear()
            if self._misses is not None:
                self._misses.inc()
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value
