"""Butane-style reports: errors and warnings, each with a JSON-ish path and a source position."""

from __future__ import annotations

from dataclasses import dataclass, field

Path = tuple  # of str (keys) and int (list indexes); () is the document root "$"

ERROR = "error"
WARNING = "warning"


def path_string(path: Path) -> str:
    return "".join(["$"] + [f".{part}" for part in path])


@dataclass(slots=True)
class Entry:
    kind: str
    path: Path
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = path_string(self.path)
        if self.line is not None:
            where += f", line {self.line} col {self.column}"
        return f"{self.kind} at {where}: {self.message}"


@dataclass(slots=True)
class Report:
    entries: list[Entry] = field(default_factory=list)

    def error(self, path: Path, message: str) -> None:
        self.entries.append(Entry(ERROR, tuple(path), str(message)))

    def warn(self, path: Path, message: str) -> None:
        self.entries.append(Entry(WARNING, tuple(path), str(message)))

    def merge(self, other: "Report") -> None:
        self.entries.extend(other.entries)

    @property
    def fatal(self) -> bool:
        return any(e.kind == ERROR for e in self.entries)

    @property
    def errors(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == ERROR]

    @property
    def warnings(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == WARNING]

    def __str__(self) -> str:
        return "".join(f"{e}\n" for e in self.entries)
