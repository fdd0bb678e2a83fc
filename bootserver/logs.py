"""Logging to stderr, one line per event: readable by people, or JSON with --log-format json."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time

#: what could end a log line or rewrite the terminal: C0/C1 controls (tab aside), DEL, U+2028, U+2029
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (\\n, \\x1b, \\u2028): one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1] if m.group() not in "\u2028\u2029"
                        else f"\\u{ord(m.group()):04x}", text)


class HumanFormatter(logging.Formatter):
    """Readable lines. A message (which may quote a client's path or an installer's detail) cannot
    forge another line: its controls are escaped. Tracebacks, added after it, keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record logged with `extra={"fields": {...}}` (the access log:
    mac, machine, path, status, bytes, ms) carries those as top-level keys, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
               + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


class BatchingHandler(logging.StreamHandler):
    """Writes the lines logged on the event loop in one go, at the end of the loop's current round
    (a round serves every request that is ready: under load, dozens of access-log lines per write;
    when idle, one line at once). A warning or worse, and lines from other threads, are written
    at once. A write and flush per line was a tenth of the time of a cached /ipxe answer."""

    MAX_BUFFER = 256 << 10  # characters held before writing regardless

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:
            self._lines.append(line)
            self._size += len(line)
            later = loop is not None and record.levelno < logging.WARNING and self._size <= self.MAX_BUFFER
            if later and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self.flush_now)
        if not later:
            self.flush_now()

    def flush(self) -> None:  # logging calls this after every record: see flush_now
        pass

    def flush_now(self) -> None:
        with self.lock:
            lines, self._lines, self._size, self._scheduled = self._lines, [], 0, False
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed: nothing left to tell
                    pass

    def close(self) -> None:
        self.flush_now()
        super().close()


def setup(fmt: str = "human", level: str = "info") -> None:
    handler = BatchingHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
