"""Logging to stderr, one line per event: readable by people, or JSON with --log-format json."""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import threading
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
    """Writes lines to the stream in batches: at most FLUSH_EVERY seconds after they were logged, at
    once for a warning or worse. A busy server logs a line per request (the access log); a write
    and flush of each was a tenth of the time of a cached /ipxe answer."""

    FLUSH_EVERY = 0.1  # seconds
    MAX_BUFFER = 256 << 10  # characters held before writing regardless

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        threading.Thread(target=self._flusher, name="log-flusher", daemon=True).start()
        atexit.register(self.flush_now)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        with self.lock:
            self._lines.append(line)
            self._size += len(line)
            urgent = record.levelno >= logging.WARNING or self._size > self.MAX_BUFFER
        if urgent:
            self.flush_now()
        else:
            self._wake.set()

    def flush(self) -> None:  # logging calls this after every record: batched by the flusher instead
        pass

    def flush_now(self) -> None:
        with self.lock:
            lines, self._lines, self._size = self._lines, [], 0
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed (a stopped test harness): nothing to do
                    pass

    def close(self) -> None:
        self.flush_now()
        super().close()

    def _flusher(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.FLUSH_EVERY)
            self._wake.clear()
            self.flush_now()


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
