"""YAML with Butane's semantics (go-yaml v3), not PyYAML's YAML 1.1 defaults.

PyYAML only parses and composes nodes here; scalars are resolved the way go-yaml v3 resolves them
when Butane decodes into its typed structs:

* ints use Go's ``ParseInt(s, 0)`` rules, so ``0644`` and ``0o644`` are both octal (420);
* ``yes``/``no``/``on``/``off`` are booleans only when the field is a boolean, elsewhere they stay
  the text that was written;
* a string field keeps the scalar text as written (``uuid: 1234`` is the string ``"1234"``);
* a duplicate key in a mapping is an error.

Positions are kept (1-based line and column of each value) so errors can point at the source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

try:  # the C composer is several times faster; both give the same nodes
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

MERGE_KEY = "<<"
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("true", "True", "TRUE"))
_FALSE = frozenset(("false", "False", "FALSE"))
# go-yaml v3 accepts YAML 1.1 booleans only when decoding into a typed bool
_BOOL11_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"))
_BOOL11_FALSE = frozenset(("n", "N", "no", "No", "NO", "off", "Off", "OFF"))
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}
_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


class YamlError(ValueError):
    """A YAML document that cannot be read: syntax error or duplicate key (1-based line/column)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Scalar:
    text: str
    plain: bool  # unquoted, so it is resolved; quoted scalars are always strings
    line: int
    column: int

    @property
    def tag(self) -> str:
        """The YAML tag go-yaml v3 would resolve (used in error messages, e.g. !!str)."""
        kind, _ = resolve(self)
        return "!!" + kind


@dataclass(frozen=True, slots=True)
class Mapping:
    items: tuple[tuple[str, "Node", int, int], ...]  # (key, value, key line, key column)
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Sequence:
    items: tuple["Node", ...]
    line: int
    column: int


Node = Scalar | Mapping | Sequence


def parse(text: str) -> Node | None:
    """The first document of `text` as position-carrying nodes (None for an empty document)."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_node() if loader.check_node() else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{exc.context}: {problem}" if exc.problem else exc.context
        raise YamlError(problem, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc)) from None
    if root is None:
        return None
    return _convert(root, {})


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(node: yaml.Node, seen: dict[int, Node]) -> Node:
    done = seen.get(id(node))  # aliases share their anchor's node
    if done is not None:
        return done
    line, column = _pos(node)
    if isinstance(node, yaml.ScalarNode):
        # go-yaml resolves every unquoted scalar itself; PyYAML's YAML 1.1 tag is ignored
        out: Node = Scalar(node.value, not node.style, line, column)  # CLoader: "", Python: None
    elif isinstance(node, yaml.SequenceNode):
        out = Sequence(tuple(_convert(child, seen) for child in node.value), line, column)
    else:
        out = Mapping(_mapping_items(node, seen), line, column)
    seen[id(node)] = out
    return out


def _mapping_items(node: yaml.MappingNode, seen: dict[int, Node]) -> tuple:
    items: list[tuple[str, Node, int, int]] = []
    where: dict[str, int] = {}
    merged: list[tuple[str, Node, int, int]] = []
    for key_node, value_node in node.value:
        key_line, key_col = _pos(key_node)
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == MERGE_KEY and not key_node.style:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                converted = _convert(source, seen)
                if not isinstance(converted, Mapping):
                    raise YamlError("map merge requires map or sequence of maps as the value", key_line, key_col)
                merged.extend(converted.items)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlError("mapping keys must be scalars", key_line, key_col)
        key = key_node.value
        if key in where:
            raise YamlError(f'mapping key "{key}" already defined at line {where[key]}', key_line, key_col)
        where[key] = key_line
        items.append((key, _convert(value_node, seen), key_line, key_col))
    for item in merged:  # merged keys never override keys written in the mapping itself
        if item[0] not in where:
            where[item[0]] = item[2]
            items.append(item)
    return tuple(items)


def resolve(node: Scalar) -> tuple[str, object]:
    """(kind, value) as go-yaml v3 resolves a scalar: null, bool, int, float or str."""
    text = node.text
    if not node.plain:
        return "str", text
    if text in _NULLS:
        return "null", None
    if text in _TRUE:
        return "bool", True
    if text in _FALSE:
        return "bool", False
    if not text or text[0] not in "0123456789+-.":
        return "str", text
    if text in _SPECIAL_FLOATS:
        return "float", _SPECIAL_FLOATS[text]
    plain = text.replace("_", "")
    value = _go_parse_int(plain)
    if value is not None and _INT64_MIN <= value <= _UINT64_MAX:
        return "int", value
    if _FLOAT.match(plain):
        try:
            return "float", float(plain)
        except ValueError:
            pass
    return "str", text


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64): 0x hex, 0o or leading-0 octal, 0b binary, else decimal."""
    if not _GO_INT.match(text):
        return None
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    low = digits.lower()
    if low.startswith("0x"):
        return sign * int(digits[2:], 16)
    if low.startswith("0o"):
        return sign * int(digits[2:], 8)
    if low.startswith("0b"):
        return sign * int(digits[2:], 2)
    if len(digits) > 1 and digits[0] == "0":
        return sign * int(digits[1:], 8)
    return sign * int(digits)


def as_bool(node: Scalar) -> bool | None:
    """The boolean a scalar means in a boolean field, or None if it is not one."""
    kind, value = resolve(node)
    if kind == "bool":
        return value  # type: ignore[return-value]
    if kind == "str":
        if value in _BOOL11_TRUE:
            return True
        if value in _BOOL11_FALSE:
            return False
    return None


def as_int(node: Scalar) -> int | None:
    """The integer a scalar means in an integer field (floats truncate, as go-yaml does)."""
    kind, value = resolve(node)
    if kind == "int" and _INT64_MIN <= value <= (1 << 63) - 1:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if kind == "float" and math.isfinite(value) and abs(value) < 2**63:  # type: ignore[arg-type]
        return int(value)  # type: ignore[arg-type]
    return None
