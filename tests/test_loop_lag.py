"""The loop-lag probe sees a callback that holds the event loop, and tells its own CPU work apart
from time the process was not running (here: asleep in the callback, as if descheduled)."""

from __future__ import annotations

import asyncio
import time

from bootserver.loop_lag import LoopLagProbe


def hold_loop(seconds: float, busy: bool) -> None:
    """Hold the loop for `seconds` of CPU time (busy) or of sleep."""
    if not busy:
        time.sleep(seconds)
    end = time.thread_time() + seconds
    while busy and time.thread_time() < end:
        pass


def probe_after(seconds: float, busy: bool) -> LoopLagProbe:
    async def main() -> LoopLagProbe:
        probe = LoopLagProbe(interval=0.005)
        await probe.start()
        await asyncio.sleep(0.05)
        hold_loop(seconds, busy)
        await asyncio.sleep(0.05)
        await probe.stop()
        return probe

    return asyncio.run(main())


def test_a_busy_callback_is_a_block_on_the_cpu():
    probe = probe_after(0.15, busy=True)
    assert probe.worst >= 0.14
    assert probe.worst_busy >= 0.1


def test_a_loop_that_is_not_running_is_late_but_not_busy():
    probe = probe_after(0.15, busy=False)
    assert probe.worst >= 0.14
    assert probe.worst_busy < 0.05
