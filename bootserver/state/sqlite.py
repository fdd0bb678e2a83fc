"""SQLite `Store`: the embedded default, one file in WAL mode.

Writes go through one writer thread that commits in groups: every write waiting when the writer
becomes free joins the next transaction, and each caller's `await` returns only after that
transaction is committed. Hundreds of booting machines thus share one fsync, and an event that was
acknowledged is on disk (a SIGKILL of the process cannot lose it). Reads use their own connection
(WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, StateChanged, StoreError, StoreUnavailable,
                                   UnknownMachine, check_facts)
from bootserver.state.metrics import COMMIT_BATCH, COMMIT_SECONDS, EVENTS_COMMITTED
from bootserver.state.updates_sqlite import SqliteUpdates
from bootserver.state.sql import (SQLITE, Statements, event_from_row, event_row, machine_from_row,
                                  new_machine_row, not_spent, pending_migrations)
from bootserver.state.tokens import new_token

log = logging.getLogger(__name__)

SQL = Statements(SQLITE)
MIGRATIONS = SQL.migrations  # a module attribute, so a test can add a migration

_STOP = object()


WRITE_LOCK_WAIT = 10.0  # seconds the writer waits for another process's write transaction


def _begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for another process that writes (HTTP workers share the file) in
    steps of at most 2 ms: SQLite's own busy handler sleeps 25-100 ms at a time once it has waited
    a little, which showed as 100+ ms answers with two writers."""
    deadline, pause = time.monotonic() + WRITE_LOCK_WAIT, 0.0001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _GroupCommitWriter(threading.Thread):
    """Owns the write connection; runs queued writes in shared transactions."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, retention: int, max_batch: int) -> None:
        super().__init__(name=f"sqlite-writer:{path.name}", daemon=True)
        self._path = path
        self._loop = loop
        self._retention = retention
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._accepting = threading.Lock()  # held while a write is queued, and when the writer stops taking them
        self._closed = False
        self._since_trim: dict[str, int] = {}  # MAC -> events written since its timeline was last trimmed
        self.ready: asyncio.Future = loop.create_future()

    def submit(self, op: Event | Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        with self._accepting:
            if self._closed or not self.is_alive():
                raise StoreUnavailable(f"the writer of {self._path} has stopped")
            fut = self._loop.create_future()
            self._queue.put((op, fut))
        return fut

    def stop(self) -> None:
        self._queue.put((_STOP, None))

    def run(self) -> None:
        try:
            conn = _connect(self._path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn, str(self._path))
            conn.execute("PRAGMA busy_timeout = 0")  # _begin waits for the lock, finer than SQLite would
        except BaseException as exc:  # reported to open(), which raises it
            self._loop.call_soon_threadsafe(_settle_one, self.ready, None, exc)
            return
        self._loop.call_soon_threadsafe(_settle_one, self.ready, None, None)
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = any(op is _STOP for op, _ in batch)
                if stopping:  # take no more writes; the ones already queued behind the stop go in too
                    with self._accepting:
                        self._closed = True
                    batch += self._drain()
                work = [(op, fut) for op, fut in batch if op is not _STOP]
                if work:
                    self._commit(conn, work)
                if stopping:
                    break
        finally:
            conn.close()

    def _drain(self) -> list:
        left = []
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                return left

    def _due_for_trim(self, macs: list[str]) -> list[str]:
        """The machines whose timelines get trimmed in this commit: each after every `slack` new events
        (5 % of the retention), not after each one. A trim walks up to `retention` index entries, and
        a busy machine (one /ipxe event per request) made that the writer's main cost."""
        slack = max(1, self._retention // 20)
        due = []
        for mac in macs:
            count = self._since_trim.get(mac, 0) + 1
            if count >= slack:
                due.append(mac)
                count = 0
            self._since_trim[mac] = count
        if len(self._since_trim) > 100_000:  # bounded: forget the counts (the next trims come a little later)
            self._since_trim.clear()
        return list(dict.fromkeys(due))

    def _commit(self, conn: sqlite3.Connection, work: list) -> None:
        outcomes: list[tuple[asyncio.Future, Any, BaseException | None]] = []
        events: list[tuple] = []
        event_futs: list[asyncio.Future] = []
        macs: list[str] = []

        def flush_events() -> None:
            if events:
                conn.executemany(SQL.insert_event, events)
                outcomes.extend((f, True, None) for f in event_futs)
                events.clear()
                event_futs.clear()

        started = time.perf_counter()
        committed = 0
        try:
            _begin(conn)
            for op, fut in work:
                if isinstance(op, Event):
                    events.append(event_row(op))
                    event_futs.append(fut)
                    macs.append(op.mac)
                    committed += 1
                    continue
                flush_events()
                outcomes.append((fut, *self._run_whole(conn, op)))
            flush_events()
            trim = self._due_for_trim(macs)
            if trim:
                conn.executemany(SQL.trim_events, [(m, self._retention) for m in trim])
            conn.execute("COMMIT")
            EVENTS_COMMITTED.labels("sqlite").inc(committed)
            COMMIT_BATCH.labels("sqlite").observe(len(work))
            COMMIT_SECONDS.labels("sqlite").observe(time.perf_counter() - started)
        except Exception as exc:  # disk full, I/O error: nothing in this batch was acknowledged
            log.error("state store: commit of %d writes to %s failed: %s", len(work), self._path, exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(fut, None, StoreUnavailable(f"write to {self._path} failed: {exc}")) for _, fut in work]
        self._loop.call_soon_threadsafe(_settle_all, outcomes)


    def _run_whole(self, conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], Any]
                   ) -> tuple[Any, BaseException | None]:
        """Run one write in a savepoint: if it raises, all its statements are rolled back (not the
        others of the group) and a failed write reads as StoreUnavailable, so the caller may retry."""
        conn.execute("SAVEPOINT write")
        try:
            result = op(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            if isinstance(exc, sqlite3.Error):
                log.error("state store: a write to %s failed: %s", self._path, exc)
                exc = StoreUnavailable(f"write to {self._path} failed: {exc}")
            return None, exc
        conn.execute("RELEASE write")
        return result, None


def _settle_one(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _settle_all(outcomes: list) -> None:
    for fut, result, exc in outcomes:
        _settle_one(fut, result, exc)


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


def _log_failed_event(fut: asyncio.Future) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("timeline event not recorded: %s", fut.exception())


class SqliteStore(SqliteUpdates):
    def __init__(self, path: str | Path, retention: int = 1000, *, max_batch: int = 1000) -> None:
        self.path = Path(path)
        self._retention = retention
        self._max_batch = max_batch
        self._writer: _GroupCommitWriter | None = None
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
        self._writer = _GroupCommitWriter(self.path, loop, self._retention, self._max_batch)
        self._writer.start()
        try:
            await self._writer.ready
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as the state database: {exc}") from None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._read_conn = await loop.run_in_executor(self._reader, _connect, self.path)
        self._lookup_conn = _connect(self.path)
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
        """Queue the event for the next group commit without waiting for it (queue order is kept)."""
        if self._writer is None:
            raise StoreError("the state store is not open")
        self._writer.submit(event).add_done_callback(_log_failed_event)

    async def key_seen(self, mac: str, key: str) -> bool:
        return bool(await self._read(SQL.event_key_seen, (mac, key)))

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
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
