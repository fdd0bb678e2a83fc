"""Closing the SQLite store settles every write it accepted, including writes queued behind the stop."""

from __future__ import annotations

import asyncio

import pytest

from bootserver.state import Event, StoreError, connect_store

MAC = "52:54:00:a1:9c:ae"


async def test_writes_queued_after_close_began_are_settled(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    store = await connect_store(url, max_batch=1)  # one write per commit: the stop marker is a batch alone
    for _ in range(50):  # 50 commits keep the writer busy while the stop and the late write are queued
        store.record_later(Event(MAC, "dhcp.offer"))
    closing = asyncio.ensure_future(store.close())  # queues the stop marker, then waits for the writer
    late = asyncio.ensure_future(store.record(Event(MAC, "http.ipxe")))  # a request finishing meanwhile
    done, pending = await asyncio.wait({closing, late}, timeout=10)
    for task in pending:
        task.cancel()
    assert not pending, "a write queued behind the stop marker was never settled"
    assert late.result() is True  # accepted before the store closed: committed
    reopened = await connect_store(url)
    try:
        assert [e.kind for e in await reopened.events(MAC)] == ["dhcp.offer"] * 50 + ["http.ipxe"]
    finally:
        await reopened.close()


async def test_writes_after_close_are_refused_at_once(tmp_path):
    store = await connect_store(f"sqlite:///{tmp_path}/state.db")
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await asyncio.wait_for(store.record(Event(MAC, "dhcp.offer")), 10)
