"""SQLite `Store`: the embedded default, one file in WAL mode.

Writes go through one writer thread (sqlite_writer.py) that commits in groups: every write waiting
when the writer becomes free joins the next transaction, and each caller's `await` returns only
after that transaction is committed. Hundreds of booting machines thus share one fsync, and an
event that was acknowledged is on disk (a SIGKILL of the process cannot lose it). Timeline entries
nobody waits for (`record_later`) may wait up to LATER_LINGER for others to share their commit; a
timeline read of the same process commits them first. Reads use their own connection (WAL lets
them run beside the writer).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, StateChanged, StoreError, StoreUnavailable,
                                   UnknownMachine, check_facts)
from bootserver.state.updates_sqlite import SqliteUpdates
from bootserver.state.sql import event_from_row, event_row, machine_from_row, new_machine_row, not_spent, pending_migrations
from bootserver.state.sqlite_writer import SQL, GroupCommitWriter, connect
from bootserver.state.tokens import new_token

log = logging.getLogger(__name__)

MIGRATIONS = SQL.migrations  # a module attribute, so a test can add a migration


def _migrate(conn: sqlite3.Connection, where: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                     "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        for version, statements in pending_migrations(current, MIGRATIONS, where):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, time.time()))
            log.info("state store %s: migrated schema to version %d", where, version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _nothing(conn: sqlite3.Connection) -> None:
    """A write that writes nothing: awaiting it waits for everything queued before it."""


class SqliteStore(SqliteUpdates):
    def __init__(self, path: str | Path, retention: int = 1000, *, max_batch: int = 1000) -> None:
        self.path = Path(path)
        self._retention = retention
        self._max_batch = max_batch
        self._writer: GroupCommitWriter | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._lookup_conn: sqlite3.Connection | None = None  # used on the loop thread: see get()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state folder {self.path.parent}: {exc.strerror}") from None
        loop = asyncio.get_running_loop()
        self._writer = GroupCommitWriter(self.path, loop, self._retention, self._max_batch, _migrate)
        self._writer.start()
        try:
            await self._writer.ready
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as the state database: {exc}") from None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._read_conn = await loop.run_in_executor(self._reader, connect, self.path)
        self._lookup_conn = connect(self.path)
        self._lookup_conn.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: a lock falls back

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        if self._lookup_conn is not None:
            self._lookup_conn.close()
            self._lookup_conn = None
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._read_conn.close)
            self._reader.shutdown()
            self._reader = None

    async def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        def run() -> list[tuple]:
            return self._read_conn.execute(sql, params).fetchall()
        if self._reader is None:
            raise StoreError("the state store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, I/O error
            raise StoreUnavailable(f"reading {self.path} failed: {exc}") from None

    async def _write(self, op: Event | Callable[[sqlite3.Connection], Any]) -> Any:
        if self._writer is None:
            raise StoreError("the state store is not open")
        return await self._writer.submit(op)

    async def get(self, mac: str) -> MachineRecord | None:
        """A primary-key lookup, done on the loop: in WAL mode it takes microseconds and never waits
        for the writer, while a hop to the reader thread costs ten times that on every boot request.
        The loop's connection has no busy timeout: a rare lock (recovery, checkpoint) fails at once
        and the lookup goes to the reader thread, which may wait."""
        sql = SQL.machine_by_mac
        rows = None
        if self._lookup_conn is not None:
            try:
                rows = self._lookup_conn.execute(sql, (mac,)).fetchall()
            except sqlite3.OperationalError:
                rows = None
        if rows is None:
            rows = await self._read(sql, (mac,))
        return machine_from_row(rows[0]) if rows else None

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        check_facts(facts)
        row = new_machine_row(mac, state, new_token(), time.time(), facts)
        return await self._write(lambda conn: machine_from_row(conn.execute(SQL.upsert_machine, row).fetchone()))

    async def set_state(self, mac: str, state: str, *, expected: str | None = None,
                        event: Event | None = None) -> MachineRecord:
        def op(conn: sqlite3.Connection) -> MachineRecord:  # one transaction: the check cannot go stale
            if event is not None and event.key is not None and conn.execute(SQL.event_key_seen,
                                                                             (mac, event.key)).fetchone():
                raise AlreadyRecorded(mac, event.key)
            if expected is None:
                found = conn.execute(SQL.set_state, (state, time.time(), mac)).fetchone()
            else:
                found = conn.execute(SQL.set_state_if, (state, time.time(), mac, expected)).fetchone()
            if found is None:
                current = conn.execute(SQL.state_of, (mac,)).fetchone()
                if current is None:
                    raise UnknownMachine(mac)
                raise StateChanged(mac, expected, current[0])
            if event is not None:  # the transition and its timeline entry commit together
                conn.execute(SQL.insert_event, event_row(event))
            return machine_from_row(found)
        return await self._write(op)

    async def record(self, event: Event) -> bool:
        return await self._write(event)

    def record_later(self, event: Event) -> None:
        """Queue the event for a group commit without waiting for it (queue order is kept; the commit
        may wait LATER_LINGER for more). A timeline read of this process commits queued ones first."""
        if self._writer is None:
            raise StoreError("the state store is not open")
        self._writer.submit_later(event)

    async def _settle_later(self) -> None:
        """Commit the timeline entries this process queued, before a read of the timeline shows it."""
        if self._writer is not None and self._writer.later_pending:
            try:
                await self._writer.submit(_nothing)
            except StoreUnavailable:
                pass  # the read says what it can; the entries' own failure is logged

    async def key_seen(self, mac: str, key: str) -> bool:
        return bool(await self._read(SQL.event_key_seen, (mac, key)))

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        await self._settle_later()
        rows = await self._read(SQL.select_events, (mac, before if before is not None else 2**62, limit))
        return [event_from_row(r) for r in reversed(rows)]

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        if state is None:
            rows = await self._read(SQL.all_machines)
        else:
            rows = await self._read(SQL.machines_in_state, (state,))
        return [machine_from_row(r) for r in rows]

    async def discovered(self) -> list[MachineRecord]:
        return await self.machines("discovered")

    async def rotate_token(self, mac: str) -> MachineRecord:
        def op(conn: sqlite3.Connection) -> MachineRecord:
            found = conn.execute(SQL.rotate_token, (new_token(), mac)).fetchone()
            if found is None:
                raise UnknownMachine(mac)
            return machine_from_row(found)
        return await self._write(op)

    async def spend_token(self, mac: str, token: str, event: Event, *, expected: str,
                          state: str | None = None) -> MachineRecord:
        def op(conn: sqlite3.Connection) -> MachineRecord:  # in its own savepoint: all or nothing
            found = conn.execute(SQL.spend_token, (new_token(), mac, token, expected)).fetchone()
            if found is None:
                raise not_spent(mac, token, expected, conn.execute(SQL.token_and_state_of, (mac,)).fetchone())
            if state is not None:
                found = conn.execute(SQL.set_state_if, (state, time.time(), mac, expected)).fetchone()
            if conn.execute(SQL.insert_event_seq, event_row(event)).fetchone() is None:
                raise AlreadyRecorded(mac, event.key)
            return machine_from_row(found)
        return await self._write(op)

    async def by_token(self, token: str) -> MachineRecord | None:
        rows = await self._read(SQL.machine_by_token, (token,))
        return machine_from_row(rows[0]) if rows else None

    async def forget(self, mac: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(SQL.delete_events, (mac,))
            return conn.execute(SQL.delete_machine, (mac,)).rowcount > 0
        return await self._write(op)
