"""One extra HTTP process (see bootserver.http_workers): `python -m bootserver.http_worker PARENT_PID
LAG_FD SLOT`, its settings pickled on stdin by the parent that started it, which also passes the
shared memory file where each process keeps its worst loop block (bootserver.loop_lag) and this
worker's slot in it.

It runs the same Server as `bootserver serve` with proxyDHCP and TFTP off, so every endpoint,
the catalog watcher and the store behave as in the main process. It says `ready` on stdout once
it listens, stops on SIGTERM, reloads on SIGHUP, and stops by itself if its parent goes away.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pickle
import signal
import sys

from bootserver import logs
from bootserver.app import Server, install_reactor
from bootserver.catalog.loader import CatalogError
from bootserver.config import Settings
from bootserver.loop_lag import SharedWorst, share
from bootserver.state import StoreError

log = logging.getLogger("bootserver.http")
PARENT_CHECK = 1.0  # seconds between looks at whether the main process is still there


async def work(settings: Settings, parent: int, lag: SharedWorst | None = None, slot: int = 1) -> int:
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)
    server = Server(settings)
    try:
        await server.start()
    except (CatalogError, OSError, StoreError) as exc:
        log.error("HTTP worker %d not starting: %s", os.getpid(), exc)
        return 1
    if lag is not None:
        share(lag, slot)  # this process's worst loop block, for /metrics in every process: bootserver.loop_lag
    gc.freeze()  # as the main process: what start built stays out of full collections
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(server.reload("SIGHUP")))
    sys.stdout.buffer.write(b"ready\n")
    sys.stdout.buffer.flush()
    while not stopping.is_set():
        if os.getppid() != parent:
            log.error("HTTP worker %d: the main process %d is gone; stopping", os.getpid(), parent)
            break
        try:
            await asyncio.wait_for(stopping.wait(), PARENT_CHECK)
        except asyncio.TimeoutError:
            pass
    await server.stop()
    return 0


def main() -> int:
    parent = int(sys.argv[1])
    lag = SharedWorst(fd=int(sys.argv[2])) if len(sys.argv) > 3 else None  # passed open by our parent
    slot = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    settings: Settings = pickle.load(sys.stdin.buffer)  # written by our parent, bootserver.http_workers
    logs.setup(settings.log_format, settings.log_level)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    try:
        return loop.run_until_complete(work(settings, parent, lag, slot))
    finally:
        loop.close()


if __name__ == "__main__":
    raise SystemExit(main())
