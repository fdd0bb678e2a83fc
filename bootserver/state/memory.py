"""In-memory `Store`: for tests, `render` previews and benchmarks. Nothing survives the process.

Records and events are kept as flat tuples of plain values (an event's detail inlined), not as the
dataclasses handed out: the garbage collector stops tracking such tuples, so a store holding a
hundred thousand machines adds little to its full passes, which hold the event loop (a dataclass
per record and per event made them 100+ ms).
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import time
from typing import Any

from bootserver.state.updates_memory import MemoryUpdates
from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, StateChanged, TokenSpent, UnknownMachine,
                                   check_facts)
from bootserver.state.tokens import new_token

_FIELDS = tuple(f.name for f in dataclasses.fields(MachineRecord))
_AT = {name: i for i, name in enumerate(_FIELDS)}
_STATE, _TOKEN, _LAST_SEEN, _STATE_CHANGED = _AT["state"], _AT["token"], _AT["last_seen"], _AT["state_changed"]
# a new row: (mac, state, token, *these facts, first_seen, last_seen, state_changed)
_FACTS = _FIELDS[3:-3]
_flat = itertools.chain.from_iterable
assert _FIELDS[:3] == ("mac", "state", "token") and _FIELDS[-3:] == ("first_seen", "last_seen", "state_changed")


class MemoryStore(MemoryUpdates):
    def __init__(self, retention: int = 1000) -> None:
        self._rows: dict[str, tuple] = {}  # mac -> MachineRecord fields, in order
        # mac -> its newest `retention` events, each (kind, source, at, seq, key, *detail keys and values):
        # flat tuples, in a tuple rebuilt per event rather than a deque, which the collector would track
        self._events: dict[str, tuple[tuple, ...]] = {}
        self._retention = retention
        self._seq = itertools.count(1)
        self._updates: dict = {}  # machine-id -> UpdateRecord (see updates_memory)
        self._pauses: set[str] = set()

    @property
    def _machines(self) -> dict[str, MachineRecord]:
        """Every record (copies), for the update queries of MemoryUpdates."""
        return {mac: MachineRecord(*row) for mac, row in self._rows.items()}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, mac: str) -> MachineRecord | None:
        row = self._rows.get(mac)
        return MachineRecord(*row) if row else None

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        check_facts(facts)
        now = time.time()
        row = self._rows.get(mac)
        if row is None:  # a new machine: what it says is all there is (None for what it does not)
            get = facts.get
            row = (mac, state, new_token(), *[get(name) for name in _FACTS], now, now, now)
        else:
            values = list(row)
            for key, value in facts.items():
                if value is not None:
                    values[_AT[key]] = value
            values[_LAST_SEEN] = now
            row = tuple(values)
        self._rows[mac] = row
        return MachineRecord(*row)

    async def set_state(self, mac: str, state: str, *, expected: str | None = None,
                        event: Event | None = None) -> MachineRecord:
        row = self._rows.get(mac)
        if row is None:
            raise UnknownMachine(mac)
        if expected is not None and row[_STATE] != expected:
            raise StateChanged(mac, expected, row[_STATE])
        if event is not None and event.key is not None and self._key_seen(mac, event.key):
            raise AlreadyRecorded(mac, event.key)
        values = list(row)
        values[_STATE], values[_STATE_CHANGED] = state, time.time()
        row = self._rows[mac] = tuple(values)
        if event is not None:
            self.record_later(event)
        return MachineRecord(*row)

    async def record(self, event: Event) -> bool:
        self.record_later(event)
        return True

    def record_later(self, event: Event) -> None:
        if event.key is not None and self._key_seen(event.mac, event.key):
            return
        event.seq = seq = next(self._seq)  # the event is the caller's to give away, as with the SQL stores
        entry = (event.kind, event.source, event.at, seq, event.key, *_flat(event.detail.items()))
        timeline = self._events.get(event.mac, ()) + (entry,)
        if len(timeline) > self._retention:
            timeline = timeline[len(timeline) - self._retention:]
        self._events[event.mac] = timeline

    def _key_seen(self, mac: str, key: str) -> bool:
        return any(e[4] == key for e in self._events.get(mac, ()))

    async def key_seen(self, mac: str, key: str) -> bool:
        return self._key_seen(mac, key)

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        found = [Event(mac, e[0], e[1], dict(zip(e[5::2], e[6::2])), e[2], e[3], e[4])
                 for e in self._events.get(mac, ()) if before is None or e[3] < before]
        return found[-limit:] if limit > 0 else []

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        return [MachineRecord(*self._rows[mac]) for mac in sorted(self._rows)
                if state is None or self._rows[mac][_STATE] == state]

    async def discovered(self) -> list[MachineRecord]:
        return await self.machines("discovered")

    async def rotate_token(self, mac: str) -> MachineRecord:
        row = self._rows.get(mac)
        if row is None:
            raise UnknownMachine(mac)
        values = list(row)
        values[_TOKEN] = new_token()
        row = self._rows[mac] = tuple(values)
        return MachineRecord(*row)

    async def spend_token(self, mac: str, token: str, event: Event, *, expected: str,
                          state: str | None = None) -> MachineRecord:
        row = self._rows.get(mac)  # every check before any write: all or nothing
        if row is None:
            raise UnknownMachine(mac)
        if not hmac.compare_digest(row[_TOKEN].encode(), token.encode()):
            raise TokenSpent(mac)
        if row[_STATE] != expected:
            raise StateChanged(mac, expected, row[_STATE])
        if event.key is not None and self._key_seen(mac, event.key):
            raise AlreadyRecorded(mac, event.key)
        values = list(row)
        values[_TOKEN] = new_token()
        if state is not None:
            values[_STATE], values[_STATE_CHANGED] = state, time.time()
        row = self._rows[mac] = tuple(values)
        self.record_later(event)
        return MachineRecord(*row)

    async def by_token(self, token: str) -> MachineRecord | None:
        for row in self._rows.values():
            if row[_TOKEN] == token:
                return MachineRecord(*row)
        return None

    async def forget(self, mac: str) -> bool:
        self._events.pop(mac, None)
        return self._rows.pop(mac, None) is not None
