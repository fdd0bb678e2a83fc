"""YAML documents with source positions, so every catalog error can name its file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

Path_ = tuple  # a field path such as ("spec", "boot", "initrd", 0)


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, column: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column, self.first_line = key, line, column, first_line


@dataclass
class Document:
    index: int  # 0-based position in the file
    line: int  # 1-based
    data: Any
    positions: dict[tuple, tuple[int, int]]  # field path -> (line, column), both 1-based

    def where(self, path: tuple) -> tuple[int, int]:
        """The closest known position for `path` (walks up to the parent when a key is missing)."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (self.line, 1))


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, positions: dict) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise yaml.MarkedYAMLError(problem="mapping keys must be plain strings", problem_mark=key_node.start_mark)
            if key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1, key_node.start_mark.column + 1, seen[key])
            seen[key] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, path + (key,), positions)
            positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), positions) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and ":" in str(node.value):
        return node.value  # YAML 1.1 reads 52:54:00:00:00:01 as a base-60 number; keep the text
    return value


def load_documents(text: str) -> Iterator[Document]:
    """Yield each YAML document with positions. Raises yaml.YAMLError or DuplicateKey.

    One loader per call, composing and constructing: nothing is shared between loads (reloads run
    in threads), and what a document constructed is dropped before the next one.
    """
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                positions: dict[tuple, tuple[int, int]] = {}
                data = _convert(loader, node, (), positions)
                loader.constructed_objects.clear()
                loader.recursive_objects.clear()
                yield Document(index=index, line=node.start_mark.line + 1, data=data, positions=positions)
            index += 1
    finally:
        loader.dispose()
