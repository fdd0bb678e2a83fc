"""Machine state and timelines behind one async `Store` interface (the only place that knows SQL).

`open_store(url)` picks the backend from the `state` setting (then `await store.open()`;
`connect_store` does both):
  sqlite:///relative/path.db, sqlite:////absolute/path.db  -- the embedded default
  postgresql://user:password@host:port/database             -- shared by several replicas
  memory://                                                  -- nothing kept (tests, previews)
"""

from __future__ import annotations

from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, SchemaTooNew, StateChanged, Store, StoreError,
                                   StoreUnavailable, TokenSpent, UnknownMachine, redact)

__all__ = ["AlreadyRecorded", "Event", "MachineRecord", "SchemaTooNew", "StateChanged", "Store", "StoreError", "StoreUnavailable",
           "TokenSpent", "UnknownMachine", "connect_store", "open_store", "redact"]


def open_store(url: str, retention: int = 1000, **options) -> Store:
    """The store a `state` URL names, not yet opened: `await store.open()` connects and migrates."""
    if url.startswith("sqlite:///"):
        from bootserver.state.sqlite import SqliteStore
        path = url[len("sqlite:///"):]
        if not path:
            raise StoreError(f"state URL {url!r} names no file: "
                             "use sqlite:///relative/path.db or sqlite:////abs/path.db")
        return SqliteStore(path, retention, **options)
    if url.startswith(("postgresql://", "postgres://")):
        from bootserver.state.postgres import PostgresStore
        return PostgresStore(url, retention, **options)
    if url in ("memory://", "memory:"):
        from bootserver.state.memory import MemoryStore
        return MemoryStore(retention)
    scheme = url.partition(":")[0] or url
    raise StoreError(f"state URL scheme {scheme!r} is not supported: use sqlite:///PATH, postgresql://… or memory://")


async def connect_store(url: str, retention: int = 1000, **options) -> Store:
    """The opened (connected, migrated) store a `state` URL names."""
    store = open_store(url, retention, **options)
    await store.open()
    return store
