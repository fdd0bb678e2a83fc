"""Telling a lab machine that stopped making progress from one that is merely slow under TCG.

A machine is stuck when its console shows a dead end (the EFI shell, a boot manager with nothing
left to boot, a BIOS with no bootable device, a GRUB prompt) or stays silent for longer than any
step of a boot takes. The run then fails at once with the console's last lines, instead of
waiting out its whole timeout.
"""

from __future__ import annotations

import re
import time

DEAD_ENDS = re.compile(
    r"Shell> |UEFI Interactive Shell|Press ESC in \d+ seconds to skip startup\.nsh"
    r"|No bootable device|No bootable option or device was found|Boot Failed\. EFI Hard Drive"
    r"|^grub> |^grub rescue> |Kernel panic - not syncing",
    re.MULTILINE)
SILENCE_LIMIT = 150.0  # seconds without a console byte: longer than OVMF's slowest network timeout


class StallWatch:
    """Fed a machine's console text (from this power-on) over time; says why it is stuck, or None."""

    def __init__(self, silence_limit: float = SILENCE_LIMIT, clock=time.monotonic) -> None:
        self.silence_limit = silence_limit
        self.clock = clock
        self._length = -1
        self._changed = clock()

    def check(self, text: str) -> str | None:
        now = self.clock()
        if len(text) != self._length:
            self._length, self._changed = len(text), now
        dead_end = DEAD_ENDS.search(text)
        if dead_end:
            return f"reached a dead end: {dead_end.group().strip()!r}"
        if now - self._changed > self.silence_limit:
            return f"console silent for {now - self._changed:.0f} s"
        return None
