"""PostgreSQL `Store`: shared state for several bootserver replicas.

Events are written in groups, like the SQLite store: a writer task gathers every event waiting
and inserts them in one transaction; `record()` returns after the commit. When PostgreSQL becomes
unreachable while serving, `record()` keeps answering at once: events wait in a bounded buffer
(oldest dropped first, counted) and are written, in order, when the server is back. Reads fall
back to the last record seen of each machine; other writes raise `StoreUnavailable`. Both the
outage and the recovery are logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Awaitable, Callable

import asyncpg

from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, StateChanged, StoreError, StoreUnavailable, UnknownMachine,
                                   check_facts, redact)
from bootserver.state.metrics import (COMMIT_BATCH, COMMIT_SECONDS, EVENTS_BUFFERED, EVENTS_COMMITTED,
                                      EVENTS_DROPPED)
from bootserver.state.updates_postgres import PostgresUpdates
from bootserver.state.sql import (POSTGRES, Statements, event_from_row, event_row, machine_from_row, new_machine_row,
                                  not_spent, pending_migrations)
from bootserver.state.tokens import new_token

log = logging.getLogger(__name__)

#: Errors that mean "the server cannot be reached", as opposed to a bad query.
# InternalClientError: a query on a connection the server is dropping (its FATAL "terminating
# connection" read, the close not yet), as every connection is when PostgreSQL shuts down
UNREACHABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.CannotConnectNowError,
               asyncpg.exceptions.InternalClientError)

MIGRATION_LOCK = 0x626F6F74  # pg_advisory_xact_lock key: replicas starting together migrate one at a time

SQL = Statements(POSTGRES)
MIGRATIONS = SQL.migrations  # a module attribute, so a test can add a migration


class PostgresStore(PostgresUpdates):
    def __init__(self, url: str, retention: int = 1000, *, start_timeout: float = 60.0,
                 buffer_limit: int = 10_000, max_batch: int = 1000, pool_size: int = 8) -> None:
        self.url = url
        self._retention = retention
        self._start_timeout = start_timeout
        self._max_batch = max_batch
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pending: collections.deque[tuple[Event, asyncio.Future]] = collections.deque()
        self._buffer: collections.deque[Event] = collections.deque(maxlen=buffer_limit)
        self._dropped = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._closing = False
        self._known: dict[str, MachineRecord] = {}  # last record seen per machine: reads during an outage

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    @property
    def outage(self) -> bool:
        """True while events wait in the buffer because PostgreSQL cannot be reached."""
        return bool(self._buffer)

    async def open(self) -> None:
        """Connect (retrying with backoff for up to start_timeout seconds) and migrate the schema."""
        deadline = time.monotonic() + self._start_timeout
        delay = 0.5
        while True:
            try:
                pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self._pool_size, timeout=5,
                                                 command_timeout=30)
                break
            except UNREACHABLE as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable(
                        f"PostgreSQL at {redact(self.url)} is unreachable ({exc or type(exc).__name__}); gave up "
                        f"after {self._start_timeout:g}s. Start it, or check the `state` setting.") from None
                wait = min(delay, left)
                log.warning("state store: PostgreSQL at %s is unreachable (%s); retrying in %.1fs",
                            redact(self.url), exc or type(exc).__name__, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, 10.0)
            except asyncpg.PostgresError as exc:  # reached, but refused (password, no database): no retry
                raise StoreError(f"PostgreSQL at {redact(self.url)} refused bootserver: {exc}") from None
        try:
            async with pool.acquire() as conn:
                await _migrate(conn, redact(self.url))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-event-writer")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._writer, timeout=10)
            except asyncio.TimeoutError:
                log.error("state store: %d events still buffered at close were not written", len(self._buffer))
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- events: group commit with an outage buffer --------------------------------------------

    async def record(self, event: Event) -> bool:
        if self._pool is None:
            raise StoreUnavailable("the state store is not open")
        if self._buffer:  # in an outage: keep serving, keep the event for later
            self._keep(event)
            return False
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((event, fut))
        self._wake.set()
        return await fut

    def _keep(self, event: Event) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self._dropped += 1
            EVENTS_DROPPED.inc()
        self._buffer.append(event)
        EVENTS_BUFFERED.set(len(self._buffer))

    async def _write_loop(self) -> None:
        delay = 0.2
        while True:
            if not self._buffer and not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if self._buffer:
                if await self._flush_buffer():
                    delay = 0.2
                    continue
                if self._closing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), self._max_batch))]
            try:
                await self._insert([e for e, _ in batch])
            except UNREACHABLE as exc:
                log.error("state store: PostgreSQL at %s became unreachable (%s); boots go on from the catalog, "
                          "events are buffered in memory (at most %d)", redact(self.url), exc or type(exc).__name__,
                          self._buffer.maxlen)
                for event, fut in batch:
                    self._keep(event)
                    _settle(fut, False)
                while self._pending:  # everything queued behind joins the buffer, in order
                    event, fut = self._pending.popleft()
                    self._keep(event)
                    _settle(fut, False)
                continue
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                _settle(fut, True)

    async def _flush_buffer(self) -> bool:
        while self._buffer:
            chunk = [self._buffer[i] for i in range(min(len(self._buffer), self._max_batch))]
            try:
                await self._insert(chunk)
            except UNREACHABLE:
                return False
            except Exception as exc:  # not an outage: these events can never be written
                log.error("state store: dropping %d buffered events PostgreSQL refuses: %s", len(chunk), exc)
            for _ in chunk:
                self._buffer.popleft()
            EVENTS_BUFFERED.set(len(self._buffer))
        log.warning("state store: PostgreSQL at %s is reachable again; buffered events written (%d dropped "
                    "while it was away)", redact(self.url), self._dropped)
        self._dropped = 0
        return True

    async def _insert(self, events: list[Event]) -> None:
        started = time.perf_counter()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(SQL.insert_event, [event_row(e) for e in events])
            await conn.executemany(SQL.trim_events, [(m, self._retention) for m in {e.mac for e in events}])
        EVENTS_COMMITTED.labels("postgresql").inc(len(events))
        COMMIT_BATCH.labels("postgresql").observe(len(events))
        COMMIT_SECONDS.labels("postgresql").observe(time.perf_counter() - started)

    # -- machines ------------------------------------------------------------------------------

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the state store is not open")
        if asyncio.current_task() is None:
            # The proxy runs a DHCP answer's first step outside any Task (dhcp/proxy.py `_start`), but
            # asyncpg needs one: to time a reconnect after PostgreSQL dropped us, and to use a
            # connection safely. Yield once, so the Task that carries the answer on runs the query.
            await asyncio.sleep(0)
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except UNREACHABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {redact(self.url)} is unreachable: "
                                   f"{exc or type(exc).__name__}") from None

    def _seen(self, rec: MachineRecord) -> MachineRecord:
        self._known[rec.mac] = rec
        return rec

    async def get(self, mac: str) -> MachineRecord | None:
        try:
            row = await self._run(lambda c: c.fetchrow(SQL.machine_by_mac, mac))
        except StoreUnavailable:
            if mac in self._known:
                return self._known[mac]
            raise
        if row is None:
            self._known.pop(mac, None)
            return None
        return self._seen(machine_from_row(row))

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        check_facts(facts)
        values = new_machine_row(mac, state, new_token(), time.time(), facts)
        row = await self._run(lambda c: c.fetchrow(SQL.upsert_machine, *values))
        return self._seen(machine_from_row(row))

    async def set_state(self, mac: str, state: str, *, expected: str | None = None,
                        event: Event | None = None) -> MachineRecord:
        async def work(conn: asyncpg.Connection) -> tuple[Any, str | None]:
            async with conn.transaction():  # the row lock orders rival transitions; their events follow suit
                if expected is None:
                    row = await conn.fetchrow(SQL.set_state, state, time.time(), mac)
                else:
                    row = await conn.fetchrow(SQL.set_state_if, state, time.time(), mac, expected)
                if row is None:
                    return row, await conn.fetchval(SQL.state_of, mac)
                if event is not None:
                    if await conn.fetchval(SQL.insert_event_seq, *event_row(event)) is None:
                        raise AlreadyRecorded(mac, event.key)  # rolls the transition back
                    await conn.execute(SQL.trim_events, mac, self._retention)
                return row, None
        row, current = await self._run(work)
        if row is None:
            self._known.pop(mac, None)
            if current is None:
                raise UnknownMachine(mac)
            raise StateChanged(mac, expected, current)
        return self._seen(machine_from_row(row))

    async def key_seen(self, mac: str, key: str) -> bool:
        return await self._run(lambda c: c.fetchval(SQL.event_key_seen, mac, key)) is not None

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        rows = await self._run(lambda c: c.fetch(SQL.select_events, mac, before if before is not None else 2**62,
                                                 limit))
        return [event_from_row(r) for r in reversed(rows)]

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        if state is None:
            rows = await self._run(lambda c: c.fetch(SQL.all_machines))
        else:
            rows = await self._run(lambda c: c.fetch(SQL.machines_in_state, state))
        return [self._seen(machine_from_row(r)) for r in rows]

    async def discovered(self) -> list[MachineRecord]:
        return await self.machines("discovered")

    async def rotate_token(self, mac: str) -> MachineRecord:
        row = await self._run(lambda c: c.fetchrow(SQL.rotate_token, new_token(), mac))
        if row is None:
            raise UnknownMachine(mac)
        return self._seen(machine_from_row(row))

    async def spend_token(self, mac: str, token: str, event: Event, *, expected: str,
                          state: str | None = None) -> MachineRecord:
        new = new_token()

        async def work(conn: asyncpg.Connection) -> Any:
            async with conn.transaction():  # raising (or a dropped connection) rolls all of it back
                row = await conn.fetchrow(SQL.spend_token, new, mac, token, expected)
                if row is None:
                    raise not_spent(mac, token, expected, await conn.fetchrow(SQL.token_and_state_of, mac))
                if state is not None:
                    row = await conn.fetchrow(SQL.set_state_if, state, time.time(), mac, expected)
                if await conn.fetchval(SQL.insert_event_seq, *event_row(event)) is None:
                    raise AlreadyRecorded(mac, event.key)
                await conn.execute(SQL.trim_events, mac, self._retention)
                return row
        try:
            row = await self._run(work)
        except (StateChanged, UnknownMachine):
            self._known.pop(mac, None)
            raise
        return self._seen(machine_from_row(row))

    async def by_token(self, token: str) -> MachineRecord | None:
        row = await self._run(lambda c: c.fetchrow(SQL.machine_by_token, token))
        return self._seen(machine_from_row(row)) if row else None

    async def forget(self, mac: str) -> bool:
        async def work(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                await conn.execute(SQL.delete_events, mac)
                return await conn.execute(SQL.delete_machine, mac) != "DELETE 0"
        self._known.pop(mac, None)
        return await self._run(work)


def _settle(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


async def _migrate(conn: asyncpg.Connection, where: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                           "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        for version, statements in pending_migrations(current, MIGRATIONS, where):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                               version, time.time())
            log.info("state store %s: migrated schema to version %d", where, version)
