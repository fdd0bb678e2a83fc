"""YAML documents with source positions, so every catalog error can name its file, line and column.

Bounded: a file is read only up to MAX_FILE_BYTES, nesting deeper than MAX_DEPTH is refused before
PyYAML's recursive composer sees it, and aliases may not expand a document past MAX_VALUES values
(the "billion laughs" file is 555 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

Path_ = tuple  # a field path such as ("spec", "boot", "initrd", 0)


DOCUMENT_START = re.compile(r"^---(?=\s|$)", re.MULTILINE)
#: contexts whose mark is where an unclosed thing was opened (the brace, bracket or quote to fix)
OPENED = ("while parsing a flow", "while scanning a quoted scalar", "while scanning a double-quoted",
          "while scanning a single-quoted")
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000


class LimitExceeded(Exception):
    """The file is too large, too deep, or its aliases expand too far; names the line and column."""

    def __init__(self, message: str, line: int = 1, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, column: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column, self.first_line = key, line, column, first_line


@dataclass
class Broken:
    """A document that is not valid YAML (or too big, too deep): where to look and why; the rest of
    its file still loads."""

    line: int
    column: int | None
    message: str


@dataclass
class Document:
    index: int  # 0-based position in the file
    line: int  # 1-based
    data: Any
    positions: dict[tuple, tuple[int, int]]  # field path -> (line, column), both 1-based
    duplicates: list[DuplicateKey] = field(default_factory=list)  # repeated keys (the last one wins)

    def where(self, path: tuple) -> tuple[int, int]:
        """The closest known position for `path` (walks up to the parent when a key is missing)."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (self.line, 1))


class _Budget:
    """Values left to build for one document: an alias counts every time it is expanded."""

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise LimitExceeded(f"the document expands to more than {MAX_VALUES} values "
                                "(YAML aliases repeating aliases?)", node.start_mark.line + 1,
                                node.start_mark.column + 1)


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, positions: dict, budget: _Budget,
             dups: list) -> Any:
    budget.spend(node)
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise yaml.MarkedYAMLError(problem="mapping keys must be plain strings", problem_mark=key_node.start_mark)
            if key in seen:
                dups.append(DuplicateKey(key, key_node.start_mark.line + 1, key_node.start_mark.column + 1, seen[key]))
            seen[key] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, path + (key,), positions, budget, dups)
            positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), positions, budget, dups) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and ":" in str(node.value):
        return node.value  # YAML 1.1 reads 52:54:00:00:00:01 as a base-60 number; keep the text
    return value


def check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, using PyYAML's event parser (which does not recurse)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise LimitExceeded(f"nested more than {MAX_DEPTH} levels deep", mark.line + 1, mark.column + 1)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def syntax_problem(exc: yaml.MarkedYAMLError, offset: int) -> Broken:
    """Where a syntax error is fixed: the opening of an unclosed brace, bracket or quote, else the
    place the parser stopped."""
    context, opened, found = exc.context or "", exc.context_mark, exc.problem_mark
    if opened is not None and context.startswith(OPENED):
        where = f" (found {exc.problem} at line {found.line + 1 + offset})" if found is not None else ""
        what = re.sub(r"^while (parsing|scanning) an? ", "", context)
        return Broken(opened.line + 1 + offset, opened.column + 1,
                      f"YAML syntax error: {what} opened here is not closed{where}")
    mark = found or opened
    return Broken(mark.line + 1 + offset if mark else 1 + offset, mark.column + 1 if mark else None,
                  f"YAML syntax error: {exc.problem or exc.context}")


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """The file cut at each `---` line, with the 0-based line each part starts on, so one broken
    document does not hide the others."""
    starts = [0] + [m.start() for m in DOCUMENT_START.finditer(text) if m.start() > 0]
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        yield text.count("\n", 0, begin), text[begin:end]


def _shift(doc: Document, offset: int) -> Document:
    doc.line += offset
    doc.positions = {path: (line + offset, col) for path, (line, col) in doc.positions.items()}
    for dup in doc.duplicates:
        dup.line += offset
        dup.first_line += offset
    return doc


def load_documents(text: str) -> Iterator[Document | Broken]:
    """Yield each YAML document with positions, or a Broken entry for a document that does not parse
    or breaks a limit (the file as a whole: when it is over MAX_FILE_BYTES).

    One loader per document, composing and constructing: nothing is shared between loads (reloads
    run in threads), and what a document constructed is dropped before the next one.
    """
    if len(text) > MAX_FILE_BYTES:
        yield Broken(1, None, f"larger than {MAX_FILE_BYTES} bytes")
        return
    index = 0
    for offset, chunk in _chunks(text):
        loader = None
        try:
            check_depth(chunk)
            loader = yaml.SafeLoader(chunk)
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    positions: dict[tuple, tuple[int, int]] = {}
                    dups: list[DuplicateKey] = []
                    data = _convert(loader, node, (), positions, _Budget(), dups)
                    loader.constructed_objects.clear()
                    loader.recursive_objects.clear()
                    yield _shift(Document(index, node.start_mark.line + 1, data, positions, dups), offset)
                index += 1
        except LimitExceeded as exc:
            yield Broken(exc.line + offset, exc.column, exc.message)
            index += 1
        except yaml.MarkedYAMLError as exc:
            yield syntax_problem(exc, offset)
            index += 1
        except yaml.YAMLError as exc:
            yield Broken(offset + 1, None, f"YAML error: {exc}")
            index += 1
        finally:
            if loader is not None:
                loader.dispose()
