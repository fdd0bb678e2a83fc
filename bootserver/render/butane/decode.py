"""Decode YAML nodes into plain values shaped by the Butane schema, as go-yaml v3 does.

A struct becomes a dict holding only the keys that were written with a non-null value; a list
becomes a list (null items become the zero value); scalars become str/int/bool. Along the way it
records where each value sits in the source, warns about keys the schema does not know ("Unused
key", as Butane does) and collects type errors (which are fatal, as in go-yaml).
"""

from __future__ import annotations

from . import yamlsrc
from ..report import Path, Report
from .schema import ZERO, ListOf, Struct, type_name
from .yamlsrc import Mapping, Node, Scalar, Sequence


class Decoded:
    """The result of decoding: value, source positions by path, type errors, and warnings."""

    __slots__ = ("value", "positions", "type_errors", "report")

    def __init__(self) -> None:
        self.value: object = None
        self.positions: dict[Path, tuple[int, int]] = {}
        self.type_errors = Report()
        self.report = Report()  # unused-key warnings and the schema's own validation

    def position(self, path: Path) -> tuple[int | None, int | None]:
        """Line and column of `path`, or of its nearest ancestor that was written."""
        path = tuple(path)
        while True:
            pos = self.positions.get(path)
            if pos is not None:
                return pos
            if not path:
                return None, None
            path = path[:-1]


def decode(node: Node | None, kind: Struct, version: tuple, base: str, validators: dict | None = None,
           path: Path = ()) -> Decoded:
    out = Decoded()
    _Decoder(out, version, base, validators or {}).run(node, kind, tuple(path))
    return out


class _Decoder:
    __slots__ = ("out", "version", "base", "validators")

    def __init__(self, out: Decoded, version: tuple, base: str, validators: dict):
        self.out, self.version, self.base, self.validators = out, version, base, validators

    def run(self, node: Node | None, kind: Struct, path: Path) -> None:
        value = None if node is None or _is_null(node) else self.value(node, kind, path)
        if value is None:  # an empty document is an empty struct
            value = self.struct(Mapping((), 1, 1), kind, path)
        self.out.value = value

    def value(self, node: Node, kind: object, path: Path) -> object:
        self.out.positions[path] = (node.line, node.column)
        if isinstance(kind, Struct):
            return self.struct(node, kind, path)
        if isinstance(kind, ListOf):
            return self.list(node, kind, path)
        if not isinstance(node, Scalar):
            return self.mismatch(node, kind, path)
        if kind == "str":
            return node.text
        if kind == "int":
            number = yamlsrc.as_int(node)
            return number if number is not None else self.mismatch(node, kind, path)
        flag = yamlsrc.as_bool(node)
        return flag if flag is not None else self.mismatch(node, kind, path)

    def struct(self, node: Node, kind: Struct, path: Path) -> dict | None:
        if not isinstance(node, Mapping):
            return self.mismatch(node, kind, path)
        fields = kind.fields_for(self.version)
        out: dict[str, object] = {}
        for key, child, key_line, key_col in node.items:
            child_path = path + (key,)
            spec = fields.get(key)
            if spec is None:
                self.out.positions[child_path] = (key_line, key_col)
                self.out.report.warn(child_path, f"Unused key {key}")
                continue
            if _is_null(child):
                self.out.positions[child_path] = (child.line, child.column)
                continue
            value = self.value(child, spec.type, child_path)
            if value is not None:
                out[key] = value
        validate = self.validators.get(kind.name)
        if validate is not None:
            validate(out, path, self.out.report)
        return out

    def list(self, node: Node, kind: ListOf, path: Path) -> list | None:
        if not isinstance(node, Sequence):
            return self.mismatch(node, kind, path)
        out = []
        for index, child in enumerate(node.items):
            child_path = path + (index,)
            if _is_null(child):
                self.out.positions[child_path] = (child.line, child.column)
                out.append({} if isinstance(kind.item, Struct) else ZERO.get(kind.item))  # type: ignore[arg-type]
                continue
            value = self.value(child, kind.item, child_path)
            out.append(value)
        return out

    def mismatch(self, node: Node, kind: object, path: Path) -> None:
        if isinstance(node, Scalar):
            shown = node.text if len(node.text) <= 40 else node.text[:37] + "..."
            what = f"{node.tag} `{shown}`"
        else:
            what = "!!map" if isinstance(node, Mapping) else "!!seq"
        self.out.type_errors.error(path, f"cannot unmarshal {what} into {type_name(kind, self.base)}")
        return None


def _is_null(node: Node) -> bool:
    return isinstance(node, Scalar) and node.plain and node.text in ("", "~", "null", "Null", "NULL")
