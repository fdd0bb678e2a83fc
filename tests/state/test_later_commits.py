"""SQLite: timeline entries nobody waits for (record_later) share commits, a write someone awaits
is not held up by them, and a timeline read of the same process shows every entry queued before it."""

from __future__ import annotations

import asyncio
import time

from bootserver.metrics import REGISTRY
from bootserver.state import Event, connect_store
from bootserver.state import sqlite_writer

MAC = "52:54:00:0c:0c:01"


def commits() -> float:
    return REGISTRY.get_sample_value("bootserver_state_commit_batch_writes_count", {"backend": "sqlite"}) or 0.0


async def test_entries_arriving_one_by_one_share_a_commit_and_reads_see_them(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "LATER_LINGER", 5.0)  # long enough that only the read can end it
    store = await connect_store(f"sqlite:///{tmp_path}/state.db")
    try:
        before = commits()
        for n in range(20):  # spread out: without the linger each would be a commit of its own
            store.record_later(Event(MAC, "dhcp.offer", detail={"n": n}))
            await asyncio.sleep(0.005)
        started = time.monotonic()
        events = await store.events(MAC)  # a read of the timeline: the queued entries first
        assert time.monotonic() - started < 2.0
        assert [e.detail["n"] for e in events] == list(range(20))
        assert commits() - before <= 2
    finally:
        await store.close()


async def test_an_awaited_write_does_not_wait_for_the_linger(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "LATER_LINGER", 5.0)
    store = await connect_store(f"sqlite:///{tmp_path}/state.db")
    try:
        store.record_later(Event(MAC, "dhcp.offer"))
        await asyncio.sleep(0.05)  # the writer is now lingering on that entry
        started = time.monotonic()
        assert await store.record(Event(MAC, "installer.progress")) is True
        await store.ensure(MAC, state="ready")
        assert time.monotonic() - started < 2.0
        assert [e.kind for e in await store.events(MAC)] == ["dhcp.offer", "installer.progress"]
    finally:
        await store.close()


async def test_closing_commits_the_lingering_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "LATER_LINGER", 5.0)
    url = f"sqlite:///{tmp_path}/state.db"
    store = await connect_store(url)
    for _ in range(3):
        store.record_later(Event(MAC, "tftp.transfer"))
    started = time.monotonic()
    await store.close()
    assert time.monotonic() - started < 2.0
    reopened = await connect_store(url)
    try:
        assert [e.kind for e in await reopened.events(MAC)] == ["tftp.transfer"] * 3
    finally:
        await reopened.close()
