"""A profile's Butane template -> the Ignition config a machine is served.

`render_ignition` is the one entry point the HTTP endpoint and the CLI use: Jinja2 (sandboxed,
strict) renders the template with the machine's context, Butane translates the result, and the
Ignition config passes bootserver's structural check (inside the translation) before anyone sees it.
Any failure is one `RenderError` naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import butane, ignition_check, jinja
from .metrics import CACHE, CACHE_BYTES, RENDER_SECONDS, RENDERS


class RenderError(Exception):
    """The config could not be rendered. `file`/`line` locate the problem in the template (for Butane
    and Ignition problems: the template line that produced the offending line of the rendered
    document); `entries` holds Butane's full report, with lines of the rendered document."""

    def __init__(self, file: str | Path, line: int | None, message: str, entries: list | None = None):
        self.file = str(file)
        self.line = line
        self.message = message
        self.entries = entries or []
        super().__init__(f"{self.file}:{line}: {message}" if line else f"{self.file}: {message}")


@dataclass(frozen=True)
class RenderWarning:
    file: str
    line: int | None
    path: str  # where in the Butane document, e.g. $.storage.files.0.mode
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: warning at {self.path}: {self.message}"


def render_ignition(template_path: Path, context: dict, files_dir: Path, strict: bool = False
                    ) -> tuple[dict, list[RenderWarning]]:
    """Render the Jinja2-templated Butane file at `template_path` into a checked Ignition config."""
    started = time.perf_counter()
    try:
        result = _render(template_path, context, files_dir, strict)
    except RenderError:
        RENDERS.labels("error").inc()
        raise
    RENDERS.labels("ok").inc()
    RENDER_SECONDS.observe(time.perf_counter() - started)
    return result


def _render(template_path: Path, context: dict, files_dir: Path, strict: bool) -> tuple[dict, list[RenderWarning]]:
    try:
        text = jinja.render_file(template_path, context)
    except jinja.TemplateError as exc:
        raise RenderError(exc.file, exc.line, exc.message) from None
    try:
        result = butane.translate(text, files_dir=str(files_dir) if files_dir else None, strict=strict)
    except butane.ButaneError as exc:
        entries = exc.report.entries
        first = exc.report.errors[0] if exc.report.errors else entries[0]
        file, line = _TemplateLines(template_path, context).of(first.line)
        message = f"{first.kind} at {butane.path_string(first.path)}: {first.message}"
        if first.line is not None:
            message += f" (line {first.line} of the rendered document)"
        if len(entries) > 1:
            message += f" (and {len(entries) - 1} more)"
        raise RenderError(file, line, message, entries) from None
    lines = _TemplateLines(template_path, context)
    warnings = [RenderWarning(*lines.of(e.line), butane.path_string(e.path), e.message) for e in result.report.entries]
    return result.config, warnings


class _TemplateLines:
    """Maps lines of the rendered document to template lines; renders again only when first asked."""

    def __init__(self, template_path: Path, context: dict):
        self.template_path, self.context = template_path, context
        self.origins: list[tuple[str, int]] | None = None

    def of(self, rendered_line: int | None) -> tuple[str, int | None]:
        if rendered_line is None:
            return str(self.template_path), None
        if self.origins is None:
            self.origins = jinja.line_origins(self.template_path, self.context)
        if 0 < rendered_line <= len(self.origins):
            return self.origins[rendered_line - 1]
        return str(self.template_path), rendered_line


def check_config(config: Any, source: str | Path) -> dict:
    """A ready Ignition JSON config must pass the same structural check before it is served."""
    if not isinstance(config, dict):
        raise RenderError(source, None, "an Ignition config must be a JSON object")
    report = ignition_check.check(config)
    if report.fatal:
        first = report.errors[0]
        raise RenderError(source, None, f"error at {butane.path_string(first.path)}: {first.message}",
                          report.entries)
    return config


class RenderCache:
    """Rendered configs by (machine, catalog generation, context digest), least recently used dropped.

    The same config is often fetched twice in a row (Ignition retries, the installer and the OS);
    a catalog reload changes the generation, so stale renders are never served. The context digest
    keeps two requests that differ in what the template can see apart; callers pass only the parts
    of the context the template reads, so unique queries do not make unique entries. Bounded both in
    entries and in bytes.
    """

    def __init__(self, size: int = 4096, max_bytes: int = 64 << 20):
        self.size = size
        self.max_bytes = max_bytes  # what bounds memory: configs can be megabytes each
        self.bytes = 0
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(machine: str, generation: Any, context: dict, extra: Any = None) -> tuple:
        digest = hashlib.blake2b(json.dumps(context, sort_keys=True, default=str).encode(), digest_size=16)
        return machine, generation, extra, digest.hexdigest()

    def get_or_render(self, key: tuple, render: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                CACHE.labels("hit").inc()
                return self._items[key]
        value = render()  # errors are not cached: the next request tries again
        CACHE.labels("miss").inc()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.bytes += _size(value)
            while self._items and (len(self._items) > self.size or self.bytes > self.max_bytes):
                self.bytes -= _size(self._items.popitem(last=False)[1])
            CACHE_BYTES.set(self.bytes)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
            CACHE_BYTES.set(0)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, str)) else 0
