"""The one error (and warning) every render of an Ignition config reports, naming the file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RenderError(Exception):
    """The config could not be rendered. `file`/`line` locate the problem in the template (for Butane
    and Ignition problems: the template line that produced the offending line of the rendered
    document); `entries` holds Butane's full report, with lines of the rendered document."""

    def __init__(self, file: str | Path, line: int | None, message: str, entries: list | None = None):
        self.file = str(file)
        self.line = line
        self.message = message
        self.entries = entries or []
        super().__init__(f"{self.file}:{line}: {message}" if line else f"{self.file}: {message}")


@dataclass(frozen=True)
class RenderWarning:
    file: str
    line: int | None
    path: str  # where in the Butane document, e.g. $.storage.files.0.mode
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: warning at {self.path}: {self.message}"
