"""The `updates` block of a Profile or Group (Flatcar updates from bootserver's mirror), checked
beyond its schema: a channel or a pinned version, and a maintenance window that makes sense."""

from __future__ import annotations

import re
from typing import Any, Callable

from bootserver.catalog.model import UpdatePolicy, Window

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
LENGTH_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")

Report = Callable[[tuple, str], None]  # (field path, message)


def parse_updates(raw: dict[str, Any], path: tuple, report: Report) -> UpdatePolicy | None:
    """The policy in `raw` (already schema-checked), or None after reporting every problem."""
    ok = True
    if "channel" in raw and "version" in raw:
        report(path + ("version",), "give either channel (follow its current release) or version (pin one), "
                                    "not both")
        ok = False
    version = raw.get("version")
    if version is not None and not VERSION_RE.match(version):
        report(path + ("version",), f"{version!r} is not a Flatcar version like 4081.2.0")
        ok = False
    group = raw.get("group")
    if group is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", group):
        report(path + ("group",), f"{group!r}: a group is 1-64 letters, digits, '.', '_' or '-' "
                                  "(it is written to update.conf)")
        ok = False
    window = None
    if "window" in raw:
        window = _window(raw["window"], path + ("window",), report)
        ok = ok and window is not None
    if not ok:
        return None
    return UpdatePolicy(enabled=raw.get("enabled", True), channel=raw.get("channel", "stable"), version=version,
                        group=group, max_updating=raw.get("max_updating"), max_per_hour=raw.get("max_per_hour"),
                        window=window)


def _window(raw: dict[str, Any], path: tuple, report: Report) -> Window | None:
    start = TIME_RE.match(raw["start"])
    if not start:
        report(path + ("start",), f"{raw['start']!r} is not a time like 02:30 (24-hour, UTC)")
    length = LENGTH_RE.match(raw["length"]) if raw["length"] else None
    minutes = int(length.group(1) or 0) * 60 + int(length.group(2) or 0) if length else 0
    if not length or not 0 < minutes <= 24 * 60:
        report(path + ("length",), f"{raw['length']!r} is not a length like 3h, 90m or 1h30m (at most 24h)")
        return None
    if not start:
        return None
    days = tuple(dict.fromkeys(raw.get("days", ())))
    return Window(start_minute=int(start.group(1)) * 60 + int(start.group(2)), length_minutes=minutes, days=days)
