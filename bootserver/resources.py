"""Open files are a budget: HTTP connections and TFTP transfers each hold one, and running out
must cost new connections, not the whole server.

At start bootserver raises its soft open-file limit to the hard one, then splits what it has:
a reserve for the store, catalog reads, logs and listening sockets; the rest between HTTP
connections and TFTP transfers. Past its share, HTTP closes its oldest idle connection for each new
one (see http/connections.py) and TFTP refuses new transfers. If the process runs out anyway,
that is said once a second, without a traceback per failed accept.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from dataclasses import dataclass

log = logging.getLogger("bootserver")

RESERVE = 64  # descriptors kept for the store, catalog and template reads, logs, listening sockets
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft if soft != resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft
    log.info("open-file limit raised from %d to %d", soft, hard)
    return hard


@dataclass(frozen=True)
class Budget:
    """How many descriptors each protocol may hold at once."""

    http_connections: int
    tftp_sessions: int

    @classmethod
    def for_limit(cls, limit: int, tftp_cap: int = 1000) -> Budget:
        usable = max(limit - RESERVE, 32)
        return cls(http_connections=max(16, usable * 6 // 10), tftp_sessions=max(8, min(tftp_cap, usable * 3 // 10)))


class OncePerSecond:
    """Say something that can happen thousands of times a second at most once a second, with a count."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        suffix = f" ({self._suppressed} more since the last line)" if self._suppressed else ""
        self._last, self._suppressed = now, 0
        self.logger.warning(message + suffix, *args)


def quiet_out_of_files(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs a traceback for every accept() that fails with EMFILE (many per second under
    load); say it once a second instead. Every other loop error keeps the default handling."""
    said = OncePerSecond(log)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES:
            said.warning("out of open files or socket buffers (%s): new connections wait until some close",
                         exc.strerror)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
