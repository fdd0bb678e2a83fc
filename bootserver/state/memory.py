"""In-memory `Store`: for tests and `render` previews. Nothing survives the process."""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any

from bootserver.state.base import Event, MachineRecord


class MemoryStore:
    def __init__(self, retention: int = 1000) -> None:
        self._machines: dict[str, MachineRecord] = {}
        self._events: dict[str, deque[Event]] = {}
        self._retention = retention

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, mac: str) -> MachineRecord | None:
        return self._machines.get(mac)

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        now = time.time()
        rec = self._machines.get(mac)
        if rec is None:
            rec = MachineRecord(mac=mac, state=state, token=secrets.token_urlsafe(24),
                                first_seen=now, state_changed=now)
            self._machines[mac] = rec
        for key, value in facts.items():
            if value is not None:
                setattr(rec, key, value)
        rec.last_seen = now
        return rec

    async def set_state(self, mac: str, state: str) -> MachineRecord:
        rec = self._machines[mac]
        rec.state = state
        rec.state_changed = time.time()
        return rec

    async def record(self, event: Event) -> None:
        self._events.setdefault(event.mac, deque(maxlen=self._retention)).append(event)

    async def events(self, mac: str, limit: int = 100) -> list[Event]:
        return list(self._events.get(mac, ()))[-limit:]

    async def machines(self) -> list[MachineRecord]:
        return sorted(self._machines.values(), key=lambda m: m.mac)

    async def forget(self, mac: str) -> bool:
        self._events.pop(mac, None)
        return self._machines.pop(mac, None) is not None
