"""Plain-text tables and records for `bootserver machines` (what a person reads; --json is for scripts)."""

from __future__ import annotations

import json
from typing import Any


def _short(value: str | None) -> str:
    """An ISO time without the date's T and the milliseconds, for tables."""
    return value[:19].replace("T", " ") if value else "-"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def machine_table(machines: list[dict]) -> str:
    if not machines:
        return "no machines yet"
    return table(["MAC", "NAME", "PROFILE", "STATE", "ARCH", "OS", "UPDATE", "LAST SEEN (UTC)"],
                 [[m["mac"], m["name"], m["profile"], m["state"], m["arch"], m.get("os_version"), _update(m),
                   _short(m["last_seen"])] for m in machines])


def _update(machine: dict) -> str | None:
    """The update state, with the version it is heading to while an update is under way."""
    state, target = machine.get("update"), machine.get("update_target")
    if state in ("offered", "downloading", "downloaded", "applied") and target:
        return f"{state} -> {target}"
    return state


def discovered_table(machines: list[dict]) -> str:
    if not machines:
        return "no unknown machines have booted"
    return table(["MAC", "ARCH", "VENDOR", "UUID", "INTERFACE", "FIRST SEEN (UTC)", "LAST SEEN (UTC)"],
                 [[m["mac"], m["arch"], m["vendor"], m["uuid"], m["interface"] or m["client_ip"],
                   _short(m["first_seen"]), _short(m["last_seen"])] for m in machines])


def show_text(machine: dict) -> str:
    fields = {k: v for k, v in machine.items() if k != "next_boot"}
    nxt = machine.get("next_boot")
    if nxt:
        fields["next boot"] = f"{nxt['action']}: {nxt['reason']}"
    width = max(len(k) for k in fields)
    return "\n".join(f"{k.replace('_', ' '):<{width}}  {'-' if v is None else v}" for k, v in fields.items())


def timeline_table(page: dict) -> str:
    events = page["events"]
    if not events:
        return f"no events for {page['mac']}"
    text = table(["SEQ", "TIME (UTC)", "KIND", "SOURCE", "DETAIL"],
                 [[e["seq"], e["time"].replace("T", " ").rstrip("Z"), e["kind"], e["source"],
                   " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in e["detail"].items())]
                  for e in events])
    if page.get("before"):
        text += f"\n(older events: --before {page['before']})"
    return text
