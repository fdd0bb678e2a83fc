"""Reload the catalog when a file under it changes (polled; no inotify dependency) or on demand.

A reload that fails validation keeps the last good catalog and logs every problem. So does a reload
that fails any other way (a bug, a file system error): the error shows in /healthz and the watcher
keeps watching; it never dies silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from prometheus_client import Counter

from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.metrics import REGISTRY
from bootserver.runtime import Runtime

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
    def __init__(self, runtime: Runtime, interval: float = 0.5) -> None:
        self.runtime = runtime
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._seen = fingerprint(runtime.settings.catalog)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _poll(self) -> None:
        self.runtime.components["catalog-watcher"] = True
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    current = await asyncio.to_thread(fingerprint, self.runtime.settings.catalog)
                except Exception as exc:  # the folder vanished, a permission changed: try again later
                    self._failed("watching", exc)
                    continue
                if current != self._seen:
                    self._seen = current
                    await self.reload("file change")
        finally:  # cancelled at stop; anything else would show in /healthz as a stopped component
            self.runtime.components["catalog-watcher"] = False

    def _failed(self, why: str, exc: BaseException) -> None:
        self.runtime.last_reload_error = f"{why}: {type(exc).__name__}: {exc}"
        RELOADS.labels("failed").inc()
        log.error("catalog reload (%s) failed: %s: %s; still serving generation %d", why, type(exc).__name__,
                  exc, self.runtime.catalog.generation)

    async def reload(self, why: str) -> bool:
        async with self._lock:
            runtime = self.runtime
            generation = runtime.catalog.generation + 1
            try:
                catalog = await asyncio.to_thread(load_catalog, runtime.settings.catalog,
                                                  runtime.settings.assets, generation)
            except CatalogError as exc:
                errors = [p for p in exc.problems if p.severity == "error"]
                runtime.last_reload_error = "; ".join(str(p) for p in errors)
                RELOADS.labels("failed").inc()
                log.error("catalog reload (%s) failed with %d error(s); still serving generation %d",
                          why, len(errors), runtime.catalog.generation)
                for problem in errors:
                    log.error("  %s", problem)
                return False
            except Exception as exc:  # not a catalog problem bootserver knows to name: still keep the last good
                self._failed(why, exc)
                return False
            runtime.catalog = catalog
            runtime.last_reload_error = None
            RELOADS.labels("ok").inc()
            for warning in catalog.warnings:
                log.warning("  %s", warning)
            log.info("catalog reloaded (%s): generation %d, %d profiles, %d machines, %d groups", why,
                     generation, len(catalog.profiles), len(catalog.machines), len(catalog.groups))
            return True
