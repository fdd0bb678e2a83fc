"""Logging to stderr, one line per event: readable by people, or JSON with --log-format json."""

from __future__ import annotations

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


HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LineHandler(logging.StreamHandler):
    """The handler `setup` installs (a StreamHandler; its type tells FastInfo the stream is ours)."""


def setup(fmt: str = "human", level: str = "info") -> None:
    handler = LineHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter(HUMAN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class FastInfo:
    """`logger.info` for a line logged on every request (the access log): when the record would only
    reach the human-format handler `setup` installed (no other handler or filter on the way, as
    pytest's caplog adds), the same line is written to its stream directly, without a LogRecord,
    its caller lookup and per-record formatting (a fifth of an /ipxe answer's time); otherwise, and
    for `extra` fields (the JSON format reads them), the ordinary call. Like the handler it writes
    under the handler's lock and flushes each line: a line is out before the answer is sent."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._second = -1
        self._stamp = ""

    def _direct(self) -> LineHandler | None:
        logger = self.logger
        while logger is not None:
            if logger.filters:
                return None
            if logger.handlers:
                break
            if not logger.propagate:
                return None
            logger = logger.parent
        if logger is None or logger.parent is not None or len(logger.handlers) != 1:
            return None  # only the root logger may hold a handler: the one setup installed
        handler = logger.handlers[0]
        formatter = handler.formatter
        if (type(handler) is not LineHandler or handler.filters or handler.level > logging.INFO
                or type(formatter) is not HumanFormatter or formatter._fmt != HUMAN_FORMAT
                or formatter.datefmt is not None or formatter.converter is not time.localtime):
            return None
        return handler

    def info(self, msg: str, *args: object, extra: dict | None = None) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct() if extra is None else None
        if handler is None:
            logger.info(msg, *args, extra=extra, stacklevel=2)
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # Formatter.formatTime's text, made once a second
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        line = (f"{self._stamp},{int((now - second) * 1000):03d} INFO    {logger.name}: "
                f"{escape_controls(msg % args if args else msg)}{handler.terminator}")
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.stream.flush()
        except Exception:  # as logging does: a broken stream is said on stderr, never raised to the caller
            handler.handleError(logging.LogRecord(logger.name, logging.INFO, "", 0, msg, args, None))
        finally:
            handler.release()
