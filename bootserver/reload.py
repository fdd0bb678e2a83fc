"""Reload the catalog when a file under it changes (polled; no inotify dependency) or on demand.

A reload that fails validation keeps the last good catalog and logs every problem. So does a reload
that fails any other way (a bug, a file system error): the watcher keeps watching; it never dies
silently. The watcher only loads and reports: `on_reload(catalog)` hands a good catalog over,
`on_error(message)` says why one was refused, `on_running(bool)` whether it is watching (the app
wires them to Runtime, so all three show on /healthz).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Callable

from prometheus_client import Counter

from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.catalog.model import Catalog
from bootserver.metrics import REGISTRY

log = logging.getLogger("bootserver.catalog")
RELOADS = Counter("bootserver_catalog_reloads_total", "Catalog reloads by result", ["result"], registry=REGISTRY)


def fingerprint(root: Path) -> tuple:
    """Names, sizes and mtimes of every file under root: changes when any file is edited."""
    entries = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            entries.append((dirpath, name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


class CatalogWatcher:
    def __init__(self, root: Path, assets: Path, generation: int, on_reload: Callable[[Catalog], None],
                 on_error: Callable[[str, tuple], None], interval: float = 0.5,
                 on_running: Callable[[bool], None] = lambda running: None, warned: tuple = ()) -> None:
        self.root = root
        self.assets = assets
        self.generation = generation  # of the catalog being served
        self.on_reload = on_reload
        self.on_error = on_error
        self.on_running = on_running
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._seen: tuple | None = None
        self._lock = asyncio.Lock()
        self._warned = set(map(str, warned))  # warnings already logged: a reload repeats only new ones

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(fingerprint, self.root)
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _poll(self) -> None:
        self.on_running(True)
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    current = await asyncio.to_thread(fingerprint, self.root)
                except Exception as exc:  # the folder vanished, a permission changed: try again later
                    self._failed("watching", exc)
                    continue
                if current != self._seen:
                    self._seen = current
                    await self.reload("file change")
        finally:  # cancelled at stop; anything else shows in /healthz as a stopped component
            self.on_running(False)

    def _failed(self, why: str, exc: BaseException) -> None:
        self.on_error(f"{why}: {type(exc).__name__}: {exc}")
        RELOADS.labels("failed").inc()
        log.error("catalog reload (%s) failed: %s: %s; still serving generation %d", why, type(exc).__name__,
                  exc, self.generation)

    async def reload(self, why: str) -> bool:
        async with self._lock:
            generation = self.generation + 1
            try:
                catalog = await asyncio.to_thread(load_catalog, self.root, self.assets, generation)
            except CatalogError as exc:
                errors = [p for p in exc.problems if p.severity == "error"]
                self.on_error("; ".join(str(p) for p in errors), tuple(errors))
                RELOADS.labels("failed").inc()
                log.error("catalog reload (%s) failed with %d error(s); still serving generation %d",
                          why, len(errors), self.generation)
                for problem in errors:
                    log.error("  %s", problem)
                return False
            except Exception as exc:  # not a catalog problem bootserver knows to name: still keep the last good
                self._failed(why, exc)
                return False
            self.generation = generation
            self.on_reload(catalog)
            RELOADS.labels("ok").inc()
            current = set(map(str, catalog.warnings))
            for warning in catalog.warnings:
                if str(warning) not in self._warned:
                    log.warning("  %s", warning)
            self._warned = current
            log.info("catalog reloaded (%s): generation %d, %d profiles, %d machines, %d groups", why,
                     generation, len(catalog.profiles), len(catalog.machines), len(catalog.groups))
            return True
