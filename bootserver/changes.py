"""Which machines changed, for live views (the board's event stream): a small bounded hub.

Runtime publishes a MAC whenever a machine's record or timeline moves; each subscriber holds a
set of changed MACs (so a busy machine costs one entry, not one per event). Both the number of
subscribers and each pending set are bounded: a subscriber that falls behind is told to resync
instead of holding memory, and the hot path never waits for a reader.
"""

from __future__ import annotations

import asyncio

MAX_SUBSCRIBERS = 32
MAX_PENDING = 1024


class TooManySubscribers(RuntimeError):
    """Every live-view slot is taken."""


class Subscription:
    def __init__(self, hub: "Changes", limit: int) -> None:
        self._hub = hub
        self._limit = limit
        self._pending: dict[str, None] = {}  # insertion-ordered set of MACs
        self._wake = asyncio.Event()
        self.resync = False  # more changed than the bound allows: the reader should reload
        self.closed = False

    def _push(self, mac: str) -> None:
        if not self.resync:
            self._pending[mac] = None
            if len(self._pending) > self._limit:
                self._pending.clear()
                self.resync = True
        self._wake.set()

    async def wait(self, timeout: float) -> tuple[list[str], bool]:
        """Changed MACs since the last call (and whether to resync); empty after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()
        macs, resync = list(self._pending), self.resync
        self._pending.clear()
        self.resync = False
        return macs, resync

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._hub._subscribers.discard(self)


class Changes:
    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS, max_pending: int = MAX_PENDING) -> None:
        self._subscribers: set[Subscription] = set()
        self.max_subscribers = max_subscribers
        self.max_pending = max_pending

    def subscribe(self) -> Subscription:
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} live views are already open")
        subscription = Subscription(self, self.max_pending)
        self._subscribers.add(subscription)
        return subscription

    def publish(self, mac: str) -> None:
        for subscription in self._subscribers:
            subscription._push(mac)

    def close_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()
