"""Boot a QEMU command line until the lab disk's marker appears on its serial console (or a deadline)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bootserver.lab.disk import DISK_BOOT_MARKER


def console_until_disk_marker(argv: list[str], log: Path, timeout: float) -> str:
    """Run QEMU, stop it (our own PID) once the marker line is on `log`; return the console text."""
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and f"{DISK_BOOT_MARKER} firmware=" not in (
                log.read_text(errors="replace") if log.exists() else ""):
            time.sleep(0.2)
    finally:
        qemu.kill()
        qemu.wait()
    return log.read_text(errors="replace") if log.exists() else ""
