"""Stopping a process the test started: politely first, then for sure, never left running."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen, timeout: float = 10, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (SIGTERM) and wait up to `timeout` s, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
