"""The declarative shape of catalog documents, and a checker that reports every mismatch.

A schema is built from a few small types; `check` walks a document against it and returns
(path, message) pairs instead of stopping at the first problem.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from bootserver.catalog.model import ARCHES


@dataclass(frozen=True)
class Str:
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scalar:
    """A string, number or boolean (label values, for example)."""


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class Int:
    low: int = 0
    high: int = 2**31 - 1


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class AnyMap:
    """Free-form mapping (metadata): any keys, any values."""


@dataclass(frozen=True)
class MapOf:
    value: Any  # every value has this type; keys are free


@dataclass(frozen=True)
class Fields:
    fields: dict[str, Any]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = field(default=())  # exactly one of these keys must be present


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def check(value: Any, schema: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    if isinstance(schema, Str):
        if not isinstance(value, str):
            problems.append((path, f"expected a string, got {_type_name(value)}"))
        elif schema.choices and value not in schema.choices:
            problems.append((path, f"{value!r} is not one of: {', '.join(schema.choices)}"))
    elif isinstance(schema, Scalar):
        if not isinstance(value, (str, int, float, bool)):
            problems.append((path, f"expected a string, number or boolean, got {_type_name(value)}"))
    elif isinstance(schema, Bool):
        if not isinstance(value, bool):
            problems.append((path, f"expected true or false, got {_type_name(value)}"))
    elif isinstance(schema, Int):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((path, f"expected a whole number, got {_type_name(value)}"))
        elif not schema.low <= value <= schema.high:
            problems.append((path, f"{value} is out of range ({schema.low} to {schema.high})"))
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            problems.append((path, f"expected a list, got {_type_name(value)}"))
        else:
            for i, item in enumerate(value):
                problems += check(item, schema.item, path + (i,))
    elif isinstance(schema, AnyMap):
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {_type_name(value)}"))
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {_type_name(value)}"))
        else:
            for key, item in value.items():
                problems += check(item, schema.value, path + (key,))
    elif isinstance(schema, Fields):
        if not isinstance(value, dict):
            return [(path, f"expected a mapping, got {_type_name(value)}")]
        for key, item in value.items():
            if key not in schema.fields:
                close = difflib.get_close_matches(str(key), list(schema.fields), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(schema.fields)})"
                problems.append((path + (key,), f"unknown field {key!r}{hint}"))
            else:
                problems += check(item, schema.fields[key], path + (key,))
        for key in schema.required:
            if key not in value:
                problems.append((path, f"missing required field {key!r}"))
        if schema.one_of and sum(k in value for k in schema.one_of) != 1:
            problems.append((path, f"exactly one of {', '.join(schema.one_of)} is required"))
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unknown schema node {schema!r}")
    return problems


LOADERS = ("ipxe", "grub")  # boot.loader: what UEFI firmware is given first (docs/secure-boot.md)

METADATA = Fields({"name": Str(), "labels": MapOf(Scalar()), "annotations": MapOf(Scalar())}, required=("name",))

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

UPDATES = Fields({
    "enabled": Bool(),
    "channel": Str(choices=("stable", "beta", "alpha", "lts")),
    "version": Str(),
    "group": Str(),
    "max_updating": Int(1, 100_000),
    "max_per_hour": Int(1, 1_000_000),
    "window": Fields({"start": Str(), "length": Str(), "days": ListOf(Str(choices=DAYS))},
                     required=("start", "length")),
})

PROFILE_SPEC = Fields({
    "boot": Fields({"kernel": Str(), "initrd": ListOf(Str()), "args": ListOf(Str()), "loader": Str(choices=LOADERS)},
                   required=("kernel",)),
    "ignition": Fields({"butane": Str(), "config": Str()}, one_of=("butane", "config")),
    "after_install": Str(choices=("none", "local-disk")),
    "final_profile": Str(),
    "metadata": AnyMap(),
    "updates": UPDATES,
}, required=("boot",))

MACHINE_SPEC = Fields({"mac": Str(), "profile": Str(), "metadata": AnyMap(), "loader": Str(choices=LOADERS),
                       "arch": Str(choices=ARCHES)},
                      required=("mac", "profile"))

SELECTOR = Fields({"mac_prefix": Str(), "arch": Str(), "subnet": Str(), "uuid": Str(), "labels": MapOf(Scalar())})

GROUP_SPEC = Fields({"selector": SELECTOR, "profile": Str(), "metadata": AnyMap(), "updates": UPDATES,
                     "loader": Str(choices=LOADERS)},
                    required=("profile",))

SPECS = {"Profile": PROFILE_SPEC, "Machine": MACHINE_SPEC, "Group": GROUP_SPEC}

API_VERSION = "bootserver/v1"

DOCUMENT = Fields({"apiVersion": Str(choices=(API_VERSION,)), "kind": Str(choices=tuple(SPECS)),
                   "metadata": METADATA, "spec": AnyMap()}, required=("apiVersion", "kind", "metadata", "spec"))
