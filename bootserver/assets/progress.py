"""Download progress: a redrawn bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Reports one download at a time: `start`, `advance` as bytes arrive, `finish`."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._name = ""
        self._total: int | None = None
        self._done = 0
        self._already = 0
        self._began = 0.0
        self._drawn = 0.0

    def note(self, message: str) -> None:
        """A line of its own (resumes, retries, skips), never mixed into a bar."""
        if self.tty and self._name:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()

    def start(self, name: str, total: int | None, already: int = 0) -> None:
        self._name, self._total, self._done, self._already = name, total, already, already
        self._began = time.monotonic()
        self._drawn = 0.0
        if not self.tty:
            size = f" ({human_size(total)})" if total is not None else ""
            resumed = f", resuming at {human_size(already)}" if already else ""
            self.note(f"downloading {name}{size}{resumed}")
        else:
            self._draw()

    def advance(self, n: int) -> None:
        self._done += n
        if self.tty and time.monotonic() - self._drawn >= 0.1:
            self._draw()

    def finish(self) -> None:
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        else:
            self.note(f"downloaded {self._name} ({human_size(self._done)})")
        self._name = ""

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        elapsed = max(self._drawn - self._began, 1e-6)
        if self._total:
            frac = min(self._done / self._total, 1.0)
            bar = "#" * int(frac * 30)
            line = f"{self._name} [{bar:<30}] {frac * 100:5.1f}% {human_size(self._done)}/{human_size(self._total)}"
        else:
            line = f"{self._name} {human_size(self._done)}"
        self.stream.write(f"\r\033[K{line} {human_size((self._done - self._already) / elapsed)}/s")
        self.stream.flush()
