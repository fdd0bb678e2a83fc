"""The `Store` interface: everything outside `state/` sees only this.

Machines are keyed by normalised MAC. Each has a lifecycle state (see boot.lifecycle), a secret
token the installer uses to post events, facts learnt from the network, and a bounded timeline.
The record and event types are the domain's (boot.machine); this module only stores them.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from bootserver.boot.machine import Event, MachineRecord

#: Facts `Store.ensure` accepts besides `state`.
FACTS = ("name", "profile", "arch", "uuid", "vendor", "interface", "client_ip")
_FACT_NAMES = frozenset(FACTS)


class StoreError(RuntimeError):
    """A store problem worth a clear message (bad URL, unusable database)."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached right now (PostgreSQL down); callers fall back to the catalog."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer bootserver than this one."""


class UnknownMachine(KeyError):
    """No machine with that MAC in the store."""


class StateChanged(StoreError):
    """A compare-and-set transition found the machine no longer in the state its caller saw
    (another request or replica moved it first): nothing was written."""

    def __init__(self, mac: str, expected: str, current: str) -> None:
        super().__init__(f"machine {mac} is {current}, not {expected}: another writer moved it first")
        self.mac, self.expected, self.current = mac, expected, current


class AlreadyRecorded(StoreError):
    """A transition's event carries an idempotency key the timeline already holds (a retried report,
    maybe through another replica): the transition was rolled back, nothing was written."""

    def __init__(self, mac: str, key: str) -> None:
        super().__init__(f"machine {mac}: an event with idempotency key {key} is already recorded")
        self.mac, self.key = mac, key


class TokenSpent(StoreError):
    """An installer's final report carried a token that is no longer the machine's (spent by an
    earlier final report, or replaced by a reinstall): nothing was written."""

    def __init__(self, mac: str) -> None:
        super().__init__(f"machine {mac}: the installer token was already spent or replaced")
        self.mac = mac


def redact(url: str) -> str:
    """A state URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def check_facts(facts: dict[str, Any]) -> None:
    if _FACT_NAMES.issuperset(facts):  # every new machine's record passes here: no set built for it
        return
    unknown = facts.keys() - _FACT_NAMES
    if unknown:
        raise TypeError(f"unknown machine facts: {', '.join(sorted(unknown))}")


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def get(self, mac: str) -> MachineRecord | None: ...

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        """Return the machine, creating it in `state` if new; updates facts and last_seen."""

    async def set_state(self, mac: str, state: str, *, expected: str | None = None,
                        event: Event | None = None) -> MachineRecord:
        """Move the machine to `state`; raises UnknownMachine if it does not exist. With `expected`,
        a compare-and-set (`UPDATE … WHERE state = expected`): raises StateChanged, writing
        nothing, when the machine is no longer in `expected`. `event` is appended to the timeline
        in the same transaction, so rival transitions (other replicas) appear in the order they won; if
        its idempotency key is already recorded, raises AlreadyRecorded and nothing is written."""

    async def record(self, event: Event) -> bool:
        """Append to the timeline. Returns after the event is durable (True), or False if the
        backend is unreachable and the event waits in a bounded in-memory buffer."""

    # Optional: `def record_later(self, event: Event) -> None` queues an event without waiting for
    # its commit, keeping queue order (SQLite, memory). Without it, the runtime uses a task.

    async def key_seen(self, mac: str, key: str) -> bool:
        """True if the machine's timeline holds an event with this idempotency key."""

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        """The newest `limit` events with seq < `before` (all when None), oldest first."""

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        """All machines (or those in `state`), sorted by MAC."""

    async def discovered(self) -> list[MachineRecord]:
        """Machines seen on the network but not (yet) in the catalog."""

    async def by_token(self, token: str) -> MachineRecord | None: ...

    async def rotate_token(self, mac: str) -> MachineRecord:
        """Give the machine a new installer token (a reinstall). UnknownMachine if none."""

    async def spend_token(self, mac: str, token: str, event: Event, *, expected: str,
                          state: str | None = None) -> MachineRecord:
        """An installer's final report, all or nothing in one transaction: the machine's token is
        replaced, if it is still `token` (else TokenSpent), while the machine is in `expected`
        (else StateChanged); `event` is appended with its idempotency key (AlreadyRecorded if the
        key is there); with `state`, the machine moves to it. When any part fails, nothing is written,
        so the installer's retry finds its token unspent. UnknownMachine if there is no such machine."""

    async def forget(self, mac: str) -> bool:
        """Delete the machine and its timeline; False if it was not there."""

    # Flatcar updates (records keyed by the machine-id update_engine reports; see boot.updates):
    async def update_get(self, machine_id: str) -> Any: ...
    async def update_put(self, record: Any) -> None: ...

    async def update_claim(self, record: Any, max_updating: int | None, max_per_hour: int | None) -> str | None:
        """Save `record` (as offered) if the rollout has a free slot, atomically with counting the
        slots taken; else save nothing and say which limit is full."""

    async def update_list(self) -> list[Any]: ...
    async def update_unknown_count(self) -> int: ...

    async def mac_for_address(self, ip: str) -> str | None:
        """The machine last seen booting from `ip`, to tie a new machine-id to it."""

    async def update_pauses(self) -> set[str]: ...
    async def update_pause(self, rollout: str, paused: bool) -> None: ...
