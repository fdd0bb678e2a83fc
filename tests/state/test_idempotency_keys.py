"""Idempotency keys on every backend: a keyed event is kept once, and a transition whose event's key
is already recorded is rolled back whole (the retried report of an install that was then reinstalled
must not install it a second time)."""

from __future__ import annotations

import pytest

from bootserver.state import AlreadyRecorded, Event, connect_store

MAC = "52:54:00:1d:1d:1d"


async def test_a_key_is_kept_once_and_blocks_a_second_transition(store_url):
    store = await connect_store(store_url)
    try:
        await store.ensure(MAC, state="installing")
        first = Event(MAC, "installer.installed", detail={"transition": "installing->installed"}, key="k-1")
        await store.set_state(MAC, "installed", expected="installing", event=first)
        await store.record(Event(MAC, "installer.installed", key="k-1"))  # a retry that moved nothing
        assert await store.key_seen(MAC, "k-1") and not await store.key_seen(MAC, "k-2")
        await store.set_state(MAC, "ready", expected="installed", event=Event(MAC, "reinstall"))
        with pytest.raises(AlreadyRecorded):  # the same report again, after the reinstall
            await store.set_state(MAC, "installed", expected="ready", event=Event(MAC, "installer.installed", key="k-1"))
        assert (await store.get(MAC)).state == "ready"
        events = await store.events(MAC)
        assert [(e.kind, e.key) for e in events] == [("installer.installed", "k-1"), ("reinstall", None)]
    finally:
        await store.close()
