"""systemd unit files as Ignition (go-systemd) parses them."""

from __future__ import annotations

import json


LINE_MAX = 2048  # systemd's (and go-systemd's) longest line


def parse_unit(text: str) -> tuple[str | None, set[str] | None]:
    """(problem, names of sections that hold options): go-systemd's unit lexer, which Ignition uses.

    Text before the first section is skipped, a section header may not be followed by anything but
    blanks, an option needs "=" on its line, a value continues after a trailing backslash.
    """
    data, n, i = text, len(text), 0
    sections: set[str] = set()

    def to_eol(start: int) -> tuple[str, int] | str:
        end = data.find("\n", start)
        stop = n if end < 0 else end + 1
        if len(data[start:stop].encode("utf-8", "surrogateescape")) > LINE_MAX:
            return f"line too long (max {LINE_MAX} bytes)"
        return data[start:stop].rstrip("\r\n"), stop

    section: str | None = None  # None: before the first section header
    while i < n:
        char = data[i]
        i += 1
        if char == "[":
            end = data.find("]", i)
            if end < 0:
                return "unable to find end of section", None
            section = data[i:end]
            rest = to_eol(end + 1)
            if isinstance(rest, str):
                return rest, None
            if rest[0].strip():
                return f"found garbage after section name : {json.dumps(rest[0].strip())}", None
            i = rest[1]
        elif char in "#;":
            rest = to_eol(i)
            if isinstance(rest, str):
                return rest, None
            i = rest[1]
        elif section is None or char.isspace():
            continue
        else:  # an option: NAME=VALUE, the value continued by trailing backslashes
            equals = i - 1
            while True:
                if equals >= n:
                    return "EOF", None
                if data[equals] in "\r\n":
                    return "unexpected newline encountered while parsing option name", None
                if data[equals] == "=":
                    break
                equals += 1
            i = equals + 1
            while True:
                rest = to_eol(i)
                if isinstance(rest, str):
                    return rest, None
                line, i = rest
                if not line.strip() or not line.endswith("\\"):
                    break
            sections.add(section)
    return None, sections
