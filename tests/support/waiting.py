"""Polling for a condition with a bound, from a test's event loop or from a plain thread."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


async def until(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """True once `condition()` holds; False if it still does not after `timeout` s. The loop keeps
    running between checks, so servers on the test's own loop go on answering."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """The first truthy value of `predicate()`; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
