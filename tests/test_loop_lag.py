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


def test_every_process_reports_the_worst_block_of_all_of_them():
    """A worker process (a real child, given the shared file as the HTTP workers are) writes its slot;
    this process's figures then carry its block and name it, and a smaller figure never lowers one."""
    import subprocess
    import sys

    from bootserver.loop_lag import FIGURES, REGISTRY, SharedWorst, share

    saved = (FIGURES.shared, FIGURES.slot, FIGURES.worst, FIGURES.busy)
    shared = SharedWorst(3)
    try:
        FIGURES.worst = FIGURES.busy = 0.0  # this process's own, from the tests above
        share(shared, 0)
        FIGURES.raise_to(0.004, 0.002)
        child = ("import sys; from bootserver.loop_lag import SharedWorst, share, FIGURES\n"
                 "share(SharedWorst(fd=int(sys.argv[1])), 2); FIGURES.raise_to(0.25, 0.03); FIGURES.raise_to(0.1, 0.01)")
        subprocess.run([sys.executable, "-c", child, str(shared.fd)], pass_fds=(shared.fd,), check=True, timeout=60)
        assert shared.read(2) == (0.25, 0.03)
        assert REGISTRY.get_sample_value("bootserver_loop_block_max_seconds") == 0.25
        assert REGISTRY.get_sample_value("bootserver_loop_block_busy_max_seconds") == 0.03
        by = {name: REGISTRY.get_sample_value("bootserver_loop_block_process_max_seconds", {"process": name})
              for name in ("main", "http-worker-1", "http-worker-2")}
        assert by == {"main": 0.004, "http-worker-1": 0.0, "http-worker-2": 0.25}
        shared.raise_to(2, 0.05, 0.5)  # a replacement worker in the same slot keeps its predecessor's worst
        assert shared.read(2) == (0.25, 0.5)
    finally:
        FIGURES.shared, FIGURES.slot, FIGURES.worst, FIGURES.busy = saved
        shared.close()
