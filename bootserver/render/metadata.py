"""A machine's merged metadata as `KEY=value` lines (like matchbox), safe to `source` from a shell."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any, Iterator, Mapping

from bootserver.render.context import plain

SAFE_VALUE = re.compile(r"^[A-Za-z0-9@%+=:,./_-]*$")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _flatten(value, name)
        else:
            yield name, value


def metadata_lines(metadata: Mapping[str, Any]) -> str:
    """`KEY=value` lines: nested keys joined with `_`, upper case; values shell-quoted when needed,
    so a value with `$(…)` stays inert for `source`-ing scripts; control characters are written as
    `\n`-style escapes so every key stays on one line."""
    lines = []
    for key, value in _flatten(metadata):
        key = re.sub(r"[^A-Z0-9_]", "_", key.upper())
        if isinstance(value, (list, tuple, Mapping)):
            text = json.dumps(plain(value), separators=(",", ":"))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "" if value is None else str(value)
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        lines.append(f"{key}={text if SAFE_VALUE.match(text) else shlex.quote(text)}")
    return "".join(line + "\n" for line in lines)
