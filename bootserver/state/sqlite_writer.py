"""The SQLite store's writer thread: it owns the write connection and runs queued writes in shared
transactions (group commit), each write in its own savepoint. See bootserver/state/sqlite.py."""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bootserver.state.base import Event, StoreUnavailable
from bootserver.state.metrics import COMMIT_BATCH, COMMIT_SECONDS, EVENTS_COMMITTED
from bootserver.state.sql import SQLITE, Statements, event_row

log = logging.getLogger("bootserver.state.sqlite")

SQL = Statements(SQLITE)

_STOP = object()


WRITE_LOCK_WAIT = 10.0  # seconds the writer waits for another process's write transaction
#: seconds a commit of queued timeline entries alone (record_later: nobody waits for them) waits for more
#: to join it: one commit for many instead of one each (each writes a WAL page per machine and an fsync).
#: A write someone awaits ends the wait; a timeline read of this process commits them first.
LATER_LINGER = 0.05


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


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class GroupCommitWriter(threading.Thread):
    """Owns the write connection; runs queued writes in shared transactions."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, retention: int, max_batch: int,
                 migrate: Callable[[sqlite3.Connection, str], None]) -> None:
        super().__init__(name=f"sqlite-writer:{path.name}", daemon=True)
        self._path = path
        self._migrate = migrate
        self._loop = loop
        self._retention = retention
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._accepting = threading.Lock()  # held while a write is queued, and when the writer stops taking them
        self._closed = False
        self._since_trim: dict[str, int] = {}  # MAC -> events written since its timeline was last trimmed
        self._urgent = threading.Event()  # set when a write someone awaits (or the stop) is queued
        self.later_pending = 0  # timeline entries queued without a waiter, not yet settled (loop thread only)
        self.ready: asyncio.Future = loop.create_future()

    def submit(self, op: Event | Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        with self._accepting:
            if self._closed or not self.is_alive():
                raise StoreUnavailable(f"the writer of {self._path} has stopped")
            fut = self._loop.create_future()
            self._queue.put((op, fut))
        self._urgent.set()
        return fut

    def submit_later(self, event: Event) -> None:
        """Queue a timeline entry nobody waits for (its commit may wait LATER_LINGER for company; a
        failed commit is logged). Called on the loop's thread."""
        with self._accepting:
            if self._closed or not self.is_alive():
                raise StoreUnavailable(f"the writer of {self._path} has stopped")
            self._queue.put((event, None))
        self.later_pending += 1

    def _linger(self, batch: list) -> None:
        """A batch of unawaited timeline entries only: sleep up to LATER_LINGER (cut short by a write
        someone awaits, or the stop), then take what came meanwhile, up to max_batch. Entries queued
        meanwhile wake nobody: one hand-off per batch, not one per entry."""
        self._urgent.wait(LATER_LINGER)
        self._urgent.clear()
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def stop(self) -> None:
        self._queue.put((_STOP, None))
        self._urgent.set()

    def run(self) -> None:
        try:
            conn = connect(self._path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._migrate(conn, str(self._path))
            conn.execute("PRAGMA busy_timeout = 0")  # _begin waits for the lock, finer than SQLite would
        except BaseException as exc:  # reported to open(), which raises it
            self._loop.call_soon_threadsafe(settle_one, self.ready, None, exc)
            return
        self._loop.call_soon_threadsafe(settle_one, self.ready, None, None)
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if all(fut is None and op is not _STOP for op, fut in batch):
                    self._linger(batch)
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
        event_futs: list[asyncio.Future | None] = []
        macs: list[str] = []

        def flush_events() -> None:
            if events:
                conn.executemany(SQL.insert_event, events)
                outcomes.extend((f, True, None) for f in event_futs if f is not None)
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
            outcomes = [(fut, None, StoreUnavailable(f"write to {self._path} failed: {exc}")) for _, fut in work
                        if fut is not None]
        self._loop.call_soon_threadsafe(self._settled, outcomes, sum(fut is None for _, fut in work))

    def _settled(self, outcomes: list, later: int) -> None:
        """On the loop: the batch's waiters learn how it went; its unawaited entries are no longer pending."""
        self.later_pending -= later
        for fut, result, exc in outcomes:
            settle_one(fut, result, exc)

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


def settle_one(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
